"""Server mode against a real ``chroma run`` started by this module on 127.0.0.1 (offline, a temp dir)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from index.types import Article
from tests.fakes import FIXTURES, ROOT, SAMPLE, SECRET_VARS, make_settings

NEWSBOT = [sys.executable, "-m", "bot"]
SERVER_START_TIMEOUT = 60.0
PROPAGATION_LIMIT = 10.0  # an article ingested elsewhere must be answerable by a running process within this


@dataclass(frozen=True)
class ChromaServer:
    host: str
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _chroma_exe() -> str:
    beside = Path(sys.executable).parent / "chroma"
    found = str(beside) if beside.exists() else shutil.which("chroma")
    if not found:
        pytest.fail("the `chroma` command is missing: run `make install` (it comes with the chromadb package)")
    return found


@contextlib.contextmanager
def running_chroma(root: Path, port: int) -> Iterator[ChromaServer]:
    """``chroma run`` on 127.0.0.1:port with its data in ``root/db``, up (heartbeat answered) until exit."""
    log = root / f"server-{port}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSBOT_") and k not in SECRET_VARS}
    env["ANONYMIZED_TELEMETRY"] = "False"
    with open(log, "ab") as out:
        proc = subprocess.Popen([_chroma_exe(), "run", "--path", str(root / "db"), "--host", "127.0.0.1",
                                 "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"chroma run exited {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"no heartbeat within {SERVER_START_TIMEOUT:g} s: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield ChromaServer("127.0.0.1", port, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    """A real Chroma server for the whole session; waits for its heartbeat, stops it at the end."""
    with running_chroma(tmp_path_factory.mktemp("chroma-server"), _free_port()) as server:
        yield server


def _collection() -> str:
    return "t" + uuid.uuid4().hex[:12]  # each test gets its own collection on the shared server


@pytest.fixture
def server_env(cli_env: dict[str, str], chroma_server: ChromaServer) -> dict[str, str]:
    """Environment for ``newsbot`` subprocesses that talk to the test server."""
    return {**cli_env, "NEWSBOT_CHROMA_HOST": chroma_server.host, "NEWSBOT_CHROMA_PORT": str(chroma_server.port),
            "NEWSBOT_COLLECTION": _collection(), "PYTHONPATH": str(ROOT)}


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([*NEWSBOT, *args], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"newsbot {' '.join(args)} exited {proc.returncode}: {proc.stderr}"
    return proc


# -- in-process: every command of the App against the server ---------------------------------------------
def test_app_ingest_ask_forget_stats_against_server(tmp_path: Path, hash_embedder, chroma_server) -> None:
    from bot.wiring import Services

    data = tmp_path / "data"
    app = Services(make_settings(data, chroma_host=chroma_server.host, chroma_port=chroma_server.port,
                            collection=_collection()), embedder=hash_embedder)
    report = app.index.ingest(app.index.load([FIXTURES / "articles.jsonl"]))
    assert report.new == 6 and report.failed == 0

    stats = app.index.stats().as_dict()
    assert stats["chroma"] == {"mode": "server", "location": chroma_server.url}
    assert stats["articles"] == 6 and stats["chunks"] == report.chunks_total > 0
    assert not (data / "chroma").exists()  # nothing embedded: the rows live on the server
    host_dir = app.index.layout.host_dir
    assert (host_dir / "search" / "engine.json").exists() and host_dir != data
    assert stats["lexical"]["chunks"] == stats["chunks"]  # this host's engine followed the write
    assert not app.index.store.hybrid_search_available()  # a single-node server has no search API: tantivy answers
    # candidates' exact cosines come from their stored vectors; an id deleted meanwhile is left out
    store = app.index.store
    ids = sorted(app.index.follower.engine.chunk_ids())
    vectors = store.vectors(ids)
    vector = vectors[ids[0]]
    exact = {i: float(v @ vector) for i, v in vectors.items()}
    got = store.cosines(vector, ids)
    assert got.keys() == exact.keys() and all(abs(got[i] - exact[i]) < 1e-5 for i in ids)
    assert store.cosines(vector, [*ids, "gone:0"]).keys() == exact.keys()

    answer = app.answerer.ask("how many parking spaces will the bike lanes remove?")
    assert not answer.abstained
    assert answer.citations[0].url == "https://gazette.example/bike-lanes"
    assert any("140 parking spaces" in q for q in answer.citations[0].quotes)

    ids, removed = app.index.forget("https://gazette.example/bike-lanes")
    assert len(ids) == 1 and removed > 0
    assert app.index.stats().as_dict()["articles"] == 5
    after = app.answerer.ask("how many parking spaces will the bike lanes remove?")
    assert all(p.url != "https://gazette.example/bike-lanes" for p in after.passages)


def test_a_second_app_sees_the_first_apps_writes(tmp_path: Path, hash_embedder, chroma_server) -> None:
    """Two Apps with separate data dirs (two hosts, in effect) share one collection on the server."""
    from bot.wiring import Services

    kw = dict(chroma_host=chroma_server.host, chroma_port=chroma_server.port, collection=_collection(),
              index_refresh_seconds=0.0)
    writer = Services(make_settings(tmp_path / "writer", **kw), embedder=hash_embedder)
    reader = Services(make_settings(tmp_path / "reader", **kw), embedder=hash_embedder)
    writer.index.ingest(writer.index.load([FIXTURES / "articles.jsonl"]))
    assert reader.answerer.ask("water restrictions drought valley").citations[0].url == "https://gazette.example/drought"
    writer.index.forget("https://gazette.example/drought")
    assert all(p.url != "https://gazette.example/drought"
               for p in reader.answerer.ask("water restrictions drought valley").passages)


def test_chroma_auth_token_goes_in_a_header_and_nowhere_else(tmp_path: Path, hash_embedder, chroma_server) -> None:
    from bot.wiring import Services

    bearer = make_settings(tmp_path, chroma_auth_token="s3cret-token")
    assert bearer.chroma_headers() == {"Authorization": "Bearer s3cret-token"}
    plain = make_settings(tmp_path, chroma_auth_token="s3cret-token", chroma_auth_header="X-Chroma-Token")
    assert plain.chroma_headers() == {"X-Chroma-Token": "s3cret-token"}
    assert make_settings(tmp_path).chroma_headers() == {}
    app = Services(make_settings(tmp_path / "d", chroma_host=chroma_server.host, chroma_port=chroma_server.port,
                            chroma_auth_token="s3cret-token", collection=_collection()), embedder=hash_embedder)
    stats = json.dumps(app.index.stats().as_dict())  # the server ignores the header; stats never show the token
    assert "s3cret" not in stats and "s3cret" not in repr(app.settings)


def test_server_going_away_under_a_running_app(tmp_path: Path, hash_embedder) -> None:
    """A long-running process reports a lost server in one line and carries on once it is back."""
    from bot.wiring import Services
    from index.errors import NewsbotError

    port = _free_port()
    with running_chroma(tmp_path, port) as server:
        app = Services(make_settings(tmp_path / "data", chroma_host=server.host, chroma_port=port,
                                index_refresh_seconds=0.0), embedder=hash_embedder)
        app.index.ingest(app.index.load([FIXTURES / "articles.jsonl"]))
        assert app.answerer.ask("bike lanes parking").citations[0].url == "https://gazette.example/bike-lanes"
    with pytest.raises(NewsbotError, match=rf"^lost the Chroma server at 127.0.0.1:{port}: .*; is it running\?$"):
        app.answerer.ask("bike lanes parking")
    with running_chroma(tmp_path, port):  # same data, same port: the same App object works again
        assert app.answerer.ask("bike lanes parking").citations[0].url == "https://gazette.example/bike-lanes"


def test_unreachable_server_is_one_line_error(cli_env: dict[str, str]) -> None:
    env = {**cli_env, "NEWSBOT_CHROMA_HOST": "127.0.0.1", "NEWSBOT_CHROMA_PORT": str(_free_port())}
    proc = subprocess.run([*NEWSBOT, "stats"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.startswith("newsbot: cannot open the Chroma server at 127.0.0.1:")
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


# -- two processes: one ingests through the CLI, the other is already answering ------------------------------
BOT_SCRIPT = """
import json, sys
from bot.wiring import Services
from bot.settings import Settings

