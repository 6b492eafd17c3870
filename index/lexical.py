"""The search snapshot beside Chroma: BM25 over chunks and over sentences (bm25s, Snowball stemming),
per-row filter columns, the chunk vectors for exact cosine search, and each chunk's text, metadata and
sentences, so answering a question reads nothing from Chroma.

It is derived data: rebuilt from the chunks stored in Chroma and tagged with the store's version
token, so a snapshot that does not match the store is never used; the rebuild writes a new directory
and swaps it in, so a crash leaves either the old snapshot or none. bm25s (and scipy) are imported only to
build a BM25 model; scoring reads the saved score matrix with numpy.
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

from index.types import IndexVersion, Passage

log = logging.getLogger(__name__)

SNAPSHOT = "lexical"
FORMAT = 4

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


class LexicalIndex:
    """Everything retrieval needs in memory; row ``i`` is chunk ``ids[i]``."""

    def __init__(self, ids: list[str], version: str, chunks: Bm25, sentences: Bm25, owner: np.ndarray,
                 columns: dict[str, list], vectors: np.ndarray, records: list[bytes],
                 embedding_model: str = "") -> None:
        self.ids = ids
        self.version = version
        self.embedding_model = embedding_model
        self._chunks = chunks
        self._sentences = sentences
        self.owner = owner  # sentence row -> chunk row (non-decreasing)
        self._records = records  # per row, JSON [text, metadata, sentences]; decoded only for rows shown
        self.article_ids: list[str] = columns.get("article_id", [""] * len(ids))
        self.sources: list[str] = columns.get("source", [""] * len(ids))
        self.timestamps = np.asarray(columns.get("published_ts", [0] * len(ids)), dtype=np.int64)
        self.days = np.asarray(columns.get("day", [""] * len(ids)))
        self.source_array = np.asarray(self.sources)
        self.vectors = vectors  # unit vectors, float32: cosine = dot product
        self._df: dict[str, int] | None = None

    @classmethod
    def build(cls, ids: list[str], texts: Sequence[str], version: str, columns: dict[str, list],
              vectors: np.ndarray, *, sentences: Sequence[tuple[int, str]],
              records: Sequence[tuple[str, dict[str, Any]]], embedding_model: str) -> LexicalIndex:
        """Index chunk ``texts`` and their ``sentences`` (owner row, text) for BM25; ``records`` are each
        row's chunk text and metadata as a Passage shows them."""
        owner = np.asarray([o for o, _ in sentences], dtype=np.int32)
        texts_of_sentences = [s for _, s in sentences]
        matrix = np.asarray(vectors, dtype=np.float32)
        matrix = matrix.reshape(len(ids), -1) if len(ids) else np.zeros((0, 0), dtype=np.float32)
        per_row: list[list[str]] = [[] for _ in ids]
        for row, text in sentences:
            per_row[row].append(text)
        encoded = [json.dumps([text, meta, per_row[i]]).encode() for i, (text, meta) in enumerate(records)]
        return cls(list(ids), version, Bm25.build(texts), Bm25.build(texts_of_sentences), owner,
                   columns, matrix, encoded, embedding_model)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def known_sources(self) -> list[str]:
        return sorted({s for s in self.sources if s})

    def passage(self, row: int, score: float) -> Passage:
        """Chunk ``row`` as a Passage, with the sentences it was split into at indexing time."""
        text, m, sentences = json.loads(self._records[row])
        return Passage(chunk_id=self.ids[row], article_id=str(m.get("article_id", "")), text=text, score=score,
                       title=str(m.get("title", "")), source=str(m.get("source", "")), url=str(m.get("url", "")),
                       published_at=str(m.get("published_at", "")), position=int(m.get("position", 0)), meta=m,
                       sentences=tuple(sentences))

    def meta(self, row: int) -> dict[str, Any]:
        """The stored metadata of chunk ``row``."""
        return dict(json.loads(self._records[row])[1])

    def dense(self, vector: np.ndarray) -> np.ndarray:
        """Cosine similarity of every chunk to a unit ``vector``."""
        if not len(self.ids):
            return np.zeros(0, dtype=np.float32)
        return self.vectors @ np.asarray(vector, dtype=np.float32)

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
            (tmp / "records.jsonl").write_bytes(b"\n".join(self._records))
            (tmp / "ids.json").write_text(json.dumps(self.ids))
            (tmp / "columns.json").write_text(json.dumps({
                "article_id": self.article_ids, "source": self.sources,
                "published_ts": self.timestamps.tolist(), "day": self.days.tolist()}))
            (tmp / "version.json").write_text(json.dumps({"version": self.version, "rows": len(self.ids),
                                                          "format": FORMAT, "embedding_model": self.embedding_model}))
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

    @staticmethod
    def tag(data_dir: Path) -> IndexVersion | None:
        """The version and embedding model of the saved snapshot, without loading it; None when there is
        none of the current format."""
        try:
            meta = json.loads((data_dir / SNAPSHOT / "version.json").read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            return None
        return IndexVersion(str(meta.get("version", "")), str(meta.get("embedding_model", "")))

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
            blob = (target / "records.jsonl").read_bytes()
            index = cls(ids, str(meta.get("version", "")), Bm25.load(target / "chunks"),
                        Bm25.load(target / "sentences"), np.load(target / "owner.npy"), columns,
                        np.load(target / "vectors.npy"), blob.split(b"\n") if blob else [],
                        str(meta.get("embedding_model", "")))
        except (OSError, ValueError, KeyError):
            log.debug("no usable lexical snapshot in %s", target, exc_info=True)
            return None
        if not len(ids) == meta.get("rows") == len(index.vectors) == len(index._records):
            return None
        return index
