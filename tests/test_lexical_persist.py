"""Per-query statistics from the lexical index, and the index saved and loaded by corpus generation."""

from __future__ import annotations

import re

import pytest

from retrieval.lexical import LexicalIndex
from retrieval.vectors import text_key

TEXTS = ["支持境外医疗专业人员短期执业。", "放宽增值电信业务外资准入。", "数据出境安全评估办法。",
         "数据处理者应当开展数据安全评估。", "DEPA data rules, 1000 items.", "境外数据"]


def _scan(term: str) -> int:
    return sum(1 for t in TEXTS if term in t.lower())


def test_df_of_tokens_is_the_posting_count() -> None:
    index = LexicalIndex(TEXTS)
    for term in ("数", "数据", "评估", "境外", "depa", "data", "1000", "医"):
        assert index.is_token(term)
        assert index.df(term) == _scan(term), term
    assert index.df("无关") == 0
    assert index.df("") == 0


def test_postings_of_a_longer_term_hold_every_text_that_contains_it() -> None:
    index = LexicalIndex(TEXTS)
    for term in ("数据出境", "安全评估", "外资准入", "境外医疗专业"):
        assert not index.is_token(term)
        found = set(index.postings(term).tolist())
        assert {i for i, t in enumerate(TEXTS) if term in t} <= found, term
    assert index.postings("安全评估").tolist() == [2, 3]
    assert index.postings("出境外").tolist() == []  # no text holds both '出境' and '境外'
    assert index.df("安全评估") == 2


def test_idf_matches_the_gate_formula() -> None:
    import math

    index = LexicalIndex(TEXTS)
    assert index.idf("数据") == math.log((len(TEXTS) + 1) / (_scan("数据") + 0.5))
    assert LexicalIndex([]).df("数据") == 0


# ------------------------------------------------------------------ persistence (real Chroma)
V1 = "第一条 外商投资医疗机构应当依法登记。\n第二条 本办法自公布之日起施行。"
V2 = "第一条 外商投资养老机构应当依法备案。\n第二条 本办法自公布之日起施行。\n第三条 本办法由民政部门解释。"


def test_save_and_load_round_trip_and_refuse_other_keys(tmp_path) -> None:
    index = LexicalIndex(TEXTS)
    folder = index.save(tmp_path, "gen-1")
    assert folder is not None and (folder / "policy-meta.json").exists()
    loaded = LexicalIndex.load(tmp_path, "gen-1", len(TEXTS))
    assert loaded is not None
    assert loaded.run("数据安全评估") == index.run("数据安全评估")
    assert loaded.df("数据") == index.df("数据")
    assert LexicalIndex.load(tmp_path, "gen-2", len(TEXTS)) is None
    assert LexicalIndex.load(tmp_path, "gen-1", len(TEXTS) + 1) is None
    index.save(tmp_path, "gen-2")  # a newer save replaces the older one
    assert [p.name for p in tmp_path.iterdir()] == [LexicalIndex.folder_for(tmp_path, "gen-2").name]


def test_corrupt_or_partial_save_is_ignored(tmp_path) -> None:
    index = LexicalIndex(TEXTS)
    folder = index.save(tmp_path, "g")
    assert folder is not None
    (folder / "indices.csc.index.npy").write_bytes(b"\x93NUMPY garbage")
    assert LexicalIndex.load(tmp_path, "g", len(TEXTS)) is None
    folder = index.save(tmp_path, "g")
    (folder / "vocab.index.json").unlink()
    assert LexicalIndex.load(tmp_path, "g", len(TEXTS)) is None
    folder = index.save(tmp_path, "g")
    (folder / "policy-meta.json").write_text("{not json", encoding="utf-8")
    assert LexicalIndex.load(tmp_path, "g", len(TEXTS)) is None


