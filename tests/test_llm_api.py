"""Generative mode through the REST API (/api/ask, /api/ask/stream) and the `doctor` command, against the fake server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from assistant.service import PolicyAssistant
from eval.fake_llm_server import NOISE_CLAIM, FakeLLMServer, Reply
from ui.cli import app as cli_app
from ui.server import create_app

CLINIC_Q = "外国医生能在福州开诊所吗？"


@pytest.fixture()
def api(generative_assistant: PolicyAssistant) -> Iterator[TestClient]:
    with TestClient(create_app(generative_assistant, with_ui=False)) as c:
        yield c


def sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        event, data = "message", ""
        for line in block.splitlines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
        if data:
            out.append((event, json.loads(data)))
    return out


def test_api_ask_is_generative(api: TestClient) -> None:
    body = api.post("/api/ask", json={"question": CLINIC_Q}).json()
    assert body["mode"] == "generative" and body["notice"] is None
    assert "fz-plan/三/（二）/3" in [c["clause_id"] for c in body["citations"]]


def test_api_stream_tokens_are_the_verified_answer(api: TestClient) -> None:
    resp = api.post("/api/ask/stream", json={"question": CLINIC_Q})
    events = sse(resp.text)
    tokens = "".join(d["text"] for e, d in events if e == "token")
    final = next(d for e, d in events if e == "citations")
    assert final["mode"] == "generative"
    assert tokens.strip() == api.post("/api/ask", json={"question": CLINIC_Q}).json()["answer"]
    for c in final["citations"]:
        assert f"[{c['label']}]" in tokens


def test_api_reports_unsupported_sentences_and_fallback(make_llm_assistant: Any, fake_llm: FakeLLMServer) -> None:
    with FakeLLMServer(noise=True) as noisy:
        pa = make_llm_assistant(llm_provider="openai", llm_base_url=noisy.base_url, llm_model="fake-echo",
                                llm_timeout_s=20.0)
        with TestClient(create_app(pa, with_ui=False)) as c:
            body = c.post("/api/ask", json={"question": CLINIC_Q}).json()
            assert body["unsupported_sentences"] == [f"{NOISE_CLAIM}。"] and body["notice"]
            noisy.script(Reply(status=500))
            body = c.post("/api/ask", json={"question": CLINIC_Q}).json()
            assert body["mode"] == "extractive" and "抽取式" in body["notice"]


def test_doctor_reports_whether_the_model_answers(fake_llm: FakeLLMServer, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLICY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LLM_PROVIDER", "openai")
    monkeypatch.setenv("LLM_BASE_URL", fake_llm.base_url)
    monkeypatch.setenv("LLM_MODEL", "fake-echo")
    monkeypatch.setenv("LLM_TIMEOUT_S", "20")
    runner = CliRunner()
    ok = runner.invoke(cli_app, ["doctor", "--json"])
    assert ok.exit_code == 0, ok.output
    report = json.loads(ok.output)
    assert report["llm"]["status"] == "ok" and report["tiktoken_offline"] is True
    fake_llm.script(Reply(status=500))
    bad = runner.invoke(cli_app, ["doctor"])
    assert bad.exit_code == 1 and "ERROR" in bad.output and "500" in bad.output
    monkeypatch.setenv("LLM_PROVIDER", "none")
    off = runner.invoke(cli_app, ["doctor"])
    assert off.exit_code == 0 and "DISABLED" in off.output


def test_cli_streams_the_answer_and_prints_citations(generative_assistant: PolicyAssistant,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from ui.cli import _stream_answer

    answer = _stream_answer(generative_assistant, CLINIC_Q, [])
    out = capsys.readouterr().out
    assert out.startswith(answer.answer)
    assert "verified answer" not in out  # the streamed text already was the verified answer
    assert "引用 / citations:" in out and "fz-plan/三/（二）/3" in out
