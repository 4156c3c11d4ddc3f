"""English questions reach Chinese clauses through CC-CEDICT for the words the glossary does not list."""

from __future__ import annotations

import pytest

from corpus.models import Clause, DocumentMeta, ParsedDocument
from retrieval.dictionary import EnglishDictionary, lemmas
from retrieval.retriever import HybridRetriever, lexical_query
from retrieval.store import ClauseStore, make_client

LINES = [
    "# a comment line",
    "再投資 再投资 [zai4 tou2 zi1] /to reinvest/reinvestment/",
    "世界杯 世界杯 [Shi4 jie4 bei1] /World Cup/",
    "世界 世界 [shi4 jie4] /world/CL:個|个[ge4]/",
    "盃 杯 [bei1] /cup/",
    "退稅 退税 [tui4 shui4] /tax rebate or refund/",
    "退款 退款 [tui4 kuan3] /refund/",
    "硫 硫 [liu2] /sulfur (chemistry)/",
    "含硫量 含硫量 [han2 liu2 liang4] /sulphur content/",
    "賠償 赔偿 [pei2 chang2] /to compensate/",
    "劉 刘 [Liu2] /surname Liu/",
    "ABC ABC [A B C] /ABC/",
]


@pytest.fixture(scope="module")
def small() -> EnglishDictionary:
    return EnglishDictionary.parse(iter(LINES))


def test_parse_reads_senses_both_ways(small: EnglishDictionary) -> None:
    assert small.phrases["reinvest"] == {"再投资"}
    assert small.phrases["world cup"] == {"世界杯"}
    assert small.words["refund"] == {"退税", "退款"}
    assert "tax rebate or refund" not in small.phrases  # four words: only its words point to the headword
    assert "sulfur" not in small.words  # one-character headwords are left out
    assert "liu" not in small.words and "abc" not in small.words  # surnames and non-Chinese headwords too


def test_candidates_skip_glossary_stop_and_generic_words(small: EnglishDictionary) -> None:
    # "foreign" and "investors" are glossary words; "can", "the" are stopwords; "good" is generic
    assert small.candidates("Can the good foreign investors reinvest?") == [["再投资"]]
    assert small.candidates("reinvested") == [["再投资"]]  # the ending is undone
    assert small.candidates("refunds") == [["退款", "退税"]]


def test_a_phrase_claims_its_words_only_when_the_corpus_uses_it(small: EnglishDictionary) -> None:
    assert small.candidates("Who won the World Cup?") == [["世界杯"]]
    # the corpus has no 世界杯: the words are looked up one by one (every headword a sense of theirs has;
    # which of them the corpus uses is the snapshot's filter)
    assert small.candidates("Who won the World Cup?", known=lambda h: h != "世界杯") == [["世界", "世界杯"], ["世界杯"]]


def test_lemmas_undo_regular_endings() -> None:
    assert "company" in lemmas("companies")
    assert "license" in lemmas("licensed") and "process" in lemmas("processing")
    assert lemmas("tax") == ["tax"]


def test_the_installed_dictionary_loads_once() -> None:
    d = EnglishDictionary.load()
    assert d is EnglishDictionary.load()
    assert len(d) > 50000
    assert "优惠" in d.phrases["preferential"]


def _doc() -> ParsedDocument:
    meta = DocumentMeta(doc_id="fil", title="外商投资法")
    texts = ["外国投资者在中国境内的再投资，依法享受相应的优惠待遇。",
             "外国投资者可以依法以人民币或者外汇自由汇出利润。",
             "国家对外商投资实行准入前国民待遇加负面清单管理制度。"]
    clauses = [Clause(clause_id=f"fil/第{i + 1}条", doc_id="fil", doc_title=meta.title, label=f"第{i + 1}条",
                      order=i, kind="article", text=t) for i, t in enumerate(texts)]
    return ParsedDocument(meta=meta, clauses=clauses, content_hash=ParsedDocument.hash_text("fil"))


@pytest.fixture(scope="module")
def lexical_only(tmp_path_factory) -> tuple[HybridRetriever, HybridRetriever]:
    from fakes import StubEmbedder

    store = ClauseStore(make_client(tmp_path_factory.mktemp("dict") / "chroma"), StubEmbedder(), prefix="d")
    store.upsert_many([_doc()])
    return HybridRetriever(store, mode="lexical"), HybridRetriever(store, mode="lexical", english_terms=0)


def test_english_terms_keep_only_words_the_corpus_uses(lexical_only) -> None:
    snap = lexical_only[0].snapshot
    terms = snap.english_terms("Is there preferential treatment?")
    assert "优惠" in terms
    assert all(snap.count(t) > 0 for t in terms)
    assert snap.english_terms("Is there preferential treatment?", per_word=0) == []
    assert snap.english_terms("外国投资者有优惠吗？") == []  # a Chinese question is left as it is
    assert lexical_query("再投资", ["x"]) == "再投资"


def test_an_english_word_outside_the_glossary_finds_its_clause(lexical_only) -> None:
    with_dictionary, glossary_only = lexical_only
    hits = with_dictionary.run("Is there preferential treatment?", k=3)
    assert hits and hits[0].clause.clause_id == "fil/第1条"
    # without the dictionary no word of the question reaches a Chinese clause
    assert not glossary_only.run("Is there preferential treatment?", k=3)
