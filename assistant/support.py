"""The support judge: does a clause support an answer sentence?

Used by the generative mode to verify citations and by the eval suite for citation
precision/recall (ALCE-style). The score is the larger of

* **containment**: share of the sentence's character bigrams (citation markers removed,
  NFKC, quotes unified) that occur in the clause, and
* **semantic similarity**: the embedding cosine between sentence and clause, rescaled so that
  ``cos_floor`` maps to 0 and ``cos_ceiling`` to 1 (only when an embedder is given; this is
  what lets an English sentence be judged against a Chinese clause).

A sentence that states an Arabic number the clause does not contain scores 0 against that
clause (a changed number is the judge's most common error otherwise). A sentence is supported
when the score reaches ``threshold``. The default threshold was
calibrated on ``eval/datasets/support_labels.jsonl`` (see the README for its agreement).

Usage::

    judge = SupportJudge(embedder)
    judge.run("外籍医生可以在福州开诊所。", ["支持符合条件的外籍及港澳台医生在榕设立诊所。"])
"""

from __future__ import annotations

import re

import numpy as np
from pydantic import BaseModel

from assistant.text import normalize, strip_citations
from retrieval.embeddings import Embedder

DEFAULT_THRESHOLD = 0.725  # calibrated on eval/datasets/support_labels.jsonl: python -m eval.calibrate --only support


class SupportVerdict(BaseModel):
    supported: bool
    score: float
    best: int  # index of the best-supporting clause, -1 when there is none
    scores: list[float]


_LIST_MARKER = re.compile(r"^\s*(?:\d{1,2}[.、)）]|[（(]\d{1,2}[)）])\s*")


def _numbers(text: str) -> set[str]:
    """Arabic numbers of a text (NFKC; ``1.06``, ``75``, ``2028``)."""
    return set(re.findall(r"\d+(?:\.\d+)?", normalize(text)))


def _bigrams(text: str) -> set[str]:
    text = normalize(strip_citations(text)).lower()
    text = re.sub(r"[^\w\u3400-\u9fff.%]", "", text)
    return {text[i:i + 2] for i in range(len(text) - 1)}


class SupportJudge:
    """Judge sentence–clause support by containment and embedding similarity.

    Args:
        embedder: optional; without it only containment counts.
        threshold: the score a sentence needs to count as supported.
        cos_floor, cos_ceiling: the cosine range rescaled to 0..1.
    """

    def __init__(self, embedder: Embedder | None = None, threshold: float = DEFAULT_THRESHOLD,
                 cos_floor: float = 0.35, cos_ceiling: float = 0.75) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        self.embedder = embedder
        self.threshold = threshold
        self.cos_floor = cos_floor
        self.cos_ceiling = cos_ceiling

    def containment(self, sentence: str, clause: str) -> float:
        grams = _bigrams(sentence)
        if not grams:
            return 0.0
        return len(grams & _bigrams(clause)) / len(grams)

    def scores(self, sentence: str, clauses: list[str]) -> list[float]:
        out = [self.containment(sentence, c) for c in clauses]
        if self.embedder is not None and clauses:
            s = self.embedder.embed_query(strip_citations(sentence))
            c = self.embedder.embed_documents(list(clauses))
            cos = np.asarray(c @ s, dtype=float)
            sem = np.clip((cos - self.cos_floor) / (self.cos_ceiling - self.cos_floor), 0.0, 1.0)
            out = [max(a, float(b)) for a, b in zip(out, sem)]
        return [0.0 if self.number_conflict(sentence, c) else score for score, c in zip(out, clauses)]

    @staticmethod
    def number_conflict(sentence: str, clause: str) -> bool:
        """Does the sentence state an Arabic number the clause does not contain?"""
        body = _LIST_MARKER.sub("", strip_citations(sentence))
        return not _numbers(body) <= _numbers(clause)

    def run(self, sentence: str, clauses: list[str]) -> SupportVerdict:
        """Verdict for ``sentence`` against the candidate ``clauses`` (best one counts)."""
        if not sentence.strip():
            raise ValueError("sentence is empty")
        scores = self.scores(sentence, clauses)
        if not scores:
            return SupportVerdict(supported=False, score=0.0, best=-1, scores=[])
        best = int(np.argmax(scores))
        return SupportVerdict(supported=scores[best] >= self.threshold, score=scores[best], best=best, scores=scores)
