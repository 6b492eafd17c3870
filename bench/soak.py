"""A soak run of the write path (issue #16): a feed watcher writing while several bot processes read, for minutes.

    .venv/bin/python bench/soak.py [--minutes 30] [--bots 4] [--every 60] [--per-round 3] [--seed-articles 300]
        [--ask-every 3] [--shared ../shared/data] [--work DIR] [--keep] [--out FILE]

Everything runs on this machine, on loopback:

- a real ``chroma run`` server holding the index, seeded with ``--seed-articles`` BBC articles (``Index.ingest``);
- a feed server (http.server on 127.0.0.1) whose RSS feed gains ``--per-round`` further BBC articles each time it is
  fetched; every article is served as an HTML page (title, outlet, date, paragraphs) that holds one made-up marker
  word, so a search for that word finds exactly that article;
- one ``newsbot watch FEED --every 60s --json`` process (``NEWSBOT_ALLOW_PRIVATE_URLS=1``, as the feed is on
  loopback) doing one round a minute;
- ``--bots`` bot processes, each with ``bot.wiring.Services`` in server mode over one shared data dir (one host):
  every ``--ask-every`` seconds one question through ``Answerer.ask`` (latency and errors recorded), and twice a
  second a search for the marker of every feed article it has not seen yet, recording when it first shows.

At the end the feed stops growing, the watcher finishes its round and stops, the bots get a minute to catch up and
report their final article set. Reported: rounds done, articles added, write -> visible per bot (from the article's
catalogue ``changed_at`` commit stamp to the bot's first search that returned it: p50/p95/max, and how many it never
saw), ask latency p50/p95, errors, RSS/PSS at start and end of every process, and whether every bot converged to the
store's live article set (``Index.article_ids()`` when the index has it; chunk count otherwise).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import html
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.procs import Child, ChildError, Inbox, memory_mb, reply  # noqa: E402
from bench.run import chroma_server, pct, say  # noqa: E402
from bench.writepath import bbc_articles, nonsense, questions  # noqa: E402

if TYPE_CHECKING:
    from index.types import Article

OUTLET = "BBC News"
FEED_WINDOW = 30  # entries an RSS document lists (the newest)
TICK = 0.5  # seconds between a bot's visibility checks
SETTLE_SECONDS = 60.0  # after the watcher stops: time the bots get to show every article
COLLECTION = "soak"


# -- the feed server ----------------------------------------------------------------------------------------------
@dataclass
class Entry:
    n: int
    article: Article
    url: str
    marker: str
    published: float  # wall clock, when it entered the feed

    @property
    def article_id(self) -> str:
        from index.load import article_id_for

        return article_id_for(self.url, "", "")


@dataclass
class FeedSite:
    """What the loopback feed server serves: a feed that gains ``per_round`` queued articles per fetch."""

    queue: list[Article]
    per_round: int
    base: str = ""
    growing: bool = True
    published: list[Entry] = field(default_factory=list)
    fetches: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    rng: random.Random = field(default_factory=lambda: random.Random(1))

    def fetch_feed(self) -> tuple[bytes, str]:
        """The feed after one round's growth, and its ETag."""
        with self.lock:
            self.fetches += 1
            for _ in range(self.per_round if self.growing else 0):
                if len(self.published) >= len(self.queue):
                    break
                n = len(self.published)
                self.published.append(Entry(n, self.queue[n], f"{self.base}/article/{n}", nonsense(self.rng),
                                            time.time()))
            entries = self.published[-FEED_WINDOW:]
            etag = f'"{len(self.published)}"'
        items = "".join(f"<item><title>{html.escape(e.article.title)}</title><link>{e.url}</link><guid>{e.url}</guid>"
                        f"<pubDate>{formatdate(e.published, usegmt=True)}</pubDate></item>" for e in entries)
        rss = (f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>{OUTLET}</title>"
               f"<link>{self.base}/</link><description>soak feed</description>{items}</channel></rss>")
        return rss.encode(), etag

    def page(self, n: int) -> bytes | None:
        with self.lock:
            entry = self.published[n] if 0 <= n < len(self.published) else None
        return None if entry is None else article_page(entry)

    def listing(self) -> bytes:
        with self.lock:
            return json.dumps([{"id": e.article_id, "marker": e.marker} for e in self.published]).encode()


