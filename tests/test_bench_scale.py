"""The scale benchmark's corpus builder and one tiny run end to end (figures are printed, not asserted)."""

from __future__ import annotations

import re

import pytest

from eval import bench_scale


def test_recombined_corpus_has_the_requested_clauses_in_parseable_files(tmp_path) -> None:
    files = bench_scale.write_corpus(tmp_path, 120)
    assert len(files) == 3  # 50 + 50 + 20
    from corpus.loaders import DocumentLoader
    from corpus.models import DocumentMeta
    from corpus.parsing import ClauseParser

    total = 0
    for f in files:
        text, _ = DocumentLoader().run(f)
        parsed = ClauseParser().run(DocumentMeta(doc_id=f.stem, title=f.stem), text)
        total += len(parsed.clauses)
        assert all(re.search(r"[\u4e00-\u9fff]{10}", c.text) for c in parsed.clauses)
    assert total == 120
    assert bench_scale.write_corpus(tmp_path / "again", 120)[0].read_text() == files[0].read_text()  # seeded


@pytest.mark.model
def test_a_tiny_embedded_run_reports_every_figure(tmp_path, capsys) -> None:
    assert bench_scale.main(["--sizes", "100", "--modes", "embedded", "--work", str(tmp_path), "--json"]) == 0
    import json

    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["mode"] == "embedded" and row["clauses"] == 100 and row["ask_errors"] == 0
    for key in ("ingest_clauses_per_s", "disk_mb", "cold_search_s", "search_p95_ms", "ask_p95_ms_10_concurrent",
                "ingest_peak_rss_mb"):
        assert row[key] > 0, key
    assert list((tmp_path / "embedded-100" / "data" / "lexical").glob("bm25-*"))  # the ingest saved the index
