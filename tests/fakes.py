"""Small stand-ins shared by the tests (``from fakes import …``): a deterministic embedder (no model), parsed
documents, a Chroma collection whose ``upsert`` fails as a full disk would, and a tiny law as text and .docx."""

from __future__ import annotations

import io

import numpy as np
from chromadb.errors import InternalError

from corpus.models import Clause, DocumentMeta, ParsedDocument

FULL = InternalError("database or disk is full")


class StubEmbedder:
    """8-dimensional unit vectors made from a text's first bytes; records the batch sizes it was given."""

    spec = "stub-8"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        self.calls.append(len(texts))
        rows = [np.frombuffer((t * 8).encode()[:8].ljust(8, b"x"), dtype=np.uint8).astype(np.float32) + 1 for t in texts]
        out = np.array(rows).reshape(len(texts), 8)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]


def parsed(doc_id: str, version: str, n: int = 5) -> ParsedDocument:
    """A document of ``n`` clauses whose texts (and content hash) depend on ``version``."""
    meta = DocumentMeta(doc_id=doc_id, title=f"{doc_id} {version}")
    clauses = [Clause(clause_id=f"{doc_id}/{i}", doc_id=doc_id, doc_title=meta.title, label=str(i),
                      text=f"{version} {doc_id} 第{i}条 内容", order=i) for i in range(n)]
    return ParsedDocument(meta=meta, clauses=clauses,
                          content_hash=ParsedDocument.hash_text("".join(c.text for c in clauses)))


class FailingCollection:
    """Wraps a Chroma collection; ``upsert`` fails on the call number ``fail_on`` (1-based)."""

    def __init__(self, inner, fail_on: int) -> None:
        self.inner, self.fail_on, self.calls = inner, fail_on, 0

    def upsert(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.fail_on:
            raise FULL
        return self.inner.upsert(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


LAW = "第一条 为了测试，制定本规定。\n第二条 本规定自公布之日起施行。"


def docx_bytes(text: str = LAW) -> bytes:
    """``text`` as a .docx file, one paragraph per line."""
    import docx

    d = docx.Document()
    for line in text.split("\n"):
        d.add_paragraph(line)
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()
