"""Articles in: chunk, embed and store them idempotently, then bring the lexical index in step."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from index.chunk import TokenChunk, chunk_article
from index.embed import MODEL_WINDOW, Embedder
from index.errors import NewsbotError
from index.lexical import LexicalIndex
from index.load import timestamp
from index.store import ChromaStore, ChunkRecord
from index.types import Article, LoadError

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


def chunk_metadata(article: Article, tc: TokenChunk, digest: str) -> dict[str, Any]:
    c = tc.chunk
    meta: dict[str, Any] = dict(article.extra)
    meta.update(article_id=article.id, title=article.title, source=article.source, url=article.url,
                author=article.author, category=article.category, published_at=article.published_at,
                published_ts=timestamp(article.published_at), position=c.position, start=c.start, end=c.end,
                tokens=len(tc.ids), content_hash=digest)
    return meta


def prepare(article: Article, embedder: Embedder, config: ChunkingConfig) -> tuple[list[TokenChunk], list[list[int]]]:
    """Chunks of an article and the token ids to embed for each (prefix + chunk, within the window)."""
    prefix: list[int] = []
    if config.title_prefix:
        prefix = embedder.tokenize(embed_prefix(article))[0][:PREFIX_MAX_TOKENS]
    budget = config.window - 2 - len(prefix)
    chunks = chunk_article(article, embedder.tokenize, budget, config.overlap_sentences)
    return chunks, [prefix + tc.ids for tc in chunks]


def ingest(items: Iterable[Article | LoadError], store: ChromaStore, embedder: Embedder, data_dir: Path, *,
           config: ChunkingConfig = ChunkingConfig(), batch_articles: int = 32,
           progress: Progress | None = None) -> IngestReport:
    """Store new and changed articles, skip unchanged ones, report every failure; then refresh BM25."""
    started = time.perf_counter()
    report = IngestReport()
    seen: set[str] = set()
    batch: list[Article] = []
    bumped = False

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
                store.bump_version()  # readers holding an older lexical snapshot will rebuild
                bumped = True
            _write(todo, store, embedder, config, report)
        if progress:
            progress(len(batch))
        batch.clear()

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
    if bumped:
        store.bump_version()
    if bumped or not _lexical_current(store, data_dir):
        rebuild_lexical(store, data_dir)
    report.chunks_total = store.chunk_count()
    report.seconds = time.perf_counter() - started
    return report


def _write(todo: Sequence[tuple[Article, str, bool]], store: ChromaStore, embedder: Embedder,
           config: ChunkingConfig, report: IngestReport) -> None:
    prepared = []
    all_ids: list[list[int]] = []
    for article, digest, existed in todo:
        chunks, ids = prepare(article, embedder, config)
        if not chunks:
            report.failed += 1
            report.errors.append(LoadError(*_origin(article), "no text to index"))
            continue
        prepared.append((article, digest, existed, chunks))
        all_ids.extend(ids)
    vectors = embedder.embed_ids(all_ids)
    items = []
    row = 0
    for article, digest, _existed, chunks in prepared:
        vecs = vectors[row:row + len(chunks)]
        row += len(chunks)
        records = [ChunkRecord(tc.chunk.id, tc.chunk.text, chunk_metadata(article, tc, digest)) for tc in chunks]
        catalog = {"article_id": article.id, "title": article.title, "source": article.source, "url": article.url,
                   "published_at": article.published_at, "published_ts": timestamp(article.published_at),
                   "content_hash": digest, "n_chunks": len(chunks)}
        items.append((catalog, records, vecs))
    try:
        store.write_articles(items)
    except Exception as err:
        log.debug("write failed", exc_info=True)
        raise NewsbotError(f"could not write to the index: {str(err).splitlines()[0][:200] if str(err) else type(err).__name__}") from err
    for article, _digest, existed, chunks in prepared:
        if existed:
            report.updated += 1
        else:
            report.new += 1
        report.chunks_added += len(chunks)


def _origin(article: Article) -> tuple[str, int]:
    from index.load import _split_origin

    return _split_origin(article.origin or article.id)


def _lexical_current(store: ChromaStore, data_dir: Path) -> bool:
    snap = LexicalIndex.load(data_dir)
    return snap is not None and snap.version == store.version()


def lexical_text(title: str, text: str) -> str:
    """What BM25 indexes for a chunk: the article title and the chunk text."""
    return f"{title}\n{text}"


def rebuild_lexical(store: ChromaStore, data_dir: Path) -> LexicalIndex:
    """Rebuild BM25 from every complete article's chunks in the store and save it, tagged with the version."""
    version = store.version()
    complete = store.catalog()
    ids: list[str] = []
    texts: list[str] = []
    columns: dict[str, list] = {"article_id": [], "source": [], "published_ts": []}
    for rec in store.iter_chunks():
        aid = str(rec.meta.get("article_id", ""))
        if aid not in complete:
            continue  # an interrupted write; the next ingest of that article replaces it
        ids.append(rec.id)
        texts.append(lexical_text(str(rec.meta.get("title", "")), rec.text))
        columns["article_id"].append(aid)
        columns["source"].append(str(rec.meta.get("source", "")))
        columns["published_ts"].append(int(rec.meta.get("published_ts", 0)))
    index = LexicalIndex.build(ids, texts, version, columns)
    index.save(data_dir)
    log.debug("lexical index rebuilt: %d chunks, version %s", len(ids), version)
    return index


def forget(key: str, store: ChromaStore, data_dir: Path) -> tuple[list[str], int]:
    """Remove the article(s) with this id or URL from Chroma and BM25; returns (ids, chunks removed)."""
    ids = store.find_article_ids(key)
    if not ids:
        raise NewsbotError(f"no article with id or url {key!r}; `newsbot stats` shows what is indexed")
    store.bump_version()
    removed = sum(store.delete_article(i) for i in ids)
    store.bump_version()
    rebuild_lexical(store, data_dir)
    return ids, removed
