"""`newsbot eval`: MultiHop-RAG retrieval metrics (as the paper's script computes them) and answer metrics."""

from __future__ import annotations

import gzip
import json
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.grounded import answer_matches
from bot.types import Answer
from index.errors import NewsbotError

NULL_TYPE = "null_query"
YES_NO = {"yes", "no"}


@dataclass(frozen=True)
class Question:
    query: str
    answer: str
    question_type: str
    facts: tuple[str, ...]
    as_of: str = ""  # the day the question is asked (a quiz's week), "" when the file gives none
    evidence: tuple[tuple[str, str], ...] = ()  # (url, title) of the articles the evidence comes from


def load_questions(path: Path) -> list[Question]:
    """Questions from a MultiHop-RAG file: a JSON array or JSONL, optionally gzipped."""
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
        text = raw.decode("utf-8-sig")
    except (OSError, EOFError, ValueError) as err:
        raise NewsbotError(f"{path}: cannot read questions: {err}") from err
    try:
        data = json.loads(text)
        records = data if isinstance(data, list) else [data]
    except json.JSONDecodeError:
        try:
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as err:
            raise NewsbotError(f"{path}: not JSON or JSONL: {err}") from err
    out = []
    for i, r in enumerate(records, 1):
        if not isinstance(r, dict) or not isinstance(r.get("query"), str):
            raise NewsbotError(f'{path}, record {i}: no "query" string')
        evidence = [e for e in r.get("evidence_list") or [] if isinstance(e, dict)]
        facts = tuple(str(e.get("fact", "")) for e in evidence)
        sources = tuple((str(e.get("url") or ""), str(e.get("title") or "")) for e in evidence
                        if e.get("url") or e.get("title"))
        as_of = str(r.get("as_of") or r.get("date") or "")
        if as_of:
            try:
                datetime.fromisoformat(as_of)
            except ValueError:
                raise NewsbotError(f'{path}, record {i}: "as_of" {as_of[:40]!r} is not a date (try 2023-10-31)') \
                    from None
        out.append(Question(r["query"], str(r.get("answer", "")), str(r.get("question_type", "")), facts,
                            as_of[:10], sources))
    return out


def _squash(text: str) -> str:
    return text.replace(" ", "").replace("\n", "")


def retrieval_scores(retrieved: Sequence[str], facts: Sequence[str]) -> dict[str, float]:
    """Hits@10, Hits@4, MAP@10, MRR@10 for one question, exactly as MultiHop-RAG's retrieval_evaluate.py."""
    gold = [_squash(f) for f in facts]
    chunks = [_squash(c) for c in retrieved[:10]]
    hit10 = hit4 = False
    first = None
    found: list[str] = []
    ap = 0.0
    for rank, chunk in enumerate(chunks, 1):
        if any(g in chunk for g in gold):
            hit10 = True
            hit4 = hit4 or rank <= 4
            first = first or rank
            new = 0
            for g in gold:
                if g in chunk and g not in found:
                    new += 1
                    found.append(g)
            ap += new / rank
    recall = len({g for g in gold if any(g in c for c in chunks)}) / len(set(gold)) if gold else 0.0
    return {"hits@10": float(hit10), "hits@4": float(hit4), "map@10": ap / min(len(gold), 10) if gold else 0.0,
            "mrr@10": 1.0 / first if first else 0.0, "recall@10": recall}


def _bare(text: str) -> str:
    return "".join(text.split()).lower()


def quote_holds_fact(quote: str, fact: str) -> bool:
    """A quote holds a gold fact when, whitespace removed and lower-cased, one contains the other (issue #14)."""
    q, f = _bare(quote), _bare(fact)
    return bool(q and f) and (f in q or q in f)


def fact_in_chunk(fact: str, chunk: str) -> bool:
    """The retrieval metric's containment (spaces and newlines removed), lower-cased: the fact could be quoted."""
    f = _squash(fact).lower()
    return bool(f) and f in _squash(chunk).lower()


