"""The answering core as one short pipeline: analyse → retrieve → fuse → rerank → gate.

Both answerers and ``search`` use it; only the last step (the answer's wording) differs.

Usage::

    pipeline = Pipeline(retriever, gate)
    r = pipeline.run("外国医生能开诊所吗？")
    r.verdict.outcome, r.hits[0].clause.clause_id
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from assistant.conversation import Condensed, History
from assistant.gate import AnswerabilityGate, Verdict
from assistant.query import Query, QueryAnalyzer
from assistant.text import coverage
from corpus.models import Clause
from corpus.numbering import int_to_cn
from retrieval.fusion import ScoreFusion, reciprocal_rank_fusion
from retrieval.retriever import Hit, HybridRetriever

_ASKS_COMMENCEMENT = re.compile(r"施行|生效|实施日期|起实施|effective|take effect|come into force|in force", re.I)
_COMMENCEMENT = re.compile(r"自\s*[^。；]{2,30}?起\s*施行")

#: How many of the top hits are re-ranked by the question's word coverage.
RERANK_DEPTH = 20
#: RRF weights of the (follow-up + previous question) and (follow-up + previous answer) lists.
FOLLOWUP_WEIGHTS = (1.0, 0.5)


_ITEM_NUMBER = re.compile(r"第?[（(]([一二三四五六七八九十]+)[)）]项?")
_PART_NUMBER = re.compile(r"第([一二三四五六七八九十]+)部分")


def section_clauses(clauses: list[Clause], max_items: int = 15, terms: list[str] | None = None,
                    rare: Callable[[str], bool] | None = None) -> list[Clause]:
    """A section's items to list: its clauses without the headings, or, for a section with more than
    ``max_items``, the first clause of each sub-section.

    ``terms`` the question adds to the section's heading narrow the list to the items that contain all of
    its ``rare`` ones ("第（七）项中关于租赁的部署" → the leasing items), when some do.
    """
    items = [c for c in clauses if c.kind != "item-title"]
    heading = "".join(items[0].path) if items else ""
    added = [t for t in terms or [] if t not in heading and (rare is None or rare(t))]
    narrowed = [c for c in items if added and all(t in c.text for t in added)]
    if narrowed:
        return narrowed[:max_items]
    if len(items) > max_items and clauses:
        depth = clauses[0].clause_id.count("/") + 2
        firsts: dict[str, Clause] = {}
        for c in items:
            firsts.setdefault("/".join(c.clause_id.split("/")[:depth]), c)
        items = list(firsts.values())
    return items[:max_items]


@dataclass
class Retrieved:
    """What the answerers share: the analysed question, the ranked hits and the gate's verdict."""

    query: Query
    hits: list[Hit]
    verdict: Verdict
    direct: list[Clause]

    @property
    def lang(self) -> str:
        return self.query.lang

    @property
    def condensed(self) -> Condensed:
        q = self.query
        return Condensed(core=q.core, standalone=q.standalone, is_followup=q.is_followup, context=q.context)

    @property
    def refused(self) -> bool:
        return self.verdict.outcome != "answer"

    @property
    def support(self) -> float:
        return self.verdict.probability


