"""The BM25 side of retrieval (bm25s with Snowball stemming), persisted beside Chroma.

It is derived data: rebuilt from the chunks stored in Chroma and tagged with the store's version
token, so a snapshot that does not match the store is never used; the rebuild writes a new directory
and swaps it in, so a crash leaves either the old snapshot or none.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

SNAPSHOT = "lexical"

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


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """Lower-cased, stop-worded, stemmed word tokens (the same for documents and queries)."""
    import bm25s

    return bm25s.tokenize(list(texts), stopwords=list(STOPWORDS), stemmer=_stemmer(), return_ids=False, show_progress=False)


class LexicalIndex:
    """BM25 scores over every chunk; ``ids[i]`` is the chunk id of row ``i``."""

    def __init__(self, retriever: object, ids: list[str], version: str,
                 columns: dict[str, list] | None = None) -> None:
        self._bm25 = retriever
        self.ids = ids
        self.version = version
        columns = columns or {}
        self.article_ids: list[str] = columns.get("article_id", [""] * len(ids))
        self.sources: list[str] = columns.get("source", [""] * len(ids))
        self.timestamps = np.asarray(columns.get("published_ts", [0] * len(ids)), dtype=np.int64)
        self._row = {cid: i for i, cid in enumerate(ids)}
        self._vocab: dict[str, int] = getattr(retriever, "vocab_dict", {}) or {}

    @classmethod
    def build(cls, ids: list[str], texts: Sequence[str], version: str,
              columns: dict[str, list] | None = None) -> LexicalIndex:
        """Index ``texts``; ``columns`` holds per-row article_id, source and published_ts for filtering."""
        import bm25s

        retriever = bm25s.BM25(k1=1.2, b=0.75)
        if ids:
            retriever.index(tokenize(texts), show_progress=False)
        return cls(retriever, list(ids), version, columns)

    def row(self, chunk_id: str) -> int | None:
        return self._row.get(chunk_id)

    def __len__(self) -> int:
        return len(self.ids)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every chunk for ``query`` (zeros when no query word is in the index)."""
        if not self.ids:
            return np.zeros(0, dtype=np.float32)
        terms = [t for t in tokenize([query])[0] if t in self._vocab]
        if not terms:
            return np.zeros(len(self.ids), dtype=np.float32)
        return np.asarray(self._bm25.get_scores(terms), dtype=np.float32)  # type: ignore[attr-defined]

    def idf(self, terms: Sequence[str]) -> dict[str, float]:
        """Inverse document frequency of stemmed terms (unknown terms get the highest value)."""
        n = max(len(self.ids), 1)
        out = {}
        df = self._doc_freq()
        for t in terms:
            k = df.get(t, 0)
            out[t] = float(np.log(1 + (n - k + 0.5) / (k + 0.5)))
        return out

    def _doc_freq(self) -> dict[str, int]:
        if not hasattr(self, "_df"):
            scores = getattr(self._bm25, "scores", None)
            df: dict[str, int] = {}
            if scores is not None and self._vocab:
                indptr = np.asarray(scores["indptr"])
                counts = np.diff(indptr)
                df = {t: int(counts[i]) for t, i in self._vocab.items() if i < len(counts)}
            self._df = df
        return self._df

    # -- persistence -------------------------------------------------------------------------------------
    def save(self, data_dir: Path) -> None:
        """Write the snapshot to ``data_dir/lexical`` atomically (new directory swapped in)."""
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".lexical-", dir=data_dir))
        try:
            if self.ids:
                self._bm25.save(str(tmp), show_progress=False)  # type: ignore[attr-defined]
            (tmp / "ids.json").write_text(json.dumps(self.ids))
            (tmp / "columns.json").write_text(json.dumps({"article_id": self.article_ids, "source": self.sources,
                                                          "published_ts": self.timestamps.tolist()}))
            (tmp / "version.json").write_text(json.dumps({"version": self.version, "rows": len(self.ids)}))
            target = data_dir / SNAPSHOT
            old = data_dir / f".lexical-old-{os.getpid()}"
            try:
                if target.exists():
                    os.replace(target, old)
                os.replace(tmp, target)
            except OSError:  # another process sharing this dir swapped its snapshot in at the same moment
                log.debug("lexical snapshot in %s was replaced concurrently; keeping the other one", data_dir)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def load(cls, data_dir: Path) -> LexicalIndex | None:
        """The saved snapshot, or None when there is none or it is unreadable."""
        import bm25s

        target = data_dir / SNAPSHOT
        try:
            meta = json.loads((target / "version.json").read_text())
            ids = json.loads((target / "ids.json").read_text())
            columns = json.loads((target / "columns.json").read_text())
            retriever = bm25s.BM25.load(str(target), mmap=False) if ids else bm25s.BM25()
        except (OSError, ValueError, KeyError):
            log.debug("no usable lexical snapshot in %s", target, exc_info=True)
            return None
        if len(ids) != meta.get("rows"):
            return None
        return cls(retriever, ids, str(meta.get("version", "")), columns)
