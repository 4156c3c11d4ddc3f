"""The 评测 tab's work (ui/evaluation.py) on a tiny dataset, and the chat page's feedback/export helpers.

The browser tests (tests/test_browser.py) drive the same widgets in Chromium.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from assistant.service import PolicyAssistant
from eval.dataset import DEV, load_dataset
from ui import evaluation as ev

TINY = [
    {"id": "t1", "question": "市服开办设在哪里？", "gold_quotes": ["设在市商务局"], "answer_keywords": ["市商务局"],
     "type": "fact", "lang": "zh", "register": "colloquial"},
    {"id": "t2", "question": "厦门的人才补贴标准是多少？", "must_refuse": True, "type": "refuse", "lang": "zh",
     "refuse_kind": "other-city"},
    {"id": "t3", "question": "What does the Data Security Law say about exporting important data?",
     "gold_clause_ids": ["data-security-law/第三十一条"], "type": "law", "lang": "en", "register": "english"},
]


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def test_load_items_sources(tmp_path: Path) -> None:
    items, name = ev.load_items("dev")
    assert name == "eval/datasets/dev.jsonl" and len(items) == len(load_dataset(DEV))
    f = tmp_path / "mine.jsonl"
    f.write_text(_jsonl(TINY), encoding="utf-8")
    items, name = ev.load_items("upload", str(f))
    assert name == "mine.jsonl" and [i.id for i in items] == ["t1", "t2", "t3"]
    items, name = ev.load_items("paste", text=_jsonl(TINY[:2]))
    assert name == "粘贴的数据" and len(items) == 2
    with pytest.raises(ev.DatasetProblem):
        ev.load_items("upload", None)
    with pytest.raises(ev.DatasetProblem):
        ev.load_items("paste", text="  ")


def test_every_bad_line_is_reported_with_its_number(tmp_path: Path) -> None:
    bad = [TINY[0], {"id": "x", "question": "没有标准答案"}, TINY[1], {"id": "t1", "question": "重复", "must_refuse": True}]
    text = _jsonl(bad) + "{not json\n" + json.dumps({"id": "y", "question": "q", "must_refuse": True, "lang": "fr"}) + "\n"
    f = tmp_path / "bad.jsonl"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(ev.DatasetProblem) as info:
        ev.load_items("upload", str(f))
    errors = info.value.errors
    assert errors[0].startswith("bad.jsonl:2: ") and "gold" in errors[0]  # eval's loader's own first message
    assert any(e.startswith("bad.jsonl:4: duplicate id 't1'") for e in errors)
    assert any(e.startswith("bad.jsonl:5: not JSON") for e in errors)
    assert any(e.startswith("bad.jsonl:6: lang") for e in errors)
    assert not any(":1:" in e or ":3:" in e for e in errors)  # good lines are not blamed
    assert str(tmp_path) not in " ".join(errors)  # the server's temp path is not shown
    with pytest.raises(ev.DatasetProblem) as pasted:
        ev.load_items("paste", text=text)
    assert pasted.value.errors[0].startswith("粘贴的数据:2: ")


@pytest.fixture()
def assistant(built_assistant: PolicyAssistant, tmp_path: Path) -> PolicyAssistant:
    """The shared index, with a data dir of the test's own for runs and feedback."""
    clone = copy.copy(built_assistant)
    clone.settings = built_assistant.settings.model_copy(update={"data_dir": tmp_path})
    return clone


