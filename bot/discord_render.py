"""Answers as Discord messages: Markdown, limits and splitting; pure text in, text out (no discord import)."""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence

from bot.follow import DigestLine
from bot.mentions import neutralise_mentions
from bot.types import Answer, Citation
from index.types import Article, IndexStats

MESSAGE_LIMIT = 2000  # characters in one message
EMBED_DESCRIPTION_LIMIT = 4096  # characters in an embed description (answers are sent as messages, not embeds)
EMBED_TOTAL_LIMIT = 6000  # characters across all embeds of one message
CHOICE_LIMIT = 25  # autocomplete choices shown at once
CHOICE_TEXT_LIMIT = 100  # characters in a choice's name or value
THREAD_NAME_LIMIT = 100  # characters in a thread name
TITLE_LIMIT = 200  # an article title longer than this is shortened in the sources block
URL_LIMIT = 512  # a longer URL is not linked
PASSAGE_CHARS = 500  # most characters of a passage shown when a citation has no quoted sentence
MAX_FOLLOWUPS = 5  # most messages one answer is split into; anything longer is cut with a note
OUTLETS_SHOWN = 30  # outlets listed by /sources
MIN_FILL = 0.5  # a preferred split point must fill at least this share of a piece

COOLDOWN_TEXT = "Easy there: you can {action} again in {seconds} s."
NO_EDITORS_TEXT = ("Nobody can {action} here: no editor role is configured (NEWSBOT_DISCORD_EDITOR_ROLE_IDS is "
                   "empty; an admin can set it).")
NOT_EDITOR_TEXT = "Only members with an editor role can {action} here."
LINKS_PER_MESSAGE = 3  # most links added from one posted message
DIGEST_SENTENCE_CHARS = 300  # a digest line's summary sentence is shortened past this
DIGEST_TITLE_CHARS = 100
TOPICS_SHOWN = 25  # topics listed by /following
TOPIC_CHARS = 100  # longest followed topic
BAD_TOPIC_TEXT = f"A topic is a few words to search for (at most {TOPIC_CHARS} characters), e.g. “reservoir levels”."
BUSY_TEXT = "I'm answering a lot of questions right now; please try again in a minute."
APOLOGY_TEXT = "Sorry, something went wrong while answering. The problem has been logged; please try again later."
NOT_HERE_TEXT = "I'm not enabled in this channel."
DMS_OFF_TEXT = "I don't answer direct messages here; ask me with /ask in a server channel."
ABSTAIN_HINT = "Try rephrasing it, or use /sources to see what I know."
DRAFT_FAILED_TEXT = "_(This draft could not be finished.)_"
DRAFT_MARK = "✍️ drafting…"  # ends every edit of a streamed draft until the verified answer replaces it

# Spans a split must never cut: links, citation markers (with the word before them), Markdown, escapes.
_ATOMS: list[re.Pattern[str]] = [re.compile(p) for p in (
    r"\[(?:\\.|[^\]\\\n])*\]\(<[^>\s]*>\)",  # masked link with preview suppressed
    r"\[(?:\\.|[^\]\\\n])*\]\([^)\s]*\)",  # masked link
    r"<[^<>\s]{1,600}>",  # <url>, mentions, channels, custom emoji, timestamps
    r"https?://[^\s<>]+",  # bare URL
    r"\S+[ \t]+(?:\[\d+\])+(?![(\[])",  # last word of a sentence with its citation markers
    r"(?:\[\d+\])+(?!\()",  # a run of citation markers (not a link's text)
    r"```[\s\S]*?```",  # code block
    r"`[^`\n]+`",  # inline code
    r"\*\*[^*\n]+?\*\*", r"__[^_\n]+?__", r"~~[^~\n]+?~~", r"\|\|[^|\n]+?\|\|",  # bold, underline, strike, spoiler
    r"(?<![\\*])\*[^*\s][^*\n]*?\*(?!\*)", r"(?<![\\\w])_[^_\s][^_\n]*?_(?!\w)",  # italics
    r"\\.",  # an escaped character
)]
# when a protected stretch is longer than a message, the cut may separate a sentence's last word from its markers,
# never a link or a run of markers
_CORE_ATOMS = [a for a in _ATOMS if not a.pattern.startswith(r"\S+[ \t]+")]
_PARAGRAPH = re.compile(r"\n[ \t]*\n")
_LINE = re.compile(r"\n")
_SENTENCE = re.compile(r"[.!?…][\"'”’)\]]*(?:[ \t]*(?:\[\d+\])+)?(?=\s)")
_SPACE = re.compile(r"\s")
_MARKDOWN = re.compile(r"([\\*_~`|\[\]])")
_LINE_START = re.compile(r"^([#>\-+])", re.M)
_USER_TAG = re.compile(r"<(?:@[!&]?|#)\d+>")  # a mention or channel link, dropped from thread names
_MENTION = re.compile(r"@(everyone|here)")
_NUMBERED = re.compile(r"^(\d+)\.", re.M)


