"""Articles in, ranked passages out. ``Index`` is the package's one public surface: ``bot/`` imports it, the DTOs
(``index.types``) and the error type (``index.errors``), nothing else of ours.

Importing this package is cheap: every heavy module (Chroma, the model, BM25) is imported when first used.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from index.errors import NewsbotError
from index.types import NO_FILTERS, Article, Filters, IndexStats, LoadError, Passage, TimedPassages
from index.when import TimeIntent, TimeWindow, span_label

if TYPE_CHECKING:
    from index.embed import Embedder  # the embedding seam (a Protocol), for callers that inject one
    from index.feeds import FeedRound
    from index.fetch import Fetcher
    from index.ingest import IngestReport
    from index.retrieve import Retriever
    from index.snapshot import SearchSnapshot, SnapshotKeeper
    from index.store import ChromaStore

__all__ = ["NO_FILTERS", "Embedder", "Filters", "Index", "IndexConfig", "IndexStats", "Layout", "Passage",
           "TimeIntent", "TimeWindow", "TimedPassages", "clauses", "date_filters", "phrases", "span_label",
           "split_sentences", "terms", "time_intent"]

log = logging.getLogger(__name__)


# -- text analysis shared with answering (the same rules the index was built with) ----------------------------
def terms(text: str) -> list[str]:
    """The stemmed content words of ``text``, as the index matches them."""
    from index.lexical import tokenize

    return tokenize([text])[0]


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text``, split as the index splits chunks."""
    from index.chunk import split_sentences as split

    return split(text)


def phrases(question: str) -> tuple[str, ...]:
    """The descriptive phrases of a long question (finer than its clauses), or () for a short one."""
    from index.query import phrases as cut

    return cut(question)


def clauses(question: str) -> tuple[str, ...]:
    """The separate claims of a multi-part question, or () for a simple one."""
    from index.query import clauses as parts

    return parts(question)


def time_intent(question: str, as_of: date | datetime) -> TimeIntent:
    """What ``question``, asked on ``as_of``, says about time: its window, recency and timeline wishes, its topic."""
    from index.when import resolve

    return resolve(question, as_of)


def date_filters(sources: Sequence[str] = (), since: str | None = None, until: str | None = None, *,
                 option: Callable[[str], str] = lambda name: name) -> Filters:
    """Filters from what a user typed (outlets, and dates as ``since``/``until``); a value that is not a date
    raises a one-line NewsbotError naming the option as ``option(name)`` ("--since" on the command line)."""
    from index.load import date_bound

    def bound(value: str | None, name: str, end: bool) -> int | None:
        if not value or not value.strip():
            return None
        try:
            return date_bound(value, end=end)
        except ValueError:
            shown = " ".join(value.split())[:40]
            raise NewsbotError(f"{option(name)}: “{shown}” is not a date (try 2023-10-31)") from None

    return Filters(sources=tuple(sources), since=bound(since, "since", False), until=bound(until, "until", True))


# -- where an index lives ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """Where one index lives: embedded Chroma in ``data_dir/chroma``, or a Chroma server; beside it, per process
    host, the search snapshot and the feed state."""

    data_dir: Path
    collection: str = "newsbot"
    chroma_host: str = ""
    chroma_port: int = 8000
    chroma_ssl: bool = False
    chroma_headers: dict[str, str] = field(default_factory=dict, repr=False)  # may carry a token: never shown

    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def version_file(self) -> Path | None:
        """The embedded store's version marker (None in server mode, where only the server knows)."""
        from index.store import version_marker

        return None if self.chroma_host else version_marker(self.chroma_dir, self.collection)

    @property
    def snapshot_dir(self) -> Path:
        """Where this host keeps its search snapshot: the data dir, or one folder per server and collection."""
        if not self.chroma_host:
            return self.data_dir
        key = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{self.chroma_host}_{self.chroma_port}_{self.collection}")
        return self.data_dir / "servers" / key


@dataclass(frozen=True)
class IndexConfig:
    """How articles are indexed and searched."""

    model_cache_dir: Path
    embed_threads: int = 0
    embed_precision: str = "int8"  # for new indexes; an existing one keeps the precision it was built with
    title_prefix: bool = True
    dense_weight: float = 0.4
    refresh_seconds: float = 2.0
    max_file_bytes: int = 256 * 1024 * 1024
    max_article_chars: int = 1_000_000
    fetch_max_bytes: int = 5 * 1024 * 1024  # what one download of a page or feed may cost, and where it may go
    fetch_timeout: float = 20.0
    fetch_host_delay: float = 1.0
    allow_private_urls: bool = False


