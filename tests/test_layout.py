"""Architecture rules: imports flow bot → index and bot → prompts; heavy libraries stay in one module each."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


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
                          "sentence_transformers", "bm25s")}
    assert owners["chromadb"] == ["index/store.py"]
    assert owners["onnxruntime"] == ["index/embed.py"]  # runs the graph (and quantises it)
    assert owners["onnx"] == owners["safetensors"] == ["index/bert_onnx.py"]  # builds the graph from the weights
    assert owners["torch"] == owners["transformers"] == owners["sentence_transformers"] == []  # not installed
    assert owners["bm25s"] == ["index/lexical.py"]
    assert len(owners["discord"]) <= 1
