"""The bot living in a channel, offline: links added as sources by editors and topics followed with digests,
against a real index (Chroma in tmp, the hash embedder) and pages served by a loopback web server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import discord
import pytest

from bot import discord_render as render
from bot.discord_bot import DiscordConfig, NewsBot
from bot.wiring import Services
from tests.fakes import (
    FIXTURES,
    HashEmbedder,
    assert_never_pings,
    make_channel,
    make_interaction,
    make_message,
    make_settings,
    me_user,
    slash,
    text_of,
)
from tests.test_fetch import ARTICLES, OUTLET, Site, make_handler

EDITORS = 900


@pytest.fixture
def web() -> Iterator[Site]:
    """tests/test_fetch.py's news site on 127.0.0.1."""
    s = Site()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(s))
    server.daemon_threads = True
    s.base = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield s
    server.shutdown()
    server.server_close()


@pytest.fixture
def services(tmp_path: Path) -> Services:
    """A real index in tmp that may fetch from loopback (the test site)."""
    settings = make_settings(tmp_path / "data", allow_private_urls=True, fetch_host_delay=0, fetch_timeout=2)
    return Services(settings, embedder=HashEmbedder())


def channel_bot(services: Services, tmp_path: Path, clock: list[float] | None = None, **config: Any) -> NewsBot:
    t = clock if clock is not None else [1000.0]
    cfg = DiscordConfig(feedback_path=None, store_path=tmp_path / "data" / "discord.sqlite3", **config)
    return NewsBot(services.answerer, services.index, cfg, clock=lambda: t[0])


def editor(interaction: Any, *role_ids: int) -> Any:
    roles = []
    for rid in role_ids:
        role = MagicMock(spec=discord.Role)
        role.id = rid
        roles.append(role)
    interaction.user.roles = roles
    return interaction


# -- /add and posted links ----------------------------------------------------------------------------------------
async def test_add_refuses_without_the_role_and_says_so_when_no_role_is_configured(services: Services,
                                                                                    tmp_path: Path,
                                                                                    web: Site) -> None:
    events: list[Any] = []
    url = f"{web.base}/article/1"
    nobody = channel_bot(services, tmp_path)
    await slash(nobody, "add", editor(make_interaction(events), EDITORS), url)
    assert text_of(events[-1]) == render.NO_EDITORS_TEXT.format(action="add sources")
    assert "NEWSBOT_DISCORD_EDITOR_ROLE_IDS is empty" in text_of(events[-1]) and events[-1][2]["ephemeral"]
    bot = channel_bot(services, tmp_path, editor_role_ids=frozenset({EDITORS}))
    await slash(bot, "add", editor(make_interaction(events), 1, 2), url)
    assert text_of(events[-1]) == "Only members with an editor role can add sources here."
    await slash(bot, "add", make_interaction(events, guild_id=None, channel_id=50), url)  # a DM: no roles
    assert text_of(events[-1]) == "Only members with an editor role can add sources here."
    assert web.requests == [] and services.index.stats().articles == 0


async def test_add_ingests_a_loopback_page_for_an_editor_and_is_rate_limited(services: Services, tmp_path: Path,
                                                                             web: Site) -> None:
    events: list[Any] = []
    clock = [1000.0]
    bot = channel_bot(services, tmp_path, clock, editor_role_ids=frozenset({EDITORS}), add_cooldown_seconds=30)
    url = f"{web.base}/article/1"
    await slash(bot, "add", editor(make_interaction(events), EDITORS), url)
    assert events[0] == ("defer", (), {"thinking": True})
    title = ARTICLES[1][0]
    assert text_of(events[-1]) == f"Added [{title}](<{url}>) — {OUTLET} · 2024-08-30"
    assert "ephemeral" not in events[-1][2] and bot.index_changed.is_set()
    assert services.answerer.ask("how low is the reservoir?").citations[0].url == url
    events.clear()
    await slash(bot, "add", editor(make_interaction(events), EDITORS), f"{web.base}/article/2")
    assert [e[0] for e in events] == ["send_message"] and "add a link again in 30 s" in text_of(events[0])
    clock[0] += 31
    await slash(bot, "add", editor(make_interaction(events), EDITORS), url)
    assert text_of(events[-1]).startswith(f"Already known: [{title}]")
    clock[0] += 31
    await slash(bot, "add", editor(make_interaction(events), EDITORS), f"{web.base}/missing")
    assert text_of(events[-1]) == f"Couldn't add <{web.base}/missing>: HTTP 404 Not Found"
    clock[0] += 31
    await slash(bot, "add", editor(make_interaction(events), EDITORS), "file:///etc/passwd")
    assert text_of(events[-1]) == "Couldn't add “file:///etc/passwd”: not an http(s) link"
    assert_never_pings(events)


