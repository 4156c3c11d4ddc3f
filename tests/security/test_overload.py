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


def test_streams_take_an_answer_slot_too_and_give_it_back(built_assistant) -> None:
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
    worker = threading.Thread(target=lambda: client.post("/api/search", json={"query": "数据出境"}))
    worker.start()
    assert entered.wait(30)
    busy = client.post("/api/ask/stream", json={"question": "外国医生能开诊所吗？"})
    assert busy.status_code == 503 and busy.headers.get("retry-after") == "1"
    release.set()
    worker.join(30)
    for _ in range(3):  # each finished stream gives its slot back
        done = client.post("/api/ask/stream", json={"question": "外国医生能开诊所吗？"})
        assert done.status_code == 200 and "event: citations" in done.text and "event: done" in done.text
    assert client.post("/api/ask", json={"question": "外国医生能开诊所吗？"}).status_code == 200


def test_a_failure_inside_a_stream_ends_it_with_an_error_event(built_assistant) -> None:
    clone = copy.copy(built_assistant)

    def broken(*args, **kwargs):
        yield {"type": "token", "text": "根据"}
        raise RuntimeError("boom: secret internal detail")

    clone.ask_stream = broken  # type: ignore[method-assign]
    client = TestClient(create_app(clone, with_ui=False))
    r = client.post("/api/ask/stream", json={"question": "外国医生能开诊所吗？"})
    assert r.status_code == 200
    assert "event: error" in r.text and "internal error while answering" in r.text and "secret" not in r.text
    assert r.text.rstrip().endswith("data: {}")  # the done event closes it


def test_openai_streams_are_refused_with_503_when_busy_and_release_their_slot(built_assistant) -> None:
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
    body = {"model": "policy-assistant", "stream": True, "messages": [{"role": "user", "content": "外国医生能开诊所吗？"}]}
    worker = threading.Thread(target=lambda: client.post("/api/search", json={"query": "数据出境"}))
    worker.start()
    assert entered.wait(30)
    busy = client.post("/v1/chat/completions", json=body)
    assert busy.status_code == 503 and busy.headers.get("retry-after") == "1"
    assert busy.json()["error"]["code"] == "busy"
    release.set()
    worker.join(30)
    for _ in range(2):
        ok = client.post("/v1/chat/completions", json=body)
        assert ok.status_code == 200 and ok.text.rstrip().endswith("data: [DONE]")
