"""Error messages never echo more than MAX_ERROR_CHARS of the input (issue 11)."""

from __future__ import annotations

import copy

from fastapi.testclient import TestClient

from ui.server import create_app


def test_error_messages_are_cut_to_the_limit(built_assistant) -> None:
    clone = copy.copy(built_assistant)
    clone.settings = built_assistant.settings.model_copy(update={"max_error_chars": 120})
    client = TestClient(create_app(clone, with_ui=False))
    long_id = "x" * 5000
    for r in (client.get(f"/api/clauses/{long_id}"), client.get(f"/api/documents/{long_id}"),
              client.post("/api/search", json={"query": "数据", "doc_id": long_id})):
        assert r.status_code in (400, 404), r.text
        detail = r.json()["detail"]
        assert isinstance(detail, str) and len(detail) <= 120 and detail.endswith("…"), detail
    v1 = client.post("/v1/chat/completions", json={"model": "m" * 5000, "messages": [{"role": "user", "content": "hi"}]})
    assert v1.status_code == 404 and len(v1.json()["error"]["message"]) <= 120


def test_the_cli_cuts_its_error_line(built_assistant, monkeypatch) -> None:
    from typer.testing import CliRunner

    from ui.cli import app

    monkeypatch.setenv("POLICY_DATA_DIR", str(built_assistant.settings.data_dir))
    monkeypatch.setenv("MAX_ERROR_CHARS", "80")
    r = CliRunner().invoke(app, ["show", "y" * 3000])
    assert r.exit_code != 0
    line = [x for x in r.output.splitlines() if x.startswith("error:")][0]
    assert len(line) <= len("error: ") + 80
