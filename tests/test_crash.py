"""Crash safety: ``newsbot ingest`` and ``newsbot forget`` SIGKILLed at random and at chosen points, then rerun,
end with exactly the index a clean run builds (real model, real embedded Chroma, real subprocesses)."""

from __future__ import annotations

import gzip
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from index.load import article_id_for
from tests.fakes import KILLER, NEWSBOT, ROOT, SECRET_VARS

MULTIHOP = ROOT.parent / "shared" / "data" / "multihop-rag" / "corpus.json.gz"
SUBSET = 40  # articles: two ingest batches, so a crash can fall between a committed batch and the next
BODY_CHARS = 1200
KILLS = {"ingest": 0, "forget": 0}

STATE = """
import json
from bot.wiring import Services
from bot.settings import load_settings
app = Services(load_settings())
chunks = sorted((r.id, r.text, r.meta.article_id) for r in app.index.store.iter_chunks())
catalog = sorted((a.id, a.n_chunks, a.content_hash) for a in app.index.store.catalog().values())
lexical = sorted(app.index.follower.current().chunk_ids())
print(json.dumps({"chunks": chunks, "catalog": catalog, "lexical": lexical,
                  "articles": app.index.stats().articles,
                  "chunk_count": app.index.store.chunk_count()}))
"""


def corpus(tmp_path: Path) -> Path:
    """The first SUBSET MultiHop-RAG articles when the shared data is there (CI), else a generated corpus."""
    path = tmp_path / "corpus.json"
    if MULTIHOP.exists():
        with gzip.open(MULTIHOP, "rt", encoding="utf-8") as f:
            records = json.load(f)[:SUBSET]
        for r in records:  # shortened to a few chunks each: the test is about crashes, not volume
            r["body"] = r["body"][:BODY_CHARS].rsplit(". ", 1)[0] + "."
    else:
        rng = random.Random(7)
        words = ("harbour ferry council budget storm election vaccine market drought museum league bridge school "
                 "court senator festival rail airport factory union tariff satellite reactor orchard").split()
        records = [{"title": f"Report {i} on the {rng.choice(words)}", "url": f"https://example.test/{i}",
                    "source": "Test Wire", "published_at": f"2024-01-{i % 28 + 1:02d}",
                    "body": "\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(8, 30))).capitalize()
                                      + "." for _ in range(rng.randint(3, 8)))} for i in range(SUBSET)]
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def newsbot(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*NEWSBOT, *args], env=env, capture_output=True, text=True, timeout=300)
    assert not check or proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    return proc


