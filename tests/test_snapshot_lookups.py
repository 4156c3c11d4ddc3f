"""The snapshot's shortcuts give what a scan of every clause gives: document runs, substring lookups through the
lexical postings, and the exact dense ranking (used up to EXACT_SEARCH_MAX_CLAUSES instead of HNSW)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from corpus.models import Clause, DocumentMeta, ParsedDocument
from retrieval.retriever import HybridRetriever
from retrieval.store import ClauseStore, make_client

WORDS = ["数据跨境", "融资租赁", "外籍人才", "跨境电商", "医疗机构", "Data export", "电信业务", "租赁企业"]


class HashEmbedder:
    """Distinct, reproducible unit vectors per text (so rankings have no ties)."""

    spec = "hash-16"

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        rows = [np.frombuffer(hashlib.sha256(t.encode()).digest()[:16], dtype=np.uint8).astype(np.float32) - 127.5
                for t in texts]
        out = np.array(rows).reshape(len(texts), 16)
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]


def doc(doc_id: str, n: int) -> ParsedDocument:
    meta = DocumentMeta(doc_id=doc_id, title=f"规定{doc_id}")
    clauses = [Clause(clause_id=f"{doc_id}/第{i}条" + ("/1" if i % 3 == 0 else ""), doc_id=doc_id, doc_title=meta.title,
                      label=f"第{i}条", order=i, kind="article",
                      text=f"第{i}条 {WORDS[(i + len(doc_id)) % len(WORDS)]}和{WORDS[(i * 3) % len(WORDS)]}的管理。")
               for i in range(n)]
    return ParsedDocument(meta=meta, clauses=clauses, content_hash=ParsedDocument.hash_text(doc_id + str(n)))


@pytest.fixture(scope="module")
def retrievers(tmp_path_factory) -> tuple[HybridRetriever, HybridRetriever]:
    store = ClauseStore(make_client(tmp_path_factory.mktemp("snap") / "chroma"), HashEmbedder(), prefix="t")
    spaced = doc("dd", 2)
    spaced.clauses[1].text = "第1条 数据 跨境 的规则（排版留下的空格）。"
    store.upsert_many([doc("a", 40), doc("bb", 25), doc("ccc", 60), spaced])
    exact = HybridRetriever(store, mode="dense", candidates=30)
    approximate = HybridRetriever(store, mode="dense", candidates=30, exact_max=0)  # Chroma's HNSW
    return exact, approximate


def test_document_runs_and_prefixes_match_a_scan(retrievers) -> None:
    snap = retrievers[0].snapshot
    for doc_id in ("a", "bb", "ccc", "missing"):
        assert snap.of_document(doc_id) == [c for c in snap.clauses if c.doc_id == doc_id]
        assert list(snap.positions([doc_id])) == [i for i, c in enumerate(snap.clauses) if c.doc_id == doc_id]
    for prefix in ("a", "bb/第3条", "ccc/第9条/", "ccc/第1"):
        p = prefix.rstrip("/")
        assert snap.under(prefix) == [c for c in snap.clauses if c.clause_id == p or c.clause_id.startswith(p + "/")]


def _cjk(term: str) -> bool:
    return all("\u3400" <= ch <= "\u9fff" for ch in term)


@pytest.mark.parametrize("term", ["数据跨境", "数据 跨境", "租赁", "跨境", "数", "Data", "data export", "管理。", "不存在的词"])
def test_containing_matches_a_substring_scan(retrievers, term: str) -> None:
    snap = retrievers[0].snapshot
    assert snap.containing(term) == [i for i, c in enumerate(snap.clauses) if term in c.text]
    assert snap.containing(term.replace(" ", ""), ignore_space=True) == \
        [i for i, c in enumerate(snap.clauses) if term.replace(" ", "") in "".join(c.text.split())]
    assert snap.lexical.max_count(term) >= len(snap.containing(term)) or not _cjk(term)
    for others in ([], ["数据"], ["管理", "跨境"], ["Data"]):
        terms = [term, *others]
        every = [i for i, c in enumerate(snap.clauses) if all(t in c.text for t in terms)]
        assert snap.containing_all(terms) == every
        odd = [i for i in every if snap.clauses[i].order % 2]
        assert snap.containing_all(terms, limit=3, where=lambda c: c.order % 2 == 1) == odd[:3]
        for docs in (["bb"], ["a", "ccc"], ["missing"]):
            within = snap.positions(docs)
            assert snap.containing_all(terms, within=within) == [i for i in every if snap.clauses[i].doc_id in docs]
            assert snap.containing_all(terms, limit=2, where=lambda c: c.order % 2 == 1, within=within) == \
                [i for i in odd if snap.clauses[i].doc_id in docs][:2]


def test_the_exact_dense_list_is_the_cosine_ranking_and_agrees_with_hnsw_here(retrievers) -> None:
    exact, approximate = retrievers
    snap = exact.snapshot
    embedder = exact.store.embedder
    vectors = embedder.embed_documents([c.text for c in snap.clauses])
    for query in ("数据跨境怎么管理", "融资租赁", "Data export rules"):
        sims = vectors @ embedder.embed_query(query)
        want = [snap.clauses[i].clause_id for i in np.argsort(-sims, kind="stable")[:10]]
        assert [h.clause.clause_id for h in exact.run(query, k=10)] == want
        assert [h.clause.clause_id for h in approximate.run(query, k=10)] == want  # 127 clauses: HNSW is exact too
        hits = exact.run(query, k=5, doc_id="bb")
        in_doc = [i for i, c in enumerate(snap.clauses) if c.doc_id == "bb"]
        assert [h.clause.clause_id for h in hits] == \
            [snap.clauses[in_doc[j]].clause_id for j in np.argsort(-sims[in_doc], kind="stable")[:5]]
        assert all(abs(h.dense - float(sims[snap.by_clause_id[h.clause.clause_id]])) < 1e-5 for h in hits)


def test_the_secondary_and_lexical_lists_are_made_beside_the_primary_query_and_equal_the_serial_ones(retrievers) -> None:
    """While the primary model encodes the query on the calling thread, a helper thread makes the secondary and
    lexical lists; the fused hits are those of the same lists made one after the other."""
    import threading

    exact, _ = retrievers
    threads: dict[str, set[str]] = {"primary": set(), "secondary": set()}

    class Recording(HashEmbedder):
        def __init__(self, role: str) -> None:
            self.role = role

        def embed_query(self, text: str) -> np.ndarray:
            threads[self.role].add(threading.current_thread().name)
            return super().embed_query(text)

    store = exact.store
    store.embedder = Recording("primary")
    try:
        hybrid = HybridRetriever(store, mode="hybrid", candidates=20, secondary=Recording("secondary"))
        for query in ("数据跨境的管理", "外籍人才 Data export", "第7条"):
            hits = hybrid.run(query, k=15)
            # the same lists made serially on this thread, fused the same way
            helpers = hybrid._helpers
            hybrid._helpers = lambda: _Inline()  # type: ignore[method-assign]
            serial = hybrid.run(query, k=15)
            hybrid._helpers = helpers  # type: ignore[method-assign]
            assert [(h.clause.clause_id, h.score, h.dense, h.lexical, h.secondary) for h in hits] == \
                [(h.clause.clause_id, h.score, h.dense, h.lexical, h.secondary) for h in serial]
            assert hits and any(h.lexical for h in hits) and all(h.secondary is not None for h in hits)
        assert threads["primary"] == {threading.current_thread().name}
        assert any(name.startswith("retrieval") for name in threads["secondary"])
        assert threading.current_thread().name in threads["secondary"]  # the inline runs
    finally:
        store.embedder = HashEmbedder()


class _Inline:
    """An executor that runs the task at once on the calling thread."""

    def submit(self, fn, *args):
        from concurrent.futures import Future

        future: Future = Future()
        future.set_result(fn(*args))
        return future
