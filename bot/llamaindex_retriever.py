"""newsbot as a LlamaIndex component: a ``BaseRetriever`` over a newsbot index, for any LlamaIndex query engine.

A thin shell like the CLI: a query goes to ``Answerer.retrieve`` (the passages ``newsbot ask`` answers from, ranked
the same way) and each ``Passage`` comes back as a ``TextNode`` carrying the chunk text and newsbot's metadata. The
only module that imports LlamaIndex's retriever and node types; ``bot/llm.py`` owns its LLM clients."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import NodeRelationship, NodeWithScore, QueryBundle, RelatedNodeInfo, TextNode

from bot.answering import Answerer
from index import NO_FILTERS, Filters, Index, date_filters, terms
from index.errors import NewsbotError
from index.types import ChunkMeta, Passage, Sentence

# what an LLM sees of a node besides its text (the rest is for code: ids, offsets, sentences, scores)
LLM_METADATA = ("title", "source", "published_at", "url")
OURS = ("chunk_id", "sentences", "dense", "lexical")  # node metadata keys that are not ChunkMeta fields


class NewsbotRetriever(BaseRetriever):
    """``retrieve(query)`` → the ``top_k`` passages ``newsbot ask`` would answer from, as scored ``TextNode``s.

    Build it with ``from_data_dir`` (reads the settings like the CLI: embedded or Chroma server mode), from an
    ``Index``, or from an ``Answerer`` you already have."""

    def __init__(self, answerer: Answerer, *, top_k: int = 10, filters: Filters = NO_FILTERS,
                 callback_manager: CallbackManager | None = None) -> None:
        if top_k < 1:
            raise NewsbotError(f"top_k must be at least 1, not {top_k}")
        super().__init__(callback_manager=callback_manager)
        self.answerer = answerer
        self.top_k = top_k
        self.filters = filters

    @classmethod
    def from_index(cls, index: Index, *, top_k: int = 10, filters: Filters = NO_FILTERS,
                   callback_manager: CallbackManager | None = None) -> NewsbotRetriever:
        """A retriever over ``index`` with answering's default limits (question length)."""
        return cls(Answerer(index), top_k=top_k, filters=filters, callback_manager=callback_manager)

    @classmethod
    def from_data_dir(cls, data_dir: str | Path, *, top_k: int = 10, sources: Sequence[str] = (),
                      since: str | None = None, until: str | None = None, filters: Filters | None = None,
                      callback_manager: CallbackManager | None = None) -> NewsbotRetriever:
        """A retriever over the index in ``data_dir``, configured from the environment as ``newsbot`` is; narrow it
        with outlets and dates as typed on the command line, or with ``filters``."""
        from bot.settings import load_settings
        from bot.wiring import Services

        if filters is not None and (sources or since or until):
            raise NewsbotError("give either filters or sources/since/until, not both")
        chosen = filters if filters is not None else date_filters(sources, since, until)
        services = Services(load_settings(data_dir=Path(data_dir)))
        return cls(services.answerer, top_k=top_k, filters=chosen, callback_manager=callback_manager)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        passages = self.answerer.retrieve(query_bundle.query_str, top_k=self.top_k, filters=self.filters)
        return [to_node(p) for p in passages]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return await asyncio.to_thread(self._retrieve, query_bundle)  # embedding and search block: off the loop


def to_node(p: Passage) -> NodeWithScore:
    """A passage as a scored ``TextNode``: id = chunk id, source = the article, metadata = newsbot's."""
    base = p.meta.as_dict() if p.meta is not None else {"article_id": p.article_id, "position": p.position}
    metadata: dict[str, Any] = {**base, "title": p.title, "source": p.source, "url": p.url,
                                "published_at": p.published_at, "chunk_id": p.chunk_id,
                                "sentences": _sentences(p), "dense": p.dense, "lexical": p.lexical}
    hidden = [k for k in metadata if k not in LLM_METADATA]
    node = TextNode(id_=p.chunk_id, text=p.text, metadata=metadata, excluded_llm_metadata_keys=hidden,
                    excluded_embed_metadata_keys=hidden,
                    relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=p.article_id)})
    if p.meta is not None:
        node.start_char_idx, node.end_char_idx = p.meta.start, p.meta.end  # offsets into the article body
    return NodeWithScore(node=node, score=p.score)


def to_passage(scored: NodeWithScore) -> Passage:
    """Back from a node made by ``to_node`` (e.g. the source nodes of a query engine's response)."""
    node = scored.node
    md = dict(node.metadata)
    meta = ChunkMeta.from_dict({k: v for k, v in md.items() if k not in OURS})
    sentences = tuple(Sentence(s["text"], tuple(terms(s["text"])), s["kind"]) for s in md.get("sentences", []))
    return Passage(chunk_id=md.get("chunk_id", node.node_id), article_id=meta.article_id,
                   text=node.get_content(), score=scored.score or 0.0, title=meta.title, source=meta.source,
                   url=meta.url, published_at=meta.published_at, position=meta.position, meta=meta,
                   dense=float(md.get("dense", 0.0)), lexical=float(md.get("lexical", 0.0)), sentences=sentences)


def _sentences(p: Passage) -> list[dict[str, Any]]:
    """Each indexed sentence with its span in the chunk text (None when the text was normalised past finding)."""
    out: list[dict[str, Any]] = []
    at = 0
    for s in p.sentences:
        start = p.text.find(s.text, at)
        span = (start, start + len(s.text)) if start >= 0 else (None, None)
        if start >= 0:
            at = start + len(s.text)
        out.append({"text": s.text, "start": span[0], "end": span[1], "kind": s.kind, "quotable": s.quotable})
    return out
