"""`make bench`: ingest throughput, cold start, warm latency, scale curve and memory, side by side, in one run.

    .venv/bin/python bench/run.py --shared ../shared/data [--scales 1,4,16] [--quick] [--work DIR] [--keep]
        [--only SECTIONS] [--mh-index DIR] [--baseline-articles N] [--ingest-reps N] [--writepath-chunks N]

Every measurement that needs a fresh process (ingest, cold start, peak RSS, queries) runs in a child
process of this script (``--child ...``); its peak RSS comes from ``wait4``. Newsbot ingests each whole
corpus for its throughput figure; the ratio against the plain LlamaIndex baseline (too slow for a whole
corpus) comes from both ingesting the same seeded sample, alternating, each run into a fresh dir.
The last line printed is one JSON object holding every figure.

The ``writepath`` section (bench/writepath.py: synthetic growth to 500,000 chunks on a Chroma server, write->visible
in another process, per-stage latency, HNSW recall, reader memory) takes well over 15 minutes, so it runs only when
named: ``--only writepath`` (``--quick``: a 20,000-chunk smoke run; ``--writepath-chunks N`` sets the size).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NEWSBOT = [sys.executable, "-m", "bot"]
COLD_QUESTION = "Which company did the FTC sue in November 2023?"
LEVER_CHUNKS = 128  # chunks of real text in the embedding micro-benchmarks
LEVER_REPS = 7  # rounds over every variant; the median round counts
SECTIONS = ("levers", "ingest", "cold", "warm", "discord", "scale", "e2e", "modes", "writepath")
ON_REQUEST = ("writepath",)  # over 15 minutes: run only when named in --only


# -- helpers ----------------------------------------------------------------------------------------------
def pct(xs: Sequence[float], p: float) -> float:
    s = sorted(xs)
    return round(s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))], 1) if s else 0.0


def run_child(args: list[str], env: dict[str, str] | None = None) -> tuple[dict[str, Any], float, float]:
    """Run ``bench/run.py --child ...``; returns (its JSON result, wall seconds, peak RSS MB)."""
    return run_process([sys.executable, str(Path(__file__).resolve()), "--child", *args], env=env, want_json=True)


def run_process(cmd: list[str], env: dict[str, str] | None = None,
                want_json: bool = False) -> tuple[dict[str, Any], float, float]:
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                            env={**os.environ, **(env or {})})
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    out = proc.stdout.read().decode() if proc.stdout else ""
    err = proc.stderr.read().decode() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd[-6:])} failed ({proc.returncode}):\n{err[-2000:]}")
    result = json.loads(out.strip().splitlines()[-1]) if want_json else {}
    LAST_CPU[0] = usage.ru_utime + usage.ru_stime
    return result, wall, usage.ru_maxrss / 1024


@contextlib.contextmanager
def chroma_server(path: Path) -> Iterator[int]:
    """``chroma run`` on a free 127.0.0.1 port (the package's own server, offline) until the block ends."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exe = Path(sys.executable).parent / "chroma"
    proc = subprocess.Popen([str(exe), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            env={**os.environ, "ANONYMIZED_TELEMETRY": "False"})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("bench: chroma run did not start") from None
                time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=20)


LAST_CPU = [0.0]  # CPU seconds (user + system) of the last child: a figure the machine's other load barely moves


def dir_mb(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6, 1)


def say(*parts: object) -> None:
    print(*parts, flush=True)


def model_flops_per_token(seq: float) -> float:
    """Forward-pass FLOPs per token of the bundled BERT at mean sequence length ``seq`` (from its config)."""
    from index.embed import bundled_model_dir

    cfg = json.loads((bundled_model_dir() / "config.json").read_text())
    h, inter, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    dense = 2 * layers * (4 * h * h + 2 * h * inter)  # Q, K, V, O projections and the two FFN matmuls
    attention = 2 * layers * 2 * seq * h  # QK^T and attention x V
    return dense + attention


def matmul_peak() -> float:
    """Best fp32 GFLOP/s of numpy's matmul (BLAS, all cores) on 2048x2048 matrices."""
    import numpy as np

    n = 2048
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(7))
    return round(2 * n**3 / best / 1e9, 1)


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


