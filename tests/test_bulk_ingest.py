"""Bulk ingestion as one write per batch (issue 10): ``ClauseStore.upsert_many`` and ``PolicyAssistant.ingest_paths``.

A batch commits as a whole (one registry write, one generation bump), a failure anywhere before the commit leaves
the corpus as it was before the batch, a crash (kill -9) leaves whole batches only, and a repeated batch is skipped.
The store tests use a real embedded Chroma and a tiny deterministic embedder (no model).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from chromadb.errors import InternalError
from fakes import FULL, FailingCollection, StubEmbedder, parsed

import retrieval.store as store_module
from retrieval.store import ClauseStore, make_client


@pytest.fixture()
def store(tmp_path) -> ClauseStore:
    return ClauseStore(make_client(tmp_path / "chroma"), StubEmbedder(), prefix="t")


def state(store: ClauseStore) -> tuple[dict[str, str], list[str], str]:
    docs = {d: s.content_hash for d, s in store.documents().items()}
    return docs, sorted(store.collection.get()["ids"]), store.generation()


def test_a_batch_is_one_commit_with_one_generation_bump_and_large_embedding_calls(store, monkeypatch) -> None:
    bumps: list[int] = []
    original = store._bump_generation
    monkeypatch.setattr(store, "_bump_generation", lambda: bumps.append(1) or original())
    docs = [parsed(f"d{i}", "v1") for i in range(6)]
    assert store.upsert_many(docs) == [True] * 6
    assert len(bumps) == 1
    assert store.embedder.calls == [30]  # every clause of the batch in one call
    assert sorted(store.documents()) == [f"d{i}" for i in range(6)]
    assert len(store.clauses()) == 30 and store.repair() == 0
    # the same batch again: nothing written, no bump; one changed document among unchanged ones
    assert store.upsert_many(docs) == [False] * 6 and len(bumps) == 1
    docs[3] = parsed("d3", "v2", n=3)
    assert store.upsert_many(docs) == [False, False, False, True, False, False] and len(bumps) == 2
    texts = [c.text for _, c in store.clauses() if c.doc_id == "d3"]
    assert len(texts) == 3 and all(t.startswith("v2") for t in texts)
    assert store.collection.count() == 28  # the older generation of d3 is gone


@pytest.mark.parametrize("fail_on", [1, 2, 3])
def test_a_failure_in_the_middle_of_a_batch_leaves_the_corpus_as_before_the_batch(store, monkeypatch, fail_on) -> None:
    assert store.upsert_many([parsed("keep", "v1"), parsed("old", "v1")]) == [True, True]
    before = state(store)
    monkeypatch.setattr(store_module, "_BATCH", 4)  # 3 documents x 5 clauses: 4 collection writes
    store.collection = FailingCollection(store.collection, fail_on=fail_on)
    with pytest.raises(InternalError):
        store.upsert_many([parsed("new1", "v1"), parsed("old", "v2"), parsed("new2", "v1")])
    store.collection = store.collection.inner
    assert state(store) == before
    assert store.repair() == 0


def test_a_failed_registry_commit_of_a_batch_removes_every_new_record(store) -> None:
    assert store.upsert_many([parsed("old", "v1")]) == [True]
    before = state(store)

    class BrokenRegistry:
        def __init__(self, inner) -> None:
            self.inner = inner

        def upsert(self, *args, **kwargs):
            raise FULL

        def __getattr__(self, name):
            return getattr(self.inner, name)

    store.registry = BrokenRegistry(store.registry)
    with pytest.raises(InternalError):
        store.upsert_many([parsed("old", "v2"), parsed("new", "v1")])
    store.registry = store.registry.inner
    assert state(store) == before


def test_a_crash_before_the_commit_is_repaired_at_the_next_start(store, tmp_path) -> None:
    assert store.upsert_many([parsed("old", "v1")]) == [True]
    before = state(store)

    class Crash(BaseException):  # like kill -9: no cleanup runs
        pass

    class DyingRegistry:
        def __init__(self, inner) -> None:
            self.inner = inner

        def upsert(self, *args, **kwargs):
            raise Crash

        def __getattr__(self, name):
            return getattr(self.inner, name)

    store.registry = DyingRegistry(store.registry)
    with pytest.raises(Crash):
        store.upsert_many([parsed("old", "v2"), parsed("new", "v1")])
    store.registry = store.registry.inner
    assert store.collection.count() == 15  # the batch's records are there, uncommitted
    assert {d: s.content_hash for d, s in store.documents().items()} == before[0]  # readers see the old corpus
    assert store.repair() == 10
    assert state(store)[:2] == before[:2]


def test_a_doc_id_twice_in_one_batch_is_written_in_order(store) -> None:
    assert store.upsert_many([parsed("a", "v1"), parsed("b", "v1"), parsed("a", "v2", n=2)]) == [True, True, True]
    texts = [c.text for _, c in store.clauses() if c.doc_id == "a"]
    assert len(texts) == 2 and all(t.startswith("v2") for t in texts)
    assert store.collection.count() == 7 and store.repair() == 0


def test_single_document_upsert_is_unchanged(store) -> None:
    assert store.upsert(parsed("a", "v1")) is True
    assert store.upsert(parsed("a", "v1")) is False
    assert store.upsert(parsed("a", "v2", n=2)) is True
    assert store.collection.count() == 2


_WRITER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[2])
    from fakes import StubEmbedder, parsed
    from retrieval.store import ClauseStore, make_client
    from pathlib import Path
    store = ClauseStore(make_client(Path(sys.argv[1])), StubEmbedder(), prefix="t")
    for b in range(10_000):
        store.upsert_many([parsed(f"b{b}-{i}", "v1", n=40) for i in range(5)])
        print(b, flush=True)
""")


