"""The write-path benchmark (issue #16): how an index with many chunks takes writes and shows them to other processes.

    .venv/bin/python bench/writepath.py [--shared ../shared/data] [--chunks 500000] [--embedded]
        [--write-batch N] [--bbc-limit N] [--probes 10] [--questions 100] [--recall-questions 50]
        [--noise 0.01] [--visible-timeout 900] [--warm-timeout 3600] [--work DIR] [--keep] [--out FILE] [--quick]

or as the ``writepath`` section of ``bench/run.py --only writepath`` (not in the default run: at its default size it
takes well over 15 minutes). One run, against a real ``chroma run`` on 127.0.0.1 (``--embedded``: embedded Chroma
shared by the processes through one data dir):

1. **1x**: the BBC corpus ingested with ``Index.ingest`` (the real embedder) into a writer process's index. Its
   chunks (texts and real vectors) are read back once; they are the material of everything synthetic.
2. **Synthetic growth without the embedder** to 10x the BBC chunk count and then to ``--chunks``: articles of real
   chunk texts with their sentences shuffled, drawn across articles, each vector a real one plus gaussian noise
   (``--noise`` per dimension, re-normalised), new ids, random real outlets (MultiHop-RAG's) and dates over
   2021-2023, written straight to the store with ``ChromaStore.write_articles`` in writes of at most
   ``--write-batch`` chunk records (default 300 against a server, 4000 embedded) and one version bump at the end.
   The insert rate counts the store's write calls only; the wall time includes generating. Then the writer
   process applies them (``Index.sync()``, when the index has one), so its first timed ingest does not.
3. At each size a fresh **reader** process (server mode: its own data dir, as another host would have) opens the
   index, warms it (``Index.sync()`` when the index has one, then a search) and reports:
   - its RSS and PSS (``/proc/<pid>/status`` VmRSS, ``/proc/<pid>/smaps_rollup`` Pss) after warm-up and at the end;
   - **retrieve latency per stage**: ``--questions`` BBC titles and sentences, each searched once (k=10), the wall
     time and ``index.retriever.last_stages`` (when the index records it; else the total only), p50/p95;
   - at 1x and the largest size, the **HNSW recall@100** of Chroma's dense query against exact cosine over every
     stored vector (read once with ``get(include=["embeddings"])``), on ``--recall-questions`` questions, with the
     single query's latency as the parent sees it;
   - at 1x and the largest size, **write -> visible in another process**: the reader searches every ~100 ms for a
     unique nonsense word while the writer ingests one new article holding it (``Index.ingest``, real embedder);
     the time from the ingest call's return (and from its start) to the reader's first search that returns the
     article, ``--probes`` times with a new word each, then once with ``Index.forget`` (until the article is gone).
4. A summary table with same-run ratios (10x/1x, large/1x) and one JSON object (``--out`` and the last line).

Times come from CLOCK_MONOTONIC, shared by the processes of one machine; a poll interval of 100 ms bounds each
visibility figure's resolution.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import json
import os
import random
import shutil
import statistics
import string
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.procs import Child, Inbox, reply  # noqa: E402
from bench.run import chroma_server, pct, say  # noqa: E402

if TYPE_CHECKING:
    from index import Index
    from index.store import ChromaStore, ChunkRecord
    from index.types import Article

Item = tuple[dict[str, Any], list["ChunkRecord"], np.ndarray]  # what ChromaStore.write_articles takes per article

DATES = (int(datetime(2021, 1, 1, tzinfo=UTC).timestamp()), int(datetime(2024, 1, 1, tzinfo=UTC).timestamp()))
POLL_SECONDS = 0.1  # how often the reader searches for the word it waits for
K = 10  # passages per search, as the bot asks
RECALL_K = 100  # the retriever's dense depth (RetrievalConfig.depth)
SYNTHETIC_PREFIX = "syn-"
PROBE_PREFIX = "wp-"


@dataclass(frozen=True)
class WritePathConfig:
    shared: Path = ROOT.parent / "shared" / "data"
    chunks: int = 500_000
    embedded: bool = False
    write_batch: int = 0  # 0: 300 against a server, 4000 embedded
    bbc_limit: int = 0  # 0: the whole BBC corpus
    probes: int = 10
    questions: int = 100
    recall_questions: int = 50
    noise: float = 0.01
    visible_timeout: float = 900.0
    warm_timeout: float = 3600.0  # a new reader host's first sync at 500,000 chunks
    work: Path | None = None
    keep: bool = False
    seed: int = 0

    @property
    def batch(self) -> int:
        return self.write_batch or (4000 if self.embedded else 300)

    @classmethod
    def quick(cls, **overrides: Any) -> WritePathConfig:
        """A smoke run: 200 BBC articles, 20,000 chunks, 5 probes, 30 questions."""
        return replace(cls(chunks=20_000, bbc_limit=200, probes=5, questions=30, recall_questions=20), **overrides)


# -- where the index lives -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """The benchmark's index: a collection on a Chroma server, or embedded Chroma in one shared ``data_dir``."""

    collection: str
    models: str
    host: str = ""
    port: int = 0
    data_dir: str = ""  # embedded: every process uses this data dir (the database lives in it)

    def index(self, data_dir: Path) -> Index:
        from index import Index, IndexConfig, Layout

        layout = Layout(Path(self.data_dir) if self.data_dir else data_dir, collection=self.collection,
                        chroma_host=self.host, chroma_port=self.port or 8000)
        return Index(layout, IndexConfig(model_cache_dir=Path(self.models)))

    def raw_collection(self) -> Any:
        """Chroma's own handle on the chunk collection (for the recall check only)."""
        import chromadb
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False)
        client = (chromadb.HttpClient(host=self.host, port=self.port, settings=settings) if self.host
                  else chromadb.PersistentClient(path=str(Path(self.data_dir) / "chroma"), settings=settings))
        return client.get_collection(self.collection)


