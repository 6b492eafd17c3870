"""Architecture rules: imports flow bot → index and bot → prompts; heavy libraries stay in one module each."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _full_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _imports(path: Path) -> set[str]:
    return {n.split(".")[0] for n in _full_imports(path)}


def _modules(package: str) -> dict[str, set[str]]:
    return {str(p.relative_to(ROOT)): _imports(p) for p in (ROOT / package).rglob("*.py")}


def test_index_never_imports_bot_and_prompts_imports_neither() -> None:
    for name, imports in _modules("index").items():
        assert "bot" not in imports and "prompts" not in imports, name
    for name, imports in _modules("prompts").items():
        assert "bot" not in imports and "index" not in imports, name


def test_one_module_per_heavy_dependency() -> None:
    every = {**_modules("index"), **_modules("bot"), **_modules("prompts")}
    owners = {lib: sorted(n for n, imps in every.items() if lib in imps)
              for lib in ("chromadb", "discord", "onnxruntime", "onnx", "safetensors", "torch", "transformers",
                          "sentence_transformers", "bm25s", "mcp", "mcp_types", "tantivy")}
    assert owners["chromadb"] == ["index/store.py"]
    assert owners["onnxruntime"] == ["index/embed.py"]  # runs the graph (and quantises it)
    assert owners["onnx"] == owners["safetensors"] == ["index/bert_onnx.py"]  # builds the graph from the weights
    assert owners["torch"] == owners["transformers"] == owners["sentence_transformers"] == []  # not installed
    assert owners["bm25s"] == []  # BM25 is the lexical engine's
    assert owners["tantivy"] == ["index/lexical_engine.py"]  # the incremental lexical engine
    assert owners["discord"] == ["bot/discord_bot.py"]
    assert owners["mcp"] == ["bot/mcp_server.py"] and owners["mcp_types"] == []


def test_llama_index_stays_in_its_two_shells() -> None:
    """bot/llm.py wraps llama-index's LLM clients; bot/llamaindex_retriever.py alone speaks its retriever types."""
    every = {**_modules("index"), **_modules("bot"), **_modules("prompts")}
    assert sorted(n for n, imps in every.items() if "llama_index" in imps) == \
        ["bot/llamaindex_retriever.py", "bot/llm.py"]
    llm_imports = {n for n in _full_imports(ROOT / "bot" / "llm.py") if n.startswith("llama_index")}
    assert all(n == "llama_index.core.llms" or n.startswith("llama_index.llms.") for n in llm_imports), llm_imports


def test_bot_uses_only_the_index_surface() -> None:
    """bot/ talks to index/ through ``index`` (the Index facade and its functions), its DTOs and its error type."""
    allowed = {"index", "index.types", "index.errors"}
    for path in (ROOT / "bot").rglob("*.py"):
        reached = {n for n in _full_imports(path) if n == "index" or n.startswith("index.")}
        assert reached <= allowed, f"{path.relative_to(ROOT)} imports {sorted(reached - allowed)}"


def test_the_suite_cannot_reach_the_internet() -> None:
    import socket

    import pytest

    from tests.fakes import NetworkBlocked

    with pytest.raises(NetworkBlocked):
        socket.create_connection(("192.0.2.1", 80), timeout=1)  # TEST-NET-1: would hang or fail, never connect
    with pytest.raises(NetworkBlocked):
        socket.getaddrinfo("example.com", 443)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    with socket.create_connection(server.getsockname(), timeout=1):  # loopback stays open
        pass
    server.close()
