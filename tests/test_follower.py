"""Following the change feed: every process of a host answers from one on-disk lexical engine that is updated by the
change (never rebuilt from the corpus), a crash anywhere between the Chroma write and the engine update heals on
the next check, and answering needs neither bm25s nor scipy. Real embedded Chroma and tantivy, hash embedder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from index.errors import NewsbotError
from index.follower import complete_articles
from index.lexical_engine import _writer_lock
from index.store import ChunkRecord, read_marker
from index.types import Article, ChunkMeta, IndexVersion
from tests.fakes import FIXTURES, ROOT, HashEmbedder, make_settings

HEAVY = ("bm25s", "scipy", "mcp", "llama_index", "torch")
QUESTION = "museum textile loom"  # only articles[5] answers it

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


def _writer_and_reader(tmp_path: Path) -> tuple[Any, Any, list[Article]]:
    """Two processes' worth of services on one data dir (one host); the writer has stored all but the last
    fixture article, which only it can add."""
    data = tmp_path / "data"
    writer = _app(data)
    articles = _articles(writer)
    writer.index.ingest(articles[:5])
    return writer, _app(data), articles


def _found(app: Any, article: Article) -> bool:
    return any(p.article_id == article.id for p in app.index.search(QUESTION, k=10))


def _answers_at_once_while_held(app: Any, article: Article, worker: threading.Thread, held: threading.Event,
                                release: threading.Event) -> None:
    """While ``worker`` is held (it sets ``held``, then waits for ``release``), a search answers at once from the
    engine in hand, without ``article``; once released, the article shows."""
    worker.start()
    try:
        assert held.wait(10)
        started = time.monotonic()
        assert not _found(app, article)
        assert time.monotonic() - started < 5
    finally:
        release.set()
        worker.join(20)
    assert _found(app, article)


def test_ask_in_a_fresh_process_needs_no_bm25s_scipy_or_torch(cli: Any) -> None:
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
    marker = read_marker(app.index.layout.version_file)
    assert marker is not None and marker.version == app.index.store.version() != ""
    assert marker.embedding_model == "test/hash-bow"
    assert app.index.version() == marker.version  # the ingesting process's view is current


def test_a_reader_sees_another_writers_additions_and_deletions(tmp_path: Path) -> None:
    writer, reader, articles = _writer_and_reader(tmp_path)
    assert not _found(reader, articles[5])
    writer.index.ingest(articles)
    assert reader.index.search(QUESTION, k=1)[0].article_id == articles[5].id
    writer.index.forget(articles[5].id)
    assert not _found(reader, articles[5])


def test_own_writes_are_seen_at_once(tmp_path: Path) -> None:
    app = _app(tmp_path / "data", index_refresh_seconds=60.0)
    articles = _articles(app)
    app.index.ingest(articles[:5])
    assert not _found(app, articles[5])
    app.index.ingest([articles[5]])
    assert app.index.search(QUESTION, k=1)[0].article_id == articles[5].id
    app.index.forget(articles[5].id)
    assert not _found(app, articles[5])


def test_a_write_costs_the_change_not_the_corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Adding one article fetches that article's chunks only; forgetting one fetches none; nothing reads every
    chunk (the old full rebuild did, on every write)."""
    app = _app(tmp_path / "data")
    articles = _articles(app)
    app.index.ingest(articles[:5])
    store = app.index.store
    fetched: list[list[str]] = []
    real = store.chunks_of
    monkeypatch.setattr(store, "chunks_of", lambda ids: fetched.append(sorted(ids)) or real(ids))
    monkeypatch.setattr(store, "iter_chunks", lambda **_: pytest.fail("a write read the whole store"))
    app.index.ingest([articles[5]])
    assert fetched == [[articles[5].id]]
    fetched.clear()
    app.index.forget(articles[0].id)
    assert fetched == []
    assert sorted(app.index.article_ids()) == sorted(a.id for a in articles[1:])


