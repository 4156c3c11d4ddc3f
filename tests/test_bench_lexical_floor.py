"""The lexical-floor benchmark's pure parts (roff to text, rankings, scores); no apt, no network."""

from __future__ import annotations

import doctest

import eval.bench_lexical_floor as bench


def test_doctests() -> None:
    assert doctest.testmod(bench).failed == 0


def test_the_name_line_is_the_question_and_not_in_the_text() -> None:
    source = ".TH LS 1\n.SH NAME\nls \\- 列出目录内容\n.SH 描述\n.PP\n列出\\fI文件\\fP的信息。\n.TP\n\\fB\\-a\\fP\n不忽略以 . 开始的项目\n"
    desc, body = bench.roff_to_text(source)
    assert desc == "列出目录内容"
    assert "列出目录内容" not in body and "列出文件的信息。" in body and "-a" in body
