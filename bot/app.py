"""The composition root: the one place that turns settings into concrete collaborators."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import Any

from bot.answer import AnswerConfig, compose
from bot.conversation import Turn, condense
from bot.settings import Settings
from bot.types import Answer
from index.embed import MODEL_NAME, Embedder
from index.errors import NewsbotError
from index.ingest import ChunkingConfig, IngestReport, forget, ingest
from index.lexical import tokenize
from index.load import load_paths
from index.retrieve import NO_FILTERS, Filters, RetrievalConfig, Retriever
from index.store import ChromaStore
from index.types import Article, LoadError

log = logging.getLogger(__name__)


class App:
    """Everything a front end needs, built lazily so that cheap commands stay cheap."""

    def __init__(self, settings: Settings, *, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self._embedder = embedder

    @cached_property
    def embedder(self) -> Embedder:
        if self._embedder is not None:
            return self._embedder
        from index.embed import MiniLM

        return MiniLM(self.settings.cache_dir, threads=self.settings.embed_threads)

    @property
    def embedding_model(self) -> str:
        return self._embedder.name if self._embedder is not None else MODEL_NAME

    @cached_property
    def store(self) -> ChromaStore:
        s = self.settings
        return ChromaStore(path=s.data_dir / "chroma", collection=s.collection, embedding_model=self.embedding_model)

    @cached_property
    def retriever(self) -> Retriever:
        cfg = RetrievalConfig(dense_weight=self.settings.dense_weight)
        return Retriever(self.store, self.embedder, self.settings.data_dir, cfg)

    @property
    def chunking(self) -> ChunkingConfig:
        return ChunkingConfig(title_prefix=self.settings.title_prefix)

    @property
    def answer_config(self) -> AnswerConfig:
        s = self.settings
        return AnswerConfig(max_quotes=s.max_quotes, abstain_threshold=s.abstain_threshold)

    # -- commands ----------------------------------------------------------------------------------------
    def load(self, paths: Iterable[str | Path]) -> list[Article | LoadError]:
        s = self.settings
        return list(load_paths(paths, max_file_bytes=s.max_file_bytes, max_article_chars=s.max_article_chars))

    def ingest(self, items: Iterable[Article | LoadError], progress: Any = None) -> IngestReport:
        return ingest(items, self.store, self.embedder, self.settings.data_dir, config=self.chunking,
                      progress=progress)

    def forget(self, key: str) -> tuple[list[str], int]:
        return forget(key, self.store, self.settings.data_dir)

    def ask(self, question: str, history: list[Turn] | None = None, *, top_k: int | None = None,
            filters: Filters = NO_FILTERS) -> Answer:
        """Answer one question, resolving it against the conversation so far."""
        question = self.check_question(question)
        started = time.perf_counter()
        standalone, context = condense(question, history or [])
        passages = self.retriever.search(standalone, top_k or self.settings.top_k, filters)
        retrieved = time.perf_counter()
        idf = self.retriever.lexical().idf(tokenize([standalone])[0])
        answer = compose(question, passages, idf, context=context, config=self.answer_config)
        done = time.perf_counter()
        timings = {"retrieve": round((retrieved - started) * 1000, 1), "answer": round((done - retrieved) * 1000, 1),
                   "total": round((done - started) * 1000, 1)}
        return replace(answer, standalone_question=standalone, timings_ms=timings)

    def check_question(self, question: str) -> str:
        cleaned = " ".join("".join(ch for ch in question if ch.isprintable() or ch.isspace()).split())
        cleaned = cleaned.replace("\u200b", "").replace("\ufeff", "").strip()
        if not cleaned:
            raise NewsbotError("the question is empty: ask something, e.g. newsbot ask \"why did the summits fail?\"")
        limit = self.settings.max_question_chars
        if len(cleaned) > limit:
            raise NewsbotError(f"the question is {len(cleaned):,} characters; the limit is {limit:,} "
                               "(NEWSBOT_MAX_QUESTION_CHARS)")
        return cleaned

    def stats(self) -> dict[str, Any]:
        """What the index holds; needs no embedding model."""
        store = self.store
        articles = store.catalog()
        sources = sorted({a.source for a in articles.values() if a.source})
        dates = sorted(a.published_at for a in articles.values() if a.published_at)
        return {"articles": len(articles), "chunks": store.chunk_count(), "sources": sources,
                "first_published": dates[0] if dates else None, "last_published": dates[-1] if dates else None,
                "data_dir": str(self.settings.data_dir.resolve()), "chroma": {"mode": store.mode,
                                                                              "location": store.location},
                "embedding_model": store.embedding_model or self.embedding_model}
