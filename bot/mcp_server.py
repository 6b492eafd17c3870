"""``newsbot mcp``: the index and the answerer as read-only tools for AI assistants over the Model Context Protocol.

A thin shell like the CLI and Discord: ``NewsTools`` turns tool arguments into ``Answerer``/``Index`` calls and the
results into JSON; ``build_server`` publishes them with the MCP SDK's ``MCPServer``, running every call in a worker
thread so embedding and search never block the event loop. The only module that imports ``mcp``."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from bot import render
from bot.answering import Answerer
from bot.types import Citation
from index import Filters, Index, date_filters
from index.errors import NewsbotError

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_TOP_K = 50  # passages one search_news/ask_news call may ask for: more would flood an assistant's context
LOOPBACK = "127.0.0.1"  # --http listens here only: the tools have no authentication
DEFAULT_PORT = 8765
INSTRUCTIONS = ("Search and question a local index of news articles. search_news returns ranked passages with "
                "their title, outlet, date and url; ask_news returns newsbot's cited answer (or its abstention when "
                "the articles do not answer); list_sources tells which outlets and dates the index covers.")
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)

Question = Annotated[str, Field(description="The question, in plain language.")]
TopK = Annotated[int | None, Field(description=f"How many passages to retrieve, 1 to {MAX_TOP_K} (default: the "
                                               "server's NEWSBOT_TOP_K).",
                                   json_schema_extra={"minimum": 1, "maximum": MAX_TOP_K})]
Source = Annotated[str | list[str] | None, Field(description="Only these outlets (one name or a list; see "
                                                             "list_sources).")]
Since = Annotated[str | None, Field(description="Only articles published on or after this date, e.g. 2023-10-31.")]
Until = Annotated[str | None, Field(description="Only articles published on or before this date.")]


class NewsTools:
    """The tools as blocking calls: arguments in, JSON-able dicts out, NewsbotError (one line) for bad input."""

    def __init__(self, answerer: Answerer, index: Index, *, max_top_k: int = MAX_TOP_K) -> None:
        self.answerer = answerer
        self.index = index
        self.max_top_k = max_top_k

    def search(self, question: str, top_k: int | None = None, source: str | list[str] | None = None,
               since: str | None = None, until: str | None = None) -> dict[str, Any]:
        """The passages ``newsbot ask`` would answer from, best first, each with its citation fields and text."""
        k, filters = self._check(top_k, source, since, until)
        passages = self.answerer.retrieve(question, top_k=k, filters=filters)
        items = []
        for n, p in enumerate(passages, 1):
            cited = Citation.of(n, p, ()).as_dict()
            del cited["quote"], cited["quotes"]
            items.append({**cited, "chunk_id": p.chunk_id, "date": p.published_at[:10], "text": p.text})
        return {"question": question, "passages": items}

    def ask(self, question: str, top_k: int | None = None, source: str | list[str] | None = None,
            since: str | None = None, until: str | None = None) -> tuple[dict[str, Any], str]:
        """newsbot's cited answer (abstention included) as ``ask --json`` gives it, and as plain text."""
        k, filters = self._check(top_k, source, since, until)
        answer = self.answerer.ask(question, top_k=k, filters=filters)
        text = render.plain(answer)
        return {**answer.as_dict(), "rendered": text}, text

    def sources(self) -> dict[str, Any]:
        """The outlets and publication dates the index covers, and how many articles and chunks it holds."""
        s = self.index.stats()
        return {"outlets": list(s.sources), "first_published": s.first_published, "last_published": s.last_published,
                "articles": s.articles, "chunks": s.chunks, "embedding_model": s.embedding_model}

    def _check(self, top_k: int | None, source: str | list[str] | None, since: str | None,
               until: str | None) -> tuple[int | None, Filters]:
        if top_k is not None and not 1 <= top_k <= self.max_top_k:
            raise NewsbotError(f"top_k: {top_k} is outside 1..{self.max_top_k}")
        if self.index.size() == 0:
            raise NewsbotError(f"no articles are indexed in {self.index.location}: run `newsbot ingest PATH` first")
        wanted = [source] if isinstance(source, str) else list(source or [])
        known = {o.casefold(): o for o in self.index.outlets()}
        outlets = []
        for name in (w.strip() for w in wanted if w.strip()):
            if name.casefold() not in known:
                raise NewsbotError(f"source: “{name[:60]}” is not an outlet of this index (list_sources names them)")
            outlets.append(known[name.casefold()])
        return top_k, date_filters(outlets, since, until)


def build_server(tools: NewsTools) -> MCPServer:
    """An MCP server publishing ``tools`` as search_news, ask_news and list_sources (all read-only)."""
    server: MCPServer = MCPServer("newsbot", instructions=INSTRUCTIONS, version=_version())

    @server.tool(annotations=READ_ONLY, structured_output=False)
    async def search_news(question: Question, top_k: TopK = None, source: Source = None, since: Since = None,
                          until: Until = None) -> CallToolResult:
        """Search the news index: the best passages for a question, each with title, outlet, date, url, chunk id
        and text, ranked as newsbot ranks them for its answers."""
        return await _answer(lambda: _json(tools.search(question, top_k, source, since, until)))

    @server.tool(annotations=READ_ONLY, structured_output=False)
    async def ask_news(question: Question, top_k: TopK = None, source: Source = None, since: Since = None,
                       until: Until = None) -> CallToolResult:
        """Answer a question from the news index: every sentence cites its article [n]; when the articles do not
        answer, newsbot abstains and lists the closest ones. The text is the answer as newsbot prints it; the
        structured content is the documented `newsbot ask --json` object."""

        def call() -> CallToolResult:
            data, text = tools.ask(question, top_k, source, since, until)
            return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)

        return await _answer(call)

    @server.tool(annotations=READ_ONLY, structured_output=False)
    async def list_sources() -> CallToolResult:
        """What the news index covers: its outlets, first and last publication dates, article and chunk counts."""
        return await _answer(lambda: _json(tools.sources()))

    return server


async def _answer(call: Callable[[], CallToolResult]) -> CallToolResult:
    """Run a tool off the event loop; bad input and known failures become a one-line error result."""
    try:
        return await asyncio.to_thread(call)
    except NewsbotError as err:
        return _error(str(err))
    except Exception as err:  # the caller gets one line; the log gets the traceback
        log.exception("MCP tool failed")
        return _error(f"internal error ({type(err).__name__}); details in newsbot's log")


def _json(data: dict[str, Any]) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=json.dumps(data, ensure_ascii=False))],
                          structured_content=data)


def _error(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("newsbot")
    except PackageNotFoundError:
        return ""


def serve(answerer: Answerer, index: Index, *, http: bool = False, port: int = DEFAULT_PORT) -> int:
    """Serve the tools until the client disconnects (stdio) or the process is interrupted (HTTP on loopback)."""
    server = build_server(NewsTools(answerer, index))
    if http:
        log.warning("MCP over streamable HTTP at http://%s:%d/mcp", LOOPBACK, port)
        server.run("streamable-http", host=LOOPBACK, port=port)
    else:
        server.run("stdio")
    return 0
