"""Relative time in a question ("this week", "since March", "the latest on …"), resolved deterministically
against the date the question is asked ("as of"); pure, stdlib only, no LLM.

Semantics (every window is inclusive of both days; weeks are ISO weeks starting on Monday):

- today / this morning / tonight: as_of. yesterday / last night: as_of − 1 day. the day before yesterday: − 2.
- this week: Monday of as_of's week … as_of. last week / previous week: the previous Monday … Sunday.
  last weekend: the Saturday and Sunday of the previous week.
- this month: the 1st … as_of. last month: the whole previous calendar month. this year / last year likewise.
- on|this <weekday>: the most recent such day on or before as_of (as_of itself when it is that weekday).
  last <weekday>: the most recent such day strictly before as_of. A weekday is time only after on/this/
  last or a preposition (since, before, in, …): "Wednesday" alone, "Super Tuesday", "wed", "sun" and
  "Thursday Night Football" are not.
- the past|last|previous N days|weeks|months|years, and "past week" even without "the": a rolling window
  ending on as_of. N days = as_of − (N − 1) … as_of; N weeks = the last 7·N days; N months = (as_of minus N
  calendar months, clamped to the month's last day) + 1 day … as_of; years = 12·N months. N is digits or
  one…twelve; "a couple of" = 2, "a few" = 3, no number = 1 ("in the last week" = the last 7 days, while
  "last week" without "the" or a number is the calendar week).
- recently / lately / of late / in recent days: the last RECENT_DAYS days; in recent weeks: the last
  RECENT_WEEKS_DAYS days; in recent months: the last RECENT_MONTHS months.
- N days ago: that day; N weeks|months|years ago: the ISO week, calendar month or year N back.
- Named periods: a full date (the forms ``index.query.find_days`` reads) is that day; "3 March"/"March 3"
  without a year is the most recent such day on or before as_of; "March 2023" the month; "in|since|…
  March" without a year the most recent such month not after as_of; "in|during|since|of|… 2023" the year
  (1900–2100). A month name needs a year, a day, or a preposition in front of it, and "may"/"march" next to
  a bare day number need on/since/by/…, so the modal "may" and the verb "march" are not time. A named
  period that contains as_of ends on as_of: there is no news from after it.
- since X: start of X … as_of. after X: the day after X ends … as_of. before X: (open) … the day before X
  starts. until X: (open) … the end of X. A bound later than as_of leaves the window open to the future
  (date.max); "open" on the left is date.min.

Only the first time expression in the question sets the window; recency ("latest", "currently", "now",
"still", "as of now", "most recent", "newest") and timeline ("how did X unfold", "timeline of X", "what
happened with X since Y", "how has X evolved", "chronology") are flags beside it; a question that asks for one
fact ("In the timeline of X, which team …?", "who …", "how many …") is not a timeline unless it opens with "how
did X unfold" or "what happened with X since".
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from index.query import _DMY, _ISO, _MDY, _MONTH_RE, _month

RECENT_DAYS = 14  # "recently", "lately", "in recent days"
RECENT_WEEKS_DAYS = 28  # "in recent weeks"
RECENT_MONTHS = 3  # "in recent months"
FEW = 3  # "the past few days"
COUPLE = 2  # "the past couple of weeks"
MIN_YEAR, MAX_YEAR = 1900, 2100


@dataclass(frozen=True)
class TimeWindow:
    """Inclusive days [start, end]; date.min / date.max mark an open side. label is for people."""

    start: date
    end: date
    label: str

    def contains(self, day: date) -> bool:
        return self.start <= day <= self.end


@dataclass(frozen=True)
class TimeIntent:
    """What a question says about time: a window, a wish for the newest news, a wish for the story's course."""

    window: TimeWindow | None
    recency: bool
    timeline: bool
    topic: str  # the question without its time expression and recency/timeline scaffolding; never empty
    expression: str = ""  # the time expression as written in the question, "" when there is none
    periods: int = 0  # how many time expressions the question holds (only the first sets the window)


# ---- periods: a regex, whether it needs a preposition in front, and how it resolves --------------------

