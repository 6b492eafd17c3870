"""Discord rendering: Markdown safety, the sources block, limits and the splitter's invariants."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from bot import discord_render as r
from bot.types import Answer, Citation, Statement
from index.types import IndexStats

ROOT = Path(__file__).resolve().parents[1]
MARKER_OR_LINK = re.compile(r"\[(?:\\.|[^\]\\\n])*\]\(<[^>\s]*>\)|(?:\[\d+\])+(?!\()")


def citation(n: int, title: str = "Council approves bike lanes", url: str = "https://gazette.example/bike",
             quotes: tuple[str, ...] = ("The council voted 7-2.",)) -> Citation:
    return Citation(n=n, article_id=f"a{n}", chunk_id=f"a{n}:0", title=title, source="Riverside Gazette", url=url,
                    published_at="2024-03-04T09:00:00+00:00", quotes=quotes, score=0.8)


def answer(statements: list[tuple[str, tuple[int, ...]]], citations: list[Citation], abstained: bool = False) -> Answer:
    return Answer(question="q", statements=tuple(Statement(t, c) for t, c in statements),
                  citations=tuple(citations), abstained=abstained)


def spans_of(pieces: list[str], text: str) -> list[tuple[int, int]]:
    """Where each piece sits in ``text``; fails unless only whitespace between pieces was dropped."""
    pos, out = 0, []
    for p in pieces:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        assert p and text.startswith(p, pos), (p[:40], text[pos:pos + 40])
        out.append((pos, pos + len(p)))
        pos += len(p)
    assert text[pos:].strip() == ""
    return out


def assert_split_ok(text: str, limit: int) -> list[str]:
    pieces = r.split_message(text, limit)
    assert all(0 < len(p) <= limit for p in pieces)
    spans = spans_of(pieces, text)
    for m in MARKER_OR_LINK.finditer(text):
        assert any(a <= m.start() and m.end() <= b for a, b in spans), f"cut inside {m.group()!r}"
    return pieces


# -- the sources block and safety -----------------------------------------------------------------------------
def test_source_line_links_with_preview_suppressed() -> None:
    line = r.source_line(citation(1))
    assert line == "[1] [Council approves bike lanes](<https://gazette.example/bike>) — Riverside Gazette · 2024-03-04"


def test_titles_are_escaped_and_odd_urls_are_not_linked() -> None:
    line = r.source_line(citation(2, title="[Breaking] *Wow* @everyone", url="javascript:alert(1)"))
    assert "](<" not in line
    assert r"\[Breaking\] \*Wow\*" in line
    assert "@everyone" not in line and "@\u200beveryone" in line


def test_mentions_in_article_text_are_inert() -> None:
    text = r.render_answer(answer([("Ping @here and <@123456789012345678> now.", (1,))], [citation(1)]))
    assert "@here" not in text and "<@123456789012345678>" not in text
    assert "Ping @\u200bhere" in text


def test_answer_body_then_sources() -> None:
    text = r.render_answer(answer([("The council voted 7-2.", (1,)), ("Work starts in June.", (1, 2))],
                                  [citation(1), citation(2, title="Other")]))
    body, sources = text.split("\n\n**Sources**\n")
    assert body == "The council voted 7-2. [1]\nWork starts in June. [1][2]"
    assert sources.splitlines()[1].startswith("[2] [Other](<https://")


def test_abstention_is_short_and_lists_closest_articles() -> None:
    text = r.render_answer(answer([], [citation(1), citation(2, title="Drought")], abstained=True))
    first = text.split("\n\n")[0]
    assert "don't seem to cover" in first and len(first) < 200
    assert "**Closest articles**" in text and "[2] [Drought]" in text


def test_passages_quote_each_citation() -> None:
    text = r.render_passages(answer([("x", (1,))], [citation(1, quotes=("One.", "Two *bold*."))]))
    assert text.splitlines()[1:] == ["> One.", r"> Two \*bold\*."]


# -- splitting ---------------------------------------------------------------------------------------------------
def test_short_text_is_one_piece() -> None:
    assert r.split_message("Hello [1].") == ["Hello [1]."]


def test_long_answer_splits_at_the_paragraph_before_sources() -> None:
    statements = [(f"Sentence number {i} says something about the council meeting.", (i % 3 + 1,))
                  for i in range(28)]
    text = r.render_answer(answer(statements, [citation(i) for i in range(1, 4)]))
    assert len(text) > r.MESSAGE_LIMIT
    pieces = assert_split_ok(text, r.MESSAGE_LIMIT)
    assert len(pieces) == 2 and pieces[1].startswith("**Sources**")


def test_unbreakable_text_is_hard_cut_without_loss() -> None:
    text = "x" * 4500
    pieces = r.split_message(text)
    assert [len(p) for p in pieces] == [2000, 2000, 500] and "".join(pieces) == text


def test_cap_keeps_at_most_max_followups_within_limit() -> None:
    pieces = r.cap([("word " * 399).strip()] * 9)
    assert len(pieces) == r.MAX_FOLLOWUPS and all(len(p) <= r.MESSAGE_LIMIT for p in pieces)
    assert pieces[-1].endswith("too long for Discord.)_")


_word = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABC0123456789'-,", min_size=1, max_size=12)
_marker = st.lists(st.integers(1, 25), min_size=1, max_size=3).map(lambda ns: "".join(f"[{n}]" for n in ns))
_link = st.tuples(st.lists(_word, min_size=1, max_size=4), _word).map(
    lambda t: f"[{' '.join(t[0])}](<https://news.example/{t[1]}>)")
_bold = st.lists(_word, min_size=1, max_size=3).map(lambda ws: f"**{' '.join(ws)}**")
_sentence = st.tuples(st.lists(st.one_of(_word, _word, _word, _link, _bold), min_size=1, max_size=14),
                      st.sampled_from([".", "!", "?", ""]), st.one_of(st.just(""), _marker)).map(
    lambda t: (" ".join(t[0]) + t[1] + (" " + t[2] if t[2] else "")))
_text = st.lists(st.tuples(_sentence, st.sampled_from([" ", " ", "\n", "\n\n", "  \n"])), min_size=1,
                 max_size=40).map(lambda parts: "".join(s + sep for s, sep in parts))


@settings(max_examples=150, deadline=None)
@given(_text, st.integers(min_value=90, max_value=600))
def test_split_invariants(text: str, limit: int) -> None:
    """Every piece within the limit, nothing but split whitespace lost, no marker or link cut."""
    assert_split_ok(text, limit)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=0, max_size=3000), st.integers(min_value=1, max_value=2000))
def test_split_never_exceeds_limit_or_loses_text_on_any_input(text: str, limit: int) -> None:
    pieces = r.split_message(text, limit)
    assert all(0 < len(p) <= limit for p in pieces)
    spans_of(pieces, text)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_sentence, st.lists(st.integers(1, 9), max_size=3)), min_size=1, max_size=80))
def test_rendered_answers_fit_discord(parts: list[tuple[str, list[int]]]) -> None:
    a = answer([(s, tuple(ns)) for s, ns in parts], [citation(i, title=f"Title {i} " * 8) for i in range(1, 10)])
    text = r.render_answer(a)
    pieces = assert_split_ok(text, r.MESSAGE_LIMIT)
    assert r.answer_messages(a) == r.cap(pieces)


# -- small pieces ----------------------------------------------------------------------------------------------
def test_source_choices_prefix_first_and_at_most_25() -> None:
    outlets = [f"Outlet {i:02d}" for i in range(40)] + ["The Outlet Times", ""]
    assert len(r.source_choices(outlets, "")) == r.CHOICE_LIMIT
    got = r.source_choices(outlets, "outlet 1")
    assert got == [f"Outlet {i}" for i in range(10, 20)]
    assert r.source_choices(outlets, "times") == ["The Outlet Times"]


def test_thread_name() -> None:
    assert r.thread_name("<@123456789012345678>  why did\nthe  summit fail?") == "why did the summit fail?"
    assert len(r.thread_name("word " * 100)) == r.THREAD_NAME_LIMIT
    assert r.thread_name("<@123456789012345678>") == "newsbot answer"


def test_ordinals_and_notices() -> None:
    assert [r.ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "111th"]
    assert r.queue_text(3) == "You're 3rd in line; your answer is coming."
    assert "3 s" in r.cooldown_text(2.6)


def test_render_stats() -> None:
    def stats(articles: int, sources: tuple[str, ...] = (), first: str | None = None,
              last: str | None = None) -> IndexStats:
        return IndexStats(articles=articles, chunks=5000, sources=sources, first_published=first, last_published=last,
                          data_dir="d", chroma_mode="embedded", chroma_location="d/chroma", embedding_model="m")

    text = r.render_stats(stats(609, tuple(f"S{i}" for i in range(40)), "2023-09-26T00:00:00+00:00",
                                "2023-12-26T00:00:00"))
    assert "609 articles (5,000 passages) from 40 outlets" in text
    assert "2023-09-26 … 2023-12-26" in text and "(+10 more)" in text
    assert "empty" in r.render_stats(stats(0))


def test_render_module_does_not_import_discord() -> None:
    tree = ast.parse((ROOT / "bot" / "discord_render.py").read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not any(x.split(".")[0] == "discord" for x in names)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["@everyone", "@here", "@", "<@", "<@!", "<@&", "<#", "123456789012345678", "1", ">",
                                  " ", "*", "\\", "`", "[", "]", "(", ")", "e", "\n"]), max_size=40).map("".join))
def test_no_live_mention_survives_rendering(text: str) -> None:
    rendered = r.render_answer(answer([(text, (1,))], [citation(1, title=text or "t")]))
    assert not re.search(r"@(everyone|here)", rendered)
    assert not re.search(r"<@[!&]?\d", rendered)


def test_a_link_and_markers_longer_than_a_message_are_cut_between_them_not_inside_the_markers() -> None:
    """Found by the split property: the protected stretch "link). [1][10][10]" is longer than the limit, and the
    hard cut used to fall inside "[10]"."""
    text = "[00000000 0000000000 0000000000 000000000000](<https://news.example/00000000>). [1][10][10] "
    assert assert_split_ok(text, 90) == [text[:79], "[1][10][10]"]
