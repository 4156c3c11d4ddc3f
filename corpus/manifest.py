"""The shipped corpus: the plan and the national texts inside this package."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from corpus.models import DocumentMeta

#: Folder holding the shipped texts and ``manifest.json``.
SHIPPED_DIR = Path(__file__).resolve().parent / "texts"


class ShippedDocument(BaseModel):
    meta: DocumentMeta
    path: Path


def load_manifest(folder: Path = SHIPPED_DIR) -> list[ShippedDocument]:
    """Read ``manifest.json`` in ``folder``: one entry per document with its file and metadata."""
    data = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    out: list[ShippedDocument] = []
    for entry in data["documents"]:
        entry = dict(entry)
        path = folder / entry.pop("file")
        out.append(ShippedDocument(meta=DocumentMeta(**entry), path=path))
    return out


def shipped_documents() -> list[ShippedDocument]:
    """The documents that ship with the assistant."""
    return load_manifest(SHIPPED_DIR)
