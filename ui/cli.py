"""The ``policy-assistant`` console command.

Every command prints a one-line ``error: …`` and exits non-zero on bad input; never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import typer

from assistant.models import Answer
from assistant.service import InputError, NotFoundError, PolicyAssistant, storage_error
from assistant.settings import Settings
from assistant.text import clip
from corpus.loaders import LoaderError
from retrieval.embeddings import EmbeddingError
from ui.schemas import answer_json, hit_json

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Policy assistant for Fuzhou's service-industry opening-up pilot.")

EXIT_INPUT = 2
EXIT_NOT_FOUND = 3


def _fail(message: str, code: int = EXIT_INPUT) -> None:
    try:
        limit = Settings().max_error_chars
    except Exception:  # noqa: BLE001 - a broken environment must not hide the error being reported
        limit = 300
    typer.echo(f"error: {clip(message, limit)}", err=True)
    raise typer.Exit(code)


def _run(action: Callable[[], Any]) -> Any:
    try:
        return action()
    except NotFoundError as exc:
        _fail(str(exc), EXIT_NOT_FOUND)
    except (InputError, LoaderError, EmbeddingError, ValueError) as exc:
        _fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - storage failures become one line; anything else is a bug
        storage = storage_error(exc)
        if storage is not None:
            _fail(str(storage))
        if isinstance(exc, OSError):
            _fail(f"{exc.strerror or exc}: {getattr(exc, 'filename', '') or ''}".strip(": "))
        raise


def _assistant(build: bool = True) -> PolicyAssistant:
    assistant = PolicyAssistant(Settings())
    if build:
        built = _run(assistant.ensure_index)
        if built:
            typer.echo(f"built the index from the shipped corpus ({built} documents)", err=True)
    return assistant


def _batch(path: Path) -> Iterator[dict[str, Any]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read {path}: {exc}")
        return
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            _fail(f"{path}:{n}: not JSON ({exc.msg})")
        if not isinstance(item, dict) or not isinstance(item.get("question", item.get("query")), str):
            _fail(f"{path}:{n}: each line needs a string 'question'")
        yield item


def _print_json(obj: dict[str, Any]) -> None:
    typer.echo(json.dumps(obj, ensure_ascii=False))


@app.command()
def ingest(paths: list[Path] = typer.Argument(None, help="Files to add (.txt .md .docx .pdf .html); none: the shipped corpus."),
           doc_id: str | None = typer.Option(None, help="Document id (one file only)."),
           title: str | None = typer.Option(None), status: str | None = typer.Option(None),
           issuer: str | None = typer.Option(None), date: str | None = typer.Option(None),
           wenhao: str | None = typer.Option(None),
           own_only: bool = typer.Option(False, "--own-only",
                                         help="Do not add the shipped corpus: an index of your own documents only."),
           batch: int = typer.Option(50, min=1, help="Files per batch (one commit per batch)."),
           quiet: bool = typer.Option(False, "--quiet", "-q",
                                      help="No progress bar and no per-file lines: only the summary.")) -> None:
    """Add documents to the index (the same file twice adds nothing; a changed file replaces its clauses).

    Many files are ingested in batches, each committed as one write (all of it or none of it), and one index
    refresh at the end, so an interrupted run resumes where it stopped (files already stored are skipped).
    """
    assistant = _assistant(build=not paths)
    if not paths:
        changed = _run(assistant.reset_shipped)
        typer.echo(f"shipped corpus: {changed} documents changed, {len(assistant.documents())} in the index")
        return
    if doc_id and len(paths) > 1:
        _fail("--doc-id needs exactly one file")
    _run(assistant.store.repair if own_only else assistant.ensure_index)
    if len(paths) > 1:
        _ingest_many(assistant, paths, batch, quiet,
                     dict(title=title, status=status, issuer=issuer, date=date, wenhao=wenhao))
        return
    for path in paths:
        def ingest_one(p: Path = path) -> tuple[Any, bool]:
            return assistant.ingest_path(p, doc_id=doc_id, title=title, status=status, issuer=issuer, date=date,
                                         wenhao=wenhao)

        parsed, changed = _run(ingest_one)
        state = "added/replaced" if changed else "unchanged"
        typer.echo(f"{parsed.meta.doc_id}: {len(parsed.clauses)} clauses ({state})")


def _ingest_many(assistant: Any, paths: list[Path], batch: int, quiet: bool, meta: dict[str, Any]) -> None:
    """Batches of files, one commit each and one index refresh at the end; a progress bar on stderr when it is a terminal (not --quiet),
    and a ``[i/n]`` line per file on stdout unless --quiet or the bar is drawn on the same terminal."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    show_bar = not quiet and console.is_terminal
    show_lines = not quiet and not (show_bar and sys.stdout.isatty())
    counts = {"done": 0, "changed": 0, "clauses": 0}
    progress = Progress(TextColumn("ingest"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[doc]}"),
                        TimeRemainingColumn(), console=console, disable=not show_bar, transient=True)

    def on_done(parsed: Any, changed: bool) -> None:
        counts["done"] += 1
        counts["changed"] += int(changed)
        counts["clauses"] += len(parsed.clauses)
        progress.update(task, advance=1, doc=parsed.meta.doc_id)
        if show_lines:
            state = "added/replaced" if changed else "unchanged"
            typer.echo(f"[{counts['done']}/{len(paths)}] {parsed.meta.doc_id}: {len(parsed.clauses)} clauses ({state})")

    started = time.perf_counter()
    with progress:
        task = progress.add_task("ingest", total=len(paths), doc="")
        for start in range(0, len(paths), batch):
            chunk = paths[start:start + batch]
            def ingest_chunk(c: list[Path] = chunk) -> Any:
                return assistant.ingest_paths(c, on_done=on_done, refresh=False, **meta)

            _run(ingest_chunk)
        if counts["changed"]:
            _run(assistant.refresh_index)
    embedding = getattr(assistant.embedder, "embed_seconds", None)
    timing = f" in {time.perf_counter() - started:.1f} s" + (f" (embedding {embedding:.1f} s)" if embedding else "")
    typer.echo(f"done: {counts['done']} files, {counts['changed']} changed, {counts['clauses']} clauses{timing}")


