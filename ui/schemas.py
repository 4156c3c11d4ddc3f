"""The JSON shapes of the interfaces (REST API, CLI ``--json``), derived from the core's models.

Each output model picks its fields, in the order they are printed, from the core model they come from
(:class:`assistant.models.Answer`, :class:`assistant.models.Citation`, :class:`corpus.models.Clause`,
:class:`corpus.models.DocumentMeta`), so a field's type, default and meaning live in one place; only
what the core has no model for (health, request bodies, upload results) is written here.

>>> list(AnswerOut.model_fields)[:4]
['answer', 'citations', 'refused', 'nearest']
>>> list(CitationOut.model_fields)
['clause_id', 'doc_id', 'doc_title', 'path', 'label', 'text', 'quote']
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field, create_model

from assistant.models import Answer, Citation
from corpus.models import Clause, DocumentMeta
from retrieval.retriever import Hit

#: The history turns an API request may carry (the service trims further by MAX_HISTORY_* settings).
MAX_HISTORY_TURNS = 20


def derive(name: str, source: type[BaseModel], fields: Sequence[str], *, base: type[BaseModel] = BaseModel,
           doc: str | None = None, **overrides: Any) -> Any:
    """A new model named ``name`` with ``fields`` of ``source`` (annotation, default, description), in that
    order; ``overrides`` replace or add fields as ``(annotation, default or FieldInfo)``.

    >>> derive("M", Citation, ["label"], score=(float, 0.0))(label="x").model_dump()
    {'label': 'x', 'score': 0.0}
    """
    definitions: dict[str, Any] = {}
    for f in fields:
        if f in overrides:
            definitions[f] = overrides.pop(f)
        else:
            info = copy.copy(source.model_fields[f])
            definitions[f] = (info.annotation, info)
    definitions.update(overrides)
    return create_model(name, __base__=base, __doc__=doc or f"Fields of {source.__name__}.", __module__=__name__,
                        **definitions)


def list_of(model: Any) -> Any:
    """``list[model]`` for a derived model (a value to the type checker, not a class)."""
    return list[model]  # type: ignore[valid-type]


# ------------------------------------------------------------ from the core
CitationOut = derive("CitationOut", Citation, ["clause_id", "doc_id", "doc_title", "path", "label", "text", "quote"],
                     doc="A clause an answer relies on; ``quote`` is the part of ``text`` the answer quotes.")

AnswerOut = derive(
    "AnswerOut", Answer,
    ["answer", "citations", "refused", "nearest", "standalone_question", "mode", "notice", "unsupported_sentences",
     "outcome", "caveat", "gate_reasons", "support_score"],
    doc="An answer with its citations; a refusal lists the nearest clauses instead.",
    citations=(list_of(CitationOut), ...), nearest=(list_of(CitationOut), ...),
    outcome=(str, Field("answer", description="answer | caveat (the corpus lacks what was asked; says so, shows "
                                              "the nearest clauses; counted as refused) | refuse")),
    support_score=(float, Field(0.0, description="the gate's P(answerable)")))

ProvenancedCitationOut = derive(
    "ProvenancedCitationOut", Citation, [], base=CitationOut,
    doc="A cited clause with where its document came from (REST answers).",
    provenance=(dict[str, Any] | None, Field(None, description=(
        "origin shipped|uploaded, label, status, added_at, added_by of the clause's document"))))

ProvenancedAnswerOut = derive(
    "ProvenancedAnswerOut", Answer, [], base=AnswerOut,
    doc="An answer with its citations, each with its document's provenance.",
    citations=(list_of(ProvenancedCitationOut), ...), nearest=(list_of(ProvenancedCitationOut), ...))

HitOut = derive("HitOut", Citation, ["clause_id", "doc_id", "doc_title", "path", "label", "text"],
                doc="One retrieved clause with its fused score.", score=(float, ...))

DocumentOut = derive("DocumentOut", DocumentMeta,
                     ["doc_id", "title", "short_title", "kind", "wenhao", "issuer", "date", "status", "source"],
                     doc="A document's metadata and its number of clauses.", clauses=(int, ...))

OutlineItem = derive("OutlineItem", Clause, ["clause_id", "label", "path", "kind", "text"],
                     doc="A clause in a document's outline.")

DocumentDetailOut = derive("DocumentDetailOut", DocumentMeta, [], base=DocumentOut,
                           doc="A document's metadata and its clause outline.", outline=(list_of(OutlineItem), ...))

ClauseRef = derive("ClauseRef", Citation, ["clause_id", "label", "path", "text"],
                   doc="A neighbouring clause (path as text).")

ClauseOut = derive("ClauseOut", Citation, ["clause_id", "doc_id", "doc_title"],
                   doc="A clause with its document's status, heading path and neighbours.",
                   status=(str, ...), path=(str, ...), path_parts=(list[str], ...),
                   label=(str, ...), kind=(str, ...), text=(str, ...),
                   previous=(ClauseRef | None, None), next=(ClauseRef | None, None),
                   provenance=(dict[str, Any], Field(default_factory=dict, description=(
                       "where the document came from: origin shipped|uploaded, label, status, added_at, added_by"))),
                   flags=(list[dict[str, Any]], Field(default_factory=list, description=(
                       "sentences that address the reader as a system or model: sentence, start, rule, reason"))),
                   warning=(str, Field("", description="one line for the reader; empty for a shipped, unflagged clause")),
                   warning_html=(str, Field("", description=(
                       "the warning and each flagged sentence as escaped HTML for the clause viewer; empty when none"))))

UploadOut = derive("UploadOut", DocumentMeta, ["doc_id", "title", "status"], doc="The result of an upload.",
                   clauses=(int, ...), changed=(bool, ...))


# ------------------------------------------------------------ API only
class HealthOut(BaseModel):
    status: str
    documents: int
    clauses: int
    embedding_model: str
    embedding_models: list[str] = Field(default_factory=list, description="dense models in use, primary first")
    embedding_notice: str | None = None
    version: str
    writes_enabled: bool
    llm: dict[str, Any] | None = Field(
        None, description="Generative mode: provider, model and whether it answers (probed at most once a minute).")


class SearchIn(BaseModel):
    query: str = Field(..., description="The search text (Chinese or English).", examples=["数据出境安全评估"])
    k: int = Field(5, ge=1, le=100)
    doc_id: str | None = Field(None, description="Only clauses of this document.")


class SearchOut(BaseModel):
    query: str
    hits: list[HitOut]  # type: ignore[valid-type]  # a derived model


class AskIn(BaseModel):
    question: str = Field(..., examples=["市服开办设在哪里？"])
    history: list[tuple[str, str]] = Field(
        default_factory=list, max_length=MAX_HISTORY_TURNS,
        description="Earlier turns as [question, answer] pairs, oldest first.")


class CitationRef(BaseModel):
    """A citation as a client sends it back (feedback, export): the clause id, optionally its label and quote."""

    clause_id: str = Field(..., max_length=500)
    label: str = Field("", max_length=200)
    quote: str = Field("", max_length=5000)


class FeedbackIn(BaseModel):
    question: str = Field(..., examples=["市服开办设在哪里？"])
    answer: str = Field("", max_length=50000, description="The answer text the verdict is about.")
    citations: list[CitationRef] = Field(default_factory=list, max_length=50)
    verdict: str = Field(..., description="up (👍) or down (👎)", examples=["up"])
    comment: str = Field("", description="Optional; at most 2000 characters.")
    history: list[tuple[str, str]] = Field(default_factory=list, max_length=MAX_HISTORY_TURNS)
    refused: bool | None = Field(None, description="Whether the answer was a refusal (default: no citations).")


class FeedbackOut(BaseModel):
    id: int
    verdict: str


class ExportIn(BaseModel):
    question: str = Field(..., examples=["市服开办设在哪里？"])
    history: list[tuple[str, str]] = Field(default_factory=list, max_length=MAX_HISTORY_TURNS)
    answer: str | None = Field(
        None, max_length=50000,
        description="The answer to export as shown to the user; omitted: the question is answered now.")
    citations: list[CitationRef] = Field(
        default_factory=list, max_length=50,
        description="With ``answer``: the clauses it cites; each clause's text is read from the corpus.")


class DeleteOut(BaseModel):
    doc_id: str
    deleted: bool = True


class ErrorOut(BaseModel):
    detail: str


# ------------------------------------------------------------ serialisers
def answer_json(answer: Answer) -> dict[str, Any]:
    """An answer as the API and ``ask --json`` print it."""
    data: dict[str, Any] = AnswerOut.model_validate(answer.model_dump()).model_dump()
    return data


def hit_json(hit: Hit) -> dict[str, Any]:
    """A search hit as the API and ``search --json`` print it (score rounded to 6 places)."""
    c = hit.clause
    data: dict[str, Any] = HitOut(clause_id=c.clause_id, doc_id=c.doc_id, doc_title=c.doc_title, path=c.path_text,
                                  label=c.label, text=c.text, score=round(hit.score, 6)).model_dump()
    return data


def clause_ref(clause: Clause | None) -> dict[str, Any] | None:
    if clause is None:
        return None
    return {"clause_id": clause.clause_id, "label": clause.label, "path": clause.path_text, "text": clause.text}
