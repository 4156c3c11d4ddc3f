"""Fusion of ranked lists (reciprocal rank fusion) and of per-hit scores (standardised, weighted sum).

>>> reciprocal_rank_fusion([["a", "b"], ["b", "c"]], k=60)[0][0]
'b'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], k: int = 60,
                           weights: Sequence[float] | None = None) -> list[tuple[str, float]]:
    """Fuse ranked id lists: score(id) = Σ w / (k + rank), rank from 1. Best first."""
    if k < 0:
        raise ValueError("k must be non-negative")
    weights = list(weights) if weights is not None else [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError("one weight per ranking")
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights):
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


@dataclass(frozen=True)
class ScoreFusion:
    """A weighted sum of each hit's scores, every score standardised over the hits being ordered (a z-score).

    Rank fusion keeps only the order of each list; this keeps how far ahead a hit is. ``dense`` and
    ``secondary`` are the two models' cosines, ``lexical`` BM25 (as ``log1p``), ``coverage`` the share of the
    question's weighted words a hit contains (already in [0, 1], not standardised) and ``rrf`` the rank-fusion
    score relative to the best one. A hit outside a list's candidates has no score from it: a missing cosine
    counts as the lowest cosine present, a missing BM25 score as 0.

    >>> ScoreFusion(dense=1, secondary=0, lexical=0, coverage=0).order(
    ...     dense=[0.5, 0.9, None], secondary=[None] * 3, lexical=[None] * 3, rrf=[3, 2, 1], coverage=[0, 0, 0])
    [1, 0, 2]
    """

    dense: float = 1.0
    secondary: float = 1.0
    lexical: float = 2.0
    coverage: float = 6.0
    rrf: float = 0.0

    def order(self, dense: Sequence[float | None], secondary: Sequence[float | None], lexical: Sequence[float | None],
              rrf: Sequence[float], coverage: Sequence[float]) -> list[int]:
        """Positions of the hits, best first (ties keep the given order)."""
        n = len(rrf)
        if not all(len(col) == n for col in (dense, secondary, lexical, coverage)):
            raise ValueError("one score of each kind per hit")
        return self._order(dense, secondary, lexical, rrf, coverage) if n else []

    def _order(self, dense: Sequence[float | None], secondary: Sequence[float | None],
               lexical: Sequence[float | None], rrf: Sequence[float], coverage: Sequence[float]) -> list[int]:
        total = np.zeros(len(rrf))
        for weight, column in ((self.dense, dense), (self.secondary, secondary)):
            present = [v for v in column if v is not None]
            if weight and present:
                floor = min(present)
                total += weight * _standardised([floor if v is None else v for v in column])
        if self.lexical:
            total += self.lexical * _standardised([math.log1p(max(v or 0.0, 0.0)) for v in lexical])
        best = max(rrf) or 1.0
        total += self.coverage * np.asarray(coverage, dtype=float) + self.rrf * np.asarray(rrf, dtype=float) / best
        return [int(i) for i in np.argsort(-total, kind="stable")]


def _standardised(values: Sequence[float]) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    sd = float(x.std())
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)
