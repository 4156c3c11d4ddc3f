"""Feedback on answers: the SQLite store, POST /api/feedback, and `policy-assistant feedback export` into
eval-format JSONL that the eval loader reads."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from assistant.service import PolicyAssistant
from eval.dataset import DatasetError, load_dataset, shipped_clauses, validate
from ui.cli import app as cli_app
from ui.feedback import MAX_COMMENT_CHARS, FeedbackStore, review_path

CITES = [{"clause_id": "fz-plan/五/（一）", "label": "五（一）", "doc_title": "方案", "quote": "设在市商务局"},
         {"clause_id": "data-security-law/第三十一条", "label": "数据安全法 第三十一条"}]


def _fill(store: FeedbackStore) -> None:
    store.add("市服开办设在哪里？", "设在市商务局。[五（一）]", CITES, "up", "准确", [["前一问", "前一答"]])
    store.add("福州的GDP是多少？", "现有条款中没有找到依据。", [], "up")                  # a refusal the user approved
    store.add("外国医生能在福州开诊所吗？", "答非所问。", CITES[:1], "down", "引错了条款")
    store.add("What about Xiamen?", "answered something", CITES[1:], "down")


def test_store_round_trip_and_validation(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "fb.sqlite3")
    first = store.add("市服开办设在哪里？", "设在市商务局。", CITES, "up", "  好  ", [("q0", "a0")])
    second = store.add("问题二", "答", [], "down")
    assert second > first
    rows = FeedbackStore(tmp_path / "fb.sqlite3").all()  # a new instance reads the same file
    assert [r.id for r in rows] == [first, second]
    r = rows[0]
    assert (r.question, r.verdict, r.comment, r.refused) == ("市服开办设在哪里？", "up", "好", False)
    assert [c["clause_id"] for c in r.citations] == ["fz-plan/五/（一）", "data-security-law/第三十一条"]
    assert r.citations[0]["quote"] == "设在市商务局" and r.history == [["q0", "a0"]]
    assert rows[1].refused is True  # no citations: a refusal by default
    with pytest.raises(ValueError, match="verdict"):
        store.add("问", "答", [], "meh")
    with pytest.raises(ValueError, match="comment"):
        store.add("问", "答", [], "up", "长" * (MAX_COMMENT_CHARS + 1))
    with pytest.raises(ValueError, match="empty"):
        store.add("  ", "答", [], "up")
    assert len(store.all()) == 2


def test_export_loads_with_the_eval_loader(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "fb.sqlite3")
    _fill(store)
    out = tmp_path / "cases.jsonl"
    assert store.export_jsonl(out) == (2, 2)
    items = load_dataset(out)  # eval's own loader and checks
    assert [i.id for i in items] == ["feedback-1", "feedback-2"]
    answered, refused = items
    assert answered.gold_clause_ids == ["fz-plan/五/（一）", "data-security-law/第三十一条"]
    assert answered.must_refuse is False and answered.history == [("前一问", "前一答")] and answered.lang == "zh"
    assert refused.must_refuse is True and refused.gold_clause_ids == []
    assert validate(items, shipped_clauses()) == []  # the gold clauses exist in the shipped corpus
    raw = json.loads(out.read_text(encoding="utf-8").splitlines()[0])
    assert raw["verdict"] == "up" and raw["comment"] == "准确" and raw["answer"].startswith("设在市商务局")
    # 👎 rows: marked for review, no gold yet, so the loader names the first line that needs it
    review = review_path(out)
    assert review.name == "cases.review.jsonl"
    rows = [json.loads(line) for line in review.read_text(encoding="utf-8").splitlines()]
    assert [r["review"] for r in rows] == [True, True] and [r["verdict"] for r in rows] == ["down", "down"]
    assert rows[0]["comment"] == "引错了条款" and rows[1]["lang"] == "en"
    with pytest.raises(DatasetError, match=r"review\.jsonl:1: .*gold"):
        load_dataset(review)
    # once the evaluator adds gold, the row loads
    rows[0]["gold_quotes"] = ["设在市商务局"]
    fixed = tmp_path / "fixed.jsonl"
    fixed.write_text(json.dumps(rows[0], ensure_ascii=False) + "\n", encoding="utf-8")
    assert load_dataset(fixed)[0].gold_quotes == ["设在市商务局"]


def test_export_counts_the_latest_vote_on_the_same_answer(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "fb.sqlite3")
    store.add("市服开办设在哪里？", "设在市商务局。", CITES[:1], "up")
    store.add("市服开办设在哪里？", "设在市商务局。", CITES[:1], "down", "点错了，其实不全")  # changed the vote
    store.add("市服开办设在哪里？", "设在市商务局。", CITES[:1], "up", history=[["q", "a"]])  # another conversation
    assert len(store.all()) == 3  # every vote is kept
    out = tmp_path / "cases.jsonl"
    assert store.export_jsonl(out) == (1, 1)
    assert [i.id for i in load_dataset(out)] == ["feedback-3"]
    review = [json.loads(line) for line in review_path(out).read_text(encoding="utf-8").splitlines()]
    assert [(r["id"], r["comment"]) for r in review] == [("feedback-2", "点错了，其实不全")]


def test_cli_feedback_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    _fill(FeedbackStore(data / "feedback.sqlite3"))
    monkeypatch.setenv("POLICY_DATA_DIR", str(data))
    out = tmp_path / "out" / "fb.jsonl"
    res = CliRunner().invoke(cli_app, ["feedback", "export", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "2 test cases" in res.output and "2 for review" in res.output
    assert len(load_dataset(out)) == 2
    assert len((tmp_path / "out" / "fb.review.jsonl").read_text(encoding="utf-8").splitlines()) == 2


@pytest.fixture()
def api(built_assistant: PolicyAssistant, tmp_path: Path) -> Iterator[tuple[TestClient, Path]]:
    """The API over the shared index, with the feedback database in a data dir of the test's own."""
    from ui.server import create_app

    clone = copy.copy(built_assistant)
    clone.settings = built_assistant.settings.model_copy(update={"data_dir": tmp_path})
    with TestClient(create_app(clone, with_ui=False)) as c:
        yield c, tmp_path


