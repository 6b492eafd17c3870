"""The incremental lexical engine: BM25 over chunks and over single sentences in an on-disk index that every
process of a host shares, updated by the change (delete an article's documents, add its new ones, commit), never
rebuilt from the corpus. ``LexicalEngine`` is the seam; ``TantivyEngine`` is the only code importing tantivy.

Text is tokenised by ``index.lexical.tokenize`` (newsbot's stemmer, also used for questions and answers) and
indexed as whitespace-joined tokens under tantivy's ``whitespace`` tokenizer, which neither lower-cases nor stems
again, so terms are newsbot's terms. Scores are on the scale of the earlier in-memory BM25 (bm25s): tantivy's BM25
(k1 1.2, b 0.75, Lucene idf) divided by its (k1 + 1) factor, which bm25s's "lucene" variant leaves out. Field
lengths are stored by tantivy as one byte, so long documents' lengths are quantised (scores differ from exact BM25
by a few percent; tests/test_lexical_engine.py).
Deleted documents leave the results at once but stay in tantivy's BM25 statistics (document count, term document
frequencies, average length) until a merge rewrites their segment; ``doc_freq`` and ``len`` count live documents.
Re-applying an unchanged article is skipped (by a digest stored with each chunk), so it adds no such documents.

Chunks, sentences and records (what a passage is shown from) live in three tantivy indexes under one directory,
because tantivy takes BM25's document count and average length per index, not per field: sentences beside chunks
would skew both, and records kept apart are never decompressed by a search. Writes take an exclusive lock file
for the whole engine (waiting up to ``lock_timeout``), then tantivy's own writer lock on each index, and release
both after the commit; readers never lock and see other processes' commits after ``reload()``.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import tantivy

from index.errors import NewsbotError
from index.lexical import tokenize
from index.types import NO_FILTERS, ChunkMeta, Filters

log = logging.getLogger(__name__)

TAG = "engine.json"  # records the format
FORMAT = 5  # bump when the schema or what is indexed changes: an index of another format is refused
K1 = 1.2  # tantivy's fixed BM25 parameters (b = 0.75)
WRITER_HEAP_BYTES = 50_000_000  # per index writer, one indexing thread each (tantivy's minimum is 15 MB)
LOCK_POLL_SECONDS = 0.05
SENTENCE_PAGE = 4  # sentence hits fetched per wanted chunk, per page


@lru_cache(maxsize=1 << 16)
def chunk_key(chunk_id: str) -> int:
    """A chunk id as a signed 64-bit number (a fast field), so scores of known chunks are read without fetching
    a stored document per hit."""
    return int.from_bytes(hashlib.blake2b(chunk_id.encode(), digest_size=8).digest(), "big", signed=True)


class EngineFormatError(NewsbotError):
    """The directory holds a lexical index this newsbot cannot read (another format, schema or a damaged tag).
    It is derived data: ``index.follower`` removes it and builds the engine again from the store."""


@dataclass(frozen=True)
class LexicalChunk:
    """One chunk as the lexical engine indexes it: its filter columns, its title and text, and its sentences."""

    id: str
    article_id: str
    source: str
    published_ts: int  # unix seconds, 0 when unknown (then never inside a since/until window)
    title: str
    text: str
    sentences: tuple[tuple[str, str], ...]  # (text, kind), as index.follower.classify_sentences gives them
    meta: ChunkMeta | None = None  # the stored metadata, shown with the passage (None: built from the fields above)

    @property
    def chunk_meta(self) -> ChunkMeta:
        return self.meta if self.meta is not None else ChunkMeta(
            article_id=self.article_id, title=self.title, source=self.source, published_ts=self.published_ts)

    def record(self) -> bytes:
        """What a passage is shown from: the text, the metadata and the classified sentences (JSON)."""
        return json.dumps([self.text, self.chunk_meta.as_dict(), [list(s) for s in self.sentences]]).encode()

    def digest(self) -> str:
        """A fingerprint of everything indexed for this chunk (re-applying an unchanged article is skipped)."""
        blob = json.dumps([self.id, self.article_id, self.source, self.published_ts, self.title, self.text,
                           self.sentences, self.chunk_meta.as_dict(), FORMAT])
        return hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()


@dataclass(frozen=True)
class ChunkInfo:
    """What ranking reads of a candidate chunk besides its scores: the filter columns."""

    article_key: int  # chunk_key(article id)
    source: str
    published_ts: int
    day: str  # the publication day as written (YYYY-MM-DD), "" when unknown


class LexicalEngine(Protocol):
    """BM25 over chunks (title and text) and over their single sentences, with filters, updated by the change.
    ``terms`` are stemmed tokens (``index.lexical.tokenize``); a term given twice counts twice."""

    def apply(self, upserts: Sequence[LexicalChunk], deletes: Iterable[str] = ()) -> int:
        """Replace every chunk of each upserted article by the given ones (an upsert names all of an article's
        chunks) and drop the articles in ``deletes`` (an article in both is upserted), in one commit per index;
        return how many articles changed (re-applying an unchanged article is skipped)."""
        ...

    def reload(self) -> None:
        """See what other processes have committed since this one opened or last reloaded."""
        ...

    def __len__(self) -> int:
        """How many chunks are indexed."""
        ...

    def search_chunks(self, terms: Sequence[str], k: int, filters: Filters = NO_FILTERS) -> list[tuple[str, float]]:
        """The ``k`` chunks of highest BM25 (score > 0) among those the filters keep, best first."""
        ...

    def search_sentences(self, terms: Sequence[str], k: int, filters: Filters = NO_FILTERS
                         ) -> list[tuple[str, float]]:
        """The ``k`` chunks whose best sentence scores highest, with that sentence's BM25, best first."""
        ...

    def scores_for(self, terms: Sequence[str], chunk_ids: Iterable[str]) -> dict[str, float]:
        """Chunk BM25 of each of ``chunk_ids`` (a candidate pool); chunks without a matching term are left out."""
        ...

    def sentence_scores_for(self, terms: Sequence[str], chunk_ids: Iterable[str]) -> dict[str, float]:
        """Best-sentence BM25 of each of ``chunk_ids``; chunks without a matching sentence are left out."""
        ...

    def doc_freq(self, term: str) -> int:
        """How many indexed chunks hold ``term``."""
        ...

    def count(self, filters: Filters = NO_FILTERS) -> int:
        """How many indexed chunks the filters keep."""
        ...

    def describe(self, chunk_ids: Iterable[str]) -> dict[str, ChunkInfo]:
        """The filter columns of those of ``chunk_ids`` that are indexed (others are left out)."""
        ...

    def records(self, chunk_ids: Iterable[str]) -> dict[str, tuple[str, ChunkMeta, list[tuple[str, str]]]]:
        """Text, metadata and classified sentences of those of ``chunk_ids`` that are indexed."""
        ...

    def outlets(self) -> dict[str, int]:
        """Every outlet of the indexed chunks, with its number of chunks."""
        ...

    def date_range(self) -> tuple[str, str] | None:
        """The publication days (as written) of the earliest and latest dated chunks, None when none has a date."""
        ...


