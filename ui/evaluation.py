"""The 评测 tab's work, apart from its widgets: read a dataset (the shipped dev set, an uploaded or pasted
JSONL file) with eval's loader, run it with eval's runner and report writer — the code path of
``policy-assistant eval`` — keep each run under ``<data dir>/eval-runs/``, and compare two runs.

``eval`` never imports ``ui``; this module imports ``eval`` only inside its functions (as
:func:`ui.cli._add_eval` does), so the page works, without the tab, where ``eval`` is not installed.

Usage::

    items, name = load_items("paste", text="{...}\\n{...}")      # DatasetProblem with line numbers if bad
    run = run_dataset(assistant, items, name, runs_dir(settings), progress=lambda n, total: None)
    run.report["metrics"]["mrr"], run.md_path, run.json_path
    compare_runs(runs_dir(settings) / a, runs_dir(settings) / b)  # Markdown
"""

from __future__ import annotations

import datetime as _dt
import html
import importlib.util
import json
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["available", "DatasetProblem", "load_items", "run_dataset", "EvalRun", "runs_dir", "list_runs",
           "compare_runs", "headline_rows", "breakdown_rows", "failures_html", "gold_problems", "MAX_ERRORS"]

MAX_ERRORS = 50
BREAKDOWN_METRICS = ("n", "recall@5", "mrr", "gold_citation_recall", "citation_precision", "keyword_accuracy",
                     "refusal_recall", "false_refusal_rate", "latency_p50_ms")


def available() -> bool:
    """Whether the eval package (runner, report) can be imported here."""
    try:
        return importlib.util.find_spec("eval.runner") is not None
    except ModuleNotFoundError:
        return False


class DatasetProblem(ValueError):
    """A dataset that cannot be used; ``errors`` are line-numbered messages (``name:3: question: …``)."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__(errors[0] if errors else "invalid dataset")
        self.errors = errors


def _line_errors(text: str, name: str) -> list[str]:
    """Every bad line of a JSONL dataset, each checked by eval's own item model (not just the first)."""
    from pydantic import ValidationError

    from eval.dataset import EvalItem

    errors: list[str] = []
    seen: set[str] = set()
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = EvalItem.model_validate(json.loads(line))
        except json.JSONDecodeError as exc:
            errors.append(f"{name}:{n}: not JSON ({exc.msg})")
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "line"
            errors.append(f"{name}:{n}: {where}: {first['msg']}")
        else:
            if item.id in seen:
                errors.append(f"{name}:{n}: duplicate id {item.id!r}")
            seen.add(item.id)
    return errors


def load_items(source: str, path: str | Path | None = None, text: str | None = None) -> tuple[list[Any], str]:
    """The items of a dataset and a name to show for it.

    Args:
        source: ``dev`` (the shipped dev set), ``upload`` (the JSONL file at ``path``) or ``paste`` (``text``).

    Raises:
        DatasetProblem: with every bad line (eval's :func:`~eval.dataset.load_dataset` decides; the other
            lines are listed too so that one upload shows all the problems).
    """
    from eval.dataset import DEV, DatasetError, load_dataset

    if source == "dev":
        file, name = DEV, "eval/datasets/dev.jsonl"
    elif source == "upload":
        if not path:
            raise DatasetProblem(["请先选择一个 JSONL 文件。"])
        file = Path(path)
        name = file.name
    elif source == "paste":
        if not (text or "").strip():
            raise DatasetProblem(["请粘贴 JSONL 内容（每行一个问题）。"])
        tmp = Path(tempfile.mkdtemp(prefix="pa-eval-")) / "pasted.jsonl"
        tmp.write_text(str(text), encoding="utf-8")
        file, name = tmp, "粘贴的数据"
    else:
        raise DatasetProblem([f"unknown dataset source {source!r}"])
    try:
        items = load_dataset(file)
    except DatasetError as exc:
        message = str(exc).replace(str(file), name)
        try:
            body = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            raise DatasetProblem([message]) from exc
        errors = _line_errors(body, name) or [message]
        if message not in errors:
            errors.insert(0, message)
        raise DatasetProblem(errors[:MAX_ERRORS]) from exc
    return items, name


def gold_problems(assistant: Any, items: Sequence[Any]) -> list[str]:
    """Gold ids/quotes of ``items`` that exist nowhere in the assistant's index (eval's check)."""
    from eval.dataset import assistant_clauses, validate

    return validate(items, assistant_clauses(assistant))


@dataclass(frozen=True)
class EvalRun:
    report: dict[str, Any]
    folder: Path
    md_path: Path
    json_path: Path
    charts: list[Path]


def runs_dir(settings: Any) -> Path:
    """Where the page keeps its runs: ``<data dir>/eval-runs``."""
    return Path(settings.data_dir) / "eval-runs"


def _slug(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z\u4e00-\u9fff._-]+", "-", Path(name).stem)[:40].strip("-") or "dataset"


