"""Where a document came from, and the flagged sentences of a clause, for every quote and the clause view.

A document is ``shipped`` when its stored content hash is that of the shipped file (so an upload that replaces
a shipped document under the same id is ``uploaded``); everything else came through an upload (API or the
管理 tab, with the admin token; the token is shared, so *who* uploaded is not known and not claimed) or
``policy-assistant ingest PATH`` on the server. ``added_at`` is when the current version was stored.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from assistant.service import PolicyAssistant
from corpus.injection import flag_sentences
from corpus.loaders import DocumentLoader
from corpus.manifest import shipped_documents
from corpus.parsing import ClauseParser

_lock = threading.Lock()
_shipped: dict[str, str] | None = None


def shipped_hashes() -> dict[str, str]:
    """``doc_id → content hash`` of the shipped corpus as the parser stores it (computed once)."""
    global _shipped
    with _lock:
        if _shipped is None:
            loader, parser, out = DocumentLoader(), ClauseParser(), {}
            for shipped in shipped_documents():
                text, _ = loader.run(shipped.path)
                out[shipped.meta.doc_id] = parser.run(shipped.meta, text).content_hash
            _shipped = out
        return _shipped


def provenance(service: PolicyAssistant, doc_id: str) -> dict[str, Any]:
    """``{origin: shipped|uploaded, label, status, added_at, added_by}`` of a stored document."""
    doc = service.retriever.snapshot.documents.get(doc_id)
    if doc is None:
        return {"origin": "unknown", "label": "来源不明", "status": "", "added_at": None, "added_by": None}
    added = datetime.fromtimestamp(doc.ingested_at, UTC).isoformat(timespec="seconds") if doc.ingested_at else None
    if shipped_hashes().get(doc_id) == doc.content_hash:
        return {"origin": "shipped", "label": "随附语料", "status": doc.meta.status, "added_at": added,
                "added_by": None}
    replaced = doc_id in shipped_hashes()
    return {"origin": "uploaded", "label": "上传文件（替换了随附版本）" if replaced else "上传文件",
            "status": doc.meta.status, "added_at": added,
            "added_by": "admin token holder (API or 管理 tab) or server-side ingest; the person is not recorded"}


def clause_flags(text: str) -> list[dict[str, Any]]:
    """The clause's sentences that address the reader as a system or model (see :mod:`corpus.injection`)."""
    return [{"sentence": f.sentence, "start": f.start, "rule": f.rule, "reason": f.reason} for f in flag_sentences(text)]


def warning_text(prov: dict[str, Any], flags: list[dict[str, Any]]) -> str:
    """One line for the reader, empty for a shipped clause with no flag."""
    parts = []
    if prov.get("origin") != "shipped":
        when = f"，{prov['added_at'][:10]} 入库" if prov.get("added_at") else ""
        parts.append(f"来源：{prov.get('label', '上传文件')}（非随附语料，状态：{prov.get('status') or '未注明'}{when}），请核对原件")
    if flags:
        parts.append(f"⚠ 本条有 {len(flags)} 句像是对系统或模型下达的指令（疑似注入），不应作为政策内容采信")
    return "；".join(parts)


def with_provenance(service: PolicyAssistant, body: dict[str, Any]) -> dict[str, Any]:
    """An answer's JSON with ``provenance`` beside every citation and nearest clause (one lookup per document)."""
    seen: dict[str, dict[str, Any]] = {}
    for key in ("citations", "nearest"):
        for cite in body.get(key) or []:
            doc_id = cite.get("doc_id", "")
            if doc_id not in seen:
                seen[doc_id] = provenance(service, doc_id)
            cite["provenance"] = seen[doc_id]
    return body
