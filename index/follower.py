"""Keeps a host's lexical engine in step with the store, by the change and never by the corpus.

Every process of a host shares one on-disk lexical engine (``index.lexical_engine``) and one change-feed state
(``index.changes``) in ``<host dir>/search`` (``Layout.host_dir``). At most every ``refresh_seconds`` a process
reads the store's version token (the marker file in embedded mode, one small request in server mode). When it
moved, the process takes the engine's writer lock and reads the catalogue records changed since the host's
watermark (less the skew). It fetches only those articles' chunks (text and metadata, no vectors), classifies
their sentences, replaces them in the engine and commits, then saves the new watermark. Processes that find the
work already done only reload the engine. A new host bootstraps once from the store's live articles, in batches
that are each saved, so an interrupted bootstrap resumes. Every ``reconcile_seconds`` the applied hashes are
compared with the store's live ones, which repairs anything a poll missed. An article whose chunks are being
rewritten (their hash is not the catalogue's yet) is left for the next poll, so a reader never shows half an
article. An engine of another format, or classified by other sentence rules, is removed and built again.

In embedded mode a client keeps the vectors it loaded: when another process moved the version, the follower reopens
its Chroma client so dense retrieval sees the new chunks too.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from index.changes import Applied, AppliedFile, Plan, advance, plan, reconcile
from index.errors import NewsbotError, first_line

if TYPE_CHECKING:
    from index.lexical_engine import LexicalChunk, TantivyEngine
    from index.store import ChromaStore, ChunkRecord

log = logging.getLogger(__name__)

ENGINE_DIR = "search"  # in the host directory: the lexical engine and the change-feed state
RULES_TAG = "rules.json"  # the sentence rules (index.prose) the engine's chunks were classified with
OLD_DIRS = ("snapshot", "lexical")  # the per-process snapshots of earlier versions, removed on first use


@dataclass(frozen=True)
class Freshness:
    """How a running process keeps its view in step with other processes' writes."""

    refresh_seconds: float = 2.0  # how often the store's version is checked
    reconcile_seconds: float = 600.0  # how often the applied articles are compared with the store's live ones
    batch_articles: int = 200  # articles fetched and committed at a time
    busy_wait_seconds: float = 2.0  # how long a process that has an index waits for another's update to finish
    # a process's first check also reconciles when the catalogue is this small (cheap; repairs a state left over
    # from a store that was replaced); larger ones wait for the periodic reconcile
    startup_reconcile_articles: int = 20_000


def classify_sentences(text: str) -> tuple[tuple[str, str], ...]:
    """The sentences of a chunk's text with their kinds (``index.prose``), as the engine stores them; a heading
    glued to the sentence after it becomes two entries, the heading and the (quotable) sentence."""
    from index.chunk import split_sentences
    from index.prose import HEADING, sentence_kind, split_heading

    out: list[tuple[str, str]] = []
    for sentence in split_sentences(text):
        kind = sentence_kind(sentence)
        glued = split_heading(sentence) if kind == HEADING else None
        if glued is not None:
            lead, rest = glued
            out += [(lead, HEADING), (rest, sentence_kind(rest))]
        else:
            out.append((sentence, kind))
    return tuple(out)


def lexical_chunk(record: ChunkRecord) -> LexicalChunk:
    """A stored chunk as the lexical engine indexes it."""
    from index.lexical_engine import LexicalChunk

    m = record.meta
    return LexicalChunk(record.id, m.article_id, m.source, m.published_ts, m.title, record.text,
                        classify_sentences(record.text), m)


def complete_articles(records: Sequence[ChunkRecord], wanted: dict[str, tuple[str, int]]
                      ) -> dict[str, list[ChunkRecord]]:
    """Those of ``wanted`` ({article id: (content hash, chunk count)} from the catalogue) whose chunks in
    ``records`` are all there at that hash; an article being rewritten is not (yet)."""
    by_article: dict[str, list[ChunkRecord]] = {}
    for r in records:
        want = wanted.get(r.meta.article_id)
        if want is not None and r.meta.content_hash == want[0]:
            by_article.setdefault(r.meta.article_id, []).append(r)
    return {a: sorted(rs, key=lambda r: r.meta.position) for a, rs in by_article.items()
            if len(rs) == wanted[a][1]}


def _check_rules(directory: Path, engine: TantivyEngine) -> None:
    """Raise EngineFormatError when the engine's sentences were classified by other rules than ``index.prose``'s
    (they are then classified again, from the store); record the rules in a new, empty engine."""
    from index.lexical_engine import EngineFormatError
    from index.prose import RULES_VERSION

    tag = directory / RULES_TAG
    try:
        found = json.loads(tag.read_text()).get("rules")
    except (OSError, ValueError, AttributeError):
        found = None
    if found == RULES_VERSION:
        return
    if found is None and len(engine) == 0:
        tag.write_text(json.dumps({"rules": RULES_VERSION}))
        return
    raise EngineFormatError(f"the lexical index in {directory} holds sentences classified by rules "
                            f"{found!r}, this newsbot's are {RULES_VERSION!r}")


