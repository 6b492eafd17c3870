"""Answers as plain text, rich terminal output and JSON; no decisions about content are made here."""

from __future__ import annotations

from typing import Any

from bot.types import Answer, Citation


def source_line(c: Citation) -> str:
    """``[n] Title — Outlet, date, url`` with the missing parts left out."""
    meta = ", ".join((*c.outlet_date, c.url) if c.url else c.outlet_date)
    return f"[{c.n}] {c.title}" + (f" — {meta}" if meta else "")


def plain(answer: Answer, *, passages: bool = False) -> str:
    """The answer for a terminal without styling, or a pipe."""
    lines: list[str] = []
    if answer.notice:
        lines.append(f"({answer.notice})")
    if answer.abstained:
        lines.append(answer.abstain_text)
        if answer.citations:
            lines += ["", "Closest articles:"] + [source_line(c) for c in answer.citations]
        return "\n".join(lines)
    if answer.window and answer.window.headline:
        lines.append(answer.window.headline)
    for s in answer.statements:
        lines.append(f"{s.shown} {''.join(f'[{n}]' for n in s.cites)}")
    lines += ["", "Sources:"]
    for c in answer.citations:
        lines.append(source_line(c))
        for q in c.quotes:
            lines.append(f"    “{q}”")
    if passages:
        lines += ["", "Passages:"] + [f"[{c.n}] {_passage_text(answer, c)}" for c in answer.citations]
    return "\n".join(lines)


def _passage_text(answer: Answer, c: Citation) -> str:
    for p in answer.passages:
        if p.chunk_id == c.chunk_id:
            return p.text
    return " ".join(c.quotes)


def rich_renderable(answer: Answer):  # type: ignore[no-untyped-def]
    """The answer as rich renderables: cited sentences, then linked, styled sources."""
    from rich.console import Group
    from rich.text import Text

    parts: list[Any] = []
    if answer.notice:
        parts.append(Text(answer.notice, style="yellow"))
    if answer.abstained:
        parts.append(Text(answer.abstain_text, style="bold"))
        if answer.citations:
            parts.append(Text("\nClosest articles:", style="dim"))
            parts += [_rich_source(c) for c in answer.citations]
        return Group(*parts)
    if answer.window and answer.window.headline:
        parts.append(Text(answer.window.headline, style="bold magenta" if answer.window.fell_back else "magenta"))
    for s in answer.statements:
        t = Text()
        if s.lead:
            t.append(s.lead + ": ", style="bold green")
        t.append(s.text + " ")
        for n in s.cites:
            t.append(f"[{n}]", style="bold cyan")
        parts.append(t)
    parts.append(Text("\nSources", style="bold"))
    for c in answer.citations:
        parts.append(_rich_source(c))
        for q in c.quotes:
            parts.append(Text(f"    “{q}”", style="dim italic"))
    return Group(*parts)


def _rich_source(c: Citation):  # type: ignore[no-untyped-def]
    from rich.text import Text

    t = Text()
    t.append(f"[{c.n}] ", style="bold cyan")
    t.append(c.title, style=f"link {c.url}" if c.url else "")
    meta = " · ".join(c.outlet_date)
    if meta:
        t.append(f" — {meta}", style="green")
    return t