def test_a_crash_between_the_chroma_write_and_the_engine_update_heals(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    app = _app(data)
    articles = _articles(app)
    app.index.ingest(articles[:5])
    monkeypatch.setattr(type(app.index), "sync", lambda self: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):  # "killed" after Chroma has the article, before the engine does
        app.index.ingest([articles[5]])
    monkeypatch.undo()
    assert articles[5].id not in app.index.follower.engine.article_ids()
    restarted = _app(data)
    assert restarted.index.search(QUESTION, k=1)[0].article_id == articles[5].id


def test_an_update_applied_but_not_recorded_is_applied_again_idempotently(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed after the engine's commit but before the feed state was saved: the next check plans the same change
    again, and re-applying it leaves the engine as it was."""
    writer, reader, articles = _writer_and_reader(tmp_path)
    reader.index.size()
    state = reader.index.follower.state
    monkeypatch.setattr(state, "save", lambda applied: (_ for _ in ()).throw(OSError("disk full")))
    writer2 = _app(tmp_path / "elsewhere")  # a writer on another host: this host's engine is the reader's alone
    del writer2
    from index.ingest import ingest

    ingest([articles[5]], writer.index.store, writer.index.embedder)  # Chroma only: no engine update here
    with pytest.raises(OSError):
        reader.index.sync()
    monkeypatch.undo()
    engine = reader.index.follower.engine
    engine.reload()
    before = sorted(engine.chunk_ids())
    assert articles[5].id in engine.article_ids()
    assert reader.index.sync() == 0  # planned again, found applied by digest
    assert sorted(engine.chunk_ids()) == before


def test_reconcile_repairs_a_change_the_feed_missed_without_making_searches_wait(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The periodic reconcile reads every live article's hash (minutes at scale) on a background thread: searches
    answer meanwhile, and the repair lands when it is done."""
    data = tmp_path / "data"
    app = _app(data, index_reconcile_seconds=3600.0)
    articles = _articles(app)
    app.index.ingest(articles[:5])
    follower = app.index.follower
    # the host's state claims to have read the feed far into the future: polls will miss the next write
    applied = follower.state.load()
    follower.state.save(replace(applied, watermark=time.time() + 86_400))
    from index.ingest import ingest

    ingest([articles[5]], app.index.store, app.index.embedder)
    app.index.sync()
    assert articles[5].id not in follower.engine.article_ids()  # missed by the feed
    release = threading.Event()
    real = app.index.store.live_hashes
    monkeypatch.setattr(app.index.store, "live_hashes", lambda: release.wait(20) and real())
    follower.config = replace(follower.config, reconcile_seconds=0.0)
    started = time.monotonic()
    assert not _found(app, articles[5])  # the reconcile has started; this search did not wait for it
    assert time.monotonic() - started < 5
    reconciler = follower._reconciler
    assert reconciler is not None and reconciler.is_alive()
    release.set()
    reconciler.join(20)
    assert articles[5].id in follower.engine.article_ids()  # repaired
    assert _found(app, articles[5])


def test_an_interrupted_bootstrap_resumes_where_it_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    writer = _app(data)
    articles = _articles(writer)
    from index.ingest import ingest

    ingest(articles, writer.index.store, writer.index.embedder)  # a store this host has never followed
    reader = _app(data)
    follower = reader.index.follower
    follower.config = replace(follower.config, batch_articles=2)
    engine = follower.engine
    real = engine.apply
    calls = {"n": 0}

    def dies_on_the_second_batch(*args: Any, **kw: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(engine, "apply", dies_on_the_second_batch)
    with pytest.raises(KeyboardInterrupt):
        reader.index.sync()
    saved = set(follower.state.load().hashes)
    assert len(saved) == 2  # the first batch is saved
    monkeypatch.undo()
    fetched: list[str] = []
    real_fetch = reader.index.store.chunks_of
    monkeypatch.setattr(reader.index.store, "chunks_of", lambda ids: fetched.extend(ids) or real_fetch(ids))
    assert reader.index.sync() == 4  # the other four, not all six again
    assert sorted(fetched) == sorted(a.id for a in articles if a.id not in saved)
    assert sorted(engine.article_ids()) == sorted(a.id for a in articles)


def test_a_reader_answers_while_another_process_holds_the_engine(tmp_path: Path) -> None:
    writer, reader, articles = _writer_and_reader(tmp_path)
    reader.index.follower.config = replace(reader.index.follower.config, busy_wait_seconds=0.05)
    assert not _found(reader, articles[5])
    from index.ingest import ingest

    ingest([articles[5]], writer.index.store, writer.index.embedder)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:  # the writer lock is an flock: another open file description, as another process has
        with _writer_lock(reader.index.follower.directory, 1.0):
            held.set()
            release.wait(20)

    _answers_at_once_while_held(reader, articles[5], threading.Thread(target=hold), held, release)


def test_a_version_moved_without_any_change_is_harmless(tmp_path: Path) -> None:
    """A writer killed between bumping the version and writing anything."""
    data = tmp_path / "data"
    writer = _app(data)
    writer.index.ingest(_articles(writer))
    reader = _app(data)
    before = reader.index.search("record quarterly revenue", k=3)
    token = writer.index.store.bump_version()
    after = reader.index.search("record quarterly revenue", k=3)
    assert [p.chunk_id for p in after] == [p.chunk_id for p in before]
    assert reader.index.version() == token


@pytest.mark.parametrize("marker", ["missing", "stale", "garbled"])
def test_missing_or_stale_marker_falls_back_to_chroma_and_is_repaired(tmp_path: Path, marker: str) -> None:
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
    reader = _app(data)
    hits = reader.index.search("Why were water restrictions imposed in the valley?", k=3)
    assert hits[0].title == "Drought forces water restrictions across the valley"
    if marker != "stale":  # a stale marker is believed until the next write moves it
        assert read_marker(path) == IndexVersion(truth, "test/hash-bow")


def test_precision_comes_from_the_marker_without_opening_chroma(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.wiring import Services
    from index.embed import model_name
    from index.store import ChromaStore

    data = tmp_path / "old"
    ChromaStore(path=data / "chroma", embedding_model=model_name("fp32"))  # an index built with fp32
    app = Services(make_settings(data, embed_precision="int8"))
    monkeypatch.setattr(app.index, "_open_store", lambda *_: pytest.fail("Chroma was opened"))
    assert app.index.precision == "fp32"


def test_only_whole_articles_at_their_catalogue_hash_are_applied() -> None:
    def rec(article: str, position: int, digest: str) -> ChunkRecord:
        return ChunkRecord(f"{article}:{position}", "text", ChunkMeta(article, position=position, content_hash=digest))

    records = [rec("a", 1, "h1"), rec("a", 0, "h1"), rec("b", 0, "old"), rec("b", 1, "new"), rec("c", 0, "h3")]
    whole = complete_articles(records, {"a": ("h1", 2), "b": ("new", 2), "c": ("h3", 2)})
    assert list(whole) == ["a"]  # b is half rewritten, c is missing a chunk
    assert [r.meta.position for r in whole["a"]] == [0, 1]


def test_a_second_engine_writer_is_refused_with_one_line(tmp_path: Path) -> None:
    from index.lexical_engine import TantivyEngine

    engine = TantivyEngine.open(tmp_path / "e")
    with _writer_lock(tmp_path / "e", 1.0), pytest.raises(NewsbotError, match="being written by another process"):
        with engine.writing(timeout=0.1):
            pass


def test_an_engine_of_another_format_is_built_again_from_the_store(tmp_path: Path) -> None:
    data = tmp_path / "data"
    app = _app(data)
    articles = _articles(app)
    app.index.ingest(articles)
    directory = app.index.follower.directory
    (directory / "engine.json").write_text(json.dumps({"format": 0}))  # left by another newsbot version
    again = _app(data)
    assert again.index.search(QUESTION, k=1)[0].article_id == articles[5].id
    assert json.loads((directory / "engine.json").read_text())["format"] != 0


def test_stats_say_which_lexical_engine_answers_and_probe_chromas_own(tmp_path: Path) -> None:
    app = _app(tmp_path / "data")
    app.index.ingest(_articles(app))
    stats = app.index.stats().as_dict()
    assert stats["lexical"] == {"engine": "tantivy (this host)", "chunks": stats["chunks"]}
    assert app.index.store.hybrid_search_available() is False  # embedded Chroma 1.5: "not implemented for local"


def test_new_sentence_rules_classify_every_chunk_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sentence kinds are decided when a chunk is applied: a newsbot with other rules (``prose.RULES_VERSION``)
    builds the host's engine again from the store instead of showing kinds from the old rules."""
    import index.prose

    data = tmp_path / "data"
    app = _app(data)
    articles = _articles(app)
    app.index.ingest(articles)
    monkeypatch.setattr(index.prose, "RULES_VERSION", "next")
    again = _app(data)
    fetched: list[str] = []
    real = again.index.store.chunks_of
    monkeypatch.setattr(again.index.store, "chunks_of", lambda ids: fetched.extend(ids) or real(ids))
    assert again.index.search(QUESTION, k=1)[0].article_id == articles[5].id
    assert sorted(fetched) == sorted(a.id for a in articles)  # every article applied again
    assert json.loads((again.index.follower.directory / "rules.json").read_text()) == {"rules": "next"}


def test_a_search_does_not_wait_for_another_thread_applying_changes(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    app = _app(data)
    articles = _articles(app)
    app.index.ingest(articles[:5])
    follower = app.index.follower
    from index.ingest import ingest

    ingest([articles[5]], app.index.store, app.index.embedder)  # in Chroma; this host's engine not told yet
    entered, release = threading.Event(), threading.Event()
    real = follower._apply

    def slow_apply(*args: Any) -> int:
        entered.set()
        assert release.wait(20)
        return real(*args)

    monkeypatch.setattr(follower, "_apply", slow_apply)
    _answers_at_once_while_held(app, articles[5], threading.Thread(target=app.index.sync), entered, release)


def test_applying_another_processs_change_empties_the_vector_cache(tmp_path: Path) -> None:
    """A cached vector belongs to the view it was read in: an applied change (an updated article may keep its chunk
    ids) empties the cache; a check that finds nothing new keeps it."""
    data = tmp_path / "data"
    writer, reader = _app(data), _app(data)
    articles = _articles(writer)
    writer.index.ingest(articles[:5])
    reader.index.search(QUESTION, k=5)
    store = reader.index.follower.store
    ids = sorted(reader.index.follower.engine.chunk_ids())
    vector = store.vectors(ids[:1])[ids[0]]
    store.cosines(vector, ids)
    reader.index.sync()
    assert set(store._vector_cache) == set(ids)  # nothing changed: kept
    writer.index.ingest([articles[5]])
    assert reader.index.sync() == 0  # the writer's process applied it to this host's engine...
    assert not store._vector_cache  # ...and the reader's cache went all the same
    store.cosines(vector, ids)
    writer.index.forget(articles[0].id)
    from index.ingest import ingest

    ingest([articles[0]], writer.index.store, writer.index.embedder)  # back, applied by the reader this time
    assert reader.index.sync() == 1
    assert not store._vector_cache
