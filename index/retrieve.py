"""Passages out: hybrid retrieval over the search snapshot. Dense candidates come from an exact cosine scan
of the chunk vectors, lexical ones from BM25 over chunks and over single sentences; every candidate is then
scored on all three signals (min-max normalised over the pool and mixed with fixed weights), lifted when its
article's date is named in the question, and, when the question names outlets, the results interleave the
best chunks of each named outlet."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from index.embed import Embedder
from index.errors import NewsbotError, first_line
from index.ingest import rebuild_lexical
from index.lexical import LexicalIndex
from index.load import parse_date, timestamp
from index.query import OutletMatcher, QueryPlan, plan
from index.store import ChromaStore, read_version_marker
from index.types import Passage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Filters:
    """Narrow a search to some outlets and/or a publication window (unix seconds, inclusive)."""

    sources: tuple[str, ...] = ()
    since: int | None = None
    until: int | None = None

    def mask(self, lex: LexicalIndex) -> np.ndarray | None:
        if not (self.sources or self.since is not None or self.until is not None):
            return None
        keep = np.ones(len(lex), dtype=bool)
        if self.sources:
            keep &= np.isin(lex.source_array, list(self.sources))
        if self.since is not None:
            keep &= lex.timestamps >= self.since
        if self.until is not None:
            keep &= lex.timestamps <= self.until
        return keep


NO_FILTERS = Filters()
DAY_SECONDS = 86400


def date_bound(value: str, *, end: bool) -> int:
    """Unix seconds for a date a user typed; as an ``end`` bound a bare day covers the whole day.
    Raises ValueError when ``value`` is not a date."""
    iso = parse_date(value)
    if not iso:
        raise ValueError(value)
    ts = timestamp(iso)
    return ts + DAY_SECONDS - 1 if end and len(value.strip()) <= 10 else ts


@dataclass(frozen=True)
class RetrievalConfig:
    """Depths and weights of the hybrid search (chosen on MultiHop-RAG dev questions; see README)."""

    depth: int = 100  # candidates taken from each of dense, chunk BM25 and sentence BM25
    outlet_depth: int = 50  # lexical candidates taken per outlet named in the question
    dense_weight: float = 0.4  # dense vs chunk BM25, within the chunk-level score
    sentence_weight: float = 0.3  # best-sentence BM25 (per question part) vs the chunk-level score
    phrase_weight: float = 0.2  # best sentence per descriptive phrase of the question (pool-normalised)
    date_boost: float = 0.3  # added when the article's publication day is named in the question
    outlet_boost: float = 0.3  # added for named outlets when choosing the very first result
    outlet_aware: bool = True
    split_clauses: bool = True  # score sentences against each part of a multi-part question
    refresh_seconds: float = 2.0
    # a process already answering waits this long for a snapshot rebuild, then answers from the one it has
    rebuild_wait_seconds: float = 2.0


class Retriever:
    """Hybrid search over the search snapshot of one store; picks up other processes' writes via the store's
    version token, read from the version marker file in embedded mode (``version_file``) so that a current
    snapshot is used without opening Chroma, and from the store itself in server mode."""

    def __init__(self, open_store: Callable[[], ChromaStore], embedder: Embedder, data_dir: Path,
                 config: RetrievalConfig = RetrievalConfig(), *, version_file: Path | None = None) -> None:
        self._open_store = open_store
        self._store: ChromaStore | None = None
        self.embedder = embedder
        self.data_dir = data_dir
        self.config = config
        self.version_file = version_file
        self._lex: LexicalIndex | None = None
        self._matcher = OutletMatcher([])
        self._checked = 0.0
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None  # a snapshot rebuild running beside the searches
        self._built: LexicalIndex | None = None  # what the last finished background rebuild produced

    @property
    def store(self) -> ChromaStore:
        """The store, opened on first use: only needed when the snapshot has to be rebuilt (or in server mode)."""
        if self._store is None:
            self._store = self._open_store()
        return self._store

    def lexical(self) -> LexicalIndex:
        """The search snapshot matching the store's current version (loaded or rebuilt as needed)."""
        with self._lock:
            now = time.monotonic()
            if self._lex is not None and now - self._checked < self.config.refresh_seconds:
                return self._lex
            version = self._current_version()
            self._checked = now
            if self._lex is not None and self._lex.version == version:
                return self._lex
            on_disk = LexicalIndex.tag(self.data_dir)  # read before loading: a large snapshot takes seconds
            if (on_disk is None or on_disk.version != version) and self.version_file is not None:
                version = self.store.sync_marker()  # the marker may be missing or stale: Chroma has the truth
                if self._lex is not None and self._lex.version == version:
                    return self._lex
            snap = LexicalIndex.load(self.data_dir) if on_disk is not None and on_disk.version == version else None
            if snap is None or snap.version != version:
                if self._worker is None or not self._worker.is_alive():
                    log.info("search snapshot is out of step with the store; rebuilding")
                # with nothing to answer from, wait for the rebuild; otherwise answer from the snapshot in
                # hand while a large index rebuilds (minutes at scale) instead of stalling every search
                snap = self._rebuild() if self._lex is None else self._rebuild_beside(version)
                if snap is None:  # still rebuilding, or another process is writing: serve the last good one
                    assert self._lex is not None
                    return self._lex
            self._lex = snap
            self._matcher = OutletMatcher(snap.known_sources)
            return self._lex

    def expire(self) -> None:
        """Check the store's version on the next search, however recently it was checked."""
        with self._lock:
            self._checked = float("-inf")

    def _current_version(self) -> str | None:
        """The store's version token: the marker's in embedded mode (None when there is none), else the store's."""
        if self.version_file is None:
            return self.store.version()
        found = read_version_marker(self.version_file)
        return found.version if found is not None else None

    def _rebuild_beside(self, version: str | None) -> LexicalIndex | None:
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

    def _rebuild(self) -> LexicalIndex | None:
        """Rebuild the snapshot; a read that collides with another process's write is retried once, then
        the previous snapshot (if any) stays in use until the next refresh."""
        for attempt in (1, 2):
            try:
                return rebuild_lexical(self.store, self.data_dir)
            except NewsbotError:
                raise
            except Exception as err:  # Chroma's embedded mode is not meant for concurrent writer processes
                log.debug("snapshot rebuild failed (attempt %d)", attempt, exc_info=True)
                if attempt == 1:
                    time.sleep(0.5)
                    continue
                if self._lex is not None:
                    log.warning("could not refresh the search index (%s); still answering from the previous one",
                                first_line(err))
                    return None
                raise NewsbotError("the index is being written by another process and could not be read; try "
                                   "again, or share one Chroma server between processes (docs/deploy.md)") from err
        return None

    def plan(self, question: str) -> QueryPlan:
        self.lexical()
        found = plan(question, self._matcher)
        return found if self.config.outlet_aware else replace(found, outlets=())

    def search(self, question: str, k: int = 10, filters: Filters = NO_FILTERS) -> list[Passage]:
        """The ``k`` best passages for ``question``, best first; ``score`` is the fused relevance in [0, 1]."""
        lex = self.lexical()
        if not len(lex):
            return []
        cfg = self.config
        query_plan = self.plan(question)
        vector = self.embedder.embed([question])[0]
        dense = lex.dense(vector)
        allowed = filters.mask(lex)
        chunk_bm25 = lex.scores(question)
        sentence_scores = _memo(lex.sentence_scores)  # clauses, phrases and the question often coincide
        # each part of a multi-part question pulls its own best-matching sentence
        parts = (query_plan.clauses if cfg.split_clauses else ()) or (question,)
        sent_bm25 = np.max(np.stack([_unit(sentence_scores(c)) for c in parts]), 0)
        if allowed is not None:
            chunk_bm25 = np.where(allowed, chunk_bm25, 0.0)
            sent_bm25 = np.where(allowed, sent_bm25, 0.0)

        pool = _top(dense if allowed is None else np.where(allowed, dense, -np.inf), cfg.depth, above=-np.inf)
        pool |= _top(chunk_bm25, cfg.depth) | _top(sent_bm25, cfg.depth)
        outlet_masks = [np.isin(lex.source_array, list(g)) for g in query_plan.outlets]
        if allowed is not None:
            outlet_masks = [m & allowed for m in outlet_masks]
        for m in outlet_masks:
            pool |= _top(np.where(m, chunk_bm25, 0.0), cfg.outlet_depth)
            pool |= _top(np.where(m, sent_bm25, 0.0), cfg.outlet_depth)
        if not pool:
            return []
        rows = np.fromiter(sorted(pool), dtype=np.int64)
        cos = dense[rows]
        chunk_level = cfg.dense_weight * _minmax(cos) + (1 - cfg.dense_weight) * _minmax(chunk_bm25[rows])
        fused = (1 - cfg.sentence_weight) * chunk_level + cfg.sentence_weight * _minmax(sent_bm25[rows])
        scale = 1.0
        if cfg.phrase_weight:  # lift chunks holding a sentence that matches one descriptive phrase well
            phrases = query_plan.phrases or (question,)
            fused = fused + cfg.phrase_weight * _phrase_match(sentence_scores, phrases, rows, allowed)
            scale += cfg.phrase_weight
        if query_plan.days and cfg.date_boost:
            fused = fused + cfg.date_boost * np.isin(lex.days[rows], list(query_plan.days))
            scale += cfg.date_boost
        fused = fused / scale
        order = _interleave(rows, fused, [m[rows] for m in outlet_masks], cfg.outlet_boost, k)
        out = []
        for i in order:
            r = int(rows[i])
            out.append(replace(lex.passage(r, float(fused[i])), dense=float(cos[i]), lexical=float(chunk_bm25[r])))
        return out


