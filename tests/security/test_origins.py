"""Origins and hosts (issue 11): no CORS unless configured, Host header checked against ALLOWED_HOSTS."""

from __future__ import annotations

from fastapi.testclient import TestClient

from assistant.service import PolicyAssistant
from ui.server import create_app

PREFLIGHT = {"Origin": "http://localhost:9999", "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization"}


def _client(assistant: PolicyAssistant, **settings: str) -> TestClient:
    import copy

    clone = copy.copy(assistant)
    clone.settings = assistant.settings.model_copy(update=settings)
    return TestClient(create_app(clone, with_ui=True))


def test_no_cross_origin_access_by_default_even_from_localhost(built_assistant: PolicyAssistant) -> None:
    c = _client(built_assistant)
    pre = c.options("/api/documents/x", headers={**PREFLIGHT, "Access-Control-Request-Method": "DELETE"})
    assert "access-control-allow-origin" not in pre.headers
    simple = c.post("/api/search", json={"query": "数据出境"}, headers={"Origin": "http://localhost:9999"})
    assert simple.status_code == 200 and "access-control-allow-origin" not in simple.headers


def test_configured_origins_are_allowed_without_credentials(built_assistant: PolicyAssistant) -> None:
    c = _client(built_assistant, cors_origins="https://portal.example.gov.cn")
    ok = c.options("/api/search", headers={**PREFLIGHT, "Origin": "https://portal.example.gov.cn"})
    assert ok.headers.get("access-control-allow-origin") == "https://portal.example.gov.cn"
    assert ok.headers.get("access-control-allow-credentials") != "true"
    other = c.options("/api/search", headers=PREFLIGHT)
    assert "access-control-allow-origin" not in other.headers


def test_an_unknown_host_header_is_refused(built_assistant: PolicyAssistant) -> None:
    c = _client(built_assistant)
    assert c.get("/api/health", headers={"Host": "attacker.example"}).status_code == 400
    assert c.get("/api/health", headers={"Host": "127.0.0.1:7860"}).status_code == 200
    assert _client(built_assistant, allowed_hosts="assistant.example.gov.cn").get(
        "/api/health", headers={"Host": "assistant.example.gov.cn"}).status_code == 200


def test_gradio_upload_route_is_closed_while_writes_are_disabled(built_assistant: PolicyAssistant) -> None:
    c = _client(built_assistant)
    assert built_assistant.settings.admin_token is None
    r = c.post("/gradio_api/upload", files={"files": ("x.txt", b"hello")})
    assert r.status_code == 403 and "/tmp" not in r.text
