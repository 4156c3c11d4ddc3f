"""Passage vectors cached by content, so a text is embedded once per model.

The shipped corpus's vectors are computed at build time (``python -m retrieval.vectors``) and ship
inside the package (``retrieval/resources/vectors-<model>.npz``); vectors of uploaded texts are
appended as small shard files in the data folder. A fresh ``make run`` therefore embeds nothing for the
shipped corpus, and an upload embeds only its new clauses.

Usage::

    cache = VectorCache("e5-small", user_dir=Path("data/vectors"))
    embedder = CachedEmbedder(make_embedder("e5-small"), cache)
    embedder.embed_documents(["支持境外医疗专业人员短期执业。"])   # from the shipped file when known
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from retrieval.embeddings import Embedder, collection_slug

log = logging.getLogger(__name__)

RESOURCES = Path(__file__).resolve().parent / "resources"


def text_key(text: str) -> str:
    """The cache key of a passage: the first 16 hex digits of its SHA-1.

    >>> text_key("放宽增值电信业务外资准入。")
    '6b72640782f750ba'
    """
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def shipped_path(spec: str) -> Path:
    return RESOURCES / f"vectors-{collection_slug(spec)}.npz"


class VectorCache:
    """Vectors of one embedding model keyed by :func:`text_key`: the shipped file plus user shards.

    Each :meth:`put_many` appends one small shard file (``<user_dir>/vectors-<model>/*.npz``, written
    to a temporary name and renamed), so an upload costs its own vectors, not a rewrite of the whole
    cache; past ``COMPACT_AT`` shards they are merged into one. The single file older versions wrote
    (``<user_dir>/vectors-<model>.npz``) is still read.

    Args:
        spec: the embedding model's spec (names the files).
        user_dir: where vectors of other texts are kept (``None``: memory only).
    """

    #: Shards beyond which the next write merges them into one file.
    COMPACT_AT = 64

    def __init__(self, spec: str, user_dir: Path | None = None) -> None:
        self.spec = spec
        self.user_path = user_dir / f"vectors-{collection_slug(spec)}.npz" if user_dir else None
        self.shard_dir = user_dir / f"vectors-{collection_slug(spec)}" if user_dir else None
        self._lock = threading.Lock()
        self._vectors: dict[str, np.ndarray] = {}
        self._load(shipped_path(spec))
        if self.user_path is not None:
            self._load(self.user_path)
        for shard in self._shards():
            self._load(shard)

    def __len__(self) -> int:
        return len(self._vectors)

    def get(self, text: str) -> np.ndarray | None:
        return self._vectors.get(text_key(text))

    def put_many(self, texts: list[str], vectors: np.ndarray) -> None:
        """Remember new vectors and persist them as one new shard file (atomically renamed)."""
        with self._lock:
            fresh: dict[str, np.ndarray] = {}
            for t, v in zip(texts, vectors):
                key = text_key(t)
                vec = np.asarray(v, dtype=np.float16)
                self._vectors[key] = vec
                fresh[key] = vec
            if fresh:
                self._append(fresh)

    def _shards(self) -> list[Path]:
        if self.shard_dir is None or not self.shard_dir.is_dir():
            return []
        return sorted(self.shard_dir.glob("shard-*.npz"))

    def _load(self, path: Path) -> None:
        if not path.exists():
            return
        try:
            with np.load(path, allow_pickle=False) as data:
                keys, vecs = data["keys"], data["vectors"]
        except (OSError, ValueError, KeyError, EOFError) as exc:  # a damaged cache only costs re-embedding
            log.warning("ignoring unreadable vector cache %s: %s", path, exc)
            return
        for k, v in zip(keys.tolist(), vecs):
            self._vectors[str(k)] = v

    def _write(self, path: Path, vectors: dict[str, np.ndarray]) -> None:
        keys = np.array(list(vectors), dtype="U16")
        vecs = np.stack(list(vectors.values())).astype(np.float16)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
        os.close(fd)
        try:
            np.savez(tmp, keys=keys, vectors=vecs)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _append(self, fresh: dict[str, np.ndarray]) -> None:
        if self.shard_dir is None:
            return
        try:
            self.shard_dir.mkdir(parents=True, exist_ok=True)
            name = f"shard-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}.npz"
            self._write(self.shard_dir / name, fresh)
            shards = self._shards()
            if len(shards) > self.COMPACT_AT:
                merged: dict[str, np.ndarray] = {}
                for shard in shards:
                    with np.load(shard, allow_pickle=False) as data:
                        merged.update(zip(data["keys"].tolist(), data["vectors"]))
                # the merged file sorts first (its time is the oldest shard's), so newer shards win
                self._write(shards[0], merged)
                for shard in shards[1:]:
                    shard.unlink(missing_ok=True)
        except (OSError, ValueError, KeyError) as exc:  # read-only data folder: the vectors stay in memory
            log.warning("cannot write the vector cache %s: %s", self.shard_dir, exc)


class CachedEmbedder:
    """An :class:`~retrieval.embeddings.Embedder` that embeds only passages its cache lacks.

    Queries are never cached. ``spec`` is the wrapped model's, so collections are named as before.
    """

    def __init__(self, inner: Embedder, cache: VectorCache) -> None:
        self.inner = inner
        self.cache = cache
        self.spec = inner.spec
        #: Seconds spent in the model embedding passages (for ingest timing).
        self.embed_seconds = 0.0
        self._held: dict[str, np.ndarray] | None = None

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Passages embedded inside the block go into the cache as one shard when it ends (a bulk write that
        embeds in parts writes one cache file, not one per part). Usage::

            with embedder.holding():
                for part in parts:
                    embedder.embed_documents(part)
        """
        if self._held is not None:  # nested: the outer block writes
            yield
            return
        self._held = {}
        try:
            yield
        finally:
            held, self._held = self._held, None
            if held:
                self.cache.put_many(list(held), np.stack(list(held.values())))

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        held = self._held
        found = [self.cache.get(t) if held is None or t not in held else held[t] for t in texts]
        missing = list(dict.fromkeys(texts[i] for i, v in enumerate(found) if v is None))  # each text once
        if missing:
            started = time.perf_counter()
            fresh = self.inner.embed_documents(missing)
            self.embed_seconds += time.perf_counter() - started
            if held is not None:
                held.update(zip(missing, np.asarray(fresh, dtype=np.float16)))
            else:
                self.cache.put_many(missing, fresh)
            by_text = dict(zip(missing, fresh))
            found = [by_text[t] if v is None else v for t, v in zip(texts, found)]
        if not texts:
            return self.inner.embed_documents([])
        out = np.stack([np.asarray(v, dtype=np.float32) for v in found])  # type: ignore[arg-type]
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def embed_query(self, text: str) -> np.ndarray:
        return self.inner.embed_query(text)


def build_shipped(spec: str) -> Path:
    """Embed every clause of the shipped corpus with ``spec`` and write the shipped vector file."""
    from corpus.loaders import DocumentLoader
    from corpus.manifest import shipped_documents
    from corpus.parsing import ClauseParser
    from retrieval.embeddings import make_embedder

    loader, parser = DocumentLoader(), ClauseParser()
    texts: list[str] = []
    for shipped in shipped_documents():
        text, _ = loader.run(shipped.path)
        texts.extend(c.text for c in parser.run(shipped.meta, text).clauses)
    texts = list(dict.fromkeys(texts))
    vectors = make_embedder(spec).embed_documents(texts)
    path = shipped_path(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, keys=np.array([text_key(t) for t in texts], dtype="U16"),
                        vectors=np.asarray(vectors, dtype=np.float16))
    return path


if __name__ == "__main__":  # pragma: no cover - build step
    import argparse
    import time

    ap = argparse.ArgumentParser(description="Compute the shipped corpus's vectors (ship them in the package).")
    ap.add_argument("specs", nargs="*", default=["e5-small", "use-m3"])
    for spec in ap.parse_args().specs:
        t0 = time.perf_counter()
        print(f"{spec}: {build_shipped(spec)} in {time.perf_counter() - t0:.1f} s")
