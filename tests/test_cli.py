"""The policy-assistant command: JSON shapes, batches, one-line errors with non-zero exits."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assistant.service import PolicyAssistant
from ui.cli import app

pytestmark = pytest.mark.model


@pytest.fixture()
def run(built_assistant: PolicyAssistant, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("POLICY_DATA_DIR", str(built_assistant.settings.data_dir))
    runner = CliRunner()

    def _run(*args: str):
        return runner.invoke(app, list(args))

    return _run


def test_search_json_shape(run):
    res = run("search", "数据出境安全评估", "--k", "3", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(out) == {"id", "hits"} and len(out["hits"]) == 3
    assert {"clause_id", "doc_id", "doc_title", "path", "text", "score"} <= set(out["hits"][0])


def test_ask_json_and_batches(run, tmp_path: Path):
    res = run("ask", "市服开办设在哪里？", "--json")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["refused"] is False and out["citations"][0]["clause_id"] == "fz-plan/五/（一）"
    batch = tmp_path / "q.jsonl"
    batch.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in [
        {"id": "q1", "question": "外国医生能开诊所吗？", "history": []},
        {"id": "q2", "question": "那境外医疗人员呢？", "history": [["外国医生能开诊所吗？", "…"]]},
        {"id": "q3", "question": "今天天气怎么样？"},
    ]), encoding="utf-8")
    res = run("ask", "--batch", str(batch), "--json")
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.stdout.strip().splitlines() if x.startswith("{")]
    assert [x["id"] for x in lines] == ["q1", "q2", "q3"]
    assert lines[2]["refused"] is True and lines[0]["refused"] is False
    res = run("search", "--batch", str(batch), "--json", "--k", "2")
    hits = [json.loads(x) for x in res.stdout.strip().splitlines() if x.startswith("{")]
    assert [x["id"] for x in hits] == ["q1", "q2", "q3"] and all(len(x["hits"]) == 2 for x in hits)


def test_show_and_docs(run):
    res = run("show", "fz-plan/三/（一）/3")
    assert res.exit_code == 0 and "放宽增值电信业务外资准入。" in res.stdout
    res = run("docs")
    assert "征求意见稿" in res.stdout and len(res.stdout.strip().splitlines()) == 14


@pytest.mark.parametrize("args,code", [
    (("ask", "   "), 2),
    (("show", "fz-plan/九/（九）/9"), 3),
    (("ingest", "/no/such/file.txt"), 2),
    (("search", ""), 2),
])
def test_errors_are_one_line(run, args, code):
    res = run(*args)
    assert res.exit_code == code
    assert "Traceback" not in res.output
    assert res.output.strip().splitlines()[-1].startswith("error: ")


def test_unsupported_format(run, tmp_path: Path):
    f = tmp_path / "x.xlsx"
    f.write_bytes(b"PK")
    res = run("ingest", str(f))
    assert res.exit_code == 2 and "unsupported format" in res.output


@pytest.mark.model
def test_bulk_ingest_of_own_documents_without_the_shipped_corpus_resumes(tmp_path) -> None:
    import subprocess
    import sys
    from pathlib import Path

    files = []
    for i in range(3):
        f = tmp_path / f"own{i}.txt"
        f.write_text(f"# 标题：自有文件{i}\n第一条 自有条款{i}：海洋经济示范区建设第{i}期。\n", encoding="utf-8")
        files.append(str(f))
    cli = str(Path(sys.executable).with_name("policy-assistant"))
    env = {**os.environ, "POLICY_DATA_DIR": str(tmp_path / "data"), "LLM_PROVIDER": "none"}
    first = subprocess.run([cli, "ingest", "--own-only", "--batch", "2", *files], capture_output=True, text=True,
                           env=env, timeout=300)
    assert first.returncode == 0, first.stderr[-400:]
    assert "[3/3]" in first.stdout and first.stdout.count("added/replaced") == 3
    docs = subprocess.run([cli, "docs", "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert sorted(json.loads(line)["doc_id"] for line in docs.stdout.splitlines()) == ["own0", "own1", "own2"]
    again = subprocess.run([cli, "ingest", "--own-only", *files], capture_output=True, text=True, env=env, timeout=300)
    assert again.stdout.count("unchanged") == 3
