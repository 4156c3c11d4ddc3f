"""Hybrid retrieval: Chroma dense search fused with BM25 by reciprocal rank fusion.

Usage::

    retriever = HybridRetriever(store)
    hits = retriever.run("外国医生能开诊所吗？", k=5)
    hits[0].clause.clause_id   # 'fz-plan/三/（二）/3'
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from corpus.models import Clause
from corpus.naming import NameTable
from retrieval.dictionary import EnglishDictionary
from retrieval.embeddings import Embedder
from retrieval.fusion import reciprocal_rank_fusion
from retrieval.glossary import expand_query
from retrieval.lexical import LexicalIndex, detect_lang, intersect_sorted, stable_order
from retrieval.store import ClauseStore, StoredDocument, compact_clause

MODES = ("hybrid", "dense", "lexical")

def lexical_query(query: str, extra: list[str] | None = None) -> str:
    """The text BM25 sees: an English query gets the Chinese glossary terms of its domain words, and
    ``extra`` (dictionary words of the rest, see :meth:`IndexSnapshot.english_terms`)."""
    if detect_lang(query) == "en":
        return " ".join([query, expand_query(query), *(extra or [])])
    return query


class Hit(BaseModel):
    """One retrieved clause with its fused score and the scores of each list."""

    clause: Clause
    score: float
    dense: float | None = None
    lexical: float | None = None
    #: Cosine under the secondary embedding model (when one is configured).
    secondary: float | None = None
    #: The primary model's cosine and the BM25 score of this clause for the query, also when it was not among a
    #: list's candidates (``dense`` / ``lexical`` are then None): what score fusion reads.
    cosine: float | None = None
    bm25: float | None = None
    rank: int = 0


def _clauses_file(root: Path, key: str) -> Path:
    return root / f"clauses-{hashlib.sha256(key.encode('utf-8')).hexdigest()[:24]}.json"


def save_clauses(root: Path, key: str, pairs: list[tuple[str, Clause]]) -> Path | None:
    """Save the committed clauses read for ``key`` (the collection, the corpus generation and a digest of the
    registry: which version of which document, when written), so a start-up at the same corpus reads one file
    instead of every record's metadata from Chroma. Written to a temporary name and renamed; older saves are
    removed. None when the disk refuses (a start-up then reads Chroma, as before)."""
    target = _clauses_file(root, key)
    rows = [[cid, c.clause_id, c.doc_id, c.doc_title, c.path, c.label, c.text, c.order, c.kind] for cid, c in pairs]
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=root, prefix=".clauses-tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"key": key, "rows": rows}, f, ensure_ascii=False, separators=(",", ":"))
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        for old in root.glob("clauses-*.json"):
            if old != target:
                old.unlink(missing_ok=True)
        return target
    except OSError:
        return None


def load_clauses(root: Path, key: str) -> list[tuple[str, Clause]] | None:
    """The clauses :func:`save_clauses` saved for ``key``, else None (missing, another key, unreadable)."""
    try:
        with open(_clauses_file(root, key), encoding="utf-8") as f:
            data = json.load(f)
        if data.get("key") != key or any(len(row) != 9 for row in data["rows"]):
            return None
        fields = ("clause_id", "doc_id", "doc_title", "path", "label", "text", "order", "kind")
        strings: dict[str, str] = {}
        return [(str(row[0]), compact_clause(strings, **dict(zip(fields, row[1:])))) for row in data["rows"]]
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None


_ALL_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class IndexSnapshot:
    """An immutable view of the committed corpus; swapped whole after each write."""

    documents: dict[str, StoredDocument]
    clauses: list[Clause]
    chroma_ids: list[str]
    lexical: LexicalIndex
    by_chroma_id: dict[str, int] = field(default_factory=dict)
    by_clause_id: dict[str, int] = field(default_factory=dict)
    #: Unit vectors of the clauses under the secondary embedding model (rows follow ``clauses``).
    secondary: np.ndarray | None = None
    #: The store's corpus generation this snapshot was read at.
    generation: str = ""
    #: Primary-model unit vectors read so far: by position, or all of them under -1 (see :meth:`vectors`).
    _vectors: dict[int, np.ndarray] = field(default_factory=dict, repr=False, compare=False)
    #: How many clauses contain a word, for the words :meth:`count` has been asked about.
    _word_counts: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(cls, store: ClauseStore, secondary: Embedder | None = None,
              lexical_dir: Path | None = None) -> IndexSnapshot:
        """Read the committed corpus; with ``lexical_dir`` the BM25 index saved there for this corpus
        generation (and these clause ids) is loaded instead of rebuilt, and a rebuilt one is saved."""
        generation = store.generation()
        docs = store.documents()
        pairs: list[tuple[str, Clause]] | None = None
        saved_key = ""
        if lexical_dir is not None:
            registry = "\n".join(f"{d}|{x.content_hash}|{x.clause_count}|{x.ingested_at!r}" for d, x in docs.items())
            saved_key = f"{store.collection.name}|{generation}|{hashlib.sha256(registry.encode('utf-8')).hexdigest()}"
            pairs = load_clauses(lexical_dir, saved_key)
            if pairs is not None and len(pairs) != sum(d.clause_count for d in docs.values()):
                pairs = None
        if pairs is None:
            pairs = store.clauses(docs)
            if lexical_dir is not None and pairs:
                save_clauses(lexical_dir, saved_key, pairs)
        clauses = [c for _, c in pairs]
        ids = [cid for cid, _ in pairs]
        texts = [c.text for c in clauses]
        lexical: LexicalIndex | None = None
        if lexical_dir is not None and texts:
            digest = hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest()
            key = f"{store.collection.name}|{generation}|{digest}"
            lexical = LexicalIndex.load(lexical_dir, key, len(texts))
            if lexical is None:
                lexical = LexicalIndex(texts)
                lexical.save(lexical_dir, key)
        return cls(
            documents=docs,
            clauses=clauses,
            chroma_ids=ids,
            lexical=lexical if lexical is not None else LexicalIndex(texts),
            by_chroma_id={cid: i for i, cid in enumerate(ids)},
            by_clause_id={c.clause_id: i for i, c in enumerate(clauses)},
            secondary=secondary.embed_documents(texts) if secondary is not None and texts else None,
            generation=generation,
        )

    def get(self, clause_id: str) -> Clause | None:
        i = self.by_clause_id.get(clause_id)
        return self.clauses[i] if i is not None else None

    def under(self, prefix: str) -> list[Clause]:
        """Clauses whose id is ``prefix`` or starts with ``prefix/`` (an article's parts, an item's tasks)."""
        prefix = prefix.rstrip("/")
        return [c for c in self._scope(prefix.split("/")[0])
                if c.clause_id == prefix or c.clause_id.startswith(prefix + "/")]

    @cached_property
    def _runs(self) -> dict[str, tuple[int, int]] | None:
        """Each document's clauses as one run of positions (the store reads them document by document), or
        None if some document's clauses are not contiguous (then lookups scan every clause)."""
        runs: dict[str, tuple[int, int]] = {}
        for i, c in enumerate(self.clauses):
            start, end = runs.get(c.doc_id, (i, i))
            if end != i:
                return None
            runs[c.doc_id] = (start, i + 1)
        return runs

    @cached_property
    def kinds(self) -> dict[str, list[str]]:
        """Document ids by kind (``plan``, ``law``…), in the documents' order."""
        out: dict[str, list[str]] = {}
        for doc_id, doc in self.documents.items():
            out.setdefault(doc.meta.kind, []).append(doc_id)
        return out

    @cached_property
    def names(self) -> NameTable:
        """The documents' names, for finding which documents a text names."""
        return NameTable({d: doc.meta for d, doc in self.documents.items()})

    def count(self, word: str) -> int:
        """How many clauses contain ``word`` (a lower-case term), from the lexical index's postings (cached).

        A word that is one index token (one or two CJK characters, one Latin word or number) is counted from
        its posting list; for a longer one only its candidates (clauses holding all its tokens) are tested for
        the word itself, in their lower-cased text: the substring count the answerability gate was fitted on
        (Latin words and numbers count whole-word occurrences: '100' does not match '1000').
        """
        found = self._word_counts.get(word)
        if found is None:
            if self.lexical.is_token(word):
                found = self.lexical.df(word)
            else:
                found = sum(1 for i in self.lexical.postings(word) if word in self.clauses[int(i)].text.lower())
            self._word_counts[word] = found
        return found

    def english_terms(self, query: str, per_word: int = 4) -> list[str]:
        """Chinese words this corpus uses that translate the English words of ``query`` the glossary lacks:
        for each such word its ``per_word`` CC-CEDICT headwords found in the fewest clauses (the most specific).
        For example ``"Is there preferential treatment for our profits?"`` gives the corpus's words for
        "preferential" (优惠…) and "treatment": the corpus has none of the two-word sense's headwords (优待…), so
        the words are looked up one by one ("profits" is a glossary word already).
        """
        if per_word <= 0 or detect_lang(query) != "en":
            return []
        out: list[str] = []
        for heads in EnglishDictionary.load().candidates(query, known=lambda h: self.count(h) > 0):
            used = sorted((h for h in heads if self.count(h) > 0), key=lambda h: (self.count(h), h))
            out += [h for h in used[:per_word] if h not in out]
        return out

    def _scope(self, doc_id: str) -> list[Clause]:
        runs = self._runs
        if runs is None:
            return [c for c in self.clauses if c.doc_id == doc_id]
        start, end = runs.get(doc_id, (0, 0))
        return self.clauses[start:end]

    def containing(self, term: str, ignore_space: bool = False) -> list[int]:
        """Positions of the clauses whose text contains ``term`` (a plain substring test; with
        ``ignore_space``, in the text without its whitespace), in order. Without ``ignore_space`` this is
        :meth:`containing_all` of the one term. With it, a term of CJK characters only is looked up through the
        postings of its characters (whitespace may split its bigrams); anything else is a scan of every clause."""
        if not ignore_space:
            return self.containing_all([term])

        def has(text: str) -> bool:
            return term in _SPACE.sub("", text)

        if term and _ALL_CJK.fullmatch(term):
            found: np.ndarray | None = None
            for ch in set(term):
                docs = self.lexical.postings(ch)
                found = docs if found is None else intersect_sorted(found, docs)
            candidates = found if found is not None else np.zeros(0, dtype=np.int64)
            return [int(i) for i in candidates if has(self.clauses[int(i)].text)]
        return [i for i, c in enumerate(self.clauses) if has(c.text)]

    def containing_all(self, terms: list[str], limit: int | None = None,
                       where: Callable[[Clause], bool] | None = None,
                       within: np.ndarray | None = None) -> list[int]:
        """Positions of the clauses whose text contains every one of ``terms`` (plain substring tests), in order;
        with ``where`` only clauses it accepts, with ``within`` (sorted positions, e.g. :meth:`positions` of some
        documents) only those, with ``limit`` only the first ``limit`` of them. The postings of the CJK terms are
        intersected first, so only clauses holding all their bigrams are tested (a scan of every clause, or of
        ``within``, when no term is all CJK)."""
        cjk = sorted((t for t in set(terms) if t and _ALL_CJK.fullmatch(t)), key=self.lexical.max_count)
        if cjk:
            found = self.lexical.postings(cjk[0]) if within is None else within
            for term in (cjk if within is not None else cjk[1:]):
                if not found.size:
                    break
                found = intersect_sorted(found, self.lexical.postings(term))
            candidates: Iterable[int] = found.tolist()
        else:
            candidates = range(len(self.clauses)) if within is None else within.tolist()
        out: list[int] = []
        for i in candidates:
            c = self.clauses[i]
            if all(t in c.text for t in terms) and (where is None or where(c)):
                out.append(i)
                if limit is not None and len(out) >= limit:
                    break
        return out

    def positions(self, doc_ids: list[str]) -> np.ndarray:
        """Positions (rows of ``clauses``) of the documents' clauses, in order."""
        runs = self._runs
        if runs is None:
            wanted = set(doc_ids)
            return np.array([i for i, c in enumerate(self.clauses) if c.doc_id in wanted], dtype=np.int64)
        parts = [np.arange(*runs[d], dtype=np.int64) for d in dict.fromkeys(doc_ids) if d in runs]
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)

    def vectors(self, store: ClauseStore, positions: np.ndarray | None = None) -> np.ndarray:
        """Unit vectors of the primary model for these positions (rows follow ``positions``; None: every clause,
        no copy), read from the store once per snapshot: all of them at the first call that asks for more than
        a tenth of the corpus (an exact ranking), else only those asked for (the documents a question names)."""
        full = self._vectors.get(-1)
        if full is None and (positions is None or len(positions) > len(self.clauses) // 10):
            full = self._read(store, list(range(len(self.clauses))))
            self._vectors[-1] = full
        if full is not None:
            return full if positions is None else full[positions]
        assert positions is not None
        missing = [int(i) for i in positions if int(i) not in self._vectors]
        if missing:
            for i, row in zip(missing, self._read(store, missing)):
                self._vectors[i] = row
        if not len(positions):
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self._vectors[int(i)] for i in positions])

    def _read(self, store: ClauseStore, positions: list[int], page: int = 2000) -> np.ndarray:
        rows: list[np.ndarray] = []
        for start in range(0, len(positions), page):
            ids = [self.chroma_ids[i] for i in positions[start:start + page]]
            got = store.collection.get(ids=ids, include=["embeddings"])
            found = dict(zip(got["ids"], got["embeddings"] if got["embeddings"] is not None else []))
            rows.extend(np.asarray(found[cid], dtype=np.float32) for cid in ids)
        matrix = np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)
        return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12) if rows else matrix

    def neighbours(self, clause_id: str) -> tuple[Clause | None, Clause | None]:
        i = self.by_clause_id.get(clause_id)
        if i is None:
            return None, None
        me = self.clauses[i]
        prev = self.clauses[i - 1] if i > 0 and self.clauses[i - 1].doc_id == me.doc_id else None
        nxt = self.clauses[i + 1] if i + 1 < len(self.clauses) and self.clauses[i + 1].doc_id == me.doc_id else None
        return prev, nxt

    def of_document(self, doc_id: str) -> list[Clause]:
        return list(self._scope(doc_id))


