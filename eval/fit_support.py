"""Fit the support judge (does a clause support a sentence?) and measure it on held-out pairs.

    python -m eval.fit_support                    # fit, print the figures, write the model file
    python -m eval.fit_support --dry-run          # fit and print only
    python -m eval.fit_support --embedders use-m3,none
    python -m eval.fit_support --cv-only          # training cross-validation only (for feature work)

What it does:

1. splits ``eval/datasets/support_pairs.jsonl`` deterministically into a training part (about 65%)
   and a **held-out** part (about 35%): stratified by ``kind``, grouped so that one clause text (or a
   clause contained in another) never lands on both sides;
2. trains on the training part plus ``eval/datasets/support_labels.jsonl`` (the older 60 pairs,
   except those whose clause is a held-out clause);
3. for each embedding model (and ``none``: text features only) computes the judge's features
   (:meth:`assistant.support.SupportJudge.features`), chooses the regularisation and then the
   threshold from grouped 5-fold out-of-fold probabilities **on the training part only**, and fits a
   logistic regression (scikit-learn, standardised features) on the whole training part;
4. reports agreement (accuracy), precision, recall and Cohen's kappa on the held-out part, overall,
   by kind and by language; the held-out part is never used to choose anything;
5. writes ``assistant/resources/support-judge.json`` (weights, feature names, scaler mean/scale,
   threshold, the held-out ids and the figures), which :class:`~assistant.support.SupportJudge`
   loads.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

DATASETS = Path(__file__).resolve().parent / "datasets"
PAIRS = DATASETS / "support_pairs.jsonl"
OLD_LABELS = DATASETS / "support_labels.jsonl"
TEST_SHARE = 0.35
SALT = "support-split-v1"
FOLDS = 5
C_GRID = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
DEFAULT_EMBEDDERS = ("use-m3", "e5-small", "none")


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ------------------------------------------------------------------- agreement
def agreement(pred: Sequence[bool], gold: Sequence[bool]) -> dict[str, Any]:
    """Accuracy, precision, recall and Cohen's kappa of ``pred`` against ``gold``.

    Kappa is ``None`` when the gold labels have one class only (it says nothing there).
    """
    n = len(gold)
    tp = sum(p and g for p, g in zip(pred, gold, strict=True))
    tn = sum((not p) and (not g) for p, g in zip(pred, gold, strict=True))
    fp = sum(p and not g for p, g in zip(pred, gold, strict=True))
    fn = sum((not p) and g for p, g in zip(pred, gold, strict=True))
    acc = (tp + tn) / n if n else 0.0
    pe = (((tp + fp) * (tp + fn)) + ((tn + fn) * (tn + fp))) / (n * n) if n else 0.0
    kappa: float | None = (acc - pe) / (1 - pe) if pe < 1 else 1.0
    if n and len(set(gold)) < 2:
        kappa = None
    return {"n": n, "accuracy": round(acc, 3), "precision": round(tp / (tp + fp), 3) if tp + fp else None,
            "recall": round(tp / (tp + fn), 3) if tp + fn else None,
            "kappa": round(kappa, 3) if kappa is not None else None, "false_positives": fp, "false_negatives": fn}


# ----------------------------------------------------------------------- split
def _key(text: str) -> str:
    return re.sub(r"[^\w\u3400-\u9fff]", "", text).lower()


def clause_groups(pairs: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Clause text → group: clauses that are equal, or one inside the other, share a group."""
    keys = sorted({_key(p["clause_text"]) for p in pairs}, key=len)
    parent = {k: k for k in keys}

    def find(k: str) -> str:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            if a and a in b:
                parent[find(a)] = find(b)
    return {p["clause_text"]: find(_key(p["clause_text"])) for p in pairs}


def split_pairs(pairs: Sequence[dict[str, Any]], test_share: float = TEST_SHARE,
                salt: str = SALT) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, held-out): whole clause groups in a salted-hash order go to the held-out part while
    every kind they hold stays within ``test_share`` of that kind."""
    group_of = clause_groups(pairs)
    members: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for p in pairs:
        members[group_of[p["clause_text"]]].append(p)
    totals = Counter(p["kind"] for p in pairs)
    target = {k: round(test_share * n) for k, n in totals.items()}
    taken: Counter[str] = Counter()
    held: set[str] = set()
    for g in sorted(members, key=lambda g: hashlib.sha1((salt + g).encode("utf-8")).hexdigest()):
        kinds = Counter(p["kind"] for p in members[g])
        if all(taken[k] + n <= target[k] for k, n in kinds.items()):
            held.add(g)
            taken.update(kinds)
    train = [p for p in pairs if group_of[p["clause_text"]] not in held]
    test = [p for p in pairs if group_of[p["clause_text"]] in held]
    return train, test


def training_rows(pairs: Sequence[dict[str, Any]], old: Sequence[dict[str, Any]],
                  test: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The training pairs plus the old labels whose clause is not (inside) a held-out clause."""
    held = [_key(p["clause_text"]) for p in test]
    held_sentences = {_key(p["sentence"]) for p in test}
    test_ids = {p["id"] for p in test}
    out = [dict(p, source="pairs") for p in pairs if p["id"] not in test_ids]
    for p in old:
        k = _key(p["clause_text"])
        if any(k in h or h in k for h in held) or _key(p["sentence"]) in held_sentences:
            continue
        out.append(dict(p, kind=p.get("kind", "old-labels"), lang=p.get("lang", "en" if p["sentence"][:1].isascii()
                                                                        else "zh"), source="labels"))
    return out


