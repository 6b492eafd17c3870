"""``newsbot mcp``: an MCP client from the SDK talks to the real command over stdio (the bundled model), and to the
same server in-process (hash embedder) for the details: validation, shapes, and blocking work off the loop."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from mcp import StdioServerParameters
from mcp.client import Client, ClientSession
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult

from bot.mcp_server import MAX_TOP_K, NewsTools, build_server
from tests.fakes import FIXTURES, SAMPLE, make_settings

SUMMIT_SENTENCE = "failed to attain Washington’s aim of halting the advance of Pyongyang’s nuclear weapons programmes"
TOOLS = {"search_news", "ask_news", "list_sources"}


def _text(result: CallToolResult) -> str:
    assert len(result.content) == 1 and result.content[0].type == "text"
    return result.content[0].text  # type: ignore[union-attr]


def _error(result: CallToolResult) -> str:
    assert result.is_error, _text(result)
    text = _text(result)
    assert "\n" not in text and "Traceback" not in text
    return text


async def test_stdio_round_trip_with_the_real_command(cli_env: dict[str, str], tmp_path: Path,
                                                      real_embedder: Any) -> None:
    from bot.wiring import Services

    data = Path(cli_env["NEWSBOT_DATA_DIR"])
    app = Services(make_settings(data), embedder=real_embedder)
    app.index.ingest(app.index.load([FIXTURES / "articles.jsonl", SAMPLE]))
    expected = app.answerer.retrieve("Harbor Tech revenue", top_k=3)
    params = StdioServerParameters(command=sys.executable, args=["-m", "bot", "--data-dir", str(data), "mcp"],
                                   env=cli_env, cwd=str(Path(__file__).resolve().parents[1]))
    with open(tmp_path / "server-stderr.txt", "w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            listed = (await session.list_tools()).tools
            assert {t.name for t in listed} == TOOLS
            assert all(t.annotations and t.annotations.read_only_hint for t in listed)

            sources = await session.call_tool("list_sources", {})
            assert not sources.is_error and sources.structured_content == json.loads(_text(sources))
            assert sources.structured_content["articles"] == 7
            assert "Market Wire" in sources.structured_content["outlets"]

            found = await session.call_tool("search_news", {"question": "Harbor Tech revenue", "top_k": 3})
            passages = found.structured_content["passages"]  # type: ignore[index]
            assert [p["chunk_id"] for p in passages] == [p.chunk_id for p in expected]
            first = passages[0]
            assert (first["n"], first["title"], first["source"], first["date"]) == \
                (1, "Harbor Tech reports record quarterly revenue", "Market Wire", "2024-04-18")
            assert first["url"] == "https://marketwire.example/harbor-q1" and "34 percent" in first["text"]

            answered = await session.call_tool("ask_news", {"question": "why did the summits fail?"})
            assert not answered.is_error
            text, data = _text(answered), answered.structured_content
            assert text.splitlines()[0].endswith("[1]") and SUMMIT_SENTENCE in text and "Sources:" in text
            assert data["abstained"] is False and SUMMIT_SENTENCE in data["citations"][0]["quote"]  # type: ignore[index]
            assert data["rendered"] == text and {"answer", "citations", "retrieved"} <= data.keys()  # type: ignore[union-attr]

            empty = await session.call_tool("ask_news", {"question": "  "})
            assert "question is empty" in _error(empty)
            flood = await session.call_tool("search_news", {"question": "revenue", "top_k": 10_000})
            assert _error(flood) == f"top_k: 10000 is outside 1..{MAX_TOP_K}"
    assert "Traceback" not in (tmp_path / "server-stderr.txt").read_text()


@pytest.fixture
def tools(fast_app: Any) -> NewsTools:
    fast_app.index.ingest(fast_app.index.load([FIXTURES / "articles.jsonl", SAMPLE]))
    return NewsTools(fast_app.answerer, fast_app.index)


async def test_bad_input_gets_one_clean_line(tools: NewsTools) -> None:
    async with Client(build_server(tools)) as client:
        cases = {("search_news", "top_k", 0): "top_k: 0 is outside 1..50",
                 ("search_news", "since", "the other day"): "since: “the other day” is not a date (try 2023-10-31)",
                 ("ask_news", "until", "2024-13-45"): "until: “2024-13-45” is not a date (try 2023-10-31)",
                 ("ask_news", "source", "Reuters"): "source: “Reuters” is not an outlet of this index "
                                                    "(list_sources names them)"}
        for (tool, name, value), message in cases.items():
            assert _error(await client.call_tool(tool, {"question": "revenue", name: value})) == message
        long = "why " * 600
        assert "the limit is 2,000" in _error(await client.call_tool("search_news", {"question": long}))


async def test_filters_and_outlet_names_as_users_type_them(tools: NewsTools) -> None:
    async with Client(build_server(tools)) as client:
        one = await client.call_tool("search_news", {"question": "Harbor Tech", "source": "market wire",
                                                      "since": "2024-06-01"})
        passages = one.structured_content["passages"]  # type: ignore[index]
        assert passages and {(p["source"], p["date"] >= "2024-06-01") for p in passages} == {("Market Wire", True)}
        both = await client.call_tool("search_news", {"question": "Harbor Tech",
                                                       "source": ["Market Wire", "Culture Weekly"]})
        assert {p["source"] for p in both.structured_content["passages"]} <= {"Market Wire", "Culture Weekly"}  # type: ignore[index]


async def test_abstention_is_an_answer_not_an_error(tools: NewsTools) -> None:
    async with Client(build_server(tools)) as client:
        result = await client.call_tool("ask_news", {"question": "Who painted the ceiling of the Sistine Chapel?"})
        assert not result.is_error
        assert result.structured_content["abstained"] is True  # type: ignore[index]
        assert _text(result).startswith(result.structured_content["answer"])  # type: ignore[index]


async def test_blocking_work_runs_off_the_event_loop(tools: NewsTools) -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []
    search = tools.answerer.search.search

    def recording(*args: Any, **kwargs: Any) -> Any:
        seen.append(threading.get_ident())
        return search(*args, **kwargs)

    tools.answerer.search.search = recording  # type: ignore[method-assign]
    async with Client(build_server(tools)) as client:
        await client.call_tool("search_news", {"question": "revenue"})
        await client.call_tool("ask_news", {"question": "revenue"})
    assert len(seen) == 2 and loop_thread not in seen


async def test_an_unexpected_failure_is_logged_and_the_caller_gets_one_line(
        tools: NewsTools, caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> Any:
        raise KeyError("a secret detail")

    tools.index.stats = broken  # type: ignore[method-assign]
    async with Client(build_server(tools)) as client:
        message = _error(await client.call_tool("list_sources", {}))
    assert message == "internal error (KeyError); details in newsbot's log"
    assert any(r.exc_info and "a secret detail" in str(r.exc_info[1]) for r in caplog.records)


def test_cli_mcp_options(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = cli("mcp", "--port", "9000")
    assert code == 1 and err.strip() == "newsbot: --port applies to --http; stdio needs no port"
    code, _, err = cli("mcp", "--http", "--port", "70000")
    assert code == 1 and "--port: 70000 is not a port" in err
    monkeypatch.delitem(sys.modules, "bot.mcp_server")
    monkeypatch.setitem(sys.modules, "mcp.server.mcpserver", None)  # as if the extra were not installed
    code, _, err = cli("mcp")
    assert code == 1 and err.strip() == "newsbot: newsbot mcp needs the MCP SDK: pip install 'newsbot[mcp]'"
