"""Per-query statistics from the lexical index, and the index saved and loaded by corpus generation."""

from __future__ import annotations

from retrieval.lexical import LexicalIndex

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
