"""OpenAI-compatible chat endpoint under ``/v1`` (Open WebUI, LobeChat, Chatbox, the ``openai`` client).

* ``GET /v1/models``: ``policy-assistant`` (extractive answers) and, with ``LLM_PROVIDER`` set,
  ``policy-assistant-generative``.
* ``POST /v1/chat/completions``: ``messages`` is the conversation: the last message is the question
  (it must come from the user); earlier user/assistant turns are the history used for follow-ups;
  system (and developer) messages are accepted and ignored: they cannot change the grounding rules.
  Non-streamed and streamed (``stream: true``: SSE ``chat.completion.chunk`` events, then
  ``data: [DONE]``). The message content is the cited answer; beside ``choices`` the JSON carries
  ``citations`` (``clause_id``, ``label``, ``doc_title``, ``path``, ``quote``, ``url``), ``nearest``,
  ``refused``, ``outcome`` and ``mode``; ``usage`` counts tokens with tiktoken (offline). The model id
  names the answer mode: ``policy-assistant`` always quotes (extractive), also on a server with a model.
* Errors are OpenAI error objects ``{"error": {"message", "type", "param", "code"}}`` with a 4xx status.
* ``API_TOKENS`` (comma-separated): when set, ``Authorization: Bearer <token>`` is required.

Usage::

    from openai import OpenAI
    client = OpenAI(base_url="http://127.0.0.1:7860/v1", api_key="unused")
    client.chat.completions.create(model="policy-assistant", messages=[{"role": "user", "content": "…"}])
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from assistant.models import Answer, Citation
from assistant.service import InputError, PolicyAssistant
from assistant.tokens import TokenCounter
from ui.auth import Problem, api_tokens, bearer_dependency
from ui.deps import Service, Slots, once
from ui.provenance import provenance

EXTRACTIVE = "policy-assistant"
GENERATIVE = "policy-assistant-generative"
ROLES = ("system", "user", "assistant", "developer")


class OpenAIError(Exception):
    """An error answered as an OpenAI error object (the handler is installed by :func:`ui.server.create_app`).

    >>> OpenAIError(404, "no such model", param="model", code="model_not_found").body()
    {'error': {'message': 'no such model', 'type': 'invalid_request_error', 'param': 'model', 'code': 'model_not_found'}}
    """

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message[:500], "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def _token_error(problem: Problem) -> OpenAIError:
    return OpenAIError(401, "invalid or missing API token (Authorization: Bearer …)", type_="authentication_error",
                       code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


#: ``API_TOKENS`` as ``Authorization: Bearer``; open when the setting is empty.
require_api_token = bearer_dependency(api_tokens, _token_error, open_when_unset=True)

router = APIRouter(prefix="/v1", tags=["openai"], dependencies=[Depends(require_api_token)])


def models_for(service: PolicyAssistant) -> list[str]:
    return [EXTRACTIVE] + ([GENERATIVE] if service.settings.llm_provider != "none" else [])


def parse_messages(messages: Any) -> tuple[str, list[tuple[str, str]]]:
    """The question (last user message) and the history pairs from an OpenAI ``messages`` list.

    >>> parse_messages([{"role": "system", "content": "be brief"}, {"role": "user", "content": "外国医生能开诊所吗？"},
    ...                 {"role": "assistant", "content": "可以[三（二）3]"}, {"role": "user", "content": "那护士呢？"}])
    ('那护士呢？', [('外国医生能开诊所吗？', '可以[三（二）3]')])
    """
    if not isinstance(messages, list) or not messages:
        raise OpenAIError(400, "'messages' must be a non-empty list", param="messages")
    turns: list[tuple[str, str]] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise OpenAIError(400, f"messages[{i}] must be an object", param=f"messages[{i}]")
        role = m.get("role")
        if role not in ROLES:
            raise OpenAIError(400, f"messages[{i}].role must be one of {', '.join(ROLES)}", param=f"messages[{i}].role")
        content = m.get("content")
        if isinstance(content, list):  # content parts: keep the text ones
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        if content is None:
            content = ""
        if not isinstance(content, str):
            raise OpenAIError(400, f"messages[{i}].content must be a string", param=f"messages[{i}].content")
        if role in ("user", "assistant"):
            turns.append((str(role), content))
    if not turns or turns[-1][0] != "user":
        raise OpenAIError(400, "the last message must come from the user", param="messages")
    question = turns[-1][1]
    history: list[tuple[str, str]] = []
    pending: str | None = None
    for role, content in turns[:-1]:
        if role == "user":
            if pending is not None:
                history.append((pending, ""))
            pending = content
        else:
            history.append((pending or "", content))
            pending = None
    if pending is not None:
        history.append((pending, ""))
    return question, history


def citation_json(c: Citation, base_url: str) -> dict[str, Any]:
    return {"clause_id": c.clause_id, "label": c.label, "doc_title": c.doc_title, "path": c.path, "quote": c.quote,
            "url": f"{base_url}/api/clauses/{quote(c.clause_id)}"}


@lru_cache(maxsize=4)
def _counter(cache_dir: Path) -> TokenCounter:
    return TokenCounter(cache_dir=cache_dir)


def usage(service: PolicyAssistant, question: str, history: list[tuple[str, str]], text: str) -> dict[str, int]:
    """Prompt tokens (question and history) and completion tokens (the answer), counted with tiktoken."""
    c = _counter(service.settings.data_dir / "tiktoken")
    prompt = c.count(question) + sum(c.count(q) + c.count(a) for q, a in history)
    completion = c.count(text)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _extras(answer: Answer, base_url: str, service: PolicyAssistant | None = None) -> dict[str, Any]:
    citations = [citation_json(c, base_url) for c in answer.citations]
    nearest = [citation_json(c, base_url) for c in answer.nearest]
    if service is not None:  # each quote with where its document came from (shipped or uploaded, status, date)
        for cite, src in zip(citations + nearest, answer.citations + answer.nearest):
            cite["provenance"] = provenance(service, src.doc_id)
    return {"citations": citations, "nearest": nearest, "refused": answer.refused, "outcome": answer.outcome,
            "mode": answer.mode}


def _extractive_only(service: PolicyAssistant, model: str) -> bool:
    """``policy-assistant`` answers extractively even where a model server is configured."""
    return model == EXTRACTIVE and service.settings.llm_provider != "none"


def answer_for(service: PolicyAssistant, model: str, question: str, history: list[tuple[str, str]]) -> Answer:
    """The answer in the mode the model id names (``question`` already checked)."""
    if _extractive_only(service, model):
        return service.extractive.run(question, service.clean_history(history))
    return service.ask(question, history)


def events_for(service: PolicyAssistant, model: str, question: str,
               history: list[tuple[str, str]]) -> Iterator[dict[str, Any]]:
    """The service's stream events in the mode the model id names."""
    if not _extractive_only(service, model):
        yield from service.ask_stream(question, history)
        return
    answer = answer_for(service, model, question, history)
    for line in answer.answer.splitlines(keepends=True):
        yield {"type": "token", "text": line}
    yield {"type": "answer", "answer": answer}


