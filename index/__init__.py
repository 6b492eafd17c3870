"""Articles in, ranked passages out. ``Index`` is the package's one public surface: ``bot/`` imports it, the DTOs
(``index.types``) and the error type (``index.errors``), nothing else of ours.

Importing this package is cheap: every heavy module (Chroma, the model, tantivy) is imported when first used.
"""

from __future__ import annotations

import logging
import math
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
    from index.follower import Follower
    from index.ingest import IngestReport
    from index.lexical_engine import TantivyEngine
    from index.retrieve import Retriever
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
    """Where one index lives: embedded Chroma in ``data_dir/chroma``, or a Chroma server; beside it, per host, the
    lexical engine with its change-feed state, and the feed state."""

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
        """Where this host keeps its lexical engine and feed state: the data dir, or one folder per server and
        collection."""
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
    reconcile_seconds: float = 600.0
    chroma_query_limit: int = 300  # results per dense query and records per get(): Chroma Cloud's caps
    max_file_bytes: int = 256 * 1024 * 1024
    max_article_chars: int = 1_000_000
    fetch_max_bytes: int = 5 * 1024 * 1024  # what one download of a page or feed may cost, and where it may go
    fetch_timeout: float = 20.0
    fetch_host_delay: float = 1.0
    allow_private_urls: bool = False


class Index:
    """One news index: load and ingest articles, forget them, search passages, and say what it holds.

    Collaborators are built on first use, so cheap calls stay cheap: ``stats`` loads no model, and a search opens
    Chroma beside the model's start-up."""

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
        """The embedding model the index was built with: from the version marker when there is one (no Chroma),
        else from the store."""
        from index.embed import precision_of
        from index.store import read_marker

        version_file = self.layout.version_file
        marker = read_marker(version_file) if version_file is not None else None
        if marker is not None and marker.embedding_model:
            return marker.embedding_model
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

        lay, limit = self.layout, self.config.chroma_query_limit
        if lay.chroma_host:
            return ChromaStore(host=lay.chroma_host, port=lay.chroma_port, ssl=lay.chroma_ssl,
                               headers=lay.chroma_headers, collection=lay.collection, embedding_model=embedding_model,
                               query_limit=limit)
        return ChromaStore(path=lay.chroma_dir, collection=lay.collection, embedding_model=embedding_model,
                           query_limit=limit)

    @cached_property
    def follower(self) -> Follower:
        from index.follower import Follower, Freshness

        return Follower(lambda: self.store, self.layout.snapshot_dir,
                        Freshness(refresh_seconds=self.config.refresh_seconds,
                                  reconcile_seconds=self.config.reconcile_seconds),
                        version_file=self.layout.version_file)

    @cached_property
    def retriever(self) -> Retriever:
        from index.retrieve import RetrievalConfig, Retriever

        follower = self.follower
        follower.prefetch()  # chromadb imports and the store opens on a thread (most of a second)…
        embedder = self.embedder  # …while the model starts here (onnxruntime mostly releases the GIL)
        return Retriever(follower, embedder, RetrievalConfig(dense_weight=self.config.dense_weight))

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
            report = ingest(items, self.store, self.embedder,
                            config=ChunkingConfig(title_prefix=self.config.title_prefix), progress=progress)
        finally:
            self._wrote()
        self.sync()  # this host's engine takes the change now (others follow the feed); a crash here heals later
        return report

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
            found = forget(key, self.store)
        finally:
            self._wrote()
        self.sync()
        return found

    def sync(self) -> int:
        """Bring this host's lexical engine up to date with the store now (by the change since its watermark;
        once from the whole store on a new host); returns how many articles changed in it."""
        return self.follower.sync()

    def _wrote(self) -> None:
        """This process changed the index: its next search sees that at once, not after the refresh interval."""
        if "follower" in self.__dict__:
            self.follower.expire()

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
        engine = self._engine()
        n = max(len(engine), 1)
        out = {}
        for t in terms(text):
            df = engine.doc_freq(t)
            out[t] = float(math.log(1 + (n - df + 0.5) / (df + 0.5)))
        return out

    def unknown_terms(self, words: Iterable[str]) -> list[str]:
        """Those of ``words`` (as written, e.g. names) that have a stemmed word no indexed chunk holds."""
        engine = self._engine()
        return [w for w in words if any(engine.doc_freq(t) == 0 for t in terms(w))]

    def article_ids(self) -> frozenset[str]:
        """The ids of the articles questions are answered from (those this host's engine holds)."""
        return frozenset(self._engine().article_ids())

    def version(self) -> str:
        """The index's version token: it changes whenever any process adds or removes articles."""
        self._engine()
        return self.follower.seen or ""

    def outlets(self) -> list[str]:
        """The outlets of the indexed articles, sorted."""
        return sorted(self._engine().outlets())

    def date_range(self) -> tuple[str, str] | None:
        """First and last publication day of the indexed articles (None when none has a date)."""
        return self._engine().date_range()

    def size(self) -> int:
        """How many chunks questions are answered from (those of completely stored articles)."""
        return len(self._engine())

    def chunk_token_counts(self) -> list[int]:
        """Model-token length of every indexed chunk (for eval's chunk-length distribution)."""
        live = set(self.store.catalog())
        return [rec.meta.tokens for rec in self.store.iter_chunks() if rec.meta.article_id in live]

    def warm(self) -> None:
        """Load the model, open the store and bring the engine up to date now, so the first question is not the
        slow one."""
        self.follower.prefetch()
        self.embedder.embed(["warm up"])
        self._engine()

    def _engine(self) -> TantivyEngine:
        return self.follower.current()

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

