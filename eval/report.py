"""Write an eval report: ``report.json``, ``report.md`` and PNG charts.

Usage::

    paths = write_report(report, Path("eval/out"))   # {"json": …, "md": …, "charts": [...]}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eval.metrics import HEADLINE

__all__ = ["write_report", "render_markdown", "write_charts", "fmt", "load_report"]

_TABLE_METRICS = ("n", "recall@1", "recall@5", "recall@10", "mrr", "ndcg@10", "set_recall@10", "citation_recall",
                  "citation_precision", "gold_citation_recall", "gold_cited_any", "set_cited_complete",
                  "refusal_precision", "refusal_recall",
                  "false_refusal_rate", "keyword_accuracy", "latency_p50_ms", "latency_p95_ms")


def fmt(value: Any) -> str:
    """A metric for a table: ``-`` when it does not apply, 3 decimals for shares, 1 for ms."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.1f}" if value > 1.0 else f"{value:.3f}"
    return str(value)


def load_report(path: Path) -> dict[str, Any]:
    """Read a ``report.json`` (or the folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    return json.loads(path.read_text(encoding="utf-8"))


def _table(rows: dict[str, dict[str, Any]], metrics: tuple[str, ...]) -> list[str]:
    lines = ["| group | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for name, m in rows.items():
        lines.append(f"| {name} | " + " | ".join(fmt(m.get(k)) for k in metrics) + " |")
    return lines


def render_markdown(report: dict[str, Any], charts: list[str] | None = None) -> str:
    """The human-readable report."""
    m = report["metrics"]
    cfg = report.get("config", {})
    out = ["# Evaluation report", ""]
    out.append(f"- dataset: `{report.get('dataset', '')}` ({m['n']} questions: {m['n_answerable']} answerable, "
               f"{m['n_unanswerable']} must be refused)")
    out.append(f"- corpus: {report.get('corpus_version')}")
    out.append(f"- commit: {report.get('git_commit')}, created {report.get('created')}")
    out.append("- config: " + ", ".join(f"{k}={v}" for k, v in cfg.items()))
    if report.get("support_agreement"):
        sa = report["support_agreement"]
        out.append(f"- support judge: agreement {fmt(sa['accuracy'])} with the {sa['n']} hand labels "
                   f"(precision {fmt(sa['precision'])}, recall {fmt(sa['recall'])}, Cohen's kappa {fmt(sa['kappa'])}) "
                   f"at threshold {sa['threshold']}")
    if report.get("gold_problems"):
        out += ["", "**Gold units missing from the corpus** (these questions cannot score):", ""]
        out += [f"- {p}" for p in report["gold_problems"]]
    out += ["", "## Headline metrics", "", "| metric | value |", "|---|---|"]
    for k in (*HEADLINE, "gold_cited_any", "set_cited_complete", "recall@10", "set_recall@10", "set_complete@10",
              "false_refusal_rate", "keyword_recall",
              "latency_p50_ms", "latency_p95_ms"):
        out.append(f"| {k} | {fmt(m.get(k))} |")
    out += ["", "## By question type", ""] + _table(report["by_type"], _TABLE_METRICS)
    out += ["", "## By language", ""] + _table(report["by_lang"], _TABLE_METRICS)
    if report.get("by_register") and len(report["by_register"]) > 1:
        out += ["", "## By register", ""] + _table(report["by_register"], _TABLE_METRICS)
    if report.get("by_refuse_kind") and len(report["by_refuse_kind"]) > 1:
        out += ["", "## Questions that must be refused, by kind", ""] + _table(report["by_refuse_kind"], _TABLE_METRICS)
    if charts:
        out += ["", "## Charts", ""] + [f"![{Path(c).stem}]({Path(c).name})" for c in charts]
    out += ["", "## Failure categories", "", "| category | questions |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in report.get("failure_categories", {}).items()]
    out += ["", "## Failures", ""]
    failed = [r for r in report["results"] if r["failures"]]
    if not failed:
        out.append("None.")
    for r in failed:
        out.append(f"### {r['id']} ({r['type']}, {r['lang']}) — {r['question']}")
        out.append("")
        for f in r["failures"]:
            out.append(f"- {f}")
        if r.get("retrieval"):
            hits = ", ".join(f"{h['clause_id']}{' ✓' if h['matched'] else ''}" for h in r["retrieval"]["hits"][:5])
            out.append(f"- retrieved (top 5): {hits}")
        cites = ", ".join(f"{c['clause_id']}{' ✓' if c['matched'] else ''}" for c in r["citations"]) or "none"
        out.append(f"- cited: {cites}; refused={r['refused']}; support score={fmt(r.get('support_score'))}")
        out.append("")
    out += ["## All questions", "", "| id | type | lang | first gold rank | refused | gold cited | keywords | ms |",
            "|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        rank = r["retrieval"]["first_rank"] if r.get("retrieval") else None
        kw = f"{sum(r['keywords_found'])}/{len(r['keywords'])}" if r["keywords"] else "-"
        out.append(f"| {r['id']} | {r['type']} | {r['lang']} | {fmt(rank) if rank else ('-' if not r.get('retrieval') else 'miss')} "
                   f"| {r['refused']} | {fmt(r.get('gold_cited'))} | {kw} | {fmt(r.get('latency_ms'))} |")
    return "\n".join(out) + "\n"


def write_charts(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """``metrics_by_type.png`` and ``first_gold_rank.png`` (matplotlib, headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    groups = list(report["by_type"])
    metrics = ["recall@5", "mrr", "gold_citation_recall", "keyword_accuracy", "refusal_recall"]
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(groups)), 4))
    width = 0.8 / len(metrics)
    for j, name in enumerate(metrics):
        vals = [report["by_type"][g].get(name) or 0.0 for g in groups]
        ax.bar([i + j * width for i in range(len(groups))], vals, width, label=name)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(groups))], groups, rotation=20)
    ax.set_ylim(0, 1.05)
    ax.set_title("Metrics by question type")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    p = out_dir / "metrics_by_type.png"
    fig.savefig(p, dpi=100)
    plt.close(fig)
    paths.append(p)

    ranks = [r["retrieval"]["first_rank"] for r in report["results"] if r.get("retrieval")]
    labels = [str(i) for i in range(1, 11)] + ["miss"]
    counts = [sum(1 for x in ranks if x == i) for i in range(1, 11)] + [sum(1 for x in ranks if x is None)]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(labels, counts, color=["#4c72b0"] * 10 + ["#c44e52"])
    ax.set_xlabel("rank of the first gold clause (top 10)")
    ax.set_ylabel("questions")
    ax.set_title("Rank of first gold hit")
    fig.tight_layout()
    p = out_dir / "first_gold_rank.png"
    fig.savefig(p, dpi=100)
    plt.close(fig)
    paths.append(p)
    return paths


def write_report(report: dict[str, Any], out_dir: Path, charts: bool = True) -> dict[str, Any]:
    """Write ``report.json``, ``report.md`` and (optionally) the charts into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    chart_paths = write_charts(report, out_dir) if charts else []
    (out_dir / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    (out_dir / "report.md").write_text(render_markdown(report, [str(p) for p in chart_paths]), encoding="utf-8")
    return {"json": out_dir / "report.json", "md": out_dir / "report.md", "charts": chart_paths}
