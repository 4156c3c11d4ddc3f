"""Compare two eval reports side by side, and check a report against the committed baseline.

Usage::

    print(render_comparison(load_report(a), load_report(b)))
    problems = check_baseline(report["metrics"], json.loads(Path("eval/baseline.json").read_text()))
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eval.metrics import HEADLINE
from eval.report import fmt, load_report

__all__ = ["render_comparison", "check_baseline", "load_baseline", "BASELINE", "load_report"]

BASELINE = Path(__file__).resolve().parent / "baseline.json"

_COMPARED = (*HEADLINE, "recall@10", "set_recall@10", "set_complete@10", "false_refusal_rate", "keyword_recall",
             "latency_p50_ms", "latency_p95_ms")
_LOWER_IS_BETTER = {"false_refusal_rate", "latency_p50_ms", "latency_p95_ms"}


def _diff(a: Any, b: Any) -> str:
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        return ""
    d = b - a
    return "0" if abs(d) < 1e-9 else f"{d:+.3f}" if abs(a) <= 1.0 and abs(b) <= 1.0 else f"{d:+.1f}"


def render_comparison(a: dict[str, Any], b: dict[str, Any], name_a: str = "A", name_b: str = "B") -> str:
    """Markdown: config, headline metrics, per type and language, and the questions whose outcome changed."""
    out = [f"# {name_a} vs {name_b}", ""]
    keys = sorted(set(a.get("config", {})) | set(b.get("config", {})))
    out += ["| config | A | B |", "|---|---|---|"]
    for k in keys:
        va, vb = a.get("config", {}).get(k), b.get("config", {}).get(k)
        out.append(f"| {k}{' *' if va != vb else ''} | {va} | {vb} |")
    out.append(f"| corpus | {a.get('corpus_version')} | {b.get('corpus_version')} |")
    out += ["", "| metric | A | B | B − A |", "|---|---|---|---|"]
    for k in _COMPARED:
        va, vb = a["metrics"].get(k), b["metrics"].get(k)
        out.append(f"| {k} | {fmt(va)} | {fmt(vb)} | {_diff(va, vb)} |")
    for section in ("by_type", "by_lang"):
        out += ["", f"## {section.replace('_', ' ')} (MRR, gold citation recall, keyword accuracy, refusal recall)",
                "", "| group | MRR A | MRR B | gold cit. A | gold cit. B | kw A | kw B | refusal A | refusal B |",
                "|---|---|---|---|---|---|---|---|---|"]
        for g in sorted(set(a.get(section, {})) | set(b.get(section, {}))):
            ma, mb = a.get(section, {}).get(g, {}), b.get(section, {}).get(g, {})
            cells = []
            for k in ("mrr", "gold_citation_recall", "keyword_accuracy", "refusal_recall"):
                cells += [fmt(ma.get(k)), fmt(mb.get(k))]
            out.append(f"| {g} | " + " | ".join(cells) + " |")
    ra = {r["id"]: r for r in a.get("results", [])}
    rb = {r["id"]: r for r in b.get("results", [])}
    changed = []
    for qid in sorted(set(ra) & set(rb)):
        fa, fb = set(ra[qid]["failures"]), set(rb[qid]["failures"])
        cats_a = sorted({f.split(":", 1)[0] for f in fa})
        cats_b = sorted({f.split(":", 1)[0] for f in fb})
        if cats_a != cats_b:
            changed.append(f"| {qid} | {', '.join(cats_a) or 'ok'} | {', '.join(cats_b) or 'ok'} |")
    out += ["", f"## Questions whose failures changed ({len(changed)})", ""]
    if changed:
        out += ["| id | A | B |", "|---|---|---|", *changed]
    only = sorted(set(ra) ^ set(rb))
    if only:
        out += ["", f"Questions in only one report: {', '.join(only)}"]
    return "\n".join(out) + "\n"


def load_baseline(path: Path = BASELINE) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def check_baseline(metrics: dict[str, Any], baseline: dict[str, Any]) -> list[str]:
    """Headline metrics that fell below the baseline by more than its tolerance (empty: pass).

    ``baseline = {"tolerance": 0.03, "metrics": {"mrr": 0.83, …}}``; a metric may carry its own
    tolerance in ``"tolerances"``. A metric missing from the report counts as a regression.
    """
    default_tol = float(baseline.get("tolerance", 0.03))
    tols = baseline.get("tolerances", {})
    problems = []
    for name, base in baseline["metrics"].items():
        tol = float(tols.get(name, default_tol))
        value = metrics.get(name)
        if value is None:
            problems.append(f"{name}: missing from the report (baseline {base:.3f})")
        elif name in _LOWER_IS_BETTER:
            if value > base + tol:
                problems.append(f"{name}: {value:.3f} is above the baseline {base:.3f} + {tol:.3f}")
        elif value < base - tol:
            problems.append(f"{name}: {value:.3f} is below the baseline {base:.3f} − {tol:.3f}")
    return problems
