"""newsbot as a LlamaIndex retriever: the same first passage as ``newsbot ask``, metadata that survives the trip
through a node, and LlamaIndex's own query engines answering from our nodes with a scripted LLM."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.base.llms.types import CompletionResponse, CompletionResponseGen, LLMMetadata
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.callbacks import llm_completion_callback
from llama_index.core.query_engine import CitationQueryEngine, RetrieverQueryEngine
from llama_index.core.schema import MetadataMode, NodeRelationship
from pydantic import PrivateAttr

from bot.llamaindex_retriever import NewsbotRetriever, to_node, to_passage
from index import Filters, date_filters
from index.errors import NewsbotError
from index.types import Article
from tests.fakes import FIXTURES, SAMPLE

QUESTIONS = [
    "How much did Harbor Tech revenue grow?",
    "Why were water restrictions imposed in the valley?",
    "Who won the national chess championship?",
    "What did the city council decide about bike lanes?",
    "What does the new museum wing show?",
    "why did the summits fail?",
    "Is Trump receptive to dialogue with Kim Jong Un?",
    "Why is Harbor Tech facing an antitrust probe?",
    "What did Market Wire and the Riverside Gazette report in 2024?",  # named outlets steer the ranking
    "What did Culture Weekly write about the council?",
]


class ScriptedLLM(CustomLLM):
    """A LlamaIndex LLM whose replies are queued; records every prompt it is given. Test seam only."""

    _replies: deque[str] = PrivateAttr()
    _prompts: list[str] = PrivateAttr()

    def __init__(self, *replies: str) -> None:
        super().__init__()
        self._replies = deque(replies)
        self._prompts = []

    @property
    def prompts(self) -> list[str]:
        return self._prompts

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(context_window=8192, num_output=256, model_name="scripted")

    def _next(self, prompt: str) -> str:
        self._prompts.append(prompt)
        if not self._replies:
            raise AssertionError("the scripted LLM has no reply left")
        return self._replies.popleft()

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text=self._next(prompt))

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        text = self._next(prompt)
        yield CompletionResponse(text=text, delta=text)


@pytest.fixture
def corpus_cli(cli: Any, tmp_path: Path) -> tuple[Any, Path]:
    """The in-process CLI (hash embedder behind MiniLM) with the fixtures and the sample article ingested."""
    code, _, err = cli("ingest", str(FIXTURES / "articles.jsonl"), str(SAMPLE))
    assert code == 0, err
    return cli, tmp_path / "cli-data"


def _ask_json(cli: Any, *args: str) -> dict[str, Any]:
    code, out, err = cli("ask", "--json", *args)
    assert code == 0, err
    return json.loads(out)


def test_first_node_is_the_first_chunk_newsbot_ask_retrieves(corpus_cli: tuple[Any, Path]) -> None:
    cli, data = corpus_cli
    retriever = NewsbotRetriever.from_data_dir(data)
    for question in QUESTIONS:
        expected = _ask_json(cli, question)["retrieved"]
        nodes = retriever.retrieve(question)
        assert [n.node.node_id for n in nodes] == [r["chunk_id"] for r in expected], question
        assert [round(n.score or 0, 4) for n in nodes] == [r["score"] for r in expected], question


def test_filters_rank_as_the_cli_does(corpus_cli: tuple[Any, Path]) -> None:
    cli, data = corpus_cli
    question = "Harbor Tech"
    expected = _ask_json(cli, question, "--source", "Market Wire", "--since", "2024-06-01", "--top-k", "3")
    retriever = NewsbotRetriever.from_data_dir(data, top_k=3, sources=["Market Wire"], since="2024-06-01")
    nodes = retriever.retrieve(question)
    assert [n.node.node_id for n in nodes] == [r["chunk_id"] for r in expected["retrieved"]]
    assert nodes and all(n.node.metadata["source"] == "Market Wire" for n in nodes)
    assert all(n.node.metadata["published_at"] >= "2024-06-01" for n in nodes)
    assert retriever.filters == date_filters(["Market Wire"], "2024-06-01")
    other = NewsbotRetriever.from_data_dir(data, filters=Filters(sources=("Culture Weekly",)))
    assert {n.node.metadata["source"] for n in other.retrieve(question)} == {"Culture Weekly"}


def test_bad_input_is_a_one_line_newsbot_error(corpus_cli: tuple[Any, Path]) -> None:
    _, data = corpus_cli
    with pytest.raises(NewsbotError, match="not a date"):
        NewsbotRetriever.from_data_dir(data, since="last tuesdayish")
    with pytest.raises(NewsbotError, match="at least 1"):
        NewsbotRetriever.from_data_dir(data, top_k=0)
    with pytest.raises(NewsbotError, match="empty"):
        NewsbotRetriever.from_data_dir(data).retrieve("  \u200b ")


def test_node_metadata_round_trips(fast_app: Any) -> None:
    index = fast_app.index
    index.ingest(index.load([FIXTURES / "articles.jsonl", SAMPLE]))
    articles = {a.id: a for a in index.load([FIXTURES / "articles.jsonl", SAMPLE]) if isinstance(a, Article)}
    passages = index.search("why did the summits fail?", k=5)
    nodes = NewsbotRetriever.from_index(index, top_k=5).retrieve("why did the summits fail?")
    assert [n.node.node_id for n in nodes] == [p.chunk_id for p in passages]
    for p, scored in zip(passages, nodes, strict=True):
        node, md = scored.node, scored.node.metadata
        article = articles[p.article_id]
        assert node.get_content() == p.text and scored.score == p.score
        assert (md["article_id"], md["title"], md["source"], md["url"], md["published_at"], md["chunk_id"]) == \
            (article.id, article.title, article.source, article.url, article.published_at, p.chunk_id)
        assert node.relationships[NodeRelationship.SOURCE].node_id == article.id
        assert article.body[node.start_char_idx:node.end_char_idx].split() == p.text.split()
        spans = [(s["start"], s["end"]) for s in md["sentences"]]
        assert [p.text[a:b] for a, b in spans] == [s.text for s in p.sentences]
        assert [s["quotable"] for s in md["sentences"]] == [s.quotable for s in p.sentences]
        assert to_passage(scored) == p
        assert to_passage(to_node(p)) == p
        # an LLM is shown the citation fields, not offsets, hashes or the sentence list
        shown = node.get_metadata_str(mode=MetadataMode.LLM)
        assert article.title in shown and "sentences" not in shown and "content_hash" not in shown


def test_retriever_query_engine_answers_from_our_nodes(fast_app: Any) -> None:
    index = fast_app.index
    index.ingest(index.load([FIXTURES / "articles.jsonl", SAMPLE]))
    retriever = NewsbotRetriever.from_index(index, top_k=3)
    llm = ScriptedLLM("Revenue grew 34 percent.")
    engine = RetrieverQueryEngine.from_args(retriever, llm=llm)
    response = engine.query("How much did Harbor Tech revenue grow?")
    ours = retriever.retrieve("How much did Harbor Tech revenue grow?")
    assert response.response == "Revenue grew 34 percent."
    assert [n.node.node_id for n in response.source_nodes] == [n.node.node_id for n in ours]
    assert len(llm.prompts) == 1
    _contains_in_order(llm.prompts[0], [n.node.get_content() for n in ours])
    assert "Harbor Tech reports record quarterly revenue" in llm.prompts[0]  # the title, via LLM metadata


def test_citation_query_engine_numbers_our_nodes(fast_app: Any) -> None:
    index = fast_app.index
    index.ingest(index.load([FIXTURES / "articles.jsonl", SAMPLE]))
    retriever = NewsbotRetriever.from_index(index, top_k=2)
    llm = ScriptedLLM("The valley imposed restrictions because reservoirs are low [1].")
    engine = CitationQueryEngine(retriever, llm=llm, citation_chunk_size=1024)
    response = engine.query("Why were water restrictions imposed in the valley?")
    assert response.response == "The valley imposed restrictions because reservoirs are low [1]."
    first = response.source_nodes[0]
    assert first.node.get_content().startswith("Source 1:")
    assert first.node.metadata["title"] == "Drought forces water restrictions across the valley"
    assert "Source 1:" in llm.prompts[0] and "reservoir" in llm.prompts[0].lower()


async def test_async_retrieve_runs_off_the_loop(fast_app: Any) -> None:
    index = fast_app.index
    index.ingest(index.load([FIXTURES / "articles.jsonl"]))
    retriever = NewsbotRetriever.from_index(index, top_k=2)
    nodes = await retriever.aretrieve("museum textile loom")
    assert nodes[0].node.metadata["source"] == "Culture Weekly"


def _contains_in_order(text: str, parts: Sequence[str]) -> None:
    at = 0
    for part in parts:
        found = text.find(part, at)
        assert found >= 0, part[:60]
        at = found + len(part)
