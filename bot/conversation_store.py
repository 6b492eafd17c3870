"""What the Discord bot remembers across restarts, in one SQLite file (standard library only): per thread or DM the
last turns and the article ids each answer cited, and the topics channels follow.

Several bot processes may share the file: it is opened in WAL mode (readers never block the writer) with a busy
timeout, and every change is one transaction, so a crash or a second writer leaves either the old rows or the new.
Calls block on disk: the bot makes them through its ``off_loop`` seam."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bot.conversation import Turn

BUSY_TIMEOUT_MS = 5000  # how long a write waits for another process's transaction before failing
DAY = 86400.0
SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (key INTEGER PRIMARY KEY, touched REAL NOT NULL);
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key INTEGER NOT NULL,
    at REAL NOT NULL,
    question TEXT NOT NULL,
    standalone TEXT NOT NULL,
    sources TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS turns_by_key ON turns (key, id);
CREATE INDEX IF NOT EXISTS conversations_by_age ON conversations (touched);
CREATE TABLE IF NOT EXISTS follows (
    channel INTEGER NOT NULL,
    topic TEXT NOT NULL COLLATE NOCASE,
    guild INTEGER,
    created REAL NOT NULL,
    PRIMARY KEY (channel, topic)
);
CREATE TABLE IF NOT EXISTS posted (
    channel INTEGER NOT NULL,
    article TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (channel, article)
);
"""


@dataclass(frozen=True)
class Follow:
    """A topic a channel follows: new matching articles are posted there as a digest."""

    channel_id: int
    topic: str
    guild_id: int | None = None


class ConversationStore:
    """Earlier turns per thread or DM (at most ``turns`` each, at most ``most`` conversations, none older than
    ``max_age_days``) and followed topics; ``path=None`` keeps everything in memory (tests, no data dir)."""

    def __init__(self, path: Path | None, most: int = 1000, turns: int = 6, max_age_days: float = 30.0, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.path, self.most, self.turns, self.max_age_days, self.clock = path, most, turns, max_age_days, clock
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # one connection, used from worker threads one at a time
        self._db = sqlite3.connect(str(path) if path is not None else ":memory:", timeout=BUSY_TIMEOUT_MS / 1000,
                                   isolation_level=None, check_same_thread=False)
        self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if path is not None:
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable at checkpoints, never corrupt
        with self._lock:
            self._db.executescript(SCHEMA)  # idempotent; executescript commits on its own

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE takes the write lock up front, so it never deadlocks midway)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _read(self, sql: str, args: Sequence[object] = ()) -> list[tuple[object, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- conversations (the interface of the in-memory ``Conversations`` it replaces) ---------------------------
    def _fresh_after(self) -> float:
        return self.clock() - self.max_age_days * DAY

    def __contains__(self, key: int) -> bool:
        return bool(self._read("SELECT 1 FROM conversations WHERE key = ? AND touched >= ?",
                               (key, self._fresh_after())))

    def history(self, key: int | None) -> list[Turn]:
        """The last turns of a conversation, oldest first ([] for None, unknown or expired keys)."""
        if key is None:
            return []
        rows = self._read("SELECT t.question, t.standalone FROM turns t JOIN conversations c ON c.key = t.key "
                          "WHERE t.key = ? AND c.touched >= ? ORDER BY t.id DESC LIMIT ?",
                          (key, self._fresh_after(), self.turns))
        return [Turn(str(q), str(s)) for q, s in reversed(rows)]

    def sources(self, key: int) -> list[tuple[str, ...]]:
        """The article ids each remembered answer cited, oldest first."""
        rows = self._read("SELECT sources FROM turns WHERE key = ? ORDER BY id DESC LIMIT ?", (key, self.turns))
        return [tuple(json.loads(str(s))) for (s,) in reversed(rows)]

    def start(self, key: int) -> None:
        """Remember a conversation (with no turns yet), e.g. a thread the bot just opened."""
        with self._transaction() as db:
            self._touch(db, key)

    def add(self, key: int, turn: Turn, sources: Sequence[str] = ()) -> None:
        """Append a turn and the article ids its answer cited, then drop what is past the bounds."""
        with self._transaction() as db:
            self._touch(db, key)
            db.execute("INSERT INTO turns (key, at, question, standalone, sources) VALUES (?, ?, ?, ?, ?)",
                       (key, self.clock(), turn.question, turn.standalone, json.dumps(list(sources))))
            db.execute("DELETE FROM turns WHERE key = ? AND id NOT IN "
                       "(SELECT id FROM turns WHERE key = ? ORDER BY id DESC LIMIT ?)", (key, key, self.turns))

    def _touch(self, db: sqlite3.Connection, key: int) -> None:
        db.execute("INSERT INTO conversations (key, touched) VALUES (?, ?) "
                   "ON CONFLICT (key) DO UPDATE SET touched = excluded.touched", (key, self.clock()))
        stale = [k for (k,) in db.execute(
            "SELECT key FROM conversations WHERE touched < ? OR key NOT IN "
            "(SELECT key FROM conversations ORDER BY touched DESC, rowid DESC LIMIT ?)",
            (self._fresh_after(), self.most)).fetchall()]
        if stale:
            marks = ",".join("?" * len(stale))
            db.execute(f"DELETE FROM turns WHERE key IN ({marks})", stale)
            db.execute(f"DELETE FROM conversations WHERE key IN ({marks})", stale)

    def __len__(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM conversations")[0][0])  # type: ignore[call-overload]

    # -- followed topics -------------------------------------------------------------------------------------
    def follow(self, channel_id: int, topic: str, guild_id: int | None = None) -> bool:
        """Follow a topic in a channel; False when the channel already follows it."""
        with self._transaction() as db:
            cur = db.execute("INSERT OR IGNORE INTO follows (channel, topic, guild, created) VALUES (?, ?, ?, ?)",
                             (channel_id, topic, guild_id, self.clock()))
            return cur.rowcount == 1

    def unfollow(self, channel_id: int, topic: str) -> bool:
        """Stop following (case-insensitively); False when the channel did not follow it."""
        with self._transaction() as db:
            cur = db.execute("DELETE FROM follows WHERE channel = ? AND topic = ?", (channel_id, topic))
            return cur.rowcount > 0

    def follows(self, channel_id: int | None = None) -> list[Follow]:
        """The followed topics of one channel, or of every channel (oldest first)."""
        where, args = ("WHERE channel = ?", (channel_id,)) if channel_id is not None else ("", ())
        rows = self._read(f"SELECT channel, topic, guild FROM follows {where} ORDER BY created, rowid", args)
        return [Follow(int(c), str(t), None if g is None else int(g)) for c, t, g in rows]  # type: ignore[call-overload]

    def claim(self, channel_id: int, article_ids: Sequence[str]) -> list[str]:
        """Those of ``article_ids`` not yet posted to the channel, now marked as posted: two bot processes never
        post the same article to one channel (marks older than ``max_age_days`` are dropped)."""
        claimed: list[str] = []
        with self._transaction() as db:
            db.execute("DELETE FROM posted WHERE at < ?", (self._fresh_after(),))
            for article in article_ids:
                cur = db.execute("INSERT OR IGNORE INTO posted (channel, article, at) VALUES (?, ?, ?)",
                                 (channel_id, article, self.clock()))
                if cur.rowcount == 1:
                    claimed.append(article)
        return claimed