def _top(scores: np.ndarray, n: int, above: float = 0.0) -> set[int]:
    """Rows of the ``n`` highest scores that are above ``above``."""
    if n <= 0 or not len(scores):
        return set()
    n = min(n, len(scores))
    idx = np.argpartition(-scores, n - 1)[:n]
    return {int(i) for i in idx if scores[i] > above}


def _interleave(rows: np.ndarray, fused: np.ndarray, masks: list[np.ndarray], boost: float, k: int) -> list[int]:
    """Positions into ``rows``: best first; with named outlets, the best overall (named outlets lifted)
    and then the outlets' own best chunks in turn, so each named outlet is represented near the top."""
    by_score = [int(i) for i in np.argsort(-fused, kind="stable")]
    if not masks:
        return by_score[:k]
    out: list[int] = []
    seen: set[int] = set()
    named = np.any(np.stack(masks), axis=0)
    first = int(np.argmax(fused + boost * named))
    out.append(first)
    seen.add(first)
    lists = [[i for i in by_score if m[i]] for m in masks]
    depth = 0
    while len(out) < k and any(depth < len(lst) for lst in lists):
        for lst in lists:
            if depth < len(lst) and lst[depth] not in seen and len(out) < k:
                out.append(lst[depth])
                seen.add(lst[depth])
        depth += 1
    for i in by_score:
        if len(out) >= k:
            break
        if i not in seen:
            out.append(i)
            seen.add(i)
    return out