def test_kill_9_mid_ingest_leaves_whole_batches_only(tmp_path) -> None:
    """A writer killed at a random moment: after repair, every committed document has exactly its clauses and
    the committed documents are whole batches (5 documents each)."""
    chroma = tmp_path / "chroma"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(chroma), str(Path(__file__).parent)],
                            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent)
    assert proc.stdout is not None
    for _ in range(3):  # let a few batches commit
        assert proc.stdout.readline()
    time.sleep(0.137)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    store = ClauseStore(make_client(chroma), StubEmbedder(), prefix="t")
    store.repair()
    docs = store.documents()
    batches: dict[str, int] = {}
    for doc_id in docs:
        batches[doc_id.split("-")[0]] = batches.get(doc_id.split("-")[0], 0) + 1
    assert len(batches) >= 3 and set(batches.values()) == {5}, json.dumps(batches)
    assert store.collection.count() == 40 * len(docs)
    assert all(len([c for _, c in store.clauses(docs) if c.doc_id == d]) == 40 for d in docs)


# ------------------------------------------------------------------ the service
@pytest.mark.model
def test_ingest_paths_parses_everything_first_commits_once_and_resumes(tmp_path, monkeypatch) -> None:
    from assistant.service import PolicyAssistant
    from assistant.settings import Settings

    files = []
    for i in range(4):
        f = tmp_path / f"own{i}.txt"
        f.write_text(f"第一条 自有条款{i}：海洋经济示范区建设第{i}期。\n第二条 本办法自公布之日起施行。", encoding="utf-8")
        files.append(f)
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"not a pdf")
    a = PolicyAssistant(Settings(data_dir=tmp_path / "data", retrieval_mode="lexical"))
    with pytest.raises(Exception):  # noqa: B017 - a LoaderError or InputError: the file cannot be read
        a.ingest_paths([files[0], bad, files[1]])
    assert a.store.documents() == {} and a.store.collection.count() == 0  # nothing of that batch was written
    bumps: list[int] = []
    original = a.store._bump_generation
    monkeypatch.setattr(a.store, "_bump_generation", lambda: bumps.append(1) or original())
    refreshes: list[int] = []
    monkeypatch.setattr(a.retriever, "refresh", lambda: refreshes.append(1))
    out = a.ingest_paths(files[:2], refresh=False)
    assert [changed for _, changed in out] == [True, True] and bumps == [1] and refreshes == []
    out = a.ingest_paths(files)  # resumed: the first two are skipped
    assert [changed for _, changed in out] == [False, False, True, True] and bumps == [1, 1] and refreshes == [1]
    assert sorted(a.store.documents()) == [f"own{i}" for i in range(4)]
    assert all(a.sources.get(p.meta.doc_id, p.content_hash) for p, _ in out)  # every source is kept


def test_a_write_in_several_parts_overlaps_embedding_and_chroma_and_stays_all_or_nothing(store, monkeypatch) -> None:
    """Parts of ``_EMBED_BATCH`` clauses: each part's Chroma write runs on a writer thread while the next part is
    embedded; every record is in Chroma before the commit, and a failed part's write fails the whole batch."""
    import threading

    monkeypatch.setattr(store_module, "_EMBED_BATCH", 4)
    monkeypatch.setattr(store_module, "_BATCH", 3)
    writers: set[str] = set()
    inner = store.collection

    class Recording(FailingCollection):
        def upsert(self, *args, **kwargs):
            writers.add(threading.current_thread().name)
            return super().upsert(*args, **kwargs)

    store.collection = Recording(inner, fail_on=0)
    assert store.upsert_many([parsed(f"d{i}", "v1") for i in range(3)]) == [True] * 3
    assert store.embedder.calls == [4, 4, 4, 3]  # 15 clauses in parts of 4
    assert writers and all(name.startswith("chroma-write") for name in writers)
    assert len(store.clauses()) == 15 and store.repair() == 0
    before = state(store)
    store.collection = Recording(inner, fail_on=3)  # the second part's first write
    with pytest.raises(InternalError):
        store.upsert_many([parsed("d0", "v2"), parsed("new", "v1")])
    store.collection = inner
    assert state(store) == before and store.repair() == 0


def test_a_cached_embedder_writes_one_cache_shard_for_a_write_in_parts(tmp_path, monkeypatch) -> None:
    from retrieval.vectors import CachedEmbedder, VectorCache

    monkeypatch.setattr(store_module, "_EMBED_BATCH", 4)
    inner = StubEmbedder()
    cached = CachedEmbedder(inner, VectorCache("stub-8", tmp_path / "vectors"))
    store = ClauseStore(make_client(tmp_path / "chroma"), cached, prefix="t")
    docs = [parsed("a", "v1"), parsed("b", "v1", n=4)]
    docs.append(parsed("c", "v1"))
    docs[2].clauses[0] = docs[2].clauses[0].model_copy(update={"text": docs[0].clauses[0].text})  # a text twice
    assert store.upsert_many(docs) == [True] * 3
    assert sum(inner.calls) == 13  # the repeated text is embedded once, across parts
    shards = sorted((tmp_path / "vectors").rglob("shard-*.npz"))
    assert len(shards) == 1
    again = VectorCache("stub-8", tmp_path / "vectors")
    assert len(again) == 13