def article_page(e: Entry) -> bytes:
    """An article page as a news site serves it; the marker sits in an ordinary sentence of the first paragraph."""
    a = e.article
    paras = [" ".join(p.split()) for p in a.body.split("\n") if p.strip()] or [a.body]
    paras[0] += f" The desk filed the story as {e.marker}."
    when = datetime.fromtimestamp(e.published, UTC).replace(microsecond=0).isoformat()
    title = html.escape(a.title, quote=True)
    body = "".join(f"<p>{html.escape(p)}</p>" for p in paras)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title} | {OUTLET}</title>"
            f"<meta property='og:title' content='{title}'><meta property='og:site_name' content='{OUTLET}'>"
            f"<meta property='article:published_time' content='{when}'></head><body><nav><a href='/'>Home</a></nav>"
            f"<article><h1>{title}</h1>{body}</article><footer>Copyright {OUTLET}</footer></body></html>").encode()


def handler(site: FeedSite) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def send(self, status: int, body: bytes, kind: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            with contextlib.suppress(OSError):
                self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path == "/feed.rss":
                body, etag = site.fetch_feed()
                return self.send(200, body, "application/rss+xml", {"ETag": etag})
            if self.path == "/published.json":
                return self.send(200, site.listing(), "application/json")
            n = self.path.removeprefix("/article/")
            page = site.page(int(n)) if n.isdigit() else None
            if page is None:
                return self.send(404, b"not found", "text/plain")
            return self.send(200, page, "text/html; charset=utf-8")

    return Handler


@contextlib.contextmanager
def feed_server(site: FeedSite) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(site))
    server.daemon_threads = True
    site.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield site.base
    finally:
        server.shutdown()
        server.server_close()


# -- a bot process ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BotSpec:
    name: str
    data_dir: str
    models: str
    port: int
    feed: str
    ask_every: float
    questions: list[str]


def child_bot(spec_json: str) -> None:
    """One bot: asks questions, watches for feed articles, and reports everything when told to stop."""
    from bot.settings import Settings
    from bot.wiring import Services

    spec = BotSpec(**json.loads(spec_json))
    services = Services(Settings(data_dir=Path(spec.data_dir), collection=COLLECTION, chroma_host="127.0.0.1",
                                 chroma_port=spec.port, model_cache_dir=Path(spec.models)))
    started = time.perf_counter()
    sync = getattr(services.index, "sync", None)
    if callable(sync):
        sync()
    services.answerer.ask("warm up")
    reply(event="ready", warm_s=round(time.perf_counter() - started, 2))
    state = BotState()
    inbox, rng, next_ask = Inbox(), random.Random(spec.name), time.monotonic()
    while True:
        if time.monotonic() >= next_ask:
            state.ask(services, rng.choice(spec.questions))
            next_ask = time.monotonic() + spec.ask_every
        state.look(services, spec.feed)
        cmd = inbox.next(timeout=TICK)
        if cmd is not None and cmd["cmd"] == "status":
            reply(event="status", seen=list(state.seen))
        elif cmd is not None and cmd["cmd"] == "stop":
            break
    if callable(sync):
        sync()
    state.look(services, spec.feed)
    reply(event="final", asks_ms=state.asks_ms, errors=state.errors, seen=state.seen, **final_view(services))


@dataclass
class BotState:
    """What one bot has measured: ask latencies, errors, and when it first found each feed article."""

    asks_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seen: dict[str, float] = field(default_factory=dict)  # article id -> wall clock of the search that found it

    def ask(self, services: Any, question: str) -> None:
        t = time.perf_counter()
        try:
            services.answerer.ask(question)
        except Exception as err:  # the soak counts every failure and goes on
            self.errors.append(f"ask: {type(err).__name__}: {err}"[:300])
            return
        self.asks_ms.append(round((time.perf_counter() - t) * 1000, 1))

    def look(self, services: Any, feed: str) -> None:
        """Search the marker of every published article not seen yet."""
        try:
            with urllib.request.urlopen(f"{feed}/published.json", timeout=10) as resp:
                listing = json.loads(resp.read())
            for item in listing:
                if item["id"] in self.seen:
                    continue
                hits = services.index.search(item["marker"], 5)
                if any(p.article_id == item["id"] for p in hits):
                    self.seen[item["id"]] = time.time()
        except Exception as err:  # counted like a failed ask
            self.errors.append(f"search: {type(err).__name__}: {err}"[:300])


def final_view(services: Any) -> dict[str, Any]:
    """The bot's view of the index at the end: chunk count and, when the index says, its article ids' digest."""
    index = services.index
    out: dict[str, Any] = {"chunks": index.size()}
    ids = getattr(index, "article_ids", None)
    if callable(ids):
        found = sorted(ids())
        out.update(articles=len(found), ids_digest=digest(found))
    return out


