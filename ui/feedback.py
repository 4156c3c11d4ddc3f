"""Feedback on answers (👍/👎 and an optional comment), kept in SQLite under the data dir, and its export
as evaluation cases.

Usage::

    store = FeedbackStore.for_settings(settings)          # <data dir>/feedback.sqlite3
    fid = store.add("市服开办设在哪里？", answer_text, [{"clause_id": "fz-plan/五/（一）", "label": "五（一）"}],
                    verdict="up", comment="", history=[])
    store.export_jsonl(Path("cases.jsonl"))             # 👍 rows as eval items; 👎 rows to cases.review.jsonl

Export (see :func:`eval_record`): a 👍 on an answer becomes a test case whose gold clauses are the
clauses it cited; a 👍 on a refusal becomes a question that must be refused. When the same answer (question,
answer text, history) was voted on more than once, the latest vote counts (:func:`latest_verdicts`). A 👎 says the answer was
wrong but not what the right one is, so those rows go to a separate review file (``"review": true``,
no gold) for an evaluator to complete before they can be loaded as a dataset.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["FeedbackStore", "FeedbackRecord", "VERDICTS", "MAX_COMMENT_CHARS", "eval_record", "review_path",
           "latest_verdicts"]

VERDICTS = ("up", "down")
MAX_COMMENT_CHARS = 2000
FILENAME = "feedback.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created TEXT NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    citations TEXT NOT NULL,
    refused INTEGER NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('up', 'down')),
    comment TEXT NOT NULL,
    history TEXT NOT NULL
)
"""

_CJK = re.compile(r"[\u3400-\u9fff]")


@dataclass(frozen=True)
class FeedbackRecord:
    """One stored verdict on one answer."""

    id: int
    created: str
    question: str
    answer: str
    citations: list[dict[str, Any]]
    refused: bool
    verdict: str
    comment: str
    history: list[list[str]] = field(default_factory=list)


def _citation_dict(c: Any) -> dict[str, Any]:
    """The part of a citation worth keeping: id, label, document and the quoted words."""
    get = c.get if isinstance(c, dict) else (lambda k, d="": getattr(c, k, d))
    if isinstance(c, str):
        return {"clause_id": c, "label": "", "doc_title": "", "quote": ""}
    return {"clause_id": str(get("clause_id", "") or ""), "label": str(get("label", "") or ""),
            "doc_title": str(get("doc_title", "") or ""), "quote": str(get("quote", "") or "")}


class FeedbackStore:
    """Verdicts on answers in one SQLite file; safe to share between threads of one process."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute(_SCHEMA)

    @classmethod
    def for_settings(cls, settings: Any) -> FeedbackStore:
        """The store under ``settings.data_dir``."""
        return cls(Path(settings.data_dir) / FILENAME)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10)

    def add(self, question: str, answer_text: str, citations: Sequence[Any], verdict: str, comment: str = "",
            history: Sequence[Sequence[str]] = (), refused: bool | None = None) -> int:
        """Store one verdict; returns its id.

        ``citations`` are Citation objects, their JSON dicts or clause ids; ``refused`` defaults to
        "the answer cited nothing".
        """
        if verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}")
        if not question.strip():
            raise ValueError("question is empty")
        comment = (comment or "").strip()
        if len(comment) > MAX_COMMENT_CHARS:
            raise ValueError(f"comment is longer than {MAX_COMMENT_CHARS} characters")
        cites = [_citation_dict(c) for c in citations]
        if refused is None:
            refused = not cites
        turns = [[str(q), str(a)] for q, a in history]
        created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        with self._lock, self._connect() as db:
            cur = db.execute(
                "INSERT INTO feedback (created, question, answer, citations, refused, verdict, comment, history) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (created, question.strip(), answer_text, json.dumps(cites, ensure_ascii=False), int(refused),
                 verdict, comment, json.dumps(turns, ensure_ascii=False)))
            return int(cur.lastrowid or 0)

    def all(self) -> list[FeedbackRecord]:
        """Every verdict, oldest first."""
        with self._lock, self._connect() as db:
            rows = db.execute("SELECT id, created, question, answer, citations, refused, verdict, comment, history "
                              "FROM feedback ORDER BY id").fetchall()
        return [FeedbackRecord(id=r[0], created=r[1], question=r[2], answer=r[3], citations=json.loads(r[4]),
                               refused=bool(r[5]), verdict=r[6], comment=r[7], history=json.loads(r[8]))
                for r in rows]

    def export_jsonl(self, path: Path, review: Path | None = None) -> tuple[int, int]:
        """Write the 👍 rows to ``path`` as eval-format JSONL and the 👎 rows to ``review`` (default
        :func:`review_path`); returns (cases, rows for review). Both files are always written."""
        path = Path(path)
        review = Path(review) if review else review_path(path)
        records = latest_verdicts(self.all())
        cases = [eval_record(r) for r in records if r.verdict == "up"]
        todo = [eval_record(r) for r in records if r.verdict == "down"]
        for target, rows in ((path, cases), (review, todo)):
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
        return len(cases), len(todo)


def latest_verdicts(records: Sequence[FeedbackRecord]) -> list[FeedbackRecord]:
    """One record per answer (same question, answer and history): the latest, so a vote changed from 👍 to 👎
    counts once, as 👎. Oldest first."""
    latest: dict[tuple[str, str, str], FeedbackRecord] = {}
    for r in records:
        latest[(r.question, r.answer, json.dumps(r.history, ensure_ascii=False))] = r
    return sorted(latest.values(), key=lambda r: r.id)


def review_path(path: Path) -> Path:
    """``cases.jsonl`` → ``cases.review.jsonl``."""
    path = Path(path)
    return path.with_name(path.stem + ".review" + (path.suffix or ".jsonl"))


def eval_record(r: FeedbackRecord) -> dict[str, Any]:
    """One verdict as a line of an eval dataset (:mod:`eval.dataset`'s format plus the feedback fields).

    👍 on an answer: gold_clause_ids are the cited clauses. 👍 on a refusal: must_refuse. 👎: no gold,
    ``"review": true`` (the evaluator adds gold_quotes/gold_clause_ids or must_refuse).
    """
    ids = list(dict.fromkeys(c["clause_id"] for c in r.citations if c.get("clause_id")))
    row: dict[str, Any] = {
        "id": f"feedback-{r.id}", "question": r.question, "history": r.history,
        "gold_clause_ids": [], "gold_quotes": [], "answer_keywords": [], "must_refuse": False,
        "type": "feedback", "lang": "zh" if _CJK.search(r.question) else "en",
        # the feedback itself, kept for the evaluator (the eval loader ignores these fields)
        "verdict": r.verdict, "comment": r.comment, "answer": r.answer, "citations": r.citations,
        "refused": r.refused, "created": r.created,
    }
    if r.verdict == "up":
        if r.refused or not ids:
            row["must_refuse"] = True
        else:
            row["gold_clause_ids"] = ids
    else:
        row["review"] = True
    return row