def _phrase_match(sentence_scores: Callable[[str], np.ndarray], phrases: tuple[str, ...], rows: np.ndarray,
                  allowed: np.ndarray | None) -> np.ndarray:
    """For each candidate row, how well its best sentence matches the question's best-served phrase: the
    sentence BM25 of each phrase scaled by that phrase's best candidate, the maximum over phrases, squared
    so that only close matches lift a chunk much."""
    best = np.zeros(len(rows), dtype=np.float32)
    for phrase in phrases:
        s = sentence_scores(phrase)[rows]
        if allowed is not None:
            s = np.where(allowed[rows], s, 0.0)
        top = float(s.max()) if len(s) else 0.0
        if top > 0:
            np.maximum(best, s / top, out=best)
    return best * best


def _memo(fn: Callable[[str], np.ndarray]) -> Callable[[str], np.ndarray]:
    """``fn`` computed once per distinct text (for one search)."""
    seen: dict[str, np.ndarray] = {}

    def once(text: str) -> np.ndarray:
        if text not in seen:
            seen[text] = fn(text)
        return seen[text]

    return once


def _unit(x: np.ndarray) -> np.ndarray:
    top = float(x.max()) if len(x) else 0.0
    return x / top if top > 0 else x


def _minmax(x: np.ndarray) -> np.ndarray:
    if not len(x):
        return x
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
