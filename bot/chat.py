"""Terminal chat: prompt-toolkit line editing and history, rich answers; plain lines when piped."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

from bot import render
from bot.answering import Answerer
from bot.conversation import Turn
from bot.live import stream_draft
from bot.types import Answer
from index import NO_FILTERS, Filters
from index.errors import NewsbotError

HELP = """Ask a question about the indexed news; follow-up questions use the conversation so far.
  /sources  full passages behind the last answer
  /why      the standalone question the last answer was retrieved for
  /reset    forget the conversation
  /help     this help
  /quit     leave (Ctrl-D and Ctrl-C work too)"""


def run_chat(answerer: Answerer, *, history_file: Path | None = None, top_k: int | None = None,
             filters: Filters = NO_FILTERS, as_of: date | None = None) -> int:
    """Chat until the user leaves; returns the exit status. Time words are read against ``as_of`` (None: now)."""
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    if interactive:
        from rich.console import Console

        console = Console()
        show: Callable[[str], None] = lambda text: console.print(text, markup=False, highlight=False)  # noqa: E731
        show_answer: Callable[[Answer], None] = lambda a: console.print(render.rich_renderable(a))  # noqa: E731
        lines = _prompt_lines(history_file)
        show("newsbot chat — ask about the news; /help for commands.")
    else:
        console = None
        show = print
        show_answer = lambda a: print(render.plain(a) + "\n", flush=True)  # noqa: E731
        lines = (line.rstrip("\n") for line in sys.stdin)

    history: list[Turn] = []
    last: Answer | None = None
    for line in lines:
        text = line.strip()
        if not text:
            continue
        if text.startswith("/"):
            cmd = text.split()[0].lower()
            if cmd in ("/quit", "/exit", "/q"):
                break
            if cmd == "/help":
                show(HELP)
            elif cmd == "/reset":
                history.clear()
                last = None
                show("Conversation cleared.")
            elif cmd == "/sources":
                show(render.plain(last, passages=True).split("\nPassages:\n", 1)[-1] if last and last.citations
                     else "No sources yet: ask a question first.")
            elif cmd == "/why":
                show(f"Retrieved for: {last.standalone_question}" if last else "No question yet.")
            else:
                show(f"Unknown command {cmd}; /help lists the commands.")
            continue
        try:
            last = stream_draft(answerer.ask_stream(text, history, top_k=top_k, filters=filters, as_of=as_of),
                                console=console)
        except NewsbotError as err:
            show(f"newsbot: {err}")
            continue
        history.append(Turn(last.question, last.standalone_question))
        show_answer(last)
    return 0


def _prompt_lines(history_file: Path | None) -> Iterator[str]:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory, History, InMemoryHistory

    history: History = InMemoryHistory()
    if history_file is not None:
        try:
            history_file.parent.mkdir(parents=True, exist_ok=True)
            history = FileHistory(str(history_file))
        except OSError:
            pass
    session: PromptSession[str] = PromptSession(history=history)
    while True:
        try:
            yield session.prompt("you> ")
        except (EOFError, KeyboardInterrupt):
            return
