"""Metrics: per-question scores and their aggregation by question type and language.

Retrieval (answerable questions; a retrieved clause is *relevant* when it matches a gold unit,
see :mod:`eval.dataset`):

* ``recall@k``: share of questions with a relevant clause in the top k (k = 1, 5, 10);
* ``mrr``: mean reciprocal rank of the first relevant clause (0 when none in the top 10);
* ``ndcg@10``: binary gains, a clause counts only for gold units not yet covered above it, the
  ideal ranking covers ``min(#units, 10)`` units in the first ranks;
* ``set_recall@10`` / ``set_complete@10`` (questions with more than one gold unit): mean share of
  the gold units covered by the top 10, and share of those questions whose whole gold set is.

Citations, following ALCE (Gao et al. 2023), over the answers that were not refusals. The
answer is split into *statements*: cut after every group of ``[label]`` citation markers and at
line breaks outside quotation marks (a quoted clause may span lines); a marker-less piece ending
in a colon is a heading and is skipped. With the support
judge (:mod:`assistant.support`) judging a statement against the text of its cited clauses:

* ``citation_recall``: share of statements whose cited clauses support them (uncited: 0);
* ``citation_precision``: share of citations that are needed: a citation is *irrelevant* when
  it does not support its statement alone and the statement's other citations support it
  without it (ALCE); a citation of an unsupported statement is not needed either.

Answers:

* ``gold_citation_recall``: share of an answerable question's gold units that the answer cites;
  ``gold_cited_any``: share of answerable questions whose answer cites at least one gold unit;
  ``set_cited_complete``: share of questions with several gold units whose answer cites all of them;
* ``refusal_precision`` / ``refusal_recall``: refusals among questions that must be refused;
  ``false_refusal_rate``: share of answerable questions refused;
* ``keyword_accuracy``: share of answerable questions whose answer contains every keyword
  (normalised; a refusal scores 0); ``keyword_recall``: share of keywords found;
* ``latency_p50_ms`` / ``latency_p95_ms``: wall time of one ask.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from assistant.citations import MARKER_BODY
from assistant.text import normalize

__all__ = ["first_rank", "ndcg_at", "unit_coverage", "split_statements", "Statement", "citation_scores",
           "aggregate", "breakdown", "percentile", "HEADLINE"]

#: The headline metrics (checked against ``eval/baseline.json``).
HEADLINE = ("recall@1", "recall@5", "mrr", "ndcg@10", "citation_recall", "citation_precision",
            "gold_citation_recall", "refusal_recall", "refusal_precision", "keyword_accuracy")

_MARKERS = re.compile(r"((?:\s*\[" + MARKER_BODY + r"\])+)")
_MARKER = re.compile(r"\[(" + MARKER_BODY + r")\]")


# ------------------------------------------------------------------- retrieval
def first_rank(matched: Sequence[Sequence[str]]) -> int | None:
    """1-based rank of the first hit that matches any gold unit (``matched[i]``: units of hit i)."""
    for i, units in enumerate(matched, start=1):
        if units:
            return i
    return None


def unit_coverage(matched: Sequence[Sequence[str]], n_units: int, k: int) -> float:
    """Share of the gold units covered by the first ``k`` hits."""
    if n_units <= 0:
        return 0.0
    covered = {u for units in matched[:k] for u in units}
    return len(covered) / n_units


def ndcg_at(matched: Sequence[Sequence[str]], n_units: int, k: int = 10) -> float:
    """nDCG@k with binary gains; a hit gains only when it covers a gold unit not covered above it."""
    if n_units <= 0:
        return 0.0
    seen: set[str] = set()
    dcg = 0.0
    for i, units in enumerate(matched[:k], start=1):
        new = set(units) - seen
        if new:
            dcg += 1.0 / math.log2(i + 1)
            seen |= new
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(n_units, k) + 1))
    return dcg / ideal


# ------------------------------------------------------------------- citations
@dataclass
class Statement:
    """One answer statement and the labels of the citations it carries."""

    text: str
    labels: list[str] = field(default_factory=list)


def _lines_outside_quotes(text: str) -> list[str]:
    """Split at line breaks that are not inside a 「」/『』/“” quotation (a quoted clause may span lines)."""
    out: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch in "「『“":
            depth += 1
        elif ch in "」』”" and depth:
            depth -= 1
        if ch == "\n" and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


def split_statements(answer: str) -> list[Statement]:
    """Split an answer into statements (see the module docstring).

    >>> [(s.text, s.labels) for s in split_statements("根据现有条款：\\n1. 甲。[A]乙。[B][C]\\n2. 「丙\\n丁」[D]")]
    [('1. 甲。', ['A']), ('乙。', ['B', 'C']), ('2. 「丙\\n丁」', ['D'])]
    """
    out: list[Statement] = []
    parts = _MARKERS.split(answer)
    # parts alternate: text, marker group, text, marker group, …, text
    for i in range(0, len(parts), 2):
        labels = _MARKER.findall(parts[i + 1]) if i + 1 < len(parts) else []
        lines = [ln.strip() for ln in _lines_outside_quotes(parts[i])]
        lines = [ln for ln in lines if re.sub(r"[\W_]+", "", ln)]
        for j, text in enumerate(lines):
            mine = labels if j == len(lines) - 1 else []
            if not mine and re.search(r"[:：]\s*$", text):
                continue  # a heading such as "根据现有条款："
            out.append(Statement(text=text, labels=mine))
    return out


SupportFn = Callable[[str, list[str]], bool]


def citation_scores(statements: list[Statement], cited_text: dict[str, str],
                    supports: SupportFn) -> dict[str, Any]:
    """ALCE citation recall and precision of one answer.

    Args:
        statements: from :func:`split_statements`.
        cited_text: citation label → the text the judge sees for that clause.
        supports: ``supports(statement, [clause texts])`` → do these clauses support it?

    Returns ``{"recall", "precision", "statements": [...], "n_citations"}``; recall/precision are
    ``None`` when there are no statements / no citations.
    """
    details = []
    n_supported = 0
    n_cites = 0
    n_needed = 0
    for st in statements:
        labels = [lb for lb in dict.fromkeys(st.labels) if lb in cited_text]
        texts = [cited_text[lb] for lb in labels]
        supported = bool(texts) and supports(st.text, texts)
        n_supported += int(supported)
        needed: list[bool] = []
        for j, _lb in enumerate(labels):
            if not supported:
                needed.append(False)
                continue
            alone = supports(st.text, [texts[j]])
            others = [t for m, t in enumerate(texts) if m != j]
            irrelevant = not alone and bool(others) and supports(st.text, others)
            needed.append(not irrelevant)
        n_cites += len(labels)
        n_needed += sum(needed)
        details.append({"text": st.text, "labels": labels, "unknown_labels": [lb for lb in st.labels
                                                                               if lb not in cited_text],
                        "supported": supported, "needed": needed})
    return {"recall": n_supported / len(statements) if statements else None,
            "precision": n_needed / n_cites if n_cites else None,
            "statements": details, "n_citations": n_cites}


# ----------------------------------------------------------------- aggregation
def percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else None


def latency_summary(ms: Sequence[float]) -> dict[str, float | None]:
    """p50, p95, max and mean of latencies in milliseconds, rounded to 0.1 ms (None for no values); the load
    scripts (``eval.loadtest``, ``eval.soak``) print these.

    >>> latency_summary([10, 20, 30, 40])
    {'p50_ms': 25.0, 'p95_ms': 38.5, 'max_ms': 40.0, 'mean_ms': 25.0}
    """
    def r(v: float | None) -> float | None:
        return round(v, 1) if v is not None else None

    return {"p50_ms": r(percentile(ms, 50)), "p95_ms": r(percentile(ms, 95)), "max_ms": r(float(max(ms)) if ms else None),
            "mean_ms": r(_mean(list(ms)))}


def _mean(values: list[float]) -> float | None:
    return float(sum(values) / len(values)) if values else None


def keyword_hits(answer: str, keywords: Sequence[str]) -> list[bool]:
    text = normalize(answer).lower()
    return [normalize(k).lower() in text for k in keywords]


def aggregate(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate per-question results (the dicts the runner writes) into metrics.

    A metric that does not apply to the subset (e.g. refusal precision with no refusals) is ``None``.
    """
    answerable = [r for r in results if not r["must_refuse"]]
    unanswerable = [r for r in results if r["must_refuse"]]
    retrieval = [r for r in answerable if r.get("retrieval") is not None]
    m: dict[str, Any] = {"n": len(results), "n_answerable": len(answerable), "n_unanswerable": len(unanswerable)}
    ranks = [r["retrieval"]["first_rank"] for r in retrieval]
    for k in (1, 5, 10):
        m[f"recall@{k}"] = _mean([1.0 if rk is not None and rk <= k else 0.0 for rk in ranks])
    m["mrr"] = _mean([1.0 / rk if rk is not None and rk <= 10 else 0.0 for rk in ranks])
    m["ndcg@10"] = _mean([r["retrieval"]["ndcg@10"] for r in retrieval])
    sets = [r for r in retrieval if r["n_gold_units"] > 1]
    m["set_recall@10"] = _mean([r["retrieval"]["coverage@10"] for r in sets])
    m["set_complete@10"] = _mean([1.0 if r["retrieval"]["coverage@10"] >= 1.0 else 0.0 for r in sets])

    answered = [r for r in results if not r["refused"]]
    m["citation_recall"] = _mean([r["citation_recall"] for r in answered if r.get("citation_recall") is not None])
    m["citation_precision"] = _mean([r["citation_precision"] for r in answered
                                     if r.get("citation_precision") is not None])
    m["gold_citation_recall"] = _mean([r["gold_cited"] for r in answerable])
    # The headline: "a gold clause cited" and "the whole gold set cited" on list questions.
    m["gold_cited_any"] = _mean([1.0 if (r["gold_cited"] or 0) > 0 else 0.0 for r in answerable])
    m["set_cited_complete"] = _mean([1.0 if (r["gold_cited"] or 0) >= 1.0 else 0.0 for r in answerable
                                     if r["n_gold_units"] > 1])

    refused = [r for r in results if r["refused"]]
    true_refusals = sum(1 for r in refused if r["must_refuse"])
    m["refusal_precision"] = true_refusals / len(refused) if refused else None
    m["refusal_recall"] = true_refusals / len(unanswerable) if unanswerable else None
    m["false_refusal_rate"] = (sum(1 for r in answerable if r["refused"]) / len(answerable)) if answerable else None

    with_kw = [r for r in answerable if r["keywords"]]
    m["keyword_accuracy"] = _mean([1.0 if all(r["keywords_found"]) and not r["refused"] else 0.0 for r in with_kw])
    m["keyword_recall"] = _mean([0.0 if r["refused"] else sum(r["keywords_found"]) / len(r["keywords"])
                                 for r in with_kw])
    lat = [r["latency_ms"] for r in results if r.get("latency_ms") is not None]
    m["latency_p50_ms"] = percentile(lat, 50)
    m["latency_p95_ms"] = percentile(lat, 95)
    return m


def breakdown(results: Sequence[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    """:func:`aggregate` of each group of results sharing ``r[key]`` (e.g. ``type``, ``lang``)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault(str(r[key]), []).append(r)
    return {g: aggregate(rs) for g, rs in sorted(groups.items())}
