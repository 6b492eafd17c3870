"""Extractive answers: quote the retrieved sentences that answer the question, in the shape it asks for, or say
that the articles don't cover it.

A pure function of the question and the ranked passages (each carrying its sentences, their stemmed terms and
whether they are quotable prose) and the index's term weights. Every candidate sentence is scored on what it shares
with the question (idf-weighted, for the whole question and for its best-served phrase), on what the question asks
for (a person for "who", a date for "when", a number for "how many", a stated cause for "why"), on the outlet the
question names and on its passage's rank. Each part of a multi-part question and each named outlet first gets its
best sentence; further sentences are added greedily for their score, the question words they add and their
passage's rank, while they stay close to the best. Questions that span several outlets or articles are shown one
quote per source in date order, each led by its outlet and date. A name in the question that no article holds (not
even in a near spelling) is an abstention that says so.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date

from bot.types import Answer, Citation, Statement
from index import phrases, span_label, split_sentences, terms
from index.types import Passage, Sentence

MIN_WORDS = 4
MAX_SENTENCE_CHARS = 600
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class AnswerWeights:
    """How a candidate sentence is scored (chosen on the MultiHop-RAG dev questions; the ablation is in README)."""

    coverage: float = 1.0  # idf-weighted share of the question's terms in the sentence
    phrase: float = 0.25  # the same share for the question's best-served descriptive phrase
    cue: float = 0.15  # the sentence carries what the question asks for (a name, date, number, cause)
    outlet: float = 0.15  # the sentence comes from an outlet the question names
    rank: float = 0.4  # the retrieval score of its passage
    # greedy selection of further sentences: the next one maximises
    #   relevance * score / best + novelty * share of question words it adds + prior * rank-discounted passage
    #   score - repeat * sentences already quoted from its article
    relevance: float = 0.45
    novelty: float = 0.35
    prior: float = 0.2
    repeat: float = 0.15
    keep: float = 0.75  # ... and is taken only while it scores this share of the best sentence
    same: float = 0.8  # ... or this share when it adds no new question word
    min_gain: float = 0.1
    part_fit: float = 0.3  # each part of a multi-part question first gets its best sentence if it covers this share
    outlet_floor: float = 0.4  # each outlet the question names adds its best sentence if it scores this share


@dataclass(frozen=True)
class AnswerConfig:
    """How many sentences to quote and when the evidence is too weak to answer."""

    max_quotes: int = 5
    passages_considered: int = 10
    abstain_threshold: float = 0.30  # minimum evidence score; calibrated with `newsbot eval` (README)
    absent_name_margin: float = 0.1  # more evidence needed when a name in the question is not in the passages
    # a short question (at most this many content words) is about one thing: its words must meet in one passage,
    # missing at most this much idf (a rare word, df under ~0.7% of chunks, weighs about 5)
    short_question_words: int = 6
    short_missing_idf: float = 5.0
    closest_articles: int = 3
    weights: AnswerWeights = field(default_factory=AnswerWeights)


@dataclass(frozen=True)
class _Candidate:
    rank: int  # of its passage
    passage: Passage
    sentence: Sentence
    coverage: float
    phrase: float
    score: float


# -- what the question asks --------------------------------------------------------------------------------------
_WHO = re.compile(r"^\s*(?:who|whom|whose)\b|\b(?:which|what)\s+(?:person|individual|company|organi[sz]ation|entity|"
                  r"team|firm|group|player|country|executive|ceo|founder|figure)\b", re.I)
_WHEN = re.compile(r"^\s*when\b|\bwhat (?:year|date|day|month|time)\b", re.I)
_HOW_MANY = re.compile(r"\bhow (?:many|much|long|far|old|big)\b|\bwhat (?:percentage|share|number|amount|price)\b",
                       re.I)
_WHY = re.compile(r"^\s*(?:why|how come)\b|\bwhat (?:caused|led to|prompted|drove)\b|\bfor what reason\b|"
                  r"\bhow did .* (?:happen|come about|collapse|fail)\b", re.I)
_SAY = re.compile(r"\bwhat did .*\b(?:say|tell|announce|state|claim|argue|write|respond|reply|comment)\b|"
                  r"\bhow did .*\b(?:respond|react|reply)\b", re.I)
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)*")
_DATE = re.compile(r"\b(?:January|February|March|April|May|June|July|August|September|October|November|December|"
                   r"Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\.?\s+\d{1,2}\b|\b(?:19|20)\d{2}\b|"
                   r"\b(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|yesterday|today|last week)\b")
_NUMBER = re.compile(r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|hundred|thousand|million|billion|"
                     r"dozen|half|percent)\b", re.I)
_SPEECH = re.compile(r"[“\"](?=\w)|\b(?:said|says|told|added|stated|announced|advised|wrote|argued|"
                     r"insisted|warned|declared|responded|replied)\b", re.I)
_CAUSE = re.compile(r"\b(?:because|due to|as a result|after|since|owing to|amid|caused|led to|leading to|"
                    r"resulted in|blamed|arguing that|so that|therefore|thanks to|following|reason)\b", re.I)
# a question that compares or connects claims from several sources
_MULTI = re.compile(r"\b(?:both|compared?|comparison|while|whereas|before|after|between|consistent|inconsistent|"
                    r"same|differ|different|similar|also|and the|change in|changed)\b", re.I)


def _cue(question: str) -> Callable[[str], bool] | None:
    """What a sentence must carry to answer the question's type, as a test on its text (None: no type)."""
    if _WHY.search(question):
        return lambda s: bool(_CAUSE.search(s))
    if _SAY.search(question):
        return lambda s: bool(_SPEECH.search(s))
    if _HOW_MANY.search(question):
        return lambda s: bool(_NUMBER.search(s))
    if _WHEN.search(question):
        return lambda s: bool(_DATE.search(s))
    if _WHO.search(question):
        return lambda s: bool(_NAME.search(s))
    return None