@pytest.mark.model
def test_start_up_loads_the_saved_index_and_rebuilds_when_the_generation_moved(tmp_path, monkeypatch) -> None:
    from assistant.service import PolicyAssistant
    from assistant.settings import Settings
    from retrieval import retriever as retriever_module

    built: list[int] = []

    class Counting(LexicalIndex):
        def __init__(self, texts: list[str], *args, **kwargs) -> None:
            built.append(len(texts))
            super().__init__(texts, *args, **kwargs)

    monkeypatch.setattr(retriever_module, "LexicalIndex", Counting)
    settings = Settings(data_dir=tmp_path / "data", retrieval_mode="lexical", replica_check_s=0)
    f = tmp_path / "notice.txt"
    f.write_text(V1, encoding="utf-8")
    first = PolicyAssistant(settings)
    first.ingest_path(f, doc_id="notice", title="测试办法")
    assert built and built[-1] == 2
    saved = list((tmp_path / "data" / "lexical").glob("bm25-*"))
    assert len(saved) == 1

    built.clear()
    second = PolicyAssistant(settings)  # a new process on the same data: loads, does not rebuild
    assert [h.clause.clause_id for h in second.search("医疗机构登记", k=1)] == ["notice/第一条"]
    assert built == []

    f.write_text(V2, encoding="utf-8")
    built.clear()
    first.ingest_path(f, doc_id="notice", title="测试办法")  # the generation moves: rebuilt and saved
    assert built == [3]
    assert list((tmp_path / "data" / "lexical").glob("bm25-*")) != saved
    built.clear()
    third = PolicyAssistant(settings)
    assert "养老" in third.search("养老机构备案", k=1)[0].clause.text
    assert built == []  # the new generation's save is loaded

    built.clear()  # a replica that sees the generation move loads the saved index too
    assert "养老" in second.search("养老机构备案", k=1)[0].clause.text
    assert built == []

    for p in (tmp_path / "data" / "lexical").glob("bm25-*/data.csc.index.npy"):
        p.write_bytes(b"truncated")  # a corrupt save is ignored and rebuilt
    built.clear()
    fourth = PolicyAssistant(settings)
    assert "养老" in fourth.search("养老机构备案", k=1)[0].clause.text
    assert built == [3]


# ------------------------------------------------------------------ vector cache shards
def test_vector_cache_appends_shards_reads_the_old_file_and_compacts(tmp_path) -> None:
    import numpy as np

    from retrieval.vectors import VectorCache

    old = VectorCache("fake", None)
    legacy = tmp_path / "vectors-fake.npz"  # the single file older versions wrote
    np.savez(legacy, keys=np.array(["0123456789abcdef"], dtype="U16"), vectors=np.ones((1, 4), np.float16))
    cache = VectorCache("fake", tmp_path)
    assert len(cache) == len(old) + 1
    cache.put_many(["甲", "乙"], np.arange(8, dtype=np.float32).reshape(2, 4))
    cache.put_many(["丙"], np.full((1, 4), 7.0, dtype=np.float32))
    shards = sorted((tmp_path / "vectors-fake").glob("shard-*.npz"))
    assert len(shards) == 2
    with np.load(shards[1]) as data:  # the second write holds only its own vector
        assert data["keys"].tolist() == [text_key("丙")]
    again = VectorCache("fake", tmp_path)
    assert np.allclose(again.get("乙"), [4, 5, 6, 7]) and np.allclose(again.get("丙"), 7.0)
    assert again.get("丁") is None

    VectorCache.COMPACT_AT, saved = 3, VectorCache.COMPACT_AT
    try:
        for i in range(4):
            cache.put_many([f"文本{i}"], np.full((1, 4), float(i), dtype=np.float32))
    finally:
        VectorCache.COMPACT_AT = saved
    assert len(list((tmp_path / "vectors-fake").glob("shard-*.npz"))) <= 3
    merged = VectorCache("fake", tmp_path)
    assert all(np.allclose(merged.get(f"文本{i}"), i) for i in range(4))
    assert np.allclose(merged.get("甲"), [0, 1, 2, 3])

    (tmp_path / "vectors-fake" / "shard-99999999999999999999-1-x.npz").write_bytes(b"broken")
    assert np.allclose(VectorCache("fake", tmp_path).get("甲"), [0, 1, 2, 3])  # a damaged shard is skipped


# ------------------------------------------------------------------ bulk ingestion
@pytest.mark.model
def test_bulk_ingest_refreshes_once_per_batch_and_reports_each_file(tmp_path, monkeypatch) -> None:
    from assistant.service import PolicyAssistant
    from assistant.settings import Settings

    files = []
    for i in range(5):
        f = tmp_path / f"own{i}.txt"
        f.write_text(f"第一条 自有条款{i}：海洋经济示范区建设第{i}期。\n第二条 本办法自公布之日起施行。", encoding="utf-8")
        files.append(f)
    a = PolicyAssistant(Settings(data_dir=tmp_path / "data", retrieval_mode="lexical"))
    refreshes: list[int] = []
    original = a.retriever.refresh
    monkeypatch.setattr(a.retriever, "refresh", lambda: refreshes.append(1) or original())
    seen: list[tuple[str, bool]] = []
    out = a.ingest_paths(files, on_done=lambda parsed, changed: seen.append((parsed.meta.doc_id, changed)))
    assert len(refreshes) == 1 and len(out) == 5
    assert seen == [(f"own{i}", True) for i in range(5)]
    assert a.ingest_paths(files) and len(refreshes) == 1  # nothing changed: no refresh at all
    assert len(a.retriever.snapshot.clauses) == 10


