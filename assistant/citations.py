"""The citation marker syntax, in one place: ``[label]`` (or ``【label】`` from models that prefer it).

Answers cite clauses by marker (``[三（一）3]``, ``[数据安全法 第三十一条]``, or a clause id in the
generative mode). The answerers render markers, the verifier and the metrics parse them, the UI
links them, the condenser strips them — all through this module.

>>> render("三（一）3")
'[三（一）3]'
>>> labels("支持数字贸易[三（一）3]【数据安全法 第三十一条】。")
['三（一）3', '数据安全法 第三十一条']
>>> strip("支持数字贸易[三（一）3]。")
'支持数字贸易。'
"""

from __future__ import annotations

import re

__all__ = ["MARKER", "MARKER_BODY", "TRAILING_MARKERS", "render", "labels", "strip"]

#: The text between the brackets: no nesting, no newline, at most 200 characters.
MARKER_BODY = r"[^\[\]\n]{1,200}"
#: One marker; group 1 (``[…]``) or group 2 (``【…】``) is the label.
MARKER = re.compile(r"\[([^\[\]\n]{1,200})\]|【([^【】\n]{1,200})】")
#: A run of markers (with spaces or tabs before each), as at the end of a sentence.
TRAILING_MARKERS = re.compile(r"(?:[ \t]*(?:\[[^\[\]\n]{1,200}\]|【[^【】\n]{1,200}】))+")


def render(label: str) -> str:
    """The marker for ``label``."""
    return f"[{label}]"


def labels(text: str) -> list[str]:
    """The labels of every marker in ``text``, in order."""
    return [(m.group(1) or m.group(2) or "").strip() for m in MARKER.finditer(text)]


def strip(text: str) -> str:
    """``text`` without its markers."""
    return MARKER.sub("", text)
