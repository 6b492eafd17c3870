"""Retrieval ablation on MultiHop-RAG-format questions: each lever of index/retrieve.py switched on in turn.

Usage: python bench/ablate.py --data-dir .newsbot-eval --questions ../shared/data/multihop-rag/dev-queries.json.gz
Prints one table row per variant (Hits@10, Hits@4, MRR@10, MAP@10, Recall@10), then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.evaluate import METRICS, load_questions, retrieval_scores  # noqa: E402
from bot.settings import load_settings  # noqa: E402
from bot.wiring import Services  # noqa: E402
from index.retrieve import RetrievalConfig, Retriever  # noqa: E402

BASE = RetrievalConfig()
OFF = replace(BASE, phrase_weight=0.0)
VARIANTS = [
    ("dense only (exact cosine)", replace(OFF, dense_weight=1.0, sentence_weight=0.0, date_boost=0.0,
                                          outlet_aware=False, split_clauses=False)),
    ("BM25 only (chunks)", replace(OFF, dense_weight=0.0, sentence_weight=0.0, date_boost=0.0, outlet_aware=False,
                                   split_clauses=False)),
    ("hybrid: min-max fusion of dense + BM25", replace(OFF, sentence_weight=0.0, date_boost=0.0,
                                                       outlet_aware=False, split_clauses=False)),
    ("+ best-sentence BM25", replace(OFF, date_boost=0.0, outlet_aware=False, split_clauses=False)),
    ("+ named outlets (interleaved)", replace(OFF, date_boost=0.0, split_clauses=False)),
    ("+ dates named in the question", replace(OFF, split_clauses=False)),
    ("+ per-clause sentence matching", OFF),
    ("+ per-phrase sentence matching (default)", BASE),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path, default=Path(".newsbot-eval"))
    ap.add_argument("--questions", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=0)
    args = ap.parse_args()
    app = Services(load_settings(data_dir=args.data_dir))
    questions = [q for q in load_questions(args.questions) if q.question_type != "null_query"]
    if args.limit:
        questions = questions[: args.limit]
    app.index.warm()
    results = {}
    print(f"{'variant':44} {'Hits@10':>8} {'Hits@4':>8} {'MRR@10':>8} {'MAP@10':>8} {'Rec@10':>8} {'ms p50':>7}")
    for name, cfg in VARIANTS:
        retriever = Retriever(app.index.follower, app.index.embedder, cfg)
        sums = dict.fromkeys(METRICS, 0.0)
        times = []
        for q in questions:
            started = time.perf_counter()
            passages = retriever.search(q.query, 10)
            times.append((time.perf_counter() - started) * 1000)
            for k, v in retrieval_scores([p.text for p in passages], q.facts).items():
                sums[k] += v
        row = {k: round(v / len(questions), 3) for k, v in sums.items()}
        row["ms_p50"] = round(sorted(times)[len(times) // 2], 1)
        results[name] = row
        print(f"{name:44} {row['hits@10']:>8.3f} {row['hits@4']:>8.3f} {row['mrr@10']:>8.3f} {row['map@10']:>8.3f} "
              f"{row['recall@10']:>8.3f} {row['ms_p50']:>7}", flush=True)
    print(json.dumps({"n": len(questions), "ablation": results}))


if __name__ == "__main__":
    main()
