"""Benchmarks (``make bench`` = ``python -m eval.bench``), printed with the command and the targets.

* quality on the dev set (answerable questions): Recall@1, Recall@5, MRR; refusal recall on the
  questions that must be refused and the share of answerable questions refused;
* warm retrieval latency: ``PolicyAssistant.search`` per query, p50/p95 over at least 200 queries
  (the dev questions, repeated) after a warm-up;
* ingestion: building the shipped corpus into a fresh temporary data folder (model load reported apart);
* cold start: wall time of ``policy-assistant ask "<q>"`` as a subprocess with the index built
  (median of 3), and its peak memory (measured from a small launcher process, so the bench's own
  memory does not leak into the child's high-water mark);
* peak memory (max RSS) of this process.

Usage::

    python -m eval.bench [--embedding-model e5-small] [--queries 300] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGETS = {"recall@5": ">= 0.97", "mrr": ">= 0.92", "refusal_recall": ">= 0.90", "false_refusal_rate": "<= 0.03",
           "search_p50_ms": "<= 30", "ask_p50_ms": "<= 60", "ingest_s": "<= 30", "cold_start_s": "<= 4",
           "upload_clauses_per_s": ">= 20"}

COLD_QUESTION = "市服开办设在哪里？"


def _met(name: str, value: float | None) -> str:
    if value is None or name not in TARGETS:
        return ""
    op, bound = TARGETS[name].split()
    ok = value >= float(bound) if op == ">=" else value <= float(bound)
    return "ok" if ok else "MISSED"


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("policy-assistant")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ui.cli"]


# Runs the command and reports its wall time and peak RSS. It runs in a fresh small interpreter: a child
# forked straight from the bench process would inherit the bench's RSS high-water mark (Linux counts the
# forked copy of the parent's memory in the child's ru_maxrss), so its peak memory would be wrong.
_LAUNCHER = """
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
p = subprocess.run(sys.argv[1:], capture_output=True, check=False)
wall = time.perf_counter() - t0
print(json.dumps({"wall": wall, "rc": p.returncode, "out": p.stdout.decode("utf-8", "replace")[:200],
                  "err": p.stderr.decode("utf-8", "replace")[-300:],
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def _launch(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``cmd`` from a small launcher: its wall time and peak RSS (max RSS of the launcher's child)."""
    res = subprocess.run([sys.executable, "-c", _LAUNCHER, *cmd], env=env, capture_output=True, text=True,
                         check=False)
    if res.returncode != 0 or not res.stdout.strip():
        raise RuntimeError(f"launcher failed: {res.stderr.strip()[-300:]}")
    info = json.loads(res.stdout.strip().splitlines()[-1])
    info["maxrss_mb"] = info["maxrss_kb"] / 1024
    return info


def cold_start(data_dir: Path, question: str = COLD_QUESTION, runs: int = 3,
               extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """Median wall time and peak RSS of ``policy-assistant ask QUESTION`` in a subprocess."""
    env = {**os.environ, "POLICY_DATA_DIR": str(data_dir), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           **(extra_env or {})}
    times, rss, out = [], [], ""
    for _ in range(runs):
        info = _launch([*_cli(), "ask", question], env)
        if info["rc"] != 0:
            raise RuntimeError(f"policy-assistant ask failed ({info['rc']}): {info['err'].strip()}")
        times.append(info["wall"])
        rss.append(info["maxrss_mb"])
        out = info["out"]
    return {"cold_start_s": statistics.median(times), "cold_start_runs_s": [round(t, 3) for t in times],
            "cold_start_peak_rss_mb": max(rss), "answer_head": out.strip().splitlines()[0] if out.strip() else ""}


def run(embedding_model: str | None = None, queries: int = 236, cold_runs: int = 3) -> dict[str, Any]:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from assistant.service import PolicyAssistant
    from assistant.settings import Settings
    from eval.dataset import DEV, load_dataset
    from eval.metrics import percentile
    from eval.runner import InProcessBackend, run_eval

    extra: dict[str, Any] = {"llm_provider": "none"}
    if embedding_model:
        extra["embedding_model"] = embedding_model
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        out: dict[str, Any] = {}
        assistant = PolicyAssistant(Settings(**{"data_dir": tmp, **extra}))
        out["embedding_model"] = assistant.settings.embedding_model
        out["embedding_models"] = " + ".join(assistant.active_embedding_models)
        out["retrieval_mode"] = assistant.settings.retrieval_mode
        t0 = time.perf_counter()
        assistant.embedder.embed_query("预热")
        out["model_load_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        docs = assistant.ensure_index()
        out["ingest_s"] = time.perf_counter() - t0
        out["ingest_documents"] = docs
        out["ingest_clauses"] = sum(d.clauses for d in assistant.documents())

        items = load_dataset(DEV)
        report = run_eval(items, InProcessBackend(assistant), judge=None, dataset=str(DEV))
        m = report["metrics"]
        out.update({k: m[k] for k in ("recall@1", "recall@5", "mrr", "refusal_recall", "false_refusal_rate",
                                      "refusal_precision")})
        out["dev_questions"] = len(items)

        qs = [i.question for i in items]
        for q in qs[:20]:  # warm-up
            assistant.search(q, k=10)
        lat = []
        for n in range(max(queries, 200)):
            t0 = time.perf_counter()
            assistant.search(qs[n % len(qs)], k=10)
            lat.append((time.perf_counter() - t0) * 1000)
        out["search_queries"] = len(lat)
        out["search_p50_ms"] = percentile(lat, 50)
        out["search_p95_ms"] = percentile(lat, 95)
        lat = []
        for q in qs:
            t0 = time.perf_counter()
            assistant.ask(q)
            lat.append((time.perf_counter() - t0) * 1000)
        out["ask_p50_ms"] = percentile(lat, 50)
        out["ask_p95_ms"] = percentile(lat, 95)
        out.update(upload_throughput(assistant, tmp))
        out["process_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        env = {"EMBEDDING_MODEL": assistant.settings.embedding_model, "LLM_PROVIDER": "none"}
        out.update(cold_start(tmp, runs=cold_runs, extra_env=env))
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def upload_throughput(assistant: Any, tmp: Path, n: int = 120) -> dict[str, Any]:
    """Clauses/s of an upload whose texts are new (no cached vectors): shipped clauses, each made unique.

    The texts are the shipped corpus's own sentences with a numbered prefix, so their length and
    vocabulary are those of real policy text while every one of them must be embedded.
    """
    clauses = [c for c in assistant.retriever.snapshot.clauses if 20 <= len(c.text) <= 200][:n]
    stamp = int(time.time())
    lines = ["# 标题：基准测试上传文件", ""]
    lines += [f"第{i + 1}条 （测试{stamp}-{i}）{c.text}" for i, c in enumerate(clauses)]
    path = tmp / f"bench-upload-{stamp}.txt"
    path.write_text("\n".join(lines), encoding="utf-8")
    t0 = time.perf_counter()
    parsed, _ = assistant.ingest_path(path, doc_id=f"bench-upload-{stamp}")
    wall = time.perf_counter() - t0
    return {"upload_clauses": len(parsed.clauses), "upload_s": wall,
            "upload_clauses_per_s": len(parsed.clauses) / wall if wall else None}


def render(res: dict[str, Any], command: str) -> str:
    rows = [
        ("dev R@1 (answerable)", "recall@1", "{:.3f}"), ("dev R@5 (answerable)", "recall@5", "{:.3f}"),
        ("dev MRR (answerable)", "mrr", "{:.3f}"), ("refusal recall (must refuse)", "refusal_recall", "{:.3f}"),
        ("answerable refused", "false_refusal_rate", "{:.3f}"),
        ("refusal precision", "refusal_precision", "{:.3f}"),
        (f"search p50, warm ({res['search_queries']} queries)", "search_p50_ms", "{:.1f} ms"),
        ("search p95, warm", "search_p95_ms", "{:.1f} ms"),
        (f"ask p50, warm (extractive, {res['dev_questions']} questions)", "ask_p50_ms", "{:.1f} ms"),
        ("ask p95, warm", "ask_p95_ms", "{:.1f} ms"),
        (f"upload of new text ({res['upload_clauses']} clauses, all embedded)", "upload_clauses_per_s", "{:.1f} /s"),
        (f"shipped corpus ready ({res['ingest_documents']} docs, {res['ingest_clauses']} clauses; shipped vectors)",
         "ingest_s",
         "{:.1f} s"),
        ("  embedding model load (before ingest)", "model_load_s", "{:.2f} s"),
        ("cold start `policy-assistant ask` (median of 3)", "cold_start_s", "{:.2f} s"),
        ("  peak RSS of that subprocess", "cold_start_peak_rss_mb", "{:.0f} MB"),
        ("peak RSS of the bench process", "process_peak_rss_mb", "{:.0f} MB"),
    ]
    lines = [f"$ {command}", f"embedding models {res['embedding_models']}, retrieval {res['retrieval_mode']}, "
             f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, {os.cpu_count()} CPUs, "
             f"dev set {res['dev_questions']} questions", "",
             f"| {'measure':<58} | {'value':>10} | {'target':>8} |     |", f"|{'-' * 60}|{'-' * 12}|{'-' * 10}|-----|"]
    for label, key, f in rows:
        v = res.get(key)
        val = f.format(v) if isinstance(v, (int, float)) else "-"
        lines.append(f"| {label:<58} | {val:>10} | {TARGETS.get(key, ''):>8} | {_met(key, v):<3} |")
    lines.append(f"\ncold-start runs: {res['cold_start_runs_s']} s; answer began: {res['answer_head'][:60]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.bench", description="Benchmarks with their targets.")
    parser.add_argument("--embedding-model", default=None)
    parser.add_argument("--queries", type=int, default=236, help="warm search queries (at least 200)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    command = "python -m eval.bench " + " ".join(argv if argv is not None else sys.argv[1:])
    res = run(args.embedding_model, args.queries)
    if args.json:
        print(json.dumps({"command": command.strip(), **res}, ensure_ascii=False, indent=1))
    else:
        print(render(res, command.strip()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