def digest(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()[:16]


# -- the run --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SoakConfig:
    shared: Path
    minutes: float = 30.0
    bots: int = 4
    every: float = 60.0
    per_round: int = 3
    seed_articles: int = 300
    ask_every: float = 3.0
    work: Path | None = None
    keep: bool = False


def models_dir(work: Path) -> Path:
    """The model cache every process shares (NEWSBOT_MODEL_CACHE_DIR when set, as bench/run.py sets it)."""
    return Path(os.environ.get("NEWSBOT_MODEL_CACHE_DIR") or work / "models")


@dataclass
class Processes:
    """The soak's children and their memory samples."""

    bots: dict[str, Child]
    watch: subprocess.Popen[bytes] | None = None
    memory: dict[str, list[dict[str, float]]] = field(default_factory=dict)

    def pids(self) -> dict[str, int]:
        out = {name: c.pid for name, c in self.bots.items()}
        if self.watch is not None:
            out["watch"] = self.watch.pid
        return out

    def sample(self, *, watch_ready: bool = True) -> None:
        """One memory sample of every process (of the watcher only once ``watch_ready``: after its first round)."""
        for name, pid in self.pids().items():
            m = memory_mb(pid) if watch_ready or name != "watch" else {}
            if m:
                self.memory.setdefault(name, []).append(m)


def child_env(models: Path, port: int) -> dict[str, str]:
    return {"PYTHONPATH": str(ROOT), "NEWSBOT_MODEL_CACHE_DIR": str(models), "NEWSBOT_CHROMA_HOST": "127.0.0.1",
            "NEWSBOT_CHROMA_PORT": str(port), "NEWSBOT_COLLECTION": COLLECTION, "ANONYMIZED_TELEMETRY": "False"}


def seed(cfg: SoakConfig, work: Path, port: int, articles: list[Article]) -> Any:
    """Ingest the seed articles (as another host would) and return that index, for reading the store at the end."""
    from index import Index, IndexConfig, Layout

    index = Index(Layout(work / "seeder", collection=COLLECTION, chroma_host="127.0.0.1", chroma_port=port),
                  IndexConfig(model_cache_dir=models_dir(work)))
    started = time.perf_counter()
    report = index.ingest(articles)
    say(f"seeded {report.new} articles, {report.chunks_added} chunks in {time.perf_counter() - started:.1f} s")
    return index


def start_bots(cfg: SoakConfig, work: Path, port: int, feed: str, qs: list[str]) -> dict[str, Child]:
    bots = {}
    for i in range(cfg.bots):
        spec = BotSpec(f"bot{i + 1}", str(work / "host"), str(models_dir(work)), port, feed, cfg.ask_every, qs)
        bots[spec.name] = Child.start([sys.executable, str(Path(__file__).resolve()), "--child",
                                       json.dumps(asdict(spec))], spec.name, work / "logs" / f"{spec.name}.log",
                                      cwd=work, env=child_env(models_dir(work), port))
    for name, child in bots.items():
        ready = child.recv(600, "ready")
        say(f"{name} ready in {ready['warm_s']} s")
    return bots


def start_watch(cfg: SoakConfig, work: Path, port: int, feed: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, **child_env(models_dir(work), port), "NEWSBOT_ALLOW_PRIVATE_URLS": "1",
           "NEWSBOT_FETCH_HOST_DELAY": "0.2"}
    cmd = [sys.executable, "-m", "bot", "--data-dir", str(work / "host"), "watch", f"{feed}/feed.rss",
           "--every", f"{cfg.every:g}s", "--json"]
    with (work / "logs" / "watch.out").open("wb") as out, (work / "logs" / "watch.err").open("wb") as err:
        return subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=work, env=env)


def watch_rounds(work: Path) -> list[dict[str, Any]]:
    rounds = []
    for line in (work / "logs" / "watch.out").read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            rounds.append(json.loads(line))
    return rounds


def soak_loop(cfg: SoakConfig, work: Path, site: FeedSite, procs: Processes) -> None:
    """Run until the deadline, sampling memory and saying how it goes once a minute."""
    deadline = time.monotonic() + cfg.minutes * 60
    next_note = time.monotonic() + 60
    while time.monotonic() < deadline:
        if procs.watch is not None and procs.watch.poll() is not None:
            raise ChildError(f"newsbot watch exited with {procs.watch.returncode}")
        procs.sample(watch_ready=bool(watch_rounds(work)))
        if time.monotonic() >= next_note:
            say(f"  {time.strftime('%H:%M:%S')}: {len(watch_rounds(work))} rounds, {len(site.published)} articles "
                f"published")
            next_note += 60
        time.sleep(min(10.0, max(0.0, deadline - time.monotonic())))


