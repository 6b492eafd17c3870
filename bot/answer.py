"""Extractive answers: pick the few retrieved sentences that best answer the question, cite each one."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from bot.types import Answer, Citation, Statement
from index.chunk import split_sentences
from index.lexical import tokenize
from index.types import Passage

MIN_WORDS = 4
MAX_SENTENCE_CHARS = 600
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class AnswerConfig:
    """How many sentences to quote and when the evidence is too weak to answer."""

    max_quotes: int = 5
    passages_considered: int = 10
    abstain_threshold: float = 0.35  # minimum evidence score; calibrated with `newsbot eval`
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
    for t in tokenize([context])[0] if context else []:
        weights[t] = 0.5
    for t in tokenize([question])[0]:
        weights[t] = 1.0
    return weights


def evidence_score(passages: Sequence[Passage], coverage: float) -> float:
    """How well the retrieved material supports an answer: dense similarity and term coverage combined."""
    if not passages:
        return 0.0
    top_dense = max(p.dense for p in passages[:3])
    return 0.5 * top_dense + 0.5 * coverage


def compose(question: str, passages: Sequence[Passage], idf: dict[str, float], *, context: str = "",
            config: AnswerConfig = AnswerConfig()) -> Answer:
    """An extractive, cited answer to ``question`` from ``passages`` (best first), or an abstention."""
    weights = question_terms(question, context)
    total = sum(weights[t] * idf.get(t, 1.0) for t in weights) or 1.0
    candidates = _candidates(passages[: config.passages_considered], weights, idf, total)
    best_cover = max((c.relevance for c in candidates), default=0.0)
    if not candidates or evidence_score(passages, best_cover) < config.abstain_threshold:
        return abstention(question, passages, config)
    chosen = _select(candidates, weights, idf, total, config.max_quotes)
    return _cite(question, chosen, passages)


def abstention(question: str, passages: Sequence[Passage], config: AnswerConfig = AnswerConfig()) -> Answer:
    """No answer; the closest articles are listed as (unquoted) pointers."""
    seen: dict[str, Passage] = {}
    for p in passages:
        if p.article_id not in seen:
            seen[p.article_id] = p
        if len(seen) >= config.closest_articles:
            break
    cites = tuple(_citation(n, p, ()) for n, p in enumerate(seen.values(), 1))
    return Answer(question=question, statements=(), citations=cites, abstained=True, passages=tuple(passages))


def _candidates(passages: Sequence[Passage], weights: dict[str, float], idf: dict[str, float],
                total: float) -> list[_Candidate]:
    out = []
    seen_text: set[str] = set()
    for rank, p in enumerate(passages):
        for sentence in split_sentences(p.text):
            words = len(_WORD.findall(sentence))
            key = " ".join(sentence.lower().split())
            if words < MIN_WORDS or len(sentence) > MAX_SENTENCE_CHARS or key in seen_text:
                continue
            seen_text.add(key)
            terms = frozenset(tokenize([sentence])[0])
            cover = sum(weights[t] * idf.get(t, 1.0) for t in terms if t in weights) / total
            out.append(_Candidate(rank, p, sentence, terms, cover))
    return out


def _select(candidates: list[_Candidate], weights: dict[str, float], idf: dict[str, float], total: float,
            limit: int) -> list[_Candidate]:
    """Greedy selection: relevance, plus new question terms covered, minus repeats of an article."""
    chosen: list[_Candidate] = []
    covered: set[str] = set()
    articles: dict[str, int] = {}
    best = max(c.relevance for c in candidates)
    pool = list(candidates)
    while pool and len(chosen) < limit:
        def gain(c: _Candidate) -> float:
            new = sum(weights[t] * idf.get(t, 1.0) for t in c.terms if t in weights and t not in covered) / total
            rank_prior = 1.0 / math.sqrt(1 + c.passage_rank)
            repeat = 0.15 * articles.get(c.passage.article_id, 0)
            return 0.45 * c.relevance + 0.35 * new + 0.2 * rank_prior * c.passage.score - repeat

        top = max(pool, key=gain)
        adds = any(t in weights and t not in covered for t in top.terms)
        if chosen and (top.relevance < 0.5 * best or gain(top) <= 0.1 or (not adds and top.relevance < 0.8 * best)):
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
    citations = tuple(_citation(numbers[aid], first[aid], tuple(quotes[aid])) for aid in numbers)
    return Answer(question=question, statements=tuple(statements), citations=citations, abstained=False,
                  passages=tuple(passages))


def _citation(n: int, p: Passage, quotes: tuple[str, ...]) -> Citation:
    return Citation(n=n, article_id=p.article_id, chunk_id=p.chunk_id, title=p.title, source=p.source, url=p.url,
                    published_at=p.published_at, quotes=quotes, score=round(p.score, 4))
