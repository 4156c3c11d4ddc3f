"""Chinese lexical index: BM25 (bm25s) over character bigrams and unigrams plus Latin words.

Usage::

    index = LexicalIndex(["支持境外医疗专业人员短期执业。", "放宽增值电信业务外资准入。"])
    index.run("境外医生执业", k=5)   # [(0, 3.2), ...] positions with a positive score
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import tempfile
import unicodedata
from array import array
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import bm25s
import bm25s.scoring as _bm25_scoring
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


def intersect_sorted(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The values in both ``a`` and ``b``, two ascending arrays without repeats (postings): the shorter one looked up
    in the longer by binary search, instead of ``np.intersect1d``'s sort of both together.

    >>> intersect_sorted(np.array([1, 4, 9]), np.array([0, 1, 2, 3, 9, 12])).tolist()
    [1, 9]
    """
    if a.size > b.size:
        a, b = b, a
    if not a.size:
        return a
    at = np.searchsorted(b, a)
    at[at == b.size] = 0
    return a[b[at] == a]


def top_order(scores: np.ndarray, k: int) -> np.ndarray:
    """The positions of the ``k`` highest scores, best first, exactly as ``np.argsort(-scores, kind="stable")[:k]``
    (ties in position order) without sorting every score when ``k`` is a few of many.

    >>> top_order(np.array([0.1, 0.9, 0.5, 0.9]), 2).tolist()
    [1, 3]
    """
    n = scores.size
    k = max(0, min(k, n))
    if k < n // 4:  # partition first; every score tied with the k-th is kept, so ties sort as in a full sort
        cut = np.partition(scores, n - k)[n - k]
        candidates = np.flatnonzero(scores >= cut)
        return candidates[np.argsort(-scores[candidates], kind="stable")][:k]
    return np.argsort(-scores, kind="stable")[:k]


def stable_order(scores: np.ndarray, first: int) -> Iterator[int]:
    """Every position by descending score (ties in position order), sorting only the best ``first`` unless the
    caller reads past them (a filter that rejected some)."""
    head = top_order(scores, first)
    yield from head.tolist()
    if head.size < scores.size:
        yield from np.argsort(-scores, kind="stable")[head.size:].tolist()


#: An empty text's one token (so it still has a length and a column in the index).
_EMPTY = "\u2400"