# -- children (each in a fresh process) ---------------------------------------------------------------------
class CountingEmbedder:
    """Passes through to the real embedder, counting the model tokens (with [CLS]/[SEP]) it embeds."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.name, self.dim, self.tokens = inner, inner.name, inner.dim, 0

    def tokenize(self, text: str):  # type: ignore[no-untyped-def]
        return self.inner.tokenize(text)

    def embed_ids(self, batch):  # type: ignore[no-untyped-def]
        self.tokens += sum(len(s) + 2 for s in batch)
        return self.inner.embed_ids(batch)

    def embed(self, texts):  # type: ignore[no-untyped-def]
        return self.inner.embed(texts)


def child_ingest(data_dir: str, paths: list[str], limit: int, precision: str, sync: bool) -> dict[str, Any]:
    from bot.settings import Settings
    from bot.wiring import Services
    from index.ingest import ChunkingConfig, ingest
    from index.load import load_paths
    from index.types import Article

    settings = Settings(data_dir=Path(data_dir), embed_precision=precision)  # type: ignore[arg-type]
    items = [i for i in load_paths(paths) if isinstance(i, Article)]
    if limit:
        items = items[:limit]
    app = Services(settings)
    counting = CountingEmbedder(app.index.embedder)
    app.index.embedder.embed(["warm up"])  # like the baseline, the clock starts with the model loaded and run once
    store = app.index.store  # and with the database open
    started = time.perf_counter()
    report = ingest(items, store, counting, config=ChunkingConfig(), overlap_writes=not sync)
    app.index.sync()  # and this host's lexical engine has the articles (as `newsbot ingest` does)
    seconds = time.perf_counter() - started
    return {"articles": report.new + report.updated, "chunks": report.chunks_added, "tokens": counting.tokens,
            "seconds": round(seconds, 2), "failed": report.failed}


def child_baseline(data_dir: str, paths: list[str], limit: int) -> dict[str, Any]:
    """The plain LlamaIndex pipeline of issue 6: SentenceSplitter(256), HuggingFaceEmbedding, Chroma."""
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", ANONYMIZED_TELEMETRY="False")
    import chromadb
    from llama_index.core import Document, StorageContext, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from index.embed import bundled_model_dir
    from index.load import load_paths
    from index.types import Article

    items = [i for i in load_paths(paths) if isinstance(i, Article)][: limit or None]
    docs = [Document(text=a.body, metadata={"title": a.title, "source": a.source}, doc_id=a.id) for a in items]
    embed = HuggingFaceEmbedding(model_name=str(bundled_model_dir()), device="cpu")
    embed.get_text_embedding("warm up")  # like ours, the clock starts with the model loaded
    client = chromadb.PersistentClient(path=data_dir)
    store = ChromaVectorStore(chroma_collection=client.get_or_create_collection("baseline"))
    started = time.perf_counter()
    VectorStoreIndex.from_documents(docs, storage_context=StorageContext.from_defaults(vector_store=store),
                                    embed_model=embed, transformations=[SentenceSplitter(chunk_size=256)])
    seconds = time.perf_counter() - started
    stored = client.get_collection("baseline").get(include=["documents"])
    texts = [t for t in stored["documents"] or [] if t]
    tok = embed._model.tokenizer  # the tokenizer HuggingFaceEmbedding runs; it truncates at the model's max
    limit_tokens = getattr(embed._model, "max_seq_length", None) or 512
    tokens = sum(min(len(ids), limit_tokens) for ids in tok(texts)["input_ids"]) if texts else 0
    return {"articles": len(items), "chunks": len(stored["ids"]), "tokens": tokens, "seconds": round(seconds, 2),
            "max_seq_length": limit_tokens}


def child_queries(data_dir: str, questions_file: str, limit: int) -> dict[str, Any]:
    from bot.settings import Settings
    from bot.wiring import Services

    questions = json.loads(Path(questions_file).read_text())[: limit or None]
    app = Services(Settings(data_dir=Path(data_dir)))
    app.answerer.ask("warm up")
    retrieve, full = [], []
    for q in questions:
        t = time.perf_counter()
        app.index.search(q, 10)
        retrieve.append((time.perf_counter() - t) * 1000)
    for q in questions:
        t = time.perf_counter()
        app.answerer.ask(q)
        full.append((time.perf_counter() - t) * 1000)
    return {"n": len(questions), "retrieve_p50_ms": pct(retrieve, 50), "retrieve_p95_ms": pct(retrieve, 95),
            "ask_p50_ms": pct(full, 50), "ask_p95_ms": pct(full, 95), "phases_p50_ms": search_phases(app, questions)}


def search_phases(app: Any, questions: list[str]) -> dict[str, float]:
    """Median milliseconds of each stage of a search (``Retriever.last_stages``) over the same questions: question
    embedding, feed check, lexical top-k queries, dense HNSW query, pool vectors, exact re-scoring, fusion, records."""
    per: dict[str, list[float]] = {}
    for q in questions:
        app.index.search(q, 10)
        for name, ms in app.index.retriever.last_stages.items():
            per.setdefault(name, []).append(ms)
    return {name: pct(ms, 50) for name, ms in per.items()}


def child_levers(corpus: str, n_chunks: int) -> dict[str, Any]:
    """Embedding micro-benchmarks on the same real chunks, interleaved batch by batch so load drift cancels."""
    import numpy as np
    import onnxruntime as ort

    from index.embed import MiniLM, model_path
    from index.ingest import ChunkingConfig, prepare
    from index.load import load_paths
    from index.types import Article

    cache = Path(os.environ.get("NEWSBOT_MODEL_CACHE_DIR") or tempfile.mkdtemp(prefix="newsbot-lever-"))
    try:
        probe = MiniLM(cache, precision="int8")
        seqs: list[list[int]] = []
        for a in load_paths([corpus]):
            if isinstance(a, Article):
                seqs.extend(prepare(a, probe, ChunkingConfig())[1])
            if len(seqs) >= n_chunks * 4:
                break
        seqs = random.Random(0).sample(seqs, n_chunks)
        tokens = sum(len(s) + 2 for s in seqs)

        def session(precision: str, threads: int, spin: bool) -> Any:
            o = ort.SessionOptions()
            o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            o.intra_op_num_threads, o.inter_op_num_threads, o.log_severity_level = threads, 1, 3
            o.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
            return ort.InferenceSession(str(model_path(cache, precision)), o, providers=["CPUExecutionProvider"])

        def batches(sort: bool, budget: int) -> list[tuple[list[int], Any, Any]]:
            order = sorted(range(len(seqs)), key=lambda i: len(seqs[i])) if sort else list(range(len(seqs)))
            out, start = [], 0
            while start < len(order):
                end = start + 1
                width = len(seqs[order[start]]) + 2
                while end < len(order) and max(width, len(seqs[order[end]]) + 2) * (end - start + 1) <= budget:
                    width = max(width, len(seqs[order[end]]) + 2)
                    end += 1
                group = order[start:end]
                ids = np.zeros((len(group), width), np.int64)
                mask = np.zeros_like(ids)
                for r, i in enumerate(group):
                    ids[r, : len(seqs[i]) + 2] = [101, *seqs[i], 102]
                    mask[r, : len(seqs[i]) + 2] = 1
                out.append((group, ids, mask))
                start = end
            return out

        variants = {
            "fp32, 2 threads, sorted, 8192-token batches": ("fp32", 2, False, True, 8192),
            "int8, 2 threads, sorted, 8192-token batches": ("int8", 2, False, True, 8192),
            "int8, 1 thread": ("int8", 1, False, True, 8192),
            "int8, 2 threads, spinning on": ("int8", 2, True, True, 8192),
            "int8, unsorted (padding)": ("int8", 2, False, False, 8192),
            "int8, 2048-token batches": ("int8", 2, False, True, 2048),
            "int8, 4096-token batches": ("int8", 2, False, True, 4096),
        }
        sessions = {k: session(*v[:3]) for k, v in variants.items()}
        plans = {k: batches(v[3], v[4]) for k, v in variants.items()}
        vectors = {k: np.zeros((len(seqs), 384), np.float32) for k in variants}
        times: dict[str, list[float]] = {k: [] for k in variants}
        for rep in range(LEVER_REPS):  # each round starts with a different variant, so load drift spreads evenly
            names = list(variants)[rep % len(variants):] + list(variants)[: rep % len(variants)]
            for name in names:
                t = time.perf_counter()
                for group, ids, mask in plans[name]:
                    vectors[name][group] = sessions[name].run(None, {"input_ids": ids, "attention_mask": mask})[0]
                times[name].append(time.perf_counter() - t)
        base = statistics.median(times[next(iter(variants))])
        ref = vectors[next(iter(variants))]
        out: dict[str, Any] = {"chunks": n_chunks, "tokens": tokens}
        for name in variants:
            med = statistics.median(times[name])
            cos = (vectors[name] * ref).sum(1)
            out[name] = {"tokens_per_s": round(tokens / med), "vs_fp32": round(base / med, 2),
                         "cos_min": round(float(cos.min()), 4), "cos_mean": round(float(cos.mean()), 5)}
        return out
    finally:
        if "NEWSBOT_MODEL_CACHE_DIR" not in os.environ:
            shutil.rmtree(cache, ignore_errors=True)


def child_main(argv: list[str]) -> None:
    kind, rest = argv[0], argv[1:]
    if kind == "ingest":
        result = child_ingest(rest[0], rest[4:], int(rest[1]), rest[2], rest[3] == "sync")
    elif kind == "baseline":
        result = child_baseline(rest[0], rest[2:], int(rest[1]))
    elif kind == "queries":
        result = child_queries(rest[0], rest[1], int(rest[2]))
    elif kind == "levers":
        result = child_levers(rest[0], int(rest[1]))
    else:
        raise SystemExit(f"unknown child {kind}")
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result))


# -- the bench ----------------------------------------------------------------------------------------------
def scaled_bbc(src: Path, factor: int, out: Path) -> Path:
    """``factor`` copies of the BBC corpus as JSONL: distinct ids, sentences shuffled in every copy but the first."""
    from index.chunk import split_sentences
    from index.load import load_paths
    from index.types import Article

    out.mkdir(parents=True, exist_ok=True)
    path = out / f"bbc-x{factor}.jsonl"
    articles = [a for a in load_paths([src]) if isinstance(a, Article)]
    rng = random.Random(factor)
    with path.open("w", encoding="utf-8") as f:
        for copy in range(factor):
            for a in articles:
                body = a.body
                if copy:
                    sentences = split_sentences(body)
                    rng.shuffle(sentences)
                    body = " ".join(sentences)
                f.write(json.dumps({"id": f"{a.id}~{copy}", "title": a.title, "body": body,
                                    "category": a.category}) + "\n")
    return path


def ingest_sample(src: Path, n: int, out: Path, seed: int = 0) -> tuple[Path, dict[str, int]]:
    """``n`` distinct articles of ``src`` as JSONL, a seeded random sample stratified by category (the article's,
    else its folder under ``src``) in proportion to the corpus; also the counts drawn per category."""
    from index.load import load_paths, split_origin
    from index.types import Article

    strata: dict[str, list[Article]] = {}
    seen: set[str] = set()
    for a in load_paths([src]):
        if not isinstance(a, Article) or a.id in seen:
            continue
        seen.add(a.id)
        folder = Path(split_origin(a.origin)[0]).parent
        if not a.category and src.is_dir() and folder == src:
            continue  # not in a category folder: BBC's README.TXT
        strata.setdefault(a.category or folder.name, []).append(a)
    total = sum(len(g) for g in strata.values())
    shares = {k: n * len(g) / total for k, g in sorted(strata.items())}
    counts = {k: int(v) for k, v in shares.items()}
    for k in sorted(shares, key=lambda k: counts[k] - shares[k])[: n - sum(counts.values())]:
        counts[k] += 1  # largest remainders
    rng = random.Random(seed)
    picked = [a for k in counts for a in rng.sample(strata[k], min(counts[k], len(strata[k])))]
    rng.shuffle(picked)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{src.name.split('.')[0]}-sample-{n}.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for a in picked:
            f.write(json.dumps({**a.extra, "id": a.id, "title": a.title, "body": a.body, "source": a.source,
                                "url": a.url, "author": a.author, "published_at": a.published_at,
                                "category": a.category}) + "\n")
    return path, counts


def rates(r: dict[str, Any]) -> dict[str, Any]:
    s = max(r["seconds"], 1e-9)
    return {**r, "articles_per_s": round(r["articles"] / s, 2), "chunks_per_s": round(r["chunks"] / s, 1),
            "tokens_per_s": round(r["tokens"] / s)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--scales", default="1,4,16", help="BBC corpus multiples for the scale curve (default 1,4,16)")
    ap.add_argument("--quick", action="store_true", help="small subsets everywhere (a smoke run, not figures)")
    ap.add_argument("--work", type=Path, help="where indexes are built (default: a temporary directory)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--baseline-articles", type=int, default=0, help="articles in the sample both pipelines "
                    "ingest for the ratio (default 30 MultiHop / 200 BBC; quick: 10 / 20)")
    ap.add_argument("--ingest-reps", type=int, default=2, help="alternating runs of each pipeline on the shared "
                    "sample (at least 2)")
    ap.add_argument("--no-e2e-levers", action="store_true", help="skip the end-to-end fp32 and sync-write ingests")
    ap.add_argument("--only", default="", help=f"comma-separated sections to run (default all but "
                    f"{','.join(ON_REQUEST)}: {','.join(s for s in SECTIONS if s not in ON_REQUEST)})")
    ap.add_argument("--writepath-chunks", type=int, default=0, help="chunks at the write-path section's largest size "
                    "(default 500000; quick: 20000)")
    ap.add_argument("--mh-index", type=Path, help="an ingested MultiHop data dir for cold/warm/discord when the "
                    "ingest section is not run")
    ap.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child_main(args.child)
        return
    quick = args.quick
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    if only - set(SECTIONS):
        raise SystemExit(f"bench: unknown section(s) {', '.join(sorted(only - set(SECTIONS)))}")

    def want(section: str) -> bool:
        return section in only if only else section not in ON_REQUEST
    scales = [int(x) for x in args.scales.split(",") if x.strip()] if not quick else [1]
    multihop = args.shared / "multihop-rag" / "corpus.json.gz"
    dev = args.shared / "multihop-rag" / "dev-queries.json.gz"
    bbc = args.shared / "bbc-news"
    for p in (multihop, dev, bbc):
        if not p.exists():
            raise SystemExit(f"bench: {p} is missing (pass --shared DIR)")
    work = args.work or Path(tempfile.mkdtemp(prefix="newsbot-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["NEWSBOT_MODEL_CACHE_DIR"] = str(work / "models")  # one export/quantisation for every child
    limit_mh, limit_bbc = (60, 200) if quick else (0, 0)
    base_mh = args.baseline_articles or (10 if quick else 30)
    base_bbc = args.baseline_articles or (20 if quick else 200)
    ingest_reps = max(2, args.ingest_reps)
    n_questions = 40 if quick else 0
    figures: dict[str, Any] = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "quick": quick,
                               "cores": os.cpu_count(), "loadavg_start": os.getloadavg()[0]}
    try:
        # 0. the machine's fp32 matmul peak, and the embedding levers on the same real chunks
        peak = matmul_peak()
        figures["matmul_peak_gflops"] = peak
        say(f"numpy fp32 matmul peak: {peak} GFLOP/s ({os.cpu_count()} cores)")
        if want("levers"):
            levers, _, _ = run_child(["levers", str(multihop), str(48 if quick else LEVER_CHUNKS)])
            figures["levers"] = levers
            say(f"\nembedding levers ({levers['chunks']} real MultiHop chunks, {levers['tokens']} tokens, "
                f"rotated order, median of {LEVER_REPS} rounds):")
            for name, v in levers.items():
                if isinstance(v, dict):
                    say(f"  {name:46} {v['tokens_per_s']:>7} tok/s  {v['vs_fp32']:>5.2f}x  cos>= {v['cos_min']:.4f}")

        # 1. ingest throughput: newsbot (default int8) vs the plain LlamaIndex pipeline
        ingest_fig: dict[str, Any] = {}
        mh_dir = args.mh_index or work / "multihop-int8"
        qfile = work / "dev-questions.json"
        qfile.write_text(json.dumps([q["query"] for q in json.loads(gzip.decompress(dev.read_bytes()))]))
        if want("ingest"):
            say("\ningest throughput")
            inputs = (("multihop", multihop, limit_mh, base_mh), ("bbc", bbc, limit_bbc, base_bbc))
            for name, src, limit, base_n in inputs:
                # the throughput figure: the whole corpus (its index serves the later sections)
                ours, _, _ = run_child(["ingest", str(work / f"{name}-int8"), str(limit), "int8", "async", str(src)])
                ours = rates(ours)
                flops = ours["tokens"] * model_flops_per_token(ours["tokens"] / max(ours["chunks"], 1))
                ours["model_gflops"] = round(flops / ours["seconds"] / 1e9, 1)
                ours["of_peak"] = round(ours["model_gflops"] / peak, 3)
                say(f"  {name:9} newsbot : {ours['articles']:>5} articles {ours['chunks']:>6} chunks in "
                    f"{ours['seconds']:>7.1f} s = {ours['articles_per_s']:>6.2f} art/s "
                    f"{ours['chunks_per_s']:>7.1f} chunks/s {ours['tokens_per_s']:>6} tok/s; "
                    f"model {ours['model_gflops']} GFLOP/s = {ours['of_peak']:.0%} of peak (whole input)")
                # the ratio: both pipelines on the same seeded sample, each run into a fresh dir, alternating
                sample, spread = ingest_sample(src, base_n, work / "inputs")
                runs: dict[str, list[dict[str, Any]]] = {"newsbot": [], "baseline": []}
                for rep in range(ingest_reps):
                    for who in ("newsbot", "baseline"):
                        d = str(work / f"{name}-sample-{who}-{rep}")
                        child = {"newsbot": ["ingest", d, "0", "int8", "async"], "baseline": ["baseline", d, "0"]}[who]
                        r, _, _ = run_child([*child, str(sample)])
                        runs[who].append(rates(r))
                        shutil.rmtree(d, ignore_errors=True)
                raw = {who: {k: statistics.median(r[k] / max(r["seconds"], 1e-9) for r in rs)  # unrounded rates
                             for k in ("articles", "tokens")} for who, rs in runs.items()}
                ratio = round(raw["newsbot"]["articles"] / max(raw["baseline"]["articles"], 1e-9), 2)
                tok_ratio = round(raw["newsbot"]["tokens"] / max(raw["baseline"]["tokens"], 1e-9), 2)
                med = {who: {k: statistics.median(r[k] for r in rs) for k in ("seconds", "articles_per_s",
                                                                             "chunks_per_s", "tokens_per_s")}
                       for who, rs in runs.items()}
                what = f"{sum(spread.values())} articles, a seeded random sample by category: " + ", ".join(
                    f"{k} {v}" for k, v in spread.items())
                ingest_fig[name] = {"newsbot": ours, "sample": what, "runs_each": ingest_reps,
                                    "sample_newsbot": {**runs["newsbot"][0], **med["newsbot"],
                                                       "runs_s": [r["seconds"] for r in runs["newsbot"]]},
                                    "baseline": {**runs["baseline"][0], **med["baseline"],
                                                 "runs_s": [r["seconds"] for r in runs["baseline"]]},
                                    "ratio_articles_per_s": ratio, "ratio_tokens_per_s": tok_ratio}
                say(f"  {'':9} same sample for both, alternating, median of {ingest_reps} fresh runs each ({what}):")
                for who in ("newsbot", "baseline"):
                    r, m = runs[who][0], med[who]
                    say(f"  {'':9} {who:8}: {r['articles']:>5} articles {r['chunks']:>6} chunks in "
                        f"{m['seconds']:>7.1f} s = {m['articles_per_s']:>6.2f} art/s "
                        f"{m['chunks_per_s']:>7.1f} chunks/s {round(m['tokens_per_s']):>6} tok/s "
                        f"(runs: {', '.join(str(x['seconds']) for x in runs[who])} s)")
                say(f"  {'':9} ratio (median art/s over median art/s): {ratio}x; tokens/s: {tok_ratio}x")
            figures["ingest"] = ingest_fig
        if not (mh_dir / "chroma").exists() and {"cold", "warm", "discord"} & (only or set(SECTIONS)):
            raise SystemExit(f"bench: no MultiHop index in {mh_dir}: run the ingest section or pass --mh-index")

        # 2. cold start of `newsbot ask` (fresh processes) and its peak RSS
        if want("cold"):
            cold, cpu, rss = [], [], []
            env = {"NEWSBOT_DATA_DIR": str(mh_dir)}
            for _ in range(3 if quick else 5):
                _, wall, peak_rss = run_process([*NEWSBOT, "ask", COLD_QUESTION], env=env)
                cold.append(wall)
                cpu.append(LAST_CPU[0])
                rss.append(peak_rss)
            figures["cold_start_s"] = {"median": round(statistics.median(cold), 2), "runs": [round(c, 2) for c in cold],
                                       "cpu_median": round(statistics.median(cpu), 2)}
            figures["ask_peak_rss_mb"] = round(max(rss), 1)
            say(f"\ncold start `newsbot ask`: median {statistics.median(cold):.2f} s wall "
                f"({statistics.median(cpu):.2f} s CPU) over {len(cold)} fresh processes; peak RSS {max(rss):.0f} MB")

        # 3. warm query latency over the dev questions
        if want("warm"):
            warm, _, _ = run_child(["queries", str(mh_dir), str(qfile), str(n_questions)])
            figures["warm"] = warm
            say(f"warm latency over {warm['n']} dev questions: retrieve p50 {warm['retrieve_p50_ms']} ms, "
                f"p95 {warm['retrieve_p95_ms']} ms; retrieve+answer p50 {warm['ask_p50_ms']} ms, "
                f"p95 {warm['ask_p95_ms']} ms")

        # 5. memory of the Discord bot with the MultiHop index loaded (bench/discord_load.py)
        if want("discord"):
            n = 20 if quick else 100
            load, _, bot_rss = run_process([sys.executable, str(ROOT / "bench" / "discord_load.py"), "--data-dir",
                                            str(mh_dir), "--questions", str(dev), "--n", str(n), "--json"],
                                           want_json=True)
            figures["discord"] = {**load, "peak_rss_mb_wait4": round(bot_rss, 1)}
            say(f"\nDiscord bot ({n} simulated /ask): peak RSS {bot_rss:.0f} MB; {json.dumps(load)}")
        # 4. scale curve on BBC copies
        if want("scale"):
            say("\nscale curve (BBC, copies with distinct ids and shuffled sentences)")
            bbc_q = work / "bbc-questions.json"
            from index.load import load_paths
            from index.types import Article

            titles = [a.title for a in load_paths([bbc]) if isinstance(a, Article)]
            bbc_q.write_text(json.dumps(random.Random(0).sample(titles, 20 if quick else 100)))
            curve = []
            for factor in scales:
                d = work / f"bbc-x{factor}"
                if factor == 1 and "bbc" in ingest_fig:
                    d, r = work / "bbc-int8", ingest_fig["bbc"]["newsbot"]
                    ing_rss = r["peak_rss_mb"]
                else:
                    src = scaled_bbc(bbc, factor, work / "inputs")
                    r, _, ing_rss = run_child(["ingest", str(d), "0", "int8", "async", str(src)])
                    r = rates(r)
                q, _, q_rss = run_child(["queries", str(d), str(bbc_q), "0"])
                row = {"factor": factor, "articles": r["articles"], "chunks": r["chunks"], "ingest_s": r["seconds"],
                       "index_mb": dir_mb(d), "query_p50_ms": q["retrieve_p50_ms"],
                       "query_p95_ms": q["retrieve_p95_ms"],
                       "ask_p50_ms": q["ask_p50_ms"], "ask_p95_ms": q["ask_p95_ms"], "ingest_peak_rss_mb": ing_rss,
                       "query_peak_rss_mb": q["peak_rss_mb"], "phases_p50_ms": q["phases_p50_ms"]}
                curve.append(row)
                say(f"  {factor:>3}x: {row['articles']:>6} articles {row['chunks']:>7} chunks, "
                    f"ingest {row['ingest_s']:>7.1f} s, "
                    f"index {row['index_mb']:>7.1f} MB, "
                    f"retrieve p50/p95 {row['query_p50_ms']}/{row['query_p95_ms']} ms, "
                    f"ask p50/p95 {row['ask_p50_ms']}/{row['ask_p95_ms']} ms, peak RSS ingest {ing_rss:.0f} MB, "
                    f"query {row['query_peak_rss_mb']:.0f} MB")
                say("       retrieve stages, p50 ms: " + ", ".join(f"{k} {v}" for k, v in row["phases_p50_ms"].items()))
            figures["scale"] = curve

        # 6. ingest levers end to end: fp32 on the same MultiHop input, and writes not overlapped
        if want("e2e"):
            if not args.no_e2e_levers:
                say("\ningest levers end to end")
                fp32, _, _ = run_child(["ingest", str(work / "multihop-fp32"), str(limit_mh or 0), "fp32", "async",
                                        str(multihop)])
                n_sync = str(limit_mh or 150)
                sync, _, _ = run_child(["ingest", str(work / "multihop-sync"), n_sync, "int8", "sync", str(multihop)])
                over, _, _ = run_child(["ingest", str(work / "multihop-async"), n_sync, "int8", "async", str(multihop)])
                figures["ingest_levers"] = {"multihop_fp32": rates(fp32), "multihop_int8_sync_writes": rates(sync),
                                            "multihop_int8_overlapped_writes": rates(over)}
                say(f"  multihop fp32 end to end: {rates(fp32)['tokens_per_s']} tok/s in {fp32['seconds']} s "
                    f"(int8: {ingest_fig['multihop']['newsbot']['tokens_per_s']} tok/s)")
                say(f"  first {n_sync} MultiHop articles, int8: writes overlapped {over['seconds']} s, "
                    f"not overlapped {sync['seconds']} s")

        # 7. Chroma server mode next to embedded mode: same articles, same questions
        if want("modes"):
            n_mode = 30 if quick else 150
            say(f"\nChroma server vs embedded (first {n_mode} MultiHop articles, {n_questions or 200} dev questions)")
            modes: dict[str, Any] = {}
            with chroma_server(work / "chroma-server") as port:
                for mode, extra in (("embedded", {}), ("server", {"NEWSBOT_CHROMA_HOST": "127.0.0.1",
                                                                  "NEWSBOT_CHROMA_PORT": str(port)})):
                    d = work / f"mode-{mode}"
                    ing, _, _ = run_child(["ingest", str(d), str(n_mode), "int8", "async", str(multihop)], env=extra)
                    q, _, _ = run_child(["queries", str(d), str(qfile), str(n_questions or 200)], env=extra)
                    modes[mode] = {"ingest": rates(ing), "queries": q}
                    say(f"  {mode:8}: ingest {ing['seconds']:>6.1f} s ({rates(ing)['chunks_per_s']} chunks/s), "
                        f"retrieve p50/p95 {q['retrieve_p50_ms']}/{q['retrieve_p95_ms']} ms, "
                        f"ask p50/p95 {q['ask_p50_ms']}/{q['ask_p95_ms']} ms")
            figures["chroma_modes"] = modes

        # 8. the write path at scale (bench/writepath.py)
        if want("writepath"):
            from bench.writepath import WritePathConfig
            from bench.writepath import run as run_writepath

            extra = {"chunks": args.writepath_chunks} if args.writepath_chunks else {}
            wp_cfg = WritePathConfig.quick if quick else WritePathConfig
            figures["writepath"] = run_writepath(wp_cfg(shared=args.shared, work=work / "writepath", **extra))

        figures["loadavg_end"] = os.getloadavg()[0]
    finally:
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
