"""Run a dataset through the assistant (in process or against a running server) and score it.

Usage::

    from eval.runner import InProcessBackend, run_eval
    report = run_eval(load_dataset(DEV), InProcessBackend(PolicyAssistant(Settings())))
    report["metrics"]["mrr"]

    run_eval(items, HttpBackend("http://127.0.0.1:7860"))   # the same set through the HTTP API

The HTTP backend speaks ``POST {url}/api/search {query, k, doc_id?} → {hits: [...]}`` and
``POST {url}/api/ask {question, history} → {answer, citations, refused}``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import platform
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from eval.dataset import CorpusClause, EvalItem, assistant_clauses, gold_units, matched_units, shipped_clauses, validate
from eval.metrics import aggregate, breakdown, citation_scores, keyword_hits, ndcg_at, split_statements, unit_coverage

__all__ = ["Backend", "InProcessBackend", "HttpBackend", "run_eval", "evaluate_item", "make_supports"]

SEARCH_K = 10


class Backend(Protocol):
    def search(self, query: str, k: int) -> list[dict[str, Any]]: ...
    def ask(self, question: str, history: list[tuple[str, str]]) -> dict[str, Any]: ...
    def config(self) -> dict[str, Any]: ...
    def clauses(self) -> list[CorpusClause]: ...
    def corpus_version(self) -> str: ...


def _citation_dict(c: Any) -> dict[str, Any]:
    return {"clause_id": c.clause_id, "doc_id": c.doc_id, "doc_title": c.doc_title, "path": c.path,
            "label": c.label, "text": c.text, "quote": c.quote}


class InProcessBackend:
    """The eval through :class:`~assistant.service.PolicyAssistant` (public methods only)."""

    def __init__(self, assistant: Any) -> None:
        self.assistant = assistant

    def search(self, query: str, k: int) -> list[dict[str, Any]]:
        return [{"clause_id": h.clause.clause_id, "doc_id": h.clause.doc_id, "text": h.clause.text,
                 "label": h.clause.label, "score": h.score} for h in self.assistant.search(query, k=k)]

    def ask(self, question: str, history: list[tuple[str, str]]) -> dict[str, Any]:
        a = self.assistant.ask(question, history)
        return {"answer": a.answer, "citations": [_citation_dict(c) for c in a.citations], "refused": a.refused,
                "standalone_question": a.standalone_question, "support_score": a.support_score,
                "unsupported_sentences": a.unsupported_sentences, "mode": a.mode, "outcome": a.outcome}

    def config(self) -> dict[str, Any]:
        s = self.assistant.settings
        return {"backend": "in-process", "embedding_model": s.embedding_model, "retrieval_mode": s.retrieval_mode,
                "rrf_k": s.rrf_k, "gate_threshold": s.gate_threshold,
                "llm_provider": s.llm_provider}

    def clauses(self) -> list[CorpusClause]:
        return assistant_clauses(self.assistant)

    def corpus_version(self) -> str:
        docs = sorted((d.meta.doc_id, d.content_hash) for d in self.assistant.documents())
        digest = hashlib.sha256(repr(docs).encode()).hexdigest()[:12]
        return f"{len(docs)} documents, sha256:{digest}"


class HttpBackend:
    """The eval against a running server's HTTP API."""

    def __init__(self, url: str, timeout: float = 120.0, client: Any = None) -> None:
        import httpx

        self.url = url.rstrip("/")
        self.client = client or httpx.Client(base_url=self.url, timeout=timeout)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        resp = self.client.post(path, json=body)
        resp.raise_for_status()
        return resp.json()

    def search(self, query: str, k: int) -> list[dict[str, Any]]:
        return list(self._post("/api/search", {"query": query, "k": k}).get("hits", []))

    def ask(self, question: str, history: list[tuple[str, str]]) -> dict[str, Any]:
        return self._post("/api/ask", {"question": question, "history": [list(t) for t in history]})

    def config(self) -> dict[str, Any]:
        return {"backend": "http", "endpoint": self.url}

    def clauses(self) -> list[CorpusClause]:
        return shipped_clauses()  # the server's index is not listed by the API; assume the shipped corpus

    def corpus_version(self) -> str:
        return "shipped corpus (assumed: the server's index is not inspected)"


