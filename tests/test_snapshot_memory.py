"""Clauses read back for a snapshot are small in memory (issue 10, ingest peak RSS) and unchanged in content:
read from Chroma or from the saved snapshot file, each equals the parsed clause, the clauses share one set of
field names and one copy of their document's id, title and headings, and a field set later stays per clause."""

from __future__ import annotations

from fakes import StubEmbedder

from corpus.models import Clause, DocumentMeta, ParsedDocument
from retrieval.retriever import IndexSnapshot, load_clauses, save_clauses
from retrieval.store import ClauseStore, make_client


def document(doc_id: str, n: int) -> ParsedDocument:
    meta = DocumentMeta(doc_id=doc_id, title=f"规章 {doc_id}")
    clauses = [Clause(clause_id=f"{doc_id}/第{i}条", doc_id=doc_id, doc_title=meta.title, path=["第一章 总则", f"第{i}节"],
                      label=f"第{i}条", text=f"第{i}条 {doc_id} 数据出境安全评估 {i * 7}", order=i, kind="article")
               for i in range(n)]
    return ParsedDocument(meta=meta, clauses=clauses,
                          content_hash=ParsedDocument.hash_text("".join(c.text for c in clauses)))


def test_clauses_read_back_equal_the_parsed_ones_and_share_their_strings(tmp_path) -> None:
    docs = [document("a", 6), document("b", 4)]
    store = ClauseStore(make_client(tmp_path / "chroma"), StubEmbedder())
    assert store.upsert_many(docs) == [True, True]
    expected = [c.model_dump() for d in docs for c in d.clauses]

    snap = IndexSnapshot.build(store, lexical_dir=tmp_path / "lexical")  # read from Chroma, saved to a file
    again = IndexSnapshot.build(store, lexical_dir=tmp_path / "lexical")  # read from the file
    for got in (snap.clauses, again.clauses):
        assert [c.model_dump() for c in got] == expected
        assert all(c.model_fields_set == set(Clause.model_fields) for c in got)
        assert len({id(c.model_fields_set) for c in got}) == 1  # one set, not one per clause
        for first, other in zip(got, got[1:]):
            if first.doc_id == other.doc_id:
                assert first.doc_title is other.doc_title and first.doc_id is other.doc_id
                assert first.path[0] is other.path[0] and first.kind is other.kind
    assert again.chroma_ids == snap.chroma_ids

    clause = snap.clauses[0]  # a later assignment changes that clause only
    clause.text = "改过的文字"
    assert snap.clauses[1].text == docs[0].clauses[1].text
    assert clause.model_fields_set == set(Clause.model_fields) and clause.model_dump()["text"] == "改过的文字"


def test_saved_snapshot_file_round_trip(tmp_path) -> None:
    docs = [document("c", 3)]
    store = ClauseStore(make_client(tmp_path / "chroma"), StubEmbedder())
    store.upsert_many(docs)
    pairs = store.clauses()
    assert save_clauses(tmp_path, "key", pairs) is not None
    loaded = load_clauses(tmp_path, "key")
    assert loaded is not None
    assert [(cid, c.model_dump()) for cid, c in loaded] == [(cid, c.model_dump()) for cid, c in pairs]
    assert load_clauses(tmp_path, "other key") is None
