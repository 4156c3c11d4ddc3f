"""An index built by an older version (a narrower HNSW search beam) gets today's query settings when opened for
writing, so its rankings match a fresh build's and do not change from process to process."""

from __future__ import annotations

from fakes import StubEmbedder, parsed

from retrieval.embeddings import PolicyEmbeddingFunction
from retrieval.store import HNSW, ClauseStore, make_client


def test_an_old_index_gets_the_current_search_beam(tmp_path) -> None:
    client = make_client(tmp_path / "chroma")
    embedder = StubEmbedder()
    old = {"space": "cosine", "ef_construction": 100, "ef_search": 10}  # how an older version created it
    client.get_or_create_collection(name="t-stub-8", embedding_function=PolicyEmbeddingFunction(embedder),
                                    configuration={"hnsw": old})
    store = ClauseStore(client, embedder, prefix="t")
    assert store.collection.configuration["hnsw"]["ef_search"] == 10
    store.upsert_many([parsed("a", "v1", n=20)])
    before = store.query(embedder.embed_query("条款 3").tolist(), 5)

    assert store.tune_search() is True
    reopened = ClauseStore(make_client(tmp_path / "chroma"), embedder, prefix="t")
    assert reopened.collection.configuration["hnsw"]["ef_search"] == HNSW["ef_search"]
    assert reopened.tune_search() is False  # already current: nothing to do
    assert [cid for cid, _ in reopened.query(embedder.embed_query("条款 3").tolist(), 5)] == [cid for cid, _ in before]


def test_a_fresh_index_is_left_alone(tmp_path) -> None:
    store = ClauseStore(make_client(tmp_path / "chroma"), StubEmbedder(), prefix="t")
    assert store.tune_search() is False
    assert store.collection.configuration["hnsw"]["ef_search"] == HNSW["ef_search"]