@app.command()
def remove(doc_id: str) -> None:
    """Remove a document and all its clauses from every index."""
    assistant = _assistant()
    _run(lambda: assistant.delete_document(doc_id))
    typer.echo(f"removed {doc_id}")


@app.command("export")
def export_(file: Path = typer.Argument(..., help="The archive to write (.tar.gz)."),
            no_shipped: bool = typer.Option(False, "--no-shipped",
                                            help="Leave out the texts of shipped documents unchanged from the "
                                                 "package (import re-creates them from its own package).")) -> None:
    """Back up the corpus: documents, metadata, clauses, the texts they were parsed from and uploaded originals."""
    from assistant.backup import export_corpus

    assistant = _assistant()
    report = _run(lambda: export_corpus(assistant, file, include_shipped=not no_shipped))
    left_out = f", {report.left_out} shipped left out" if report.left_out else ""
    typer.echo(f"exported {report.documents} documents ({report.clauses} clauses; {report.with_text} with their "
               f"source text, {report.originals} original files{left_out}) to {report.path}")


@app.command("import")
def import_(file: Path = typer.Argument(..., help="An archive made by `export`."),
            replace: bool = typer.Option(False, "--replace",
                                         help="Afterwards the corpus holds exactly the archive's documents "
                                              "(others are removed). Default: add and replace, keep the others."),
            dry_run: bool = typer.Option(False, "--dry-run", help="Check the archive and report; change nothing.")
            ) -> None:
    """Restore a backup: check the archive, re-parse its texts and embed them with the active embedding model."""
    from assistant.backup import import_corpus

    assistant = _assistant(build=False)  # an empty folder gets exactly the archive (no shipped corpus first)
    report = _run(lambda: import_corpus(assistant, file, replace=replace, dry_run=dry_run))
    for note in report.notes:
        typer.echo(f"note: {note}", err=True)
    verb = "would import" if dry_run else "imported"
    typer.echo(f"{verb} {file}: {len(report.added)} added, {len(report.replaced)} replaced, "
               f"{len(report.unchanged)} unchanged, {len(report.removed)} removed "
               f"({report.clauses} clauses, embedding model {report.embedding_model})")


