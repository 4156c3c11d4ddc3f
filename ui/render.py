"""HTML for the chat page: answers with clickable citation markers, refusals, the document tree.

Every clickable clause is an ``<a class="pa-cite">`` whose ``href`` is ``#clause=<id>&q=<quote>``
(and ``data-clause``/``data-quote`` attributes); the page script (``ui/app.py``) opens the clause viewer
for any such link, wherever it is on the page.

>>> '[三（一）3]' in cite_link("fz-plan/三/（一）/3", "三（一）3")
True
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote as urlquote

from assistant import citations as markers
from assistant.models import Answer, Citation, DocumentInfo
from corpus.models import Clause


def esc(text: str) -> str:
    return html.escape(text or "", quote=True)


def cite_link(clause_id: str, label: str, quote: str = "", extra_class: str = "", text: str | None = None) -> str:
    """A clickable marker that opens ``clause_id`` in the viewer with ``quote`` highlighted."""
    href = f"#clause={urlquote(clause_id, safe='')}"
    if quote:
        href += f"&q={urlquote(quote[:600], safe='')}"
    shown = markers.render(label) if text is None else text
    cls = f"pa-cite {extra_class}".strip()
    return (f'<a class="{cls}" href="{esc(href)}" data-clause="{esc(clause_id)}" data-quote="{esc(quote[:600])}" '
            f'title="{esc(clause_id)}">{esc(shown)}</a>')


def _lines(text: str) -> str:
    return "<br>".join(esc(line) for line in text.split("\n"))


def link_markers(text: str, citations: Iterable[Citation]) -> str:
    """Escape ``text`` and turn each ``[label]`` of a cited clause into a clickable marker."""
    by_label = {c.label: c for c in citations}
    out: list[str] = []
    pos = 0
    for m in markers.MARKER.finditer(text):
        cit = by_label.get((m.group(1) or m.group(2) or "").strip())
        if cit is None:
            continue
        out.append(_lines(text[pos:m.start()]))
        out.append(cite_link(cit.clause_id, cit.label, cit.quote))
        pos = m.end()
    out.append(_lines(text[pos:]))
    return "".join(out)


def streaming_html(text: str) -> str:
    """The partial answer while it streams (markers become links when it is complete)."""
    return f'<div class="pa-answer pa-streaming">{_lines(text)}<span class="pa-caret">▍</span></div>'


#: ``doc_id → provenance`` (``ui.provenance.provenance``), set by :func:`ui.server.create_app` for the page it
#: mounts, so every quote of an uploaded document carries its badge; unset (or unknown ids): no badge.
_provenance_lookup: Callable[[str], dict[str, Any]] | None = None


def set_provenance_lookup(lookup: Callable[[str], dict[str, Any]] | None) -> None:
    global _provenance_lookup
    _provenance_lookup = lookup


def _upload_badge(doc_id: str) -> str:
    if _provenance_lookup is None:
        return ""
    try:
        prov = _provenance_lookup(doc_id)
    except Exception:  # noqa: BLE001 - a badge never breaks an answer
        return ""
    return f" {provenance_badge(prov)}" if prov.get("origin") == "uploaded" else ""


def _citation_list(citations: list[Citation], title: str) -> str:
    items = "".join(
        f'<li>{cite_link(c.clause_id, c.label, c.quote)} <span class="pa-src">《{esc(c.doc_title)}》'
        f'{esc(c.path)}</span>{_upload_badge(c.doc_id)}</li>' for c in citations)
    return f'<div class="pa-citations"><div class="pa-cit-title">{esc(title)}</div><ol>{items}</ol></div>'


def answer_html(answer: Answer) -> str:
    """An answer (markers clickable, a numbered citation list) or a refusal (styled apart, nearest clauses)."""
    if answer.refused:
        head = answer.answer.split("\n", 1)[0].strip() or "现有语料中没有能回答该问题的条款。"
        nearest = "".join(
            f'<li>{cite_link(c.clause_id, c.label, "")} <span class="pa-src">《{esc(c.doc_title)}》'
            f'{esc(c.path)}</span>{_upload_badge(c.doc_id)}<div class="pa-snippet">{esc(_snippet(c.text, 90))}</div></li>'
            for c in answer.nearest)
        body = (f'{_understood(answer)}<div class="pa-refusal" data-refused="true"><div class="pa-refusal-title">⚠ 未找到可依据的条款'
                f'（不作回答）</div><div class="pa-refusal-text">{esc(head)}</div>')
        if nearest:
            body += f'<div class="pa-cit-title">最接近的条款（仅供参考）</div><ol class="pa-nearest">{nearest}</ol>'
        return body + "</div>"
    parts = [f'<div class="pa-answer" data-refused="false">{link_markers(answer.answer, answer.citations)}</div>']
    parts.insert(0, _understood(answer))
    if answer.notice:
        parts.append(f'<div class="pa-notice">ⓘ {esc(answer.notice)}</div>')
    if answer.citations:
        parts.append(_citation_list(answer.citations, f"引用条款（{len(answer.citations)}）· 点击查看原文"))
    return "".join(parts)


def _understood(answer: Answer) -> str:
    """For a follow-up, the question as understood with the conversation's context."""
    if not answer.standalone_question or answer.standalone_question.strip() == answer.question.strip():
        return ""
    return f'<div class="pa-understood">结合上文理解为：{esc(answer.standalone_question)}</div>'