@pytest.mark.model
def test_run_report_downloads_and_compare(built_assistant: PolicyAssistant, tmp_path: Path) -> None:
    items = load_dataset(_write(tmp_path / "tiny.jsonl", TINY))
    assert ev.gold_problems(built_assistant, items) == []
    seen: list[tuple[int, int]] = []
    root = tmp_path / "runs"
    run = ev.run_dataset(built_assistant, items, "tiny.jsonl", root, progress=lambda n, t: seen.append((n, t)),
                         charts=True)
    assert seen == [(1, 3), (2, 3), (3, 3)]
    report = run.report
    assert report["dataset"] == "tiny.jsonl" and report["metrics"]["n"] == 3
    assert report["config"]["backend"] == "in-process" and report["support_agreement"]["n"] > 0
    assert run.folder.parent == root and run.md_path.read_text(encoding="utf-8").startswith("# Evaluation report")
    assert json.loads(run.json_path.read_text(encoding="utf-8"))["metrics"] == report["metrics"]
    assert {p.name for p in run.charts} == {"metrics_by_type.png", "first_gold_rank.png"}
    head = dict(ev.headline_rows(report))
    assert head["n"] == "3" and head["refusal_recall"] == "1.000"  # t2 (another city) is refused
    headers, rows = ev.breakdown_rows(report, "by_lang")
    assert headers[0] == "group" and sorted(r[0] for r in rows) == ["en", "zh"]
    assert sorted(r[0] for r in ev.breakdown_rows(report, "by_register")[1]) == ["-", "colloquial", "english"]
    html = ev.failures_html(report)
    failed = [r for r in report["results"] if r["failures"]]
    if failed:  # each failed question shows its answer and its gold
        assert failed[0]["id"] in html and "标准答案" in html
    # a second run of one question, then the two side by side
    run2 = ev.run_dataset(built_assistant, items[:1], "tiny.jsonl", root, charts=False)
    assert run2.folder != run.folder
    runs = ev.list_runs(root)
    assert len(runs) == 2 and all("题" in label for label, _ in runs)
    md = ev.compare_runs(run.folder, run2.folder)
    assert md.startswith(f"# {run.folder.name} vs {run2.folder.name}") and "Questions in only one report: t2, t3" in md


def test_failures_html_shows_answer_and_gold() -> None:
    report = {"results": [
        {"id": "q9", "type": "fact", "lang": "zh", "question": "问<b>", "failures": ["refusal: refused"],
         "must_refuse": False, "gold_units": ["quote:设在市商务局", "id:fz-plan/五/（一）"], "citations": [],
         "refused": True, "answer": "现有条款中没有找到依据。"},
        {"id": "ok", "type": "fact", "lang": "zh", "question": "好", "failures": []}]}
    html = ev.failures_html(report)
    assert "q9" in html and "ok</b>" not in html
    assert "原文 设在市商务局" in html and "条款 fz-plan/五/（一）" in html and "现有条款中没有找到依据" in html
    assert "问&lt;b&gt;" in html  # escaped
    assert "没有失败" in ev.failures_html({"results": []})


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text(_jsonl(rows), encoding="utf-8")
    return path


@pytest.mark.model
def test_page_has_the_tabs_and_answer_tools(assistant: PolicyAssistant) -> None:
    from ui.app import build_ui

    demo = build_ui(assistant)
    config = demo.get_config_file()
    labels = {c.get("props", {}).get("label") for c in config["components"]}
    ids = {c.get("props", {}).get("elem_id") for c in config["components"]}
    assert "评测" in labels and "问答" in labels
    assert {"pa-fb-up", "pa-fb-down", "pa-fb-comment", "pa-dl-md", "pa-dl-docx", "pa-cites", "pa-eval-run",
            "pa-eval-source", "pa-eval-file", "pa-eval-text", "pa-eval-compare", "pa-eval-dl-md"} <= ids


@pytest.mark.model
def test_feedback_and_exports_of_the_last_answer(assistant: PolicyAssistant) -> None:
    from docx import Document

    from ui.app import official_citations_text, save_feedback, write_exports
    from ui.feedback import FeedbackStore

    answer = assistant.ask("市服开办设在哪里？")
    last = {"question": "市服开办设在哪里？", "history": [["上一问", "上一答"]], "answer": answer}
    text = official_citations_text(answer)
    assert text.splitlines()[0] == "《福州市服务业扩大开放综合试点工作实施方案（征求意见稿）》第五部分第（一）项"
    md, docx = write_exports(last)
    assert md.suffix == ".md" and "第五部分第（一）项" in md.read_text(encoding="utf-8")
    assert any("第五部分第（一）项" in p.text for p in Document(str(docx)).paragraphs)
    assert save_feedback(assistant, "up", "", None).startswith("还没有")
    assert save_feedback(assistant, "down", "x" * 3000, last).startswith("❌")
    assert save_feedback(assistant, "up", " 很好 ", last).startswith("✅")
    rows = FeedbackStore.for_settings(assistant.settings).all()
    assert len(rows) == 1 and rows[0].comment == "很好" and rows[0].history == [["上一问", "上一答"]]
    assert rows[0].citations[0]["clause_id"] == "fz-plan/五/（一）" and rows[0].refused is False


