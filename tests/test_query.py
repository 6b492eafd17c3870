"""Query understanding: the descriptive phrases of a long question, and how they lift matching chunks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from index.lexical import tokenize
from index.lexical_engine import LexicalChunk, TantivyEngine
from index.query import clauses, phrases
from index.retrieve import _column, _phrase_match

LONG = ("Which company, cited in articles from both The Verge and TechCrunch, is involved in legal disputes for "
        "making exclusive deals with major tech companies, defending against accusations in an antitrust battle "
        "with a game maker, and facing a class action lawsuit for its impact on news publishers' revenues?")


def test_phrases_cut_finer_than_clauses() -> None:
    found = phrases(LONG)
    assert "defending against accusations in an antitrust battle with a game maker" in found
    assert any(p.startswith("facing a class action lawsuit") for p in found)
    assert len(found) > len(clauses(LONG))
    assert all(len(p.split()) >= 3 for p in found)


def test_a_simple_question_has_no_phrases() -> None:
    assert phrases("why did the summits fail?") == ()
    assert phrases("") == ()


def _index(path: Path, chunks: list[list[str]]) -> TantivyEngine:
    engine = TantivyEngine.open(path)
    engine.apply([LexicalChunk(f"a{i}:0", f"a{i}", "", 0, "", " ".join(sents), tuple((s, "prose") for s in sents))
                  for i, sents in enumerate(chunks)])
    return engine


def test_phrase_match_prefers_one_sentence_that_matches_a_phrase_closely(tmp_path: Path) -> None:
    lex = _index(tmp_path, [
        ["The regulator fined the carmaker over emissions.", "Shares fell sharply on Monday."],
        ["An antitrust battle with a game maker went to trial.", "The jury sided with the game maker."],
        ["The game studio shipped a sequel.", "An unrelated battle over taxes continued."],
    ])
    ids = ["a0:0", "a1:0", "a2:0"]

    def sentence_scores(text: str) -> np.ndarray:
        return _column(lex.sentence_scores_for(tokenize([text])[0], ids), ids)

    phrases = ("an antitrust battle with a game maker", "fined over emissions")
    score = _phrase_match(sentence_scores, phrases, np.arange(3))
    assert score[1] == 1.0  # the best candidate for a phrase scores 1 (squared stays 1)
    assert score[0] == 1.0  # the other phrase's best candidate is lifted as well
    assert 0.0 < score[2] < 0.5  # scattered, partial matches are lifted far less
    pool = _phrase_match(sentence_scores, phrases[:1], np.array([0, 2]))
    assert pool[1] == 1.0  # rows outside the pool neither score nor set the scale


def test_tokenize_survives_its_stem_cache_filling_up(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Once the stem cache is full it is emptied and refilled with every word the current text needs, including
    words that were cached before (they used to raise KeyError)."""
    import index.lexical as lexical

    monkeypatch.setattr(lexical, "_STEMS", {})
    monkeypatch.setattr(lexical, "_MAX_STEMS", 4)
    assert lexical.tokenize(["running councils voted"]) == [["run", "council", "vote"]]
    assert lexical.tokenize(["councils running harbours reopened quickly"]) == [
        ["council", "run", "harbour", "reopen", "quick"]]
    assert len(lexical._STEMS) <= 5 and "council" in lexical._STEMS.values()
