"""The change feed (issue #16): the catalogue stamps changes and keeps tombstones, a process plans what to apply from
its watermark (idempotent by content hash), reconcile repairs what a poll missed, and a crash between the Chroma
write and the process's saved state heals on the next poll. Real embedded Chroma, hash embedder."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import replace
from pathlib import Path

import pytest

from index.changes import SKEW_SECONDS, Applied, AppliedFile, Plan, advance, plan, reconcile
from index.errors import NewsbotError
from index.store import CATALOG_VECTOR, ChromaStore
from index.types import Article, ArticleChange
from tests.fakes import FIXTURES


def _articles(app) -> list[Article]:  # type: ignore[no-untyped-def]
    return [a for a in app.index.load([FIXTURES / "articles.jsonl"]) if isinstance(a, Article)]


def _poll(store: ChromaStore, applied: Applied) -> Plan:
    """One poll of the feed, as a process would make it."""
    return plan(applied, store.changes_since(applied.read_from()))


def _edited(article: Article) -> Article:
    return replace(article, body=article.body + "\nThe council will meet again in July to review the plan.")


def test_changes_since_lists_ingested_articles(fast_app) -> None:  # type: ignore[no-untyped-def]
    store = fast_app.index.store
    started = time.time()
    fast_app.index.ingest(_articles(fast_app))
    changes = store.changes_since(started - 1)
    live = {a.id: a.content_hash for a in store.catalog().values()}
    assert {c.article_id: c.content_hash for c in changes} == live and len(live) == 6
    assert all(c.state == "ok" and started <= c.changed_at <= time.time() for c in changes)
    assert sorted(store.changes_since(started - 1, page=4), key=lambda c: c.article_id) == \
        sorted(changes, key=lambda c: c.article_id)  # paged: the same records, each once
    assert store.changes_since(max(c.changed_at for c in changes) + 1) == []
    assert store.live_hashes(page=4) == live


def test_edited_article_shows_up_again_with_its_new_hash(fast_app) -> None:  # type: ignore[no-untyped-def]
    store = fast_app.index.store
    articles = _articles(fast_app)
    fast_app.index.ingest(articles)
    first = {c.article_id: c for c in store.changes_since(0.0)}
    watermark = max(c.changed_at for c in first.values())
    fast_app.index.ingest([_edited(articles[0]), *articles[1:]])
    later = [c for c in store.changes_since(watermark) if c.changed_at > watermark]
    assert [c.article_id for c in later] == [articles[0].id]
    assert later[0].state == "ok" and later[0].content_hash != first[articles[0].id].content_hash
    assert later[0].content_hash == store.catalog([articles[0].id])[articles[0].id].content_hash


def test_forget_leaves_a_tombstone_the_feed_reports_and_the_catalogue_hides(fast_app) -> None:  # type: ignore[no-untyped-def]
    store = fast_app.index.store
    articles = _articles(fast_app)
    fast_app.index.ingest(articles)
    gone = articles[1]
    before = store.catalog([gone.id])[gone.id]
    fast_app.index.forget(gone.url)
    tomb = {c.article_id: c for c in store.changes_since(0.0)}[gone.id]
    assert tomb.state == "forgotten" and tomb.content_hash == before.content_hash
    assert gone.id not in store.catalog() and store.catalog([gone.id]) == {}
    assert gone.id not in store.live_hashes() and fast_app.index.stats().articles == 5
    assert store.find_article_ids(gone.id) == store.find_article_ids(gone.url) == []
    with pytest.raises(NewsbotError, match="no article"):
        fast_app.index.forget(gone.id)
    back = fast_app.index.ingest([gone])  # re-ingesting a forgotten article brings it back
    assert back.new == 1
    again = {c.article_id: c for c in store.changes_since(tomb.changed_at)}[gone.id]
    assert again.state == "ok" and again.changed_at > tomb.changed_at
    assert store.catalog([gone.id])[gone.id].content_hash == before.content_hash
    assert store.find_article_ids(gone.url) == [gone.id]


def test_applying_the_same_changes_twice_does_nothing_the_second_time(fast_app) -> None:  # type: ignore[no-untyped-def]
    store = fast_app.index.store
    articles = _articles(fast_app)
    fast_app.index.ingest(articles)
    todo = _poll(store, Applied())
    assert set(todo.load) == {a.id for a in articles} and not todo.drop
    applied = advance(Applied(), todo)
    again = _poll(store, applied)  # re-reads the same records (from the watermark less the skew)
    assert again.empty and again.watermark == applied.watermark
    assert advance(applied, again) == applied

    fast_app.index.forget(articles[2].id)
    fast_app.index.ingest([_edited(articles[3])])
    todo = _poll(store, applied)
    assert set(todo.load) == {articles[3].id} and todo.drop == {articles[2].id}
    applied = advance(applied, todo)
    assert _poll(store, applied).empty
    assert applied.hashes == store.live_hashes()


def test_reconcile_repairs_a_missed_change(fast_app) -> None:  # type: ignore[no-untyped-def]
    store = fast_app.index.store
    articles = _articles(fast_app)
    fast_app.index.ingest(articles)
    changes = store.changes_since(0.0)
    missed = changes[0].article_id
    applied = advance(Applied(), plan(Applied(), changes[1:]))  # the poll lost one change
    assert missed not in applied.hashes
    fast_app.index.forget(articles[4].id)  # ... and never saw this tombstone
    repairs = reconcile(applied, store.live_hashes())
    assert repairs.load == {missed: store.catalog([missed])[missed].content_hash}
    assert repairs.drop == {articles[4].id} and repairs.watermark == applied.watermark
    applied = advance(applied, repairs)
    assert applied.hashes == store.live_hashes() and reconcile(applied, store.live_hashes()).empty


def test_records_from_before_the_feed_are_found_by_reconcile(fast_app) -> None:  # type: ignore[no-untyped-def]
    """An index written before records were stamped: the feed cannot list them, reconcile (a bootstrap) does."""
    store = fast_app.index.store
    fast_app.index.ingest(_articles(fast_app))
    old = next(iter(store.catalog().values()))
    meta = {k: v for k, v in store._catalog.get(ids=[old.id], include=["metadatas"])["metadatas"][0].items()
            if k != "changed_at"}
    store._catalog.delete(ids=[old.id])  # an upsert would keep the stamp: Chroma merges metadata keys
    store._catalog.add(ids=[old.id], embeddings=[CATALOG_VECTOR], metadatas=[meta])
    assert old.id not in {c.article_id for c in store.changes_since(0.0)}
    bootstrap = reconcile(Applied(), store.live_hashes(), watermark=time.time())
    assert bootstrap.load[old.id] == old.content_hash and len(bootstrap.load) == 6
    assert _poll(store, advance(Applied(), bootstrap)).empty


def test_a_crash_between_the_chroma_write_and_the_saved_state_heals_on_the_next_poll(
        fast_app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = fast_app.index.store
    articles = _articles(fast_app)
    state = AppliedFile.beside(tmp_path / "host")
    lexical: dict[str, str] = {}  # stands in for the process's derived index: article id -> hash loaded

    def apply(todo: Plan) -> None:  # delete-and-add: doing it twice leaves the same index
        for i in todo.drop:
            lexical.pop(i, None)
        lexical.update(todo.load)

    fast_app.index.ingest(articles)
    todo = _poll(store, state.load())
    apply(todo)
    state.save(advance(state.load(), todo))
    saved = state.load()
    assert saved.hashes == lexical == store.live_hashes() and saved.watermark > 0

    fast_app.index.ingest([_edited(articles[0])])  # the Chroma write
    todo = _poll(store, state.load())
    apply(todo)  # the lexical update ... and the process is killed before it saves its state
    assert set(todo.load) == {articles[0].id}

    after_restart = state.load()
    assert after_restart == saved  # the old watermark and hashes
    todo = _poll(store, after_restart)
    assert set(todo.load) == {articles[0].id}  # applied again: harmless
    apply(todo)
    state.save(advance(after_restart, todo))
    assert _poll(store, state.load()).empty
    assert state.load().hashes == lexical == store.live_hashes()


def test_plan_tolerates_skew_and_duplicates() -> None:
    applied = Applied({"a": "h1", "b": "h1"}, watermark=1000.0)
    assert applied.read_from() == 1000.0 - SKEW_SECONDS and Applied().read_from() == 0.0
    slow_clock = ArticleChange("a", "ok", "h2", 1000.0 - SKEW_SECONDS / 2)  # stamped before the watermark
    todo = plan(applied, [slow_clock])
    assert todo.load == {"a": "h2"} and todo.watermark == 1000.0  # applied, and the watermark does not go back
    repeated = [ArticleChange("b", "ok", "h2", 1001.0), ArticleChange("b", "forgotten", "h2", 1002.0),
                ArticleChange("b", "ok", "h2", 1001.0), ArticleChange("c", "forgotten", "h9", 1003.0)]
    todo = plan(applied, repeated)  # the latest record of b wins; c was never applied: nothing to drop
    assert todo.load == {} and todo.drop == {"b"} and todo.watermark == 1003.0
    assert advance(applied, todo) == Applied({"a": "h1"}, 1003.0)


def test_state_file_round_trips_and_is_replaced_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    file = AppliedFile.beside(tmp_path)
    assert file.load() == Applied()
    file.save(Applied({"a": "h1"}, 12.5))
    assert file.load() == Applied({"a": "h1"}, 12.5)

    def killed(src: object, dst: object) -> None:
        raise OSError("killed while saving")

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(OSError):
        file.save(Applied({"b": "h2"}, 99.0))
    monkeypatch.undo()
    assert file.load() == Applied({"a": "h1"}, 12.5) and [p.name for p in tmp_path.iterdir()] == [file.path.name]
    file.path.write_text("{not json")
    with caplog.at_level(logging.WARNING):
        assert file.load() == Applied()  # bootstrap again
    assert "unreadable change-feed state" in caplog.text