def error_html(message: str) -> str:
    return f'<div class="pa-error">⚠ {esc(message)}</div>'


def _snippet(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def status_badge(status: str) -> str:
    kind = "draft" if "征求意见" in status else "old" if "非最新" in status else "ok" if status == "现行" else "na"
    return f'<span class="pa-badge pa-badge-{kind}">{esc(status)}</span>'


def provenance_badge(prov: dict[str, Any] | None) -> str:
    """A small badge beside a quote whose document did not ship with the assistant (empty for shipped ones)."""
    if not prov or prov.get("origin") == "shipped":
        return ""
    when = f" · {str(prov['added_at'])[:10]}" if prov.get("added_at") else ""
    return (f'<span class="pa-badge pa-badge-upload" title="{esc(str(prov.get("added_by") or ""))}">'
            f'{esc(str(prov.get("label") or "上传文件"))}{esc(when)}</span>')


def clause_warning_html(clause: dict[str, Any]) -> str:
    """The clause view's warning (``/api/clauses/{id}`` JSON in): provenance of an uploaded document and each
    flagged sentence with its reason; empty for a shipped clause with no flag."""
    if not clause.get("warning"):
        return ""
    items = "".join(f'<li><q>{esc(f["sentence"])}</q> — {esc(f["reason"])}</li>' for f in clause.get("flags") or [])
    return (f'<div class="pa-v-warning" role="alert">{provenance_badge(clause.get("provenance"))} '
            f'{esc(clause["warning"])}{f"<ul>{items}</ul>" if items else ""}</div>')


class _Node:
    def __init__(self, name: str) -> None:
        self.name = name
        self.children: dict[str, _Node] = {}
        self.clauses: list[Clause] = []


def _tree(clauses: list[Clause]) -> _Node:
    root = _Node("")
    for c in clauses:
        node = root
        for part in c.path:
            node = node.children.setdefault(part, _Node(part))
        node.clauses.append(c)
    return root


def _leaf(c: Clause, name: str | None = None) -> str:
    label = name or c.label
    return (f'<li class="pa-leaf">{cite_link(c.clause_id, label, "", text=label)} '
            f'<span class="pa-snippet">{esc(_snippet(c.text, 48))}</span></li>')


def _render_node(node: _Node) -> str:
    if not node.children and len(node.clauses) == 1:
        return _leaf(node.clauses[0], node.name)
    heading = [c for c in node.clauses if c.kind == "item-title"]
    rest = [c for c in node.clauses if c.kind != "item-title"]
    open_link = f' {cite_link(heading[0].clause_id, "", "", "pa-open", text="打开")}' if heading else ""
    inner = "".join(_leaf(c) for c in rest) + "".join(_render_node(ch) for ch in node.children.values())
    return (f'<li class="pa-node"><details><summary>{esc(node.name)}{open_link}</summary>'
            f'<ul>{inner}</ul></details></li>')


def document_tree_html(doc: DocumentInfo, clauses: list[Clause]) -> str:
    """One document as a collapsible tree: sections → items → clauses (or chapters → articles)."""
    root = _tree(clauses)
    inner = "".join(_leaf(c) for c in root.clauses) + "".join(_render_node(n) for n in root.children.values())
    m = doc.meta
    sub = " · ".join(x for x in (m.wenhao, m.issuer, m.date) if x)
    return (f'<details class="pa-doc" data-doc="{esc(m.doc_id)}"><summary><span class="pa-doc-title">{esc(m.title)}'
            f'</span> {status_badge(m.status)} <span class="pa-count">{doc.clauses} 条</span>'
            f'{f"<div class=pa-doc-sub>{esc(sub)}</div>" if sub else ""}</summary><ul class="pa-tree">{inner}</ul>'
            f'</details>')


def browser_html(docs: list[tuple[DocumentInfo, list[Clause]]]) -> str:
    plans = [d for d in docs if d[0].meta.kind == "plan"]
    others = [d for d in docs if d[0].meta.kind != "plan"]
    out = ['<div class="pa-browser">']
    if plans:
        out.append('<h3>地方实施方案</h3>')
        out.extend(document_tree_html(*d) for d in plans)
    if others:
        out.append('<h3>国家法律法规及其他文件</h3>')
        out.extend(document_tree_html(*d) for d in others)
    if not docs:
        out.append("<p>索引中还没有文件。</p>")
    out.append("</div>")
    return "".join(out)
