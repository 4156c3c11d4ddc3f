"""The REST API (FastAPI) with the Gradio chat page mounted at ``/``.

Usage::

    app = create_app()                      # PolicyAssistant(Settings()) from the environment
    uvicorn.run(app, host="127.0.0.1", port=7860)

Reads (``/api/health``, search, ask, documents, clauses) run in the threadpool and see one
immutable index snapshot each; writes (upload, delete) need ``Authorization: Bearer <ADMIN_TOKEN>``
and are serialised by the service. Bad input is always a 4xx with a ``detail`` message.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import iterate_in_threadpool

from assistant.cli import answer_json, hit_json
from assistant.service import InputError, LoaderError, NotFoundError, PolicyAssistant, storage_error
from assistant.settings import Settings
from corpus.loaders import SUPPORTED_SUFFIXES
from corpus.models import Clause

MAX_HISTORY_TURNS = 20
_BEARER = HTTPBearer(auto_error=False, description="Authorization: Bearer <ADMIN_TOKEN>")
BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]


def _warm_up(service: PolicyAssistant) -> None:
    """Load the embedding model and the tokenizer now, not on the first user's question."""
    try:
        service.search("服务业扩大开放", k=1)
    except (InputError, NotFoundError, ValueError):  # an empty index: nothing to warm
        pass


def _version() -> str:
    try:
        return metadata.version("policy-assistant")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from an uninstalled tree
        return "0.0.0"


# ----------------------------------------------------------------- models
class HealthOut(BaseModel):
    status: str
    documents: int
    clauses: int
    embedding_model: str
    embedding_models: list[str] = Field(default_factory=list, description="dense models in use, primary first")
    embedding_notice: str | None = None
    version: str
    writes_enabled: bool
    llm: dict[str, Any] | None = Field(
        None, description="Generative mode: provider, model and whether it answers (probed at most once a minute).")


class SearchIn(BaseModel):
    query: str = Field(..., description="The search text (Chinese or English).", examples=["数据出境安全评估"])
    k: int = Field(5, ge=1, le=100)
    doc_id: str | None = Field(None, description="Only clauses of this document.")


class HitOut(BaseModel):
    clause_id: str
    doc_id: str
    doc_title: str
    path: str
    label: str
    text: str
    score: float


class SearchOut(BaseModel):
    query: str
    hits: list[HitOut]


class AskIn(BaseModel):
    question: str = Field(..., examples=["市服开办设在哪里？"])
    history: list[tuple[str, str]] = Field(
        default_factory=list, max_length=MAX_HISTORY_TURNS,
        description="Earlier turns as [question, answer] pairs, oldest first.")


class CitationOut(BaseModel):
    clause_id: str
    doc_id: str
    doc_title: str
    path: str
    label: str
    text: str
    quote: str


class AnswerOut(BaseModel):
    answer: str
    citations: list[CitationOut]
    refused: bool
    nearest: list[CitationOut]
    standalone_question: str
    mode: str
    notice: str | None = None
    unsupported_sentences: list[str] = Field(default_factory=list)
    outcome: str = Field("answer", description="answer | caveat (the corpus lacks what was asked; says so, shows the "
                                                "nearest clauses; counted as refused) | refuse")
    caveat: str | None = None
    gate_reasons: list[str] = Field(default_factory=list)
    support_score: float = Field(0.0, description="the gate's P(answerable)")


class DocumentOut(BaseModel):
    doc_id: str
    title: str
    short_title: str = ""
    kind: str
    wenhao: str = ""
    issuer: str = ""
    date: str = ""
    status: str
    source: str = ""
    clauses: int


class ClauseRef(BaseModel):
    clause_id: str
    label: str
    path: str
    text: str


class OutlineItem(BaseModel):
    clause_id: str
    label: str
    path: list[str]
    kind: str
    text: str


class DocumentDetailOut(DocumentOut):
    outline: list[OutlineItem]


class ClauseOut(BaseModel):
    clause_id: str
    doc_id: str
    doc_title: str
    status: str
    path: str
    path_parts: list[str]
    label: str
    kind: str
    text: str
    previous: ClauseRef | None = None
    next: ClauseRef | None = None


class UploadOut(BaseModel):
    doc_id: str
    title: str
    status: str
    clauses: int
    changed: bool


class DeleteOut(BaseModel):
    doc_id: str
    deleted: bool = True


class ErrorOut(BaseModel):
    detail: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Bad input"},
    404: {"model": ErrorOut, "description": "Unknown id"},
    422: {"model": ErrorOut, "description": "Invalid request body"},
}
_WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    401: {"model": ErrorOut, "description": "Missing bearer token"},
    403: {"model": ErrorOut, "description": "Wrong token, or writes disabled (no ADMIN_TOKEN)"},
    413: {"model": ErrorOut, "description": "Upload too large"},
    415: {"model": ErrorOut, "description": "Unsupported file type"},
}


def _ref(clause: Clause | None) -> ClauseRef | None:
    if clause is None:
        return None
    return ClauseRef(clause_id=clause.clause_id, label=clause.label, path=clause.path_text, text=clause.text)