def _release_freed_memory() -> None:
    """Give memory freed by an apply (tokenising, tantivy's writers) back to the system: glibc keeps it in its
    arenas otherwise, so a bot that bootstrapped holds ~70 MB it no longer uses. A no-op off glibc."""
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _engine_lock(directory: Path) -> AbstractContextManager[None]:
    """The engine's writer lock, so no other process of the host is writing while the directory is replaced."""
    from index.lexical_engine import _writer_lock

    return _writer_lock(directory, 600.0)


class Follower:
    """The lexical engine of one store on this host, kept current through the store's change feed."""

    def __init__(self, open_store: Callable[[], ChromaStore], host_dir: Path, config: Freshness = Freshness(), *,
                 version_file: Path | None = None) -> None:
        self._open_store = open_store
        self._store: ChromaStore | None = None
        self._store_lock = threading.Lock()
        self._prefetching = False
        self.directory = host_dir / ENGINE_DIR
        self._host_dir = host_dir
        self.config = config
        self.version_file = version_file
        self._engine: TantivyEngine | None = None
        self._lock = threading.RLock()
        self._checked = float("-inf")
        self._reconciled = time.monotonic()
        self._reconciler: threading.Thread | None = None
        self._seen: str | None = None  # the store version this process last brought its view up to
        self.generation = 0  # grows whenever this process's view of the index changed
        self.state = AppliedFile.beside(self.directory)

    @property
    def store(self) -> ChromaStore:
        """The store, opened on first use (``prefetch`` opens it beside the model's start-up)."""
        with self._store_lock:
            if self._store is None:
                self._store = self._open_store()
            return self._store

    def prefetch(self) -> None:
        """Open the store on a background thread (importing chromadb takes most of a second)."""
        if self._store is None and not self._prefetching:
            self._prefetching = True
            threading.Thread(target=self._quiet_open, name="newsbot-open-store", daemon=True).start()

    def _quiet_open(self) -> None:
        try:
            _ = self.store
        except Exception:  # the caller's own use of the store reports it
            log.debug("opening the store in the background failed", exc_info=True)

    @property
    def seen(self) -> str | None:
        """The store version this process's view was last brought up to (None before its first check)."""
        return self._seen

    @property
    def engine(self) -> TantivyEngine:
        """The host's lexical engine as it is (no check against the store)."""
        with self._lock:
            if self._engine is None:
                from index.lexical_engine import EngineFormatError, TantivyEngine

                for name in OLD_DIRS:
                    shutil.rmtree(self._host_dir / name, ignore_errors=True)
                try:
                    self._engine = TantivyEngine.open(self.directory)
                    _check_rules(self.directory, self._engine)
                except EngineFormatError as err:  # derived data of another version: built again from the store
                    log.info("%s; building it again from the store", err)
                    with _engine_lock(self.directory):
                        shutil.rmtree(self.directory, ignore_errors=True)
                    self._engine = TantivyEngine.open(self.directory)
                    _check_rules(self.directory, self._engine)
            return self._engine

    def current(self) -> TantivyEngine:
        """The engine, brought up to date with the store first when ``refresh_seconds`` have passed. While another
        thread of this process is bringing it up to date, a search does not wait: it answers from the engine in
        hand (a Discord bot keeps answering during a feed round's apply)."""
        ready = self._engine
        if ready is not None and len(ready):
            if not self._lock.acquire(blocking=False):
                return ready
        else:
            self._lock.acquire()  # nothing to answer from yet: wait for the first follow
        try:
            engine = self.engine
            if time.monotonic() - self._checked >= self.config.refresh_seconds:
                self._checked = time.monotonic()
                try:
                    self._follow(engine)
                except NewsbotError:
                    if len(engine) == 0:
                        raise
                    log.warning("could not bring the search index up to date; answering from the one in hand")
                    log.debug("follow failed", exc_info=True)
            return engine
        finally:
            self._lock.release()

    def expire(self) -> None:
        """Check the store on the next search, however recently it was checked."""
        with self._lock:
            self._checked = float("-inf")

    def sync(self) -> int:
        """Apply whatever the store holds that this host's engine does not, now; returns articles changed."""
        with self._lock:
            self._checked = time.monotonic()
            return self._follow(self.engine, force=True)

    # -- following the feed -----------------------------------------------------------------------------------
    def _version(self) -> str | None:
        if self.version_file is None:
            return self.store.version()
        from index.store import read_marker

        found = read_marker(self.version_file)
        return found.version if found is not None else self.store.sync_marker()

    def _follow(self, engine: TantivyEngine, force: bool = False) -> int:
        version = self._version()
        small = self._seen is None and self.store.article_count() <= self.config.startup_reconcile_articles
        if time.monotonic() - self._reconciled >= self.config.reconcile_seconds:
            self._reconcile_beside()
        if version == self._seen and not force and not small:
            return 0
        store = self.store
        if self._seen is not None and version != self._seen and not store.wrote(version or ""):
            store.reopen()  # embedded: see the vectors another process added (a server needs nothing)
        wait = self.config.busy_wait_seconds if len(engine) else 600.0  # with nothing to answer from, wait
        try:
            with engine.writing(timeout=wait):
                changed = self._apply(engine, store, small)
        except NewsbotError:
            if not len(engine):
                raise
            log.info("another process is updating the search index; answering from the one in hand")
            return 0
        self._applied(engine, changed, moved=version != self._seen)
        self._seen = version
        return changed

    def _applied(self, engine: TantivyEngine, changed: int, *, moved: bool = False) -> None:
        """This process's view moves on: reload the engine; when the index moved (``changed`` here, or ``moved`` by
        another process of the host) drop the cached vectors (an updated article may keep its chunk ids); give back
        what applying freed."""
        engine.reload()
        if (changed or moved) and self._store is not None:
            self._store.forget_vectors()
        if changed:
            _release_freed_memory()  # applying leaves freed buffers the allocator would otherwise keep (tens of MB)
        self.generation += 1

    def _reconcile_beside(self) -> None:
        """Start the periodic reconcile on a background thread: reading every live article's hash takes minutes
        at a few hundred thousand articles, and no search waits for it (repairs are applied when it is done)."""
        self._reconciled = time.monotonic()
        if self._reconciler is not None and self._reconciler.is_alive():
            return
        self._reconciler = threading.Thread(target=self._reconcile, name="newsbot-reconcile", daemon=True)
        self._reconciler.start()

    def _reconcile(self) -> int:
        """Compare the host's applied articles with the store's live ones and repair the difference (an article
        that became live or changed after the live hashes were read is the feed's; a drop is checked again)."""
        try:
            live = self.store.live_hashes()
            with self._lock:
                engine = self.engine
                with engine.writing(timeout=60.0):
                    applied = self.state.load()
                    _, changed = self._execute(engine, self.store, applied, reconcile(applied, live))
                self._applied(engine, changed)
            if changed:
                log.info("reconcile repaired %d articles the change feed had missed", changed)
            return changed
        except Exception as err:  # the next period tries again
            log.warning("could not compare the search index with the store (%s)", first_line(err))
            log.debug("reconcile failed", exc_info=True)
            return 0

    def _apply(self, engine: TantivyEngine, store: ChromaStore, reconcile_now: bool) -> int:
        """Under the engine's writer lock: apply the feed since the host's watermark (bootstrap when there is none)
        and, when ``reconcile_now`` (a process starting on a small store), repair against its live articles."""
        applied = self.state.load()
        started = time.time()
        if applied.watermark == 0.0 and not applied.hashes:
            log.info("building the search index from the store (once per host)")
            todo = reconcile(applied, store.live_hashes(), watermark=started)
            reconcile_now = False
            self._reconciled = time.monotonic()
        else:
            todo = plan(applied, store.changes_since(applied.read_from()))
        applied, changed = self._execute(engine, store, applied, todo)
        if reconcile_now:
            applied, more = self._execute(engine, store, applied, reconcile(applied, store.live_hashes()))
            changed += more
        return changed

    def _execute(self, engine: TantivyEngine, store: ChromaStore, applied: Applied, todo: Plan
                 ) -> tuple[Applied, int]:
        """Carry out ``todo`` in batches, saving the state after each (a bootstrap interrupted resumes)."""
        changed = 0
        loads = sorted(todo.load)
        size = max(1, self.config.batch_articles)
        for i in range(0, len(loads), size):
            batch = loads[i:i + size]
            live = store.catalog(batch)  # the truth now, not what the feed said a moment ago
            records = store.chunks_of([a for a in batch if a in live])
            whole = complete_articles(records, {a: (s.content_hash, s.n_chunks) for a, s in live.items()})
            gone = frozenset(a for a in batch if a not in live and a in applied.hashes)
            changed += engine.apply([lexical_chunk(r) for rs in whole.values() for r in rs], gone)
            applied = advance(applied, Plan({a: live[a].content_hash for a in whole}, gone, applied.watermark))
            self.state.save(applied)
            if len(loads) > size:
                log.info("search index: %d of %d articles", min(i + size, len(loads)), len(loads))
        drops = todo.drop - set(store.catalog(sorted(todo.drop))) if todo.drop else frozenset()
        if drops:
            changed += engine.apply([], drops)
        applied = advance(applied, Plan({}, frozenset(drops), todo.watermark))
        self.state.save(applied)
        if not todo.empty:
            log.debug("change feed: %d loaded, %d dropped, watermark %.0f", len(loads), len(drops), todo.watermark)
        return applied, changed
