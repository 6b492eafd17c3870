"""RSS and Atom feeds in: read entries, fetch their articles, remember what was seen for the next round.

The state file (``feeds.json`` in the data dir) keeps each feed's ETag / Last-Modified and a
fingerprint per entry. A feed's validators are saved only when all its entries went in, so a failed
article is retried on the next round instead of hiding behind a 304.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from index.fetch import Fetcher, FetchError
from index.load import parse_date
from index.types import Article, LoadError

log = logging.getLogger(__name__)

STATE_FILE = "feeds.json"
FEED_ACCEPT = "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"


@dataclass(frozen=True)
class FeedEntry:
    """One feed item: where its article lives and what identifies this version of it."""

    key: str
    link: str
    title: str
    published_at: str
    fingerprint: str


@dataclass
class FeedRound:
    """What one pass over the feeds found (the articles' ingest report is kept separately)."""

    feeds: int = 0
    not_modified: int = 0
    failed: int = 0
    entries: int = 0
    fetched: int = 0
    skipped: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"feeds": self.feeds, "not_modified": self.not_modified, "failed": self.failed,
                "entries": self.entries, "fetched": self.fetched, "skipped_unchanged": self.skipped}


def parse_feed(data: bytes, url: str) -> tuple[str, list[FeedEntry]]:
    """The feed's title and entries; ``FetchError`` when the bytes are not a readable RSS/Atom feed."""
    import feedparser

    parsed = feedparser.parse(data, sanitize_html=False, resolve_relative_uris=False)
    if not parsed.entries and (parsed.bozo or not parsed.version):
        why = str(parsed.get("bozo_exception", "")).splitlines()[0][:120] if parsed.get("bozo_exception") else ""
        raise FetchError(f"{url}: not a readable RSS or Atom feed" + (f" ({why})" if why else ""))
    if parsed.bozo:
        log.info("%s: feed is not well-formed, using the %d entries read anyway", url, len(parsed.entries))
    entries = []
    for e in parsed.entries:
        link = str(e.get("link") or "").strip()
        if not link:
            continue
        link = _absolute(url, link)
        stamp = str(e.get("updated") or e.get("published") or "")
        title = " ".join(str(e.get("title") or "").split())
        key = str(e.get("id") or link)
        digest = hashlib.sha256("\x00".join((key, link, title, stamp)).encode()).hexdigest()[:16]
        published = parse_date(str(e.get("published") or e.get("updated") or "")) if stamp else ""
        entries.append(FeedEntry(key=key, link=link, title=title, published_at=published, fingerprint=digest))
    return " ".join(str(parsed.feed.get("title") or "").split()), entries


def _absolute(base: str, link: str) -> str:
    from urllib.parse import urljoin

    return urljoin(base, link)


class FeedState:
    """Validators and entry fingerprints per feed, persisted atomically as JSON."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.data: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            self.data = {}

    def feed(self, url: str) -> dict[str, Any]:
        return self.data.setdefault(url, {"etag": "", "last_modified": "", "entries": {}})

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".feeds-", dir=self.path.parent)
        with os.fdopen(fd, "w") as out:
            json.dump(self.data, out)
        os.replace(tmp, self.path)


IngestFn = Callable[[Iterator[Article | LoadError]], Any]


def feed_round(feeds: Sequence[str], fetcher: Fetcher, ingest: IngestFn, state: FeedState, *,
               only_new: bool = True) -> tuple[FeedRound, Any]:
    """Fetch every feed (conditionally when ``only_new``), ingest new or changed entries' articles.

    ``ingest`` receives one generator of articles and load errors and returns its report (which must
    have an ``errors`` list of ``LoadError``); failures never stop the other feeds or entries.
    """
    summary = FeedRound()
    done: list[tuple[str, FeedEntry, dict[str, Any]]] = []  # (feed, entry, feed state) handed to ingest
    validators: dict[str, tuple[str, str]] = {}

    def items() -> Iterator[Article | LoadError]:
        for url in feeds:
            summary.feeds += 1
            st = state.feed(url)
            try:
                got = fetcher.get(url, etag=st["etag"] if only_new else "",
                                  last_modified=st["last_modified"] if only_new else "", accept=FEED_ACCEPT)
                if got.not_modified:
                    summary.not_modified += 1
                    continue
                outlet, entries = parse_feed(got.body, url)
            except FetchError as err:
                summary.failed += 1
                yield LoadError(url, 0, str(err).removeprefix(f"{url}: "))
                continue
            validators[url] = (got.etag, got.last_modified)
            summary.entries += len(entries)
            for entry in entries:
                if only_new and st["entries"].get(entry.key) == entry.fingerprint:
                    summary.skipped += 1
                    continue
                summary.fetched += 1
                done.append((url, entry, st))
                yield fetcher.article(entry.link, defaults={"title": entry.title, "source": outlet,
                                                            "published_at": entry.published_at})

    report = ingest(items())
    failed_paths = {e.path for e in report.errors}
    failed_feeds: set[str] = set()
    for url, entry, st in done:
        if entry.link in failed_paths:
            failed_feeds.add(url)
        else:
            st["entries"][entry.key] = entry.fingerprint
    for url, (etag, modified) in validators.items():
        if url not in failed_feeds:
            state.feed(url).update(etag=etag, last_modified=modified)
    state.save()
    return summary, report
