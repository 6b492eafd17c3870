"""The Discord front end: a thin shell that translates slash commands, messages and buttons into Answerer calls
and answers into messages (the only module importing discord); its policies live in ``bot.discord_policy``."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import aiohttp
import discord
from discord import app_commands

from bot import discord_render as render
from bot.conversation import Turn
from bot.conversation_store import ConversationStore
from bot.discord_policy import Cooldown, FeedbackLog, Gate, Ticket, user_hash
from bot.follow import TopicSearch, digest
from bot.types import Answer
from index import NO_FILTERS, Filters, IndexStats, date_filters
from index.errors import NewsbotError
from index.types import Article, LoadError, Passage

if TYPE_CHECKING:
    from bot.settings import Settings
    from index import Index

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()
T = TypeVar("T")

MISSING_TOKEN = ("DISCORD_TOKEN is not set: create a bot in the Discord developer portal, copy its token and put "
                 "DISCORD_TOKEN=<token> in the environment or .env (see docs/discord.md)")
REJECTED_TOKEN = ("Discord rejected DISCORD_TOKEN: copy a fresh token from the developer portal (Bot → Reset Token) "
                  "into DISCORD_TOKEN in the environment or .env")
HELLO_TEXT = "Ask me a question about the news after the mention, e.g. “what did the council decide about bike lanes?”"
OUTLETS_TTL = 60.0  # seconds an outlet list (for autocomplete) is reused
NOTICE_SECONDS = 15.0  # cooldown and busy notices in channels delete themselves after this long
MAX_FOLLOWS_PER_CHANNEL = 20  # each followed topic costs one search per new batch of articles
STORE_FILE = "discord.sqlite3"  # conversations and follows, in the data dir


class Asker(Protocol):
    """What the bot needs from the answering core (``bot.answering.Answerer`` provides it)."""

    def ask(self, question: str, history: list[Turn] | None = None, *, top_k: int | None = None,
            filters: Filters = NO_FILTERS, as_of: datetime | None = None) -> Answer: ...

    def ask_stream(self, question: str, history: list[Turn] | None = None, *, top_k: int | None = None,
                   filters: Filters = NO_FILTERS, stop: threading.Event | None = None) -> Iterator[str | Answer]: ...


class Ingested(Protocol):
    """What the bot reads of an ingest report (``index.Index.ingest`` returns one)."""

    new: int
    updated: int
    unchanged: int
    failed: int
    errors: list[LoadError]


class Library(Protocol):
    """What the bot shows of the index and adds to it (``index.Index`` provides it)."""

    def outlets(self) -> list[str]: ...

    def stats(self) -> IndexStats: ...

    def load(self, paths: Iterable[str]) -> list[Article | LoadError]: ...

    def ingest(self, items: Iterable[Article | LoadError]) -> Ingested: ...

    def search(self, question: str, k: int = 10, filters: Filters = NO_FILTERS) -> list[Passage]: ...

    def article_ids(self) -> frozenset[str]: ...

    def version(self) -> str: ...


@dataclass(frozen=True)
class DiscordConfig:
    """The bot's behaviour, taken from ``Settings`` by ``from_settings``."""

    guild_id: int | None = None
    cooldown_seconds: float = 5.0
    max_in_flight: int = 2
    max_queue: int = 100
    allowed_guild_ids: frozenset[int] = frozenset()
    allowed_channel_ids: frozenset[int] = frozenset()
    allow_dms: bool = True
    threads: bool = True
    message_content: bool = True
    shards: int | None = None
    feedback_path: Path | None = None
    store_path: Path | None = None  # the SQLite file of conversations and follows (None: in memory)
    history_turns: int = 6  # earlier turns of a thread used to resolve a follow-up
    conversations: int = 1000  # threads/DMs whose history is remembered (least recently used dropped)
    conversation_days: float = 30.0  # a conversation untouched for this long is forgotten
    view_timeout: float = 3600.0  # seconds the buttons under an answer keep working
    edit_seconds: float = 1.0  # least time between two edits of a streamed draft
    editor_role_ids: frozenset[int] = frozenset()  # roles whose members may add links and follow topics
    add_cooldown_seconds: float = 30.0  # between one member's added links
    link_channel_ids: frozenset[int] = frozenset()  # channels where editors' posted links become sources
    follow_poll_seconds: float = 30.0  # how often the index is checked for new articles (0: never)
    digest_lines: int = 5  # most articles in one digest
    follow_min_similarity: float = 0.30  # dense cosine a new article's passage needs to match a topic

    @classmethod
    def from_settings(cls, settings: Settings) -> DiscordConfig:
        s = settings
        return cls(guild_id=s.discord_guild_id, cooldown_seconds=s.discord_cooldown_seconds,
                   max_in_flight=s.discord_max_in_flight, max_queue=s.discord_max_queue,
                   allowed_guild_ids=frozenset(s.discord_allowed_guild_ids),
                   allowed_channel_ids=frozenset(s.discord_allowed_channel_ids), allow_dms=s.discord_allow_dms,
                   threads=s.discord_threads, message_content=s.discord_message_content,
                   shards=s.discord_shards, feedback_path=s.data_dir / "feedback.jsonl",
                   store_path=s.data_dir / STORE_FILE, history_turns=s.discord_history_turns,
                   conversations=s.discord_conversations, conversation_days=s.discord_conversation_days,
                   edit_seconds=s.discord_edit_seconds, editor_role_ids=frozenset(s.discord_editor_role_ids),
                   add_cooldown_seconds=s.discord_add_cooldown_seconds,
                   link_channel_ids=frozenset(s.discord_link_channel_ids),
                   follow_poll_seconds=s.discord_follow_poll_seconds, digest_lines=s.discord_digest_lines,
                   follow_min_similarity=s.discord_follow_min_similarity)


