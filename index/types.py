"""Small value types that cross module boundaries; no library type leaks past its wrapper."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from index.when import TimeWindow

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
class ChunkMeta:
    """What the index stores with each chunk: its article's metadata and where the chunk sits in the body."""

    article_id: str
    title: str = ""
    source: str = ""
    url: str = ""
    author: str = ""
    category: str = ""
    published_at: str = ""  # ISO 8601, "" when unknown
    published_ts: int = 0  # unix seconds of published_at (0 when unknown): Chroma filters ranges on numbers
    position: int = 0  # the chunk's place in the article
    start: int = 0  # character offsets into the article body
    end: int = 0
    tokens: int = 0  # model tokens of the chunk text
    content_hash: str = ""  # of the whole article as ingested
    extra: Metadata = field(default_factory=dict)  # the article's other scalar fields

    @property
    def day(self) -> str:
        return self.published_at[:10]

    def as_dict(self) -> dict[str, str | int | float | bool]:
        """Flat scalar metadata, as Chroma stores it (the article's extra fields first, ours win)."""
        out: dict[str, str | int | float | bool] = dict(self.extra)
        out.update(article_id=self.article_id, title=self.title, source=self.source, url=self.url,
                   author=self.author, category=self.category, published_at=self.published_at,
                   published_ts=self.published_ts, position=self.position, start=self.start, end=self.end,
                   tokens=self.tokens, content_hash=self.content_hash)
        return out

    @classmethod
    def from_dict(cls, meta: dict[str, Any]) -> ChunkMeta:
        """Read back what ``as_dict`` wrote (missing keys take their defaults; unknown ones go to ``extra``)."""
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        ints = {"published_ts", "position", "start", "end", "tokens"}
        values: dict[str, Any] = {k: (int(meta[k] or 0) if k in ints else str(meta[k] if meta[k] is not None else ""))
                                  for k in known if k in meta}
        values.setdefault("article_id", "")
        extra = {k: v for k, v in meta.items() if k not in known and isinstance(v, str | int | float | bool)}
        return cls(**values, extra=extra)


@dataclass(frozen=True)
class Sentence:
    """One sentence of a chunk as indexed: its text, stemmed terms and whether it is quotable prose."""

    text: str
    terms: tuple[str, ...] = ()
    kind: str = "prose"  # index.prose's verdict: "prose" is quotable; anything else is not

    @property
    def quotable(self) -> bool:
        return self.kind == "prose"


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
    meta: ChunkMeta | None = None
    dense: float = 0.0  # cosine similarity to the question
    lexical: float = 0.0  # BM25 score
    sentences: tuple[Sentence, ...] = ()  # the chunk's sentences, as split and classified when it was indexed


@dataclass(frozen=True)
class IndexVersion:
    """What a reader needs to know about an index without opening it: its version token and embedding model."""

    version: str
    embedding_model: str = ""


@dataclass(frozen=True)
class ArticleChange:
    """One entry of the store's change feed: an article as its catalogue record last left it."""

    article_id: str
    state: Literal["ok", "forgotten"]  # "forgotten": a tombstone, the article is gone
    content_hash: str
    changed_at: float  # the writer's commit time, unix seconds


@dataclass(frozen=True)
class LoadError:
    """A file or record that could not be loaded; ``record`` is 1-based, 0 for the whole file."""

    path: str
    record: int
    message: str

    def __str__(self) -> str:
        where = f"{self.path}, record {self.record}" if self.record else self.path
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class Filters:
    """Narrow a search to some outlets, a publication window (unix seconds, inclusive) and/or some articles."""

    sources: tuple[str, ...] = ()
    since: int | None = None
    until: int | None = None
    articles: frozenset[str] | None = None  # only these article ids (None: any); e.g. the ones just ingested

    def __bool__(self) -> bool:
        return bool(self.sources) or self.since is not None or self.until is not None or self.articles is not None


NO_FILTERS = Filters()


@dataclass(frozen=True)
class IndexStats:
    """What an index holds."""

    articles: int
    chunks: int
    sources: tuple[str, ...]
    first_published: str | None
    last_published: str | None
    data_dir: str
    chroma_mode: str
    chroma_location: str
    embedding_model: str
    lexical: str = ""  # which lexical engine answers (and what the store offers instead)
    lexical_chunks: int = 0  # chunks this host's lexical engine holds (= chunks once it has followed every change)

    def as_dict(self) -> dict[str, Any]:
        """The documented ``stats --json`` shape."""
        return {"articles": self.articles, "chunks": self.chunks, "sources": list(self.sources),
                "first_published": self.first_published, "last_published": self.last_published,
                "data_dir": self.data_dir, "chroma": {"mode": self.chroma_mode, "location": self.chroma_location},
                "embedding_model": self.embedding_model,
                "lexical": {"engine": self.lexical, "chunks": self.lexical_chunks}}


@dataclass(frozen=True)
class TimedPassages:
    """A search with a time preference: the passages, the window preferred (None: none) and whether the window
    held no good evidence, so the passages come from the whole index."""

    passages: list[Passage]
    window: TimeWindow | None = None
    fell_back: bool = False
