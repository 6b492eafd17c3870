"""The answering pipeline on its own seams: a fake search and a scripted chat model, no Chroma, no model server."""

from __future__ import annotations

import threading

import pytest

from bot.answering import STOPPED_NOTICE, Answerer, AnsweringConfig
from bot.conversation import Turn
from bot.llm import LLMError
from bot.types import Answer
from index import Filters
from index.errors import NewsbotError
from tests.fakes import FakeSearch, ScriptedChat, passage

PASSAGES = [
    passage("a1:0", "The council voted 7-2 to build protected bike lanes on Main Street. Work starts in May.",
            title="Council approves bike lanes", source="Riverside Gazette"),
    passage("a2:0", "The harbour reopened after the storm. Ferries run again from Monday.",
            title="Harbour reopens", source="Coastal Times"),
]


def test_extractive_answer_from_a_fake_search() -> None:
    search = FakeSearch(PASSAGES)
    answer = Answerer(search).ask("how did the council vote on bike lanes?",
                                  filters=Filters(sources=("Riverside Gazette",)))
    assert not answer.abstained and answer.mode == "extractive"
    assert answer.citations[0].article_id == "a1"
    assert "voted 7-2" in answer.statements[0].text
    assert search.queries == [("how did the council vote on bike lanes?", 10, Filters(sources=("Riverside Gazette",)))]
    assert set(answer.timings_ms) == {"condense", "retrieve", "answer", "total"}


def test_llm_answer_is_verified_against_the_passages_it_was_shown() -> None:
    chat = ScriptedChat("The council approved the lanes by 7 votes to 2 [1]. Aliens built the harbour [9].")
    answer = Answerer(FakeSearch(PASSAGES), chat).ask("how did the council vote?")
    assert answer.mode == "llm" and answer.model == "scripted"
    assert [s.text for s in answer.statements] == ["The council approved the lanes by 7 votes to 2."]  # [9] dropped
    assert answer.citations[0].quotes == ("The council voted 7-2 to build protected bike lanes on Main Street.",)
    assert "bike lanes" in chat.requests[0][-1].content  # the passages went into the prompt


def test_a_failing_llm_falls_back_to_the_extractive_answer_with_a_notice() -> None:
    answer = Answerer(FakeSearch(PASSAGES), ScriptedChat(LLMError("the model server is down"))).ask(
        "how did the council vote on bike lanes?")
    assert answer.mode == "extractive" and "the model server is down" in answer.notice
    assert "voted 7-2" in answer.text


def test_stopping_a_draft_verifies_only_what_has_arrived() -> None:
    reply = "The council approved the lanes by 7 votes to 2 [1]. Ferries run again from Monday [2]. More text."
    stop = threading.Event()
    stream = Answerer(FakeSearch(PASSAGES), ScriptedChat(reply)).ask_stream("bike lanes and ferries?", stop=stop)
    draft = ""
    for item in stream:  # the reader (the Discord bot's Stop button) stops once the first sentence is in
        if isinstance(item, str):
            draft += item
            if "[1]." in draft:
                stop.set()
        else:
            answer = item
    assert not draft.endswith("More text.")  # the rest of the reply was never read
    assert answer.mode == "llm" and answer.notice == STOPPED_NOTICE
    assert answer.text == "The council approved the lanes by 7 votes to 2. [1]"  # the unfinished sentence dropped


def test_stopping_before_anything_cited_falls_back_to_the_extractive_answer() -> None:
    stop = threading.Event()
    stop.set()
    items = list(Answerer(FakeSearch(PASSAGES), ScriptedChat("The council approved the lanes [1].")).ask_stream(
        "how did the council vote on bike lanes?", stop=stop))
    answer = items[-1]
    assert items[:-1] == ["The council appr"]  # one delta read, no sentence finished: nothing verifiable
    assert isinstance(answer, Answer) and answer.mode == "extractive" and "unusable" in answer.notice


def test_a_follow_up_is_condensed_by_the_llm_before_searching() -> None:
    search = FakeSearch(PASSAGES)
    chat = ScriptedChat("When does work on the Main Street bike lanes start?", "Work starts in May [1].")
    history = [Turn("how did the council vote on bike lanes?", "how did the council vote on bike lanes?")]
    answer = Answerer(search, chat).ask("when does it start?", history)
    assert search.queries[0][0] == "When does work on the Main Street bike lanes start?"
    assert answer.standalone_question == "When does work on the Main Street bike lanes start?"
    assert answer.text == "Work starts in May. [1]"


def test_limits_come_from_the_config() -> None:
    answerer = Answerer(FakeSearch(PASSAGES), config=AnsweringConfig(max_question_chars=20, top_k=1))
    with pytest.raises(NewsbotError, match="NEWSBOT_MAX_QUESTION_CHARS"):
        answerer.ask("x" * 21)
    with pytest.raises(NewsbotError, match="empty"):
        answerer.ask(" \u200b ")
    search = answerer.search
    answerer.ask("bike lanes?")
    assert isinstance(search, FakeSearch) and search.queries[-1][1] == 1


def test_the_llm_is_shown_only_quotable_prose_and_may_cite_only_that() -> None:
    ad = "Watch all the action from the harbour regatta on Sail TV."
    story = passage("r1:0", f"The regatta was won by Team Osprey on Sunday. {ad}", kinds={ad: "promo"})
    chat = ScriptedChat("Team Osprey won the regatta [1].")
    answer = Answerer(FakeSearch([story]), chat).ask("who won the regatta?")
    prompt = chat.requests[0][-1].content
    assert "Team Osprey on Sunday" in prompt and "Sail TV" not in prompt
    assert answer.mode == "llm" and answer.citations[0].quotes == ("The regatta was won by Team Osprey on Sunday.",)
    assert answer.passages[0].text == story.text  # the answer still carries the passage as retrieved
