"""Cold start: answering from a current search snapshot needs neither chromadb nor bm25s; the embedded
store's version marker file says when the snapshot is current, and Chroma is consulted when it is not."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from index.lexical import Bm25, tokenize
from index.snapshot import SearchSnapshot
from index.snapshot import read_marker as read_version_marker
from index.types import Article, IndexVersion
from tests.fakes import FIXTURES, ROOT, HashEmbedder, make_settings

HEAVY = ("chromadb", "bm25s", "scipy", "mcp", "llama_index")

# an ``ask`` in a fresh interpreter (hash embedder behind MiniLM), then the heavy modules it imported
FRESH_ASK = """
import json, sys
import index.embed
from tests.fakes import HashEmbedder
index.embed.MiniLM = lambda *a, **k: HashEmbedder()
from bot.cli import main
code = main(["ask", "--json", sys.argv[1]])
print(json.dumps({"code": code, "heavy": sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[2:]))}))
"""


def _articles(app: Any) -> list[Article]:
    return [a for a in app.index.load([FIXTURES / "articles.jsonl"]) if isinstance(a, Article)]


def _app(data: Path, **kw: Any) -> Any:
    from bot.wiring import Services

    return Services(make_settings(data, **{"index_refresh_seconds": 0.0, **kw}), embedder=HashEmbedder())


def _never_open_chroma(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: Any) -> Any:
        raise AssertionError("Chroma was opened")

    monkeypatch.setattr(app.index, "_open_store", refuse)


def test_ask_in_a_fresh_process_imports_neither_chromadb_nor_bm25s(cli: Any) -> None:
    code, _, err = cli("ingest", str(FIXTURES / "articles.jsonl"))
    assert code == 0, err
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", FRESH_ASK, "How much did Harbor Tech revenue grow?", *HEAVY],
                          env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    answer, result = proc.stdout.strip().splitlines()[-2:]
    assert json.loads(result) == {"code": 0, "heavy": []}
    assert "34 percent" in answer


def test_writes_record_the_version_in_the_marker_file(tmp_path: Path) -> None:
    app = _app(tmp_path / "data")
    app.index.ingest(_articles(app))
    marker = read_version_marker(app.index.layout.version_file)
    assert marker is not None and marker.version == app.index.store.version() != ""
    assert marker.embedding_model == "test/hash-bow"
    tag = SearchSnapshot.tag(app.index.layout.snapshot_dir)
    assert tag is not None and (tag.version, tag.embedding_model) == (marker.version, marker.embedding_model)


def test_reader_picks_up_another_writers_change_without_opening_chroma(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    writer = _app(data)
    articles = _articles(writer)
    writer.index.ingest(articles[:5])
    reader = _app(data)
    _never_open_chroma(reader, monkeypatch)
    assert all(p.article_id != articles[5].id for p in reader.index.search("museum textile loom", k=10))

    writer.index.ingest(articles)  # moves the marker and saves the rebuilt snapshot into the shared data dir
    hits = reader.index.search("museum textile loom", k=3)
    assert hits[0].article_id == articles[5].id
    assert reader.index.snapshots.current().version == read_version_marker(reader.index.layout.version_file).version  # type: ignore[union-attr]


def test_own_writes_are_seen_at_once(tmp_path: Path) -> None:
    app = _app(tmp_path / "data", index_refresh_seconds=60.0)
    articles = _articles(app)
    app.index.ingest(articles[:5])
    question = "museum textile loom"
    assert all(p.article_id != articles[5].id for p in app.index.search(question, k=10))
    app.index.ingest([articles[5]])
    assert app.index.search(question, k=1)[0].article_id == articles[5].id
    app.index.forget(articles[5].id)
    assert all(p.article_id != articles[5].id for p in app.index.search(question, k=10))


def test_a_running_reader_answers_from_its_snapshot_while_a_slow_rebuild_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At scale a rebuild takes minutes: a process that is already answering must not stall for it."""
    import threading
    from dataclasses import replace

    import index.ingest
    import index.snapshot

    data = tmp_path / "data"
    writer = _app(data)
    articles = _articles(writer)
    writer.index.ingest(articles[:5])
    reader = _app(data)
    reader.index.snapshots.config = replace(reader.index.snapshots.config, rebuild_wait_seconds=0.05)
    before = reader.index.snapshots.current().version
    release = threading.Event()
    real = index.snapshot.rebuild

    def slow(store: Any, d: Path) -> Any:
        assert release.wait(20), "the test never released the rebuild"
        return real(store, d)

    monkeypatch.setattr(index.snapshot, "rebuild", slow)
    monkeypatch.setattr(index.ingest, "rebuild_snapshot", lambda store, d: None)  # the writer never saves one
    writer.index.ingest([articles[5]])
    question = "museum textile loom"
    for _ in range(3):  # each search finds the snapshot stale, none waits for the rebuild
        assert all(p.article_id != articles[5].id for p in reader.index.search(question, k=10))
        assert reader.index.snapshots.current().version == before
    release.set()
    worker = reader.index.snapshots._worker
    assert worker is not None
    worker.join(60)
    assert reader.index.search(question, k=1)[0].article_id == articles[5].id
    assert reader.index.snapshots.current().version == writer.index.store.version() != before


