"""The ``newsbot`` command: a thin shell that turns arguments into Index and Answerer calls and results into text."""

from __future__ import annotations

import argparse
import json
import logging
import logging.handlers
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from index.errors import NewsbotError

if TYPE_CHECKING:
    from bot.settings import Settings
    from bot.types import Answer
    from bot.wiring import Services
    from index import Filters

log = logging.getLogger("newsbot")

EXIT_OK, EXIT_FAIL = 0, 1  # argparse exits 2 on a usage error


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="newsbot", description="Ask questions of a corpus of news articles and get "
                                                            "answers in which every claim is cited.")
    p.add_argument("--data-dir", type=Path, help="where the index lives (env NEWSBOT_DATA_DIR, default ./.newsbot)")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug detail to stderr")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ing = sub.add_parser("ingest", help="add or update articles from files, directories, .gz archives, URLs, feeds")
    ing.add_argument("paths", nargs="*", metavar="PATH|URL")
    ing.add_argument("--feed", action="append", default=[], metavar="URL", help="every entry of this RSS/Atom feed "
                     "(repeatable)")
    ing.add_argument("--json", action="store_true", help="print the summary as JSON")

    w = sub.add_parser("watch", help="keep ingesting new and changed entries of RSS/Atom feeds")
    w.add_argument("feeds", nargs="+", metavar="FEED")
    w.add_argument("--every", default="15m", help="time between rounds, e.g. 30s, 15m, 1h (default 15m)")
    w.add_argument("--rounds", type=int, default=0, help="stop after N rounds (default: until interrupted)")
    w.add_argument("--json", action="store_true", help="one JSON summary line per round")

    ask = sub.add_parser("ask", help="answer one question with citations")
    ask.add_argument("question")
    _search_options(ask)
    ask.add_argument("--json", action="store_true", help="print the answer as JSON (schema in README)")
    ask.add_argument("--passages", action="store_true", help="also print the full cited passages")

    chat = sub.add_parser("chat", help="interactive chat with follow-up questions")
    _search_options(chat)

    stats = sub.add_parser("stats", help="what the index holds")
    stats.add_argument("--json", action="store_true")

    ev = sub.add_parser("eval", help="measure retrieval and answers on MultiHop-RAG-format questions")
    ev.add_argument("--questions", type=Path, required=True, help="JSON array or JSONL (optionally .gz)")
    ev.add_argument("--top-k", type=int, default=10)
    ev.add_argument("--limit", type=int, default=0, help="only the first N questions")
    ev.add_argument("--dump", type=Path, help="write one JSON line per question here")
    ev.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    ev.add_argument("--as-of", metavar="DATE", help="the day questions are asked (default: each question's own "
                    "\"as_of\" or \"date\" field, else now, UTC)")
    ev.add_argument("--no-question-dates", action="store_true", help="ignore the questions' own as_of/date fields")

    sub.add_parser("discord", help="run the Discord bot (needs DISCORD_TOKEN; see docs/discord.md)")

    mcp = sub.add_parser("mcp", help="serve search_news, ask_news and list_sources to AI assistants over MCP "
                                     "(stdio; needs newsbot[mcp])")
    mcp.add_argument("--http", action="store_true", help="streamable HTTP on 127.0.0.1 instead of stdio")
    mcp.add_argument("--port", type=int, default=None, help="the --http port (default 8765)")

    fg = sub.add_parser("forget", help="remove one article (by id or url) everywhere")
    fg.add_argument("article_id", metavar="ARTICLE_ID")
    fg.add_argument("--json", action="store_true")
    return p


