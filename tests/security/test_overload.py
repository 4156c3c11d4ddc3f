"""Overload (issue 11): beyond MAX_CONCURRENT_ANSWERS the API answers 503 with Retry-After at once."""

from __future__ import annotations

import copy
import threading

from fastapi.testclient import TestClient

from ui.server import create_app


def test_busy_server_answers_503_with_retry_after_and_recovers(built_assistant) -> None:
    clone = copy.copy(built_assistant)
    clone.settings = built_assistant.settings.model_copy(update={"max_concurrent_answers": 1})
    entered, release = threading.Event(), threading.Event()
    real = clone.search

    def slow_search(*args, **kwargs):
        entered.set()
        release.wait(30)
        return real(*args, **kwargs)

    clone.search = slow_search  # type: ignore[method-assign]
    client = TestClient(create_app(clone, with_ui=False))
    results: list[int] = []
    worker = threading.Thread(target=lambda: results.append(
        client.post("/api/search", json={"query": "数据出境"}).status_code))
    worker.start()
    assert entered.wait(30)
    busy = client.post("/api/ask", json={"question": "外国医生能开诊所吗？"})
    assert busy.status_code == 503 and busy.headers.get("retry-after") == "1"
    release.set()
    worker.join(30)
    assert results == [200]
    assert client.post("/api/ask", json={"question": "外国医生能开诊所吗？"}).status_code == 200
