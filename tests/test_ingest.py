"""Idempotent, incremental ingest over a real Chroma in a temp dir (hash embedder for speed)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from index.errors import NewsbotError
from index.types import Article
from tests.fakes import FIXTURES


def _articles(app) -> list[Article]:  # type: ignore[no-untyped-def]
    return [a for a in app.index.load([FIXTURES / "articles.jsonl"]) if isinstance(a, Article)]


def _snapshot(app) -> tuple[list[tuple[str, str]], list[str]]:  # type: ignore[no-untyped-def]
    chunks = sorted((c.id, c.text) for c in app.index.store.iter_chunks())
    return chunks, sorted(app.index.follower.engine.chunk_ids())


def test_reingest_adds_nothing(fast_app) -> None:  # type: ignore[no-untyped-def]
    first = fast_app.index.ingest(_articles(fast_app))
    assert (first.new, first.unchanged, first.failed) == (6, 0, 0)
    before = _snapshot(fast_app)
    again = fast_app.index.ingest(_articles(fast_app))
    assert (again.new, again.updated, again.unchanged, again.chunks_added) == (0, 0, 6, 0)
    assert _snapshot(fast_app) == before
    assert again.chunks_total == first.chunks_total == len(before[0])
    assert before[1] == [cid for cid, _ in before[0]]  # the lexical engine holds exactly the stored chunks


def test_edited_article_replaces_all_its_chunks(fast_app) -> None:  # type: ignore[no-untyped-def]
    articles = _articles(fast_app)
    long = replace(articles[0], body=" ".join(["Cycling advocates marched to city hall on Friday."] * 80))
    fast_app.index.ingest([long, *articles[1:]])
    n_long = sum(1 for c in fast_app.index.store.iter_chunks() if c.meta.article_id == long.id)
    assert n_long > 1
    report = fast_app.index.ingest(articles)  # the short original again
    assert (report.updated, report.unchanged) == (1, 5)
    texts = [c.text for c in fast_app.index.store.iter_chunks() if c.meta.article_id == long.id]
    assert len(texts) == 1 and "7-2 on Monday" in texts[0]
    assert _snapshot(fast_app)[1] == sorted(c.id for c in fast_app.index.store.iter_chunks())


def test_chunk_metadata(fast_app) -> None:  # type: ignore[no-untyped-def]
    articles = _articles(fast_app)
    fast_app.index.ingest(articles)
    chunk = next(c for c in fast_app.index.store.iter_chunks() if c.meta.source == "Sports Daily")
    m = chunk.meta
    article = next(a for a in articles if a.id == m.article_id)
    assert m.title == article.title and m.url == article.url
    assert m.published_at == "2024-05-12T20:00:00+00:00" and m.published_ts == 1715544000
    assert article.body[m.start:m.end] == chunk.text and m.position == 0


def test_forget_removes_everywhere(fast_app) -> None:  # type: ignore[no-untyped-def]
    articles = _articles(fast_app)
    fast_app.index.ingest(articles)
    ids, removed = fast_app.index.forget(articles[1].url)  # by url works too
    assert ids == [articles[1].id] and removed >= 1
    assert all(c.meta.article_id != articles[1].id for c in fast_app.index.store.iter_chunks())
    assert fast_app.index.stats().as_dict()["articles"] == 5
    held = fast_app.index.follower.engine.article_ids()
    assert len(held) == 5 and articles[1].id not in held
    with pytest.raises(NewsbotError, match="no article"):
        fast_app.index.forget(articles[1].id)


def test_bad_record_stores_nothing_partial(fast_app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "mixed.jsonl"
    f.write_text(json.dumps({"title": "Good one", "body": "A perfectly fine article body."}) + "\n"
                 + json.dumps({"title": "Bad one", "body": ["not", "text"]}) + "\n")
    report = fast_app.index.ingest(fast_app.index.load([f]))
    assert (report.new, report.failed) == (1, 1)
    assert report.errors[0].record == 2
    assert [c.meta.title for c in fast_app.index.store.iter_chunks()] == ["Good one"]


def test_stats(fast_app) -> None:  # type: ignore[no-untyped-def]
    fast_app.index.ingest(_articles(fast_app))
    s = fast_app.index.stats().as_dict()
    assert s["articles"] == 6 and s["chunks"] >= 6
    assert s["sources"] == ["Culture Weekly", "Market Wire", "Riverside Gazette", "Sports Daily"]
    assert s["first_published"].startswith("2024-03-04") and s["last_published"].startswith("2024-09-02")
    assert s["embedding_model"] == "test/hash-bow"


def test_interrupted_write_is_invisible_and_repaired(fast_app) -> None:  # type: ignore[no-untyped-def]
    """Chunks written without their catalogue record (a crash) are not retrieved, and re-ingest fixes them."""
    articles = _articles(fast_app)
    fast_app.index.ingest(articles[:5])
    clean = _snapshot(fast_app)
    # simulate a kill between the chunk write and the commit record of article 6
    from index.ingest import ChunkingConfig, chunk_metadata, content_hash, prepare

    a = articles[5]
    chunks, ids = prepare(a, fast_app.index.embedder, ChunkingConfig())
    digest = content_hash(a, ChunkingConfig(), fast_app.index.embedder.name)
    fast_app.index.store._chunks.add(ids=[tc.chunk.id for tc in chunks], documents=[tc.chunk.text for tc in chunks],
                               metadatas=[chunk_metadata(a, tc, digest).as_dict() for tc in chunks],
                               embeddings=fast_app.index.embedder.embed_ids(ids))
    fast_app.index.store.bump_version()
    hits = fast_app.index.search("museum textile loom", k=10)
    assert all(p.article_id != a.id for p in hits)
    report = fast_app.index.ingest(articles)
    assert (report.new, report.unchanged) == (1, 5)
    assert len(_snapshot(fast_app)[0]) == len(clean[0]) + len(chunks)
