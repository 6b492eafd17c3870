"""Chroma behind a small interface of our own; the only module that imports chromadb.

Two collections: ``<name>`` holds the chunks with their embeddings; ``<name>_articles`` is the article
catalogue. An article's catalogue record is written only after all its chunks, so it doubles as the
commit marker: an article without a matching record is incomplete and gets rewritten on the next
ingest, which is what makes a killed ingest converge to a clean run's index.

The catalogue is also a change feed: every record carries ``changed_at`` (the writer's commit time, unix seconds),
and forgetting an article leaves its record as a tombstone (state "forgotten") instead of deleting it, so a reader
can ask what changed since its watermark (``changes_since``) and repair anything missed (``live_hashes``).

In embedded mode every change of the version token is also written to a small JSON file beside the database
(``version_marker``), so readers can tell whether anything changed without importing chromadb.
Chroma's collection metadata stays the truth; the file is a copy, rewritten under a lock in the same order.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from index.errors import NewsbotError, first_line
from index.types import ArticleChange, ChunkMeta, IndexVersion

log = logging.getLogger(__name__)

PAGE = 5000  # rows per get() page; under Chroma's max batch size
FORGOTTEN = "forgotten"  # the state of a forgotten article's catalogue record (its tombstone)
FEED_PAGE = 300  # catalogue records per changes_since()/live_hashes() page: Chroma Cloud returns at most 300
CATALOG_VECTOR = [0.0]  # the catalogue is looked up by id only, but Chroma wants an embedding per record
EF_SEARCH = 300  # HNSW search breadth: recall@100 against exact cosine 0.996 (100 gives 0.972; bench/writepath.py)
VECTOR_CACHE = 16_384  # recently used chunk vectors kept per process (24 MB at 384 dimensions)
QUERY_LIMIT = {"server": 300, "embedded": 2000}  # results per query, records per get() by id: 300 is Chroma
# Cloud's cap (safe for any server); an embedded store has none, and a wide dense query is far cheaper than a
# filtered one (a post-filtered over-fetch of 2,000 costs 5 ms at 7k chunks, a numeric-range `where` 26-32 ms)


def version_marker(path: Path, collection: str) -> Path:
    """The file beside an embedded Chroma database that mirrors ``collection``'s version token and model."""
    return path / f"newsbot-version-{collection}.json"


