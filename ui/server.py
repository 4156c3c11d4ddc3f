"""The web server: one FastAPI app with the REST API under ``/api``, the OpenAI-compatible endpoint under
``/v1``, offline API docs at ``/docs`` and the Gradio chat page at ``/``.

Usage::

    app = create_app()                      # PolicyAssistant(Settings()) from the environment
    uvicorn.Server(server_config(app, "127.0.0.1", 7860, Settings())).run()

Reads run in the threadpool and see one immutable index snapshot each; writes (upload, delete) need
``Authorization: Bearer <ADMIN_TOKEN>`` and are serialised by the service. Bad input is always a 4xx:
``{"detail"}`` under ``/api``, an OpenAI error object under ``/v1``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from assistant.service import InputError, LoaderError, NotFoundError, PolicyAssistant, storage_error
from assistant.settings import Settings
from assistant.text import clip
from ui.deps import AnswerSlots
from ui.routes import api, openai


def _warm_up(service: PolicyAssistant) -> None:
    """Load the embedding model, the tokenizer and the English dictionary now, not on the first user's question."""
    try:
        service.search("服务业扩大开放", k=1)
        service.search("opening up of services", k=1)
    except (InputError, NotFoundError, ValueError):  # an empty index: nothing to warm
        pass


def allowed_hosts(settings: Settings) -> list[str]:
    """The Host names the server answers (see the ``ALLOWED_HOSTS`` setting).

    >>> allowed_hosts(Settings(allowed_hosts="auto", host="127.0.0.1"))
    ['localhost', '127.0.0.1', 'testserver']
    >>> allowed_hosts(Settings(allowed_hosts="auto", host="0.0.0.0")), allowed_hosts(Settings(allowed_hosts="a.gov.cn"))
    (['*'], ['a.gov.cn'])
    """
    value = settings.allowed_hosts.strip()
    if value != "auto":
        return [h.strip() for h in value.split(",") if h.strip()] or ["*"]
    if settings.host in ("0.0.0.0", "::", ""):
        return ["*"]
    return list(dict.fromkeys(["localhost", "127.0.0.1", settings.host, "testserver"]))


def _install_origin_checks(app: FastAPI, settings: Settings) -> None:
    """Trusted Host headers, and CORS off unless ``CORS_ORIGINS`` lists origins.

    Starlette's CORS middleware on the parent app also switches off Gradio's own permissive one (which
    would let any ``http://localhost:*`` page call the API with credentials).
    """
    from starlette.middleware.cors import CORSMiddleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST", "DELETE"],
                       allow_headers=["Authorization", "Content-Type"], allow_credentials=False)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(settings))


class RequestGuard:
    """A pure ASGI middleware: ``check(scope)`` answers an HTTP request itself (a refusal) or returns None to pass
    it on. Starlette's ``@app.middleware("http")`` wraps every request in a task group and memory streams, which
    cost each request of the API about a millisecond for a path test."""

    def __init__(self, app: ASGIApp, check: Callable[[Scope], Response | None]) -> None:
        self.app = app
        self.check = check

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            response = self.check(scope)
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _close_gradio_upload(app: FastAPI, service: PolicyAssistant) -> None:
    """Gradio's own file-upload route is only for the 管理 tab: closed (403) while writes are disabled.

    Without this, anyone who reaches the port could store files of up to the upload limit in Gradio's temp
    folder (and learn its absolute path). With ``ADMIN_TOKEN`` set the tab needs the route; the size limit
    still applies (``MAX_UPLOAD_BYTES``).
    """

    def guard(scope: Scope) -> Response | None:
        if str(scope.get("path", "")).rstrip("/").endswith("/gradio_api/upload") and not service.settings.admin_token:
            return JSONResponse({"detail": "uploads are disabled: the server has no ADMIN_TOKEN set"}, status_code=403)
        return None

    app.add_middleware(RequestGuard, check=guard)