_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_WEEKDAY_RE = r"(monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_NUMBERS = {w: i for i, w in enumerate("one two three four five six seven eight nine ten eleven twelve".split(), 1)}
_COUNT_RE = r"(\d{1,3}|" + "|".join(_NUMBERS) + r"|a|an|(?:a\s+)?couple(?:\s+of)?|(?:a\s+)?few)"
_UNIT_RE = r"(day|week|month|year)s?"
# Broadcast names that start with a weekday ("on Thursday Night Football") say nothing about when.
_NOT_A_DAY = r"(?!\s+night\s+(?:football|baseball|raw)\b)"
_BOUND = r"(since|after|before|until|till|up\s+to)"
_PREP = r"(?:in|on|during|over|within|for|of|from|at|by|throughout)"
# Words in front of a month name, year or weekday that make it a time ("in May", "since 2021", "on Friday").
_CONTEXT = re.compile(r"\b(?:" + _BOUND + "|" + _PREP + r"|early|late|mid|this|last)\s*-?\s*$", re.I)

Span = tuple[date, date]
Resolver = Callable[[re.Match[str], date], Span | None]


def _day_span(d: date) -> Span:
    return d, d


def _week_of(d: date) -> Span:
    monday = d - timedelta(days=d.weekday())
    return monday, monday + timedelta(days=6)


def _month_span(y: int, mo: int) -> Span:
    return date(y, mo, 1), date(y, mo, calendar.monthrange(y, mo)[1])


def _minus_months(d: date, n: int) -> date:
    """d moved back n calendar months, clamped to the last day of the month it lands in (31 Mar − 1 = 29 Feb)."""
    total = d.year * 12 + d.month - 1 - n
    y, mo = divmod(total, 12)
    return date(y, mo + 1, min(d.day, calendar.monthrange(y, mo + 1)[1]))


def _count(word: str) -> int:
    word = " ".join(word.lower().split())
    if word.isdigit():
        return int(word)
    if word in ("a", "an"):
        return 1
    if "couple" in word:
        return COUPLE
    if "few" in word:
        return FEW
    return _NUMBERS[word]


def _rolling(as_of: date, n: int, unit: str) -> Span:
    n, unit = max(n, 1), unit.lower()  # "the past 0 days" is today, never an empty window
    if unit == "day":
        return as_of - timedelta(days=n - 1), as_of
    if unit == "week":
        return as_of - timedelta(days=7 * n - 1), as_of
    months = n if unit == "month" else 12 * n
    return _minus_months(as_of, months) + timedelta(days=1), as_of


def _calendar(as_of: date, unit: str, back: int) -> Span:
    """The calendar day/week/month/year containing as_of (back=0) or `back` of them before it."""
    unit = unit.lower()
    if unit == "day":
        return _day_span(as_of - timedelta(days=back))
    if unit == "week":
        return _week_of(as_of - timedelta(weeks=back))
    if unit == "month":
        first = _minus_months(as_of.replace(day=1), back)
        return _month_span(first.year, first.month)
    return date(as_of.year - back, 1, 1), date(as_of.year - back, 12, 31)


def _latest_month(mo: int, as_of: date) -> int:
    """The year of the most recent month `mo` not after as_of."""
    return as_of.year if mo <= as_of.month else as_of.year - 1


def _latest_day(mo: int, d: int, as_of: date) -> date | None:
    """The most recent day-of-year (mo, d) on or before as_of; None when no year has it (31 Feb)."""
    for y in range(as_of.year, as_of.year - 9, -1):
        try:
            day = date(y, mo, d)
        except ValueError:
            continue
        if day <= as_of:
            return day
    return None


def _weekday_on_or_before(as_of: date, name: str, strictly: bool) -> date:
    back = (as_of.weekday() - _WEEKDAYS.index(name.lower())) % 7
    return as_of - timedelta(days=7 if strictly and back == 0 else back)


def _full_date(y: int, mo: int, d: int) -> Span | None:
    try:
        return _day_span(date(y, mo, d))
    except ValueError:
        return None


def _yearless_day(mo: int, d: int, as_of: date) -> Span | None:
    day = _latest_day(mo, d, as_of)
    return _day_span(day) if day else None


def _year(y: int) -> Span | None:
    return (date(y, 1, 1), date(y, 12, 31)) if MIN_YEAR <= y <= MAX_YEAR else None


@dataclass(frozen=True)
class _Kind:
    pattern: re.Pattern[str]
    resolve: Resolver
    needs_context: Callable[[str], bool] | None = None  # given the match: is it time only after in/since/on/…?
    context: re.Pattern[str] = _CONTEXT