def run_dataset(assistant: Any, items: Sequence[Any], dataset: str, root: Path,
                progress: Callable[[int, int], None] | None = None, charts: bool = True) -> EvalRun:
    """Run ``items`` in process, as ``policy-assistant eval`` does, and write the report into a new folder
    under ``root``: eval's :func:`~eval.runner.run_eval` with the support judge, the judge's agreement with
    the hand labels, and :func:`~eval.report.write_report` (report.md, report.json, the charts)."""
    import time

    from eval.calibrate import load_support_labels, support_agreement
    from eval.report import write_report
    from eval.runner import InProcessBackend, run_eval

    assistant.ensure_index()
    judge = assistant.judge
    t0 = time.perf_counter()
    report = run_eval(list(items), InProcessBackend(assistant), judge=judge, dataset=dataset,
                      progress=(lambda n, total, _rec: progress(n, total)) if progress else None)
    report["config"]["wall_time_s"] = round(time.perf_counter() - t0, 1)
    report["config"]["support_judge_model"] = getattr(getattr(judge, "embedder", None), "spec", "use-m3")
    report["support_agreement"] = {k: v for k, v in support_agreement(judge, load_support_labels()).items()
                                   if k != "disagreements"}
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S")
    folder = Path(root) / f"{stamp}-{_slug(dataset)}"
    n = 2
    while folder.exists():
        folder = Path(root) / f"{stamp}-{_slug(dataset)}-{n}"
        n += 1
    paths = write_report(report, folder, charts=charts)
    return EvalRun(report, folder, Path(paths["md"]), Path(paths["json"]), [Path(p) for p in paths["charts"]])


def list_runs(root: Path) -> list[tuple[str, str]]:
    """Saved runs, newest first, as (label, folder) choices: ``20261129-001500-dev · 3 题 · MRR 0.833``."""
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for folder in sorted((p for p in root.iterdir() if (p / "report.json").is_file()), reverse=True):
        try:
            m = json.loads((folder / "report.json").read_text(encoding="utf-8")).get("metrics", {})
        except (OSError, ValueError):
            continue
        mrr = m.get("mrr")
        out.append((f"{folder.name} · {m.get('n', '?')} 题 · MRR {mrr:.3f}" if isinstance(mrr, float)
                    else f"{folder.name} · {m.get('n', '?')} 题", str(folder)))
    return out


def compare_runs(a: str | Path, b: str | Path) -> str:
    """Two saved runs side by side (eval's :func:`~eval.compare.render_comparison`), as Markdown."""
    from eval.compare import render_comparison
    from eval.report import load_report

    return render_comparison(load_report(Path(a)), load_report(Path(b)), Path(a).name, Path(b).name)


def _fmt(value: Any) -> str:
    from eval.report import fmt

    return fmt(value)


def headline_rows(report: dict[str, Any]) -> list[list[str]]:
    """[metric, value] rows: eval's headline metrics, then false refusals and latency."""
    from eval.metrics import HEADLINE

    m = report["metrics"]
    keys = ("n", "n_answerable", "n_unanswerable", *HEADLINE, "false_refusal_rate", "latency_p50_ms",
            "latency_p95_ms")
    return [[k, _fmt(m.get(k))] for k in keys]


def breakdown_rows(report: dict[str, Any], section: str) -> tuple[list[str], list[list[str]]]:
    """(headers, rows) of one breakdown (``by_type``, ``by_register``, ``by_lang``, ``by_refuse_kind``)."""
    headers = ["group", *BREAKDOWN_METRICS]
    rows = [[group, *(_fmt(m.get(k)) for k in BREAKDOWN_METRICS)] for group, m in report.get(section, {}).items()]
    return headers, rows


def failures_html(report: dict[str, Any], limit: int = 200) -> str:
    """Each failed question: why, the assistant's answer, the gold and what it cited."""
    esc = html.escape
    failed = [r for r in report.get("results", []) if r.get("failures")]
    if not failed:
        return '<p class="pa-eval-ok">没有失败的问题。</p>'
    shown = f"（显示前 {limit} 个）" if len(failed) > limit else ""
    out = [f"<p>{len(failed)} 个问题未通过{shown}：</p>"]
    for r in failed[:limit]:
        gold = "必须拒答" if r.get("must_refuse") else "；".join(
            u.replace("id:", "条款 ").replace("quote:", "原文 ") for u in r.get("gold_units", []))
        cited = "，".join(f"{c.get('clause_id')}{' ✓' if c.get('matched') else ''}" for c in r.get("citations", []))
        out.append(
            f'<details class="pa-eval-fail"><summary><b>{esc(str(r["id"]))}</b> '
            f'<span class="pa-src">({esc(str(r.get("type")))}, {esc(str(r.get("lang")))})</span> '
            f'{esc(str(r["question"]))}</summary>'
            '<ul>' + "".join(f"<li>{esc(f)}</li>" for f in r["failures"]) + '</ul>'
            f'<div><b>标准答案（gold）：</b>{esc(gold)}</div>'
            f'<div><b>引用：</b>{esc(cited or "无")}；拒答：{"是" if r.get("refused") else "否"}</div>'
            f'<div><b>回答：</b><div class="pa-eval-answer">{esc(str(r.get("answer", "")))}</div></div>'
            '</details>')
    return "\n".join(out)
