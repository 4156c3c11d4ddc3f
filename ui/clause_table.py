"""A document's clauses as a table (部分, 项, 条款编号, 公文引用, 条文, 状态), filterable, as CSV or XLSX.

Usage::

    rows = clause_rows(assistant, "fz-plan", query="数据", section="三、重点工作")
    data = table_csv(rows)      # UTF-8 with BOM, so Excel opens the Chinese text correctly
    data = table_xlsx(rows)     # openpyxl
"""

from __future__ import annotations

import csv
import io
from dataclasses import astuple, dataclass
from typing import Any

from ui.official import citation_official

__all__ = ["ClauseRow", "HEADERS", "clause_rows", "sections", "table_csv", "table_xlsx", "MEDIA_TYPES"]

HEADERS = ("部分", "项", "条款编号", "公文引用", "条文", "状态")
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8",
               "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


@dataclass(frozen=True)
class ClauseRow:
    section: str
    item: str
    clause_id: str
    official: str
    text: str
    status: str

    def cells(self) -> list[str]:
        return list(astuple(self))


def _split(path: list[str]) -> tuple[str, str]:
    """(section, item): the first heading, and the rest of the heading path (the plan's item, a law's article)."""
    if not path:
        return "", ""
    return path[0], " › ".join(path[1:])


def sections(assistant: Any, doc_id: str) -> list[str]:
    """The document's first-level headings, in order (the 部分 filter's choices)."""
    _, clauses = assistant.document(doc_id)
    return list(dict.fromkeys(_split(c.path)[0] for c in clauses if c.path))


def clause_rows(assistant: Any, doc_id: str, query: str = "", section: str = "") -> list[ClauseRow]:
    """The clauses of ``doc_id`` in document order; ``query`` keeps rows whose text, id, heading or official
    citation contains it (case-insensitive), ``section`` keeps one first-level heading. Unknown id: NotFoundError."""
    info, clauses = assistant.document(doc_id)
    status = info.meta.status or ""
    q = (query or "").strip().lower()
    out: list[ClauseRow] = []
    for c in clauses:
        sec, item = _split(c.path)
        if section and sec != section:
            continue
        row = ClauseRow(sec, item, c.clause_id, citation_official(c), c.text, status)
        if q and not any(q in cell.lower() for cell in (row.text, row.clause_id, row.section, row.item, row.official)):
            continue
        out.append(row)
    return out


def table_csv(rows: list[ClauseRow]) -> bytes:
    """CSV with a header row, UTF-8 with a byte-order mark (Excel reads it as UTF-8)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(HEADERS)
    writer.writerows(r.cells() for r in rows)
    return buf.getvalue().encode("utf-8-sig")


def table_xlsx(rows: list[ClauseRow], title: str = "条款") -> bytes:
    """An .xlsx workbook: one sheet, bold frozen header, wrapped text, an autofilter over the columns."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    wb = Workbook()
    ws = wb.active
    ws.title = title[:31] or "条款"
    ws.append(list(HEADERS))
    for r in rows:
        ws.append(r.cells())
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for col, width in zip("ABCDEF", (16, 28, 30, 40, 80, 12), strict=True):
        ws.column_dimensions[col].width = width
    for row in ws.iter_rows(min_row=2):
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = ws.dimensions
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
