"""A small fake chat-model server on loopback: OpenAI-compatible and Ollama-compatible.

It lets the generative mode be tested and evaluated end to end over real HTTP without a model:

* ``POST /v1/chat/completions`` (OpenAI; ``stream`` true → server-sent events) and
  ``POST /api/chat`` (Ollama; newline-delimited JSON) answer with a scripted reply, or by default
  by **echoing** the prompt: for an answer prompt (``<clauses>``) each sentence of the first
  ``echo`` clauses, cited with its clause id; for a condense prompt (``<followup>``) the
  rule-based condenser's standalone question; for anything else ``OK``.
* ``GET /v1/models`` and ``GET /api/tags`` list the one model.
* A scripted :class:`Reply` can instead return an HTTP error status, or hold the response until
  an event is set (so a client's timeout fires), or return an empty completion.

``--noise`` makes every echo carry the faults the verification must repair (a made-up clause id,
uncited sentences, an unsupported claim citing a real clause).

The echo is a plumbing check, not a language model: it shows what the verification, the
fallback and the eval make of well-formed cited output; it says nothing about a real model.

Usage::

    python -m eval.fake_llm_server --port 8765            # then
    LLM_PROVIDER=openai LLM_BASE_URL=http://127.0.0.1:8765/v1 LLM_MODEL=fake-echo policy-assistant ask "…"

    with FakeLLMServer() as server:                       # in tests
        server.script(Reply(status=500))
        ChatOpenAI(base_url=server.base_url, api_key="x", model="fake-echo")
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeLLMServer", "Reply", "echo_reply"]

_CLAUSE = re.compile(r'<clause id="([^"]*)"[^>]*>\n?(.*?)\n?</clause>', re.DOTALL)
_SENTENCE = re.compile(r"[^。！？!?]+[。！？!?]?")
_HISTORY_USER = re.compile(r"^用户 / User: (.*)$", re.MULTILINE)
_HISTORY_ASSISTANT = re.compile(r"^助手 / Assistant: (.*)$", re.MULTILINE)


@dataclass
class Reply:
    """One scripted reply.

    Args:
        text: the completion (``None``: echo the prompt; ``""``: an empty completion).
        status: an HTTP status other than 200 answers with an error body instead.
        hang: wait for this event (at most ``hang_limit_s``) before answering.
        chunk_chars: characters per streamed chunk.
    """

    text: str | None = None
    status: int = 200
    hang: threading.Event | None = None
    hang_limit_s: float = 30.0
    chunk_chars: int = 4


def _content(message: dict[str, Any]) -> str:
    content = message.get("content", "")
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content or "")


#: what ``noise`` adds: a claim no clause makes
NOISE_CLAIM = "该项政策将于2035年在全国所有城市全面推行"


def echo_reply(messages: list[dict[str, Any]], echo: int = 2, noise: bool = False) -> str:
    """The default reply to ``messages`` (see the module docstring).

    With ``noise`` the reply has the faults verification must catch: the first clause's sentences
    also cite a made-up id, the second clause's sentences cite nothing, and a final sentence
    (:data:`NOISE_CLAIM`) that no clause supports cites the first clause.
    """
    user = next((_content(m) for m in reversed(messages) if m.get("role") == "user"), "")
    if "<followup>" in user:
        from assistant.conversation import Condenser

        followup = user.split("<followup>", 1)[1].split("</followup>", 1)[0]
        questions = _HISTORY_USER.findall(user)
        answers = _HISTORY_ASSISTANT.findall(user)
        history = list(zip(questions, answers + [""] * (len(questions) - len(answers)), strict=True))
        return Condenser().run(followup, history).standalone
    if "<clauses>" in user:
        clauses = _CLAUSE.findall(user)
        if not clauses:
            return "NO_ANSWER"
        lines = []
        for n, (clause_id, text) in enumerate(clauses[:echo]):
            cite = f"[{clause_id}]"
            if noise and n == 0:
                cite += f"[{clause_id}/99]"
            elif noise and n == 1:
                cite = ""
            out = []
            for sentence in _SENTENCE.findall(text.replace("\n", "")):
                sentence = re.sub(r"〔[^〕]*〕", "", sentence).strip()
                if not re.search(r"[\w\u3400-\u9fff]", sentence):
                    continue
                end = sentence[-1] if sentence[-1] in "。！？!?" else "。"
                body = sentence[:-1] if sentence[-1] in "。！？!?" else sentence
                out.append(f"{body}{cite}{end}")
            if out:
                lines.append("".join(out))
        if noise and lines:
            lines.append(f"{NOISE_CLAIM}[{clauses[0][0]}]。")
        return "\n".join(lines) or "NO_ANSWER"
    return "OK"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        model = self.server.owner.model
        if self.path.rstrip("/").endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": model, "object": "model", "owned_by": "fake"}]})
        elif self.path.rstrip("/").endswith("/api/tags"):
            self._json(200, {"models": [{"name": model, "model": model}]})
        else:
            self._json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            self._json(400, {"error": {"message": "body is not JSON"}})
            return
        owner = self.server.owner
        path = self.path.rstrip("/")
        if not (path.endswith("/chat/completions") or path.endswith("/api/chat")):
            self._json(404, {"error": {"message": f"no route {self.path}"}})
            return
        reply = owner._next_reply(body)
        if reply.hang is not None:
            reply.hang.wait(reply.hang_limit_s)
        if reply.status != 200:
            self._json(reply.status, {"error": {"message": f"fake server error {reply.status}",
                                                "type": "server_error", "code": reply.status}})
            return
        text = reply.text if reply.text is not None else echo_reply(body.get("messages", []), owner.echo, owner.noise)
        pieces = [text[i:i + reply.chunk_chars] for i in range(0, len(text), reply.chunk_chars)]
        try:
            if path.endswith("/api/chat"):
                self._ollama(body, text, pieces)
            elif body.get("stream"):
                self._sse(body, pieces)
            else:
                self._json(200, self._completion(body, text))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. its timeout fired)

    def _completion(self, body: dict[str, Any], text: str) -> dict[str, Any]:
        return {"id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model") or self.server.owner.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": max(1, len(text)), "total_tokens": 1 + len(text)}}

    def _sse(self, body: dict[str, Any], pieces: list[str]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        cid, created = f"chatcmpl-{uuid.uuid4().hex[:12]}", int(time.time())
        model = body.get("model") or self.server.owner.model

        def send(delta: dict[str, Any], finish: str | None = None) -> None:
            chunk = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                     "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            self.wfile.write(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode())
            self.wfile.flush()

        send({"role": "assistant", "content": ""})
        for piece in pieces:
            send({"content": piece})
        send({}, "stop")
        if (body.get("stream_options") or {}).get("include_usage"):
            usage: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [],
                     "usage": {"prompt_tokens": 1, "completion_tokens": len(pieces), "total_tokens": 1 + len(pieces)}}
            self.wfile.write(f"data: {json.dumps(usage)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _ollama(self, body: dict[str, Any], text: str, pieces: list[str]) -> None:
        model = body.get("model") or self.server.owner.model
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        final: dict[str, Any] = {"model": model, "created_at": now, "message": {"role": "assistant", "content": ""}, "done": True,
                 "done_reason": "stop", "total_duration": 1, "load_duration": 1, "prompt_eval_count": 1,
                 "prompt_eval_duration": 1, "eval_count": max(1, len(pieces)), "eval_duration": 1}
        if body.get("stream") is False:
            final["message"]["content"] = text
            self._json(200, final)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Connection", "close")
        self.end_headers()
        for piece in pieces:
            line = {"model": model, "created_at": now, "message": {"role": "assistant", "content": piece}, "done": False}
            self.wfile.write((json.dumps(line, ensure_ascii=False) + "\n").encode())
            self.wfile.flush()
        self.wfile.write((json.dumps(final) + "\n").encode())
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: FakeLLMServer


class FakeLLMServer:
    """The fake server, run in a background thread.

    Args:
        host: loopback only by default.
        port: 0 picks a free port.
        echo: how many clauses (best-ranked first) the echo reply cites.
        model: the model name it reports.
        noise: add faults to the echo (see :func:`echo_reply`).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, echo: int = 2, model: str = "fake-echo",
                 noise: bool = False) -> None:
        self.echo = echo
        self.noise = noise
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._httpd = _Server((host, port), _Handler)
        self._httpd.owner = self
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (``…/v1``); Ollama clients use :attr:`root_url`."""
        return f"{self.root_url}/v1"

    @property
    def root_url(self) -> str:
        return f"http://{self._httpd.server_address[0]!s}:{self.port}"

    def script(self, *replies: Reply) -> None:
        """Queue replies for the next requests; once they are used up, requests are echoed."""
        with self._lock:
            self._replies.extend(replies)

    def clear(self) -> None:
        with self._lock:
            self._replies.clear()
            self.requests.clear()

    def _next_reply(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(body)
            return self._replies.popleft() if self._replies else Reply()

    def start(self) -> FakeLLMServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-llm-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--echo", type=int, default=2, help="clauses cited per answer (best-ranked first)")
    parser.add_argument("--model", default="fake-echo")
    parser.add_argument("--noise", action="store_true",
                        help="add a made-up id, uncited sentences and an unsupported claim to each echo")
    args = parser.parse_args(argv)
    server = FakeLLMServer(args.host, args.port, echo=args.echo, model=args.model, noise=args.noise)
    print(f"fake LLM server on {server.base_url} (OpenAI) and {server.root_url}/api/chat (Ollama); Ctrl-C stops",
          flush=True)
    try:
        server._httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server._httpd.server_close()


if __name__ == "__main__":
    main()
