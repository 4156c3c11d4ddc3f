"""How a clause is stored in Chroma: one packed record, and records written by older versions still read.

A clause's fields and text travel as one JSON value in the metadata, beside the two fields writes filter on
(``doc_id``, ``gen``), and no Chroma ``document`` is written (its full-text index and one index entry per
metadata field made writes twice as slow; the product searches text with its own BM25 index).
"""

from __future__ import annotations

import json

import pytest
from fakes import StubEmbedder, parsed

from corpus.models import Clause
from retrieval.store import CLAUSE_KEY, ClauseStore, make_client


@pytest.fixture()
def store(tmp_path) -> ClauseStore:
    return ClauseStore(make_client(tmp_path / "chroma"), StubEmbedder(), prefix="t")


def test_a_clause_is_one_packed_record_without_a_chroma_document(store: ClauseStore) -> None:
    doc = parsed("a", "v1", n=3)
    store.upsert(doc)
    got = store.collection.get(include=["documents", "metadatas"])
    assert len(got["ids"]) == 3
    assert all(not d for d in got["documents"] or [None] * 3)
    for md in got["metadatas"]:
        assert set(md) == {"doc_id", "gen", CLAUSE_KEY}
        assert md["doc_id"] == "a"
        assert json.loads(md[CLAUSE_KEY])[0].startswith("a/")
    # every field comes back as it was written, in document order
    back = [c for _, c in store.clauses()]
    assert [c.model_dump() for c in back] == [c.model_dump() for c in doc.clauses]


def test_records_written_by_an_older_version_are_still_read(store: ClauseStore) -> None:
    """Before the packed record: the text as the Chroma document and one metadata field per clause field."""
    doc = parsed("old", "v1", n=2)
    store.upsert(doc)  # a committed registry entry, so the generation below is live
    gen = store.collection.get(include=["metadatas"])["metadatas"][0]["gen"]
    store.collection.delete(ids=store.collection.get()["ids"])
    store.collection.add(
        ids=[f"{c.clause_id}@{gen}" for c in doc.clauses],
        embeddings=[v.tolist() for v in StubEmbedder().embed_documents([c.text for c in doc.clauses])],
        documents=[c.text for c in doc.clauses],
        metadatas=[{"clause_id": c.clause_id, "doc_id": c.doc_id, "doc_title": c.doc_title,
                    "path": json.dumps(c.path, ensure_ascii=False), "label": c.label, "order": c.order,
                    "kind": c.kind, "gen": gen} for c in doc.clauses],
    )
    back: list[Clause] = [c for _, c in store.clauses()]
    assert [c.model_dump() for c in back] == [c.model_dump() for c in doc.clauses]
    # a new version of that document replaces the old records whole
    store.upsert(parsed("old", "v2", n=3))
    assert len(store.collection.get()["ids"]) == 3
    assert all(CLAUSE_KEY in md for md in store.collection.get(include=["metadatas"])["metadatas"])
