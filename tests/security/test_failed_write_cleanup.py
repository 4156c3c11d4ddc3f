"""A write that fails in the middle (storage error) is cleaned up at once, not at the next restart (issue 11).

The failure is injected in the storage layer: the Chroma collection raises on its second batch, as a full disk
would in the middle of a large upload. The store is real (embedded Chroma in a temp folder); the embedder is a
tiny deterministic stub so the test needs no model.
"""

from __future__ import annotations

import pytest
from chromadb.errors import InternalError
from fakes import FULL, FailingCollection, StubEmbedder, parsed

import retrieval.store as store_module
from retrieval.store import ClauseStore, make_client


@pytest.fixture()
def store(tmp_path, monkeypatch) -> ClauseStore:
    monkeypatch.setattr(store_module, "_BATCH", 2)  # 7 clauses → 4 batches, so a failure can hit the middle
    return ClauseStore(make_client(tmp_path / "chroma"), StubEmbedder(), prefix="t")


def records(store: ClauseStore, doc_id: str) -> set[str]:
    return set(store.collection.get(where={"doc_id": doc_id})["ids"])


def test_a_failed_first_upload_leaves_no_record(store) -> None:
    store.collection = FailingCollection(store.collection, fail_on=3)  # two batches written, the third fails
    with pytest.raises(InternalError):
        store.upsert(parsed("new-doc", "v1", n=7))
    assert records(store, "new-doc") == set()
    assert "new-doc" not in store.documents()
    assert store.repair() == 0  # nothing left for the restart to do


def test_a_failed_replacement_keeps_the_previous_version_whole(store) -> None:
    assert store.upsert(parsed("doc", "v1", n=7))
    before = records(store, "doc")
    assert len(before) == 7
    store.collection = FailingCollection(store.collection, fail_on=2)
    with pytest.raises(InternalError):
        store.upsert(parsed("doc", "v2", n=7))
    assert records(store, "doc") == before
    assert store.documents()["doc"].content_hash == parsed("doc", "v1", n=7).content_hash
    texts = [c.text for _, c in store.clauses()]
    assert texts and all(t.startswith("v1") for t in texts)
    assert store.repair() == 0
    # and the storage recovered: the same replacement now goes through and leaves only v2
    store.collection = store.collection.inner
    assert store.upsert(parsed("doc", "v2", n=7))
    assert all(c.text.startswith("v2") for _, c in store.clauses())
    assert len(records(store, "doc")) == 7


def test_a_failed_registry_commit_removes_the_new_generation(store, monkeypatch) -> None:
    assert store.upsert(parsed("doc", "v1", n=7))
    before = records(store, "doc")

    class BrokenRegistry:
        def __init__(self, inner) -> None:
            self.inner = inner

        def upsert(self, *args, **kwargs):
            raise FULL

        def __getattr__(self, name):
            return getattr(self.inner, name)

    store.registry = BrokenRegistry(store.registry)
    with pytest.raises(InternalError):
        store.upsert(parsed("doc", "v2", n=7))
    assert records(store, "doc") == before
    assert store.documents()["doc"].content_hash == parsed("doc", "v1", n=7).content_hash


def test_when_the_cleanup_fails_too_repair_removes_the_rest_at_the_next_start(store) -> None:
    assert store.upsert(parsed("doc", "v1", n=7))
    before = records(store, "doc")
    inner = store.collection

    class NothingWorks(FailingCollection):
        def delete(self, *args, **kwargs):
            raise FULL

    store.collection = NothingWorks(inner, fail_on=3)
    with pytest.raises(InternalError):
        store.upsert(parsed("doc", "v2", n=7))
    store.collection = inner
    assert records(store, "doc") > before  # the partial v2 records are still there
    assert store.repair() == 4  # two batches of two
    assert records(store, "doc") == before


def test_an_upload_that_fails_mid_write_is_a_503_and_leaves_no_orphan(tmp_path, monkeypatch) -> None:
    from fastapi.testclient import TestClient

    from assistant.service import PolicyAssistant
    from assistant.settings import Settings
    from ui.server import create_app

    svc = PolicyAssistant(Settings(data_dir=tmp_path / "data", admin_token="t0ken", llm_provider="none"))
    svc.ingest_bytes("第一条 琥珀隧道限速四十公里。\n第二条 本规定自公布之日起施行。".encode(), "a.txt", doc_id="amber")
    records_before = svc.store.collection.count()
    law = "\n".join(f"第{i}条 珊瑚灯塔第{i}项维护要求。" for i in "一二三四五六七")
    monkeypatch.setattr(store_module, "_BATCH", 2)
    svc.store.collection = FailingCollection(svc.store.collection, fail_on=2)
    client = TestClient(create_app(svc, with_ui=False))
    r = client.post("/api/documents", headers={"Authorization": "Bearer t0ken"},
                    files={"file": ("coral.txt", law.encode(), "text/plain")}, data={"doc_id": "coral"})
    assert r.status_code == 503, r.text
    assert r.json()["detail"].startswith("storage is full")
    assert svc.store.collection.count() == records_before
    assert sorted(svc.store.documents()) == ["amber"]


def test_a_failure_after_the_commit_point_keeps_the_new_version_and_repair_removes_the_old(store) -> None:
    assert store.upsert(parsed("doc", "v1", n=7))
    inner = store.collection

    class NoDelete(FailingCollection):
        def delete(self, *args, **kwargs):
            raise FULL

    store.collection = NoDelete(inner, fail_on=0)
    assert store.upsert(parsed("doc", "v2", n=7))  # committed: the write succeeded, only the old records stay
    store.collection = inner
    assert all(c.text.startswith("v2") for _, c in store.clauses())
    assert len(records(store, "doc")) == 14
    assert store.repair() == 7
    assert len(records(store, "doc")) == 7
