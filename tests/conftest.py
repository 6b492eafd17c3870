"""Shared fixtures: a deterministic embedder for fast unit tests, the real model for end-to-end ones."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import (
    FIXTURES,
    ROOT,
    SAMPLE,
    SECRET_VARS,
    HashEmbedder,
    NetworkBlocked,
    in_process_cli,
    make_settings,
)

__all__ = ["FIXTURES", "ROOT", "SAMPLE", "SECRET_VARS", "HashEmbedder", "make_settings"]


def _loopback(host: object) -> bool:
    if host is None or host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return str(host).endswith(".localhost")


def _literal(host: object) -> bool:
    try:
        ipaddress.ip_address(str(host).split("%")[0])
        return True
    except ValueError:
        return False


@pytest.fixture(autouse=True, scope="session")
def _loopback_only() -> Iterator[None]:
    """No test reaches the internet: sockets connect only to loopback (or Unix sockets), and only loopback names
    resolve. Subprocesses are the product's own commands, started with loopback addresses only."""
    connect, connect_ex, getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family != getattr(socket, "AF_UNIX", None) and not _loopback(address[0]):
            raise NetworkBlocked(f"tests may only connect to loopback, not {address[0]!r}")

    def guarded_connect(self: socket.socket, address: Any) -> None:
        check(self, address)
        return connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: Any) -> int:
        check(self, address)
        return connect_ex(self, address)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if not (_loopback(name) or _literal(name)):  # an address literal resolves without asking anyone
            raise NetworkBlocked(f"tests may only resolve loopback names, not {host!r}")
        return getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = guarded_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = guarded_getaddrinfo  # type: ignore[assignment]
    try:
        yield
    finally:
        socket.socket.connect, socket.socket.connect_ex = connect, connect_ex  # type: ignore[method-assign]
        socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never read a developer's .env or tokens: run from an empty directory with a scrubbed environment."""
    for name in list(os.environ):
        if name.startswith("NEWSBOT_") or name in SECRET_VARS:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


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


@pytest.fixture
def fast_app(tmp_path: Path, hash_embedder: HashEmbedder):  # type: ignore[no-untyped-def]
    """An App over a real Chroma in a temp dir, with the hash embedder."""
    from bot.wiring import Services

    return Services(make_settings(tmp_path / "data"), embedder=hash_embedder)


@pytest.fixture
def real_app(tmp_path: Path, real_embedder):  # type: ignore[no-untyped-def]
    from bot.wiring import Services

    return Services(make_settings(tmp_path / "data"), embedder=real_embedder)


@pytest.fixture
def cli_env(tmp_path: Path, model_cache: Path) -> dict[str, str]:
    """Environment for running the real ``newsbot`` command in a subprocess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSBOT_") and k not in SECRET_VARS}
    env["NEWSBOT_DATA_DIR"] = str(tmp_path / "cli-data")
    env["NEWSBOT_MODEL_CACHE_DIR"] = str(model_cache)
    return env


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    """The CLI in-process over a temp data dir, with the hash embedder behind ``index.embed.MiniLM``."""
    import index.embed

    monkeypatch.setattr(index.embed, "MiniLM", lambda *a, **k: HashEmbedder())
    monkeypatch.setenv("NEWSBOT_DATA_DIR", str(tmp_path / "cli-data"))
    return in_process_cli(monkeypatch, capsys)
