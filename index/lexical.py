"""Lexical matching: the tokenizer (lower-cased, stop-worded, Snowball-stemmed words) shared by the lexical engine,
queries and answering. BM25 itself is the lexical engine's (``index.lexical_engine``)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

# English function words (the usual IR stoplist: articles, pronouns, auxiliaries, question words).
STOPWORDS = frozenset("""
a about above after again against all am an and any are aren't as at be because been before being below between
both but by can cannot could couldn't did didn't do does doesn't doing don't down during each few for from
further had hadn't has hasn't have haven't having he he'd he'll he's her here here's hers herself him himself his
how how's i i'd i'll i'm i've if in into is isn't it it's its itself let's me more most mustn't my myself no nor
not of off on once only or other ought our ours ourselves out over own same shan't she she'd she'll she's should
shouldn't so some such than that that's the their theirs them themselves then there there's these they they'd
they'll they're they've this those through to too under until up very was wasn't we we'd we'll we're we've were
weren't what what's when when's where where's which while who who's whom why why's will with won't would
wouldn't you you'd you'll you're you've your yours yourself yourselves also just s t
""".split())


@lru_cache(maxsize=1)
def _stemmer():  # type: ignore[no-untyped-def]
    import Stemmer

    return Stemmer.Stemmer("english")


_WORD = re.compile(r"(?u)\b\w\w+\b")


_STEMS: dict[str, str] = {}
_MAX_STEMS = 500_000


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """Lower-cased, stop-worded, stemmed word tokens (the same for documents and queries)."""
    stems = _STEMS
    out = []
    for text in texts:
        words = [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]
        new = [w for w in dict.fromkeys(words) if w not in stems]
        if new:
            if len(stems) + len(new) > _MAX_STEMS:
                stems.clear()  # evict first, then fill every word this text needs (all of them, cached or not)
                new = list(dict.fromkeys(words))
            stems.update(zip(new, _stemmer().stemWords(new), strict=True))
        out.append([stems[w] for w in words])
    return out
