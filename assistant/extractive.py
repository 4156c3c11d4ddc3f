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
from collections.abc import Callable
from typing import Any

from assistant.citations import render
from assistant.conversation import Condenser, History
from assistant.gate import KINDS_WITH_EVIDENCE, states
from assistant.models import Answer, Citation
from assistant.pipeline import Pipeline, Retrieved, section_clauses
from assistant.support import longest_common_substring
from assistant.text import coverage
from corpus.manifest import shipped_documents
from corpus.models import Clause
from retrieval.retriever import IndexSnapshot

_SET_QUESTION = re.compile(r"哪些|哪几|有什么|都有什么|列举|列出|清单|which|what are|list|what measures|what tasks",
                           re.IGNORECASE)
_PLAN_INTENT = re.compile(r"方案|任务|举措|措施|试点|福州|榕|市服开办|专班|pilot|plan|measure|task|fuzhou", re.IGNORECASE)

_QUOTE_UNIT = re.compile(r"[^。；：\n]*[。；：\n]?")

_HEADING_NUMBER = re.compile(r"^\s*(?:[一二三四五六七八九十]+、|[（(][一二三四五六七八九十]+[)）]|\d+[.、])\s*")

#: Suffixes that make a class noun of a word (租赁业, 服务类, 外向型); a set question's word that the clauses
#: do not use with its suffix is matched by its stem.
_CLASS_SUFFIXES = frozenset("业类型化性")

#: A set answer also lists any of the top hits that contain this share of the question's words.
SET_TOP_HITS = 3
SET_HIT_MIN_COVERAGE = 0.3