def read_marker(marker: Path) -> IndexVersion | None:
    """The version token and embedding model recorded in an embedded store's marker file (``version_marker``);
    None when it is missing or unreadable. Read without importing chromadb."""
    try:
        found = json.loads(marker.read_text())
        return IndexVersion(str(found["version"]), str(found.get("embedding_model", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class StoredArticle:
    """An article's catalogue record."""

    id: str
    title: str
    source: str
    url: str
    published_at: str
    published_ts: int
    content_hash: str
    n_chunks: int


@dataclass(frozen=True)
class ChunkRecord:
    """One chunk as written to (or read back from) the store."""

    id: str
    text: str
    meta: ChunkMeta
    vector: np.ndarray | None = None


class ChromaStore:
    """Chunks, vectors and the article catalogue in one Chroma database (embedded or server)."""

    def __init__(self, *, path: Path | None = None, host: str = "", port: int = 8000, ssl: bool = False,
                 headers: dict[str, str] | None = None, collection: str = "newsbot",
                 embedding_model: str = "", query_limit: int | None = None) -> None:
        os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
        import chromadb
        from chromadb.config import Settings

        self.query_limit = max(1, query_limit or QUERY_LIMIT["server" if host else "embedded"])
        self.vector_cache_size = VECTOR_CACHE
        self._vector_cache: OrderedDict[str, np.ndarray] = OrderedDict()  # id -> vector, least recently used first
        self._path = path
        self._own_versions: set[str] = set()  # version tokens this process wrote (its own writes need no reopen)

        settings = Settings(anonymized_telemetry=False)
        try:
            if host:
                self.location = f"{'https' if ssl else 'http'}://{host}:{port}"
                self._client = chromadb.HttpClient(host=host, port=port, ssl=ssl, headers=headers or {},
                                                   settings=settings)
                self._client.heartbeat()
            else:
                assert path is not None
                path.mkdir(parents=True, exist_ok=True)
                self.location = str(path)
                self._client = chromadb.PersistentClient(path=str(path), settings=settings)
        except NewsbotError:
            raise
        except Exception as err:
            log.debug("cannot open Chroma", exc_info=True)
            where = f"Chroma server at {host}:{port}" if host else f"Chroma database in {path}"
            raise NewsbotError(f"cannot open the {where}: {first_line(err)}") from err
        self.mode = "server" if host else "embedded"
        self._marker = version_marker(path, collection) if path is not None and not host else None
        if host:  # a server can go away under a long-running process: say so in one line
            self._client = _ServerCalls(self._client, f"Chroma server at {host}:{port}")
        self._collection = collection
        self._open_collections(embedding_model)
        stored_model = (self._chunks.metadata or {}).get("embedding_model", "")
        if embedding_model and stored_model and stored_model != embedding_model:
            raise NewsbotError(f"this index was built with the embedding model {stored_model!r}, not "
                               f"{embedding_model!r}: re-ingest into a new --data-dir or change the setting back")
        if embedding_model and not stored_model:
            self._set_meta(embedding_model=embedding_model)
        elif self._marker is not None and not self._marker.exists():  # a new index, or one from before markers
            self.sync_marker()

    def _open_collections(self, embedding_model: str = "") -> None:
        self._chunks = self._client.get_or_create_collection(
            self._collection, embedding_function=None,
            configuration={"hnsw": {"space": "cosine", "ef_search": EF_SEARCH}},
            metadata={"embedding_model": embedding_model} if embedding_model else None)
        self._catalog = self._client.get_or_create_collection(f"{self._collection}_articles", embedding_function=None)
        hnsw = (self._chunks.configuration or {}).get("hnsw") or {}
        if hnsw.get("ef_search", EF_SEARCH) != EF_SEARCH:  # an index from before: search it as broadly
            self._chunks.modify(configuration={"hnsw": {"ef_search": EF_SEARCH}})
            self._chunks = self._client.get_collection(self._collection, embedding_function=None)

    def reopen(self) -> None:
        """Embedded mode: see the vectors other processes have added since this client opened (an embedded client
        keeps the HNSW index it loaded). Only this database's cached client is replaced; objects still holding the
        old one keep working on their old view. A server needs nothing: it owns the one index."""
        if self.mode != "embedded":
            return
        import chromadb
        from chromadb.api.shared_system_client import SharedSystemClient
        from chromadb.config import Settings

        identifier = getattr(self._client, "_identifier", str(self._path))
        SharedSystemClient._identifier_to_system.pop(identifier, None)  # pinned by tests/test_store.py
        SharedSystemClient._identifier_to_refcount.pop(identifier, None)
        self._client = chromadb.PersistentClient(path=str(self._path), settings=Settings(anonymized_telemetry=False))
        self._open_collections()
        self._vector_cache.clear()
        log.debug("reopened the embedded Chroma database in %s", self._path)

    def wrote(self, version: str) -> bool:
        """Was ``version`` written by this process (so its client already sees what came with it)?"""
        return version in self._own_versions

    # -- version marker shared by every process using this database -------------------------------------
    def version(self) -> str:
        """A token that changes whenever chunks are added or removed (read by lexical-index refresh)."""
        return str((self._client.get_collection(self._chunks.name).metadata or {}).get("version", ""))

    def bump_version(self) -> str:
        token = uuid.uuid4().hex
        self._own_versions.add(token)
        self._set_meta(version=token)
        return token

    def sync_marker(self) -> str:
        """Rewrite the version marker from Chroma's metadata (repairs a missing or stale one); returns the version."""
        with self._marker_lock():
            meta = self._client.get_collection(self._chunks.name).metadata or {}
            self._write_marker(meta)
        return str(meta.get("version", ""))

    def _set_meta(self, **values: str) -> None:
        with self._marker_lock():
            meta = dict(self._client.get_collection(self._chunks.name).metadata or {})
            meta.update(values)
            meta.pop("hnsw:space", None)
            self._chunks.modify(metadata=meta)
            self._write_marker(meta)

    @contextmanager
    def _marker_lock(self) -> Iterator[None]:
        """Serialises metadata-then-marker writes across processes, so the marker ends with the last token."""
        if self._marker is None:
            yield
            return
        with open(self._marker.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write_marker(self, meta: Any) -> None:
        if self._marker is None:
            return
        tmp = self._marker.with_name(f".{self._marker.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps({"version": str(meta.get("version", "")),
                                       "embedding_model": str(meta.get("embedding_model", ""))}))
            os.replace(tmp, self._marker)
        finally:
            tmp.unlink(missing_ok=True)

    @property
    def embedding_model(self) -> str:
        return str((self._chunks.metadata or {}).get("embedding_model", ""))

    # -- catalogue ---------------------------------------------------------------------------------------
    def catalog(self, ids: Sequence[str] | None = None) -> dict[str, StoredArticle]:
        """Live (complete, not forgotten) catalogue records for the given article ids (all when ``ids`` is None)."""
        out: dict[str, StoredArticle] = {}
        if ids is not None:
            for i in range(0, len(ids), PAGE):
                res = self._catalog.get(ids=list(ids[i:i + PAGE]), include=["metadatas"])
                out.update(self._articles(res))
            return out
        offset = 0
        while True:
            res = self._catalog.get(include=["metadatas"], limit=PAGE, offset=offset)
            out.update(self._articles(res))
            if len(res["ids"]) < PAGE:
                return out
            offset += PAGE

    @staticmethod
    def _articles(res: Any) -> dict[str, StoredArticle]:
        out = {}
        for id_, m in zip(res["ids"], res["metadatas"] or [], strict=False):
            m = m or {}
            if m.get("state") != "ok":
                continue
            out[id_] = StoredArticle(id=id_, title=str(m.get("title", "")), source=str(m.get("source", "")),
                                     url=str(m.get("url", "")), published_at=str(m.get("published_at", "")),
                                     published_ts=int(m.get("published_ts", 0)),
                                     content_hash=str(m.get("content_hash", "")), n_chunks=int(m.get("n_chunks", 0)))
        return out

    def chunk_count(self) -> int:
        return self._chunks.count()

    def article_count(self) -> int:
        """Catalogue records, tombstones included (cheap)."""
        return self._catalog.count()

    # -- writes ------------------------------------------------------------------------------------------
    def write_articles(self, items: Sequence[tuple[dict[str, Any], Sequence[ChunkRecord], np.ndarray]],
                       batch: int = 4000) -> None:
        """Replace each article's chunks, then commit its catalogue record (``dict`` = catalogue metadata)."""
        if not items:
            return
        self._vector_cache.clear()  # an updated article may keep its chunk ids
        ids = [meta["article_id"] for meta, _, _ in items]
        self._chunks.delete(where={"article_id": {"$in": ids}})
        records = [(r, vec) for _, chunks, vecs in items for r, vec in zip(chunks, vecs, strict=True)]
        for i in range(0, len(records), batch):
            part = records[i:i + batch]
            self._chunks.add(ids=[r.id for r, _ in part], documents=[r.text for r, _ in part],
                             metadatas=[r.meta.as_dict() for r, _ in part],
                             embeddings=np.asarray([v for _, v in part], dtype=np.float32))
        changed_at = time.time()
        self._catalog.upsert(ids=ids, embeddings=[CATALOG_VECTOR] * len(ids),
                             metadatas=[{**meta, "state": "ok", "changed_at": changed_at} for meta, _, _ in items])

    def delete_article(self, article_id: str) -> int:
        """Remove an article's chunks and leave its record as a tombstone (state "forgotten", stamped now);
        returns how many chunks went."""
        found = self._chunks.get(where={"article_id": article_id}, include=[])
        existing = self._catalog.get(ids=[article_id], include=["metadatas"])
        meta = dict((existing["metadatas"] or [{}])[0] or {}) if existing["ids"] else None
        if meta is not None:  # from here on the article is not live: readers polling the feed drop it now
            self._catalog.upsert(ids=[article_id], embeddings=[CATALOG_VECTOR],
                                 metadatas=[{**meta, "state": "deleting", "changed_at": time.time()}])
        if found["ids"]:
            self._chunks.delete(ids=found["ids"])
        if meta is not None:  # no record: orphaned chunks of an interrupted first write, never live
            self._catalog.upsert(ids=[article_id], embeddings=[CATALOG_VECTOR],
                                 metadatas=[{**meta, "state": FORGOTTEN, "changed_at": time.time()}])
        return len(found["ids"])

    def find_article_ids(self, key: str) -> list[str]:
        """Article ids matching an id or a URL (forgotten articles, whose records are tombstones, match neither)."""
        found = self._catalog.get(ids=[key], include=["metadatas"])
        if found["ids"] and ((found["metadatas"] or [{}])[0] or {}).get("state") != FORGOTTEN:
            return [key]
        if self._chunks.get(where={"article_id": key}, include=[], limit=1)["ids"]:
            return [key]  # orphaned chunks of an interrupted write
        res = self._catalog.get(where={"$and": [{"url": key}, {"state": {"$ne": FORGOTTEN}}]}, include=[])
        return list(res["ids"])

    # -- change feed -------------------------------------------------------------------------------------
    def changes_since(self, watermark: float, *, page: int = FEED_PAGE) -> list[ArticleChange]:
        """Every catalogue record stamped at or after ``watermark`` (unix seconds): live articles and tombstones.

        A record marked "deleting" (a forget under way or interrupted) is reported as forgotten: it is no longer
        live. Records written before the feed existed carry no stamp and never show here; reconcile finds them.
        """
        out: list[ArticleChange] = []
        offset = 0
        # Paging is safe under concurrent writes: stamps only grow and records are never deleted, so a record only
        # ever enters this filter; a write between pages can repeat a record here, not hide one that already
        # matched, and one it adds carries a stamp the next poll (from its watermark less the skew) reads.
        while True:
            res = self._catalog.get(where={"changed_at": {"$gte": float(watermark)}}, include=["metadatas"],
                                    limit=page, offset=offset)
            for id_, m in zip(res["ids"], res["metadatas"] or [], strict=False):
                m = m or {}
                out.append(ArticleChange(article_id=id_, state="ok" if m.get("state") == "ok" else FORGOTTEN,
                                         content_hash=str(m.get("content_hash", "")),
                                         changed_at=float(m.get("changed_at", 0.0))))
            if len(res["ids"]) < page:
                return out
            offset += page

    def live_hashes(self, *, page: int = FEED_PAGE) -> dict[str, str]:
        """{article id: content hash} of every live ("ok") article, for reconciling a reader's applied state."""
        out: dict[str, str] = {}
        offset = 0
        while True:
            res = self._catalog.get(where={"state": "ok"}, include=["metadatas"], limit=page, offset=offset)
            for id_, m in zip(res["ids"], res["metadatas"] or [], strict=False):
                out[id_] = str((m or {}).get("content_hash", ""))
            if len(res["ids"]) < page:
                return out
            offset += page

    # -- reads -------------------------------------------------------------------------------------------
    def iter_chunks(self, *, vectors: bool = False) -> Iterator[ChunkRecord]:
        """Every stored chunk with text and metadata (and its vector when asked), in storage order."""
        include = ["documents", "metadatas", "embeddings"] if vectors else ["documents", "metadatas"]
        offset = 0
        while True:
            res = self._chunks.get(include=include, limit=PAGE, offset=offset)
            embs = res.get("embeddings") if vectors else None
            for k, (id_, doc, meta) in enumerate(zip(res["ids"], res["documents"] or [], res["metadatas"] or [],
                                                     strict=False)):
                vec = np.asarray(embs[k], dtype=np.float32) if embs is not None else None
                yield ChunkRecord(id_, doc or "", ChunkMeta.from_dict(meta or {}), vec)
            if len(res["ids"]) < PAGE:
                return
            offset += PAGE

    def get_chunks(self, ids: Sequence[str]) -> dict[str, ChunkRecord]:
        out: dict[str, ChunkRecord] = {}
        for i in range(0, len(ids), self.query_limit):
            res = self._chunks.get(ids=list(ids[i:i + self.query_limit]), include=["documents", "metadatas"])
            out.update({c: ChunkRecord(c, d or "", ChunkMeta.from_dict(m or {}))
                        for c, d, m in zip(res["ids"], res["documents"] or [], res["metadatas"] or [], strict=False)})
        return out

    def chunks_of(self, article_ids: Sequence[str]) -> list[ChunkRecord]:
        """Every stored chunk (text and metadata, no vector) of these articles, a page at a time."""
        out: list[ChunkRecord] = []
        for i in range(0, len(article_ids), 50):
            where = {"article_id": {"$in": list(article_ids[i:i + 50])}}
            offset = 0
            while True:
                res = self._chunks.get(where=where, include=["documents", "metadatas"], limit=self.query_limit,
                                       offset=offset)
                out += [ChunkRecord(c, d or "", ChunkMeta.from_dict(m or {}))
                        for c, d, m in zip(res["ids"], res["documents"] or [], res["metadatas"] or [], strict=False)]
                if len(res["ids"]) < self.query_limit:
                    break
                offset += self.query_limit
        return out

    def hybrid_search_available(self) -> bool:
        """Does this deployment offer Chroma's own Search API (sparse/BM25 ranking)? Distributed Chroma and Chroma
        Cloud do; embedded and single-node servers (1.5) answer "not implemented for local"."""
        try:
            from chromadb import Knn, Search

            self._chunks.search(Search().rank(Knn(query=[0.0] * 384)).limit(1))
        except Exception as err:  # NotImplementedError locally, a server error for a local executor, or older
            log.debug("Chroma's search API is not available here: %s", first_line(err))
            return False
        return True

    # -- dense search ----------------------------------------------------------------------------------------
    def nearest(self, vector: np.ndarray, n: int, where: dict[str, Any] | None = None) -> list[tuple[str, float]]:
        """The ``n`` (at most ``query_limit``) chunks nearest to a unit ``vector`` by Chroma's HNSW index, with
        their cosine similarity (exact for the chunks found), best first; ``where`` filters on chunk metadata."""
        n = min(n, self.query_limit)
        if n <= 0:
            return []
        res = self._chunks.query(query_embeddings=[np.asarray(vector, dtype=np.float32)], n_results=n, where=where,
                                 include=["distances"])
        return [(i, 1.0 - float(d)) for i, d in zip(res["ids"][0], (res["distances"] or [[]])[0], strict=False)]

    def cosines(self, vector: np.ndarray, ids: Sequence[str]) -> dict[str, float]:
        """Exact cosine of each stored chunk of ``ids`` to a unit ``vector`` (chunks not stored are left out), from
        the stored vectors read by id through a bounded cache of recently used ones (popular chunks recur from
        question to question). The cache is emptied whenever what it holds may have changed: this store's own
        writes, a reopen, and every change the process applies from the feed (``forget_vectors``).

        (A query restricted to the ids, distances only, is faster at 5k chunks, 7 vs 13 ms, but Chroma's cost for
        it grows with the collection: 45 ms at 53k. Reading by id grows with the ids only.)"""
        vector = np.asarray(vector, dtype=np.float32)
        return {c: float(v @ vector) for c, v in self._cached_vectors(ids).items()}

    def forget_vectors(self) -> None:
        """Empty the vector cache (the index changed)."""
        self._vector_cache.clear()

    def _cached_vectors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        cache = self._vector_cache
        out = {i: cache[i] for i in ids if i in cache}
        for i in out:
            cache.move_to_end(i)
        if len(out) < len(ids):
            fetched = self.vectors([i for i in ids if i not in out])
            out.update(fetched)
            if self.vector_cache_size:
                cache.update(fetched)
                while len(cache) > self.vector_cache_size:
                    cache.popitem(last=False)
        return out

    def vectors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored vectors of these chunks (those that exist), read ``query_limit`` at a time."""
        out: dict[str, np.ndarray] = {}
        for i in range(0, len(ids), self.query_limit):
            res = self._chunks.get(ids=list(ids[i:i + self.query_limit]), include=["embeddings"])
            embs = res.get("embeddings")
            if embs is None:
                continue
            out.update({c: np.asarray(v, dtype=np.float32) for c, v in zip(res["ids"], embs, strict=False)})
        return out


class _ServerCalls:
    """Forwards to a Chroma HTTP client (and the collections it returns), turning a lost connection into a
    ``NewsbotError``; Chroma's own errors pass through unchanged."""

    def __init__(self, target: Any, where: str) -> None:
        self._target = target
        self._where = where

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                result = attr(*args, **kwargs)
            except Exception as err:
                if not (isinstance(err, OSError) or type(err).__module__.split(".")[0] in ("httpx", "httpcore")):
                    raise
                log.debug("Chroma server call %s failed", name, exc_info=True)
                raise NewsbotError(f"lost the {self._where}: {first_line(err)}; is it running?") from err
            return _ServerCalls(result, self._where) if type(result).__name__ == "Collection" else result

        return call
