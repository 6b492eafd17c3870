"""Passages out: hybrid retrieval over the store's HNSW index (dense) and the host's lexical engine (BM25 over
chunks and over single sentences), neither copied into the process. Candidates come from a few top-k queries —
dense from Chroma, chunk BM25 and best-sentence BM25 per question part from the lexical engine, the same per named
outlet — and the pool is then re-scored exactly on all three signals (min-max normalised over the pool and mixed
with fixed weights), lifted when its article's date is named in the question, and, when the question names outlets,
the results interleave the best chunks of each named outlet. Selection is exact: a chunk in the top of a maximum over
question parts is in the top of the part that attains it.

Dense candidates under a filter: when the filter keeps enough of the index that ``depth / kept fraction`` chunks fit
one query, the unfiltered HNSW result is over-fetched and post-filtered (fast); a selective filter (a week, an
article set) is handed to Chroma as a ``where`` (slower per query, but exact). Only chunks the lexical engine holds
(articles completely stored and applied from the change feed) are ever returned.

A time window (``index.when``: "this week", "recently", …) is a strong preference, never a filter: the window's own
best candidates join the pool, and when the best of them scores at least ``window_evidence`` of the best overall
(calibrated on the news quiz, see README) the window holds good evidence: every in-window chunk scoring that well
is lifted by ``window_boost`` (weaker in-window chunks are not, so a broad window does not bury relevant older
reports); otherwise the ranking is the one without a window and the result says it ``fell_back``. A window
written as a full date ("before October 31, 2023") keeps the named-day ranking; it is only reported. A wish for
the newest news breaks near-ties in favour of later publication days."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from index.embed import Embedder
from index.lexical import tokenize
from index.lexical_engine import chunk_key
from index.query import OutletMatcher, QueryPlan, plan
from index.types import NO_FILTERS, Filters, Passage, Sentence, TimedPassages
from index.when import TimeIntent, TimeWindow, resolve

if TYPE_CHECKING:
    from index.follower import Follower
    from index.lexical_engine import ChunkInfo, TantivyEngine

log = logging.getLogger(__name__)

TZ_SLACK = 14 * 3600  # a publication day as written may lie this far either side of its UTC timestamp


@dataclass(frozen=True)
class RetrievalConfig:
    """Depths and weights of the hybrid search (chosen on MultiHop-RAG dev questions; see README)."""

    depth: int = 100  # candidates taken from each of dense, chunk BM25 and sentence BM25 (per question part)
    dense_fetch: int = 300  # HNSW results read per question: the first ``depth`` are candidates, the rest only
    # give other candidates their exact cosine (fewer vectors fetched by id)
    outlet_depth: int = 50  # lexical candidates taken per outlet named in the question
    dense_weight: float = 0.4  # dense vs chunk BM25, within the chunk-level score
    sentence_weight: float = 0.3  # best-sentence BM25 (per question part) vs the chunk-level score
    phrase_weight: float = 0.2  # best sentence per descriptive phrase of the question (pool-normalised)
    date_boost: float = 0.3  # added when the article's publication day is named in the question
    outlet_boost: float = 0.3  # added for named outlets when choosing the very first result
    outlet_aware: bool = True
    split_clauses: bool = True  # score sentences against each part of a multi-part question
    window_depth: int = 50  # candidates taken from each of dense, chunk BM25 and sentence BM25 inside a time window
    window_boost: float = 1.0  # added to in-window chunks when the window holds good evidence
    window_evidence: float = 0.6  # "good evidence": best in-window score / best overall score, at least this
    recency_margin: float = 0.1  # newest-news questions: how far behind the best a later article may be lifted


class Stages:
    """Milliseconds spent in each stage of one search (``Retriever.last_stages``), for the benches."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}
        self._t = time.perf_counter()

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self.ms[name] = self.ms.get(name, 0.0) + (now - self._t) * 1000
        self._t = now


