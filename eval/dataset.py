"""Evaluation datasets: the JSONL format, its loader and validation against the corpus.

One question per line::

    {"id": "dev-001", "question": "…", "history": [["q", "a"], …],
     "gold_clause_ids": ["fz-plan/二/2"], "gold_quotes": ["服务业增加值达到1.06万亿元"],
     "answer_keywords": ["1.06万亿元"], "must_refuse": false, "type": "fact", "lang": "zh"}

A *gold unit* is one gold clause id or one gold quote. A clause matches

* a gold id when its id equals it or lies under it (``law/第三条`` matches ``law/第三条/1``,
  so an article that is later split into parts still matches), and
* a gold quote when its normalised text contains the normalised quote
  (:func:`assistant.text.normalize`: NFKC, whitespace removed, quote marks unified).

A question that must be refused has no gold units; every other question needs at least one.

Usage::

    items = load_dataset(Path("eval/datasets/dev.jsonl"))
    problems = validate(items, shipped_clauses())   # [] when every gold exists in the corpus
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from assistant.text import normalize

DATASETS = Path(__file__).resolve().parent / "datasets"
DEV = DATASETS / "dev.jsonl"
CALIBRATION = DATASETS / "calibration.jsonl"
SUPPORT_LABELS = DATASETS / "support_labels.jsonl"
TRAIN = DATASETS / "train.jsonl"
#: Sealed: never used for a choice (see eval/datasets/README.md); reported as the headline.
SEALED_TEST = DATASETS / "test_sealed.jsonl"

__all__ = ["EvalItem", "CorpusClause", "DatasetError", "load_dataset", "validate", "matches", "gold_units",
           "shipped_clauses", "assistant_clauses", "DEV", "CALIBRATION", "SUPPORT_LABELS"]


class DatasetError(ValueError):
    """A dataset file that cannot be read or has an invalid line."""


class EvalItem(BaseModel):
    """One evaluation question (see the module docstring for the meaning of each field)."""

    model_config = ConfigDict(populate_by_name=True)

    id: str
    question: str
    history: list[tuple[str, str]] = Field(default_factory=list)
    gold_clause_ids: list[str] = Field(default_factory=list)
    gold_quotes: list[str] = Field(default_factory=list)
    answer_keywords: list[str] = Field(default_factory=list)
    must_refuse: bool = False
    type: str = "other"
    lang: str = "zh"
    #: How the question is written: colloquial, official, english, mixed, typo, traditional, followup.
    style: str = Field("", alias="register")
    #: For a question that must be refused: why (other-city, unstated-amount, cited-only-document, …).
    refuse_kind: str = ""

    @field_validator("question")
    @classmethod
    def _question(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("question is empty")
        return v.strip()

    @field_validator("lang")
    @classmethod
    def _lang(cls, v: str) -> str:
        if v not in ("zh", "en"):
            raise ValueError("lang must be zh or en")
        return v

    @model_validator(mode="after")
    def _gold(self) -> EvalItem:
        has_gold = bool(self.gold_clause_ids or self.gold_quotes)
        if self.must_refuse and has_gold:
            raise ValueError("a question that must be refused cannot have gold clauses or quotes")
        if not self.must_refuse and not has_gold:
            raise ValueError("an answerable question needs gold_clause_ids or gold_quotes")
        if any(not q.strip() for q in self.gold_quotes) or any(not c.strip() for c in self.gold_clause_ids):
            raise ValueError("empty gold quote or clause id")
        return self

    @property
    def answerable(self) -> bool:
        return not self.must_refuse

    @property
    def is_set(self) -> bool:
        """A question whose answer is a set of clauses (more than one gold unit)."""
        return len(gold_units(self)) > 1


@dataclass(frozen=True)
class CorpusClause:
    """The part of a clause the eval needs (also what an API search hit carries)."""

    clause_id: str
    text: str
    doc_id: str = ""


def gold_units(item: EvalItem) -> list[str]:
    """The gold units of ``item``: ``id:<clause id>`` and ``quote:<quote>`` strings."""
    return [f"id:{c}" for c in item.gold_clause_ids] + [f"quote:{q}" for q in item.gold_quotes]


def matches(clause_id: str, text: str, unit: str) -> bool:
    """Does the clause (id, text) match one gold unit?"""
    kind, _, value = unit.partition(":")
    if kind == "id":
        return clause_id == value or clause_id.startswith(value.rstrip("/") + "/")
    if kind == "quote":
        return normalize(value) in normalize(text)
    raise ValueError(f"unknown gold unit {unit!r}")


def matched_units(item: EvalItem, clause_id: str, text: str) -> list[str]:
    """The gold units of ``item`` that this clause matches."""
    return [u for u in gold_units(item) if matches(clause_id, text, u)]


def load_dataset(path: Path) -> list[EvalItem]:
    """Read and check a JSONL dataset; raises :class:`DatasetError` naming the bad line."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc
    items: list[EvalItem] = []
    seen: set[str] = set()
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = EvalItem.model_validate(json.loads(line))
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{n}: not JSON ({exc.msg})") from exc
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "line"
            raise DatasetError(f"{path}:{n}: {where}: {first['msg']}") from exc
        if item.id in seen:
            raise DatasetError(f"{path}:{n}: duplicate id {item.id!r}")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise DatasetError(f"{path}: no questions")
    return items


def validate(items: Iterable[EvalItem], clauses: list[CorpusClause]) -> list[str]:
    """Every gold quote or clause id that exists nowhere in ``clauses``, one message each."""
    problems: list[str] = []
    normed = [(c.clause_id, normalize(c.text)) for c in clauses]
    ids = [c.clause_id for c in clauses]
    for item in items:
        for cid in item.gold_clause_ids:
            if not any(i == cid or i.startswith(cid.rstrip("/") + "/") for i in ids):
                problems.append(f"{item.id}: gold clause id {cid!r} is not in the corpus")
        for quote in item.gold_quotes:
            q = normalize(quote)
            if not any(q in text for _, text in normed):
                problems.append(f"{item.id}: gold quote {quote!r} is in no clause")
    return problems


def shipped_clauses() -> list[CorpusClause]:
    """The clauses of the shipped corpus, parsed directly (no index, no embedding model)."""
    from corpus.loaders import DocumentLoader
    from corpus.manifest import shipped_documents
    from corpus.parsing import ClauseParser

    loader, parser = DocumentLoader(), ClauseParser()
    out: list[CorpusClause] = []
    for shipped in shipped_documents():
        text, _ = loader.run(shipped.path)
        for c in parser.run(shipped.meta, text).clauses:
            out.append(CorpusClause(c.clause_id, c.text, c.doc_id))
    return out


def assistant_clauses(assistant: object) -> list[CorpusClause]:
    """The clauses in a :class:`~assistant.service.PolicyAssistant`'s index (what it can retrieve)."""
    out: list[CorpusClause] = []
    for info in assistant.documents():  # type: ignore[attr-defined]
        _, clauses = assistant.document(info.meta.doc_id)  # type: ignore[attr-defined]
        out.extend(CorpusClause(c.clause_id, c.text, c.doc_id) for c in clauses)
    return out