def _k(pattern: str, resolve: Resolver, needs_context: Callable[[str], bool] | None = None,
       context: re.Pattern[str] = _CONTEXT) -> _Kind:
    return _Kind(re.compile(pattern, re.I), resolve, needs_context, context)


def _always(_: str) -> bool:
    return True


# "the 12 may leave", "march 3 times": a day number next to these is time only after on/since/by/… ("of" is not enough).
_modal_or_verb = re.compile(r"\b(?:may|mar(?:ch)?)\b", re.I).search
_DAY_CONTEXT = re.compile(r"\b(?:" + _BOUND + r"|on|by|from)\s*$", re.I)


_KINDS: tuple[_Kind, ...] = (
    _k(_ISO.pattern, lambda m, a: _full_date(int(m[1]), int(m[2]), int(m[3]))),
    _k(r"\b" + _MDY.pattern, lambda m, a: _full_date(int(m[3]), _month(m[1]), int(m[2]))),
    _k(_DMY.pattern, lambda m, a: _full_date(int(m[3]), _month(m[2]), int(m[1]))),
    _k(r"\b" + _MONTH_RE + r",?\s+(\d{4})\b",
       lambda m, a: _month_span(int(m[2]), _month(m[1])) if MIN_YEAR <= int(m[2]) <= MAX_YEAR else None),
    _k(r"\b(?:the\s+)?(\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?" + _MONTH_RE + r"(?![\w])(?!,?\s+\d{4})",
       lambda m, a: _yearless_day(_month(m[2]), int(m[1]), a), lambda t: bool(_modal_or_verb(t)),
       _DAY_CONTEXT),
    _k(r"\b" + _MONTH_RE + r"\s+(\d{1,2})(?:st|nd|rd|th)?\b(?!\s*(?:,\s*)?\d)(?![:.]\d)",
       lambda m, a: _yearless_day(_month(m[1]), int(m[2]), a), lambda t: bool(_modal_or_verb(t)),
       _DAY_CONTEXT),
    _k(r"\b(?:the\s+day\s+before\s+yesterday)\b", lambda m, a: _day_span(a - timedelta(days=2))),
    _k(r"\b(?:today|tonight|this\s+(?:morning|afternoon|evening)|earlier\s+today)\b", lambda m, a: _day_span(a)),
    _k(r"\b(?:yesterday|last\s+night)\b", lambda m, a: _day_span(a - timedelta(days=1))),
    _k(r"\b(?:earlier\s+|so\s+far\s+)?this\s+(week|month|year)\b", lambda m, a: _calendar(a, m[1], 0)),
    _k(r"\b(?:(?:the\s+)?past|the\s+(?:last|previous))\s+"
       + r"(?:" + _COUNT_RE + r"\s+)?" + _UNIT_RE + r"\b",
       lambda m, a: _rolling(a, _count(m[1]) if m[1] else 1, m[2])),
    _k(r"\b(?:last|previous)\s+" + _COUNT_RE + r"\s+" + _UNIT_RE + r"\b",
       lambda m, a: _rolling(a, _count(m[1]), m[2])),
    _k(r"\b(?:last|previous)\s+(week|month|year)\b", lambda m, a: _calendar(a, m[1], 1)),
    _k(r"\b(?:the\s+)?last\s+weekend\b",
       lambda m, a: (_week_of(a)[0] - timedelta(days=2), _week_of(a)[0] - timedelta(days=1))),
    _k(r"\b" + _COUNT_RE + r"\s+" + _UNIT_RE + r"\s+ago\b", lambda m, a: _ago(a, _count(m[1]), m[2])),
    _k(r"\blast\s+" + _WEEKDAY_RE + r"\b", lambda m, a: _day_span(_weekday_on_or_before(a, m[1], True))),
    _k(r"\b(?:on\s+|this\s+)?" + _WEEKDAY_RE + r"\b(?!['’]s)" + _NOT_A_DAY,
       lambda m, a: _day_span(_weekday_on_or_before(a, m[1], False)), _always),
    _k(r"\b(?:recently|lately|of\s+late|(?:in|over)\s+recent\s+days)\b",
       lambda m, a: _rolling(a, RECENT_DAYS, "day")),
    _k(r"\b(?:in|over)\s+recent\s+weeks\b", lambda m, a: _rolling(a, RECENT_WEEKS_DAYS, "day")),
    _k(r"\b(?:in|over)\s+recent\s+months\b", lambda m, a: _rolling(a, RECENT_MONTHS, "month")),
    _k(r"\b" + _MONTH_RE + r"(?![\w-])(?!['’]s)",  # not "Mar-a-Lago", "May's government"
       lambda m, a: _month_span(_latest_month(_month(m[1]), a), _month(m[1])), _always),
    # "of 2000 people", "in 2023 votes" are counts, not years
    _k(r"\b(?:the\s+year\s+)?(\d{4})\b(?![-/]\d)(?![ \t]+(?:people|[a-z]+s)\b)", lambda m, a: _year(int(m[1])),
       _always),
)