def _search_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--top-k", type=int, default=None, help="passages to retrieve (default 10)")
    p.add_argument("--source", action="append", default=[], help="only this outlet (repeatable)")
    p.add_argument("--since", help="only articles published on or after this date")
    p.add_argument("--until", help="only articles published on or before this date")
    p.add_argument("--as-of", metavar="DATE", help="answer as if asked on this day: \"this week\", \"recently\", "
                   "\"the latest\" are read against it (default: now, UTC)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        from pydantic import ValidationError

        from bot.settings import load_settings

        try:
            settings = load_settings(data_dir=args.data_dir)
        except ValidationError as err:
            first = err.errors()[0]
            field = "NEWSBOT_" + str(first["loc"][0]).upper() if first.get("loc") else "settings"
            raise NewsbotError(f"setting {field}: {first['msg']}") from None
        logfile = _configure_logging(settings.log_level, args.verbose, settings.data_dir)
        return _run(args, settings)
    except NewsbotError as err:
        print(f"newsbot: {err}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        print("newsbot: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`newsbot ask … | head -1`): stop quietly
        _quiet_stdout()
        return EXIT_OK
    except Exception as err:  # the user gets one line; the log file gets the traceback
        log.debug("unexpected error", exc_info=True)
        where = f"; details in {logfile}" if "logfile" in locals() and logfile else ""
        print(f"newsbot: internal error ({type(err).__name__}){where}", file=sys.stderr)
        return EXIT_FAIL


def _configure_logging(level: str, verbose: bool, data_dir: Path) -> Path | None:
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.DEBUG if verbose else getattr(logging, level.upper(), logging.WARNING))
    console.setFormatter(logging.Formatter("newsbot: %(message)s"))
    # trafilatura logs its parse failures as ERRORs; the loader already reports them as one LoadError per file
    console.addFilter(lambda record: not record.name.startswith("trafilatura"))
    root.addHandler(console)
    for noisy in ("chromadb", "httpx", "httpcore", "urllib3", "onnxruntime", "bm25s", "discord", "asyncio", "openai",
                  "ollama", "llama_index", "mcp", "uvicorn", "trafilatura", "htmldate", "courlan", "justext"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / "newsbot.log"
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=5_000_000, backupCount=2, encoding="utf-8")
        handler.setLevel(logging.DEBUG)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        return path
    except OSError:
        return None


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from bot.wiring import Services

    services = Services(settings)
    if args.command == "ingest":
        return _ingest(services, args)
    if args.command == "ask":
        return _ask(services, args)
    if args.command == "chat":
        from bot.chat import run_chat

        return run_chat(services.answerer, history_file=settings.data_dir / "chat_history", top_k=args.top_k,
                        filters=_filters(args), as_of=as_of_day(args.as_of))
    if args.command == "watch":
        return _watch(services, args)
    if args.command == "stats":
        return _stats(services, args)
    if args.command == "discord":
        from bot.discord_bot import run_discord

        return run_discord(services.answerer, services.index, settings)
    if args.command == "eval":
        return _eval(services, args)
    if args.command == "mcp":
        return _mcp(services, args)
    if args.command == "forget":
        ids, removed = services.index.forget(args.article_id)
        if args.json:
            print(json.dumps({"forgotten": ids, "chunks_removed": removed}))
        else:
            print(f"forgot {', '.join(ids)} ({removed} chunks)")
        return EXIT_OK
    raise NewsbotError(f"unknown command {args.command}")


def _filters(args: argparse.Namespace) -> Filters:
    from index import date_filters

    return date_filters(args.source, args.since, args.until, option=lambda name: f"--{name}")


def as_of_day(value: str | None) -> date | None:
    """The ``--as-of`` day (None: now, decided per question); a value that is not a date is a one-line error."""
    if value is None or not value.strip() or value.strip().lower() == "now":
        return None
    try:
        return datetime.fromisoformat(value.strip()).date()
    except ValueError:
        shown = " ".join(value.split())[:40]
        raise NewsbotError(f"--as-of: “{shown}” is not a date (try 2023-10-31)") from None


def _feeds(services: Services, feeds: list[str], as_json: bool, *, only_new: bool) -> int:
    summary, report = services.index.ingest_feeds(feeds, only_new=only_new)
    if as_json:
        print(json.dumps({"feeds": summary.as_dict(), **report.as_dict()}), flush=True)
    else:
        for e in report.errors:
            print(f"newsbot: {e}", file=sys.stderr)
        print(f"{summary.feeds} feeds ({summary.not_modified} not modified, {summary.failed} failed), "
              f"{summary.entries} entries, {summary.fetched} fetched; {report.new} new, {report.updated} updated, "
              f"{report.unchanged} unchanged, {report.failed} failed; {report.seconds:.1f} s", flush=True)
    return EXIT_FAIL if report.failed else EXIT_OK


def watch(round_fn: Callable[[], None], every: float, *, rounds: int = 0,
          sleep: Callable[[float], None] = time.sleep) -> int:
    """Call ``round_fn`` every ``every`` seconds (start to start); ``rounds`` = 0 runs until interrupted."""
    n = 0
    while True:
        started = time.monotonic()
        round_fn()
        n += 1
        if rounds and n >= rounds:
            return n
        sleep(max(0.0, every - (time.monotonic() - started)))


def parse_every(text: str) -> float:
    """Seconds in ``15m``, ``30s``, ``1h`` or a plain number of seconds; ``ValueError`` otherwise."""
    text = text.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    scale = units.get(text[-1:], 0)
    number = float(text[:-1] if scale else text)
    seconds = number * (scale or 1)
    if not seconds > 0:
        raise ValueError(text)
    return seconds


def _watch(services: Services, args: argparse.Namespace) -> int:
    try:
        every = parse_every(args.every)
    except ValueError:
        raise NewsbotError(f"--every: not a duration: {args.every!r} (try 30s, 15m or 1h)") from None

    def one_round() -> None:
        try:
            _feeds(services, args.feeds, args.json, only_new=True)
        except NewsbotError as err:  # e.g. the Chroma server is down: report, keep watching
            print(f"newsbot: {err}", file=sys.stderr, flush=True)

    watch(one_round, every, rounds=args.rounds)
    return EXIT_OK


