"""The tantivy lexical engine (index/lexical_engine.py) on a real newsbot index, against its search snapshot.

Reads the chunks (title, text, classified sentences, source, date) of a data dir's saved snapshot without writing to
it, builds the engine in a scratch directory, and reports: build time, disk per chunk, one incremental round,
reload time, query latency p50/p95 (chunks and best sentence, top 100 as retrieval asks, unfiltered and with an
outlet filter) and top-10 agreement with ``SearchSnapshot.scores()`` / ``sentence_scores()`` on the questions.

Usage: python bench/lexical_engine.py --data-dir /work/evalidx-main \
           --questions ../shared/data/multihop-rag/dev-queries.json.gz [--limit 100] [--work DIR]
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from index.lexical import tokenize  # noqa: E402
from index.lexical_engine import LexicalChunk, TantivyEngine  # noqa: E402
from index.snapshot import SearchSnapshot  # noqa: E402
from index.types import Filters  # noqa: E402

DEPTH = 100  # RetrievalConfig.depth: candidates taken from each lexical source
POOL = 350  # a fused candidate pool (dense, chunk and sentence BM25, outlets) re-scored exactly
TOP = 10
ARTICLES_PER_APPLY = 50  # the build is a sequence of incremental rounds, as a change feed would apply them


def chunks_of(snap: SearchSnapshot) -> list[LexicalChunk]:
    out = []
    for row in range(len(snap)):
        p = snap.passage(row, 0.0)
        out.append(LexicalChunk(p.chunk_id, p.article_id, snap.sources[row], int(snap.timestamps[row]), p.title,
                                p.text, tuple((s.text, s.kind) for s in p.sentences)))
    return out


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    found = fn()
    return found, (time.perf_counter() - start) * 1000


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


def top_ids(scores: np.ndarray, ids: list[str], n: int) -> list[str]:
    order = np.argsort(-scores, kind="stable")[:n]
    return [ids[i] for i in order if scores[i] > 0]


def overlap(want: list[str], got: list[str]) -> float:
    return len(set(want) & set(got)) / len(want) if want else 1.0


def agreement(engine: TantivyEngine, snap: SearchSnapshot, questions: list[str]) -> dict[str, float]:
    """Mean top-10 overlap with the snapshot's chunk and best-sentence BM25; "beyond near-ties" counts only the
    snapshot's top-10 chunks scoring over 4% above its 10th (what tantivy's field-length rounding can swap)."""
    found: dict[str, list[float]] = {"chunks": [], "sentences": [], "chunks_beyond_near_ties": [],
                                     "sentences_beyond_near_ties": []}
    for q in questions:
        terms = tokenize([q])[0]
        for name, scores, got in (("chunks", snap.scores(q), engine.search_chunks(terms, TOP)),
                                  ("sentences", snap.sentence_scores(q), engine.search_sentences(terms, TOP))):
            want = top_ids(scores, snap.ids, TOP)
            found[name].append(overlap(want, [i for i, _ in got]))
            if want:
                kth = float(np.sort(scores)[-TOP]) if len(scores) >= TOP else 0.0
                clear = [i for i in want if scores[snap.ids.index(i)] > kth * 1.04]
                found[f"{name}_beyond_near_ties"].append(overlap(clear, [i for i, _ in got]))
    return {k: round(statistics.mean(v), 3) for k, v in found.items() if v}


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, default=Path("/work/evalidx-main"))
    ap.add_argument("--questions", type=Path, default=Path("/work/shared/data/multihop-rag/dev-queries.json.gz"))
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--work", type=Path, default=None, help="scratch directory for the engine (default: a temp dir)")
    args = ap.parse_args()

    snap = SearchSnapshot.load(args.data_dir)
    if snap is None:
        sys.exit(f"{args.data_dir}: no usable search snapshot")
    chunks = chunks_of(snap)
    questions = [q["query"] for q in json.load(gzip.open(args.questions))][: args.limit]
    work = args.work or Path(tempfile.mkdtemp(prefix="lexical-engine-"))
    shutil.rmtree(work / "engine", ignore_errors=True)
    engine = TantivyEngine.open(work / "engine")

    by_article: dict[str, list[LexicalChunk]] = {}
    for c in chunks:
        by_article.setdefault(c.article_id, []).append(c)
    articles = list(by_article)
    start = time.perf_counter()
    for i in range(0, len(articles), ARTICLES_PER_APPLY):
        engine.apply([c for a in articles[i:i + ARTICLES_PER_APPLY] for c in by_article[a]])
    build_s = time.perf_counter() - start
    sentences = sum(len(c.sentences) for c in chunks)

    fresh = agreement(engine, snap, questions)

    # one round of a change feed: 100 articles re-ingested with changed text (delete + add, one commit)
    changed = [LexicalChunk(c.id, c.article_id, c.source, c.published_ts, c.title, c.text + " Updated.",
                            c.sentences + (("Updated.", "fact"),)) for a in articles[:100] for c in by_article[a]]
    reader = TantivyEngine.open(work / "engine")
    # of which: newsbot's own tokenizer on the round's texts (what the engine indexes is tokenised in Python)
    texts = [t for c in changed for t in (c.title, c.text, *(s for s, _ in c.sentences))]
    _, tokenize_ms = timed(lambda: tokenize(texts))
    _, round_ms = timed(lambda: engine.apply(changed))
    _, unchanged_ms = timed(lambda: engine.apply(changed))  # the same round again: skipped by digest
    _, reload_ms = timed(reader.reload)
    engine.apply([c for a in articles[:100] for c in by_article[a]])  # back to the snapshot's text
    reader.reload()

    outlet = Counter(snap.sources).most_common(1)[0][0]
    lat: dict[str, list[float]] = {k: [] for k in ("chunks", "sentences", "chunks_outlet", "sentences_outlet",
                                                   "snapshot_chunks", "snapshot_sentences", "pool_chunks",
                                                   "pool_sentences")}
    rng = np.random.default_rng(0)
    row_of = {c: i for i, c in enumerate(snap.ids)}
    pool_error = {"chunks": 0.0, "sentences": 0.0}
    for q in questions:
        terms = tokenize([q])[0]
        lat["chunks"].append(timed(lambda: engine.search_chunks(terms, DEPTH))[1])  # noqa: B023 (called at once)
        lat["sentences"].append(timed(lambda: engine.search_sentences(terms, DEPTH))[1])  # noqa: B023
        lat["chunks_outlet"].append(timed(lambda: engine.search_chunks(terms, DEPTH, Filters(sources=(outlet,))))[1])  # noqa: B023
        lat["sentences_outlet"].append(
            timed(lambda: engine.search_sentences(terms, DEPTH, Filters(sources=(outlet,))))[1])  # noqa: B023
        pool = list(dict.fromkeys([i for i, _ in engine.search_chunks(terms, DEPTH)]
                                  + [i for i, _ in engine.search_sentences(terms, DEPTH)]
                                  + [snap.ids[r] for r in rng.choice(len(snap), POOL, replace=False)]))[:POOL]
        for name, fn, exact in (("chunks", engine.scores_for, snap.scores(q)),
                                ("sentences", engine.sentence_scores_for, snap.sentence_scores(q))):
            got, ms = timed(lambda: fn(terms, pool))  # noqa: B023
            lat[f"pool_{name}"].append(ms)
            for i in pool:
                want = float(exact[row_of[i]])
                err = abs(got.get(i, 0.0) - want) / want if want > 0 else float(i in got)  # type: ignore[attr-defined]
                pool_error[name] = max(pool_error[name], err)
        lat["snapshot_chunks"].append(timed(lambda: top_ids(snap.scores(q), snap.ids, DEPTH))[1])  # noqa: B023
        lat["snapshot_sentences"].append(
            timed(lambda: top_ids(snap.sentence_scores(q), snap.ids, DEPTH))[1])  # noqa: B023

    report = {
        "chunks": len(chunks), "articles": len(articles), "sentences": sentences,
        "build_seconds": round(build_s, 2), "apply_rounds": -(-len(articles) // ARTICLES_PER_APPLY),
        "disk_bytes": du(work / "engine"), "disk_kb_per_chunk": round(du(work / "engine") / len(chunks) / 1024, 3),
        "disk_kb_per_chunk_chunks_index": round(du(work / "engine" / "chunks") / len(chunks) / 1024, 3),
        "disk_kb_per_chunk_sentences_index": round(du(work / "engine" / "sentences") / len(chunks) / 1024, 3),
        "round_100_articles_ms": round(round_ms, 1),
        "round_tokenize_ms": round(tokenize_ms, 1), "round_chunks": len(changed),
        "round_sentences": sum(len(c.sentences) for c in changed), "same_round_again_ms": round(unchanged_ms, 1),
        "reload_ms": round(reload_ms, 2), "questions": len(questions), "outlet_filter": outlet,
        "latency_ms": {k: {"p50": round(pct(v, 50), 2), "p95": round(pct(v, 95), 2)} for k, v in lat.items()},
        "pool_size": POOL, "pool_worst_relative_error_after_churn": {k: round(v, 4) for k, v in pool_error.items()},
        "top10_agreement_fresh": fresh,
        # after the round and its reversal: the replaced documents still count in tantivy's BM25 statistics
        "top10_agreement_after_churn": agreement(engine, snap, questions),
    }
    print(json.dumps(report, indent=1))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
