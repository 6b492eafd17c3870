"""The Discord bot's policies, free of discord.py: who may ask how often (``Cooldown``), how many questions are
answered at once and how many wait (``Gate``) and where 👍/👎 votes go (``FeedbackLog``). What each thread or DM
remembers lives in ``bot.conversation_store``."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class Cooldown:
    """One question per user per ``seconds``."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds, self.clock = seconds, clock
        self._last: dict[int, float] = {}

    def wait(self, user_id: int) -> float:
        """Seconds the user must still wait (0: allowed, and the question is counted)."""
        now = self.clock()
        left = self._last.get(user_id, -1e18) + self.seconds - now
        if left > 0:
            return left
        self._last[user_id] = now
        if len(self._last) > 10_000:
            self._last = {u: t for u, t in self._last.items() if now - t < self.seconds}
        return 0.0


@dataclass
class Ticket:
    """A place at the gate: ``position`` 0 = answered now, n = nth in line."""

    position: int
    future: asyncio.Future[None] | None = None


class Gate:
    """At most ``slots`` questions answered at once and ``max_waiting`` waiting behind them, first come first served."""

    def __init__(self, slots: int, max_waiting: int) -> None:
        self.slots, self.max_waiting = slots, max_waiting
        self.active = 0
        self._line: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._line)

    def join(self) -> Ticket | None:
        """A ticket, or None when the line is full."""
        if self.active < self.slots and not self._line:
            self.active += 1
            return Ticket(0)
        if len(self._line) >= self.max_waiting:
            return None
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._line.append(future)
        return Ticket(len(self._line), future)

    async def ready(self, ticket: Ticket) -> None:
        """Wait until the ticket's turn."""
        if ticket.future is not None:
            await asyncio.shield(ticket.future)

    def leave(self, ticket: Ticket) -> None:
        """Give the slot to the next in line (or leave the line); call exactly once per ticket."""
        f = ticket.future
        if f is not None and not f.done():
            self._line.remove(f)
            f.cancel()
            return
        while self._line:
            nxt = self._line.popleft()
            if not nxt.done():
                nxt.set_result(None)  # the slot passes on; ``active`` stays the same
                return
        self.active -= 1


class FeedbackLog:
    """👍/👎 votes appended as JSON lines."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()

    def record(self, entry: dict[str, Any]) -> None:
        if self.path is None:
            return
        line = json.dumps(entry, ensure_ascii=False)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line + "\n")


def user_hash(user_id: int) -> str:
    return hashlib.sha256(str(user_id).encode()).hexdigest()
