"""Discord abuse, offline: spam, crowds, mention bombs and huge questions against the real NewsBot shell.

Driven like tests/test_discord.py: slash-command callbacks and ``on_message`` with spec'd discord.py objects.
A "ping" is any message sent with mentions allowed, or whose text still holds a live mention
(``@everyone``, ``@here``, ``<@id>``, ``<@!id>``, ``<@&id>``).
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import discord
import pytest

from bot import discord_render as render
from bot.discord_bot import DiscordConfig, NewsBot
from bot.types import Answer, Citation, Statement
from tests.fakes import (
    ME,
    ScriptedApp,
    make_bot,
    make_channel,
    make_interaction,
    make_message,
    me_user,
    sends,
    slash,
    text_of,
)

LIVE_MENTION = re.compile(r"@everyone|@here|<@!?\d+>|<@&\d+>")
BOMB = "@everyone @here <@123456789012345678> <@!223456789012345678> <@&323456789012345678>"
PINGS = {"sent": 0, "checked": 0}


@pytest.fixture(scope="module", autouse=True)
def _pings_report() -> Any:
    yield
    print(f"\nDiscord messages checked: {PINGS['checked']}, pings sent: {PINGS['sent']}")
    assert PINGS["sent"] == 0


def count_pings(events: list[Any]) -> int:
    """Messages that could notify anyone: mentions allowed, or live mention syntax in the text."""
    pings = 0
    for event in sends(events):
        kwargs = event[2]
        am = kwargs.get("allowed_mentions")
        allowed = not isinstance(am, discord.AllowedMentions) or any(
            (am.everyone, am.users, am.roles, am.replied_user))
        PINGS["checked"] += 1
        if allowed or LIVE_MENTION.search(text_of(event) or ""):
            pings += 1
    PINGS["sent"] += pings
    return pings


class BombApp(ScriptedApp):
    """A scripted answerer (fake of our Asker seam) whose answers carry mention bombs everywhere an article's or an
    LLM's text can reach: the statement (which also echoes the question), title, outlet, quotes and passages."""

    def ask(self, question: str, history: Any = None, **kwargs: Any) -> Answer:
        super().ask(question, history, **kwargs)
        c = Citation(n=1, article_id="a1", chunk_id="a1:0", title=f"Title {BOMB}", source=f"Outlet {BOMB}",
                     url="https://gazette.example/<@123>", published_at="2024-03-04T09:00:00+00:00",
                     quotes=(f"Quote {BOMB}.",), score=0.9)
        return Answer(question=question, statements=(Statement(f"You asked {question} and {BOMB}.", (1,)),),
                      citations=(c,), abstained=False, standalone_question=question)


# -- spam from one user --------------------------------------------------------------------------------------
async def test_spam_from_one_user_is_held_by_the_cooldown(tmp_path: Path) -> None:
    events: list[Any] = []
    clock = [1000.0]
    app = ScriptedApp(events)
    bot = make_bot(app, tmp_path, clock, cooldown_seconds=5.0)
    its = [make_interaction(events, user_id=7) for _ in range(50)]
    for i, it in enumerate(its):
        clock[0] += 0.05
        await slash(bot, "ask", it, f"spam {i}?")
    assert [q for q, _, _ in app.calls] == ["spam 0?"]  # one answered, 49 refused
    refused = [it for it in its[1:] if it.response.send_message.await_count == 1]
    assert len(refused) == 49
    for it in refused:
        assert it.response.send_message.await_args.kwargs["ephemeral"] is True
        assert it.response.send_message.await_args.args[0].startswith("Easy there: you can ask again in")
        it.response.defer.assert_not_awaited()
    clock[0] += 5.0
    await slash(bot, "ask", make_interaction(events, user_id=7), "after the cooldown?")
    assert len(app.calls) == 2
    # the same user spamming mentions: one answer, the rest a self-deleting notice
    me = me_user()
    bot.client._connection.user = me
    channel = make_channel(events, discord.TextChannel, 20)
    mention_bot = make_bot(app, tmp_path, clock, cooldown_seconds=5.0, threads=False)
    mention_bot.client._connection.user = me
    for i in range(20):
        await mention_bot.on_message(make_message(events, f"<@{ME}> spam {i}?", channel=channel, mentions=[me],
                                                  author_id=8))
    replies = [e for e in events if e[0] == "reply"]
    assert len(replies) == 20 and len(app.calls) == 3
    assert sum(e[2].get("delete_after") == 15.0 for e in replies) == 19
    assert count_pings(events) == 0