def test_marker_moved_without_a_new_snapshot_rebuilds_from_chroma(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """A writer killed between bumping the version and saving the snapshot: readers rebuild it themselves."""
    caplog.set_level(logging.DEBUG, logger="index")  # a failed rebuild's traceback is logged at DEBUG
    data = tmp_path / "data"
    writer = _app(data)
    writer.index.ingest(_articles(writer))
    reader = _app(data)
    before = reader.index.snapshots.current().version
    token = writer.index.store.bump_version()
    state = {"before": before, "token": token, "store": writer.index.store.version(),
             "marker": read_version_marker(reader.index.layout.version_file), "snapshot": SearchSnapshot.tag(data)}
    assert token != before and SearchSnapshot.tag(data).version == before, str(state)  # type: ignore[union-attr]
    served = reader.index.snapshots.current().version
    state |= {"served": served, "marker": read_version_marker(reader.index.layout.version_file),
              "snapshot": SearchSnapshot.tag(data)}
    assert served == token, str(state)  # str: pytest shortens a dict message
    assert SearchSnapshot.tag(data).version == token, str(state)  # type: ignore[union-attr]
    # a query only one article answers: "Harbor Tech revenue" is a near tie with the antitrust article
    # (both mention revenue) that flips with the fusion weights, which this test is not about
    top = reader.index.search("record quarterly revenue", k=1)[0]
    assert top.title == "Harbor Tech reports record quarterly revenue"


@pytest.mark.parametrize("marker", ["missing", "stale", "garbled"])
def test_missing_or_stale_marker_falls_back_to_chroma_and_is_repaired(tmp_path: Path, marker: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import index.retrieve

    data = tmp_path / "data"
    writer = _app(data)
    writer.index.ingest(_articles(writer))
    truth = writer.index.store.version()
    path = writer.index.layout.version_file
    if marker == "missing":
        path.unlink()
    elif marker == "stale":
        path.write_text(json.dumps({"version": "an-older-token", "embedding_model": "test/hash-bow"}))
    else:
        path.write_text("{not json")
    rebuilds: list[Path] = []
    real = index.snapshot.rebuild
    monkeypatch.setattr(index.snapshot, "rebuild", lambda store, d: rebuilds.append(d) or real(store, d))

    reader = _app(data)
    hits = reader.index.search("Why were water restrictions imposed in the valley?", k=3)
    assert hits[0].title == "Drought forces water restrictions across the valley"
    assert reader.index.snapshots.current().version == truth
    assert rebuilds == []  # the snapshot on disk matched Chroma: loaded, not rebuilt
    assert read_version_marker(path) == IndexVersion(truth, "test/hash-bow")


def test_precision_comes_from_the_marker_without_opening_chroma(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.wiring import Services
    from index.embed import model_name
    from index.store import ChromaStore

    data = tmp_path / "old"
    ChromaStore(path=data / "chroma", embedding_model=model_name("fp32"))  # an index built with fp32
    app = Services(make_settings(data, embed_precision="int8"))
    _never_open_chroma(app, monkeypatch)
    assert app.index.precision == "fp32"


# -- BM25 scored with numpy alone ----------------------------------------------------------------------------
CORPUS = [
    "Rain fell across the valley on Monday, and more rain is expected.",
    "The council approved new bike lanes after a long debate about parking.",
    "Reservoirs are low: officials imposed water restrictions in the valley.",
    "Harbor Tech revenue climbed 34 percent; the company raised its forecast.",
    "",
    "A chess club won the national championship; the club celebrated with rain-soaked fans.",
]
QUERIES = ["rain", "rain rain valley", "valley rain valley rain", "water restrictions valley council",
           "unknown words only", "club chess Chess CLUB", "", "the and of"]


def test_numpy_bm25_scores_equal_bm25s_get_scores(tmp_path: Path) -> None:
    import bm25s

    model = bm25s.BM25(k1=1.2, b=0.75)
    model.index(tokenize(CORPUS), show_progress=False)
    ours = Bm25.build(CORPUS)
    ours.save(tmp_path / "bm25")
    loaded = Bm25.load(tmp_path / "bm25")
    for query in QUERIES:
        terms = tokenize([query])[0]
        known = [t for t in terms if t in model.vocab_dict]
        expected = model.get_scores(known) if known else np.zeros(len(CORPUS), dtype=np.float32)
        assert np.array_equal(ours.scores(terms), expected), query
        assert np.array_equal(loaded.scores(terms), expected), query
    # bm25s counts a repeated query term once per occurrence, and so do we
    once, twice = ours.scores(["rain"]), ours.scores(["rain", "rain"])
    assert once.max() > 0 and np.allclose(twice, 2 * once)
    assert loaded.doc_freq() == ours.doc_freq() and ours.doc_freq()["rain"] == 2


def test_empty_bm25_scores_zeros(tmp_path: Path) -> None:
    empty = Bm25.build([])
    empty.save(tmp_path / "bm25")
    assert Bm25.load(tmp_path / "bm25").scores(["rain"]).shape == (0,)
