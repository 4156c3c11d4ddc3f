"""Storage failures (issue 11): one `error:` line and exit 2 from the CLI, 503 with Retry-After from the API.

Root ignores file permissions, so the failure is injected at the storage layer (the Chroma client), the way a
read-only mount or a full disk surfaces there; a manual check on a read-only tmpfs mount gave the same line.
"""

from __future__ import annotations

import copy

from chromadb.errors import InternalError
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import assistant.service as service
from ui.cli import app
from ui.server import create_app

READONLY = InternalError("error returned from database: (code: 8) attempt to write a readonly database")


def test_cli_says_storage_is_read_only_in_one_line_and_exits_2(monkeypatch, tmp_path) -> None:
    def broken(*_args, **_kwargs):
        raise READONLY

    monkeypatch.setattr(service, "make_client", broken)
    monkeypatch.setenv("POLICY_DATA_DIR", str(tmp_path))
    for args in (["docs"], ["search", "数据出境"], ["ingest"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert "error: storage is read-only" in result.output
        assert "Traceback" not in result.output


def test_api_answers_503_with_retry_after_when_storage_fails(built_assistant, monkeypatch) -> None:
    clone = copy.copy(built_assistant)
    client = TestClient(create_app(clone, with_ui=False))
    assert client.post("/api/search", json={"query": "数据出境"}).status_code == 200

    def broken(*_args, **_kwargs):
        raise READONLY

    monkeypatch.setattr(clone.retriever, "run", broken)
    response = client.post("/api/search", json={"query": "数据出境"})
    assert response.status_code == 503
    assert response.headers.get("retry-after") == "30"
    assert response.json()["detail"].startswith("storage is read-only")