# -- many users at once ----------------------------------------------------------------------------------------
async def test_many_users_at_once_are_all_answered_in_arrival_order(tmp_path: Path) -> None:
    app = ScriptedApp([], delay=0.02)
    bot = make_bot(app, tmp_path, cooldown_seconds=5.0, max_in_flight=2, max_queue=100)
    evs: list[list[Any]] = [[] for _ in range(40)]
    its = [make_interaction(ev, user_id=100 + i) for i, ev in enumerate(evs)]
    tasks = []
    for i, it in enumerate(its):
        tasks.append(asyncio.create_task(slash(bot, "ask", it, f"question {i}?")))
        await asyncio.sleep(0)  # they arrive in this order
    await asyncio.wait_for(asyncio.gather(*tasks), 30)
    order = [int(q.split()[1].rstrip("?")) for q, _, _ in app.calls]
    assert sorted(order) == list(range(40))  # nobody starved, nobody answered twice
    assert all(abs(pos - i) <= 2 for pos, i in enumerate(order)), order  # first come, first served (2 slots)
    for ev in evs:
        assert ev[0] == ("defer", (), {"thinking": True})
        assert any("[1]" in text_of(e) for e in sends(ev))
        assert count_pings(ev) == 0
    assert bot.gate.active == 0 and bot.gate.waiting == 0


async def test_a_crowd_beyond_the_queue_is_turned_away_politely_and_nobody_is_left_hanging(tmp_path: Path) -> None:
    app = ScriptedApp([], delay=0.02)
    bot = make_bot(app, tmp_path, cooldown_seconds=5.0, max_in_flight=2, max_queue=10)
    evs: list[list[Any]] = [[] for _ in range(60)]
    its = [make_interaction(ev, user_id=500 + i) for i, ev in enumerate(evs)]
    tasks = [asyncio.create_task(slash(bot, "ask", it, f"q{i}?")) for i, it in enumerate(its)]
    await asyncio.wait_for(asyncio.gather(*tasks), 30)
    answered = [ev for ev in evs if any("[1]" in text_of(e) for e in sends(ev))]
    busy = [ev for ev in evs if [text_of(e) for e in sends(ev)] == [render.BUSY_TEXT]]
    assert len(answered) == 12 and len(busy) == 48  # 2 answering + 10 waiting; the rest told to come back
    assert all(sends(ev) for ev in evs)  # every interaction got a reply
    assert sum(count_pings(ev) for ev in evs) == 0


# -- mention bombs ------------------------------------------------------------------------------------------------
async def test_mention_bombs_in_questions_and_article_text_never_ping(tmp_path: Path) -> None:
    events: list[Any] = []
    app = BombApp(events)
    bot = make_bot(app, tmp_path, cooldown_seconds=0)
    it = make_interaction(events, user_id=1)
    await slash(bot, "ask", it, f"what about {BOMB}?")
    me = me_user()
    bot.client._connection.user = me
    channel = make_channel(events, discord.TextChannel, 20)
    thread = make_channel(events, discord.Thread, 30, owner_id=ME, parent_id=20)
    msg = make_message(events, f"<@{ME}> {BOMB} tell me everything", channel=channel, mentions=[me])
    msg.create_thread.return_value = thread
    await bot.on_message(msg)
    name = msg.create_thread.await_args.kwargs["name"]
    assert not LIVE_MENTION.search(name), name
    dm = make_channel(events, discord.DMChannel, 50)
    await bot.on_message(make_message(events, f"{BOMB} in a DM", channel=dm, guild_id=None))
    # "Show passages" on the bombed answer
    answer = app.ask(BOMB)
    button_it = make_interaction(events, user_id=2)
    await bot.show_passages(button_it, answer)
    texts = [text_of(e) for e in sends(events)]
    assert len(texts) >= 4 and any("everyone" in t for t in texts)  # the text is shown, but inert
    assert count_pings(events) == 0