@contextlib.contextmanager
def open_target(cfg: WritePathConfig, work: Path) -> Iterator[Target]:
    models = os.environ.get("NEWSBOT_MODEL_CACHE_DIR") or str(work / "models")  # bench/run.py shares one
    if cfg.embedded:
        yield Target("writepath", models, data_dir=str(work / "embedded"))
        return
    with chroma_server(work / "chroma-server") as port:
        yield Target("writepath", models, host="127.0.0.1", port=port)


# -- inputs ------------------------------------------------------------------------------------------------------
def bbc_articles(shared: Path, limit: int) -> list[Article]:
    """The BBC corpus (the articles in its category folders, not its README), the first ``limit`` when ``limit``."""
    from index.load import load_paths, split_origin
    from index.types import Article

    root = shared / "bbc-news"
    found = [a for a in load_paths([root]) if isinstance(a, Article) and Path(split_origin(a.origin)[0]).parent != root]
    if not found:
        raise SystemExit(f"writepath: no BBC articles in {root} (pass --shared DIR)")
    return found[: limit or None]


def outlets(shared: Path) -> list[str]:
    """Real outlet names, from the MultiHop-RAG corpus (the BBC corpus names none)."""
    path = shared / "multihop-rag" / "corpus.json.gz"
    if not path.exists():
        return ["BBC News"]
    records = json.loads(gzip.decompress(path.read_bytes()))
    return sorted({str(r.get("source", "")) for r in records if r.get("source")}) or ["BBC News"]


def questions(articles: Sequence[Article], n: int, rng: random.Random) -> list[str]:
    """``n`` questions: BBC titles and mid-length body sentences, alternating."""
    from index import split_sentences

    picked = rng.sample(list(articles), min(n, len(articles)))
    out = []
    for i, a in enumerate(picked):
        sentences = [s for s in split_sentences(a.body) if 6 <= len(s.split()) <= 30]
        out.append(rng.choice(sentences) if i % 2 and sentences else a.title)
    return out


def nonsense(rng: random.Random) -> str:
    """A made-up word no corpus holds: five consonant-vowel syllables and two letters."""
    consonants, vowels = "bdfgklmnprstvz", "aeiou"
    return "".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(5)) + "".join(
        rng.choice(string.ascii_lowercase) for _ in range(2))


def probe_article(word: str, src: Article) -> Article:
    """A short new article (one chunk) built from ``src`` that holds ``word`` once."""
    from index import split_sentences
    from index.types import Article

    body = " ".join(split_sentences(src.body)[:3])
    return Article(id=f"{PROBE_PREFIX}{word}", title=src.title, source="Write Path Wire",
                   body=f"{body} Officials named the scheme {word}.",
                   published_at=datetime.now(UTC).replace(microsecond=0).isoformat())


