"""Time limit on parsing (issue 11): .docx/.pdf/.html are parsed in a child process killed after MAX_PARSE_SECONDS.

No sleeping parser can be injected into a spawned child, so the slow case is the real parse of a small PDF
under a limit far below what any parse (or even the child's start) takes; the child must be gone afterwards.
"""

from __future__ import annotations

import copy
import io
import multiprocessing

import pytest
from fakes import LAW, docx_bytes
from fastapi.testclient import TestClient

from corpus.loaders import DocumentLoader, LoaderError
from ui.server import create_app


def pdf_bytes() -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(3):
        writer.add_blank_page(width=200, height=200)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def test_a_docx_parsed_in_the_child_gives_the_same_text_as_in_process() -> None:
    data = docx_bytes()
    in_child = DocumentLoader(max_seconds=60).load_bytes(data, "a.docx")
    in_process = DocumentLoader(max_seconds=0).load_bytes(data, "a.docx")
    assert in_child == in_process
    assert "第二条" in in_child[0]


@pytest.mark.parametrize(("name", "data", "message"), [
    ("a.docx", b"not a zip file at all", "corrupt"),
    ("a.html", b"<p>" * 3 + b"\xff\xfe\xfa" * 4, "neither UTF-8"),
])
def test_errors_raised_in_the_child_come_back_as_the_same_clear_error(name: str, data: bytes, message: str) -> None:
    with pytest.raises(LoaderError, match=message):
        DocumentLoader(max_seconds=60).load_bytes(data, name)


def test_a_parse_over_the_time_limit_is_refused_and_the_child_killed() -> None:
    with pytest.raises(LoaderError, match="took longer than the limit of 0.001 s"):
        DocumentLoader(max_seconds=0.001).load_bytes(pdf_bytes(), "slow.pdf")
    assert multiprocessing.active_children() == []


def test_plain_text_is_read_in_process_whatever_the_limit() -> None:
    text, _ = DocumentLoader(max_seconds=0.001).load_bytes(LAW.encode(), "a.txt")
    assert text.startswith("第一条")


def test_the_upload_api_answers_400_with_the_limit_and_changes_nothing(built_assistant) -> None:
    clone = copy.copy(built_assistant)
    clone.settings = built_assistant.settings.model_copy(update={"admin_token": "t0ken", "max_parse_seconds": 0.001})
    clone.loader = DocumentLoader(max_seconds=0.001)
    before = len(clone.documents())
    client = TestClient(create_app(clone, with_ui=False))
    r = client.post("/api/documents", headers={"Authorization": "Bearer t0ken"},
                    files={"file": ("slow.docx", docx_bytes(), "application/octet-stream")}, data={"doc_id": "slow"})
    assert r.status_code == 400, r.text
    assert "took longer than the limit" in r.json()["detail"]
    assert len(clone.documents()) == before
    assert multiprocessing.active_children() == []