class Retriever:
    """Hybrid search over the store (dense) and the host's lexical engine, kept current by ``Follower``."""

    def __init__(self, follower: Follower, embedder: Embedder, config: RetrievalConfig = RetrievalConfig()) -> None:
        self.follower = follower
        self.embedder = embedder
        self.config = config
        self._matcher = OutletMatcher([])
        self._matched = -1  # the follower generation whose outlets _matcher knows
        self.last_stages: dict[str, float] = {}

    def _outlets(self) -> OutletMatcher:
        """The outlet matcher of the engine as it is now (rebuilt whenever the follower's view changed)."""
        engine = self.follower.current()
        if self.follower.generation != self._matched:
            self._matcher = OutletMatcher(sorted(engine.outlets()))
            self._matched = self.follower.generation
        return self._matcher

    def plan(self, question: str) -> QueryPlan:
        found = plan(question, self._outlets())
        return found if self.config.outlet_aware else replace(found, outlets=())

    def time_intent(self, question: str, as_of: date) -> TimeIntent:
        """``index.when.resolve`` with the index's outlet names read as names, not time: "Business Today | Latest
        Stock Market News" says nothing about today or the latest news."""
        spans = self._outlets().spans(question)
        if not spans:
            return resolve(question, as_of)
        masked, names = question, {}
        for i, (start, end) in reversed(list(enumerate(spans))):
            mark = f"\ue000{chr(0xE100 + i)}"
            names[mark] = question[start:end]
            masked = masked[:start] + mark + masked[end:]
        intent = resolve(masked, as_of)
        for mark, name in names.items():
            intent = replace(intent, topic=intent.topic.replace(mark, name),
                             expression=intent.expression.replace(mark, name))
        return intent

    def search(self, question: str, k: int = 10, filters: Filters = NO_FILTERS) -> list[Passage]:
        """The ``k`` best passages for ``question``, best first; ``score`` is the fused relevance in [0, 1]."""
        return self._search_time(question, k, filters, None, False, None).passages

    def search_time(self, question: str, k: int = 10, filters: Filters = NO_FILTERS, *,
                    window: TimeWindow | None = None, recency: bool = False, as_of: date | None = None,
                    topic: str = "") -> TimedPassages:
        """``search`` with a preference for ``window`` (falling back to the whole index when it holds no good
        evidence) and, with ``recency``, for the latest of comparably relevant passages published by ``as_of``.

        ``topic`` is the question without its time words: it is what is matched, unless the question writes a date
        out in full (then the question is, for the named-day boost); when the window falls back, the result is
        exactly ``search(question)``."""
        if topic and topic != question and not self.plan(question).days:
            found = self._search_time(topic, k, filters, window, recency, as_of)
            if found.fell_back:
                return TimedPassages(self._search_time(question, k, filters, None, recency, as_of).passages,
                                     window, True)
            return found
        return self._search_time(question, k, filters, window, recency, as_of)

    # -- candidates ------------------------------------------------------------------------------------------
    def _dense(self, engine: TantivyEngine, vector: np.ndarray, n: int, filters: Filters,
               known: dict[str, float]) -> dict[str, float]:
        """The ``n`` chunks nearest to ``vector`` among those the filters keep: over-fetched and post-filtered when
        the filter is broad, pre-filtered by Chroma when it is selective. Every cosine the queries returned (more
        than ``n`` when over-fetched: ``dense_fetch``) goes into ``known``, saving those chunks' vectors later."""
        store, cfg = self.follower.store, self.config
        if not filters:
            hits = store.nearest(vector, max(n, cfg.dense_fetch))
            known.update(hits)
            return dict(hits[:n])
        kept = engine.count(filters)
        if not kept:
            return {}
        want = math.ceil(n * len(engine) / kept)  # enough when the kept chunks are spread evenly
        if want <= store.query_limit:
            hits = store.nearest(vector, max(want, cfg.dense_fetch))
            known.update(hits)
            info = engine.describe(i for i, _ in hits)
            articles = None if filters.articles is None else frozenset(chunk_key(a) for a in filters.articles)
            found = {i: s for i, s in hits if i in info and _keeps(filters, info[i], articles)}
            if len(found) >= min(n, kept) // 2:
                return dict(list(found.items())[:n])
        hits = store.nearest(vector, n, _where(filters))
        known.update(hits)
        return dict(hits)

    def _lexical(self, engine: TantivyEngine, question: str, parts: Iterable[str], n: int, filters: Filters,
                 best: dict[str, float] | None = None) -> tuple[set[str], set[str]]:
        """Chunks of the ``n`` best chunk BM25 for the question, and of the ``n`` best sentences of each part (of
        which the ``n`` best by the maximum over parts are kept, once their scores are known); ``best`` receives
        each part's best sentence score."""
        chunks = {i for i, _ in engine.search_chunks(tokenize([question])[0], n, filters)}
        sentences: set[str] = set()
        for part in parts:
            found = engine.search_sentences(tokenize([part])[0], n, filters)
            sentences |= {i for i, _ in found}
            if best is not None:
                best[part] = found[0][1] if found else 0.0
        return chunks, sentences

    def _search_time(self, question: str, k: int, filters: Filters, window: TimeWindow | None, recency: bool,
                     as_of: date | None) -> TimedPassages:
        stages = Stages()
        vector = self.embedder.embed([question])[0]
        stages.mark("embed")
        engine = self.follower.current()
        stages.mark("follow")
        if not len(engine):
            self.last_stages = stages.ms
            return TimedPassages([], window)
        cfg = self.config
        query_plan = self.plan(question)
        parts = (query_plan.clauses if cfg.split_clauses else ()) or (question,)
        terms = _memo(lambda text: tokenize([text])[0])
        # each part's best sentence anywhere the filters allow (its sentence scores are relative to it), and the
        # candidate sets: (chunk ids kept whole, sentence candidates of which the best ``depth`` are kept)
        part_top: dict[str, float] = {}
        lexical = [(*self._lexical(engine, question, parts, cfg.depth, filters, part_top), cfg.depth)]
        outlet_filters = [f for f in (_with_sources(filters, g) for g in query_plan.outlets) if f is not None]
        for f in outlet_filters:
            lexical.append((*self._lexical(engine, question, parts, cfg.outlet_depth, f), cfg.outlet_depth))
        stages.mark("lexical")
        known: dict[str, float] = {}  # every exact cosine the dense queries returned
        dense_hits = self._dense(engine, vector, cfg.depth, filters, known)
        pool_dense = set(dense_hits)
        window_lexical: list[tuple[set[str], set[str], int]] = []
        in_window_filter = _window_filters(window, filters) if window is not None and not query_plan.days else None
        if in_window_filter is not None:
            window_dense = self._dense(engine, vector, cfg.window_depth, in_window_filter, known)
            dense_hits.update(window_dense)
            window_lexical = [(set(window_dense), set(), 0),
                              (*self._lexical(engine, question, parts, cfg.window_depth, in_window_filter),
                               cfg.window_depth)]
        stages.mark("dense")

        wanted = set(dense_hits).union(*(c | s for c, s, _ in lexical + window_lexical))
        info = engine.describe(wanted)  # chunks of articles not (yet) applied are left out
        ids = sorted(info)
        if not ids:
            self.last_stages = stages.ms
            return TimedPassages([], window)
        missing = [i for i in ids if i not in known]
        if missing:
            known.update(self.follower.store.cosines(vector, missing))
        dense = np.asarray([known.get(i, 0.0) for i in ids], dtype=np.float32)
        stages.mark("vectors")
        chunk_scores = engine.scores_for(terms(question), ids)
        chunk_bm25 = np.asarray([chunk_scores.get(i, 0.0) for i in ids], dtype=np.float32)
        sentence_scores = _memo(lambda text: _column(engine.sentence_scores_for(terms(text), ids), ids))
        sent_bm25 = np.max(np.stack([sentence_scores(p) / part_top[p] if part_top[p] > 0 else sentence_scores(p)
                                     for p in parts]), 0)
        days = np.asarray([info[i].day for i in ids])
        sources = np.asarray([info[i].source for i in ids])
        stages.mark("rescore")

        position = {i: n for n, i in enumerate(ids)}

        def pool(sources: list[tuple[set[str], set[str], int]]) -> np.ndarray:
            """Rows of the candidate sets: every chunk candidate, and the best ``n`` sentence candidates by the
            maximum over parts (the exact top of that maximum, as if it were computed over the whole index)."""
            rows = np.zeros(len(ids), dtype=bool)
            for chunks, sentences, n in sources:
                rows[[position[i] for i in chunks if i in position]] = True
                cand = np.asarray([position[i] for i in sentences if i in position], dtype=np.int64)
                if len(cand) and n > 0:
                    best = cand[np.argsort(-sent_bm25[cand], kind="stable")[:n]]
                    rows[best[sent_bm25[best] > 0]] = True
            return rows

        base = pool([(pool_dense, set(), 0), *lexical])
        outlet_masks = [np.isin(sources, list(f.sources)) for f in outlet_filters]

        def fuse(candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
            """Rows, their fused scores (not yet divided by the returned scale) and that scale."""
            rows = np.flatnonzero(candidates)
            chunk_level = cfg.dense_weight * _minmax(dense[rows]) + (1 - cfg.dense_weight) * _minmax(chunk_bm25[rows])
            fused = (1 - cfg.sentence_weight) * chunk_level + cfg.sentence_weight * _minmax(sent_bm25[rows])
            scale = 1.0
            if cfg.phrase_weight:  # lift chunks holding a sentence that matches one descriptive phrase well
                phrases = query_plan.phrases or (question,)
                fused = fused + cfg.phrase_weight * _phrase_match(sentence_scores, phrases, rows)
                scale += cfg.phrase_weight
            if query_plan.days and cfg.date_boost:
                fused = fused + cfg.date_boost * np.isin(days[rows], list(query_plan.days))
                scale += cfg.date_boost
            return rows, fused, scale

        rows, fused, scale = fuse(base) if base.any() else (np.zeros(0, dtype=np.int64), np.zeros(0), 1.0)
        fell_back = False
        inside = _in_window(window, days) if window is not None else None
        if inside is not None and query_plan.days and len(rows):
            # a date written out in full ("on October 22, 2023", "before December 5, 2023") is ranked as it always
            # was (date_boost); the window only reports whether it held good evidence
            w_inside = inside[rows]
            best_in = float(fused[w_inside].max()) if w_inside.any() else 0.0
            fell_back = not (best_in > 0 and best_in >= cfg.window_evidence * float(fused.max()))
        elif inside is not None:
            fell_back = True
            extra_rows = pool(window_lexical) & inside
            if extra_rows.any():
                w_rows, w_fused, w_scale = fuse(base | extra_rows)
                w_inside = inside[w_rows]
                best_in = float(w_fused[w_inside].max()) if w_inside.any() else 0.0
                good = cfg.window_evidence * float(w_fused.max())
                if best_in > 0 and best_in >= good:  # lift the window's good evidence, not all it holds
                    fell_back = False
                    lift = cfg.window_boost * (w_inside & (w_fused >= good))
                    rows, fused, scale = w_rows, w_fused + lift, w_scale + cfg.window_boost
        if not len(rows):
            self.last_stages = stages.ms
            return TimedPassages([], window, fell_back)
        fused = fused / scale
        if recency:
            fused = fused + _recency_lift(fused, days[rows], as_of, cfg.recency_margin)
        order = _interleave(rows, fused, [m[rows] for m in outlet_masks], cfg.outlet_boost, k)
        stages.mark("fuse")
        chosen = [ids[int(rows[i])] for i in order]
        records = engine.records(chosen)
        out = []
        for i in order:
            r = int(rows[i])
            if ids[r] in records:
                out.append(_passage(ids[r], records[ids[r]], float(fused[i]), float(dense[r]), float(chunk_bm25[r])))
        stages.mark("records")
        self.last_stages = stages.ms
        return TimedPassages(out, window, fell_back)


def _passage(chunk_id: str, record: tuple[str, Any, list[tuple[str, str]]], score: float, dense: float,
             lexical: float) -> Passage:
    """A chunk as a Passage, with the sentences it was split into (and their kinds) when it was indexed."""
    text, meta, sentences = record
    terms = tokenize([s for s, _ in sentences])
    return Passage(chunk_id=chunk_id, article_id=meta.article_id, text=text, score=score, title=meta.title,
                   source=meta.source, url=meta.url, published_at=meta.published_at, position=meta.position,
                   meta=meta, dense=dense, lexical=lexical,
                   sentences=tuple(Sentence(s, tuple(t), kind) for (s, kind), t in zip(sentences, terms, strict=True)))


def _column(scores: dict[str, float], ids: list[str]) -> np.ndarray:
    return np.asarray([scores.get(i, 0.0) for i in ids], dtype=np.float32)


def _keeps(filters: Filters, info: ChunkInfo, articles: frozenset[int] | None) -> bool:
    """Does a chunk with these columns pass the filters (``articles``: the keys of ``filters.articles``)?"""
    if filters.sources and info.source not in filters.sources:
        return False
    if filters.since is not None and info.published_ts < filters.since:
        return False
    if filters.until is not None and info.published_ts > filters.until:
        return False
    return articles is None or info.article_key in articles


def _where(filters: Filters) -> dict[str, Any] | None:
    """The filters as a Chroma ``where`` on chunk metadata."""
    clauses: list[dict[str, Any]] = []
    if filters.sources:
        clauses.append({"source": {"$in": sorted(filters.sources)}})
    if filters.since is not None:
        clauses.append({"published_ts": {"$gte": int(filters.since)}})
    if filters.until is not None:
        clauses.append({"published_ts": {"$lte": int(filters.until)}})
    if filters.articles is not None:
        clauses.append({"article_id": {"$in": sorted(filters.articles)}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _with_sources(filters: Filters, outlets: frozenset[str]) -> Filters | None:
    """``filters`` narrowed to ``outlets`` (None when they keep none of them)."""
    keep = outlets & set(filters.sources) if filters.sources else outlets
    return replace(filters, sources=tuple(sorted(keep))) if keep else None


def _window_filters(window: TimeWindow, filters: Filters) -> Filters:
    """``filters`` narrowed to the chunks that may lie in ``window`` (its days, widened by the largest time-zone
    offset: the day as written decides, see ``_in_window``)."""
    start = int(datetime.combine(window.start, datetime.min.time(), UTC).timestamp()) - TZ_SLACK
    end = int(datetime.combine(window.end + timedelta(days=1), datetime.min.time(), UTC).timestamp()) \
        + TZ_SLACK
    since = max(start, filters.since) if filters.since is not None else start
    until = min(end, filters.until) if filters.until is not None else end
    return replace(filters, since=since, until=until)


def _in_window(window: TimeWindow, days: np.ndarray) -> np.ndarray:
    """Rows whose publication day lies in the window (rows without a date never do)."""
    return (days >= window.start.isoformat()) & (days <= window.end.isoformat()) & (days != "")


def _recency_lift(fused: np.ndarray, days: np.ndarray, as_of: date | None, margin: float) -> np.ndarray:
    """Up to ``margin`` for rows within ``margin`` of the best score, in order of publication day (the newest
    gets all of it); rows published after ``as_of`` or without a date get nothing."""
    lift = np.zeros_like(fused)
    if not len(fused) or margin <= 0:
        return lift
    near = (fused >= float(fused.max()) - margin) & (days != "")
    if as_of is not None:
        near &= days <= as_of.isoformat()
    dated = sorted(set(days[near].tolist()))
    if len(dated) < 2:
        return lift
    rank = {d: i / (len(dated) - 1) for i, d in enumerate(dated)}
    for i in np.flatnonzero(near):
        lift[i] = margin * rank[str(days[i])]
    return lift


def _top(scores: np.ndarray, n: int, above: float = 0.0) -> set[int]:
    """Rows of the ``n`` highest scores that are above ``above``."""
    if n <= 0 or not len(scores):
        return set()
    n = min(n, len(scores))
    idx = np.argpartition(-scores, n - 1)[:n]
    return {int(i) for i in idx if scores[i] > above}


def _interleave(rows: np.ndarray, fused: np.ndarray, masks: list[np.ndarray], boost: float, k: int) -> list[int]:
    """Positions into ``rows``: best first; with named outlets, the best overall (named outlets lifted)
    and then the outlets' own best chunks in turn, so each named outlet is represented near the top."""
    by_score = [int(i) for i in np.argsort(-fused, kind="stable")]
    if not masks:
        return by_score[:k]
    out: list[int] = []
    seen: set[int] = set()
    named = np.any(np.stack(masks), axis=0)
    first = int(np.argmax(fused + boost * named))
    out.append(first)
    seen.add(first)
    lists = [[i for i in by_score if m[i]] for m in masks]
    depth = 0
    while len(out) < k and any(depth < len(lst) for lst in lists):
        for lst in lists:
            if depth < len(lst) and lst[depth] not in seen and len(out) < k:
                out.append(lst[depth])
                seen.add(lst[depth])
        depth += 1
    for i in by_score:
        if len(out) >= k:
            break
        if i not in seen:
            out.append(i)
            seen.add(i)
    return out


def _phrase_match(sentence_scores: Callable[[str], np.ndarray], phrases: tuple[str, ...], rows: np.ndarray
                  ) -> np.ndarray:
    """For each candidate row, how well its best sentence matches the question's best-served phrase: the
    sentence BM25 of each phrase scaled by that phrase's best candidate, the maximum over phrases, squared
    so that only close matches lift a chunk much."""
    best = np.zeros(len(rows), dtype=np.float32)
    for phrase in phrases:
        s = sentence_scores(phrase)[rows]
        top = float(s.max()) if len(s) else 0.0
        if top > 0:
            np.maximum(best, s / top, out=best)
    return best * best


def _memo(fn: Callable[[str], Any]) -> Callable[[str], Any]:
    """``fn`` computed once per distinct text (for one search)."""
    seen: dict[str, Any] = {}

    def once(text: str) -> Any:
        if text not in seen:
            seen[text] = fn(text)
        return seen[text]

    return once


def _minmax(x: np.ndarray) -> np.ndarray:
    if not len(x):
        return x
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