# -- text safety ---------------------------------------------------------------------------------------------
def escape(text: str) -> str:
    """Article or user text shown literally: Markdown disarmed, mentions broken with a zero-width space."""
    text = _MARKDOWN.sub(r"\\\1", text)
    text = _LINE_START.sub(r"\\\1", text)
    text = _NUMBERED.sub(r"\1\\.", text)
    return neutralise_mentions(text)


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# -- answers -------------------------------------------------------------------------------------------------
def source_line(c: Citation) -> str:
    """``[n] [Title](<url>) — Outlet · date``; the angle brackets stop Discord from previewing the link."""
    title = escape(_shorten(c.title or c.url or "untitled", TITLE_LIMIT))
    url = c.url.strip()
    linkable = url.startswith(("https://", "http://")) and len(url) <= URL_LIMIT and not re.search(r"[\s<>]", url)
    head = f"[{title}](<{url}>)" if linkable else title
    meta = " · ".join(escape(x) for x in c.outlet_date)
    return f"[{c.n}] {head}" + (f" — {meta}" if meta else "")


def sources_block(citations: Sequence[Citation], heading: str = "Sources") -> str:
    """A bold heading and one compact line per citation."""
    return "\n".join([f"**{heading}**"] + [source_line(c) for c in citations])


def render_answer(answer: Answer) -> str:
    """The whole answer as Discord Markdown: cited sentences, then the sources block (may exceed one message)."""
    parts: list[str] = []
    if answer.notice:
        parts.append(f"_{escape(answer.notice)}_")
    if answer.abstained:
        text = f"{escape(answer.abstain_text)} {ABSTAIN_HINT}"
        parts.append(text)
        if answer.citations:
            parts.append(sources_block(answer.citations, heading="Closest articles"))
        return "\n\n".join(parts)
    if answer.window and answer.window.headline:
        parts.append(f"_{escape(answer.window.headline)}_")
    if answer.timeline:  # a compact dated list, oldest first
        body = "\n".join(f"• **{escape(s.lead)}**: {escape(s.text.strip())} {''.join(f'[{n}]' for n in s.cites)}"
                         .rstrip() if s.lead else f"• {escape(s.text.strip())}" for s in answer.statements)
    else:
        body = "\n".join(f"{escape(s.shown.strip())} {''.join(f'[{n}]' for n in s.cites)}".rstrip()
                         for s in answer.statements)
    parts.append(body)
    if answer.citations:
        parts.append(sources_block(answer.citations))
    return "\n\n".join(parts)