# -- the bot ---------------------------------------------------------------------------------------------------
class AnswerView(discord.ui.View):
    """The buttons under an answer: "Show passages", 👍 and 👎."""

    def __init__(self, bot: NewsBot, answer: Answer, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.bot, self.answer = bot, answer
        self.answer_id = uuid.uuid4().hex
        self.votes: dict[str, str] = {}
        self.message: discord.Message | None = None
        if not answer.citations:
            self.remove_item(self.show_passages)

    @discord.ui.button(label="Show passages", style=discord.ButtonStyle.secondary)
    async def show_passages(self, interaction: discord.Interaction, _: discord.ui.Button[AnswerView]) -> None:
        await self.bot.show_passages(interaction, self.answer)

    @discord.ui.button(emoji="👍", style=discord.ButtonStyle.secondary)
    async def vote_up(self, interaction: discord.Interaction, _: discord.ui.Button[AnswerView]) -> None:
        await self.bot.vote(interaction, self, "up")

    @discord.ui.button(emoji="👎", style=discord.ButtonStyle.secondary)
    async def vote_down(self, interaction: discord.Interaction, _: discord.ui.Button[AnswerView]) -> None:
        await self.bot.vote(interaction, self, "down")

    async def on_timeout(self) -> None:
        if self.message is not None:
            try:
                await self.message.edit(view=None, allowed_mentions=NO_MENTIONS)
            except discord.HTTPException:
                log.debug("could not remove the buttons of an expired answer", exc_info=True)

    async def on_error(self, interaction: discord.Interaction, error: Exception, item: Any) -> None:
        await self.bot.apologize(interaction, error)


class StopView(discord.ui.View):
    """The Stop button under a streamed draft: only the person who asked can end the generation."""

    def __init__(self, bot: NewsBot, stop: threading.Event, owner_id: int, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.bot, self.stop_event, self.owner_id = bot, stop, owner_id

    @discord.ui.button(label="Stop", emoji="⏹️", style=discord.ButtonStyle.secondary)
    async def stop_drafting(self, interaction: discord.Interaction, _: discord.ui.Button[StopView]) -> None:
        if interaction.user.id != self.owner_id:
            await self.bot.tell(interaction, "Only the person who asked can stop this answer.")
            return
        self.stop_event.set()
        await interaction.response.defer()  # the draft message itself shows the result

    async def on_error(self, interaction: discord.Interaction, error: Exception, item: Any) -> None:
        await self.bot.apologize(interaction, error)


class _HookedClient:
    """A discord.py client whose setup hook is the bot's (mixed into the one- and the many-connection client)."""

    def __init__(self, hook: Callable[[], Awaitable[None]], **options: Any) -> None:
        super().__init__(**options)
        self._hook = hook

    async def setup_hook(self) -> None:
        await self._hook()


class _Client(_HookedClient, discord.Client):
    """One gateway connection."""


class _ShardedClient(_HookedClient, discord.AutoShardedClient):
    """Several gateway connections (NEWSBOT_DISCORD_SHARDS)."""


class NewsBot:
    """Slash commands, mentions, DMs and threads over an ``Asker``; every reply goes through this class."""

    def __init__(self, app: Asker, library: Library, config: DiscordConfig = DiscordConfig(), *,
                 clock: Callable[[], float] = time.monotonic, warm_up: Callable[[], object] | None = None,
                 stream: bool | None = None) -> None:
        self.app, self.library, self.config, self.warm_up, self.clock = app, library, config, warm_up, clock
        # drafts are streamed when an LLM writes the answers (``Answerer.llm``); extractive answers come at once
        self.streams = stream if stream is not None else getattr(app, "llm", None) is not None
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False  # no voice: don't warn about it
        intents = discord.Intents.default()
        intents.message_content = config.message_content
        options: dict[str, Any] = {"intents": intents, "allowed_mentions": NO_MENTIONS}
        if config.shards is None:
            self.client: discord.Client = _Client(self._setup_hook, **options)
        else:
            self.client = _ShardedClient(self._setup_hook, shard_count=config.shards or None, **options)
        self.tree = app_commands.CommandTree(self.client)
        self.tree.error(self._on_tree_error)
        self.client.event(self.on_ready)
        self.client.event(self.on_message)
        self.cooldown = Cooldown(config.cooldown_seconds, clock)
        self.add_cooldown = Cooldown(config.add_cooldown_seconds, clock)
        self.index_changed = asyncio.Event()  # set after this bot adds articles: the follow watcher looks at once
        self._known: frozenset[str] | None = None  # article ids seen by the last digest round (None: no round yet)
        self._known_version: str | None = None
        self._watcher: asyncio.Task[None] | None = None
        self.gate = Gate(config.max_in_flight, config.max_queue)
        self.conversations = ConversationStore(config.store_path, config.conversations, config.history_turns,
                                               config.conversation_days)
        self.feedback = FeedbackLog(config.feedback_path)
        self._outlets: tuple[float, list[str]] | None = None
        self._register_commands()

    # -- the one seam where blocking work leaves the event loop -------------------------------------------------
    async def off_loop(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run embedding, Chroma, BM25, answer composition or file I/O in a worker thread."""
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def _remembers(self, key: int | None) -> bool:
        """Is this channel a conversation the bot keeps (one of its threads, a DM), in this process or before?"""
        return key is not None and await self.off_loop(self.conversations.__contains__, key)

    async def _remember(self, key: int | None, answer: Answer) -> None:
        """Append the turn, and the articles its answer cited, to the conversation (when there is one)."""
        if key is not None:
            turn = Turn(answer.question, answer.standalone_question or answer.question)
            await self.off_loop(self.conversations.add, key, turn, [c.article_id for c in answer.citations])

    async def stream_answer(self, question: str, history: list[Turn], filters: Filters, owner_id: int,
                            show: Callable[[str, discord.ui.View], Awaitable[None]],
                            as_of: datetime | None = None) -> Answer:
        """Answer with the LLM's draft shown as it is written: ``ask_stream`` runs in a worker thread that hands
        its deltas to the loop through a queue; ``show`` gets the draft (mentions neutralised, marked as in
        progress) with a Stop button at most every ``edit_seconds``. Returns the verified Answer (after Stop: the
        verified part; after a failure: the extractive one with a notice)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | Answer | BaseException] = asyncio.Queue()
        stop = threading.Event()

        def produce() -> None:
            try:
                for item in self.app.ask_stream(question, history, filters=filters, stop=stop, as_of=as_of):
                    loop.call_soon_threadsafe(queue.put_nowait, item)
            except BaseException as err:  # handed to the loop, raised there
                loop.call_soon_threadsafe(queue.put_nowait, err)

        worker = asyncio.ensure_future(self.off_loop(produce))
        view = StopView(self, stop, owner_id, self.config.view_timeout)
        text, shown_at = "", None
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, Answer):
                    return item
                text += item
                now = self.clock()
                if not stop.is_set() and (shown_at is None or now - shown_at >= self.config.edit_seconds):
                    await show(render.draft_text(text), view)
                    shown_at = now
        finally:
            stop.set()  # a failure while showing ends the generation too
            view.stop()
            await worker

    # -- lifecycle -----------------------------------------------------------------------------------------------
    async def _setup_hook(self) -> None:
        try:
            if self.config.guild_id:
                guild = discord.Object(id=self.config.guild_id)
                self.tree.copy_global_to(guild=guild)
                synced = await self.tree.sync(guild=guild)
                log.info("synced %d commands to server %s", len(synced), self.config.guild_id)
            else:
                synced = await self.tree.sync()
                log.info("synced %d global commands (they can take up to an hour to appear)", len(synced))
        except discord.HTTPException as err:
            log.warning("could not register slash commands (%s): invite the bot with the applications.commands "
                        "scope (docs/discord.md)", err)
        if self.warm_up is not None:
            try:
                await self.off_loop(self.warm_up)
            except Exception:
                log.warning("warm-up failed; the first question will be slower", exc_info=True)
        if self.config.follow_poll_seconds > 0 and self._watcher is None:
            self._watcher = asyncio.create_task(self.watch_follows(), name="newsbot-follows")

    async def on_ready(self) -> None:
        user = self.client.user
        mentions = ("mentions, DMs and thread follow-ups are on" if self.config.message_content else
                    "message-content intent off: /ask, mentions and DMs work, thread follow-ups need a mention")
        log.warning("connected as %s to %d servers; %s", user, len(self.client.guilds), mentions)

    # -- slash commands ---------------------------------------------------------------------------------------------
    def _register_commands(self) -> None:
        @self.tree.command(name="ask", description="Ask a question about the news; the answer cites its sources.")
        @app_commands.describe(question="What you want to know", source="Only articles from this outlet",
                               since="Only articles published on or after this date (e.g. 2023-10-01)",
                               until="Only articles published on or before this date")
        async def ask(interaction: discord.Interaction, question: str, source: str | None = None,
                      since: str | None = None, until: str | None = None) -> None:
            await self.ask_command(interaction, question, source=source, since=since, until=until)

        @ask.autocomplete("source")
        async def ask_source(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
            return await self.source_autocomplete(interaction, current)

        @self.tree.command(name="sources", description="What the bot knows: articles, outlets, dates.")
        async def sources(interaction: discord.Interaction) -> None:
            await self.sources_command(interaction)

        @self.tree.command(name="newsbot-info", description="What the bot knows: articles, outlets, dates.")
        async def info(interaction: discord.Interaction) -> None:
            await self.sources_command(interaction)

        @self.tree.command(name="follow", description="Post new articles on a topic to a channel (editors only).")
        @app_commands.describe(topic="What to follow, e.g. “reservoir water levels”",
                               channel="Where to post them (default: this channel)")
        async def follow(interaction: discord.Interaction, topic: str,
                         channel: discord.TextChannel | None = None) -> None:
            await self.follow_command(interaction, topic, channel)

        @self.tree.command(name="unfollow", description="Stop posting new articles on a topic here (editors only).")
        @app_commands.describe(topic="A topic this channel follows (/following lists them)")
        async def unfollow(interaction: discord.Interaction, topic: str) -> None:
            await self.unfollow_command(interaction, topic)

        @self.tree.command(name="following", description="The topics this channel follows.")
        async def following(interaction: discord.Interaction) -> None:
            await self.following_command(interaction)

        @self.tree.command(name="add", description="Add a news article by its link (editors only).")
        @app_commands.describe(url="The article's address (https://…)")
        async def add(interaction: discord.Interaction, url: str) -> None:
            await self.add_command(interaction, url)

    async def ask_command(self, interaction: discord.Interaction, question: str, *, source: str | None = None,
                          since: str | None = None, until: str | None = None) -> None:
        """``/ask``: checks (answered ephemerally), defer, wait for a slot, answer off the loop, follow up."""
        ticket: Ticket | None = None
        drafted: list[object] = []
        try:
            refusal = self._refusal(interaction.guild_id, interaction.channel_id, _parent_id(interaction.channel))
            if refusal is not None:
                await self.tell(interaction, refusal)
                return
            filters = date_filters((), since, until)  # a bad date is answered privately and costs no cooldown
            wait = self.cooldown.wait(interaction.user.id)
            if wait:
                await self.tell(interaction, render.cooldown_text(wait))
                return
            ticket = self.gate.join()
            if ticket is None:
                await self.tell(interaction, render.BUSY_TEXT)
                return
            await interaction.response.defer(thinking=True)
            if ticket.position:
                await interaction.edit_original_response(content=render.queue_text(ticket.position),
                                                         allowed_mentions=NO_MENTIONS)
            if source:
                filters = replace(filters, sources=(await self._outlet(source),))
            key = interaction.channel_id if await self._remembers(interaction.channel_id) else None
            await self.gate.ready(ticket)
            history = await self.off_loop(self.conversations.history, key)
            asked_at = interaction.created_at  # "this week" is the asker's week
            if self.streams:
                async def show(text: str, view: discord.ui.View) -> None:
                    drafted.append(await interaction.edit_original_response(content=text, view=view,
                                                                            allowed_mentions=NO_MENTIONS))

                answer = await self.stream_answer(question, history, filters, interaction.user.id, show, asked_at)
            else:
                answer = await self.off_loop(self.app.ask, question, history, filters=filters, as_of=asked_at)
            await self._remember(key, answer)
            await self._send_answer(interaction, answer, replace_notice=bool(ticket.position or drafted))
        except Exception as err:
            if drafted:  # the draft message must not stay "drafting…" with a Stop button
                await _quietly(interaction.edit_original_response(content=render.DRAFT_FAILED_TEXT, view=None,
                                                                  allowed_mentions=NO_MENTIONS))
            await self.apologize(interaction, err)
        finally:
            if ticket is not None:
                self.gate.leave(ticket)

    async def add_command(self, interaction: discord.Interaction, url: str) -> None:
        """``/add url:``: editors only (refusals are private), rate-limited; one public line on what was added."""
        try:
            refusal = (self._refusal(interaction.guild_id, interaction.channel_id, _parent_id(interaction.channel))
                       or self._editor_refusal(interaction.user, "add sources"))
            if refusal is not None:
                await self.tell(interaction, refusal)
                return
            wait = self.add_cooldown.wait(interaction.user.id)
            if wait:
                await self.tell(interaction, render.cooldown_text(wait, "add a link"))
                return
            await interaction.response.defer(thinking=True)
            text = await self._add(url.strip())
            await interaction.followup.send(text, allowed_mentions=NO_MENTIONS, suppress_embeds=True)
        except Exception as err:
            await self.apologize(interaction, err)

    async def _add(self, url: str) -> str:
        """Add one link off the loop; tell the follow watcher when the index changed."""
        text, changed = await self.off_loop(self.add_link, url)
        if changed:
            self.index_changed.set()
        return text

    def add_link(self, url: str) -> tuple[str, bool]:
        """Fetch one page through the index's safe fetcher and ingest it: one line saying what happened, and
        whether the index changed (blocking: call it off the loop)."""
        if not render.is_link(url):
            return render.not_added_text(url, "not an http(s) link"), False
        [item] = self.library.load([url])
        if isinstance(item, LoadError):
            return render.not_added_text(url, item.message), False
        report = self.library.ingest([item])
        if report.failed:
            why = report.errors[0].message if report.errors else "it could not be stored"
            return render.not_added_text(url, why), False
        outcome = "updated" if report.updated else "added" if report.new else "known"
        return render.added_text(item, outcome), outcome != "known"

    def _editor_refusal(self, user: discord.User | discord.Member, action: str) -> str | None:
        """Why this member may not add sources or follow topics (editor roles), or None."""
        roles = self.config.editor_role_ids
        if not roles:
            return render.NO_EDITORS_TEXT.format(action=action)
        if not isinstance(user, discord.Member) or not {r.id for r in user.roles} & roles:
            return render.NOT_EDITOR_TEXT.format(action=action)
        return None

    async def _add_posted_links(self, message: discord.Message, links: list[str]) -> None:
        """Links an editor posted in a link channel: added as sources, one reply line each; others' are ignored."""
        if self._editor_refusal(message.author, "add sources") is not None:
            return
        wait = self.add_cooldown.wait(message.author.id)
        if wait:
            await message.reply(render.cooldown_text(wait, "add a link"), allowed_mentions=NO_MENTIONS,
                                delete_after=NOTICE_SECONDS)
            return
        try:
            lines = [await self._add(url) for url in links[:render.LINKS_PER_MESSAGE]]
            await message.reply("\n".join(lines), allowed_mentions=NO_MENTIONS, suppress_embeds=True)
        except Exception:
            log.exception("adding posted links failed")
            await _quietly(message.reply(render.APOLOGY_TEXT, allowed_mentions=NO_MENTIONS))

    # -- followed topics ---------------------------------------------------------------------------------------
    async def follow_command(self, interaction: discord.Interaction, topic: str,
                             channel: discord.abc.GuildChannel | None = None) -> None:
        """``/follow topic: [channel:]``: editors only; the answer is private."""
        try:
            channel_id = channel.id if channel is not None else interaction.channel_id
            parent = _parent_id(channel if channel is not None else interaction.channel)
            refusal = (self._refusal(interaction.guild_id, channel_id, parent)
                       or self._editor_refusal(interaction.user, "follow topics"))
            if refusal is None and interaction.guild_id is None:
                refusal = "Topics can be followed in server channels only."
            if refusal is not None or channel_id is None:
                await self.tell(interaction, refusal or render.NOT_HERE_TEXT)
                return
            topic = render.clean_topic(topic)
            if not topic:
                await self.tell(interaction, render.BAD_TOPIC_TEXT)
                return
            follows = await self.off_loop(self.conversations.follows, channel_id)
            if len(follows) >= MAX_FOLLOWS_PER_CHANNEL:
                await self.tell(interaction, f"<#{channel_id}> already follows {MAX_FOLLOWS_PER_CHANNEL} topics, the "
                                             "most it may; /unfollow one first.")
                return
            added = await self.off_loop(self.conversations.follow, channel_id, topic, interaction.guild_id)
            text = (f"<#{channel_id}> now follows “{render.escape(topic)}”: new matching articles are posted there."
                    if added else f"<#{channel_id}> already follows “{render.escape(topic)}”.")
            await self.tell(interaction, text)
        except Exception as err:
            await self.apologize(interaction, err)

    async def unfollow_command(self, interaction: discord.Interaction, topic: str) -> None:
        """``/unfollow topic:``: editors only; the answer is private."""
        try:
            refusal = (self._refusal(interaction.guild_id, interaction.channel_id, _parent_id(interaction.channel))
                       or self._editor_refusal(interaction.user, "unfollow topics"))
            if refusal is not None or interaction.channel_id is None:
                await self.tell(interaction, refusal or render.NOT_HERE_TEXT)
                return
            topic = render.clean_topic(topic)
            removed = await self.off_loop(self.conversations.unfollow, interaction.channel_id, topic)
            await self.tell(interaction, f"This channel no longer follows “{render.escape(topic)}”." if removed else
                            f"This channel doesn't follow “{render.escape(topic)}”; /following lists its topics.")
        except Exception as err:
            await self.apologize(interaction, err)

    async def following_command(self, interaction: discord.Interaction) -> None:
        """``/following``: the topics of this channel, privately."""
        try:
            follows = await self.off_loop(self.conversations.follows, interaction.channel_id)
            await self.tell(interaction, render.following_text([f.topic for f in follows]))
        except Exception as err:
            await self.apologize(interaction, err)

    async def watch_follows(self) -> None:
        """Forever: a digest round every ``follow_poll_seconds``, or at once after this bot added articles."""
        while True:
            try:
                await self.digest_round()
            except Exception:
                log.exception("a digest round failed; trying again next round")
            try:
                await asyncio.wait_for(self.index_changed.wait(), self.config.follow_poll_seconds)
            except TimeoutError:
                pass
            self.index_changed.clear()

    async def digest_round(self) -> int:
        """Post one digest per channel whose followed topics match articles new since the last round; returns
        how many were posted. The first round only notes which articles exist (nothing is new to it)."""
        version = await self.off_loop(self.library.version)
        if version == self._known_version:
            return 0
        ids = await self.off_loop(self.library.article_ids)
        known, self._known, self._known_version = self._known, ids, version
        new = ids - known if known is not None else frozenset()
        if not new:
            return 0
        topics: dict[int, list[str]] = {}
        for f in await self.off_loop(self.conversations.follows):
            topics.setdefault(f.channel_id, []).append(f.topic)
        posted = 0
        for channel_id, wanted in topics.items():
            posted += await self._post_digest(channel_id, wanted, new)
        return posted

    async def _post_digest(self, channel_id: int, topics: list[str], new: frozenset[str]) -> int:
        search: TopicSearch = self.library
        lines, more = await self.off_loop(digest, search, topics, new, min_similarity=self.config.follow_min_similarity,
                                          most=self.config.digest_lines)
        if not lines:
            return 0
        fresh = set(await self.off_loop(self.conversations.claim, channel_id, [line.article_id for line in lines]))
        lines = [line for line in lines if line.article_id in fresh]  # another bot process posted the rest
        if not lines:
            return 0
        try:
            channel = self.client.get_channel(channel_id) or await self.client.fetch_channel(channel_id)
            if not isinstance(channel, discord.abc.Messageable):
                return 0
            await channel.send(render.digest_text(lines, more), allowed_mentions=NO_MENTIONS, suppress_embeds=True)
        except discord.HTTPException as err:
            log.warning("could not post a digest to channel %s (%s): grant Send Messages there, or /unfollow",
                        channel_id, err)
            return 0
        return 1

    async def source_autocomplete(self, interaction: discord.Interaction,
                                  current: str) -> list[app_commands.Choice[str]]:
        try:
            outlets = await self.outlets()
        except Exception:
            log.warning("could not list outlets for autocomplete", exc_info=True)
            return []
        return [app_commands.Choice(name=o, value=o) for o in render.source_choices(outlets, current)]

    async def sources_command(self, interaction: discord.Interaction) -> None:
        """``/sources`` and ``/newsbot-info``: what the index holds, privately."""
        try:
            await interaction.response.defer(ephemeral=True, thinking=True)
            stats = await self.off_loop(self.library.stats)
            await interaction.followup.send(render.render_stats(stats), ephemeral=True, allowed_mentions=NO_MENTIONS,
                                            suppress_embeds=True)
        except Exception as err:
            await self.apologize(interaction, err)

    async def outlets(self) -> list[str]:
        """The outlets in the index (from the host's lexical index; cached for OUTLETS_TTL seconds)."""
        now = time.monotonic()
        if self._outlets is None or now - self._outlets[0] > OUTLETS_TTL:
            self._outlets = (now, await self.off_loop(self.library.outlets))
        return self._outlets[1]

    async def _outlet(self, typed: str) -> str:
        outlets = await self.outlets()
        for o in outlets:
            if o.casefold() == typed.strip().casefold():
                return o
        close = render.source_choices(outlets, typed)[:5]
        hint = f"; did you mean {', '.join(close)}?" if close else "; /sources lists them"
        raise NewsbotError(f"I don't know an outlet called “{render.escape(typed.strip()[:100])}”{hint}")

    # -- buttons ----------------------------------------------------------------------------------------------------
    async def show_passages(self, interaction: discord.Interaction, answer: Answer) -> None:
        pieces = render.cap(render.split_message(render.render_passages(answer)))
        await interaction.response.send_message(pieces[0], ephemeral=True, allowed_mentions=NO_MENTIONS,
                                                suppress_embeds=True)
        for piece in pieces[1:]:
            await interaction.followup.send(piece, ephemeral=True, allowed_mentions=NO_MENTIONS, suppress_embeds=True)

    async def vote(self, interaction: discord.Interaction, view: AnswerView, vote: str) -> None:
        """Record 👍/👎; the same vote again retracts it (appended as a ``retract`` record)."""
        user = user_hash(interaction.user.id)
        previous = view.votes.get(user)
        retract = previous == vote
        if retract:
            del view.votes[user]
        else:
            view.votes[user] = vote
        answer = view.answer.as_dict()
        entry = {"time": datetime.now(UTC).isoformat(timespec="seconds"), "answer_id": view.answer_id,
                 "user": user, "vote": "retract" if retract else vote, "previous": previous,
                 **{k: answer[k] for k in ("question", "standalone_question", "answer", "abstained", "citations")}}
        await self.off_loop(self.feedback.record, entry)
        emoji = "👍" if vote == "up" else "👎"
        text = f"Your {emoji} is withdrawn." if retract else f"Thanks, noted {emoji}. Press it again to withdraw."
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)

    # -- mentions, DMs and threads -------------------------------------------------------------------------------
    async def on_message(self, message: discord.Message) -> None:
        me = self.client.user
        if me is None or message.author.bot or message.author.id == me.id:
            return
        channel = message.channel
        mine = [r for r in message.role_mentions if r.tags is not None and r.tags.bot_id == me.id]
        mentioned = any(u.id == me.id for u in message.mentions) or bool(mine)  # the bot or its own role
        dm = message.guild is None
        if not (dm or mentioned) and {channel.id, _parent_id(channel)} & self.config.link_channel_ids:
            links = render.links_in(message.content)
            if links and self._refusal(message.guild.id, channel.id, _parent_id(channel)) is None:  # type: ignore[union-attr]
                await self._add_posted_links(message, links)
                return
        own_thread = isinstance(channel, discord.Thread) and (channel.owner_id == me.id
                                                               or await self._remembers(channel.id))
        if not (dm or mentioned or own_thread):
            return
        if self._refusal(None if dm else message.guild.id, channel.id, _parent_id(channel)) is not None:  # type: ignore[union-attr]
            if dm:
                await message.reply(render.DMS_OFF_TEXT, allowed_mentions=NO_MENTIONS)
            return
        question = re.sub(rf"<@!?{me.id}>", " ", message.content)
        for role in mine:
            question = question.replace(f"<@&{role.id}>", " ")
        question = question.strip()
        if not question:
            if mentioned or dm:
                await message.reply(HELLO_TEXT, allowed_mentions=NO_MENTIONS)
            return  # an unmentioned thread message without content: no message-content intent
        wait = self.cooldown.wait(message.author.id)
        if wait:
            await message.reply(render.cooldown_text(wait), allowed_mentions=NO_MENTIONS, delete_after=NOTICE_SECONDS)
            return
        ticket = self.gate.join()
        if ticket is None:
            await message.reply(render.BUSY_TEXT, allowed_mentions=NO_MENTIONS, delete_after=NOTICE_SECONDS)
            return
        try:
            await self._answer_message(message, question, ticket, dm=dm, own_thread=own_thread)
        finally:
            self.gate.leave(ticket)

    async def _answer_message(self, message: discord.Message, question: str, ticket: Ticket, *, dm: bool,
                              own_thread: bool) -> None:
        channel = message.channel
        target: discord.abc.Messageable = channel
        key: int | None = channel.id if (dm or own_thread) else None
        first_reply = True
        draft: list[discord.Message] = []  # the message showing the streamed draft, once there is one
        try:
            if not (dm or own_thread) and self.config.threads and not isinstance(channel, discord.Thread):
                try:
                    thread = await message.create_thread(name=render.thread_name(question))
                    target, key, first_reply = thread, thread.id, False
                    await self.off_loop(self.conversations.start, thread.id)
                except (discord.HTTPException, ValueError) as err:
                    log.warning("could not open a thread (%s): grant Create Public Threads; answering in place", err)
            if ticket.position:
                await self._send(message, target, first_reply, render.queue_text(ticket.position))
            async with target.typing():
                await self.gate.ready(ticket)
                history = await self.off_loop(self.conversations.history, key)
                if self.streams:
                    async def show(text: str, view: discord.ui.View) -> None:
                        if draft:
                            await draft[0].edit(content=text, view=view, allowed_mentions=NO_MENTIONS)
                        else:
                            draft.append(await self._send(message, target, first_reply, text, view))

                    answer = await self.stream_answer(question, history, NO_FILTERS, message.author.id, show,
                                                      message.created_at)
                else:
                    answer = await self.off_loop(self.app.ask, question, history, as_of=message.created_at)
            await self._remember(key, answer)
            pieces = render.answer_messages(answer)
            view = AnswerView(self, answer, self.config.view_timeout)
            for i, piece in enumerate(pieces):
                last = i == len(pieces) - 1
                if i == 0 and draft:  # the verified answer replaces the draft in the same message
                    await draft[0].edit(content=piece, view=view if last else None, allowed_mentions=NO_MENTIONS)
                    sent = draft[0]
                else:
                    sent = await self._send(message, target, first_reply and i == 0, piece, view if last else None)
                if last:
                    view.message = sent
        except Exception as err:
            if not isinstance(err, NewsbotError):
                log.exception("answering a message failed")
            text = str(err) if isinstance(err, NewsbotError) else render.APOLOGY_TEXT
            try:
                if draft:
                    await draft[0].edit(content=text, view=None, allowed_mentions=NO_MENTIONS)
                else:
                    await self._send(message, target, first_reply, text)
            except Exception:
                log.exception("could not even apologize")

    async def _send(self, message: discord.Message, target: discord.abc.Messageable, reply: bool, text: str,
                    view: discord.ui.View | None = None) -> discord.Message:
        extra: dict[str, Any] = {"view": view} if view is not None else {}
        if reply:
            return await message.reply(text, allowed_mentions=NO_MENTIONS, suppress_embeds=True, **extra)
        return await target.send(text, allowed_mentions=NO_MENTIONS, suppress_embeds=True, **extra)

    # -- replies ---------------------------------------------------------------------------------------------------
    async def _send_answer(self, interaction: discord.Interaction, answer: Answer, *, replace_notice: bool) -> None:
        """The answer as follow-ups (the first one replaces the "thinking…" message, or the queue notice)."""
        pieces = render.answer_messages(answer)
        view = AnswerView(self, answer, self.config.view_timeout)
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            extra: dict[str, Any] = {"view": view} if last else {}
            if i == 0 and replace_notice:  # view=None removes a draft's Stop button
                sent = await interaction.edit_original_response(content=piece, allowed_mentions=NO_MENTIONS,
                                                                view=view if last else None)
            else:
                sent = await interaction.followup.send(piece, allowed_mentions=NO_MENTIONS, suppress_embeds=True,
                                                       wait=last, **extra)
            if last:
                view.message = sent

    async def tell(self, interaction: discord.Interaction, text: str) -> None:
        """A short private reply, whether or not the interaction was already acknowledged."""
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
        else:
            await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)

    async def apologize(self, interaction: discord.Interaction, error: BaseException) -> None:
        """The user-safe message of a NewsbotError, or a generic apology (traceback to the log only)."""
        if isinstance(error, NewsbotError):
            text = str(error)
        else:
            log.error("interaction failed", exc_info=error)
            text = render.APOLOGY_TEXT
        try:
            await self.tell(interaction, text)
        except Exception:
            log.exception("could not even apologize")

    async def _on_tree_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        await self.apologize(interaction, getattr(error, "original", error))

    def _refusal(self, guild_id: int | None, channel_id: int | None, parent_id: int | None) -> str | None:
        """Why the bot won't answer here (allow-lists, DMs off), or None."""
        c = self.config
        if guild_id is None:
            return None if c.allow_dms else render.DMS_OFF_TEXT
        if c.allowed_guild_ids and guild_id not in c.allowed_guild_ids:
            return render.NOT_HERE_TEXT
        if c.allowed_channel_ids and not ({channel_id, parent_id} & c.allowed_channel_ids):
            return render.NOT_HERE_TEXT
        return None