def _schema(*own: Callable[[tantivy.SchemaBuilder], object]) -> tantivy.Schema:
    """A schema with the fields both indexes filter on, ``own`` fields, and the pre-tokenised terms last."""
    sb = tantivy.SchemaBuilder()
    sb.add_text_field("chunk_id", stored=True, tokenizer_name="raw", index_option="basic")
    sb.add_text_field("article_id", stored=True, tokenizer_name="raw", index_option="basic")
    sb.add_text_field("source", stored=True, tokenizer_name="raw", index_option="basic")
    sb.add_integer_field("published_ts", stored=True, indexed=True, fast=True)
    sb.add_integer_field("key", fast=True)  # chunk_key(chunk_id): read in bulk without fetching documents
    for add in own:
        add(sb)
    sb.add_text_field("terms", tokenizer_name="whitespace", index_option="freq")
    return sb.build()


def _chunk_schema() -> tantivy.Schema:
    # the filter columns again as fast fields, read in bulk for a candidate pool (``describe``)
    return _schema(lambda sb: sb.add_text_field("digest", stored=True, tokenizer_name="raw", index_option="basic"),
                   lambda sb: sb.add_text_field("day", stored=True, tokenizer_name="raw", index_option="basic"),
                   lambda sb: sb.add_integer_field("day_num", fast=True),
                   lambda sb: sb.add_integer_field("source_key", fast=True),
                   lambda sb: sb.add_integer_field("article_key", fast=True))