def _ingest(services: Services, args: argparse.Namespace) -> int:
    if not args.paths and not args.feed:
        raise NewsbotError("nothing to ingest: give files, directories, URLs or --feed URL")
    code = _feeds(services, args.feed, args.json, only_new=False) if args.feed else EXIT_OK
    if not args.paths:
        return code
    index = services.index
    items = index.load(args.paths)
    from index.types import LoadError

    errors = [i for i in items if isinstance(i, LoadError)]
    total = len(items) - len(errors)
    if total:
        with _progress(total, "ingesting", quiet=args.json) as advance:
            report = index.ingest(items, progress=advance)
    else:
        report = index.ingest(items)
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        for e in report.errors:
            print(f"newsbot: {e}", file=sys.stderr)
        print(f"{report.new} new, {report.updated} updated, {report.unchanged} unchanged, {report.failed} failed; "
              f"{report.chunks_added} chunks written, {report.chunks_total} in the index; {report.seconds:.1f} s")
    return EXIT_FAIL if report.failed or code else EXIT_OK


class _progress:
    """A rich progress bar on a terminal; nothing when piped."""

    def __init__(self, total: int, label: str, quiet: bool = False) -> None:
        self.total, self.label = total, label
        self.enabled = not quiet and sys.stderr.isatty()

    def __enter__(self):  # type: ignore[no-untyped-def]
        if not self.enabled:
            return lambda n=1: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TimeRemainingColumn(), console=Console(stderr=True), transient=True)
        self._bar.__enter__()
        task = self._bar.add_task(self.label, total=self.total)
        return lambda n=1: self._bar.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._bar.__exit__(*exc)


def _ask(services: Services, args: argparse.Namespace) -> int:
    from bot import render

    _require_index(services)
    answerer = services.answerer
    if args.json or answerer.llm is None:
        answer = answerer.ask(args.question, top_k=args.top_k, filters=_filters(args), as_of=as_of_day(args.as_of))
    else:  # an LLM writes the answer: show its draft as it streams, then the verified answer
        from rich.console import Console

        from bot.live import stream_draft

        answer = stream_draft(answerer.ask_stream(args.question, top_k=args.top_k, filters=_filters(args),
                                                  as_of=as_of_day(args.as_of)),
                              console=Console() if sys.stdout.isatty() else None)
    if args.json:
        print(json.dumps(answer.as_dict(), ensure_ascii=False))
    elif sys.stdout.isatty():
        from rich.console import Console

        Console().print(render.rich_renderable(answer))
        if args.passages:
            print(render.plain(answer, passages=True).split("\nPassages:", 1)[-1])
    else:
        print(render.plain(answer, passages=args.passages))
    return EXIT_OK


def _eval(services: Services, args: argparse.Namespace) -> int:
    from bot import evaluate

    _require_index(services)
    answerer = services.answerer
    questions = evaluate.load_questions(args.questions)
    if args.limit:
        questions = questions[: args.limit]
    default = as_of_day(args.as_of)

    def ask(q: evaluate.Question) -> Answer:
        own = None if args.no_question_dates or not q.as_of else date.fromisoformat(q.as_of)
        return answerer.ask(q.query, top_k=args.top_k, as_of=own or default)

    answerer.ask("warm up")  # load the model and indexes before timing
    with _progress(len(questions), "evaluating", quiet=args.json) as advance:
        result = evaluate.evaluate(questions, ask, dump=args.dump, progress=advance, whole=True)
    result["top_k"] = args.top_k
    result["chunk_tokens"] = evaluate.chunk_lengths(services.index.chunk_token_counts())
    print(json.dumps(result) if args.json else evaluate.table(result))
    return EXIT_OK


def _mcp(services: Services, args: argparse.Namespace) -> int:
    if args.port is not None and not args.http:
        raise NewsbotError("--port applies to --http; stdio needs no port")
    try:
        from bot.mcp_server import DEFAULT_PORT, serve
    except ModuleNotFoundError as err:
        if not (err.name or "").startswith("mcp"):
            raise
        raise NewsbotError("newsbot mcp needs the MCP SDK: pip install 'newsbot[mcp]'") from None
    port = DEFAULT_PORT if args.port is None else args.port
    if not 0 < port < 65536:
        raise NewsbotError(f"--port: {port} is not a port (1-65535)")
    return serve(services.answerer, services.index, http=args.http, port=port)


def _require_index(services: Services) -> None:
    if services.index.size() == 0:
        raise NewsbotError(f"no articles are indexed in {services.index.location}: run `newsbot ingest PATH` first")


def _stats(services: Services, args: argparse.Namespace) -> int:
    s = services.index.stats()
    if args.json:
        print(json.dumps(s.as_dict()))
        return EXIT_OK
    print(f"articles:        {s.articles}")
    print(f"chunks:          {s.chunks}")
    names = ", ".join(s.sources[:8]) + (", …" if len(s.sources) > 8 else "")
    print(f"outlets:         {len(s.sources)}" + (f" ({names})" if s.sources else ""))
    print(f"published:       {s.first_published or '-'} … {s.last_published or '-'}")
    print(f"index:           {s.data_dir} (Chroma {s.chroma_mode}: {s.chroma_location})")
    print(f"embedding model: {s.embedding_model}")
    print(f"lexical index:   {s.lexical}, {s.lexical_chunks} chunks")
    return EXIT_OK


def _quiet_stdout() -> None:
    """Point stdout at /dev/null once its reader has gone, so the flush at exit cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def run() -> None:
    """Console-script entry point."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
    sys.exit(code)
