"""Overload (issue 11): beyond MAX_CONCURRENT_ANSWERS requests wait in a short queue (MAX_QUEUED_ANSWERS,
ANSWER_QUEUE_WAIT_S); beyond the queue, or after the wait, the API answers 503 with Retry-After."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient

from ui.deps import AnswerSlots
from ui.server import create_app

ASK = {"question": "外国医生能开诊所吗？"}


@contextmanager
def one_slot_held(built_assistant, **settings) -> Iterator[tuple[TestClient, list[int]]]:
    """A client of an app with one answer slot, held by a search that waits until the block ends.

    Yields the client and the held search's status (filled in once it finishes)."""
    clone = copy.copy(built_assistant)
    clone.settings = built_assistant.settings.model_copy(update={"max_concurrent_answers": 1, **settings})
    entered, release = threading.Event(), threading.Event()
    real = clone.search

    def slow_search(*args, **kwargs):
        entered.set()
        release.wait(30)
        return real(*args, **kwargs)

    clone.search = slow_search  # type: ignore[method-assign]
    client = TestClient(create_app(clone, with_ui=False))
    held: list[int] = []
    worker = threading.Thread(target=lambda: held.append(
        client.post("/api/search", json={"query": "数据出境"}).status_code))
    worker.start()
    assert entered.wait(30)
    try:
        yield client, held
    finally:
        release.set()
        worker.join(30)
        clone.search = real  # type: ignore[method-assign]


def test_busy_server_answers_503_with_retry_after_and_recovers(built_assistant) -> None:
    with one_slot_held(built_assistant, max_queued_answers=0) as (client, held):
        busy = client.post("/api/ask", json=ASK)
        assert busy.status_code == 503 and busy.headers.get("retry-after") == "1"
    assert held == [200]
    assert client.post("/api/ask", json=ASK).status_code == 200


def test_a_request_beyond_the_slots_waits_in_the_queue_and_is_answered(built_assistant) -> None:
    with one_slot_held(built_assistant, max_queued_answers=1, answer_queue_wait_s=30) as (client, held):
        queued: list[int] = []
        waiter = threading.Thread(target=lambda: queued.append(client.post("/api/ask", json=ASK).status_code))
        waiter.start()
        slots: AnswerSlots = client.app.state.answer_slots  # type: ignore[attr-defined]
        deadline = time.monotonic() + 30
        while slots.waiting < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert slots.waiting == 1 and not queued  # waiting, not refused
        full = client.post("/api/ask", json=ASK)  # the queue is full: refused at once
        assert full.status_code == 503 and full.headers.get("retry-after") == "1"
    waiter.join(30)
    assert held == [200] and queued == [200] and slots.waiting == 0


def test_a_queued_request_gets_503_when_its_wait_runs_out() -> None:
    slots = AnswerSlots(1, queue=4, wait_s=0.2)
    slots.acquire()
    started = time.monotonic()
    with pytest.raises(HTTPException) as busy:
        slots.acquire()
    assert busy.value.status_code == 503 and time.monotonic() - started >= 0.2
    assert slots.waiting == 0
    slots.release()
    with slots.take():  # the slot given back is free again
        pass


def test_streams_take_an_answer_slot_too_and_give_it_back(built_assistant) -> None:
    with one_slot_held(built_assistant, max_queued_answers=0) as (client, _):
        busy = client.post("/api/ask/stream", json=ASK)
        assert busy.status_code == 503 and busy.headers.get("retry-after") == "1"
    for _ in range(3):  # each finished stream gives its slot back
        done = client.post("/api/ask/stream", json=ASK)
        assert done.status_code == 200 and "event: citations" in done.text and "event: done" in done.text
    assert client.post("/api/ask", json=ASK).status_code == 200


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
    body = {"model": "policy-assistant", "stream": True, "messages": [{"role": "user", "content": ASK["question"]}]}
    with one_slot_held(built_assistant, max_queued_answers=0) as (client, _):
        busy = client.post("/v1/chat/completions", json=body)
        assert busy.status_code == 503 and busy.headers.get("retry-after") == "1"
        assert busy.json()["error"]["code"] == "busy"
    for _ in range(2):
        ok = client.post("/v1/chat/completions", json=body)
        assert ok.status_code == 200 and ok.text.rstrip().endswith("data: [DONE]")


def test_answer_slots_default_to_the_cpus_without_an_llm_and_to_eight_with_one(monkeypatch) -> None:
    """The answer work is CPU-bound without an LLM (one slot per CPU); with an LLM a slot mostly waits on the model
    (8). An explicit MAX_CONCURRENT_ANSWERS wins; a negative one is refused."""
    import os

    from pydantic import ValidationError

    from assistant.settings import Settings

    monkeypatch.delenv("MAX_CONCURRENT_ANSWERS", raising=False)
    monkeypatch.delenv("LLM_PROVIDER", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2}, raising=False)
    assert Settings().answer_slots == 3
    assert Settings(llm_provider="openai").answer_slots == 8
    assert Settings(max_concurrent_answers=5).answer_slots == 5
    monkeypatch.setenv("MAX_CONCURRENT_ANSWERS", "1")
    assert Settings().answer_slots == 1
    with pytest.raises(ValidationError):
        Settings(max_concurrent_answers=-1)
