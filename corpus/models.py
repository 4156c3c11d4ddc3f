"""Data that flows out of the corpus layer: document metadata and clauses."""

from __future__ import annotations

import hashlib

from pydantic import BaseModel, Field


class DocumentMeta(BaseModel):
    """Metadata of one source document.

    ``status`` is one of 征求意见稿 / 现行 / 非最新修订（…） / 未注明.
    """

    doc_id: str
    title: str
    short_title: str = ""
    kind: str = "notice"  # plan | law | notice
    wenhao: str = ""
    issuer: str = ""
    date: str = ""
    status: str = "未注明"
    source: str = ""
    title_en: str = ""
    #: Names a question may use for this document (routes retrieval towards it).
    aliases: list[str] = Field(default_factory=list)

    def display_title(self) -> str:
        return self.short_title or self.title


class Clause(BaseModel):
    """One citable unit of a document, identified by the document's own numbering.

    >>> c = Clause(clause_id="fz-plan/三/（一）/1", doc_id="fz-plan", doc_title="方案",
    ...            path=["三、重点工作"], label="三（一）1", text="支持数字贸易。", order=0)
    >>> c.path_text
    '三、重点工作'
    """

    clause_id: str
    doc_id: str
    doc_title: str
    path: list[str] = Field(default_factory=list)
    label: str
    text: str
    order: int
    kind: str = "sentence"  # preamble | sentence | item | item-title | article | article-part | paragraph

    @property
    def path_text(self) -> str:
        return " › ".join(self.path)


class ParsedDocument(BaseModel):
    """A document's metadata, its clauses and the hash of the text they came from."""

    meta: DocumentMeta
    clauses: list[Clause]
    content_hash: str

    @staticmethod
    def hash_text(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()
