"""Backup and restore of the corpus: ``policy-assistant export FILE.tar.gz`` and ``import FILE.tar.gz``.

The archive is a gzip'd tar holding only regular files::

    manifest.json                          BackupManifest: format, version, when, embedding model, documents
    documents/<doc_id>/clauses.jsonl       the stored clauses, one Clause JSON a line, in document order
    documents/<doc_id>/text.txt            the text the document was parsed from (when known, see below)
    documents/<doc_id>/original            the uploaded file (.docx .pdf .html uploads, when kept)

The text of a shipped document is the package's file; that of an upload is what
:mod:`assistant.sources` kept when it was ingested. A document stored before sources were kept (or written by
another process in server mode) has no text in the archive: its clauses are restored as they are.

Import never trusts the archive: every member is checked before anything is written (regular files with the
expected names only, no absolute or ``..`` paths, no links or devices, bounded counts and sizes, extracted with
tarfile's ``data`` filter into a temporary folder), the manifest is validated, every file's SHA-256 must match it,
and every text is parsed again with the active parser — only then does the corpus change, through
:meth:`PolicyAssistant.restore_documents` (the writer lock, one refresh, failed-write cleanup), re-embedding every
new clause with the active embedding model. A document keeps its clause ids because the parser gives the same
clauses for the same text (checked: when this version's parser cuts a text differently, the archive's clauses are
kept and a note says so). Provenance is recomputed, never read from the archive: a document is *shipped* only
when its text is this package's.

Usage::

    report = export_corpus(assistant, Path("corpus.tar.gz"))
    report = import_corpus(assistant, Path("corpus.tar.gz"), replace=False)
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ValidationError

from assistant.service import PolicyAssistant, valid_doc_id
from assistant.sources import KeptSource
from corpus.manifest import shipped_documents
from corpus.models import Clause, DocumentMeta, ParsedDocument
from corpus.parsing import MAX_CLAUSE_CHARS

__all__ = ["BackupError", "BackupManifest", "DocumentEntry", "ExportReport", "FileRef", "ImportReport", "Limits",
           "export_corpus", "import_corpus", "read_backup"]

FORMAT: Final = "policy-assistant-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_MEMBER = re.compile(r"documents/([^/]+)/(text\.txt|clauses\.jsonl|original)")


class BackupError(ValueError):
    """An archive that cannot be exported or imported (corrupt, foreign, unsafe, inconsistent)."""


class FileRef(BaseModel):
    """A file inside the archive and the SHA-256 of its bytes."""

    path: str
    sha256: str
    size: int


class DocumentEntry(BaseModel):
    """One document of the archive."""

    meta: DocumentMeta
    #: ``shipped`` when its text was the package's at export; recomputed on import, never trusted.
    origin: Literal["shipped", "uploaded"]
    #: False for a shipped document left out by ``export --no-shipped`` (import re-creates it from the package).
    included: bool = True
    content_hash: str
    clauses: int
    #: When this version was added to the exporting corpus (kept on import).
    added_at: datetime | None = None
    clauses_file: FileRef | None = None
    text: FileRef | None = None
    original: FileRef | None = None
    original_filename: str = ""


class BackupManifest(BaseModel):
    """``manifest.json``."""

    format: Literal["policy-assistant-backup"] = FORMAT
    format_version: int = FORMAT_VERSION
    exported_at: datetime
    tool_version: str
    #: The primary embedding model at export (import re-embeds with its own active model).
    embedding_model: str
    embedding_models: list[str]
    corpus_generation: str
    documents: list[DocumentEntry]


@dataclass
class ExportReport:
    path: Path
    documents: int = 0
    clauses: int = 0
    with_text: int = 0
    originals: int = 0
    left_out: int = 0  # shipped documents left out (--no-shipped)


@dataclass
class ImportReport:
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    clauses: int = 0
    embedding_model: str = ""


@dataclass(frozen=True)
class Limits:
    """Bounds on an archive being imported (checked member by member, before the member is extracted)."""

    max_members: int = 100_000
    max_member_bytes: int = 256 * 1024 * 1024
    max_total_bytes: int = 2 * 1024 * 1024 * 1024

    @classmethod
    def for_service(cls, service: PolicyAssistant) -> Limits:
        s = service.settings
        return cls(max_member_bytes=max(4 * s.max_upload_bytes, s.max_unpacked_bytes))


def _version() -> str:
    try:
        return metadata.version("policy-assistant")
    except metadata.PackageNotFoundError:  # pragma: no cover - an uninstalled tree
        return "0.0.0"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _shipped_versions(service: PolicyAssistant, wanted: set[str]) -> dict[str, tuple[ParsedDocument, str]]:
    """``doc_id → (parsed, text)`` of the package's shipped documents among ``wanted``."""
    out: dict[str, tuple[ParsedDocument, str]] = {}
    for shipped in shipped_documents():
        if shipped.meta.doc_id in wanted:
            text, _ = service.loader.run(shipped.path)
            out[shipped.meta.doc_id] = (service.parser.run(shipped.meta, text), text)
    return out


