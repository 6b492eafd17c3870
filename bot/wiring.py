"""The composition root: the only reader of ``Settings``; builds the index, the chat model and the answerer.

Everything is built on first use, so cheap commands stay cheap (``stats`` loads no model, ``ask`` on a current
snapshot opens no Chroma)."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from bot.answer import AnswerConfig
from bot.answering import Answerer, AnsweringConfig
from bot.llm import ChatModel, build_chat_model
from bot.settings import Settings
from index import Index, IndexConfig, Layout

if TYPE_CHECKING:
    from index import Embedder


class Services:
    """The concrete collaborators of one process, built from one ``Settings``."""

    def __init__(self, settings: Settings, *, embedder: Embedder | None = None, llm: ChatModel | None = None) -> None:
        self.settings = settings
        self._embedder = embedder
        self._llm = llm

    @cached_property
    def index(self) -> Index:
        s = self.settings
        layout = Layout(data_dir=s.data_dir, collection=s.collection, chroma_host=s.chroma_host,
                        chroma_port=s.chroma_port, chroma_ssl=s.chroma_ssl, chroma_headers=s.chroma_headers())
        config = IndexConfig(model_cache_dir=s.cache_dir, embed_threads=s.embed_threads,
                             embed_precision=s.embed_precision, title_prefix=s.title_prefix,
                             dense_weight=s.dense_weight, refresh_seconds=s.index_refresh_seconds,
                             reconcile_seconds=s.index_reconcile_seconds, chroma_query_limit=s.chroma_query_limit,
                             max_file_bytes=s.max_file_bytes, max_article_chars=s.max_article_chars,
                             fetch_max_bytes=s.fetch_max_bytes, fetch_timeout=s.fetch_timeout,
                             fetch_host_delay=s.fetch_host_delay, allow_private_urls=s.allow_private_urls)
        return Index(layout, config, embedder=self._embedder)

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
    def answerer(self) -> Answerer:
        s = self.settings
        config = AnsweringConfig(top_k=s.top_k, max_question_chars=s.max_question_chars,
                                 max_answer_chars=s.max_answer_chars, llm_timeout_s=s.llm_timeout_s,
                                 llm_uncited=s.llm_uncited,
                                 answer=AnswerConfig(max_quotes=s.max_quotes, abstain_threshold=s.abstain_threshold))
        return Answerer(self.index, self.llm, config)
