"""The answer types every front end renders."""

from __future__ import annotations

from dataclasses import dataclass, field

import prompts
from index.types import Passage


@dataclass(frozen=True)
class Citation:
    """A numbered source of an answer and the sentences quoted from it."""

    n: int
    article_id: str
    chunk_id: str
    title: str
    source: str
    url: str
    published_at: str
    quotes: tuple[str, ...]
    score: float

    @property
    def date(self) -> str:
        return self.published_at[:10]


@dataclass(frozen=True)
class Statement:
    """One sentence of the answer and the citation numbers behind it."""

    text: str
    cites: tuple[int, ...]


@dataclass(frozen=True)
class Answer:
    """A cited answer (or an abstention listing the closest articles)."""

    question: str
    statements: tuple[Statement, ...]
    citations: tuple[Citation, ...]
    abstained: bool
    passages: tuple[Passage, ...] = ()
    standalone_question: str = ""
    mode: str = "extractive"
    model: str = ""
    notice: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict)
    evidence: float | None = None  # the extractive composer's evidence score (None when it did not decide)

    @property
    def text(self) -> str:
        """The answer as plain text with inline ``[n]`` markers."""
        if self.abstained:
            return ABSTAIN_TEXT
        return " ".join(f"{s.text} {''.join(f'[{n}]' for n in s.cites)}".strip() for s in self.statements)


ABSTAIN_TEXT = prompts.load("abstain")
