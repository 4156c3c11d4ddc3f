"""The default answerer: grounded, extractive answers that quote the clauses they cite.

* A question asking for a set ("哪些任务涉及数据跨境？") gets a list of every clause that
  contains all of the question's topic words, plus those of the three best hits that contain
  enough of them (the plan only, when the question is about the plan's tasks), one citation
  each, in document order.
* Any other question gets the best clause (and up to two more that score nearly as well),
  quoting the sentences of each that match the question.
* A question the corpus does not cover is refused, with the nearest clauses listed. The
  evidence score is described in :mod:`assistant.evidence`.

Usage::

    answerer = ExtractiveAnswerer(retriever)
    answer = answerer.run("到2028年服务业增加值要达到多少？")
    answer.citations[0].clause_id     # 'fz-plan/二/2'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from assistant.conversation import Condensed, Condenser, History
from assistant.evidence import META_WORDS, EvidenceScorer, question_terms
from assistant.models import Answer, Citation
from assistant.text import detect_lang
from corpus.models import Clause
from corpus.numbering import cn_to_int, int_to_cn
from retrieval.fusion import reciprocal_rank_fusion
from retrieval.retriever import Hit, HybridRetriever

_SET_QUESTION = re.compile(r"哪些|哪几|有什么|都有什么|列举|列出|清单|which|what are|list|what measures|what tasks",
                           re.IGNORECASE)
_PLAN_INTENT = re.compile(r"方案|任务|举措|措施|试点|福州|榕|市服开办|专班|pilot|plan|measure|task|fuzhou", re.IGNORECASE)
_ARTICLE_REF = re.compile(r"第([零〇一二三四五六七八九十百两\d]+)条")


_QUOTE_UNIT = re.compile(r"[^。；：\n]*[。；：\n]?")

#: A set answer also lists any of the top hits that contain this share of the question's words.
SET_TOP_HITS = 3
SET_HIT_MIN_COVERAGE = 0.3

#: Weight of question-word coverage when re-ranking the top hits, and how many hits are re-ranked.
RERANK_WEIGHT = 0.2
RERANK_DEPTH = 20

#: RRF weights of the (follow-up + previous question) and (follow-up + previous answer) lists.
FOLLOWUP_WEIGHTS = (1.0, 0.5)


@dataclass
class Retrieved:
    """What the answerers share: the condensed question, the fused hits and the evidence."""

    condensed: Condensed
    lang: str
    hits: list[Hit]
    support: float
    refused: bool
    direct: list[Clause]


class ExtractiveAnswerer:
    """Answer by quoting clauses.

    Args:
        retriever: the hybrid retriever.
        evidence: scores whether the retrieved clauses cover the question.
        condenser: turns follow-ups into standalone questions.
        max_citations: citations of a non-set answer.
        max_set_items: citations of a set answer.
        rerank_weight: weight of question-word coverage when re-ranking the top hits (0: off).
    """

    def __init__(self, retriever: HybridRetriever, evidence: EvidenceScorer | None = None,
                 condenser: Condenser | None = None, max_citations: int = 3, max_set_items: int = 15,
                 rerank_weight: float = RERANK_WEIGHT) -> None:
        self.retriever = retriever
        self.evidence = evidence or EvidenceScorer(retriever)
        self.condenser = condenser or Condenser()
        self.max_citations = max_citations
        self.max_set_items = max_set_items
        self.rerank_weight = rerank_weight

    # ------------------------------------------------------------ retrieval
    def retrieve(self, question: str, history: History | None = None, k: int = 30) -> Retrieved:
        """Condense, retrieve (fusing the follow-up with its context), find direct article references."""
        condensed = self.condenser.run(question, history)
        lang = detect_lang(question)
        hits = self.retriever.run(condensed.core, k=k)
        if condensed.is_followup:
            lists, weights = [hits, self.retriever.run(condensed.standalone, k=k)], [1.0, FOLLOWUP_WEIGHTS[0]]
            if condensed.context:
                lists.append(self.retriever.run(condensed.context, k=k))
                weights.append(FOLLOWUP_WEIGHTS[1])
            hits = self._fuse(lists, weights, k)
        hits = self.rerank(condensed.core, hits)
        direct = self._direct_references(condensed.standalone)
        if direct:
            ids = {c.clause_id for c in direct}
            hits = [Hit(clause=c, score=1.0, rank=0) for c in direct] + [h for h in hits if h.clause.clause_id not in ids]
        if direct:
            support = 1.0
        elif condensed.is_followup:  # the follow-up alone ("那2026年呢") or with its context may carry the topic
            support = max(self.evidence.score(condensed.core, hits, lang),
                          self.evidence.score(condensed.standalone, hits, lang))
        else:
            support = self.evidence.score(condensed.core, hits, lang)
        refused = not direct and support < self.evidence.threshold(lang)
        for rank, hit in enumerate(hits, start=1):
            hit.rank = rank
        return Retrieved(condensed=condensed, lang=lang, hits=hits, support=support, refused=refused,
                         direct=direct)

    def rerank(self, question: str, hits: list[Hit]) -> list[Hit]:
        """Re-order the top hits by fused score plus the IDF-weighted share of question words they contain."""
        if not hits or self.rerank_weight <= 0:
            return hits
        weights = self.evidence.weights(question_terms(question))
        if not weights:
            return hits
        top = hits[0].score or 1.0
        head = hits[:RERANK_DEPTH]
        scored = sorted(head, key=lambda h: -(h.score / top + self.rerank_weight * self.evidence.coverage(weights, h.clause.text)))
        return scored + hits[RERANK_DEPTH:]

    def _fuse(self, lists: list[list[Hit]], weights: list[float], k: int) -> list[Hit]:
        by_id: dict[str, Hit] = {}
        for hits in lists:
            for h in hits:
                by_id.setdefault(h.clause.clause_id, h)
        fused = reciprocal_rank_fusion([[h.clause.clause_id for h in hits] for hits in lists],
                                       k=self.retriever.rrf_k, weights=weights)
        out = []
        for cid, score in fused[:k]:
            hit = by_id[cid].model_copy()
            hit.score = score
            out.append(hit)
        return out

    def _direct_references(self, question: str) -> list[Clause]:
        """Clauses named in the question: "数据安全法第三十一条", "数据安全法第31条"."""
        m = _ARTICLE_REF.search(question)
        if not m:
            return []
        snap = self.retriever.snapshot
        number = m.group(1)
        try:
            article = f"第{int_to_cn(cn_to_int(number))}条"
        except ValueError:
            return []
        before = question[: m.start()]
        for doc_id, doc in snap.documents.items():
            names = {doc.meta.short_title, doc.meta.title, doc.meta.title.replace("中华人民共和国", "")}
            if any(n and n in before for n in names):
                return snap.under(f"{doc_id}/{article}")
        return []

    # -------------------------------------------------------------- answers
    def run(self, question: str, history: History | None = None) -> Answer:
        """Answer ``question`` (with optional ``[(question, answer), …]`` history)."""
        if not question or not question.strip():
            raise ValueError("question is empty")
        return self.answer_from(self.retrieve(question.strip(), history), question.strip())

    def answer_from(self, r: Retrieved, question: str) -> Answer:
        """The extractive answer for an already retrieved question (also the generative fallback)."""
        base: dict[str, Any] = dict(question=question, standalone_question=r.condensed.standalone, lang=r.lang,
                                    support_score=round(r.support, 4))
        if r.refused or not r.hits:
            nearest = [Citation.of(h.clause) for h in r.hits[:3]]
            return Answer(answer=self.refusal_text(r.lang, nearest), refused=True, nearest=nearest, **base)
        if not r.direct and _SET_QUESTION.search(question):
            items = self.set_items(r)
            if len(items) >= 2:
                citations = [Citation.of(c, self._quote(c, r)) for c in items]
                return Answer(answer=self._list_text(r.lang, citations, is_set=True), citations=citations, **base)
        chosen = r.direct or self._best_clauses(r)
        citations = [Citation.of(c, self._quote(c, r)) for c in chosen]
        return Answer(answer=self._list_text(r.lang, citations, is_set=False), citations=citations, **base)

    def _terms(self, r: Retrieved) -> list[str]:
        return question_terms(r.condensed.core, keep_meta=True)

    def _best_clauses(self, r: Retrieved) -> list[Clause]:
        weights = self.evidence.weights(self._terms(r))
        top = r.hits[:8]
        best_fused = max(h.score for h in top) or 1.0
        scored = []
        for h in top:
            cov = self.evidence.coverage(weights, h.clause.text)
            scored.append((0.5 * cov + 0.5 * h.score / best_fused, h))
        scored.sort(key=lambda sh: -sh[0])
        lead = scored[0][0]
        chosen = [scored[0][1].clause]
        for s, h in scored[1:]:
            if len(chosen) >= self.max_citations:
                break
            if s >= 0.8 * lead and h.clause.kind != "item-title":
                chosen.append(h.clause)
        return chosen

    def set_items(self, r: Retrieved) -> list[Clause]:
        """Every clause that answers a set question (see the module docstring)."""
        terms = [t for t in self._terms(r) if t not in META_WORDS]
        snap = self.retriever.snapshot
        plan_only = bool(_PLAN_INTENT.search(r.condensed.core))
        plan_ids = {d for d, doc in snap.documents.items() if doc.meta.kind == "plan"}
        if not terms:
            # No usable topic words: the hits that score close to the best one.
            top = r.hits[0].score
            return [h.clause for h in r.hits[: self.max_set_items] if h.score >= 0.5 * top]
        pool = [c for c in snap.clauses if (not plan_only or c.doc_id in plan_ids) and c.kind != "item-title"]
        weights = self.evidence.weights(terms)
        matched = [c for c in pool if all(t in c.text for t in terms)]
        if len(matched) < 2 and len(terms) > 1:
            hit_ids = {h.clause.clause_id for h in r.hits[:20]}
            matched = [c for c in pool if c.clause_id in hit_ids and self.evidence.coverage(weights, c.text) >= 0.6]
        # The best retrieved clauses count too when they share enough of the question's words: they catch
        # clauses that say the same thing in other words.
        in_pool = {c.clause_id for c in pool}
        have = {c.clause_id for c in matched}
        for h in r.hits[:SET_TOP_HITS]:
            c = h.clause
            if c.clause_id in in_pool and c.clause_id not in have and \
                    self.evidence.coverage(weights, c.text) >= SET_HIT_MIN_COVERAGE:
                matched.append(c)
                have.add(c.clause_id)
        order = {c.clause_id: i for i, c in enumerate(snap.clauses)}
        matched.sort(key=lambda c: order[c.clause_id])
        return matched[: self.max_set_items]

    def _quote(self, clause: Clause, r: Retrieved) -> str:
        """The part of the clause that matches the question: an exact substring of its text.

        A short clause is quoted whole; a long one is cut into sentences and 项 (at 。；： and line
        ends) and the best window of up to two consecutive pieces is quoted.
        """
        if len(clause.text) <= 120:
            return clause.text
        pieces = [p for p in _QUOTE_UNIT.findall(clause.text) if p.strip()]
        if len(pieces) <= 1:
            return clause.text
        weights = self.evidence.weights(self._terms(r))
        if not weights:
            return clause.text
        windows = [(i, j) for i in range(len(pieces)) for j in (i + 1, i + 2) if j <= len(pieces)]
        best = max(windows, key=lambda w: (round(self.evidence.coverage(weights, "".join(pieces[w[0]:w[1]])), 6),
                                           -(w[1] - w[0]), -w[0]))
        quote = "".join(pieces[best[0]:best[1]]).strip()
        return quote if quote in clause.text else clause.text

    # ------------------------------------------------------------- wording
    def _list_text(self, lang: str, citations: list[Citation], is_set: bool) -> str:
        lines: list[str] = []
        if lang == "en":
            lead = ("The corpus lists the following relevant clauses (quoted in the original Chinese):"
                    if is_set or len(citations) > 1 else "The corpus addresses this in the following clause (quoted in the original Chinese):")
            lines.append(lead)
            for i, c in enumerate(citations, start=1):
                lines.append(f"{i}. {self._english_title(c)}, {c.path}: 「{c.quote}」[{c.label}]")
        else:
            lead = (f"相关条款共{len(citations)}条：" if is_set else "根据现有条款：")
            lines.append(lead)
            for i, c in enumerate(citations, start=1):
                lines.append(f"{i}. 《{c.doc_title}》{c.path}：「{c.quote}」[{c.label}]")
        return "\n".join(lines)

    def _english_title(self, c: Citation) -> str:
        doc = self.retriever.snapshot.documents.get(c.doc_id)
        return (doc.meta.title_en if doc and doc.meta.title_en else c.doc_title)

    def refusal_text(self, lang: str, nearest: list[Citation]) -> str:
        if lang == "en":
            head = ("The shipped corpus (the Fuzhou plan and 13 national laws and regulations) does not answer this "
                    "question. The nearest clauses, for reference only:")
            items = [f"- {self._english_title(c)}, {c.path}: {c.text[:80]}…" for c in nearest]
        else:
            head = "现有语料（福州实施方案及13部国家法律法规）中没有能回答该问题的条款。以下是最接近的条款，仅供参考："
            items = [f"- 《{c.doc_title}》{c.path}：{c.text[:80]}…" for c in nearest]
        return "\n".join([head, *items])
