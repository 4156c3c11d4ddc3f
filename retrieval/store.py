"""Clause storage in Chroma: vectors, texts, metadata and a registry of documents.

Writes are crash-safe and never expose half a document:

1. the new clauses are added under ids ``<clause_id>@<hash12>`` (a new *generation*);
2. the registry entry of the document is switched to the new hash (the commit point);
3. clauses of older generations are deleted.

A write that fails (storage error) removes the records it added at once (:meth:`ClauseStore.cleanup`:
the document's clauses its committed generation does not name; the previous version stays). A crash, or a
storage that also refuses the cleanup, leaves extra generations behind, which :meth:`ClauseStore.repair`
removes at the next start; a reader only ever trusts the generation the registry names.

Usage::

    client = make_client(data_dir=Path("data/chroma"))
    store = ClauseStore(client, make_embedder("use-m3"))
    store.upsert(parsed_document)
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import chromadb
from chromadb.api import ClientAPI
from chromadb.api.collection_configuration import CreateHNSWConfiguration
from chromadb.config import Settings as ChromaSettings

from corpus.models import Clause, DocumentMeta, ParsedDocument
from retrieval.embeddings import Embedder, PolicyEmbeddingFunction, collection_slug

log = logging.getLogger(__name__)

_BATCH = 256


def make_client(data_dir: Path | None = None, host: str | None = None, port: int = 8000) -> ClientAPI:
    """An embedded ``PersistentClient`` in ``data_dir``, or an ``HttpClient`` when ``host`` is set."""
    settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if host:
        return chromadb.HttpClient(host=host, port=port, settings=settings)
    if data_dir is None:
        raise ValueError("data_dir is required for an embedded Chroma")
    data_dir.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(data_dir), settings=settings)


class StoredDocument:
    """A committed document in the registry."""

    __slots__ = ("meta", "content_hash", "clause_count", "ingested_at")

    def __init__(self, meta: DocumentMeta, content_hash: str, clause_count: int, ingested_at: float) -> None:
        self.meta = meta
        self.content_hash = content_hash
        self.clause_count = clause_count
        self.ingested_at = ingested_at


#: The registry record that names the corpus generation (not a document).
GENERATION_ID = "__corpus_generation__"


def _generation(content_hash: str) -> str:
    return content_hash[:12]


#: The clause collection's vector index settings (see the comment where it is created).
HNSW: CreateHNSWConfiguration = {"space": "cosine", "ef_construction": 200, "ef_search": 200, "num_threads": 1}


class ClauseStore:
    """Chroma collections for one embedding model: ``<prefix>-<model>`` and its registry.

    Args:
        client: a Chroma client (persistent or HTTP).
        embedder: the embedding model; its spec names the collection, so switching models
            never mixes vectors.
        prefix: collection name prefix.
    """

    def __init__(self, client: ClientAPI, embedder: Embedder, prefix: str = "clauses") -> None:
        self.client = client
        self.embedder = embedder
        name = f"{prefix}-{collection_slug(embedder.spec)}"
        self.collection = client.get_or_create_collection(
            name=name,
            embedding_function=PolicyEmbeddingFunction(embedder),  # type: ignore[arg-type]
            # One build thread and a wide search beam: the same corpus gives the same index and the same
            # ranking in every process (a multi-threaded HNSW build is not deterministic).
            configuration={"hnsw": HNSW},
            metadata={"embedding_model": embedder.spec},
        )
        self.registry = client.get_or_create_collection(
            name=f"{name}-registry",
            embedding_function=None,
            configuration={"hnsw": {"space": "l2"}},
        )

    # ---------------------------------------------------------------- reads
    def generation(self) -> str:
        """The corpus generation: changes with every committed write (one small read; replicas poll it)."""
        got = self.registry.get(ids=[GENERATION_ID], include=["metadatas"])
        if not got["ids"]:
            return ""
        return str(((got["metadatas"] or [{}])[0] or {}).get("gen", ""))

    def _bump_generation(self) -> None:
        import uuid

        self.registry.upsert(ids=[GENERATION_ID], embeddings=[[1.0]],  # type: ignore[arg-type]
                             documents=[""], metadatas=[{"gen": uuid.uuid4().hex, "at": time.time()}])

    def documents(self) -> dict[str, StoredDocument]:
        """Committed documents by id."""
        got = self.registry.get(include=["documents", "metadatas"])
        out: dict[str, StoredDocument] = {}
        for doc_id, doc, md in zip(got["ids"], got["documents"] or [], got["metadatas"] or []):
            if md.get("state") != "ready":
                continue
            out[doc_id] = StoredDocument(
                meta=DocumentMeta(**json.loads(doc or "{}")),
                content_hash=str(md["hash"]),
                clause_count=int(str(md.get("clauses", 0))),
                ingested_at=float(str(md.get("at", 0.0))),
            )
        return out

    def clauses(self, docs: dict[str, StoredDocument] | None = None) -> list[tuple[str, Clause]]:
        """Every clause of a committed generation as ``(chroma_id, Clause)``, in document order.

        ``docs`` is :meth:`documents` when the caller has just read it.
        """
        docs = self.documents() if docs is None else docs
        live = {doc_id: _generation(d.content_hash) for doc_id, d in docs.items()}
        out: list[tuple[str, Clause]] = []
        for cid, text, md in self._iter_all():
            if live.get(str(md.get("doc_id"))) != md.get("gen"):
                continue
            out.append((cid, self._to_clause(text, md)))
        order = {doc_id: i for i, doc_id in enumerate(docs)}
        out.sort(key=lambda item: (order.get(item[1].doc_id, 0), item[1].order))
        return out

    def query(self, vector: list[float], k: int, doc_id: str | None = None,
              doc_ids: list[str] | None = None, limit: int | None = None) -> list[tuple[str, float]]:
        """Nearest clauses as ``(chroma_id, cosine similarity)``, optionally within some documents.

        ``limit`` is a known lower bound of the collection's size (saves a count round trip).
        """
        where: dict[str, Any] | None = None
        if doc_id:
            where = {"doc_id": doc_id}
        elif doc_ids:
            where = {"doc_id": {"$in": list(doc_ids)}}
        count = self.collection.count() if limit is None else limit
        if count <= 0:
            return []
        res = self.collection.query(
            query_embeddings=[vector],  # type: ignore[arg-type]
            n_results=min(k, count),
            where=where,
            include=["distances"],
        )
        ids = res["ids"][0]
        distances = (res["distances"] or [[]])[0]
        return [(cid, 1.0 - float(d)) for cid, d in zip(ids, distances)]

    # --------------------------------------------------------------- writes
    def upsert(self, parsed: ParsedDocument, ingested_at: float | None = None) -> bool:
        """Store a document's clauses; returns False (and writes nothing) when unchanged.

        ``ingested_at`` (a Unix time) is recorded as when this version was added (a restored backup keeps its
        documents' times); default: now."""
        meta = parsed.meta
        current = self._registry_entry(meta.doc_id)
        if current and current.get("state") == "ready" and current.get("hash") == parsed.content_hash:
            return False
        gen = _generation(parsed.content_hash)
        ids = [f"{c.clause_id}@{gen}" for c in parsed.clauses]
        texts = [c.text for c in parsed.clauses]
        vectors = self.embedder.embed_documents(texts)
        metadatas: list[Any] = [self._metadata(c, gen) for c in parsed.clauses]
        try:
            for start in range(0, len(ids), _BATCH):
                end = start + _BATCH
                self.collection.upsert(
                    ids=ids[start:end],
                    embeddings=[v.tolist() for v in vectors[start:end]],  # type: ignore[arg-type]
                    documents=texts[start:end],
                    metadatas=metadatas[start:end],
                )
            # Commit point: the registry now names the new generation.
            self.registry.upsert(
                ids=[meta.doc_id],
                embeddings=[[1.0]],  # type: ignore[arg-type]
                documents=[meta.model_dump_json()],
                metadatas=[{"state": "ready", "hash": parsed.content_hash, "clauses": len(ids),
                            "at": time.time() if ingested_at is None else float(ingested_at)}],
            )
        except Exception:
            self.cleanup(meta.doc_id)
            raise
        # Committed: the new version is the document now. Older generations are invisible to readers; if the
        # storage refuses to delete them now, they stay until repair() at the next start.
        try:
            self.collection.delete(where={"$and": [{"doc_id": meta.doc_id}, {"gen": {"$ne": gen}}]})  # type: ignore[dict-item]
        except Exception as exc:  # noqa: BLE001 - the write itself succeeded
            log.warning("could not delete the older clauses of %r (left to repair at restart): %s", meta.doc_id, exc)
        self._bump_generation()
        return True

    def cleanup(self, doc_id: str) -> int:
        """Right after a failed write: delete the document's clauses that its committed generation does not name.

        The committed version (the registry entry, if any) stays as it was; with no registry entry every clause
        of ``doc_id`` goes. Best effort: when the storage refuses this too (read-only, full), the records stay
        until :meth:`repair` removes them on the next start. Returns how many records were deleted.
        """
        try:
            entry = self._registry_entry(doc_id)
            got = self.collection.get(where={"doc_id": doc_id}, include=["metadatas"])
            live = _generation(str(entry["hash"])) if entry and entry.get("hash") else None
            stale = [cid for cid, md in zip(got["ids"], got["metadatas"] or [])
                     if live is None or (md or {}).get("gen") != live]
            for start in range(0, len(stale), _BATCH):
                self.collection.delete(ids=stale[start:start + _BATCH])
        except Exception as exc:  # noqa: BLE001 - the original error is the one to report
            log.warning("could not clean up after a failed write of %r (left to repair at restart): %s", doc_id, exc)
            return 0
        if stale:
            log.warning("removed %d partial clauses of %r after a failed write", len(stale), doc_id)
        return len(stale)

    def delete(self, doc_id: str) -> bool:
        """Remove a document and every one of its clauses; False when it is unknown."""
        known = self._registry_entry(doc_id) is not None
        self.registry.delete(ids=[doc_id])
        try:
            self.collection.delete(where={"doc_id": doc_id})
        except Exception:
            self.cleanup(doc_id)  # the registry entry is gone: any clause left of doc_id is an orphan
            raise
        if known:
            self._bump_generation()
        return known

    def repair(self) -> int:
        """Delete clauses that no committed document generation names (left by a crash)."""
        docs = self.documents()
        if self.collection.count() == sum(d.clause_count for d in docs.values()):
            return 0  # an interrupted write always leaves more records than the registry counts
        live = {doc_id: _generation(d.content_hash) for doc_id, d in docs.items()}
        stale = [cid for cid, _, md in self._iter_all() if live.get(str(md.get("doc_id"))) != md.get("gen")]
        for start in range(0, len(stale), _BATCH):
            self.collection.delete(ids=stale[start:start + _BATCH])
        if stale:
            log.warning("removed %d clauses left by an interrupted write", len(stale))
        return len(stale)

    # -------------------------------------------------------------- helpers
    def _registry_entry(self, doc_id: str) -> dict[str, Any] | None:
        got = self.registry.get(ids=[doc_id], include=["metadatas"])
        if not got["ids"]:
            return None
        return dict((got["metadatas"] or [{}])[0] or {})

    def _iter_all(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        total = self.collection.count()
        page = 1000
        for offset in range(0, total, page):
            got = self.collection.get(include=["documents", "metadatas"], limit=page, offset=offset)
            for cid, text, md in zip(got["ids"], got["documents"] or [], got["metadatas"] or []):
                yield cid, text or "", dict(md or {})

    @staticmethod
    def _metadata(clause: Clause, gen: str) -> dict[str, Any]:
        return {
            "clause_id": clause.clause_id,
            "doc_id": clause.doc_id,
            "doc_title": clause.doc_title,
            "path": json.dumps(clause.path, ensure_ascii=False),
            "label": clause.label,
            "order": clause.order,
            "kind": clause.kind,
            "gen": gen,
        }

    @staticmethod
    def _to_clause(text: str, md: dict[str, Any]) -> Clause:
        return Clause(
            clause_id=str(md["clause_id"]),
            doc_id=str(md["doc_id"]),
            doc_title=str(md.get("doc_title", "")),
            path=list(json.loads(str(md.get("path", "[]")))),
            label=str(md.get("label", "")),
            text=text,
            order=int(md.get("order", 0)),
            kind=str(md.get("kind", "")),
        )
