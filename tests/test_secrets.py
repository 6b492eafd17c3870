"""Secrets never leave: every command runs with a fake Discord token and LLM API key set, and neither appears in
stdout, stderr, error messages, the log file or anything else written under the data dir."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import in_process_cli

FIXTURE = Path(__file__).parent / "fixtures" / "articles.jsonl"
SECRETS = {"DISCORD_TOKEN": "MTIzNDU2Nzg5.fake-discord-token.SECRET-d1sc0rd",
           "NEWSBOT_LLM_API_KEY": "sk-fake-llm-key-SECRET-11m",
           "OPENAI_API_KEY": "sk-fake-openai-key-SECRET-0pen"}
FOUND: list[str] = []


def closed_port() -> int:
    """A localhost port nobody listens on: the LLM 'server' refuses at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def leaks(text: str | bytes, where: str) -> list[str]:
    data = text.encode("utf-8", "replace") if isinstance(text, str) else text
    found = [f"{name} in {where}" for name, value in SECRETS.items() if value.encode() in data]
    FOUND.extend(found)
    return found


@pytest.fixture
def secret_env(cli_env: dict[str, str]) -> dict[str, str]:
    return {**cli_env, **SECRETS, "NEWSBOT_LLM_PROVIDER": "openai-compatible", "NEWSBOT_LLM_MODEL": "fake-model",
            "NEWSBOT_LLM_BASE_URL": f"http://127.0.0.1:{closed_port()}/v1", "NEWSBOT_LLM_TIMEOUT_S": "5",
            "NEWSBOT_LOG_LEVEL": "DEBUG"}


@pytest.fixture
def run_main(secret_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """``bot.cli.main`` in-process with the secrets in the environment; returns (exit code, stdout, stderr)."""
    for name, value in secret_env.items():
        monkeypatch.setenv(name, value)
    run = in_process_cli(monkeypatch, capsys)
    return lambda args, stdin="": run(*args, stdin=stdin)


def test_no_command_shows_or_logs_a_secret(run_main: Any, secret_env: dict[str, str], tmp_path: Path) -> None:
    questions = tmp_path / "questions.json"
    questions.write_text(json.dumps([{"query": "How did the city council vote on the bike lanes?", "answer": "7-2",
                                      "question_type": "inference_query", "evidence_list": []},
                                     {"query": "What were the drought restrictions?", "answer": "",
                                      "question_type": "inference_query", "evidence_list": []}]))
    missing = tmp_path / "nope.json"
    runs: list[tuple[str, list[str], str, int]] = [  # name, arguments, stdin, expected exit code
        ("ingest", ["-v", "ingest", str(FIXTURE)], "", 0),
        ("ingest missing", ["ingest", str(missing)], "", 1),
        ("ask", ["-v", "ask", "How did the city council vote on the bike lanes?"], "", 0),
        ("ask --json", ["ask", "--json", "How did the city council vote on the bike lanes?"], "", 0),
        ("ask too long", ["ask", "x" * 3000], "", 1),
        ("chat", ["-v", "chat"], "How did the city council vote?\nand when does work start?\n/sources\n/quit\n", 0),
        ("stats", ["stats"], "", 0), ("stats --json", ["stats", "--json"], "", 0),
        ("eval", ["eval", "--questions", str(questions), "--limit", "2"], "", 0),
        ("forget", ["forget", "https://gazette.example/bike-lanes"], "", 0),
        ("forget missing", ["forget", "no-such-article"], "", 1),
    ]
    for name, args, stdin, expected in runs:
        code, out, err = run_main(args, stdin)
        assert code == expected, (name, err)
        assert "Traceback" not in err, (name, err)
        assert not leaks(out, f"stdout of {name}") and not leaks(err, f"stderr of {name}")
        if name == "ask --json":
            notice = json.loads(out)["notice"]
            assert "extractive" in notice  # the LLM call really was attempted (and failed) with the key set
    data_dir = Path(secret_env["NEWSBOT_DATA_DIR"])
    written = [p for p in data_dir.rglob("*") if p.is_file()]
    assert any(p.name == "newsbot.log" for p in written)
    for path in written:
        assert not leaks(path.read_bytes(), str(path.relative_to(data_dir)))
    assert FOUND == []


def test_discord_with_a_fake_token_fails_fast_offline_without_showing_it(
        secret_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    """``newsbot discord`` in-process with every address but 127.0.0.1 unresolvable, as on an offline host."""
    import time

    from bot.cli import main

    real_getaddrinfo = socket.getaddrinfo
    attempts: list[str] = []

    def offline(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("127.0.0.1", "localhost", "::1"):
            attempts.append(str(host))
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (offline test)")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", offline)
    for name, value in secret_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("NEWSBOT_LOG_LEVEL")  # the default console level: what a user sees
    root = logging.getLogger()
    before = list(root.handlers)
    started = time.monotonic()
    try:
        with caplog.at_level(logging.DEBUG):
            code = main(["discord"])
    finally:
        for h in root.handlers[:]:
            if h not in before:
                root.removeHandler(h)
                h.close()
    took = time.monotonic() - started
    out, err = capsys.readouterr()
    assert code == 1 and took < 30, took
    assert "discord.com" in attempts  # it really tried to log in, and was refused at once
    assert err.strip().splitlines()[-1].startswith("newsbot: could not connect to Discord")
    assert "Traceback" not in err
    assert not leaks(out + err, "discord stdout/stderr")
    assert not leaks(caplog.text + "\n".join(str(r.args) for r in caplog.records), "discord log records")
    log = Path(secret_env["NEWSBOT_DATA_DIR"]) / "newsbot.log"
    assert not leaks(log.read_bytes(), "newsbot.log after discord")