_NAME_SPAN = re.compile(r"(?<![\w'’])((?:[A-Z][\w'’.&-]*)(?:\s+(?:of|de|von|van|al|bin|la|le|du|da)?\s*"
                        r"[A-Z][\w'’.&-]*)*)")
_NOT_NAMES = frozenset("""a an the which what who whom whose did does do is was were are has have had how why when where
considering based according in on after before between both following given if as from this that these those would
could should can will among regarding during while although and or but to for of at by with it its their comparing
compared also then there here yes no not january february march april may june july august september october november
december monday tuesday wednesday thursday friday saturday sunday""".split())
_JOIN = re.compile(r"\s+(?:and|&|or)\s+")
_SIMILAR = 0.8  # a name spelled this close to one in the evidence counts as mentioned ("White Home"/"White House")


def question_names(question: str, outlets: Sequence[str] = ()) -> list[str]:
    """The names a question asks about: capitalised spans that are not question words, dates or outlets."""
    forms = {f.lower() for o in outlets for f in (o, *(o.split(sep)[0].strip() for sep in (" - ", " | ", ": ")
                                                      if sep in o))}
    forms |= {f[4:] for f in forms if f.startswith("the ")}
    out: list[str] = []
    for m in _NAME_SPAN.finditer(question):
        for piece in _JOIN.split(m.group(1)):
            words = piece.split()
            while words and words[0].lower().strip(".,'’") in _NOT_NAMES:
                words = words[1:]
            name = re.sub(r"['’]s?$", "", " ".join(words).strip(" .,;:'’\"“”"))
            if not name or any(ch.isdigit() for ch in name) or name.lower() in forms or name.lower() in _NOT_NAMES:
                continue
            if any(f.startswith(name.lower() + " ") for f in forms) or name in out:
                continue
            out.append(name)
    return out


def _missing_names(names: Sequence[str], passages: Sequence[Passage]) -> list[str]:
    """Those ``names`` that the passages hold neither in words nor in a near-identical spelling."""
    if not names:
        return []
    import difflib

    text = " ".join(f"{p.title} {p.source} {p.text}" for p in passages)
    found = set(terms(text))
    spans: list[list[str]] | None = None
    out = []
    for name in names:
        stems = terms(name)
        if not stems or all(t in found for t in stems):
            continue
        if spans is None:
            spans = [s.split() for s in dict.fromkeys(m.group(1).lower() for m in _NAME_SPAN.finditer(text))]
        lowered = name.lower()
        width = len(lowered.split())
        windows = {" ".join(words[i:i + width]) for words in spans for i in range(max(1, len(words) - width + 1))}
        if any(difflib.SequenceMatcher(None, lowered, w).ratio() >= _SIMILAR for w in windows):
            continue
        out.append(name)
    return out