def stop_watch(work: Path, site: FeedSite, watch: subprocess.Popen[bytes]) -> None:
    """Stop growing the feed, let the watcher finish the round under way, then interrupt it between rounds."""
    site.growing = False
    limit = time.monotonic() + 120
    while len(watch_rounds(work)) < site.fetches and time.monotonic() < limit and watch.poll() is None:
        time.sleep(0.5)
    watch.send_signal(signal.SIGINT)
    try:
        watch.wait(timeout=60)
    except subprocess.TimeoutExpired:
        watch.kill()
        watch.wait()


def settle(store: Any, procs: Processes, site: FeedSite) -> float:
    """Wait (at most SETTLE_SECONDS) until every bot has seen every feed article the store holds; returns the
    seconds taken."""
    started = time.monotonic()
    want = {e.article_id for e in site.published} & set(store.live_hashes())
    while time.monotonic() - started < SETTLE_SECONDS:
        seen = [set(c.call(60, "status", cmd="status")["seen"]) for c in procs.bots.values()]
        if all(want <= s for s in seen):
            break
        time.sleep(2)
    return round(time.monotonic() - started, 1)


def report(cfg: SoakConfig, work: Path, site: FeedSite, procs: Processes, finals: dict[str, dict[str, Any]],
           store: Any) -> dict[str, Any]:
    rounds = watch_rounds(work)
    live = store.live_hashes()
    changed = {c.article_id: c.changed_at for c in store.changes_since(0.0)}
    feed_ids = [e.article_id for e in site.published]
    added = [i for i in feed_ids if i in live]
    store_view = {"chunks": store.chunk_count(), "articles": len(live), "ids_digest": digest(list(live))}
    bots = {name: bot_figures(f, added, changed, store_view) for name, f in finals.items()}
    all_visible = [ms for f in finals.values() for ms in visible_ms(f["seen"], added, changed)]
    all_asks = [ms for f in finals.values() for ms in f["asks_ms"]]
    watch_err = (work / "logs" / "watch.err").read_text(errors="replace").splitlines()
    return {
        "minutes": cfg.minutes, "bots": cfg.bots, "every_s": cfg.every, "per_round": cfg.per_round,
        "seed_articles": cfg.seed_articles, "rounds": len(rounds), "feed_fetches": site.fetches,
        "published": len(site.published), "articles_added": len(added),
        "watch_failed": sum(r.get("articles", {}).get("failed", 0) for r in rounds),
        "watch_errors": [line for line in watch_err  # less our own SIGINT at the end
                         if line.startswith("newsbot:") and line != "newsbot: interrupted"][:20],
        "visible_ms": {"p50": pct(all_visible, 50), "p95": pct(all_visible, 95), "max": pct(all_visible, 100)},
        "ask_ms": {"n": len(all_asks), "p50": pct(all_asks, 50), "p95": pct(all_asks, 95)},
        "bots_detail": bots, "store": store_view,
        "converged": all(b["converged"] for b in bots.values()),
        "memory": {name: {"start": s[0], "end": s[-1]} for name, s in procs.memory.items() if s},
    }


def bot_figures(final: dict[str, Any], added: list[str], changed: dict[str, float],
                store_view: dict[str, Any]) -> dict[str, Any]:
    seen = final["seen"]
    visible = visible_ms(seen, added, changed)
    same = final["chunks"] == store_view["chunks"] and final.get("ids_digest", store_view["ids_digest"]) == \
        store_view["ids_digest"]
    return {"visible_ms": {"n": len(visible), "p50": pct(visible, 50), "p95": pct(visible, 95),
                           "max": pct(visible, 100)},
            "never_seen": sum(1 for i in added if i not in seen),
            "ask_ms": {"n": len(final["asks_ms"]), "p50": pct(final["asks_ms"], 50), "p95": pct(final["asks_ms"], 95)},
            "errors": len(final["errors"]), "first_errors": final["errors"][:5],
            "chunks": final["chunks"], "articles": final.get("articles"), "converged": same}


def visible_ms(seen: dict[str, float], added: list[str], changed: dict[str, float]) -> list[float]:
    """Per feed article a bot found: ms from its catalogue commit stamp to the bot's search that returned it."""
    return [round((seen[i] - changed[i]) * 1000, 1) for i in added if i in seen and i in changed]