async def test_links_posted_by_editors_in_a_link_channel_become_sources(services: Services, tmp_path: Path,
                                                                        web: Site) -> None:
    events: list[Any] = []
    bot = channel_bot(services, tmp_path, editor_role_ids=frozenset({EDITORS}), link_channel_ids=frozenset({20}),
                      add_cooldown_seconds=0)
    bot.client._connection.user = me_user()
    links = make_channel(events, discord.TextChannel, 20)
    other = make_channel(events, discord.TextChannel, 21)
    posted = f"look: <{web.base}/article/2>, and {web.base}/article/3."
    stranger = make_message(events, posted, channel=links)
    stranger.author.roles = []
    await bot.on_message(stranger)  # not an editor: ignored, nothing fetched
    elsewhere = make_message(events, posted, channel=other)
    elsewhere.author.roles = editor(make_interaction([]), EDITORS).user.roles
    await bot.on_message(elsewhere)  # not a link channel: ignored
    assert events == [] and web.requests == []
    msg = make_message(events, posted, channel=links)
    msg.author.roles = elsewhere.author.roles
    await bot.on_message(msg)
    (name, args, kwargs), = events
    assert name == "reply" and args[0].splitlines() == [
        f"Added [{ARTICLES[2][0]}](<{web.base}/article/2>) — {OUTLET} · 2024-09-02",
        f"Added [{ARTICLES[3][0]}](<{web.base}/article/3>) — {OUTLET} · 2024-09-05"]
    assert_never_pings(events)
    assert services.index.stats().articles == 2


def test_settings_reach_the_channel_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.settings import Settings

    monkeypatch.setenv("NEWSBOT_DISCORD_EDITOR_ROLE_IDS", "900, 901")
    monkeypatch.setenv("NEWSBOT_DISCORD_LINK_CHANNEL_IDS", "20")
    monkeypatch.setenv("NEWSBOT_DISCORD_ADD_COOLDOWN_SECONDS", "12")
    monkeypatch.setenv("NEWSBOT_DISCORD_EDIT_SECONDS", "1.5")
    monkeypatch.setenv("NEWSBOT_DISCORD_CONVERSATION_DAYS", "7")
    cfg = DiscordConfig.from_settings(Settings(_env_file=None, data_dir=tmp_path))  # type: ignore[call-arg]
    assert (cfg.editor_role_ids, cfg.link_channel_ids, cfg.add_cooldown_seconds, cfg.edit_seconds,
            cfg.conversation_days) == (frozenset({900, 901}), frozenset({20}), 12.0, 1.5, 7.0)
    assert cfg.store_path == tmp_path / "discord.sqlite3"


# -- followed topics ----------------------------------------------------------------------------------------------
HASH_SIMILARITY = 0.15  # the hash embedder's cosines are lower than the model's: measured 0.22 for the match here


def valley(web: Site, n: int) -> str:
    return f"{web.base}/article/{n}"


async def test_a_follow_posts_one_digest_with_only_the_matching_new_article(services: Services, tmp_path: Path,
                                                                            web: Site) -> None:
    index = services.index
    index.ingest(index.load([FIXTURES / "articles.jsonl"]))  # already there before the bot starts: never posted
    events: list[Any] = []
    bot = channel_bot(services, tmp_path, editor_role_ids=frozenset({EDITORS}), follow_min_similarity=HASH_SIMILARITY)
    channel = make_channel(events, discord.TextChannel, 20)
    bot.client.get_channel = lambda cid: channel if cid == 20 else None  # type: ignore[method-assign]
    await slash(bot, "follow", editor(make_interaction(events), EDITORS), "reservoir water levels")
    assert text_of(events[-1]).startswith("<#20> now follows “reservoir water levels”") and events[-1][2]["ephemeral"]
    await slash(bot, "follow", editor(make_interaction(events), EDITORS), "Reservoir water levels")
    assert "already follows" in text_of(events[-1])
    assert await bot.digest_round() == 0  # the first round only notes what exists
    events.clear()

    index.ingest(index.load([valley(web, 1), valley(web, 2)]))  # reservoir (matches) and night trains (doesn't)
    assert await bot.digest_round() == 1
    (name, args, kwargs, where), = events
    assert name == "send" and where == 20 and kwargs["suppress_embeds"] is True
    text = args[0]
    assert text.splitlines()[0] == "**New on “reservoir water levels”**"
    assert text.splitlines()[1].startswith("[1] The main reservoir fell to 18 percent of capacity")
    assert f"[{ARTICLES[1][0]}](<{valley(web, 1)}>) · {OUTLET} · 2024-08-30" in text
    assert "Night trains" not in text and len(text.splitlines()) == 2
    assert_never_pings(events)

    events.clear()
    index.ingest(index.load([valley(web, 3)]))  # the repair cafe: no followed topic matches
    assert await bot.digest_round() == 0 and events == []
    assert await bot.digest_round() == 0  # nothing changed since: not even a search


