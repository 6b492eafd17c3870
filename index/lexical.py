"""Lexical matching: the tokenizer (lower-cased, stop-worded, Snowball-stemmed words) shared by indexing, queries
and answering, and a BM25 model kept as its term-by-document score matrix. bm25s (and scipy) are imported only
to build a model; scoring reads the score matrix with numpy."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

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


class Bm25:
    """One BM25 model over a list of texts (rows), kept as its term-by-document score matrix (CSC arrays)."""

    def __init__(self, data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, vocab: dict[str, int],
                 rows: int) -> None:
        self._data = data  # column t holds the BM25 weight of term t in each document containing it
        self._indices = indices
        self._indptr = indptr
        self.vocab = vocab
        self.rows = rows

    @classmethod
    def build(cls, texts: Sequence[str]) -> Bm25:
        if not texts:
            return cls(np.zeros(0, np.float32), np.zeros(0, np.int32), np.zeros(1, np.int64), {}, 0)
        import bm25s

        model = bm25s.BM25(k1=1.2, b=0.75)  # the default "lucene" variant: no score for absent terms
        model.index(tokenize(texts), show_progress=False)
        m = model.scores
        return cls(np.asarray(m["data"], np.float32), np.asarray(m["indices"]), np.asarray(m["indptr"]),
                   dict(model.vocab_dict), len(texts))

    def scores(self, terms: Sequence[str]) -> np.ndarray:
        """Every row's score, as bm25s's ``get_scores``: a term's column is added once per occurrence."""
        out = np.zeros(self.rows, dtype=np.float32)
        for term in terms:
            col = self.vocab.get(term)
            if col is not None:
                lo, hi = self._indptr[col], self._indptr[col + 1]
                out[self._indices[lo:hi]] += self._data[lo:hi]  # a column lists each row at most once
        return out

    def doc_freq(self) -> dict[str, int]:
        counts = np.diff(self._indptr)
        return {t: int(counts[i]) for t, i in self.vocab.items() if i < len(counts)}

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        for name, array in (("data", self._data), ("indices", self._indices), ("indptr", self._indptr)):
            np.save(path / f"{name}.npy", array)
        (path / "vocab.json").write_text(json.dumps(self.vocab))
        (path / "rows.json").write_text(json.dumps({"rows": self.rows}))

    @classmethod
    def load(cls, path: Path) -> Bm25:
        arrays = [np.load(path / f"{name}.npy") for name in ("data", "indices", "indptr")]
        return cls(*arrays, json.loads((path / "vocab.json").read_text()),
                   json.loads((path / "rows.json").read_text())["rows"])
