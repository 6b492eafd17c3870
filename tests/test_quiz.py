"""The weekly-news quiz over MultiHop-RAG (bench/quiz/multihop-quiz.jsonl): its shape, and that each question's
time words, read on its as_of day, point at the article that answers it."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from index.when import resolve

ROOT = Path(__file__).resolve().parents[1]
QUIZ = ROOT / "bench" / "quiz" / "multihop-quiz.jsonl"
CORPUS = Path("/work/shared/data/multihop-rag/corpus.json.gz")
MAX_DAYS_AFTER = 6


def _rows() -> list[dict]:
    return [json.loads(line) for line in QUIZ.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_quiz_shape() -> None:
    rows = _rows()
    assert 40 <= len(rows) <= 60
    assert len({r["query"] for r in rows}) == len(rows)
    for r in rows:
        assert set(r) == {"query", "as_of", "answer", "question_type", "evidence_list"}
        assert r["question_type"] == "quiz"
        (ev,) = r["evidence_list"]
        assert set(ev) == {"url", "title", "source", "published_at", "fact"}
        assert r["answer"] and r["answer"] in ev["fact"], r["query"]
        assert len(r["answer"].split()) <= 4, r["answer"]
        published = date.fromisoformat(ev["published_at"][:10])
        assert 0 <= (date.fromisoformat(r["as_of"]) - published).days <= MAX_DAYS_AFTER, r["query"]


def test_time_words_point_at_the_article() -> None:
    rows = _rows()
    kinds: Counter[str] = Counter()
    for r in rows:
        intent = resolve(r["query"], date.fromisoformat(r["as_of"]))
        published = date.fromisoformat(r["evidence_list"][0]["published_at"][:10])
        if intent.window is not None:
            assert intent.window.contains(published), (r["query"], intent.window.label)
        kinds[intent.expression.lower() or ("recency" if intent.recency else "none")] += 1
    assert 0.4 <= kinds["this week"] / len(rows) <= 0.6
    assert kinds["yesterday"] and kinds["recently"] and kinds["this month"] and kinds["recency"] and kinds["none"]
    assert any(e.startswith("on ") for e in kinds)


@pytest.mark.skipif(not CORPUS.exists(), reason="the MultiHop-RAG corpus is not on this machine")
def test_facts_are_verbatim_in_their_articles() -> None:
    with gzip.open(CORPUS, "rt", encoding="utf-8") as f:
        bodies = {a["url"]: a["body"] for a in json.load(f)}
    for r in _rows():
        ev = r["evidence_list"][0]
        assert ev["fact"] in bodies[ev["url"]], r["query"]