def _unmet(question: str, passages: Sequence[Passage], idf: dict[str, float], config: AnswerConfig) -> bool:
    """Is this a short question whose words meet in no passage (missing ``short_missing_idf`` or more of idf even
    in the passage that holds most of them)?"""
    wanted = [t for t in question_terms(question) if t not in _META]
    if not wanted or len(wanted) > config.short_question_words:
        return False
    missing = min((math.fsum(idf.get(t, 1.0) for t in wanted
                             if t not in ({u for s in p.sentences for u in s.terms} | set(terms(p.title))))
                   for p in passages), default=math.inf)
    return missing >= config.short_missing_idf


def _named_outlets(question: str, passages: Sequence[Passage]) -> set[str]:
    """The outlets of the passages that the question names (as written, or the part before " - " or " | ")."""
    named = set()
    for source in {p.source for p in passages if p.source}:
        forms = {source, *(source.split(sep)[0].strip() for sep in (" - ", " | ", ": ") if sep in source)}
        if any(len(f) >= 3 and re.search(rf"(?<!\w){re.escape(f)}(?!\w)", question) for f in forms):
            named.add(source)
    return named


# -- scoring -------------------------------------------------------------------------------------------------------
# Words a news question uses about its sources rather than about the story: they say nothing about which sentence
# answers it.
_META = frozenset(terms("""article report reported reporting according suggest suggested mention mentioned claim
claimed state stated say said publish published publication describe described description indicate indicated news
source piece story writer author discuss discussed cover covered coverage portray portrayed portrayal highlight
highlighted imply implied consistent inconsistent compared comparison regarding concerning involved different same
similar"""))
def question_terms(question: str, context: str = "") -> dict[str, float]:
    """Stemmed content words of the question (weight 1) and of the conversation context (weight 0.5)."""
    weights: dict[str, float] = {}
    for t in terms(context) if context else []:
        weights[t] = 0.5
    for t in terms(question):
        weights[t] = 1.0
    return weights


class _Weighted:
    """Question terms with their idf weights, summed in a fixed order (so results never depend on hashing)."""

    def __init__(self, wanted: dict[str, float], idf: dict[str, float]) -> None:
        self.items = [(t, w * idf.get(t, 1.0)) for t, w in sorted(wanted.items())]
        self.total = math.fsum(w for _, w in self.items)

    def share(self, found: frozenset[str] | set[str]) -> float:
        """The weighted share of the terms that are in ``found``."""
        return math.fsum(w for t, w in self.items if t in found) / self.total if self.total else 0.0



def _candidates(question: str, passages: Sequence[Passage], idf: dict[str, float], context: str,
                phrases: Sequence[str], weights: AnswerWeights) -> list[_Candidate]:
    wanted = {t: v for t, v in question_terms(question, context).items() if t not in _META}
    whole = _Weighted(wanted, idf)
    phrase_terms = [_Weighted({t: v for t, v in question_terms(p).items() if t in wanted}, idf) for p in phrases]
    cue = _cue(question)
    outlets = _named_outlets(question, passages)
    out: list[_Candidate] = []
    seen: set[str] = set()
    for rank, p in enumerate(passages):
        sentences = p.sentences or tuple(Sentence(t, tuple(terms(t))) for t in split_sentences(p.text))
        for s in sentences:
            key = " ".join(s.text.lower().split())
            if not s.quotable or len(_WORD.findall(s.text)) < MIN_WORDS or len(s.text) > MAX_SENTENCE_CHARS \
                    or key in seen:
                continue
            seen.add(key)
            found = frozenset(s.terms)
            coverage = whole.share(found)
            phrase = max((pt.share(found) for pt in phrase_terms), default=coverage)
            score = (weights.coverage * coverage + weights.phrase * phrase
                     + weights.cue * (cue is not None and cue(s.text))
                     + weights.outlet * (p.source in outlets) + weights.rank * p.score)
            out.append(_Candidate(rank, p, s, coverage, phrase, score))
    return out


def evidence_score(passages: Sequence[Passage], coverage: float) -> float:
    """How well the retrieved material supports an answer: dense similarity and term coverage combined."""
    if not passages:
        return 0.0
    top_dense = max(p.dense for p in passages[:3])
    return 0.5 * top_dense + 0.5 * coverage