def _ago(as_of: date, n: int, unit: str) -> Span:
    unit = unit.lower()
    if unit == "day":
        return _day_span(as_of - timedelta(days=n))
    return _calendar(as_of, unit, n)


@dataclass(frozen=True)
class _Hit:
    start: int
    end: int
    span: Span


def _periods(text: str, as_of: date) -> list[_Hit]:
    """Every period in the text, leftmost-longest first, without overlaps; an impossible date ("31 February
    2023", resolved to None) still hides the shorter periods inside it."""
    found: list[tuple[int, int, Span | None]] = []
    for kind in _KINDS:
        for m in kind.pattern.finditer(text):
            word = m.group(0).split()[0].lower()
            if kind.needs_context and kind.needs_context(m.group(0)) and word not in ("on", "this") \
                    and not kind.context.search(text[:m.start()]):
                continue
            found.append((m.start(), m.end(), kind.resolve(m, as_of)))
    found.sort(key=lambda f: (f[0], f[0] - f[1]))
    kept: list[tuple[int, int, Span | None]] = []
    for f in found:
        if not kept or f[0] >= kept[-1][1]:
            kept.append(f)
    return [_Hit(start, end, span) for start, end, span in kept if span is not None]


_BOUND_BEFORE = re.compile(r"\b" + _BOUND + r"\s+$", re.I)
_PREP_BEFORE = re.compile(r"\b" + _PREP + r"\s+(?:the\s+)?$", re.I)


def _window(text: str, as_of: date) -> tuple[TimeWindow, int, int] | None:
    """The first time expression's window and its span in the text (with since/in/on… in front)."""
    hits = _periods(text, as_of)
    if not hits:
        return None
    hit = hits[0]
    start, (lo, hi) = hit.start, hit.span
    bound = _BOUND_BEFORE.search(text[:start])
    if bound:
        start = bound.start()
        word = bound.group(1).lower().split()[0]
        if word == "since":
            lo, hi = lo, as_of if lo <= as_of else date.max
        elif word == "after":
            lo, hi = hi + timedelta(days=1), as_of if hi < as_of else date.max
        elif word == "before":
            lo, hi = date.min, lo - timedelta(days=1)
        else:  # until, till, up to
            lo, hi = date.min, hi
    else:
        prep = _PREP_BEFORE.search(text[:start])
        if prep:
            start = prep.start()
        if lo <= as_of < hi:
            hi = as_of
    end = hit.end + (2 if re.match(r"['’]s\b", text[hit.end:]) else 0)  # "last month's report"
    expression = " ".join(text[start:hit.end].split())
    return TimeWindow(lo, hi, f"{expression.lower()} ({_range_label(lo, hi)})"), start, end


def _fmt(d: date, year: bool = True) -> str:
    return f"{d.day} {calendar.month_abbr[d.month]}" + (f" {d.year}" if year else "")


def span_label(lo: date, hi: date) -> str:
    """Days for people: "4 Oct 2023", "12–16 Jun 2022", "28 Nov – 3 Dec 2023"; date.min/date.max are open sides."""
    return _range_label(lo, hi)


def _range_label(lo: date, hi: date) -> str:
    if lo == date.min:
        return f"until {_fmt(hi)}"
    if hi == date.max:
        return f"from {_fmt(lo)}"
    if lo == hi:
        return _fmt(lo)
    if (lo.year, lo.month) == (hi.year, hi.month):
        return f"{lo.day}–{_fmt(hi)}"
    if lo.year == hi.year:
        return f"{_fmt(lo, False)} – {_fmt(hi)}"
    return f"{_fmt(lo)} – {_fmt(hi)}"