def killed_at(env: dict[str, str], method: str, target: str, nth: int, when: str, *args: str) -> bool:
    """Run ``newsbot ARGS`` to the chosen call and SIGKILL it there; True when the kill happened."""
    proc = subprocess.run([sys.executable, "-c", KILLER, method, target, str(nth), when, *args], env=env,
                          capture_output=True, text=True, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode == -signal.SIGKILL


def killed_after(env: dict[str, str], seconds: float, *args: str) -> bool:
    """Start ``newsbot ARGS`` and SIGKILL it after ``seconds``; True when it was still running."""
    proc = subprocess.Popen([*NEWSBOT, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=seconds)
        return False
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        return True


def state(env: dict[str, str]) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", STATE], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def assert_same_index(got: dict[str, object], clean: dict[str, object]) -> None:
    lost = {a[0] for a in clean["catalog"]} - {a[0] for a in got["catalog"]}  # type: ignore[union-attr]
    assert not lost, f"{len(lost)} articles lost"
    for key in ("catalog", "chunks", "lexical", "articles", "chunk_count"):
        assert got[key] == clean[key], key


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> dict[str, Any]:
    """One clean ingest of the corpus, shared: its data dir, its state and how long it took."""
    tmp = tmp_path_factory.mktemp("crash")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSBOT_") and k not in SECRET_VARS}
    env.update(NEWSBOT_MODEL_CACHE_DIR=str(model_cache), NEWSBOT_DATA_DIR=str(tmp / "clean"))
    path = corpus(tmp)
    started = time.monotonic()
    newsbot(env, "ingest", str(path))
    took = time.monotonic() - started
    clean = state(env)
    assert clean["articles"] == SUBSET and clean["chunk_count"] > SUBSET
    return {"path": path, "dir": tmp / "clean", "took": took, "state": clean}


def test_sigkilled_ingest_converges_to_a_clean_run(cli_env: dict[str, str], tmp_path: Path,
                                                    clean_run: dict[str, Any]) -> None:
    path, took, clean = clean_run["path"], clean_run["took"], clean_run["state"]

    env = {**cli_env, "NEWSBOT_DATA_DIR": str(tmp_path / "crashed")}
    rng = random.Random(20261129)
    kills = 0
    # chunks of the first batch written, its catalogue records (the commit marker) not yet
    kills += killed_at(env, "upsert", "catalogue", 1, "before", "ingest", str(path))
    # first batch committed, the second one's chunks written but not committed
    kills += killed_at(env, "upsert", "catalogue", 2, "before", "ingest", str(path))
    for _ in range(3):  # anywhere: loading the model, embedding, writing, updating the lexical engine
        kills += killed_after(env, rng.uniform(0.5, took), "ingest", str(path))
    KILLS["ingest"] += kills
    assert kills >= 3
    out = json.loads(newsbot(env, "ingest", "--json", str(path)).stdout)
    assert out["articles"]["failed"] == 0
    assert_same_index(state(env), clean)
    again = json.loads(newsbot(env, "ingest", "--json", str(path)).stdout)
    assert again["articles"] == {"new": 0, "updated": 0, "unchanged": SUBSET, "failed": 0}  # stored exactly once


def test_sigkilled_forget_converges_to_a_clean_forget(cli_env: dict[str, str], tmp_path: Path,
                                                      clean_run: dict[str, Any]) -> None:
    path, before = clean_run["path"], clean_run["state"]
    url = json.loads(path.read_text())[0]["url"]  # forgotten by its URL (the victim below by its id)
    ids = [a[0] for a in before["catalog"] if a[0] != article_id_for(url, "", "")]
    victim = ids[len(ids) // 2]

    def fresh(name: str) -> dict[str, str]:
        shutil.copytree(clean_run["dir"], tmp_path / name)
        return {**cli_env, "NEWSBOT_DATA_DIR": str(tmp_path / name)}

    clean: dict[str, dict[str, Any]] = {}
    for key in (victim, url):
        env = fresh(f"clean-{len(clean)}")
        newsbot(env, "forget", key)
        clean[key] = state(env)
        assert clean[key]["articles"] == SUBSET - 1
    rng = random.Random(8)
    points = [(victim, ("upsert", "catalogue", 1, "after")),  # record marked "deleting", chunks all there
              (url, ("delete", "chunks", 1, "after")),  # chunks gone, catalogue record still there
              (victim, ("upsert", "catalogue", 2, "after"))]  # tombstone written, lexical engine not yet updated
    kills = 0
    for i, (key, point) in enumerate(points):
        env = fresh(f"crash{i}")
        kills += killed_at(env, *point, "forget", key)
        rerun = newsbot(env, "forget", key, check=False)
        assert rerun.returncode == 0 or "no article with id or url" in rerun.stderr, rerun.stderr
        assert_same_index(state(env), clean[key])
    env = fresh("random")
    kills += killed_after(env, rng.uniform(1.0, 3.0), "forget", victim)
    rerun = newsbot(env, "forget", victim, check=False)  # a forget that finished before the kill leaves nothing
    assert rerun.returncode == 0 or "no article with id or url" in rerun.stderr, rerun.stderr
    assert_same_index(state(env), clean[victim])
    KILLS["forget"] += kills
    assert kills >= 3
    print(f"\ncrashes injected: {KILLS}")
