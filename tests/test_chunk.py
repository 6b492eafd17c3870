"""Chunks: whole sentences, within the model window, exact offsets."""

from __future__ import annotations

from index.chunk import chunk_article, split_sentences
from index.ingest import ChunkingConfig, prepare
from index.load import load_paths
from index.types import Article
from tests.fakes import SAMPLE


def test_sentences_split_on_punctuation_and_lines() -> None:
    text = "The U.S. economy grew. Prices rose!\nA headline without a stop\nNext line."
    assert split_sentences(text) == ["The U.S. economy grew.", "Prices rose!", "A headline without a stop",
                                     "Next line."]


def test_a_quotation_keeps_its_attribution_and_a_title_keeps_its_name() -> None:
    text = ('"Who did you see?" asked the officer. Then he left.\nShe thanked Dr. Jones and Mr. Smith. '
            'It was Leeds vs. Everyone. He is the No. 1 seed.\nShe left at 5 p.m. The car was gone.')
    assert split_sentences(text) == ['"Who did you see?" asked the officer.', "Then he left.",
                                     "She thanked Dr. Jones and Mr. Smith.", "It was Leeds vs. Everyone.",
                                     "He is the No. 1 seed.", "She left at 5 p.m.", "The car was gone."]


def test_chunks_fit_budget_and_offsets_are_exact(real_embedder) -> None:  # type: ignore[no-untyped-def]
    body = " ".join(f"Sentence number {i} talks about the harbour, the ferry and the storm." for i in range(200))
    article = Article(id="a", title="T", body=body)
    chunks = chunk_article(article, real_embedder.tokenize, budget=100)
    assert len(chunks) > 5
    for tc in chunks:
        assert len(tc.ids) <= 100
        assert body[tc.chunk.start:tc.chunk.end] == tc.chunk.text
        assert real_embedder.tokenize(tc.chunk.text)[0] == tc.ids  # no second tokenisation needed
        assert tc.chunk.text.endswith(".")  # whole sentences


def test_overlong_sentence_is_split_not_truncated(real_embedder) -> None:  # type: ignore[no-untyped-def]
    body = "word " * 1000 + "end."
    chunks = chunk_article(Article(id="a", title="T", body=body), real_embedder.tokenize, budget=254)
    assert sum(len(tc.ids) for tc in chunks) == len(real_embedder.tokenize(body)[0])
    assert all(len(tc.ids) <= 254 for tc in chunks)


def test_embedded_text_with_prefix_fits_window(real_embedder) -> None:  # type: ignore[no-untyped-def]
    [article] = list(load_paths([SAMPLE]))
    chunks, ids = prepare(article, real_embedder, ChunkingConfig())
    assert all(len(x) + 2 <= 256 for x in ids)
    # the title prefix is added to the embedded text...
    assert all(len(x) > len(tc.ids) for x, tc in zip(ids, chunks, strict=True))
    assert all(tc.chunk.text in article.body for tc in chunks)  # ...but never to the quoted passage