# ------------------------------------------------------------------ in Chromium (Playwright)
@pytest.fixture(scope="module")
def chromium():  # type: ignore[no-untyped-def]
    import os
    import shutil

    path = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    exe = path if Path(path).exists() else shutil.which("chromium")
    if not exe:
        pytest.fail(f"chromium not found at {path}: apt-get install -y chromium (make test does this)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=["--headless", "--no-sandbox", "--disable-gpu",
                                                         "--no-first-run", "--disable-dev-shm-usage"])
        yield b
        b.close()


def _shot(page, name: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A screenshot into $SCREENSHOT_DIR (docs/ when refreshing the README's pictures), else the temp folder."""
    import os

    folder = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name), full_page=True)
    assert (folder / name).stat().st_size > 10_000


@pytest.mark.browser
@pytest.mark.model
def test_browser_feedback_export_and_eval_tab(assistant: PolicyAssistant, chromium, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from docx import Document
    from servers import serve

    from ui.feedback import FeedbackStore
    from ui.server import create_app

    with serve(create_app(assistant)) as url:
        page = chromium.new_page(viewport={"width": 1366, "height": 900}, locale="zh-CN")
        page.goto(url + "/", wait_until="domcontentloaded")
        box = page.locator("#pa-question textarea")
        box.wait_for(timeout=90_000)
        assert page.locator("#pa-dl-md").is_disabled()  # nothing to export yet
        box.fill("市服开办设在哪里？")
        box.press("Enter")
        page.locator("#pa-chat .pa-answer:not(.pa-streaming)").last.wait_for(timeout=90_000)
        # citations in official form, ready to copy
        cites = page.locator("#pa-cites textarea")
        page.wait_for_function("() => document.querySelector('#pa-cites textarea').value.includes('第五部分')",
                               timeout=90_000)
        assert cites.input_value().splitlines()[0] == \
            "《福州市服务业扩大开放综合试点工作实施方案（征求意见稿）》第五部分第（一）项"
        # downloads of the last answer
        page.locator("#pa-dl-md:not([disabled])").wait_for(timeout=90_000)
        with page.expect_download() as md_dl:
            page.locator("#pa-dl-md").click()
        md = Path(md_dl.value.path()).read_text(encoding="utf-8")
        assert md_dl.value.suggested_filename.endswith(".md") and "第五部分第（一）项" in md and "设在市商务局" in md
        with page.expect_download() as docx_dl:
            page.locator("#pa-dl-docx").click()
        assert docx_dl.value.suggested_filename.endswith(".docx")
        assert any("市商务局" in p.text for p in Document(docx_dl.value.path()).paragraphs)
        # feedback with a comment
        page.locator("#pa-fb-comment textarea").fill("回答准确")
        page.locator("#pa-fb-up").click()
        page.locator("#pa-fb-status").get_by_text("已记录").wait_for(timeout=90_000)
        assert page.locator("#pa-fb-comment textarea").input_value() == ""
        _shot(page, "chat-feedback-export.png", tmp_path)
        page.locator("#pa-fb-down").click()
        page.locator("#pa-fb-status").get_by_text("第 2 条反馈").wait_for(timeout=90_000)
        # the 👍/👎 icons under each answer in the chat, with the comment box
        page.locator("#pa-fb-comment textarea").fill("图标评价")
        page.locator("#pa-chat button[aria-label='赞'], #pa-chat button[aria-label='Like']").last.click()  # zh-CN: 赞
        page.locator("#pa-fb-status").get_by_text("第 3 条反馈").wait_for(timeout=90_000)
        rows = FeedbackStore.for_settings(assistant.settings).all()
        assert [(r.verdict, r.comment) for r in rows] == [("up", "回答准确"), ("down", ""), ("up", "图标评价")]
        assert rows[2].answer == rows[0].answer
        assert rows[0].question == "市服开办设在哪里？" and rows[0].citations[0]["clause_id"] == "fz-plan/五/（一）"

        # 评测: a pasted dataset with a bad line is refused with its line number
        page.get_by_role("tab", name="评测").click()
        page.get_by_label("粘贴 JSONL").check()
        text = page.locator("#pa-eval-text textarea")
        text.wait_for(timeout=90_000)
        text.fill(_jsonl(TINY) + '{"id": "bad", "question": "没有答案"}\n')
        page.locator("#pa-eval-check").click()
        status = page.locator("#pa-eval-status")
        status.get_by_text("粘贴的数据:4:").wait_for(timeout=90_000)
        text.fill(_jsonl(TINY))
        page.locator("#pa-eval-check").click()
        status.get_by_text("3 题").wait_for(timeout=90_000)
        page.locator("#pa-eval-run").click()
        status.get_by_text("完成").wait_for(timeout=180_000)
        assert "refusal_recall" in page.locator("#pa-eval-headline").inner_text()
        assert "english" in page.locator("#pa-eval-by-register").inner_text()
        assert page.locator("#pa-eval-charts img").count() >= 1
        with page.expect_download() as rep:
            page.locator("#pa-eval-dl-json").click()
        assert json.loads(Path(rep.value.path()).read_text(encoding="utf-8"))["metrics"]["n"] == 3
        _shot(page, "eval-tab.png", tmp_path)
        # a second run of one question, then compare the two
        page.locator("#pa-eval-limit input").fill("1")
        page.locator("#pa-eval-run").click()
        status.get_by_text("1 题，").wait_for(timeout=180_000)
        runs = ev.list_runs(ev.runs_dir(assistant.settings))
        assert len(runs) == 2
        first_label = runs[1][0]
        page.locator("#pa-eval-a input").click()
        page.get_by_role("option", name=first_label).click()
        page.locator("#pa-eval-compare").click()
        page.locator("#pa-eval-comparison").get_by_text("Questions in only one report").wait_for(timeout=90_000)

        # 文件浏览: the plan's clauses as a table, filtered, downloaded as CSV
        page.get_by_role("tab", name="文件浏览").click()
        page.get_by_text("条款表：按部分或文字筛选").click()
        count = page.locator("#pa-table-count")
        count.get_by_text("114 条").wait_for(timeout=90_000)
        assert "第三部分第（一）项第3点" in page.locator("#pa-table").inner_text()
        q = page.locator("#pa-table-q textarea, #pa-table-q input").first
        q.fill("市商务局")
        q.press("Enter")
        count.get_by_text("1 条").wait_for(timeout=90_000)
        page.locator("#pa-table-csv:not([disabled])").wait_for(timeout=90_000)
        with page.expect_download() as table_dl:
            page.locator("#pa-table-csv").click()
        lines = Path(table_dl.value.path()).read_text(encoding="utf-8-sig").strip().splitlines()
        assert len(lines) == 2 and "fz-plan/五/（一）" in lines[1]
        _shot(page, "browse-clause-table.png", tmp_path)
        page.close()


def test_download_folders_are_pruned_after_an_hour(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import time

    import ui.app

    monkeypatch.setattr(ui.app, "_DOWNLOADS", tmp_path / "downloads")
    first = ui.app.download_folder()
    (first / "a.md").write_text("x", encoding="utf-8")
    recent = ui.app.download_folder()
    old = time.time() - ui.app._DOWNLOADS_KEEP_S - 60
    os.utime(first, (old, old))
    third = ui.app.download_folder()
    assert not first.exists() and recent.exists() and third.exists() and len({first, recent, third}) == 3
