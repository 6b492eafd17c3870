"""Articles in: chunk, embed and store them idempotently. The store's catalogue is the change feed every host's
lexical engine follows (``index.follower``); nothing here rebuilds anything."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from index.chunk import TokenChunk, chunk_article
from index.embed import MODEL_WINDOW, Embedder
from index.errors import NewsbotError, first_line
from index.load import split_origin, timestamp
from index.store import ChromaStore, ChunkRecord
from index.types import Article, ChunkMeta, LoadError

log = logging.getLogger(__name__)

CHUNKER_VERSION = "1"
PREFIX_MAX_TOKENS = 32
Progress = Callable[[int], None]


@dataclass(frozen=True)
class ChunkingConfig:
    """How articles become embedded chunks; part of every article's content hash."""

    window: int = MODEL_WINDOW
    title_prefix: bool = True
    overlap_sentences: int = 0

    def signature(self) -> str:
        return f"c{CHUNKER_VERSION}:w{self.window}:t{int(self.title_prefix)}:o{self.overlap_sentences}"


@dataclass
class IngestReport:
    """What one ingest did."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    chunks_added: int = 0
    chunks_total: int = 0
    seconds: float = 0.0
    errors: list[LoadError] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"articles": {"new": self.new, "updated": self.updated, "unchanged": self.unchanged,
                             "failed": self.failed},
                "chunks_added": self.chunks_added, "chunks_total": self.chunks_total,
                "seconds": round(self.seconds, 2),
                "errors": [{"path": e.path, "record": e.record, "message": e.message} for e in self.errors]}


def embed_prefix(article: Article) -> str:
    """Title, outlet and date, prepended to the embedded text (never to the quoted passage)."""
    bits = [b for b in (article.source, _human_date(article.published_at)) if b]
    return f"{article.title} ({', '.join(bits)})" if bits else article.title


def _human_date(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).strftime("%B %-d, %Y") if iso else ""
    except ValueError:
        return ""


def content_hash(article: Article, config: ChunkingConfig, model: str) -> str:
    h = hashlib.sha256()
    for part in (config.signature(), model, article.title, article.source, article.url, article.author,
                 article.published_at, article.category, repr(sorted(article.extra.items())), article.body):
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()[:24]


def chunk_metadata(article: Article, tc: TokenChunk, digest: str) -> ChunkMeta:
    c = tc.chunk
    return ChunkMeta(article_id=article.id, title=article.title, source=article.source, url=article.url,
                     author=article.author, category=article.category, published_at=article.published_at,
                     published_ts=timestamp(article.published_at), position=c.position, start=c.start, end=c.end,
                     tokens=len(tc.ids), content_hash=digest, extra=dict(article.extra))


def prepare(article: Article, embedder: Embedder, config: ChunkingConfig) -> tuple[list[TokenChunk], list[list[int]]]:
    """Chunks of an article and the token ids to embed for each (prefix + chunk, within the window)."""
    prefix: list[int] = []
    if config.title_prefix:
        prefix = embedder.tokenize(embed_prefix(article))[0][:PREFIX_MAX_TOKENS]
    budget = config.window - 2 - len(prefix)
    chunks = chunk_article(article, embedder.tokenize, budget, config.overlap_sentences)
    return chunks, [prefix + tc.ids for tc in chunks]


def ingest(items: Iterable[Article | LoadError], store: ChromaStore, embedder: Embedder, *,
           config: ChunkingConfig = ChunkingConfig(), batch_articles: int = 32,
           progress: Progress | None = None, overlap_writes: bool = True) -> IngestReport:
    """Store new and changed articles, skip unchanged ones, report every failure.

    Embedding (this thread) overlaps with Chroma writes (a writer thread fed through a short queue); each
    batch is written in order, chunks before catalogue records, so the store's crash-safety contract holds.
    """
    started = time.perf_counter()
    report = IngestReport()
    seen: set[str] = set()
    batch: list[Article] = []
    bumped = False
    writer = _Writer(store, report, background=overlap_writes)

    def flush() -> None:
        nonlocal bumped
        if not batch:
            return
        stored = store.catalog([a.id for a in batch])
        todo: list[tuple[Article, str, bool]] = []
        for article in batch:
            digest = content_hash(article, config, embedder.name)
            old = stored.get(article.id)
            if old is not None and old.content_hash == digest:
                report.unchanged += 1
            else:
                todo.append((article, digest, old is not None))
        if todo:
            if not bumped:
                store.bump_version()  # readers check the change feed
                bumped = True
            writer.put(_embed(todo, embedder, config, report))
        if progress:
            progress(len(batch))
        batch.clear()

    try:
        for item in items:
            if isinstance(item, LoadError):
                report.failed += 1
                report.errors.append(item)
                log.info("skipped %s", item)
                continue
            if item.id in seen:
                report.unchanged += 1  # the same article twice in one input
                if progress:
                    progress(1)
                continue
            seen.add(item.id)
            batch.append(item)
            if len(batch) >= batch_articles:
                flush()
        flush()
    finally:
        writer.close()  # finishes the queued batches (whole articles) even when we are unwinding
    if bumped:
        store.bump_version()
    report.chunks_total = store.chunk_count()
    report.seconds = time.perf_counter() - started
    return report


WRITE_QUEUE = 2  # embedded batches waiting for the writer; bounds memory, keeps the writer busy


@dataclass
class _Batch:
    """Embedded articles ready to store: Chroma items plus what the report counts once they are written."""

    items: list[tuple[dict[str, Any], list[ChunkRecord], np.ndarray]]
    written: list[tuple[bool, int]]  # (existed, chunks) per article


class _Writer:
    """Writes embedded batches to the store on one background thread, in order; re-raises its error."""

    def __init__(self, store: ChromaStore, report: IngestReport, *, background: bool = True) -> None:
        import queue
        import threading

        self._store, self._report, self._background = store, report, background
        self._queue: queue.Queue[_Batch | None] = queue.Queue(maxsize=WRITE_QUEUE)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._start = lambda: threading.Thread(target=self._run, name="newsbot-writer", daemon=True)

    def put(self, batch: _Batch) -> None:
        self._raise()
        if not batch.items:
            return
        if not self._background:
            _store(batch, self._store, self._report)
            return
        if self._thread is None:
            self._thread = self._start()
            self._thread.start()
        self._queue.put(batch)

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def _run(self) -> None:
        while (batch := self._queue.get()) is not None:
            if self._error is not None:
                continue  # drain: nothing after a failed write is stored
            try:
                _store(batch, self._store, self._report)
            except BaseException as err:  # handed to the ingesting thread
                self._error = err


def _embed(todo: Sequence[tuple[Article, str, bool]], embedder: Embedder, config: ChunkingConfig,
           report: IngestReport) -> _Batch:
    """Chunk (tokenising each article once) and embed a batch of articles."""
    prepared = []
    all_ids: list[list[int]] = []
    for article, digest, existed in todo:
        chunks, ids = prepare(article, embedder, config)
        if not chunks:
            report.failed += 1
            report.errors.append(LoadError(*split_origin(article.origin or article.id), "no text to index"))
            continue
        prepared.append((article, digest, existed, chunks))
        all_ids.extend(ids)
    vectors = embedder.embed_ids(all_ids)
    out = _Batch([], [])
    row = 0
    for article, digest, existed, chunks in prepared:
        vecs = vectors[row:row + len(chunks)]
        row += len(chunks)
        records = [ChunkRecord(tc.chunk.id, tc.chunk.text, chunk_metadata(article, tc, digest)) for tc in chunks]
        catalog = {"article_id": article.id, "title": article.title, "source": article.source, "url": article.url,
                   "published_at": article.published_at, "published_ts": timestamp(article.published_at),
                   "content_hash": digest, "n_chunks": len(chunks)}
        out.items.append((catalog, records, vecs))
        out.written.append((existed, len(chunks)))
    return out


def _store(batch: _Batch, store: ChromaStore, report: IngestReport) -> None:
    try:
        store.write_articles(batch.items)
    except NewsbotError:
        raise
    except Exception as err:
        log.debug("write failed", exc_info=True)
        raise NewsbotError(f"could not write to the index: {first_line(err)}") from err
    for existed, n_chunks in batch.written:
        if existed:
            report.updated += 1
        else:
            report.new += 1
        report.chunks_added += n_chunks


def forget(key: str, store: ChromaStore) -> tuple[list[str], int]:
    """Remove the article(s) with this id or URL (their catalogue records become tombstones, which every host's
    engine follows); returns (ids, chunks removed)."""
    ids = store.find_article_ids(key)
    if not ids:
        raise NewsbotError(f"no article with id or url {key!r}; `newsbot stats` shows what is indexed")
    store.bump_version()
    removed = sum(store.delete_article(i) for i in ids)
    store.bump_version()
    return ids, removed