# ---------------------------------------------------------------------------------------------------- export
def export_corpus(service: PolicyAssistant, target: Path, include_shipped: bool = True) -> ExportReport:
    """Write the committed corpus to ``target`` (a .tar.gz), atomically: a failed export leaves no file.

    ``include_shipped=False`` leaves out the texts of shipped documents unchanged from the package (their
    entries stay, and import re-creates them from its own package)."""
    snap = service.retriever.snapshot
    by_doc: dict[str, list[Clause]] = {doc_id: [] for doc_id in snap.documents}
    for clause in snap.clauses:
        by_doc.setdefault(clause.doc_id, []).append(clause)
    shipped = _shipped_versions(service, set(snap.documents))
    target = target.expanduser()
    report = ExportReport(path=target)
    now = datetime.now(UTC)
    mtime = int(now.timestamp())
    entries: list[DocumentEntry] = []
    if target.is_dir():
        raise BackupError(f"{target} is a folder; give a file name such as corpus.tar.gz")
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with tarfile.open(tmp, "w:gz", format=tarfile.PAX_FORMAT) as tar:
            def add(name: str, data: bytes) -> FileRef:
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(data), mtime, 0o644
                tar.addfile(info, io.BytesIO(data))
                return FileRef(path=name, sha256=_sha256(data), size=len(data))

            for doc_id, doc in snap.documents.items():
                clauses = by_doc.get(doc_id, [])
                package = shipped.get(doc_id)
                is_shipped = package is not None and package[0].content_hash == doc.content_hash
                added_at = datetime.fromtimestamp(doc.ingested_at, UTC) if doc.ingested_at else None
                entry = DocumentEntry(meta=doc.meta, origin="shipped" if is_shipped else "uploaded",
                                      content_hash=doc.content_hash, clauses=len(clauses), added_at=added_at)
                report.documents += 1
                report.clauses += len(clauses)
                if is_shipped and not include_shipped:
                    entry.included = False
                    report.left_out += 1
                    entries.append(entry)
                    continue
                folder = f"documents/{doc_id}"
                entry.clauses_file = add(f"{folder}/clauses.jsonl",
                                         "".join(c.model_dump_json() + "\n" for c in clauses).encode("utf-8"))
                source = (KeptSource(text=package[1]) if is_shipped and package is not None
                          else service.sources.get(doc_id, doc.content_hash))
                if source is not None:
                    entry.text = add(f"{folder}/text.txt", source.text.encode("utf-8"))
                    report.with_text += 1
                    if source.original is not None:
                        entry.original = add(f"{folder}/original", source.original)
                        entry.original_filename = source.filename
                        report.originals += 1
                entries.append(entry)
            manifest = BackupManifest(exported_at=now, tool_version=_version(),
                                      embedding_model=service.embedder.spec,
                                      embedding_models=service.active_embedding_models,
                                      corpus_generation=snap.generation, documents=entries)
            add(MANIFEST, manifest.model_dump_json(indent=1).encode("utf-8"))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return report


# ---------------------------------------------------------------------------------------------------- import
def _check_member(member: tarfile.TarInfo) -> str:
    """The member's name when it is one the format has; else BackupError."""
    name = member.name
    if not name or "\x00" in name or "\\" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise BackupError(f"refused: unsafe member name {name[:100]!r} (absolute or not a plain path)")
    parts = name.rstrip("/").split("/")
    if any(p in ("..", ".", "") for p in parts):
        raise BackupError(f"refused: unsafe member name {name[:100]!r} ('..' or an empty part)")
    if member.isdir():
        if name.rstrip("/") == "documents" or (len(parts) == 2 and parts[0] == "documents"):
            return ""
        raise BackupError(f"refused: unexpected folder {name[:100]!r} in the archive")
    if not member.isreg():
        kind = "link" if member.issym() or member.islnk() else "device or special file"
        raise BackupError(f"refused: {name[:100]!r} is a {kind}; a backup holds regular files only")
    if name != MANIFEST:
        m = _MEMBER.fullmatch(name)
        if m is None or not valid_doc_id(m.group(1)):
            raise BackupError(f"refused: unexpected member {name[:100]!r}: not a policy-assistant backup")
    return name