@router.get("/models")
def models(service: Service) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "policy-assistant"}
                                       for m in models_for(service)]}


@router.post("/chat/completions")
async def chat_completions(request: Request, service: Service, slots: Slots) -> Any:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError) as exc:
        raise OpenAIError(400, f"the body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise OpenAIError(400, "the body must be a JSON object")
    model = body.get("model") or EXTRACTIVE
    if model not in models_for(service):
        raise OpenAIError(404, f"the model {str(model)[:80]!r} does not exist; use one of "
                               f"{', '.join(models_for(service))}", param="model", code="model_not_found")
    question, history = parse_messages(body.get("messages"))
    try:
        question = service.check_text(question, "question")
    except InputError as exc:
        raise OpenAIError(400, str(exc), param="messages") from exc
    base_url = str(request.base_url).rstrip("/")
    if body.get("stream"):
        try:  # overload is a 503 before the stream starts; the slot is held until it ends
            await slots.acquire_async()
        except HTTPException as exc:
            raise OpenAIError(exc.status_code, str(exc.detail), type_="server_error", code="busy",
                              headers=dict(exc.headers or {})) from exc
        release = once(slots.release)
        return StreamingResponse(_stream(service, release, question, history, str(model), base_url),
                                 media_type="text/event-stream", background=BackgroundTask(release))
    try:
        async with slots.take_async():
            answer = await run_in_threadpool(answer_for, service, str(model), question, history)
    except InputError as exc:
        raise OpenAIError(400, str(exc), param="messages") from exc
    except HTTPException as exc:  # the overload guard
        raise OpenAIError(exc.status_code, str(exc.detail), type_="server_error", code="busy",
                          headers=dict(exc.headers or {})) from exc
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.answer},
                         "finish_reason": "stop", "logprobs": None}],
            "usage": usage(service, question, history, answer.answer), **_extras(answer, base_url, service)}


async def _stream(service: PolicyAssistant, release: Callable[[], None], question: str,
                  history: list[tuple[str, str]], model: str, base_url: str) -> AsyncIterator[str]:
    cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        payload = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}
        return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    text: list[str] = []
    try:
        events = events_for(service, model, question, history)
        async for event in iterate_in_threadpool(events):
            if event["type"] == "token":
                text.append(event["text"])
                yield chunk({"content": event["text"]})
            elif event["type"] == "answer":
                answer: Answer = event["answer"]
                sent = "".join(text)
                if answer.answer.startswith(sent) and len(answer.answer) > len(sent):  # nothing lost on the way
                    yield chunk({"content": answer.answer[len(sent):]})
                yield chunk({}, "stop", usage=usage(service, question, history, answer.answer),
                            **_extras(answer, base_url, service))
    except Exception as exc:  # noqa: BLE001 - a stream ends with an error object, never a cut connection
        err = {"error": {"message": str(exc)[:300], "type": "server_error", "param": None, "code": None}}
        yield f"data: {json.dumps(err, ensure_ascii=False)}\n\n"
    finally:
        release()
    yield "data: [DONE]\n\n"


@router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
def unknown(rest: str) -> None:
    raise OpenAIError(404, f"no such endpoint: /v1/{rest}", code="not_found")
