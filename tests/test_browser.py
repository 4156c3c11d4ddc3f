"""The chat page in a real browser: Debian's chromium, headless, driven by Playwright (Python).

The test starts the real app (FastAPI + Gradio, uvicorn) on a free local port over the shared index,
asks a question, waits for the streamed answer, clicks a citation and checks the clause viewer shows
the clause text. It fails if the page tries to reach any host other than the local server.
Screenshot: ``$SCREENSHOT_PATH`` if set, else in the test's temp folder.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from servers import serve

from assistant.service import PolicyAssistant
from assistant.settings import Settings
from ui.server import create_app

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def server(built_assistant: PolicyAssistant) -> Iterator[str]:
    with serve(create_app(built_assistant)) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.fail(f"chromium not found at {CHROMIUM}: apt-get install -y chromium (.ci/run does this)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
                              args=CHROMIUM_ARGS)
        yield b
        b.close()


def _ask(page, question: str, n: int) -> None:  # type: ignore[no-untyped-def]
    """Ask and wait until the chat holds ``n`` finished replies."""
    box = page.locator("#pa-question textarea")
    box.fill(question)
    box.press("Enter")
    done = page.locator("#pa-chat .pa-answer:not(.pa-streaming), #pa-chat .pa-refusal")
    done.nth(n - 1).wait_for(timeout=90_000)


def test_ask_click_citation_and_see_the_clause(server: str, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1366, "height": 900}, locale="zh-CN")
    outside: list[str] = []
    local = server.rstrip("/")

    def watch(request) -> None:  # type: ignore[no-untyped-def]
        if not request.url.startswith((local, "data:", "blob:")):
            outside.append(request.url)

    page.on("request", watch)
    page.goto(local + "/", wait_until="domcontentloaded")
    # The empty chat offers example questions in Chinese and English.
    page.get_by_text("市服开办设在哪里？").first.wait_for(timeout=90_000)
    assert page.get_by_text("Can foreign doctors open clinics in Fuzhou?").count() >= 1

    box = page.locator("#pa-question textarea")
    box.fill("市服开办设在哪里？")
    box.press("Enter")
    answer = page.locator("#pa-chat .pa-answer:not(.pa-streaming)").last
    answer.wait_for(timeout=90_000)
    assert "市商务局" in answer.inner_text()

    marker = page.locator("#pa-chat .pa-answer a.pa-cite").first
    label = marker.inner_text()
    assert label.startswith("[") and label.endswith("]")
    marker.click()
    viewer = page.locator("#pa-viewer .pa-v-text")
    viewer.wait_for(state="visible", timeout=90_000)
    assert "设在市商务局" in viewer.inner_text()
    quote = parse_qs((marker.get_attribute("href") or "#").split("#", 1)[1]).get("q", [""])[0]
    marked = page.locator("#pa-viewer mark").first.inner_text()
    assert marked and marked in viewer.inner_text() and marked in quote
    head = page.locator("#pa-viewer .pa-v-doc").inner_text()
    assert "福州市服务业扩大开放综合试点工作实施方案" in head and "征求意见稿" in head
    assert "五、保障措施" in page.locator("#pa-viewer .pa-v-path").inner_text()
    assert page.locator("#pa-viewer .pa-v-nb").count() >= 1  # a neighbouring clause

    shot = Path(os.environ.get("SCREENSHOT_PATH") or tmp_path / "chat-with-citation.png")
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000

    # Close the viewer. A follow-up is understood with the conversation's history.
    page.keyboard.press("Escape")
    viewer.wait_for(state="hidden", timeout=10_000)
    page.locator("#pa-clear").click()
    page.locator("#pa-chat .pa-answer").wait_for(state="detached", timeout=90_000)
    _ask(page, "外国医生能在福州开诊所吗？", 1)
    _ask(page, "那境外医疗人员呢？", 2)
    understood = page.locator("#pa-chat .pa-understood").last
    assert "外国医生" in understood.inner_text()
    # An off-topic question is a refusal, styled apart, listing the nearest clauses as links.
    page.locator("#pa-clear").click()
    page.locator("#pa-chat .pa-answer, #pa-chat .pa-refusal").first.wait_for(state="detached", timeout=90_000)
    box.fill("福州明天天气怎么样，会下雨吗？")
    box.press("Enter")
    refusal = page.locator("#pa-chat .pa-refusal").last
    refusal.wait_for(timeout=90_000)
    assert "未找到可依据的条款" in refusal.inner_text()
    assert refusal.locator("a.pa-cite").count() >= 1
    refusal.locator("a.pa-cite").first.click()
    viewer.wait_for(state="visible", timeout=90_000)
    assert viewer.inner_text().strip()
    assert outside == [], f"the page reached outside the server: {outside}"
    page.close()


def test_document_browser_opens_a_clause(server: str, browser) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    page.goto(server + "/", wait_until="domcontentloaded")
    # An example question on the empty chat asks itself.
    page.locator("#pa-chat").get_by_text("外国医生能在福州开诊所吗？").first.click()
    answer = page.locator("#pa-chat .pa-answer:not(.pa-streaming)").first
    answer.wait_for(timeout=90_000)
    assert "诊所" in answer.inner_text()
    page.get_by_role("tab", name="文件浏览").click()
    plan = page.locator('#pa-browser details.pa-doc[data-doc="fz-plan"]')
    plan.wait_for(timeout=90_000)
    assert "征求意见稿" in plan.locator("summary").first.inner_text()
    plan.locator("summary").first.click()
    section = plan.locator("summary", has_text="三、重点工作").first
    section.click()
    plan.locator("summary", has_text="（一）支持电信服务及相关数字产业开放发展").first.click()
    plan.locator('a.pa-cite[data-clause="fz-plan/三/（一）/3"]').click()
    viewer = page.locator("#pa-viewer .pa-v-text")
    viewer.wait_for(state="visible", timeout=90_000)
    assert viewer.inner_text().strip() == "放宽增值电信业务外资准入。"
    old = page.locator('#pa-browser details.pa-doc[data-doc="cybersecurity-law"] summary').first
    assert "非最新修订" in old.inner_text()
    page.close()


def test_admin_tab_uploads_and_deletes_with_the_token(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    svc = PolicyAssistant(Settings(data_dir=tmp_path / "data", admin_token="ui-token", llm_provider="none"))
    svc.ingest_bytes("第一条 珊瑚灯塔每年检修一次。\n\n第二条 检修记录保存十年。\n".encode(), "coral.txt")
    doc = tmp_path / "amber.txt"
    doc.write_text("第一条 琥珀隧道夜间限速每小时四十公里。\n\n第二条 隧道养护由养护中心负责。\n", encoding="utf-8")
    with serve(create_app(svc)) as url:
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.goto(url + "/", wait_until="domcontentloaded")
        page.get_by_role("tab", name="管理").click()
        page.locator("#pa-file input[type=file]").set_input_files(str(doc))
        page.locator("#pa-file").get_by_text("amber.txt").first.wait_for(timeout=90_000)
        page.locator("#pa-f-title textarea, #pa-f-title input").first.fill("琥珀隧道通行规定")
        result = page.locator("#pa-admin-result")
        page.locator("#pa-token input").fill("wrong")
        page.locator("#pa-upload").click()
        result.get_by_text("管理员令牌错误").wait_for(timeout=90_000)
        assert [d.meta.doc_id for d in svc.documents()] == ["coral"]
        page.locator("#pa-token input").fill("ui-token")
        page.locator("#pa-upload").click()
        result.get_by_text("amber：2 个条款").wait_for(timeout=90_000)
        assert sorted(d.meta.doc_id for d in svc.documents()) == ["amber", "coral"]
        page.get_by_role("tab", name="文件浏览").click()
        page.locator('#pa-browser details.pa-doc[data-doc="amber"]').wait_for(timeout=90_000)
        assert "琥珀隧道通行规定" in page.locator('#pa-browser details.pa-doc[data-doc="amber"] summary').inner_text()
        # an uploaded document's clause says where it came from in the clause viewer (issue 11)
        page.evaluate("window.paOpenClause('amber/第一条', '')")
        warning = page.locator("#pa-viewer .pa-v-warning")
        warning.wait_for(state="visible", timeout=90_000)
        assert "非随附语料" in warning.inner_text()
        assert "琥珀隧道夜间限速" in page.locator("#pa-viewer .pa-v-text").inner_text()
        page.locator("#pa-viewer .pa-v-close").click()
        page.get_by_role("tab", name="管理").click()
        page.locator("#pa-victim input").click()
        page.locator("#pa-victim input").fill("amber")
        option = page.get_by_role("option", name="琥珀隧道通行规定（amber）")
        option.wait_for(timeout=90_000)
        option.click()
        expect(page.locator("#pa-victim input")).to_have_value(re.compile("amber"), timeout=90_000)
        page.locator("#pa-delete").click()
        result.get_by_text("已删除 amber").wait_for(timeout=90_000)
        assert [d.meta.doc_id for d in svc.documents()] == ["coral"]
        page.close()
