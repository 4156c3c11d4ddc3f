"""Ingestion is idempotent, replaces changed files, deletes everywhere and survives a crash (real Chroma)."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.service import InputError, NotFoundError, PolicyAssistant
from assistant.settings import Settings
from corpus.models import DocumentMeta
from corpus.parsing import ClauseParser

pytestmark = pytest.mark.model

V1 = "第一条 外商投资医疗机构应当依法登记。\n第二条 本办法自公布之日起施行。"
V2 = "第一条 外商投资养老机构应当依法备案。\n第二条 本办法自公布之日起施行。\n第三条 本办法由民政部门解释。"


@pytest.fixture()
def small(tmp_path: Path) -> PolicyAssistant:
    """An assistant over a fresh, empty index (no shipped corpus)."""
    return PolicyAssistant(Settings(data_dir=tmp_path / "data"))


def _count(a: PolicyAssistant) -> int:
    return a.store.collection.count()


def test_same_file_twice_adds_nothing_and_changed_file_replaces(small: PolicyAssistant, tmp_path: Path):
    f = tmp_path / "notice.txt"
    f.write_text(V1, encoding="utf-8")
    parsed, changed = small.ingest_path(f, doc_id="notice", title="测试办法")
    assert changed and len(parsed.clauses) == 2 and _count(small) == 2
    _, changed = small.ingest_path(f, doc_id="notice", title="测试办法")
    assert not changed and _count(small) == 2
    f.write_text(V2, encoding="utf-8")
    _, changed = small.ingest_path(f, doc_id="notice", title="测试办法")
    assert changed and _count(small) == 3  # no stale vectors of the old version
    assert "养老" in small.clause("notice/第一条").clause.text
    hits = small.search("医疗机构登记", k=3)
    assert all("医疗机构应当依法登记" not in h.clause.text for h in hits)


def test_remove_document_removes_every_clause(small: PolicyAssistant, tmp_path: Path):
    small.ingest_bytes(V1.encode(), "a.txt", doc_id="a", title="甲")
    small.ingest_bytes(V2.encode(), "b.txt", doc_id="b", title="乙")
    small.delete_document("a")
    assert {d.meta.doc_id for d in small.documents()} == {"b"}
    assert _count(small) == 3
    assert all(h.clause.doc_id == "b" for h in small.search("依法登记", k=5))
    with pytest.raises(NotFoundError):
        small.clause("a/第一条")
    with pytest.raises(NotFoundError):
        small.delete_document("a")
    # the lexical index forgot it too: a word only "a" had finds nothing
    assert small.retriever.snapshot.lexical.run("医疗机构") == [] or all(
        small.retriever.snapshot.clauses[i].doc_id == "b" for i, _ in small.retriever.snapshot.lexical.run("医疗机构"))


def test_interrupted_write_is_repaired_on_restart(small: PolicyAssistant, tmp_path: Path):
    small.ingest_bytes(V1.encode(), "a.txt", doc_id="a", title="甲")
    # Simulate a crash after the new generation's clauses were written but before the commit.
    meta = DocumentMeta(doc_id="a", title="甲")
    parsed = ClauseParser().run(meta, V2)
    gen = parsed.content_hash[:12]
    vectors = small.embedder.embed_documents([c.text for c in parsed.clauses])
    small.store.collection.add(ids=[f"{c.clause_id}@{gen}" for c in parsed.clauses],
                               embeddings=[v.tolist() for v in vectors], documents=[c.text for c in parsed.clauses],
                               metadatas=[small.store._metadata(c, gen) for c in parsed.clauses])
    assert _count(small) == 5
    # readers still see exactly the committed version
    small.retriever.refresh()
    assert len(small.retriever.snapshot.clauses) == 2
    # a restarted process repairs the index
    again = PolicyAssistant(Settings(data_dir=tmp_path / "data"))
    again.ensure_index()
    assert again.store.collection.count() == 2
    assert "医疗机构" in again.clause("a/第一条").clause.text


def test_failed_upload_changes_nothing(small: PolicyAssistant):
    small.ingest_bytes(V1.encode(), "a.txt", doc_id="a", title="甲")
    before = _count(small)
    from corpus.loaders import LoaderError

    with pytest.raises(LoaderError):
        small.ingest_bytes(b"garbage", "b.docx", doc_id="b")
    with pytest.raises(InputError):
        small.ingest_bytes(V1.encode(), "c.txt", doc_id="bad/id")
    assert _count(small) == before
    assert [d.meta.doc_id for d in small.documents()] == ["a"]


def test_shipped_index_has_every_document(built_assistant: PolicyAssistant):
    docs = {d.meta.doc_id: d for d in built_assistant.documents()}
    assert len(docs) == 14
    assert docs["fz-plan"].meta.status == "征求意见稿"
    assert docs["cybersecurity-law"].meta.status.startswith("非最新修订")
    assert sum(d.clauses for d in docs.values()) == len(built_assistant.retriever.snapshot.clauses)
    # ensure_index on a built index adds nothing
    assert built_assistant.ensure_index() == 0