def answer_hit(answer: Answer, gold: str) -> bool | None:
    """Does the gold answer string appear in the answer or its quotes? None for yes/no and null questions."""
    g = gold.strip().strip(".").lower()
    if not g or g in YES_NO or g.startswith("insufficient information"):
        return None
    hay = (answer.text + " " + " ".join(q for c in answer.citations for q in c.quotes)).lower()
    return g in hay


def intended_cited(answer: Answer, evidence: Sequence[tuple[str, str]]) -> bool | None:
    """Does an answer citation name an evidence article (same url, or same title)? None without url/title."""
    if not evidence:
        return None
    urls = {u.strip() for u, _ in evidence if u.strip()}
    titles = {" ".join(t.split()).lower() for _, t in evidence if t.strip()}
    return any(c.url.strip() in urls or " ".join(c.title.split()).lower() in titles
               for c in answer.citations if not answer.abstained)


def _mean(xs: Iterable[float]) -> float:
    xs = list(xs)
    return round(sum(xs) / len(xs), 4) if xs else 0.0


def _pct(xs: Sequence[float], p: float) -> float:
    if not xs:
        return 0.0
    s = sorted(xs)
    return round(s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))], 1)


INFERENCE_TYPE = "inference_query"
TOP = 10  # the retrieval metrics and facts_retrieved look at this many chunks


def _first_rank(text: str, chunks: Sequence[str]) -> int | None:
    """1-based rank of the first retrieved chunk holding ``text`` (the chunk containment), None if none does."""
    return next((rank for rank, chunk in enumerate(chunks, 1) if fact_in_chunk(text, chunk)), None)


def answer_facts(answer: Answer, q: Question) -> dict[str, Any]:
    """Per question: the quotes, which gold facts each holds, and where the facts and quotes sit in the top 10."""
    quotes = [qt for c in answer.citations for qt in c.quotes] if not answer.abstained else []
    top = [p.text for p in answer.passages[:TOP]]
    quote_facts = [[i for i, f in enumerate(q.facts) if quote_holds_fact(qt, f)] for qt in quotes]
    return {"quotes": quotes, "quote_facts": quote_facts,
            "quote_ranks": [_first_rank(qt, top) for qt in quotes],
            "facts_matched": sorted({i for held in quote_facts for i in held}),
            "fact_ranks": [[rank for rank, chunk in enumerate(top, 1) if fact_in_chunk(f, chunk)] for f in q.facts]}


def evaluate(questions: Sequence[Question], ask: Callable[[str], Answer] | Callable[[Question], Answer], *,
             dump: Path | None = None, progress: Callable[[int], None] | None = None,
             whole: bool = False) -> dict[str, Any]:
    """Run every question through ``ask`` (given the query text, or the whole ``Question`` when ``whole``) and
    compute the figures ``newsbot eval`` prints."""
    rows: list[dict[str, Any]] = []
    out = dump.open("w", encoding="utf-8") if dump else None
    try:
        for q in questions:
            started = time.perf_counter()
            answer = ask(q) if whole else ask(q.query)  # type: ignore[arg-type]
            ms = (time.perf_counter() - started) * 1000
            retrieved = [p.text for p in answer.passages]
            found = answer_facts(answer, q)
            row: dict[str, Any] = {"type": q.question_type, "ms": ms, "abstained": answer.abstained,
                                   "null": q.question_type == NULL_TYPE, "mode": answer.mode,
                                   "correct": answer_matches(answer.text, q.answer) if answer.mode == "llm" else None}
            if not row["null"]:
                row.update(retrieval_scores(retrieved, q.facts))
                row["quotes"] = len(found["quotes"])
                row["good_quotes"] = sum(bool(held) for held in found["quote_facts"])
                row["facts"] = len(q.facts)
                row["facts_quoted"] = len(found["facts_matched"])
                row["facts_retrieved"] = sum(bool(ranks) for ranks in found["fact_ranks"])
                row["answer_hit"] = answer_hit(answer, q.answer)
                row["answer_string"] = row["answer_hit"] if q.question_type == INFERENCE_TYPE else None
                row["intended_cited"] = intended_cited(answer, q.evidence)
            rows.append(row)
            if out:
                out.write(json.dumps({"query": q.query, "question_type": q.question_type, "retrieved": retrieved,
                                      "retrieved_ids": [p.chunk_id for p in answer.passages],
                                      "answer": answer.text, "abstained": answer.abstained,
                                      "evidence": answer.evidence, "mode": answer.mode, "as_of": answer.as_of,
                                      "window": answer.window.as_dict() if answer.window else None,
                                      "headline": answer.window.headline if answer.window else "",
                                      "answer_hit": row.get("answer_hit"), "intended_cited": row.get("intended_cited"),
                                      "citations": [c.as_dict() for c in answer.citations],
                                      **found}, ensure_ascii=False) + "\n")
            if progress:
                progress(1)
    finally:
        if out:
            out.close()
    return summarise(rows)


