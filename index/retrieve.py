"""Passages out: hybrid retrieval over the search snapshot (index/snapshot.py). Dense candidates come from an
exact cosine scan of the chunk vectors, lexical ones from BM25 over chunks and over single sentences; every
candidate is then scored on all three signals (min-max normalised over the pool and mixed with fixed weights),
lifted when its article's date is named in the question, and, when the question names outlets, the results
interleave the best chunks of each named outlet.

A time window (``index.when``: "this week", "recently", …) is a strong preference, never a filter: the window's own
best candidates join the pool, and when the best of them scores at least ``window_evidence`` of the best overall
(calibrated on the news quiz, see README) the window holds good evidence: every in-window chunk scoring that well
is lifted by ``window_boost`` (weaker in-window chunks are not, so a broad window does not bury relevant older
reports); otherwise the ranking is the one without a window and the result says it ``fell_back``. A window
written as a full date ("before October 31, 2023") keeps the named-day ranking; it is only reported. A wish for
the newest news breaks near-ties in favour of later publication days."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date

import numpy as np

from index.embed import Embedder
from index.query import OutletMatcher, QueryPlan, plan
from index.snapshot import SearchSnapshot, SnapshotKeeper
from index.types import NO_FILTERS, Filters, Passage, TimedPassages
from index.when import TimeIntent, TimeWindow, resolve

log = logging.getLogger(__name__)


def _mask(filters: Filters, snap: SearchSnapshot) -> np.ndarray | None:
    """Rows the filters keep (None: no filter)."""
    if not filters:
        return None
    keep = np.ones(len(snap), dtype=bool)
    if filters.sources:
        keep &= np.isin(snap.source_array, list(filters.sources))
    if filters.since is not None:
        keep &= snap.timestamps >= filters.since
    if filters.until is not None:
        keep &= snap.timestamps <= filters.until
    if filters.articles is not None:
        wanted = filters.articles
        keep &= np.fromiter((a in wanted for a in snap.article_ids), dtype=bool, count=len(snap))
    return keep


@dataclass(frozen=True)
class RetrievalConfig:
    """Depths and weights of the hybrid search (chosen on MultiHop-RAG dev questions; see README)."""

    depth: int = 100  # candidates taken from each of dense, chunk BM25 and sentence BM25
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


class Retriever:
    """Hybrid search over the current search snapshot (``SnapshotKeeper``)."""

    def __init__(self, snapshots: SnapshotKeeper, embedder: Embedder, config: RetrievalConfig = RetrievalConfig()
                 ) -> None:
        self.snapshots = snapshots
        self.embedder = embedder
        self.config = config
        self._matcher = OutletMatcher([])
        self._matched: SearchSnapshot | None = None  # the snapshot whose outlets _matcher knows

    def _outlets(self) -> OutletMatcher:
        """The outlet matcher of the current snapshot, rebuilt when the snapshot is another one (also when it was
        loaded before this retriever existed, as ``Index.size()`` does before the first search)."""
        snap = self.snapshots.current()
        if snap is not self._matched:
            self._matcher, self._matched = OutletMatcher(snap.known_sources), snap
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

    def _search_time(self, question: str, k: int, filters: Filters, window: TimeWindow | None, recency: bool,
                     as_of: date | None) -> TimedPassages:
        lex = self.snapshots.current()
        if not len(lex):
            return TimedPassages([], window)
        cfg = self.config
        query_plan = self.plan(question)
        vector = self.embedder.embed([question])[0]
        dense = lex.dense(vector)
        allowed = _mask(filters, lex)
        chunk_bm25 = lex.scores(question)
        sentence_scores = _memo(lex.sentence_scores)  # clauses, phrases and the question often coincide
        # each part of a multi-part question pulls its own best-matching sentence
        parts = (query_plan.clauses if cfg.split_clauses else ()) or (question,)
        sent_bm25 = np.max(np.stack([_unit(sentence_scores(c)) for c in parts]), 0)
        if allowed is not None:
            chunk_bm25 = np.where(allowed, chunk_bm25, 0.0)
            sent_bm25 = np.where(allowed, sent_bm25, 0.0)

        pool = _top(dense if allowed is None else np.where(allowed, dense, -np.inf), cfg.depth, above=-np.inf)
        pool |= _top(chunk_bm25, cfg.depth) | _top(sent_bm25, cfg.depth)
        outlet_masks = [np.isin(lex.source_array, list(g)) for g in query_plan.outlets]
        if allowed is not None:
            outlet_masks = [m & allowed for m in outlet_masks]
        for m in outlet_masks:
            pool |= _top(np.where(m, chunk_bm25, 0.0), cfg.outlet_depth)
            pool |= _top(np.where(m, sent_bm25, 0.0), cfg.outlet_depth)

        def fuse(candidates: set[int]) -> tuple[np.ndarray, np.ndarray, float]:
            """Rows, their fused scores (not yet divided by the returned scale) and that scale."""
            rows = np.fromiter(sorted(candidates), dtype=np.int64)
            chunk_level = cfg.dense_weight * _minmax(dense[rows]) + (1 - cfg.dense_weight) * _minmax(chunk_bm25[rows])
            fused = (1 - cfg.sentence_weight) * chunk_level + cfg.sentence_weight * _minmax(sent_bm25[rows])
            scale = 1.0
            if cfg.phrase_weight:  # lift chunks holding a sentence that matches one descriptive phrase well
                phrases = query_plan.phrases or (question,)
                fused = fused + cfg.phrase_weight * _phrase_match(sentence_scores, phrases, rows, allowed)
                scale += cfg.phrase_weight
            if query_plan.days and cfg.date_boost:
                fused = fused + cfg.date_boost * np.isin(lex.days[rows], list(query_plan.days))
                scale += cfg.date_boost
            return rows, fused, scale

        rows, fused, scale = fuse(pool) if pool else (np.zeros(0, dtype=np.int64), np.zeros(0), 1.0)
        fell_back = False
        if window is not None and query_plan.days and len(rows):
            # a date written out in full ("on October 22, 2023", "before December 5, 2023") is ranked as it always
            # was (date_boost); the window only reports whether it held good evidence
            w_inside = _in_window(window, lex)[rows]
            best_in = float(fused[w_inside].max()) if w_inside.any() else 0.0
            fell_back = not (best_in > 0 and best_in >= cfg.window_evidence * float(fused.max()))
        elif window is not None:
            inside = _in_window(window, lex) if allowed is None else _in_window(window, lex) & allowed
            extra = _top(np.where(inside, dense, -np.inf), cfg.window_depth, above=-np.inf) \
                | _top(np.where(inside, chunk_bm25, 0.0), cfg.window_depth) \
                | _top(np.where(inside, sent_bm25, 0.0), cfg.window_depth)
            fell_back = True
            if extra:
                w_rows, w_fused, w_scale = fuse(pool | extra)
                w_inside = inside[w_rows]
                best_in = float(w_fused[w_inside].max()) if w_inside.any() else 0.0
                good = cfg.window_evidence * float(w_fused.max())
                if best_in > 0 and best_in >= good:  # lift the window's good evidence, not all it holds
                    fell_back = False
                    lift = cfg.window_boost * (w_inside & (w_fused >= good))
                    rows, fused, scale = w_rows, w_fused + lift, w_scale + cfg.window_boost
        if not len(rows):
            return TimedPassages([], window, fell_back)
        fused = fused / scale
        if recency:
            fused = fused + _recency_lift(fused, lex.days[rows], as_of, cfg.recency_margin)
        order = _interleave(rows, fused, [m[rows] for m in outlet_masks], cfg.outlet_boost, k)
        out = []
        for i in order:
            r = int(rows[i])
            out.append(replace(lex.passage(r, float(fused[i])), dense=float(dense[r]), lexical=float(chunk_bm25[r])))
        return TimedPassages(out, window, fell_back)


def _in_window(window: TimeWindow, snap: SearchSnapshot) -> np.ndarray:
    """Rows whose publication day lies in the window (rows without a date never do)."""
    days = snap.days
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


def _phrase_match(sentence_scores: Callable[[str], np.ndarray], phrases: tuple[str, ...], rows: np.ndarray,
                  allowed: np.ndarray | None) -> np.ndarray:
    """For each candidate row, how well its best sentence matches the question's best-served phrase: the
    sentence BM25 of each phrase scaled by that phrase's best candidate, the maximum over phrases, squared
    so that only close matches lift a chunk much."""
    best = np.zeros(len(rows), dtype=np.float32)
    for phrase in phrases:
        s = sentence_scores(phrase)[rows]
        if allowed is not None:
            s = np.where(allowed[rows], s, 0.0)
        top = float(s.max()) if len(s) else 0.0
        if top > 0:
            np.maximum(best, s / top, out=best)
    return best * best


def _memo(fn: Callable[[str], np.ndarray]) -> Callable[[str], np.ndarray]:
    """``fn`` computed once per distinct text (for one search)."""
    seen: dict[str, np.ndarray] = {}

    def once(text: str) -> np.ndarray:
        if text not in seen:
            seen[text] = fn(text)
        return seen[text]

    return once


def _unit(x: np.ndarray) -> np.ndarray:
    top = float(x.max()) if len(x) else 0.0
    return x / top if top > 0 else x


def _minmax(x: np.ndarray) -> np.ndarray:
    if not len(x):
        return x
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
