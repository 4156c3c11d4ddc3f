"""The answerability gate: constraint checks against the evidence, then a calibrated model.

Embeddings measure topic, not answerability (a question about another city, or for an amount
the clause does not state, sits as close to the clause as the answerable question). So the gate
first checks the question's slots (:mod:`assistant.query`) against the top evidence:

* a **document** the question names must be in the corpus; one the corpus only *cites*
  (商资函〔2025〕84号) gets the citing clauses and the statement that its text is absent;
* a **place** must appear in the evidence (福州, 榕, 本市 and its districts are the corpus's own);
* a **year** must appear in the evidence, else the answer carries a caveat naming the years the
  evidence does give;
* an **amount / rate / count / deadline / date / contact / materials** question needs evidence
  that states one.

Then a logistic regression over per-question features (dense and lexical agreement, margins,
coverage of the question's words, unknown words, language…) decides answer or refuse. Its
weights and threshold are data (``assistant/resources/gate-<backend>.json``), fitted on the
training set only by ``python -m eval.fit_gate``.

Usage::

    gate = AnswerabilityGate(snapshot_source=retriever, model=GateModel.load("e5-small+use-m3"))
    verdict = gate.run(query, hits)
    verdict.outcome          # 'answer' | 'caveat' | 'refuse'
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from assistant.logistic import LogisticModel
from assistant.places import Gazetteer
from assistant.query import Query, to_simplified
from assistant.text import coverage, idf_weights
from corpus.models import Clause
from retrieval.dictionary import EnglishDictionary
from retrieval.retriever import Hit, HybridRetriever, IndexSnapshot

RESOURCES = Path(__file__).resolve().parent / "resources"

Outcome = Literal["answer", "caveat", "refuse"]

#: How many of the top hits are the evidence the constraints are checked against.
EVIDENCE_DEPTH = 3

#: Below the best clause, a sentence that states the kind asked must hold this share of the IDF mass of the
#: question's corpus words (one generic word such as 外方 is not enough).
KIND_SENTENCE_MIN_COVERAGE = 0.2

#: An off-task request (writing, jokes, small talk) is refused unless it has topic words (places do not
#: count) and the evidence covers this share of them.
OFF_TASK_MAX_COVERAGE = 0.5
#: A quoted phrase is checked against the corpus when it has at least this many Chinese characters.
QUOTE_MIN_CJK = 4

#: Other names under which the corpus speaks of a place (港澳台 covers 香港).
_PLACE_ALIASES = {  # the one-character abbreviations only where they stand in a run of them (闽粤港, 港澳)
    "香港特别行政区": ("香港", "港澳", "港澳台", "台港澳", "粤港", "闽港", "榕港", "港数", "闽粤港"),
    "澳门特别行政区": ("澳门", "港澳", "港澳台", "台港澳", "粤港澳", "闽澳", "榕澳"),
    "台湾省": ("台湾", "港澳台", "台港澳", "两岸", "台胞", "台商", "闽台", "榕台", "台资"),
    "广东省": ("广东", "闽粤", "粤港", "粤港澳"),
    "海南省": ("海南",),
}

_NUM = r"(\d+(?:\.\d+)?|[零一二两三四五六七八九十百千万]+)"
_STATES: dict[str, re.Pattern[str]] = {
    "amount": re.compile(_NUM + r"\s*(万亿|亿|万)?\s*(元|美元|人民币)|" + _NUM + r"\s*(万亿|亿)"),
    "rate": re.compile(r"\d+(\.\d+)?\s*(%|％)|百分之[零一二两三四五六七八九十百]+|" + _NUM + r"\s*倍|比重|比例"),
    "count": re.compile(_NUM + r"\s*(个|家|项|类|名|人|次|种|条|批|所|款|大|日|天|小时|年|月)"),
    "quantity": re.compile(r"\d+(\.\d+)?\s*(%|％)|百分之|" + _NUM + r"\s*(万亿|亿|万|元|美元|日|天|年|个|月|项|人|小时|倍|类|"
                           r"次|种|条|周|工作日|家|名|吨|平方米|公里)"),
    "procedure": re.compile(r"申请|提出|提交|报送|审批|批准|许可|备案|登记|核准|办理|程序|手续|审查|决定"),
    "deadline": re.compile(_NUM + r"\s*(个)?\s*(日|天|工作日|月|年|小时|周)(内|以内|之内|前|后|为限)?|期限|之日起|届满|有效期|"
                           r"每(年|半年|季度|月|周|日)|定期"),
    "date": re.compile(r"(19|20)\d{2}\s*年|年底|年末|月底|[一二三四五六七八九十]+月|\d+月|之日起施行|起施行"),
    "contact": re.compile(r"\d{3,4}-\d{7,8}|\b1[3-9]\d{9}\b|@[a-z0-9.-]+\.[a-z]{2,}|https?://|www\.|\d+号(楼|院)|邮编"),
    "materials": re.compile(r"(提交|提供|报送|附送|出具|持有?)[^。；]{0,30}(材料|文件|证明|申请书|证件|护照|报告|资料)|"
                            r"(材料|文件|申请书)[^。；]{0,6}(包括|如下)"),
}
#: Answer kinds whose evidence must state what is asked (see :func:`states`).
KINDS_WITH_EVIDENCE = frozenset(_STATES)
_KIND_ZH = {"amount": "金额或数量", "rate": "比例", "count": "数量", "deadline": "期限", "date": "日期", "contact": "联系方式",
            "materials": "申请材料", "quantity": "数字", "procedure": "办理程序"}
_KIND_EN = {"amount": "amount", "rate": "rate or share", "count": "number", "deadline": "time limit", "date": "date",
            "contact": "contact details", "materials": "list of materials", "quantity": "figure", "procedure": "procedure"}
_SENTENCE = re.compile(r"[^。；;！？!?\n]+[。；;！？!?]?")
_ASKS_CITATION = re.compile(r"文号|发文字号|发文号|document number|reference number", re.IGNORECASE)


class Verdict(BaseModel):
    """What the gate decided, why, and the numbers it decided on."""

    outcome: Outcome
    reasons: list[str] = Field(default_factory=list)
    probability: float = 1.0
    features: dict[str, float] = Field(default_factory=dict)
    #: For a caveat: what the corpus lacks, in the question's language.
    caveat: str | None = None
    #: Clauses that cite a document the corpus does not hold (a cited-only document).
    citing: list[Clause] = Field(default_factory=list)
    #: Hard constraint violated (decided before the model).
    constraint: str | None = None

    @property
    def answers(self) -> bool:
        return self.outcome == "answer"


def states(kind: str, text: str) -> bool:
    """Does ``text`` state what a question of this answer kind asks for?

    >>> states("amount", "服务业增加值达到1.06万亿元"), states("contact", "设在市商务局")
    (True, False)
    """
    pattern = _STATES.get(kind)
    return True if pattern is None else bool(pattern.search(text))


class GateModel(LogisticModel):
    """A fitted logistic regression: standardised features → P(answerable); data, not code."""

    backend: str
    fitted_on: str = ""
    cv: dict[str, float] = Field(default_factory=dict)

    @classmethod
    def path_for(cls, backend: str) -> Path:
        return RESOURCES / f"gate-{re.sub(r'[^a-zA-Z0-9_.+-]+', '-', backend)}.json"

    @classmethod
    def load(cls, backend: str) -> GateModel | None:
        """The model fitted for ``backend``, else the one of its first embedding model, else None."""
        for name in (backend, backend.split("+")[0]):
            path = cls.path_for(name)
            if path.exists():
                return cls.model_validate(json.loads(path.read_text(encoding="utf-8")))
        return None

    def save(self) -> Path:
        path = self.path_for(self.backend)
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return path


class AnswerabilityGate:
    """Decide whether the retrieved clauses answer the question.

    Args:
        retriever: gives the current snapshot (documents, clause texts, term statistics).
        model: the fitted model; ``None`` answers whenever no constraint fails (use only to fit one).
        threshold: overrides the model's threshold (``GATE_THRESHOLD``).
    """

    def __init__(self, retriever: HybridRetriever, model: GateModel | None = None,
                 threshold: float | None = None) -> None:
        self.retriever = retriever
        self.model = model
        self.threshold = threshold if threshold is not None else (model.threshold if model else 0.5)
        self.gazetteer = Gazetteer.load()
        self._text = ""
        self._text_snapshot = 0

    # ------------------------------------------------------------ statistics
    def weights(self, terms: list[str]) -> dict[str, float]:
        """IDF weights of ``terms`` over the current clauses (document frequencies: :meth:`IndexSnapshot.count`,
        cached per snapshot)."""
        snap = self.retriever.snapshot
        return idf_weights(terms, {t: snap.count(t) for t in terms}, len(snap.clauses))

    def document_frequency(self, term: str) -> int:
        """How many clauses contain ``term``."""
        return self.retriever.snapshot.count(term)

    # ------------------------------------------------------------------ run
    def run(self, query: Query, hits: list[Hit]) -> Verdict:
        """The verdict for ``query`` given its ranked ``hits``."""
        if not hits:
            return Verdict(outcome="refuse", reasons=["no clause retrieved"], probability=0.0, constraint="empty")
        return self._decide(query, hits)

    def _decide(self, query: Query, hits: list[Hit]) -> Verdict:
        snap = self.retriever.snapshot
        evidence = hits[:EVIDENCE_DEPTH]
        feats = self.features(query, hits)
        constraint = self._documents(query, snap)
        if constraint is not None:
            constraint.features = feats
            return constraint
        reasons: list[str] = []
        if query.about_assistant or (query.off_task and (not query.topic_terms
                                                         or feats["cov_best"] < OFF_TASK_MAX_COVERAGE)):
            return _refusal(query, feats, "off-task", "a request that is not a question about the corpus",
                            "I answer questions about the Fuzhou pilot plan and the laws in the corpus, with the "
                            "clauses that say so; this request is not one of them.",
                            "本助手只回答关于福州试点方案及语料中法律法规的问题，并引用条款作答；这个请求不在范围内。")
        for place in query.foreign_places:
            if not any(self.mentions_place(place, h.clause, snap) for h in evidence):
                return _refusal(query, feats, "place", f"the evidence says nothing about {place}",
                                f"The corpus says nothing specific about {place}.", f"语料中没有关于{place}的具体规定。")
        quoted = self._unknown_quotes(query.text, snap)
        if quoted:
            return _refusal(query, feats, "quote-claim", f"the question quotes “{quoted[0]}”, which no clause contains",
                            f"The corpus does not contain the phrase “{quoted[0]}”.", f"语料中没有“{quoted[0]}”的说法。")
        claimed = _unsupported_quantities(query.text + " " + query.core, evidence)
        if claimed:
            return _refusal(query, feats, "quantity-claim", f"the question states {claimed[0]}, which no top clause states",
                            f"The corpus does not mention {claimed[0]}.", f"语料中没有提到“{claimed[0]}”。")
        for kind in query.kinds or [query.kind]:
            if kind in KINDS_WITH_EVIDENCE and not self._kind_stated(query, kind, evidence):
                return _refusal(query, feats, f"kind:{kind}", f"no top clause states the {kind} asked for",
                                f"The closest clauses state no {_KIND_EN[kind]}.", f"最接近的条款没有写明所问的{_KIND_ZH[kind]}。")
        if self._off_corpus(query, feats):
            return _refusal(query, feats, "off-corpus", "the corpus never uses any of the question's topic words")
        prob = self.model.probability(feats) if self.model else 1.0
        if prob < self.threshold:
            return Verdict(outcome="refuse", features=feats, probability=prob,
                           reasons=[f"P(answerable)={prob:.2f} < {self.threshold:.2f}"])
        missing_years = self._missing_years(query, evidence, snap)
        if missing_years:
            given = sorted({int(y) for h in evidence for y in re.findall(r"(?<!\d)((?:19|20)\d{2})(?=\s*年)", h.clause.text)})
            asked = "、".join(str(y) for y in missing_years)
            if query.lang == "en":
                note = (f"The corpus gives no figure for {asked}"
                        + (f"; the nearest clauses speak of {', '.join(map(str, given))}." if given else "."))
            else:
                note = f"语料中没有关于{asked}年的表述" + (f"；最接近的条款说的是{'、'.join(map(str, given))}年。" if given else "。")
            return Verdict(outcome="caveat", features=feats, probability=prob, caveat=note, constraint="year",
                           reasons=[f"the evidence names no year {asked}"])
        reasons.append(f"P(answerable)={prob:.2f} ≥ {self.threshold:.2f}")
        return Verdict(outcome="answer", features=feats, probability=prob, reasons=reasons)

    # ----------------------------------------------------------- constraints
    def _unknown_quotes(self, question: str, snap: IndexSnapshot) -> list[str]:
        """Chinese phrases the question puts in quotation marks (“两免三减半”) that no clause and no document
        name contains, even with one character different (a typo): the question's premise is not in the corpus."""
        out = []
        for m in _QUOTED.finditer(question):
            phrase = to_simplified(unicodedata.normalize("NFKC", m.group(1))).strip()
            cjk = sum(1 for ch in phrase if "\u3400" <= ch <= "\u9fff")
            if cjk < QUOTE_MIN_CJK or cjk < 0.6 * len(phrase):
                continue
            if not _contains_near(self._corpus_text(snap), phrase.lower()):
                out.append(phrase)
        return out

    def _corpus_text(self, snap: IndexSnapshot) -> str:
        """All clause texts and document names of ``snap``, lowered (built once per snapshot)."""
        if self._text_snapshot != id(snap):
            names = [n for d in snap.documents.values()
                     for n in (d.meta.title, d.meta.short_title, d.meta.title_en, *d.meta.aliases) if n]
            self._text = "\n".join([*(c.text for c in snap.clauses), *names]).lower()
            self._text_snapshot = id(snap)
        return self._text

    def _off_corpus(self, query: Query, feats: dict[str, float]) -> bool:
        """A Chinese question none of whose topic words the corpus uses: every topic word unknown, or every
        word of two or more characters unknown (single characters such as 做/肉/加 say little about a topic:
        "怎么做红烧肉", "1加1等于几"). An English question is off the corpus when none of its words has a Chinese
        rendering the corpus uses (:meth:`_english_off_corpus`). Follow-ups and questions naming a document are
        left to the other checks."""
        if query.lang == "en":
            return not (query.is_followup or query.documents or query.wenhao) and self._english_off_corpus(query)
        if query.lang != "zh" or query.is_followup or not query.topic_terms:
            return False
        if feats["cov_best"] == 0.0 and feats["unknown_mass"] >= 1.0:
            return True
        if query.documents or query.wenhao:
            return False
        words = [t for t in query.topic_terms if len(t) >= 2]
        return bool(words) and all(self.document_frequency(t) == 0 for t in words)

    def _english_off_corpus(self, query: Query) -> bool:
        """An English question (no Chinese in it) with words the glossary or CC-CEDICT translates, none of whose
        renderings any clause contains, and no acronym a clause uses: "Who won the 2022 World Cup?" (世界杯),
        "How tall is Mount Everest?". A sense of several words counts as one word (world cup → 世界杯, not 世界)."""
        if _CJK_CHAR.search(query.text):
            return False
        snap = self.retriever.snapshot
        if any(snap.count(a.lower()) > 0 for a in re.findall(r"\b[A-Z][A-Z0-9]{1,9}\b", query.core)):
            return False
        units = EnglishDictionary.load().renderings(query.core)
        return bool(units) and not any(snap.count(h) > 0 for u in units for h in u)

    def _documents(self, query: Query, snap: IndexSnapshot) -> Verdict | None:
        """Named documents and 文号: held, only cited, or absent.

        A question about the citation itself (its 文号, who issued it) is answered by the citing clause.
        """
        if _ASKS_CITATION.search(query.standalone):
            return None
        for number in query.wenhao:
            short = re.fullmatch(r"(\d+)号文", number)
            if short:  # "84号文": the 文号 the corpus writes in full, if any
                pattern = re.compile(rf"[\u4e00-\u9fff]{{1,6}}〔\d{{4}}〕{short.group(1)}号")
                held = [d.meta.wenhao for d in snap.documents.values() if pattern.search(d.meta.wenhao or "")]
                if held:
                    continue
                cited = next((m.group(0) for c in snap.clauses for m in [pattern.search(c.text)] if m), None)
                if cited is None:
                    continue  # not a document number the corpus knows: leave it to the model
                number = cited
            if any(number == d.meta.wenhao for d in snap.documents.values()):
                continue
            return self._cited_or_absent(number, query, snap)
        for name in query.documents:
            if self._holds(name, snap):
                continue
            return self._cited_or_absent(name, query, snap)
        for name in query.contents_of:  # the items of a list the corpus may only cite ("…目录里有哪些岗位")
            if self._holds(name, snap, strict=True):
                continue
            return self._cited_or_absent(name, query, snap, shortest=5)
        return None

    def _cited_or_absent(self, name: str, query: Query, snap: IndexSnapshot, shortest: int = 0) -> Verdict:
        """``shortest``: also look for the name's tails down to this length (全国版跨境服务贸易负面清单 is
        cited as 跨境服务贸易负面清单); 0 looks for the whole name only."""
        key = re.sub(r"\s+", "", name)
        citing: list[Clause] = []
        for start in range(0, max(1, len(key) - shortest + 1) if shortest else 1):
            tail = key[start:]
            citing = [snap.clauses[i] for i in snap.containing(tail, ignore_space=True)[:5]]
            if citing:
                name = tail if start else name
                break
        if citing:
            note = (f"The text of {name} is not in the corpus; the corpus only cites it, in the clauses below."
                    if query.lang == "en" else f"语料中没有{name}的正文，只有下列条款引用了它。")
            return Verdict(outcome="caveat", caveat=note, citing=citing, constraint="cited-only", probability=0.0,
                           reasons=[f"{name} is cited by {len(citing)} clause(s) but not held"])
        note = (f"The corpus does not contain {name}." if query.lang == "en" else f"语料中没有《{name}》。"
                if not name.startswith("《") else f"语料中没有{name}。")
        return Verdict(outcome="refuse", caveat=note, constraint="document-absent", probability=0.0,
                       reasons=[f"{name} is not in the corpus"])

    @staticmethod
    def _holds(name: str, snap: IndexSnapshot, strict: bool = False) -> bool:
        """Does the corpus hold the document ``name``? ``strict``: only a title or alias that is the name or
        contains it (a list named after a held law, 海南自贸港…负面清单, is not that law)."""
        key = _doc_key(name)
        if len(key) < 2:
            return True
        for d in snap.documents.values():
            names = [d.meta.title, d.meta.short_title, d.meta.title_en, *d.meta.aliases]
            for n in names:
                k = _doc_key(n)
                if strict:
                    if k and key in k:
                        return True
                    continue
                # A short alias (方案) inside a longer title (关于…工作方案) does not make it held.
                if k and (k == key or (len(k) >= 4 and k in key) or (len(key) >= 3 and key in k)):
                    return True
        return False

    def _kind_stated(self, query: Query, kind: str, evidence: list[Hit]) -> bool:
        """Does an evidence clause state what the question's answer kind asks for?

        The best clause may state it anywhere: it is the closest match to the whole question ("多久必须修好"
        is answered by "…48小时内修复"). In the other evidence of a standalone Chinese question the statement
        must be *about* the question: the number, period or procedure word and one of the question's corpus
        words in one sentence (see ``KIND_SENTENCE_MIN_COVERAGE``; a clause on the topic that states a time limit for something else does not
        answer "要几天"). English and follow-up questions, whose words are translated or elided, and date
        questions (a plan states its year once per paragraph: "到2028年，…") need it anywhere in a clause.
        """
        if (query.lang != "zh" or query.is_followup or kind == "date"
                or states(kind, evidence[0].clause.text)):
            return any(states(kind, h.clause.text) for h in evidence)
        terms = query.topic_terms or query.terms
        weights = self.weights(terms)
        known = {t: w for t, w in weights.items() if self.document_frequency(t) > 0 and not t.isdigit()}
        if not known:
            return any(states(kind, h.clause.text) for h in evidence)
        return any(states(kind, sentence) and coverage(known, sentence) >= KIND_SENTENCE_MIN_COVERAGE
                   for h in evidence for sentence in _SENTENCE.findall(h.clause.text.lower()))

    def mentions_place(self, place: str, clause: Clause, snap: IndexSnapshot) -> bool:
        """Does the clause (its text, path or document title) name ``place`` or one of its aliases?"""
        doc = snap.documents.get(clause.doc_id)
        haystack = clause.text + (doc.meta.title if doc else "") + clause.path_text
        names = {place, *self.gazetteer.surface_forms(place), *_PLACE_ALIASES.get(place, ())}
        return any(n and n in haystack for n in names)

    @staticmethod
    def _missing_years(query: Query, evidence: list[Hit], snap: IndexSnapshot) -> list[int]:
        """Years the question names that the evidence never names as a year (a 文号's 〔2025〕 does not count)."""
        if not query.years:
            return []
        out = []
        for year in query.years:
            y = str(year)
            if any(y in n for n in query.wenhao):
                continue
            # "2028年" is a year wherever it stands, also in brackets ("（2028年）"); a bare number only outside
            # brackets (a 文号's 〔2025〕 is not a statement about 2025)
            as_year = re.compile(rf"(?<!\d){y}(?=\s*年)|(?<![〔\[［(（\d]){y}(?![〕\]］)）\d])")
            found = any(as_year.search(h.clause.text) or y in (snap.documents[h.clause.doc_id].meta.date
                                                                if h.clause.doc_id in snap.documents else "")
                        for h in evidence)
            if not found:
                out.append(year)
        return out

    # -------------------------------------------------------------- features
    def features(self, query: Query, hits: list[Hit]) -> dict[str, float]:
        """The numbers the calibrated model reads (see :class:`GateModel`)."""
        terms = query.topic_terms or query.terms
        weights = self.weights(terms)
        top = hits[:5]
        covs = [coverage(weights, h.clause.text) for h in top]
        dense = [h.dense for h in top if h.dense is not None]
        dense_sorted = sorted(dense, reverse=True)
        lex = [h.lexical or 0.0 for h in top]
        total = sum(weights.values()) or 1.0
        snap = self.retriever.snapshot
        unknown = sum(w for t, w in weights.items() if snap.count(t) == 0) / total if weights else 0.0
        evidence_text = "".join(h.clause.text.lower() for h in hits[:EVIDENCE_DEPTH])
        missing_known = sum(w for t, w in weights.items()
                            if snap.count(t) > 0 and t not in evidence_text) / total if weights else 0.0
        dense_rank1 = _rank_of(hits, hits[0], "dense")
        lex_rank1 = _rank_of(hits, hits[0], "lexical")
        en = 1.0 if query.lang == "en" else 0.0
        d1 = dense_sorted[0] if dense_sorted else 0.0
        second = sorted((h.secondary for h in top if h.secondary is not None), reverse=True)
        return {
            "dense1": d1,
            "dense_top1": hits[0].dense or 0.0,
            "dense_margin": (dense_sorted[0] - dense_sorted[1]) if len(dense_sorted) > 1 else 0.0,
            "cov_best": max(covs) if covs else 0.0,
            "cov_top1": covs[0] if covs else 0.0,
            "cov_mean3": sum(covs[:3]) / max(1, len(covs[:3])),
            "unknown_mass": unknown,
            "missing_known": missing_known,
            "lex_top1": math.log1p(lex[0]) if lex else 0.0,
            "lex_share": (lex[0] / (sum(lex) or 1.0)) if lex else 0.0,
            "agree_dense": 1.0 if dense_rank1 <= 3 else 0.0,
            "agree_lexical": 1.0 if lex_rank1 <= 3 else 0.0,
            "fused_margin": (hits[0].score - hits[1].score) / (hits[0].score or 1.0) if len(hits) > 1 else 1.0,
            "n_terms": math.log1p(len(terms)),
            "lang_en": en,
            "dense1_en": d1 * en,
            "cov_best_en": (max(covs) if covs else 0.0) * en,
            "second1": second[0] if second else 0.0,
            "second_margin": (second[0] - second[1]) if len(second) > 1 else 0.0,
            "second_top1": hits[0].secondary or 0.0,
            "followup": 1.0 if query.is_followup else 0.0,
            "kind_specific": 1.0 if query.kind in KINDS_WITH_EVIDENCE else 0.0,
            "names_document": 1.0 if query.documents or query.wenhao else 0.0,
        }