# -- composing -----------------------------------------------------------------------------------------------------
def compose(question: str, passages: Sequence[Passage], idf: dict[str, float], *, context: str = "",
            parts: Sequence[str] = (), config: AnswerConfig = AnswerConfig(), names: Sequence[str] = (),
            unknown: Sequence[str] = ()) -> Answer:
    """An extractive, cited answer to ``question`` from ``passages`` (best first), or an abstention.

    ``parts`` are the separate claims of a multi-part question; a question with several parts, or naming several
    outlets, is answered with one quote per source in date order. ``names`` are the names the question asks about
    (``question_names``) and ``unknown`` those with a word that no indexed article holds: unless the passages hold
    a near-identical spelling, the answer says that no article mentions them."""
    w = config.weights
    considered = passages[: config.passages_considered]
    absent = _missing_names(names, considered)
    unmentioned = [n for n in unknown if n in absent]  # not even a near spelling in the passages
    if unmentioned:
        return replace(abstention(question, passages, config), missing=tuple(unmentioned), evidence=0.0)
    if _unmet(question, considered, idf, config):
        return replace(abstention(question, passages, config), evidence=0.0)
    candidates = _candidates(question, considered, idf, context, phrases(question) or parts, w)
    best_cover = max((c.coverage for c in candidates), default=0.0)
    evidence = evidence_score(passages, best_cover)
    if not candidates or evidence < config.abstain_threshold + config.absent_name_margin * bool(absent):
        return replace(abstention(question, passages, config), evidence=evidence)
    outlets = _named_outlets(question, considered)
    candidates_best = max(c.score for c in candidates)
    multi = len(outlets) >= 2 or len(parts) >= 2 or bool(_MULTI.search(question))
    wanted = {t: v for t, v in question_terms(question, context).items() if t not in _META}
    chosen = _per_part(candidates, parts, idf, context, config.max_quotes, w.part_fit)
    for outlet in sorted(outlets - {c.passage.source for c in chosen}):  # each named outlet speaks for itself
        own = max((c for c in candidates if c.passage.source == outlet and c not in chosen), key=lambda c: c.score,
                  default=None)
        if own is not None and len(chosen) < config.max_quotes and own.score >= w.outlet_floor * candidates_best:
            chosen.append(own)
    chosen = _select(candidates, config.max_quotes, w, wanted, idf, chosen)
    if multi and len(chosen) > 1:
        answer = _cite(question, sorted(chosen, key=lambda c: (c.passage.published_at or "~", c.rank)), passages,
                       lead=True)
    else:
        answer = _cite(question, chosen, passages)
    return replace(answer, evidence=evidence)


def _per_part(candidates: list[_Candidate], parts: Sequence[str], idf: dict[str, float], context: str,
              limit: int, fit: float) -> list[_Candidate]:
    """The best sentence for each part of a multi-part question, when it covers ``fit`` of that part."""
    chosen: list[_Candidate] = []
    for part in parts:
        wanted = {t: v for t, v in question_terms(part).items() if t not in _META}
        pool = [c for c in candidates if c not in chosen]
        if not wanted or not pool or len(chosen) >= limit:
            continue
        weighted = _Weighted(wanted, idf)
        fits = [weighted.share(frozenset(c.sentence.terms)) + 0.2 * _prior(c) for c in pool]
        best = max(range(len(pool)), key=fits.__getitem__)
        if fits[best] >= fit:
            chosen.append(pool[best])
    return chosen


def _prior(c: _Candidate) -> float:
    """The passage's retrieval score, discounted by its rank."""
    return c.passage.score / math.sqrt(1 + c.rank)


def _select(candidates: list[_Candidate], limit: int, w: AnswerWeights, wanted: dict[str, float],
            idf: dict[str, float], already: Sequence[_Candidate] = ()) -> list[_Candidate]:
    """Greedy: each next sentence by its score (relative to the best), the question words it adds and its
    passage's rank, less a penalty per sentence already quoted from its article; stop when what is left is weak."""
    chosen: list[_Candidate] = list(already)
    if not candidates or limit <= len(chosen):
        return chosen
    covered: set[str] = {t for c in chosen for t in c.sentence.terms if t in wanted}
    articles: dict[str, int] = {}
    for c in chosen:
        articles[c.passage.article_id] = articles.get(c.passage.article_id, 0) + 1
    best = max(c.score for c in candidates)
    weighted = _Weighted(wanted, idf)
    pool = [c for c in candidates if c not in chosen]
    while pool and len(chosen) < limit:
        gains = [w.relevance * c.score / best
                 + w.novelty * weighted.share(frozenset(t for t in c.sentence.terms if t not in covered))
                 + w.prior * _prior(c) - w.repeat * articles.get(c.passage.article_id, 0) for c in pool]
        i = max(range(len(pool)), key=gains.__getitem__)
        top = pool[i]
        adds = any(t in wanted and t not in covered for t in top.sentence.terms)
        weak = top.score < w.keep * best or gains[i] <= w.min_gain or (not adds and top.score < w.same * best)
        if chosen and weak:
            break
        chosen.append(top)
        pool.remove(top)
        covered |= {t for t in top.sentence.terms if t in wanted}
        articles[top.passage.article_id] = articles.get(top.passage.article_id, 0) + 1
    return chosen


