"""LLM answers: the prompts sent, the reply streamed and verified, follow-ups rewritten as standalone questions."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence

import prompts
from bot.conversation import Turn
from bot.grounded import says_not_covered, verify
from bot.llm import ChatModel, LLMError, Message
from bot.mentions import neutralise_mentions
from bot.types import Answer
from index.types import Passage

MAX_SHOWN = 8  # passages numbered in the prompt
MAX_SENTENCES = 6
MAX_REPLY_CHARS = 8000  # stop reading a runaway reply here; the verifier drops the unfinished sentence
HISTORY_TURNS = 4
_TAG = re.compile(r"<\s*/?\s*source", re.I)
_CITATION = re.compile(r"\[\d+\]")
_LABEL = re.compile(r"^\s*(?:standalone\s+question|question|rewritten(?:\s+question)?)\s*:\s*", re.I)


def _inert(text: str) -> str:
    """Passage text that cannot close or open a <source> block of the prompt."""
    return _TAG.sub("‹source", " ".join(text.split()))


def source_block(passages: Sequence[Passage]) -> str:
    """The numbered sources as the model sees them (title, outlet, date, text)."""
    return "\n\n".join(prompts.render("llm_source", n=n, title=_inert(p.title) or "(untitled)",
                                      outlet=_inert(p.source) or "unknown", date=p.published_at[:10] or "unknown",
                                      text=_inert(p.text))
                       for n, p in enumerate(passages, 1))


def answer_messages(question: str, passages: Sequence[Passage]) -> list[Message]:
    """System rules plus the sources and the question; nothing else (no settings, no secrets) reaches the model."""
    user = prompts.render("llm_answer", sources=source_block(passages), question=question,
                          max_sentences=MAX_SENTENCES)
    return [Message("system", prompts.load("llm_system")), Message("user", user)]


def condense_messages(question: str, history: Sequence[Turn]) -> list[Message]:
    earlier = "\n".join(f"- {t.standalone or t.question}" for t in history[-HISTORY_TURNS:])
    return [Message("system", prompts.load("llm_condense_system")),
            Message("user", prompts.render("llm_condense", history=earlier, question=question))]


def parse_standalone(reply: str, limit: int) -> str | None:
    """The rewritten question from a condensing reply, or None when the reply is unusable."""
    lines = [ln.strip() for ln in reply.splitlines() if ln.strip() and not ln.strip().startswith("<think")]
    if not lines:
        return None
    text = _LABEL.sub("", lines[0]).strip().strip("\"'“”`*").strip()
    if not text or len(text) > limit or says_not_covered(text) or _CITATION.search(text):
        return None  # an answer (with citations) instead of a question
    return neutralise_mentions(text)


def condense_question(model: ChatModel, question: str, history: Sequence[Turn], *, deadline: float,
                      limit: int) -> str | None:
    """The follow-up rewritten by the model as a standalone question (None if the reply is unusable)."""
    return parse_standalone(model.chat(condense_messages(question, history), deadline=deadline), limit)


def generate(model: ChatModel, question: str, standalone: str, passages: Sequence[Passage], *, deadline: float,
             uncited: str = "drop", stop: threading.Event | None = None) -> Iterator[str | Answer]:
    """The model's draft as text deltas (mentions neutralised), then the verified Answer.

    Once ``stop`` is set, no more of the reply is read: what arrived so far is verified (an unfinished last
    sentence is dropped by the verifier). Raises LLMError when the model fails or its reply cites nothing it was
    shown.
    """
    shown = tuple(passages[:MAX_SHOWN])
    parts: list[str] = []
    size = 0
    for delta in model.stream(answer_messages(standalone, shown), deadline=deadline):
        parts.append(delta)
        size += len(delta)
        yield neutralise_mentions(delta)
        if size >= MAX_REPLY_CHARS or (stop is not None and stop.is_set()):
            break
    reply = "".join(parts)
    try:
        yield verify(question, reply, shown, uncited=uncited, model=model.name, retrieved=passages)
    except ValueError as err:
        raise LLMError(f"the language model's reply was unusable ({err})") from None


