"""Loaders read every supported format and reject bad files with a clear error."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from fakes import LAW, docx_bytes

from corpus.loaders import DocumentLoader, LoaderError


def _pdf_bytes() -> bytes:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    c.setFont("STSong-Light", 12)
    for i, line in enumerate(LAW.split("\n")):
        c.drawString(72, 720 - 20 * i, line)
    c.save()
    return buf.getvalue()


@pytest.mark.parametrize("name,data", [
    ("a.txt", LAW.encode("utf-8")),
    ("a.md", ("# 标题：测试规定｜文号：测字1号｜发布机关：测试局｜日期：2026-01-01｜来源：test\n" + LAW).encode("utf-8")),
    ("a.txt", LAW.encode("gb18030")),
    ("a.html", f"<html><body><h1>测试规定</h1>{''.join(f'<p>{x}</p>' for x in LAW.split(chr(10)))}"
               "<script>alert(1)</script></body></html>".encode()),
    ("a.docx", None),
    ("a.pdf", None),
])
def test_formats(name: str, data: bytes | None):
    if data is None:
        data = docx_bytes() if name.endswith(".docx") else _pdf_bytes()
    text, header = DocumentLoader().load_bytes(data, name)
    assert "第一条 为了测试，制定本规定。" in text
    assert "第二条" in text
    assert "alert" not in text
    if name == "a.md":
        assert header["title"] == "测试规定" and header["wenhao"] == "测字1号"
        assert not text.startswith("# 标题")


@pytest.mark.parametrize("name,data,message", [
    ("a.exe", b"MZ", "unsupported format"),
    ("a.docx", b"not a zip file at all", "corrupt"),
    ("a.pdf", b"%PDF-1.4 broken", "corrupt"),
    ("a.txt", b"   \n ", "empty"),
    ("a.txt", b"\xff\xfe\x00\xd8" * 3, "UTF-8"),
])
def test_bad_files(name: str, data: bytes, message: str):
    with pytest.raises(LoaderError, match=message):
        DocumentLoader().load_bytes(data, name)


def test_size_limit_and_missing_file(tmp_path: Path):
    with pytest.raises(LoaderError, match="limit"):
        DocumentLoader(max_bytes=10).load_bytes(LAW.encode(), "a.txt")
    with pytest.raises(LoaderError, match="no such file"):
        DocumentLoader().run(tmp_path / "missing.txt")