METRICS = ("hits@10", "hits@4", "map@10", "mrr@10", "recall@10")
ANSWER_FIGURES = ("fact_quoted_any", "facts_quoted", "facts_retrieved", "citation_precision", "answer_string",
                  "quotes_per_answer")


def _share(part: float, whole: float) -> float:
    return round(part / whole, 4) if whole else 0.0


def answer_figures(answerable: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The answer-level figures over answerable rows; ``answer_string`` only when inference questions are among them."""
    facts = sum(r["facts"] for r in answerable)
    answered = [r for r in answerable if not r["abstained"]]
    strings = [r["answer_string"] for r in answerable if r.get("answer_string") is not None]
    figures: dict[str, Any] = {
        "fact_quoted_any": _mean(float(r["facts_quoted"] > 0) for r in answerable),
        "facts_quoted": _share(sum(r["facts_quoted"] for r in answerable), facts),
        "facts_retrieved": _share(sum(r["facts_retrieved"] for r in answerable), facts),
        "citation_precision": _share(sum(r["good_quotes"] for r in answerable), sum(r["quotes"] for r in answerable)),
        "quotes_per_answer": _mean(r["quotes"] for r in answered),  # abstentions quote nothing and are left out
    }
    if strings:
        figures["answer_string"] = _mean(float(h) for h in strings)
    return figures


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    answerable = [r for r in rows if not r["null"]]
    nulls = [r for r in rows if r["null"]]
    hits = [r["answer_hit"] for r in answerable if r.get("answer_hit") is not None]
    intended = [r["intended_cited"] for r in answerable if r.get("intended_cited") is not None]
    result: dict[str, Any] = {"n": len(rows), "n_answerable": len(answerable), "n_null": len(nulls)}
    result.update({m: _mean(r[m] for r in answerable) for m in METRICS})
    result.update({
        "null_abstain_rate": _mean(float(r["abstained"]) for r in nulls),
        "answerable_abstain_rate": _mean(float(r["abstained"]) for r in answerable),
        **answer_figures(answerable),
        "answer_hit_rate": _mean(float(h) for h in hits),  # every type; answer_string is the inference-only figure
        "n_answer_hit": len(hits),
        # questions whose evidence names its article (url/title): an answer citation is that article
        "intended_cited_rate": _mean(float(h) for h in intended) if intended else None,
        "n_intended": len(intended),
        "latency_ms": {"p50": _pct([r["ms"] for r in rows], 50), "p95": _pct([r["ms"] for r in rows], 95)},
    })
    llm_rows = [r for r in rows if r["mode"] == "llm"]
    result["llm_answers"] = len(llm_rows)  # the rest fell back to (or were) extractive answers
    # against the gold `answer` field (yes/no, "Insufficient information", or a phrase), LLM answers only
    result["answer_accuracy"] = _mean(float(r["correct"]) for r in llm_rows) if llm_rows else None
    by_type: dict[str, Any] = {}
    for t in sorted({r["type"] for r in rows}):
        group = [r for r in rows if r["type"] == t]
        entry: dict[str, Any] = {"n": len(group), "abstain_rate": _mean(float(r["abstained"]) for r in group)}
        if t != NULL_TYPE:
            entry.update({m: _mean(r[m] for r in group) for m in METRICS})
            entry.update(answer_figures(group))
        by_type[t] = entry
    result["by_type"] = by_type
    return result


def chunk_lengths(tokens: Sequence[int]) -> dict[str, float]:
    """Distribution of chunk lengths in model tokens."""
    if not tokens:
        return {}
    return {"n": len(tokens), "min": min(tokens), "p50": statistics.median(tokens), "p95": _pct(tokens, 95),
            "max": max(tokens), "mean": round(statistics.fmean(tokens), 1)}


# Reference rows from issue #4 (same 609 articles, 256-token chunks, top 10).
REFERENCE = [
    ("paper's best: voyage-02 + bge-reranker-large", {"hits@10": 0.747, "hits@4": 0.663, "mrr@10": 0.586}),
    ("plain LlamaIndex VectorStoreIndex, MiniLM", {"hits@10": 0.73, "hits@4": 0.53, "mrr@10": 0.40, "map@10": 0.18}),
    ("BM25 alone (bm25s)", {"hits@10": 0.85, "hits@4": 0.71, "mrr@10": 0.57, "map@10": 0.28}),
]
TARGET = {"hits@10": 0.93, "hits@4": 0.85, "mrr@10": 0.72, "map@10": 0.45}


def table(result: dict[str, Any]) -> str:
    """The comparison table and the answer figures as text."""
    cols = ("hits@10", "hits@4", "mrr@10", "map@10")
    lines = [f"{'':48} {'Hits@10':>8} {'Hits@4':>8} {'MRR@10':>8} {'MAP@10':>8}"]
    for name, vals in [*REFERENCE, ("target", TARGET), ("newsbot (this run)", result)]:
        lines.append(f"{name:48} " + " ".join(f"{vals[c]:>8.3f}" if c in vals else f"{'–':>8}" for c in cols))
    lines.append("")
    lines.append(f"questions: {result['n']} ({result['n_answerable']} answerable, {result['n_null']} null)")
    lines.append(f"recall@10 of gold facts: {result['recall@10']:.3f}")
    lines.append(f"abstained: {result['null_abstain_rate']:.1%} of null questions, "
                 f"{result['answerable_abstain_rate']:.1%} of answerable ones")
    if result.get("intended_cited_rate") is not None:
        lines.append(f"intended article cited: {result['intended_cited_rate']:.3f} "
                     f"(of {result['n_intended']} questions whose evidence names its article)")
    if result.get("answer_accuracy") is not None:
        lines.append(f"LLM answer accuracy against the gold answers: {result['answer_accuracy']:.3f} "
                     f"({result['llm_answers']} LLM answers of {result['n']})")
    lines.append(f"latency per question: p50 {result['latency_ms']['p50']} ms, p95 {result['latency_ms']['p95']} ms")
    if result.get("chunk_tokens"):
        c = result["chunk_tokens"]
        lines.append(f"chunk length (model tokens): min {c['min']}, median {c['p50']}, p95 {c['p95']}, max {c['max']}")
    lines.append("")
    lines.append(f"{'by type':24} {'n':>5} {'Hits@10':>8} {'Hits@4':>8} {'MRR@10':>8} {'MAP@10':>8} {'abstain':>8}")
    for t, e in result["by_type"].items():
        vals = " ".join(f"{e[c]:>8.3f}" if c in e else f"{'–':>8}" for c in cols)
        lines.append(f"{t:24} {e['n']:>5} {vals} {e['abstain_rate']:>8.3f}")
    lines.append("")
    lines.append("answers (answerable questions; a quote holds a gold fact when, whitespace removed and lower-cased,")
    lines.append("one contains the other; answer string: inference questions only; quotes: per non-abstained answer)")
    lines.append(f"{'':24} {'n':>5} {'any fact':>8} {'facts':>8} {'in top10':>8} {'cit.prec':>8} "
                 f"{'ans.str':>8} {'quotes':>8}")
    groups = [("all answerable", result["n_answerable"], result),
              *((t, e["n"], e) for t, e in result["by_type"].items() if t != NULL_TYPE)]
    for name, n, e in groups:
        vals = " ".join(f"{e[c]:>8.3f}" if c in e else f"{'–':>8}" for c in ANSWER_FIGURES)
        lines.append(f"{name:24} {n:>5} {vals}")
    return "\n".join(lines)
