"""The REST API against a real index (real embedding model, real Chroma) in a temp folder.

Read endpoints use the shared, read-only ``built_assistant`` (the shipped corpus). Write endpoints and
the read-during-write test use a small index of their own, seeded with two uploaded test documents.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from assistant.service import PolicyAssistant
from assistant.settings import Settings
from ui.render import answer_html, browser_html
from ui.server import create_app

TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

LAW_A = """# 标题：测试港口条例｜文号：测试令第1号｜发布机关：测试委员会｜日期：2026-01-01

第一章 总则

第一条 为了规范测试港口的鹦鹉螺码头管理，制定本条例。

第二条 鹦鹉螺码头的泊位由港口管理局统一调度。

第二章 附则

第三条 本条例自发布之日起施行。
"""

LAW_B = """第一条 为了规范珊瑚灯塔的维护，制定本办法。

第二条 珊瑚灯塔每年检修一次，检修记录保存十年。

第三条 本办法由灯塔管理处负责解释。
"""

NEW_LAW = """第一条 为了管理琥珀隧道的通行，制定本规定。

第二条 琥珀隧道夜间限速每小时四十公里。

第三条 琥珀隧道的养护由隧道养护中心负责。

第四条 本规定自公布之日起施行。
"""


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def client(built_assistant: PolicyAssistant) -> Iterator[TestClient]:
    """The API (without the UI) over the shared shipped-corpus index; writes disabled (no token)."""
    with TestClient(create_app(built_assistant, with_ui=False)) as c:
        yield c


@pytest.fixture()
def small(tmp_path: Path) -> PolicyAssistant:
    """A writable index of two small test documents, admin token set, 64 KB upload limit."""
    svc = PolicyAssistant(Settings(data_dir=tmp_path / "data", admin_token=TOKEN, max_upload_bytes=65536,
                                   llm_provider="none"))
    svc.ingest_bytes(LAW_A.encode(), "port.txt", doc_id="test-port")
    svc.ingest_bytes(LAW_B.encode(), "lighthouse.txt", doc_id="test-lighthouse", title="珊瑚灯塔维护办法",
                     status="现行")
    return svc


@pytest.fixture()
def wclient(small: PolicyAssistant) -> Iterator[TestClient]:
    with TestClient(create_app(small, with_ui=False)) as c:
        yield c


def _corpus(c: TestClient) -> tuple[list[tuple[str, int]], int]:
    docs = sorted((d["doc_id"], d["clauses"]) for d in c.get("/api/documents").json())
    return docs, c.get("/api/health").json()["clauses"]


def _sse(text: str) -> list[tuple[str, str]]:
    events: list[tuple[str, str]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        if data:
            events.append((name, "\n".join(data)))
    return events


# ---------------------------------------------------------------- reads
def test_health_reports_the_index(client: TestClient, built_assistant: PolicyAssistant) -> None:
    body = client.get("/api/health").json()
    assert body["status"] == "ok"
    assert body["documents"] == len(built_assistant.documents()) == 14
    assert body["clauses"] == len(built_assistant.retriever.snapshot.clauses) > 500
    assert body["embedding_model"] == built_assistant.embedder.spec
    assert body["version"] and body["writes_enabled"] is False
    assert body["llm"]["status"] == "disabled"


def test_search_returns_cli_shaped_hits(client: TestClient) -> None:
    r = client.post("/api/search", json={"query": "外籍医生设立诊所", "k": 3})
    assert r.status_code == 200
    hits = r.json()["hits"]
    assert len(hits) == 3
    assert set(hits[0]) == {"clause_id", "doc_id", "doc_title", "path", "label", "text", "score"}
    assert hits[0]["clause_id"] == "fz-plan/三/（二）/3"
    only = client.post("/api/search", json={"query": "数据出境", "k": 5, "doc_id": "data-security-law"}).json()
    assert only["hits"] and {h["doc_id"] for h in only["hits"]} == {"data-security-law"}


@pytest.mark.parametrize(("body", "code", "words"), [
    ({"query": "  "}, 400, "empty"),
    ({"query": "数据", "k": 0}, 422, "k"),
    ({"query": "数据", "doc_id": "no-such-doc"}, 404, "no-such-doc"),
    ({"k": 3}, 422, "query"),
])
def test_search_bad_input_is_4xx(client: TestClient, body: dict, code: int, words: str) -> None:
    r = client.post("/api/search", json=body)
    assert r.status_code == code
    assert words in r.json()["detail"]


def test_ask_answers_with_citations_that_resolve(client: TestClient) -> None:
    r = client.post("/api/ask", json={"question": "市服开办设在哪里？"})
    assert r.status_code == 200
    body = r.json()
    assert body["refused"] is False
    assert "市商务局" in body["answer"]
    assert body["citations"]
    for cit in body["citations"]:
        assert f"[{cit['label']}]" in body["answer"]
        assert cit["quote"] and cit["quote"] in cit["text"] or "…" in cit["quote"]
        clause = client.get(f"/api/clauses/{cit['clause_id']}").json()
        assert clause["text"] == cit["text"]


def test_ask_uses_history_for_follow_ups(client: TestClient) -> None:
    first = client.post("/api/ask", json={"question": "外国医生能在福州开诊所吗？"}).json()
    follow = client.post("/api/ask", json={"question": "那境外医疗人员呢？",
                                           "history": [["外国医生能在福州开诊所吗？", first["answer"]]]}).json()
    alone = client.post("/api/ask", json={"question": "那境外医疗人员呢？"}).json()
    assert "外国医生" in follow["standalone_question"]
    assert alone["standalone_question"] == "那境外医疗人员呢？"
    assert "fz-plan/三/（二）/4" in [c["clause_id"] for c in follow["citations"] + follow["nearest"]]


def test_ask_refuses_off_topic_with_nearest_clauses(client: TestClient) -> None:
    body = client.post("/api/ask", json={"question": "福州明天天气怎么样，会下雨吗？"}).json()
    assert body["refused"] is True
    assert body["citations"] == []
    assert body["nearest"] and all(n["clause_id"] for n in body["nearest"])


@pytest.mark.parametrize(("kwargs", "code", "words"), [
    ({"json": {"question": ""}}, 400, "empty"),
    ({"json": {"question": "数" * 1001}}, 400, "limit"),
    ({"json": {"question": "数据", "history": [["only one"]]}}, 422, "history"),
    ({"json": {"question": "数据", "history": [["q", "a"]] * 21}}, 422, "history"),
    ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 422, "malformed JSON"),
    ({"content": "question=数据".encode(), "headers": {"Content-Type": "text/plain"}}, 415, "application/json"),
    ({}, 422, "missing"),
])
def test_ask_bad_input_is_4xx_with_a_message(client: TestClient, kwargs: dict, code: int, words: str) -> None:
    r = client.post("/api/ask", **kwargs)
    assert r.status_code == code, r.text
    assert words in r.json()["detail"]


def test_ask_stream_sends_text_then_citations_then_done(client: TestClient) -> None:
    question = {"question": "外国医生能在福州开诊所吗？"}
    with client.stream("POST", "/api/ask/stream", json=question) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = _sse(r.read().decode())
    names = [n for n, _ in events]
    assert names[-2:] == ["citations", "done"]
    assert set(names[:-2]) == {"token"}
    text = "".join(json.loads(d)["text"] for n, d in events if n == "token")
    whole = client.post("/api/ask", json=question).json()
    assert text == whole["answer"]
    cites = json.loads(events[-2][1])
    assert cites["citations"] == whole["citations"] and cites["refused"] is False


def test_ask_stream_bad_input_is_4xx_before_the_stream(client: TestClient) -> None:
    r = client.post("/api/ask/stream", json={"question": " "})
    assert r.status_code == 400 and "empty" in r.json()["detail"]


def test_documents_and_outline(client: TestClient) -> None:
    docs = client.get("/api/documents").json()
    by_id = {d["doc_id"]: d for d in docs}
    assert by_id["fz-plan"]["status"] == "征求意见稿"
    assert by_id["cybersecurity-law"]["status"].startswith("非最新修订")
    detail = client.get("/api/documents/fz-plan").json()
    assert detail["title"].startswith("福州市服务业扩大开放")
    assert len(detail["outline"]) == detail["clauses"] == by_id["fz-plan"]["clauses"]
    item = next(o for o in detail["outline"] if o["clause_id"] == "fz-plan/三/（一）/3")
    assert item["path"] == ["三、重点工作", "（一）支持电信服务及相关数字产业开放发展"]
    r = client.get("/api/documents/no-such-doc")
    assert r.status_code == 404 and "no-such-doc" in r.json()["detail"]


def test_clause_with_slashes_and_full_width_id(client: TestClient) -> None:
    r = client.get("/api/clauses/fz-plan/三/（一）/3")
    assert r.status_code == 200
    c = r.json()
    assert c["text"] == "放宽增值电信业务外资准入。"
    assert c["doc_title"].startswith("福州市") and c["status"] == "征求意见稿"
    assert c["path"] == "三、重点工作 › （一）支持电信服务及相关数字产业开放发展"
    assert c["previous"]["clause_id"] == "fz-plan/三/（一）/2"
    assert c["next"]["clause_id"] == "fz-plan/三/（一）/4"
    encoded = client.get("/api/clauses/fz-plan%2F%E4%B8%89%2F%EF%BC%88%E4%B8%80%EF%BC%89%2F3")
    assert encoded.status_code == 200 and encoded.json()["clause_id"] == "fz-plan/三/（一）/3"
    law = client.get("/api/clauses/data-security-law/第三十一条").json()
    assert law["label"].endswith("第三十一条") and "第三十一条" in law["text"]


def test_unknown_ids_are_404(client: TestClient) -> None:
    for url in ("/api/clauses/fz-plan/九/（九）/9", "/api/clauses/nothing", "/api/nope"):
        r = client.get(url)
        assert r.status_code == 404 and r.json()["detail"]


def test_writes_disabled_without_admin_token(client: TestClient) -> None:
    before = _corpus(client)
    up = client.post("/api/documents", files={"file": ("x.txt", NEW_LAW.encode(), "text/plain")},
                     headers={"Authorization": "Bearer anything"})
    assert up.status_code == 403 and "ADMIN_TOKEN" in up.json()["detail"]
    rm = client.delete("/api/documents/fz-plan", headers={"Authorization": "Bearer anything"})
    assert rm.status_code == 403
    assert _corpus(client) == before


def test_docs_are_served_without_a_cdn(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "/api/_docs-static/swagger-ui-bundle.js" in page.text
    assert "cdn." not in page.text and "https://" not in page.text.split("<body>")[0]
    assert client.get("/api/_docs-static/swagger-ui-bundle.js").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/health", "/api/search", "/api/ask", "/api/ask/stream", "/api/documents",
                 "/api/documents/{doc_id}", "/api/clauses/{clause_id}"):
        assert path in paths


def test_ui_is_mounted_at_root(built_assistant: PolicyAssistant) -> None:
    with TestClient(create_app(built_assistant)) as c:
        page = c.get("/")
        assert page.status_code == 200 and "gradio" in page.text.lower()
        assert c.get("/api/health").json()["status"] == "ok"
        assert "fonts.googleapis" not in page.text


# --------------------------------------------------------------- chat HTML
def test_answer_html_makes_every_citation_clickable(built_assistant: PolicyAssistant) -> None:
    answer = built_assistant.ask("市服开办设在哪里？")
    page = answer_html(answer)
    for cit in answer.citations:
        assert f'data-clause="{cit.clause_id}"' in page
        assert f">[{cit.label}]</a>" in page
    assert 'data-refused="false"' in page and "pa-refusal" not in page


def test_refusal_html_looks_different_and_lists_nearest(built_assistant: PolicyAssistant) -> None:
    answer = built_assistant.ask("福州明天天气怎么样，会下雨吗？")
    page = answer_html(answer)
    assert 'class="pa-refusal"' in page and "未找到可依据的条款" in page
    assert all(f'data-clause="{n.clause_id}"' in page for n in answer.nearest)


def test_document_browser_is_a_tree_with_statuses(built_assistant: PolicyAssistant) -> None:
    docs = [built_assistant.document(d.meta.doc_id) for d in built_assistant.documents()]
    page = browser_html(docs)
    assert page.count('class="pa-doc"') == 14
    assert "征求意见稿" in page and "非最新修订" in page
    assert "<summary>三、重点工作</summary>" in page
    assert "（一）支持电信服务及相关数字产业开放发展" in page
    assert 'data-clause="fz-plan/三/（一）/3"' in page
    assert 'data-clause="data-security-law/第三十一条"' in page


# ---------------------------------------------------------------- writes
def test_upload_needs_the_token(wclient: TestClient) -> None:
    before = _corpus(wclient)
    files = {"file": ("amber.txt", NEW_LAW.encode(), "text/plain")}
    missing = wclient.post("/api/documents", files=files)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    wrong = wclient.post("/api/documents", files=files, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    assert wclient.delete("/api/documents/test-port").status_code == 401
    assert wclient.delete("/api/documents/test-port", headers={"Authorization": "Bearer nope"}).status_code == 403
    assert _corpus(wclient) == before


def test_upload_search_and_delete_a_document(wclient: TestClient) -> None:
    r = wclient.post("/api/documents", headers=AUTH, files={"file": ("amber.txt", NEW_LAW.encode(), "text/plain")},
                     data={"doc_id": "amber-tunnel", "title": "琥珀隧道通行规定", "status": "征求意见稿"})
    assert r.status_code == 201, r.text
    assert r.json() == {"doc_id": "amber-tunnel", "title": "琥珀隧道通行规定", "status": "征求意见稿",
                        "clauses": 4, "changed": True}
    docs = {d["doc_id"]: d for d in wclient.get("/api/documents").json()}
    assert docs["amber-tunnel"]["status"] == "征求意见稿"
    hits = wclient.post("/api/search", json={"query": "琥珀隧道夜间限速", "k": 1}).json()["hits"]
    assert hits[0]["clause_id"] == "amber-tunnel/第二条"
    again = wclient.post("/api/documents", headers=AUTH, files={"file": ("amber.txt", NEW_LAW.encode())},
                         data={"doc_id": "amber-tunnel", "title": "琥珀隧道通行规定", "status": "征求意见稿"})
    assert again.status_code == 201 and again.json()["changed"] is False
    gone = wclient.delete("/api/documents/amber-tunnel", headers=AUTH)
    assert gone.status_code == 200 and gone.json() == {"doc_id": "amber-tunnel", "deleted": True}
    assert wclient.get("/api/documents/amber-tunnel").status_code == 404
    assert wclient.get("/api/clauses/amber-tunnel/第二条").status_code == 404
    hits = wclient.post("/api/search", json={"query": "琥珀隧道夜间限速", "k": 5}).json()["hits"]
    assert all(h["doc_id"] != "amber-tunnel" for h in hits)
    assert wclient.delete("/api/documents/amber-tunnel", headers=AUTH).status_code == 404


def test_upload_docx_with_header_metadata(wclient: TestClient) -> None:
    import docx

    document = docx.Document()
    document.add_paragraph("# 标题：琥珀隧道通行规定｜文号：测试〔2026〕1号｜发布机关：测试局｜日期：2026-02-01")
    for para in NEW_LAW.strip().split("\n\n"):
        document.add_paragraph(para)
    buf = io.BytesIO()
    document.save(buf)
    r = wclient.post("/api/documents", headers=AUTH, data={"doc_id": "amber-docx"},
                     files={"file": ("amber.docx", buf.getvalue(),
                                     "application/vnd.openxmlformats-officedocument.wordprocessingml.document")})
    assert r.status_code == 201, r.text
    doc = wclient.get("/api/documents/amber-docx").json()
    assert doc["title"] == "琥珀隧道通行规定" and doc["wenhao"] == "测试〔2026〕1号"
    assert [o["label"].split()[-1] for o in doc["outline"]] == ["第一条", "第二条", "第三条", "第四条"]


@pytest.mark.parametrize(("name", "data", "code", "words"), [
    ("broken.docx", b"PK\x03\x04 definitely not a zip", 400, "corrupt"),
    ("broken.pdf", b"%PDF-1.4 garbage", 400, "broken.pdf"),
    ("big.txt", "第一条 很长。".encode() * 5000, 413, "limit"),
    ("tool.exe", b"MZ\x90\x00", 415, "unsupported"),
    ("empty.txt", b"   ", 400, "empty"),
    ("noext", b"text", 415, "unsupported"),
])
def test_failed_upload_leaves_the_corpus_unchanged(wclient: TestClient, name: str, data: bytes, code: int,
                                                   words: str) -> None:
    before = _corpus(wclient)
    r = wclient.post("/api/documents", headers=AUTH, files={"file": (name, data, "application/octet-stream")})
    assert r.status_code == code, r.text
    assert words in r.json()["detail"]
    assert _corpus(wclient) == before


def test_an_oversized_request_body_is_413(wclient: TestClient) -> None:
    before = _corpus(wclient)
    body = json.dumps({"question": "数据" * 700_000}).encode()  # > upload limit + 1 MiB
    r = wclient.post("/api/ask", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    files = {"file": ("huge.txt", b"x" * 2_000_000, "text/plain")}
    assert wclient.post("/api/documents", headers=AUTH, files=files).status_code == 413
    assert _corpus(wclient) == before


def test_upload_without_a_file_is_4xx(wclient: TestClient) -> None:
    before = _corpus(wclient)
    r = wclient.post("/api/documents", headers=AUTH, data={"title": "x"})
    assert r.status_code == 422 and "file" in r.json()["detail"]
    r = wclient.post("/api/documents", headers={**AUTH, "Content-Type": "application/json"}, content=b"{}")
    assert 400 <= r.status_code < 500
    assert _corpus(wclient) == before


class _WatchedLock:
    """The service's write lock, recording every attempt to take it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.attempts = 0
        self.second_attempt = threading.Event()

    def __enter__(self) -> None:
        self.attempts += 1
        if self.attempts == 2:
            self.second_attempt.set()
        self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()


