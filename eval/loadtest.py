"""HTTP figures for the web app: `/api/ask` under concurrent clients, and the time from `make run` to a
page that answers. A script that prints figures (not a test; nothing here asserts a timing).

Usage::

    python -m eval.loadtest                       # starts `policy-assistant serve` on a free port, 10 clients, 300 asks
    python -m eval.loadtest --url http://127.0.0.1:7860 --clients 10 --requests 300
    python -m eval.loadtest --startup             # also: `make run` until the page and /api/ask answer

Questions come from ``eval/datasets/dev.jsonl`` (zh and en, answerable and not), cycled.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from eval.metrics import latency_summary

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _questions(limit: int = 200) -> list[dict]:
    path = REPO / "eval" / "datasets" / "dev.jsonl"
    items = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            items.append({"question": item["question"], "history": item.get("history") or []})
    return items[:limit] or [{"question": "市服开办设在哪里？", "history": []}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("ANONYMIZED_TELEMETRY", "False")
    return env


def _answers(url: str, timeout: float = 60.0) -> bool:
    try:
        page = httpx.get(url + "/", timeout=timeout)
        ask = httpx.post(url + "/api/ask", json={"question": "市服开办设在哪里？"}, timeout=timeout)
    except httpx.HTTPError:
        return False
    return page.status_code == 200 and "gradio" in page.text.lower() and ask.status_code == 200 \
        and bool(ask.json().get("citations"))


@contextmanager
def _process(cmd: list[str], port: int) -> Iterator[subprocess.Popen]:
    env = _env()
    env["PORT"] = str(port)
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        yield proc
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _wait_until_answers(url: str, proc: subprocess.Popen, limit_s: float) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < limit_s:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise SystemExit(f"server exited with {proc.returncode}:\n{err[-2000:]}")
        try:
            if httpx.get(url + "/api/health", timeout=2).status_code == 200 and _answers(url):
                return time.perf_counter() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {limit_s:.0f} s")


def load(url: str, clients: int, requests: int) -> dict:
    questions = _questions()
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def worker() -> None:
        with httpx.Client(base_url=url, timeout=120) as client:
            while True:
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                body = questions[n % len(questions)]
                t0 = time.perf_counter()
                try:
                    r = client.post("/api/ask", json=body)
                    ok = r.status_code == 200 and "answer" in r.json()
                    err = None if ok else f"HTTP {r.status_code}: {r.text[:120]}"
                except httpx.HTTPError as exc:
                    err = f"{type(exc).__name__}: {exc}"
                dt = time.perf_counter() - t0
                with lock:
                    latencies.append(dt)
                    if err:
                        errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ms = sorted(x * 1000 for x in latencies)
    return {
        "requests": len(latencies), "clients": clients, "errors": len(errors), "error_samples": errors[:3],
        **latency_summary(ms),
        "requests_per_s": round(len(latencies) / wall, 2), "wall_s": round(wall, 1),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="An already running server; default: start `policy-assistant serve`.")
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--startup", action="store_true", help="Also time `make run` to a page that answers.")
    ap.add_argument("--json", action="store_true", help="Print one JSON object.")
    args = ap.parse_args(argv)
    command = "python -m eval.loadtest " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    out: dict = {"command": command.strip(), "cpus": os.cpu_count(),
                 "omp_num_threads": _env()["OMP_NUM_THREADS"]}

    if args.startup:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        with _process(["make", "run"], port) as proc:
            out["make_run_to_answer_s"] = round(_wait_until_answers(url, proc, 600), 1)

    if args.url:
        out["url"] = args.url
        out["load"] = load(args.url.rstrip("/"), args.clients, args.requests)
    else:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        with _process([str(BIN / "policy-assistant"), "serve", "--port", str(port)], port) as proc:
            out["serve_to_answer_s"] = round(_wait_until_answers(url, proc, 600), 1)
            _answers(url)  # warm-up
            out["load"] = load(url, args.clients, args.requests)

    if args.json:
        print(json.dumps(out, ensure_ascii=False))
        return
    print(f"$ {out['command']}")
    print(f"machine: {out['cpus']} CPUs, OMP_NUM_THREADS={out['omp_num_threads']}")
    if "make_run_to_answer_s" in out:
        print(f"make run -> page + /api/ask answering: {out['make_run_to_answer_s']} s")
    if "serve_to_answer_s" in out:
        print(f"policy-assistant serve -> answering: {out['serve_to_answer_s']} s")
    r = out["load"]
    print(f"POST /api/ask, {r['clients']} concurrent clients, {r['requests']} requests: "
          f"p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms, max {r['max_ms']} ms, errors {r['errors']}, "
          f"{r['requests_per_s']} requests/s (wall {r['wall_s']} s)")
    for e in r["error_samples"]:
        print(f"  error: {e}")


if __name__ == "__main__":
    main()