def _record_schema() -> tantivy.Schema:
    """What passages are shown from, apart from what is searched (so searches never decompress it)."""
    sb = tantivy.SchemaBuilder()
    sb.add_text_field("chunk_id", stored=True, tokenizer_name="raw", index_option="basic")
    sb.add_text_field("article_id", tokenizer_name="raw", index_option="basic")
    sb.add_bytes_field("record", stored=True, indexed=False)
    return sb.build()




def _sentence_schema() -> tantivy.Schema:
    return _schema(lambda sb: sb.add_integer_field("position", stored=True),
                   lambda sb: sb.add_text_field("kind", stored=True, tokenizer_name="raw", index_option="basic"))


SCHEMAS = (("chunks", _chunk_schema), ("sentences", _sentence_schema), ("records", _record_schema))


class TantivyEngine:
    """``LexicalEngine`` on two tantivy indexes in ``path`` (``chunks/`` and ``sentences/``) on local disk."""

    def __init__(self, path: Path, chunks: tantivy.Index, sentences: tantivy.Index, records: tantivy.Index,
                 lock_timeout: float) -> None:
        self.path = path
        self.lock_timeout = lock_timeout
        self._chunks = chunks
        self._sentences = sentences
        self._records = records
        self._chunk_schema = chunks.schema
        self._sentence_schema = sentences.schema
        self._holding = threading.local()  # this thread holds the writer lock (``writing``)
        self._names: dict[int, str] = {}  # source_key -> outlet name, for the view stamped ``_names_stamp``
        self._names_stamp: tuple[int, int] | None = None

    @classmethod
    def open(cls, path: Path, *, lock_timeout: float = 10.0) -> TantivyEngine:
        """The engine stored in ``path``, created empty when the directory holds none. A writer waits at most
        ``lock_timeout`` seconds for another process's write to finish."""
        path.mkdir(parents=True, exist_ok=True)
        found = _format_of(path)
        if found is None:  # a new engine, created under the writer lock: two processes starting at once agree
            with _writer_lock(path, lock_timeout):
                found = _format_of(path)
                if found is None:
                    for name, schema in SCHEMAS:
                        (path / name).mkdir(exist_ok=True)
                        tantivy.Index(schema(), path=str(path / name), reuse=True)
                    tmp = path / f"{TAG}.tmp{os.getpid()}"
                    tmp.write_text(json.dumps({"format": FORMAT}))
                    os.replace(tmp, path / TAG)
                    found = FORMAT
        if found != FORMAT:
            raise EngineFormatError(f"the lexical index in {path} is of format {found}, this newsbot reads format "
                                    f"{FORMAT}: delete the directory and let it be rebuilt")
        indexes = []
        for name, schema in SCHEMAS:
            try:
                index = tantivy.Index(schema(), path=str(path / name), reuse=True)
            except ValueError as err:  # "An index exists but the schema does not match."
                raise EngineFormatError(f"the lexical index in {path / name} does not match this newsbot's schema: "
                                        "delete the directory and let it be rebuilt") from err
            index.config_reader("manual")  # a reader's view changes only on reload(): searches see one state
            indexes.append(index)
        return cls(path, *indexes, lock_timeout=lock_timeout)

    # -- reads ----------------------------------------------------------------------------------------------------
    def reload(self) -> None:
        self._chunks.reload()
        self._sentences.reload()
        self._records.reload()

    def __len__(self) -> int:
        return self._chunks.searcher().num_docs

    def search_chunks(self, terms: Sequence[str], k: int, filters: Filters = NO_FILTERS) -> list[tuple[str, float]]:
        query = self._query(self._chunk_schema, terms, filters)
        if query is None or k <= 0:
            return []
        searcher = self._chunks.searcher()
        return [(searcher.doc(addr).get_first("chunk_id"), score / (1 + K1))
                for score, addr in searcher.search(query, k, count=False).hits]

    def search_sentences(self, terms: Sequence[str], k: int, filters: Filters = NO_FILTERS
                         ) -> list[tuple[str, float]]:
        query = self._query(self._sentence_schema, terms, filters)
        if query is None or k <= 0:
            return []
        searcher = self._sentences.searcher()
        page, offset = SENTENCE_PAGE * k, 0
        best: dict[int, tuple[float, object]] = {}  # key -> (score, address of the chunk's best sentence)
        while len(best) < k:
            hits = searcher.search(query, page, count=False, offset=offset).hits
            keys = searcher.fast_field_values("key", [addr for _, addr in hits]) if hits else []
            for (score, addr), key in zip(hits, keys, strict=True):
                if key not in best:  # hits come best first: a chunk's first hit is its best sentence
                    best[key] = (score, addr)
                    if len(best) == k:
                        break
            if len(hits) < page:
                break
            offset += page
        return [(searcher.doc(addr).get_first("chunk_id"), score / (1 + K1)) for score, addr in best.values()]

    def scores_for(self, terms: Sequence[str], chunk_ids: Iterable[str]) -> dict[str, float]:
        ids = {chunk_key(i): i for i in chunk_ids}
        query = self._query(self._chunk_schema, terms, NO_FILTERS, chunk_ids=list(ids.values()))
        if query is None or not ids:
            return {}
        searcher = self._chunks.searcher()
        hits = searcher.search(query, len(ids), count=False).hits
        keys = searcher.fast_field_values("key", [addr for _, addr in hits]) if hits else []
        return {ids[key]: score / (1 + K1) for (score, _), key in zip(hits, keys, strict=True) if key in ids}

    def sentence_scores_for(self, terms: Sequence[str], chunk_ids: Iterable[str]) -> dict[str, float]:
        ids = {chunk_key(i): i for i in chunk_ids}
        query = self._query(self._sentence_schema, terms, NO_FILTERS, chunk_ids=list(ids.values()))
        if query is None or not ids:
            return {}
        searcher = self._sentences.searcher()
        best: dict[str, float] = {}
        page, offset = SENTENCE_PAGE * len(ids), 0
        while True:
            hits = searcher.search(query, page, count=False, offset=offset).hits
            keys = searcher.fast_field_values("key", [addr for _, addr in hits]) if hits else []
            for (score, _), key in zip(hits, keys, strict=True):
                if key in ids:
                    best.setdefault(ids[key], score / (1 + K1))  # best first: the first hit is the best
            if len(hits) < page:
                return best
            offset += page

    def doc_freq(self, term: str) -> int:
        # tantivy's own doc_freq still counts deleted documents until their segment is merged: count live ones
        query = _term(self._chunk_schema, "terms", term)
        return self._chunks.searcher().search(query, 1, count=True).count or 0

    def count(self, filters: Filters = NO_FILTERS) -> int:
        keep = self._filters(self._chunk_schema, filters)
        if keep is None:
            return 0
        query = tantivy.Query.all_query() if not keep else tantivy.Query.boolean_query(
            [(tantivy.Occur.Must, q) for q in keep])
        return self._chunks.searcher().search(query, 1, count=True).count or 0

    def _docs(self, chunk_ids: Iterable[str], index: tantivy.Index | None = None) -> Iterator[tantivy.Document]:
        ids = list(dict.fromkeys(chunk_ids))
        if not ids:
            return
        index = index or self._chunks
        searcher = index.searcher()
        query = tantivy.Query.term_set_query(index.schema, "chunk_id", ids)
        for _, addr in searcher.search(query, len(ids), count=False).hits:
            yield searcher.doc(addr)

    def describe(self, chunk_ids: Iterable[str]) -> dict[str, ChunkInfo]:
        ids = {chunk_key(i): i for i in chunk_ids}
        if not ids:
            return {}
        searcher = self._chunks.searcher()
        query = tantivy.Query.term_set_query(self._chunk_schema, "chunk_id", list(ids.values()))
        addrs = [addr for _, addr in searcher.search(query, len(ids), count=False).hits]
        if not addrs:
            return {}
        columns = [searcher.fast_field_values(f, addrs) for f in ("key", "published_ts", "day_num", "source_key",
                                                                  "article_key")]
        names = self._source_names(searcher)
        return {ids[key]: ChunkInfo(article, names.get(source, ""), ts or 0, _day(day))
                for key, ts, day, source, article in zip(*columns, strict=True) if key in ids}

    def _source_names(self, searcher: tantivy.Searcher) -> dict[int, str]:
        """source_key -> outlet name, for this searcher's view (outlets are few; cached until the next reload)."""
        stamp = (id(searcher), searcher.num_docs)
        if self._names_stamp != stamp:
            found = searcher.terms_with_prefix("source", "")
            self._names = {chunk_key(term): term for term, _ in found}
            self._names_stamp = stamp
        return self._names

    def records(self, chunk_ids: Iterable[str]) -> dict[str, tuple[str, ChunkMeta, list[tuple[str, str]]]]:
        out = {}
        for d in self._docs(chunk_ids, self._records):
            text, meta, sentences = json.loads(d.get_first("record"))
            out[d.get_first("chunk_id")] = (text, ChunkMeta.from_dict(meta), [(s, k) for s, k in sentences])
        return out

    def outlets(self) -> dict[str, int]:
        searcher = self._chunks.searcher()
        # counted over live documents only (a deleted article's outlet stays in the term dictionary until a merge)
        found = searcher.terms_with_prefix("source", "", filter_query=tantivy.Query.all_query())
        return {term: n for term, n in found if term and n}

    def date_range(self) -> tuple[str, str] | None:
        searcher = self._chunks.searcher()
        dated = tantivy.Query.range_query(self._chunk_schema, "published_ts", tantivy.FieldType.Integer, 1, None)
        days = []
        for order in (tantivy.Order.Asc, tantivy.Order.Desc):
            hits = searcher.search(dated, 1, count=False, order_by_field="published_ts", order=order).hits
            if not hits:
                return None
            days.append(searcher.doc(hits[0][1]).get_first("day") or "")
        return (days[0], days[1]) if all(days) else None

    def chunk_ids(self) -> list[str]:
        """Every indexed chunk's id."""
        found = self._chunks.searcher().terms_with_prefix("chunk_id", "", filter_query=tantivy.Query.all_query())
        return [term for term, n in found if n]

    def article_ids(self) -> list[str]:
        """Every indexed article's id."""
        found = self._chunks.searcher().terms_with_prefix("article_id", "", filter_query=tantivy.Query.all_query())
        return [term for term, n in found if n]

    def _query(self, schema: tantivy.Schema, terms: Sequence[str], filters: Filters,
               chunk_ids: Sequence[str] = ()) -> tantivy.Query | None:
        """BM25 of ``terms`` (each weighted by how often it is given) over the documents the filters keep, or
        None when nothing can match."""
        if not terms or (filters.articles is not None and not filters.articles):
            return None
        Q, must = tantivy.Query, tantivy.Occur.Must
        text = Q.boolean_query([(tantivy.Occur.Should, Q.boost_query(_term(schema, "terms", t), n))
                                for t, n in Counter(terms).items()])
        keep = self._filters(schema, filters) or []
        if chunk_ids:
            keep.append(Q.term_set_query(schema, "chunk_id", list(chunk_ids)))
        if not keep:
            return text
        # a filter clause scoring 0 restricts the documents without changing their BM25
        return Q.boolean_query([(must, text)] + [(must, Q.const_score_query(q, 0.0)) for q in keep])

    @staticmethod
    def _filters(schema: tantivy.Schema, filters: Filters) -> list[tantivy.Query] | None:
        """Queries for the filters' restrictions ([] when there are none), None when they keep nothing."""
        Q = tantivy.Query
        if filters.articles is not None and not filters.articles:
            return None
        keep: list[tantivy.Query] = []
        if filters.sources:
            keep.append(Q.term_set_query(schema, "source", list(filters.sources)))
        if filters.since is not None or filters.until is not None:
            keep.append(Q.range_query(schema, "published_ts", tantivy.FieldType.Integer, filters.since, filters.until))
        if filters.articles is not None:
            keep.append(Q.term_set_query(schema, "article_id", sorted(filters.articles)))
        return keep

    # -- writes ---------------------------------------------------------------------------------------------------
    def apply(self, upserts: Sequence[LexicalChunk], deletes: Iterable[str] = ()) -> int:
        by_article: dict[str, list[LexicalChunk]] = {}
        for chunk in {c.id: c for c in upserts}.values():  # a chunk given twice is indexed once (the last one)
            by_article.setdefault(chunk.article_id, []).append(chunk)
        dropped = set(deletes) - set(by_article)
        with self._write_lock():
            self.reload()  # compare with what is committed now, not with this process's last view
            changed = {a: cs for a, cs in by_article.items() if self._stored_digests(a) != {c.digest() for c in cs}}
            dropped = {a for a in dropped if self._holds(a)}
            if not changed and not dropped:
                return 0
            articles = sorted(changed.keys() | dropped)
            with self._writer(self._sentences) as sentences, self._writer(self._records) as records, \
                    self._writer(self._chunks) as chunks:
                # chunks last: the chunk index holds the digests, so a crash between the commits leaves the article
                # looking changed and the next apply of it redoes them all
                for writer, documents in ((sentences, self._sentence_docs), (records, self._record_docs),
                                          (chunks, self._chunk_docs)):
                    for article in articles:
                        writer.delete_documents_by_term("article_id", article)
                    for group in changed.values():
                        for doc in documents(group):
                            writer.add_document(doc)
                    writer.commit()
        self.reload()
        log.debug("lexical engine: %d articles replaced, %d deleted", len(changed), len(dropped))
        return len(changed) + len(dropped)

    @contextmanager
    def _writer(self, index: tantivy.Index) -> Iterator[tantivy.IndexWriter]:
        """tantivy's writer of ``index``, for one commit; what it did not commit is rolled back."""
        try:
            writer = index.writer(WRITER_HEAP_BYTES, 1)
        except ValueError as err:  # LockBusy: a writer that does not take our lock file (another program)
            raise NewsbotError(f"the lexical index in {self.path} is being written by another program; "
                               "try again when it has finished") from err
        try:
            yield writer
        except BaseException:
            writer.rollback()
            raise
        finally:
            writer.wait_merging_threads()  # finishes merges and releases tantivy's writer lock

    @staticmethod
    def _chunk_docs(chunks: Sequence[LexicalChunk]) -> Iterator[tantivy.Document]:
        texts = tokenize([t for chunk in chunks for t in (chunk.title, chunk.text)])
        for c, (title, text) in zip(chunks, _pairs(texts), strict=True):
            day = c.chunk_meta.day
            yield tantivy.Document(chunk_id=c.id, article_id=c.article_id, source=c.source,
                                   published_ts=c.published_ts, key=chunk_key(c.id), digest=c.digest(),
                                   terms=" ".join(title + text), day=day, day_num=_day_num(day),
                                   source_key=chunk_key(c.source), article_key=chunk_key(c.article_id))

    @staticmethod
    def _record_docs(chunks: Sequence[LexicalChunk]) -> Iterator[tantivy.Document]:
        for c in chunks:
            yield tantivy.Document(chunk_id=c.id, article_id=c.article_id, record=c.record())

    @staticmethod
    def _sentence_docs(chunks: Sequence[LexicalChunk]) -> Iterator[tantivy.Document]:
        terms = iter(tokenize([s for c in chunks for s, _ in c.sentences]))
        for c in chunks:
            for i, (_, kind) in enumerate(c.sentences):
                yield tantivy.Document(chunk_id=c.id, article_id=c.article_id, source=c.source,
                                       published_ts=c.published_ts, key=chunk_key(c.id), position=i, kind=kind,
                                       terms=" ".join(next(terms)))

    def _stored_digests(self, article_id: str) -> set[str]:
        searcher = self._chunks.searcher()
        query = _term(self._chunk_schema, "article_id", article_id)
        found = searcher.search(query, 1, count=True)
        if not found.count:
            return set()
        hits = searcher.search(query, found.count, count=False).hits if found.count > 1 else found.hits
        return {searcher.doc(addr).get_first("digest") for _, addr in hits}

    def _holds(self, article_id: str) -> bool:
        return any(ix.searcher().search(_term(ix.schema, "article_id", article_id), 1, count=True).count
                   for ix in (self._chunks, self._sentences, self._records))

    @contextmanager
    def writing(self, timeout: float | None = None) -> Iterator[None]:
        """Hold the engine's writer lock across several steps (read state, apply, save state); ``apply`` inside
        does not take it again. Raises a one-line NewsbotError when another process holds it past ``timeout``."""
        if getattr(self._holding, "yes", False):
            yield
            return
        with _writer_lock(self.path, self.lock_timeout if timeout is None else timeout):
            self._holding.yes = True
            try:
                yield
            finally:
                self._holding.yes = False

    def _write_lock(self) -> AbstractContextManager[None]:
        return self.writing()