def prose_only(passages: Sequence[Passage]) -> list[Passage]:
    """The passages with only their quotable sentences (what an LLM is shown and may cite), in retrieval order."""
    out = []
    for p in passages:
        kept = tuple(s for s in p.sentences if s.quotable)
        out.append(replace(p, text=" ".join(s.text for s in kept), sentences=kept) if kept and p.sentences else p)
    return out


def abstention(question: str, passages: Sequence[Passage], config: AnswerConfig = AnswerConfig()) -> Answer:
    """No answer; the closest articles are listed as (unquoted) pointers."""
    seen: dict[str, Passage] = {}
    for p in passages:
        if p.article_id not in seen:
            seen[p.article_id] = p
        if len(seen) >= config.closest_articles:
            break
    cites = tuple(Citation.of(n, p, ()) for n, p in enumerate(seen.values(), 1))
    return Answer(question=question, statements=(), citations=cites, abstained=True, passages=tuple(passages))


def _lead(p: Passage) -> str:
    """"Outlet, 18 Nov 2023" for a quote in a multi-source answer."""
    try:
        day = span_label(*(2 * [date.fromisoformat(p.published_at[:10])])) if p.published_at else ""
    except ValueError:
        day = p.published_at[:10]
    return ", ".join(x for x in (p.source, day) if x)


def _cite(question: str, chosen: Sequence[_Candidate], passages: Sequence[Passage], *, lead: bool = False) -> Answer:
    numbers: dict[str, int] = {}
    quotes: dict[str, list[str]] = {}
    first: dict[str, Passage] = {}
    statements = []
    for c in chosen:
        aid = c.passage.article_id
        if aid not in numbers:
            numbers[aid] = len(numbers) + 1
            first[aid] = c.passage
            quotes[aid] = []
        quotes[aid].append(c.sentence.text)
        statements.append(Statement(c.sentence.text, (numbers[aid],), _lead(c.passage) if lead else ""))
    citations = tuple(Citation.of(numbers[aid], first[aid], tuple(quotes[aid])) for aid in numbers)
    return Answer(question=question, statements=tuple(statements), citations=citations, abstained=False,
                  passages=tuple(passages))


CUT_NOTE = "answer cut at {limit:,} characters (NEWSBOT_MAX_ANSWER_CHARS)"
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*\s")


def truncate(answer: Answer, limit: int) -> Answer:
    """The answer with trailing statements dropped (or the first cut at a sentence end) so ``answer.text`` fits
    in ``limit`` characters; citations no remaining statement uses are dropped and a notice says so."""
    if answer.abstained or len(answer.text) <= limit:
        return answer
    kept: list[Statement] = []
    for s in answer.statements:
        trial = replace(answer, statements=(*kept, s))
        if len(trial.text) > limit:
            break
        kept.append(s)
    if not kept and answer.statements:
        first = answer.statements[0]
        room = max(limit - 4 - 4 * len(first.cites), 1)  # the " [n]" markers stay
        head = first.text[:room]
        ends = [m.end() for m in _SENTENCE_END.finditer(head + " ")]
        head = head[: ends[-1]].rstrip() if ends else head.rsplit(" ", 1)[0].rstrip() + "…"
        kept = [Statement(head, first.cites)]
    used = {n for s in kept for n in s.cites}
    notice = CUT_NOTE.format(limit=limit)
    return replace(answer, statements=tuple(kept), citations=tuple(c for c in answer.citations if c.n in used),
                   notice=f"{answer.notice}; {notice}" if answer.notice else notice)
