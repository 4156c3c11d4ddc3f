"""Answer export (Markdown, .docx), the official citation form, and POST /api/export."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from docx import Document
from fastapi.testclient import TestClient

from assistant.models import Answer, Citation
from assistant.service import PolicyAssistant
from ui.export import answer_to_docx, answer_to_markdown
from ui.official import citation_official, official_citation

PLAN = "福州市服务业扩大开放综合试点工作实施方案（征求意见稿）"


def _docx_text(data: bytes) -> str:
    return "\n".join(p.text for p in Document(io.BytesIO(data)).paragraphs)


@pytest.mark.parametrize("clause_id, expected", [
    ("fz-plan/三/（二）/3", f"《{PLAN}》第三部分第（二）项第3点"),
    ("fz-plan/五/（一）", f"《{PLAN}》第五部分第（一）项"),
    ("fz-plan/二/1", f"《{PLAN}》第二部分第1点"),
    ("fz-plan/序言/1", f"《{PLAN}》序言第1段"),
    ("data-security-law/第三十一条", "《中华人民共和国数据安全法》第三十一条"),
    ("data-security-law/第四十五条/1", "《中华人民共和国数据安全法》第四十五条"),  # a piece of a split article
    ("data-security-law/题注", "《中华人民共和国数据安全法》题注"),
])
@pytest.mark.model
def test_official_form_of_shipped_clauses(built_assistant: PolicyAssistant, clause_id: str, expected: str) -> None:
    clause = built_assistant.clause(clause_id).clause  # the id exists in the shipped corpus
    assert citation_official(clause) == expected
    assert citation_official(Citation.of(clause)) == expected
    assert citation_official({"clause_id": clause.clause_id, "doc_title": clause.doc_title}) == expected


def test_official_form_falls_back_to_the_label() -> None:
    # an uploaded document split into paragraphs has no numbering we know: the label, without its short title
    assert official_citation("某通知", "notice/段落/3", "notice", label="某通知 段落3") == "《某通知》段落3"
    assert official_citation("《已有书名号》", "x/第二条", "x") == "《已有书名号》第二条"
    assert official_citation("方案", "fz-plan/三/（一）/2~2", "fz-plan") == "《方案》第三部分第（一）项第2点"


@pytest.fixture(scope="module")
def answered(built_assistant: PolicyAssistant) -> Answer:
    answer = built_assistant.ask("数据出境需要做安全评估吗？")
    assert not answer.refused and answer.citations
    return answer


@pytest.mark.model
def test_markdown_and_docx_carry_quotes_and_full_citations(answered: Answer) -> None:
    md = answer_to_markdown(answered, [("上一问", "上一答")])
    docx_text = _docx_text(answer_to_docx(answered, [("上一问", "上一答")]))
    for text in (md, docx_text):
        assert "数据出境需要做安全评估吗？" in text
        assert answered.answer.splitlines()[0] in text
        for c in answered.citations:
            assert citation_official(c) in text      # official form, e.g. 《网络数据安全管理条例》第三十七条
            assert c.clause_id in text and c.label in text
            assert c.text.splitlines()[0] in text  # the clause's full text, not only the quote
        assert "上一问" in text
    assert md.index("## 引用条款") < md.index(citation_official(answered.citations[0]))


def test_refusal_lists_the_nearest_clauses() -> None:
    near = Citation(clause_id="fz-plan/二/1", doc_id="fz-plan", doc_title=PLAN, path="二、主要目标", label="二1",
                    text="到2028年，服务业增加值达到1.06万亿元。")
    refusal = Answer(question="厦门的政策是什么？", standalone_question="厦门的政策是什么？", answer="现有条款中没有找到依据。",
                     refused=True, nearest=[near])
    md = answer_to_markdown(refusal)
    assert "最接近的条款" in md and f"《{PLAN}》第二部分第1点" in md and "1.06万亿元" in md
    assert "最接近的条款" in _docx_text(answer_to_docx(refusal))


@pytest.fixture(scope="module")
def client(built_assistant: PolicyAssistant) -> Iterator[TestClient]:
    from ui.server import create_app

    with TestClient(create_app(built_assistant, with_ui=False)) as c:
        yield c


@pytest.mark.model
def test_api_export_answers_the_question(client: TestClient) -> None:
    r = client.post("/api/export?format=md", json={"question": "市服开办设在哪里？"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/markdown")
    assert 'attachment; filename="policy-answer-' in r.headers["content-disposition"]
    assert f"《{PLAN}》第五部分第（一）项" in r.text and "设在市商务局" in r.text
    d = client.post("/api/export?format=docx", json={"question": "市服开办设在哪里？"})
    assert d.status_code == 200 and d.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert f"《{PLAN}》第五部分第（一）项" in _docx_text(d.content)


@pytest.mark.model
def test_api_export_of_a_shown_answer_reads_clauses_from_the_corpus(client: TestClient) -> None:
    body = {"question": "数据安全法怎么说重要数据出境？", "answer": "见第三十一条。[数据安全法 第三十一条]",
            "citations": [{"clause_id": "data-security-law/第三十一条", "quote": "不是条款里的话",
                           "label": "伪造标注"}]}
    r = client.post("/api/export", json=body)  # format defaults to md
    assert r.status_code == 200, r.text
    assert "见第三十一条。" in r.text and "《中华人民共和国数据安全法》第三十一条" in r.text
    assert "关键信息基础设施的运营者" in r.text  # the clause's text from the corpus
    assert "不是条款里的话" not in r.text and "伪造标注" not in r.text  # the client cannot put words in a clause


@pytest.mark.model
@pytest.mark.parametrize("query, body, code", [
    ("?format=pdf", {"question": "市服开办设在哪里？"}, 400),
    ("?format=md", {"question": "   "}, 400),
    ("?format=md", {"question": "问", "answer": "答", "citations": [{"clause_id": "no-such/第一条"}]}, 404),
    ("?format=md", {"answer": "答"}, 422),
])
def test_api_export_rejects_bad_input(client: TestClient, query: str, body: dict, code: int) -> None:
    r = client.post("/api/export" + query, json=body)
    assert r.status_code == code, r.text
    assert r.json()["detail"]


# ------------------------------------------------------------------ the clause table (CSV / XLSX)
@pytest.mark.model
def test_clause_table_rows_filters_and_files(built_assistant: PolicyAssistant) -> None:
    import csv

    from openpyxl import load_workbook

    from ui.clause_table import HEADERS, clause_rows, sections, table_csv, table_xlsx

    assert sections(built_assistant, "fz-plan")[:4] == ["序言", "一、总体要求", "二、主要目标", "三、重点工作"]
    rows = clause_rows(built_assistant, "fz-plan")
    _, clauses = built_assistant.document("fz-plan")
    assert [r.clause_id for r in rows] == [c.clause_id for c in clauses]  # every clause, in document order
    row = next(r for r in rows if r.clause_id == "fz-plan/三/（一）/3")
    assert (row.section, row.item, row.text, row.status) == (
        "三、重点工作", "（一）支持电信服务及相关数字产业开放发展", "放宽增值电信业务外资准入。", "征求意见稿")
    assert row.official == f"《{PLAN}》第三部分第（一）项第3点"
    part = clause_rows(built_assistant, "fz-plan", section="五、保障措施")
    assert part and all(r.section == "五、保障措施" for r in part) and len(part) < len(rows)
    hits = clause_rows(built_assistant, "fz-plan", query="市商务局")
    assert [r.clause_id for r in hits] == ["fz-plan/五/（一）"]
    assert clause_rows(built_assistant, "fz-plan", query="第三部分第（一）项第3点")[0].clause_id == "fz-plan/三/（一）/3"
    assert clause_rows(built_assistant, "fz-plan", query="琥珀隧道") == []
    law = clause_rows(built_assistant, "data-security-law", query="第三十一条")
    assert law[0].section == "第四章 数据安全保护义务" and law[0].status == "现行"

    data = table_csv(rows)
    assert data.startswith("\ufeff".encode())  # Excel reads the BOM as UTF-8
    parsed = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert tuple(parsed[0]) == HEADERS and len(parsed) == len(rows) + 1
    assert parsed[1 + rows.index(row)] == row.cells()
    sheet = load_workbook(io.BytesIO(table_xlsx(rows, "fz-plan"))).active
    values = list(sheet.iter_rows(values_only=True))
    assert tuple(values[0]) == HEADERS and len(values) == len(rows) + 1
    assert list(values[1 + rows.index(row)]) == row.cells() and sheet.freeze_panes == "A2"


@pytest.mark.model
def test_api_document_table(client: TestClient) -> None:
    from openpyxl import load_workbook

    r = client.get("/api/documents/fz-plan/table", params={"q": "市商务局"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert 'filename="fz-plan-clauses.csv"' in r.headers["content-disposition"]
    lines = r.content.decode("utf-8-sig").strip().splitlines()
    assert lines[0].startswith("部分,项,条款编号") and len(lines) == 2 and "fz-plan/五/（一）" in lines[1]
    x = client.get("/api/documents/fz-plan/table", params={"format": "xlsx", "section": "三、重点工作"})
    assert x.status_code == 200 and x.headers["content-type"].startswith("application/vnd.openxmlformats")
    rows = list(load_workbook(io.BytesIO(x.content)).active.iter_rows(values_only=True))[1:]
    assert rows and all(r[0] == "三、重点工作" for r in rows)
    assert client.get("/api/documents/fz-plan/table", params={"format": "pdf"}).status_code == 400
    assert client.get("/api/documents/no-such-doc/table").status_code == 404
