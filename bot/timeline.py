"""Timelines: "how did X unfold?" answered as a dated chronology, oldest first, one cited sentence per article.

Pure: retrieved passages (best first) in, an ``Answer`` out. Each dated article offers its most topic-relevant
quotable sentence; the best-fitting articles (at most ``AnswerConfig.max_quotes``) are then told in order of
publication, each sentence led by its day and outlet."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date

from bot.answer import MAX_SENTENCE_CHARS, MIN_WORDS, AnswerConfig, evidence_score, question_terms
from bot.types import Answer, Citation, Statement
from index import span_label
from index.types import Passage

MIN_EVENTS = 2  # fewer dated articles than this make no chronology: answer the usual way
EVENT_MIN_WORDS = 8  # an event is told in a sentence, not a dateline or a quote tag ("'X,' he said.")
KEEP_RATIO = 0.5  # an event's sentence must cover at least this share of what the best one covers
MIN_COVER = 0.2  # and at least this share of the topic's weighted terms
RANK_WEIGHT = 0.2  # how much the passage's retrieval score adds to a sentence's fit
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class _Event:
    day: date
    passage: Passage
    text: str
    cover: float
    fit: float


def compose_timeline(question: str, topic: str, passages: Sequence[Passage], idf: dict[str, float], *,
                     config: AnswerConfig | None = None, since: date | None = None,
                     until: date | None = None) -> Answer | None:
    """A chronology answering ``question`` about ``topic`` from ``passages`` published from ``since`` (the start
    of "since March") to ``until`` (the as-of day), or None when they hold fewer than MIN_EVENTS dated articles
    that speak to the topic (or too little evidence to answer at all)."""
    config = config or AnswerConfig()
    weights = question_terms(topic)
    total = sum(w * idf.get(t, 1.0) for t, w in weights.items())
    if not total:
        return None
    best: dict[str, _Event] = {}
    for p in passages:
        day = _day(p.published_at)
        if day is None or (until is not None and day > until) or (since is not None and day < since):
            continue
        for s in p.sentences:
            if not s.quotable or len(_WORD.findall(s.text)) < max(MIN_WORDS, EVENT_MIN_WORDS) \
                    or len(s.text) > MAX_SENTENCE_CHARS or s.text.rstrip(" \"'”’)").endswith("?"):
                continue
            cover = sum(weights[t] * idf.get(t, 1.0) for t in set(s.terms) if t in weights) / total
            event = _Event(day, p, s.text, cover, cover + RANK_WEIGHT * p.score)
            if p.article_id not in best or event.fit > best[p.article_id].fit:
                best[p.article_id] = event
    if not best:
        return None
    top_cover = max(e.cover for e in best.values())
    if evidence_score(passages, top_cover) < config.abstain_threshold:
        return None
    kept = [e for e in best.values() if e.cover >= max(MIN_COVER, KEEP_RATIO * top_cover)]
    kept = _spread(sorted(kept, key=lambda e: -e.fit), config.max_quotes)
    if len(kept) < MIN_EVENTS:
        return None
    kept.sort(key=lambda e: (e.passage.published_at, -e.fit))
    return _dated(question, kept, passages, timeline=True)


def _dated(question: str, events: Sequence[_Event], passages: Sequence[Passage], *, timeline: bool) -> Answer:
    """An answer of ``events`` in the given order, one cited sentence each, led by its day and outlet."""
    statements, citations = [], []
    for n, e in enumerate(events, 1):
        lead = ", ".join(x for x in (span_label(e.day, e.day), e.passage.source) if x)
        statements.append(Statement(e.text, (n,), lead=lead))
        citations.append(Citation.of(n, e.passage, (e.text,)))
    return Answer(question=question, statements=tuple(statements), citations=tuple(citations), abstained=False,
                  passages=tuple(passages), timeline=timeline)


def _spread(events: list[_Event], limit: int) -> list[_Event]:
    """The best ``limit`` events (best first), one per publication day while other days are left, so the
    chronology covers the story's course rather than its busiest day."""
    chosen: list[_Event] = []
    days: set[date] = set()
    for e in events:
        if len(chosen) < limit and e.day not in days:
            chosen.append(e)
            days.add(e.day)
    for e in events:
        if len(chosen) < limit and e not in chosen:
            chosen.append(e)
    return chosen


def _day(published_at: str) -> date | None:
    try:
        return date.fromisoformat(published_at[:10])
    except ValueError:
        return None


def headlines(question: str, passages: Sequence[Passage], *, since: date, until: date,
              config: AnswerConfig | None = None) -> Answer | None:
    """What happened in a window, for a question that names nothing but the time ("what happened this week?"):
    each article published from ``since`` to ``until`` (best-ranked first) offers its earliest prose sentence
    of event length, newest article first, led by day and outlet; None when no article of the window has one."""
    config = config or AnswerConfig()
    first: dict[str, _Event] = {}
    for p in passages:
        day = _day(p.published_at)
        if day is None or not since <= day <= until or p.article_id in first and p.position >= \
                first[p.article_id].passage.position:
            continue
        lede = next((s.text for s in p.sentences if s.quotable and len(_WORD.findall(s.text)) >= EVENT_MIN_WORDS
                     and len(s.text) <= MAX_SENTENCE_CHARS), None)
        if lede is not None:
            first[p.article_id] = _Event(day, p, lede, 0.0, p.score)
    if not first:
        return None
    kept = sorted(first.values(), key=lambda e: -e.fit)[: config.max_quotes]
    kept.sort(key=lambda e: e.passage.published_at, reverse=True)
    return _dated(question, kept, passages, timeline=False)


def newest_first(answer: Answer) -> Answer:
    """The answer with its statements ordered by their articles' publication, newest first (ties keep their order),
    citations renumbered in the new order: for questions about the latest news, where newer reports lead."""
    if answer.abstained or len(answer.statements) < 2:
        return answer
    published = {c.n: c.published_at for c in answer.citations}

    def newest(s: Statement) -> str:
        return max((published.get(n, "") for n in s.cites), default="")

    ordered = sorted(answer.statements, key=newest, reverse=True)  # stable: equal days keep relevance order
    numbers: dict[int, int] = {}
    for s in ordered:
        for n in s.cites:
            numbers.setdefault(n, len(numbers) + 1)
    statements = tuple(replace(s, cites=tuple(numbers[n] for n in s.cites)) for s in ordered)
    citations = tuple(sorted((replace(c, n=numbers[c.n]) for c in answer.citations if c.n in numbers),
                             key=lambda c: c.n))
    return replace(answer, statements=statements, citations=citations)
