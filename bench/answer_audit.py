"""Where the extractive answer loses gold facts: reads a `newsbot eval --dump` file and its questions file.

Usage: python bench/answer_audit.py DUMP.jsonl QUESTIONS.json.gz [--max-quotes 5] [--examples 5] [--json]

Every gold fact of an answerable question that is inside the top 10 chunks but that no quote holds (the rule of
`newsbot eval`: whitespace removed and lower-cased, one contains the other) gets one class, first that applies:
  (d) abstained: the answer quotes nothing;
  (a) same passage: a quote comes from a top-10 chunk that holds the fact, but it is another sentence;
  (c) stopped early: fewer quotes than --max-quotes, none from a chunk holding the fact;
  (b) other passage: all --max-quotes quotes came from chunks that do not hold the fact.
Each lost fact is also flagged when no single sentence of its chunks can hold it (the rule then cannot be met by
a one-sentence quote) and when a quote shares half its words (the looser rule eval used before issue #14).
Then the evidence score of the abstention mistakes, and the abstention rates a different threshold would give.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.answer import MAX_SENTENCE_CHARS, MIN_WORDS  # noqa: E402
from bot.evaluate import NULL_TYPE, TOP, Question, fact_in_chunk, load_questions, quote_holds_fact  # noqa: E402
from index.chunk import split_sentences  # noqa: E402

CLASSES = {"a": "same passage, another sentence quoted", "b": "a sentence of another passage quoted (quotes full)",
           "c": "stopped early (fewer quotes than the maximum)", "d": "abstained"}
_WORDS = re.compile(r"\w+")


def _half_words(quote: str, fact: str) -> bool:
    fwords = set(_WORDS.findall(fact.lower()))
    return bool(fwords) and len(fwords & set(_WORDS.findall(quote.lower()))) / len(fwords) >= 0.5


def _quotable(fact: str, chunks: list[str]) -> bool:
    """Can one sentence the composer would consider hold the fact?"""
    return any(quote_holds_fact(s, fact) for c in chunks for s in split_sentences(c)
               if len(_WORDS.findall(s)) >= MIN_WORDS and len(s) <= MAX_SENTENCE_CHARS)


def lost_facts(rows: list[dict[str, Any]], questions: list[Question], max_quotes: int) -> list[dict[str, Any]]:
    """One record per retrieved-but-unquoted gold fact, with its class and what was quoted instead."""
    out = []
    for row, q in zip(rows, questions, strict=True):
        if q.question_type == NULL_TYPE:
            continue
        top = row["retrieved"][:TOP]
        quote_ranks = [[r for r, c in enumerate(top, 1) if fact_in_chunk(qt, c)] for qt in row["quotes"]]
        for i, fact in enumerate(q.facts):
            ranks = [r for r, c in enumerate(top, 1) if fact_in_chunk(fact, c)]
            if not ranks or i in row["facts_matched"]:
                continue
            same = [qt for qt, qr in zip(row["quotes"], quote_ranks, strict=True) if set(qr) & set(ranks)]
            if row["abstained"]:
                cls = "d"
            elif same:
                cls = "a"
            elif len(row["quotes"]) < max_quotes:
                cls = "c"
            else:
                cls = "b"
            out.append({"class": cls, "type": q.question_type, "query": q.query, "fact": fact, "fact_ranks": ranks,
                        "quotes": list(zip(row["quotes"], quote_ranks, strict=True)), "same_passage_quotes": same,
                        "quotable": _quotable(fact, [top[r - 1] for r in ranks]),
                        "near_miss": any(_half_words(qt, fact) for qt in row["quotes"]),
                        "evidence": row.get("evidence")})
    return out


def _spread(xs: list[float]) -> dict[str, float]:
    if not xs:
        return {"n": 0}
    s = sorted(xs)
    pick = lambda p: round(s[min(len(s) - 1, int(p * (len(s) - 1) + 0.5))], 3)  # noqa: E731
    return {"n": len(s), "min": round(s[0], 3), "p25": pick(0.25), "median": round(statistics.median(s), 3),
            "p75": pick(0.75), "max": round(s[-1], 3)}


def evidence_report(rows: list[dict[str, Any]], questions: list[Question]) -> dict[str, Any]:
    """Evidence scores of the four outcomes, and the abstention rates (and facts quoted) at other thresholds."""
    groups: dict[str, list[float]] = {"null answered": [], "null abstained": [], "answerable abstained": [],
                                      "answerable answered": []}
    pairs = []
    for row, q in zip(rows, questions, strict=True):
        if row.get("evidence") is None:
            continue
        null = q.question_type == NULL_TYPE
        key = f"{'null' if null else 'answerable'} {'abstained' if row['abstained'] else 'answered'}"
        groups[key].append(row["evidence"])
        pairs.append((null, row["evidence"], 0 if null else len(row["facts_matched"]), row["abstained"]))
    sweep = []
    facts = sum(len(q.facts) for q in questions)
    for t in (0.30, 0.35, 0.40, 0.45, 0.50, 0.55):
        # a higher threshold only turns answers into abstentions; a lower one cannot be judged from the dump
        nulls = [p for p in pairs if p[0]]
        answerable = [p for p in pairs if not p[0]]
        sweep.append({"threshold": t,
                      "null_abstain_rate": round(sum(e < t or a for _, e, _, a in nulls) / max(len(nulls), 1), 3),
                      "answerable_abstain_rate": round(sum(e < t or a for _, e, _, a in answerable)
                                                       / max(len(answerable), 1), 3),
                      "facts_quoted": round(sum(m for _, e, m, a in answerable if e >= t and not a) / max(facts, 1),
                                            3)})
    return {"groups": {k: _spread(v) for k, v in groups.items()}, "threshold_sweep": sweep}


def _examples(items: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """``k`` records spread evenly over the list (the list is in question order)."""
    if len(items) <= k:
        return items
    return [items[round(j * (len(items) - 1) / (k - 1))] for j in range(k)] if k > 1 else items[:1]


def _short(text: str, limit: int = 220) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("dump", type=Path)
    ap.add_argument("questions", type=Path)
    ap.add_argument("--max-quotes", type=int, default=5, help="the composer's max_quotes when the dump was made")
    ap.add_argument("--examples", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = [json.loads(line) for line in args.dump.read_text(encoding="utf-8").splitlines() if line.strip()]
    questions = load_questions(args.questions)[: len(rows)]
    for i, (row, q) in enumerate(zip(rows, questions, strict=True), 1):
        if row["query"] != q.query:
            sys.exit(f"{args.dump}, line {i}: the query differs from {args.questions}'s record {i}")
    lost = lost_facts(rows, questions, args.max_quotes)
    answerable = [(r, q) for r, q in zip(rows, questions, strict=True) if q.question_type != NULL_TYPE]
    n_facts = sum(len(q.facts) for _, q in answerable)
    n_quoted = sum(len(r["facts_matched"]) for r, _ in answerable)
    n_retrieved = sum(any(fact_in_chunk(f, c) for c in r["retrieved"][:TOP]) for r, q in answerable for f in q.facts)
    summary = {"facts": n_facts, "retrieved": n_retrieved, "quoted": n_quoted, "lost": len(lost),
               "classes": {c: sum(x["class"] == c for x in lost) for c in CLASSES},
               "by_type": {t: dict(Counter(x["class"] for x in lost if x["type"] == t))
                           for t in sorted({x["type"] for x in lost})},
               "unquotable_by_one_sentence": {c: sum(x["class"] == c and not x["quotable"] for x in lost)
                                              for c in CLASSES},
               "near_miss_half_words": {c: sum(x["class"] == c and x["near_miss"] for x in lost) for c in CLASSES},
               "evidence": evidence_report(rows, questions)}
    if args.json:
        summary["examples"] = {c: _examples([x for x in lost if x["class"] == c], args.examples) for c in CLASSES}
        print(json.dumps(summary, ensure_ascii=False, indent=1))
        return
    print(f"gold facts of answerable questions: {n_facts}; in the top {TOP}: {n_retrieved}; quoted: {n_quoted}; "
          f"in the top {TOP} but not quoted: {len(lost)}")
    for c, name in CLASSES.items():
        print(f"  ({c}) {name:52} {summary['classes'][c]:>5}   no sentence can hold it: "
              f"{summary['unquotable_by_one_sentence'][c]:>4}   a quote shares half its words: "
              f"{summary['near_miss_half_words'][c]:>4}")
    for t, counts in summary["by_type"].items():
        print(f"  {t:22} " + "  ".join(f"({c}) {counts.get(c, 0)}" for c in CLASSES))
    print("\nevidence score (the composer abstains below its threshold, 0.30 by default):")
    for k, v in summary["evidence"]["groups"].items():
        print(f"  {k:22} " + "  ".join(f"{s} {x}" for s, x in v.items()))
    print("  threshold  null abstained  answerable abstained  facts quoted")
    for s in summary["evidence"]["threshold_sweep"]:
        print(f"  {s['threshold']:>9.2f}  {s['null_abstain_rate']:>14.3f}  {s['answerable_abstain_rate']:>20.3f}"
              f"  {s['facts_quoted']:>12.3f}")
    for c, name in CLASSES.items():
        print(f"\n({c}) {name}: examples")
        for x in _examples([x for x in lost if x["class"] == c], args.examples):
            print(f"- [{x['type']}] Q: {_short(x['query'])}")
            print(f"  gold fact (top-10 rank {', '.join(map(str, x['fact_ranks']))}): {_short(x['fact'])}")
            for qt, ranks in x["quotes"]:
                mark = "*" if qt in x["same_passage_quotes"] else " "
                print(f"  {mark}quoted (rank {', '.join(map(str, ranks)) or '–'}): {_short(qt, 160)}")
            if not x["quotes"]:
                print(f"  nothing quoted (evidence {x['evidence']})")


if __name__ == "__main__":
    main()
