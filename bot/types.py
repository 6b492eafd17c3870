"""The answer types every front end renders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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

    @classmethod
    def of(cls, n: int, passage: Passage, quotes: tuple[str, ...]) -> Citation:
        """Citation number ``n`` of the article behind ``passage``, quoting ``quotes`` from it."""
        p = passage
        return cls(n=n, article_id=p.article_id, chunk_id=p.chunk_id, title=p.title, source=p.source, url=p.url,
                   published_at=p.published_at, quotes=quotes, score=round(p.score, 4))

    @property
    def date(self) -> str:
        return self.published_at[:10]

    @property
    def outlet_date(self) -> tuple[str, ...]:
        """The outlet and the publication day, those that are known (what every source line shows after the title)."""
        return tuple(x for x in (self.source, self.date) if x)

    def as_dict(self) -> dict[str, Any]:
        """The citation as JSON (the ``citations`` items of ``ask --json``)."""
        return {"n": self.n, "article_id": self.article_id, "title": self.title, "source": self.source,
                "url": self.url, "published_at": self.published_at, "quote": " … ".join(self.quotes),
                "quotes": list(self.quotes), "score": self.score}


@dataclass(frozen=True)
class Statement:
    """One sentence of the answer and the citation numbers behind it."""

    text: str
    cites: tuple[int, ...]
    lead: str = ""  # what the sentence is led by: "12 Nov 2023, TechCrunch" in a timeline, "TechCrunch, 18 Nov
    # 2023" when an answer compares sources

    @property
    def shown(self) -> str:
        """The sentence as the answer shows it (led by its date and outlet in a timeline or a comparison)."""
        return f"{self.lead}: {self.text}" if self.lead else self.text


@dataclass(frozen=True)
class TimeWindowNote:
    """The time an answer was looked for in, for the reader: the window a time-bound question named (inclusive
    ISO days, "" for an open side), whether it held no good evidence (``fell_back``: the quotes are older or
    other coverage), and the publication days the quotes come from. ``recency``: the question asked for the
    latest news, with or without a window."""

    label: str  # "this week (4–10 Dec 2023)"; "" when only recency was asked for
    start: str
    end: str
    fell_back: bool
    quoted: str = ""  # "12–16 Jun 2022": the days of the cited articles
    newest: str = ""  # "16 Jun 2022": the newest cited article's day
    recency: bool = False
    older: bool = True  # every quoted article predates the window (else the fallback offers "other" coverage)

    @property
    def headline(self) -> str:
        """The line an answer starts with: where its quotes come from, or that the window held nothing."""
        if self.label and self.fell_back:
            return f"Nothing published {self.label} covers this; {'older' if self.older else 'other'} coverage:"
        if self.recency and self.newest:
            return f"Latest coverage, as of {self.newest}:"
        if self.label and self.quoted:
            return f"From articles of {self.quoted}:"
        return ""

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "start": self.start or None, "end": self.end or None,
                "fell_back": self.fell_back, "quoted": self.quoted, "recency": self.recency}


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
    missing: tuple[str, ...] = ()  # names in the question that no article mentions (why it abstained)
    evidence: float | None = None  # the extractive composer's evidence score (None when it did not decide)
    as_of: str = ""  # ISO day the question was answered against ("" when not given)
    window: TimeWindowNote | None = None  # set when the question was time-bound or asked for the latest news
    timeline: bool = False  # the statements are a dated chronology, oldest first

    @property
    def text(self) -> str:
        """The answer as plain text with inline ``[n]`` markers."""
        if self.abstained:
            return self.abstain_text
        return " ".join(f"{s.shown} {''.join(f'[{n}]' for n in s.cites)}".strip() for s in self.statements)

    @property
    def abstain_text(self) -> str:
        """Why there is no answer: the names no article mentions, or that the articles don't cover it."""
        if not self.missing:
            return ABSTAIN_TEXT
        names = ", ".join(f"“{n}”" for n in self.missing[:-1])
        names = f"{names} or “{self.missing[-1]}”" if names else f"“{self.missing[-1]}”"
        return prompts.render("missing", names=names)

    def as_dict(self) -> dict[str, Any]:
        """The answer as JSON: the documented ``ask --json`` schema, also used by Discord's feedback log and
        eval dumps."""
        return {
            "question": self.question,
            "standalone_question": self.standalone_question,
            "answer": self.text,
            "abstained": self.abstained,
            "missing": list(self.missing),
            "mode": self.mode,
            "model": self.model,
            "notice": self.notice,
            "citations": [c.as_dict() for c in self.citations],
            "retrieved": [{"article_id": p.article_id, "chunk_id": p.chunk_id, "text": p.text,
                           "score": round(p.score, 4), "title": p.title, "source": p.source,
                           "published_at": p.published_at} for p in self.passages],
            "timings_ms": self.timings_ms,
            "as_of": self.as_of or None,
            "window": self.window.as_dict() if self.window else None,
            "timeline": self.timeline,
        }


ABSTAIN_TEXT = prompts.load("abstain")
