"""Scale benchmark: ingest, disk, peak RSS, cold start, search and /api/ask latency at 10k+ clauses.

    python -m eval.bench_scale --sizes 10000 [--modes embedded,server] [--model use-m3]

The corpus is the shipped corpus recombined: every shipped clause is cut at its 。；, and the pieces are
re-joined at random (seeded) into new clauses of the shipped clauses' length, 50 clauses per document
(``第N条 …``), so the vocabulary, the clause length and the legal style are the real corpus's — BM25
statistics, tokens per clause and embedding cost per clause are those a larger body of Chinese
regulations would have. It is not new content: near-duplicate phrasing is more frequent than in real
texts, which makes lexical posting lists longer (a pessimistic case for search).

Every phase runs in its own ``policy-assistant`` process (wall time from ``os.wait4``, peak RSS from the child's
polled ``VmHWM``); embedded mode uses ``POLICY_DATA_DIR``, server mode a ``chroma run`` started here. The ingest
row gives the seconds spent in the embedding model (from the CLI's summary line) and the share of the ingest
process's wall time beyond it; ``--penalty`` compares 150 small files with one file holding the same clauses.
Figures, no test.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

CLI = str(Path(sys.executable).with_name("policy-assistant"))
QUERIES = ["数据出境安全评估", "外商投资医疗机构", "跨境电商综合试验区", "个人信息保护影响评估", "服务业扩大开放",
           "增值电信业务外资准入", "知识产权保护", "自由贸易试验区建设", "金融开放创新", "人才签证便利化"]
QUESTIONS = ["哪些任务涉及数据跨境？", "外国医生能开诊所吗？", "数据出境需要安全评估吗？", "增值电信业务如何放开？",
             "个人信息处理者应当履行哪些义务？"]
DOC_CLAUSES = 50


def shipped_pieces() -> tuple[list[str], list[int]]:
    from corpus.loaders import DocumentLoader
    from corpus.manifest import shipped_documents
    from corpus.parsing import ClauseParser

    loader, parser = DocumentLoader(), ClauseParser()
    pieces: list[str] = []
    lengths: list[int] = []
    for doc in shipped_documents():
        text, _ = loader.run(doc.path)
        for clause in parser.run(doc.meta, text).clauses:
            lengths.append(len(clause.text))
            pieces.extend(p for p in re.split(r"(?<=[。；])", clause.text) if len(p) > 4)
    return pieces, lengths


def write_corpus(folder: Path, size: int, seed: int = 7) -> list[Path]:
    """``size`` recombined clauses in files of 50 clauses each."""
    rng = random.Random(seed)
    pieces, lengths = shipped_pieces()
    folder.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    for d in range(0, size, DOC_CLAUSES):
        lines = [f"# 标题：合成规章{d // DOC_CLAUSES}"]
        for n in range(1, min(DOC_CLAUSES, size - d) + 1):
            target, text = rng.choice(lengths), ""
            while len(text) < min(target, 280):
                text += rng.choice(pieces)
            lines.append(f"第{n}条 {text[:290].replace(chr(10), '')}")  # under MAX_CLAUSE_CHARS: one clause
        f = folder / f"syn{d // DOC_CLAUSES:05d}.txt"
        f.write_text("\n".join(lines) + "\n", encoding="utf-8")
        files.append(f)
    return files


def df_figures(files: list[Path]) -> str:
    """Document frequencies of the dev questions' terms: a scan of every clause vs the lexical index."""
    from assistant.text import content_terms
    from retrieval.lexical import LexicalIndex

    texts = [line.split(" ", 1)[1].strip() for f in files for line in f.read_text(encoding="utf-8").splitlines()
             if line.startswith("第")]
    dev = Path(__file__).resolve().parent / "datasets" / "dev.jsonl"
    questions = [json.loads(line)["question"] for line in dev.read_text(encoding="utf-8").splitlines()[:50]]
    terms = sorted({t for q in questions for t in content_terms(q)})
    index, lowered = LexicalIndex(texts), [t.lower() for t in texts]
    t0 = time.perf_counter()
    scan = {t: sum(1 for x in lowered if t in x) for t in terms}
    scan_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    fast = {t: index.df(t) if index.is_token(t) else sum(1 for i in index.postings(t) if t in lowered[i])
            for t in terms}
    index_s = time.perf_counter() - t0
    differ = sum(scan[t] != fast[t] for t in terms)
    return (f"df of {len(terms)} terms of {len(questions)} dev questions over {len(texts)} clauses: scan "
            f"{scan_s * 1000:.0f} ms, lexical index {index_s * 1000:.0f} ms, {differ} counts differ")