def draft_text(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """An unverified LLM draft as one message: shown literally, cut to fit, marked as in progress."""
    mark = f"\n\n_{DRAFT_MARK}_"
    body = escape(text.strip())
    room = limit - len(mark)
    if len(body) > room:
        body = body[: room - 1].rstrip("\\") + "…"
    return body + mark


def answer_messages(answer: Answer, limit: int = MESSAGE_LIMIT) -> list[str]:
    """The answer split into messages of at most ``limit`` characters (at most MAX_FOLLOWUPS of them)."""
    return cap(split_message(render_answer(answer), limit), limit)


def cap(pieces: list[str], limit: int = MESSAGE_LIMIT, most: int = MAX_FOLLOWUPS) -> list[str]:
    """At most ``most`` pieces; the last one says that the rest was left out."""
    if len(pieces) <= most:
        return pieces
    note = "\n\n_(The rest was cut: it was too long for Discord.)_"
    last = pieces[most - 1]
    return pieces[: most - 1] + [last[: limit - len(note)].rstrip() + note if len(last) + len(note) > limit
                                 else last + note]


def render_passages(answer: Answer) -> str:
    """The quoted sentences behind each citation, for the "Show passages" button."""
    if not answer.citations:
        return "This answer has no cited passages."
    blocks: list[str] = []
    for c in answer.citations:
        lines = [source_line(c)]
        quotes = list(c.quotes) or [_passage_text(answer, c)]
        lines += [f"> {escape(_shorten(q, PASSAGE_CHARS * 2))}" for q in quotes if q.strip()]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _passage_text(answer: Answer, c: Citation) -> str:
    for p in answer.passages:
        if p.chunk_id == c.chunk_id:
            return _shorten(p.text, PASSAGE_CHARS)
    return ""


def render_stats(stats: IndexStats) -> str:
    """``/sources``: article count, outlets and publication window."""
    n, sources = stats.articles, list(stats.sources)
    if not n:
        return "I don't know any articles yet: the index is empty."
    first, last = (stats.first_published or "")[:10], (stats.last_published or "")[:10]
    lines = ["**What I know**",
             f"{n:,} articles ({stats.chunks:,} passages) from {len(sources)} "
             f"outlet{'s' if len(sources) != 1 else ''}."]
    if first or last:
        lines.append(f"Published {first or '?'} … {last or '?'}.")
    if sources:
        shown = ", ".join(escape(s) for s in sources[:OUTLETS_SHOWN])
        more = f", … (+{len(sources) - OUTLETS_SHOWN} more)" if len(sources) > OUTLETS_SHOWN else ""
        lines.append(f"Outlets: {shown}{more}")
    return split_message("\n".join(lines))[0]


def source_choices(outlets: Iterable[str], current: str) -> list[str]:
    """Outlets matching what the user typed so far: prefix matches first, at most CHOICE_LIMIT."""
    typed = current.strip().casefold()
    names = [o for o in dict.fromkeys(outlets) if o and len(o) <= CHOICE_TEXT_LIMIT]
    hits = [o for o in names if typed in o.casefold()]
    hits.sort(key=lambda o: (not o.casefold().startswith(typed), o.casefold()))
    return hits[:CHOICE_LIMIT]


def thread_name(question: str) -> str:
    """A thread title from the question: one line, mentions removed, at most THREAD_NAME_LIMIT characters."""
    text = _USER_TAG.sub("", question)
    text = _MENTION.sub(r"\1", text)
    return _shorten(text, THREAD_NAME_LIMIT) or "newsbot answer"


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def queue_text(position: int) -> str:
    """What someone waiting behind other questions is told."""
    return f"You're {ordinal(position)} in line; your answer is coming."


def cooldown_text(seconds: float, action: str = "ask") -> str:
    return COOLDOWN_TEXT.format(seconds=max(1, round(seconds)), action=action)


# -- links added as sources -----------------------------------------------------------------------------------
_LINK = re.compile(r"https?://[^\s<>]+")
_LINK_TAIL = ".,;:!?'\")]}"


def is_link(url: str) -> bool:
    """An http(s) address short enough to show and without spaces or angle brackets."""
    return bool(_LINK.fullmatch(url)) and len(url) <= URL_LIMIT


def links_in(text: str) -> list[str]:
    """The http(s) links of a message, in order, once each (trailing punctuation and <…> removed)."""
    return list(dict.fromkeys(m.group().rstrip(_LINK_TAIL) for m in _LINK.finditer(text)))


def _link(title: str, url: str) -> str:
    title = escape(_shorten(title or url, TITLE_LIMIT))
    return f"[{title}](<{url}>)" if is_link(url) else title


def added_text(article: Article, outcome: str) -> str:
    """One line: what ``/add`` (or a posted link) added — title as a link, outlet and date."""
    head = {"added": "Added", "updated": "Updated", "known": "Already known:"}[outcome]
    meta = " · ".join(escape(x) for x in (article.source, article.published_at[:10]) if x)
    return f"{head} {_link(article.title, article.url)}" + (f" — {meta}" if meta else "")


def not_added_text(url: str, why: str) -> str:
    """One line: why a link was not added."""
    shown = f"<{url}>" if is_link(url) else f"“{escape(_shorten(url, 100))}”"
    return f"Couldn't add {shown}: {escape(_shorten(why, 300))}"


# -- splitting -----------------------------------------------------------------------------------------------
def protected(text: str, atoms: list[re.Pattern[str]] = _ATOMS) -> bytearray:
    """``flags[i]`` is 1 when a split at offset ``i`` would cut a link, a citation marker or Markdown."""
    flags = bytearray(len(text) + 1)
    for pattern in atoms:
        for m in pattern.finditer(text):
            flags[m.start() + 1: m.end()] = b"\x01" * max(0, m.end() - m.start() - 1)
    return flags


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Pieces of at most ``limit`` characters, split at paragraphs, then lines, sentences, spaces.

    Splits never fall inside a protected span unless that span alone is longer than ``limit``. Only the
    whitespace at each split is dropped: the pieces, in order, are the text with its split whitespace removed.
    """
    if limit < 1:
        raise ValueError("limit must be positive")
    flags = protected(text)
    tiers = [sorted({m.start() for m in _PARAGRAPH.finditer(text)}),
             sorted({m.start() for m in _LINE.finditer(text)}),
             sorted({m.end() for m in _SENTENCE.finditer(text)}),
             sorted({m.start() for m in _SPACE.finditer(text)})]
    tiers = [[c for c in tier if not flags[c]] for tier in tiers]
    pieces: list[str] = []
    start, n = 0, len(text)
    while True:
        while start < n and text[start].isspace():
            start += 1
        if start >= n:
            return pieces
        if n - start <= limit:
            pieces.append(text[start:].rstrip())
            return pieces
        end = start + limit
        cut = _best_cut(tiers, start, end, limit)
        if cut is None:  # no whitespace: any unprotected offset; else keep at least links and marker runs whole
            cut = next((c for c in range(end, start, -1) if not flags[c]), None) \
                or next((c for c in range(end, start, -1) if not protected(text, _CORE_ATOMS)[c]), end)
        pieces.append(text[start:cut].rstrip())
        start = cut


def _best_cut(tiers: list[list[int]], start: int, end: int, limit: int) -> int | None:
    best: int | None = None
    for tier in tiers:
        i = bisect.bisect_right(tier, end) - 1
        if i < 0 or tier[i] <= start:
            continue
        cut = tier[i]
        if cut - start >= limit * MIN_FILL:
            return cut
        best = cut if best is None else max(best, cut)
    return best


# -- followed topics ------------------------------------------------------------------------------------------
def digest_line(n: int, line: DigestLine) -> str:
    """``[n] summary sentence — [Title](<url>) · Outlet · date``."""
    sentence = escape(_shorten(line.sentence, DIGEST_SENTENCE_CHARS))
    meta = " · ".join(escape(x) for x in (line.source, line.published_at[:10]) if x)
    return f"[{n}] {sentence} — {_link(_shorten(line.title, DIGEST_TITLE_CHARS), line.url)}" + (
        f" · {meta}" if meta else "")


def digest_text(lines: Sequence[DigestLine], more: int = 0, limit: int = MESSAGE_LIMIT) -> str:
    """One digest message: the topics matched, one line per new article, and how many more were left out."""
    topics = list(dict.fromkeys(line.topic for line in lines))
    head = f"**New on {', '.join(f'“{escape(t)}”' for t in topics)}**"
    body = [digest_line(n, line) for n, line in enumerate(lines, 1)]
    while True:
        tail = [f"_…and {more} more: ask me about it._"] if more else []
        text = "\n".join([head, *body, *tail])
        if len(text) <= limit or len(body) <= 1:
            return text[:limit]
        body.pop()
        more += 1


def clean_topic(topic: str) -> str:
    """A followed topic as stored: one line, no mentions or control characters ("" when unusable)."""
    text = "".join(ch if ch.isprintable() else " " for ch in topic)
    text = " ".join(_USER_TAG.sub(" ", text).replace("@", "").split())
    return text if len(text) <= TOPIC_CHARS else ""


def following_text(topics: Sequence[str]) -> str:
    """``/following``: the topics this channel follows."""
    if not topics:
        return "This channel follows no topics. An editor can add one with /follow."
    shown = "\n".join(f"• {escape(t)}" for t in topics[:TOPICS_SHOWN])
    more = f"\n…and {len(topics) - TOPICS_SHOWN} more" if len(topics) > TOPICS_SHOWN else ""
    return split_message(f"**Topics followed here**\n{shown}{more}")[0]
