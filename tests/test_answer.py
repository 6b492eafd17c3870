"""The extractive composer on small fixtures: prose only, the sentence a question type asks for, the answer's shape,
and abstention that names what no article mentions."""

from __future__ import annotations

import pytest

from bot.answer import AnswerConfig, compose, question_names
from bot.answering import Answerer
from index import terms
from index.follower import classify_sentences
from index.types import Passage, Sentence
from tests.fakes import FakeSearch, passage


def _classified(chunk_id: str, text: str, **kw: object) -> Passage:
    """A passage whose sentences are split and classified exactly as the index does it."""
    sentences = tuple(Sentence(s, tuple(terms(s)), kind) for s, kind in classify_sentences(text))
    p = passage(chunk_id, text, **kw)  # type: ignore[arg-type]
    return Passage(**{**p.__dict__, "sentences": sentences})


def _weights(question: str) -> dict[str, float]:
    return dict.fromkeys(terms(question), 1.0)


NOISE = "\n".join([
    "Watch all the action from the Harbour Cup final on the home of sailing, Sail TV.",
    "The Harbour Cup was won by Team Osprey on Sunday.",
    "— Harbour Cup (@harbourcup) October 19, 2023",
    "Photograph: Jane Doe/Getty Images",
    "Sign up for our newsletter to get the Harbour Cup results first.",
    "Team Osprey 12 9 2 1 31 8 29",
])


def test_only_prose_is_quoted_and_numbers_stay_quotable() -> None:
    p = _classified("a1:0", NOISE + "\nTicket revenue rose 12% to $3.2 million as the Harbour Cup drew record crowds.",
                    source="Sail News")
    for q in ("Who won the Harbour Cup?", "How much did Harbour Cup ticket revenue rise?"):
        answer = compose(q, [p], _weights(q), config=AnswerConfig(max_quotes=5))
        quotes = [x for c in answer.citations for x in c.quotes]
        assert quotes and all(x in {"The Harbour Cup was won by Team Osprey on Sunday.",
                                    "Ticket revenue rose 12% to $3.2 million as the Harbour Cup drew record crowds."}
                              for x in quotes), quotes
    answer = compose("How much did ticket revenue rise?", [p], _weights("How much did ticket revenue rise?"))
    assert answer.statements[0].text.startswith("Ticket revenue rose 12%")


STORY = ("The port authority closed the harbour on Tuesday. "
         "Mayor Ana Ruiz ordered the closure after the storm damaged two piers. "
         "The closure will cost the city about 4 million dollars. "
         "The harbour closure was announced on March 3, 2024. "
         "The harbour closure angered fishing crews across the region.")


@pytest.mark.parametrize(("question", "expected"), [
    ("Who ordered the harbour closure?", "Mayor Ana Ruiz ordered the closure"),
    ("How much will the harbour closure cost?", "about 4 million dollars"),
    ("When was the harbour closure announced?", "March 3, 2024"),
    ("Why was the harbour closure ordered?", "after the storm damaged two piers"),
])
def test_each_question_type_leads_with_the_sentence_that_carries_its_answer(question: str, expected: str) -> None:
    p = passage("h1:0", STORY, source="Coastal Times")
    answer = compose(question, [p], _weights(question))
    assert expected in answer.statements[0].text


def test_a_name_no_article_mentions_abstains_and_says_which() -> None:
    p = passage("k1:0", "North Korean leader Kim Jong Un met envoys on Monday. The talks ended without a deal.")
    answerer = Answerer(FakeSearch([p]))
    answer = answerer.ask("who is Kim Yo Jong?")
    assert answer.abstained and answer.missing == ("Kim Yo Jong",)
    assert answer.text == "No article mentions “Kim Yo Jong”."
    assert answer.citations[0].article_id == "k1"  # the closest article is still listed
    assert not answerer.ask("who is Kim Jong Un?").abstained


def test_a_near_spelling_in_the_passages_still_counts_as_mentioned() -> None:
    p = passage("w1:0", "The White Home said the president welcomed the letter. Aides declined to comment.")
    answer = Answerer(FakeSearch([p])).ask("What did the White House say about the letter?")
    assert not answer.abstained and "welcomed the letter" in answer.text


def test_question_names_skip_question_words_dates_and_outlets() -> None:
    names = question_names("Did The Verge report on Monday that Sam Altman returned to OpenAI in November?",
                           ["The Verge", "TechCrunch"])
    assert names == ["Sam Altman", "OpenAI"]


def test_a_question_over_several_outlets_gets_one_dated_quote_per_outlet_in_date_order() -> None:
    later = passage("v1:0", "OpenAI brought back Sam Altman as chief executive after staff threatened to quit.",
                    source="The Verge", published_at="2023-11-22T10:00:00+00:00", score=0.9)
    earlier = passage("t1:0", "OpenAI's board fired Sam Altman as chief executive on Friday.",
                      source="TechCrunch", published_at="2023-11-18T10:00:00+00:00", score=0.8)
    q = "Did TechCrunch report that OpenAI fired Sam Altman before The Verge reported he was brought back?"
    answer = compose(q, [later, earlier], _weights(q))
    assert [s.lead for s in answer.statements] == ["TechCrunch, 18 Nov 2023", "The Verge, 22 Nov 2023"]
    assert answer.text.startswith("TechCrunch, 18 Nov 2023: OpenAI's board fired Sam Altman")
    assert [c.source for c in answer.citations] == ["TechCrunch", "The Verge"]
    assert answer.citations[0].quotes == ("OpenAI's board fired Sam Altman as chief executive on Friday.",)