def _peak_rss(pid: int, done: threading.Event, out: list[int]) -> None:
    """Poll the process's ``VmHWM`` (its own peak RSS since exec) until it exits."""
    path = f"/proc/{pid}/status"
    while not done.is_set():
        try:
            with open(path, encoding="ascii", errors="replace") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        out.append(int(line.split()[1]))
                        break
        except OSError:
            return
        done.wait(0.05)


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) and stdout of one process.

    The peak is the child's ``VmHWM`` polled every 50 ms (Linux): ``ru_maxrss`` from ``wait4`` is not used where
    that works, because a child's ``ru_maxrss`` starts at this (parent) process's peak RSS (Linux carries the
    old address space's high-water mark over fork and exec), which at 100k clauses is this process's own ~3 GB."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.DEVNULL)
        done = threading.Event()
        hwm: list[int] = []
        poller = threading.Thread(target=_peak_rss, args=(proc.pid, done, hwm), daemon=True)
        poller.start()
        _, status, usage = os.wait4(proc.pid, 0)
        done.set()
        poller.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[1:3]} exited {proc.returncode}: {text[-400:]}")
    return time.perf_counter() - t0, (max(hwm) if hwm else usage.ru_maxrss) / 1024, text


def ingest_timing(out: str) -> tuple[float | None, float | None]:
    """Seconds of the ingest inside the process and of those in the embedding model, from its summary line."""
    found = re.search(r"clauses in ([\d.]+) s(?: \(embedding ([\d.]+) s\))?", out)
    if not found:
        return None, None
    return float(found.group(1)), float(found.group(2) or 0.0)


PENALTY_PROBE = """\
import json, sys, time
from pathlib import Path
from assistant.service import PolicyAssistant
from assistant.settings import Settings
a = PolicyAssistant(Settings())
a.embedder.embed_documents(["预热"])  # the model loaded before timing
paths = [Path(p) for p in sys.argv[1:]]
t0 = time.perf_counter()
for i in range(0, len(paths), 50):  # as `ingest --batch 50` does
    a.ingest_paths(paths[i:i + 50], refresh=False)
a.refresh_index()
print(json.dumps([time.perf_counter() - t0, a.embedder.embed_seconds]))
"""


def per_file_penalty(work: Path, model: str, files: int = 150, per_file: int = 10) -> str:
    """Ingest ``files`` small files and one file holding the same clauses, each into an empty embedded index with
    the bulk path (batches of 50 files, one refresh); seconds per clause inside the process (model loaded)."""
    rng = random.Random(11)
    pieces, _ = shipped_pieces()
    texts = []
    for _ in range(files * per_file):
        text = ""
        while len(text) < 140:
            text += rng.choice(pieces)
        texts.append(text[:290].replace("\n", ""))
    small, big = work / "penalty-small", work / "penalty-one"
    small.mkdir(parents=True, exist_ok=True)
    big.mkdir(parents=True, exist_ok=True)
    paths = []
    for f in range(files):
        lines = [f"# 标题：小文件{f}"] + [f"第{n + 1}条 {texts[f * per_file + n]}" for n in range(per_file)]
        paths.append(small / f"small{f:03d}.txt")
        paths[-1].write_text("\n".join(lines) + "\n", encoding="utf-8")
    one = big / "one.txt"
    one.write_text("\n".join(["# 标题：一个文件"] + [f"第{n + 1}条 {t}" for n, t in enumerate(texts)]) + "\n",
                   encoding="utf-8")
    seconds = []
    for name, group in (("small", paths), ("one", [one])):
        env = {**os.environ, "POLICY_DATA_DIR": str(work / f"penalty-data-{name}"), "EMBEDDING_MODEL": model,
               "SECONDARY_EMBEDDING_MODEL": "none", "LLM_PROVIDER": "none", "OMP_NUM_THREADS": "1"}
        env.pop("CHROMA_HOST", None)
        _, _, out = timed([sys.executable, "-c", PENALTY_PROBE, *map(str, group)], env)
        inner, embed = json.loads(out.strip().splitlines()[-1])
        seconds.append((inner, embed))
    (s_small, e_small), (s_one, e_one) = seconds
    n = files * per_file
    return (f"per-file penalty: {files} files of {per_file} clauses {s_small / n * 1000:.2f} ms/clause "
            f"(embedding {e_small:.1f} of {s_small:.1f} s) vs one file of {n} clauses {s_one / n * 1000:.2f} ms/clause "
            f"(embedding {e_one:.1f} of {s_one:.1f} s): {s_small / s_one:.2f}x")


