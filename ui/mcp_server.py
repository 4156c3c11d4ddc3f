"""The assistant's clauses as MCP tools (the official ``mcp`` SDK, 2.x): ``policy-assistant mcp`` (stdio) and
streamable HTTP at ``/mcp`` on the served app (:func:`mount_http`).

Tools:

* ``search(query, k=5, doc_id=None)``: ranked clauses (clause id, label, document, status, path, text);
* ``ask(question, history=None)``: the cited answer, its citations with quotes, ``refused`` and ``outcome``;
* ``get_clause(clause_id)``: one clause with its document status, neighbours, provenance (shipped with the
  assistant or uploaded) and the sentences flagged as addressing the reader as a system or model;
* ``list_documents()``: the documents with 文号, status and clause counts.

Bad input (an empty question, an unknown id) is a tool error with a one-line message, never a crash.

Desktop client configuration (e.g. Claude Desktop's ``claude_desktop_config.json``)::

    {"mcpServers": {"fuzhou-policy": {"command": "/path/to/.venv/bin/policy-assistant", "args": ["mcp"]}}}

or, for a client that speaks streamable HTTP, the URL ``http://127.0.0.1:7860/mcp`` (with
``Authorization: Bearer <token>`` when ``API_TOKENS`` is set). The HTTP transport is stateless (every request
stands alone), so it works unchanged behind a load balancer with several replicas.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from assistant.models import Citation
from assistant.service import InputError, NotFoundError, PolicyAssistant
from ui.provenance import clause_flags, provenance, warning_text


def _cite(c: Citation, status: str) -> dict[str, Any]:
    return {"clause_id": c.clause_id, "label": c.label, "doc_title": c.doc_title, "doc_status": status,
            "path": c.path, "quote": c.quote}


def create_server(service: PolicyAssistant) -> Any:
    """An ``MCPServer`` whose tools call ``service``."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    server = MCPServer(name="policy-assistant", instructions=(
        "Grounded answers about Fuzhou's service-industry opening-up pilot plan and the national laws and regulations around it (list_documents shows what is indexed). Every answer "
        "quotes clauses; cite the clause ids and labels you use. A refused answer means the corpus does not say."))

    def status_of(doc_id: str) -> str:
        doc = service.retriever.snapshot.documents.get(doc_id)
        return doc.meta.status if doc else ""

    def guard(action: Any) -> Any:
        try:
            return action()
        except (InputError, NotFoundError, ValueError) as exc:
            raise ToolError(str(exc)) from exc

    @server.tool()
    def search(query: str, k: int = 5, doc_id: str | None = None) -> dict[str, Any]:
        """Search the clauses of the plan and the laws; returns the best clauses with ids and labels."""
        query = guard(lambda: service.check_text(query, "query"))
        hits = guard(lambda: service.search(query, k=k, doc_id=doc_id or None))
        return {"query": query, "hits": [{"clause_id": h.clause.clause_id, "label": h.clause.label,
                                          "doc_id": h.clause.doc_id, "doc_title": h.clause.doc_title,
                                          "doc_status": status_of(h.clause.doc_id), "path": h.clause.path_text,
                                          "text": h.clause.text, "score": round(h.score, 6)} for h in hits]}

    @server.tool()
    def ask(question: str, history: list[list[str]] | None = None) -> dict[str, Any]:
        """Answer a question with quoted, cited clauses (history: earlier [question, answer] pairs)."""
        answer = guard(lambda: service.ask(question, [tuple(t) for t in history or []]))  # type: ignore[misc]
        return {"answer": answer.answer, "refused": answer.refused, "outcome": answer.outcome,
                "citations": [_cite(c, status_of(c.doc_id)) for c in answer.citations],
                "nearest": [_cite(c, status_of(c.doc_id)) for c in answer.nearest]}

    @server.tool()
    def get_clause(clause_id: str) -> dict[str, Any]:
        """One clause by id (e.g. fz-plan/三/（二）/3 or data-security-law/第三十一条) with its neighbours."""
        view = guard(lambda: service.clause(clause_id))
        c = view.clause
        prov, flags = provenance(service, c.doc_id), clause_flags(c.text)
        return {"clause_id": c.clause_id, "label": c.label, "doc_id": c.doc_id, "doc_title": c.doc_title,
                "doc_status": view.document.status, "path": c.path_text, "text": c.text,
                "previous": view.previous.clause_id if view.previous else None,
                "next": view.next.clause_id if view.next else None,
                "provenance": prov, "flags": flags, "warning": warning_text(prov, flags)}

    @server.tool()
    def list_documents() -> list[dict[str, Any]]:
        """The documents in the corpus with 文号, status (征求意见稿 / 现行 / 非最新修订…) and clause counts."""
        return [{"doc_id": d.meta.doc_id, "title": d.meta.title, "wenhao": d.meta.wenhao, "status": d.meta.status,
                 "date": d.meta.date, "clauses": d.clauses} for d in service.documents()]

    return server


def mount_http(app: Any, service: PolicyAssistant, path: str = "/mcp"
               ) -> Callable[[], AbstractAsyncContextManager[None]]:
    """Add the MCP streamable-HTTP endpoint at ``path`` to the Starlette/FastAPI ``app``.

    Returns the session manager's ``run`` context, which the app's lifespan must enter. Host and origin
    checks are the app's own (``ALLOWED_HOSTS``, ``CORS_ORIGINS``); the read tokens (``API_TOKENS``) are
    checked by the caller's middleware.

    Usage::

        run = mount_http(app, service)
        async with run():
            ...  # serve
    """
    from mcp.server.transport_security import TransportSecuritySettings

    server = create_server(service)
    mcp_app = server.streamable_http_app(
        streamable_http_path=path, stateless_http=True, json_response=True,
        max_request_body_size=4 * (service.settings.max_question_chars + service.settings.max_history_chars) + 65536,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))
    app.router.routes.extend(mcp_app.routes)

    run: Callable[[], AbstractAsyncContextManager[None]] = server.session_manager.run
    return run
