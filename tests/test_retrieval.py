"""Hybrid retrieval, filters, fusion, the LangChain adapter (real model, real Chroma)."""

from __future__ import annotations

import pytest

from assistant.service import InputError, NotFoundError, PolicyAssistant
from retrieval.fusion import reciprocal_rank_fusion
from retrieval.langchain_adapter import ClauseRetriever
from retrieval.lexical import LexicalIndex, tokenize


def test_rrf_and_lexical_units():
    fused = reciprocal_rank_fusion([["a", "b"], ["b", "c"]], k=60)
    assert [x for x, _ in fused] == ["b", "a", "c"]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)
    assert tokenize("数据跨境 DEPA") == ["数", "据", "跨", "境", "数据", "据跨", "跨境", "depa"]
    index = LexicalIndex(["支持境外医疗专业人员短期执业。", "放宽增值电信业务外资准入。"])
    assert index.run("How are you") == []  # only positive scores count
    assert index.run("医疗人员")[0][0] == 0


@pytest.mark.model
@pytest.mark.parametrize("query,expected", [
    ("外国医生能开诊所吗？", "fz-plan/三/（二）/3"),
    ("Can foreign doctors open a clinic?", "fz-plan/三/（二）/3"),
    ("数据出境安全评估", "network-data-security-regulation/第三十八条"),
])
def test_search_finds_the_clause(built_assistant: PolicyAssistant, query: str, expected: str):
    hits = built_assistant.search(query, k=5)
    assert expected in [h.clause.clause_id for h in hits]
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))


@pytest.mark.model
def test_filters_and_bad_input(built_assistant: PolicyAssistant):
    hits = built_assistant.search("数据跨境", k=5, doc_id="fz-plan")
    assert hits and all(h.clause.doc_id == "fz-plan" for h in hits)
    hits = built_assistant.search("数据跨境", k=5, section="fz-plan/三/（十三）")
    assert hits and all(h.clause.clause_id.startswith("fz-plan/三/（十三）") for h in hits)
    with pytest.raises(InputError):
        built_assistant.search("  ")
    with pytest.raises(InputError):
        built_assistant.search("x" * 5000)
    with pytest.raises(NotFoundError):
        built_assistant.search("数据", doc_id="no-such-doc")


@pytest.mark.model
def test_english_question_uses_dense_list_only(built_assistant: PolicyAssistant):
    hits = built_assistant.search("Can foreign doctors open a clinic?", k=5)
    assert all(h.dense is not None for h in hits)


@pytest.mark.model
def test_langchain_adapter(built_assistant: PolicyAssistant):
    lc = ClauseRetriever(retriever=built_assistant.retriever, k=3)
    docs = lc.invoke("市服开办设在哪里？")
    assert len(docs) == 3
    assert {"clause_id", "doc_id", "doc_title", "path", "label"} <= set(docs[0].metadata)
    assert docs[0].page_content == built_assistant.clause(docs[0].metadata["clause_id"]).clause.text
