"""One upload check for the API and the 管理 tab: a file name, a supported type, within the size limit.

>>> check_upload("../规定.PDF", 10, Settings(max_upload_bytes=100))
'规定.PDF'
>>> check_upload("a" + chr(0) + ".txt", 10, Settings())
Traceback (most recent call last):
ui.uploads.UploadRejected: the file name contains control characters or NUL
>>> check_upload("a.exe", 10, Settings())
Traceback (most recent call last):
ui.uploads.UploadRejected: unsupported file type '.exe'; use one of .txt, .md, .docx, .pdf, .html, .htm
"""

from __future__ import annotations

from pathlib import Path

from assistant.settings import Settings
from corpus.loaders import SUPPORTED_SUFFIXES


class UploadRejected(ValueError):
    """An upload refused before it is parsed; ``status`` is the HTTP status the API answers."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def check_upload(filename: str | None, size: int, settings: Settings) -> str:
    """The upload's bare file name, or :class:`UploadRejected` (400 no name, 415 type, 413 size)."""
    raw = filename or ""
    if any(not ch.isprintable() for ch in raw):
        raise UploadRejected(400, "the file name contains control characters or NUL")
    name = Path(raw.replace("\\", "/")).name
    if not name or name in (".", "..") or not Path(name).stem.strip(". "):
        raise UploadRejected(400, "the upload has no usable file name")
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UploadRejected(415, f"unsupported file type {Path(name).suffix or '(none)'!r}; "
                                  f"use one of {', '.join(SUPPORTED_SUFFIXES)}")
    if size > settings.max_upload_bytes:
        raise UploadRejected(413, f"{name} is larger than the limit of {settings.max_upload_bytes} bytes")
    return name
