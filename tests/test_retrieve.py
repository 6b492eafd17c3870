"""Hybrid retrieval, filters and extractive answers on the fixture corpus (hash embedder)."""

from __future__ import annotations

from index import Filters
from index.load import timestamp
from index.types import Article
from tests.fakes import FIXTURES


def _ingest(app) -> None:  # type: ignore[no-untyped-def]
    app.index.ingest([a for a in app.index.load([FIXTURES / "articles.jsonl"]) if isinstance(a, Article)])


def test_hybrid_ranks_the_relevant_article_first(fast_app) -> None:  # type: ignore[no-untyped-def]
    _ingest(fast_app)
    hits = fast_app.index.search("Why were water restrictions imposed in the valley?", k=3)
    assert hits[0].title == "Drought forces water restrictions across the valley"
    assert hits[0].score >= hits[-1].score
    assert 0.0 <= hits[-1].score <= 1.0


def test_source_and_date_filters(fast_app) -> None:  # type: ignore[no-untyped-def]
    _ingest(fast_app)
    hits = fast_app.index.search("Harbor Tech revenue", k=10, filters=Filters(sources=("Riverside Gazette",)))
    assert hits and {p.source for p in hits} == {"Riverside Gazette"}
    since = timestamp("2024-08-01T00:00:00+00:00")
    hits = fast_app.index.search("Harbor Tech", k=10, filters=Filters(since=since))
    assert hits and all(p.published_at >= "2024-08-01" for p in hits)


def test_article_filter_and_article_ids(fast_app) -> None:  # type: ignore[no-untyped-def]
    _ingest(fast_app)
    ids = fast_app.index.article_ids()
    assert len(ids) == 6 and fast_app.index.version()
    drought = fast_app.index.search("water restrictions", k=1)[0].article_id
    others = ids - {drought}
    hits = fast_app.index.search("water restrictions", k=10, filters=Filters(articles=others))
    assert hits and drought not in {p.article_id for p in hits}
    assert fast_app.index.search("water restrictions", k=10, filters=Filters(articles=frozenset())) == []


def test_answer_quotes_and_cites(fast_app) -> None:  # type: ignore[no-untyped-def]
    _ingest(fast_app)
    answer = fast_app.answerer.ask("How much did Harbor Tech revenue grow in the first quarter?")
    assert not answer.abstained
    first = answer.statements[0]
    assert "34 percent" in first.text and first.cites == (1,)
    c1 = answer.citations[0]
    assert c1.title == "Harbor Tech reports record quarterly revenue" and first.text in c1.quotes
    assert [c.n for c in answer.citations] == list(range(1, len(answer.citations) + 1))
    cited = {n for s in answer.statements for n in s.cites}
    assert cited == {c.n for c in answer.citations}  # only cited sources are listed


def test_unrelated_question_abstains_with_closest_articles(fast_app) -> None:  # type: ignore[no-untyped-def]
    _ingest(fast_app)
    answer = fast_app.answerer.ask("What did the astronaut eat on the lunar base?")
    assert answer.abstained and not answer.statements
    assert 1 <= len(answer.citations) <= 3


def test_question_limits(fast_app) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from index.errors import NewsbotError

    _ingest(fast_app)
    with pytest.raises(NewsbotError, match="empty"):
        fast_app.answerer.ask(" \u200b\t ")
    with pytest.raises(NewsbotError, match="NEWSBOT_MAX_QUESTION_CHARS"):
        fast_app.answerer.ask("why " * 2000)


def test_outlets_are_known_when_the_snapshot_was_loaded_before_the_first_search(fast_app) -> None:  # type: ignore[no-untyped-def]
    _ingest(fast_app)
    assert fast_app.index.size() > 0  # the CLI and Discord load the snapshot before the retriever exists
    found = fast_app.index.retriever.plan("What did the Riverside Gazette report on Harbor Tech?")
    assert found.outlets == (frozenset({"Riverside Gazette"}),)


def test_pool_vectors_come_from_a_bounded_cache_emptied_when_the_store_changes(fast_app) -> None:  # type: ignore[no-untyped-def]
    """An embedded store reads a candidate's vector once, then from its cache (at most ``vector_cache_size``); a
    write, or reopening after another process's write, empties it (an updated article may keep its chunk ids)."""
    import numpy as np

    _ingest(fast_app)
    store = fast_app.index.follower.store
    store.vector_cache_size = 4
    reads: list[int] = []
    real = store.vectors
    store.vectors = lambda ids: reads.append(len(ids)) or real(ids)  # type: ignore[method-assign]
    ids = sorted(fast_app.index.follower.engine.chunk_ids())[:6]
    vector = np.asarray(real(ids[:1])[ids[0]])
    first = store.cosines(vector, ids)
    assert reads == [6] and len(store._vector_cache) == 4 and abs(first[ids[0]] - 1.0) < 1e-5
    cached = list(store._vector_cache)
    assert store.cosines(vector, cached) == {i: first[i] for i in cached}
    assert reads == [6]  # all four from the cache
    fast_app.index.ingest([Article(id="zebra", title="Zebra", body="Zebras crossed the road on Sunday.")])
    assert len(store._vector_cache) == 0
    store.cosines(vector, cached)
    assert reads == [6, 4]
    store.reopen()
    assert len(store._vector_cache) == 0