def _token_ids(texts: Iterable[str]) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Every text's token ids as one flat ``int32`` array, where each text ends in it, and the vocabulary
    (ids in order of first occurrence). One text is tokenized at a time: 4 bytes per token are kept, where
    lists of token strings cost ~85 bytes per token (~2.4 GB at 100k clauses)."""
    vocab: dict[str, int] = {}
    flat = array("i")
    ends = array("q")
    for text in texts:
        flat.extend([vocab.setdefault(tok, len(vocab)) for tok in tokenize(text) or [_EMPTY]])
        ends.append(len(flat))
    return np.frombuffer(flat, dtype=np.int32), np.frombuffer(ends, dtype=np.int64), vocab


def _bm25_scores(bm25: bm25s.BM25, flat: np.ndarray, ends: np.ndarray, n_vocab: int) -> dict[str, Any]:
    """The score matrix ``bm25.index`` builds (``data``/``indices``/``indptr`` in CSC, ``num_docs``) from token
    ids, with bm25s's own idf and term-frequency functions, written straight into its final arrays.

    bm25s's builder keeps a Python list of ids per text, three arrays of every posting and four int64 arrays to
    sort them (~5 KB per clause at peak); here each text's postings go to their columns' next free slots as the
    texts are read in order (each column's rows ascending, as bm25s sorts them), so the peak is the result (8
    bytes per posting) and the flat ids."""
    n_docs = len(ends)
    starts = np.concatenate(([0], ends[:-1]))
    avg_doc_len = np.diff(np.concatenate(([0], ends))).mean()  # as bm25s: the mean of an int64 array of lengths
    doc_freqs = np.zeros(n_vocab, dtype=np.int64)
    for lo, hi in zip(starts.tolist(), ends.tolist()):
        doc_freqs[np.unique(flat[lo:hi])] += 1
    idf = _bm25_scoring._build_idf_array(
        doc_frequencies=dict(enumerate(doc_freqs.tolist())), n_docs=n_docs,
        compute_idf_fn=_bm25_scoring._select_idf_scorer(bm25.idf_method), dtype=bm25.dtype)
    tfc_of = _bm25_scoring._select_tfc_scorer(bm25.method)
    indptr = np.zeros(n_vocab + 1, dtype=np.int64)
    np.cumsum(doc_freqs, out=indptr[1:])
    del doc_freqs
    data = np.empty(int(indptr[-1]), dtype=bm25.dtype)
    rows = np.empty(int(indptr[-1]), dtype=bm25.int_dtype)
    free = indptr[:-1].copy()
    for doc, (lo, hi) in enumerate(zip(starts.tolist(), ends.tolist())):
        ids, counts = np.unique(flat[lo:hi], return_counts=True)
        tfc = tfc_of(tf_array=counts.astype(bm25.dtype), l_d=hi - lo, l_avg=avg_doc_len, k1=bm25.k1, b=bm25.b,
                     delta=bm25.delta)
        slots = free[ids]
        data[slots] = idf[ids] * tfc
        rows[slots] = doc
        free[ids] += 1
    return {"data": data, "indices": rows, "indptr": indptr, "num_docs": n_docs}


class LexicalIndex:
    """BM25 over :func:`tokenize` tokens; returns only positions with a positive score.

    ``texts`` may be any iterable (e.g. a generator over a store's pages): it is read once, a text at a time,
    and only their token ids are kept while the index is built (:func:`_bm25_scores`)."""

    def __init__(self, texts: Iterable[str], k1: float = 1.2, b: float = 0.75) -> None:
        flat, ends, vocab = _token_ids(texts)
        self.size = len(ends)
        self._bm25 = bm25s.BM25(k1=k1, b=b)
        if self.size:
            if self._bm25.method in self._bm25.methods_requiring_nonoccurrence:  # pragma: no cover - not used
                raise ValueError(f"BM25 method {self._bm25.method} is not supported")
            # what BM25.index does with token lists: the scores, then "" as the last vocabulary entry
            self._bm25.scores = _bm25_scores(self._bm25, flat, ends, len(vocab))
            self._bm25.nonoccurrence_array = None
            vocab[""] = len(vocab)
            self._bm25.vocab_dict = vocab
            self._bm25.unique_token_ids_set = set(vocab.values())
        del flat, ends
        self._vocab: dict[str, int] = dict(vocab) if self.size else {}

    # ------------------------------------------------------------ persistence
    @staticmethod
    def folder_for(root: Path, key: str) -> Path:
        """The folder the index saved under ``key`` lives in (inside ``root``)."""
        return root / f"bm25-{hashlib.sha256(key.encode('utf-8')).hexdigest()[:24]}"

    def save(self, root: Path, key: str) -> Path | None:
        """Save under ``root`` for ``key`` (e.g. the corpus generation): written to a temporary folder,
        then renamed into place, so a reader never sees a partial index; older saves are removed.
        Returns the folder, or None when there is nothing to save or the disk refuses."""
        if not self.size:
            return None
        target = self.folder_for(root, key)
        try:
            root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".bm25-tmp-", dir=root))
            try:
                self._bm25.save(str(tmp), show_progress=False)
                (tmp / "policy-meta.json").write_text(json.dumps({"key": key, "size": self.size}), encoding="utf-8")
                if target.exists():
                    shutil.rmtree(target, ignore_errors=True)
                os.replace(tmp, target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            for old in root.glob("bm25-*"):
                if old != target:
                    shutil.rmtree(old, ignore_errors=True)
            return target
        except OSError:
            return None

    @classmethod
    def load(cls, root: Path, key: str, size: int) -> LexicalIndex | None:
        """The index saved for ``key`` holding ``size`` texts, else None (missing, other key, corrupt)."""
        folder = cls.folder_for(root, key)
        try:
            meta = json.loads((folder / "policy-meta.json").read_text(encoding="utf-8"))
            if meta.get("key") != key or meta.get("size") != size or not size:
                return None
            bm25 = bm25s.BM25.load(str(folder), show_progress=False)
            scores = bm25.scores
            indptr = np.asarray(scores["indptr"])
            if int(scores.get("num_docs", -1)) != size or indptr.size < len(bm25.vocab_dict):
                return None
            if indptr[-1] != len(scores["indices"]) or len(scores["data"]) != len(scores["indices"]):
                return None
        except Exception:  # noqa: BLE001 - a missing, partial or corrupt save is rebuilt
            return None
        index = cls.__new__(cls)
        index.size = size
        index._bm25 = bm25
        index._vocab = dict(bm25.vocab_dict)
        return index

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every indexed text for ``query`` (zeros when no token is known)."""
        ids = [self._vocab[t] for t in tokenize(query) if t in self._vocab]
        if not ids or not self.size:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._bm25.get_scores(ids), dtype=np.float32)

    def run(self, query: str, k: int = 50) -> list[tuple[int, float]]:
        """Top ``k`` positions with a positive score, best first."""
        return self.top(self.scores(query), k)

    @staticmethod
    def top(scores: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The top ``k`` positions of ``scores`` (from :meth:`scores`) with a positive score, best first."""
        if not scores.size:
            return []
        positive = int(np.count_nonzero(scores > 0))
        k = min(k, positive)
        if k <= 0:
            return []
        return [(int(i), float(scores[i])) for i in top_order(scores, k)]

    def postings(self, term: str) -> np.ndarray:
        """Positions of the texts holding every token of ``term`` (sorted; from the index's CSC postings).

        For a CJK term of one or two characters, or one Latin word, these are exactly the texts that
        contain it; for a longer CJK term they are a superset (all its characters and bigrams occur).
        """
        tokens = tokenize(term)
        if not tokens or not self.size:
            return np.zeros(0, dtype=np.int64)
        if any(len(t) == 2 and _CJK_RUN.fullmatch(t) for t in tokens):  # a text with every bigram has every character
            tokens = [t for t in tokens if not (len(t) == 1 and _CJK_RUN.fullmatch(t))]
        scores = self._bm25.scores
        indptr, indices = scores["indptr"], scores["indices"]
        found: np.ndarray | None = None
        for tok in sorted(set(tokens), key=lambda t: self._df_of(t)):
            tid = self._vocab.get(tok)
            if tid is None:
                return np.zeros(0, dtype=np.int64)
            docs = np.asarray(indices[indptr[tid]:indptr[tid + 1]], dtype=np.int64)
            found = docs if found is None else intersect_sorted(found, docs)
            if not found.size:
                break
        return found if found is not None else np.zeros(0, dtype=np.int64)

    def max_count(self, term: str) -> int:
        """An upper bound of ``len(postings(term))`` without intersecting anything: the smallest document
        frequency of its tokens (0 when one is unknown)."""
        tokens = tokenize(term)
        if not tokens or not self.size:
            return 0
        return min(self._df_of(t) for t in set(tokens))

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
