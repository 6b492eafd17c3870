"""Shared fakes of our own seams and spec'd stand-ins for remote services, used by several test modules.

Nothing here talks to a network: the Discord objects are ``MagicMock(spec=...)`` of real discord.py types, the
chat model replies from a queue, and the embedder is a deterministic bag of words that really ranks."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
import re
import shutil
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import discord
import numpy as np
from discord import app_commands

from bot.conversation import Turn
from bot.discord_bot import DiscordConfig, NewsBot
from bot.llm import LLMError, Message
from bot.types import Answer, Citation, Statement
from index import NO_FILTERS, Filters, IndexStats, TimeIntent, terms, time_intent
from index.types import Passage, Sentence, TimedPassages


class NetworkBlocked(RuntimeError):
    """A test tried to reach a host that is not this machine (raised by conftest's socket guard)."""


ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE = ROOT / "data" / "trump-kim-letter.txt"
SECRET_VARS = ("DISCORD_TOKEN", "NEWSBOT_LLM_API_KEY", "OPENAI_API_KEY")
NEWSBOT = [sys.executable, "-m", "bot"]
ME = 4242
SENT_AT = datetime(2024, 3, 6, 18, 30, tzinfo=UTC)  # when the fake Discord messages and interactions were sent


class HashEmbedder:
    """A deterministic bag-of-words embedding that really ranks (shared words → higher cosine); test seam only."""

    name = "test/hash-bow"
    dim = 256

    def tokenize(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        ids, offsets = [], []
        for m in re.finditer(r"\w+|[^\w\s]", text):
            ids.append(int(hashlib.md5(m.group().lower().encode()).hexdigest()[:6], 16) % 30000 + 1000)
            offsets.append((m.start(), m.end()))
        return ids, offsets

    def embed_ids(self, batch: Sequence[Sequence[int]]) -> np.ndarray:
        out = np.zeros((len(batch), self.dim), dtype=np.float32)
        for i, ids in enumerate(batch):
            for t in ids:
                out[i, t % self.dim] += 1.0
            norm = np.linalg.norm(out[i])
            if norm:
                out[i] /= norm
        return out

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_ids([self.tokenize(t)[0] for t in texts])


class ScriptedChat:
    """A chat model of our own seam (``bot.llm.ChatModel``) whose replies are queued; records every request.
    A queued exception is raised instead of replying. Stands in for a remote LLM server."""

    name = "scripted"

    def __init__(self, *replies: str | Exception) -> None:
        self.replies: deque[str | Exception] = deque(replies)
        self.requests: list[list[Message]] = []

    def _next(self, messages: Sequence[Message]) -> str:
        self.requests.append(list(messages))
        if not self.replies:
            raise LLMError("the scripted chat model has no reply left")
        reply = self.replies.popleft()
        if isinstance(reply, Exception):
            raise reply
        return reply

    def chat(self, messages: Sequence[Message], *, deadline: float) -> str:
        return self._next(messages)

    def stream(self, messages: Sequence[Message], *, deadline: float) -> Iterator[str]:
        reply = self._next(messages)
        for i in range(0, len(reply), 16):
            yield reply[i:i + 16]


def passage(chunk_id: str, text: str, *, score: float = 1.0, dense: float = 0.8, title: str = "A story",
            source: str = "Gazette", published_at: str = "2024-03-04T09:00:00+00:00", url: str = "",
            kinds: dict[str, str] | None = None) -> Passage:
    """A retrieved passage whose sentences are split on '. ' (kinds by sentence text; default prose)."""
    sentences = [s if s.endswith((".", "?", "!")) else s + "." for s in re.split(r"(?<=[.!?])\s+", text) if s]
    kinds = kinds or {}
    return Passage(chunk_id=chunk_id, article_id=chunk_id.split(":")[0], text=text, score=score, title=title,
                   source=source, url=url, published_at=published_at, dense=dense,
                   sentences=tuple(Sentence(s, tuple(terms(s)), kinds.get(s, "prose")) for s in sentences))


class FakeSearch:
    """A search of our own seam (``bot.answering.Search``): returns fixed passages, ranks nothing, and gives every
    term the same weight unless told otherwise; records the queries."""

    def __init__(self, passages: Sequence[Passage], weights: dict[str, float] | None = None) -> None:
        self.passages = list(passages)
        self.weights = weights or {}
        self.queries: list[tuple[str, int, Filters]] = []

    def search(self, question: str, k: int = 10, filters: Filters = NO_FILTERS) -> list[Passage]:
        self.queries.append((question, k, filters))
        return self.passages[:k]

    def time_intent(self, question: str, as_of: date) -> TimeIntent:
        return time_intent(question, as_of)

    def search_time(self, question: str, k: int = 10, filters: Filters = NO_FILTERS, *, window: Any = None,
                    recency: bool = False, as_of: date | None = None, topic: str = "") -> TimedPassages:
        return TimedPassages(self.search(question, k, filters), window)

    def term_weights(self, text: str) -> dict[str, float]:
        return {t: self.weights.get(t, 1.0) for t in terms(text)}

    def outlets(self) -> list[str]:
        return sorted({p.source for p in self.passages if p.source})

    def unknown_terms(self, words: Sequence[str]) -> list[str]:
        known = {t for p in self.passages for s in p.sentences for t in s.terms}
        return [w for w in words if any(t not in known for t in terms(w))]


def make_settings(data_dir: Path, **kw: object):  # type: ignore[no-untyped-def]
    from bot.settings import Settings

    return Settings(_env_file=None, data_dir=data_dir, **kw)  # type: ignore[call-arg]


# -- Discord: a scripted answering core and spec'd discord.py objects -------------------------------------------
class ScriptedApp:
    """A fake of our own seams ``bot.discord_bot.Asker`` (the Answerer) and ``Library`` (the Index): answers every
    question with a real ``Answer``, records the calls, and lists a fixed set of outlets."""

    def __init__(self, events: list[Any] | None = None, *, delay: float = 0.0, error: Exception | None = None,
                 gate: threading.Event | None = None, outlets: list[str] | None = None) -> None:
        self.events = events if events is not None else []
        self.delay, self.error, self.gate = delay, error, gate
        self.known_outlets = outlets if outlets is not None else ["Market Wire", "Riverside Gazette"]
        self.calls: list[tuple[str, list[Turn], Filters]] = []
        self.as_of: list[datetime | None] = []

    def ask(self, question: str, history: list[Turn] | None = None, *, top_k: int | None = None,
            filters: Filters = NO_FILTERS, as_of: datetime | None = None) -> Answer:
        self.calls.append((question, list(history or []), filters))
        self.as_of.append(as_of)
        self.events.append(("ask", question))
        if self.gate is not None:
            assert self.gate.wait(10)
        time.sleep(self.delay)
        if self.error is not None:
            raise self.error
        standalone = f"{question} (following up on: {history[-1].standalone})" if history else question
        return make_answer(question, standalone)

    def outlets(self) -> list[str]:
        return list(self.known_outlets)

    def stats(self) -> IndexStats:
        return IndexStats(articles=6, chunks=9, sources=tuple(self.known_outlets),
                          first_published="2024-03-04T09:00:00+00:00", last_published="2024-07-22T07:15:00+00:00",
                          data_dir="/tmp/x", chroma_mode="embedded", chroma_location="/tmp/x/chroma",
                          embedding_model="test/hash-bow")


def make_answer(question: str, standalone: str = "", text: str = "The council voted 7-2 @everyone.") -> Answer:
    c = Citation(n=1, article_id="a1", chunk_id="a1:0", title="Council approves bike lanes", source="Riverside Gazette",
                 url="https://gazette.example/bike", published_at="2024-03-04T09:00:00+00:00",
                 quotes=("The city council voted 7-2 on Monday.",), score=0.9)
    return Answer(question=question, statements=(Statement(text, (1,)),), citations=(c,), abstained=False,
                  standalone_question=standalone or question)


# -- spec'd discord.py objects ---------------------------------------------------------------------------------
def make_interaction(events: list[Any], *, user_id: int = 1, guild_id: int | None = 10, channel_id: int = 20,
                     channel: Any = None) -> MagicMock:
    """A ``discord.Interaction`` whose response and follow-up webhook are spec'd too; calls land in ``events``."""
    it = MagicMock(spec=discord.Interaction)
    it.user = MagicMock(spec=discord.Member)
    it.user.id = user_id
    it.guild_id, it.channel_id = guild_id, channel_id
    it.created_at = SENT_AT
    it.channel = channel if channel is not None else MagicMock(spec=discord.TextChannel)
    response = MagicMock(spec=discord.InteractionResponse)
    state = {"done": False}
    response.is_done.side_effect = lambda: state["done"]

    def recorder(name: str, finishes: bool = False):  # type: ignore[no-untyped-def]
        async def record(*args: Any, **kwargs: Any) -> Any:
            events.append((name, args, kwargs))
            if finishes:
                state["done"] = True
            return MagicMock(spec=discord.WebhookMessage)
        return record

    response.defer.side_effect = recorder("defer", True)
    response.send_message.side_effect = recorder("send_message", True)
    it.response = response
    it.followup = MagicMock(spec=discord.Webhook)
    it.followup.send.side_effect = recorder("followup")
    it.edit_original_response.side_effect = recorder("edit_original")
    return it


def sends(events: list[Any]) -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:
    return [e for e in events if e[0] in ("send_message", "followup", "edit_original", "reply", "send")]


def text_of(event: tuple[str, tuple[Any, ...], dict[str, Any]]) -> str:
    return event[1][0] if event[1] else event[2].get("content", "")


def assert_never_pings(events: list[Any]) -> None:
    out = sends(events)
    assert out, "nothing was sent"
    for name, _, kwargs, *_ in out:
        am = kwargs.get("allowed_mentions")
        assert isinstance(am, discord.AllowedMentions), name
        assert (am.everyone, am.users, am.roles, am.replied_user) == (False, False, False, False), name


def make_bot(app: Any, tmp_path: Path, clock: list[float] | None = None, **config: Any) -> NewsBot:
    t = clock if clock is not None else [1000.0]
    config.setdefault("store_path", tmp_path / "discord.sqlite3")
    cfg = DiscordConfig(feedback_path=tmp_path / "feedback.jsonl", **config)
    return NewsBot(app, app, cfg, clock=lambda: t[0])


async def slash(bot: NewsBot, name: str, interaction: Any, *args: Any, **kwargs: Any) -> None:
    """Invoke a registered slash command's callback, as discord.py would after parsing the options."""
    command = bot.tree.get_command(name)
    assert isinstance(command, app_commands.Command)
    await command.callback(interaction, *args, **kwargs)  # type: ignore[arg-type]


def me_user() -> MagicMock:
    me = MagicMock(spec=discord.ClientUser)
    me.id = ME
    return me


def make_message(events: list[Any], content: str, *, channel: Any, guild_id: int | None = 10,
                 mentions: list[Any] | None = None, author_id: int = 5, bot_author: bool = False) -> MagicMock:
    msg = MagicMock(spec=discord.Message)
    msg.content = content
    msg.created_at = SENT_AT
    msg.author = MagicMock(spec=discord.Member)
    msg.author.id, msg.author.bot = author_id, bot_author
    msg.mentions = mentions or []
    msg.role_mentions = []
    msg.channel = channel
    if guild_id is None:
        msg.guild = None
    else:
        msg.guild = MagicMock(spec=discord.Guild)
        msg.guild.id = guild_id

    async def reply(*args: Any, **kwargs: Any) -> Any:
        events.append(("reply", args, kwargs))
        return MagicMock(spec=discord.Message)

    msg.reply.side_effect = reply
    return msg


def make_channel(events: list[Any], kind: type, channel_id: int, **attrs: Any) -> MagicMock:
    ch = MagicMock(spec=kind)
    ch.id = channel_id
    for k, v in attrs.items():
        setattr(ch, k, v)

    async def send(*args: Any, **kwargs: Any) -> Any:
        events.append(("send", args, kwargs, channel_id))
        return MagicMock(spec=discord.Message)

    ch.send.side_effect = send
    return ch


# Runs the real command with one chromadb Collection method wrapped: the process SIGKILLs itself right before
# (or right after) the Nth call of that method on the chunk collection or on the article catalogue.
KILLER = """
import os, signal, sys
from chromadb.api.models.Collection import Collection
method, target, nth, when = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
original = getattr(Collection, method)
calls = [0]
def wrapped(self, *args, **kwargs):
    mine = self.name.endswith("_articles") == (target == "catalogue")
    if mine:
        calls[0] += 1
    if mine and calls[0] == nth and when == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    result = original(self, *args, **kwargs)
    if mine and calls[0] == nth and when == "after":
        os.kill(os.getpid(), signal.SIGKILL)
    return result
setattr(Collection, method, wrapped)
from bot.cli import main
sys.exit(main(sys.argv[5:]))
"""


def copy_sample(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(SAMPLE, dest / SAMPLE.name))


def in_process_cli(monkeypatch: Any, capsys: Any) -> Any:
    """``run(*args, stdin="")`` calls ``bot.cli.main`` in this process and returns (exit code, stdout, stderr);
    the log handlers main() adds are removed again after each call."""
    from bot.cli import main

    def run(*args: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        root = logging.getLogger()
        before = list(root.handlers)
        try:
            code = main(list(args))
        finally:
            for h in root.handlers[:]:
                if h not in before:
                    root.removeHandler(h)
                    h.close()
        out, err = capsys.readouterr()
        return code, out, err

    return run


@contextlib.asynccontextmanager
async def loop_ticks(every: float = 0.01) -> AsyncIterator[list[float]]:
    """The times at which a task that wakes every ``every`` seconds ran, while the block runs: gaps between them
    are how long the event loop was blocked."""
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.perf_counter())
            await asyncio.sleep(every)

    task = asyncio.create_task(ticker())
    try:
        yield ticks
    finally:
        task.cancel()
