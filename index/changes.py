"""A process's place in the store's change feed: what it has applied, and what a batch of changes asks of it.

The catalogue records when each article last changed and keeps tombstones (``ChromaStore.changes_since``). A
process remembers the content hash of every article it has applied and a watermark (the latest change time it has
seen); each poll re-reads the feed from ``Applied.read_from()`` (the watermark less ``SKEW_SECONDS``, for writers'
clock skew and writes in flight), and ``plan`` says which articles to (re)load and which to drop. Planning is by
content hash, so re-reading a change already applied asks for nothing; ``reconcile`` against the store's live
hashes repairs whatever a poll missed. A crash after applying but before saving is healed the same way: the next
poll starts from the saved, older watermark and plans the change again.

Planning is pure; ``AppliedFile`` is the only I/O (one JSON file, replaced atomically).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from index.types import ArticleChange

log = logging.getLogger(__name__)

SKEW_SECONDS = 300.0  # a poll re-reads this much before its watermark: writers' clocks and in-flight writes
STATE_FILE = "changefeed.json"  # in the host's lexical engine directory (index.follower)
FORMAT = 1  # bump when what the state file holds changes (an unknown format means bootstrap again)


@dataclass(frozen=True)
class Applied:
    """What one process has applied from the feed: each live article's content hash, and the latest change time
    (writers' clocks, unix seconds) it has read up to; 0.0 means it has read nothing yet."""

    hashes: Mapping[str, str] = field(default_factory=dict)
    watermark: float = 0.0

    def read_from(self) -> float:
        """Where the next poll reads the feed from (``changes_since``): a little before the watermark."""
        return max(0.0, self.watermark - SKEW_SECONDS)


@dataclass(frozen=True)
class Plan:
    """What to do to a process's derived index: (re)load these articles at these hashes, drop those; then its
    watermark becomes ``watermark``."""

    load: Mapping[str, str]  # article id -> the content hash it is to be loaded at
    drop: frozenset[str]
    watermark: float

    @property
    def empty(self) -> bool:
        """Nothing to load or drop (the watermark may still move)."""
        return not self.load and not self.drop


def plan(applied: Applied, changes: Iterable[ArticleChange]) -> Plan:
    """What ``changes`` (one or more pages of the feed, duplicates and already-applied ones allowed) ask of a process
    in state ``applied``: load live articles whose hash differs from the applied one, drop tombstoned ones it holds."""
    latest: dict[str, ArticleChange] = {}
    for change in changes:  # an article seen twice (pages read across a write): its latest record wins
        seen = latest.get(change.article_id)
        if seen is None or change.changed_at >= seen.changed_at:
            latest[change.article_id] = change
    load = {i: c.content_hash for i, c in latest.items()
            if c.state == "ok" and applied.hashes.get(i) != c.content_hash}
    drop = frozenset(i for i, c in latest.items() if c.state != "ok" and i in applied.hashes)
    # the watermark never goes back: a change stamped by a slow clock is applied but does not rewind the feed
    watermark = max([applied.watermark, *(c.changed_at for c in latest.values())])
    return Plan(load, drop, watermark)


def reconcile(applied: Applied, live: Mapping[str, str], *, watermark: float | None = None) -> Plan:
    """The repairs that make ``applied`` match the store's live {article id: content hash} (``live_hashes``):
    load what is missing or stale, drop what is no longer live. ``watermark``: the feed time the live hashes are
    known to cover (a new host's clock before it read them, when bootstrapping); by default it stays."""
    load = {i: h for i, h in live.items() if applied.hashes.get(i) != h}
    drop = frozenset(applied.hashes.keys() - live.keys())
    return Plan(load, drop, applied.watermark if watermark is None else max(applied.watermark, watermark))


def advance(applied: Applied, done: Plan) -> Applied:
    """The state after ``done`` has been applied to the process's derived index."""
    hashes = {i: h for i, h in applied.hashes.items() if i not in done.drop}
    hashes.update(done.load)
    return Applied(hashes, max(applied.watermark, done.watermark))


class AppliedFile:
    """A process's ``Applied`` state in one JSON file, replaced atomically (a crash leaves the old file or the new)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def beside(cls, engine_dir: Path) -> AppliedFile:
        """The state file kept in a host's lexical engine directory (``index.follower``)."""
        return cls(engine_dir / STATE_FILE)

    def load(self) -> Applied:
        """The saved state; an empty one (bootstrap from the store) when there is none or it cannot be read."""
        try:
            found = json.loads(self.path.read_text(encoding="utf-8"))
            if found.get("format") != FORMAT:
                raise ValueError(f"format {found.get('format')!r}, expected {FORMAT}")
            hashes = {str(k): str(v) for k, v in dict(found["hashes"]).items()}
            return Applied(hashes, float(found["watermark"]))
        except FileNotFoundError:
            return Applied()
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            log.warning("%s: unreadable change-feed state (%s); starting again from the store", self.path, err)
            return Applied()

    def save(self, applied: Applied) -> None:
        """Write ``applied`` to a temporary file beside the state file, sync it, and swap it in."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({"format": FORMAT, "watermark": applied.watermark, "hashes": dict(applied.hashes)}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