def _doc_out(info: Any) -> DocumentOut:
    return DocumentOut(**info.meta.model_dump(), clauses=info.clauses)


# ------------------------------------------------------------------- app
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


def _close_gradio_upload(app: FastAPI, service: PolicyAssistant) -> None:
    """Gradio's own file-upload route is only for the 管理 tab: closed (403) while writes are disabled.

    Without this, anyone who reaches the port could store files of up to the upload limit in Gradio's temp
    folder (and learn its absolute path). With ``ADMIN_TOKEN`` set the tab needs the route; the size limit
    still applies (``MAX_UPLOAD_BYTES``).
    """

    @app.middleware("http")
    async def _guard(request: Request, call_next: Any) -> Any:
        if request.url.path.rstrip("/").endswith("/gradio_api/upload") and not service.settings.admin_token:
            return JSONResponse({"detail": "uploads are disabled: the server has no ADMIN_TOKEN set"}, status_code=403)
        return await call_next(request)


def create_app(assistant: PolicyAssistant | None = None, *, with_ui: bool = True) -> FastAPI:
    """Build the FastAPI app: ``/api/*`` routes, offline ``/docs``, and the Gradio page at ``/``.

    Args:
        assistant: the service; a new one from the environment's :class:`Settings` when omitted.
        with_ui: mount the Gradio chat page at ``/`` (the API tests may leave it out).
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    service = assistant or PolicyAssistant(Settings())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(service.ensure_index)
        await run_in_threadpool(_warm_up, service)
        yield

    app = FastAPI(title="政策助手 Policy Assistant API", version=_version(), lifespan=lifespan,
                  docs_url=None, redoc_url=None, max_body_size=service.settings.max_upload_bytes + 1024 * 1024,
                  description="Grounded, cited answers about Fuzhou's service-industry opening-up pilot plan "
                              "and the national laws around it. Writes need `Authorization: Bearer <ADMIN_TOKEN>`.")
    app.state.assistant = service
    _install_origin_checks(app, service.settings)
    _close_gradio_upload(app, service)
    _install_docs(app)
    _install_error_handlers(app)

    def require_admin(credentials: BearerCredentials) -> None:
        token = service.settings.admin_token
        if not token:
            raise HTTPException(403, "writes are disabled: the server has no ADMIN_TOKEN set")
        if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
            raise HTTPException(401, "missing bearer token: send 'Authorization: Bearer <ADMIN_TOKEN>'",
                                headers={"WWW-Authenticate": "Bearer"})
        if not secrets.compare_digest(credentials.credentials.encode(), token.encode()):
            raise HTTPException(403, "wrong admin token")

    @app.get("/api/health", response_model=HealthOut, tags=["meta"])
    def health() -> HealthOut:
        snap = service.retriever.snapshot
        return HealthOut(status="ok", documents=len(snap.documents), clauses=len(snap.clauses),
                         embedding_model=service.embedder.spec, embedding_models=service.active_embedding_models,
                         embedding_notice=service.embedding_notice, version=_version(),
                         writes_enabled=bool(service.settings.admin_token),
                         llm=service.llm_status(max_age_s=60) if hasattr(service, "llm_status") else None)

    work = threading.BoundedSemaphore(max(1, service.settings.max_concurrent_answers))

    @contextmanager
    def answer_slot() -> Iterator[None]:
        """One of MAX_CONCURRENT_ANSWERS slots, or 503 + Retry-After at once (overload is explicit, not a
        dropped connection)."""
        if not work.acquire(blocking=False):
            raise HTTPException(503, "busy: too many questions at once; retry shortly",
                                headers={"Retry-After": "1"})
        try:
            yield
        finally:
            work.release()

    from ui.openai_api import create_router

    app.include_router(create_router(service, answer_slot))

    @app.post("/api/search", response_model=SearchOut, responses=_ERRORS, tags=["read"])
    def search(body: SearchIn) -> SearchOut:
        with answer_slot():
            hits = service.search(body.query, k=body.k, doc_id=body.doc_id or None)
        return SearchOut(query=body.query, hits=[HitOut(**hit_json(h)) for h in hits])

    @app.post("/api/ask", response_model=AnswerOut, responses=_ERRORS, tags=["read"])
    def ask(body: AskIn) -> AnswerOut:
        with answer_slot():
            answer = service.ask(body.question, list(body.history))
        return AnswerOut(**answer_json(answer))

    @app.post("/api/ask/stream", responses=_ERRORS, tags=["read"],
              response_class=EventSourceResponse,
              description="Server-sent events: `token` events (`{\"text\"}`) as the answer is produced, "
                          "then one `citations` event (`{\"citations\", \"refused\", \"nearest\", …}`), "
                          "then `done`. Bad input is refused with a 4xx before the stream starts.")
    async def ask_stream(body: AskIn) -> EventSourceResponse:
        # Validate before the stream starts so bad input is a plain 4xx, not an event.
        question = service.check_text(body.question, "question")
        events = service.ask_stream(question, list(body.history))
        return EventSourceResponse(_sse(events), ping=15)

    @app.get("/api/documents", response_model=list[DocumentOut], tags=["read"])
    def documents() -> list[DocumentOut]:
        return [_doc_out(d) for d in service.documents()]

    @app.get("/api/documents/{doc_id}", response_model=DocumentDetailOut, responses=_ERRORS, tags=["read"])
    def document(doc_id: str) -> DocumentDetailOut:
        info, clauses = service.document(doc_id)
        outline = [OutlineItem(clause_id=c.clause_id, label=c.label, path=c.path, kind=c.kind, text=c.text)
                   for c in clauses]
        return DocumentDetailOut(**_doc_out(info).model_dump(), outline=outline)

    @app.get("/api/clauses/{clause_id:path}", response_model=ClauseOut, responses=_ERRORS, tags=["read"])
    def clause(clause_id: str) -> ClauseOut:
        view = service.clause(clause_id)
        c = view.clause
        return ClauseOut(clause_id=c.clause_id, doc_id=c.doc_id, doc_title=c.doc_title, status=view.document.status,
                         path=c.path_text, path_parts=c.path, label=c.label, kind=c.kind, text=c.text,
                         previous=_ref(view.previous), next=_ref(view.next))

    @app.post("/api/documents", response_model=UploadOut, status_code=201, responses=_WRITE_ERRORS,
              tags=["admin"], dependencies=[Depends(require_admin)])
    async def upload(file: Annotated[UploadFile, File(description=".txt .md .docx .pdf .html")],
                     doc_id: Annotated[str | None, Form()] = None, title: Annotated[str | None, Form()] = None,
                     status: Annotated[str | None, Form()] = None, issuer: Annotated[str | None, Form()] = None,
                     date: Annotated[str | None, Form()] = None,
                     wenhao: Annotated[str | None, Form()] = None) -> UploadOut:
        filename = Path(file.filename or "").name
        if not filename:
            raise HTTPException(400, "the upload has no file name")
        if Path(filename).suffix.lower() not in SUPPORTED_SUFFIXES:
            raise HTTPException(415, f"unsupported file type {Path(filename).suffix or '(none)'!r}; "
                                     f"use one of {', '.join(SUPPORTED_SUFFIXES)}")
        limit = service.settings.max_upload_bytes
        data = await file.read(limit + 1)
        if len(data) > limit:
            raise HTTPException(413, f"{filename} is larger than the limit of {limit} bytes")
        meta = {"doc_id": doc_id, "title": title, "status": status, "issuer": issuer, "date": date,
                "wenhao": wenhao}
        parsed, changed = await run_in_threadpool(service.ingest_bytes, data, filename, **meta)
        return UploadOut(doc_id=parsed.meta.doc_id, title=parsed.meta.title, status=parsed.meta.status,
                         clauses=len(parsed.clauses), changed=changed)

    @app.delete("/api/documents/{doc_id}", response_model=DeleteOut, responses=_WRITE_ERRORS, tags=["admin"],
                dependencies=[Depends(require_admin)])
    def delete(doc_id: str) -> DeleteOut:
        service.delete_document(doc_id)
        return DeleteOut(doc_id=doc_id)

    @app.api_route("/api/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    def unknown(rest: str) -> None:
        raise HTTPException(404, f"no such endpoint: /api/{rest}")

    if with_ui:
        import gradio as gr

        from ui.app import UI_CSS, UI_HEAD, UI_JS, build_ui, ui_theme

        blocks = build_ui(service)
        app = gr.mount_gradio_app(app, blocks, path="/", theme=ui_theme(), css=UI_CSS, js=UI_JS, head=UI_HEAD,
                                  footer_links=[])
    return app


async def _sse(events: Iterator[dict[str, Any]]) -> AsyncIterator[dict[str, str]]:
    """The service's events as SSE; each blocking step of the answerer runs in the threadpool."""
    try:
        async for event in iterate_in_threadpool(events):
            if event["type"] == "token":
                yield {"event": "token", "data": json.dumps({"text": event["text"]}, ensure_ascii=False)}
            elif event["type"] == "answer":
                body = answer_json(event["answer"])
                body.pop("answer", None)
                yield {"event": "citations", "data": json.dumps(body, ensure_ascii=False)}
    except (InputError, LoaderError, NotFoundError, ValueError) as exc:
        yield {"event": "error", "data": json.dumps({"detail": str(exc)}, ensure_ascii=False)}
    yield {"event": "done", "data": "{}"}


# --------------------------------------------------------------- helpers
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


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(InputError)
    async def _input(_: Request, exc: InputError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(LoaderError)
    async def _loader(_: Request, exc: LoaderError) -> JSONResponse:
        message = str(exc)
        code = 413 if "the limit is" in message else 415 if message.startswith("unsupported format") else 400
        return JSONResponse({"detail": message}, status_code=code)

    @app.exception_handler(NotFoundError)
    async def _not_found(_: Request, exc: NotFoundError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

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