# ------------------------------------------------------------------------- fit
def _matrix(judge: Any, rows: Sequence[dict[str, Any]], names: Sequence[str]) -> np.ndarray:
    feats = [judge.features(r["sentence"], [r["clause_text"]])[0] for r in rows]
    return np.array([[f.get(n, 0.0) for n in names] for f in feats], dtype=float)


def _oof(X: np.ndarray, y: np.ndarray, groups: Sequence[str], C: float) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.preprocessing import StandardScaler

    oof = np.zeros(len(y))
    for tr, te in StratifiedGroupKFold(FOLDS, shuffle=True, random_state=0).split(X, y, groups):
        scaler = StandardScaler().fit(X[tr])
        clf = LogisticRegression(C=C, max_iter=5000).fit(scaler.transform(X[tr]), y[tr])
        oof[te] = clf.predict_proba(scaler.transform(X[te]))[:, 1]
    return oof


def choose_threshold(prob: np.ndarray, y: np.ndarray) -> float:
    """The threshold with the best accuracy on ``prob``: the middle of the widest best interval
    (ties: the interval nearest 0.5)."""
    cuts = np.unique(np.concatenate([[0.0, 1.0], prob]))
    best: tuple[float, float, float] = (-1.0, 0.0, 0.0)  # accuracy, -distance to 0.5, threshold
    for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
        t = (lo + hi) / 2
        acc = float(np.mean((prob >= t) == y))
        cand = (round(acc, 9), -abs(t - 0.5), t)
        if cand[:2] > best[:2]:
            best = cand
    return round(best[2], 4)


def fit_one(spec: str, rows: Sequence[dict[str, Any]], test: Sequence[dict[str, Any]],
            groups: dict[str, str], judge_heldout: bool = True) -> tuple[Any, dict[str, Any]]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.preprocessing import StandardScaler

    from assistant.support import EMBEDDING_FEATURES, TEXT_FEATURES, TEXT_ONLY, SupportJudge, SupportModel
    from retrieval.embeddings import make_embedder

    embedder = None if spec == TEXT_ONLY else make_embedder(spec)
    judge = SupportJudge(embedder, use_model=False)
    names = list(TEXT_FEATURES) + (list(EMBEDDING_FEATURES) if embedder is not None else [])
    X = _matrix(judge, rows, names)
    y = np.array([1 if r["supported"] else 0 for r in rows])
    g = [groups.get(r["clause_text"], _key(r["clause_text"])) for r in rows]
    losses = {C: log_loss(y, np.clip(_oof(X, y, g, C), 1e-6, 1 - 1e-6)) for C in C_GRID}
    C = min(losses, key=lambda c: (round(losses[c], 4), -c))
    oof = _oof(X, y, g, C)
    threshold = choose_threshold(oof, y)
    scaler = StandardScaler().fit(X)
    clf = LogisticRegression(C=C, max_iter=5000).fit(scaler.transform(X), y)
    model = SupportModel(embedder=spec, features=names, mean=[round(float(v), 6) for v in scaler.mean_],
                         scale=[round(float(v), 6) for v in scaler.scale_],
                         coef=[round(float(v), 6) for v in clf.coef_[0]], intercept=round(float(clf.intercept_[0]), 6),
                         threshold=threshold)
    # the held-out part, judged exactly as the judge will (model loaded from data, run())
    scored = SupportJudge(embedder, use_model=False)
    scored.model, scored.threshold = model, model.threshold
    test = test if judge_heldout else []
    pred = [scored.run(p["sentence"], [p["clause_text"]]).supported for p in test]
    gold = [bool(p["supported"]) for p in test]
    heldout: dict[str, Any] = {"overall": agreement(pred, gold), "by_kind": {}, "by_lang": {}}
    for field, out in (("kind", heldout["by_kind"]), ("lang", heldout["by_lang"])):
        for value in sorted({p[field] for p in test}):
            idx = [i for i, p in enumerate(test) if p[field] == value]
            out[value] = agreement([pred[i] for i in idx], [gold[i] for i in idx])
    heldout["errors"] = [p["id"] for p, a, b in zip(test, pred, gold, strict=True) if a != b]
    cv_pred = [bool(v) for v in oof >= threshold]
    pair_idx = [i for i, r in enumerate(rows) if r["source"] == "pairs"]
    cv = {"C": C, "log_loss_by_C": {str(k): round(v, 4) for k, v in losses.items()},
          "oof_training": agreement(cv_pred, [bool(v) for v in y]),
          "oof_training_pairs": agreement([cv_pred[i] for i in pair_idx], [bool(y[i]) for i in pair_idx])}
    model.heldout = heldout
    cv["oof_errors"] = [f"{r.get('id')} {r['kind']} p={p:.2f}" for r, p, t in zip(rows, oof, y, strict=True)
                        if (p >= threshold) != bool(t)]
    return model, {"spec": spec, "heldout": heldout, "cv": cv,
                   "weights": dict(zip(names, model.coef, strict=True))}


