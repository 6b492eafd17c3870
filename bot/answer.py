"""Extractive answers: pick the few retrieved sentences that best answer the question, cite each one."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from bot.types import Answer, Citation, Statement
from index import split_sentences, terms
from index.types import Passage, Sentence

MIN_WORDS = 4
PART_MIN_FIT = 0.3
KEEP_RATIO = 0.6  # later sentences must cover at least this share of what the best one covers
MIN_RELEVANCE = 0.15  # and never less than this share of the question
MAX_SENTENCE_CHARS = 600
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class AnswerConfig:
    """How many sentences to quote and when the evidence is too weak to answer."""

    max_quotes: int = 5
    passages_considered: int = 10
    abstain_threshold: float = 0.30  # minimum evidence score; calibrated with `newsbot eval`
    closest_articles: int = 3


@dataclass(frozen=True)
class _Candidate:
    passage_rank: int
    passage: Passage
    text: str
    terms: frozenset[str]
    relevance: float


def question_terms(question: str, context: str = "") -> dict[str, float]:
    """Stemmed content words of the question (weight 1) and of the conversation context (weight 0.5)."""
    weights: dict[str, float] = {}
    for t in terms(context) if context else []:
        weights[t] = 0.5
    for t in terms(question):
        weights[t] = 1.0
    return weights


def evidence_score(passages: Sequence[Passage], coverage: float) -> float:
    """How well the retrieved material supports an answer: dense similarity and term coverage combined."""
    if not passages:
        return 0.0
    top_dense = max(p.dense for p in passages[:3])
    return 0.5 * top_dense + 0.5 * coverage


def compose(question: str, passages: Sequence[Passage], idf: dict[str, float], *, context: str = "",
            parts: Sequence[str] = (), config: AnswerConfig = AnswerConfig()) -> Answer:
    """An extractive, cited answer to ``question`` from ``passages`` (best first), or an abstention.

    ``parts`` are the separate claims of a multi-part question; each gets its own best sentence first."""
    weights = question_terms(question, context)
    total = sum(weights[t] * idf.get(t, 1.0) for t in weights) or 1.0
    candidates = _candidates(passages[: config.passages_considered], weights, idf, total)
    best_cover = max((c.relevance for c in candidates), default=0.0)
    evidence = evidence_score(passages, best_cover)
    if not candidates or evidence < config.abstain_threshold:
        return replace(abstention(question, passages, config), evidence=evidence)
    chosen = _per_part(candidates, parts, idf, config.max_quotes)
    chosen += _select([c for c in candidates if c not in chosen], weights, idf, total,
                      config.max_quotes - len(chosen), chosen)
    return replace(_cite(question, chosen, passages), evidence=evidence)


def _coverage(terms: frozenset[str], weights: dict[str, float], idf: dict[str, float], total: float,
              skip: set[str] | frozenset[str] = frozenset()) -> float:
    """Share of the question's idf-weighted terms found in ``terms`` (ignoring those in ``skip``)."""
    return sum(weights[t] * idf.get(t, 1.0) for t in terms if t in weights and t not in skip) / total


def _rank_prior(c: _Candidate) -> float:
    return c.passage.score / math.sqrt(1 + c.passage_rank)


def _per_part(candidates: list[_Candidate], parts: Sequence[str], idf: dict[str, float],
              limit: int) -> list[_Candidate]:
    """The best sentence for each part of the question, when it covers enough of that part."""
    chosen: list[_Candidate] = []
    for part in parts:
        weights = question_terms(part)
        total = sum(weights[t] * idf.get(t, 1.0) for t in weights)
        pool = [c for c in candidates if c not in chosen]
        if not total or not pool or len(chosen) >= limit:
            continue
        fits = [_coverage(c.terms, weights, idf, total) + 0.2 * _rank_prior(c) for c in pool]
        best = max(range(len(pool)), key=fits.__getitem__)
        if fits[best] >= PART_MIN_FIT:
            chosen.append(pool[best])
    return chosen


def abstention(question: str, passages: Sequence[Passage], config: AnswerConfig = AnswerConfig()) -> Answer:
    """No answer; the closest articles are listed as (unquoted) pointers."""
    seen: dict[str, Passage] = {}
    for p in passages:
        if p.article_id not in seen:
            seen[p.article_id] = p
        if len(seen) >= config.closest_articles:
            break
    cites = tuple(Citation.of(n, p, ()) for n, p in enumerate(seen.values(), 1))
    return Answer(question=question, statements=(), citations=cites, abstained=True, passages=tuple(passages))