async def _quietly(call: Awaitable[object]) -> None:
    try:
        await call
    except Exception:
        log.debug("could not tidy up a draft", exc_info=True)


def _parent_id(channel: object) -> int | None:
    return channel.parent_id if isinstance(channel, discord.Thread) else None


def run_discord(answerer: Asker, index: Index, settings: Settings) -> int:
    """``newsbot discord``: run until interrupted; a missing or rejected token is a one-line NewsbotError."""
    token = settings.discord_token.get_secret_value().strip() if settings.discord_token else ""
    if not token:
        raise NewsbotError(MISSING_TOKEN)
    config = DiscordConfig.from_settings(settings)

    def warm_up() -> None:
        if not index.stats().articles:
            log.warning("no articles are indexed in %s: every answer will be an abstention until `newsbot ingest` "
                        "adds some", settings.data_dir)
        index.warm()

    if not config.message_content:
        log.warning("NEWSBOT_DISCORD_MESSAGE_CONTENT=false: /ask, mentions and DMs work; follow-ups in threads "
                    "need a mention")
    try:
        try:
            NewsBot(answerer, index, config, warm_up=warm_up).client.run(token, log_handler=None)
        except discord.PrivilegedIntentsRequired:
            log.warning("the message-content intent is not enabled for this application in the developer portal "
                        "(Bot → Privileged Gateway Intents): serving /ask, mentions and DMs only; thread follow-ups "
                        "need a mention. Enable it there, or set NEWSBOT_DISCORD_MESSAGE_CONTENT=false.")
            NewsBot(answerer, index, replace(config, message_content=False),
                    warm_up=warm_up).client.run(token, log_handler=None)
    except discord.LoginFailure:
        raise NewsbotError(REJECTED_TOKEN) from None
    except (OSError, aiohttp.ClientError, discord.GatewayNotFound) as err:
        log.debug("could not connect to Discord", exc_info=True)
        raise NewsbotError(f"could not connect to Discord ({type(err).__name__}): check the network and try "
                           "again") from None
    return 0
