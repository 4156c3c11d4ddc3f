"""`serve --workers N`: several uvicorn workers on one Chroma server; refused on the embedded store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from servers import chroma_run, free_port

pytestmark = pytest.mark.model

CLI = str(Path(sys.executable).with_name("policy-assistant"))


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CHROMA_HOST", "CHROMA_PORT")}
    env.update({"POLICY_DATA_DIR": str(tmp_path / "data"), "LLM_PROVIDER": "none", "OMP_NUM_THREADS": "1", **extra})
    return env


def test_workers_refused_on_the_embedded_store(tmp_path: Path) -> None:
    res = subprocess.run([CLI, "serve", "--workers", "2", "--port", str(free_port())], capture_output=True,
                         text=True, env=_env(tmp_path), timeout=120)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --workers 2 needs a Chroma server (set CHROMA_HOST")
    assert not (tmp_path / "data" / "chroma").exists()  # refused before touching the store


@pytest.fixture()
def chroma_port(tmp_path: Path) -> Iterator[int]:
    with chroma_run(tmp_path / "chroma") as port:
        yield port


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def test_two_workers_on_a_chroma_server_answer(tmp_path: Path, chroma_port: int) -> None:
    port = free_port()
    env = _env(tmp_path, CHROMA_HOST="127.0.0.1", CHROMA_PORT=str(chroma_port))
    proc = subprocess.Popen([CLI, "serve", "--workers", "2", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        health = None
        for _ in range(600):
            if proc.poll() is not None:
                pytest.fail(f"serve exited {proc.returncode}: {proc.stderr.read()[-600:]}")
            try:
                health = httpx.get(f"{base}/api/health", timeout=5)
                break
            except httpx.HTTPError:
                time.sleep(0.5)
        assert health is not None and health.status_code == 200
        assert health.json()["documents"] >= 14
        # the parent supervises two worker processes (plus multiprocessing's resource tracker at most)
        workers = [c for c in _children(proc.pid)
                   if "resource_tracker" not in Path(f"/proc/{c}/cmdline").read_text(errors="replace")]
        assert len(workers) == 2
        for _ in range(6):  # new connections each time, spread over the workers by the kernel
            r = httpx.post(f"{base}/api/search", json={"query": "数据出境安全评估", "k": 3}, timeout=60)
            assert r.status_code == 200 and r.json()["hits"]
        r = httpx.post(f"{base}/api/ask", json={"question": "到2028年服务业增加值要达到多少？"}, timeout=60)
        assert r.status_code == 200 and r.json()["citations"]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
