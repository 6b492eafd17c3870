"""Every limit is a setting with a sane default, is enforced, and is refused in one clear line naming it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot import render
from bot.answer import truncate
from bot.types import Answer, Citation, Statement
from index.errors import NewsbotError
from tests.fakes import FIXTURES, HashEmbedder, make_settings


def _citation(n: int) -> Citation:
    return Citation(n=n, article_id=f"a{n}", chunk_id=f"a{n}:0", title=f"T{n}", source="S", url="", published_at="",
                    quotes=(), score=0.5)


def test_limit_settings_reach_the_objects_that_enforce_them(tmp_path: Path) -> None:
    from bot.wiring import Services

    services = Services(make_settings(tmp_path, max_question_chars=30, max_answer_chars=250, max_quotes=2,
                                      max_article_chars=500, top_k=3), embedder=HashEmbedder())
    answering = services.answerer.config
    assert (answering.max_question_chars, answering.max_answer_chars, answering.top_k) == (30, 250, 3)
    assert answering.answer.max_quotes == 2 and services.index.config.max_article_chars == 500
    with pytest.raises(NewsbotError, match="the limit is 30"):
        services.answerer.check_question("q" * 31)


def test_long_answers_are_cut_at_a_sentence_with_a_note() -> None:
    statements = tuple(Statement(f"Sentence number {i} says something rather long about the harbour.", (i % 4 + 1,))
                       for i in range(20))
    answer = Answer(question="q", statements=statements, citations=tuple(_citation(n) for n in range(1, 5)),
                    abstained=False)
    cut = truncate(answer, 300)
    assert len(cut.text) <= 300 < len(answer.text)
    assert cut.statements == statements[: len(cut.statements)] and cut.text.endswith("]")
    assert cut.notice == "answer cut at 300 characters (NEWSBOT_MAX_ANSWER_CHARS)"
    assert {c.n for c in cut.citations} == {n for s in cut.statements for n in s.cites}
    assert truncate(cut, 300) is cut or truncate(cut, 300).text == cut.text
    short = Answer(question="q", statements=statements[:1], citations=(_citation(1),), abstained=False)
    assert truncate(short, 300) is short  # nothing to cut: untouched, no note


def test_one_huge_statement_is_cut_at_its_last_full_sentence() -> None:
    text = " ".join(f"Claim {i} is true." for i in range(500))  # an LLM that would not stop
    answer = Answer(question="q", statements=(Statement(text, (1,)),), citations=(_citation(1),), abstained=False,
                    notice="LLM slow")
    cut = truncate(answer, 250)
    assert len(cut.text) <= 250 and cut.statements[0].text.endswith(".") and cut.text.endswith("[1]")
    assert cut.notice == "LLM slow; answer cut at 250 characters (NEWSBOT_MAX_ANSWER_CHARS)"


def test_app_applies_the_answer_limit_and_renderers_show_the_note(tmp_path: Path) -> None:
    from bot.wiring import Services

    corpus = tmp_path / "ferry.jsonl"
    with corpus.open("w") as f:
        for a in range(3):
            body = " ".join(f"The harbour ferry strike entered day {a * 5 + i} as crews in port {a} demanded pay rises "
                            f"and the ferry operator offered talks number {i}." for i in range(5))
            f.write(json.dumps({"title": f"Ferry strike {a}", "url": f"https://x.example/{a}", "body": body}) + "\n")
    app = Services(make_settings(tmp_path / "d", max_answer_chars=200, max_quotes=10, abstain_threshold=0.0),
              embedder=HashEmbedder())
    app.index.ingest(app.index.load([corpus]))
    full = Services(make_settings(tmp_path / "d", max_quotes=10, abstain_threshold=0.0), embedder=HashEmbedder())
    q = "why did the harbour ferry strike go on, what did crews demand and what did the operator offer?"
    assert len(full.answerer.ask(q).text) > 200  # without the limit the answer is longer
    answer = app.answerer.ask(q)
    assert len(answer.text) <= 200 and "NEWSBOT_MAX_ANSWER_CHARS" in answer.notice
    assert render.plain(answer).startswith("(answer cut at 200 characters (NEWSBOT_MAX_ANSWER_CHARS))")
    assert answer.as_dict()["notice"] == answer.notice




def test_limits_from_the_environment_are_enforced_with_clear_messages(cli: Any, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.jsonl"
    big.write_text(json.dumps({"title": "Big", "body": "word " * 400}) + "\n")
    monkeypatch.setenv("NEWSBOT_MAX_FILE_BYTES", "1000")
    code, _, err = cli("ingest", str(big))
    assert code == 1 and err == f"newsbot: {big}: file is {big.stat().st_size:,} bytes, over the 1,000-byte limit " \
                                "(NEWSBOT_MAX_FILE_BYTES)\n"
    monkeypatch.setenv("NEWSBOT_MAX_FILE_BYTES", "1000000")
    monkeypatch.setenv("NEWSBOT_MAX_ARTICLE_CHARS", "500")
    code, _, err = cli("ingest", str(big), str(FIXTURES / "articles.jsonl"))
    assert code == 1 and err == (f"newsbot: {big}, record 1: article body is 1,999 characters, over the "
                                 "500-character limit (NEWSBOT_MAX_ARTICLE_CHARS)\n")
    monkeypatch.setenv("NEWSBOT_MAX_QUESTION_CHARS", "40")
    code, out, err = cli("ask", "how did the council vote on the bike lanes in the end?")
    assert (code, out) == (1, "") and err == ("newsbot: the question is 54 characters; the limit is 40 "
                                              "(NEWSBOT_MAX_QUESTION_CHARS)\n")
    monkeypatch.setenv("NEWSBOT_MAX_ANSWER_CHARS", "10")
    code, out, err = cli("stats")
    assert code == 1 and err.startswith("newsbot: setting NEWSBOT_MAX_ANSWER_CHARS: ") and len(err.splitlines()) == 1
