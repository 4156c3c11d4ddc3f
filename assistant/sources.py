"""The text each uploaded document was parsed from, and its original file, kept under ``<data dir>/sources/``.

The clause store keeps clauses, not the text they were cut from. For a backup (:mod:`assistant.backup`) that can be
re-parsed elsewhere, every document written through :class:`~assistant.service.PolicyAssistant`'s ingest methods
also keeps, per document, the version its registry entry names::

    <data dir>/sources/<doc_id>/<content hash>/text.txt       the text handed to the parser (header line removed)
    <data dir>/sources/<doc_id>/<content hash>/original       the uploaded file (.docx .pdf .html only)
    <data dir>/sources/<doc_id>/<content hash>/source.json    {"filename", "text_sha256", "original_sha256"}

Only the committed version is kept (older ones are removed when a new one is kept, all of them when the document
is deleted). Keeping is best effort: the document is already committed when its source is written, so a failure
(full disk) is logged and the backup of that document falls back to its clauses. The shipped corpus is not kept
here: its texts are in the package. In server mode (``CHROMA_HOST``) each process keeps what it wrote in its own
data folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

#: Formats whose text is extracted from the file: their original is kept too (a .txt/.md file *is* its text).
ORIGINAL_SUFFIXES = (".docx", ".pdf", ".html", ".htm")


@dataclass(frozen=True)
class KeptSource:
    """A document's source: the parsed text, and the uploaded file when there was one."""

    text: str
    filename: str = ""
    original: bytes | None = None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class SourceStore:
    """Kept sources under ``root`` (``<data dir>/sources``), one committed version per document.

    Document ids are safe path components (:func:`assistant.service.valid_doc_id`); an id that is not is
    neither kept nor read.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def _doc_dir(self, doc_id: str) -> Path | None:
        if not doc_id or doc_id.startswith(".") or "/" in doc_id or "\\" in doc_id or not doc_id.isprintable():
            return None
        return self.root / doc_id

    def get(self, doc_id: str, content_hash: str) -> KeptSource | None:
        """The kept source of that version, or None (not kept, or unreadable)."""
        folder = self._doc_dir(doc_id)
        if folder is None or not content_hash.isalnum():
            return None
        folder = folder / content_hash
        try:
            info = json.loads((folder / "source.json").read_text(encoding="utf-8"))
            raw = (folder / "text.txt").read_bytes()
            if _sha256(raw) != info.get("text_sha256"):
                log.warning("kept source of %r does not match its hash; ignored", doc_id)
                return None
            original = None
            if info.get("original_sha256"):
                original = (folder / "original").read_bytes()
                if _sha256(original) != info["original_sha256"]:
                    log.warning("kept original of %r does not match its hash; ignored", doc_id)
                    original = None
            return KeptSource(text=raw.decode("utf-8"), filename=str(info.get("filename") or ""), original=original)
        except (OSError, ValueError, UnicodeDecodeError):
            return None

    def keep(self, doc_id: str, content_hash: str, source: KeptSource) -> bool:
        """Keep ``source`` as the version ``content_hash`` of ``doc_id`` and drop older versions. Best effort:
        returns False (and logs) when it cannot be written."""
        folder = self._doc_dir(doc_id)
        if folder is None or not content_hash.isalnum():
            return False
        final = folder / content_hash
        try:
            if not (final / "source.json").exists():
                tmp = folder / f".tmp-{uuid.uuid4().hex}"
                tmp.mkdir(parents=True)
                raw = source.text.encode("utf-8")
                (tmp / "text.txt").write_bytes(raw)
                info = {"filename": source.filename, "text_sha256": _sha256(raw), "original_sha256": None}
                if source.original is not None:
                    (tmp / "original").write_bytes(source.original)
                    info["original_sha256"] = _sha256(source.original)
                (tmp / "source.json").write_text(json.dumps(info, ensure_ascii=False), encoding="utf-8")
                if final.exists():  # a partial folder left by a crash
                    shutil.rmtree(final, ignore_errors=True)
                os.replace(tmp, final)
            for other in folder.iterdir():
                if other.name != content_hash:
                    shutil.rmtree(other, ignore_errors=True)
            return True
        except OSError as exc:
            log.warning("could not keep the source of %r (a backup will carry its clauses only): %s", doc_id, exc)
            return False

    def drop(self, doc_id: str) -> None:
        """Forget every kept version of ``doc_id`` (best effort)."""
        folder = self._doc_dir(doc_id)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
