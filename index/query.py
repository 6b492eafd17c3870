"""News-aware query understanding, derived from the question and the index itself (no hand-made lists):
outlets named in the question (matched against the outlets the index holds) and calendar dates."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december"]
_MONTH_RE = r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|" \
            r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
_ISO = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_MDY = re.compile(_MONTH_RE + r"\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})\b", re.I)
_DMY = re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?" + _MONTH_RE + r",?\s+(\d{4})\b", re.I)
_SEPARATORS = (" | ", " - ", " – ", ": ")


# Where a multi-part question turns from one claim to the next ("…, while the other article…").
_CLAUSE_BREAK = re.compile(r"\s*(?:\bwhile\b|\bwhereas\b|\bbut\b|\band then\b|\bafter\b|\bbefore\b|,\s*and\b|;|"
                           r"\band (?:the|a|an|another)\b)\s*", re.I)
MIN_CLAUSE_WORDS = 4
# Finer cuts: each descriptive phrase of a long question ("…, known for X, which Y and Z") usually
# paraphrases one sentence of one article, so each phrase is matched against sentences on its own.
_PHRASE_BREAK = re.compile(r"\s*(?:[,;:]|\b(?:while|whereas|but|and|or|who|whom|whose|which|that|after|before)\b)\s*",
                           re.I)
MIN_PHRASE_WORDS = 3


@dataclass(frozen=True)
class QueryPlan:
    """What the question says about where and when to look, and the separate claims it is made of."""

    outlets: tuple[frozenset[str], ...] = ()  # groups of the index's source names, in order of mention
    days: frozenset[str] = frozenset()  # YYYY-MM-DD
    clauses: tuple[str, ...] = ()  # the question's parts when it has several, else empty
    phrases: tuple[str, ...] = ()  # its descriptive phrases (finer than clauses), else empty


def clauses(question: str) -> tuple[str, ...]:
    """The parts of a multi-part question (each at least a few words long), or () for a simple one."""
    parts = tuple(p.strip() for p in _CLAUSE_BREAK.split(question) if p and len(p.split()) >= MIN_CLAUSE_WORDS)
    return parts if len(parts) > 1 else ()


def phrases(question: str) -> tuple[str, ...]:
    """The descriptive phrases of a question (each a few words long), or () when it has only one."""
    parts = tuple(p.strip() for p in _PHRASE_BREAK.split(question) if p and len(p.split()) >= MIN_PHRASE_WORDS)
    return parts if len(parts) > 1 else ()


def _month(name: str) -> int:
    name = name.lower().rstrip(".")
    return next(i for i, m in enumerate(_MONTHS, 1) if m.startswith(name[:3]))


def find_days(text: str) -> frozenset[str]:
    """Calendar dates written in the text (ISO, "October 7, 2023", "7 October 2023")."""
    found: set[str] = set()
    for m in _ISO.finditer(text):
        _add(found, int(m[1]), int(m[2]), int(m[3]))
    for m in _MDY.finditer(text):
        _add(found, int(m[3]), _month(m[1]), int(m[2]))
    for m in _DMY.finditer(text):
        _add(found, int(m[3]), _month(m[2]), int(m[1]))
    return frozenset(found)


def _add(found: set[str], y: int, mo: int, d: int) -> None:
    try:
        found.add(date(y, mo, d).isoformat())
    except ValueError:
        pass


class OutletMatcher:
    """Finds the index's outlets in a question: full names and their short forms ("The Independent" for
    "The Independent - Sports"), matched case-sensitively (as written, or in capitals) on word boundaries."""

    def __init__(self, sources: list[str]) -> None:
        forms: dict[str, set[str]] = {}
        for source in sources:
            for form in _forms(source):
                forms.setdefault(form, set()).add(source)
        self._groups = {f: frozenset(s) for f, s in forms.items()}
        alternatives = sorted(self._groups, key=len, reverse=True)
        self._re = re.compile(r"(?<![\w])(" + "|".join(re.escape(f) for f in alternatives) + r")(?![\w])") \
            if alternatives else None

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where outlet names occur in the text (start, end), left to right."""
        return [m.span(1) for m in self._re.finditer(text)] if self._re is not None else []

    def find(self, text: str) -> tuple[frozenset[str], ...]:
        if self._re is None:
            return ()
        out: list[frozenset[str]] = []
        for m in self._re.finditer(text):
            group = self._groups[m.group(1)]
            if group not in out:
                out.append(group)
        return tuple(out)


def _forms(source: str) -> set[str]:
    source = " ".join(source.split())
    forms = {source}
    for sep in _SEPARATORS:
        if sep in source:
            head = source.split(sep)[0].strip()
            if len(head) >= 3:
                forms.add(head)
    return forms | {f.upper() for f in forms if len(f) >= 3}


def plan(question: str, matcher: OutletMatcher) -> QueryPlan:
    """The outlets, dates and clauses of a question."""
    return QueryPlan(outlets=matcher.find(question), days=find_days(question), clauses=clauses(question),
                     phrases=phrases(question))
