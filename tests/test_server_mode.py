"""Server mode: processes sharing one Chroma server (`chroma run`) agree on the corpus (issue 10)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import chroma_run

from assistant.service import PolicyAssistant
from assistant.settings import Settings

pytestmark = pytest.mark.model

NOTICE = "# 标题：复制一致性测试通知｜文号：测试〔2026〕1号\n第一条 独角兽企业孵化基地设在闽江口金融岛。\n第二条 基地由榕创中心运营。\n"


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The chromadb package's own server on a free port and a fresh folder."""
    with chroma_run(tmp_path_factory.mktemp("chroma-server"), tries=200) as port:
        yield port


def _replica(tmp_path: Path, name: str, port: int) -> PolicyAssistant:
    return PolicyAssistant(Settings(**{"data_dir": tmp_path / name, "chroma_host": "127.0.0.1", "chroma_port": port,
                                       "replica_check_s": 0.0, "llm_provider": "none"}))


def test_replicas_on_one_chroma_server_see_each_others_writes_and_deletes(chroma_server: int, tmp_path: Path) -> None:
    a, b = _replica(tmp_path, "a", chroma_server), _replica(tmp_path, "b", chroma_server)
    a.ensure_index()
    assert b.search("数据出境安全评估", k=3)  # b has its snapshot of the shipped corpus
    before = len(b.documents())

    parsed, changed = a.ingest_bytes(NOTICE.encode("utf-8"), "replica.txt", doc_id="replica-test")
    assert changed and parsed.clauses
    hits = b.search("独角兽企业孵化基地设在哪里", k=3)
    assert hits[0].clause.doc_id == "replica-test"
    assert len(b.documents()) == before + 1

    env = {**os.environ, "CHROMA_HOST": "127.0.0.1", "CHROMA_PORT": str(chroma_server),
           "POLICY_DATA_DIR": str(tmp_path / "cli"), "LLM_PROVIDER": "none"}
    cli = str(Path(sys.executable).with_name("policy-assistant"))
    out = subprocess.run([cli, "search", "独角兽企业孵化基地", "--json", "--k", "3"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-500:]
    assert json.loads(out.stdout)["hits"][0]["doc_id"] == "replica-test"

    a.delete_document("replica-test")
    assert all(h.clause.doc_id != "replica-test" for h in b.search("独角兽企业孵化基地设在哪里", k=10))
    assert len(b.documents()) == before


def test_a_replica_checks_the_generation_at_most_as_often_as_configured(chroma_server: int, tmp_path: Path) -> None:
    a = _replica(tmp_path, "a", chroma_server)
    a.ensure_index()
    slow = PolicyAssistant(Settings(**{"data_dir": tmp_path / "slow", "chroma_host": "127.0.0.1",
                                       "chroma_port": chroma_server, "replica_check_s": 3600.0,
                                       "llm_provider": "none"}))
    snap = slow.retriever.snapshot
    a.ingest_bytes(NOTICE.replace("闽江口", "乌龙江").encode("utf-8"), "replica2.txt", doc_id="replica-test-2")
    assert slow.retriever.snapshot is snap  # within its check interval it serves the snapshot it has
    assert a.retriever.store.generation() != snap.generation
    a.delete_document("replica-test-2")
