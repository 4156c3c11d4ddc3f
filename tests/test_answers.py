"""Extractive answers: quoted, cited, complete for sets, refusing when the corpus is silent."""

from __future__ import annotations

import pytest

from assistant.service import InputError, PolicyAssistant
from assistant.text import normalize

pytestmark = pytest.mark.model


def _cited(answer) -> list[str]:
    return [c.clause_id for c in answer.citations]


def _grounded(answer) -> None:
    """Every citation's quote is really in its clause, and every marker in the text is a citation."""
    labels = {c.label for c in answer.citations}
    for c in answer.citations:
        assert normalize(c.quote) in normalize(c.text)
        assert f"[{c.label}]" in answer.answer
    for line in answer.answer.splitlines()[1:]:
        assert any(f"[{label}]" in line for label in labels), line


def test_number_question(built_assistant: PolicyAssistant):
    a = built_assistant.ask("到2028年服务业增加值要达到多少？")
    assert not a.refused
    assert _cited(a)[0] == "fz-plan/二/2"
    assert "1.06万亿元" in a.answer
    _grounded(a)


def test_department_question(built_assistant: PolicyAssistant):
    a = built_assistant.ask("市服开办设在哪里？")
    assert _cited(a)[0] == "fz-plan/五/（一）"
    assert "市商务局" in a.answer


def test_set_question_lists_every_clause(built_assistant: PolicyAssistant):
    a = built_assistant.ask("哪些任务涉及数据跨境？")
    plan_sentences = [c for c in built_assistant.retriever.snapshot.of_document("fz-plan")
                      if "数据跨境" in c.text and c.kind == "sentence"]
    assert len(plan_sentences) >= 4
    assert {c.clause_id for c in plan_sentences} <= set(_cited(a))
    _grounded(a)
    carbon = built_assistant.ask("方案中和碳相关的举措有哪些？")
    assert len(carbon.citations) >= 3
    assert all("碳" in c.text for c in carbon.citations)


def test_english_question_gets_english_framing(built_assistant: PolicyAssistant):
    a = built_assistant.ask("Can foreign doctors open a clinic?")
    assert a.lang == "en" and not a.refused
    assert a.answer.startswith("The corpus")
    assert "fz-plan/三/（二）/3" in _cited(a)
    assert "「" in a.answer


@pytest.mark.parametrize("question", ["福州对外资银行的最低注册资本要求是多少？", "今天天气怎么样？"])
def test_refuses_what_the_corpus_does_not_cover(built_assistant: PolicyAssistant, question: str):
    a = built_assistant.ask(question)
    assert a.refused
    assert a.citations == []
    assert len(a.nearest) == 3
    assert "没有能回答该问题的条款" in a.answer


def test_followup_uses_history(built_assistant: PolicyAssistant):
    first = built_assistant.ask("外国医生能开诊所吗？")
    follow = built_assistant.ask("那境外医疗人员呢？", [("外国医生能开诊所吗？", first.answer)])
    assert "fz-plan/三/（二）/4" in _cited(follow)[:2]
    assert follow.standalone_question != "那境外医疗人员呢？"


def test_direct_article_reference(built_assistant: PolicyAssistant):
    a = built_assistant.ask("数据安全法第31条是怎么规定的？")
    assert _cited(a) == ["data-security-law/第三十一条"]


def test_an_article_of_a_regulation_named_after_its_law_cites_the_regulation(built_assistant: PolicyAssistant):
    # "外商投资法" is inside "外商投资法实施条例": the article belongs to the regulation, not to the law
    a = built_assistant.ask("外商投资法实施条例第二十七条对政策承诺是怎么界定的？")
    assert _cited(a) == ["foreign-investment-law-implementing-regulation/第二十七条"]
    a = built_assistant.ask("外商投资法第二十七条怎么规定的？")
    assert _cited(a) == ["foreign-investment-law/第二十七条"]


def test_bad_questions(built_assistant: PolicyAssistant):
    with pytest.raises(InputError):
        built_assistant.ask("")
    with pytest.raises(InputError):
        built_assistant.ask("问" * 5000)
    with pytest.raises(InputError):
        built_assistant.ask("数据", history=[("only one element",)])  # type: ignore[list-item]


def test_a_set_question_word_the_clauses_use_without_its_suffix_matches_by_its_stem(built_assistant: PolicyAssistant):
    a = built_assistant.ask("方案里跟租赁业有关的举措有哪些？")
    leasing = [c for c in a.citations if "租赁" in built_assistant.clause(c.clause_id).clause.text]
    assert not a.refused and len(leasing) >= 3, [c.clause_id for c in a.citations]


def test_a_set_question_naming_a_plan_section_lists_that_sections_items(built_assistant: PolicyAssistant):
    a = built_assistant.ask("第五部分保障措施讲了哪几方面？")
    assert _cited(a) == [f"fz-plan/五/（{n}）" for n in "一二三四五六"]
    b = built_assistant.ask("第（十三）项都有哪些具体内容？")
    assert _cited(b) == [f"fz-plan/三/（十三）/{n}" for n in (1, 2, 3)]
    _grounded(b)
