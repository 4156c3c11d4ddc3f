"""Slow half-open connections are closed, and the page's temp files are cleaned (issue 11).

A real uvicorn server (``ui.server.server_config``, the configuration ``policy-assistant serve`` uses) on a
free port with a tiny app: a client that sends nothing, or half a request line, is disconnected; without the
guard uvicorn would keep both sockets open forever. The socket timeouts only bound how long the test waits.
"""

from __future__ import annotations

import copy
import socket
import threading
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient
from servers import free_port

from assistant.settings import Settings
from ui.server import create_app, server_config


def tiny_app() -> FastAPI:
    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"ok": "yes"}

    return app


def start(settings: Settings):
    import uvicorn

    port = free_port()
    server = uvicorn.Server(server_config(tiny_app(), "127.0.0.1", port, settings))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    tick = threading.Event()
    while not server.started and thread.is_alive():
        tick.wait(0.05)
    assert server.started
    return server, thread, port


def closed_by_server(sock: socket.socket) -> bool:
    """True when the server closes the connection before the 20 s socket timeout (recv returns EOF)."""
    sock.settimeout(20)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_silent_and_trickling_connections_are_closed_but_normal_requests_work() -> None:
    server, thread, port = start(Settings(header_timeout_s=0.5, keep_alive_timeout_s=1))
    try:
        silent = socket.create_connection(("127.0.0.1", port))
        trickle = socket.create_connection(("127.0.0.1", port))
        trickle.sendall(b"GET /ping HTTP/1.1\r\nHo")
        assert closed_by_server(silent)
        assert closed_by_server(trickle)
        # a whole request is answered, and the idle keep-alive connection is then closed too
        ok = socket.create_connection(("127.0.0.1", port))
        ok.sendall(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        ok.settimeout(20)
        assert ok.recv(65536).startswith(b"HTTP/1.1 200")
        assert closed_by_server(ok)
        for s in (silent, trickle, ok):
            s.close()
    finally:
        server.should_exit = True
        thread.join(30)


def test_gradio_temp_files_are_deleted_when_the_server_stops(built_assistant, tmp_path: Path) -> None:
    clone = copy.copy(built_assistant)
    clone.settings = built_assistant.settings.model_copy(update={"ui_cache_max_age_s": 120})
    app = create_app(clone, with_ui=True)
    mounted = [r for r in app.routes if getattr(r, "path", None) == "" or type(r).__name__ == "Mount"]
    blocks = next(r.app.get_blocks() for r in mounted if hasattr(getattr(r, "app", None), "get_blocks"))
    assert blocks.delete_cache == (120, 120)
    left = tmp_path / "left-behind.md"
    left.write_text("a downloaded answer")
    with TestClient(app) as client:
        assert client.get("/api/health").status_code == 200
        blocks.temp_file_sets[0].add(str(left))  # as Gradio records a file it wrote for the page
    assert not left.exists()


def test_the_soak_scripts_slow_mode_counts_the_connections_the_server_closes() -> None:
    from eval.soak import slow_connections

    server, thread, port = start(Settings(header_timeout_s=0.5, keep_alive_timeout_s=1))
    try:
        app_url = f"http://127.0.0.1:{port}"
        server.config.app.add_api_route("/api/health", lambda: {"status": "ok"})  # what the script asks meanwhile
        report = slow_connections(app_url, 6, wait_s=15)
    finally:
        server.should_exit = True
        thread.join(30)
    assert report["opened"] == 6 and report["closed_by_server"] == 6 and report["still_open"] == 0
    assert report["health_meanwhile"] == 200