# ---- recency and timeline scaffolding ----------------------------------------------------------------

_RECENCY_LEAD = re.compile(
    r"^\s*(?:(?:what|where)(?:['’]s|\s+is|\s+are)\s+)?(?:the\s+)?(?:very\s+)?(?:latest|newest|most\s+recent)"
    r"(?:\s+(?:news|updates?|developments?|word))?\s+(?:on|with|in|about|regarding|from|for)\s+", re.I)
_RECENCY = re.compile(
    r"\b(?:as\s+of\s+(?:now|today|right\s+now)|right\s+now|at\s+(?:the\s+moment|present)|these\s+days|"
    r"nowadays|currently|latest|newest|most\s+recent|up\s+to\s+date|still)\b|(?<![\w-])now(?![\w-])", re.I)
_TIMELINE_TOPIC = (
    re.compile(r"^\s*how\s+(?:did|has|have|had|does|do|is|are|was|were)\s+(?P<t>.+?)\s+"
               r"(?:unfold(?:ed)?|develop(?:ed)?|evolve[d]?|progress(?:ed)?|play(?:ed)?\s+out|"
               r"come\s+about|change[d]?|escalate[d]?)\b", re.I),
    re.compile(r"\b(?:(?:a|the)\s+)?(?:timeline|chronology|sequence\s+of\s+events)\s+(?:of|for|in|on)\s+(?P<t>.+)$",
               re.I),
    re.compile(r"^\s*what\s+(?:has\s+|have\s+)?happened\s+(?:with|to|in|at)\s+(?P<t>.+?)\s+since\b", re.I),
)
_TIMELINE = re.compile(r"\b(?:timeline|chronology|chronological|sequence\s+of\s+events|step\s+by\s+step|"
                       r"over\s+time|unfold(?:ed|ing)?)\b", re.I)
_FACTOID = re.compile(r"\b(?:which|who|whom|whose|how\s+(?:many|much|long|old))\b", re.I)
_TIDY_END = " \t?!.,;:-–—"


def _tidy(text: str) -> str:
    text = re.sub(r"\s+([?!.,;:])", r"\1", " ".join(text.split()))
    text = re.sub(r"([,;:])(?=[?!.,;:])", "", text)
    return text.strip(_TIDY_END).strip()


def _without(text: str, keep: tuple[int, int], cut: tuple[int, int] | None) -> str:
    """text[keep] with the part that lies in cut replaced by a space."""
    lo, hi = keep
    if cut is None or cut[1] <= lo or cut[0] >= hi:
        return text[lo:hi]
    return text[lo:max(lo, cut[0])] + " " + text[min(hi, cut[1]):hi]


def resolve(question: str, as_of: date | datetime) -> TimeIntent:
    """The time window, recency and timeline wishes of a question asked on as_of, and its topic for retrieval."""
    day = as_of.date() if isinstance(as_of, datetime) else as_of
    found = _window(question, day)
    window, cut = (found[0], (found[1], found[2])) if found else (None, None)
    expression = " ".join(question[cut[0]:cut[1]].split()) if cut else ""

    scaffold = next((m for p in _TIMELINE_TOPIC if (m := p.search(question))), None)
    # "In the timeline of X, which team …?" asks for one fact: only a question led by the scaffold asks for a story
    factoid = _FACTOID.search(question) is not None and (scaffold is None or scaffold.re is _TIMELINE_TOPIC[1])
    if factoid:
        scaffold = None
    keep = scaffold.span("t") if scaffold else (0, len(question))
    topic = _without(question, keep, cut)
    since_question = bool(cut) and expression.lower().startswith("since") and \
        bool(re.match(r"\s*(?:what|how)\b", question, re.I))
    timeline = bool(scaffold or since_question or (_TIMELINE.search(question) and not factoid))

    recency = bool(_RECENCY_LEAD.search(topic) or _RECENCY.search(question))
    topic = _RECENCY.sub(" ", _RECENCY_LEAD.sub("", topic))
    topic = _tidy(topic) or _tidy(question) or question.strip() or question
    return TimeIntent(window=window, recency=recency, timeline=timeline, topic=topic, expression=expression,
                      periods=len(_periods(question, day)))
