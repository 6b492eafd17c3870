"""The search snapshot: everything a question is answered from, derived from the store and owned here whole —
how it is built (from every complete article's chunks in Chroma), persisted (one directory, swapped in
atomically), versioned (tagged with the store's version token) and kept fresh (``SnapshotKeeper``).

It holds BM25 over chunks and over single sentences, per-row filter columns, the chunk vectors for exact cosine
search, and each chunk's text, typed metadata and classified sentences, so answering reads nothing from Chroma.
A snapshot whose tag differs from the store's version is never used; a crash while saving leaves the old
snapshot or none. Chroma is opened only when a rebuild is needed (or in server mode, to read the version).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from index.errors import NewsbotError, first_line
from index.lexical import Bm25, tokenize
from index.types import ChunkMeta, IndexVersion, Passage, Sentence

if TYPE_CHECKING:
    from index.store import ChromaStore

log = logging.getLogger(__name__)

SNAPSHOT = "snapshot"
OLD_SNAPSHOTS = ("lexical",)  # directories of earlier formats, removed when a new snapshot is saved
LAYOUT_VERSION = 5  # bump when what is saved changes


def _format() -> str:
    """The snapshot format: its layout and the sentence rules it was built with (a change of either rebuilds it)."""
    from index.prose import RULES_VERSION

    return f"{LAYOUT_VERSION}.{RULES_VERSION}"


def lexical_text(title: str, text: str) -> str:
    """What BM25 indexes for a chunk: the article title and the chunk text."""
    return f"{title}\n{text}"


@dataclass(frozen=True)
class SnapshotRow:
    """One chunk as the snapshot is built from it."""

    id: str
    text: str
    meta: ChunkMeta
    vector: np.ndarray
    sentences: tuple[tuple[str, str], ...]  # (text, kind)


class SearchSnapshot:
    """Everything retrieval needs in memory; row ``i`` is chunk ``ids[i]``."""

    def __init__(self, ids: list[str], version: str, chunks: Bm25, sentences: Bm25, owner: np.ndarray,
                 columns: dict[str, list], vectors: np.ndarray, records: list[bytes],
                 embedding_model: str = "") -> None:
        self.ids = ids
        self.version = version
        self.embedding_model = embedding_model
        self._chunks = chunks
        self._sentences = sentences
        self.owner = owner  # sentence row -> chunk row (non-decreasing)
        self._records = records  # per row, JSON [text, metadata, [[sentence, kind], ...]]; decoded only when shown
        self.article_ids: list[str] = columns.get("article_id", [""] * len(ids))
        self.sources: list[str] = columns.get("source", [""] * len(ids))
        self.timestamps = np.asarray(columns.get("published_ts", [0] * len(ids)), dtype=np.int64)
        self.days = np.asarray(columns.get("day", [""] * len(ids)))
        self.source_array = np.asarray(self.sources)
        self.vectors = vectors  # unit vectors, float32: cosine = dot product
        self._df: dict[str, int] | None = None

    @classmethod
    def build(cls, rows: Sequence[SnapshotRow], version: str, embedding_model: str) -> SearchSnapshot:
        """Index the chunks of ``rows`` and their sentences for BM25, keep their vectors and records."""
        ids = [r.id for r in rows]
        owner = np.asarray([i for i, r in enumerate(rows) for _ in r.sentences], dtype=np.int32)
        sentence_texts = [s for r in rows for s, _ in r.sentences]
        vectors = np.stack([np.asarray(r.vector, dtype=np.float32) for r in rows]) if rows \
            else np.zeros((0, 0), dtype=np.float32)
        columns = {"article_id": [r.meta.article_id for r in rows], "source": [r.meta.source for r in rows],
                   "published_ts": [r.meta.published_ts for r in rows], "day": [r.meta.day for r in rows]}
        records = [json.dumps([r.text, r.meta.as_dict(), [list(s) for s in r.sentences]]).encode() for r in rows]
        return cls(ids, version, Bm25.build([lexical_text(r.meta.title, r.text) for r in rows]),
                   Bm25.build(sentence_texts), owner, columns, vectors, records, embedding_model)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def known_sources(self) -> list[str]:
        return sorted({s for s in self.sources if s})

    def date_range(self) -> tuple[str, str] | None:
        """The first and last publication day of the indexed articles (None when no article has a date)."""
        days = sorted(d for d in set(self.days.tolist()) if d)
        return (days[0], days[-1]) if days else None

    def passage(self, row: int, score: float) -> Passage:
        """Chunk ``row`` as a Passage, with the sentences it was split into (and their kinds) at indexing time."""
        text, m, sentences = json.loads(self._records[row])
        meta = ChunkMeta.from_dict(m)
        terms = tokenize([s for s, _ in sentences])
        return Passage(chunk_id=self.ids[row], article_id=meta.article_id, text=text, score=score, title=meta.title,
                       source=meta.source, url=meta.url, published_at=meta.published_at, position=meta.position,
                       meta=meta, sentences=tuple(Sentence(s, tuple(t), kind)
                                                  for (s, kind), t in zip(sentences, terms, strict=True)))

    def meta(self, row: int) -> ChunkMeta:
        """The stored metadata of chunk ``row``."""
        return ChunkMeta.from_dict(json.loads(self._records[row])[1])

    def dense(self, vector: np.ndarray) -> np.ndarray:
        """Cosine similarity of every chunk to a unit ``vector``."""
        if not len(self.ids):
            return np.zeros(0, dtype=np.float32)
        return self.vectors @ np.asarray(vector, dtype=np.float32)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every chunk for ``query`` (zeros when no query word is in the index)."""
        return self._chunks.scores(tokenize([query])[0])

    def sentence_scores(self, query: str) -> np.ndarray:
        """For every chunk, the BM25 score of its best-matching sentence."""
        out = np.zeros(len(self.ids), dtype=np.float32)
        if self._sentences.rows:
            np.maximum.at(out, self.owner, self._sentences.scores(tokenize([query])[0]))
        return out

    def idf(self, terms: Sequence[str]) -> dict[str, float]:
        """Inverse document frequency of stemmed terms over chunks (unknown terms get the highest value)."""
        if self._df is None:
            self._df = self._chunks.doc_freq()
        n = max(len(self.ids), 1)
        return {t: float(np.log(1 + (n - self._df.get(t, 0) + 0.5) / (self._df.get(t, 0) + 0.5))) for t in terms}

    def doc_freq(self, term: str) -> int:
        """How many chunks hold the stemmed ``term``."""
        if self._df is None:
            self._df = self._chunks.doc_freq()
        return self._df.get(term, 0)

    # -- persistence -------------------------------------------------------------------------------------
    def save(self, data_dir: Path) -> None:
        """Write the snapshot to ``data_dir/snapshot`` atomically (new directory swapped in)."""
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".snapshot-", dir=data_dir))
        try:
            self._chunks.save(tmp / "chunks")
            self._sentences.save(tmp / "sentences")
            np.save(tmp / "owner.npy", self.owner)
            np.save(tmp / "vectors.npy", self.vectors)
            (tmp / "records.jsonl").write_bytes(b"\n".join(self._records))
            (tmp / "ids.json").write_text(json.dumps(self.ids))
            (tmp / "columns.json").write_text(json.dumps({
                "article_id": self.article_ids, "source": self.sources,
                "published_ts": self.timestamps.tolist(), "day": self.days.tolist()}))
            tag = {"version": self.version, "rows": len(self.ids), "format": _format(),
                   "embedding_model": self.embedding_model}
            (tmp / "version.json").write_text(json.dumps(tag))
            target = data_dir / SNAPSHOT
            old = data_dir / f".snapshot-old-{os.getpid()}"
            try:
                if target.exists():
                    os.replace(target, old)
                os.replace(tmp, target)
            except OSError:  # another process sharing this data dir swapped its snapshot in at the same moment
                log.debug("search snapshot in %s was replaced concurrently; keeping the other one", data_dir)
            shutil.rmtree(old, ignore_errors=True)
            for name in OLD_SNAPSHOTS:
                shutil.rmtree(data_dir / name, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @staticmethod
    def tag(data_dir: Path) -> IndexVersion | None:
        """The version and embedding model of the saved snapshot, without loading it; None when there is
        none of the current format."""
        try:
            meta = json.loads((data_dir / SNAPSHOT / "version.json").read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or meta.get("format") != _format():
            return None
        return IndexVersion(str(meta.get("version", "")), str(meta.get("embedding_model", "")))

    @classmethod
    def load(cls, data_dir: Path) -> SearchSnapshot | None:
        """The saved snapshot, or None when there is none, it is unreadable or of an older format."""
        target = data_dir / SNAPSHOT
        try:
            meta = json.loads((target / "version.json").read_text())
            if meta.get("format") != _format():
                return None
            ids = json.loads((target / "ids.json").read_text())
            columns = json.loads((target / "columns.json").read_text())
            blob = (target / "records.jsonl").read_bytes()
            index = cls(ids, str(meta.get("version", "")), Bm25.load(target / "chunks"),
                        Bm25.load(target / "sentences"), np.load(target / "owner.npy"), columns,
                        np.load(target / "vectors.npy"), blob.split(b"\n") if blob else [],
                        str(meta.get("embedding_model", "")))
        except (OSError, ValueError, KeyError):
            log.debug("no usable search snapshot in %s", target, exc_info=True)
            return None
        if not len(ids) == meta.get("rows") == len(index.vectors) == len(index._records):
            return None
        return index


# -- build from the store ------------------------------------------------------------------------------------
def classify_sentences(text: str) -> tuple[tuple[str, str], ...]:
    """The sentences of a chunk's text with their kinds (``index.prose``), as the snapshot stores them; a heading
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


def rebuild(store: ChromaStore, data_dir: Path) -> SearchSnapshot:
    """Rebuild the snapshot from every complete article's chunks in the store and save it."""
    version = store.version()
    complete = store.catalog()
    rows = [SnapshotRow(rec.id, rec.text, rec.meta, rec.vector, classify_sentences(rec.text))
            for rec in store.iter_chunks(vectors=True)
            if rec.meta.article_id in complete and rec.vector is not None]  # else an interrupted write
    snapshot = SearchSnapshot.build(rows, version, store.embedding_model)
    snapshot.save(data_dir)
    log.debug("search snapshot rebuilt: %d chunks, %d sentences, version %s", len(rows), len(snapshot.owner),
              version)
    return snapshot


def is_current(store: ChromaStore, data_dir: Path) -> bool:
    """Does the saved snapshot match the store's version?"""
    tag = SearchSnapshot.tag(data_dir)
    return tag is not None and tag.version == store.version()


def read_marker(marker: Path) -> IndexVersion | None:
    """The version token and embedding model recorded in an embedded store's marker file (``store.version_marker``);
    None when it is missing or unreadable. Read without opening Chroma."""
    try:
        found = json.loads(marker.read_text())
        return IndexVersion(str(found["version"]), str(found.get("embedding_model", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


# -- freshness --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Freshness:
    """How a running process keeps its snapshot in step with other processes' writes."""

    refresh_seconds: float = 2.0  # how often the store's version is checked
    # a process already answering waits this long for a rebuild, then answers from the snapshot it has
    rebuild_wait_seconds: float = 2.0


class SnapshotKeeper:
    """The current snapshot of one store for one process. Other processes' writes are noticed through the store's
    version token: read from the marker file in embedded mode (``version_file``), so a current snapshot is used
    without opening Chroma, and from the store itself in server mode. A stale snapshot is reloaded from disk when
    another process saved the matching one, else rebuilt — beside the searches once there is one to answer from."""

    def __init__(self, open_store: Callable[[], ChromaStore], data_dir: Path, config: Freshness = Freshness(), *,
                 version_file: Path | None = None) -> None:
        self._open_store = open_store
        self._store: ChromaStore | None = None
        self.data_dir = data_dir
        self.config = config
        self.version_file = version_file
        self._snap: SearchSnapshot | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None  # a rebuild running beside the searches
        self._built: SearchSnapshot | None = None  # what the last finished background rebuild produced

    @property
    def store(self) -> ChromaStore:
        """The store, opened on first use: only needed when the snapshot has to be rebuilt (or in server mode)."""
        if self._store is None:
            self._store = self._open_store()
        return self._store

    def current(self) -> SearchSnapshot:
        """The snapshot matching the store's current version (loaded or rebuilt as needed)."""
        with self._lock:
            now = time.monotonic()
            if self._snap is not None and now - self._checked < self.config.refresh_seconds:
                return self._snap
            version = self._current_version()
            self._checked = now
            if self._snap is not None and self._snap.version == version:
                return self._snap
            on_disk = SearchSnapshot.tag(self.data_dir)  # read before loading: a large snapshot takes seconds
            if (on_disk is None or on_disk.version != version) and self.version_file is not None:
                version = self.store.sync_marker()  # the marker may be missing or stale: Chroma has the truth
                if self._snap is not None and self._snap.version == version:
                    return self._snap
            snap = SearchSnapshot.load(self.data_dir) if on_disk is not None and on_disk.version == version else None
            if snap is None or snap.version != version:
                if self._worker is None or not self._worker.is_alive():
                    log.info("search snapshot is out of step with the store; rebuilding")
                # with nothing to answer from, wait for the rebuild; otherwise answer from the snapshot in
                # hand while a large index rebuilds (minutes at scale) instead of stalling every search
                snap = self._rebuild() if self._snap is None else self._rebuild_beside(version)
                if snap is None:  # still rebuilding, or another process is writing: serve the last good one
                    assert self._snap is not None
                    return self._snap
            self._snap = snap
            return self._snap

    def expire(self) -> None:
        """Check the store's version on the next search, however recently it was checked."""
        with self._lock:
            self._checked = float("-inf")

    def _current_version(self) -> str | None:
        """The store's version token: the marker's in embedded mode (None when there is none), else the store's."""
        if self.version_file is None:
            return self.store.version()
        found = read_marker(self.version_file)
        return found.version if found is not None else None

    def _rebuild_beside(self, version: str | None) -> SearchSnapshot | None:
        """Rebuild on a background thread, waiting at most ``rebuild_wait_seconds`` (small indexes are ready by
        then): the rebuilt snapshot when it is of ``version``, else None while the rebuild still runs. A
        finished rebuild of another version is dropped (versions are not ordered) and one more started."""
        deadline = time.monotonic() + self.config.rebuild_wait_seconds
        for _ in range(2):  # the rebuild already running may be of an older version: then one more
            if self._worker is None or not self._worker.is_alive():
                built, self._built = self._built, None
                if built is not None and built.version == version:
                    return built
                self._worker = threading.Thread(target=self._build_in_background, name="newsbot-snapshot-rebuild",
                                                daemon=True)
                self._worker.start()
            self._worker.join(max(0.0, deadline - time.monotonic()))
            if self._worker.is_alive():
                return None
        built, self._built = self._built, None
        return built if built is not None and built.version == version else None

    def _build_in_background(self) -> None:
        try:
            self._built = self._rebuild()
        except Exception as err:  # the searches go on with the snapshot they have; the next check retries
            log.warning("could not refresh the search index (%s); still answering from the previous one",
                        first_line(err))
            log.debug("background snapshot rebuild failed", exc_info=True)

    def _rebuild(self) -> SearchSnapshot | None:
        """Rebuild the snapshot; a read that collides with another process's write is retried once, then
        the previous snapshot (if any) stays in use until the next refresh."""
        for attempt in (1, 2):
            try:
                return rebuild(self.store, self.data_dir)
            except NewsbotError:
                raise
            except Exception as err:  # Chroma's embedded mode is not meant for concurrent writer processes
                log.debug("snapshot rebuild failed (attempt %d)", attempt, exc_info=True)
                if attempt == 1:
                    time.sleep(0.5)
                    continue
                if self._snap is not None:
                    log.warning("could not refresh the search index (%s); still answering from the previous one",
                                first_line(err))
                    return None
                raise NewsbotError("the index is being written by another process and could not be read; try "
                                   "again, or share one Chroma server between processes (docs/deploy.md)") from err
        return None
