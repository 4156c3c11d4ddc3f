"""The refusal text names what the live index holds (issue 10: not "13部" after documents were added or removed)."""

from __future__ import annotations

from assistant.service import PolicyAssistant
from assistant.settings import Settings


def test_refusal_wording_follows_the_live_index(tmp_path) -> None:
    svc = PolicyAssistant(Settings(data_dir=tmp_path, llm_provider="none", retrieval_mode="lexical"))
    svc.ensure_index()
    assert svc.extractive.corpus_phrase("zh") == "福州实施方案及13部国家法律法规"
    assert svc.extractive.corpus_phrase("en") == "the Fuzhou plan and 13 national laws and regulations"
    svc.ingest_bytes("第一条 琥珀隧道夜间限速每小时四十公里。\n\n第二条 隧道养护由养护中心负责。\n".encode(), "amber.txt")
    svc.delete_document("data-security-law")
    assert svc.extractive.corpus_phrase("zh") == "福州实施方案、12部国家法律法规及1份其他文件"
    text = svc.extractive.refusal_text("zh", [])
    assert text.startswith("现有语料（福州实施方案、12部国家法律法规及1份其他文件）中没有")
    assert "1 other document" in svc.extractive.refusal_text("en", [])
