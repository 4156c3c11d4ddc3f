"""The support judge's agreement with hand labels (used by the eval report).

The judge itself is fitted by :mod:`eval.fit_support` (``python -m eval.fit_support``); this module
keeps the helpers the eval CLI uses. ``python -m eval.calibrate`` runs that fitting (its arguments
are passed on). The refusal-threshold calibration that lived here is gone: the answerability gate
is fitted by :mod:`eval.fit_gate`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eval.fit_support import agreement as _agreement

__all__ = ["load_support_labels", "support_agreement"]


def load_support_labels(path: Path | None = None) -> list[dict[str, Any]]:
    """Hand-labelled (sentence, clause_text, supported) pairs.

    With a ``path``, every pair of that file. Without one, the **held-out** part of
    ``eval/datasets/support_pairs.jsonl`` (the ids recorded in the judge's model file: the judge was
    not fitted on them), or ``support_labels.jsonl`` when there is no model file.
    """
    from assistant.support import SupportModelFile
    from eval.dataset import SUPPORT_LABELS
    from eval.fit_support import PAIRS

    def read(p: Path) -> list[dict[str, Any]]:
        return [json.loads(line) for line in Path(p).read_text(encoding="utf-8").splitlines() if line.strip()]

    if path is not None:
        return read(path)
    model_file = SupportModelFile.load()
    if model_file is None:
        return read(SUPPORT_LABELS)
    held = set(model_file.heldout_ids)
    return [p for p in read(PAIRS) if p["id"] in held]


def support_agreement(judge: Any, labels: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """How often ``judge`` agrees with the hand labels (accuracy, precision, recall, Cohen's kappa)."""
    pred = [judge.run(lb["sentence"], [lb["clause_text"]]).supported for lb in labels]
    gold = [bool(lb["supported"]) for lb in labels]
    out = _agreement(pred, gold)
    out.update(threshold=round(judge.threshold, 4), cos_floor=judge.cos_floor, cos_ceiling=judge.cos_ceiling,
               disagreements=[lb.get("id", "") for lb, p, g in zip(labels, pred, gold, strict=True) if p != g])
    return out


if __name__ == "__main__":
    from eval.fit_support import main

    raise SystemExit(main())
