"""Clause storage in Chroma: vectors, texts, metadata and a registry of documents.

Writes are crash-safe and never expose half a document:

1. the new clauses are added under ids ``<clause_id>@<hash12>`` (a new *generation*);
2. the registry entry of the document is switched to the new hash (the commit point);
3. clauses of older generations are deleted.

A bulk write (:meth:`ClauseStore.upsert_many`) does the same for many documents at once: all their clauses
first (embedded and added in large batches), then one registry write naming every new generation, one delete of
the older ones and one corpus-generation bump, so a batch of files costs a few Chroma round trips, not a few per
file.

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
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import chromadb
import numpy as np
from chromadb.api import ClientAPI
from chromadb.api.collection_configuration import CreateHNSWConfiguration
from chromadb.config import Settings as ChromaSettings

from corpus.models import Clause, DocumentMeta, ParsedDocument
from retrieval.embeddings import Embedder, PolicyEmbeddingFunction, collection_slug

log = logging.getLogger(__name__)

#: Records per Chroma write (and per delete); capped by the client's maximum batch size.
_BATCH = 2000
#: Clauses embedded per part of a write: large enough for batched embedding, small enough that Chroma's writing of
#: one part overlaps the embedding of the next (see ``ClauseStore._add_records``).
_EMBED_BATCH = 512


def _names(doc_ids: list[str]) -> str:
    return repr(doc_ids[0]) if len(doc_ids) == 1 else f"{len(doc_ids)} documents ({doc_ids[0]!r}, ...)"


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


#: The metadata key holding a clause's fields and text as one JSON array (see :meth:`ClauseStore._metadata`).
CLAUSE_KEY = "clause"
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
        self._max_batch: int | None = None
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

    def tune_search(self) -> bool:
        """Give an index built by an older version today's query settings (``ef_search``, one thread), which
        Chroma lets change after creation: a narrower beam missed some of the 50 nearest clauses, differently
        from process to process, so the same question could rank differently after a restart. Returns
        whether anything changed (the build-time ``ef_construction`` cannot change; a rebuild gives that)."""
        hnsw = (self.collection.configuration or {}).get("hnsw") or {}
        if int(hnsw.get("ef_search") or HNSW["ef_search"]) >= HNSW["ef_search"]:
            return False
        self.collection.modify(configuration={"hnsw": {"ef_search": HNSW["ef_search"], "num_threads": 1}})
        return True

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
        strings: dict[str, str] = {}
        for cid, text, md in self._iter_all():
            if live.get(str(md.get("doc_id"))) != md.get("gen"):
                continue
            out.append((cid, self._to_clause(text, md, strings)))
        order = {doc_id: i for i, doc_id in enumerate(docs)}
        out.sort(key=lambda item: (order.get(item[1].doc_id, 0), item[1].order))
        return out

    def query(self, vector: list[float], k: int, doc_id: str | None = None,
              limit: int | None = None) -> list[tuple[str, float]]:
        """Nearest clauses as ``(chroma_id, cosine similarity)``, optionally within one document.

        ``limit`` is a known lower bound of the collection's size (saves a count round trip).
        """
        where: dict[str, Any] | None = {"doc_id": doc_id} if doc_id else None
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
        return self.upsert_many([parsed], ingested_at=ingested_at)[0]

    def upsert_many(self, docs: list[ParsedDocument], ingested_at: float | None = None) -> list[bool]:
        """Store many documents as one write (bulk ingestion); per document, whether it changed.

        One registry read for all of them; the clauses of every changed document are embedded in large
        batches and added in large Chroma batches (new generations, invisible to readers); then one registry
        write names all the new generations (the commit point), one delete removes their older generations
        and the corpus generation moves once. A failure before the commit removes every record this call
        added (:meth:`cleanup_many`) and no document changes. A document id given twice is written twice, in
        order (the later version wins), as separate writes.
        """
        out: list[bool] = []
        start = 0
        while start < len(docs):  # split where a doc_id repeats: each write holds a document once
            seen: set[str] = set()
            end = start
            while end < len(docs) and docs[end].meta.doc_id not in seen:
                seen.add(docs[end].meta.doc_id)
                end += 1
            out.extend(self._write(docs[start:end], ingested_at))
            start = end
        return out

    def _write(self, docs: list[ParsedDocument], ingested_at: float | None) -> list[bool]:
        entries = self._registry_entries([p.meta.doc_id for p in docs])
        changed = [i for i, p in enumerate(docs)
                   if not ((e := entries.get(p.meta.doc_id)) and e.get("state") == "ready"
                           and e.get("hash") == p.content_hash)]
        if not changed:
            return [False] * len(docs)
        todo = [docs[i] for i in changed]
        doc_ids = [p.meta.doc_id for p in todo]
        clauses = [(c, _generation(p.content_hash)) for p in todo for c in p.clauses]
        try:
            self._add_records(clauses)
            # Commit point: the registry now names the new generations (one write for the whole batch).
            at = time.time() if ingested_at is None else float(ingested_at)
            step = self._write_batch()
            for start in range(0, len(todo), step):
                batch = todo[start:start + step]
                self.registry.upsert(
                    ids=[p.meta.doc_id for p in batch],
                    embeddings=[[1.0]] * len(batch),  # type: ignore[arg-type]
                    documents=[p.meta.model_dump_json() for p in batch],
                    metadatas=[{"state": "ready", "hash": p.content_hash, "clauses": len(p.clauses), "at": at}
                               for p in batch],
                )
        except Exception:
            self.cleanup_many(doc_ids)
            raise
        # Committed: the new versions are the documents now. Older generations are invisible to readers; if the
        # storage refuses to delete them now, they stay until repair() at the next start.
        for start in range(0, len(todo), 100):
            older = [{"$and": [{"doc_id": p.meta.doc_id}, {"gen": {"$ne": _generation(p.content_hash)}}]}
                     for p in todo[start:start + 100]]
            try:
                self.collection.delete(where=older[0] if len(older) == 1 else {"$or": older})  # type: ignore[arg-type,dict-item]
            except Exception as exc:  # noqa: BLE001 - the write itself succeeded
                log.warning("could not delete the older clauses of %d documents (left to repair at restart): %s",
                            len(older), exc)
        self._bump_generation()
        flags = [False] * len(docs)
        for i in changed:
            flags[i] = True
        return flags

    def _add_records(self, clauses: list[tuple[Clause, str]]) -> None:
        """Embed and add the records of a write, invisible to readers until the registry names their generation.

        Pipelined: while one part's records go into Chroma on a writer thread (its Rust core runs without the
        GIL), the next part is embedded here; at most one part is in flight, and every part is in Chroma when
        this returns. An embedder with ``holding()`` (the vector cache) writes its cache file once at the end.
        """
        holding = getattr(self.embedder, "holding", None)
        with holding() if holding is not None else nullcontext(), \
                ThreadPoolExecutor(1, thread_name_prefix="chroma-write") as writer:
            pending: Future[None] | None = None
            for lo in range(0, len(clauses), _EMBED_BATCH):
                part = clauses[lo:lo + _EMBED_BATCH]
                vectors = np.asarray(self.embedder.embed_documents([c.text for c, _ in part]), dtype=np.float32)
                ids = [f"{c.clause_id}@{gen}" for c, gen in part]
                metadatas: list[Any] = [self._metadata(c, gen) for c, gen in part]
                if pending is not None:
                    pending.result()
                pending = writer.submit(self._upsert_records, ids, vectors, metadatas)
            if pending is not None:
                pending.result()

    def _upsert_records(self, ids: list[str], vectors: np.ndarray, metadatas: list[Any]) -> None:
        step = self._write_batch()
        for start in range(0, len(ids), step):
            self.collection.upsert(  # no ``documents``: the text travels in the metadata (see _metadata)
                ids=ids[start:start + step],
                embeddings=vectors[start:start + step],  # type: ignore[arg-type]
                metadatas=metadatas[start:start + step],
            )

    def cleanup(self, doc_id: str) -> int:
        """Right after a failed write: delete the document's clauses that its committed generation does not name.

        The committed version (the registry entry, if any) stays as it was; with no registry entry every clause
        of ``doc_id`` goes. Best effort: when the storage refuses this too (read-only, full), the records stay
        until :meth:`repair` removes them on the next start. Returns how many records were deleted.
        """
        return self.cleanup_many([doc_id])

    def cleanup_many(self, doc_ids: list[str]) -> int:
        """:meth:`cleanup` of several documents (a failed batch) with one registry read and one collection read."""
        if not doc_ids:
            return 0
        try:
            entries = self._registry_entries(doc_ids)
            where = {"doc_id": doc_ids[0]} if len(doc_ids) == 1 else {"doc_id": {"$in": list(doc_ids)}}
            got = self.collection.get(where=where, include=["metadatas"])  # type: ignore[arg-type]
            live = {d: _generation(str(e["hash"])) for d, e in entries.items() if e.get("hash")}
            stale = [cid for cid, md in zip(got["ids"], got["metadatas"] or [])
                     if (md or {}).get("gen") != live.get(str((md or {}).get("doc_id")))]
            step = self._write_batch()
            for start in range(0, len(stale), step):
                self.collection.delete(ids=stale[start:start + step])
        except Exception as exc:  # noqa: BLE001 - the original error is the one to report
            log.warning("could not clean up after a failed write of %s (left to repair at restart): %s",
                        _names(doc_ids), exc)
            return 0
        if stale:
            log.warning("removed %d partial clauses of %s after a failed write", len(stale), _names(doc_ids))
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
        step = self._write_batch()
        for start in range(0, len(stale), step):
            self.collection.delete(ids=stale[start:start + step])
        if stale:
            log.warning("removed %d clauses left by an interrupted write", len(stale))
        return len(stale)

    # -------------------------------------------------------------- helpers
    def _registry_entry(self, doc_id: str) -> dict[str, Any] | None:
        return self._registry_entries([doc_id]).get(doc_id)

    def _registry_entries(self, doc_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Registry metadata of those documents that have an entry (one read per write batch)."""
        out: dict[str, dict[str, Any]] = {}
        step = self._write_batch()
        for start in range(0, len(doc_ids), step):
            got = self.registry.get(ids=list(dict.fromkeys(doc_ids[start:start + step])), include=["metadatas"])
            for doc_id, md in zip(got["ids"], got["metadatas"] or []):
                out[doc_id] = dict(md or {})
        return out

    def _write_batch(self) -> int:
        """Records per Chroma call: ``_BATCH``, within the client's maximum batch size."""
        if self._max_batch is None:
            try:
                self._max_batch = int(self.client.get_max_batch_size())
            except Exception:  # noqa: BLE001 - an old server without the endpoint
                self._max_batch = 1000
        return max(1, min(_BATCH, self._max_batch))

    def _iter_all(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        total = self.collection.count()
        page = 1000
        for offset in range(0, total, page):
            got = self.collection.get(include=["documents", "metadatas"], limit=page, offset=offset)
            for cid, text, md in zip(got["ids"], got["documents"] or [], got["metadatas"] or []):
                yield cid, text or "", dict(md or {})

    @staticmethod
    def _metadata(clause: Clause, gen: str) -> dict[str, Any]:
        """A clause's record: the two fields writes filter on (``doc_id``, ``gen``) and everything else, the text
        included, as one JSON value under ``clause``.

        Chroma indexes a record's ``documents`` for its full-text search and every metadata value on its own;
        this product searches text with its own BM25 index, so both were paid for nothing: at 20k clauses the
        writes took 25 s with the text as the document and seven metadata fields, 14 s packed like this.
        Records written before (text as the document, one metadata field each) are still read."""
        return {
            "doc_id": clause.doc_id,
            "gen": gen,
            CLAUSE_KEY: json.dumps([clause.clause_id, clause.doc_title, clause.path, clause.label, clause.order,
                                    clause.kind, clause.text], ensure_ascii=False, separators=(",", ":")),
        }

    @staticmethod
    def _to_clause(text: str, md: dict[str, Any], strings: dict[str, str] | None = None) -> Clause:
        packed = md.get(CLAUSE_KEY)
        if packed is not None:
            clause_id, doc_title, path, label, order, kind, text = json.loads(str(packed))
            return compact_clause(strings if strings is not None else {}, clause_id=str(clause_id),
                                  doc_id=str(md["doc_id"]), doc_title=str(doc_title), path=[str(p) for p in path],
                                  label=str(label), text=str(text), order=int(order), kind=str(kind))
        return compact_clause(strings if strings is not None else {}, clause_id=str(md["clause_id"]),
                              doc_id=str(md["doc_id"]), doc_title=str(md.get("doc_title", "")),
                              path=[str(p) for p in json.loads(str(md.get("path", "[]")))],
                              label=str(md.get("label", "")), text=text, order=int(md.get("order", 0)),
                              kind=str(md.get("kind", "")))


#: The fields a stored clause sets (all of them): one set shared by the clauses read back, where pydantic keeps a
#: set per instance (~730 bytes, a third of a clause in memory). Setting a field adds a name already in it.
_CLAUSE_FIELDS: set[str] = set(Clause.model_fields)


def compact_clause(strings: dict[str, str], **values: Any) -> Clause:
    """A :class:`Clause` of already checked values (read back from the store or a snapshot file), small in memory:
    the shared set of fields, and its document id and title, label, kind and headings the same string objects as
    the other clauses made with ``strings`` (a table the caller keeps for one read; equal strings, one copy)."""
    for name in ("doc_id", "doc_title", "label", "kind"):
        values[name] = strings.setdefault(values[name], values[name])
    values["path"] = [strings.setdefault(p, p) for p in values["path"]]
    return Clause.model_construct(_fields_set=_CLAUSE_FIELDS, **values)
