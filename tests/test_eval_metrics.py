"""The eval's pure parts: dataset format and validation, metrics, comparison, baseline check, calibration maths."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from eval.calibrate import _agreement
from eval.compare import check_baseline, render_comparison
from eval.dataset import (
    CALIBRATION,
    DEV,
    SEALED_TEST,
    TRAIN,
    CorpusClause,
    DatasetError,
    EvalItem,
    gold_units,
    load_dataset,
    matches,
    shipped_clauses,
    validate,
)
from eval.metrics import aggregate, breakdown, citation_scores, first_rank, ndcg_at, split_statements, unit_coverage
from eval.runner import failures


def _write(tmp_path: Path, rows: list[object]) -> Path:
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows),
                    encoding="utf-8")
    return path


# ---------------------------------------------------------------------- dataset
def test_shipped_datasets_load_and_every_gold_exists_in_the_corpus() -> None:
    clauses = shipped_clauses()
    assert len(clauses) > 500
    for path in (DEV, CALIBRATION, TRAIN, SEALED_TEST):
        items = load_dataset(path)
        assert validate(items, clauses) == [], path.name
    dev = load_dataset(DEV)
    assert len(dev) >= 100
    assert {i.lang for i in dev} == {"zh", "en"}
    assert sum(i.must_refuse for i in dev) >= 10
    assert not {i.id for i in dev} & {i.id for i in load_dataset(CALIBRATION)}


def test_dev_and_calibration_questions_do_not_overlap() -> None:
    dev = {i.question for i in load_dataset(DEV)}
    cal = {i.question for i in load_dataset(CALIBRATION)}
    assert not dev & cal


def test_training_and_sealed_sets_are_disjoint_and_as_large_as_promised() -> None:
    train, sealed = load_dataset(TRAIN), load_dataset(SEALED_TEST)
    assert len(train) >= 600 and sum(i.must_refuse for i in train) >= 200
    assert len(sealed) >= 150
    questions = {i.question for i in sealed}
    for other in (train, load_dataset(DEV), load_dataset(CALIBRATION)):
        assert not questions & {i.question for i in other}
        assert not {i.id for i in sealed} & {i.id for i in other}
    assert {i.style for i in train} >= {"colloquial", "official", "english", "mixed", "typo", "traditional", "followup"}


def test_quote_matching_normalises_width_whitespace_and_quote_marks() -> None:
    text = "试点离境退税“一单一包一码”便利化模式，\n推动ＱＦＬＰ试点。"
    assert matches("x", text, 'quote:离境退税"一单一包一码"便利化')
    assert matches("x", text, "quote:离境退税「一单一包一码」")
    assert matches("x", text, "quote:便利化模式，推动QFLP")  # full-width letters, line break
    assert not matches("x", text, "quote:一单一包两码")


def test_id_matching_includes_the_parts_of_a_split_article() -> None:
    assert matches("law/第三条", "", "id:law/第三条")
    assert matches("law/第三条/2", "", "id:law/第三条")
    assert not matches("law/第三十条", "", "id:law/第三条")


def test_validate_names_each_missing_gold() -> None:
    clauses = [CorpusClause("d/1", "数据出境安全评估"), CorpusClause("d/2/1", "个人信息保护")]
    items = [EvalItem(id="q1", question="?", gold_quotes=["出境安全", "不存在的句子"], gold_clause_ids=["d/2", "d/9"])]
    problems = validate(items, clauses)
    assert len(problems) == 2
    assert "d/9" in problems[0] and "不存在的句子" in problems[1]


def test_loader_rejects_bad_lines_with_their_line_number(tmp_path: Path) -> None:
    good = {"id": "a", "question": "q", "gold_quotes": ["x"]}
    with pytest.raises(DatasetError, match=":2: not JSON"):
        load_dataset(_write(tmp_path, [good, "{oops"]))
    with pytest.raises(DatasetError, match="duplicate id"):
        load_dataset(_write(tmp_path, [good, good]))
    with pytest.raises(DatasetError, match="must be refused"):
        load_dataset(_write(tmp_path, [{"id": "b", "question": "q", "gold_quotes": ["x"], "must_refuse": True}]))
    with pytest.raises(DatasetError, match="needs gold"):
        load_dataset(_write(tmp_path, [{"id": "c", "question": "q"}]))
    with pytest.raises(DatasetError, match="lang"):
        load_dataset(_write(tmp_path, [{**good, "lang": "fr"}]))
    items = load_dataset(_write(tmp_path, [{**good, "history": [["上一问", "上一答"]]}, ""]))
    assert items[0].history == [("上一问", "上一答")] and gold_units(items[0]) == ["quote:x"]


# ---------------------------------------------------------------------- metrics
def test_retrieval_metrics_on_a_known_ranking() -> None:
    matched = [[], ["quote:a"], [], ["quote:a"], ["quote:b"]]
    assert first_rank(matched) == 2
    assert first_rank([[], []]) is None
    assert unit_coverage(matched, 2, 3) == 0.5
    assert unit_coverage(matched, 2, 10) == 1.0
    # the repeated unit at rank 4 gains nothing; ideal covers 2 units at ranks 1-2
    expected = (1 / math.log2(3) + 1 / math.log2(6)) / (1 + 1 / math.log2(3))
    assert ndcg_at(matched, 2, 10) == pytest.approx(expected)
    assert ndcg_at([["quote:a"]], 1, 10) == 1.0


def test_statements_split_at_citation_markers_and_skip_headings() -> None:
    answer = "根据现有条款：\n1. 《方案》一：「甲。乙。」[一（1）]\n2. 丙[A][B] 丁。\nThe corpus lists:\n"
    got = [(s.text, s.labels) for s in split_statements(answer)]
    assert got == [("1. 《方案》一：「甲。乙。」", ["一（1）"]), ("2. 丙", ["A", "B"]), ("丁。", [])]


def test_alce_citation_recall_and_precision() -> None:
    texts = {"A": "alpha", "B": "beta", "C": "gamma"}

    def supports(sentence: str, clauses: list[str]) -> bool:  # a statement needs every word it names
        return all(any(w in c for c in clauses) for w in sentence.split())

    from eval.metrics import Statement

    st = [Statement("alpha", ["A", "B"]),  # B is irrelevant: A alone supports, B does not
          Statement("alpha beta", ["A", "B"]),  # both needed
          Statement("gamma", []),  # uncited: recall 0
          Statement("delta", ["C", "Z"])]  # unsupported; Z is an unknown label
    out = citation_scores(st, texts, supports)
    assert out["recall"] == pytest.approx(2 / 4)
    assert out["n_citations"] == 5
    assert out["precision"] == pytest.approx(3 / 5)
    assert out["statements"][3]["unknown_labels"] == ["Z"]
    assert citation_scores([], texts, supports)["recall"] is None


def _rec(**kw: object) -> dict:
    base = {"id": "q", "type": "fact", "lang": "zh", "must_refuse": False, "refused": False, "n_gold_units": 1,
            "retrieval": {"first_rank": 1, "ndcg@10": 1.0, "coverage@10": 1.0, "hits": []},
            "citation_recall": 1.0, "citation_precision": 1.0, "gold_cited": 1.0, "keywords": ["k"],
            "keywords_found": [True], "latency_ms": 10.0, "citations": [], "statements": [], "support_score": 0.5}
    base.update(kw)
    return base


def test_aggregate_counts_refusals_keywords_and_ranks() -> None:
    results = [
        _rec(),
        _rec(id="b", lang="en", retrieval={"first_rank": 3, "ndcg@10": 0.5, "coverage@10": 1.0, "hits": []},
             keywords_found=[False], latency_ms=30.0),
        _rec(id="c", refused=True, gold_cited=0.0, citation_recall=None, citation_precision=None,
             retrieval={"first_rank": None, "ndcg@10": 0.0, "coverage@10": 0.0, "hits": []}),
        _rec(id="d", type="unanswerable", must_refuse=True, refused=True, retrieval=None, n_gold_units=0,
             gold_cited=None, keywords=[], keywords_found=[]),
        _rec(id="e", type="unanswerable", must_refuse=True, refused=False, retrieval=None, n_gold_units=0,
             gold_cited=None, keywords=[], keywords_found=[]),
    ]
    m = aggregate(results)
    assert (m["n"], m["n_answerable"], m["n_unanswerable"]) == (5, 3, 2)
    assert m["recall@1"] == pytest.approx(1 / 3)
    assert m["recall@5"] == pytest.approx(2 / 3)
    assert m["mrr"] == pytest.approx((1 + 1 / 3) / 3)
    assert m["refusal_precision"] == 0.5 and m["refusal_recall"] == 0.5
    assert m["false_refusal_rate"] == pytest.approx(1 / 3)
    assert m["keyword_accuracy"] == pytest.approx(1 / 3)  # the refused one scores 0 even though found
    assert m["gold_citation_recall"] == pytest.approx(2 / 3)
    by_lang = breakdown(results, "lang")
    assert by_lang["en"]["n"] == 1 and by_lang["en"]["refusal_recall"] is None


def test_failure_reasons_name_the_stage_that_failed() -> None:
    ok = _rec(citations=[{"clause_id": "x", "matched": ["quote:a"]}])
    assert failures(ok) == []
    missed = _rec(retrieval={"first_rank": None, "ndcg@10": 0, "coverage@10": 0,
                             "hits": [{"clause_id": "y", "matched": []}]}, keywords_found=[False])
    reasons = failures(missed)
    assert reasons[0].startswith("retrieval miss") and "y" in reasons[0]
    assert any(r.startswith("gold citation: cites no gold clause") for r in reasons)
    assert any(r.startswith("keywords: missing ['k']") for r in reasons)
    wrong = _rec(must_refuse=True, refused=False, support_score=0.61, citations=[{"clause_id": "z", "matched": []}])
    assert failures(wrong) == ["refusal: answered a question that must be refused (support score 0.610); cited z"]


# ------------------------------------------------------------- compare, baseline
def test_baseline_check_uses_the_tolerance() -> None:
    base = {"tolerance": 0.03, "tolerances": {"mrr": 0.01}, "metrics": {"recall@5": 0.90, "mrr": 0.80}}
    assert check_baseline({"recall@5": 0.875, "mrr": 0.795}, base) == []
    problems = check_baseline({"recall@5": 0.86, "mrr": 0.78}, base)
    assert [p.split(":")[0] for p in problems] == ["recall@5", "mrr"]
    assert "missing" in check_baseline({"mrr": 0.8}, base)[0]


def test_committed_baseline_names_headline_metrics() -> None:
    from eval.compare import BASELINE, load_baseline
    from eval.metrics import HEADLINE

    base = load_baseline(BASELINE)
    assert 0 < base["tolerance"] <= 0.1
    assert set(base["metrics"]) <= set(HEADLINE) and {"recall@5", "mrr"} <= set(base["metrics"])


def test_comparison_shows_both_values_and_the_difference() -> None:
    a = {"config": {"retrieval_mode": "dense"}, "metrics": {"mrr": 0.5}, "by_type": {}, "by_lang": {},
         "results": [_rec(id="q1", failures=["retrieval rank: x"]), _rec(id="q2", failures=[])]}
    b = {"config": {"retrieval_mode": "hybrid"}, "metrics": {"mrr": 0.75}, "by_type": {}, "by_lang": {},
         "results": [_rec(id="q1", failures=[]), _rec(id="q2", failures=[])]}
    text = render_comparison(a, b)
    assert "| mrr | 0.500 | 0.750 | +0.250 |" in text
    assert "| retrieval_mode * | dense | hybrid |" in text
    assert "| q1 | retrieval rank | ok |" in text and "| q2 |" not in text


# ------------------------------------------------------------------ calibration
def test_agreement_and_kappa() -> None:
    out = _agreement([True, True, False, False], [True, False, False, False])
    assert out["accuracy"] == 0.75 and out["precision"] == 0.5 and out["recall"] == 1.0
    assert out["kappa"] == pytest.approx(0.5)


def test_cli_validate_lists_missing_gold_and_fails(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ui.cli import app

    runner = CliRunner()
    ok = runner.invoke(app, ["eval", "validate", str(DEV)])
    assert ok.exit_code == 0 and "0 gold units missing" in ok.output
    bad = _write(tmp_path, [{"id": "x", "question": "q", "gold_quotes": ["不存在的引文"]}])
    res = runner.invoke(app, ["eval", "validate", str(bad)])
    assert res.exit_code == 1 and "x: gold quote '不存在的引文' is in no clause" in res.output
    broken = _write(tmp_path, ["{"])
    res = runner.invoke(app, ["eval", "validate", str(broken)])
    assert res.exit_code == 2 and "not JSON" in res.output


def test_bench_table_marks_each_target_met_or_missed() -> None:
    from eval.bench import render

    res = {"embedding_model": "use-m3", "embedding_models": "use-m3", "retrieval_mode": "hybrid",
           "dev_questions": 118, "recall@1": 0.8, "recall@5": 0.98, "mrr": 0.85, "ask_p50_ms": 70.0, "ask_p95_ms": 90.0,
           "upload_clauses": 120, "upload_clauses_per_s": 25.0, "refusal_recall": 0.9, "false_refusal_rate": 0.08,
           "refusal_precision": 0.7, "search_queries": 236, "search_p50_ms": 12.0, "search_p95_ms": 40.0,
           "ingest_documents": 14, "ingest_clauses": 926, "ingest_s": 61.0, "model_load_s": 2.0,
           "cold_start_s": 4.0, "cold_start_runs_s": [4.0], "cold_start_peak_rss_mb": 300.0,
           "process_peak_rss_mb": 400.0, "answer_head": "根据现有条款："}
    table = render(res, "python -m eval.bench")
    assert table.startswith("$ python -m eval.bench")
    rows = {line.split("|")[1].strip(): line.split("|")[4].strip() for line in table.splitlines()
            if line.startswith("| ") and "measure" not in line}
    assert rows["dev R@5 (answerable)"] == "ok" and rows["dev MRR (answerable)"] == "MISSED"
    assert rows["answerable refused"] == "MISSED" and rows["refusal recall (must refuse)"] == "ok"
    assert rows["search p50, warm (236 queries)"] == "ok"
    assert rows["shipped corpus ready (14 docs, 926 clauses; shipped vectors)"] == "MISSED"
    assert rows["ask p50, warm (extractive, 118 questions)"] == "MISSED"
    assert rows["upload of new text (120 clauses, all embedded)"] == "ok"
    assert rows["cold start `policy-assistant ask` (median of 3)"] == "ok"