async def test_follows_survive_a_restart_and_can_be_listed_and_removed(services: Services, tmp_path: Path) -> None:
    events: list[Any] = []
    bot = channel_bot(services, tmp_path, editor_role_ids=frozenset({EDITORS}))
    await slash(bot, "following", make_interaction(events))
    assert text_of(events[-1]).startswith("This channel follows no topics")
    await slash(bot, "follow", make_interaction(events), "bike lanes")  # not an editor
    assert text_of(events[-1]) == "Only members with an editor role can follow topics here."
    other = make_channel(events, discord.TextChannel, 21)
    assert render.clean_topic("bike <@123> lanes\n@everyone") == "bike lanes everyone"  # stored inert
    await slash(bot, "follow", editor(make_interaction(events), EDITORS), " bike   lanes ", other)
    assert text_of(events[-1]).startswith("<#21> now follows “bike lanes”")
    await slash(bot, "follow", editor(make_interaction(events), EDITORS), "harbor tech")
    bot.conversations.close()

    restarted = channel_bot(services, tmp_path, editor_role_ids=frozenset({EDITORS}))
    assert [(f.channel_id, f.topic) for f in restarted.conversations.follows()] == [(21, "bike lanes"),
                                                                                   (20, "harbor tech")]
    await slash(restarted, "following", make_interaction(events))
    assert text_of(events[-1]) == "**Topics followed here**\n• harbor tech"
    await slash(restarted, "unfollow", editor(make_interaction(events), EDITORS), "Harbor Tech")
    assert text_of(events[-1]) == "This channel no longer follows “Harbor Tech”."
    await slash(restarted, "unfollow", editor(make_interaction(events), EDITORS), "harbor tech")
    assert "doesn't follow" in text_of(events[-1])
    assert all(e[2].get("ephemeral") for e in events)
    assert_never_pings(events)


def test_two_processes_never_post_the_same_article_to_a_channel(tmp_path: Path) -> None:
    from bot.conversation_store import ConversationStore

    a, b = ConversationStore(tmp_path / "s.sqlite3"), ConversationStore(tmp_path / "s.sqlite3")
    assert a.claim(20, ["x", "y"]) == ["x", "y"]
    assert b.claim(20, ["y", "z"]) == ["z"] and b.claim(21, ["y"]) == ["y"]


def test_digest_keeps_one_line_per_story_and_fits_a_message() -> None:
    from bot.follow import digest
    from tests.fakes import FakeSearch, passage

    story = "Water officials announced new restrictions on garden hoses across the valley this week."
    found = [passage("a:0", story, dense=0.7, title="Hosepipe ban", url="https://a.example/1"),
             passage("a:1", "Another chunk of the same article.", dense=0.65, title="Hosepipe ban"),
             passage("b:0", story + " ", dense=0.69, title="Hosepipe ban announced", source="Wire copy"),
             passage("c:0", "Rain is expected on Thursday.", dense=0.2, title="Weather")]
    lines, more = digest(FakeSearch(found), ["hosepipe ban"], frozenset({"a", "b", "c"}), min_similarity=0.3, most=5)
    assert [line.article_id for line in lines] == ["a"] and more == 0  # b is a copy, c is below the threshold
    long = [passage(f"n{i}:0", f"Story number {i} " + "word " * 80 + ".", dense=0.9, title=f"Title {i} " + "T" * 300,
                    url=f"https://n.example/{i}") for i in range(10)]
    lines, more = digest(FakeSearch(long), ["story"], frozenset(f"n{i}" for i in range(10)), min_similarity=0.3,
                         most=10)
    text = render.digest_text(lines, more)
    assert len(text) <= render.MESSAGE_LIMIT and text.endswith("more: ask me about it._")
