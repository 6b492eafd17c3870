"""The search snapshot beside Chroma: BM25 over chunks and over sentences (bm25s, Snowball stemming),
per-row filter columns, and a copy of the chunk vectors for exact re-scoring of candidates.

It is derived data: rebuilt from the chunks stored in Chroma and tagged with the store's version
token, so a snapshot that does not match the store is never used; the rebuild writes a new directory
and swaps it in, so a crash leaves either the old snapshot or none.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

SNAPSHOT = "lexical"
FORMAT = 3

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
        new = [w for w in words if w not in stems]
        if new:
            if len(stems) > _MAX_STEMS:
                stems.clear()
            stems.update(zip(new, _stemmer().stemWords(new), strict=True))
        out.append([stems[w] for w in words])
    return out


class Bm25:
    """One BM25 model over a list of texts (rows)."""

    def __init__(self, model: Any, rows: int) -> None:
        self._model = model
        self.rows = rows
        self.vocab: dict[str, int] = (getattr(model, "vocab_dict", None) or {}) if rows else {}

    @classmethod
    def build(cls, texts: Sequence[str]) -> Bm25:
        import bm25s

        model = bm25s.BM25(k1=1.2, b=0.75)
        if texts:
            model.index(tokenize(texts), show_progress=False)
        return cls(model, len(texts))

    def scores(self, terms: Sequence[str]) -> np.ndarray:
        known = [t for t in terms if t in self.vocab]
        if not known or not self.rows:
            return np.zeros(self.rows, dtype=np.float32)
        return np.asarray(self._model.get_scores(known), dtype=np.float32)

    def doc_freq(self) -> dict[str, int]:
        scores = getattr(self._model, "scores", None)
        if scores is None or not self.vocab:
            return {}
        counts = np.diff(np.asarray(scores["indptr"]))
        return {t: int(counts[i]) for t, i in self.vocab.items() if i < len(counts)}

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        if self.rows:
            self._model.save(str(path), show_progress=False)
        (path / "rows.json").write_text(json.dumps({"rows": self.rows}))

    @classmethod
    def load(cls, path: Path) -> Bm25:
        import bm25s

        rows = json.loads((path / "rows.json").read_text())["rows"]
        model = bm25s.BM25.load(str(path), mmap=False) if rows else bm25s.BM25()
        return cls(model, rows)


class LexicalIndex:
    """Everything retrieval needs in memory; row ``i`` is chunk ``ids[i]``."""

    def __init__(self, ids: list[str], version: str, chunks: Bm25, sentences: Bm25, owner: np.ndarray,
                 columns: dict[str, list], vectors: np.ndarray, sentence_texts: list[str]) -> None:
        self.ids = ids
        self.version = version
        self._chunks = chunks
        self._sentences = sentences
        self.owner = owner  # sentence row -> chunk row (non-decreasing)
        self.sentence_texts = sentence_texts
        self.article_ids: list[str] = columns.get("article_id", [""] * len(ids))
        self.sources: list[str] = columns.get("source", [""] * len(ids))
        self.titles: list[str] = columns.get("title", [""] * len(ids))
        self.timestamps = np.asarray(columns.get("published_ts", [0] * len(ids)), dtype=np.int64)
        self.days = np.asarray(columns.get("day", [""] * len(ids)))
        self.source_array = np.asarray(self.sources)
        self.vectors = vectors  # unit vectors, float32, for exact cosine of candidates
        self._row = {cid: i for i, cid in enumerate(ids)}
        self._df: dict[str, int] | None = None

    @classmethod
    def build(cls, ids: list[str], texts: Sequence[str], version: str, columns: dict[str, list],
              vectors: np.ndarray, sentences: Sequence[tuple[int, str]] = ()) -> LexicalIndex:
        """Index chunk ``texts`` and their ``sentences`` (owner row, text) for BM25."""
        owner = np.asarray([o for o, _ in sentences], dtype=np.int32)
        texts_of_sentences = [s for _, s in sentences]
        matrix = np.asarray(vectors, dtype=np.float32)
        matrix = matrix.reshape(len(ids), -1) if len(ids) else np.zeros((0, 0), dtype=np.float32)
        return cls(list(ids), version, Bm25.build(texts), Bm25.build(texts_of_sentences), owner,
                   columns, matrix, texts_of_sentences)

    def __len__(self) -> int:
        return len(self.ids)

    def row(self, chunk_id: str) -> int | None:
        return self._row.get(chunk_id)

    @property
    def known_sources(self) -> list[str]:
        return sorted({s for s in self.sources if s})

    def sentences(self, row: int) -> tuple[str, ...]:
        """The sentences of chunk ``row`` as split at indexing time."""
        lo, hi = np.searchsorted(self.owner, [row, row + 1])
        return tuple(self.sentence_texts[lo:hi])

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every chunk for ``query`` (zeros when no query word is in the index)."""
        return self._chunks.scores(tokenize([query])[0])

    def sentence_scores(self, query: str) -> np.ndarray:
        """For every chunk, the BM25 score of its best-matching sentence."""
        out = np.zeros(len(self.ids), dtype=np.float32)
        if self._sentences.rows:
            np.maximum.at(out, self.owner, self._sentences.scores(tokenize([query])[0]))
        return out

    def idf(self, terms: Sequence[str]) -> dict[str, float]:
        """Inverse document frequency of stemmed terms over chunks (unknown terms get the highest value)."""
        if self._df is None:
            self._df = self._chunks.doc_freq()
        n = max(len(self.ids), 1)
        return {t: float(np.log(1 + (n - self._df.get(t, 0) + 0.5) / (self._df.get(t, 0) + 0.5))) for t in terms}

    # -- persistence -------------------------------------------------------------------------------------
    def save(self, data_dir: Path) -> None:
        """Write the snapshot to ``data_dir/lexical`` atomically (new directory swapped in)."""
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".lexical-", dir=data_dir))
        try:
            self._chunks.save(tmp / "chunks")
            self._sentences.save(tmp / "sentences")
            np.save(tmp / "owner.npy", self.owner)
            np.save(tmp / "vectors.npy", self.vectors)
            (tmp / "sentences.json").write_text(json.dumps(self.sentence_texts))
            (tmp / "ids.json").write_text(json.dumps(self.ids))
            (tmp / "columns.json").write_text(json.dumps({
                "article_id": self.article_ids, "source": self.sources, "title": self.titles,
                "published_ts": self.timestamps.tolist(), "day": self.days.tolist()}))
            (tmp / "version.json").write_text(json.dumps({"version": self.version, "rows": len(self.ids),
                                                          "format": FORMAT}))
            target = data_dir / SNAPSHOT
            old = data_dir / f".lexical-old-{os.getpid()}"
            try:
                if target.exists():
                    os.replace(target, old)
                os.replace(tmp, target)
            except OSError:  # another process sharing this data dir swapped its snapshot in at the same moment
                log.debug("search snapshot in %s was replaced concurrently; keeping the other one", data_dir)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def load(cls, data_dir: Path) -> LexicalIndex | None:
        """The saved snapshot, or None when there is none, it is unreadable or of an older format."""
        target = data_dir / SNAPSHOT
        try:
            meta = json.loads((target / "version.json").read_text())
            if meta.get("format") != FORMAT:
                return None
            ids = json.loads((target / "ids.json").read_text())
            columns = json.loads((target / "columns.json").read_text())
            index = cls(ids, str(meta.get("version", "")), Bm25.load(target / "chunks"),
                        Bm25.load(target / "sentences"), np.load(target / "owner.npy"), columns,
                        np.load(target / "vectors.npy"), json.loads((target / "sentences.json").read_text()))
        except (OSError, ValueError, KeyError):
            log.debug("no usable lexical snapshot in %s", target, exc_info=True)
            return None
        if len(ids) != meta.get("rows") or len(index.vectors) != len(ids):
            return None
        return index
