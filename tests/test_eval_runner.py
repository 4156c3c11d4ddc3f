"""The eval end to end on the real index: in process, through an HTTP API, the CLI, reports, baseline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from eval.compare import BASELINE, check_baseline, load_baseline, render_comparison
from eval.dataset import DEV, assistant_clauses, load_dataset, validate
from eval.metrics import HEADLINE
from eval.report import load_report, write_report
from eval.runner import HttpBackend, InProcessBackend, run_eval

pytestmark = pytest.mark.model


def _sample() -> list[Any]:
    """Two questions of each type of the dev set (follow-ups, sets, English and refusals included)."""
    seen: dict[str, int] = {}
    out = []
    for item in load_dataset(DEV):
        if seen.get(item.type, 0) < 2:
            seen[item.type] = seen.get(item.type, 0) + 1
            out.append(item)
    return out


@pytest.fixture(scope="module")
def sample_report(built_assistant) -> dict[str, Any]:
    return run_eval(_sample(), InProcessBackend(built_assistant), judge=built_assistant.judge, dataset="sample")


def test_every_gold_is_in_the_built_index(built_assistant) -> None:
    assert validate(load_dataset(DEV), assistant_clauses(built_assistant)) == []


def test_report_has_every_metric_per_type_and_language(sample_report) -> None:
    m = sample_report["metrics"]
    types = {i.type for i in _sample()}
    assert set(sample_report["by_type"]) == types
    assert set(sample_report["by_lang"]) == {"zh", "en"}
    for name in (*HEADLINE, "recall@10", "set_recall@10", "latency_p50_ms", "latency_p95_ms"):
        assert m[name] is not None, name
    for name in HEADLINE:
        assert 0.0 <= m[name] <= 1.0
    assert m["latency_p50_ms"] <= m["latency_p95_ms"]
    assert sample_report["corpus_version"].startswith("14 documents")
    assert sample_report["config"]["embedding_model"] == "e5-small"
    assert sample_report["gold_problems"] == []


def test_per_question_records_explain_the_outcome(sample_report) -> None:
    for r in sample_report["results"]:
        if r["must_refuse"]:
            assert r["retrieval"] is None and r["gold_cited"] is None
            assert bool(r["failures"]) == (not r["refused"])
            continue
        assert len(r["retrieval"]["hits"]) == 10
        rank = r["retrieval"]["first_rank"]
        if rank is not None:
            assert r["retrieval"]["hits"][rank - 1]["matched"]
            assert not any(h["matched"] for h in r["retrieval"]["hits"][: rank - 1])
        if r["refused"]:
            assert any(f.startswith("refusal: refused an answerable") for f in r["failures"])
        else:
            assert r["citations"] and r["statements"]
            assert (r["gold_cited"] == 0.0) == any(f.startswith("gold citation: cites no gold") for f in r["failures"])
    followups = [r for r in sample_report["results"] if r["history"]]
    assert followups and all(r["retrieval_query"] != r["question"] for r in followups)


def test_extractive_answers_quote_their_citations(sample_report) -> None:
    answered = [r for r in sample_report["results"] if not r["refused"]]
    assert answered
    # The extractive answerer quotes the clause it cites, so the judge finds every statement supported.
    assert sample_report["metrics"]["citation_recall"] >= 0.9


def test_write_report_makes_markdown_json_and_png_charts(sample_report, tmp_path: Path) -> None:
    paths = write_report(sample_report, tmp_path)
    md = paths["md"].read_text(encoding="utf-8")
    assert "## By question type" in md and "## By language" in md and "## Failures" in md
    assert "![first_gold_rank](first_gold_rank.png)" in md
    assert load_report(tmp_path)["metrics"] == json.loads(json.dumps(sample_report["metrics"]))
    assert {p.name for p in paths["charts"]} == {"metrics_by_type.png", "first_gold_rank.png"}
    for p in paths["charts"]:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_lexical_mode_differs_and_compare_shows_it(built_assistant, sample_report) -> None:
    from assistant.service import PolicyAssistant
    from assistant.settings import Settings

    lexical = PolicyAssistant(Settings(data_dir=built_assistant.settings.data_dir, retrieval_mode="lexical",
                                       llm_provider="none"))
    rep = run_eval(_sample(), InProcessBackend(lexical), dataset="sample")
    assert rep["config"]["retrieval_mode"] == "lexical"
    assert rep["metrics"]["citation_recall"] is None  # no judge given
    # BM25 alone ranks differently from the fusion on at least one question.
    pairs = zip(sample_report["results"], rep["results"], strict=True)
    assert any(a["retrieval"] and a["retrieval"]["hits"] != b["retrieval"]["hits"] for a, b in pairs)
    text = render_comparison(sample_report, rep)
    assert "| retrieval_mode * | hybrid | lexical |" in text


def _stub_api(assistant: Any) -> Any:
    """A tiny server with the API's two endpoints, proxying to a real PolicyAssistant."""
    from fastapi import Body, FastAPI

    from ui.schemas import answer_json, hit_json

    app = FastAPI()

    @app.post("/api/search")
    def search(body: dict = Body(...)) -> dict:
        return {"hits": [hit_json(h) for h in assistant.search(body["query"], k=int(body.get("k", 5)))]}

    @app.post("/api/ask")
    def ask(body: dict = Body(...)) -> dict:
        return answer_json(assistant.ask(body["question"], [tuple(t) for t in body.get("history") or []]))

    return app


