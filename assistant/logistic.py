"""A fitted logistic regression kept as data: standardised features, weights, a threshold.

The answerability gate (:mod:`assistant.gate`) and the support judge (:mod:`assistant.support`) are both
such a model, fitted by scikit-learn in ``eval/`` and stored as JSON; this is the one place that reads it.

>>> m = LogisticModel(features=["x"], mean=[0.0], scale=[1.0], coef=[2.0], intercept=0.0, threshold=0.5)
>>> round(m.probability({"x": 1.0}), 3), m.probability({})
(0.881, 0.5)
"""

from __future__ import annotations

import math

from pydantic import BaseModel


class LogisticModel(BaseModel):
    """Standardised features → probability: ``sigmoid(intercept + Σ coef·(x − mean)/scale)``."""

    features: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    threshold: float

    def probability(self, features: dict[str, float]) -> float:
        """The probability for ``features`` (a feature the dict lacks counts as 0)."""
        z = self.intercept
        for name, m, s, w in zip(self.features, self.mean, self.scale, self.coef, strict=True):
            z += w * (features.get(name, 0.0) - m) / (s or 1.0)
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))