def _cli_ingest(tmp_path, *args: str, **env: str):
    import os
    import subprocess
    import sys
    from pathlib import Path

    tmp_path.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(3):
        f = tmp_path / f"bulk{i}.txt"
        f.write_text(f"第一条 条款{i}：港口建设第{i}期。\n", encoding="utf-8")
        files.append(str(f))
    cli = str(Path(sys.executable).with_name("policy-assistant"))
    full_env = {k: v for k, v in os.environ.items() if k not in ("TTY_COMPATIBLE", "FORCE_COLOR")}
    full_env.update({"POLICY_DATA_DIR": str(tmp_path / "data"), "RETRIEVAL_MODE": "lexical", **env})
    return subprocess.run([cli, "ingest", "--own-only", "--batch", "2", *args, *files], capture_output=True,
                          text=True, env=full_env, timeout=300)


@pytest.mark.model
def test_cli_progress_bar_on_a_terminal_only_and_quiet(tmp_path) -> None:
    piped = _cli_ingest(tmp_path / "a")  # stderr is a pipe: no bar, a line per file
    assert piped.returncode == 0, piped.stderr[-400:]
    assert "[3/3]" in piped.stdout and "done: 3 files, 3 changed, 3 clauses" in piped.stdout
    assert "━" not in piped.stderr
    tty = _cli_ingest(tmp_path / "b", TTY_COMPATIBLE="1")  # rich treats stderr as a terminal
    assert tty.returncode == 0 and "━" in tty.stderr and "3/3" in tty.stderr
    quiet = _cli_ingest(tmp_path / "c", "--quiet", TTY_COMPATIBLE="1")
    assert quiet.returncode == 0 and "━" not in quiet.stderr and "[1/3]" not in quiet.stdout
    assert re.fullmatch(r"done: 3 files, 3 changed, 3 clauses in [\d.]+ s( \(embedding [\d.]+ s\))?", quiet.stdout.strip())


def test_start_up_reads_the_saved_clauses_of_the_same_corpus_and_chroma_otherwise(tmp_path, monkeypatch) -> None:
    """The snapshot's clauses are saved beside the lexical index for the corpus generation and registry; a start-up
    at the same corpus reads that file (not every record from Chroma), any write or a damaged file reads Chroma."""
    import numpy as np

    from corpus.models import Clause, DocumentMeta, ParsedDocument
    from retrieval.retriever import IndexSnapshot
    from retrieval.store import ClauseStore, make_client

    class Stub:
        spec = "stub-4"

        def embed_documents(self, texts):
            return np.array([[1.0, len(t), 2.0, 3.0] for t in texts]) / 10

        def embed_query(self, text):
            return self.embed_documents([text])[0]

    def doc(doc_id: str, version: str) -> ParsedDocument:
        meta = DocumentMeta(doc_id=doc_id, title=doc_id)
        clauses = [Clause(clause_id=f"{doc_id}/{i}", doc_id=doc_id, doc_title=doc_id, path=["第一章", f"第{i}条"],
                          label=f"第{i}条", text=f"{version} 海洋经济第{i}条", order=i, kind="article") for i in range(3)]
        return ParsedDocument(meta=meta, clauses=clauses, content_hash=ParsedDocument.hash_text(doc_id + version))

    store = ClauseStore(make_client(tmp_path / "chroma"), Stub(), prefix="t")
    store.upsert_many([doc("a", "v1"), doc("b", "v1")])
    root = tmp_path / "lexical"
    reads: list[int] = []
    original = store.clauses
    monkeypatch.setattr(store, "clauses", lambda docs=None: reads.append(1) or original(docs))
    first = IndexSnapshot.build(store, lexical_dir=root)
    assert reads == [1] and len(list(root.glob("clauses-*.json"))) == 1
    again = IndexSnapshot.build(store, lexical_dir=root)
    assert reads == [1]  # the saved clauses, not Chroma
    assert again.clauses == first.clauses and again.chroma_ids == first.chroma_ids
    assert again.lexical.run("海洋经济", k=5) == first.lexical.run("海洋经济", k=5)
    store.upsert(doc("b", "v2"))  # a write: another key
    moved = IndexSnapshot.build(store, lexical_dir=root)
    assert reads == [1, 1] and all(c.text.startswith("v2") for c in moved.clauses if c.doc_id == "b")
    assert len(list(root.glob("clauses-*.json"))) == 1  # the older save is gone
    next(root.glob("clauses-*.json")).write_text('{"key": "x", "rows": [[1]]}', encoding="utf-8")
    assert IndexSnapshot.build(store, lexical_dir=root).clauses == moved.clauses and reads == [1, 1, 1]