def _same_outcomes(a: dict[str, Any], b: dict[str, Any]) -> None:
    for x, y in zip(a["results"], b["results"], strict=True):
        assert x["id"] == y["id"]
        assert x["refused"] == y["refused"]
        assert [c["clause_id"] for c in x["citations"]] == [c["clause_id"] for c in y["citations"]]
        if x["retrieval"]:
            assert x["retrieval"]["first_rank"] == y["retrieval"]["first_rank"]
    for name in ("recall@1", "recall@5", "mrr", "gold_citation_recall", "keyword_accuracy", "citation_recall"):
        assert a["metrics"][name] == pytest.approx(b["metrics"][name])


def test_endpoint_mode_against_a_stub_server_matches_in_process(built_assistant, sample_report) -> None:
    from fastapi.testclient import TestClient

    with TestClient(_stub_api(built_assistant)) as client:
        backend = HttpBackend("http://stub", client=client)
        rep = run_eval(_sample(), backend, judge=built_assistant.judge, dataset="sample")
    assert rep["config"]["backend"] == "http"
    _same_outcomes(sample_report, rep)


def test_endpoint_mode_against_the_real_api(built_assistant, sample_report) -> None:
    from fastapi.testclient import TestClient

    from ui.server import create_app

    try:
        app = create_app(built_assistant, with_ui=False)
    except TypeError:
        app = create_app(built_assistant)
    with TestClient(app) as client:
        rep = run_eval(_sample(), HttpBackend("http://api", client=client), judge=built_assistant.judge)
    _same_outcomes(sample_report, rep)


def test_cli_eval_writes_the_report_and_checks_a_baseline(built_assistant, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ui.cli import app

    data = str(built_assistant.settings.data_dir)
    runner = CliRunner()
    res = runner.invoke(app, ["eval", "--data-dir", data, "--limit", "6", "--out", str(tmp_path / "a"),
                              "--no-charts", "-q"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "a" / "report.md").exists() and "mrr=" in res.output
    impossible = tmp_path / "baseline.json"
    impossible.write_text(json.dumps({"tolerance": 0.0, "metrics": {"mrr": 1.01}}), encoding="utf-8")
    res = runner.invoke(app, ["eval", "check", str(tmp_path / "a"), "--baseline", str(impossible)])
    assert res.exit_code == 1 and "mrr" in res.output
    res = runner.invoke(app, ["eval", "compare", str(tmp_path / "a"), str(tmp_path / "a" / "report.json")])
    assert res.exit_code == 0 and "B − A" in res.output
    res = runner.invoke(app, ["eval", "--dataset", str(tmp_path / "missing.jsonl"), "--data-dir", data])
    assert res.exit_code == 2 and "cannot read" in res.output


def test_dev_set_meets_the_committed_baseline(built_assistant) -> None:
    """The CI gate: the whole dev set must not fall below eval/baseline.json by more than its tolerance."""
    report = run_eval(load_dataset(DEV), InProcessBackend(built_assistant), judge=built_assistant.judge,
                      dataset="dev")
    problems = check_baseline(report["metrics"], load_baseline(BASELINE))
    assert problems == [], "\n".join(problems)
