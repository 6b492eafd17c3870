"""Time-aware answering (#15): questions read against an as-of day, a window preferred in retrieval with a
fall-back, the window shown with the answer, the newest news first, timelines, and the as_of/window JSON fields.

The fixture (tests/fixtures/dam-story.jsonl) tells one story over 2021–2023, an old story found only in 2020, and
an unrelated article of the as-of week. Real Chroma in a temp dir with the hash embedder (``fast_app``)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from bot import discord_render, render
from bot.evaluate import evaluate, intended_cited, load_questions
from bot.timeline import compose_timeline, newest_first
from bot.types import Answer, Citation, Statement
from index import time_intent
from index.types import Article
from tests.fakes import FIXTURES, SENT_AT, ScriptedApp, make_interaction, make_message, passage

STORY = FIXTURES / "dam-story.jsonl"
AS_OF = date(2023, 12, 7)  # a Thursday: "this week" is Mon 4 – Thu 7 Dec 2023


def _ingest(app) -> None:  # type: ignore[no-untyped-def]
    app.index.ingest([a for a in app.index.load([STORY]) if isinstance(a, Article)])


# -- each expression resolves to its window for a fixed as-of day, through the facade answering uses -------
@pytest.mark.parametrize(("question", "start", "end"), [
    ("What happened to the dam this week?", date(2023, 12, 4), AS_OF),
    ("What happened to the dam last week?", date(2023, 11, 27), date(2023, 12, 3)),
    ("What happened to the dam yesterday?", date(2023, 12, 6), date(2023, 12, 6)),
    ("What happened to the dam recently?", date(2023, 11, 24), AS_OF),
    ("What happened to the dam this month?", date(2023, 12, 1), AS_OF),
    ("What happened to the dam on Tuesday?", date(2023, 12, 5), date(2023, 12, 5)),
    ("What happened to the dam in the past 3 days?", date(2023, 12, 5), AS_OF),
])
def test_expressions_resolve_against_the_as_of_day(question: str, start: date, end: date) -> None:
    intent = time_intent(question, datetime(2023, 12, 7, 23, 30, tzinfo=UTC))
    assert intent.window is not None and (intent.window.start, intent.window.end) == (start, end)
    assert intent.topic == "What happened to the dam"


def test_a_question_for_one_fact_is_not_a_timeline() -> None:
    asked = "In the timeline of the dam repair, which contractor rebuilt the spillway?"
    assert not time_intent(asked, AS_OF).timeline
    assert time_intent("Give me a timeline of the dam repair", AS_OF).timeline
    assert time_intent("How did the dam repair unfold?", AS_OF).timeline


# -- retrieval: a window is a strong preference, never a filter --------------------------------------------------
def test_this_week_picks_this_weeks_article_over_an_older_one_with_more_overlap(fast_app) -> None:  # type: ignore[no-untyped-def]
    _ingest(fast_app)
    plain = fast_app.index.search("What was the cost of the Lakeside dam repair?", k=3)
    assert plain[0].published_at.startswith("2021")  # without a window the wordier old article wins

    intent = time_intent("What was the cost of the Lakeside dam repair this week?", AS_OF)
    found = fast_app.index.search_time(intent.topic, 3, window=intent.window)
    assert not found.fell_back
    assert found.passages[0].published_at.startswith("2023-12-05")

    answer = fast_app.answerer.ask("What was the cost of the Lakeside dam repair this week?", as_of=AS_OF)
    assert "11 million" in answer.statements[0].text
    assert {c.date for c in answer.citations} == {"2023-12-05"}
    assert answer.window is not None and not answer.window.fell_back
    assert answer.window.headline == "From articles of 5 Dec 2023:"
    assert render.plain(answer).splitlines()[0] == "From articles of 5 Dec 2023:"


def test_an_empty_window_falls_back_and_says_so(fast_app) -> None:  # type: ignore[no-untyped-def]
    _ingest(fast_app)
    answer = fast_app.answerer.ask("How much is the harbor bridge toll this week?", as_of=AS_OF)
    assert not answer.abstained and answer.citations[0].date == "2020-02-03"
    assert answer.window is not None and answer.window.fell_back
    assert answer.window.headline == \
        "Nothing published this week (4–7 Dec 2023) covers this; older coverage:"
    assert render.plain(answer).splitlines()[0] == answer.window.headline
    assert discord_render.render_answer(answer).startswith(f"_{answer.window.headline}_")
    assert answer.window.headline not in answer.text  # shown by the renderers, not baked into the statements
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(render.rich_renderable(answer))
    assert console.export_text().splitlines()[0] == answer.window.headline


def test_the_same_question_asked_years_later_falls_back(fast_app) -> None:  # type: ignore[no-untyped-def]
    _ingest(fast_app)
    answer = fast_app.answerer.ask("What was the cost of the Lakeside dam repair this week?", as_of=date(2026, 5, 6))
    assert answer.window is not None and answer.window.fell_back and not answer.abstained
    assert answer.as_of == "2026-05-06"


def test_no_time_words_means_no_window_and_the_plain_search(fast_app) -> None:  # type: ignore[no-untyped-def]
    _ingest(fast_app)
    question = "What was the cost of the Lakeside dam repair?"
    answer = fast_app.answerer.ask(question, as_of=AS_OF)
    assert answer.window is None
    plain = fast_app.index.search(question, k=10)
    assert [p.chunk_id for p in answer.passages] == [p.chunk_id for p in plain]
    assert [p.score for p in answer.passages] == [p.score for p in plain]


# -- the latest news leads ---------------------------------------------------------------------------------------
def test_latest_puts_the_newest_report_first_and_says_how_recent(fast_app) -> None:  # type: ignore[no-untyped-def]
    _ingest(fast_app)
    older_first = fast_app.answerer.ask("What was the cost of the Lakeside dam repair?", as_of=AS_OF)
    assert older_first.citations[0].date < "2023"
    answer = fast_app.answerer.ask("What is the latest cost of the Lakeside dam repair?", as_of=AS_OF)
    assert answer.citations[0].date == "2023-12-05" and "11 million" in answer.statements[0].text
    dates = [c.date for c in answer.citations]
    assert dates == sorted(dates, reverse=True)
    assert answer.window is not None and answer.window.headline == "Latest coverage, as of 5 Dec 2023:"
    assert answer.window.label == "in the last 14 days (24 Nov – 7 Dec 2023)" and not answer.window.fell_back
    later = fast_app.answerer.ask("What is the latest cost of the Lakeside dam repair?", as_of=date(2024, 6, 1))
    assert later.window is not None and later.window.fell_back
    assert render.plain(later).startswith("Nothing published in the last 14 days (19 May – 1 Jun 2024) covers this")


def test_newest_first_renumbers_citations_in_the_new_order() -> None:
    old = passage("a:0", "The bill was 9 million dollars.", published_at="2022-08-15T09:00:00+00:00")
    new = passage("b:0", "The bill came to 11 million dollars.", published_at="2023-12-05T09:00:00+00:00")
    answer = Answer("q", (Statement(old.text, (1,)), Statement(new.text, (2,))),
                    (Citation.of(1, old, (old.text,)), Citation.of(2, new, (new.text,))), False)
    flipped = newest_first(answer)
    assert [s.text for s in flipped.statements] == [new.text, old.text]
    assert [s.cites for s in flipped.statements] == [(1,), (2,)]
    assert [(c.n, c.article_id) for c in flipped.citations] == [(1, "b"), (2, "a")]


# -- timelines --------------------------------------------------------------------------------------------------
def test_a_timeline_is_in_date_order_and_cites_different_articles(fast_app) -> None:  # type: ignore[no-untyped-def]
    _ingest(fast_app)
    answer = fast_app.answerer.ask("How did the Lakeside dam repair unfold?", as_of=AS_OF)
    assert answer.timeline and not answer.abstained
    assert 3 <= len(answer.statements) <= fast_app.answerer.config.answer.max_quotes
    days = [c.published_at for c in answer.citations]
    assert days == sorted(days)
    assert len({c.article_id for c in answer.citations}) == len(answer.citations)
    assert [s.cites for s in answer.statements] == [(n,) for n in range(1, len(answer.statements) + 1)]
    assert answer.statements[0].lead == "10 May 2021, Lakeside Courier"
    assert "harbor" not in answer.text.lower() and "orchard" not in answer.text.lower()
    lines = render.plain(answer).splitlines()
    assert lines[0].startswith("10 May 2021, Lakeside Courier: ") and lines[0].endswith("[1]")
    listed = discord_render.render_answer(answer).splitlines()
    assert listed[0].startswith("• **10 May 2021, Lakeside Courier**: ")
    earlier = fast_app.answerer.ask("How did the Lakeside dam repair unfold?", as_of=date(2023, 7, 1))
    assert earlier.timeline and max(c.date for c in earlier.citations) <= "2023-07-01"  # nothing after as-of
    since = fast_app.answerer.ask("What happened with the Lakeside dam repair since 2022?", as_of=AS_OF)
    assert since.timeline and since.window is not None and not since.window.fell_back
    assert [c.date[:4] for c in since.citations] == ["2022", "2023", "2023"]  # the 2021 approval is before the window


def test_a_timeline_is_capped_at_max_quotes_and_needs_two_dated_articles() -> None:
    texts = [f"The dam repair moved on in step {i} of the dam repair." for i in range(8)]
    many = [passage(f"a{i}:0", t, published_at=f"2023-0{i + 1}-01T00:00:00+00:00") for i, t in enumerate(texts)]
    from bot.answer import AnswerConfig

    answer = compose_timeline("How did the dam repair unfold?", "the dam repair", many, {},
                              config=AnswerConfig(max_quotes=3))
    assert answer is not None and len(answer.statements) == 3
    assert [c.published_at for c in answer.citations] == sorted(c.published_at for c in answer.citations)
    undated = [passage("x:0", texts[0], published_at=""), passage("y:0", texts[1], published_at="")]
    assert compose_timeline("How did the dam repair unfold?", "the dam repair", undated, {}) is None


# -- the JSON schema, the CLI and Discord -------------------------------------------------------------------------
def test_json_carries_as_of_and_the_window(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("ingest", str(STORY))[0] == 0
    code, out, err = cli("ask", "How much is the harbor bridge toll this week?", "--json", "--as-of", "2023-12-07")
    assert code == 0, err
    data = json.loads(out)
    assert data["as_of"] == "2023-12-07"
    assert data["window"] == {"label": "this week (4–7 Dec 2023)", "start": "2023-12-04", "end": "2023-12-07",
                              "fell_back": True, "quoted": "3 Feb 2020", "recency": False}
    code, out, _ = cli("ask", "How much is the harbor bridge toll?", "--json", "--as-of", "2023-12-07")
    assert json.loads(out)["window"] is None
    code, _, err = cli("ask", "toll?", "--as-of", "next blursday")
    assert code == 1 and "--as-of" in err


def test_eval_reads_each_questions_as_of_and_counts_the_intended_article(fast_app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _ingest(fast_app)
    quiz = tmp_path / "quiz.jsonl"
    evidence = {"url": "https://valley.example/dam-2023-12", "title": "Reservoir reopens as crews finish",
                "fact": "The final cost of the Lakeside dam repair came to 11 million dollars, officials said."}
    quiz.write_text(json.dumps({"query": "What was the cost of the Lakeside dam repair this week?",
                                "as_of": "2023-12-07", "answer": "11 million", "question_type": "quiz",
                                "evidence_list": [evidence]}) + "\n", encoding="utf-8")
    (q,) = load_questions(quiz)
    assert q.as_of == "2023-12-07" and q.evidence == ((evidence["url"], evidence["title"]),)
    asked: list[date | None] = []

    def ask(question):  # type: ignore[no-untyped-def]
        day = date.fromisoformat(question.as_of) if question.as_of else None
        asked.append(day)
        return fast_app.answerer.ask(question.query, as_of=day)

    result = evaluate([q], ask, whole=True)
    assert asked == [AS_OF]
    assert result["intended_cited_rate"] == 1.0 and result["answer_hit_rate"] == 1.0
    answer = fast_app.answerer.ask(q.query, as_of=AS_OF)
    assert intended_cited(answer, (("https://valley.example/toll-2020", "Harbor bridge toll rises"),)) is False
    assert intended_cited(answer, (("", "reservoir  reopens as crews FINISH"),)) is True  # titles match loosely
    assert intended_cited(fast_app.answerer.ask("q about the dam"), ()) is None


async def test_discord_asks_as_of_the_message_and_interaction_time(tmp_path: Path) -> None:
    import discord

    from tests.fakes import ME, make_bot, make_channel, me_user, slash

    events: list = []
    app = ScriptedApp(events)
    bot = make_bot(app, tmp_path, cooldown_seconds=0)
    await slash(bot, "ask", make_interaction(events), "What happened this week?")
    me = me_user()
    bot.client._connection.user = me
    channel = make_channel(events, discord.TextChannel, 20)
    message = make_message(events, f"<@{ME}> what happened this week?", channel=channel, mentions=[me])
    message.created_at = datetime(2024, 3, 9, 8, 0, tzinfo=UTC)
    message.create_thread.return_value = make_channel(events, discord.Thread, 30, owner_id=ME, parent_id=20)
    await bot.on_message(message)
    assert app.as_of == [SENT_AT, datetime(2024, 3, 9, 8, 0, tzinfo=UTC)]


def test_timeline_events_are_sentences_spread_over_days() -> None:
    day = "2023-10-04T00:00:00+00:00"
    ps = [passage("q:0", "Who is the dam repair contractor behind the dam repair delays this year?", published_at=day),
          passage("t:0", "“The dam repair,” he said.", published_at="2023-10-05T00:00:00+00:00"),
          passage("a:0", "The dam repair crews worked through the night on the dam repair site.", published_at=day),
          passage("b:0", "The dam repair was paid for by a bond that voters approved for the dam repair.",
                  published_at=day, score=0.9),
          passage("c:0", "Engineers said the dam repair would finish soon after the dam repair inspection.",
                  published_at="2023-11-20T00:00:00+00:00", score=0.5)]
    from bot.answer import AnswerConfig

    answer = compose_timeline("How did the dam repair unfold?", "the dam repair", ps, {},
                              config=AnswerConfig(max_quotes=2))
    assert answer is not None
    assert [c.article_id for c in answer.citations] == ["a", "c"]  # no question, no quote tag, two days


def test_a_question_about_nothing_but_the_time_gets_the_windows_headlines(fast_app) -> None:  # type: ignore[no-untyped-def]
    """"What happened this week?" names no subject: the answer is the lede of each article of the window."""
    _ingest(fast_app)
    answer = fast_app.answerer.ask("What happened this week?", as_of=AS_OF)
    assert not answer.abstained and answer.statements
    assert [c.date for c in answer.citations] == ["2023-12-06", "2023-12-05"]  # this week's two, newest first
    assert answer.statements[0].lead.startswith("6 Dec 2023")
    assert answer.window is not None and not answer.window.fell_back
    earlier = fast_app.answerer.ask("What happened this week?", as_of=date(2023, 11, 16))  # a week with no article
    assert earlier.abstained or earlier.window is not None and earlier.window.fell_back
