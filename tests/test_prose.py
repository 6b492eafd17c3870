"""index/prose.py: what may be quoted is decided from the sentence's own text. Fixtures are written here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from index import prose
from index.chunk import split_sentences
from index.prose import (
    BYLINE,
    CAPTION,
    FRAGMENT,
    HEADING,
    KINDS,
    PROMO,
    PROSE,
    SOCIAL,
    TABLE,
    is_quotable,
    quotable_text,
    sentence_kind,
    split_heading,
)

NOT_PROSE = [
    # social embeds
    ("Great night for the club pic.twitter.com/Ab12Cd34Ef — Riverside FC (@riversidefc) March 3, 2024", SOCIAL),
    ("What a finish! https://t.co/xYz987 — Jo Bloggs (@jobloggs) May 1, 2024", SOCIAL),
    ("— Sam Writer (@samwriter) June 9, 2024", SOCIAL),
    ("pic.twitter.com/Qw3Er5Ty7U", SOCIAL),
    ("What a save from the keeper 😱", SOCIAL),
    ("Matchday vibes 🔥🔥 #UpTheTown #MatchDay", SOCIAL),
    # adverts and calls to action
    ("Watch all the action from the Harbour Cup 2025 on the home of sailing, Sea Sport.", PROMO),
    ("Sign up for our newsletter to get the latest stories in your inbox.", PROMO),
    ("Subscribe now and get your first month free.", PROMO),
    ("Loading…", PROMO),
    ("Loading", PROMO),
    ("Advertisement", PROMO),
    ("Click here to read more", PROMO),
    ("Read more", PROMO),
    ("Related:", PROMO),
    ("Follow us on your favourite app for live updates.", PROMO),
    ("We may earn a commission when you buy through links on our site.", PROMO),
    ("Deals on the go / Join 10,000 readers and keep up with @exampledeals Follow us!", PROMO),
    ("Send your tips to tips@example.com.", PROMO),
    ("Smith, A. (2020), Ocean heat, J. Clim., 23, https://doi.org/10.0000/example.", PROMO),
    ("To donate to the appeal, visit www.example.org.", PROMO),
    # captions and credits
    ("Photo: Jane Example/Wire Agency", CAPTION),
    ("The mayor speaks to reporters outside the town hall (Photo by Jane Example)", CAPTION),
    ("Supporters gather before kick-off (Jane Example/Getty Images)", CAPTION),
    ("A protester holds a sign in the square. (AP Photo/John Example)", CAPTION),
    ("Image: Northfield Council", CAPTION),
    ("Quarterly sales by region | Source: company filings", CAPTION),
    ("Copyright 2024 Example Press. All rights reserved.", CAPTION),
    ("FILE PHOTO: Traders work on the floor of the exchange, May 2, 2024.", CAPTION),
    ("Traders work on the floor of the exchange. WIRE/Jane Example", CAPTION),
    ("Pictured: The new bridge under construction.", CAPTION),
    # bylines and timestamps
    ("By Jane Example and John Sample", BYLINE),
    ("Updated 3:45 PM ET", BYLINE),
    ("Published December 4, 2023", BYLINE),
    ("(Reporting by Jane Example; Editing by John Sample)", BYLINE),
    ("Story continues below advertisement", PROMO),
    ("Listen to this article", PROMO),
    # tables
    ("Arsenal 10 7 2 1 21 8 23", TABLE),
    ("Team | Played | Won | Points", TABLE),
    ("1 2 3 4 F Hawks 7 3 0 10 20 Owls 0 7 7 3 17", TABLE),
    # headings and fragments
    ("Markets slide as oil prices surge", HEADING),
    ("Here are the key numbers to watch:", HEADING),
    ("Why The Central Bank Held Rates Steady.", HEADING),
    ("WHAT WE KNOW SO FAR", HEADING),
    ("Height: 181cm", FRAGMENT),
    ("12:05 p.m.", FRAGMENT),
    ("2.", FRAGMENT),
]

PROSE_SENTENCES = [
    "Revenue rose 12% to $3.2 billion in the third quarter.",
    "'We are disappointed,' she said.",
    "“We are disappointed,” she said.",
    "He resigned.",
    "It sounds absurd.",
    "Shares fell 4.5% on Tuesday, wiping $1.1bn off the company's value.",
    "The club has won 7 of its last 10 games, scoring 21 goals and conceding 8.",
    "By the end of the season, the team had lost 12 games.",
    "Watch makers reported a 5% drop in exports in 2023.",
    "Download speeds will double under the new plan, the regulator said.",
    "The deal, first reported by Reuters, values the firm at £2bn.",
    "Unemployment fell to 3.9% in March from 4.1% in February, the lowest since 2001.",
    "In a statement, the company said: “We are reviewing the decision.”",
    "The minister told parliament: The budget will be balanced by 2026.",
    '"I have 50, 60, 70,000 listeners," he said.',
    "The fake site's address, www.example-appeal.org, is close to the real one.",
    '"Who did you see?" asked the officer.',
    "The firm was valued at 10 times EV/EBITDA, analysts said.",
    "He joined the BBC/ITN venture in 2010 as a producer.",
]


@pytest.mark.parametrize(("text", "kind"), NOT_PROSE)
def test_non_prose_kinds_are_never_quotable(text: str, kind: str) -> None:
    assert sentence_kind(text) == kind
    assert not is_quotable(text)
    assert quotable_text(text) is None


@pytest.mark.parametrize("text", PROSE_SENTENCES)
def test_prose_including_numbers_and_reported_speech_is_quotable(text: str) -> None:
    assert sentence_kind(text) == PROSE
    assert is_quotable(text)
    assert quotable_text(text) == text


@pytest.mark.parametrize(
    ("text", "head", "rest"),
    [
        ("Key takeaways: Revenue rose 12% to $3.2 billion in the third quarter.", "Key takeaways",
         "Revenue rose 12% to $3.2 billion in the third quarter."),
        ("Can the defence hold up?: The unit has allowed 30 points a game this month.", "Can the defence hold up?",
         "The unit has allowed 30 points a game this month."),
        ("LAST WEEK: The striker scored twice in a 3-1 win.", "LAST WEEK", "The striker scored twice in a 3-1 win."),
        ("Loading “We will appeal,” the lawyer said.", "Loading", "“We will appeal,” the lawyer said."),
        ("Advertisement The council approved the plan on Monday.", "Advertisement",
         "The council approved the plan on Monday."),
        ("Credit: Jane Example “It was a shock,” he said.", "Credit: Jane Example", "“It was a shock,” he said."),
        ("NORTH CITY HAWKS | Quarterback J.T. Example: He has thrown 12 interceptions in six games.",
         "NORTH CITY HAWKS | Quarterback J.T. Example", "He has thrown 12 interceptions in six games."),
    ],
)
def test_a_heading_glued_to_a_sentence_is_split_off_and_only_the_sentence_is_quotable(
        text: str, head: str, rest: str) -> None:
    assert split_heading(text) == (head, rest)
    assert sentence_kind(text) == HEADING
    assert not is_quotable(text)
    assert quotable_text(text) == rest


@pytest.mark.parametrize(
    "text",
    [
        "Revenue rose 12% to $3.2 billion in the third quarter.",
        "She said: Prices will rise again next year.",  # speech, not a heading
        "The verdict: “Guilty on all counts,” the judge said.",  # a quotation follows, not a section
        "Sales rose. Profit: up 3%.",  # the part before the colon holds a sentence
        "Credit: Getty Images",  # nothing glued
    ],
)
def test_split_heading_leaves_speech_and_plain_sentences_alone(text: str) -> None:
    assert split_heading(text) is None


def test_a_social_embed_with_prose_inside_is_still_not_quotable() -> None:
    text = "Prices rose 3% this week, the bank said. pic.twitter.com/Zz9Yy8Xx7W — Some Bank (@somebank) May 2, 2024"
    assert sentence_kind(text) == SOCIAL
    assert quotable_text(text) is None


def test_kinds_are_the_named_constants() -> None:
    assert set(KINDS) == {PROSE, SOCIAL, PROMO, CAPTION, HEADING, TABLE, BYLINE, FRAGMENT, prose.QUESTION}
    for text, _ in NOT_PROSE:
        assert sentence_kind(text) in KINDS


def test_paragraph_breaks_end_sentences_so_a_title_line_is_its_own_heading() -> None:
    body = ("Markets slide as oil prices surge\n\nOil rose 5% on Monday. Shares fell.\n"
            "Photo: Jane Example/Wire Agency\nAdvertisement\nAnalysts expect more volatility.")
    sentences = split_sentences(body)
    assert sentences == ["Markets slide as oil prices surge", "Oil rose 5% on Monday.", "Shares fell.",
                         "Photo: Jane Example/Wire Agency", "Advertisement", "Analysts expect more volatility."]
    assert [is_quotable(s) for s in sentences] == [False, True, True, False, False, True]


def test_prose_is_pure_it_imports_only_re() -> None:
    tree = ast.parse(Path(prose.__file__).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= {"re", "__future__"}


def test_the_writers_own_questions_are_not_quotable_but_quoted_questions_are() -> None:
    assert prose.sentence_kind("Do you work at the council and know more about the closure?") == prose.QUESTION
    assert prose.sentence_kind("Who has won the most titles at the harbour regatta?") == prose.QUESTION
    assert prose.is_quotable("“Why would we close the harbour now?” the mayor asked reporters.")
    assert prose.is_quotable("The mayor asked why the harbour had been closed.")
