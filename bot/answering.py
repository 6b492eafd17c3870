"""Where passages become an answer: a question (and the conversation so far) → an ``Answer``.

``Answerer`` depends only on two small seams — something that searches (``index.Index`` in the product, a fake in
unit tests) and, optionally, a chat model — so the whole pipeline runs without Chroma or a model server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from bot.answer import AnswerConfig, compose, question_names, truncate
from bot.conversation import Turn, condense
from bot.generate import condense_question, generate
from bot.llm import ChatModel, LLMError
from bot.types import Answer
from index import NO_FILTERS, Filters, clauses
from index.errors import NewsbotError
from index.types import Passage

STOPPED_NOTICE = "stopped on request: showing the verified part of the draft"


class Search(Protocol):
    """What answering needs from an index."""

    def search(self, question: str, k: int = 10, filters: Filters = NO_FILTERS) -> list[Passage]: ...

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
    answer: AnswerConfig = field(default_factory=AnswerConfig)


class Answerer:
    """Question + history + filters → a cited ``Answer``: extractive, or written by an LLM and verified."""

    def __init__(self, search: Search, llm: ChatModel | None = None, config: AnsweringConfig = AnsweringConfig()
                 ) -> None:
        self.search = search
        self.llm = llm
        self.config = config

    def ask(self, question: str, history: list[Turn] | None = None, *, top_k: int | None = None,
            filters: Filters = NO_FILTERS) -> Answer:
        """Answer one question, resolving it against the conversation so far."""
        for item in self.ask_stream(question, history, top_k=top_k, filters=filters):
            if isinstance(item, Answer):
                return item
        raise AssertionError("ask_stream ended without an Answer")

    def ask_stream(self, question: str, history: list[Turn] | None = None, *, top_k: int | None = None,
                   filters: Filters = NO_FILTERS, stop: threading.Event | None = None) -> Iterator[str | Answer]:
        """The LLM's draft as text deltas while it is written, then the verified Answer (always the last item).

        Without an LLM only the extractive Answer is yielded; when the LLM fails (unreachable, HTTP error,
        timeout, unusable reply) the last item is the extractive Answer with a one-line ``notice``. The LLM's
        part (condensing a follow-up plus writing) never takes longer than ``llm_timeout_s``. Setting ``stop``
        (from another thread) ends the draft early: the part written so far is verified and answered, with a
        notice.
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
        passages = self.search.search(standalone, top_k or cfg.top_k, filters)
        retrieved = time.perf_counter()
        answer: Answer | None = None
        if llm is not None and not notice and passages:
            try:
                for item in generate(llm, question, standalone, passages, deadline=time.monotonic() + budget,
                                     uncited=cfg.llm_uncited, stop=stop):
                    if isinstance(item, Answer):
                        stopped = stop is not None and stop.is_set()
                        answer = replace(item, notice=STOPPED_NOTICE) if stopped else item
                    else:
                        yield item
            except LLMError as err:
                notice = str(err)
        if answer is None:
            parts = clauses(question)
            weights = self.search.term_weights(" ".join((standalone, context, *parts)))
            names = question_names(standalone, self.search.outlets())
            answer = compose(question, passages, weights, context=context, parts=parts, config=cfg.answer,
                             names=names, unknown=self.search.unknown_terms(names))
            if notice:
                answer = replace(answer, notice=f"{notice}; showing the extractive answer")
        done = time.perf_counter()
        timings = {"condense": round((condensed - started) * 1000, 1),
                   "retrieve": round((retrieved - condensed) * 1000, 1),
                   "answer": round((done - retrieved) * 1000, 1), "total": round((done - started) * 1000, 1)}
        answer = truncate(answer, cfg.max_answer_chars)
        yield replace(answer, standalone_question=standalone, timings_ms=timings)

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