@app.command()
def docs(as_json: bool = typer.Option(False, "--json")) -> None:
    """List the documents in the index with their status."""
    assistant = _assistant()
    for d in assistant.documents():
        if as_json:
            _print_json({**d.meta.model_dump(), "clauses": d.clauses})
        else:
            typer.echo(f"{d.meta.doc_id}\t{d.meta.title}\t{d.meta.wenhao or '-'}\t{d.meta.status}\t{d.clauses} clauses")


@app.command()
def doctor(as_json: bool = typer.Option(False, "--json")) -> None:
    """Check the setup: the index, offline token counting and (LLM_PROVIDER≠none) whether the model answers."""
    from assistant.tokens import TokenCounter

    assistant = PolicyAssistant(Settings())
    s = assistant.settings
    try:
        index: dict[str, Any] = {"ok": True, "documents": len(assistant.store.documents())}
    except Exception as exc:  # noqa: BLE001 - report, do not crash
        index = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    tokens = TokenCounter(cache_dir=s.data_dir / "tiktoken")
    llm = assistant.llm_status()
    try:
        models: dict[str, Any] = {"active": assistant.active_embedding_models, "notice": assistant.embedding_notice,
                                  "gate": assistant.backend if assistant.gate.model else None}
    except Exception as exc:  # noqa: BLE001 - report, do not crash
        models = {"active": [], "notice": f"{type(exc).__name__}: {exc}", "gate": None}
    report = {"data_dir": str(s.data_dir), "index": index, "embedding": models, "tiktoken_offline": tokens.exact,
              "llm": llm,
              "llm_max_context_tokens": s.llm_max_context_tokens, "llm_timeout_s": s.llm_timeout_s}
    if as_json:
        _print_json(report)
    else:
        typer.echo(f"data dir:   {s.data_dir}")
        typer.echo("index:      " + (f"{index['documents']} documents" if index["ok"] else f"ERROR {index['error']}"))
        typer.echo("embedding:  " + " + ".join(models["active"]) + " + BM25"
                   + (f"  (notice: {models['notice']})" if models["notice"] else ""))
        typer.echo("gate:       " + (f"fitted for {models['gate']}" if models["gate"] else "NOT FITTED (python -m eval.fit_gate)"))
        typer.echo("tokens:     " + ("tiktoken cl100k_base (offline BPE)" if tokens.exact else "estimated (tiktoken unavailable)"))
        where = f" model={llm['model']} base_url={llm['base_url']}" if s.llm_provider != "none" else ""
        typer.echo(f"llm:        provider={llm['provider']}{where}")
        typer.echo(f"            {llm['status'].upper()}: {llm['detail']}"
                   + (f" ({llm['seconds']} s)" if llm["seconds"] is not None else ""))
    if llm["status"] == "error" or not index["ok"]:
        raise typer.Exit(1)


