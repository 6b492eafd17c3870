"""The Discord front end: a thin shell that translates slash commands, messages and buttons into Answerer calls
and answers into messages (the only module importing discord); its policies live in ``bot.discord_policy``."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import aiohttp
import discord
from discord import app_commands

from bot import discord_render as render
from bot.conversation import Turn
from bot.discord_policy import Conversations, Cooldown, FeedbackLog, Gate, Ticket, user_hash
from bot.types import Answer
from index import NO_FILTERS, Filters, IndexStats, date_filters
from index.errors import NewsbotError

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


class Asker(Protocol):
    """What the bot needs from the answering core (``bot.answering.Answerer`` provides it)."""

    def ask(self, question: str, history: list[Turn] | None = None, *, top_k: int | None = None,
            filters: Filters = NO_FILTERS, as_of: datetime | None = None) -> Answer: ...


class Library(Protocol):
    """What the bot shows of the index (``index.Index`` provides it)."""

    def outlets(self) -> list[str]: ...

    def stats(self) -> IndexStats: ...


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
    history_turns: int = 6  # earlier turns of a thread used to resolve a follow-up
    conversations: int = 1000  # threads/DMs whose history is remembered (least recently used dropped)
    view_timeout: float = 3600.0  # seconds the buttons under an answer keep working

    @classmethod
    def from_settings(cls, settings: Settings) -> DiscordConfig:
        s = settings
        return cls(guild_id=s.discord_guild_id, cooldown_seconds=s.discord_cooldown_seconds,
                   max_in_flight=s.discord_max_in_flight, max_queue=s.discord_max_queue,
                   allowed_guild_ids=frozenset(s.discord_allowed_guild_ids),
                   allowed_channel_ids=frozenset(s.discord_allowed_channel_ids), allow_dms=s.discord_allow_dms,
                   threads=s.discord_threads, message_content=s.discord_message_content,
                   shards=s.discord_shards, feedback_path=s.data_dir / "feedback.jsonl")


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


class _Client(discord.Client):
    """One gateway connection; its setup hook is the bot's."""

    def __init__(self, hook: Callable[[], Awaitable[None]], **options: Any) -> None:
        super().__init__(**options)
        self._hook = hook

    async def setup_hook(self) -> None:
        await self._hook()


class _ShardedClient(discord.AutoShardedClient):
    """Several gateway connections (NEWSBOT_DISCORD_SHARDS); its setup hook is the bot's."""

    def __init__(self, hook: Callable[[], Awaitable[None]], **options: Any) -> None:
        super().__init__(**options)
        self._hook = hook

    async def setup_hook(self) -> None:
        await self._hook()


class NewsBot:
    """Slash commands, mentions, DMs and threads over an ``Asker``; every reply goes through this class."""

    def __init__(self, app: Asker, library: Library, config: DiscordConfig = DiscordConfig(), *,
                 clock: Callable[[], float] = time.monotonic, warm_up: Callable[[], object] | None = None) -> None:
        self.app, self.library, self.config, self.warm_up = app, library, config, warm_up
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
        self.gate = Gate(config.max_in_flight, config.max_queue)
        self.conversations = Conversations(config.conversations, config.history_turns)
        self.feedback = FeedbackLog(config.feedback_path)
        self._outlets: tuple[float, list[str]] | None = None
        self._register_commands()

    # -- the one seam where blocking work leaves the event loop -------------------------------------------------
    async def off_loop(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run embedding, Chroma, BM25, answer composition or file I/O in a worker thread."""
        return await asyncio.to_thread(fn, *args, **kwargs)

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

    async def ask_command(self, interaction: discord.Interaction, question: str, *, source: str | None = None,
                          since: str | None = None, until: str | None = None) -> None:
        """``/ask``: checks (answered ephemerally), defer, wait for a slot, answer off the loop, follow up."""
        ticket: Ticket | None = None
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
            key = interaction.channel_id if interaction.channel_id in self.conversations else None
            await self.gate.ready(ticket)
            answer = await self.off_loop(self.app.ask, question, self.conversations.history(key), filters=filters,
                                         as_of=interaction.created_at)  # "this week" is the asker's week
            if key is not None:
                self.conversations.add(key, Turn(answer.question, answer.standalone_question or answer.question))
            await self._send_answer(interaction, answer, replace_notice=bool(ticket.position))
        except Exception as err:
            await self.apologize(interaction, err)
        finally:
            if ticket is not None:
                self.gate.leave(ticket)

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
        """The outlets in the index (from its search snapshot; cached for OUTLETS_TTL seconds)."""
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
        own_thread = isinstance(channel, discord.Thread) and (channel.id in self.conversations
                                                               or channel.owner_id == me.id)
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
        try:
            if not (dm or own_thread) and self.config.threads and not isinstance(channel, discord.Thread):
                try:
                    thread = await message.create_thread(name=render.thread_name(question))
                    target, key, first_reply = thread, thread.id, False
                    self.conversations.start(thread.id)
                except (discord.HTTPException, ValueError) as err:
                    log.warning("could not open a thread (%s): grant Create Public Threads; answering in place", err)
            if ticket.position:
                await self._send(message, target, first_reply, render.queue_text(ticket.position))
            async with target.typing():
                await self.gate.ready(ticket)
                answer = await self.off_loop(self.app.ask, question, self.conversations.history(key),
                                             as_of=message.created_at)
            if key is not None:
                self.conversations.add(key, Turn(answer.question, answer.standalone_question or answer.question))
            pieces = render.answer_messages(answer)
            view = AnswerView(self, answer, self.config.view_timeout)
            for i, piece in enumerate(pieces):
                last = i == len(pieces) - 1
                sent = await self._send(message, target, first_reply and i == 0, piece, view if last else None)
                if last:
                    view.message = sent
        except Exception as err:
            if not isinstance(err, NewsbotError):
                log.exception("answering a message failed")
            text = str(err) if isinstance(err, NewsbotError) else render.APOLOGY_TEXT
            try:
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
            if i == 0 and replace_notice:
                sent = await interaction.edit_original_response(content=piece, allowed_mentions=NO_MENTIONS, **extra)
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
