"""The data that flows out of the assistant: citations, answers, clause views."""

from __future__ import annotations

from pydantic import BaseModel, Field

from corpus.models import Clause, DocumentMeta
from retrieval.retriever import Hit


class Citation(BaseModel):
    """A clause an answer relies on; ``quote`` is the part of ``text`` the answer quotes."""

    clause_id: str
    doc_id: str
    doc_title: str
    path: str
    text: str
    label: str
    quote: str = ""

    @classmethod
    def of(cls, clause: Clause, quote: str = "") -> Citation:
        return cls(clause_id=clause.clause_id, doc_id=clause.doc_id, doc_title=clause.doc_title,
                   path=clause.path_text, text=clause.text, label=clause.label, quote=quote or clause.text)


class Answer(BaseModel):
    """An answer with its citations; a refusal lists the nearest clauses instead."""

    question: str
    standalone_question: str
    answer: str
    citations: list[Citation] = Field(default_factory=list)
    refused: bool = False
    nearest: list[Citation] = Field(default_factory=list)
    mode: str = "extractive"
    lang: str = "zh"
    unsupported_sentences: list[str] = Field(default_factory=list)
    notice: str | None = None
    support_score: float = 0.0
    #: The gate's decision: ``answer``; ``caveat`` (the corpus lacks what was asked, says so and shows the
    #: nearest clauses, counted as a refusal); ``refuse``.
    outcome: str = "answer"
    caveat: str | None = None
    gate_reasons: list[str] = Field(default_factory=list)


class ClauseView(BaseModel):
    """A clause with its document and neighbours, for ``show`` and the citation viewer."""

    clause: Clause
    document: DocumentMeta
    previous: Clause | None = None
    next: Clause | None = None


class DocumentInfo(BaseModel):
    meta: DocumentMeta
    clauses: int
    content_hash: str


__all__ = ["Citation", "Answer", "ClauseView", "DocumentInfo", "Hit"]
