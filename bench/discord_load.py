"""Load test of the Discord shell: N concurrent simulated /ask interactions against a real index, offline.

    .venv/bin/python bench/discord_load.py --data-dir .newsbot-eval [--n 100] [--questions FILE] [--json]

The interactions are spec'd discord.py mocks (no Discord connection); everything behind them is real: the
bot's handler, its cooldown/queue, the thread seam, retrieval over Chroma + BM25 and answer composition.
Prints how many were answered, p50/p95 latency, the longest event-loop stall and the peak resident memory.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import resource
import statistics
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import discord  # noqa: E402

from bot import discord_render as render  # noqa: E402
from bot.discord_bot import DiscordConfig, NewsBot  # noqa: E402
from bot.settings import load_settings  # noqa: E402
from bot.wiring import Services  # noqa: E402

DEFAULT_QUESTIONS = ROOT.parent / "shared" / "data" / "multihop-rag" / "dev-queries.json.gz"
FALLBACK_QUESTIONS = [
    "What did the city council decide about bike lanes?", "How much did Harbor Tech's revenue grow?",
    "Why were water restrictions imposed in the valley?", "Who won the championship game?",
    "What did the central bank do with interest rates?", "What happened at the summit?",
]
TICK = 0.005  # seconds between ticks of the stall probe


def load_questions(path: Path | None, n: int) -> list[str]:
    if path is not None and path.exists():
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:  # type: ignore[operator]
            raw = f.read()
        rows = json.loads(raw) if raw.lstrip().startswith("[") else [json.loads(x) for x in raw.splitlines() if x]
        qs = [r["query"] if isinstance(r, dict) else str(r) for r in rows]
    else:
        qs = FALLBACK_QUESTIONS
    return [qs[i % len(qs)] for i in range(n)]


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def simulated_interaction(user_id: int, log: dict[str, Any]) -> MagicMock:
    """A spec'd ``discord.Interaction`` that timestamps the defer and the answer (built before the clock starts:
    making spec'd mocks is slow and would show up as loop stalls that the bot did not cause)."""
    sent = MagicMock(spec=discord.WebhookMessage)
    edited = MagicMock(spec=discord.InteractionMessage)
    it = MagicMock(spec=discord.Interaction)
    it.user = MagicMock(spec=discord.Member)
    it.user.id = user_id
    it.guild_id, it.channel_id = 1, 2
    it.created_at = datetime(2023, 12, 31, 12, tzinfo=UTC)  # the dev questions' corpus ends in December 2023
    it.channel = MagicMock(spec=discord.TextChannel)
    response = MagicMock(spec=discord.InteractionResponse)
    done = {"v": False}
    response.is_done.side_effect = lambda: done["v"]

    async def defer(**_: Any) -> None:
        done["v"] = True
        log["deferred"] = time.perf_counter()

    async def send_message(content: str = "", **_: Any) -> None:
        done["v"] = True
        log.setdefault("refused", content)
        log["finished"] = time.perf_counter()

    async def followup(content: str = "", **kw: Any) -> Any:
        log.setdefault("pieces", []).append(content)
        if "view" in kw or content == render.APOLOGY_TEXT:
            log["finished"] = time.perf_counter()
        return sent

    async def edit(**kw: Any) -> Any:
        log.setdefault("edits", []).append(kw.get("content", ""))
        if "view" in kw:
            log["pieces"] = [kw.get("content", "")]
            log["finished"] = time.perf_counter()
        return edited

    response.defer.side_effect = defer
    response.send_message.side_effect = send_message
    it.response = response
    it.followup = MagicMock(spec=discord.Webhook)
    it.followup.send.side_effect = followup
    it.edit_original_response.side_effect = edit
    return it


