"""The MCP server over stdio, driven by the official SDK's client (`policy-assistant mcp`)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.model


def test_mcp_tools_over_stdio(built_assistant, tmp_path: Path) -> None:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    env = {**os.environ, "POLICY_DATA_DIR": str(built_assistant.settings.data_dir), "LLM_PROVIDER": "none"}
    params = StdioServerParameters(command=str(Path(sys.executable).with_name("policy-assistant")), args=["mcp"],
                                   env=env)

    async def session() -> dict:
        out: dict = {}
        async with stdio_client(params) as (read, write), ClientSession(read, write) as s:
            await s.initialize()
            out["tools"] = sorted(t.name for t in (await s.list_tools()).tools)
            for name, args in [("search", {"query": "数据出境安全评估", "k": 3}),
                               ("ask", {"question": "外国医生能开诊所吗？"}),
                               ("ask", {"question": "那境外医疗人员呢？", "history": [["外国医生能开诊所吗？", "可以"]]}),
                               ("get_clause", {"clause_id": "fz-plan/三/（二）/3"}),
                               ("get_clause", {"clause_id": "no/such/clause"}),
                               ("ask", {"question": "   "}),
                               ("list_documents", {})]:
                res = await s.call_tool(name, args)
                text = "\n".join(getattr(c, "text", "") for c in res.content)
                out.setdefault(name, []).append((res.is_error, text))
        return out

    out = asyncio.run(asyncio.wait_for(session(), 180))
    assert out["tools"] == ["ask", "get_clause", "list_documents", "search"]
    search = json.loads(out["search"][0][1])
    assert search["hits"] and search["hits"][0]["clause_id"] and search["hits"][0]["doc_status"]
    answer = json.loads(out["ask"][0][1])
    assert answer["refused"] is False and any(c["clause_id"] == "fz-plan/三/（二）/3" for c in answer["citations"])
    follow = json.loads(out["ask"][1][1])
    assert any(c["clause_id"] == "fz-plan/三/（二）/4" for c in follow["citations"])
    assert json.loads(out["get_clause"][0][1])["label"] == "三（二）3"
    assert out["get_clause"][1][0] is True and "unknown clause id" in out["get_clause"][1][1]
    assert out["ask"][2][0] is True and "empty" in out["ask"][2][1]
    docs = out["list_documents"][0][1]  # a list result comes as one text item per element
    assert "数据安全法" in docs and "征求意见稿" in docs
