"""Is the full retrieval stack ever worse than its plain lexical part? Measured on a corpus nobody tuned on.

    python -m eval.bench_lexical_floor [--docs 250] [--queries 150] [--out eval/out/lexical_floor.json]

The corpus is Debian's ``manpages-zh`` package (Chinese man pages, from a package registry: fetched
with ``apt-get download`` into ``~/.cache/policy-assistant/manpages-zh/`` once). Each page is one
document (its first 1,500 characters after the NAME line, roff markup removed); the question for a
page is its one-line description from the NAME section ("复制文件和目录"), which is removed from the
indexed text, so the question is a summary of the page, not a copy of it. Pages are sampled with a
fixed seed.

Compared, by the rank of the gold document among the documents of the top 20 clauses:

* ``stack``: ``PolicyAssistant.search`` (e5-small + USE-m3 + BM25, with the configured ``FUSION``: score fusion
  with coverage by default);
* ``lexical``: the same index and re-rank with ``RETRIEVAL_MODE=lexical``;
* ``dense``: the same with ``RETRIEVAL_MODE=dense``;
* ``bm25-docs``: a plain bm25s index over the whole documents with the project's tokenizer.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "policy-assistant" / "manpages-zh"
_CJK = re.compile(r"[\u4e00-\u9fff]")


def roff_to_text(source: str) -> tuple[str, str]:
    """``(description, body)`` of a man page in roff: the NAME line's description and the rest as text.

    >>> roff_to_text('.TH CP 1\\n.SH 名称\\ncp \\\\- 复制文件和目录\\n.SH 描述\\n.PP\\n从指定的\\\\fB来源\\\\fP复制。\\n')
    ('复制文件和目录', '描述\\n从指定的来源复制。')
    """
    desc = ""
    lines: list[str] = []
    in_name = False
    for raw in source.splitlines():
        line = raw.rstrip()
        if line.startswith('.\\"') or line.startswith("'\\\""):
            continue
        if line.startswith(".SH") or line.startswith(".SS"):
            title = _clean(line[3:].strip().strip('"'))
            in_name = title.upper() in ("名称", "NAME", "名字", "名 称")
            if not in_name and title:
                lines.append(title)
            continue
        if line.startswith("."):
            rest = line.split(None, 1)[1] if " " in line else ""
            if line[:3] in (".B ", ".I ", ".BR", ".IR", ".BI", ".IB", ".RB", ".RI") and rest:
                lines.append(_clean(rest.replace('"', "")))
            continue
        text = _clean(line)
        if in_name and not desc and text:
            desc = re.split(r"\s+-+\s+|\s+—\s+", text, maxsplit=1)[-1].strip()
            continue
        if text:
            lines.append(text)
    return desc, "\n".join(lines)


def _clean(text: str) -> str:
    text = re.sub(r"\\f[BIRP]|\\f\(..|\\[,/&]|\\\(..", "", text)
    text = text.replace("\\-", "-").replace("\\ ", " ").replace("\\e", "\\")
    return re.sub(r"\s+", " ", text).strip()


def fetch(cache: Path = CACHE) -> Path:
    """The extracted package folder; downloads the .deb with apt-get once."""
    root = cache / "x" / "usr" / "share" / "man" / "zh_CN"
    if root.exists():
        return root
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        raise SystemExit("error: needs apt-get and dpkg-deb (Debian/Ubuntu) to fetch manpages-zh")
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", "manpages-zh"], cwd=cache, check=True, capture_output=True)
    deb = next(cache.glob("manpages-zh_*.deb"))
    subprocess.run(["dpkg-deb", "-x", str(deb), str(cache / "x")], check=True)
    return root


def load_pages(root: Path, body_chars: int = 1500) -> list[dict[str, str]]:
    pages = []
    for path in sorted(root.rglob("*.gz")):
        try:
            source = gzip.decompress(path.read_bytes()).decode("utf-8", "replace")
        except OSError:
            continue
        desc, body = roff_to_text(source)
        if len(_CJK.findall(desc)) >= 4 and len(body) >= 200:
            pages.append({"id": re.sub(r"[^A-Za-z0-9_.-]+", "-", path.name[:-3]), "question": desc,
                          "text": body[:body_chars]})
    seen: set[str] = set()
    unique = []
    for p in pages:  # the same description twice (aliases of one page) would make the gold ambiguous
        if p["question"] not in seen and p["id"] not in seen:
            seen.update((p["question"], p["id"]))
            unique.append(p)
    return unique


def doc_ranking(doc_ids: list[str]) -> list[str]:
    """Documents in order of their first appearance.

    >>> doc_ranking(["a", "b", "a", "c"])
    ['a', 'b', 'c']
    """
    return list(dict.fromkeys(doc_ids))


def scores(rankings: list[list[str]], gold: list[str]) -> dict[str, float]:
    """hit@1, hit@5 and MRR@10 of the gold document in each ranking.

    >>> scores([["a", "b"], ["c", "d"]], ["b", "x"])
    {'hit@1': 0.0, 'hit@5': 0.5, 'mrr@10': 0.25}
    """
    h1 = h5 = rr = 0.0
    for ranking, g in zip(rankings, gold):
        rank = ranking.index(g) + 1 if g in ranking else None
        h1 += rank == 1
        h5 += rank is not None and rank <= 5
        rr += 1.0 / rank if rank is not None and rank <= 10 else 0.0
    n = max(1, len(gold))
    return {"hit@1": round(h1 / n, 4), "hit@5": round(h5 / n, 4), "mrr@10": round(rr / n, 4)}


def run(n_docs: int, n_queries: int, seed: int = 0) -> dict[str, Any]:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import bm25s

    from assistant.pipeline import Pipeline
    from assistant.service import PolicyAssistant
    from assistant.settings import Settings
    from retrieval.lexical import tokenize
    from retrieval.retriever import HybridRetriever

    pages = load_pages(fetch())
    rng = random.Random(seed)
    docs = rng.sample(pages, min(n_docs, len(pages)))
    queries = rng.sample(docs, min(n_queries, len(docs)))
    gold = [q["id"] for q in queries]
    out: dict[str, Any] = {"qualified_pages": len(pages), "docs": len(docs), "queries": len(queries)}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "docs"
        folder.mkdir()
        paths = []
        for d in docs:
            p = folder / f"{d['id']}.txt"
            p.write_text(d["text"], encoding="utf-8")
            paths.append(p)
        overrides: dict[str, Any] = {"data_dir": Path(tmp) / "data", "llm_provider": "none"}
        a = PolicyAssistant(Settings(**overrides))
        t0 = time.perf_counter()
        a.ingest_paths(paths)
        out["ingest_s"] = round(time.perf_counter() - t0, 1)
        out["clauses"] = len(a.retriever.snapshot.clauses)
        rankings: dict[str, list[list[str]]] = {}
        lat: list[float] = []
        stack = []
        for q in queries:
            t0 = time.perf_counter()
            hits = a.search(q["question"], k=20)
            lat.append((time.perf_counter() - t0) * 1000)
            stack.append(doc_ranking([h.clause.doc_id for h in hits]))
        rankings[f"stack (e5 + USE + BM25, fusion={a.settings.fusion})"] = stack
        for mode in ("lexical", "dense"):
            retriever = HybridRetriever(a.store, mode=mode, rrf_k=a.settings.rrf_k,
                                        secondary=a.secondary_embedder if mode == "dense" else None)
            pipe = Pipeline(retriever, a.gate, rerank_weight=a.settings.rerank_weight)
            rankings[f"{mode} only (same index, re-rank)"] = [
                doc_ranking([h.clause.doc_id for h in pipe.search(q["question"], 20)]) for q in queries]
        index = bm25s.BM25()
        index.index([tokenize(d["text"]) for d in docs], show_progress=False)
        vocab = dict(index.vocab_dict)
        plain = []
        for q in queries:
            ids = [vocab[t] for t in tokenize(q["question"]) if t in vocab]
            s = index.get_scores(ids) if ids else [0.0] * len(docs)
            order = sorted(range(len(docs)), key=lambda i: -s[i])[:10]
            plain.append([docs[i]["id"] for i in order if s[i] > 0])
        rankings["bm25s over whole documents (char bigrams)"] = plain
        out["results"] = {name: scores(r, gold) for name, r in rankings.items()}
        out["stack_search_p50_ms"] = round(statistics.median(lat), 1)
        out["stack_search_p95_ms"] = round(sorted(lat)[int(0.95 * (len(lat) - 1))], 1)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.bench_lexical_floor", description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=250)
    ap.add_argument("--queries", type=int, default=150)
    ap.add_argument("--out", type=Path, default=Path("eval/out/lexical_floor.json"))
    args = ap.parse_args(argv)
    res = run(args.docs, args.queries)
    print(f"$ python -m eval.bench_lexical_floor --docs {args.docs} --queries {args.queries}")
    print(f"manpages-zh: {res['qualified_pages']} usable pages; {res['docs']} documents ({res['clauses']} clauses, "
          f"ingested in {res['ingest_s']} s), {res['queries']} questions; stack search p50 "
          f"{res['stack_search_p50_ms']} ms, p95 {res['stack_search_p95_ms']} ms\n")
    print("| ranking | hit@1 | hit@5 | MRR@10 |\n|---|---|---|---|")
    for name, m in res["results"].items():
        print(f"| {name} | {m['hit@1']:.3f} | {m['hit@5']:.3f} | {m['mrr@10']:.3f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