def make_supports(judge: Any) -> Callable[[str, list[str]], bool]:
    """``supports(statement, texts)`` with a :class:`~assistant.support.SupportJudge`.

    The clauses count one by one and, when there are several, also concatenated (ALCE judges the
    concatenation of the cited passages).
    """
    def supports(sentence: str, texts: list[str]) -> bool:
        if not texts:
            return False
        candidates = list(texts) + (["\n".join(texts)] if len(texts) > 1 else [])
        return judge.run(sentence, candidates).supported
    return supports


def _judge_text(c: dict[str, Any]) -> str:
    """What the judge sees for a citation: the clause with its document title and heading path."""
    head = f"《{c.get('doc_title', '')}》{c.get('path', '')}：" if c.get("doc_title") or c.get("path") else ""
    return head + str(c.get("text", ""))


def evaluate_item(item: EvalItem, backend: Backend, supports: Callable[[str, list[str]], bool]) -> dict[str, Any]:
    """Ask, retrieve and score one question; the per-question record of the report."""
    t0 = time.perf_counter()
    ans = backend.ask(item.question, list(item.history))
    latency = (time.perf_counter() - t0) * 1000
    units = gold_units(item)
    rec: dict[str, Any] = {
        "id": item.id, "question": item.question, "history": [list(t) for t in item.history], "type": item.type,
        "lang": item.lang, "register": item.style or "-", "refuse_kind": item.refuse_kind or "-",
        "must_refuse": item.must_refuse, "n_gold_units": len(units), "gold_units": units,
        "answer": ans.get("answer", ""), "refused": bool(ans.get("refused")),
        "support_score": ans.get("support_score"), "outcome": ans.get("outcome"), "latency_ms": round(latency, 2),
    }
    # Retrieval: the question itself, or for a follow-up the standalone question the assistant formed.
    query = item.question
    if item.history:
        query = ans.get("standalone_question") or " ".join([q for q, _ in item.history] + [item.question])
    rec["retrieval_query"] = query
    if units:
        t1 = time.perf_counter()
        hits = backend.search(query, SEARCH_K)
        rec["search_ms"] = round((time.perf_counter() - t1) * 1000, 2)
        matched = [matched_units(item, h["clause_id"], h.get("text", "")) for h in hits]
        first = next((i for i, m in enumerate(matched, start=1) if m), None)
        rec["retrieval"] = {"first_rank": first, "ndcg@10": ndcg_at(matched, len(units), 10),
                            "coverage@10": unit_coverage(matched, len(units), 10),
                            "hits": [{"clause_id": h["clause_id"], "matched": m} for h, m in zip(hits, matched, strict=True)]}
    else:
        rec["retrieval"] = None
    # Citations.
    citations = list(ans.get("citations") or [])
    rec["citations"] = [{"clause_id": c.get("clause_id"), "label": c.get("label"),
                         "matched": matched_units(item, c.get("clause_id", ""), c.get("text", ""))}
                        for c in citations]
    if rec["refused"]:
        rec["citation_recall"] = rec["citation_precision"] = None
        rec["statements"] = []
    else:
        cited_text: dict[str, str] = {}
        for c in citations:
            cited_text.setdefault(str(c.get("label")), _judge_text(c))
        scores = citation_scores(split_statements(rec["answer"]), cited_text, supports)
        rec["citation_recall"], rec["citation_precision"] = scores["recall"], scores["precision"]
        rec["statements"] = scores["statements"]
    covered = {u for c in rec["citations"] for u in c["matched"]}
    rec["gold_cited"] = (len(covered) / len(units)) if units and not rec["refused"] else (0.0 if units else None)
    rec["keywords"] = list(item.answer_keywords)
    rec["keywords_found"] = keyword_hits(rec["answer"], item.answer_keywords) if not rec["refused"] else \
        [False] * len(item.answer_keywords)
    rec["failures"] = failures(rec)
    return rec