async def fire(bot: NewsBot, questions: list[str]) -> dict[str, Any]:
    stall = {"max": 0.0}

    async def probe() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(TICK)
            now = time.perf_counter()
            stall["max"] = max(stall["max"], now - last - TICK)
            last = now

    command = bot.tree.get_command("ask")
    assert command is not None
    logs: list[dict[str, Any]] = [{} for _ in questions]
    interactions = [simulated_interaction(1000 + i, logs[i]) for i in range(len(questions))]
    ticker = asyncio.create_task(probe())
    await asyncio.sleep(TICK * 2)
    started = time.perf_counter()

    async def one(i: int, q: str) -> None:
        logs[i]["start"] = time.perf_counter()
        await command.callback(interactions[i], q)  # type: ignore[arg-type,call-arg]

    await asyncio.gather(*(one(i, q) for i, q in enumerate(questions)))
    wall = time.perf_counter() - started
    ticker.cancel()
    return {"logs": logs, "wall_s": wall, "stall_s": stall["max"]}


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=Path(os.environ.get("NEWSBOT_DATA_DIR", ".newsbot-eval")))
    p.add_argument("--n", type=int, default=100, help="concurrent interactions (default 100)")
    p.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS, help="MultiHop-RAG-style queries (.json[.gz])")
    p.add_argument("--max-in-flight", type=int, default=None, help="override NEWSBOT_DISCORD_MAX_IN_FLIGHT")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = p.parse_args(argv)

    settings = load_settings(data_dir=args.data_dir)
    app = Services(settings)
    if app.index.store.chunk_count() == 0:
        print(f"discord_load: no articles are indexed in {args.data_dir}: run `newsbot --data-dir "
              f"{args.data_dir} ingest PATH` first", file=sys.stderr)
        return 1
    config = DiscordConfig.from_settings(settings)
    config = replace(config, cooldown_seconds=0.0, max_queue=max(config.max_queue, args.n), feedback_path=None,
                     max_in_flight=args.max_in_flight or config.max_in_flight)
    t0 = time.perf_counter()
    app.answerer.ask("warm up the model and the indexes")
    warm_s = time.perf_counter() - t0
    rss_loaded = rss_mb()
    questions = load_questions(args.questions, args.n)

    async def run() -> dict[str, Any]:
        bot = NewsBot(app.answerer, app.index, config)
        return await fire(bot, questions)

    result = asyncio.run(run())
    logs = result["logs"]
    answered = [x for x in logs if x.get("pieces") and x["pieces"][0] != render.APOLOGY_TEXT and "finished" in x]
    apologies = sum(1 for x in logs if x.get("pieces") and x["pieces"][-1] == render.APOLOGY_TEXT)
    refused = sum(1 for x in logs if "refused" in x)
    latency = [x["finished"] - x["start"] for x in answered]
    ack = [x["deferred"] - x["start"] for x in logs if "deferred" in x]
    abstained = sum(1 for x in answered if render.ABSTAIN_HINT in x["pieces"][0])
    figures = {
        "interactions": len(logs), "answered": len(answered), "apologies": apologies, "refused": refused,
        "abstained": abstained, "max_in_flight": config.max_in_flight,
        "latency_p50_s": round(pct(latency, 0.5), 3), "latency_p95_s": round(pct(latency, 0.95), 3),
        "latency_max_s": round(max(latency, default=float("nan")), 3),
        "defer_max_ms": round(1000 * max(ack, default=float("nan")), 1),
        "loop_stall_max_ms": round(1000 * result["stall_s"], 1), "wall_s": round(result["wall_s"], 2),
        "throughput_per_s": round(len(answered) / result["wall_s"], 1) if result["wall_s"] else None,
        "warm_up_s": round(warm_s, 2), "rss_loaded_mb": round(rss_loaded, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "articles": len(app.index.store.catalog()), "chunks": app.index.store.chunk_count(),
        "mean_pieces": round(statistics.mean(len(x["pieces"]) for x in answered), 2) if answered else 0,
    }
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"index:           {figures['articles']} articles, {figures['chunks']} chunks in {args.data_dir}")
        print(f"answered:        {figures['answered']}/{figures['interactions']} "
              f"({figures['abstained']} abstentions, {apologies} apologies, {refused} refused); "
              f"{'all answered' if len(answered) == len(logs) else 'NOT all answered'}")
        print(f"latency:         p50 {figures['latency_p50_s']} s, p95 {figures['latency_p95_s']} s, "
              f"max {figures['latency_max_s']} s ({config.max_in_flight} in flight; wall {figures['wall_s']} s, "
              f"{figures['throughput_per_s']}/s)")
        print(f"acknowledged:    every defer within {figures['defer_max_ms']} ms")
        print(f"event loop:      longest stall {figures['loop_stall_max_ms']} ms")
        print(f"memory:          {figures['rss_loaded_mb']} MB resident with the index loaded, "
              f"peak {figures['peak_rss_mb']} MB")
    return 0 if len(answered) == len(logs) else 1


if __name__ == "__main__":
    sys.exit(main())
