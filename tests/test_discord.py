"""The Discord shell, offline: slash-command callbacks, messages and buttons driven with spec'd discord.py objects."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock, MagicMock

import discord
import pytest
from discord import app_commands

from bot import discord_render as render
from bot.answering import Answerer
from bot.conversation import Turn
from bot.conversation_store import ConversationStore
from bot.discord_bot import AnswerView, DiscordConfig, NewsBot, StopView
from bot.discord_policy import Gate
from bot.llm import LLMError
from index.errors import NewsbotError
from tests.fakes import (
    FIXTURES,
    ME,
    FakeSearch,
    ScriptedApp,
    ScriptedChat,
    assert_never_pings,
    loop_ticks,
    make_answer,
    make_bot,
    make_channel,
    make_interaction,
    make_message,
    me_user,
    passage,
    sends,
    slash,
    text_of,
)


# -- /ask ------------------------------------------------------------------------------------------------------
def test_conversations_keep_the_last_turns_of_the_most_recent_threads(tmp_path: Path) -> None:
    now = [1000.0]
    memory = ConversationStore(tmp_path / "c.sqlite3", most=2, turns=2, max_age_days=30, clock=lambda: now[0])
    for key in (2, 1):
        for i in range(3):
            now[0] += 1
            memory.add(key, Turn(f"q{key}.{i}", f"q{key}.{i}"), [f"a{i}"])
    assert [t.question for t in memory.history(1)] == ["q1.1", "q1.2"]  # only the last two turns
    assert memory.sources(1) == [("a1",), ("a2",)]
    now[0] += 1
    memory.start(3)  # thread 2 is now the least recently used: dropped
    assert 2 not in memory and 1 in memory and 3 in memory and memory.history(2) == []
    now[0] += 30 * 86400  # a month later thread 1 has expired; thread 3 was just touched
    memory.start(3)
    assert 1 not in memory and memory.history(1) == [] and len(memory) == 1


def test_conversations_survive_a_new_store_and_a_second_writer(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    first, second = ConversationStore(path), ConversationStore(path)  # two bot processes, one file
    first.add(7, Turn("q1", "s1"), ["a1"])
    second.add(7, Turn("q2", "s2"), ["a2", "a3"])
    assert first.history(7) == [Turn("q1", "s1"), Turn("q2", "s2")]
    first.close()
    second.close()
    again = ConversationStore(path)
    assert again.history(7) == [Turn("q1", "s1"), Turn("q2", "s2")] and again.sources(7) == [("a1",), ("a2", "a3")]
    assert again._read("PRAGMA journal_mode")[0][0] == "wal"


async def test_ask_defers_first_then_answers_by_followup(tmp_path: Path) -> None:
    events: list[Any] = []
    bot = make_bot(ScriptedApp(events), tmp_path)
    it = make_interaction(events)
    await slash(bot, "ask", it, "What did the council decide?")
    assert events[0] == ("defer", (), {"thinking": True})
    assert events[1] == ("ask", "What did the council decide?")
    (name, args, kwargs), = [e for e in events[2:]]
    assert name == "followup"
    assert args[0].startswith("The council voted 7-2 @\u200beveryone. [1]\n\n**Sources**\n[1] [Council approves")
    assert isinstance(kwargs["view"], AnswerView) and kwargs["suppress_embeds"] is True
    assert_never_pings(events)
    assert bot.client.allowed_mentions is not None and bot.client.allowed_mentions.everyone is False


async def test_options_become_filters_and_source_autocompletes(tmp_path: Path) -> None:
    events: list[Any] = []
    app = ScriptedApp(events, outlets=[f"Outlet {i:02d}" for i in range(40)] + ["Market Wire"])
    bot = make_bot(app, tmp_path)
    choices = await bot.source_autocomplete(make_interaction(events), "")
    assert len(choices) == render.CHOICE_LIMIT and all(isinstance(c, app_commands.Choice) for c in choices)
    assert [c.value for c in await bot.source_autocomplete(make_interaction(events), "market")] == ["Market Wire"]
    await slash(bot, "ask", make_interaction(events), "revenue?", source="market wire", since="2024-04-01",
                until="2024-04-30")
    _, _, filters = app.calls[-1]
    assert filters.sources == ("Market Wire",)
    assert filters.since == 1711929600 and filters.until == 1714521599


async def test_unknown_outlet_and_bad_date_are_explained(tmp_path: Path) -> None:
    events: list[Any] = []
    app = ScriptedApp(events)
    bot = make_bot(app, tmp_path)
    it = make_interaction(events)
    await slash(bot, "ask", it, "q", since="next blursday")
    assert [e[0] for e in events] == ["send_message"]  # answered privately, before any defer
    assert "since" in text_of(events[0]) and "not a date" in text_of(events[0]) and events[0][2]["ephemeral"]
    events.clear()
    await slash(bot, "ask", make_interaction(events), "q", source="Daily Nonsense")  # no cooldown was spent
    assert [e[0] for e in events] == ["defer", "followup"]
    assert "I don't know an outlet called" in text_of(events[1]) and not app.calls
    assert_never_pings(events)


async def test_cooldown_is_per_user_with_a_private_notice(tmp_path: Path) -> None:
    events: list[Any] = []
    clock = [1000.0]
    app = ScriptedApp(events)
    bot = make_bot(app, tmp_path, clock, cooldown_seconds=5.0)
    await slash(bot, "ask", make_interaction(events, user_id=1), "first?")
    clock[0] += 2
    events.clear()
    await slash(bot, "ask", make_interaction(events, user_id=1), "second?")
    assert [e[0] for e in events] == ["send_message"]
    assert events[0][2]["ephemeral"] is True and "again in 3 s" in text_of(events[0])
    await slash(bot, "ask", make_interaction(events, user_id=2), "other user?")
    clock[0] += 3.5
    await slash(bot, "ask", make_interaction(events, user_id=1), "third?")
    assert [q for q, _, _ in app.calls] == ["first?", "other user?", "third?"]
    assert_never_pings(events)


async def test_queue_tells_position_and_turns_away_when_full(tmp_path: Path) -> None:
    release = threading.Event()
    app = ScriptedApp([], gate=release)
    bot = make_bot(app, tmp_path, cooldown_seconds=0, max_in_flight=1, max_queue=1)
    evs: tuple[list[Any], ...] = ([], [], [])
    its = [make_interaction(ev, user_id=i) for i, ev in enumerate(evs)]
    first = asyncio.create_task(slash(bot, "ask", its[0], "one?"))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(slash(bot, "ask", its[1], "two?"))
    await asyncio.sleep(0.05)
    await slash(bot, "ask", its[2], "three?")  # the line is full: turned away at once
    third_events = its[2].response.send_message.await_args
    assert third_events.kwargs["ephemeral"] is True and third_events.args[0] == render.BUSY_TEXT
    its[2].response.defer.assert_not_awaited()
    its[1].edit_original_response.assert_awaited_once()
    assert its[1].edit_original_response.await_args.kwargs["content"] == "You're 1st in line; your answer is coming."
    assert bot.gate.active == 1 and bot.gate.waiting == 1
    release.set()
    await asyncio.wait_for(asyncio.gather(first, second), 10)
    # the queued one's notice is replaced by its answer
    assert "[1]" in its[1].edit_original_response.await_args.kwargs["content"]
    assert [q for q, _, _ in app.calls] == ["one?", "two?"]
    assert bot.gate.active == 0 and bot.gate.waiting == 0
    for ev in evs:
        assert_never_pings(ev)


async def test_gate_is_first_come_first_served_and_survives_cancellation() -> None:
    gate = Gate(1, 5)
    a, b, c = gate.join(), gate.join(), gate.join()
    assert a is not None and b is not None and c is not None
    assert (a.position, b.position, c.position) == (0, 1, 2)
    gate.leave(b)  # b gave up while waiting
    gate.leave(a)
    await asyncio.wait_for(gate.ready(c), 1)
    assert gate.active == 1 and gate.waiting == 0
    gate.leave(c)
    assert gate.active == 0


async def test_error_answers_with_an_apology_and_logs_the_traceback(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    events: list[Any] = []
    bot = make_bot(ScriptedApp(events, error=RuntimeError("chroma exploded at /secret/path")), tmp_path)
    with caplog.at_level(logging.ERROR):
        await slash(bot, "ask", make_interaction(events), "q?")
    assert [e[0] for e in events] == ["defer", "ask", "followup"]
    assert text_of(events[-1]) == render.APOLOGY_TEXT
    assert any(r.exc_info and "chroma exploded" in str(r.exc_info[1]) for r in caplog.records)
    assert_never_pings(events)


async def test_user_safe_errors_are_shown(tmp_path: Path) -> None:
    events: list[Any] = []
    bot = make_bot(ScriptedApp(events, error=NewsbotError("the question is 3,000 characters; the limit is 2,000")),
                   tmp_path)
    await slash(bot, "ask", make_interaction(events), "q?")
    assert text_of(events[-1]) == "the question is 3,000 characters; the limit is 2,000"


async def test_even_a_failing_defer_gets_a_reply(tmp_path: Path) -> None:
    events: list[Any] = []
    bot = make_bot(ScriptedApp(events), tmp_path)
    it = make_interaction(events)
    it.response.defer.side_effect = RuntimeError("network hiccup")
    await slash(bot, "ask", it, "q?")
    assert text_of(sends(events)[-1]) == render.APOLOGY_TEXT
    assert bot.gate.active == 0


async def test_a_slow_answer_does_not_block_the_event_loop(tmp_path: Path) -> None:
    events: list[Any] = []
    bot = make_bot(ScriptedApp(events, delay=0.6), tmp_path)
    async with loop_ticks() as ticks:
        await slash(bot, "ask", make_interaction(events), "slow?")
    gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
    assert len(ticks) > 25 and max(gaps) < 0.25
    assert events[-1][0] == "followup"


async def test_allow_lists_and_dms(tmp_path: Path) -> None:
    events: list[Any] = []
    app = ScriptedApp(events)
    bot = make_bot(app, tmp_path, allowed_guild_ids=frozenset({10}), allowed_channel_ids=frozenset({20}),
                   allow_dms=False, cooldown_seconds=0)
    await slash(bot, "ask", make_interaction(events, guild_id=11), "q?")
    await slash(bot, "ask", make_interaction(events, channel_id=21), "q?")
    await slash(bot, "ask", make_interaction(events, guild_id=None), "q?")
    assert [text_of(e) for e in events] == [render.NOT_HERE_TEXT, render.NOT_HERE_TEXT, render.DMS_OFF_TEXT]
    assert all(e[2]["ephemeral"] for e in events) and not app.calls
    thread = MagicMock(spec=discord.Thread)
    thread.parent_id = 20
    await slash(bot, "ask", make_interaction(events, channel_id=99, channel=thread), "in a thread of #20?")
    assert [q for q, _, _ in app.calls] == ["in a thread of #20?"]


async def test_sources_and_info_reply_privately(tmp_path: Path) -> None:
    events: list[Any] = []
    bot = make_bot(ScriptedApp(events), tmp_path)
    for name in ("sources", "newsbot-info"):
        events.clear()
        await slash(bot, name, make_interaction(events))
        assert events[0] == ("defer", (), {"ephemeral": True, "thinking": True})
        assert "6 articles (9 passages) from 2 outlets" in text_of(events[1])
        assert "Published 2024-03-04 … 2024-07-22." in text_of(events[1])
        assert_never_pings(events)


async def test_tree_errors_are_answered(tmp_path: Path) -> None:
    events: list[Any] = []
    bot = make_bot(ScriptedApp(events), tmp_path)
    await bot.tree.on_error(make_interaction(events), app_commands.AppCommandError("bad option"))
    assert text_of(events[-1]) == render.APOLOGY_TEXT


async def test_setup_syncs_commands_to_the_dev_server_and_warms_up_off_the_loop(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    warmed: list[int] = []
    bot = NewsBot(ScriptedApp(), ScriptedApp(), DiscordConfig(guild_id=123, feedback_path=None),
                  warm_up=lambda: warmed.append(threading.get_ident()))
    sync = AsyncMock(return_value=[])
    monkeypatch.setattr(bot.tree, "sync", sync)
    await bot.client.setup_hook()
    assert sync.await_args.kwargs["guild"].id == 123
    assert bot.tree.get_command("ask", guild=discord.Object(id=123)) is not None
    assert warmed and warmed[0] != threading.get_ident()


# -- buttons ---------------------------------------------------------------------------------------------------
async def test_buttons_show_passages_and_record_votes_with_retraction(tmp_path: Path) -> None:
    events: list[Any] = []
    bot = make_bot(ScriptedApp(events), tmp_path)
    await slash(bot, "ask", make_interaction(events), "bike lanes?")
    view = events[-1][2]["view"]
    assert [getattr(i, "label", None) or str(i.emoji) for i in view.children] == ["Show passages", "👍", "👎"]
    clicks: list[Any] = []
    await view.show_passages.callback(make_interaction(clicks, user_id=77))
    assert clicks[0][2]["ephemeral"] and "> The city council voted 7-2 on Monday." in text_of(clicks[0])
    for vote in (view.vote_up, view.vote_up, view.vote_down):
        await vote.callback(make_interaction(clicks, user_id=77))
    assert "withdrawn" in text_of(clicks[2]) and all(c[2]["ephemeral"] for c in clicks)
    assert_never_pings(clicks)
    records = [json.loads(line) for line in (tmp_path / "feedback.jsonl").read_text().splitlines()]
    assert [(r["vote"], r["previous"]) for r in records] == [("up", None), ("retract", "up"), ("down", None)]
    r0 = records[0]
    assert r0["user"] == hashlib.sha256(b"77").hexdigest() and "77" not in json.dumps(r0["user"])
    assert r0["question"] == "bike lanes?" and r0["answer"].startswith("The council voted 7-2")
    assert r0["citations"][0]["url"] == "https://gazette.example/bike" and r0["time"].endswith("+00:00")
    assert len({r["answer_id"] for r in records}) == 1


# -- mentions, threads, DMs ------------------------------------------------------------------------------------
async def test_mention_opens_a_thread_and_follow_ups_use_the_earlier_turn(tmp_path: Path) -> None:
    events: list[Any] = []
    app = ScriptedApp(events)
    bot = make_bot(app, tmp_path, cooldown_seconds=0)
    me = me_user()
    bot.client._connection.user = me
    channel = make_channel(events, discord.TextChannel, 20)
    thread = make_channel(events, discord.Thread, 30, owner_id=ME, parent_id=20)
    first = make_message(events, f"<@{ME}> what did the council decide on bike lanes?", channel=channel,
                         mentions=[me])
    first.create_thread.return_value = thread
    await bot.on_message(first)
    first.create_thread.assert_awaited_once_with(name="what did the council decide on bike lanes?")
    assert app.calls[0][:2] == ("what did the council decide on bike lanes?", [])
    answer_msgs = [e for e in events if e[0] == "send"]
    assert answer_msgs and all(e[3] == 30 for e in answer_msgs)  # answered inside the thread
    assert "[1]" in answer_msgs[0][1][0] and isinstance(answer_msgs[-1][2]["view"], AnswerView)

    follow = make_message(events, "and when does work start?", channel=thread)  # no mention needed
    await bot.on_message(follow)
    question, history, _ = app.calls[1]
    assert question == "and when does work start?"
    assert history == [Turn("what did the council decide on bike lanes?", "what did the council decide on bike lanes?")]
    replies = [e for e in events if e[0] == "reply"]  # the follow-up is answered as a reply inside the thread
    assert len(replies) == 1 and "[1]" in replies[0][1][0] and sum(e[0] == "send" for e in events) == 1
    assert_never_pings(events)


async def test_a_restarted_bot_resolves_follow_ups_in_an_old_dm(tmp_path: Path) -> None:
    events: list[Any] = []
    app = ScriptedApp(events)
    bot = make_bot(app, tmp_path, cooldown_seconds=0)
    bot.client._connection.user = me_user()
    dm = make_channel(events, discord.DMChannel, 50)
    await bot.on_message(make_message(events, "what did the council decide?", channel=dm, guild_id=None))
    bot.conversations.close()

    restarted = make_bot(app, tmp_path, cooldown_seconds=0)  # a new process: same data dir, nothing in memory
    restarted.client._connection.user = me_user()
    await restarted.on_message(make_message(events, "and when does work start?", channel=dm, guild_id=None))
    question, history, _ = app.calls[-1]
    assert question == "and when does work start?"
    assert history == [Turn("what did the council decide?", "what did the council decide?")]
    assert restarted.conversations.sources(50) == [("a1",), ("a1",)]  # each answer's cited articles
    assert_never_pings(events)


async def test_a_thread_the_bot_opened_is_remembered_across_restarts(tmp_path: Path) -> None:
    events: list[Any] = []
    app = ScriptedApp(events)
    me = me_user()
    bot = make_bot(app, tmp_path, cooldown_seconds=0)
    bot.client._connection.user = me
    channel = make_channel(events, discord.TextChannel, 20)
    thread = make_channel(events, discord.Thread, 31, owner_id=ME, parent_id=20)
    first = make_message(events, f"<@{ME}> bike lanes?", channel=channel, mentions=[me])
    first.create_thread.return_value = thread
    await bot.on_message(first)
    bot.conversations.close()
    restarted = make_bot(app, tmp_path, cooldown_seconds=0)
    restarted.client._connection.user = me
    # the thread's owner is unknown after a restart (e.g. a partial channel object): the store still knows it
    thread.owner_id = None
    await restarted.on_message(make_message(events, "and who voted against?", channel=thread))
    assert app.calls[-1][:2] == ("and who voted against?", [Turn("bike lanes?", "bike lanes?")])


async def test_mentioning_the_bots_own_role_asks_too(tmp_path: Path) -> None:
    events: list[Any] = []
    app = ScriptedApp(events)
    bot = make_bot(app, tmp_path, threads=False)
    bot.client._connection.user = me_user()
    role = MagicMock(spec=discord.Role)
    role.id = 777
    role.tags = MagicMock(spec=discord.RoleTags)
    role.tags.bot_id = ME
    msg = make_message(events, "<@&777> drought?", channel=make_channel(events, discord.TextChannel, 20))
    msg.role_mentions = [role]
    await bot.on_message(msg)
    assert [q for q, _, _ in app.calls] == ["drought?"]


async def test_expired_buttons_are_removed(tmp_path: Path) -> None:
    view = AnswerView(make_bot(ScriptedApp(), tmp_path), make_answer("q"), timeout=60)
    view.message = MagicMock(spec=discord.Message)
    await view.on_timeout()
    view.message.edit.assert_awaited_once()
    assert view.message.edit.await_args.kwargs["view"] is None


async def test_unmentioned_messages_and_bots_are_ignored(tmp_path: Path) -> None:
    events: list[Any] = []
    app = ScriptedApp(events)
    bot = make_bot(app, tmp_path, cooldown_seconds=0)
    me = me_user()
    bot.client._connection.user = me
    channel = make_channel(events, discord.TextChannel, 20)
    await bot.on_message(make_message(events, "just chatting", channel=channel))
    await bot.on_message(make_message(events, f"<@{ME}> hi", channel=channel, mentions=[me], bot_author=True))
    stranger = make_channel(events, discord.Thread, 31, owner_id=1, parent_id=20)
    await bot.on_message(make_message(events, "not our thread", channel=stranger))
    assert not events and not app.calls


async def test_mention_with_threads_off_replies_in_place(tmp_path: Path) -> None:
    events: list[Any] = []
    bot = make_bot(ScriptedApp(events), tmp_path, threads=False)
    me = me_user()
    bot.client._connection.user = me
    msg = make_message(events, f"<@!{ME}> harbor tech revenue?", channel=make_channel(events, discord.TextChannel, 20),
                       mentions=[me])
    await bot.on_message(msg)
    msg.create_thread.assert_not_awaited()
    assert [e[0] for e in events] == ["ask", "reply"] and "[1]" in events[1][1][0]
    assert_never_pings(events)


async def test_dms_answer_with_history_or_are_refused(tmp_path: Path) -> None:
    events: list[Any] = []
    app = ScriptedApp(events)
    bot = make_bot(app, tmp_path, cooldown_seconds=0)
    bot.client._connection.user = me_user()
    dm = make_channel(events, discord.DMChannel, 50)
    await bot.on_message(make_message(events, "drought restrictions?", channel=dm, guild_id=None))
    await bot.on_message(make_message(events, "and then?", channel=dm, guild_id=None))
    assert app.calls[1][1] == [Turn("drought restrictions?", "drought restrictions?")]
    assert [e[0] for e in events] == ["ask", "reply", "ask", "reply"]
    events.clear()
    off = make_bot(app, tmp_path, allow_dms=False)
    off.client._connection.user = me_user()
    await off.on_message(make_message(events, "hello?", channel=dm, guild_id=None))
    assert [text_of(e) for e in events] == [render.DMS_OFF_TEXT]
    assert_never_pings(events)


async def test_message_errors_and_cooldowns_get_a_reply(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    events: list[Any] = []
    clock = [0.0]
    bot = make_bot(ScriptedApp(events, error=ValueError("boom")), tmp_path, clock, threads=False)
    me = me_user()
    bot.client._connection.user = me
    channel = make_channel(events, discord.TextChannel, 20)
    with caplog.at_level(logging.ERROR):
        await bot.on_message(make_message(events, f"<@{ME}> q1?", channel=channel, mentions=[me]))
    await bot.on_message(make_message(events, f"<@{ME}> q2?", channel=channel, mentions=[me]))
    replies = [text_of(e) for e in events if e[0] == "reply"]
    assert replies[0] == render.APOLOGY_TEXT and "boom" not in replies[0]
    assert replies[1] == "Easy there: you can ask again in 5 s."
    assert any(r.exc_info for r in caplog.records)
    assert_never_pings(events)


async def test_message_content_intent_follows_the_setting(tmp_path: Path) -> None:
    on = make_bot(ScriptedApp(), tmp_path)
    off = make_bot(ScriptedApp(), tmp_path, message_content=False)
    assert on.client.intents.message_content is True and off.client.intents.message_content is False


# -- against a real index ----------------------------------------------------------------------------------------
async def test_real_answer_over_the_fixture_corpus(fast_app) -> None:  # type: ignore[no-untyped-def]
    fast_app.index.ingest(fast_app.index.load([FIXTURES / "articles.jsonl"]))
    events: list[Any] = []
    bot = NewsBot(fast_app.answerer, fast_app.index, DiscordConfig(feedback_path=None))
    await slash(bot, "ask", make_interaction(events), "How did the city council vote on the bike lanes?")
    await slash(bot, "sources", make_interaction(events, user_id=2))
    answer_text = text_of(events[1])
    assert events[0][0] == "defer" and "[1]" in answer_text and "Riverside Gazette" in answer_text
    assert "council" in answer_text.lower()
    assert "6 articles" in text_of(events[-1])
    assert_never_pings(events)


# -- the command line ---------------------------------------------------------------------------------------------
def test_missing_token_exits_1_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main

    monkeypatch.setenv("NEWSBOT_DATA_DIR", str(tmp_path / "d"))
    assert main(["discord"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "DISCORD_TOKEN is not set" in err and "Traceback" not in err


def test_rejected_token_exits_1_without_echoing_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main

    monkeypatch.setenv("NEWSBOT_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("DISCORD_TOKEN", "not-a-real-token-xyz")
    monkeypatch.setattr(discord.Client, "login", AsyncMock(side_effect=discord.LoginFailure("Improper token")))
    assert main(["discord"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [f"newsbot: {__import__('bot.discord_bot').discord_bot.REJECTED_TOKEN}"]
    assert "not-a-real-token-xyz" not in err


def test_missing_privileged_intent_falls_back_to_slash_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    from bot.cli import main

    monkeypatch.setenv("NEWSBOT_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("DISCORD_TOKEN", "t")
    intents: list[bool] = []

    async def connect(self: discord.Client, *, reconnect: bool = True) -> None:
        intents.append(self.intents.message_content)
        if self.intents.message_content:
            raise discord.PrivilegedIntentsRequired(None)

    monkeypatch.setattr(discord.Client, "login", AsyncMock())
    monkeypatch.setattr(discord.Client, "connect", connect)
    with caplog.at_level(logging.WARNING):
        assert main(["discord"]) == 0
    assert intents == [True, False]
    assert any("message-content intent is not enabled" in r.getMessage() for r in caplog.records)


def test_settings_reach_the_bot_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.settings import Settings

    monkeypatch.setenv("DISCORD_GUILD_ID", "123")
    monkeypatch.setenv("NEWSBOT_DISCORD_ALLOWED_CHANNEL_IDS", "5, 6")
    monkeypatch.setenv("NEWSBOT_DISCORD_COOLDOWN_SECONDS", "2.5")
    monkeypatch.setenv("NEWSBOT_DISCORD_ALLOW_DMS", "false")
    cfg = DiscordConfig.from_settings(Settings(_env_file=None, data_dir=tmp_path))  # type: ignore[call-arg]
    assert (cfg.guild_id, cfg.allowed_channel_ids, cfg.cooldown_seconds, cfg.allow_dms) == (
        123, frozenset({5, 6}), 2.5, False)
    assert cfg.feedback_path == tmp_path / "feedback.jsonl" and cfg.allowed_guild_ids == frozenset()


# -- streamed LLM drafts -----------------------------------------------------------------------------------------
STREAM_PASSAGES = [
    passage("a1:0", "The council voted 7-2 to build protected bike lanes on Main Street. Work starts in May.",
            title="Council approves bike lanes", source="Riverside Gazette", url="https://gazette.example/bike"),
]
LLM_REPLY = ("The council approved the lanes by seven votes to two, @everyone heard it [1]. "
             "Work on Main Street starts in May, according to the council's plan [1].")


def streaming_bot(tmp_path: Path, chat: ScriptedChat, clock: Callable[[], float]) -> NewsBot:
    answerer = Answerer(FakeSearch(STREAM_PASSAGES), chat)
    config = DiscordConfig(feedback_path=None, store_path=tmp_path / "s.sqlite3", cooldown_seconds=0, edit_seconds=1.0)
    return NewsBot(answerer, ScriptedApp(), config, clock=clock)


def ticking(step: float) -> Callable[[], float]:
    """A clock that moves ``step`` seconds each time it is read (one read per draft delta)."""
    t = [0.0]

    def now() -> float:
        t[0] += step
        return t[0]

    return now


async def test_streamed_draft_is_throttled_unpingable_and_replaced_by_the_verified_answer(tmp_path: Path) -> None:
    events: list[Any] = []
    bot = streaming_bot(tmp_path, ScriptedChat(LLM_REPLY), ticking(0.25))  # 4 deltas per edit_seconds
    assert bot.streams
    await slash(bot, "ask", make_interaction(events), "how did the council vote?")
    edits = [e for e in events if e[0] == "edit_original"]
    drafts, final = edits[:-1], edits[-1]
    deltas = -(-len(LLM_REPLY) // 16)
    assert 2 <= len(drafts) <= -(-deltas // 4)  # at most one edit per (fake) second, not one per delta
    for _, _, kwargs in drafts:
        assert kwargs["content"].endswith(f"_{render.DRAFT_MARK}_") and isinstance(kwargs["view"], StopView)
        assert "@everyone" not in kwargs["content"]
    assert len(drafts[-1][2]["content"]) > len(drafts[0][2]["content"])  # the draft grows
    text = final[2]["content"]
    assert render.DRAFT_MARK not in text and isinstance(final[2]["view"], AnswerView)
    assert text.startswith("The council approved the lanes by seven votes to two, @\u200beveryone heard it. [1]")
    assert "**Sources**\n[1] [Council approves bike lanes]" in text
    assert_never_pings(events)


async def test_without_time_passing_the_draft_is_shown_once(tmp_path: Path) -> None:
    events: list[Any] = []
    bot = streaming_bot(tmp_path, ScriptedChat(LLM_REPLY), lambda: 5.0)
    await slash(bot, "ask", make_interaction(events), "how did the council vote?")
    assert [e[2]["view"].__class__ for e in events if e[0] == "edit_original"] == [StopView, AnswerView]


async def test_llm_failures_fall_back_to_the_extractive_answer_with_a_notice(tmp_path: Path) -> None:
    events: list[Any] = []
    bot = streaming_bot(tmp_path, ScriptedChat(LLMError("the model server is down")), ticking(1.0))
    await slash(bot, "ask", make_interaction(events), "how did the council vote on bike lanes?")
    (name, args, kwargs), = sends(events)  # no draft was shown: the answer comes as the follow-up
    assert name == "followup" and args[0].startswith("_the model server is down; showing the extractive answer_")
    assert "voted 7-2" in args[0]
    events.clear()
    unusable = streaming_bot(tmp_path, ScriptedChat("Bike lanes are nice and everyone agrees."), ticking(1.0))
    await slash(unusable, "ask", make_interaction(events), "how did the council vote on bike lanes?")
    edits = [e for e in events if e[0] == "edit_original"]
    assert edits[0][2]["content"].endswith(f"_{render.DRAFT_MARK}_")  # the draft was shown, then replaced
    assert "unusable" in edits[-1][2]["content"] and "voted 7-2" in edits[-1][2]["content"]
    assert render.DRAFT_MARK not in edits[-1][2]["content"] and isinstance(edits[-1][2]["view"], AnswerView)
    assert_never_pings(events)


async def test_stop_button_keeps_the_verified_part_and_only_the_asker_may_press_it(tmp_path: Path) -> None:
    pressed = threading.Event()

    class GatedChat(ScriptedChat):
        """Writes the first sentence, then waits for the test to press Stop before writing on."""

        def stream(self, messages: Any, *, deadline: float) -> Any:
            for piece in super().stream(messages, deadline=deadline):
                yield piece
                if "[1]." in piece:
                    assert pressed.wait(10)

    events: list[Any] = []
    bot = streaming_bot(tmp_path, GatedChat(LLM_REPLY), ticking(1.0))
    bot.client._connection.user = me_user()
    dm = make_channel(events, discord.DMChannel, 50)
    clicks: list[Any] = []
    drafts: list[Any] = []

    async def reply(*args: Any, **kwargs: Any) -> Any:
        events.append(("reply", args, kwargs))
        sent = MagicMock(spec=discord.Message)

        async def edit(**kw: Any) -> None:
            events.append(("edit", (), kw))
            if "heard it" in kw["content"] and kw["view"] is not None and not clicks:
                await kw["view"].stop_drafting.callback(make_interaction(clicks, user_id=99))  # not the asker
                await kw["view"].stop_drafting.callback(make_interaction(clicks, user_id=5))
                pressed.set()

        sent.edit.side_effect = edit
        drafts.append(sent)
        return sent

    msg = make_message(events, "how did the council vote?", channel=dm, guild_id=None, author_id=5)
    msg.reply.side_effect = reply
    await bot.on_message(msg)
    assert "Only the person who asked" in text_of(clicks[0]) and clicks[0][2]["ephemeral"]
    assert clicks[1][0] == "defer"
    first, *rest = [e for e in events if e[0] in ("reply", "edit")]
    assert first[0] == "reply" and isinstance(first[2]["view"], StopView) and len(drafts) == 1
    final = rest[-1][2]
    assert final["content"].startswith("_stopped on request")
    assert "seven votes to two" in final["content"] and "starts in May" not in final["content"]
    assert isinstance(final["view"], AnswerView)
    assert_never_pings(events)


async def test_streaming_never_blocks_the_event_loop(tmp_path: Path) -> None:
    class SlowChat(ScriptedChat):
        def stream(self, messages: Any, *, deadline: float) -> Any:
            for piece in super().stream(messages, deadline=deadline):
                time.sleep(0.02)
                yield piece

    events: list[Any] = []
    bot = streaming_bot(tmp_path, SlowChat(LLM_REPLY), time.monotonic)
    async with loop_ticks() as ticks:
        await slash(bot, "ask", make_interaction(events), "how did the council vote?")
    assert max(b - a for a, b in zip(ticks, ticks[1:], strict=False)) < 0.1
