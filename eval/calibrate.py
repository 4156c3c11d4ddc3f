"""Calibrate the refusal thresholds (on the calibration set) and the support judge (on its labels).

``python -m eval.calibrate`` prints

* **refusal**: every question of ``eval/datasets/calibration.jsonl`` (never the dev set) is
  asked with both refusal thresholds at 0, so nothing is refused and ``Answer.support_score``
  (computed before the refusal decision) is collected. Per language, the threshold maximises
  refusal recall on the questions that must be refused, subject to at most 5% of the answerable
  ones being refused (a question is refused when its score is below the threshold). Within the
  interval that gives the best recall the midpoint is chosen, to keep a margin on both sides.
* **support judge**: its agreement with ``eval/datasets/support_labels.jsonl`` at the current
  defaults, and the threshold (and cosine floor/ceiling) with the best agreement.

The suggested numbers are printed; the defaults live in ``assistant/evidence.py`` and
``assistant/support.py``.

Usage::

    python -m eval.calibrate                     # both, default settings
    python -m eval.calibrate --only support --json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["choose_threshold", "refusal_scores", "calibrate_refusal", "support_agreement", "calibrate_support",
           "load_support_labels"]

MAX_FALSE_REFUSALS = 0.05


# ---------------------------------------------------------------------- refusal
def choose_threshold(answerable: Sequence[float], unanswerable: Sequence[float],
                     max_false: float = MAX_FALSE_REFUSALS) -> dict[str, Any]:
    """The refusal threshold (refuse when score < threshold) with the best refusal recall such that
    at most ``max_false`` of the answerable scores fall below it.

    >>> r = choose_threshold([0.5, 0.6, 0.7, 0.8], [0.1, 0.3, 0.65])
    >>> r["threshold"], r["refusal_recall"], r["false_refusal_rate"]
    (0.4, 0.667, 0.0)
    """
    ans = sorted(answerable)
    una = sorted(unanswerable)
    allowed = math.floor(max_false * len(ans) + 1e-9)
    # Any threshold <= ans[allowed] refuses at most `allowed` answerable questions.
    bound = ans[allowed] if allowed < len(ans) else math.inf
    below = [u for u in una if u < bound]
    if not below:
        threshold = 0.0  # no question that must be refused scores below the answerable ones
    else:
        top = max(below)
        threshold = (top + bound) / 2 if math.isfinite(bound) else top + 0.05
    refused_ans = sum(1 for a in ans if a < threshold)
    refused_una = sum(1 for u in una if u < threshold)
    return {"threshold": round(threshold, 4),
            "refusal_recall": round(refused_una / len(una), 3) if una else None,
            "false_refusal_rate": round(refused_ans / len(ans), 3) if ans else None,
            "n_answerable": len(ans), "n_unanswerable": len(una), "allowed_false_refusals": allowed}


def refusal_scores(assistant: Any, items: Sequence[Any]) -> list[dict[str, Any]]:
    """``{id, lang, must_refuse, score}`` of each item; the assistant must use thresholds of 0."""
    out = []
    for item in items:
        a = assistant.ask(item.question, list(item.history))
        out.append({"id": item.id, "lang": item.lang, "must_refuse": item.must_refuse, "type": item.type,
                    "score": float(a.support_score)})
    return out


def calibrate_refusal(scores: Sequence[dict[str, Any]], max_false: float = MAX_FALSE_REFUSALS) -> dict[str, Any]:
    """Per-language thresholds from :func:`refusal_scores`; the rates are those on the same scores."""
    out: dict[str, Any] = {}
    for lang in sorted({s["lang"] for s in scores}):
        ans = [s["score"] for s in scores if s["lang"] == lang and not s["must_refuse"]]
        una = [s["score"] for s in scores if s["lang"] == lang and s["must_refuse"]]
        out[lang] = choose_threshold(ans, una, max_false)
    return out


def rates_at(scores: Sequence[dict[str, Any]], thresholds: dict[str, float]) -> dict[str, Any]:
    """Refusal recall / false-refusal rate per language when refusing below ``thresholds[lang]``."""
    out: dict[str, Any] = {}
    for lang, t in thresholds.items():
        ans = [s for s in scores if s["lang"] == lang and not s["must_refuse"]]
        una = [s for s in scores if s["lang"] == lang and s["must_refuse"]]
        out[lang] = {"threshold": t,
                     "refusal_recall": round(sum(s["score"] < t for s in una) / len(una), 3) if una else None,
                     "false_refusal_rate": round(sum(s["score"] < t for s in ans) / len(ans), 3) if ans else None}
    return out


# ----------------------------------------------------------------- support judge
def load_support_labels(path: Path | None = None) -> list[dict[str, Any]]:
    from eval.dataset import SUPPORT_LABELS

    lines = Path(path or SUPPORT_LABELS).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _agreement(pred: Sequence[bool], gold: Sequence[bool]) -> dict[str, Any]:
    n = len(gold)
    tp = sum(p and g for p, g in zip(pred, gold, strict=True))
    tn = sum((not p) and (not g) for p, g in zip(pred, gold, strict=True))
    fp = sum(p and not g for p, g in zip(pred, gold, strict=True))
    fn = sum((not p) and g for p, g in zip(pred, gold, strict=True))
    acc = (tp + tn) / n if n else 0.0
    pe = (((tp + fp) * (tp + fn)) + ((tn + fn) * (tn + fp))) / (n * n) if n else 0.0
    kappa = (acc - pe) / (1 - pe) if pe < 1 else 1.0
    return {"n": n, "accuracy": round(acc, 3), "precision": round(tp / (tp + fp), 3) if tp + fp else None,
            "recall": round(tp / (tp + fn), 3) if tp + fn else None, "kappa": round(kappa, 3),
            "false_positives": fp, "false_negatives": fn}


def support_agreement(judge: Any, labels: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """How often ``judge`` agrees with the hand labels (accuracy, precision, recall, Cohen's kappa)."""
    pred = [judge.run(lb["sentence"], [lb["clause_text"]]).supported for lb in labels]
    gold = [bool(lb["supported"]) for lb in labels]
    out = _agreement(pred, gold)
    out.update(threshold=judge.threshold, cos_floor=judge.cos_floor, cos_ceiling=judge.cos_ceiling,
               disagreements=[lb["id"] for lb, p, g in zip(labels, pred, gold, strict=True) if p != g])
    return out


def calibrate_support(judge: Any, labels: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Grid search of threshold, cos_floor and cos_ceiling for the best agreement with the labels.

    Returns the best setting overall, the best threshold at the judge's current cosine range, and a
    leave-one-out estimate of the tuned accuracy (the grid is re-searched without each label).
    """
    import numpy as np

    gold = np.array([bool(lb["supported"]) for lb in labels])
    cont = np.array([judge.containment(lb["sentence"], [lb["clause_text"]][0]) for lb in labels])
    conflict = np.array([judge.number_conflict(lb["sentence"], lb["clause_text"]) for lb in labels])
    if judge.embedder is not None:
        from assistant.text import strip_citations

        s = np.stack([judge.embedder.embed_query(strip_citations(lb["sentence"])) for lb in labels])
        c = judge.embedder.embed_documents([lb["clause_text"] for lb in labels])
        cos = np.sum(np.asarray(s) * np.asarray(c), axis=1)
    else:
        cos = np.zeros(len(labels))
    thresholds = [round(x, 3) for x in np.arange(0.3, 0.951, 0.025)]
    floors = [0.25, 0.3, 0.35, 0.4, 0.45, 0.5]
    ceilings = [0.65, 0.7, 0.75, 0.8, 0.85, 0.9]

    def acc(mask: np.ndarray, t: float, f: float, ce: float) -> float:
        sem = np.clip((cos[mask] - f) / (ce - f), 0, 1)
        score = np.maximum(cont[mask], sem if judge.embedder is not None else 0)
        score = np.where(conflict[mask], 0.0, score)
        return float(np.mean((score >= t) == gold[mask]))

    def best(mask: np.ndarray, fixed_range: bool) -> tuple[float, float, float, float]:
        top = (-1.0, 0.0, 0.0, 0.0)
        fl = [judge.cos_floor] if fixed_range else floors
        cl = [judge.cos_ceiling] if fixed_range else ceilings
        # Ties: prefer the setting closest to the current defaults (fewest arbitrary moves).
        for f in fl:
            for ce in cl:
                if ce <= f + 0.1:
                    continue
                for t in thresholds:
                    a = acc(mask, t, f, ce)
                    dist = abs(t - judge.threshold) + abs(f - judge.cos_floor) + abs(ce - judge.cos_ceiling)
                    if a > top[0] + 1e-9 or (abs(a - top[0]) < 1e-9 and dist < _dist(top, judge)):
                        top = (a, t, f, ce)
        return top

    everyone = np.ones(len(labels), dtype=bool)
    a_all, t_all, f_all, c_all = best(everyone, fixed_range=False)
    a_thr, t_thr, _, _ = best(everyone, fixed_range=True)
    loo_full, loo_thr = [], []
    for i in range(len(labels)):
        mask = everyone.copy()
        mask[i] = False
        _, t, f, ce = best(mask, fixed_range=False)
        loo_full.append(acc(~mask, t, f, ce))
        _, t, f, ce = best(mask, fixed_range=True)
        loo_thr.append(acc(~mask, t, f, ce))
    return {"best": {"threshold": t_all, "cos_floor": f_all, "cos_ceiling": c_all, "accuracy": round(a_all, 3),
                     "leave_one_out_accuracy": round(float(np.mean(loo_full)), 3)},
            "best_threshold_only": {"threshold": t_thr, "cos_floor": judge.cos_floor,
                                    "cos_ceiling": judge.cos_ceiling, "accuracy": round(a_thr, 3),
                                    "leave_one_out_accuracy": round(float(np.mean(loo_thr)), 3)}}


def _dist(top: tuple[float, float, float, float], judge: Any) -> float:
    if top[0] < 0:
        return math.inf
    return abs(top[1] - judge.threshold) + abs(top[2] - judge.cos_floor) + abs(top[3] - judge.cos_ceiling)


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    parser = argparse.ArgumentParser(prog="python -m eval.calibrate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["refusal", "support"], default=None)
    parser.add_argument("--dataset", type=Path, default=None, help="calibration set (default: the shipped one)")
    parser.add_argument("--data-dir", type=Path, default=None, help="index folder (default: a fresh temp folder)")
    parser.add_argument("--embedding-model", default=None)
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args(argv)

    from assistant.service import PolicyAssistant
    from assistant.settings import Settings
    from eval.dataset import CALIBRATION, load_dataset

    extra: dict[str, Any] = {}
    if args.embedding_model:
        extra["embedding_model"] = args.embedding_model
    tmp = None
    data_dir = args.data_dir
    if data_dir is None and args.only != "support":
        tmp = tempfile.TemporaryDirectory(prefix="calibrate-")
        data_dir = Path(tmp.name)
    settings = Settings(**({"data_dir": data_dir} if data_dir else {}), refusal_threshold_zh=0.0,
                        refusal_threshold_en=0.0, **extra)
    assistant = PolicyAssistant(settings)
    result: dict[str, Any] = {"command": "python -m eval.calibrate " + " ".join(argv if argv is not None
                                                                                 else sys.argv[1:])}
    if args.only in (None, "refusal"):
        assistant.ensure_index()
        items = load_dataset(args.dataset or CALIBRATION)
        scores = refusal_scores(assistant, items)
        from assistant.evidence import DEFAULT_THRESHOLD_EN, DEFAULT_THRESHOLD_ZH

        result["refusal"] = {
            "dataset": str(args.dataset or CALIBRATION.name),
            "suggested": calibrate_refusal(scores),
            "current_defaults": rates_at(scores, {"zh": DEFAULT_THRESHOLD_ZH, "en": DEFAULT_THRESHOLD_EN}),
            "scores": scores,
        }
    if args.only in (None, "support"):
        labels = load_support_labels()
        judge = assistant.judge
        result["support"] = {"current": support_agreement(judge, labels), "calibrated": calibrate_support(judge, labels)}
    if tmp is not None:
        tmp.cleanup()
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1))
        return 0
    print(f"$ {result['command']}")
    if "refusal" in result:
        r = result["refusal"]
        print(f"\nRefusal thresholds (calibration set {r['dataset']}, {len(r['scores'])} questions; "
              f"refuse when score < threshold; at most {MAX_FALSE_REFUSALS:.0%} of answerable refused):")
        for lang, s in r["suggested"].items():
            cur = r["current_defaults"].get(lang, {})
            print(f"  {lang}: suggested {s['threshold']:.4f} → refusal recall {s['refusal_recall']}, "
                  f"answerable refused {s['false_refusal_rate']} ({s['n_unanswerable']} unanswerable, "
                  f"{s['n_answerable']} answerable; allowed false refusals {s['allowed_false_refusals']})"
                  f"   [current default {cur.get('threshold')}: recall {cur.get('refusal_recall')}, "
                  f"answerable refused {cur.get('false_refusal_rate')}]")
        print("  scores (lang, must_refuse, score, id):")
        for s in sorted(r["scores"], key=lambda s: (s["lang"], s["score"])):
            print(f"    {s['lang']} {'REFUSE' if s['must_refuse'] else 'answer'} {s['score']:.4f} {s['id']} ({s['type']})")
    if "support" in result:
        s = result["support"]
        cur = s["current"]
        print(f"\nSupport judge on {cur['n']} hand labels: accuracy {cur['accuracy']}, precision {cur['precision']}, "
              f"recall {cur['recall']}, kappa {cur['kappa']} at threshold {cur['threshold']}, "
              f"cos {cur['cos_floor']}..{cur['cos_ceiling']}; disagreements: {', '.join(cur['disagreements']) or 'none'}")
        for name, b in s["calibrated"].items():
            print(f"  {name}: threshold {b['threshold']}, cos {b['cos_floor']}..{b['cos_ceiling']} → accuracy "
                  f"{b['accuracy']} (leave-one-out {b['leave_one_out_accuracy']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