@contextmanager
def _writer_lock(path: Path, timeout: float) -> Iterator[None]:
    """The engine's writer lock (an exclusive ``flock`` on ``writer.lock``), waiting up to ``timeout`` seconds."""
    fd = os.open(path / "writer.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() >= deadline:
                    raise NewsbotError(f"the lexical index in {path} is being written by another process (waited "
                                       f"{timeout:g} s); try again when it has finished") from err
                time.sleep(LOCK_POLL_SECONDS)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _format_of(path: Path) -> object:
    """The format recorded in ``path``'s tag, None when there is no tag yet."""
    try:
        return json.loads((path / TAG).read_text()).get("format")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, AttributeError) as err:
        raise EngineFormatError(f"the lexical index in {path} has an unreadable {TAG}: delete the directory and let it "
                           "be rebuilt") from err


def _pairs(items: list[list[str]]) -> Iterator[tuple[list[str], list[str]]]:
    it = iter(items)
    return zip(it, it, strict=True)


def _day_num(day: str) -> int:
    """YYYY-MM-DD as the number YYYYMMDD (0 when there is no such day)."""
    digits = day.replace("-", "")
    return int(digits) if len(digits) == 8 and digits.isdigit() else 0


def _day(num: int | None) -> str:
    return f"{num // 10000:04d}-{num // 100 % 100:02d}-{num % 100:02d}" if num else ""


def _term(schema: tantivy.Schema, field: str, value: str) -> tantivy.Query:
    return tantivy.Query.term_query(schema, field, value, index_option="freq" if field == "terms" else "basic")