@app.command()
def show(clause_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Show one clause with its heading path and neighbours."""
    assistant = _assistant()
    view = _run(lambda: assistant.clause(clause_id))
    c = view.clause
    from ui.provenance import clause_flags, provenance, warning_text

    prov, flags = provenance(assistant, c.doc_id), clause_flags(c.text)
    if as_json:
        _print_json({"clause_id": c.clause_id, "doc_id": c.doc_id, "doc_title": c.doc_title, "path": c.path_text,
                     "label": c.label, "text": c.text, "status": view.document.status,
                     "previous": view.previous.clause_id if view.previous else None,
                     "next": view.next.clause_id if view.next else None,
                     "provenance": prov, "flags": flags, "warning": warning_text(prov, flags)})
        return
    typer.echo(f"{c.clause_id}  [{c.label}]\n《{c.doc_title}》（{view.document.status}）\n{c.path_text}\n\n{c.text}")
    if warning_text(prov, flags):
        typer.echo("\n" + warning_text(prov, flags))
        for f in flags:
            typer.echo(f"  ⚠ {f['sentence']}  ({f['reason']})")
    if view.previous or view.next:
        typer.echo(f"\nprevious: {view.previous.clause_id if view.previous else '-'}"
                   f"   next: {view.next.clause_id if view.next else '-'}")


@app.command()
def search(query: str | None = typer.Argument(None), k: int = typer.Option(5, "--k", "-k"),
           doc: str | None = typer.Option(None, "--doc", help="Only this document id."),
           section: str | None = typer.Option(None, help="Only clauses under this id prefix or heading."),
           batch: Path | None = typer.Option(None, help="JSONL file of {id, question}."),
           as_json: bool = typer.Option(False, "--json")) -> None:
    """Retrieve the clauses closest to QUERY."""
    if not batch and (query is None or not query.strip()):
        _fail("query is empty")
    assistant = _assistant()
    items = _batch(batch) if batch else iter([{"id": None, "question": query}])
    for item in items:
        q = str(item.get("question", item.get("query")) or "")
        item_k = int(item.get("k", k) or k)
        hits = _run(lambda: assistant.search(q, k=item_k, doc_id=item.get("doc_id", doc), section=section))
        if as_json:
            _print_json({"id": item.get("id"), "hits": [hit_json(h) for h in hits]})
        else:
            for h in hits:
                typer.echo(f"{h.rank:>2}. {h.score:.4f}  {h.clause.clause_id}  {h.clause.text[:70]}")


@app.command()
def ask(question: str | None = typer.Argument(None),
        batch: Path | None = typer.Option(None, help="JSONL file of {id, question, history}."),
        as_json: bool = typer.Option(False, "--json")) -> None:
    """Answer QUESTION with cited clauses (no QUESTION and no --batch: an interactive loop)."""
    assistant = _assistant()
    if batch:
        for item in _batch(batch):
            answer = _run(lambda: assistant.ask(item["question"], item.get("history") or []))
            _print_json({"id": item.get("id"), **answer_json(answer)})
        return
    if question is None:
        _interactive(assistant)
        return
    if not as_json and assistant.settings.llm_provider != "none":
        try:
            _stream_answer(assistant, question, [])
        except (InputError, ValueError) as exc:
            _fail(str(exc))
        return
    answer = _run(lambda: assistant.ask(question))
    if as_json:
        _print_json({"id": None, **answer_json(answer)})
    else:
        _print_answer(answer)


def _stream_answer(assistant: PolicyAssistant, question: str, history: list[tuple[str, str]]) -> Answer:
    """Print the model's tokens as they come; then the verified answer when it differs, and its citations."""
    streamed: list[str] = []
    answer: Answer | None = None
    for event in assistant.ask_stream(question, history):
        if event["type"] == "token":
            streamed.append(event["text"])
            typer.echo(event["text"], nl=False)
        elif event["type"] == "answer":
            answer = event["answer"]
    assert answer is not None
    draft = "".join(streamed).strip()
    if draft:
        typer.echo("")
    _print_answer(answer, show_text=draft != answer.answer.strip(), header=bool(draft))
    return answer


def _print_answer(answer: Answer, show_text: bool = True, header: bool = False) -> None:
    if show_text:
        if header:
            typer.echo("\n核实后的回答 / verified answer:")
        typer.echo(answer.answer)
    if answer.notice:
        typer.echo(f"\n注意 / notice: {answer.notice}")
    if answer.unsupported_sentences:
        typer.echo("未找到条款依据的句子 / unsupported sentences:")
        for s in answer.unsupported_sentences:
            typer.echo(f"  - {s}")
    if answer.citations:
        typer.echo("\n引用 / citations:")
        for c in answer.citations:
            typer.echo(f"  [{c.label}] {c.clause_id}")


def _interactive(assistant: PolicyAssistant) -> None:
    history: list[tuple[str, str]] = []
    typer.echo("输入问题（空行退出）/ ask a question (empty line to quit)")
    for line in sys.stdin if not sys.stdin.isatty() else iter(lambda: input("> "), ""):
        line = line.strip()
        if not line:
            break
        try:
            if assistant.settings.llm_provider != "none":
                answer = _stream_answer(assistant, line, history)
            else:
                answer = assistant.ask(line, history)
                _print_answer(answer)
        except (InputError, ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)
            continue
        history.append((line, answer.answer))


@app.command()
def serve(host: str | None = typer.Option(None, help="Interface to listen on (default: HOST or 127.0.0.1)."),
          port: int | None = typer.Option(None, help="Port (default: PORT or 7860)."),
          workers: int = typer.Option(1, min=1, help="Worker processes (needs a Chroma server: CHROMA_HOST).")) -> None:
    """Start the web app: the chat page at /, the REST API under /api (docs at /docs), OpenAI-compatible /v1."""
    import uvicorn

    from ui.server import create_app, server_config

    if workers > 1 and not Settings().chroma_host:
        _fail(f"--workers {workers} needs a Chroma server (set CHROMA_HOST, CHROMA_PORT): the embedded store "
              "belongs to one process; run `serve` without --workers")
    assistant = PolicyAssistant(Settings())
    _run(assistant.hold_writer)  # embedded: this server is the folder's one writer (a second one fails here)
    built = _run(assistant.ensure_index)
    if built:
        typer.echo(f"built the index from the shipped corpus ({built} documents)", err=True)
    host = host or assistant.settings.host
    assistant.settings = assistant.settings.model_copy(update={"host": host})  # ALLOWED_HOSTS=auto follows it
    port = port or assistant.settings.port
    if workers > 1:  # each worker builds its app from the environment (ui.server:create_app, factory=True)
        os.environ["HOST"] = host
        settings = assistant.settings
        typer.echo(f"policy assistant: {len(assistant.documents())} documents indexed on the Chroma server "
                   f"{settings.chroma_host}:{settings.chroma_port}; {workers} workers on http://{host}:{port}/",
                   err=True)
        uvicorn.run("ui.server:create_app", factory=True, host=host, port=port, workers=workers, log_level="warning",
                    http="ui.cli:WorkerH11", timeout_keep_alive=max(1, round(settings.keep_alive_timeout_s)),
                    h11_max_incomplete_event_size=16 * 1024)
        return
    web = create_app(assistant)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    typer.echo(f"policy assistant: {len(assistant.documents())} documents indexed; "
               f"open http://{shown}:{port}/  (API docs: http://{shown}:{port}/docs)", err=True)
    uvicorn.Server(server_config(web, host, port, assistant.settings)).run()


@app.command()
def mcp() -> None:
    """Serve the clauses as MCP tools over stdio (search, ask, get_clause, list_documents)."""
    from ui.mcp_server import create_server

    assistant = _assistant()
    create_server(assistant).run("stdio")


feedback_app = typer.Typer(add_completion=False, no_args_is_help=True,
                           help="Feedback (👍/👎) given on answers in the web page or through POST /api/feedback.")
app.add_typer(feedback_app, name="feedback")


@feedback_app.command("export")
def feedback_export(out: Path = typer.Option(Path("feedback-cases.jsonl"), help="Eval-format JSONL for the 👍 rows."),
                    review: Path | None = typer.Option(None, help="JSONL for the 👎 rows to review "
                                                                  "(default: OUT with .review.jsonl).")) -> None:
    """Write the feedback as eval cases: 👍 rows load with the eval loader, 👎 rows go to a review file."""
    from ui.feedback import FeedbackStore, review_path

    store = _run(lambda: FeedbackStore.for_settings(Settings()))
    review = review or review_path(out)
    cases, todo = _run(lambda: store.export_jsonl(out, review))
    typer.echo(f"{cases} test cases (👍) → {out}; {todo} for review (👎, no gold yet) → {review}")


def _add_eval() -> None:
    """``policy-assistant eval …`` (see :mod:`eval.cli`); absent when the eval package is not installed."""
    try:
        from eval.cli import eval_app
    except ImportError:
        return
    app.add_typer(eval_app, name="eval")


_add_eval()


def main() -> None:
    app()


if __name__ == "__main__":
    main()


def __getattr__(name: str) -> Any:
    """``WorkerH11``: the guarded h11 protocol for ``serve --workers`` (an import string, since uvicorn's
    worker processes are spawned and cannot be handed a class made at run time)."""
    if name == "WorkerH11":
        from ui.server import guarded_h11

        return guarded_h11(Settings().header_timeout_s)
    raise AttributeError(name)