@pytest.mark.model
def test_api_feedback(api: tuple[TestClient, Path]) -> None:
    client, data = api
    body = {"question": "市服开办设在哪里？", "answer": "设在市商务局。[五（一）]", "verdict": "up",
            "citations": [{"clause_id": "fz-plan/五/（一）", "label": "五（一）", "quote": "设在市商务局"}],
            "comment": "有用", "history": [["上一问", "上一答"]]}
    r = client.post("/api/feedback", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["verdict"] == "up" and r.json()["id"] >= 1
    r2 = client.post("/api/feedback", json={"question": "再问", "verdict": "down"})
    assert r2.status_code == 201 and r2.json()["id"] > r.json()["id"]
    for bad, word in [({**body, "verdict": "maybe"}, "verdict"), ({**body, "question": "  "}, "empty"),
                      ({**body, "comment": "x" * (MAX_COMMENT_CHARS + 1)}, "comment"),
                      ({**body, "question": "问" * 5000}, "limit")]:
        res = client.post("/api/feedback", json=bad)
        assert res.status_code == 400, (bad, res.text)
        assert word in res.json()["detail"]
    assert client.post("/api/feedback", json={"verdict": "up"}).status_code == 422  # no question
    rows = FeedbackStore(data / "feedback.sqlite3").all()
    assert [(r.question, r.verdict) for r in rows] == [("市服开办设在哪里？", "up"), ("再问", "down")]
    assert rows[0].citations[0]["clause_id"] == "fz-plan/五/（一）" and rows[0].history == [["上一问", "上一答"]]
    assert rows[0].comment == "有用" and rows[1].refused is True
    # history is kept within the service's limits (MAX_HISTORY_TURN_CHARS per turn), not stored as sent
    long_turn = ["早先的问题", "答" * 10_000]
    assert client.post("/api/feedback", json={**body, "history": [long_turn]}).status_code == 201
    stored = FeedbackStore(data / "feedback.sqlite3").all()[-1].history
    assert len(stored) == 1 and len(stored[0][1]) == client.app.state.assistant.settings.max_history_turn_chars
