"""The Gradio chat page: streamed multi-turn answers, a clause viewer for every citation, feedback (👍/👎 and a
comment) and export (.md/.docx, citations in official form) of the last answer, a document browser, an
evaluation tab (评测: run a dataset, see and download the report, compare runs) and an admin tab.

It is mounted at ``/`` by :func:`ui.server.create_app`; the clause viewer reads ``/api/clauses/{id}``
from the same server. Offline: system fonts only, no CDN.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from assistant.service import InputError, LoaderError, NotFoundError, PolicyAssistant  # noqa: E402
from ui.auth import admin_tokens, token_problem  # noqa: E402
from ui.clause_table import HEADERS as TABLE_HEADERS  # noqa: E402
from ui.clause_table import clause_rows, table_csv, table_xlsx  # noqa: E402
from ui.clause_table import sections as clause_sections  # noqa: E402
from ui.export import answer_to_docx, answer_to_markdown, export_filename  # noqa: E402
from ui.feedback import MAX_COMMENT_CHARS, FeedbackStore  # noqa: E402
from ui.official import citation_official  # noqa: E402
from ui.render import answer_html, browser_html, error_html, esc, streaming_html  # noqa: E402
from ui.uploads import UploadRejected, check_upload  # noqa: E402

EXAMPLES = [
    "市服开办设在哪里？",
    "外国医生能在福州开诊所吗？",
    "数据出境需要做安全评估吗？",
    "外商投资增值电信业务有什么放开措施？",
    "Can foreign doctors open clinics in Fuzhou?",
    "What does the Data Security Law say about exporting important data?",
]

SYSTEM_FONTS = ["PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", "Noto Sans CJK SC", "Source Han Sans SC",
                "WenQuanYi Micro Hei", "system-ui", "-apple-system", "Segoe UI", "Helvetica Neue", "Arial",
                "sans-serif"]
MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "DejaVu Sans Mono", "monospace"]


def ui_theme() -> gr.themes.Base:
    """The default theme with system fonts only (no web-font download)."""
    return gr.themes.Default(primary_hue="red", secondary_hue="slate", font=SYSTEM_FONTS, font_mono=MONO_FONTS,
                             text_size="lg")


UI_CSS = """
.gradio-container { max-width: 1180px !important; margin: 0 auto; }
#pa-header h1 { font-size: 1.5rem; margin: 0.2rem 0; }
#pa-header p { margin: 0; color: var(--body-text-color-subdued); }
.pa-answer { line-height: 1.75; }
.pa-cite { color: #b3261e !important; font-weight: 600; text-decoration: none !important; cursor: pointer;
           border-bottom: 1px dashed #b3261e; white-space: nowrap; }
.pa-cite:hover { background: #fde7e5; }
.pa-citations { margin-top: .6rem; padding-top: .4rem; border-top: 1px solid var(--border-color-primary);
                font-size: .92em; }
.pa-cit-title { font-weight: 600; margin: .3rem 0; color: var(--body-text-color-subdued); }
.pa-citations ol, .pa-nearest { margin: 0; padding-left: 1.4rem; }
.pa-src { color: var(--body-text-color-subdued); }
.pa-understood { font-size: .88em; color: var(--body-text-color-subdued); margin-bottom: .3rem; }
.pa-notice { margin-top: .5rem; font-size: .9em; color: #8a5a00; }
.pa-refusal { border-left: 4px solid #c77700; background: #fff6e5; padding: .6rem .8rem; border-radius: 6px;
              color: #3d2b00; }
.pa-refusal-title { font-weight: 700; color: #8a5a00; margin-bottom: .3rem; }
.pa-refusal .pa-cite { color: #8a5a00 !important; border-bottom-color: #8a5a00; }
.pa-snippet { color: var(--body-text-color-subdued); font-size: .9em; }
.pa-error { color: #b3261e; font-weight: 600; }
.pa-caret { animation: pa-blink 1s steps(1) infinite; }
@keyframes pa-blink { 50% { opacity: 0; } }
.pa-browser h3 { margin: .8rem 0 .3rem; }
.pa-doc { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: .4rem .7rem; margin: .35rem 0; }
.pa-doc > summary { cursor: pointer; }
.pa-doc-title { font-weight: 600; }
.pa-doc-sub { font-size: .85em; color: var(--body-text-color-subdued); margin-left: 1.2rem; }
.pa-count { font-size: .85em; color: var(--body-text-color-subdued); }
.pa-tree, .pa-tree ul { list-style: none; padding-left: 1.1rem; margin: .1rem 0; }
.pa-tree summary { cursor: pointer; }
.pa-leaf { margin: .1rem 0; }
.pa-badge { font-size: .78em; padding: .05rem .45rem; border-radius: 999px; margin-left: .3rem; white-space: nowrap; }
.pa-badge-draft { background: #fff1d6; color: #8a5a00; }
.pa-badge-old { background: #fde7e5; color: #9b1c13; }
.pa-badge-ok { background: #e3f4e8; color: #1d6b34; }
.pa-badge-na { background: #eceff1; color: #455a64; }
.pa-badge-upload { background: #e8eaf6; color: #283593; margin-left: 0; margin-right: .3rem; }
#pa-viewer .pa-v-warning { background: #fff8e1; border-left: 4px solid #f9a825; padding: .45rem .7rem;
  margin: .2rem 0 .6rem; border-radius: 4px; color: #5d4300; font-size: .93rem; }
#pa-viewer .pa-v-warning ul { margin: .3rem 0 0 1.1rem; padding: 0; }
.pa-eval-fail { border: 1px solid var(--border-color-primary); border-radius: 6px; padding: .3rem .6rem; margin: .3rem 0; }
.pa-eval-fail summary { cursor: pointer; }
.pa-eval-answer { white-space: pre-wrap; font-size: .92em; background: var(--background-fill-secondary);
                  padding: .3rem .5rem; border-radius: 4px; }
#pa-viewer-backdrop { position: fixed; inset: 0; background: rgba(0,0,0,.35); z-index: 1000; display: none; }
#pa-viewer { position: fixed; top: 6vh; left: 50%; transform: translateX(-50%); width: min(760px, 94vw);
             max-height: 86vh; overflow: auto; background: #fff; color: #1f1f1f; z-index: 1001; display: none;
             border-radius: 10px; box-shadow: 0 10px 40px rgba(0,0,0,.3); padding: 1rem 1.2rem; font-size: 1rem;
             line-height: 1.75; }
#pa-viewer .pa-v-head { display: flex; justify-content: space-between; align-items: flex-start; gap: 1rem; }
#pa-viewer .pa-v-doc { font-weight: 700; font-size: 1.08rem; }
#pa-viewer .pa-v-path { color: #555; margin: .2rem 0 .6rem; }
#pa-viewer .pa-v-text { font-size: 1.05rem; padding: .6rem .8rem; background: #fafafa; border-radius: 6px;
                        border-left: 4px solid #b3261e; white-space: pre-wrap; }
#pa-viewer mark { background: #ffe58a; padding: 0 .1em; }
#pa-viewer .pa-v-nb { color: #555; font-size: .93rem; margin: .5rem 0; }
#pa-viewer .pa-v-id { color: #888; font-size: .8rem; margin-top: .6rem; font-family: monospace; }
#pa-viewer .pa-v-close { border: none; background: #eee; border-radius: 6px; font-size: 1.1rem; cursor: pointer;
                         padding: .1rem .6rem; }
"""

# Opens the clause viewer for any link with data-clause or href="#clause=…" anywhere on the page.
UI_JS = r"""
() => {
  if (window.__paViewer) return;
  window.__paViewer = true;
  const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;",
    '"': "&quot;", "'": "&#39;"}[c]));
  const backdrop = document.createElement("div");
  backdrop.id = "pa-viewer-backdrop";
  const box = document.createElement("div");
  box.id = "pa-viewer";
  box.setAttribute("role", "dialog");
  box.setAttribute("aria-modal", "true");
  document.body.appendChild(backdrop);
  document.body.appendChild(box);
  const close = () => { box.style.display = "none"; backdrop.style.display = "none"; };
  backdrop.addEventListener("click", close);
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") close(); });
  const base = window.location.href.split("#")[0].split("?")[0].replace(/[^/]*$/, "");
  const highlight = (text, quote) => {
    const ranges = [];
    for (const frag of String(quote || "").split(/…|\.\.\.|\n/)) {
      const f = frag.trim();
      if (f.length < 2) continue;
      const i = text.indexOf(f);
      if (i >= 0) ranges.push([i, i + f.length]);
    }
    ranges.sort((a, b) => a[0] - b[0]);
    let out = "", pos = 0;
    for (const [s, e] of ranges) {
      if (s < pos) continue;
      out += esc(text.slice(pos, s)) + "<mark>" + esc(text.slice(s, e)) + "</mark>";
      pos = e;
    }
    return out + esc(text.slice(pos));
  };
  const neighbour = (c, word) => c ? `<div class="pa-v-nb">${word}：<a class="pa-cite" href="#" data-clause="${esc(c.clause_id)}">[${esc(c.label)}]</a> ${esc(c.text.length > 120 ? c.text.slice(0, 119) + "…" : c.text)}</div>` : "";
  const open = async (id, quote) => {
    box.innerHTML = `<div class="pa-v-head"><div>正在加载 ${esc(id)} …</div><button class="pa-v-close" aria-label="关闭">×</button></div>`;
    box.style.display = "block"; backdrop.style.display = "block";
    box.querySelector(".pa-v-close").addEventListener("click", close);
    let c;
    try {
      const r = await fetch(base + "api/clauses/" + id.split("/").map(encodeURIComponent).join("/"));
      c = await r.json();
      if (!r.ok) throw new Error(c.detail || r.status);
    } catch (err) {
      box.querySelector(".pa-v-head div").textContent = "无法打开条款 " + id + "：" + err.message;
      return;
    }
    box.innerHTML = `<div class="pa-v-head"><div><div class="pa-v-doc">《${esc(c.doc_title)}》 <span class="pa-badge pa-badge-${/征求意见/.test(c.status) ? "draft" : /非最新/.test(c.status) ? "old" : c.status === "现行" ? "ok" : "na"}">${esc(c.status)}</span></div>
      <div class="pa-v-path">${esc(c.path)}${c.path && c.path.endsWith(c.label) ? "" : " · " + esc(c.label)}</div></div>
      <button class="pa-v-close" aria-label="关闭">×</button></div>
      ${c.warning_html || ""}
      ${neighbour(c.previous, "上一条")}
      <div class="pa-v-text" data-clause-id="${esc(c.clause_id)}">${highlight(c.text, quote)}</div>
      ${neighbour(c.next, "下一条")}
      <div class="pa-v-id">${esc(c.clause_id)}</div>`;
    box.querySelector(".pa-v-close").addEventListener("click", close);
    box.scrollTop = 0;
  };
  window.paOpenClause = open;
  document.addEventListener("click", (ev) => {
    const a = ev.target.closest ? ev.target.closest("a[data-clause], a[href^='#clause=']") : null;
    if (!a) return;
    ev.preventDefault();
    ev.stopPropagation();
    // The chat's sanitizer may drop data-* attributes; the href carries the same values.
    const href = a.getAttribute("href") || "";
    const p = new URLSearchParams(href.startsWith("#clause=") ? href.slice(1) : "");
    const id = a.getAttribute("data-clause") || p.get("clause");
    const quote = a.getAttribute("data-quote") || p.get("q") || "";
    if (id) open(id, quote);
  }, true);
}
"""

UI_HEAD = '<meta name="viewport" content="width=device-width, initial-scale=1">'

History = list[list[str]]


_TOKEN_MESSAGES = {"disabled": "写入已禁用：服务器未设置 ADMIN_TOKEN。", "missing": "请输入管理员令牌。",
                   "wrong": "管理员令牌错误。"}


def _check_token(assistant: PolicyAssistant, token: str | None) -> str | None:
    """An error message, or None when ``token`` is the admin token (the API's check, :mod:`ui.auth`)."""
    problem = token_problem(token, admin_tokens(assistant.settings))
    return None if problem is None else _TOKEN_MESSAGES[problem]


def _eval_available() -> bool:
    """The 评测 tab needs the eval package (imported lazily: eval never imports ui)."""
    from ui.evaluation import available

    return available()


def _example_text(evt: gr.SelectData) -> str:
    value = evt.value
    return str(value.get("text", "")) if isinstance(value, dict) else str(value or "")


def official_citations_text(answer: Any) -> str:
    """One line per cited clause (or nearest clause of a refusal) in the form used in official writing."""
    cites = list(answer.citations) or list(answer.nearest)
    return "\n".join(dict.fromkeys(citation_official(c) for c in cites))


_DOWNLOADS = Path(tempfile.gettempdir()) / "policy-assistant-downloads"
_DOWNLOADS_KEEP_S = 3600


def download_folder() -> Path:
    """A new folder for files offered for download; folders older than an hour are removed (Gradio has
    copied the files into its own cache by then)."""
    import shutil
    import time

    _DOWNLOADS.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - _DOWNLOADS_KEEP_S
    for old in _DOWNLOADS.iterdir():
        try:
            if old.is_dir() and old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            continue
    return Path(tempfile.mkdtemp(dir=_DOWNLOADS))


def write_exports(last: dict[str, Any]) -> tuple[Path, Path]:
    """The last answer as .md and .docx files in a new download folder (under the system temp dir, which
    Gradio serves from)."""
    folder = download_folder()
    answer, history = last["answer"], last["history"]
    md = folder / export_filename("md")
    md.write_text(answer_to_markdown(answer, history), encoding="utf-8")
    docx = folder / export_filename("docx")
    docx.write_bytes(answer_to_docx(answer, history))
    return md, docx


def save_feedback(assistant: PolicyAssistant, verdict: str, comment: str, last: dict[str, Any] | None) -> str:
    """Store a verdict on the last answer; the message to show."""
    if not last:
        return "还没有可以评价的回答。"
    comment = (comment or "").strip()
    if len(comment) > MAX_COMMENT_CHARS:
        return f"❌ 意见太长（{len(comment)} 字），上限 {MAX_COMMENT_CHARS} 字。"
    answer = last["answer"]
    fid = FeedbackStore.for_settings(assistant.settings).add(
        last["question"], answer.answer, answer.citations, verdict, comment, last["history"], refused=answer.refused)
    return f"✅ 已记录{'👍' if verdict == 'up' else '👎'}（第 {fid} 条反馈），谢谢。"


_EVAL_INTRO = """用评测数据集检验检索、引用与拒答（与命令 `policy-assistant eval` 同一流程）。数据集为 JSONL，每行一个问题，
字段见 `eval/dataset.py`：`id`、`question`、`gold_quotes` 或 `gold_clause_ids`（可回答的问题至少一个）、`must_refuse`、
`type`、`lang`（zh/en）、`register`、`history`。开发集 118 题约需半分钟到数分钟（视机器而定）。"""


def _table(headers: list[str], rows: list[list[str]]) -> dict[str, Any]:
    return {"headers": headers, "data": rows or [["-"] * len(headers)]}


def build_eval_tab(assistant: PolicyAssistant) -> tuple[Any, list[Any]]:
    """The 评测 tab (inside a ``gr.Tabs``): pick or upload a dataset, run it with a progress bar, read and
    download the report, compare two runs. The work is :mod:`ui.evaluation` (eval's runner and report)."""
    from ui import evaluation as ev

    root = ev.runs_dir(assistant.settings)
    upload_label = "上传 JSONL 文件" + ("" if assistant.settings.admin_token else "（需服务器设置 ADMIN_TOKEN）")

    def run_choices() -> list[tuple[str, str]]:
        return ev.list_runs(root)

    def pick(source: str) -> tuple[Any, Any]:
        return gr.update(visible=source == "upload"), gr.update(visible=source == "paste")

    def items_of(source: str, file: str | None, text: str, limit: float | None) -> tuple[list[Any], str]:
        items, name = ev.load_items(source, file, text)
        n = int(limit or 0)
        return (items[:n] if n > 0 else items), name

    def problems_md(problem: ev.DatasetProblem) -> str:
        lines = "\n".join(f"- `{e}`" for e in problem.errors)
        more = f"\n\n（只列出前 {ev.MAX_ERRORS} 个）" if len(problem.errors) >= ev.MAX_ERRORS else ""
        return f"❌ 数据集有误（行号从 1 开始）：\n\n{lines}{more}"

    def check(source: str, file: str | None, text: str, limit: float | None) -> str:
        try:
            items, name = items_of(source, file, text, limit)
        except ev.DatasetProblem as problem:
            return problems_md(problem)
        missing = ev.gold_problems(assistant, items)
        answerable = sum(1 for i in items if not i.must_refuse)
        out = f"✅ {name}：{len(items)} 题（{answerable} 题可回答，{len(items) - answerable} 题须拒答），格式正确。"
        if missing:
            out += f"\n\n⚠️ {len(missing)} 个标准答案在语料中找不到（这些题无法得分）：\n\n" + \
                "\n".join(f"- `{m}`" for m in missing[:ev.MAX_ERRORS])
        return out

    def run(source: str, file: str | None, text: str, limit: float | None,
            progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
        keep = (gr.update(),) * 9
        try:
            items, name = items_of(source, file, text, limit)
        except ev.DatasetProblem as problem:
            return (problems_md(problem), *keep)
        progress((0, len(items)), desc="评测中")
        try:
            result = ev.run_dataset(assistant, items, name, root,
                                    progress=lambda n, total: progress((n, total), desc="评测中", unit="题"))
        except Exception as exc:  # noqa: BLE001 - a failed run is a message on the page, not a dead tab
            return (f"❌ 评测失败：{type(exc).__name__}: {exc}", *keep)
        report = result.report
        m = report["metrics"]
        status = (f"✅ 完成：{name}，{m['n']} 题，用时 {report['config'].get('wall_time_s')} 秒；"
                  f"{sum(1 for r in report['results'] if r['failures'])} 题未通过。结果保存在数据目录的 `eval-runs/{result.folder.name}`。")
        if report.get("gold_problems"):
            status += f"\n\n⚠️ {len(report['gold_problems'])} 个标准答案在语料中找不到。"
        choices = run_choices()
        return (status, _table(["metric", "value"], ev.headline_rows(report)),
                _table(*ev.breakdown_rows(report, "by_type")), _table(*ev.breakdown_rows(report, "by_register")),
                _table(*ev.breakdown_rows(report, "by_lang")), [str(c) for c in result.charts],
                ev.failures_html(report), gr.update(value=str(result.md_path), interactive=True),
                gr.update(value=str(result.json_path), interactive=True),
                gr.update(choices=choices, value=str(result.folder)))

    def compare(a: str | None, b: str | None) -> str:
        if not a or not b:
            return "请选择两次运行。"
        try:
            return ev.compare_runs(a, b)
        except (OSError, ValueError, KeyError) as exc:
            return f"❌ 无法读取报告：{exc}"

    with gr.Tab("评测", id="eval"):
        gr.Markdown(_EVAL_INTRO)
        with gr.Row():
            source = gr.Radio([("开发集 dev.jsonl（118 题）", "dev"), (upload_label, "upload"), ("粘贴 JSONL", "paste")],
                              value="dev", label="数据集", elem_id="pa-eval-source", scale=3)
            limit = gr.Number(label="只运行前 N 题（0 = 全部）", value=0, precision=0, minimum=0,
                              elem_id="pa-eval-limit", scale=1)
        file = gr.File(label="JSONL 数据集", file_types=[".jsonl"], type="filepath", visible=False,
                       elem_id="pa-eval-file")
        text = gr.Textbox(label="JSONL（每行一个问题）", lines=6, visible=False, elem_id="pa-eval-text",
                          max_length=assistant.settings.max_upload_bytes,
                          placeholder='{"id": "q1", "question": "市服开办设在哪里？", "gold_quotes": ["设在市商务局"]}')
        with gr.Row():
            check_btn = gr.Button("校验数据集", elem_id="pa-eval-check")
            run_btn = gr.Button("运行评测", variant="primary", elem_id="pa-eval-run")
        status = gr.Markdown(elem_id="pa-eval-status")
        headline = gr.Dataframe(label="总体指标", interactive=False, elem_id="pa-eval-headline")
        with gr.Row():
            by_type = gr.Dataframe(label="按题型", interactive=False, elem_id="pa-eval-by-type")
            by_register = gr.Dataframe(label="按语体", interactive=False, elem_id="pa-eval-by-register")
        by_lang = gr.Dataframe(label="按语言", interactive=False, elem_id="pa-eval-by-lang")
        charts = gr.Gallery(label="图表", columns=2, height="auto", object_fit="contain", elem_id="pa-eval-charts")
        with gr.Row():
            dl_md = gr.DownloadButton("下载 report.md", interactive=False, elem_id="pa-eval-dl-md")
            dl_json = gr.DownloadButton("下载 report.json", interactive=False, elem_id="pa-eval-dl-json")
        gr.Markdown("#### 未通过的问题（原因、回答与标准答案）")
        failed = gr.HTML(elem_id="pa-eval-failures")
        gr.Markdown("#### 对比两次运行")
        with gr.Row():
            run_a = gr.Dropdown(label="运行 A", choices=run_choices(), elem_id="pa-eval-a")
            run_b = gr.Dropdown(label="运行 B", choices=run_choices(), elem_id="pa-eval-b")
            compare_btn = gr.Button("对比", elem_id="pa-eval-compare")
        comparison = gr.Markdown(elem_id="pa-eval-comparison")

    source.change(pick, source, [file, text], api_visibility="private")
    inputs = [source, file, text, limit]
    check_btn.click(check, inputs, status, api_visibility="private")
    run_btn.click(run, inputs, [status, headline, by_type, by_register, by_lang, charts, failed, dl_md, dl_json, run_b],
                  api_visibility="private", concurrency_limit=1).then(
        lambda: gr.update(choices=run_choices()), None, run_a, api_visibility="private")
    compare_btn.click(compare, [run_a, run_b], comparison, api_visibility="private")
    return (lambda: (gr.update(choices=run_choices()), gr.update(choices=run_choices()))), [run_a, run_b]


def build_ui(assistant: PolicyAssistant) -> gr.Blocks:
    """The chat page's Blocks; the caller supplies theme/css/js when mounting or launching."""

    def browser() -> str:
        docs = []
        for info in assistant.documents():
            try:
                docs.append(assistant.document(info.meta.doc_id))
            except NotFoundError:  # deleted meanwhile
                continue
        return browser_html(docs)

    def doc_choices() -> list[tuple[str, str]]:
        return [(f"{d.meta.title}（{d.meta.doc_id}）", d.meta.doc_id) for d in assistant.documents()]

    def respond(message: str, chat: list[dict[str, Any]], history: History, last: dict[str, Any] | None,
                answers: dict[int, Any]) -> Iterator[tuple[Any, ...]]:
        message = (message or "").strip()
        chat = list(chat or [])
        history = list(history or [])
        answers = dict(answers or {})
        if not message:
            yield gr.update(), chat, history, last, answers
            return
        before = [list(t) for t in history]
        last = None
        chat.append({"role": "user", "content": esc(message)})
        chat.append({"role": "assistant", "content": streaming_html("")})
        yield "", chat, history, last, answers
        text = ""
        try:
            for event in assistant.ask_stream(message, [(q, a) for q, a in history]):
                if event["type"] == "token":
                    text += event["text"]
                    chat[-1] = {"role": "assistant", "content": streaming_html(text)}
                    yield "", chat, history, last, answers
                elif event["type"] == "answer":
                    answer = event["answer"]
                    chat[-1] = {"role": "assistant", "content": answer_html(answer)}
                    history.append([message, answer.answer])
                    last = {"question": message, "history": before, "answer": answer}
                    answers[len(chat) - 1] = last
        except (InputError, ValueError) as exc:
            chat[-1] = {"role": "assistant", "content": error_html(f"无法回答：{exc}")}
        yield "", chat, history, last, answers

    def answer_tools(last: dict[str, Any] | None) -> tuple[Any, ...]:
        """Downloads, official citations and a fresh feedback line for the last answer."""
        if not last:
            return (gr.update(value=None, interactive=False), gr.update(value=None, interactive=False),
                    gr.update(value=""), "")
        md, docx = write_exports(last)
        return (gr.update(value=str(md), interactive=True), gr.update(value=str(docx), interactive=True),
                gr.update(value=official_citations_text(last["answer"])), "")

    def on_like(comment: str, answers: dict[int, Any], evt: gr.LikeData) -> tuple[Any, Any]:
        """👍/👎 on any answer in the chat (the icons under each message); the comment box goes with it."""
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        record = (answers or {}).get(int(index))
        if evt.liked not in (True, False) or record is None:  # a vote taken back, or not an answer
            return gr.update(), gr.update()
        message = save_feedback(assistant, "up" if evt.liked else "down", comment, record)
        return message, (gr.update(value="") if message.startswith("✅") else gr.update())

    def vote(verdict: str) -> Any:
        def handler(comment: str, last: dict[str, Any] | None) -> tuple[str, Any]:
            message = save_feedback(assistant, verdict, comment, last)
            return message, (gr.update(value="") if message.startswith("✅") else gr.update())
        return handler

    def default_doc() -> str | None:
        ids = [d for _, d in doc_choices()]
        return "fz-plan" if "fz-plan" in ids else (ids[0] if ids else None)

    def table(doc_id: str | None, section: str, query: str) -> tuple[Any, ...]:
        """The filtered clause table of one document, and its CSV/XLSX files."""
        off = gr.update(value=None, interactive=False)
        if not doc_id:
            return "", {"headers": list(TABLE_HEADERS), "data": []}, off, off
        try:
            rows = clause_rows(assistant, doc_id, query=query or "", section=section or "")
        except NotFoundError as exc:
            return f"❌ {exc}", {"headers": list(TABLE_HEADERS), "data": []}, off, off
        folder = download_folder()
        csv_path = folder / f"{doc_id}-clauses.csv"
        csv_path.write_bytes(table_csv(rows))
        xlsx_path = folder / f"{doc_id}-clauses.xlsx"
        xlsx_path.write_bytes(table_xlsx(rows, doc_id))
        return (f"{len(rows)} 条", {"headers": list(TABLE_HEADERS), "data": [r.cells() for r in rows]},
                gr.update(value=str(csv_path), interactive=True), gr.update(value=str(xlsx_path), interactive=True))

    def table_doc(doc_id: str | None) -> tuple[Any, ...]:
        try:
            secs = clause_sections(assistant, doc_id) if doc_id else []
        except NotFoundError:
            secs = []
        return (gr.update(choices=[("全部", ""), *((s, s) for s in secs)], value=""), *table(doc_id, "", ""))

    def upload(token: str, path: str | None, doc_id: str, title: str, status: str, issuer: str, date: str,
               wenhao: str) -> tuple[str, Any, Any]:
        error = _check_token(assistant, token)
        if error:
            return f"❌ {error}", gr.update(), gr.update()
        if not path:
            return "❌ 请选择要上传的文件。", gr.update(), gr.update()
        file = Path(path)
        try:
            name = check_upload(file.name, file.stat().st_size, assistant.settings)  # the API's check
        except UploadRejected as exc:
            return f"❌ 上传失败（语料未改变）：{exc}", gr.update(), gr.update()
        try:
            parsed, changed = assistant.ingest_bytes(file.read_bytes(), name, doc_id=doc_id, title=title,
                                                     status=status, issuer=issuer, date=date, wenhao=wenhao)
        except (InputError, LoaderError, ValueError) as exc:
            return f"❌ 上传失败（语料未改变）：{exc}", gr.update(), gr.update()
        state = "已添加/替换" if changed else "内容未变化"
        return (f"✅ {parsed.meta.doc_id}：{len(parsed.clauses)} 个条款（{state}）", browser(),
                gr.update(choices=doc_choices()))

    def delete(token: str, doc_id: str | None) -> tuple[str, Any, Any]:
        error = _check_token(assistant, token)
        if error:
            return f"❌ {error}", gr.update(), gr.update()
        if not doc_id:
            return "❌ 请选择要删除的文件。", gr.update(), gr.update()
        try:
            assistant.delete_document(doc_id)
        except NotFoundError as exc:
            return f"❌ {exc}", gr.update(), gr.update()
        return f"✅ 已删除 {doc_id}", browser(), gr.update(choices=doc_choices(), value=None)

    # Gradio's temp files (uploads through the 管理 tab, downloads) are deleted hourly once a day old.
    with gr.Blocks(title="福州服务业扩大开放政策助手", delete_cache=(3600, 86400)) as demo:
        gr.HTML('<div id="pa-header"><h1>福州服务业扩大开放 · 政策助手</h1>'
                '<p>依据《福州市服务业扩大开放综合试点工作实施方案（征求意见稿）》及相关国家法律法规等已入库文件作答；'
                '每个结论都注明出处，点击红色标注即可查看条款原文。找不到依据时会明确说明。'
                '（<a href="docs" target="_blank">REST API 文档</a>）</p></div>')
        with gr.Tabs():
            with gr.Tab("问答", id="chat"):
                chatbot = gr.Chatbot(
                    elem_id="pa-chat", height="62vh", show_label=False, feedback_options=("Like", "Dislike"),
                    placeholder="**请提问**：关于福州服务业扩大开放试点方案及相关法律法规的问题，中英文均可。",
                    examples=[{"text": q} for q in EXAMPLES], buttons=["copy"])
                history = gr.State([])
                with gr.Row():
                    box = gr.Textbox(elem_id="pa-question", show_label=False, scale=8, max_lines=4, autofocus=True,
                                     placeholder="输入问题，例如：外国医生能在福州开诊所吗？（Enter 发送）")
                    send = gr.Button("发送", variant="primary", elem_id="pa-send", scale=1, min_width=80)
                    clear = gr.Button("新对话", elem_id="pa-clear", scale=1, min_width=80)
                last = gr.State(None)
                answers = gr.State({})  # chat message index → the answer there (for 👍/👎 on any message)
                with gr.Row(elem_id="pa-answer-tools", equal_height=True):
                    fb_up = gr.Button("👍 有用", elem_id="pa-fb-up", size="sm", scale=1, min_width=70)
                    fb_down = gr.Button("👎 有问题", elem_id="pa-fb-down", size="sm", scale=1, min_width=70)
                    fb_comment = gr.Textbox(elem_id="pa-fb-comment", show_label=False, scale=5, max_lines=2,
                                            max_length=MAX_COMMENT_CHARS,
                                            placeholder="意见（可选），再点 👍 或 👎 提交；每条回答下的 👍/👎 也会一并提交")
                    dl_md = gr.DownloadButton("下载 .md", elem_id="pa-dl-md", size="sm", interactive=False, scale=1,
                                              min_width=80)
                    dl_docx = gr.DownloadButton("下载 .docx", elem_id="pa-dl-docx", size="sm", interactive=False,
                                                scale=1, min_width=80)
                fb_status = gr.Markdown(elem_id="pa-fb-status")
                cites = gr.Textbox(label="引文（公文格式，每行一条，点右上角复制）", elem_id="pa-cites", lines=2,
                                   max_lines=8, interactive=False, buttons=["copy"],
                                   placeholder="回答后在此列出所引条款的公文引用格式")
            with gr.Tab("文件浏览", id="browse"):
                gr.Markdown("点击条款查看全文。状态：**征求意见稿**＝尚未定稿；**非最新修订**＝所收文本不是最新版本。")
                refresh = gr.Button("刷新", size="sm")
                with gr.Accordion("条款表：按部分或文字筛选，下载 CSV / XLSX", open=False, elem_id="pa-table-box"):
                    with gr.Row():
                        t_doc = gr.Dropdown(label="文件", choices=doc_choices(), value=None, elem_id="pa-table-doc",
                                            scale=3)
                        t_section = gr.Dropdown(label="部分", choices=[("全部", "")], value="",
                                                elem_id="pa-table-section", scale=2)
                        t_query = gr.Textbox(label="包含文字（Enter 筛选）", elem_id="pa-table-q", scale=2, max_length=200)
                    with gr.Row():
                        t_count = gr.Markdown(elem_id="pa-table-count")
                        t_csv = gr.DownloadButton("下载 CSV", elem_id="pa-table-csv", size="sm", interactive=False)
                        t_xlsx = gr.DownloadButton("下载 XLSX", elem_id="pa-table-xlsx", size="sm", interactive=False)
                    t_table = gr.Dataframe(headers=list(TABLE_HEADERS), interactive=False, wrap=True, max_height=560,
                                           column_widths=["11%", "15%", "13%", "19%", "34%", "8%"], elem_id="pa-table")
                tree = gr.HTML(browser, elem_id="pa-browser")
            eval_refresh = build_eval_tab(assistant) if _eval_available() else None
            with gr.Tab("管理", id="admin"):
                gr.Markdown("上传或删除文件会改变检索语料，需要管理员令牌（服务器环境变量 `ADMIN_TOKEN`）。")
                token = gr.Textbox(label="管理员令牌", type="password", elem_id="pa-token")
                with gr.Row():
                    with gr.Column():
                        file = gr.File(label="文件（.txt .md .docx .pdf .html）", type="filepath", elem_id="pa-file",
                                       file_types=[".txt", ".md", ".docx", ".pdf", ".html", ".htm"])
                        with gr.Row():
                            f_doc = gr.Textbox(label="文件 ID（可选）")
                            f_title = gr.Textbox(label="标题", elem_id="pa-f-title")
                        with gr.Row():
                            f_status = gr.Textbox(label="状态", placeholder="现行 / 征求意见稿 / 非最新修订…")
                            f_wenhao = gr.Textbox(label="文号")
                        with gr.Row():
                            f_issuer = gr.Textbox(label="发文机关")
                            f_date = gr.Textbox(label="日期")
                        up = gr.Button("上传", variant="primary", elem_id="pa-upload")
                    with gr.Column():
                        victim = gr.Dropdown(label="删除文件", choices=doc_choices(), value=None, elem_id="pa-victim")
                        rm = gr.Button("删除", variant="stop", elem_id="pa-delete")
                result = gr.Markdown(elem_id="pa-admin-result")

        submit: dict[str, Any] = {"fn": respond, "inputs": [box, chatbot, history, last, answers],
                                  "outputs": [box, chatbot, history, last, answers], "api_visibility": "private",
                                  "concurrency_limit": 4}
        tools: dict[str, Any] = {"fn": answer_tools, "inputs": [last], "outputs": [dl_md, dl_docx, cites, fb_status],
                                 "api_visibility": "private"}
        box.submit(**submit).then(**tools)
        send.click(**submit).then(**tools)
        chatbot.example_select(_example_text, None, box, api_visibility="private").then(**submit).then(**tools)
        clear.click(lambda: ("", [], [], None, {}), None, [box, chatbot, history, last, answers],
                    api_visibility="private").then(**tools)
        chatbot.like(on_like, [fb_comment, answers], [fb_status, fb_comment], api_visibility="private")
        fb_up.click(vote("up"), [fb_comment, last], [fb_status, fb_comment], api_visibility="private")
        fb_down.click(vote("down"), [fb_comment, last], [fb_status, fb_comment], api_visibility="private")
        refresh.click(browser, None, tree, api_visibility="private")
        t_doc.change(table_doc, t_doc, [t_section, t_count, t_table, t_csv, t_xlsx], api_visibility="private")
        t_section.change(table, [t_doc, t_section, t_query], [t_count, t_table, t_csv, t_xlsx], api_visibility="private")
        t_query.submit(table, [t_doc, t_section, t_query], [t_count, t_table, t_csv, t_xlsx], api_visibility="private")
        demo.load(lambda: gr.update(choices=doc_choices(), value=default_doc()), None, t_doc, api_visibility="private")
        up.click(upload, [token, file, f_doc, f_title, f_status, f_issuer, f_date, f_wenhao], [result, tree, victim],
                 api_visibility="private")
        rm.click(delete, [token, victim], [result, tree, victim], api_visibility="private")
        demo.load(lambda: gr.update(choices=doc_choices()), None, victim, api_visibility="private")
        if eval_refresh:
            demo.load(eval_refresh[0], None, eval_refresh[1], api_visibility="private")
    return demo
