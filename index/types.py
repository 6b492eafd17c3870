"""Small value types that cross module boundaries; no library type leaks past its wrapper."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Metadata = dict[str, str | int | float | bool]


@dataclass(frozen=True)
class Article:
    """One news article as loaded from a file, record or page."""

    id: str
    title: str
    body: str
    source: str = ""
    url: str = ""
    author: str = ""
    published_at: str = ""  # ISO 8601, "" when unknown
    category: str = ""
    origin: str = ""  # the file (and record) it came from
    extra: Metadata = field(default_factory=dict)


@dataclass(frozen=True)
class Chunk:
    """A piece of an article's body, small enough for the embedding window."""

    id: str
    article_id: str
    position: int
    start: int  # character offsets into Article.body
    end: int
    text: str


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk with its score and the article metadata a citation needs."""

    chunk_id: str
    article_id: str
    text: str
    score: float
    title: str = ""
    source: str = ""
    url: str = ""
    published_at: str = ""
    position: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
    dense: float = 0.0  # cosine similarity to the question
    lexical: float = 0.0  # BM25 score
    sentences: tuple[str, ...] = ()  # the chunk's sentences, as split when it was indexed


@dataclass(frozen=True)
class IndexVersion:
    """What a reader needs to know about an index without opening it: its version token and embedding model."""

    version: str
    embedding_model: str = ""


@dataclass(frozen=True)
class LoadError:
    """A file or record that could not be loaded; ``record`` is 1-based, 0 for the whole file."""

    path: str
    record: int
    message: str

    def __str__(self) -> str:
        where = f"{self.path}, record {self.record}" if self.record else self.path
        return f"{where}: {self.message}"