class ExtractiveAnswerer:
    """Answer by quoting clauses.

    Args:
        pipeline: analyse → retrieve → fuse → rerank → gate (:class:`~assistant.pipeline.Pipeline`).
        max_citations: citations of a non-set answer.
        max_set_items: citations of a set answer.
    """

    def __init__(self, pipeline: Pipeline, max_citations: int = 3, max_set_items: int = 15) -> None:
        self.pipeline = pipeline
        self.retriever = pipeline.retriever
        self.max_citations = max_citations
        self.max_set_items = max_set_items

    @property
    def condenser(self) -> Condenser:
        """The rule-based condenser the pipeline's query analysis uses."""
        return self.pipeline.analyzer.condenser

    def retrieve(self, question: str, history: History | None = None) -> Retrieved:
        """The pipeline's result for ``question`` (shared with the generative answerer)."""
        return self.pipeline.run(question, history)

    def _weights(self, terms: list[str]) -> dict[str, float]:
        return self.pipeline.gate.weights(terms)

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
        base.update(outcome=r.verdict.outcome, gate_reasons=r.verdict.reasons)
        if r.verdict.outcome == "caveat":
            return self._caveat(r, base)
        if r.refused or not r.hits:
            nearest = [Citation.of(h.clause) for h in r.hits[:3]]
            return Answer(answer=self.refusal_text(r.lang, nearest, r.verdict.caveat), refused=True, nearest=nearest,
                          **base)
        if not r.direct and _SET_QUESTION.search(question):
            items = self.set_items(r)
            if len(items) >= 2:
                citations = [Citation.of(c, self._quote(c, r)) for c in items]
                return Answer(answer=self._list_text(r.lang, citations, is_set=True), citations=citations, **base)
        chosen = r.direct or self._best_clauses(r)
        citations = [Citation.of(c, self._quote(c, r)) for c in chosen]
        return Answer(answer=self._list_text(r.lang, citations, is_set=False), citations=citations, **base)

    def _caveat(self, r: Retrieved, base: dict[str, Any]) -> Answer:
        """The corpus lacks what was asked but holds something close: say what is missing, show what is there.

        The clauses shown are context, not the answer: they go to ``nearest``, and the answer counts as
        a refusal (``refused`` is true, ``outcome`` is ``caveat``).
        """
        clauses = r.verdict.citing or self._best_clauses(r)
        nearest = [Citation.of(c, self._quote(c, r)) for c in clauses]
        lines = [r.verdict.caveat or ""]
        for i, c in enumerate(nearest, start=1):
            title = self._english_title(c) if r.lang == "en" else f"《{c.doc_title}》"
            lines.append(f"{i}. {title}{', ' if r.lang == 'en' else ''}{c.path}：「{c.quote}」（{c.label}）")
        return Answer(answer="\n".join(lines), refused=True, nearest=nearest, caveat=r.verdict.caveat, **base)

    def _terms(self, r: Retrieved) -> list[str]:
        return r.query.terms

    def _best_clauses(self, r: Retrieved) -> list[Clause]:
        """The best clause and up to two more that score nearly as well; headings give way to their body."""
        weights = self._weights(self._terms(r))
        top = r.hits[:8]
        kind = r.query.kind
        scored = []
        for j, h in enumerate(top):
            cov = coverage(weights, h.clause.text)
            bonus = 0.15 if kind in KINDS_WITH_EVIDENCE and states(kind, h.clause.text) else 0.0
            # the hit's place in the pipeline's order (score fusion), not its rank-fusion score, which that
            # order has already weighed
            scored.append((0.5 * cov + 0.5 * (1 - j / len(top)) + bonus, h))
        scored.sort(key=lambda sh: -sh[0])
        lead = scored[0][0]
        chosen = [self._body(scored[0][1].clause, weights)]
        for s, h in scored[1:]:
            if len(chosen) >= self.max_citations:
                break
            if s >= 0.8 * lead and h.clause.kind != "item-title" and h.clause not in chosen:
                chosen.append(h.clause)
        return chosen

    def _body(self, clause: Clause, weights: dict[str, float]) -> Clause:
        """A heading is context, not an answer: its best-matching body sentence instead (the heading if none)."""
        if clause.kind != "item-title":
            return clause
        children = [c for c in self.retriever.snapshot.under(clause.clause_id) if c.clause_id != clause.clause_id]
        if not children:
            return clause
        return max(children, key=lambda c: (coverage(weights, c.text), -c.order))

    def set_items(self, r: Retrieved) -> list[Clause]:
        """Every clause that answers a set question (see the module docstring)."""
        terms = list(r.query.topic_terms)
        snap = self.retriever.snapshot
        plan_only = bool(_PLAN_INTENT.search(r.condensed.core))
        plan_ids = set(snap.kinds.get("plan", ()))
        section = self.section_items(r)
        if section:  # "保障措施包括哪些方面", "第（十四）项列出了哪些事项": the section's own items
            return section
        if not terms:
            # No usable topic words: the hits that score close to the best one.
            top = r.hits[0].score
            return [h.clause for h in r.hits[: self.max_set_items] if h.score >= 0.5 * top]

        def in_pool(c: Clause) -> bool:
            return (not plan_only or c.doc_id in plan_ids) and c.kind != "item-title"

        terms = [self._stem(t, snap, in_pool) for t in terms]
        weights = self._weights(terms)
        # in position order: past the first max_set_items no clause can make the cut below (sorted by position)
        within = snap.positions(snap.kinds.get("plan", [])) if plan_only else None
        matched = [snap.clauses[i] for i in snap.containing_all(terms, limit=self.max_set_items, where=in_pool,
                                                                 within=within)]
        if len(matched) < 2 and len(terms) > 1:
            matched = [h.clause for h in r.hits[:20] if in_pool(h.clause) and coverage(weights, h.clause.text) >= 0.6]
            matched = list({c.clause_id: c for c in matched}.values())
        # The best retrieved clauses count too when they share enough of the question's words: they catch
        # clauses that say the same thing in other words.
        have = {c.clause_id for c in matched}
        for h in r.hits[:SET_TOP_HITS]:
            c = h.clause
            if in_pool(c) and c.clause_id not in have and coverage(weights, c.text) >= SET_HIT_MIN_COVERAGE:
                matched.append(c)
                have.add(c.clause_id)
        order = snap.by_clause_id
        matched.sort(key=lambda c: order[c.clause_id])
        return matched[: self.max_set_items]

    def section_items(self, r: Retrieved) -> list[Clause]:
        """The items of a plan section the question names by its heading, else ``[]``.

        A heading names the section when its words (without the numbering) are in the question, or most of
        them in one run (风险防控与协同监管 for "加强风险防控与协同监管体系建设"); a section named by its
        number ("第（十四）项", "第四部分") is a direct reference of the pipeline. The items are
        :func:`~assistant.pipeline.section_clauses`.
        """
        question = r.condensed.core
        snap = self.retriever.snapshot
        plans = snap.kinds.get("plan", [])
        headings: dict[str, str] = {}
        for doc_id in plans:
            for c in snap.of_document(doc_id):
                ids = c.clause_id.split("/")
                for level, heading in enumerate(c.path[: len(ids) - 1]):
                    headings.setdefault("/".join(ids[: level + 2]), heading)
        best: tuple[int, str] | None = None
        for prefix, heading in headings.items():
            title = _HEADING_NUMBER.sub("", heading).rstrip("。.")
            strength = 0
            if len(title) >= 4 and title in question:
                strength = len(title)
            elif len(title) >= 6:
                run = longest_common_substring(title, question)
                strength = run if run >= max(5, 0.6 * len(title)) else 0
            if strength and (best is None or (strength, len(prefix)) > (best[0], len(best[1]))):
                best = (strength, prefix)
        if best is None:
            return []
        items = section_clauses(snap.under(best[1]), self.max_set_items, terms=r.query.topic_terms,
                                rare=self.pipeline.is_rare)
        return items if len(items) >= 2 else []

    @staticmethod
    def _stem(term: str, snap: IndexSnapshot, in_pool: Callable[[Clause], bool]) -> str:
        """A word the clauses use only in its bare form: 租赁业 → 租赁 (the plan speaks of 融资租赁, 租赁企业)."""
        if len(term) >= 3 and term[-1] in _CLASS_SUFFIXES:
            stem = term[:-1]

            def count(t: str) -> int:
                return sum(1 for i in snap.containing(t) if in_pool(snap.clauses[i]))

            if count(term) < 2 <= count(stem):
                return stem
        return term

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
        weights = self._weights(self._terms(r))
        if not weights:
            return clause.text
        windows = [(i, j) for i in range(len(pieces)) for j in (i + 1, i + 2) if j <= len(pieces)]
        best = max(windows, key=lambda w: (round(coverage(weights, "".join(pieces[w[0]:w[1]])), 6),
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
                lines.append(f"{i}. {self._english_title(c)}, {c.path}: 「{c.quote}」{render(c.label)}")
        else:
            lead = (f"相关条款共{len(citations)}条：" if is_set else "根据现有条款：")
            lines.append(lead)
            for i, c in enumerate(citations, start=1):
                lines.append(f"{i}. 《{c.doc_title}》{c.path}：「{c.quote}」{render(c.label)}")
        return "\n".join(lines)

    def _english_title(self, c: Citation) -> str:
        doc = self.retriever.snapshot.documents.get(c.doc_id)
        return (doc.meta.title_en if doc and doc.meta.title_en else c.doc_title)

    def refusal_text(self, lang: str, nearest: list[Citation], reason: str | None = None) -> str:
        text = self._refusal_text(lang, nearest)
        return f"{reason}\n{text}" if reason else text

    def corpus_phrase(self, lang: str) -> str:
        """What the live index holds, in words: "福州实施方案、13部国家法律法规及2份其他文件" (counts from the
        snapshot, so uploads and removals are reflected)."""
        shipped = {s.meta.doc_id for s in shipped_documents() if s.meta.kind != "plan"}
        snap = self.retriever.snapshot
        docs = snap.documents
        plan = "plan" in snap.kinds
        national = sum(1 for d in docs if d in shipped)
        other = sum(1 for d, info in docs.items() if d not in shipped and info.meta.kind != "plan")
        if lang == "en":
            parts = (["the Fuzhou plan"] if plan else []) + (
                [f"{national} national law{'s' if national != 1 else ''} and regulation{'s' if national != 1 else ''}"]
                if national else []) + ([f"{other} other document{'s' if other != 1 else ''}"] if other else [])
            return " and ".join([", ".join(parts[:-1]), parts[-1]] if len(parts) > 2 else parts) or "no documents"
        zh = (["福州实施方案"] if plan else []) + ([f"{national}部国家法律法规"] if national else []) + (
            [f"{other}份其他文件"] if other else [])
        return "及".join(["、".join(zh[:-1]), zh[-1]] if len(zh) > 2 else zh) or "无文件"

    def _refusal_text(self, lang: str, nearest: list[Citation]) -> str:
        if lang == "en":
            head = (f"The corpus ({self.corpus_phrase('en')}) does not answer this question. "
                    "The nearest clauses, for reference only:")
            items = [f"- {self._english_title(c)}, {c.path}: {c.text[:80]}…" for c in nearest]
        else:
            head = f"现有语料（{self.corpus_phrase('zh')}）中没有能回答该问题的条款。以下是最接近的条款，仅供参考："
            items = [f"- 《{c.doc_title}》{c.path}：{c.text[:80]}…" for c in nearest]
        return "\n".join([head, *items])
