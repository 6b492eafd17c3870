"""Audit index/prose.py on real corpora: the share of each sentence kind, samples of every non-prose kind, and
the gold evidence facts that would become unquotable.

Usage: python bench/prose_audit.py --corpus ../shared/data/multihop-rag/corpus.json.gz \
           --queries ../shared/data/multihop-rag/dev-queries.json.gz --bbc ../shared/data/bbc-news
Reads the data, never writes it. Prints plain text.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from index.chunk import sentence_spans  # noqa: E402
from index.prose import KINDS, PROSE, is_quotable, quotable_text, sentence_kind  # noqa: E402

LOST_COVERAGE = 0.5  # a fact is lost when less than this share of its characters stays quotable


def _load_json(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return json.load(f)


def _bbc_bodies(root: Path) -> list[str]:
    return [p.read_text(encoding="utf-8", errors="replace") for p in sorted(root.glob("*/*.txt"))]


def _kinds(bodies: list[str]) -> list[tuple[str, str]]:
    out = []
    for body in bodies:
        for a, b in sentence_spans(body):
            text = body[a:b].strip()
            out.append((sentence_kind(text), text))
    return out


def _report_kinds(name: str, rows: list[tuple[str, str]], examples: int, rng: random.Random) -> None:
    counts = Counter(k for k, _ in rows)
    total = len(rows)
    print(f"\n== {name}: {total} sentences")
    for kind in KINDS:
        print(f"  {kind:9s} {counts[kind]:7d}  {100 * counts[kind] / total:6.2f}%")
    for kind in KINDS:
        if kind == PROSE or not counts[kind]:
            continue
        pool = [t for k, t in rows if k == kind]
        print(f"\n-- {name}: {min(examples, len(pool))} random {kind} sentences of {len(pool)}")
        for text in rng.sample(pool, min(examples, len(pool))):
            print("   ", repr(text[:220]))


def _quotable_region(body: str, a: int, b: int) -> tuple[int, int] | None:
    raw = body[a:b]
    text = raw.strip()
    quote = quotable_text(text)
    if quote is None:
        return None
    start = a + (len(raw) - len(raw.lstrip())) + text.rfind(quote)
    return start, start + len(quote)


def _report_facts(corpus: list[dict], queries: list[dict], limit: int) -> None:
    by_url = {a["url"]: a for a in corpus}
    by_title = {a["title"]: a for a in corpus}
    facts = {}
    for q in queries:
        for e in q["evidence_list"]:
            facts[(e["url"], e["fact"])] = e
    located = lost = touched = 0
    lost_rows, unaligned_rows, touched_rows = [], [], []
    for (url, fact), e in facts.items():
        article = by_url.get(url) or by_title.get(e.get("title"))
        if article is None:
            continue
        body = article["body"]
        at = body.find(fact)
        if at < 0:
            continue
        located += 1
        end = at + len(fact)
        spans = [(a, b) for a, b in sentence_spans(body) if a < end and b > at]
        if spans and (at > spans[0][0] + 2 and body[spans[0][0]:at].strip() not in ("", "\"", "“")):
            unaligned_rows.append((fact, body[spans[0][0]:spans[0][1]]))
        covered = 0
        any_unquotable = False
        for a, b in spans:
            region = _quotable_region(body, a, b)
            any_unquotable |= not is_quotable(body[a:b].strip())
            if region is not None:
                covered += max(0, min(end, region[1]) - max(at, region[0]))
        touched += any_unquotable
        if any_unquotable:
            touched_rows.append((covered / len(fact), [sentence_kind(body[a:b].strip()) for a, b in spans], fact))
        if covered < LOST_COVERAGE * len(fact):
            lost += 1
            kinds = [sentence_kind(body[a:b].strip()) for a, b in spans]
            lost_rows.append((kinds, fact))
    print(f"\n== gold facts: {len(facts)} unique, {located} located in their article")
    print(f"  lost (< {LOST_COVERAGE:.0%} of the fact quotable): {lost}  ({100 * lost / max(located, 1):.2f}%)")
    print(f"  touching a sentence not quotable whole (e.g. glued heading removed): {touched}"
          f"  ({100 * touched / max(located, 1):.2f}%)")
    print(f"  facts not starting at a sentence start (fact is a sentence tail): {len(unaligned_rows)}")
    for kinds, fact in lost_rows:
        print("   LOST", kinds, repr(fact[:220]))
    for share, kinds, fact in touched_rows:
        print(f"   TOUCHED {share:4.0%} quotable", kinds, repr(fact[:160]))
    for fact, sentence in unaligned_rows[:limit]:
        print("   TAIL", repr(fact[:120]), "<- in", repr(sentence[:200]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True, help="MultiHop-RAG corpus.json(.gz)")
    parser.add_argument("--queries", type=Path, required=True, help="MultiHop-RAG dev-queries.json(.gz)")
    parser.add_argument("--bbc", type=Path, help="BBC News directory (category/NNN.txt)")
    parser.add_argument("--examples", type=int, default=20, help="random examples per non-prose kind")
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    corpus = _load_json(args.corpus)
    _report_kinds("MultiHop-RAG", _kinds([a["body"] for a in corpus]), args.examples, rng)
    if args.bbc:
        _report_kinds("BBC News", _kinds(_bbc_bodies(args.bbc)), args.examples, rng)
    _report_facts(corpus, _load_json(args.queries), args.examples)


if __name__ == "__main__":
    main()