async def test_mentions_inside_a_real_indexed_article_never_ping(fast_app: Any, tmp_path: Path) -> None:
    corpus = tmp_path / "bomb.jsonl"
    corpus.write_text(json.dumps({
        "title": f"Harbour ferry strike {BOMB}", "source": "Wire <@&42> @here", "url": "https://wire.example/ferry",
        "body": f"The harbour ferry crews went on strike on Monday {BOMB} over pay. "
                f"Union leaders said the harbour ferry strike would last a week <@&42> @everyone. "
                "Commuters crowded the bridge instead."}) + "\n")
    assert fast_app.index.ingest(fast_app.index.load([corpus])).new == 1
    events: list[Any] = []
    bot = NewsBot(fast_app.answerer, fast_app.index, DiscordConfig(feedback_path=None))
    await slash(bot, "ask", make_interaction(events), "why did the harbour ferry crews strike?")
    await slash(bot, "sources", make_interaction(events, user_id=2))
    texts = [text_of(e) for e in sends(events)]
    assert any("strike" in t and "[1]" in t for t in texts), texts
    assert count_pings(events) == 0


# -- very long questions ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("length", [2_001, 10_000])
async def test_very_long_questions_get_a_clear_refusal(fast_app: Any, length: int) -> None:
    fast_app.index.ingest(fast_app.index.load([Path(__file__).parent / "fixtures" / "articles.jsonl"]))
    events: list[Any] = []
    bot = NewsBot(fast_app.answerer, fast_app.index,
                  DiscordConfig(feedback_path=None, cooldown_seconds=0, threads=False))
    await slash(bot, "ask", make_interaction(events), ("why is it so " * 1000)[: length - 1] + "?")
    refusal = text_of(sends(events)[-1])
    assert refusal.startswith(f"the question is {length:,} characters; the limit is 2,000")
    assert sends(events)[-1][2]["ephemeral"] is True
    me = me_user()
    bot.client._connection.user = me
    channel = make_channel(events, discord.TextChannel, 20)
    events.clear()
    await bot.on_message(make_message(events, f"<@{ME}> " + "w" * length, channel=channel, mentions=[me]))
    assert [e[0] for e in events] == ["reply"] and "the limit is 2,000" in text_of(events[0])
    assert count_pings(events) == 0
    assert bot.gate.active == 0


async def test_mention_bombs_in_a_streamed_draft_and_a_digest_never_ping(tmp_path: Path) -> None:
    from bot.answering import Answerer
    from bot.follow import DigestLine
    from tests.fakes import FakeSearch, ScriptedChat, passage

    found = [passage("a1:0", f"The council voted 7-2 on the lanes. {BOMB}.", title=f"Title {BOMB}",
                     source=f"Outlet {BOMB}", url="https://gazette.example/bike")]
    reply = f"The council voted 7-2 {BOMB} on the lanes [1]. Work starts {BOMB} in May [1]."
    answerer = Answerer(FakeSearch(found), ScriptedChat(reply))
    events: list[Any] = []
    bot = NewsBot(answerer, ScriptedApp(), DiscordConfig(feedback_path=None, edit_seconds=0.2), clock=iter(
        [float(i) for i in range(10_000)]).__next__)  # one second per clock read: every delta is an edit
    await slash(bot, "ask", make_interaction(events), f"lanes {BOMB}?")
    drafts = [e for e in events if e[0] == "edit_original" and render.DRAFT_MARK in e[2]["content"]]
    assert len(drafts) >= 5 and count_pings(events) == 0
    line = DigestLine(f"topic {BOMB}", "a1", f"Title {BOMB}", f"Outlet {BOMB}", "https://x.example/<@1>",
                      "2024-03-04", f"Sentence {BOMB}.", 0.9)
    digest = [("send", (render.digest_text([line]),), {"allowed_mentions": discord.AllowedMentions.none()})]
    assert count_pings(digest) == 0
