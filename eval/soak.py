"""Soak and hostile-request runs against the web server: figures, not a test (nothing here asserts a time).

* **soak**: ``--clients`` keep-alive clients for ``--seconds``, each sending a mix of ``/api/ask`` (60%),
  ``/api/search`` (30%) and ``/api/health`` (10%). Counted apart: answers (2xx), overload (503 with
  ``Retry-After``, the server's explicit "busy"), other 4xx, 5xx, and *dropped* requests (no HTTP
  response: connection reset, read error, timeout). p50/p95 are over the 2xx answers.
* **hostile** (``--hostile N``): N requests cycling through the attack and bad-input cases below (lone
  surrogates, huge histories, bad JSON, wrong tokens, path traversal, foreign Host and Origin headers,
  oversize bodies, control characters, bad OpenAI requests, Gradio's upload without a token…), several
  clients at once; per case the status codes seen; 5xx and dropped counted.

Usage::

    python -m eval.soak                                   # starts `policy-assistant serve`; 100 clients, 60 s
    python -m eval.soak --clients 100 --seconds 60 --hostile 1200
    python -m eval.soak --url http://127.0.0.1:7860 --clients 20 --seconds 10
    make soak                                             # both, with the defaults above

The server it starts uses the data folder of the environment (``POLICY_DATA_DIR``), built by
``policy-assistant ingest`` first when empty.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from eval.loadtest import BIN, _free_port, _process, _questions, _wait_until_answers
from eval.metrics import latency_summary

#: A hostile case: a name and a function that sends one request with the client and returns the response.
Case = tuple[str, Callable[[httpx.Client], httpx.Response]]

_JSON = {"Content-Type": "application/json"}


def hostile_cases() -> list[Case]:
    """The attack and bad-input requests of issue 11's probing (and a few more), each a small function."""
    big_turn = "外国医生能开诊所吗" * 500
    history = [[big_turn, "好"] for _ in range(60)]  # ~0.5 MB of history: cut by MAX_HISTORY_*
    cases: list[Case] = [
        ("lone surrogate question", lambda c: c.post("/api/ask", content=b'{"question":"\\ud800"}', headers=_JSON)),
        ("lone surrogate query", lambda c: c.post("/api/search", content=b'{"query":"\\udfff abc"}', headers=_JSON)),
        ("lone surrogate stream", lambda c: c.post("/api/ask/stream", content=b'{"question":"\\ud800"}',
                                                   headers=_JSON)),
        ("surrogate in history", lambda c: c.post("/api/ask", content=b'{"question":"\\u90a3\\u62a4\\u58eb\\u5462",'
                                                                      b'"history":[["\\ud800","x"]]}', headers=_JSON)),
        ("huge history", lambda c: c.post("/api/ask", json={"question": "那护士呢？", "history": history})),
        ("zero-width question", lambda c: c.post("/api/ask", json={"question": "\u200b\u200c\u200d\ufeff"})),
        ("control characters", lambda c: c.post("/api/ask", json={"question": "\x00\x01\x1b[31m"})),
        ("over-long question", lambda c: c.post("/api/ask", json={"question": "福" * 50_000})),
        ("malformed JSON", lambda c: c.post("/api/ask", content=b'{"question": "abc', headers=_JSON)),
        ("invalid UTF-8", lambda c: c.post("/api/ask", content=b'{"question": "\xff\xfe"}', headers=_JSON)),
        ("wrong content type", lambda c: c.post("/api/ask", content=b"question=abc",
                                                headers={"Content-Type": "text/plain"})),
        ("empty body", lambda c: c.post("/api/search", content=b"", headers=_JSON)),
        ("wrong types", lambda c: c.post("/api/search", json={"query": ["a"], "k": "many"})),
        ("k out of range", lambda c: c.post("/api/search", json={"query": "数据", "k": 10**9})),
        ("upload without token", lambda c: c.post("/api/documents", files={"file": ("a.txt", b"x", "text/plain")})),
        ("upload wrong token", lambda c: c.post("/api/documents", files={"file": ("a.txt", b"x", "text/plain")},
                                                headers={"Authorization": "Bearer nope"})),
        ("delete wrong token", lambda c: c.delete("/api/documents/fz-plan", headers={"Authorization": "Basic eDp4"})),
        ("traversal clause", lambda c: c.get("/api/clauses/..%2F..%2F..%2Fetc%2Fpasswd")),
        ("traversal document", lambda c: c.get("/api/documents/%2e%2e%2f%2e%2e%2fetc%2fpasswd")),
        ("traversal gradio file", lambda c: c.get("/gradio_api/file=/etc/passwd")),
        ("traversal static", lambda c: c.get("/api/_docs-static/../../../../etc/passwd")),
        ("foreign Host", lambda c: c.get("/api/health", headers={"Host": "attacker.example"})),
        ("foreign Origin preflight", lambda c: c.options("/api/ask", headers={
            "Origin": "http://localhost:9999", "Access-Control-Request-Method": "POST"})),
        ("oversize body", lambda c: c.post("/api/ask", content=b'{"question":"' + b"a" * (12 * 1024 * 1024) + b'"}',
                                           headers=_JSON)),
        ("very long path", lambda c: c.get("/api/clauses/" + "a" * 6000)),
        ("NUL in query string", lambda c: c.get("/api/documents/fz-plan/table?q=%00%00&format=csv")),
        ("bad table format", lambda c: c.get("/api/documents/fz-plan/table?format=exe")),
        ("gradio upload no token", lambda c: c.post("/gradio_api/upload", files={"files": ("a.txt", b"x" * 1000)})),
        ("v1 no messages", lambda c: c.post("/v1/chat/completions", json={"model": "policy-assistant"})),
        ("v1 bad role", lambda c: c.post("/v1/chat/completions", json={
            "model": "policy-assistant", "messages": [{"role": "hacker", "content": "hi"}]})),
        ("v1 unknown model", lambda c: c.post("/v1/chat/completions", json={
            "model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]})),
        ("v1 huge content", lambda c: c.post("/v1/chat/completions", json={
            "model": "policy-assistant", "messages": [{"role": "user", "content": "x" * 200_000}]})),
        ("v1 surrogate", lambda c: c.post("/v1/chat/completions", content=b'{"model":"policy-assistant","messages":'
                                                                          b'[{"role":"user","content":"\\ud800"}]}',
                                          headers=_JSON)),
        ("v1 stream with bad input", lambda c: c.post("/v1/chat/completions", json={
            "model": "policy-assistant", "stream": True, "messages": []})),
        ("mcp garbage", lambda c: c.post("/mcp", content=b"not json", headers={
            **_JSON, "Accept": "application/json, text/event-stream"})),
        ("feedback bad verdict", lambda c: c.post("/api/feedback", json={"question": "q", "answer": "a",
                                                                         "citations": [], "verdict": "meh"})),
        ("export unknown clause", lambda c: c.post("/api/export?format=md", json={
            "question": "q", "answer": "a", "citations": [{"clause_id": "../../etc/passwd"}]})),
        ("method not allowed", lambda c: c.put("/api/ask", json={"question": "x"})),
        ("unknown route", lambda c: c.get("/api/../../etc/passwd")),
    ]
    return cases


@dataclass
class Tally:
    """Counts and latencies of one run (thread-safe through ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter[int] = field(default_factory=Counter)
    by_case: dict[str, Counter[str]] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    ok_ms: list[float] = field(default_factory=list)

    def add(self, case: str, status: int | None, ms: float, error: str | None = None) -> None:
        with self.lock:
            key = str(status) if status is not None else "dropped"
            self.by_case.setdefault(case, Counter())[key] += 1
            if status is None:
                self.dropped.append(f"{case}: {error}")
                return
            self.statuses[status] += 1
            if 200 <= status < 300:
                self.ok_ms.append(ms)

    def summary(self) -> dict[str, Any]:
        total = sum(self.statuses.values()) + len(self.dropped)
        ms = sorted(self.ok_ms)
        return {
            "requests": total,
            "answered_2xx": sum(n for s, n in self.statuses.items() if 200 <= s < 300),
            "overload_503": self.statuses.get(503, 0),
            "other_4xx": sum(n for s, n in self.statuses.items() if 400 <= s < 500),
            "server_errors_5xx": sum(n for s, n in self.statuses.items() if s >= 500 and s != 503),
            "dropped": len(self.dropped),
            "dropped_samples": self.dropped[:5],
            **{k: v for k, v in latency_summary(ms).items() if k in ("p50_ms", "p95_ms")},
            "statuses": dict(sorted(self.statuses.items())),
        }


def _send(tally: Tally, case: str, action: Callable[[], httpx.Response]) -> None:
    t0 = time.perf_counter()
    try:
        r = action()
        r.read()
        tally.add(case, r.status_code, (time.perf_counter() - t0) * 1000)
    except httpx.HTTPError as exc:
        tally.add(case, None, 0.0, f"{type(exc).__name__}: {str(exc)[:100]}")


def soak(url: str, clients: int, seconds: float, seed: int = 0) -> dict[str, Any]:
    """``clients`` keep-alive clients sending a mix of ask/search/health for ``seconds``."""
    questions = _questions()
    tally = Tally()
    stop = time.perf_counter() + seconds

    def worker(n: int) -> None:
        rng = random.Random(seed + n)
        with httpx.Client(base_url=url, timeout=120) as client:
            while time.perf_counter() < stop:
                q = questions[rng.randrange(len(questions))]
                roll = rng.random()
                if roll < 0.6:
                    _send(tally, "ask", lambda: client.post("/api/ask", json=q))
                elif roll < 0.9:
                    _send(tally, "search", lambda: client.post("/api/search", json={"query": q["question"], "k": 5}))
                else:
                    _send(tally, "health", lambda: client.get("/api/health"))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out = tally.summary()
    out.update(clients=clients, seconds=round(time.perf_counter() - start, 1))
    return out


def hostile(url: str, requests: int, clients: int = 8) -> dict[str, Any]:
    """``requests`` hostile requests cycling through :func:`hostile_cases`, ``clients`` at a time."""
    cases = hostile_cases()
    tally = Tally()
    lock = threading.Lock()
    counter = iter(range(requests))

    def worker() -> None:
        with httpx.Client(base_url=url, timeout=120) as client:
            while True:
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                name, send = cases[n % len(cases)]
                _send(tally, name, lambda: send(client))

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out = tally.summary()
    out["cases"] = {name: dict(sorted(c.items())) for name, c in sorted(tally.by_case.items())}
    return out


def slow_connections(url: str, count: int, wait_s: float = 30.0) -> dict[str, Any]:
    """Open ``count`` connections that never finish their request headers (half send nothing, half trickle a
    partial request line) and count how many the server closes within ``wait_s``; /api/health is asked
    meanwhile (slow sockets must not starve real requests)."""
    import socket
    import threading
    import urllib.parse

    parsed = urllib.parse.urlsplit(url)
    host, port = parsed.hostname or "127.0.0.1", int(parsed.port or 80)
    closed, errors = [0], [0]
    lock = threading.Lock()
    start = time.monotonic()

    def one(i: int) -> None:
        try:
            sock = socket.create_connection((host, port), timeout=10)
        except OSError:
            with lock:
                errors[0] += 1
            return
        with sock:
            if i % 2:
                sock.sendall(b"GET /api/health HTTP/1.1\r\nHo")
            sock.settimeout(max(0.1, wait_s - (time.monotonic() - start)))
            try:
                while sock.recv(4096):
                    pass
                gone = True
            except (TimeoutError, OSError) as exc:
                gone = not isinstance(exc, TimeoutError)
            if gone:
                with lock:
                    closed[0] += 1

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    health = httpx.get(url + "/api/health", timeout=30).status_code
    for t in threads:
        t.join(wait_s + 15)
    return {"opened": count - errors[0], "connect_errors": errors[0], "closed_by_server": closed[0],
            "still_open": count - errors[0] - closed[0], "health_meanwhile": health,
            "seconds": round(time.monotonic() - start, 1)}


def _print_run(title: str, r: dict[str, Any]) -> None:
    print(f"{title}: {r['requests']} requests — 2xx {r['answered_2xx']}, overload 503 {r['overload_503']}, "
          f"other 4xx {r['other_4xx']}, 5xx {r['server_errors_5xx']}, dropped {r['dropped']}"
          + (f"; 2xx p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms" if r.get("p50_ms") is not None else ""))
    for sample in r["dropped_samples"]:
        print(f"  dropped: {sample}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="An already running server; default: start `policy-assistant serve`.")
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--hostile", type=int, default=0, help="Also send this many hostile requests.")
    ap.add_argument("--slow", type=int, default=0,
                    help="Also open this many connections that never finish their headers; count those closed.")
    ap.add_argument("--json", action="store_true", help="Print one JSON object.")
    args = ap.parse_args(argv)
    command = "python -m eval.soak " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    out: dict[str, Any] = {"command": command.strip(), "cpus": os.cpu_count()}

    def run(url: str) -> None:
        if args.seconds > 0 and args.clients > 0:
            out["soak"] = soak(url, args.clients, args.seconds)
        if args.hostile:
            out["hostile"] = hostile(url, args.hostile)
        if args.slow:
            out["slow"] = slow_connections(url, args.slow)
        out["health_after"] = httpx.get(url + "/api/health", timeout=30).status_code

    if args.url:
        run(args.url.rstrip("/"))
    else:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        with _process([str(BIN / "policy-assistant"), "serve", "--port", str(port)], port) as proc:
            _wait_until_answers(url, proc, 600)
            run(url)
    if args.json:
        print(json.dumps(out, ensure_ascii=False))
        return 0
    print(f"$ {out['command']}")
    print(f"machine: {out['cpus']} CPUs")
    if "soak" in out:
        s = out["soak"]
        _print_run(f"soak, {s['clients']} keep-alive clients for {s['seconds']} s", s)
    if "hostile" in out:
        h = out["hostile"]
        _print_run("hostile requests", h)
        for name, seen in h["cases"].items():
            print(f"  {name:28s} {seen}")
    if "slow" in out:
        w = out["slow"]
        print(f"slow connections: {w['opened']} opened (silent or a partial request line), {w['closed_by_server']} "
              f"closed by the server, {w['still_open']} still open after {w['seconds']} s; "
              f"/api/health meanwhile {w['health_meanwhile']}")
    print(f"/api/health afterwards: {out['health_after']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
