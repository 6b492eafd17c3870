"""Where passages become an answer: a question (and the conversation so far) → an ``Answer``.

``Answerer`` depends only on two small seams — something that searches (``index.Index`` in the product, a fake in
unit tests) and, optionally, a chat model — so the whole pipeline runs without Chroma or a model server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from bot.answer import AnswerConfig, compose, prose_only, question_names, truncate
from bot.conversation import Turn, condense
from bot.generate import condense_question, generate
from bot.llm import ChatModel, LLMError
from bot.timeline import compose_timeline, headlines, newest_first
from bot.types import Answer, TimeWindowNote
from index import NO_FILTERS, Filters, TimeIntent, TimeWindow, clauses, date_filters, span_label, terms
from index.errors import NewsbotError
from index.types import Passage, TimedPassages

STOPPED_NOTICE = "stopped on request: showing the verified part of the draft"


class Search(Protocol):
    """What answering needs from an index."""

    def search(self, question: str, k: int = 10, filters: Filters = NO_FILTERS) -> list[Passage]: ...

    def time_intent(self, question: str, as_of: date) -> TimeIntent: ...

    def search_time(self, question: str, k: int = 10, filters: Filters = NO_FILTERS, *,
                    window: TimeWindow | None = None, recency: bool = False, as_of: date | None = None,
                    topic: str = "") -> TimedPassages: ...

    def term_weights(self, text: str) -> dict[str, float]: ...

    def outlets(self) -> list[str]: ...

    def unknown_terms(self, words: Sequence[str]) -> list[str]: ...


@dataclass(frozen=True)
class AnsweringConfig:
    """Limits and defaults of answering (from Settings, by the wiring)."""

    top_k: int = 10
    max_question_chars: int = 2000
    max_answer_chars: int = 4000
    llm_timeout_s: float = 30.0
    llm_uncited: str = "drop"
    timeline_depth: int = 30  # passages searched for a timeline (one sentence per article is told)
    search_topic: bool = True  # search time-bound questions without their time words (TimeIntent.topic)
    quote_window: bool = True  # when the window holds good evidence, quote only its articles
    latest_days: int = 14  # "the latest on X" without a window prefers the last this many days (0: no window)
    answer: AnswerConfig = field(default_factory=AnswerConfig)


class Answerer:
    """Question + history + filters → a cited ``Answer``: extractive, or written by an LLM and verified."""

    def __init__(self, search: Search, llm: ChatModel | None = None, config: AnsweringConfig = AnsweringConfig()
                 ) -> None:
        self.search = search
        self.llm = llm
        self.config = config

    def ask(self, question: str, history: list[Turn] | None = None, *, top_k: int | None = None,
            filters: Filters = NO_FILTERS, as_of: date | datetime | None = None) -> Answer:
        """Answer one question, resolving it against the conversation so far and the day it is asked."""
        for item in self.ask_stream(question, history, top_k=top_k, filters=filters, as_of=as_of):
            if isinstance(item, Answer):
                return item
        raise AssertionError("ask_stream ended without an Answer")

    def ask_stream(self, question: str, history: list[Turn] | None = None, *, top_k: int | None = None,
                   filters: Filters = NO_FILTERS, stop: threading.Event | None = None,
                   as_of: date | datetime | None = None) -> Iterator[str | Answer]:
        """The LLM's draft as text deltas while it is written, then the verified Answer (always the last item).

        Without an LLM only the extractive Answer is yielded; when the LLM fails (unreachable, HTTP error,
        timeout, unusable reply) the last item is the extractive Answer with a one-line ``notice``. The LLM's
        part (condensing a follow-up plus writing) never takes longer than ``llm_timeout_s``. Setting ``stop``
        (from another thread) ends the draft early: the part written so far is verified and answered, with a
        notice.

        Time words ("this week", "recently", "the latest", "how did it unfold") are read against ``as_of`` (default:
        now, UTC): a window is preferred in retrieval and shown with the answer (``Answer.window``), and a
        timeline question is answered as a dated chronology.
        """
        cfg = self.config
        question = self.check_question(question)
        history = history or []
        llm, budget = self.llm, cfg.llm_timeout_s
        started = time.perf_counter()
        standalone, context = condense(question, history)
        notice = ""
        if llm is not None and history:
            try:
                standalone = condense_question(llm, question, history, deadline=time.monotonic() + budget,
                                               limit=cfg.max_question_chars) or standalone
            except LLMError as err:
                notice = str(err)
            budget -= time.perf_counter() - started
        condensed = time.perf_counter()
        day = _day(as_of)
        intent = self.search.time_intent(standalone, day)
        if intent.periods > 1:  # "the report of 4 October … and the one of 12 October": no one window is the answer's
            intent = replace(intent, window=None, topic=standalone)
        if intent.recency and intent.window is None and cfg.latest_days > 0 and not intent.timeline:
            intent = replace(intent, window=latest_window(day, cfg.latest_days))
        k = top_k or cfg.top_k
        found: TimedPassages | None = None
        if intent.window is not None or intent.recency or intent.timeline:
            depth = max(k, cfg.timeline_depth) if intent.timeline else k
            found = self.search.search_time(standalone, depth, filters, window=intent.window, recency=intent.recency,
                                            as_of=day, topic=intent.topic if cfg.search_topic else "")
            if intent.window is not None and not _about_anything(intent.topic):  # "what happened this week?"
                window = intent.window
                bounds = date_filters((), window.start.isoformat(), min(day, window.end).isoformat())
                inside = replace(filters, since=bounds.since, until=bounds.until)
                within = self.search.search(standalone, cfg.timeline_depth, inside)
                found = TimedPassages(within, window) if within else found
            passages = found.passages
        else:
            passages = self.search.search(standalone, k, filters)
        retrieved = time.perf_counter()
        answer: Answer | None = None
        if intent.timeline and passages:  # a chronology is told from the articles themselves, never by the LLM
            window = found.window if found is not None and not found.fell_back else None  # one the story is told in
            answer = compose_timeline(question, intent.topic, passages, self.search.term_weights(intent.topic),
                                      config=cfg.answer, since=window.start if window else None,
                                      until=min(day, window.end) if window else day)
        passages = passages[:k]  # a timeline's deeper search is not what an ordinary answer is drawn from
        if answer is None and llm is not None and not notice and passages:
            try:
                for item in generate(llm, question, standalone, prose_only(passages),
                                     deadline=time.monotonic() + budget,
                                     uncited=cfg.llm_uncited, stop=stop):
                    if isinstance(item, Answer):  # shown prose only; the answer keeps the passages as retrieved
                        stopped = stop is not None and stop.is_set()
                        answer = replace(item, passages=tuple(passages), notice=STOPPED_NOTICE if stopped else "")
                    else:
                        yield item
            except LLMError as err:
                notice = str(err)
        if answer is None:
            quotable = passages
            if cfg.quote_window and found is not None and found.window is not None and not found.fell_back:
                quotable = [p for p in passages if _published_in(p, found.window)] or passages
            parts = clauses(question)
            weights = self.search.term_weights(" ".join((standalone, context, *parts)))
            names = question_names(standalone, self.search.outlets())
            # a time-bound question's time words are not what its answer is about
            if found is None:
                asked = question
            elif standalone == question and intent.periods <= 1:
                asked = intent.topic  # already read off this very question
            else:
                asked = self.search.time_intent(question, day).topic
            answer = compose(asked, quotable, weights, context=context, parts=parts, config=cfg.answer,
                             names=names, unknown=self.search.unknown_terms(names))
            answer = replace(answer, question=question, passages=tuple(passages))
            if answer.abstained and not answer.missing and found is not None and found.window is not None \
                    and not found.fell_back and not _about_anything(asked):  # "what happened this week?"
                window = found.window
                told = headlines(question, found.passages, since=window.start, until=min(day, window.end),
                                 config=cfg.answer)
                answer = replace(told, passages=tuple(passages)) if told is not None else answer
            if intent.recency and not answer.timeline:
                answer = newest_first(answer)
            if notice:
                answer = replace(answer, notice=f"{notice}; showing the extractive answer")
        done = time.perf_counter()
        timings = {"condense": round((condensed - started) * 1000, 1),
                   "retrieve": round((retrieved - condensed) * 1000, 1),
                   "answer": round((done - retrieved) * 1000, 1), "total": round((done - started) * 1000, 1)}
        answer = truncate(answer, cfg.max_answer_chars)
        yield replace(answer, standalone_question=standalone, timings_ms=timings, as_of=day.isoformat(),
                      window=window_note(intent, found, answer))

    def retrieve(self, question: str, *, top_k: int | None = None, filters: Filters = NO_FILTERS) -> list[Passage]:
        """The passages ``ask`` answers a standalone ``question`` from, best first, ranked exactly as ``ask`` ranks
        them (the question checked and cleaned as ``ask`` does; NewsbotError when empty or too long)."""
        return self.search.search(self.check_question(question), top_k or self.config.top_k, filters)

    def check_question(self, question: str) -> str:
        """The question cleaned of control and zero-width characters; NewsbotError when empty or too long."""
        cleaned = " ".join("".join(ch for ch in question if ch.isprintable() or ch.isspace()).split())
        cleaned = cleaned.replace("\u200b", "").replace("\ufeff", "").strip()
        if not cleaned:
            raise NewsbotError("the question is empty: ask something, e.g. newsbot ask \"why did the summits fail?\"")
        limit = self.config.max_question_chars
        if len(cleaned) > limit:
            raise NewsbotError(f"the question is {len(cleaned):,} characters; the limit is {limit:,} "
                               "(NEWSBOT_MAX_QUESTION_CHARS)")
        return cleaned


def _day(as_of: date | datetime | None) -> date:
    """The UTC day of ``as_of`` (now when None; a naive datetime is taken as UTC)."""
    if as_of is None:
        return datetime.now(UTC).date()
    if isinstance(as_of, datetime):
        return (as_of.astimezone(UTC) if as_of.tzinfo else as_of).date()
    return as_of


# words that ask for news in general, not about anything in particular
_GENERAL = frozenset(terms("what happened happening news going on latest new story stories headlines events "
                           "anything something important biggest top"))


def _about_anything(question: str) -> bool:
    """Does the question name a subject (a content word beyond the general ask for news)?"""
    return any(t not in _GENERAL for t in terms(question))


def latest_window(as_of: date, days: int) -> TimeWindow:
    """Where "the latest" is looked for first: the ``days`` days up to ``as_of``."""
    start = as_of - timedelta(days=days - 1)
    return TimeWindow(start, as_of, f"in the last {days} days ({span_label(start, as_of)})")


def window_note(intent: TimeIntent, found: TimedPassages | None, answer: Answer) -> TimeWindowNote | None:
    """What the reader is told about time: the window looked in (or that it held nothing) and the cited days."""
    if found is None or (intent.window is None and not intent.recency):
        return None
    days = sorted(date.fromisoformat(c.date) for c in answer.citations if _iso_day(c.date)) \
        if not answer.abstained else []
    w = intent.window
    return TimeWindowNote(
        label=w.label if w else "",
        start=w.start.isoformat() if w and w.start != date.min else "",
        end=w.end.isoformat() if w and w.end != date.max else "",
        fell_back=found.fell_back if w else False,
        quoted=span_label(days[0], days[-1]) if days else "",
        newest=span_label(days[-1], days[-1]) if days else "",
        recency=intent.recency, older=not w or all(d < w.start for d in days))


def _published_in(p: Passage, window: TimeWindow) -> bool:
    return _iso_day(p.published_at[:10]) and window.contains(date.fromisoformat(p.published_at[:10]))


def _iso_day(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True
