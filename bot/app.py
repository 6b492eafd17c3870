"""The composition root: the one place that turns settings into concrete collaborators."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.answer import AnswerConfig, compose, truncate
from bot.conversation import Turn, condense
from bot.generate import condense_question, generate
from bot.llm import ChatModel, LLMError, build_chat_model
from bot.settings import Settings
from bot.types import Answer
from index.embed import Embedder, model_name, precision_of
from index.errors import NewsbotError
from index.ingest import ChunkingConfig, IngestReport, forget, ingest
from index.lexical import LexicalIndex, tokenize
from index.load import load_paths
from index.query import clauses
from index.retrieve import NO_FILTERS, Filters, RetrievalConfig, Retriever
from index.store import ChromaStore, read_version_marker, version_marker
from index.types import Article, LoadError

if TYPE_CHECKING:
    from index.feeds import FeedRound
    from index.fetch import Fetcher

log = logging.getLogger(__name__)


def is_url(path: str | Path) -> bool:
    """True for a URL (``scheme://...``) given where a path is expected; the fetcher accepts only http(s)."""
    return isinstance(path, str) and re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", path) is not None


class App:
    """Everything a front end needs, built lazily so that cheap commands stay cheap."""

    def __init__(self, settings: Settings, *, embedder: Embedder | None = None, llm: ChatModel | None = None) -> None:
        self.settings = settings
        self._embedder = embedder
        self._llm = llm

    @cached_property
    def llm(self) -> ChatModel | None:
        """The language model that writes fluent answers, or None (extractive answers only)."""
        if self._llm is not None:
            return self._llm
        s = self.settings
        return build_chat_model(s.llm_provider, model=s.llm_model, base_url=s.llm_base_url,
                                api_key=s.llm_api_key.get_secret_value() if s.llm_api_key else "",
                                timeout_s=s.llm_timeout_s)

    @cached_property
    def embedder(self) -> Embedder:
        if self._embedder is not None:
            return self._embedder
        from index.embed import MiniLM

        return MiniLM(self.settings.cache_dir, threads=self.settings.embed_threads, precision=self.precision)

    @cached_property
    def precision(self) -> str:
        """The embedding precision in use: the one an existing index was built with, else the setting's."""
        wanted = self.settings.embed_precision
        recorded = precision_of(self._recorded_model())
        if recorded and recorded != wanted:
            log.info("this index holds %s embeddings; NEWSBOT_EMBED_PRECISION=%s applies to new indexes", recorded,
                     wanted)
        return recorded or wanted

    def _recorded_model(self) -> str:
        """The embedding model the index was built with: from the version marker or the search snapshot when
        there is one (no Chroma), else from the store."""
        marker = read_version_marker(self.version_file) if self.version_file is not None else None
        for found in (marker, LexicalIndex.tag(self.lexical_dir)):
            if found is not None and found.embedding_model:
                return found.embedding_model
        probe = self._open_store("")  # no model check: we are reading which model the index has
        if precision_of(probe.embedding_model):
            self._probe = probe  # already records our model: reuse it as the store
        return probe.embedding_model

    @property
    def embedding_model(self) -> str:
        return self._embedder.name if self._embedder is not None else model_name(self.precision)

    @cached_property
    def store(self) -> ChromaStore:
        name = self.embedding_model
        probe = getattr(self, "_probe", None)
        return probe if probe is not None and probe.embedding_model == name else self._open_store(name)

    def _open_store(self, embedding_model: str) -> ChromaStore:
        s = self.settings
        if s.chroma_host:
            return ChromaStore(host=s.chroma_host, port=s.chroma_port, ssl=s.chroma_ssl, headers=s.chroma_headers(),
                               collection=s.collection, embedding_model=embedding_model)
        return ChromaStore(path=s.data_dir / "chroma", collection=s.collection, embedding_model=embedding_model)

    @property
    def version_file(self) -> Path | None:
        """The embedded index's version marker (None in server mode, where only the server knows)."""
        s = self.settings
        return None if s.chroma_host else version_marker(s.data_dir / "chroma", s.collection)

    @property
    def lexical_dir(self) -> Path:
        """Where this process keeps its BM25 snapshot: the data dir, or one folder per server and collection."""
        s = self.settings
        if not s.chroma_host:
            return s.data_dir
        key = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{s.chroma_host}_{s.chroma_port}_{s.collection}")
        return s.data_dir / "servers" / key

    @cached_property
    def retriever(self) -> Retriever:
        cfg = RetrievalConfig(dense_weight=self.settings.dense_weight,
                              refresh_seconds=self.settings.index_refresh_seconds)
        return Retriever(lambda: self.store, self.embedder, self.lexical_dir, cfg, version_file=self.version_file)

    @property
    def chunking(self) -> ChunkingConfig:
        return ChunkingConfig(title_prefix=self.settings.title_prefix)

    @property
    def answer_config(self) -> AnswerConfig:
        s = self.settings
        return AnswerConfig(max_quotes=s.max_quotes, abstain_threshold=s.abstain_threshold)

    # -- commands ----------------------------------------------------------------------------------------
    def load(self, paths: Iterable[str | Path]) -> list[Article | LoadError]:
        """Articles from files, directories, archives and http(s) URLs (fetched here, one by one)."""
        s = self.settings
        paths = list(paths)
        urls = [str(p) for p in paths if is_url(p)]
        files = [p for p in paths if not is_url(p)]
        items = list(load_paths(files, max_file_bytes=s.max_file_bytes, max_article_chars=s.max_article_chars))
        return items + [self.fetcher.article(u) for u in urls]

    @cached_property
    def fetcher(self) -> Fetcher:
        from index.fetch import Fetcher, FetchLimits

        s = self.settings
        return Fetcher(FetchLimits(max_bytes=s.fetch_max_bytes, timeout=s.fetch_timeout, host_delay=s.fetch_host_delay,
                                   allow_private=s.allow_private_urls, max_article_chars=s.max_article_chars))

    def ingest_feeds(self, feeds: list[str], *, only_new: bool,
                     progress: Any = None) -> tuple[FeedRound, IngestReport]:
        """One pass over RSS/Atom feeds; ``only_new`` sends conditional requests and skips entries already seen."""
        from index.feeds import STATE_FILE, FeedState, feed_round

        state = FeedState(self.lexical_dir / STATE_FILE)
        return feed_round(feeds, self.fetcher, lambda items: self.ingest(items, progress), state, only_new=only_new)

    def ingest(self, items: Iterable[Article | LoadError], progress: Any = None) -> IngestReport:
        try:
            return ingest(items, self.store, self.embedder, self.lexical_dir, config=self.chunking,
                          progress=progress)
        finally:
            self._wrote()

    def forget(self, key: str) -> tuple[list[str], int]:
        try:
            return forget(key, self.store, self.lexical_dir)
        finally:
            self._wrote()

    def _wrote(self) -> None:
        """This process changed the index: its next question sees that at once, not after the refresh interval."""
        if "retriever" in self.__dict__:
            self.retriever.expire()

    def ask(self, question: str, history: list[Turn] | None = None, *, top_k: int | None = None,
            filters: Filters = NO_FILTERS) -> Answer:
        """Answer one question, resolving it against the conversation so far."""
        for item in self.ask_stream(question, history, top_k=top_k, filters=filters):
            if isinstance(item, Answer):
                return item
        raise AssertionError("ask_stream ended without an Answer")

    def ask_stream(self, question: str, history: list[Turn] | None = None, *, top_k: int | None = None,
                   filters: Filters = NO_FILTERS) -> Iterator[str | Answer]:
        """The LLM's draft as text deltas while it is written, then the verified Answer (always the last item).

        Without an LLM only the extractive Answer is yielded; when the LLM fails (unreachable, HTTP error,
        timeout, unusable reply) the last item is the extractive Answer with a one-line ``notice``. The LLM's
        part (condensing a follow-up plus writing) never takes longer than NEWSBOT_LLM_TIMEOUT_S.
        """
        question = self.check_question(question)
        history = history or []
        llm, budget = self.llm, self.settings.llm_timeout_s
        started = time.perf_counter()
        standalone, context = condense(question, history)
        notice = ""
        if llm is not None and history:
            try:
                standalone = condense_question(llm, question, history, deadline=time.monotonic() + budget,
                                               limit=self.settings.max_question_chars) or standalone
            except LLMError as err:
                notice = str(err)
            budget -= time.perf_counter() - started
        condensed = time.perf_counter()
        passages = self.retriever.search(standalone, top_k or self.settings.top_k, filters)
        retrieved = time.perf_counter()
        answer: Answer | None = None
        if llm is not None and not notice and passages:
            try:
                for item in generate(llm, question, standalone, passages, deadline=time.monotonic() + budget,
                                     uncited=self.settings.llm_uncited):
                    if isinstance(item, Answer):
                        answer = item
                    else:
                        yield item
            except LLMError as err:
                notice = str(err)
        if answer is None:
            idf = self.retriever.lexical().idf(tokenize([standalone])[0])
            answer = compose(question, passages, idf, context=context, parts=clauses(question),
                             config=self.answer_config)
            if notice:
                answer = replace(answer, notice=f"{notice}; showing the extractive answer")
        done = time.perf_counter()
        timings = {"condense": round((condensed - started) * 1000, 1),
                   "retrieve": round((retrieved - condensed) * 1000, 1),
                   "answer": round((done - retrieved) * 1000, 1), "total": round((done - started) * 1000, 1)}
        answer = truncate(answer, self.settings.max_answer_chars)
        yield replace(answer, standalone_question=standalone, timings_ms=timings)

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

    def indexed_chunks(self) -> int:
        """How many chunks questions are answered from (those of completely stored articles)."""
        return len(self.retriever.lexical())

    def chunk_token_counts(self) -> list[int]:
        """Model-token length of every indexed chunk (for eval's chunk-length distribution)."""
        lex = self.retriever.lexical()
        return [int(lex.meta(row).get("tokens", 0)) for row in range(len(lex))]

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