_CJK_CHAR = re.compile(r"[\u3400-\u9fff]")
_CLAIM = re.compile(r"(\d+(?:\.\d+)?)\s*(%|％|万亿|亿元|亿|万元|万|元|小时|天|日|个工作日|工作日|个月|倍|年)|"
                    r"(\d+(?:\.\d+)?)[\s-]*(percent|hours?|days?|months?|yuan|million|billion)\b", re.IGNORECASE)


def _refusal(query: Query, feats: dict[str, float], constraint: str, reason: str, note_en: str | None = None,
             note_zh: str | None = None) -> Verdict:
    """A refusal by a constraint check: what failed (``reason``) and, when there is one, the note the user sees."""
    note = note_en if query.lang == "en" else note_zh
    return Verdict(outcome="refuse", features=feats, probability=0.0, constraint=constraint, caveat=note,
                   reasons=[reason])


def _unsupported_quantities(question: str, evidence: list[Hit]) -> list[str]:
    """Quantities the question states (144小时, 50%, 30 days) that no evidence clause contains as a number.

    A year (2025年) is a slot of its own, checked with a caveat; it is skipped here.

    >>> _unsupported_quantities("方案说外籍人员可以144小时免签？", [])
    ['144小时']
    """
    text = " ".join(h.clause.text for h in evidence)
    numbers = set(re.findall(r"\d+(?:\.\d+)?", unicodedata.normalize("NFKC", text)))
    out = []
    for m in _CLAIM.finditer(unicodedata.normalize("NFKC", question)):
        number, unit = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        if unit == "年" and len(number) == 4:
            continue
        if number not in numbers:
            out.append(m.group(0).strip())
    return out


_QUOTED = re.compile(r"[“\"「『]([^”\"」』“「『]{2,40})[”\"」』]")


def _contains_near(text: str, phrase: str) -> bool:
    """Whether ``text`` contains ``phrase`` exactly or with one character substituted.

    >>> _contains_near("推动两国双园建设", "两国双园"), _contains_near("推动两国双园建设", "两国双圆")
    (True, True)
    >>> _contains_near("推动两国双园建设", "两免三减半")
    False
    """
    if phrase in text:
        return True
    pattern = "|".join(re.escape(phrase[:i]) + "." + re.escape(phrase[i + 1:]) for i in range(len(phrase)))
    return re.search(pattern, text) is not None


def _doc_key(name: str) -> str:
    name = re.sub(r"[《》\s]", "", name).replace("中华人民共和国", "").lower()
    return re.sub(r"\(.*?\)|（.*?）", "", name)


def _rank_of(hits: list[Hit], hit: Hit, field: str) -> int:
    value = getattr(hit, field)
    if value is None:
        return 99
    return 1 + sum(1 for h in hits if (getattr(h, field) or -1e9) > value)