# -- synthetic articles -----------------------------------------------------------------------------------------
@dataclass
class ChunkPool:
    """Real chunks to draw synthetic articles from: their sentences, unit vectors and token counts, and the real
    articles' titles and chunk counts."""

    sentences: list[list[str]]
    vectors: np.ndarray
    tokens: list[int]
    titles: list[str]
    lengths: list[int]

    @classmethod
    def from_store(cls, store: ChromaStore) -> ChunkPool:
        from index import split_sentences

        sentences, vectors, tokens, per_article, titles = [], [], [], {}, {}
        for rec in store.iter_chunks(vectors=True):
            if rec.vector is None or rec.meta.article_id.startswith((SYNTHETIC_PREFIX, PROBE_PREFIX)):
                continue
            sentences.append(split_sentences(rec.text) or [rec.text])
            vectors.append(rec.vector)
            tokens.append(rec.meta.tokens)
            per_article[rec.meta.article_id] = per_article.get(rec.meta.article_id, 0) + 1
            titles[rec.meta.article_id] = rec.meta.title
        return cls(sentences, unit(np.asarray(vectors, dtype=np.float32)), tokens, sorted(set(titles.values())),
                   list(per_article.values()))

    def __len__(self) -> int:
        return len(self.sentences)


def unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms > 0, norms, 1)).astype(np.float32)


@dataclass
class Synthesizer:
    """Makes synthetic articles from a ``ChunkPool``, numbering them on from one call to the next."""

    pool: ChunkPool
    outlets: list[str]
    noise: float
    seed: int
    made: int = 0
    _rng: random.Random = field(init=False)
    _np: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self._rng, self._np = random.Random(self.seed), np.random.default_rng(self.seed)

    def articles(self, n_chunks: int) -> Iterator[Item]:
        """Articles holding ``n_chunks`` chunks in all (real chunk counts; the last one cut to fit)."""
        left = n_chunks
        while left > 0:
            k = min(self._rng.choice(self.pool.lengths), left)
            left -= k
            yield self.article(k)

    def article(self, k: int) -> Item:
        from index.store import ChunkRecord
        from index.types import ChunkMeta

        r, pool = self._rng, self.pool
        aid = f"{SYNTHETIC_PREFIX}{self.seed}-{self.made:07d}"
        self.made += 1
        title, source, ts = r.choice(pool.titles), r.choice(self.outlets), r.randrange(*DATES)
        published = datetime.fromtimestamp(ts, UTC).isoformat()
        digest = hashlib.sha256(aid.encode()).hexdigest()[:24]
        picks = [r.randrange(len(pool)) for _ in range(k)]
        records, offset = [], 0
        for pos, src in enumerate(picks):
            sentences = pool.sentences[src][:]
            r.shuffle(sentences)
            text = " ".join(sentences)
            meta = ChunkMeta(article_id=aid, title=title, source=source, published_at=published, published_ts=ts,
                             position=pos, start=offset, end=offset + len(text), tokens=pool.tokens[src],
                             content_hash=digest)
            records.append(ChunkRecord(f"{aid}:{pos}", text, meta))
            offset += len(text) + 1
        vectors = unit(pool.vectors[picks] + self._np.normal(0.0, self.noise, (k, pool.vectors.shape[1])))
        catalog = {"article_id": aid, "title": title, "source": source, "url": "", "published_at": published,
                   "published_ts": ts, "content_hash": digest, "n_chunks": k}
        return catalog, records, vectors


def grow(store: ChromaStore, synth: Synthesizer, target: int, batch: int) -> dict[str, Any]:
    """Write synthetic articles straight to the store until it holds ``target`` chunks; one version bump at the end."""
    have = store.chunk_count()
    started, writing, articles, chunks = time.perf_counter(), 0.0, 0, 0
    pending: list[Item] = []

    def flush() -> None:
        nonlocal writing
        t = time.perf_counter()
        store.write_articles(pending, batch=batch)
        writing += time.perf_counter() - t
        pending.clear()

    for item in synth.articles(max(0, target - have)):
        if pending and sum(len(i[1]) for i in pending) + len(item[1]) > batch:
            flush()
        pending.append(item)
        articles += 1
        chunks += len(item[1])
    if pending:
        flush()
    if chunks:
        store.bump_version()
    wall = time.perf_counter() - started
    return {"articles": articles, "chunks": chunks, "write_s": round(writing, 1), "wall_s": round(wall, 1),
            "chunks_per_s": round(chunks / max(writing, 1e-9)), "articles_per_s": round(articles / max(writing, 1e-9)),
            "total_chunks": store.chunk_count()}