def run(cfg: SoakConfig) -> dict[str, Any]:
    work = cfg.work or Path(tempfile.mkdtemp(prefix="newsbot-soak-"))
    (work / "logs").mkdir(parents=True, exist_ok=True)
    articles = bbc_articles(cfg.shared, 0)
    random.Random(0).shuffle(articles)
    seeds, queue = articles[: cfg.seed_articles], articles[cfg.seed_articles:]
    qs = questions(seeds, 100, random.Random(0))
    site = FeedSite(queue, cfg.per_round)
    procs = Processes({})
    try:
        with chroma_server(work / "chroma-server") as port, feed_server(site) as feed:
            say(f"soak: {cfg.bots} bots, `newsbot watch --every {cfg.every:g}s`, {cfg.per_round} new articles per "
                f"round, {cfg.minutes:g} min; Chroma on port {port}, feed {feed}/feed.rss")
            store = seed(cfg, work, port, seeds).store
            procs.bots = start_bots(cfg, work, port, feed, qs)
            procs.sample()
            procs.watch = start_watch(cfg, work, port, feed)
            soak_loop(cfg, work, site, procs)
            stop_watch(work, site, procs.watch)
            settled = settle(store, procs, site)
            procs.sample()
            finals = {name: c.call(600, "final", cmd="stop") for name, c in procs.bots.items()}
            figures = report(cfg, work, site, procs, finals, store)
            figures["settle_s"] = settled
    finally:
        for child in procs.bots.values():
            child.close()
        if procs.watch is not None and procs.watch.poll() is None:
            procs.watch.kill()
        if not cfg.keep and not cfg.work:
            shutil.rmtree(work, ignore_errors=True)
    summary(figures)
    return figures


def summary(f: dict[str, Any]) -> None:
    say(f"\n{f['rounds']} watch rounds, {f['published']} articles published, {f['articles_added']} added "
        f"({f['watch_failed']} failed, {len(f['watch_errors'])} watcher errors); store {f['store']}")
    say(f"write->visible, every bot: p50 {f['visible_ms']['p50']} ms, p95 {f['visible_ms']['p95']} ms, max "
        f"{f['visible_ms']['max']} ms; ask p50 {f['ask_ms']['p50']} ms, p95 {f['ask_ms']['p95']} ms over "
        f"{f['ask_ms']['n']} asks")
    for name, b in f["bots_detail"].items():
        v, a = b["visible_ms"], b["ask_ms"]
        mem = f["memory"].get(name, {})
        say(f"  {name}: visible p50/p95/max {v['p50']}/{v['p95']}/{v['max']} ms ({v['n']} seen, {b['never_seen']} "
            f"never), ask p50/p95 {a['p50']}/{a['p95']} ms ({a['n']}), {b['errors']} errors, RSS "
            f"{mem.get('start', {}).get('rss_mb')} -> {mem.get('end', {}).get('rss_mb')} MB, PSS "
            f"{mem.get('start', {}).get('pss_mb')} -> {mem.get('end', {}).get('pss_mb')} MB, "
            f"{'converged' if b['converged'] else 'NOT converged'} ({b['chunks']} chunks)")
    mem = f["memory"].get("watch", {})
    say(f"  watch: RSS {mem.get('start', {}).get('rss_mb')} -> {mem.get('end', {}).get('rss_mb')} MB, PSS "
        f"{mem.get('start', {}).get('pss_mb')} -> {mem.get('end', {}).get('pss_mb')} MB")
    say(f"every process converged to the store's article set: {f['converged']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--minutes", type=float, default=30.0, help="how long the watcher runs (default 30)")
    ap.add_argument("--bots", type=int, default=4, help="bot processes (default 4)")
    ap.add_argument("--every", type=float, default=60.0, help="seconds between watch rounds (default 60)")
    ap.add_argument("--per-round", type=int, default=3, help="articles the feed gains per round (default 3)")
    ap.add_argument("--seed-articles", type=int, default=300, help="BBC articles in the index at the start")
    ap.add_argument("--ask-every", type=float, default=3.0, help="seconds between one bot's questions (default 3)")
    ap.add_argument("--work", type=Path, help="where indexes and logs go (default: a temporary directory)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--out", type=Path, help="also write the JSON figures here")
    ap.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child_bot(*args.child)
        return
    cfg = SoakConfig(shared=args.shared, minutes=args.minutes, bots=args.bots, every=args.every,
                     per_round=args.per_round, seed_articles=args.seed_articles, ask_every=args.ask_every,
                     work=args.work, keep=args.keep)
    figures = run(cfg)
    if args.out:
        args.out.write_text(json.dumps(figures, indent=1))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
