"""Does the corpus cover a question? The evidence score behind refusals.

For a Chinese question the score is the best, over the top hits, of
``0.6 · coverage + 0.4 · dense``, where *coverage* is the share of the question's topic
words (jieba words without question words, weighted by IDF over the clauses; a word the
corpus never contains weighs the most) that occur in the clause, and *dense* is the
clause's embedding cosine with the question. An English question's topic words are the
Chinese glossary terms of its domain words (:mod:`retrieval.glossary`).

A question that asks for a quantity no top clause states, or names a number (two digits or more)
that the corpus never contains, scores 0.

A question whose score is below the threshold of its language is refused. The default
thresholds were calibrated on ``eval/datasets/calibration.jsonl`` (never on the dev set),
see ``eval/calibrate.py`` and the README.
"""

from __future__ import annotations

import re

from assistant.text import content_terms, coverage, detect_lang, idf_weights
from retrieval.glossary import expand_query
from retrieval.retriever import Hit, HybridRetriever

#: Words that name the kind of answer wanted, not its topic.
META_WORDS = frozenset({"任务", "举措", "措施", "方案", "政策", "条款", "内容", "工作", "涉及", "相关", "有关", "方面",
                        "规定", "试点", "中", "里", "和", "tasks", "task", "measures", "measure", "pilot", "plan",
                        "clauses", "related", "mention", "mentions", "involve", "involving"})

#: How many of the top hits must include one that states a quantity, for a quantity question.
QUANTITY_DEPTH = 1

#: Calibrated defaults (README: "Refusal threshold").
DEFAULT_THRESHOLD_ZH = 0.30
DEFAULT_THRESHOLD_EN = 0.30


_ASKS_QUANTITY = re.compile(r"多少|(?<!哪)几[个年天日条项次倍种类家名位]|多长|多久|多大|比例|百分之|how (much|many|long)|what percentage|"
                            r"what share|what proportion|what is the (minimum|maximum|cap)", re.IGNORECASE)
_QUANTITY = re.compile(r"(\d+(\.\d+)?|[零一二两三四五六七八九十百千万]+)\s*(%|％|万亿|亿|万|元|日|天|年|个|月|项|人|小时|倍|类|次|家|种|条|周|工作日|以上|以下|以内)")


def question_terms(question: str, keep_meta: bool = False) -> list[str]:
    """Topic words of a question; an English question's are its Chinese glossary terms."""
    if detect_lang(question) == "en":
        acronyms = re.findall(r"\b[A-Z][A-Z0-9]{1,9}\b", question)  # CPMS, QFLP, DEPA
        return [*expand_query(question).lower().split(), *(a.lower() for a in acronyms)]
    terms = content_terms(question)
    return terms if keep_meta else [t for t in terms if t not in META_WORDS]


def asks_quantity(question: str) -> bool:
    """Does the question ask for a number, an amount, a period or a share?"""
    return bool(_ASKS_QUANTITY.search(question))


def states_quantity(text: str) -> bool:
    """Does the text state a number with a unit (1.06万亿元, 六个月, 75%, 十五日)?"""
    return bool(_QUANTITY.search(text))


class EvidenceScorer:
    """Score how well the retrieved clauses cover a question.

    Args:
        retriever: gives the current snapshot (for IDF).
        threshold_zh, threshold_en: refusal thresholds per language.
        top_n: how many hits are examined.
    """

    def __init__(self, retriever: HybridRetriever, threshold_zh: float | None = None,
                 threshold_en: float | None = None, top_n: int = 5) -> None:
        self.retriever = retriever
        self.threshold_zh = DEFAULT_THRESHOLD_ZH if threshold_zh is None else threshold_zh
        self.threshold_en = DEFAULT_THRESHOLD_EN if threshold_en is None else threshold_en
        self.top_n = top_n
        self._df: dict[str, int] = {}
        self._df_snapshot: int = 0
        self._numbers: set[str] = set()
        self._numbers_snapshot: int = 0

    def threshold(self, lang: str) -> float:
        return self.threshold_en if lang == "en" else self.threshold_zh

    def weights(self, terms: list[str]) -> dict[str, float]:
        snap = self.retriever.snapshot
        if id(snap) != self._df_snapshot:
            self._df, self._df_snapshot = {}, id(snap)
        for t in terms:
            if t not in self._df:
                self._df[t] = sum(1 for c in snap.clauses if t in c.text.lower())
        return idf_weights(terms, self._df, len(snap.clauses))

    @staticmethod
    def coverage(weights: dict[str, float], text: str) -> float:
        return coverage(weights, text)

    def unknown_numbers(self, question: str) -> list[str]:
        """Numbers of two or more digits in the question that no clause or title contains ("144小时")."""
        snap = self.retriever.snapshot
        if id(snap) != self._numbers_snapshot:
            text = "".join(c.text for c in snap.clauses) + "".join(
                d.meta.title + d.meta.title_en + d.meta.wenhao + d.meta.date for d in snap.documents.values())
            self._numbers = set(re.findall(r"\d+(?:\.\d+)?", text))
            self._numbers_snapshot = id(snap)
        return [n for n in re.findall(r"\d{2,}(?:\.\d+)?", question) if n not in self._numbers]

    def features(self, question: str, hits: list[Hit]) -> list[tuple[float, float]]:
        """``(coverage, dense)`` of each of the top hits (meta words such as 任务/举措 do not count)."""
        weights = self.weights(question_terms(question) or question_terms(question, keep_meta=True))
        return [(self.coverage(weights, h.clause.text), h.dense or 0.0) for h in hits[: self.top_n]]

    def score(self, question: str, hits: list[Hit], lang: str) -> float:
        """The evidence score; 0 when the question asks for a quantity no top clause states."""
        feats = self.features(question, hits)
        if not feats:
            return 0.0
        if asks_quantity(question) and not any(states_quantity(h.clause.text) for h in hits[:QUANTITY_DEPTH]):
            return 0.0
        if self.unknown_numbers(question):
            return 0.0
        return max(0.6 * c + 0.4 * d for c, d in feats)
