"""USE-m3 embeds large batches of passages in parts on PASSAGE_THREADS Python threads (NumPy's products run
without the GIL); the vectors are the ones the serial path gives, in the same order."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from retrieval.embeddings import UseM3Embedder, make_embedder

pytestmark = pytest.mark.model

TEXTS = [f"第{i}条 支持境外医疗专业人员在榕短期执业，推进服务业扩大开放综合试点第{i}项任务。" for i in range(150)]
TEXTS += ["Foreign doctors may open clinics in Fuzhou.", "数据出境安全评估。"] * 5


def test_parallel_passages_equal_the_serial_ones_in_order() -> None:
    parallel = UseM3Embedder(threads=1, passage_threads=2)
    assert parallel.passage_threads == 2 and len(TEXTS) >= parallel.PARALLEL_FROM
    seen: set[str] = set()
    encode = parallel._model.encode

    def recording(texts):
        seen.add(threading.current_thread().name)
        return encode(texts)

    parallel._model.encode = recording
    two = parallel.embed_documents(TEXTS)
    assert any(name.startswith("use-m3") for name in seen)
    serial = UseM3Embedder(threads=1, passage_threads=1)
    one = serial.embed_documents(TEXTS)
    assert two.shape == one.shape == (len(TEXTS), 512)
    np.testing.assert_allclose(two, one, atol=1e-6)
    assert np.allclose(np.linalg.norm(two, axis=1), 1.0, atol=1e-5)
    # a query and a small batch stay on the calling thread
    seen.clear()
    parallel.embed_documents(TEXTS[:3])
    parallel.embed_query(TEXTS[0])
    assert seen == {threading.current_thread().name}


def test_make_embedder_passes_passage_threads_to_use_m3() -> None:
    embedder = make_embedder("use-m3", threads=1, passage_threads=2)
    assert isinstance(embedder, UseM3Embedder) and embedder.passage_threads == 2
