"""Passages out: hybrid dense (Chroma) + lexical (BM25) retrieval fused into one ranked list."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from index.embed import Embedder
from index.ingest import rebuild_lexical
from index.lexical import LexicalIndex
from index.store import ChromaStore, passage_from
from index.types import Passage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Filters:
    """Narrow a search to some outlets and/or a publication window (unix seconds, inclusive)."""

    sources: tuple[str, ...] = ()
    since: int | None = None
    until: int | None = None

    def where(self) -> dict[str, Any] | None:
        clauses: list[dict[str, Any]] = []
        if self.sources:
            clauses.append({"source": {"$in": list(self.sources)}})
        if self.since is not None:
            clauses.append({"published_ts": {"$gte": self.since}})
        if self.until is not None:
            clauses.append({"published_ts": {"$lte": self.until}})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}

    def mask(self, lex: LexicalIndex) -> np.ndarray | None:
        if not (self.sources or self.since is not None or self.until is not None):
            return None
        keep = np.ones(len(lex), dtype=bool)
        if self.sources:
            wanted = set(self.sources)
            keep &= np.fromiter((s in wanted for s in lex.sources), dtype=bool, count=len(lex))
        if self.since is not None:
            keep &= lex.timestamps >= self.since
        if self.until is not None:
            keep &= lex.timestamps <= self.until
        return keep


NO_FILTERS = Filters()


@dataclass(frozen=True)
class RetrievalConfig:
    """Depths and weights of the hybrid search."""

    dense_depth: int = 100
    lexical_depth: int = 100
    dense_weight: float = 0.5
    per_article: int = 0  # max chunks of one article in the results; 0 = no cap
    refresh_seconds: float = 2.0


class Retriever:
    """Hybrid search over one store; picks up other processes' writes via the store's version token."""

    def __init__(self, store: ChromaStore, embedder: Embedder, data_dir: Path,
                 config: RetrievalConfig = RetrievalConfig()) -> None:
        self.store = store
        self.embedder = embedder
        self.data_dir = data_dir
        self.config = config
        self._lex: LexicalIndex | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    def lexical(self) -> LexicalIndex:
        """The BM25 snapshot matching the store's current version (loaded or rebuilt as needed)."""
        with self._lock:
            now = time.monotonic()
            if self._lex is not None and now - self._checked < self.config.refresh_seconds:
                return self._lex
            version = self.store.version()
            self._checked = now
            if self._lex is None or self._lex.version != version:
                snap = LexicalIndex.load(self.data_dir)
                if snap is None or snap.version != version:
                    log.info("lexical index is out of step with the store; rebuilding")
                    snap = rebuild_lexical(self.store, self.data_dir)
                self._lex = snap
            return self._lex

    def search(self, question: str, k: int = 10, filters: Filters = NO_FILTERS) -> list[Passage]:
        """The ``k`` best passages for ``question``, best first; ``score`` is the fused score in [0, 1]."""
        lex = self.lexical()
        if not len(lex):
            return []
        cfg = self.config
        vector = self.embedder.embed([question])[0]
        dense = self.store.query(vector, cfg.dense_depth, filters.where())
        bm25 = lex.scores(question)
        mask = filters.mask(lex)
        if mask is not None:
            bm25 = np.where(mask, bm25, 0.0)
        # the article catalogue decides what is visible: chunks of incomplete writes never surface
        candidates: dict[str, Passage] = {p.chunk_id: p for p in dense if lex.row(p.chunk_id) is not None}
        top_lex = np.argsort(-bm25)[: cfg.lexical_depth]
        missing = [lex.ids[i] for i in top_lex if bm25[i] > 0 and lex.ids[i] not in candidates]
        if missing:
            records = self.store.get_chunks(missing)
            vectors = self.store.get_vectors(missing)
            for cid in missing:
                if cid in records:
                    cos = float(np.dot(vectors[cid], vector)) if cid in vectors else 0.0
                    candidates[cid] = passage_from(records[cid], cos)
        if not candidates:
            return []
        pool = list(candidates.values())
        cos = np.array([p.score for p in pool], dtype=np.float32)
        lexs = np.array([bm25[lex.row(p.chunk_id)] for p in pool], dtype=np.float32)  # type: ignore[index]
        fused = cfg.dense_weight * _minmax(cos) + (1 - cfg.dense_weight) * _minmax(lexs)
        order = np.argsort(-fused, kind="stable")
        out: list[Passage] = []
        per_article: dict[str, int] = {}
        for i in order:
            p = pool[i]
            if cfg.per_article and per_article.get(p.article_id, 0) >= cfg.per_article:
                continue
            per_article[p.article_id] = per_article.get(p.article_id, 0) + 1
            out.append(replace(p, score=float(fused[i]), dense=float(cos[i]), lexical=float(lexs[i])))
            if len(out) >= k:
                break
        return out


def _minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