def _extract(path: Path, dest: Path, limits: Limits) -> set[str]:
    """Check and extract every member into ``dest``; the names extracted."""
    if not path.is_file():
        raise BackupError(f"cannot read {path}: no such file")
    names: set[str] = set()
    count = total = 0
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                count += 1
                if count > limits.max_members:
                    raise BackupError(f"refused: more than {limits.max_members} members in the archive")
                name = _check_member(member)
                if not name:
                    continue
                if name in names:
                    raise BackupError(f"refused: {name[:100]!r} appears twice in the archive")
                if member.size > limits.max_member_bytes:
                    raise BackupError(f"refused: {name[:100]!r} is {member.size} bytes; the limit is "
                                      f"{limits.max_member_bytes}")
                total += member.size
                if total > limits.max_total_bytes:
                    raise BackupError(f"refused: the archive unpacks to more than {limits.max_total_bytes} bytes")
                tar.extract(member, dest, filter="data")
                names.add(name)
    except BackupError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise BackupError(f"cannot read {path.name} as a .tar.gz backup (corrupt or truncated: "
                          f"{type(exc).__name__}: {exc})") from exc
    return names


def _read_manifest(dest: Path, names: set[str]) -> BackupManifest:
    if MANIFEST not in names:
        raise BackupError("the archive has no manifest.json: not a policy-assistant backup")
    try:
        raw = json.loads((dest / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BackupError(f"manifest.json is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise BackupError("manifest.json is not a policy-assistant backup manifest")
    version = raw.get("format_version")
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise BackupError(f"the backup is format {version}, made by a newer version; this one reads format "
                          f"{FORMAT_VERSION}")
    try:
        manifest = BackupManifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BackupError(f"manifest.json is invalid at {where}: {first['msg']}") from exc
    return manifest


def _read_file(dest: Path, ref: FileRef | None, expected: str, names: set[str]) -> bytes | None:
    if ref is None:
        return None
    if ref.path != expected or ref.path not in names:
        raise BackupError(f"the manifest names {ref.path[:100]!r}, which the archive does not hold as {expected!r}")
    data = (dest / ref.path).read_bytes()
    if len(data) != ref.size or _sha256(data) != ref.sha256:
        raise BackupError(f"{ref.path}: its content does not match the manifest's SHA-256 (altered or corrupt)")
    return data


def _read_clauses(data: bytes, entry: DocumentEntry) -> list[Clause]:
    doc_id = entry.meta.doc_id
    try:
        clauses = [Clause.model_validate_json(line) for line in data.decode("utf-8").splitlines() if line.strip()]
    except (UnicodeDecodeError, ValidationError) as exc:
        raise BackupError(f"{doc_id}: clauses.jsonl is not valid ({type(exc).__name__})") from exc
    ids = [c.clause_id for c in clauses]
    if not clauses or len(clauses) != entry.clauses:
        raise BackupError(f"{doc_id}: {len(clauses)} clauses in clauses.jsonl, the manifest says {entry.clauses}")
    if len(set(ids)) != len(ids):
        raise BackupError(f"{doc_id}: clauses.jsonl repeats a clause id")
    for c in clauses:
        if c.doc_id != doc_id or not c.clause_id.startswith(f"{doc_id}/"):
            raise BackupError(f"{doc_id}: clause {c.clause_id[:100]!r} belongs to another document")
        if not c.text.strip() or len(c.text) > MAX_CLAUSE_CHARS:
            raise BackupError(f"{doc_id}: clause {c.clause_id[:100]!r} is empty or longer than {MAX_CLAUSE_CHARS}")
    return clauses


def _same_clauses(a: list[Clause], b: list[Clause]) -> bool:
    def key(c: Clause) -> tuple[object, ...]:
        return c.clause_id, c.text, c.label, tuple(c.path), c.kind

    return [key(c) for c in a] == [key(c) for c in b]


def _from_clauses(meta: DocumentMeta, clauses: list[Clause]) -> ParsedDocument:
    """A document restored from its clauses (no text): a hash of its own kind, never a parse's (so never shipped)."""
    body = meta.model_dump_json() + "\n" + "\n".join(c.model_dump_json() for c in clauses)
    return ParsedDocument(meta=meta, clauses=[c.model_copy(update={"order": i}) for i, c in enumerate(clauses)],
                          content_hash=ParsedDocument.hash_text("restored-clauses\n" + body))


Item = tuple[ParsedDocument, float | None, KeptSource | None]


def read_backup(service: PolicyAssistant, path: Path, limits: Limits | None = None
                ) -> tuple[BackupManifest, list[Item], list[str]]:
    """Check ``path`` and prepare its documents (parsed, not written): ``(manifest, items, notes)``.

    Raises :class:`BackupError` for anything wrong with the archive; nothing is written to the corpus."""
    limits = limits or Limits.for_service(service)
    notes: list[str] = []
    items: list[Item] = []
    with tempfile.TemporaryDirectory(prefix="policy-import-") as tmp:
        dest = Path(tmp)
        names = _extract(path, dest, limits)
        manifest = _read_manifest(dest, names)
        ids = [e.meta.doc_id for e in manifest.documents]
        for doc_id in ids:
            if not valid_doc_id(doc_id):
                raise BackupError(f"the manifest has an invalid document id {doc_id[:100]!r}")
        if len(set(ids)) != len(ids):
            raise BackupError("the manifest lists a document twice")
        referenced = {MANIFEST} | {ref.path for e in manifest.documents
                                   for ref in (e.clauses_file, e.text, e.original) if ref is not None}
        stray = sorted(names - referenced)
        if stray:
            raise BackupError(f"refused: {stray[0][:100]!r} is in the archive but not in the manifest")
        package = _shipped_versions(service, set(ids))
        for entry in manifest.documents:
            doc_id = entry.meta.doc_id
            added_at = entry.added_at.timestamp() if entry.added_at else None
            if not entry.included:
                if doc_id not in package:
                    raise BackupError(f"{doc_id}: left out of the archive as shipped, but this version ships no "
                                      "such document")
                parsed = package[doc_id][0]
                if parsed.content_hash != entry.content_hash:
                    notes.append(f"{doc_id}: re-created from this version's shipped text, which differs from the "
                                 "exported one")
                    added_at = None
                items.append((parsed, added_at, None))
                continue
            folder = f"documents/{doc_id}"
            raw_clauses = _read_file(dest, entry.clauses_file, f"{folder}/clauses.jsonl", names)
            if raw_clauses is None:
                raise BackupError(f"{doc_id}: the manifest lists no clauses.jsonl")
            clauses = _read_clauses(raw_clauses, entry)
            raw_text = _read_file(dest, entry.text, f"{folder}/text.txt", names)
            original = _read_file(dest, entry.original, f"{folder}/original", names)
            if raw_text is None:
                items.append((_from_clauses(entry.meta, clauses), added_at, None))
                continue
            try:
                text = raw_text.decode("utf-8")
                parsed = service.parser.run(entry.meta, text)
            except (UnicodeDecodeError, ValueError) as exc:
                raise BackupError(f"{doc_id}: its text cannot be parsed ({exc})") from exc
            if not _same_clauses(parsed.clauses, clauses):
                notes.append(f"{doc_id}: this version cuts the text into other clauses; the archive's clauses are "
                             "kept")
                parsed = _from_clauses(entry.meta, clauses)
            if doc_id in package and package[doc_id][0].content_hash == parsed.content_hash:
                items.append((parsed, added_at, None))  # the shipped text: the package has it, nothing to keep
                continue
            filename = Path(entry.original_filename.replace("\\", "/")).name if entry.original_filename else ""
            if not filename.isprintable():
                filename = ""
            items.append((parsed, added_at, KeptSource(text=text, filename=filename, original=original)))
    return manifest, items, notes


def import_corpus(service: PolicyAssistant, path: Path, replace: bool = False, dry_run: bool = False,
                  limits: Limits | None = None,
                  on_done: Callable[[ParsedDocument, bool], None] | None = None) -> ImportReport:
    """Import a backup: add or replace its documents (``replace``: and remove every other document).

    The archive is checked and every document parsed before the corpus is touched; ``dry_run`` stops there and
    reports what would change."""
    _, items, notes = read_backup(service, path, limits)
    report = ImportReport(notes=notes, embedding_model=service.embedder.spec)
    current = {doc_id: d.content_hash for doc_id, d in service.store.documents().items()}
    for parsed, _, _ in items:
        doc_id = parsed.meta.doc_id
        bucket = (report.added if doc_id not in current
                  else report.unchanged if current[doc_id] == parsed.content_hash else report.replaced)
        bucket.append(doc_id)
        report.clauses += len(parsed.clauses)
    if replace:
        report.removed = sorted(set(current) - {parsed.meta.doc_id for parsed, _, _ in items})
    if not dry_run:
        service.restore_documents(items, remove=report.removed, on_done=on_done)
    return report
