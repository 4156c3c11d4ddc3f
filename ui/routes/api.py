"""The REST router under ``/api``: health, search, ask (plain and streamed), documents, clauses, and the
admin writes (``Authorization: Bearer <ADMIN_TOKEN>``). Bad input is a 4xx with a ``detail`` message
(the handlers are installed by :func:`ui.server.create_app`).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Iterator
from importlib import metadata
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from sse_starlette.sse import EventSourceResponse
from starlette.background import BackgroundTask
from starlette.concurrency import iterate_in_threadpool

from assistant.models import Answer, Citation
from assistant.service import InputError, LoaderError, NotFoundError, storage_error
from ui.auth import require_admin
from ui.deps import Service, Slots, once
from ui.provenance import clause_flags, provenance, warning_text, with_provenance
from ui.render import clause_warning_html
from ui.schemas import (
    AskIn,
    ClauseOut,
    DeleteOut,
    DocumentDetailOut,
    DocumentOut,
    ErrorOut,
    ExportIn,
    FeedbackIn,
    FeedbackOut,
    HealthOut,
    ProvenancedAnswerOut,
    SearchIn,
    SearchOut,
    UploadOut,
    answer_json,
    clause_ref,
    hit_json,
)
from ui.uploads import UploadRejected, check_upload

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Bad input"},
    404: {"model": ErrorOut, "description": "Unknown id"},
    422: {"model": ErrorOut, "description": "Invalid request body"},
}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    401: {"model": ErrorOut, "description": "Missing bearer token"},
    403: {"model": ErrorOut, "description": "Wrong token, or writes disabled (no ADMIN_TOKEN)"},
    413: {"model": ErrorOut, "description": "Upload too large"},
    415: {"model": ErrorOut, "description": "Unsupported file type"},
}

router = APIRouter(prefix="/api")


def version() -> str:
    try:
        return metadata.version("policy-assistant")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from an uninstalled tree
        return "0.0.0"


def _document(info: Any) -> dict[str, Any]:
    return {**info.meta.model_dump(), "clauses": info.clauses}


@router.get("/health", response_model=HealthOut, tags=["meta"])
def health(service: Service) -> HealthOut:
    snap = service.retriever.snapshot
    return HealthOut(status="ok", documents=len(snap.documents), clauses=len(snap.clauses),
                     embedding_model=service.embedder.spec, embedding_models=service.active_embedding_models,
                     embedding_notice=service.embedding_notice, version=version(),
                     writes_enabled=bool(service.settings.admin_token),
                     llm=service.llm_status(max_age_s=60) if hasattr(service, "llm_status") else None)


@router.post("/search", response_model=SearchOut, responses=ERRORS, tags=["read"])
def search(body: SearchIn, service: Service, slots: Slots) -> dict[str, Any]:
    query = service.check_text(body.query, "query")  # the cleaned text is what is searched and echoed
    with slots.take():
        hits = service.search(query, k=body.k, doc_id=body.doc_id or None)
    return {"query": query, "hits": [hit_json(h) for h in hits]}


@router.post("/ask", response_model=ProvenancedAnswerOut, responses=ERRORS, tags=["read"])
def ask(body: AskIn, service: Service, slots: Slots) -> dict[str, Any]:
    with slots.take():
        answer = service.ask(body.question, list(body.history))
    return with_provenance(service, answer_json(answer))


@router.post("/ask/stream", responses=ERRORS, tags=["read"], response_class=EventSourceResponse,
             description="Server-sent events: `token` events (`{\"text\"}`) as the answer is produced, "
                         "then one `citations` event (`{\"citations\", \"refused\", \"nearest\", …}`), "
                         "then `done`. Bad input is refused with a 4xx before the stream starts.")
async def ask_stream(body: AskIn, service: Service, slots: Slots) -> EventSourceResponse:
    # Validate and take an answer slot before the stream starts: bad input is a plain 4xx and overload a
    # 503 + Retry-After, not an event. The slot is held until the stream ends (or the client leaves).
    question = service.check_text(body.question, "question")
    await slots.acquire_async()
    release = once(slots.release)
    try:
        events = service.ask_stream(question, list(body.history))
    except BaseException:
        release()
        raise
    # Released when the stream ends, or after the response if the stream never started.
    return EventSourceResponse(_sse(events, release, service), ping=15, background=BackgroundTask(release))



async def _sse(events: Iterator[dict[str, Any]], done: Callable[[], None],
               service: Any = None) -> AsyncIterator[dict[str, str]]:
    """The service's events as SSE; each blocking step of the answerer runs in the threadpool. Any failure
    ends the stream with an ``error`` event (then ``done``); ``done()`` runs once the stream is over."""
    try:
        async for event in iterate_in_threadpool(events):
            if event["type"] == "token":
                yield {"event": "token", "data": json.dumps({"text": event["text"]}, ensure_ascii=False)}
            elif event["type"] == "answer":
                body = answer_json(event["answer"])
                body = with_provenance(service, body) if service is not None else body
                body.pop("answer", None)
                yield {"event": "citations", "data": json.dumps(body, ensure_ascii=False)}
    except (InputError, LoaderError, NotFoundError, ValueError) as exc:
        yield {"event": "error", "data": json.dumps({"detail": str(exc)[:300]}, ensure_ascii=False)}
    except Exception as exc:  # noqa: BLE001 - a stream ends with an error event, never a cut connection
        storage = storage_error(exc)
        detail = str(storage) if storage else "internal error while answering"
        yield {"event": "error", "data": json.dumps({"detail": detail[:300]}, ensure_ascii=False)}
    finally:
        done()
    yield {"event": "done", "data": "{}"}


@router.get("/documents", response_model=list[DocumentOut], tags=["read"])  # type: ignore[valid-type]
def documents(service: Service) -> list[dict[str, Any]]:
    return [_document(d) for d in service.documents()]


@router.get("/documents/{doc_id}", response_model=DocumentDetailOut, responses=ERRORS, tags=["read"])
def document(doc_id: str, service: Service) -> dict[str, Any]:
    info, clauses = service.document(doc_id)
    outline = [{"clause_id": c.clause_id, "label": c.label, "path": c.path, "kind": c.kind, "text": c.text}
               for c in clauses]
    return {**_document(info), "outline": outline}


@router.get("/documents/{doc_id}/table", responses={**ERRORS, 200: {"content": {"text/csv": {}},
                                                                       "description": "The table, as an attachment"}},
            response_class=Response, tags=["read"],
            description="The document's clauses as a table (部分, 项, 条款编号, 公文引用, 条文, 状态), as CSV (UTF-8 "
                        "with BOM) or XLSX; `q` keeps rows containing it, `section` one first-level heading.")
def document_table(doc_id: str, service: Service, format: Annotated[str, Query(description="csv or xlsx")] = "csv",
                   q: Annotated[str, Query(max_length=200)] = "",
                   section: Annotated[str, Query(max_length=200)] = "") -> Response:
    from ui.clause_table import MEDIA_TYPES, clause_rows, table_csv, table_xlsx

    if format not in MEDIA_TYPES:
        raise HTTPException(400, "format must be csv or xlsx")
    rows = clause_rows(service, doc_id, query=q, section=section)  # unknown id: 404
    content = table_csv(rows) if format == "csv" else table_xlsx(rows, doc_id)
    name = f"{doc_id}-clauses.{format}"
    ascii_name = re.sub(r"[^A-Za-z0-9._-]+", "_", name)
    return Response(content, media_type=MEDIA_TYPES[format],
                    headers={"Content-Disposition": f"attachment; filename=\"{ascii_name}\"; "
                                                    f"filename*=UTF-8''{quote(name)}"})


@router.get("/clauses/{clause_id:path}", response_model=ClauseOut, responses=ERRORS, tags=["read"])
def clause(clause_id: str, service: Service) -> dict[str, Any]:
    view = service.clause(clause_id)
    c = view.clause
    prov, flags = provenance(service, c.doc_id), clause_flags(c.text)
    body: dict[str, Any] = {
        "clause_id": c.clause_id, "doc_id": c.doc_id, "doc_title": c.doc_title, "status": view.document.status,
        "path": c.path_text, "path_parts": c.path, "label": c.label, "kind": c.kind, "text": c.text,
        "previous": clause_ref(view.previous), "next": clause_ref(view.next),
        "provenance": prov, "flags": flags, "warning": warning_text(prov, flags)}
    body["warning_html"] = clause_warning_html(body)
    return body


@router.post("/documents", response_model=UploadOut, status_code=201, responses=WRITE_ERRORS, tags=["admin"],
             dependencies=[Depends(require_admin)])
async def upload(service: Service, file: Annotated[UploadFile, File(description=".txt .md .docx .pdf .html")],
                 doc_id: Annotated[str | None, Form()] = None, title: Annotated[str | None, Form()] = None,
                 status: Annotated[str | None, Form()] = None, issuer: Annotated[str | None, Form()] = None,
                 date: Annotated[str | None, Form()] = None,
                 wenhao: Annotated[str | None, Form()] = None) -> dict[str, Any]:
    settings = service.settings
    try:
        check_upload(file.filename, 0, settings)  # name and type before reading anything
        data = await file.read(settings.max_upload_bytes + 1)
        filename = check_upload(file.filename, len(data), settings)
    except UploadRejected as exc:
        raise HTTPException(exc.status, str(exc)) from exc
    meta = {"doc_id": doc_id, "title": title, "status": status, "issuer": issuer, "date": date, "wenhao": wenhao}
    parsed, changed = await run_in_threadpool(service.ingest_bytes, data, filename, **meta)
    return {"doc_id": parsed.meta.doc_id, "title": parsed.meta.title, "status": parsed.meta.status,
            "clauses": len(parsed.clauses), "changed": changed}


@router.delete("/documents/{doc_id}", response_model=DeleteOut, responses=WRITE_ERRORS, tags=["admin"],
               dependencies=[Depends(require_admin)])
def delete(doc_id: str, service: Service) -> DeleteOut:
    service.delete_document(doc_id)
    return DeleteOut(doc_id=doc_id)


@router.post("/feedback", response_model=FeedbackOut, status_code=201, responses=ERRORS, tags=["feedback"],
             description="A verdict (`up` 👍 / `down` 👎) and an optional comment on an answer, stored in SQLite "
                         "under the data dir; `policy-assistant feedback export` turns them into eval cases.")
def feedback(body: FeedbackIn, service: Service) -> FeedbackOut:
    from ui.feedback import MAX_COMMENT_CHARS, VERDICTS, FeedbackStore

    question = service.check_text(body.question, "question")
    if body.verdict not in VERDICTS:
        raise HTTPException(400, "verdict must be 'up' or 'down'")
    if len(body.comment) > MAX_COMMENT_CHARS:
        raise HTTPException(400, f"comment is {len(body.comment)} characters; the limit is {MAX_COMMENT_CHARS}")
    store = FeedbackStore.for_settings(service.settings)
    fid = store.add(question, body.answer, [c.model_dump() for c in body.citations], body.verdict, body.comment,
                    service.clean_history(list(body.history)), refused=body.refused)
    return FeedbackOut(id=fid, verdict=body.verdict)


def _quoted(quote: str, text: str) -> str:
    """The client's quote when every fragment of it is in the clause, else the whole clause."""
    parts = [p.strip() for p in quote.replace("...", "…").split("…") if p.strip()]
    return quote if parts and all(p in text for p in parts) else text