def test_reads_during_a_write_see_the_old_corpus_then_the_new(small: PolicyAssistant, wclient: TestClient,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A write is held just after Chroma committed it; reads still run and see only the old snapshot."""
    lock = _WatchedLock()
    monkeypatch.setattr(small, "_write_lock", lock)
    real_upsert = small.store.upsert
    committed, release = threading.Event(), threading.Event()

    def held_upsert(parsed):  # type: ignore[no-untyped-def]
        changed = real_upsert(parsed)
        committed.set()
        assert release.wait(120), "test never released the write"
        return changed

    monkeypatch.setattr(small.store, "upsert", held_upsert)
    old_docs, old_clauses = _corpus(wclient)
    results: dict[str, int] = {}

    def upload() -> None:
        r = wclient.post("/api/documents", headers=AUTH, data={"doc_id": "amber-tunnel"},
                         files={"file": ("amber.txt", NEW_LAW.encode(), "text/plain")})
        results["upload"] = r.status_code

    def delete() -> None:
        results["delete"] = wclient.delete("/api/documents/test-lighthouse", headers=AUTH).status_code

    writer = threading.Thread(target=upload)
    writer.start()
    try:
        assert committed.wait(120)
        # The write is in progress (lock held, Chroma already changed): reads run and see the old corpus.
        assert lock.locked()
        assert _corpus(wclient) == (old_docs, old_clauses)
        hits = wclient.post("/api/search", json={"query": "琥珀隧道夜间限速", "k": 10}).json()["hits"]
        assert hits and all(h["doc_id"] != "amber-tunnel" for h in hits)
        assert wclient.get("/api/clauses/amber-tunnel/第二条").status_code == 404
        assert wclient.post("/api/ask", json={"question": "鹦鹉螺码头的泊位由谁调度？"}).status_code == 200
        # A second write waits for the first.
        deleter = threading.Thread(target=delete)
        deleter.start()
        assert lock.second_attempt.wait(120)
        assert "test-lighthouse" in dict(_corpus(wclient)[0])
    finally:
        release.set()
        writer.join(120)
    deleter.join(120)
    assert results == {"upload": 201, "delete": 200}
    docs, clauses = _corpus(wclient)
    assert dict(docs) == {"test-port": dict(old_docs)["test-port"], "amber-tunnel": 4}
    assert clauses == sum(n for _, n in docs)
    hits = wclient.post("/api/search", json={"query": "琥珀隧道夜间限速", "k": 1}).json()["hits"]
    assert hits[0]["clause_id"] == "amber-tunnel/第二条"


@pytest.mark.parametrize(("filename", "doc_id"), [
    ("amber.txt", ".."), ("amber.txt", "."), ("amber.txt", "a/b"), ("amber.txt", "a\x00b"), ("amber.txt", ".hidden"),
    ("..", None), ("...txt", None),
])
def test_unsafe_document_ids_and_file_names_are_refused(wclient: TestClient, filename: str, doc_id: str | None) -> None:
    before = _corpus(wclient)
    data = {"doc_id": doc_id} if doc_id is not None else {}
    r = wclient.post("/api/documents", headers=AUTH, files={"file": (filename, NEW_LAW.encode(), "text/plain")},
                     data=data)
    assert r.status_code in (400, 415, 422), r.text
    assert _corpus(wclient) == before


def test_a_path_in_the_file_name_is_dropped(wclient: TestClient) -> None:
    r = wclient.post("/api/documents", headers=AUTH,
                     files={"file": ("..\\..\\etc\\amber law.txt", NEW_LAW.encode(), "text/plain")})
    assert r.status_code == 201, r.text
    assert r.json()["doc_id"] == "amber-law"
