"""Split an article body into sentence-aligned chunks that fit the embedding model's window.

The body is tokenised once; each chunk keeps the token ids it was measured with, so the embedder never
tokenises it again, and no chunk is ever cut silently by the model.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass

from index.types import Article, Chunk

Tokenize = Callable[[str], tuple[list[int], list[tuple[int, int]]]]
_PARAGRAPH = re.compile(r"[^\n]+")
# blingfire ends a sentence where a reader would not; _mend joins the piece back to the sentence before it:
_CLOSED_QUOTE = re.compile(r"[.?!…][\"'”’]+$")  # '"Who is it?"' ...
_CONTINUES = re.compile(r"[a-z]")  # ... 'asked Roos.': a lowercase start continues the quotation's sentence
_ONLY_QUOTES = re.compile(r"[\"'”’]+$")  # a closing quote left on its own
_TITLE_ABBREVIATION = re.compile(r"(?:^|\s)(?:Mr|Mrs|Ms|Dr|Prof|Gov|Sen|Rep|Gen|Lt|Sgt|Capt|Col|vs)\.$")
_NUMBER_ABBREVIATION = re.compile(r"(?:^|\s)No\.$")  # "No. || 1 seed"; "St." is left alone: "Main St. The…"


@dataclass(frozen=True)
class TokenChunk:
    """A chunk together with the model token ids of its text."""

    chunk: Chunk
    ids: list[int]


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text``; every line break also ends a sentence."""
    import blingfire

    spans: list[tuple[int, int]] = []
    for para in _PARAGRAPH.finditer(text):
        piece = para.group()
        if not piece.strip():
            continue
        base = para.start()
        for a, b in _mend(piece, _locate(piece, blingfire)):
            if piece[a:b].strip():
                spans.append((base + a, base + b))
    return spans


def _mend(piece: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Join a span to the one before it where blingfire split inside a sentence: after a quotation followed by
    its lowercase attribution, before a lone closing quote, and after a title such as "Mr." or "vs."."""
    out: list[tuple[int, int]] = []
    for a, b in spans:
        if out:
            before, text = piece[out[-1][0]:out[-1][1]].rstrip(), piece[a:b].strip()
            if ((_CLOSED_QUOTE.search(before) and _CONTINUES.match(text)) or _ONLY_QUOTES.match(text)
                    or (_TITLE_ABBREVIATION.search(before) and text[:1].isalnum())
                    or (_NUMBER_ABBREVIATION.search(before) and text[:1].isdigit())):
                out[-1] = (out[-1][0], b)
                continue
        out.append((a, b))
    return out


def _locate(piece: str, blingfire) -> list[tuple[int, int]]:  # type: ignore[no-untyped-def]
    """Sentence spans in one paragraph. blingfire's own offsets function is a slow Python loop, so the
    sentences it returns are found in the paragraph with str.find, falling back to it only when needed."""
    try:
        sentences = blingfire.text_to_sentences(piece).split("\n")
    except (UnicodeError, ValueError):
        return [(0, len(piece))]
    out: list[tuple[int, int]] = []
    cursor = 0
    for sentence in sentences:
        if not sentence:
            continue
        at = piece.find(sentence, cursor)
        if at < 0:  # blingfire normalised something inside the sentence
            try:
                return list(blingfire.text_to_sentences_and_offsets(piece)[1])
            except (UnicodeError, ValueError):
                return [(0, len(piece))]
        out.append((at, at + len(sentence)))
        cursor = at + len(sentence)
    return out


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text`` as strings."""
    return [text[a:b].strip() for a, b in sentence_spans(text)]


def chunk_article(article: Article, tokenize: Tokenize, budget: int, overlap_sentences: int = 0) -> list[TokenChunk]:
    """Pack whole sentences into chunks of at most ``budget`` tokens; only an over-long sentence is split."""
    body = article.body
    ids, offsets = tokenize(body)
    if not ids:
        return []
    starts = [a for a, _ in offsets]
    units: list[tuple[int, int]] = []  # token ranges of sentences (or of pieces of an over-long sentence)
    for a, b in sentence_spans(body):
        lo = bisect.bisect_left(starts, a)
        hi = bisect.bisect_left(starts, b)
        while hi - lo > budget:
            cut = lo + budget
            while cut > lo + budget // 2 and offsets[cut][0] == offsets[cut - 1][1]:
                cut -= 1  # don't split inside a word
            units.append((lo, cut))
            lo = cut
        if hi > lo:
            units.append((lo, hi))
    out: list[TokenChunk] = []
    i = 0
    while i < len(units):
        j = i
        while j + 1 < len(units) and units[j + 1][1] - units[i][0] <= budget:
            j += 1
        lo, hi = units[i][0], units[j][1]
        start, end = offsets[lo][0], offsets[hi - 1][1]
        position = len(out)
        chunk = Chunk(id=f"{article.id}:{position}", article_id=article.id, position=position,
                      start=start, end=end, text=body[start:end])
        out.append(TokenChunk(chunk, ids[lo:hi]))
        i = max(j + 1 - overlap_sentences, i + 1) if overlap_sentences else j + 1
    return out