@router.post("/export", responses={**ERRORS, 200: {"content": {"text/markdown": {}, "application/vnd.openxmlformats-"
                                                                "officedocument.wordprocessingml.document": {}},
                                                    "description": "The document, as an attachment"}},
             response_class=Response, tags=["read"],
             description="An answer with its quoted clauses and full citations (official citation form) as "
                         "Markdown (`format=md`) or Word (`format=docx`). Send `{question, history}` to answer "
                         "now, or also `answer` and `citations` (clause ids, quotes) to export an answer already "
                         "shown; each cited clause's text, title and path are then read from the corpus.")
def export(body: ExportIn, service: Service, slots: Slots,
           format: Annotated[str, Query(description="md or docx")] = "md") -> Response:
    from ui.export import MEDIA_TYPES, answer_to_docx, answer_to_markdown, export_filename

    if format not in MEDIA_TYPES:
        raise HTTPException(400, "format must be md or docx")
    question = service.check_text(body.question, "question")
    history = service.clean_history(list(body.history))  # within the MAX_HISTORY_* limits
    if body.answer is None:
        with slots.take():
            answer = service.ask(question, history)
    else:
        cites = []
        for ref in body.citations:
            clause = service.clause(ref.clause_id).clause  # unknown id: 404
            cites.append(Citation.of(clause, quote=_quoted(ref.quote, clause.text)))
        answer = Answer(question=question, standalone_question=question, answer=body.answer, citations=cites,
                        refused=not cites)
    if format == "md":
        content: bytes = answer_to_markdown(answer, history).encode("utf-8")
    else:
        content = answer_to_docx(answer, history)
    name = export_filename(format)
    return Response(content, media_type=MEDIA_TYPES[format],
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/corpus/export", responses={**WRITE_ERRORS, 200: {"content": {"application/gzip": {}},
                                                                "description": "The backup, as an attachment"}},
            response_class=Response, tags=["admin"], dependencies=[Depends(require_admin)],
            description="A backup of the corpus (`policy-assistant export`): manifest, clauses, the texts they "
                        "were parsed from and uploaded originals, as a .tar.gz attachment.")
