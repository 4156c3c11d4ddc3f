"""Fit the answerability gate's calibrated model on the TRAINING set only, per retrieval backend.

    python -m eval.fit_gate                                  # default backend (e5-small + use-m3)
    EMBEDDING_MODEL=use-m3 python -m eval.fit_gate           # the fallback backend
    python -m eval.fit_gate --max-false-refusal 0.03 --dry-run

What it does:

1. runs every question of ``eval/datasets/train.jsonl`` (and ``calibration.jsonl``) through the
   assistant's pipeline (analyse → retrieve → rerank → gate constraints) and collects the gate's
   features;
2. fits a logistic regression (scikit-learn, standardised features, balanced classes) on the
   questions no constraint decided: label 1 = answerable *and* a gold clause is in the top 5
   (answerable questions whose gold clause was not retrieved are left out: answering them would
   quote the wrong clause);
3. picks the threshold from 5-fold out-of-fold probabilities: the largest one whose false-refusal
   rate over all answerable questions (constraint refusals included) stays within the budget;
4. writes ``assistant/resources/gate-<backend>.json`` with the weights, the threshold and the
   cross-validated figures. The dev set and the sealed test set are never read.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from eval.dataset import load_dataset, matched_units

DATASETS = Path(__file__).resolve().parent / "datasets"

#: The features the model reads: each has one meaning direction (more similarity, more coverage, more
#: agreement between the lists → more likely answerable), so the model extrapolates sanely to questions
#: unlike the training set. Signs are checked after fitting.
FEATURES = ("dense1", "dense_margin", "second1", "second_margin", "cov_best", "cov_top1", "cov_mean3",
            "agree_dense", "agree_lexical", "lang_en", "dense1_en", "cov_best_en", "followup", "missing_known",
            "unknown_mass")
POSITIVE = ("dense1", "second1", "cov_best", "cov_top1", "cov_mean3", "agree_dense", "agree_lexical")
TRAINING = [DATASETS / "train.jsonl", DATASETS / "calibration.jsonl"]


def collect(assistant: Any, paths: list[Path]) -> list[dict[str, Any]]:
    """One row per training question: features, constraint, label."""
    rows = []
    for path in paths:
        for item in load_dataset(path):
            r = assistant.pipeline.run(item.question, [tuple(t) for t in item.history])
            gold_top5 = any(matched_units(item, h.clause.clause_id, h.clause.text) for h in r.hits[:5])
            rows.append({"id": item.id, "answerable": item.answerable, "gold_top5": gold_top5,
                         "lang": item.lang, "constraint": r.verdict.constraint,
                         "decided": r.verdict.constraint not in (None, "year"),
                         "features": r.verdict.features, "direct": bool(r.direct),
                         "kind": getattr(item, "refuse_kind", "")})
    return rows


def fit(rows: list[dict[str, Any]], backend: str, max_false_refusal: float, folds: int = 5) -> tuple[Any, dict[str, Any]]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    from assistant.gate import GateModel

    open_rows = [r for r in rows if not r["decided"] and not r["direct"] and (not r["answerable"] or r["gold_top5"])]
    names = list(FEATURES)
    X = np.array([[r["features"].get(n, 0.0) for n in names] for r in open_rows])
    y = np.array([1 if r["answerable"] else 0 for r in open_rows])
    oof = np.zeros(len(y))
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=0).split(X, y):
        scaler = StandardScaler().fit(X[train])
        clf = LogisticRegression(C=0.5, class_weight="balanced", max_iter=2000).fit(scaler.transform(X[train]), y[train])
        oof[test] = clf.predict_proba(scaler.transform(X[test]))[:, 1]
    prob = {r["id"]: p for r, p in zip(open_rows, oof)}

    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]

    def refused(r: dict[str, Any], t: float) -> bool:
        if r["direct"]:
            return False
        if r["decided"]:
            return True
        return prob.get(r["id"], 1.0 if r["answerable"] else 0.0) < t

    best_t = 0.0
    curve = []
    for t in np.linspace(0.0, 0.95, 191):
        fr = sum(refused(r, t) for r in answerable) / max(1, len(answerable))
        rr = sum(refused(r, t) for r in unanswerable) / max(1, len(unanswerable))
        curve.append((float(t), fr, rr))
        if fr <= max_false_refusal:
            best_t = float(t)
    print("  trade-off (out-of-fold): threshold → answerable refused / unanswerable refused")
    for t, fr, rr in curve[::10]:
        print(f"    {t:.2f} → {fr:.3f} / {rr:.3f}")
    from sklearn.metrics import roc_auc_score

    cv = {
        "auc": round(float(roc_auc_score(y, oof)), 4),
        "threshold": round(best_t, 3),
        "answerable_refused": round(sum(refused(r, best_t) for r in answerable) / max(1, len(answerable)), 4),
        "unanswerable_refused": round(sum(refused(r, best_t) for r in unanswerable) / max(1, len(unanswerable)), 4),
        "answerable": len(answerable), "unanswerable": len(unanswerable), "fitted_rows": len(open_rows),
        "constraint_refusals_of_answerable": sum(1 for r in answerable if r["decided"] and not r["direct"]),
        "constraint_refusals_of_unanswerable": sum(1 for r in unanswerable if r["decided"]),
    }
    scaler = StandardScaler().fit(X)
    clf = LogisticRegression(C=0.5, class_weight="balanced", max_iter=2000).fit(scaler.transform(X), y)
    model = GateModel(backend=backend, features=names, mean=scaler.mean_.round(6).tolist(),
                      scale=scaler.scale_.round(6).tolist(), coef=clf.coef_[0].round(6).tolist(),
                      intercept=round(float(clf.intercept_[0]), 6), threshold=round(best_t, 3),
                      fitted_on=" + ".join(p.name for p in TRAINING if p.exists()),
                      cv={k: float(v) for k, v in cv.items()})
    return model, cv


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-false-refusal", type=float, default=0.03,
                    help="budget of answerable questions refused, over the training set (cross-validated)")
    ap.add_argument("--dry-run", action="store_true", help="print the figures, write nothing")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from assistant.service import PolicyAssistant
    from assistant.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        overrides: dict[str, Any] = {"data_dir": Path(tmp), "llm_provider": "none"}
        assistant = PolicyAssistant(Settings(**overrides))
        assistant.ensure_index()
        backend = assistant.backend
        rows = collect(assistant, [p for p in TRAINING if p.exists()])
    model, cv = fit(rows, backend, args.max_false_refusal)
    print(f"$ python -m eval.fit_gate --max-false-refusal {args.max_false_refusal}")
    print(f"backend {backend}; training questions {len(rows)}")
    for k, v in cv.items():
        print(f"  {k}: {v}")
    by: dict[str, list[int]] = {}
    for r in rows:
        if r["decided"]:
            by.setdefault(str(r["constraint"]), [0, 0])[0 if r["answerable"] else 1] += 1
    for name, (a, u) in sorted(by.items()):
        print(f"  constraint {name}: refused {a} answerable, {u} unanswerable")
    for name, w in sorted(zip(model.features, model.coef), key=lambda x: -abs(x[1])):
        flag = "  (expected ≥ 0)" if name in POSITIVE and w < 0 else ""
        print(f"  weight {name:16s} {w:+.3f}{flag}")
    if not args.dry_run:
        print("wrote", model.save())
    return 0


if __name__ == "__main__":
    sys.exit(main())
