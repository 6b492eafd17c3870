"""Figures for the bot living in a channel (docs/discord.md), offline:

    .venv/bin/python bench/channel.py store [--turns 10000]
    .venv/bin/python bench/channel.py calibrate [--model-cache DIR]
    .venv/bin/python bench/channel.py examples [--model-cache DIR]
    .venv/bin/python bench/channel.py digest [--new 50] [--base 200] [--model-cache DIR] [--hash] [--poll-only]
                                             [--other-process] [--test-corpus]

``store``: the conversation store's file size after N turns (the default bounds, and unbounded).
``calibrate``: the dense cosine of each topic's best passage per article on the test corpus (tests/fixtures
plus tests/test_fetch.py's three pages), for choosing NEWSBOT_DISCORD_FOLLOW_MIN_SIMILARITY.
``digest``: BBC News articles (/work/shared/data/bbc-news): a base index, then N new articles ingested while the
bot's follow watcher runs with three followed topics; prints ingest → post latency, the lines posted, and the
longest event-loop stall seen by a 5 ms probe task during the digest round.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import discord  # noqa: E402

from bot.conversation import Turn  # noqa: E402
from bot.conversation_store import ConversationStore  # noqa: E402
from bot.discord_bot import DiscordConfig, NewsBot  # noqa: E402
from bot.wiring import Services  # noqa: E402
from index.types import Article, Filters  # noqa: E402

BBC = Path("/work/shared/data/bbc-news")
TOPICS = {20: ["football injuries"], 21: ["oil prices"], 22: ["general election campaign"]}
TEST_TOPICS = {20: ["reservoir water levels"], 21: ["rail travel"], 22: ["vaccines"]}


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def store(turns: int) -> None:
    rnd = random.Random(0)
    words = "council vote bike lanes budget harbour ferry storm drought reservoir rail strike election".split()
    for label, most, keep in (("default bounds (1,000 conversations × 6 turns)", 1000, 6),
                              ("unbounded (every turn kept)", 10**9, 10**9)):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "discord.sqlite3"
            s = ConversationStore(path, most=most, turns=keep)
            started = time.perf_counter()
            for i in range(turns):
                q = " ".join(rnd.choice(words) for _ in range(12)) + "?"
                s.add(10**17 + i // 4, Turn(q, q + " (following up on the earlier question about the budget)"),
                      [f"{rnd.getrandbits(64):016x}" for _ in range(3)])
            took = time.perf_counter() - started
            s._read("PRAGMA wal_checkpoint(TRUNCATE)")
            rows = s._read("SELECT COUNT(*) FROM turns")[0][0]
            print(f"{label}: {turns:,} turns in {took:.1f} s ({took / turns * 1000:.2f} ms each); "
                  f"{len(s):,} conversations, {rows:,} turns kept; file {_size(path) / 1024:,.0f} KiB")
            s.close()


def _pages() -> list[Article]:
    """The three web pages of tests/test_fetch.py, as the fetcher would make them."""
    from index.load import article_id_for
    from tests.test_fetch import ARTICLES, OUTLET

    pages = []
    for n, (title, author, date, paras) in ARTICLES.items():
        url = f"https://valley.example/article/{n}"
        pages.append(Article(id=article_id_for(url, "", ""), title=title, body="\n".join(paras), source=OUTLET,
                             url=url, author=author, published_at=date))
    return pages


def _test_corpus(services: Services) -> frozenset[str]:
    """The test corpus in the index; returns the ids of its three web pages (the "new" articles)."""
    from tests.fakes import FIXTURES

    index = services.index
    index.ingest(index.load([FIXTURES / "articles.jsonl"]))
    pages = _pages()
    index.ingest(pages)
    return frozenset(p.id for p in pages)


def _services(data: Path, model_cache: Path | None, hash_embedder: bool) -> Services:
    from tests.fakes import HashEmbedder, make_settings

    kw: dict[str, Any] = {"model_cache_dir": model_cache} if model_cache else {}
    return Services(make_settings(data, **kw), embedder=HashEmbedder() if hash_embedder else None)


def calibrate(model_cache: Path | None) -> None:
    topics = ["reservoir water levels", "drought and water restrictions", "night trains", "rail travel",
              "repair cafe", "bike lanes", "city council decisions", "chess", "quarterly revenue",
              "harbor tech earnings", "climate change", "football transfers", "election results", "vaccines"]
    with tempfile.TemporaryDirectory() as tmp:
        services = _services(Path(tmp), model_cache, False)
        _test_corpus(services)
        index = services.index
        ids = index.article_ids()
        for topic in topics:
            best: dict[str, tuple[float, str]] = {}
            for p in index.search(topic, 40, Filters(articles=ids)):
                best.setdefault(p.article_id, (p.dense, p.title))
            top = sorted(best.values(), reverse=True)[:3]
            print(f"| {topic} | " + " | ".join(f"{d:.2f} {t[:40]}" for d, t in top) + " |")


def examples(model_cache: Path | None) -> None:
    """A digest and a streamed answer on the test corpus, rendered by the real renderer (for docs/discord.md)."""
    from bot import discord_render as render
    from bot.answering import Answerer
    from bot.follow import digest
    from tests.fakes import ScriptedChat

    with tempfile.TemporaryDirectory() as tmp:
        services = _services(Path(tmp), model_cache, False)
        pages = _test_corpus(services)
        index = services.index
        lines, more = digest(index, ["reservoir water levels", "rail travel"], pages,
                             min_similarity=DiscordConfig().follow_min_similarity, most=DiscordConfig().digest_lines)
        print("=== digest ===")
        print(render.digest_text(lines, more))
        reply = ("The council approved the Main Street bike lanes by seven votes to two [1]. Construction is "
                 "expected to begin in June [1]. Opponents said removing parking would hurt small shops [1].")
        answerer = Answerer(index, ScriptedChat(reply))
        draft = ""
        print("=== streamed answer: the edits (one per second) ===")
        shown = 0
        for item in answerer.ask_stream("What did the council decide about bike lanes?"):
            if isinstance(item, str):
                draft += item
                if len(draft) - shown >= 60:  # about what arrives in a second from a local model
                    print(render.draft_text(draft))
                    print("---")
                    shown = len(draft)
            else:
                print("=== final ===")
                print("\n".join(render.answer_messages(item)))


def _bbc(n: int, skip: int) -> list[Article]:
    files = sorted(BBC.glob("*/*.txt"))
    random.Random(1).shuffle(files)
    out = []
    for f in files[skip: skip + n]:
        text = f.read_bytes().decode("utf-8", "replace")
        title, _, body = text.partition("\n")
        out.append(Article(id=f"bbc-{f.parent.name}-{f.stem}", title=title.strip(), body=body.strip(),
                           source=f"BBC {f.parent.name}", url=f"https://bbc.example/{f.parent.name}/{f.stem}",
                           published_at="2005-01-01T00:00:00+00:00"))
    return out


async def _digest(services: Services, new: list[Article], poll: float, poll_only: bool, other_process: bool,
                  base: int, hash_embedder: bool, test_corpus: bool = False) -> None:
    config = DiscordConfig(feedback_path=None, store_path=services.settings.data_dir / "discord.sqlite3",
                           follow_poll_seconds=poll)
    bot = NewsBot(services.answerer, services.index, config)
    for channel_id, topics in (TEST_TOPICS if test_corpus else TOPICS).items():
        for t in topics:
            bot.conversations.follow(channel_id, t, 1)
    posted: list[tuple[float, int, str]] = []

    def channel(cid: int) -> Any:
        ch = MagicMock(spec=discord.TextChannel)

        async def send(text: str, **kwargs: Any) -> None:
            posted.append((time.perf_counter(), cid, text))

        ch.send.side_effect = send
        return ch

    bot.client.get_channel = channel  # type: ignore[method-assign]
    lags: list[tuple[float, float]] = []  # (when, how late) per probe
    rounds: list[tuple[float, float]] = []
    digest_round = bot.digest_round

    async def timed_round() -> int:
        t = time.perf_counter()
        try:
            return await digest_round()
        finally:
            rounds.append((t, time.perf_counter()))

    bot.digest_round = timed_round  # type: ignore[method-assign]

    async def probe() -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append((t, time.perf_counter() - t - 0.005))

    await bot.digest_round()  # the watermark: what the base index holds
    watcher = asyncio.create_task(bot.watch_follows())
    prober = asyncio.create_task(probe())
    await asyncio.sleep(0.2)
    lags.clear()
    started = time.perf_counter()
    if other_process:  # as `newsbot ingest`/`watch` beside the bot: found by polling the version marker
        s = services.settings
        proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "ingest-bbc", "--data-dir", str(s.data_dir), "--new", str(len(new)),
            "--base", str(base), *(["--model-cache", str(s.model_cache_dir)] if s.model_cache_dir else []),
            *(["--hash"] if hash_embedder else []))
        await proc.wait()
    else:
        await asyncio.to_thread(services.index.ingest, new)  # as /add does
    ingested = time.perf_counter()
    if not (poll_only or other_process):
        bot.index_changed.set()  # what /add does; without it the watcher finds the change by polling
    while not posted and time.perf_counter() - ingested < 60:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.5)  # let the round finish (several channels)
    watcher.cancel()
    prober.cancel()
    during_ingest = sorted(x for t, x in lags if started <= t < ingested)
    if during_ingest:
        print(f"event-loop lag during the ingest ({'another process' if other_process else 'a worker thread'}): "
              f"max {during_ingest[-1] * 1000:.1f} ms, p99 {during_ingest[int(len(during_ingest) * 0.99)] * 1000:.1f} "
              f"ms, median {statistics.median(during_ingest) * 1000:.2f} ms over {len(during_ingest)} probes")
    if not posted:
        print("nothing posted")
        return
    first = posted[0][0]
    print(f"{len(new)} new articles ingested in {ingested - started:.2f} s; first digest posted "
          f"{first - ingested:.2f} s after the ingest returned ({first - started:.2f} s after it began); "
          f"{len(posted)} digests")
    for _, cid, text in posted:
        print(f"-- channel {cid}:\n{text}")
    busy = [r for r in rounds if r[1] > ingested]
    start, end = busy[0][0], busy[-1][1]
    print(f"digest round(s): {', '.join(f'{(b - a) * 1000:.0f} ms' for a, b in busy)}")
    for label, window in (("during the digest round", [x for t, x in lags if start <= t <= end]),):
        if window:
            window.sort()
            print(f"event-loop lag {label}: max {window[-1] * 1000:.1f} ms, p99 "
                  f"{window[int(len(window) * 0.99)] * 1000:.1f} ms, median {statistics.median(window) * 1000:.2f} "
                  f"ms over {len(window)} probes")


def digest(n_new: int, n_base: int, model_cache: Path | None, hash_embedder: bool, poll: float,
           poll_only: bool, other_process: bool, test_corpus: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        services = _services(Path(tmp), model_cache, hash_embedder)
        if test_corpus:  # tests/fixtures first; then the three web pages arrive as one ingest
            from tests.fakes import FIXTURES

            services.index.ingest(services.index.load([FIXTURES / "articles.jsonl"]))
            services.index.warm()
            asyncio.run(_digest(services, _pages(), poll, poll_only, False, 0, hash_embedder, True))
            return
        base = _bbc(n_base, 0)
        services.index.ingest(base)
        services.index.warm()
        asyncio.run(_digest(services, _bbc(n_new, n_base), poll, poll_only, other_process, n_base, hash_embedder))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["store", "calibrate", "digest", "examples", "ingest-bbc"])
    ap.add_argument("--data-dir", type=Path, default=None, help="ingest-bbc: the index to add the new articles to")
    ap.add_argument("--test-corpus", action="store_true", help="digest: tests/fixtures, then the three test pages as "
                    "the new articles (instead of BBC News)")
    ap.add_argument("--other-process", action="store_true", help="digest: ingest the new articles in another "
                    "process (as `newsbot watch` beside the bot); the bot finds them by polling")
    ap.add_argument("--turns", type=int, default=10_000)
    ap.add_argument("--new", type=int, default=50)
    ap.add_argument("--base", type=int, default=200)
    ap.add_argument("--poll", type=float, default=30.0)
    ap.add_argument("--model-cache", type=Path, default=None)
    ap.add_argument("--hash", action="store_true", help="the test suite's hash embedder instead of the model")
    ap.add_argument("--poll-only", action="store_true", help="find the new articles by polling (as after another "
                    "process's ingest), not by the signal /add gives")
    a = ap.parse_args()
    if a.what == "store":
        store(a.turns)
    elif a.what == "calibrate":
        calibrate(a.model_cache)
    elif a.what == "examples":
        examples(a.model_cache)
    elif a.what == "ingest-bbc":
        _services(a.data_dir, a.model_cache, a.hash).index.ingest(_bbc(a.new, a.base))
    else:
        digest(a.new, a.base, a.model_cache, a.hash, a.poll, a.poll_only, a.other_process, a.test_corpus)


if __name__ == "__main__":
    main()
