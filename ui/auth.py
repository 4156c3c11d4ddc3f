"""One bearer-token check for every interface: the admin token (writes through the API and the 管理 tab)
and the read tokens of the OpenAI-compatible endpoint (``API_TOKENS``).

:func:`token_problem` is the comparison (constant time); :func:`bearer_dependency` turns it into a FastAPI
dependency that raises the caller's error type, so ``/api`` answers ``{"detail"}`` and ``/v1`` an OpenAI
error object from the same check.

>>> token_problem("s3cret", ["other", "s3cret"]), token_problem(None, ["s3cret"]), token_problem("x", [])
(None, 'missing', 'disabled')
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from assistant.settings import Settings

Problem = Literal["disabled", "missing", "wrong"]

_BEARER = HTTPBearer(auto_error=False, description="Authorization: Bearer <token>")
BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]


def split_tokens(value: str | None) -> list[str]:
    """``a, b`` → ``['a', 'b']``; empty entries dropped."""
    return [t.strip() for t in (value or "").split(",") if t.strip()]


def admin_tokens(settings: Settings) -> list[str]:
    return [settings.admin_token] if settings.admin_token else []


def api_tokens(settings: Settings) -> list[str]:
    return split_tokens(settings.api_tokens)


def token_problem(given: str | None, accepted: Sequence[str]) -> Problem | None:
    """None when ``given`` is one of ``accepted``; else what is wrong (no token configured, none given, wrong)."""
    if not accepted:
        return "disabled"
    if not given:
        return "missing"
    if not any(secrets.compare_digest(given.encode(), t.encode()) for t in accepted):
        return "wrong"
    return None


def bearer_dependency(tokens: Callable[[Settings], list[str]], fail: Callable[[Problem], Exception], *,
                      open_when_unset: bool = False) -> Callable[[Request, HTTPAuthorizationCredentials | None], None]:
    """A dependency that checks ``Authorization: Bearer`` against ``tokens(settings)`` and raises ``fail(problem)``.

    ``open_when_unset``: no configured token lets every request in (the read tokens); otherwise it refuses
    every request (the admin token: writes disabled).
    """

    def check(request: Request, credentials: BearerCredentials) -> None:
        accepted = tokens(request.app.state.assistant.settings)
        if not accepted and open_when_unset:
            return
        given = credentials.credentials if credentials and credentials.scheme.lower() == "bearer" else None
        problem = token_problem(given, accepted)
        if problem is not None:
            raise fail(problem)

    return check


def _admin_error(problem: Problem) -> HTTPException:
    if problem == "disabled":
        return HTTPException(403, "writes are disabled: the server has no ADMIN_TOKEN set")
    if problem == "missing":
        return HTTPException(401, "missing bearer token: send 'Authorization: Bearer <ADMIN_TOKEN>'",
                             headers={"WWW-Authenticate": "Bearer"})
    return HTTPException(403, "wrong admin token")


#: The admin check of the write routes (401 missing, 403 wrong or writes disabled).
require_admin = bearer_dependency(admin_tokens, _admin_error)
