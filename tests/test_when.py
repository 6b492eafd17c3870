"""Relative time in questions, resolved against a fixed "as of" date (index/when.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from index.when import RECENT_DAYS, TimeIntent, TimeWindow, resolve

WED = date(2023, 12, 6)  # a Wednesday; its ISO week runs Mon 4 … Sun 10 Dec 2023
D = date


def window(question: str, as_of: date | datetime = WED) -> tuple[date, date] | None:
    w = resolve(question, as_of).window
    return (w.start, w.end) if w else None


@pytest.mark.parametrize(("question", "as_of", "expected"), [
    # days
    ("who won the match today?", WED, (D(2023, 12, 6), D(2023, 12, 6))),
    ("what did the minister say this morning?", WED, (D(2023, 12, 6), D(2023, 12, 6))),
    ("who won yesterday?", WED, (D(2023, 12, 5), D(2023, 12, 5))),
    ("who won yesterday?", D(2024, 3, 1), (D(2024, 2, 29), D(2024, 2, 29))),  # leap day
    ("who won yesterday?", D(2023, 3, 1), (D(2023, 2, 28), D(2023, 2, 28))),
    ("who won yesterday?", D(2024, 1, 1), (D(2023, 12, 31), D(2023, 12, 31))),  # year boundary
    ("what happened the day before yesterday?", WED, (D(2023, 12, 4), D(2023, 12, 4))),
    ("what happened last night?", WED, (D(2023, 12, 5), D(2023, 12, 5))),
    # ISO weeks, Monday start
    ("what did the senators agree this week?", WED, (D(2023, 12, 4), D(2023, 12, 6))),
    ("what did the senators agree this week?", D(2023, 12, 4), (D(2023, 12, 4), D(2023, 12, 4))),  # a Monday
    ("what did the senators agree this week?", D(2023, 12, 10), (D(2023, 12, 4), D(2023, 12, 10))),  # a Sunday
    ("what did the senators agree earlier this week?", WED, (D(2023, 12, 4), D(2023, 12, 6))),
    ("what did the senators agree last week?", WED, (D(2023, 11, 27), D(2023, 12, 3))),  # across a month
    ("what did the senators agree last week?", D(2023, 12, 4), (D(2023, 11, 27), D(2023, 12, 3))),
    ("what did the senators agree last week?", D(2024, 1, 3), (D(2023, 12, 25), D(2023, 12, 31))),  # across a year
    ("what did the senators agree this week?", D(2024, 1, 1), (D(2024, 1, 1), D(2024, 1, 1))),
    ("what did the senators agree the previous week?", WED, (D(2023, 11, 30), D(2023, 12, 6))),  # "the": rolling
    ("what did the senators agree previous week?", WED, (D(2023, 11, 27), D(2023, 12, 3))),
    ("what happened last weekend?", WED, (D(2023, 12, 2), D(2023, 12, 3))),
    ("what happened last weekend?", D(2023, 12, 10), (D(2023, 12, 2), D(2023, 12, 3))),  # a Sunday: not itself
    # months and years
    ("what happened this month?", WED, (D(2023, 12, 1), D(2023, 12, 6))),
    ("what happened last month?", WED, (D(2023, 11, 1), D(2023, 11, 30))),
    ("what happened last month?", D(2024, 3, 31), (D(2024, 2, 1), D(2024, 2, 29))),  # leap February
    ("what happened last month?", D(2023, 3, 31), (D(2023, 2, 1), D(2023, 2, 28))),
    ("what happened last month?", D(2024, 1, 15), (D(2023, 12, 1), D(2023, 12, 31))),
    ("what happened this year?", WED, (D(2023, 1, 1), D(2023, 12, 6))),
    ("what happened so far this year?", WED, (D(2023, 1, 1), D(2023, 12, 6))),
    ("what happened last year?", WED, (D(2022, 1, 1), D(2022, 12, 31))),
    ("what happened last year?", D(2024, 1, 1), (D(2023, 1, 1), D(2023, 12, 31))),
    # weekdays: "on"/"this" = on or before as_of; "last" = strictly before
    ("what did Biden say on Monday?", WED, (D(2023, 12, 4), D(2023, 12, 4))),
    ("what did Biden say on Wednesday?", WED, (D(2023, 12, 6), D(2023, 12, 6))),
    ("what did Biden say on Thursday?", WED, (D(2023, 11, 30), D(2023, 11, 30))),
    ("what did Biden say this Tuesday?", WED, (D(2023, 12, 5), D(2023, 12, 5))),
    ("what did Biden say last Wednesday?", WED, (D(2023, 11, 29), D(2023, 11, 29))),
    ("what did Biden say last Monday?", WED, (D(2023, 12, 4), D(2023, 12, 4))),
    ("what did Biden say last Monday?", D(2023, 12, 4), (D(2023, 11, 27), D(2023, 11, 27))),
    ("what did Biden say on Sunday?", D(2024, 1, 1), (D(2023, 12, 31), D(2023, 12, 31))),
    ("what did Biden say on Friday?", D(2024, 3, 1), (D(2024, 3, 1), D(2024, 3, 1))),
    ("what did Biden say on Thursday?", D(2024, 3, 1), (D(2024, 2, 29), D(2024, 2, 29))),
    ("who won on Thursday night?", WED, (D(2023, 11, 30), D(2023, 11, 30))),
    # rolling windows ending on as_of
    ("what happened in the past 3 days?", WED, (D(2023, 12, 4), D(2023, 12, 6))),
    ("what happened in the last 10 days?", WED, (D(2023, 11, 27), D(2023, 12, 6))),
    ("what happened in the past day?", WED, (D(2023, 12, 6), D(2023, 12, 6))),
    ("what happened in the past week?", WED, (D(2023, 11, 30), D(2023, 12, 6))),
    ("what happened past week?", WED, (D(2023, 11, 30), D(2023, 12, 6))),
    ("what happened over the last two weeks?", WED, (D(2023, 11, 23), D(2023, 12, 6))),
    ("what happened over the past few days?", WED, (D(2023, 12, 4), D(2023, 12, 6))),
    ("what happened over the past couple of weeks?", WED, (D(2023, 11, 23), D(2023, 12, 6))),
    ("what happened during the past month?", WED, (D(2023, 11, 7), D(2023, 12, 6))),
    ("what happened during the past month?", D(2024, 3, 31), (D(2024, 3, 1), D(2024, 3, 31))),  # clamps 31 Feb
    ("what happened during the past month?", D(2023, 3, 30), (D(2023, 3, 1), D(2023, 3, 30))),
    ("what happened in the last six months?", WED, (D(2023, 6, 7), D(2023, 12, 6))),
    ("what happened in the last twelve months?", WED, (D(2022, 12, 7), D(2023, 12, 6))),
    ("what happened in the past year?", D(2024, 2, 29), (D(2023, 3, 1), D(2024, 2, 29))),
    ("what happened over the past 2 years?", WED, (D(2021, 12, 7), D(2023, 12, 6))),
    ("what happened in the last 3 weeks?", WED, (D(2023, 11, 16), D(2023, 12, 6))),
    ("what happened last 3 days?", WED, (D(2023, 12, 4), D(2023, 12, 6))),
    # ago
    ("what happened two days ago?", WED, (D(2023, 12, 4), D(2023, 12, 4))),
    ("what happened a week ago?", WED, (D(2023, 11, 27), D(2023, 12, 3))),
    ("what happened two months ago?", WED, (D(2023, 10, 1), D(2023, 10, 31))),
    # recently
    ("what happened recently with the strike?", WED, (WED - timedelta(days=RECENT_DAYS - 1), WED)),
    ("what has the union done lately?", WED, (D(2023, 11, 23), D(2023, 12, 6))),
    ("what has the union done in recent days?", WED, (D(2023, 11, 23), D(2023, 12, 6))),
    ("what has the union done in recent weeks?", WED, (D(2023, 11, 9), D(2023, 12, 6))),
    ("what has the union done in recent months?", WED, (D(2023, 9, 7), D(2023, 12, 6))),
    # since / after / before / until
    ("what happened with the strike since March?", WED, (D(2023, 3, 1), D(2023, 12, 6))),
    ("what happened with the strike since December?", WED, (D(2023, 12, 1), D(2023, 12, 6))),
    ("what happened with the strike since December?", D(2023, 11, 15), (D(2022, 12, 1), D(2023, 11, 15))),
    ("what happened with the strike since March 2022?", WED, (D(2022, 3, 1), D(2023, 12, 6))),
    ("what happened with the strike since 3 March?", WED, (D(2023, 3, 3), D(2023, 12, 6))),
    ("what happened with the strike since March 3rd?", WED, (D(2023, 3, 3), D(2023, 12, 6))),
    ("what happened with the strike since 12 December?", WED, (D(2022, 12, 12), D(2023, 12, 6))),
    ("what happened since 2023-10-07?", WED, (D(2023, 10, 7), D(2023, 12, 6))),
    ("what happened since October 7, 2023?", WED, (D(2023, 10, 7), D(2023, 12, 6))),
    ("what happened since 2021?", WED, (D(2021, 1, 1), D(2023, 12, 6))),
    ("what happened since Monday?", WED, (D(2023, 12, 4), D(2023, 12, 6))),
    ("what happened since last week?", WED, (D(2023, 11, 27), D(2023, 12, 6))),
    ("what happened after October?", WED, (D(2023, 11, 1), D(2023, 12, 6))),
    ("what happened after 10 December 2023?", WED, (D(2023, 12, 11), date.max)),  # beyond as_of: open
    ("what happened before November?", WED, (date.min, D(2023, 10, 31))),
    ("what happened before 1 March 2024?", WED, (date.min, D(2024, 2, 29))),
    ("what happened until last week?", WED, (date.min, D(2023, 12, 3))),
    # named months and years
    ("who won in May?", WED, (D(2023, 5, 1), D(2023, 5, 31))),
    ("who won in December?", WED, (D(2023, 12, 1), D(2023, 12, 6))),  # the current month ends on as_of
    ("who won in December?", D(2023, 11, 15), (D(2022, 12, 1), D(2022, 12, 31))),
    ("who won in January?", D(2024, 1, 31), (D(2024, 1, 1), D(2024, 1, 31))),
    ("who won in Sept?", WED, (D(2023, 9, 1), D(2023, 9, 30))),
    ("who won in May 2022?", WED, (D(2022, 5, 1), D(2022, 5, 31))),
    ("who won in February 2024?", WED, (D(2024, 2, 1), D(2024, 2, 29))),
    ("who won in 2022?", WED, (D(2022, 1, 1), D(2022, 12, 31))),
    ("who won in 2023?", WED, (D(2023, 1, 1), D(2023, 12, 6))),
    ("who won during 2020?", WED, (D(2020, 1, 1), D(2020, 12, 31))),
    ("what were the biggest stories of 2019?", WED, (D(2019, 1, 1), D(2019, 12, 31))),
    # calendar dates: one day
    ("what happened on 7 October 2023?", WED, (D(2023, 10, 7), D(2023, 10, 7))),
    ("what happened on October 7, 2023?", WED, (D(2023, 10, 7), D(2023, 10, 7))),
    ("what happened on 2023-10-07?", WED, (D(2023, 10, 7), D(2023, 10, 7))),
    ("what happened on the 3rd of March 2023?", WED, (D(2023, 3, 3), D(2023, 3, 3))),
    ("what happened on 29 February 2024?", WED, (D(2024, 2, 29), D(2024, 2, 29))),
    ("what happened on 29 February?", WED, (D(2020, 2, 29), D(2020, 2, 29))),  # the latest leap day
    ("what happened on 5 December?", WED, (D(2023, 12, 5), D(2023, 12, 5))),
    ("what happened on 7 December?", WED, (D(2022, 12, 7), D(2022, 12, 7))),  # not after as_of
    ("what happened October 7?", WED, (D(2023, 10, 7), D(2023, 10, 7))),
    ("what happened on 3 May?", WED, (D(2023, 5, 3), D(2023, 5, 3))),
    ("what happened since May 3?", WED, (D(2023, 5, 3), WED)),
    ("what happened on the 12th of March?", WED, (D(2023, 3, 12), D(2023, 3, 12))),
])
def test_window(question: str, as_of: date, expected: tuple[date, date]) -> None:
    assert window(question, as_of) == expected


@pytest.mark.parametrize("question", [
    "Ozempic may be linked to stomach problems, says which study?",
    "Which senators may vote against the bill?",
    "may the strike end soon?",
    "Will farmers march on parliament?",
    "who led the march through London?",
    "Is the sun good for skin?",
    "Did the couple wed in secret?",
    "Who stars in the Wednesday series on Netflix?",
    "How many of the 12 may leave the party?",
    "Will the 2 march together?",
    "Who owns Mar-a-Lago?",
    "Who won Super Tuesday?",
    "Who scored on Thursday Night Football?",
    "what are the best bets for Sunday Night Football?",
    "What did Theresa May say about Brexit?",
    "How did a crowd of 2000 people react?",
    "What did the senators agree about the budget?",
    "what happened on 31 February 2023?",  # no such day
    "",
])
def test_no_time_in_the_question(question: str) -> None:
    intent = resolve(question, WED)
    assert intent.window is None
    assert intent.expression == ""


def test_may_is_a_month_only_with_time_context() -> None:
    intent = resolve("which talks may collapse this week?", WED)
    assert intent.expression == "this week"
    assert resolve("What did Theresa May say in May?", WED).expression == "in May"
    assert window("What did Theresa May say in May?") == (D(2023, 5, 1), D(2023, 5, 31))
    assert window("since May") == (D(2023, 5, 1), WED)
    assert window("the May 2023 budget") == (D(2023, 5, 1), D(2023, 5, 31))


def test_a_datetime_as_of_counts_by_its_date() -> None:
    as_of = datetime(2024, 3, 1, 23, 30, tzinfo=UTC)
    assert resolve("yesterday", as_of) == resolve("yesterday", D(2024, 3, 1))
    assert window("yesterday", as_of) == (D(2024, 2, 29), D(2024, 2, 29))


def test_the_first_expression_sets_the_window() -> None:
    intent = resolve("what did they agree last week, and what happened yesterday?", WED)
    assert intent.expression == "last week"
    assert "yesterday" in intent.topic


@pytest.mark.parametrize(("question", "as_of", "label"), [
    ("what did the senators agree this week?", WED, "this week (4–6 Dec 2023)"),
    ("what did the senators agree this week?", D(2023, 12, 10), "this week (4–10 Dec 2023)"),
    ("what happened last week?", WED, "last week (27 Nov – 3 Dec 2023)"),
    ("what happened in the past month?", D(2024, 1, 3), "in the past month (4 Dec 2023 – 3 Jan 2024)"),
    ("who won yesterday?", D(2024, 3, 1), "yesterday (29 Feb 2024)"),
    ("what happened before November?", WED, "before november (until 31 Oct 2023)"),
    ("what happened after 10 December 2023?", WED, "after 10 december 2023 (from 11 Dec 2023)"),
])
def test_label_names_the_expression_and_its_days(question: str, as_of: date, label: str) -> None:
    intent = resolve(question, as_of)
    assert intent.window is not None
    assert intent.window.label == label


@pytest.mark.parametrize(("question", "expression"), [
    ("what did the senators agree this week?", "this week"),
    ("what happened in the past 3 days?", "in the past 3 days"),
    ("what happened with the strike since March?", "since March"),
    ("what did Biden say on Monday?", "on Monday"),
    ("what happened on the 3rd of March 2023?", "on the 3rd of March 2023"),
    ("what did last month's jobs report show?", "last month's"),
])
def test_expression_is_the_words_as_written(question: str, expression: str) -> None:
    assert resolve(question, WED).expression == expression


@pytest.mark.parametrize(("question", "topic"), [
    ("what did the senators agree this week?", "what did the senators agree"),
    ("how did the OpenAI saga unfold?", "the OpenAI saga"),
    ("How has the Manchester United crisis evolved since October?", "the Manchester United crisis"),
    ("what happened with the strike since March?", "the strike"),
    ("what's the latest on the merger?", "the merger"),
    ("What is the latest news about the Gaza ceasefire?", "the Gaza ceasefire"),
    ("timeline of the Taylor Swift and Travis Kelce romance", "the Taylor Swift and Travis Kelce romance"),
    ("Give me a chronology of the Sam Altman firing this month", "the Sam Altman firing"),
    ("what happened recently with the strike?", "what happened with the strike"),
    ("who is currently the CEO of OpenAI?", "who is the CEO of OpenAI"),
    ("Is Sam Altman still CEO as of now?", "Is Sam Altman CEO"),
    ("In the past month, what did OpenAI announce?", "what did OpenAI announce"),
    ("what did last month's jobs report show?", "what did jobs report show"),
    ("Which team won the Rugby World Cup final?", "Which team won the Rugby World Cup final"),
])
def test_topic_drops_time_and_scaffolding(question: str, topic: str) -> None:
    assert resolve(question, WED).topic == topic


@pytest.mark.parametrize("question", ["latest?", "today?", "what's new now?", "  yesterday  ", "timeline of"])
def test_topic_is_never_empty(question: str) -> None:
    assert resolve(question, WED).topic.strip()


@pytest.mark.parametrize(("question", "recency"), [
    ("what's the latest on the merger?", True),
    ("who is currently the CEO of OpenAI?", True),
    ("Is Sam Altman still in charge?", True),
    ("what is the price of bitcoin now?", True),
    ("who leads the polls as of now?", True),
    ("what is the newest iPhone?", True),
    ("what is the most recent inflation figure?", True),
    ("what did the senators agree this week?", False),
    ("what happened recently with the strike?", False),  # a window, not a wish for the newest
    ("what is the now-defunct startup called?", False),
    ("Who won the Rugby World Cup final?", False),
])
def test_recency(question: str, recency: bool) -> None:
    assert resolve(question, WED).recency is recency


@pytest.mark.parametrize(("question", "timeline"), [
    ("how did the OpenAI saga unfold?", True),
    ("give me a timeline of the writers' strike", True),
    ("what happened with the strike since March?", True),
    ("what has happened to Twitter since October?", True),
    ("how has the Manchester United crisis evolved?", True),
    ("how have the talks developed this week?", True),
    ("the chronology of the Israel-Hamas war", True),
    ("how did the events play out?", True),
    ("what did the senators agree this week?", False),
    ("what's the latest on the merger?", False),
    ("how did the Chiefs win on Sunday?", False),
])
def test_timeline(question: str, timeline: bool) -> None:
    assert resolve(question, WED).timeline is timeline


def test_values_are_frozen() -> None:
    intent = resolve("what happened this week?", WED)
    assert isinstance(intent, TimeIntent) and isinstance(intent.window, TimeWindow)
    with pytest.raises(AttributeError):
        intent.recency = True  # type: ignore[misc]
    with pytest.raises(AttributeError):
        intent.window.start = WED  # type: ignore[misc]
    assert intent.window.contains(D(2023, 12, 4)) and not intent.window.contains(D(2023, 12, 3))


def test_same_question_same_answer() -> None:
    question = "what did the senators agree this week?"
    assert resolve(question, WED) == resolve(question, WED)


RELATIVE = ["today", "yesterday", "this week", "last week", "in the past week", "this month", "last month",
            "this year", "last year", "on Monday", "on Sunday", "last Friday", "in the past 3 days",
            "over the past month", "in the last 6 months", "in the past year", "recently", "in recent weeks",
            "since March", "in February", "since 29 February", "after last month", "two weeks ago"]


@given(as_of=st.dates(min_value=D(1990, 1, 1), max_value=D(2090, 12, 31)), expression=st.sampled_from(RELATIVE))
def test_relative_windows_are_never_empty_and_never_pass_as_of(as_of: date, expression: str) -> None:
    w = resolve(f"what happened {expression}?", as_of).window
    assert w is not None
    assert w.start <= w.end <= as_of
    assert (w.end - w.start).days <= 366 * 31


_WORDS = st.sampled_from(["in", "on", "since", "the", "past", "last", "this", "week", "May", "may", "March", "3",
                          "31", "2023", "Monday", "latest", "how", "did", "unfold", "timeline", "of", "ago", "few",
                          "0", "days", "?", "'s", "yesterday", "before", "after", "until", "February", "29"])


@given(words=st.lists(_WORDS, max_size=12), as_of=st.dates(min_value=D(1950, 1, 1), max_value=D(2090, 12, 31)))
def test_any_mix_of_time_words_resolves_to_a_sane_intent(words: list[str], as_of: date) -> None:
    question = " ".join(words)
    intent = resolve(question, as_of)
    if question.strip():
        assert intent.topic.strip()
    if intent.window is not None:
        assert intent.window.start <= intent.window.end
        assert intent.expression and intent.expression in " ".join(question.split())


@given(question=st.text(max_size=80))
def test_arbitrary_text_never_raises(question: str) -> None:
    resolve(question, WED)
