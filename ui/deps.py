"""What every route depends on: the service and the overload guard, both kept on ``app.state``.

Routes declare them as parameters (``service: Service``, ``slots: Slots``); :func:`ui.server.create_app`
puts them there.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
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
        if not self._work.acquire(blocking=False):
            raise HTTPException(503, "busy: too many questions at once; retry shortly", headers={"Retry-After": "1"})
        try:
            yield
        finally:
            self._work.release()


def get_assistant(request: Request) -> PolicyAssistant:
    assistant: PolicyAssistant = request.app.state.assistant
    return assistant


def get_slots(request: Request) -> AnswerSlots:
    slots: AnswerSlots = request.app.state.answer_slots
    return slots


Service = Annotated[PolicyAssistant, Depends(get_assistant)]
Slots = Annotated[AnswerSlots, Depends(get_slots)]