# ------------------------------------------------------------------------ main
def _line(name: str, a: dict[str, Any]) -> str:
    kappa = "—" if a["kappa"] is None else f"{a['kappa']:.3f}"
    prec = "—" if a["precision"] is None else f"{a['precision']:.3f}"
    rec = "—" if a["recall"] is None else f"{a['recall']:.3f}"
    return f"  {name:<18} n={a['n']:<4} agreement {a['accuracy']:.3f}  precision {prec}  recall {rec}  kappa {kappa}"


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = argparse.ArgumentParser(prog="python -m eval.fit_support", description=__doc__.split("\n\n")[0])
    parser.add_argument("--embedders", default=",".join(DEFAULT_EMBEDDERS),
                        help="embedding models to fit a model for (none = text features only)")
    parser.add_argument("--dry-run", action="store_true", help="do not write the model file")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument("--cv-only", action="store_true", help="training cross-validation only: the held-out "
                        "part is not judged and nothing is written")
    args = parser.parse_args(argv)
    command = "python -m eval.fit_support " + " ".join(argv if argv is not None else sys.argv[1:])

    from assistant.support import RESOURCE, SupportModelFile
    from retrieval.embeddings import EmbeddingError

    pairs = load_jsonl(PAIRS)
    old = load_jsonl(OLD_LABELS)
    train, test = split_pairs(pairs)
    rows = training_rows(pairs, old, test)
    groups = clause_groups(list(pairs) + list(old))
    models, reports = [], []
    for spec in [s.strip() for s in args.embedders.split(",") if s.strip()]:
        try:
            model, report = fit_one(spec, rows, test, groups, judge_heldout=not args.cv_only)
        except EmbeddingError as exc:
            print(f"skipping {spec}: {exc}", file=sys.stderr)
            continue
        models.append(model)
        reports.append(report)
    rule: dict[str, Any] = {}
    if not args.cv_only and "use-m3" in [m.embedder for m in models]:
        from assistant.support import SupportJudge
        from retrieval.embeddings import make_embedder

        old_judge = SupportJudge(make_embedder("use-m3"), use_model=False)
        rule = agreement([old_judge.run(p["sentence"], [p["clause_text"]]).supported for p in test],
                         [bool(p["supported"]) for p in test])
    split = {"salt": SALT, "test_share": TEST_SHARE, "n_pairs": len(pairs), "n_train_pairs": len(train),
             "n_heldout": len(test), "n_old_labels_used": sum(r["source"] == "labels" for r in rows),
             "heldout_by_kind": dict(sorted(Counter(p["kind"] for p in test).items()))}
    file = SupportModelFile(command=command.strip(), fitted_on=[f"{PAIRS.name} (training part)", OLD_LABELS.name],
                            heldout_ids=sorted(p["id"] for p in test), split=split, models=models,
                            rule_heldout=rule)
    if not (args.dry_run or args.cv_only):
        file.save()
    if args.json:
        print(json.dumps({"command": command, "split": split, "reports": reports, "rule_heldout": rule}, ensure_ascii=False, indent=1))
        return 0
    print(f"$ {command}")
    print(f"split: {len(train)} training pairs (+{split['n_old_labels_used']} old labels), {len(test)} held out "
          f"{split['heldout_by_kind']}")
    for r in reports:
        cv = r["cv"]
        print(f"\n[{r['spec']}] C={cv['C']}, threshold {next(m.threshold for m in models if m.embedder == r['spec'])}; "
              f"training out-of-fold agreement {cv['oof_training']['accuracy']:.3f} "
              f"(pairs only {cv['oof_training_pairs']['accuracy']:.3f})")
        by_kind = Counter(e.split()[1] for e in cv["oof_errors"])
        print(f"  training out-of-fold errors by kind: {dict(sorted(by_kind.items()))}")
        print("  weights: " + ", ".join(f"{k} {v:+.2f}" for k, v in sorted(r["weights"].items(),
                                                                         key=lambda kv: -abs(kv[1]))))
        if args.cv_only:
            print("  " + "\n  ".join(cv["oof_errors"]))
            continue
        print("held-out:")
        print(_line("overall", r["heldout"]["overall"]))
        for kind, a in r["heldout"]["by_kind"].items():
            print(_line(kind, a))
        for lang, a in r["heldout"]["by_lang"].items():
            print(_line(f"lang {lang}", a))
        print(f"  errors: {', '.join(r['heldout']['errors']) or 'none'}")
    if rule:
        print("\nthe old rule (containment / rescaled cosine, threshold 0.725, use-m3) on the held-out part:")
        print(_line("overall", rule))
    if not (args.dry_run or args.cv_only):
        print(f"\nwrote {RESOURCE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