def failures(rec: dict[str, Any]) -> list[str]:
    """Why a question failed, one reason per problem; each starts with its category and a colon."""
    out: list[str] = []
    score = rec.get("support_score")
    score_txt = f" (support score {score:.3f})" if isinstance(score, (int, float)) else ""
    if rec["must_refuse"]:
        if not rec["refused"]:
            cited = ", ".join(c["clause_id"] for c in rec["citations"][:3])
            out.append(f"refusal: answered a question that must be refused{score_txt}; cited {cited or 'nothing'}")
        return out
    r = rec["retrieval"] or {}
    first = r.get("first_rank")
    if first is None:
        top = ", ".join(h["clause_id"] for h in r.get("hits", [])[:3])
        out.append(f"retrieval miss: no gold clause in the top {SEARCH_K} (top: {top})")
    elif first > 1:
        out.append(f"retrieval rank: first gold clause at rank {first}")
    if rec["n_gold_units"] > 1 and r.get("coverage@10", 1.0) < 1.0:
        n = rec["n_gold_units"]
        out.append(f"set retrieval: top {SEARCH_K} covers {round(r['coverage@10'] * n)}/{n} gold units")
    if rec["refused"]:
        out.append(f"refusal: refused an answerable question{score_txt}")
        return out
    cited_units = {u for c in rec["citations"] for u in c["matched"]}
    if not cited_units:
        cited = ", ".join(c["clause_id"] for c in rec["citations"][:3])
        out.append(f"gold citation: cites no gold clause (cited {cited or 'nothing'})")
    elif len(cited_units) < rec["n_gold_units"]:
        out.append(f"gold citation: cites {len(cited_units)}/{rec['n_gold_units']} gold units")
    bad = [s for s in rec["statements"] if not s["supported"]]
    if bad:
        out.append(f"citation support: {len(bad)}/{len(rec['statements'])} statements not supported by their "
                   f"citations (first: {bad[0]['text'][:40]!r})")
    missing = [k for k, ok in zip(rec["keywords"], rec["keywords_found"], strict=True) if not ok]
    if missing:
        out.append(f"keywords: missing {missing}")
    return out


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parents[1])
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def run_eval(items: Sequence[EvalItem], backend: Backend, judge: Any = None, dataset: str = "",
             progress: Callable[[int, int, dict[str, Any]], None] | None = None,
             warmup: bool = True) -> dict[str, Any]:
    """Run ``items`` through ``backend`` and build the report (a JSON-ready dict).

    Args:
        judge: the support judge for citation recall/precision (a SupportJudge); ``None``
            leaves those metrics out.
        warmup: ask the first question once, untimed, before measuring latency.
    """
    problems = validate(items, backend.clauses())
    supports = make_supports(judge) if judge is not None else (lambda _s, _t: False)
    if warmup and items:
        backend.ask(items[0].question, list(items[0].history))
        backend.search(items[0].question, SEARCH_K)
    results = []
    for n, item in enumerate(items, start=1):
        rec = evaluate_item(item, backend, supports)
        if judge is None:
            rec["citation_recall"] = rec["citation_precision"] = None
            rec["failures"] = [f for f in rec["failures"] if not f.startswith("citation support")]
        results.append(rec)
        if progress:
            progress(n, len(items), rec)
    config = dict(backend.config())
    if judge is not None:
        config.update(support_threshold=judge.threshold, support_cos_floor=judge.cos_floor,
                      support_cos_ceiling=judge.cos_ceiling)
    return {
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "dataset": dataset, "git_commit": _git_commit(), "python": platform.python_version(),
        "config": config, "corpus_version": backend.corpus_version(), "gold_problems": problems,
        "metrics": aggregate(results),
        "by_type": breakdown(results, "type"), "by_lang": breakdown(results, "lang"),
        "by_register": breakdown(results, "register"),
        "by_refuse_kind": breakdown([r for r in results if r["must_refuse"]], "refuse_kind"),
        "failure_categories": failure_categories(results),
        "results": results,
    }


def failure_categories(results: Sequence[dict[str, Any]]) -> dict[str, int]:
    """How many questions have each failure category, most frequent first."""
    counts: dict[str, int] = {}
    for r in results:
        for cat in {f.split(":", 1)[0] for f in r["failures"]}:
            counts[cat] = counts.get(cat, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))
