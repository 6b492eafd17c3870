"""Show an LLM draft in a terminal or pipe as it streams; the caller then prints the verified answer."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TextIO

from bot.types import Answer

PLAIN_DIVIDER = "\n\nVerified answer:\n"


def stream_draft(items: Iterable[str | Answer], *, console: Any | None = None, out: TextIO | None = None) -> Answer:
    """Print the text deltas of ``App.ask_stream`` as they arrive and return its final Answer.

    On a rich ``console`` the draft is shown live and erased when done (the verified answer replaces it);
    in plain mode the deltas go to ``out`` and are followed by ``PLAIN_DIVIDER``.
    """
    if console is not None:
        return _live(items, console)
    out = out or sys.stdout
    wrote = False
    for item in items:
        if isinstance(item, Answer):
            if wrote:
                out.write(PLAIN_DIVIDER)
                out.flush()
            return item
        if item:
            out.write(item)
            out.flush()
            wrote = True
    raise RuntimeError("the answer stream ended without an answer")


def _live(items: Iterable[str | Answer], console: Any) -> Answer:
    from rich.live import Live
    from rich.text import Text

    draft = Text(style="dim")
    with Live(draft, console=console, transient=True, refresh_per_second=8, vertical_overflow="crop") as live:
        for item in items:
            if isinstance(item, Answer):
                return item
            draft.append(item)
            live.update(draft)
    raise RuntimeError("the answer stream ended without an answer")