# -- the reader process ------------------------------------------------------------------------------------------
def start_reader(target: Target, data_dir: Path, log: Path) -> Child:
    spec = json.dumps(asdict(target))
    return Child.start([sys.executable, str(Path(__file__).resolve()), "--child", spec, str(data_dir)], "reader",
                       log, cwd=ROOT)


def child_reader(spec: str, data_dir: str) -> None:
    """Open the index, warm it, then answer the parent's commands (``watch``, ``stages``) until stdin closes."""
    index = Target(**json.loads(spec)).index(Path(data_dir))
    started = time.perf_counter()
    applied = index.sync()  # a new host builds its lexical index from the store, once
    index.search("warm up", K)
    reply(event="ready", warm_s=round(time.perf_counter() - started, 2), applied=applied, chunks=index.size())
    inbox = Inbox()
    while (cmd := inbox.next()) is not None and cmd["cmd"] != "stop":
        if cmd["cmd"] == "watch":
            watch(index, cmd["word"], cmd["article"], cmd["present"], cmd["timeout"])
        elif cmd["cmd"] == "stages":
            reply(event="stages", rows=stage_rows(index, cmd["questions"]))
        else:
            reply(event="error", message=f"unknown command {cmd['cmd']!r}")


def watch(index: Index, word: str, article_id: str, present: bool, timeout: float) -> None:
    """Search for ``word`` every POLL_SECONDS until ``article_id`` is among the hits (``present``) or is not;
    reports when (CLOCK_MONOTONIC) that search returned, and the search times seen meanwhile."""

    def probe() -> tuple[bool, float, float]:
        t = time.perf_counter()
        hits = index.search(word, K)
        return any(p.article_id == article_id for p in hits), time.monotonic(), (time.perf_counter() - t) * 1000

    found, _, _ = probe()
    if found == present:
        reply(event="error", message=f"{article_id} is {'already' if present else 'not'} visible")
        return
    reply(event="watching")
    deadline, slowest, polls = time.monotonic() + timeout, 0.0, 0
    while time.monotonic() < deadline:
        found, at, ms = probe()
        polls, slowest = polls + 1, max(slowest, ms)
        if found == present:
            reply(event="seen", t=at, polls=polls, search_ms=round(ms, 1), slowest_ms=round(slowest, 1))
            return
        time.sleep(max(0.0, POLL_SECONDS - ms / 1000))
    reply(event="seen", t=None, polls=polls, search_ms=None, slowest_ms=round(slowest, 1))


def stage_rows(index: Index, qs: list[str]) -> list[dict[str, float]]:
    """Each question searched once: its wall time and, when the retriever records them, its stages (ms)."""
    rows = []
    for q in qs:
        t = time.perf_counter()
        index.search(q, K)
        wall = (time.perf_counter() - t) * 1000
        rows.append({"wall": wall, **{str(k): float(v) for k, v in index.retriever.last_stages.items()}})
    return rows