class HybridRetriever:
    """Dense (Chroma) + lexical (BM25) retrieval fused by RRF, with document and section filters.

    Args:
        store: the clause store.
        mode: ``hybrid`` (default), ``dense`` or ``lexical``.
        rrf_k: the RRF constant.
        candidates: how many hits each list contributes before fusion.
        dense_weight: RRF weight of the dense lists (the lexical lists weigh 1).
        check_every_s: how often (at most) a read checks the store's corpus generation and reloads the
            snapshot when another process (a replica on the same Chroma server) changed the corpus.
        lexical_dir: where the BM25 index is saved per corpus generation (start-up loads it instead of
            rebuilding); None keeps it in memory only.
        secondary: a second embedding model whose ranking is fused too (its clause vectors live
            in the snapshot; cached by content, so only new clauses are embedded).
        english_terms: for an English query, how many dictionary translations of each word the glossary
            lacks are added to its lexical query (0: the glossary alone; see :meth:`IndexSnapshot.english_terms`).
    """

    def __init__(self, store: ClauseStore, mode: str = "hybrid", rrf_k: int = 60, candidates: int = 50,
                 dense_weight: float = 1.0, secondary: Embedder | None = None, check_every_s: float = 1.0,
                 lexical_dir: Path | None = None, exact_max: int = 20000, english_terms: int = 4) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        if dense_weight < 0:
            raise ValueError("dense_weight must be non-negative")
        self.dense_weight = dense_weight
        self.store = store
        self.secondary = secondary if mode != "lexical" else None
        self.mode = mode
        self.rrf_k = rrf_k
        self.candidates = candidates
        self.exact_max = exact_max
        self.english_terms = english_terms
        self._lock = threading.Lock()
        self._snapshot: IndexSnapshot | None = None
        self.check_every_s = check_every_s
        self._checked_at = 0.0
        self.lexical_dir = lexical_dir
        self._pool: ThreadPoolExecutor | None = None

    @property
    def snapshot(self) -> IndexSnapshot:
        """The current snapshot; reloaded when the store's generation moved (checked at most once per
        ``check_every_s``), so replicas sharing a Chroma server agree within about a second."""
        snap = self._snapshot
        if snap is None:
            with self._lock:
                if self._snapshot is None:
                    self._snapshot = IndexSnapshot.build(self.store, self.secondary, self.lexical_dir)
                    self._checked_at = time.monotonic()
                snap = self._snapshot
            return snap
        now = time.monotonic()
        if self.check_every_s >= 0 and now - self._checked_at >= self.check_every_s:
            self._checked_at = now
            try:
                moved = self.store.generation() != snap.generation
            except Exception:  # noqa: BLE001 - a failed check keeps serving the snapshot it has
                moved = False
            if moved:
                with self._lock:
                    if self._snapshot is snap:
                        self._snapshot = IndexSnapshot.build(self.store, self.secondary, self.lexical_dir)
                    snap = self._snapshot or snap
        return snap

    def refresh(self) -> IndexSnapshot:
        """Rebuild the snapshot from the store (call after a committed write)."""
        snap = IndexSnapshot.build(self.store, self.secondary, self.lexical_dir)
        self._snapshot = snap
        return snap

    def run(self, query: str, k: int = 5, doc_id: str | None = None, section: str | None = None) -> list[Hit]:
        """The ``k`` best clauses for ``query``, optionally within one document or section."""
        if not query or not query.strip():
            raise ValueError("query is empty")
        if k < 1:
            raise ValueError("k must be at least 1")
        return self._run(query.strip(), k, doc_id, section)

    def route(self, query: str) -> list[str]:
        """Documents the query names by one of their names (``数据安全法``, ``Hainan``, ``方案``); a name inside a
        longer one the query uses ("外商投资法" in "外商投资法实施条例") routes only to the longer one's document."""
        return self.snapshot.names.named(query, min_len=2)

    def _routed_lists(self, query: str, vector: list[float] | None, snap: IndexSnapshot, routed: list[str],
                      keep: Callable[[int], bool], dense: dict[int, float],
                      lexical: dict[int, float], bm25: np.ndarray | None) -> list[list[str]]:
        """Dense and lexical rankings restricted to the routed documents."""
        positions = np.array([i for i in snap.positions(routed) if keep(int(i))], dtype=np.int64)
        lists: list[list[str]] = []
        if not positions.size:
            return lists
        if vector is not None:  # exact cosines over the named documents' clauses (a few hundred at most)
            sims = snap.vectors(self.store, positions) @ np.asarray(vector, dtype=np.float32)
            ranking = []
            for j in np.argsort(-sims, kind="stable")[: self.candidates]:
                i = int(positions[j])
                dense.setdefault(i, float(sims[j]))
                ranking.append(str(i))
            lists.append(ranking)
        if self.mode in ("hybrid", "lexical"):
            scores = bm25[positions] if bm25 is not None else np.zeros(0)
            ranking = []
            for j in np.argsort(-scores, kind="stable")[: self.candidates]:
                if scores[j] <= 0:
                    break
                i = int(positions[j])
                lexical.setdefault(i, float(scores[j]))
                ranking.append(str(i))
            lists.append(ranking)
        return lists

    def _lexical_query(self, query: str, snap: IndexSnapshot) -> str:
        return lexical_query(query, snap.english_terms(query, self.english_terms))

    def _helpers(self) -> ThreadPoolExecutor:
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(2, thread_name_prefix="retrieval")
        return self._pool

    def _dense_list(self, query: str, snap: IndexSnapshot, keep: Callable[[int], bool], doc_id: str | None,
                    section: str | None) -> tuple[dict[int, float], list[str], list[float] | None]:
        """The primary model's ranking: exact cosines over the snapshot up to ``exact_max`` clauses, else Chroma."""
        dense: dict[int, float] = {}
        dense_rank: list[str] = []
        if self.mode not in ("hybrid", "dense"):
            return dense, dense_rank, None
        vector = self.store.embedder.embed_query(query).tolist()
        want = self.candidates if not section else max(self.candidates, 200)
        if len(snap.clauses) <= self.exact_max:  # exact: the same ranking in every process, no HNSW misses
            pool = snap.positions([doc_id]) if doc_id else None
            sims_all = snap.vectors(self.store, pool) @ np.asarray(vector, dtype=np.float32)
            for j in stable_order(sims_all, want):
                i = j if pool is None else int(pool[j])
                if keep(i):
                    dense[i] = float(sims_all[j])
                    dense_rank.append(str(i))
                    if len(dense_rank) >= want:
                        break
        else:
            for cid, sim in self.store.query(vector, want, doc_id=doc_id, limit=len(snap.chroma_ids)):
                found = snap.by_chroma_id.get(cid)
                if found is not None and keep(found):
                    dense[found] = sim
                    dense_rank.append(str(found))
        return dense, dense_rank, vector

    def _side_lists(self, query: str, snap: IndexSnapshot, keep: Callable[[int], bool], doc_id: str | None,
                    section: str | None) -> tuple[np.ndarray | None, list[str], dict[int, float], list[str],
                                                  np.ndarray | None]:
        """The secondary model's cosines (every clause) and ranking, and the lexical scores (every clause) and
        ranking."""
        second_rank: list[str] = []
        sims: np.ndarray | None = None
        if self.secondary is not None and snap.secondary is not None:
            sims = snap.secondary @ self.secondary.embed_query(query)
            for i in stable_order(sims, self.candidates):
                if keep(i):
                    second_rank.append(str(i))
                    if len(second_rank) >= self.candidates:
                        break
        lexical: dict[int, float] = {}
        lexical_rank: list[str] = []
        bm25: np.ndarray | None = None
        if self.mode in ("hybrid", "lexical") and snap.lexical.size:
            bm25 = snap.lexical.scores(self._lexical_query(query, snap))
            # without a filter every hit is kept: the top candidates are enough (not a sort of the whole corpus)
            depth = len(snap.clauses) if doc_id or section else self.candidates
            for i, score in snap.lexical.top(bm25, depth):
                if keep(i):
                    lexical[i] = score
                    lexical_rank.append(str(i))
                    if len(lexical_rank) >= self.candidates:
                        break
        return sims, second_rank, lexical, lexical_rank, bm25

    def _run(self, query: str, k: int, doc_id: str | None, section: str | None) -> list[Hit]:
        snap = self.snapshot
        if not snap.clauses:
            return []

        def keep(i: int) -> bool:
            c = snap.clauses[i]
            if doc_id and c.doc_id != doc_id:
                return False
            if section and not (c.clause_id.startswith(section) or any(section in p for p in c.path)):
                return False
            return True

        side: Future[tuple[np.ndarray | None, list[str], dict[int, float], list[str], np.ndarray | None]] | None = None
        if self.mode in ("hybrid", "dense"):
            # the secondary and lexical lists are made on a helper thread while the primary model encodes the
            # query here (its engine runs without the GIL): the same lists, sooner
            side = self._helpers().submit(self._side_lists, query, snap, keep, doc_id, section)
        try:
            dense, dense_rank, vector = self._dense_list(query, snap, keep, doc_id, section)
        finally:
            sims, second_rank, lexical, lexical_rank, bm25 = (side.result() if side is not None
                                                              else self._side_lists(query, snap, keep, doc_id, section))
        rankings = [dense_rank, lexical_rank]
        weights = [self.dense_weight, 1.0]
        if second_rank:
            rankings.append(second_rank)
            weights.append(self.dense_weight)
        routed = self.route(query) if not doc_id else []
        if routed and len(routed) < len(snap.documents):
            extra = self._routed_lists(query, vector, snap, routed, keep, dense, lexical, bm25)
            rankings.extend(extra)
            weights.extend([self.dense_weight, 1.0][: len(extra)] if self.mode == "hybrid" else [1.0] * len(extra))
        fused = reciprocal_rank_fusion(rankings, k=self.rrf_k, weights=weights)[:k]
        cosines = self._cosines(snap, vector, [int(key) for key, _ in fused], dense)
        hits: list[Hit] = []
        for rank, (key, score) in enumerate(fused, start=1):
            i = int(key)
            hits.append(Hit(clause=snap.clauses[i], score=score, dense=dense.get(i), lexical=lexical.get(i),
                            secondary=float(sims[i]) if sims is not None else None, cosine=cosines.get(i),
                            bm25=float(bm25[i]) if bm25 is not None else None, rank=rank))
        return hits

    def _cosines(self, snap: IndexSnapshot, vector: list[float] | None, positions: list[int],
                 dense: dict[int, float]) -> dict[int, float]:
        """The primary model's cosine of each of ``positions``: from the dense list, else from the clause vectors
        (the snapshot's, or read from the store for these positions only above ``exact_max`` clauses)."""
        if vector is None:
            return {}
        out = {i: dense[i] for i in positions if i in dense}
        missing = np.array([i for i in positions if i not in dense], dtype=np.int64)
        if missing.size:
            sims = snap.vectors(self.store, missing) @ np.asarray(vector, dtype=np.float32)
            out.update({int(i): float(v) for i, v in zip(missing, sims)})
        return out
