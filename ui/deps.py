"""What every route depends on: the service and the overload guard, both kept on ``app.state``.

Routes declare them as parameters (``service: Service``, ``slots: Slots``); :func:`ui.server.create_app`
puts them there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from assistant.service import PolicyAssistant


class AnswerSlots:
    """``MAX_CONCURRENT_ANSWERS`` slots for search/ask work; beyond them 503 + ``Retry-After`` at once
    (overload is explicit, not a dropped connection).

    >>> slots = AnswerSlots(1)
    >>> with slots.take():
    ...     with slots.take():
    ...         pass
    Traceback (most recent call last):
    fastapi.exceptions.HTTPException: 503: busy: too many questions at once; retry shortly
    """

    def __init__(self, size: int) -> None:
        self._work = threading.BoundedSemaphore(max(1, size))

    @contextmanager
    def take(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()

    def acquire(self) -> None:
        """Take a slot now or raise the 503 (a stream takes one before it starts, :meth:`release` at its end)."""
        if not self._work.acquire(blocking=False):
            raise HTTPException(503, "busy: too many questions at once; retry shortly", headers={"Retry-After": "1"})

    def release(self) -> None:
        self._work.release()


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
