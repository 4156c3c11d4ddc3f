"""What every route depends on: the service and the overload guard, both kept on ``app.state``.

Routes declare them as parameters (``service: Service``, ``slots: Slots``); :func:`ui.server.create_app`
puts them there.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from assistant.service import PolicyAssistant


class AnswerSlots:
    """``MAX_CONCURRENT_ANSWERS`` slots for search/ask work. A request that finds them all taken waits in a
    short queue (at most ``MAX_QUEUED_ANSWERS`` requests, each for at most ``ANSWER_QUEUE_WAIT_S``) and
    runs when a slot frees; when the queue is full or the wait runs out it gets 503 + ``Retry-After``
    (overload is explicit, not a dropped connection, and a burst of a few more users than slots is
    served, not refused).

    >>> slots = AnswerSlots(1)  # no queue: the second request is refused at once
    >>> with slots.take():
    ...     with slots.take():
    ...         pass
    Traceback (most recent call last):
    fastapi.exceptions.HTTPException: 503: busy: too many questions at once; retry shortly
    """

    def __init__(self, size: int, queue: int = 0, wait_s: float = 0.0) -> None:
        self._work = threading.BoundedSemaphore(max(1, size))
        self._queue = max(0, queue)
        self._wait_s = max(0.0, wait_s)
        self._waiting = 0
        self._lock = threading.Lock()

    @property
    def waiting(self) -> int:
        """Requests now waiting for a slot."""
        return self._waiting

    @contextmanager
    def take(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()

    @asynccontextmanager
    async def take_async(self) -> AsyncIterator[None]:
        """:meth:`take` for async routes: the wait runs in the threadpool, never on the event loop."""
        await self.acquire_async()
        try:
            yield
        finally:
            self.release()

    def acquire(self) -> None:
        """Take a slot, waiting in the queue if there is room, or raise the 503 (a stream takes one before it
        starts, :meth:`release` at its end)."""
        if self._work.acquire(blocking=False):
            return
        with self._lock:
            if self._waiting >= self._queue or self._wait_s <= 0:
                raise _busy()
            self._waiting += 1
        try:
            got = self._work.acquire(timeout=self._wait_s)
        finally:
            with self._lock:
                self._waiting -= 1
        if not got:
            raise _busy()

    async def acquire_async(self) -> None:
        if self._work.acquire(blocking=False):
            return
        await run_in_threadpool(self.acquire)

    def release(self) -> None:
        self._work.release()


def _busy() -> HTTPException:
    return HTTPException(503, "busy: too many questions at once; retry shortly", headers={"Retry-After": "1"})


def once(action: Callable[[], None]) -> Callable[[], None]:
    """``action`` that runs at most once however often it is called (thread-safe): a stream's slot is given
    back when the stream ends or, if it never started, after the response."""
    lock, done = threading.Lock(), [False]

    def run() -> None:
        with lock:
            if done[0]:
                return
            done[0] = True
        action()

    return run


def get_assistant(request: Request) -> PolicyAssistant:
    assistant: PolicyAssistant = request.app.state.assistant
    return assistant


def get_slots(request: Request) -> AnswerSlots:
    slots: AnswerSlots = request.app.state.answer_slots
    return slots


Service = Annotated[PolicyAssistant, Depends(get_assistant)]
Slots = Annotated[AnswerSlots, Depends(get_slots)]
