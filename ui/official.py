"""Clause citations in the form used in official writing (公文引用格式).

The clause id follows the document's own numbering (:mod:`corpus.parsing`), so the official form is
read off it: the plan's ``fz-plan/三/（二）/3`` is 第三部分第（二）项第3点, a law's
``data-security-law/第三十一条`` is 第三十一条. A long article that the parser split into pieces
(``…/第四十五条/1``) is still cited as the whole article: the pieces are the index's, not the law's.

>>> official_citation("中华人民共和国数据安全法", "data-security-law/第三十一条", "data-security-law")
'《中华人民共和国数据安全法》第三十一条'
>>> official_citation("福州市服务业扩大开放综合试点工作实施方案", "fz-plan/三/（二）/3", "fz-plan")
'《福州市服务业扩大开放综合试点工作实施方案》第三部分第（二）项第3点'
>>> official_citation("网络安全法", "cybersecurity-law/第六十三条/1", "cybersecurity-law")
'《网络安全法》第六十三条'
>>> official_citation("方案", "fz-plan/三/（一）", "fz-plan")
'《方案》第三部分第（一）项'
>>> official_citation("方案", "fz-plan/序言/2", "fz-plan")
'《方案》序言第2段'
>>> official_citation("数据安全法", "data-security-law/题注", "data-security-law")
'《数据安全法》题注'
>>> official_citation("《自拟文件》", "my-doc/段落 7", "my-doc", label="段落7")
'《自拟文件》段落7'
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["official_citation", "citation_official", "official_title"]

_CN_NUMERAL = re.compile(r"^[零〇一二三四五六七八九十百千两]+$")
_ITEM = re.compile(r"^（[零〇一二三四五六七八九十百千两]+）$")
_ARTICLE = re.compile(r"^第[零〇一二三四五六七八九十百千两0-9]+条$")
_DIGITS = re.compile(r"^[0-9]+$")


def official_title(title: str) -> str:
    """The title in 书名号, once: ``数据安全法`` → ``《数据安全法》``."""
    title = title.strip()
    return title if title.startswith("《") and title.endswith("》") else f"《{title}》"


def _local_parts(clause_id: str, doc_id: str) -> list[str]:
    local = clause_id[len(doc_id) + 1:] if doc_id and clause_id.startswith(doc_id + "/") else clause_id
    local = re.sub(r"~\d+$", "", local)  # a repeated number made unique by the parser
    return [p for p in local.split("/") if p]


def _position(parts: list[str]) -> str | None:
    """The position part of the citation, or None when the numbering is not one we know."""
    if not parts:
        return None
    head = parts[0]
    if head == "题注":
        return "题注"
    if head == "序言":
        return "序言" + (f"第{parts[1]}段" if len(parts) > 1 and _DIGITS.match(parts[1]) else "")
    if _ARTICLE.match(head):
        return head  # pieces of a split article (…/1, …/2) are cited as the whole article
    if not _CN_NUMERAL.match(head):
        return None
    out = f"第{head}部分"
    for p in parts[1:]:
        if _ITEM.match(p):
            out += f"第{p}项"
        elif _DIGITS.match(p):
            out += f"第{p}点"
        else:
            return None
    return out


def official_citation(doc_title: str, clause_id: str, doc_id: str = "", label: str = "") -> str:
    """《title》 followed by the clause's position in the document's own numbering.

    Falls back to the clause's label (without a repeated short title) when the id does not follow a
    numbering scheme we know (an uploaded document split into paragraphs).
    """
    if not doc_id and "/" in clause_id:
        doc_id = clause_id.split("/", 1)[0]
    position = _position(_local_parts(clause_id, doc_id))
    if position is None:
        position = label.split(" ", 1)[1] if " " in label else label
    return official_title(doc_title) + position.strip()


def citation_official(citation: Any) -> str:
    """:func:`official_citation` of anything with ``doc_title``, ``clause_id``, ``doc_id`` and ``label``
    (a :class:`assistant.models.Citation`, a :class:`corpus.models.Clause`, or their JSON as a dict)."""
    get = citation.get if isinstance(citation, dict) else (lambda k, d="": getattr(citation, k, d))
    return official_citation(str(get("doc_title", "") or ""), str(get("clause_id", "") or ""),
                             str(get("doc_id", "") or ""), str(get("label", "") or ""))
