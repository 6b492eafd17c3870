"""Followed topics: which of the articles new since the last round match a topic, as one-sentence digest lines.

Matching is the product's own retrieval (``search(topic, k, Filters(articles=new))``) restricted to the new
articles, kept when the matching chunk's dense cosine similarity to the topic reaches ``min_similarity``
(calibrated in docs/discord.md), one line per article and none for near-identical text (syndicated copies)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from bot.grounded import best_sentence
from index import NO_FILTERS, Filters
from index.types import Passage

NEAR_IDENTICAL = 0.8  # word-set overlap (Jaccard) at which two summaries count as the same story
CANDIDATES_PER_LINE = 4  # passages searched per digest line wanted (several chunks of one article compete)
_WORD = re.compile(r"\w+")


class TopicSearch(Protocol):
    """What following needs from an index (``index.Index`` provides it)."""

    def search(self, question: str, k: int = 10, filters: Filters = NO_FILTERS) -> list[Passage]: ...


@dataclass(frozen=True)
class DigestLine:
    """One new article matching a followed topic, summarised by its most topic-relevant quotable sentence."""

    topic: str
    article_id: str
    title: str
    source: str
    url: str
    published_at: str
    sentence: str
    similarity: float


def _words(text: str) -> frozenset[str]:
    return frozenset(w.casefold() for w in _WORD.findall(text))


def near_identical(a: str, b: str) -> bool:
    """Do two texts share almost all their words (the same story from another feed)?"""
    wa, wb = _words(a), _words(b)
    return bool(wa and wb) and len(wa & wb) / len(wa | wb) >= NEAR_IDENTICAL


def digest(search: TopicSearch, topics: Sequence[str], new_ids: frozenset[str], *, min_similarity: float,
           most: int) -> tuple[list[DigestLine], int]:
    """The digest lines for one channel (at most ``most``, best match first) and how many more matched."""
    if not new_ids or not topics:
        return [], 0
    found: list[DigestLine] = []
    seen: set[str] = set()
    k = max(most, len(new_ids)) * CANDIDATES_PER_LINE
    for topic in topics:
        for p in search.search(topic, k, Filters(articles=new_ids)):
            if p.dense < min_similarity or p.article_id in seen or p.article_id not in new_ids:
                continue
            sentence = best_sentence(topic, p) or p.text
            if any(near_identical(sentence, line.sentence) or near_identical(p.title, line.title) for line in found):
                seen.add(p.article_id)
                continue
            seen.add(p.article_id)
            found.append(DigestLine(topic, p.article_id, p.title, p.source, p.url, p.published_at, sentence, p.dense))
    found.sort(key=lambda line: -line.similarity)
    return found[:most], max(0, len(found) - most)
