"""The lexical index is built from token ids a text at a time (issue 10, ingest peak RSS): the same BM25 matrix,
the same scores and the same hits as bm25s's own ``index`` of token lists, in a fraction of the memory."""

from __future__ import annotations

import random
import re
import tracemalloc

import bm25s
import numpy as np
import pytest

from corpus.loaders import DocumentLoader
from corpus.manifest import shipped_documents
from corpus.parsing import ClauseParser
from retrieval.lexical import LexicalIndex, tokenize

QUERIES = ["数据出境安全评估", "外商投资医疗机构", "跨境电商综合试验区", "个人信息保护", "DEPA data rules",
           "1.06万亿", "增值电信业务外资准入", "知识产权 保护", "无关的词语组合xyz"]


@pytest.fixture(scope="module")
def texts() -> list[str]:
    """The shipped clauses, recombined clauses (more repeated phrasing) and a few odd texts."""
    loader, parser = DocumentLoader(), ClauseParser()
    shipped = [c.text for doc in shipped_documents()
               for c in parser.run(doc.meta, loader.run(doc.path)[0]).clauses]
    pieces = [p for t in shipped for p in re.split(r"(?<=[。；])", t) if len(p) > 4]
    rng = random.Random(5)
    mixed = ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 4))) for _ in range(1500)]
    odd = ["", "   ", "DEPA data rules, 1000 items.", "数", "。；，", "数据数据数据 data data"]
    return shipped + mixed + odd


@pytest.fixture(scope="module")
def ref(texts: list[str]) -> bm25s.BM25:
    """What the index was before: bm25s's ``index`` of every text's token list."""
    ref = bm25s.BM25(k1=1.2, b=0.75)
    ref.index([tokenize(t) or ["\u2400"] for t in texts], show_progress=False)
    return ref


def test_same_matrix_as_bm25s_index_of_token_lists(texts: list[str], ref: bm25s.BM25) -> None:
    index = LexicalIndex(iter(texts))  # any iterable, read once
    assert index.size == len(texts)
    assert set(index._vocab) == set(ref.vocab_dict) and "" in index._vocab
    mine, theirs = index._bm25.scores, ref.scores
    assert mine["num_docs"] == theirs["num_docs"] == len(texts)
    for key in ("data", "indices", "indptr"):
        assert mine[key].dtype == theirs[key].dtype, key
        assert len(mine[key]) == len(theirs[key]), key
    for token, j in ref.vocab_dict.items():  # ids differ (bm25s numbers a set's order): compare by token
        if token == "":
            continue
        i = index._vocab[token]
        a, b = slice(mine["indptr"][i], mine["indptr"][i + 1]), slice(theirs["indptr"][j], theirs["indptr"][j + 1])
        assert np.array_equal(mine["indices"][a], theirs["indices"][b]), token
        assert np.array_equal(mine["data"][a], theirs["data"][b]), token
    assert index._vocab[""] == len(index._vocab) - 1  # the empty token last, as bm25s adds it


def test_same_scores_and_hits(texts: list[str], ref: bm25s.BM25, tmp_path) -> None:
    index = LexicalIndex(texts)
    index.save(tmp_path, "k")
    loaded = LexicalIndex.load(tmp_path, "k", len(texts))
    assert loaded is not None
    for query in QUERIES:
        ids = [ref.vocab_dict[t] for t in tokenize(query) if t in ref.vocab_dict]
        expected = np.asarray(ref.get_scores(ids), dtype=np.float32) if ids else np.zeros(len(texts), np.float32)
        assert np.array_equal(index.scores(query), expected), query
        assert np.array_equal(loaded.scores(query), expected), query
        positive = int(np.count_nonzero(expected > 0))
        top = np.argsort(-expected, kind="stable")[:min(20, positive)]
        assert index.run(query, k=20) == [(int(i), float(expected[i])) for i in top], query
        assert loaded.run(query, k=20) == index.run(query, k=20)
    assert LexicalIndex(iter([])).size == 0 and LexicalIndex([]).run("数据") == []


def test_build_keeps_a_few_bytes_per_token(texts: list[str]) -> None:
    """Peak Python/numpy allocation of a build: the token ids and the result, not a list of token strings
    (~85 bytes per token before, ~2.4 GB at 100k clauses)."""
    many = texts
    tokens = sum(len(tokenize(t)) or 1 for t in many)
    tracemalloc.start()
    try:
        index = LexicalIndex(many)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert index.size == len(many)
    assert peak / tokens < 20, f"{peak / tokens:.1f} bytes per token"


def test_top_order_and_stable_order_match_a_full_stable_sort_with_ties() -> None:
    """The partial sorts the retriever uses give exactly the full sort's order (ties by position), also when a
    filter makes the caller read past the sorted head."""
    from retrieval.lexical import stable_order, top_order

    rng = np.random.default_rng(3)
    for n, k in ((1, 1), (10, 3), (1000, 30), (5000, 7), (400, 400)):
        scores = rng.integers(0, 20, size=n).astype(np.float32) / 7  # many ties
        full = np.argsort(-scores, kind="stable")
        assert top_order(scores, k).tolist() == full[:k].tolist()
        assert list(stable_order(scores, k)) == full.tolist()
    assert top_order(np.zeros(0, dtype=np.float32), 5).tolist() == []


def test_intersect_sorted_matches_numpy() -> None:
    from retrieval.lexical import intersect_sorted

    rng = np.random.default_rng(5)
    for na, nb in ((0, 5), (5, 0), (1, 1), (30, 5000), (5000, 30), (4000, 4000)):
        a = np.unique(rng.integers(0, 9000, size=na)).astype(np.int64)
        b = np.unique(rng.integers(0, 9000, size=nb)).astype(np.int64)
        assert intersect_sorted(a, b).tolist() == np.intersect1d(a, b, assume_unique=True).tolist()
