"""An answer with its quoted clauses and full citations, as Markdown or as a Word document (.docx).

Each citation is given three ways: the marker the answer uses (``[三（一）3]``), the form used in official
writing (:func:`ui.official.citation_official`, 《…》第三部分第（一）项第3点) and the clause id; then the
words the answer quotes and the clause's full text. A refusal lists the nearest clauses instead.

Usage::

    md = answer_to_markdown(answer)        # str
    data = answer_to_docx(answer)          # bytes of a .docx
"""

from __future__ import annotations

import datetime as _dt
import io
from typing import Any

from assistant.models import Answer, Citation
from ui.official import citation_official

__all__ = ["answer_to_markdown", "answer_to_docx", "MEDIA_TYPES", "export_filename"]

MEDIA_TYPES = {"md": "text/markdown; charset=utf-8",
               "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document"}

_TITLE = "政策助手回答"


def export_filename(fmt: str) -> str:
    """``policy-answer-<UTC time>.<fmt>``."""
    return f"policy-answer-{_dt.datetime.now(_dt.UTC).strftime('%Y%m%d-%H%M%S')}.{fmt}"


def _sources(answer: Answer) -> tuple[str, list[Citation]]:
    if answer.citations:
        return "引用条款", list(answer.citations)
    return "最接近的条款（语料中未找到直接依据）", list(answer.nearest)


def _md_quote(text: str) -> str:
    return "\n".join("> " + line if line.strip() else ">" for line in text.strip().splitlines())


def _created() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def answer_to_markdown(answer: Answer, history: Any = ()) -> str:
    """The answer as a Markdown document (question, answer, notices, then every citation in full)."""
    out = [f"# {_TITLE}", "", f"- 导出时间：{_created()}", f"- 回答方式：{answer.mode}"]
    if answer.standalone_question and answer.standalone_question != answer.question:
        out.append(f"- 理解为：{answer.standalone_question}")
    out += ["", "## 问题", "", answer.question.strip(), "", "## 回答", "", answer.answer.strip()]
    for extra in (answer.caveat, answer.notice):
        if extra:
            out += ["", f"**注意：** {extra}"]
    if answer.unsupported_sentences:
        out += ["", "**未找到条款依据的句子：**", ""] + [f"- {s}" for s in answer.unsupported_sentences]
    heading, cites = _sources(answer)
    out += ["", f"## {heading}", ""]
    if not cites:
        out.append("无。")
    for n, c in enumerate(cites, start=1):
        out += [f"### {n}. {citation_official(c)}", "",
                f"- 标注：[{c.label}]", f"- 位置：{c.path}", f"- 条款编号：`{c.clause_id}`", ""]
        if c.quote and c.quote.strip() != c.text.strip():
            out += ["引用原文：", "", _md_quote(c.quote), ""]
        out += ["条款全文：", "", _md_quote(c.text), ""]
    if history:
        out += ["## 此前的对话", ""]
        for q, a in history:
            out += [f"- **问：** {q}", f"  **答：** {' '.join(str(a).split())}"]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def answer_to_docx(answer: Answer, history: Any = ()) -> bytes:
    """The same content as :func:`answer_to_markdown` as a .docx (python-docx)."""
    from docx import Document
    from docx.oxml.ns import qn
    from docx.shared import Pt, RGBColor

    doc = Document()
    style = doc.styles["Normal"]
    style.font.name = "宋体"
    style.font.size = Pt(11)
    rpr = style.element.get_or_add_rPr()
    rpr.get_or_add_rFonts().set(qn("w:eastAsia"), "宋体")  # CJK text needs the East Asian font slot
    doc.core_properties.title = _TITLE
    doc.add_heading(_TITLE, level=0)
    meta = doc.add_paragraph()
    meta.add_run(f"导出时间：{_created()}　回答方式：{answer.mode}").font.size = Pt(9)
    if answer.standalone_question and answer.standalone_question != answer.question:
        doc.add_paragraph(f"理解为：{answer.standalone_question}")
    doc.add_heading("问题", level=1)
    doc.add_paragraph(answer.question.strip())
    doc.add_heading("回答", level=1)
    for para in answer.answer.strip().split("\n"):
        if para.strip():
            doc.add_paragraph(para.strip())
    for extra in (answer.caveat, answer.notice):
        if extra:
            p = doc.add_paragraph()
            p.add_run("注意：").bold = True
            p.add_run(extra)
    if answer.unsupported_sentences:
        doc.add_paragraph().add_run("未找到条款依据的句子：").bold = True
        for s in answer.unsupported_sentences:
            doc.add_paragraph(s, style="List Bullet")
    heading, cites = _sources(answer)
    doc.add_heading(heading, level=1)
    if not cites:
        doc.add_paragraph("无。")
    for n, c in enumerate(cites, start=1):
        doc.add_heading(f"{n}. {citation_official(c)}", level=2)
        doc.add_paragraph(f"标注：[{c.label}]　位置：{c.path}　条款编号：{c.clause_id}")
        if c.quote and c.quote.strip() != c.text.strip():
            p = doc.add_paragraph()
            p.add_run("引用原文：").bold = True
            p.add_run(c.quote.strip()).font.color.rgb = RGBColor(0xB3, 0x26, 0x1E)
        p = doc.add_paragraph()
        p.add_run("条款全文：").bold = True
        p.add_run(c.text.strip())
    if history:
        doc.add_heading("此前的对话", level=1)
        for q, a in history:
            doc.add_paragraph(f"问：{q}", style="List Bullet")
            doc.add_paragraph(f"答：{' '.join(str(a).split())}")
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()
