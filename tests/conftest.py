"""Shared fixtures: a deterministic embedder for fast unit tests, the real model for end-to-end ones."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE = ROOT / "data" / "trump-kim-letter.txt"
SECRET_VARS = ("DISCORD_TOKEN", "NEWSBOT_LLM_API_KEY", "OPENAI_API_KEY")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never read a developer's .env or tokens: run from an empty directory with a scrubbed environment."""
    for name in list(os.environ):
        if name.startswith("NEWSBOT_") or name in SECRET_VARS:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


class HashEmbedder:
    """A deterministic bag-of-words embedding that really ranks (shared words → higher cosine); test seam only."""

    name = "test/hash-bow"
    dim = 256

    def tokenize(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        ids, offsets = [], []
        for m in re.finditer(r"\w+|[^\w\s]", text):
            ids.append(int(hashlib.md5(m.group().lower().encode()).hexdigest()[:6], 16) % 30000 + 1000)
            offsets.append((m.start(), m.end()))
        return ids, offsets

    def embed_ids(self, batch: Sequence[Sequence[int]]) -> np.ndarray:
        out = np.zeros((len(batch), self.dim), dtype=np.float32)
        for i, ids in enumerate(batch):
            for t in ids:
                out[i, t % self.dim] += 1.0
            norm = np.linalg.norm(out[i])
            if norm:
                out[i] /= norm
        return out

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_ids([self.tokenize(t)[0] for t in texts])


@pytest.fixture
def hash_embedder() -> HashEmbedder:
    return HashEmbedder()


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ONNX export of the bundled model for the whole test session."""
    from index.embed import onnx_path

    cache = tmp_path_factory.mktemp("model-cache")
    onnx_path(cache)
    return cache


@pytest.fixture(scope="session")
def real_embedder(model_cache: Path):  # type: ignore[no-untyped-def]
    from index.embed import MiniLM

    return MiniLM(model_cache)


def make_settings(data_dir: Path, **kw: object):  # type: ignore[no-untyped-def]
    from bot.settings import Settings

    return Settings(_env_file=None, data_dir=data_dir, **kw)  # type: ignore[call-arg]


@pytest.fixture
def fast_app(tmp_path: Path, hash_embedder: HashEmbedder):  # type: ignore[no-untyped-def]
    """An App over a real Chroma in a temp dir, with the hash embedder."""
    from bot.app import App

    return App(make_settings(tmp_path / "data"), embedder=hash_embedder)


@pytest.fixture
def real_app(tmp_path: Path, real_embedder):  # type: ignore[no-untyped-def]
    from bot.app import App

    return App(make_settings(tmp_path / "data"), embedder=real_embedder)


@pytest.fixture
def cli_env(tmp_path: Path, model_cache: Path) -> dict[str, str]:
    """Environment for running the real ``newsbot`` command in a subprocess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSBOT_") and k not in SECRET_VARS}
    env["NEWSBOT_DATA_DIR"] = str(tmp_path / "cli-data")
    env["NEWSBOT_MODEL_CACHE_DIR"] = str(model_cache)
    return env


def copy_sample(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(SAMPLE, dest / SAMPLE.name))


def in_process_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """``run(*args, stdin="")`` calls ``bot.cli.main`` in this process and returns (exit code, stdout, stderr);
    the log handlers main() adds are removed again after each call."""
    from bot.cli import main

    def run(*args: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        root = logging.getLogger()
        before = list(root.handlers)
        try:
            code = main(list(args))
        finally:
            for h in root.handlers[:]:
                if h not in before:
                    root.removeHandler(h)
                    h.close()
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    """The CLI in-process over a temp data dir, with the hash embedder behind ``index.embed.MiniLM``."""
    import index.embed

    monkeypatch.setattr(index.embed, "MiniLM", lambda *a, **k: HashEmbedder())
    monkeypatch.setenv("NEWSBOT_DATA_DIR", str(tmp_path / "cli-data"))
    return in_process_cli(monkeypatch, capsys)