async def corpus_export(service: Service, no_shipped: bool = False) -> Response:
    import os
    import tempfile
    from datetime import UTC, datetime
    from pathlib import Path

    from starlette.responses import FileResponse

    from assistant.backup import export_corpus

    handle, name = tempfile.mkstemp(prefix="policy-export-", suffix=".tar.gz")
    os.close(handle)
    path = Path(name)
    try:
        await run_in_threadpool(export_corpus, service, path, not no_shipped)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return FileResponse(path, media_type="application/gzip", filename=f"policy-assistant-backup-{stamp}.tar.gz",
                        background=BackgroundTask(path.unlink, missing_ok=True))


@router.post("/corpus/import", responses=WRITE_ERRORS, tags=["admin"], dependencies=[Depends(require_admin)],
             description="Restore a backup made by `GET /api/corpus/export` or `policy-assistant export` (multipart "
                         "`file`, .tar.gz, at most `MAX_UPLOAD_BYTES`; larger: the CLI). The archive is checked "
                         "whole before anything changes (400 when it is corrupt, altered or unsafe); documents are "
                         "re-parsed and embedded with the active model. `replace=true`: afterwards the corpus holds "
                         "exactly the archive's documents; `dry_run=true`: report only.")
async def corpus_import(service: Service, file: Annotated[UploadFile, File(description="a .tar.gz backup")],
                        replace: bool = False, dry_run: bool = False) -> dict[str, Any]:
    import os
    import tempfile
    from pathlib import Path

    from assistant.backup import BackupError, import_corpus

    filename = file.filename or ""
    if not filename.lower().endswith((".tar.gz", ".tgz")):
        raise HTTPException(415, "a backup is a .tar.gz file (from GET /api/corpus/export or policy-assistant export)")
    limit = service.settings.max_upload_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f"the backup is larger than the limit of {limit} bytes; import it with "
                                 "`policy-assistant import`")
    handle, name = tempfile.mkstemp(prefix="policy-import-", suffix=".tar.gz")
    path = Path(name)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        report = await run_in_threadpool(import_corpus, service, path, replace, dry_run)
    except BackupError as exc:
        raise HTTPException(400, str(exc)) from exc
    finally:
        path.unlink(missing_ok=True)
    return {"added": report.added, "replaced": report.replaced, "unchanged": report.unchanged,
            "removed": report.removed, "notes": report.notes, "clauses": report.clauses,
            "embedding_model": report.embedding_model, "dry_run": dry_run}


@router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
def unknown(rest: str) -> None:
    raise HTTPException(404, f"no such endpoint: /api/{rest}")
