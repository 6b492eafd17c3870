"""`newsbot eval`'s answer figures: scripted answers with known quotes against known gold facts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot import evaluate
from bot.answer import AnswerConfig, compose
from bot.evaluate import Question, fact_in_chunk, quote_holds_fact
from bot.types import Answer, Citation, Statement
from index import terms
from index.types import Passage, Sentence

ALPHA = "Alpha Corp said on Monday it would cut 500 jobs. The chief executive blamed weak demand."
P1 = Passage("c1", "a1", ALPHA, 0.9)
P2 = Passage("c2", "a2", "Beta Ltd reported record profits. Shares rose 5 percent in early trading.", 0.8)
P3 = Passage("c3", "a3", "It rained all afternoon in the town centre.", 0.1)


def _answer(question: str, quotes: list[str], passages: tuple[Passage, ...], *, abstained: bool = False) -> Answer:
    cites = tuple(Citation(n, f"a{n}", f"c{n}", "", "", "", "", (q,) if not abstained else (), 0.5)
                  for n, q in enumerate(quotes, 1))
    statements = () if abstained else tuple(Statement(q, (n,)) for n, q in enumerate(quotes, 1))
    return Answer(question, statements, cites, abstained, passages, evidence=0.42)


QUESTIONS = [
    Question("q1", "weak demand", "inference_query",
             (ALPHA, "Beta Ltd reported record profits.", "shares rose 5 percent", "Gamma Inc denied the report.")),
    Question("q2", "Yes", "comparison_query", ("Beta Ltd reported record profits.", "Delta fell sharply.")),
    Question("q3", "Gamma Inc", "inference_query", ("Shares rose 5 percent in early trading.",)),
    Question("q4", "Insufficient information.", "null_query", ()),
    Question("q5", "Insufficient information.", "null_query", ()),
]
ANSWERS = {
    # holds ALPHA (the quote inside the longer fact); a near miss (all the fact's words, not contained);
    # holds "shares rose 5 percent" (the fact inside the quote, case and whitespace aside)
    "q1": _answer("q1", ["The chief executive blamed weak demand.", "Beta Ltd reported record profits on Tuesday.",
                         "Shares rose 5\npercent in EARLY trading."], (P1, P2, P3)),
    "q2": _answer("q2", ["", ""], (P2, P3), abstained=True),
    "q3": _answer("q3", ["Beta Ltd reported record profits."], (P3,)),
    "q4": _answer("q4", [""], (P3,), abstained=True),
    "q5": _answer("q5", ["It rained all afternoon in the town centre."], (P3,)),
}


def test_a_quote_holds_a_fact_only_by_containment() -> None:
    assert quote_holds_fact("The chief executive blamed weak demand.", ALPHA)  # sentence inside a longer fact
    assert quote_holds_fact("SHARES rose 5\npercent in early trading.", "shares rose  5 percent")  # fact inside
    assert not quote_holds_fact("Beta Ltd reported record profits on Tuesday.", "Beta Ltd reported record profits.")
    assert not quote_holds_fact("", "anything") and not quote_holds_fact("anything", "")
    assert fact_in_chunk("SHARES rose 5 percent", P2.text) and not fact_in_chunk("Delta fell", P2.text)


def test_answer_figures_overall_and_per_type(tmp_path: Path) -> None:
    result = evaluate.evaluate(QUESTIONS, lambda q: ANSWERS[q])
    assert result["n_answerable"] == 3 and result["n_null"] == 2
    assert result["fact_quoted_any"] == pytest.approx(1 / 3, abs=1e-4)  # only q1 quotes a fact
    assert result["facts_quoted"] == pytest.approx(2 / 7, abs=1e-4)  # q1's two of the seven gold facts
    assert result["facts_retrieved"] == pytest.approx(4 / 7, abs=1e-4)  # three of q1's, one of q2's
    assert result["citation_precision"] == 0.5  # two of the four quotes of answerable questions
    assert result["answer_string"] == 0.5  # q1's "weak demand" is quoted, q3's "Gamma Inc" is not
    assert result["quotes_per_answer"] == 2.0  # q1's 3 and q3's 1; q2 abstained
    assert result["answerable_abstain_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert result["null_abstain_rate"] == 0.5
    inference, comparison = result["by_type"]["inference_query"], result["by_type"]["comparison_query"]
    assert (inference["fact_quoted_any"], inference["facts_quoted"], inference["facts_retrieved"]) == (0.5, 0.4, 0.6)
    assert (inference["citation_precision"], inference["answer_string"], inference["quotes_per_answer"]) == \
        (0.5, 0.5, 2.0)
    assert (comparison["fact_quoted_any"], comparison["facts_quoted"], comparison["facts_retrieved"]) == (0, 0, 0.5)
    assert "answer_string" not in comparison and comparison["abstain_rate"] == 1.0
    assert "fact_quoted_any" not in result["by_type"]["null_query"]


def test_retrieval_figures_keep_the_papers_rule() -> None:
    """The answer figures lower-case; Hits/Recall stay case-sensitive, as MultiHop-RAG's script computes them."""
    q = Question("q", "x", "temporal_query", ("SHARES rose 5 percent",))
    result = evaluate.evaluate([q], lambda _: _answer("q", ["Shares rose 5 percent in early trading."], (P2,)))
    assert result["facts_retrieved"] == 1.0 and result["facts_quoted"] == 1.0
    assert result["hits@10"] == 0.0 and result["recall@10"] == 0.0


def test_dump_carries_what_recomputes_the_figures(tmp_path: Path) -> None:
    dump = tmp_path / "dump.jsonl"
    evaluate.evaluate(QUESTIONS, lambda q: ANSWERS[q], dump=dump)
    rows = [json.loads(line) for line in dump.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 5
    q1 = rows[0]
    assert q1["retrieved_ids"] == ["c1", "c2", "c3"] and q1["evidence"] == 0.42
    assert q1["quotes"] == ["The chief executive blamed weak demand.", "Beta Ltd reported record profits on Tuesday.",
                            "Shares rose 5\npercent in EARLY trading."]
    assert q1["quote_facts"] == [[0], [], [2]] and q1["facts_matched"] == [0, 2]
    assert q1["quote_ranks"] == [1, None, 2] and q1["fact_ranks"] == [[1], [2], [2], []]
    assert rows[1]["quotes"] == [] and rows[1]["abstained"] and rows[1]["fact_ranks"] == [[1], []]
    assert {"query", "retrieved", "answer", "citations"} <= set(q1)  # the fields it always had


def test_table_prints_the_answer_figures() -> None:
    text = evaluate.table(evaluate.evaluate(QUESTIONS, lambda q: ANSWERS[q]))
    assert "all answerable               3    0.333    0.286    0.571    0.500    0.500    2.000" in text
    assert "comparison_query             1    0.000    0.000    0.500    0.000        –    0.000" in text


def test_compose_reports_the_evidence_it_decided_on() -> None:
    passages = [Passage("c1", "a1", P1.text, 1.0, dense=0.9,
                        sentences=(Sentence("Alpha Corp said on Monday it would cut 500 jobs.",
                                            tuple(terms("Alpha Corp said on Monday it would cut 500 jobs."))),))]
    answered = compose("Why did Alpha Corp cut 500 jobs?", passages, {})
    assert not answered.abstained and answered.evidence is not None and answered.evidence >= 0.30
    refused = compose("Why did Alpha Corp cut 500 jobs?", passages, {}, config=AnswerConfig(abstain_threshold=0.99))
    assert refused.abstained and refused.evidence == answered.evidence
