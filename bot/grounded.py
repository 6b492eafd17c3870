"""Verify a model's reply against the passages it was shown: only valid citations survive, only cited sources list."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import replace

from bot.answer import abstention
from bot.mentions import ZWSP, neutralise_mentions
from bot.types import Answer, Citation, Statement
from index import split_sentences, terms
from index.types import Passage

NOT_COVERED = "NOT_IN_SOURCES"  # the reply the system prompt asks for when the sources don't answer
UNCITED_MARK = "[uncited]"
MAX_QUOTES_PER_SOURCE = 3
__all__ = ["ZWSP", "neutralise_mentions", "verify", "best_sentence", "answer_matches", "says_not_covered"]

_THINK = re.compile(r"<think>.*?(</think>|\Z)", re.S | re.I)
_SOURCES_SECTION = re.compile(r"^[ \t>#*_]*(?:sources|references|citations)[ \t*_]*(?::.*)?$", re.I | re.M)
_MARKER_GROUP = re.compile(r"\[\^?\s*(?:sources?\s*)?(\d{1,3}(?:\s*[,;]\s*(?:sources?\s*)?\d{1,3})*)\s*\]", re.I)
_ALT_MARKER = re.compile(r"\(\s*sources?\s*(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\s*\)|【\s*(\d{1,3})\s*】", re.I)
_MARKER = re.compile(r"\[(\d+)\]")
_LEADING_MARKERS = re.compile(r"^((?:\[\d+\]\s*)+)")
_CITED_END = re.compile(r"((?:\[\d+\])+)\s*([.!?]+[\"'”’)]*)[ \t]+")
_END_CITED = re.compile(r"([.!?]+[\"'”’)]*)[ \t]*((?:\[\d+\])+)[ \t]+")
_BULLET = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+")
_WORD = re.compile(r"\w+")


class MalformedReply(ValueError):
    """The reply is not an answer in the required format (empty, or no sentence cites a shown source)."""


def says_not_covered(reply: str) -> bool:
    """Does the reply (after any reasoning block) open with the not-covered sentinel?"""
    body = _THINK.sub("", reply).strip().lstrip("*_`\"'“ ").upper()
    return body.startswith(NOT_COVERED)


def verify(question: str, reply: str, shown: Sequence[Passage], *, uncited: str = "drop", model: str = "",
           retrieved: Sequence[Passage] = ()) -> Answer:
    """An ``Answer`` (mode "llm") built only from the reply's sentences that cite passages in ``shown`` (1-based).

    Invalid markers are removed; a sentence left uncited is dropped (``uncited="drop"``) or kept with
    ``UNCITED_MARK`` (``"mark"``); sources are renumbered by first use, one per article, each quoting the
    sentence of its passage that best matches the citing statement. The not-covered sentinel gives an
    abstention. Raises MalformedReply when nothing in the reply cites a shown passage.
    """
    passages = tuple(retrieved) or tuple(shown)
    if says_not_covered(reply):
        return replace(abstention(question, passages), mode="llm", model=model)
    sentences = _sentences(reply)
    if not sentences:
        raise MalformedReply("the reply was empty")
    numbers: dict[str, int] = {}  # article id -> new citation number
    first: dict[str, Passage] = {}
    quotes: dict[str, list[str]] = {}
    statements: list[Statement] = []
    for text, markers in sentences:
        valid = [n for n in dict.fromkeys(markers) if 1 <= n <= len(shown)]
        if not valid:
            if uncited == "mark" and _WORD.search(text):
                statements.append(Statement(f"{text} {UNCITED_MARK}", ()))
            continue
        cites: list[int] = []
        for n in valid:
            p = shown[n - 1]
            aid = p.article_id
            if aid not in numbers:
                numbers[aid] = len(numbers) + 1
                first[aid] = p
                quotes[aid] = []
            quote = best_sentence(text, p)
            quote = neutralise_mentions(quote)
            if quote and quote not in quotes[aid] and len(quotes[aid]) < MAX_QUOTES_PER_SOURCE:
                quotes[aid].append(quote)
            if numbers[aid] not in cites:
                cites.append(numbers[aid])
        statements.append(Statement(text, tuple(cites)))
    if not numbers:
        raise MalformedReply("no sentence cites a source it was shown")
    citations = tuple(Citation.of(numbers[aid], first[aid], tuple(quotes[aid])) for aid in numbers)
    return Answer(question=question, statements=tuple(statements), citations=citations, abstained=False,
                  passages=passages, mode="llm", model=model)


def _sentences(reply: str) -> list[tuple[str, list[int]]]:
    """(clean text, citation numbers) per sentence, markers that open a sentence given to the one before."""
    text = _THINK.sub("", reply)
    section = _SOURCES_SECTION.search(text)
    if section:
        text = text[: section.start()]
    text = _ALT_MARKER.sub(lambda m: "[" + (m.group(1) or m.group(2)) + "]", text)
    text = _MARKER_GROUP.sub(lambda m: "".join(f"[{n}]" for n in re.findall(r"\d+", m.group(1))), text)
    text = _CITED_END.sub(lambda m: f"{m.group(1)}{m.group(2)}\n", text)  # a cited sentence ends at its markers
    text = _END_CITED.sub(lambda m: f"{m.group(1)}{m.group(2)}\n", text)
    out: list[tuple[str, list[int]]] = []
    for line in text.splitlines():
        line = _BULLET.sub("", line).replace("**", "").strip().lstrip("#").strip()
        if not line:
            continue
        for sentence in split_sentences(line):
            lead = _LEADING_MARKERS.match(sentence)
            if lead and out:
                out[-1][1].extend(int(n) for n in _MARKER.findall(lead.group(1)))
                sentence = sentence[lead.end():]
            markers = [int(n) for n in _MARKER.findall(sentence)]
            clean = _tidy(_MARKER.sub(" ", sentence.replace(NOT_COVERED, " ")))
            if clean and _WORD.search(clean):
                out.append((neutralise_mentions(clean), markers))
            elif markers and out:
                out[-1][1].extend(markers)
    return out


def _tidy(text: str) -> str:
    text = " ".join(text.split())
    text = re.sub(r"\s+([.,;:!?])", r"\1", text)
    return re.sub(r"([.!?])\1+$", r"\1", text).strip()


def best_sentence(statement: str, passage: Passage) -> str:
    """The quotable sentence of the passage sharing the most (stemmed, idf-free) content words with the statement."""
    candidates = [(s.text, set(s.terms)) for s in passage.sentences if s.quotable and s.text.strip()]
    if not candidates:
        candidates = [(s, set(terms(s))) for s in split_sentences(passage.text) if s.strip()]
    if not candidates:
        return ""
    want = set(terms(statement))

    def overlap(i: int) -> float:
        found = candidates[i][1]
        return len(want & found) / math.sqrt(len(found) or 1)

    return candidates[max(range(len(candidates)), key=lambda i: (overlap(i), -i))][0]


def _normal(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return " ".join(_WORD.findall(text))


def answer_matches(predicted: str, gold: str) -> bool:
    """Does a generated answer contain the gold answer (MultiHop-RAG style)? Yes/no golds must open the answer."""
    p, g = _normal(_MARKER.sub(" ", predicted)), _normal(gold)
    if not g:
        return False
    if g in ("yes", "no"):
        first = p.split()[:3]
        return g in first and ("no" if g == "yes" else "yes") not in first
    if g.startswith("insufficient information"):
        return not p or NOT_COVERED.lower() in p or "don t seem to cover" in p or "insufficient" in p
    return f" {g} " in f" {p} "
