"""Follow-up questions: resolve them against the conversation without an LLM."""

from __future__ import annotations

import re
from dataclasses import dataclass

import prompts

_ANAPHORA = re.compile(
    r"\b(it|its|they|them|their|theirs|this|that|these|those|he|him|his|she|her|hers|there|then|the same|"
    r"such|other|else|also|too|either|instead)\b", re.I)
_CONTINUATION = re.compile(r"^\s*(and|but|so|also|what about|how about|what else|and then)\b", re.I)
CONTENT_WORDS = re.compile(r"\b[a-zA-Z][a-zA-Z'-]{3,}\b")


@dataclass(frozen=True)
class Turn:
    """One question and what it was resolved to."""

    question: str
    standalone: str


def is_follow_up(question: str) -> bool:
    """Does the question lean on earlier turns (pronouns, "what about …", or almost no content words)?"""
    return bool(_ANAPHORA.search(question) or _CONTINUATION.search(question)
                or len(CONTENT_WORDS.findall(question)) <= 2)


def condense(question: str, history: list[Turn]) -> tuple[str, str]:
    """(standalone question, context) for retrieval; context is the earlier question it follows up on."""
    if not history or not is_follow_up(question):
        return question, ""
    previous = history[-1].standalone
    return prompts.render("followup", question=question.strip(), previous=previous.strip()), previous