class Pipeline:
    """Typed stages wired once from settings.

    Args:
        retriever: dense + lexical retrieval with RRF (:class:`~retrieval.retriever.HybridRetriever`).
        gate: the answerability gate.
        analyzer: query analysis (condensing follow-ups).
        rerank_weight: weight of question-word coverage when re-ranking the top hits by rank-fusion score
            (0: off); used when ``fusion`` is None.
        k: hits kept per question.
        fusion: re-rank the ``k`` hits by a weighted sum of their standardised scores and their question-word
            coverage (:class:`~retrieval.fusion.ScoreFusion`) instead.
    """

    def __init__(self, retriever: HybridRetriever, gate: AnswerabilityGate, analyzer: QueryAnalyzer | None = None,
                 rerank_weight: float = 0.2, k: int = 30, fusion: ScoreFusion | None = None) -> None:
        self.retriever = retriever
        self.gate = gate
        self.analyzer = analyzer or QueryAnalyzer()
        self.rerank_weight = rerank_weight
        self.k = k
        self.fusion = fusion

    def run(self, question: str, history: History | None = None) -> Retrieved:
        """Analyse, retrieve, fuse, re-rank and gate ``question``."""
        if not question or not question.strip():
            raise ValueError("question is empty")
        return self._run(self.analyzer.run(question.strip(), history))

    def search(self, text: str, k: int, doc_id: str | None = None, section: str | None = None) -> list[Hit]:
        """Ranked hits without a verdict (the ``search`` command and endpoint)."""
        query = self.analyzer.run(text)
        depth = max(k, self.k if self.fusion is not None else RERANK_DEPTH)
        hits = self.retriever.run(query.core, k=depth, doc_id=doc_id, section=section)
        return self.rerank(query, hits)[:k]

    def _run(self, query: Query) -> Retrieved:
        hits = self.retriever.run(query.core, k=self.k)
        if query.is_followup:
            lists, weights = [hits, self.retriever.run(query.standalone, k=self.k)], [1.0, FOLLOWUP_WEIGHTS[0]]
            if query.context:
                lists.append(self.retriever.run(query.context, k=self.k))
                weights.append(FOLLOWUP_WEIGHTS[1])
            hits = self._fuse(lists, weights)
        ordered = self.rerank(query, hits)
        direct = self.direct_references(query)
        if direct:
            ids = {c.clause_id for c in direct}
            ordered = [Hit(clause=c, score=1.0, rank=0) for c in direct] + [h for h in ordered if h.clause.clause_id not in ids]
        for rank, hit in enumerate(ordered, start=1):
            hit.rank = rank
        if direct:
            verdict = Verdict(outcome="answer", reasons=["the question names the article or section"], probability=1.0)
        else:
            # the gate was designed and fitted on the rank-fusion order: its features (margins, agreement between
            # the lists, the evidence's coverage) keep their meaning there, and score fusion, which ranks the
            # clause sharing the most question words first, made near misses look answerable (training CV:
            # unanswerable refused 0.703 → 0.654)
            judged = ordered if self.fusion is None else self._coverage_rerank(query, hits)
            verdict = self.gate.run(query, judged)
        return Retrieved(query=query, hits=ordered, verdict=verdict, direct=direct)

    def rerank(self, query: Query, hits: list[Hit]) -> list[Hit]:
        """Re-order the top hits by their scores plus the IDF-weighted share of question words they contain:
        a weighted sum of standardised scores (``fusion``), or the rank-fusion score plus ``rerank_weight``
        times the share. A question naming a place puts the clauses that mention it first."""
        # a follow-up's hits are fused from several retrievals (its own words, the standalone question, the
        # previous answer) whose scores are not on one scale: their rank fusion orders them
        if not hits or self.fusion is None or query.is_followup:
            return self._coverage_rerank(query, hits)
        head = hits[:self.k]
        terms = query.topic_terms
        if query.lang == "en":  # the dictionary words its lexical query got count for coverage too
            extra = self.retriever.snapshot.english_terms(query.core, self.retriever.english_terms)
            terms = list(dict.fromkeys([*terms, *extra]))
        weights = self.gate.weights(terms)
        covered = [coverage(weights, h.clause.text) if weights else 0.0 for h in head]
        order = self.fusion.order(dense=[h.dense if h.cosine is None else h.cosine for h in head],
                                  secondary=[h.secondary for h in head],
                                  lexical=[h.lexical if h.bm25 is None else h.bm25 for h in head],
                                  rrf=[h.score for h in head], coverage=covered)
        return self._places_first(query, [head[i] for i in order]) + hits[len(head):]

    def _coverage_rerank(self, query: Query, hits: list[Hit]) -> list[Hit]:
        """The rank-fusion order with its top hits re-ordered by score plus ``rerank_weight`` × coverage."""
        if not hits or self.rerank_weight <= 0:
            return hits
        weights = self.gate.weights(query.topic_terms)
        if not weights:
            return hits
        top = hits[0].score or 1.0
        head = hits[:RERANK_DEPTH]
        scored = sorted(head, key=lambda h: -(h.score / top + self.rerank_weight * coverage(weights, h.clause.text)))
        return self._places_first(query, scored) + hits[RERANK_DEPTH:]

    def _places_first(self, query: Query, scored: list[Hit]) -> list[Hit]:
        """With a place the question names, the clauses that mention it first (in their order)."""
        if query.foreign_places:  # a place the question names: the clauses that mention it come first
            snap = self.retriever.snapshot
            mentions = [h for h in scored
                        if any(self.gate.mentions_place(p, h.clause, snap) for p in query.foreign_places)]
            first = {id(h) for h in mentions}
            scored = mentions + [h for h in scored if id(h) not in first]
        return scored

    def direct_references(self, query: Query) -> list[Clause]:
        """Clauses the question names: "数据安全法第三十一条", "数据安全法第31条", "Article 31 of the Data Security Law";
        and, for "when does 数据安全法 take effect", the document's own commencement clause (…自…起施行)."""
        if query.kind == "date" and _ASKS_COMMENCEMENT.search(query.standalone):
            return self._commencement(query)
        if not query.articles:
            return self._plan_section(query)
        named = self._named_documents(query)
        if not named:
            return []
        return self.retriever.snapshot.under(f"{named[0]}/第{int_to_cn(query.articles[0])}条")

    def _plan_section(self, query: Query) -> list[Clause]:
        """The items of the plan section the question names by number: "第五部分", "第（十三）项",
        "第三部分第（二）项" (an item number that several parts use needs its part)."""
        text = query.standalone
        parts = [m.group(1) for m in _PART_NUMBER.finditer(text)]
        items = [f"（{m.group(1)}）" for m in _ITEM_NUMBER.finditer(text)]
        if not parts and not items or self._named_documents(query):
            return []
        snap = self.retriever.snapshot
        prefixes: set[str] = set()
        for doc_id, doc in snap.documents.items():
            if doc.meta.kind != "plan":
                continue
            for c in snap.of_document(doc_id):
                ids = c.clause_id.split("/")
                if parts and (len(ids) < 2 or ids[1] != parts[0]):
                    continue
                if items:
                    if len(ids) >= 3 and ids[2] == items[0]:
                        prefixes.add("/".join(ids[:3]))
                elif len(ids) >= 2:
                    prefixes.add("/".join(ids[:2]))
        if len(prefixes) != 1:
            return []
        return section_clauses(snap.under(prefixes.pop()), terms=query.topic_terms, rare=self.is_rare)

    def is_rare(self, term: str) -> bool:
        """Is ``term`` in under 5% of the clauses (a word that narrows a list, not a generic one)?"""
        snap = self.retriever.snapshot
        return snap.count(term) < 0.05 * len(snap.clauses)

    def _named_documents(self, query: Query) -> list[str]:
        """Ids of held documents (not the plan) the question names, first-named first; a name inside a longer
        one ("外商投资法" in "外商投资法实施条例") names only the longer one."""
        return self.retriever.snapshot.names.named(query.standalone, skip_kinds=("plan",))

    def _commencement(self, query: Query) -> list[Clause]:
        snap = self.retriever.snapshot
        for doc_id in self._named_documents(query):
            found = [c for c in snap.of_document(doc_id) if _COMMENCEMENT.search(c.text)]
            if found:
                return found[-1:]
        return []

    def _fuse(self, lists: list[list[Hit]], weights: list[float]) -> list[Hit]:
        by_id: dict[str, Hit] = {}
        for hits in lists:
            for h in hits:
                by_id.setdefault(h.clause.clause_id, h)
        fused = reciprocal_rank_fusion([[h.clause.clause_id for h in hits] for hits in lists],
                                       k=self.retriever.rrf_k, weights=weights)
        out = []
        for cid, score in fused[: self.k]:
            hit = by_id[cid].model_copy()
            hit.score = score
            out.append(hit)
        return out