# -- measurements ------------------------------------------------------------------------------------------------
def summarise(rows: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """p50/p95 of every stage the rows carry, in the order first seen."""
    names = list(dict.fromkeys(k for r in rows for k in r))
    return {n: {"p50": pct([r[n] for r in rows if n in r], 50), "p95": pct([r[n] for r in rows if n in r], 95)}
            for n in names}


def visibility(writer: Index, reader: Child, sources: Sequence[Article], cfg: WritePathConfig,
               rng: random.Random) -> dict[str, Any]:
    """``cfg.probes`` ingests of a new article and one forget, each timed until the reader's search agrees."""
    runs = []
    article = None
    for _ in range(cfg.probes):
        article = probe_article(nonsense(rng), rng.choice(list(sources)))
        runs.append(probe(reader, cfg, article, present=True, write=lambda a=article: writer.ingest([a])))
    out: dict[str, Any] = {"ingest": spread(runs), "ingest_runs": runs}
    if article is not None:
        gone = probe(reader, cfg, article, present=False, write=lambda a=article: writer.forget(a.id))
        out["forget"] = gone
    return out


def probe(reader: Child, cfg: WritePathConfig, article: Article, *, present: bool, write: Any) -> dict[str, Any]:
    word = article.id.removeprefix(PROBE_PREFIX)
    reader.call(60, "watching", cmd="watch", word=word, article=article.id, present=present,
                timeout=cfg.visible_timeout)
    start = time.monotonic()
    write()
    returned = time.monotonic()
    seen = reader.recv(cfg.visible_timeout + 120, "seen")
    if seen["t"] is None:
        return {"timeout": True, "write_ms": round((returned - start) * 1000, 1), "polls": seen["polls"]}
    return {"from_return_ms": round((seen["t"] - returned) * 1000, 1),
            "from_start_ms": round((seen["t"] - start) * 1000, 1),
            "write_ms": round((returned - start) * 1000, 1), "polls": seen["polls"],
            "applying_search_ms": seen["search_ms"], "slowest_search_ms": seen["slowest_ms"]}


def spread(runs: list[dict[str, Any]]) -> dict[str, Any]:
    done = [r for r in runs if not r.get("timeout")]
    out: dict[str, Any] = {"n": len(runs), "timeouts": len(runs) - len(done)}
    for key in ("from_return_ms", "from_start_ms", "write_ms", "applying_search_ms"):
        values = [r[key] for r in done]
        out[key] = {"p50": pct(values, 50), "p95": pct(values, 95), "max": pct(values, 100)}
    return out


def hnsw_recall(target: Target, vectors: np.ndarray) -> dict[str, Any]:
    """Recall of Chroma's dense query (RECALL_K results) against exact cosine over every stored vector, per
    question: of the exact top RECALL_K, and of the exact top 10 (what the answer is mostly built from)."""
    collection = target.raw_collection()
    ids, matrix = stored_vectors(collection)
    k = min(RECALL_K, len(ids))
    sims = matrix @ vectors.T  # (stored, questions)
    top = np.argpartition(-sims, k - 1, axis=0)[:k]
    exact = np.take_along_axis(top, np.argsort(-np.take_along_axis(sims, top, axis=0), axis=0), axis=0).T
    recalls, top10, times, as_near, gaps = [], [], [], [], []
    for j, (q, truth) in enumerate(zip(vectors, exact, strict=True)):
        t = time.perf_counter()
        res = collection.query(query_embeddings=[q.tolist()], n_results=k, include=["distances"])
        times.append((time.perf_counter() - t) * 1000)
        found = set(res["ids"][0])
        recalls.append(len(found & {ids[i] for i in truth}) / k)
        top10.append(len(found & {ids[i] for i in truth[:10]}) / len(truth[:10]))
        # with near-duplicate chunks, ids are a harsh test: also count results as near as the exact k-th
        cos = 1.0 - np.asarray(res["distances"][0], dtype=np.float64)
        kth, best = float(sims[truth[-1], j]), float(sims[truth[0], j])
        as_near.append(float(np.mean(cos >= kth - 1e-4)) if len(cos) else 0.0)
        gaps.append(best - float(cos.max()) if len(cos) else best)
    hnsw = (getattr(collection, "configuration", None) or {}).get("hnsw") or {}
    return {"questions": len(recalls), "recall_mean": round(statistics.mean(recalls), 4),
            "recall_p50": round(statistics.median(recalls), 4), "recall_min": round(min(recalls), 4),
            "top10_recall_mean": round(statistics.mean(top10), 4), "top10_recall_min": round(min(top10), 4),
            "as_near_as_kth_mean": round(statistics.mean(as_near), 4),
            "best_cosine_gap_max": round(max(gaps), 4), "best_cosine_gap_mean": round(statistics.mean(gaps), 5),
            "query_p50_ms": pct(times, 50), "query_p95_ms": pct(times, 95), "vectors": len(ids),
            "hnsw": {k: hnsw.get(k) for k in ("ef_search", "ef_construction", "max_neighbors") if k in hnsw}}


def stored_vectors(collection: Any, page: int = 5000) -> tuple[list[str], np.ndarray]:
    ids: list[str] = []
    parts: list[np.ndarray] = []
    while True:
        res = collection.get(include=["embeddings"], limit=page, offset=len(ids))
        ids.extend(res["ids"])
        if len(res["ids"]):
            parts.append(np.asarray(res["embeddings"], dtype=np.float32))
        if len(res["ids"]) < page:
            return ids, unit(np.concatenate(parts))


@dataclass
class Bench:
    """One run's shared state: config, work dir, the writer's index and what every size is measured with."""

    cfg: WritePathConfig
    work: Path
    target: Target
    writer: Index
    sources: list[Article]
    questions: list[str]
    question_vectors: np.ndarray
    rng: random.Random

    def measure(self, name: str, edge: bool) -> dict[str, Any]:
        """A fresh reader at this size: warm-up, memory, stage latency; at the edge sizes recall and visibility."""
        data_dir = Path(self.target.data_dir) if self.target.data_dir else self.work / f"reader-{name}"
        reader = start_reader(self.target, data_dir, self.work / "logs" / f"reader-{name}.log")
        try:
            ready = reader.recv(self.cfg.warm_timeout, "ready")
            out: dict[str, Any] = {"reader_warm_s": ready["warm_s"], "reader_applied": ready["applied"],
                                   "reader_chunks": ready["chunks"], "memory_warm": reader.memory()}
            say(f"  reader warm in {ready['warm_s']} s ({ready['chunks']} chunks), {fmt_mem(out['memory_warm'])}")
            rows = reader.call(3600, "stages", cmd="stages", questions=self.questions)["rows"]
            out["stages"] = summarise(rows)
            say("  retrieve p50/p95 ms: " + ", ".join(f"{k} {v['p50']}/{v['p95']}" for k, v in out["stages"].items()))
            if edge:
                out["recall"] = hnsw_recall(self.target, self.question_vectors)
                r = out["recall"]
                say(f"  HNSW recall@{RECALL_K}: mean {r['recall_mean']}, min {r['recall_min']}; exact top 10 found "
                    f"in its {RECALL_K}: mean {r['top10_recall_mean']}, min {r['top10_recall_min']} "
                    f"({r['questions']} questions); Chroma query p50 {r['query_p50_ms']} ms; {r['hnsw']}")
                out["visible"] = visibility(self.writer, reader, self.sources, self.cfg, self.rng)
                say("  " + fmt_visible(out["visible"]))
            out["memory_end"] = reader.memory()
            say(f"  reader at the end: {fmt_mem(out['memory_end'])}")
            return out
        finally:
            reader.close()


def fmt_mem(m: dict[str, float]) -> str:
    return (f"RSS {m.get('rss_mb', '?')} MB (private {m.get('anon_mb', '?')}, mapped files {m.get('file_mb', '?')}), "
            f"PSS {m.get('pss_mb', '?')} MB")


def fmt_visible(v: dict[str, Any]) -> str:
    s = v["ingest"]
    text = (f"write->visible over {s['n']} ingests ({s['timeouts']} timed out): from return p50/p95 "
            f"{s['from_return_ms']['p50']}/{s['from_return_ms']['p95']} ms, from start "
            f"{s['from_start_ms']['p50']}/{s['from_start_ms']['p95']} ms (ingest call p50 {s['write_ms']['p50']} ms)")
    f = v.get("forget")
    if f:
        text += (f"; forget: timed out after {f['write_ms']} ms call" if f.get("timeout") else
                 f"; forget gone {f['from_return_ms']} ms after return ({f['from_start_ms']} ms after start)")
    return text


def plan_sizes(base: int, large: int) -> list[tuple[str, int]]:
    """(name, total chunks) of each measured size: 1x, 10x and the large one, smaller ones dropped."""
    out = [("1x", base)]
    for name, n in (("10x", 10 * base), ("large", large)):
        if n > out[-1][1]:
            out.append((name, n))
    return out


def ratios(sizes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each size's figures over 1x's, in the same run."""
    base = sizes.get("1x")
    out: dict[str, Any] = {}
    for name, fig in sizes.items():
        if name == "1x" or base is None:
            continue
        r: dict[str, Any] = {"chunks": ratio(fig["chunks"], base["chunks"])}
        for stage, v in fig["stages"].items():
            if stage in base["stages"]:
                r[f"{stage}_p50"] = ratio(v["p50"], base["stages"][stage]["p50"])
                r[f"{stage}_p95"] = ratio(v["p95"], base["stages"][stage]["p95"])
        for when in ("memory_warm", "memory_end"):
            for key in ("rss_mb", "pss_mb"):
                r[f"{key}_{when.split('_')[1]}"] = ratio(fig[when].get(key), base[when].get(key))
        if "visible" in fig and "visible" in base:
            for key in ("from_return_ms", "from_start_ms"):
                for p in ("p50", "p95"):
                    r[f"visible_{key}_{p}"] = ratio(fig["visible"]["ingest"][key][p],
                                                    base["visible"]["ingest"][key][p])
        out[f"{name}/1x"] = r
    return out


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def table(figures: dict[str, Any]) -> None:
    """The summary: one column per size."""
    sizes: dict[str, dict[str, Any]] = figures["sizes"]
    names = list(sizes)
    rows: list[tuple[str, list[Any]]] = [
        ("chunks", [s["chunks"] for s in sizes.values()]),
        ("insert chunks/s", [s.get("insert", {}).get("chunks_per_s", "-") for s in sizes.values()]),
        ("reader warm-up s", [s["reader_warm_s"] for s in sizes.values()]),
        ("reader RSS warm/end MB", [f"{s['memory_warm'].get('rss_mb')}/{s['memory_end'].get('rss_mb')}"
                                   for s in sizes.values()]),
        ("reader PSS warm/end MB", [f"{s['memory_warm'].get('pss_mb')}/{s['memory_end'].get('pss_mb')}"
                                   for s in sizes.values()]),
    ]
    stages = list(dict.fromkeys(k for s in sizes.values() for k in s["stages"]))
    rows += [(f"{st} p50/p95 ms", [f"{s['stages'][st]['p50']}/{s['stages'][st]['p95']}" if st in s["stages"] else "-"
                                   for s in sizes.values()]) for st in stages]
    rows += [("HNSW recall@100 mean", [s["recall"]["recall_mean"] if "recall" in s else "-" for s in sizes.values()]),
             ("HNSW results as near as exact 100th", [s["recall"].get("as_near_as_kth_mean", "-") if "recall" in s
                                                      else "-" for s in sizes.values()]),
             ("exact top 10 in HNSW 100", [s["recall"]["top10_recall_mean"] if "recall" in s else "-"
                                          for s in sizes.values()]),
             ("visible from return p50/p95 ms",
              [f"{s['visible']['ingest']['from_return_ms']['p50']}/{s['visible']['ingest']['from_return_ms']['p95']}"
               if "visible" in s else "-" for s in sizes.values()]),
             ("visible from start p50/p95 ms",
              [f"{s['visible']['ingest']['from_start_ms']['p50']}/{s['visible']['ingest']['from_start_ms']['p95']}"
               if "visible" in s else "-" for s in sizes.values()]),
             ("forget gone from return ms", [s["visible"]["forget"].get("from_return_ms", "timeout")
                                             if "visible" in s and "forget" in s["visible"] else "-"
                                             for s in sizes.values()])]
    width = max(len(r[0]) for r in rows) + 2
    say("\n" + "".ljust(width) + "".join(f"{n:>18}" for n in names))
    for label, values in rows:
        say(label.ljust(width) + "".join(f"{v!s:>18}" for v in values))
    for name, r in figures["ratios"].items():
        say(f"{name}: " + ", ".join(f"{k} {v}" for k, v in r.items() if v is not None))


# -- the run -----------------------------------------------------------------------------------------------------
def run(cfg: WritePathConfig) -> dict[str, Any]:
    """The whole benchmark; returns every figure (also printed as a table)."""
    work = cfg.work or Path(tempfile.mkdtemp(prefix="newsbot-writepath-"))
    work.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                               "mode": "embedded" if cfg.embedded else "server", "write_batch": cfg.batch,
                               "noise": cfg.noise, "sizes": {}}
    rng = random.Random(cfg.seed)
    try:
        with open_target(cfg, work) as target:
            say(f"write path ({figures['mode']} Chroma, writes of <= {cfg.batch} chunk records)")
            bench = setup(cfg, work, target, rng, figures)
            pool = ChunkPool.from_store(bench.writer.store)
            synth = Synthesizer(pool, outlets(cfg.shared), cfg.noise, cfg.seed)
            sizes = plan_sizes(bench.writer.store.chunk_count(), cfg.chunks)
            for i, (name, total) in enumerate(sizes):
                fig: dict[str, Any] = {}
                if i:
                    fig["insert"] = grow(bench.writer.store, synth, total, cfg.batch)
                    ins = fig["insert"]
                    say(f"\n{name}: wrote {ins['chunks']} synthetic chunks ({ins['articles']} articles) at "
                        f"{ins['chunks_per_s']} chunks/s ({ins['write_s']} s in writes, {ins['wall_s']} s wall)")
                    fig["writer_sync_s"] = catch_up(bench.writer)
                else:
                    say(f"\n{name}: the ingested BBC corpus")
                fig["chunks"] = bench.writer.store.chunk_count()
                fig.update(bench.measure(name, edge=i in (0, len(sizes) - 1)))
                figures["sizes"][name] = fig
        figures["ratios"] = ratios(figures["sizes"])
        table(figures)
    finally:
        if not cfg.keep and not cfg.work:
            shutil.rmtree(work, ignore_errors=True)
    return figures


def catch_up(writer: Index) -> float | None:
    """Let the writer process apply the synthetic writes now (``Index.sync``), so its first timed ingest does not
    pay for them; the seconds it took."""
    started = time.perf_counter()
    applied = writer.sync()
    seconds = round(time.perf_counter() - started, 1)
    say(f"  writer applied {applied} articles in {seconds} s (Index.sync)")
    return seconds


def setup(cfg: WritePathConfig, work: Path, target: Target, rng: random.Random, figures: dict[str, Any]) -> Bench:
    """The writer's index with the BBC corpus ingested (the 1x size), and the questions every size is asked."""
    articles = bbc_articles(cfg.shared, cfg.bbc_limit)
    writer = target.index(work / "writer")
    writer.embedder.embed(["warm up"])
    started = time.perf_counter()
    report = writer.ingest(articles)
    seconds = time.perf_counter() - started
    figures["base_ingest"] = {"articles": report.new + report.updated, "chunks": report.chunks_added,
                              "seconds": round(seconds, 1), "chunks_per_s": round(report.chunks_added / seconds, 1)}
    say(f"BBC ingest (Index.ingest, real embedder): {report.new} articles, {report.chunks_added} chunks in "
        f"{seconds:.1f} s")
    qs = questions(articles, cfg.questions, rng)
    vectors = unit(np.asarray(writer.embedder.embed(qs[: cfg.recall_questions]), dtype=np.float32))
    return Bench(cfg, work, target, writer, articles, qs, vectors, rng)


def parse_args(argv: Sequence[str] | None = None) -> tuple[WritePathConfig, Path | None]:
    d = WritePathConfig()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=d.shared, help="the shared data dir (bbc-news/, multihop-rag/)")
    ap.add_argument("--chunks", type=int, default=d.chunks, help="chunks at the largest size (default 500000)")
    ap.add_argument("--embedded", action="store_true", help="embedded Chroma instead of a `chroma run` server")
    ap.add_argument("--write-batch", type=int, default=0, help="chunk records per store write "
                    "(default 300 server, 4000 embedded)")
    ap.add_argument("--bbc-limit", type=int, default=0, help="ingest only the first N BBC articles (a smaller 1x)")
    ap.add_argument("--probes", type=int, default=d.probes, help="timed ingests per visibility size (default 10)")
    ap.add_argument("--questions", type=int, default=d.questions, help="questions for stage latency (default 100)")
    ap.add_argument("--recall-questions", type=int, default=d.recall_questions, help="questions for HNSW recall "
                    "(default 50)")
    ap.add_argument("--noise", type=float, default=d.noise, help="gaussian noise per vector dimension (default 0.01)")
    ap.add_argument("--visible-timeout", type=float, default=d.visible_timeout, help="seconds a reader waits for a "
                    "write to show (default 900)")
    ap.add_argument("--warm-timeout", type=float, default=d.warm_timeout, help="seconds a new reader may take to "
                    "open and warm the index (default 3600)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 200 BBC articles, 20,000 chunks, 5 probes")
    ap.add_argument("--work", type=Path, help="where indexes are built (default: a temporary directory)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--out", type=Path, help="also write the JSON figures here")
    ap.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child_reader(*args.child)
        raise SystemExit(0)
    given = {k: v for k, v in vars(args).items() if k in WritePathConfig.__dataclass_fields__}
    cfg = WritePathConfig.quick(**{k: v for k, v in given.items() if v != getattr(d, k)}) if args.quick \
        else WritePathConfig(**given)
    return cfg, args.out


def main() -> None:
    cfg, out = parse_args()
    figures = run(cfg)
    if out:
        out.write_text(json.dumps(figures, indent=1))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