def _candidates(passages: Sequence[Passage], weights: dict[str, float], idf: dict[str, float],
                total: float) -> list[_Candidate]:
    out = []
    seen_text: set[str] = set()
    for rank, p in enumerate(passages):
        for s in p.sentences or tuple(Sentence(t, tuple(terms(t))) for t in split_sentences(p.text)):
            sentence = s.text
            words = len(_WORD.findall(sentence))
            key = " ".join(sentence.lower().split())
            if not s.quotable or words < MIN_WORDS or len(sentence) > MAX_SENTENCE_CHARS or key in seen_text:
                continue
            seen_text.add(key)
            found = frozenset(s.terms)
            cover = sum(weights[t] * idf.get(t, 1.0) for t in found if t in weights) / total
            out.append(_Candidate(rank, p, sentence, found, cover))
    return out


def _select(candidates: list[_Candidate], weights: dict[str, float], idf: dict[str, float], total: float,
            limit: int, already: Sequence[_Candidate] = ()) -> list[_Candidate]:
    """Greedy selection: relevance, plus new question terms covered, minus repeats of an article."""
    chosen: list[_Candidate] = []
    covered: set[str] = {t for c in already for t in c.terms if t in weights}
    articles: dict[str, int] = {}
    for c in already:
        articles[c.passage.article_id] = articles.get(c.passage.article_id, 0) + 1
    if not candidates or limit <= 0:
        return chosen
    best = max(c.relevance for c in [*candidates, *already])
    pool = list(candidates)
    while pool and len(chosen) < limit:
        gains = [0.45 * c.relevance + 0.35 * _coverage(c.terms, weights, idf, total, covered)
                 + 0.2 * _rank_prior(c) - 0.15 * articles.get(c.passage.article_id, 0) for c in pool]
        i = max(range(len(pool)), key=gains.__getitem__)
        top = pool[i]
        adds = any(t in weights and t not in covered for t in top.terms)
        weak = (top.relevance < max(KEEP_RATIO * best, MIN_RELEVANCE) or gains[i] <= 0.1
                or (not adds and top.relevance < 0.8 * best))
        if (chosen or already) and weak:
            break
        chosen.append(top)
        pool.remove(top)
        covered |= {t for t in top.terms if t in weights}
        articles[top.passage.article_id] = articles.get(top.passage.article_id, 0) + 1
    return chosen


def _cite(question: str, chosen: list[_Candidate], passages: Sequence[Passage]) -> Answer:
    numbers: dict[str, int] = {}
    quotes: dict[str, list[str]] = {}
    first: dict[str, Passage] = {}
    statements = []
    for c in chosen:
        aid = c.passage.article_id
        if aid not in numbers:
            numbers[aid] = len(numbers) + 1
            first[aid] = c.passage
            quotes[aid] = []
        quotes[aid].append(c.text)
        statements.append(Statement(c.text, (numbers[aid],)))
    citations = tuple(Citation.of(numbers[aid], first[aid], tuple(quotes[aid])) for aid in numbers)
    return Answer(question=question, statements=tuple(statements), citations=citations, abstained=False,
                  passages=tuple(passages))


CUT_NOTE = "answer cut at {limit:,} characters (NEWSBOT_MAX_ANSWER_CHARS)"
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*\s")


def truncate(answer: Answer, limit: int) -> Answer:
    """The answer with trailing statements dropped (or the first cut at a sentence end) so ``answer.text`` fits
    in ``limit`` characters; citations no remaining statement uses are dropped and a notice says so."""
    if answer.abstained or len(answer.text) <= limit:
        return answer
    kept: list[Statement] = []
    for s in answer.statements:
        trial = replace(answer, statements=(*kept, s))
        if len(trial.text) > limit:
            break
        kept.append(s)
    if not kept and answer.statements:
        first = answer.statements[0]
        room = max(limit - 4 - 4 * len(first.cites), 1)  # the " [n]" markers stay
        head = first.text[:room]
        ends = [m.end() for m in _SENTENCE_END.finditer(head + " ")]
        head = head[: ends[-1]].rstrip() if ends else head.rsplit(" ", 1)[0].rstrip() + "…"
        kept = [Statement(head, first.cites)]
    used = {n for s in kept for n in s.cites}
    notice = CUT_NOTE.format(limit=limit)
    return replace(answer, statements=tuple(kept), citations=tuple(c for c in answer.citations if c.n in used),
                   notice=f"{answer.notice}; {notice}" if answer.notice else notice)
