"""Chinese lexical index: BM25 (bm25s) over character bigrams and unigrams plus Latin words.

Usage::

    index = LexicalIndex(["支持境外医疗专业人员短期执业。", "放宽增值电信业务外资准入。"])
    index.run("境外医生执业", k=5)   # [(0, 3.2), ...] positions with a positive score
"""

from __future__ import annotations

import math
import re
import unicodedata

import bm25s
import numpy as np

_CJK_RUN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")
_CJK_CHAR = re.compile(r"[\u3400-\u9fff]")
_LATIN_CHAR = re.compile(r"[A-Za-z]")


def detect_lang(text: str) -> str:
    """``en`` when Latin letters outnumber twice the CJK characters, else ``zh``.

    >>> detect_lang("Can foreign doctors open a clinic?"), detect_lang("外国医生能开诊所吗？")
    ('en', 'zh')
    """
    return "en" if len(_LATIN_CHAR.findall(text)) > 2 * len(_CJK_CHAR.findall(text)) else "zh"
_WORD = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?")


def tokenize(text: str) -> list[str]:
    """Character bigrams (and single characters) of CJK runs, lowercased Latin words and numbers.

    >>> tokenize("数据跨境 DEPA 1.06万亿")
    ['数', '据', '跨', '境', '数据', '据跨', '跨境', 'depa', '1.06', '万', '亿', '万亿']
    """
    text = unicodedata.normalize("NFKC", text).lower()
    tokens: list[str] = []
    for m in re.finditer(r"[\u3400-\u9fff\uf900-\ufaff]+|[a-z0-9]+(?:\.[0-9]+)?", text):
        run = m.group(0)
        if _CJK_RUN.fullmatch(run):
            tokens.extend(run)
            tokens.extend(run[i:i + 2] for i in range(len(run) - 1))
        else:
            tokens.append(run)
    return tokens


class LexicalIndex:
    """BM25 over :func:`tokenize` tokens; returns only positions with a positive score."""

    def __init__(self, texts: list[str], k1: float = 1.2, b: float = 0.75) -> None:
        self.size = len(texts)
        self._bm25 = bm25s.BM25(k1=k1, b=b)
        if texts:
            self._bm25.index([tokenize(t) or ["\u2400"] for t in texts], show_progress=False)
        self._vocab: dict[str, int] = dict(self._bm25.vocab_dict) if texts else {}

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every indexed text for ``query`` (zeros when no token is known)."""
        ids = [self._vocab[t] for t in tokenize(query) if t in self._vocab]
        if not ids or not self.size:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._bm25.get_scores(ids), dtype=np.float32)

    def run(self, query: str, k: int = 50) -> list[tuple[int, float]]:
        """Top ``k`` positions with a positive score, best first."""
        scores = self.scores(query)
        if not scores.size:
            return []
        positive = int(np.count_nonzero(scores > 0))
        top = np.argsort(-scores, kind="stable")[: min(k, positive)]
        return [(int(i), float(scores[i])) for i in top]

    def postings(self, term: str) -> np.ndarray:
        """Positions of the texts holding every token of ``term`` (sorted; from the index's CSC postings).

        For a CJK term of one or two characters, or one Latin word, these are exactly the texts that
        contain it; for a longer CJK term they are a superset (all its characters and bigrams occur).
        """
        tokens = tokenize(term)
        if not tokens or not self.size:
            return np.zeros(0, dtype=np.int64)
        scores = self._bm25.scores
        indptr, indices = scores["indptr"], scores["indices"]
        found: np.ndarray | None = None
        for tok in sorted(set(tokens), key=lambda t: self._df_of(t)):
            tid = self._vocab.get(tok)
            if tid is None:
                return np.zeros(0, dtype=np.int64)
            docs = np.asarray(indices[indptr[tid]:indptr[tid + 1]], dtype=np.int64)
            found = docs if found is None else np.intersect1d(found, docs, assume_unique=True)
            if not found.size:
                break
        return found if found is not None else np.zeros(0, dtype=np.int64)

    def _df_of(self, token: str) -> int:
        tid = self._vocab.get(token)
        if tid is None:
            return 0
        indptr = self._bm25.scores["indptr"]
        return int(indptr[tid + 1] - indptr[tid])

    def df(self, term: str) -> int:
        """Document frequency of ``term``: how many texts hold all its tokens (see :meth:`postings`)."""
        key = unicodedata.normalize("NFKC", term).lower()
        if key in tokenize(term):  # the term is itself a token: its posting list's length
            return self._df_of(key)
        return int(self.postings(term).size)

    def is_token(self, term: str) -> bool:
        """Whether ``term`` is one token (a CJK character or bigram, a Latin word): :meth:`df` is then exact."""
        return unicodedata.normalize("NFKC", term).lower() in tokenize(term)

    def idf(self, term: str) -> float:
        """``log((N + 1) / (df + 0.5))``, the weighting the answerability gate uses."""
        return math.log((self.size + 1) / (self.df(term) + 0.5))