app = Services(Settings(_env_file=None))
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    a = app.answerer.ask(line.strip())
    print(json.dumps({"abstained": a.abstained, "cited": [c.url for c in a.citations],
                      "passages": [{"url": p.url, "dense": p.dense, "lexical": p.lexical} for p in a.passages]}),
          flush=True)
"""
SAMPLE_QUESTION = "why did the summits between Trump and Kim fail to halt Pyongyang's nuclear weapons programmes?"


class RunningBot:
    """A long-lived process holding one App, answering one question per stdin line with one JSON line."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", BOT_SCRIPT], env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert json.loads(self._line()) == {"ready": True}

    def _line(self) -> str:
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise AssertionError(f"bot process died: {self.proc.stderr.read()}")  # type: ignore[union-attr]
        return line

    def ask(self, question: str) -> dict:
        self.proc.stdin.write(question + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        return json.loads(self._line())

    def wait_for(self, question: str, ok, limit: float) -> tuple[dict, float]:  # type: ignore[no-untyped-def]
        started = time.monotonic()
        while True:
            got = self.ask(question)
            if ok(got) or time.monotonic() - started > limit:
                return got, time.monotonic() - started
            time.sleep(0.5)

    def close(self) -> None:
        self.proc.stdin.close()  # type: ignore[union-attr]
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def test_running_bot_answers_from_an_article_another_process_ingested(server_env: dict[str, str]) -> None:
    sample_url = "https://www.example.com/trump-kim-letter"  # the sample file has no url: give it one via JSON
    body = SAMPLE.read_text(encoding="utf-8").split("\n", 1)
    record = {"title": body[0].strip(), "body": body[1], "url": sample_url, "source": "Sample Wire"}
    sample = Path(server_env["NEWSBOT_DATA_DIR"]).parent / "sample.json"
    sample.write_text(json.dumps(record))

    run(server_env, "ingest", str(FIXTURES / "articles.jsonl"))
    bot = RunningBot({**server_env, "NEWSBOT_DATA_DIR": server_env["NEWSBOT_DATA_DIR"] + "-bot"})
    try:
        before = bot.ask(SAMPLE_QUESTION)
        assert sample_url not in [p["url"] for p in before["passages"]]

        run(server_env, "ingest", str(sample))  # another process, another data dir, the same server
        got, waited = bot.wait_for(SAMPLE_QUESTION, lambda a: a["cited"][:1] == [sample_url], PROPAGATION_LIMIT)
        assert got["cited"][:1] == [sample_url], got
        assert waited < PROPAGATION_LIMIT
        top = next(p for p in got["passages"] if p["url"] == sample_url)
        assert top["dense"] > 0.3 and top["lexical"] > 0  # both sides of the hybrid search found it

        ask = json.loads(run(server_env, "ask", "--json", SAMPLE_QUESTION).stdout)
        assert ask["citations"][0]["url"] == sample_url
        stats = json.loads(run(server_env, "stats", "--json").stdout)
        assert stats["articles"] == 7 and stats["chroma"]["mode"] == "server"
        assert stats["chroma"]["location"] == f"http://{server_env['NEWSBOT_CHROMA_HOST']}:" \
                                              f"{server_env['NEWSBOT_CHROMA_PORT']}"

        run(server_env, "forget", sample_url)
        gone, _ = bot.wait_for(SAMPLE_QUESTION, lambda a: sample_url not in [p["url"] for p in a["passages"]],
                               PROPAGATION_LIMIT)
        assert sample_url not in [p["url"] for p in gone["passages"]]
    finally:
        bot.close()


def test_workers_sharing_one_data_dir_share_one_engine_and_update_it_once(tmp_path: Path, hash_embedder,
                                                                          chroma_server) -> None:
    """Workers on one host may share a data dir: the first to see a change applies it to the host's engine, the
    others find it done and only reload."""
    from bot.wiring import Services

    def worker() -> Any:
        return Services(make_settings(tmp_path / "data", chroma_host=chroma_server.host,
                                      chroma_port=chroma_server.port, collection=collection,
                                      index_refresh_seconds=0.0), embedder=hash_embedder)

    collection = _collection()
    a, b = worker(), worker()
    a.index.ingest(a.index.load([FIXTURES / "articles.jsonl"]))
    body = "A zebra crossing festival drew nine thousand visitors to Quillport on Sunday afternoon."
    report = a.index.ingest([Article(id="zebra", title="Zebra festival", body=body)])
    assert report.new == 1
    assert b.index.sync() == 0  # a applied it to the shared engine already
    assert b.answerer.ask("zebra crossing festival Quillport").citations[0].article_id == "zebra"
    assert a.index.follower.directory == b.index.follower.directory