class Index:
    """One news index: load and ingest articles, forget them, search passages, and say what it holds.

    Collaborators are built on first use, so cheap calls stay cheap: a search on a current snapshot opens no
    Chroma, and ``stats`` loads no model."""

    def __init__(self, layout: Layout, config: IndexConfig, *, embedder: Embedder | None = None) -> None:
        self.layout = layout
        self.config = config
        self._embedder = embedder

    # -- collaborators -------------------------------------------------------------------------------------
    @cached_property
    def embedder(self) -> Embedder:
        if self._embedder is not None:
            return self._embedder
        from index.embed import MiniLM

        return MiniLM(self.config.model_cache_dir, threads=self.config.embed_threads, precision=self.precision)

    @cached_property
    def precision(self) -> str:
        """The embedding precision in use: the one an existing index was built with, else the configured one."""
        from index.embed import precision_of

        wanted = self.config.embed_precision
        recorded = precision_of(self._recorded_model())
        if recorded and recorded != wanted:
            log.info("this index holds %s embeddings; NEWSBOT_EMBED_PRECISION=%s applies to new indexes", recorded,
                     wanted)
        return recorded or wanted

    def _recorded_model(self) -> str:
        """The embedding model the index was built with: from the version marker or the search snapshot when
        there is one (no Chroma), else from the store."""
        from index.embed import precision_of
        from index.snapshot import SearchSnapshot, read_marker

        version_file = self.layout.version_file
        marker = read_marker(version_file) if version_file is not None else None
        for found in (marker, SearchSnapshot.tag(self.layout.snapshot_dir)):
            if found is not None and found.embedding_model:
                return found.embedding_model
        probe = self._open_store("")  # no model check: we are reading which model the index has
        if precision_of(probe.embedding_model):
            self._probe = probe  # already records our model: reuse it as the store
        return probe.embedding_model

    @property
    def embedding_model(self) -> str:
        from index.embed import model_name

        return self._embedder.name if self._embedder is not None else model_name(self.precision)

    @cached_property
    def store(self) -> ChromaStore:
        name = self.embedding_model
        probe = getattr(self, "_probe", None)
        return probe if probe is not None and probe.embedding_model == name else self._open_store(name)

    def _open_store(self, embedding_model: str) -> ChromaStore:
        from index.store import ChromaStore

        lay = self.layout
        if lay.chroma_host:
            return ChromaStore(host=lay.chroma_host, port=lay.chroma_port, ssl=lay.chroma_ssl,
                               headers=lay.chroma_headers, collection=lay.collection, embedding_model=embedding_model)
        return ChromaStore(path=lay.chroma_dir, collection=lay.collection, embedding_model=embedding_model)

    @cached_property
    def snapshots(self) -> SnapshotKeeper:
        from index.snapshot import Freshness, SnapshotKeeper

        return SnapshotKeeper(lambda: self.store, self.layout.snapshot_dir,
                              Freshness(refresh_seconds=self.config.refresh_seconds),
                              version_file=self.layout.version_file)

    @cached_property
    def retriever(self) -> Retriever:
        from index.retrieve import RetrievalConfig, Retriever

        return Retriever(self.snapshots, self.embedder, RetrievalConfig(dense_weight=self.config.dense_weight))

    @cached_property
    def fetcher(self) -> Fetcher:
        from index.fetch import Fetcher, FetchLimits

        c = self.config
        return Fetcher(FetchLimits(max_bytes=c.fetch_max_bytes, timeout=c.fetch_timeout, host_delay=c.fetch_host_delay,
                                   allow_private=c.allow_private_urls, max_article_chars=c.max_article_chars))

    # -- articles in -------------------------------------------------------------------------------------------
    def load(self, paths: Iterable[str | Path]) -> list[Article | LoadError]:
        """Articles from files, directories, archives and http(s) URLs (fetched here, one by one)."""
        from index.load import load_paths

        paths = list(paths)
        urls = [str(p) for p in paths if is_url(p)]
        files = [p for p in paths if not is_url(p)]
        items = list(load_paths(files, max_file_bytes=self.config.max_file_bytes,
                                max_article_chars=self.config.max_article_chars))
        return items + [self.fetcher.article(u) for u in urls]

    def ingest(self, items: Iterable[Article | LoadError], progress: Callable[[int], None] | None = None
               ) -> IngestReport:
        """Store new and changed articles (unchanged ones are skipped); the report counts every outcome."""
        from index.ingest import ChunkingConfig, ingest

        try:
            return ingest(items, self.store, self.embedder, self.layout.snapshot_dir,
                          config=ChunkingConfig(title_prefix=self.config.title_prefix), progress=progress)
        finally:
            self._wrote()

    def ingest_feeds(self, feeds: list[str], *, only_new: bool,
                     progress: Callable[[int], None] | None = None) -> tuple[FeedRound, IngestReport]:
        """One pass over RSS/Atom feeds; ``only_new`` sends conditional requests and skips entries already seen."""
        from index.feeds import STATE_FILE, FeedState, feed_round

        state = FeedState(self.layout.snapshot_dir / STATE_FILE)
        return feed_round(feeds, self.fetcher, lambda items: self.ingest(items, progress), state, only_new=only_new)

    def forget(self, key: str) -> tuple[list[str], int]:
        """Remove the article(s) with this id or URL; returns (ids, chunks removed)."""
        from index.ingest import forget

        try:
            return forget(key, self.store, self.layout.snapshot_dir)
        finally:
            self._wrote()

    def _wrote(self) -> None:
        """This process changed the index: its next search sees that at once, not after the refresh interval."""
        if "snapshots" in self.__dict__:
            self.snapshots.expire()

    # -- passages out ------------------------------------------------------------------------------------------
    def search(self, question: str, k: int = 10, filters: Filters = NO_FILTERS) -> list[Passage]:
        """The ``k`` best passages for ``question``, best first, each with its classified sentences."""
        return self.retriever.search(question, k, filters)

    def time_intent(self, question: str, as_of: date | datetime) -> TimeIntent:
        """``time_intent`` for this index: its outlets' names ("Business Today") are not read as time."""
        return self.retriever.time_intent(question, as_of.date() if isinstance(as_of, datetime) else as_of)

    def search_time(self, question: str, k: int = 10, filters: Filters = NO_FILTERS, *,
                    window: TimeWindow | None = None, recency: bool = False, as_of: date | None = None,
                    topic: str = "") -> TimedPassages:
        """``search`` preferring passages published in ``window`` (the whole index when it holds no good evidence,
        and the result says so) and, with ``recency``, the latest of comparably relevant ones up to ``as_of``;
        ``topic`` (the question without its time words) is what is matched when that helps."""
        return self.retriever.search_time(question, k, filters, window=window, recency=recency, as_of=as_of,
                                          topic=topic)

    def term_weights(self, text: str) -> dict[str, float]:
        """The stemmed terms of ``text`` with their inverse document frequency in this index (rare = high)."""
        return self._snapshot().idf(terms(text))

    def unknown_terms(self, words: Iterable[str]) -> list[str]:
        """Those of ``words`` (as written, e.g. names) that have a stemmed word no indexed chunk holds."""
        snap = self._snapshot()
        return [w for w in words if any(snap.doc_freq(t) == 0 for t in terms(w))]

    def article_ids(self) -> frozenset[str]:
        """The ids of the articles questions are answered from (those of the current search snapshot)."""
        return frozenset(self._snapshot().article_ids)

    def version(self) -> str:
        """The index's version token: it changes whenever any process adds or removes articles."""
        return self._snapshot().version

    def outlets(self) -> list[str]:
        """The outlets of the indexed articles, sorted."""
        return self._snapshot().known_sources

    def date_range(self) -> tuple[str, str] | None:
        """First and last publication day of the indexed articles (None when none has a date)."""
        return self._snapshot().date_range()

    def size(self) -> int:
        """How many chunks questions are answered from (those of completely stored articles)."""
        return len(self._snapshot())

    def chunk_token_counts(self) -> list[int]:
        """Model-token length of every indexed chunk (for eval's chunk-length distribution)."""
        snap = self._snapshot()
        return [snap.meta(row).tokens for row in range(len(snap))]

    def warm(self) -> None:
        """Load the model and the snapshot now, so the first question is not the slow one."""
        self.embedder.embed(["warm up"])
        self._snapshot()

    def _snapshot(self) -> SearchSnapshot:
        return self.snapshots.current()

    def stats(self) -> IndexStats:
        """What the index holds, from the store's catalogue; needs no embedding model."""
        store = self.store
        articles = store.catalog()
        sources = sorted({a.source for a in articles.values() if a.source})
        dates = sorted(a.published_at for a in articles.values() if a.published_at)
        return IndexStats(articles=len(articles), chunks=store.chunk_count(), sources=tuple(sources),
                          first_published=dates[0] if dates else None, last_published=dates[-1] if dates else None,
                          data_dir=str(self.layout.data_dir.resolve()), chroma_mode=store.mode,
                          chroma_location=store.location,
                          embedding_model=store.embedding_model or self.embedding_model)

    @property
    def location(self) -> str:
        """Where the index is, for messages (no store is opened for it)."""
        lay = self.layout
        return f"{'https' if lay.chroma_ssl else 'http'}://{lay.chroma_host}:{lay.chroma_port}" if lay.chroma_host \
            else str(lay.chroma_dir)


def is_url(path: str | Path) -> bool:
    """True for a URL (``scheme://...``) given where a path is expected; the fetcher accepts only http(s)."""
    return isinstance(path, str) and re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", path) is not None