def create_app(assistant: PolicyAssistant | None = None, *, with_ui: bool = True) -> FastAPI:
    """Build the app: ``/api/*`` and ``/v1/*`` routers, offline ``/docs``, and the Gradio page at ``/``.

    Args:
        assistant: the service; a new one from the environment's :class:`Settings` when omitted.
        with_ui: mount the Gradio chat page at ``/`` (the API tests may leave it out).
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    service = assistant or PolicyAssistant(Settings())

    mcp_run: list[Any] = []

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Requests queued for an answer slot wait in worker threads: leave room for them and for everything else.
        limiter = anyio.to_thread.current_default_thread_limiter()
        s = service.settings
        limiter.total_tokens = max(limiter.total_tokens, s.answer_slots + s.max_queued_answers + 32)
        await run_in_threadpool(service.hold_writer)  # embedded mode: the one writer of its data folder
        try:
            await run_in_threadpool(service.ensure_index)
            await run_in_threadpool(_warm_up, service)
            async with AsyncExitStack() as stack:
                for run in mcp_run:
                    await stack.enter_async_context(run())
                yield
        finally:
            service.release_writer()

    app = FastAPI(title="政策助手 Policy Assistant API", version=api.version(), lifespan=lifespan,
                  docs_url=None, redoc_url=None, max_body_size=service.settings.max_upload_bytes + 1024 * 1024,
                  description="Grounded, cited answers about Fuzhou's service-industry opening-up pilot plan "
                              "and the national laws around it. Writes need `Authorization: Bearer <ADMIN_TOKEN>`; "
                              "an OpenAI-compatible chat endpoint is under `/v1`.")
    app.state.assistant = service
    app.state.answer_slots = AnswerSlots(service.settings.answer_slots,
                                         queue=service.settings.max_queued_answers,
                                         wait_s=service.settings.answer_queue_wait_s)
    _install_origin_checks(app, service.settings)
    _close_gradio_upload(app, service)
    _install_docs(app)
    _install_error_handlers(app, service.settings.max_error_chars)
    app.include_router(openai.router)
    app.include_router(api.router)
    mcp_run.append(_install_mcp(app, service))

    if with_ui:
        import gradio as gr

        from ui import render
        from ui.app import UI_CSS, UI_HEAD, UI_JS, build_ui, ui_theme
        from ui.provenance import provenance

        render.set_provenance_lookup(lambda doc_id: provenance(service, doc_id))
        blocks = build_ui(service)
        # The page's temp files (answers downloaded as .md/.docx, uploads through the 管理 tab): Gradio deletes
        # those older than UI_CACHE_MAX_AGE_S (checked hourly, or more often for a shorter age), and all of them
        # when the server stops. This sets what ui/app.py's gr.Blocks(delete_cache=…) gives, from the setting.
        age = max(1, service.settings.ui_cache_max_age_s)
        blocks.delete_cache = (min(age, 3600), age)
        app = gr.mount_gradio_app(app, blocks, path="/", theme=ui_theme(), css=UI_CSS, js=UI_JS, head=UI_HEAD,
                                  footer_links=[])
    return app


def _install_mcp(app: FastAPI, service: PolicyAssistant) -> Any:
    """MCP over streamable HTTP at ``/mcp``; with ``API_TOKENS`` set it needs one as a bearer token."""
    from ui.auth import api_tokens, token_problem
    from ui.mcp_server import mount_http

    def mcp_token(scope: Scope) -> Response | None:
        if str(scope.get("path", "")).rstrip("/") == "/mcp":
            accepted = api_tokens(service.settings)
            if accepted:
                scheme, _, given = Headers(scope=scope).get("authorization", "").partition(" ")
                problem = token_problem(given.strip() if scheme.lower() == "bearer" else None, accepted)
                if problem is not None:
                    return JSONResponse({"detail": f"{problem} bearer token: send 'Authorization: Bearer "
                                                   "<one of API_TOKENS>'"},
                                        status_code=401, headers={"WWW-Authenticate": "Bearer"})
        return None

    app.add_middleware(RequestGuard, check=mcp_token)

    return mount_http(app, service)


def _install_docs(app: FastAPI) -> None:
    """Swagger UI from files shipped in the fastapi-offline wheel: no CDN."""
    import fastapi_offline

    static = Path(fastapi_offline.__file__).parent / "static"
    app.mount("/api/_docs-static", StaticFiles(directory=static), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} – docs",
                                   swagger_js_url=f"{root}/api/_docs-static/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}/api/_docs-static/swagger-ui.css",
                                   swagger_favicon_url=f"{root}/api/_docs-static/favicon.png")


def _install_error_handlers(app: FastAPI, limit: int) -> None:
    """Bad input → 4xx with ``{"detail"}`` (``/v1``: an OpenAI error object); every message is cut to
    ``limit`` characters (``MAX_ERROR_CHARS``) since it may quote the input."""
    from fastapi.exception_handlers import http_exception_handler
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(openai.OpenAIError)
    async def _openai(_: Request, exc: openai.OpenAIError) -> JSONResponse:
        exc.message = clip(exc.message, limit)
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Any:
        if isinstance(exc.detail, str):
            exc.detail = clip(exc.detail, limit)
        return await http_exception_handler(request, exc)

    @app.exception_handler(InputError)
    async def _input(_: Request, exc: InputError) -> JSONResponse:
        return JSONResponse({"detail": clip(str(exc), limit)}, status_code=400)

    @app.exception_handler(LoaderError)
    async def _loader(_: Request, exc: LoaderError) -> JSONResponse:
        message = str(exc)
        code = 413 if "the limit is" in message else 415 if message.startswith("unsupported format") else 400
        return JSONResponse({"detail": clip(message, limit)}, status_code=code)

    @app.exception_handler(NotFoundError)
    async def _not_found(_: Request, exc: NotFoundError) -> JSONResponse:
        return JSONResponse({"detail": clip(str(exc), limit)}, status_code=404)

    from chromadb.errors import ChromaError

    @app.exception_handler(ChromaError)
    @app.exception_handler(OSError)
    async def _storage(_: Request, exc: Exception) -> JSONResponse:
        storage = storage_error(exc)
        if storage is None:
            raise exc
        return JSONResponse({"detail": str(storage)}, status_code=503, headers={"Retry-After": "30"})

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        ctype = request.headers.get("content-type", "")
        errors = exc.errors()
        if (ctype and "json" not in ctype and "multipart" not in ctype and "form" not in ctype
                and any(tuple(e.get("loc", ())) == ("body",) for e in errors)):
            return JSONResponse({"detail": f"unsupported content type {ctype!r}: send application/json"},
                                status_code=415)
        parts = []
        for err in errors:
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            if err.get("type") == "json_invalid":
                parts.append("malformed JSON body")
            elif err.get("type") == "missing" and not where:
                parts.append("the request body is missing")
            else:
                parts.append(f"{where or 'body'}: {err.get('msg')}")
        return JSONResponse({"detail": "; ".join(parts) or "invalid request"}, status_code=422)


# ------------------------------------------------------------------ slow connections
def guarded_h11(header_timeout_s: float) -> type:
    """uvicorn's h11 protocol with a deadline for a request's headers.

    uvicorn closes an idle keep-alive connection after ``timeout_keep_alive``, but it arms no timer on a new
    connection nor while a request's headers trickle in, so a client that connects and sends nothing, or a
    header byte now and then (slowloris), holds its socket forever. Here a connection must deliver complete
    request headers within ``header_timeout_s`` of opening (and of its previous response); else it is closed.
    Not covered: a slow request *body* once the headers are in (bounded by the upload size limit) and a client
    that reads a response slowly (bounded by the kernel's socket buffers and TCP timeouts).
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        _deadline: Any = None

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(header_timeout_s, self._too_slow)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None
            if self.cycle is None or self.cycle.response_complete:  # still waiting for a request's headers
                self.transport.close()

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            before = self.cycle
            super().data_received(data)
            if self.cycle is not before:  # a request's headers are complete
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return GuardedH11Protocol


def server_config(app: Any, host: str, port: int, settings: Settings) -> Any:
    """The uvicorn configuration ``serve`` uses: idle keep-alive and header deadlines, h11's header size cap."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, log_level="warning",
                          http=guarded_h11(settings.header_timeout_s),
                          timeout_keep_alive=max(1, round(settings.keep_alive_timeout_s)),
                          h11_max_incomplete_event_size=16 * 1024)

