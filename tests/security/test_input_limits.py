"""Hostile input at the core: lone surrogates, invisible-only questions, unbounded history (issue 11)."""

from __future__ import annotations

import pytest

from assistant.service import InputError, PolicyAssistant


@pytest.mark.parametrize("text", ["\ud800", "\u200b\u200b\u200d", "\x00\x01 \n", "   ", "😀🙏🏻", "？？！…", "\u3000—— *"])
def test_questions_that_are_empty_once_cleaned_are_input_errors(built_assistant: PolicyAssistant, text: str) -> None:
    with pytest.raises(InputError, match="empty"):
        built_assistant.ask(text)
    with pytest.raises(InputError, match="empty"):
        built_assistant.search(text)


@pytest.mark.model
def test_a_lone_surrogate_inside_a_question_or_history_is_removed_not_a_crash(built_assistant) -> None:
    a = built_assistant.ask("外国医生\ud800能开诊所吗？", [("外资\udfff诊所", "好\ud800")])
    assert a.answer and a.answer.encode("utf-8")


@pytest.mark.model
def test_a_huge_history_costs_no_more_than_the_limits(built_assistant: PolicyAssistant) -> None:
    s = built_assistant.settings
    history = [("外国医生能开诊所吗" * 100000, "好")] * 50
    kept = built_assistant.clean_history(history)
    assert len(kept) <= s.max_history_turns
    assert sum(len(q) + len(a) for q, a in kept) <= s.max_history_chars
    assert all(len(q) <= s.max_history_turn_chars for q, _ in kept)
    answer = built_assistant.ask("那护士呢？", history)  # was minutes and 14 GB before the limits
    assert answer.answer and len(answer.standalone_question) < 2 * s.max_history_turn_chars


def test_a_docx_zip_bomb_is_refused_before_it_is_opened() -> None:
    import io
    import zipfile

    from corpus.loaders import DocumentLoader, LoaderError

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "0" * (3 * 1024 * 1024))  # 3 MB of zeros: a few KB compressed
    data = buf.getvalue()
    assert len(data) < 64 * 1024
    with pytest.raises(LoaderError, match="unpacks to"):
        DocumentLoader(max_unpacked_bytes=1024 * 1024).load_bytes(data, "bomb.docx")


def test_a_pdf_with_too_many_pages_is_refused_before_any_page_is_read() -> None:
    import io

    from pypdf import PdfWriter

    from corpus.loaders import DocumentLoader, LoaderError

    writer = PdfWriter()
    for _ in range(30):
        writer.add_blank_page(width=72, height=72)
    buf = io.BytesIO()
    writer.write(buf)
    with pytest.raises(LoaderError, match="30 pages"):
        DocumentLoader(max_pages=10).load_bytes(buf.getvalue(), "many.pdf")