def du(*paths: Path) -> float:
    total = 0
    for p in paths:
        for f in p.rglob("*") if p.exists() else []:
            if f.is_file():
                total += f.stat().st_size
    return total / 1e6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, seconds: float = 120) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def ask_p95(port: int, clients: int = 10, per_client: int = 10) -> tuple[float, float, int]:
    import httpx

    base = f"http://127.0.0.1:{port}"
    end = time.monotonic() + 600
    while time.monotonic() < end:
        try:
            if httpx.get(f"{base}/api/health", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    for q in QUESTIONS:  # warm-up
        httpx.post(f"{base}/api/ask", json={"question": q}, timeout=120)
    lat: list[float] = []
    errors = [0]

    def client(i: int) -> None:
        with httpx.Client(timeout=120) as c:
            for j in range(per_client):
                t0 = time.perf_counter()
                r = c.post(f"{base}/api/ask", json={"question": QUESTIONS[(i + j) % len(QUESTIONS)]})
                lat.append((time.perf_counter() - t0) * 1000)
                if r.status_code != 200:
                    errors[0] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statistics.median(lat), pct(lat, 0.95), errors[0]


def run_mode(mode: str, size: int, files: list[Path], work: Path, model: str) -> dict[str, object]:
    data = work / f"{mode}-{size}" / "data"
    env = {**os.environ, "POLICY_DATA_DIR": str(data), "EMBEDDING_MODEL": model, "SECONDARY_EMBEDDING_MODEL": "none",
           "LLM_PROVIDER": "none", "OMP_NUM_THREADS": "1"}
    env.pop("CHROMA_HOST", None)
    chroma = None
    chroma_dir = work / f"{mode}-{size}" / "chroma-server"
    if mode == "server":
        port = free_port()
        chroma = subprocess.Popen([str(Path(sys.executable).with_name("chroma")), "run", "--path", str(chroma_dir),
                                   "--port", str(port), "--host", "127.0.0.1"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(port)
        env.update({"CHROMA_HOST": "127.0.0.1", "CHROMA_PORT": str(port)})
    row: dict[str, object] = {"mode": mode, "clauses": size, "model": model}
    try:
        wall, rss, out = timed([CLI, "ingest", "--own-only", "--quiet", "--batch", "50", *map(str, files)], env)
        found = re.search(r"(\d+) clauses", out)
        size = int(found.group(1)) if found else size  # the clauses the parser made of the files
        row.update(clauses=size, ingest_s=round(wall, 1), ingest_clauses_per_s=round(size / wall, 1), ingest_peak_rss_mb=round(rss))
        inner, embed = ingest_timing(out)
        if embed is not None:  # the whole process's wall time (start, model load, writes, refresh) vs the model
            row.update(ingest_in_process_s=inner, ingest_embed_s=embed, ingest_beyond_embedding_share=round(1 - embed / wall, 2))
        row["disk_mb"] = round(du(data, chroma_dir), 1)
        wall, rss, _ = timed([CLI, "search", QUERIES[0], "--json"], env)  # lexical index saved by the ingest
        row.update(cold_search_s=round(wall, 2), cold_search_peak_rss_mb=round(rss))
        probe = ("import json,sys,time\nfrom assistant.service import PolicyAssistant\nfrom assistant.settings import "
                 "Settings\na=PolicyAssistant(Settings())\nqs=json.loads(sys.argv[1])\nfor q in qs: a.search(q,k=5)\n"
                 "lat=[]\nfor _ in range(5):\n for q in qs:\n  t=time.perf_counter(); a.search(q,k=5); "
                 "lat.append((time.perf_counter()-t)*1000)\nprint(json.dumps(lat))\n")
        _, rss, out = timed([sys.executable, "-c", probe, json.dumps(QUERIES, ensure_ascii=False)], env)
        lat = json.loads(out.strip().splitlines()[-1])
        row.update(search_p50_ms=round(statistics.median(lat), 1), search_p95_ms=round(pct(lat, 0.95), 1),
                   search_process_peak_rss_mb=round(rss))
        port = free_port()
        server = subprocess.Popen([CLI, "serve", "--port", str(port)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            p50, p95, errors = ask_p95(port)
        finally:
            server.terminate()
            server.wait(30)
        row.update(ask_p50_ms_10_concurrent=round(p50, 1), ask_p95_ms_10_concurrent=round(p95, 1), ask_errors=errors)
    finally:
        if chroma is not None:
            chroma.terminate()
            chroma.wait(30)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10000,100000", help="comma-separated clause counts")
    ap.add_argument("--modes", default="embedded,server", help="comma-separated; empty: only the corpus and df figures")
    ap.add_argument("--model", default="use-m3", help="EMBEDDING_MODEL for the run (secondary model off)")
    ap.add_argument("--work", type=Path, default=None, help="folder for corpora and indexes (default: a temp dir)")
    ap.add_argument("--json", action="store_true", help="one JSON line per run instead of the table")
    ap.add_argument("--penalty", action="store_true",
                    help="also compare 150 small files with one file holding the same clauses (embedded)")
    args = ap.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    rows = []
    try:
        if args.penalty:
            print(per_file_penalty(work, args.model), flush=True)
        for size in (int(s) for s in args.sizes.split(",") if s.strip()):
            files = write_corpus(work / f"corpus-{size}", size)
            print(df_figures(files), flush=True)
            for mode in (m.strip() for m in args.modes.split(",") if m.strip()):
                row = run_mode(mode, size, files, work, args.model)
                rows.append(row)
                print(json.dumps(row, ensure_ascii=False) if args.json else
                      "  ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
