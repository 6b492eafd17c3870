"""End to end through the real ``newsbot`` command, the bundled model and an embedded Chroma."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import SAMPLE, copy_sample

NEWSBOT = [sys.executable, "-m", "bot"]
SUMMIT_SENTENCE = "failed to attain Washington’s aim of halting the advance of Pyongyang’s nuclear weapons programmes"


def run(env: dict[str, str], *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([*NEWSBOT, *args], env=env, input=stdin, capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"newsbot {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


def test_sample_answers_why_the_summits_failed(cli_env: dict[str, str], tmp_path: Path) -> None:
    corpus = copy_sample(tmp_path / "corpus")
    out = run(cli_env, "ingest", str(corpus.parent))
    assert "1 new" in out.stdout
    out = run(cli_env, "ask", "why did the summits fail?")
    first_line = out.stdout.splitlines()[0]
    assert SUMMIT_SENTENCE in first_line and first_line.endswith("[1]")
    assert "Sources:" in out.stdout and "[1] Remarks come after report" in out.stdout
    assert out.stderr == ""


def test_ask_json_schema(cli_env: dict[str, str]) -> None:
    run(cli_env, "ingest", str(SAMPLE))
    data = json.loads(run(cli_env, "ask", "--json", "why did the summits fail?").stdout)
    assert {"question", "answer", "abstained", "citations", "retrieved", "timings_ms"} <= data.keys()
    assert data["question"] == "why did the summits fail?" and data["abstained"] is False
    assert SUMMIT_SENTENCE in data["answer"] and "[1]" in data["answer"]
    c = data["citations"][0]
    assert {"n", "article_id", "title", "source", "url", "published_at", "quote", "score"} <= c.keys()
    assert c["n"] == 1 and SUMMIT_SENTENCE in c["quote"]
    r = data["retrieved"]
    assert r and {"article_id", "chunk_id", "text", "score"} <= r[0].keys()
    assert [x["score"] for x in r] == sorted((x["score"] for x in r), reverse=True)
    assert {"retrieve", "answer", "total"} <= data["timings_ms"].keys()


def test_reingest_and_stats(cli_env: dict[str, str]) -> None:
    first = json.loads(run(cli_env, "ingest", "--json", str(SAMPLE)).stdout)
    assert first["articles"] == {"new": 1, "updated": 0, "unchanged": 0, "failed": 0}
    second = json.loads(run(cli_env, "ingest", "--json", str(SAMPLE)).stdout)
    assert second["articles"]["unchanged"] == 1 and second["chunks_total"] == first["chunks_total"]
    stats = json.loads(run(cli_env, "stats", "--json").stdout)
    assert {"articles", "chunks", "sources", "first_published", "last_published", "data_dir",
            "embedding_model"} <= stats.keys()
    assert stats["articles"] == 1 and stats["chunks"] == first["chunks_total"]
    assert stats["embedding_model"] == "sentence-transformers/all-MiniLM-L6-v2"


def test_chat_from_stdin_with_follow_up(cli_env: dict[str, str]) -> None:
    run(cli_env, "ingest", str(SAMPLE))
    out = run(cli_env, "chat", stdin="why did the summits fail?\nwhat did the White House say about it?\n/why\n/quit\n")
    answers = out.stdout.split("Sources:")
    assert len(answers) == 3
    assert SUMMIT_SENTENCE in answers[0]
    assert "Leavitt" in answers[1]  # the press secretary's remarks, found through the earlier question
    assert "following up on: why did the summits fail?" in out.stdout


def test_exit_codes_and_one_line_errors(cli_env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    out = run(cli_env, "ingest", str(bad), str(SAMPLE), check=False)
    assert out.returncode == 1
    assert out.stderr.strip() == f"newsbot: {bad}: malformed JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"
    assert "1 new" in out.stdout  # the good file still went in
    assert run(cli_env, "frobnicate", check=False).returncode == 2
    empty_env = {**cli_env, "NEWSBOT_DATA_DIR": str(tmp_path / "empty")}
    out = run(empty_env, "ask", "anything?", check=False)
    assert out.returncode == 1 and "run `newsbot ingest PATH` first" in out.stderr and "Traceback" not in out.stderr
    out = run({**cli_env, "NEWSBOT_TOP_K": "zero"}, "stats", check=False)
    assert out.returncode == 1 and "NEWSBOT_TOP_K" in out.stderr and len(out.stderr.splitlines()) == 1


def _generated_corpus(path: Path, n: int) -> Path:
    rng = random.Random(7)
    words = ("harbour ferry council budget storm election vaccine market drought museum league bridge school "
             "court senator festival rail airport factory union tariff satellite reactor orchard").split()
    with path.open("w") as f:
        for i in range(n):
            body = "\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(8, 30))).capitalize() + "."
                             for _ in range(rng.randint(5, 40)))
            f.write(json.dumps({"title": f"Report {i} on the {rng.choice(words)}", "body": body,
                                "url": f"https://example.test/{i}", "source": "Test Wire"}) + "\n")
    return path


def _index_state(env: dict[str, str]) -> tuple:
    code = ("import json,sys; from bot.settings import load_settings; from bot.app import App; "
            "from index.lexical import LexicalIndex; a=App(load_settings()); "
            "c=sorted((r.id, r.text) for r in a.store.iter_chunks()); "
            "l=LexicalIndex.load(a.settings.data_dir); a.retriever.lexical(); l=LexicalIndex.load(a.settings.data_dir); "
            "print(json.dumps([c, sorted(l.ids), a.stats()['articles']]))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return tuple(json.dumps(x) for x in json.loads(out.stdout))


@pytest.mark.parametrize("seed", [1])
def test_sigkilled_ingest_converges_to_a_clean_run(cli_env: dict[str, str], tmp_path: Path, seed: int) -> None:
    corpus = _generated_corpus(tmp_path / "gen.jsonl", 120)
    clean_env = {**cli_env, "NEWSBOT_DATA_DIR": str(tmp_path / "clean")}
    run(clean_env, "ingest", str(corpus))
    clean = _index_state(clean_env)
    rng = random.Random(seed)
    killed = 0
    for _ in range(3):
        proc = subprocess.Popen([*NEWSBOT, "ingest", str(corpus)], env=cli_env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(1.5, 4.0))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            killed += 1
        proc.wait()
    assert killed >= 1
    run(cli_env, "ingest", str(corpus))
    assert _index_state(cli_env) == clean
