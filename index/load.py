"""Read articles from files, directories and .gz archives into ``Article`` values.

Every problem becomes a ``LoadError`` naming the file (and record); good records keep flowing.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import re
import zlib
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from index.errors import first_line
from index.types import Article, LoadError, Metadata

log = logging.getLogger(__name__)

TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
JSON_SUFFIXES = {".json"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
SUPPORTED = TEXT_SUFFIXES | HTML_SUFFIXES | JSON_SUFFIXES | JSONL_SUFFIXES
DEFAULT_MAX_FILE_BYTES = 256 * 1024 * 1024
DEFAULT_MAX_ARTICLE_CHARS = 1_000_000

BODY_FIELDS = ("body", "text", "content")
KNOWN_FIELDS = {"id", "title", "url", "source", "author", "published_at", "category", *BODY_FIELDS}
# Aliases seen in common news dumps, mapped onto our field names.
FIELD_ALIASES = {"outlet": "source", "publisher": "source", "date": "published_at", "published": "published_at",
                 "link": "url", "headline": "title"}
RESERVED_META = {"article_id", "chunk_id", "title", "source", "url", "author", "published_at", "published_ts",
                 "category", "position", "start", "end", "content_hash", "n_chunks", "origin"}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

Loaded = Article | LoadError


def load_paths(paths: Iterable[str | Path], *, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
               max_article_chars: int = DEFAULT_MAX_ARTICLE_CHARS) -> Iterator[Loaded]:
    """Yield every article (or load error) found under the given files and directories."""
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            yield LoadError(str(path), 0, "no such file or directory")
        elif path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and _is_supported(p))
            if not files:
                yield LoadError(str(path), 0, f"no supported files ({', '.join(sorted(SUPPORTED))}, or .gz of them)")
            for file in files:
                yield from load_file(file, max_file_bytes=max_file_bytes, max_article_chars=max_article_chars)
        else:
            yield from load_file(path, max_file_bytes=max_file_bytes, max_article_chars=max_article_chars)


def _is_supported(path: Path) -> bool:
    suffix = _inner_suffix(path)
    return suffix in SUPPORTED and not path.name.startswith(".")


def _inner_suffix(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        return suffixes[-2] if len(suffixes) > 1 else ""
    return suffixes[-1] if suffixes else ""


def load_file(path: Path, *, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
              max_article_chars: int = DEFAULT_MAX_ARTICLE_CHARS) -> Iterator[Loaded]:
    """Yield the articles of one file, or a single ``LoadError`` for the whole file."""
    name = str(path)
    suffix = _inner_suffix(path)
    if suffix not in SUPPORTED:
        yield LoadError(name, 0, f"unsupported file type {''.join(path.suffixes) or '(none)'}; "
                                 f"use {', '.join(sorted(SUPPORTED))} or .gz of them")
        return
    try:
        size = path.stat().st_size
        if size > max_file_bytes:
            yield LoadError(name, 0, f"file is {size:,} bytes, over the {max_file_bytes:,}-byte limit "
                                     "(NEWSBOT_MAX_FILE_BYTES)")
            return
        data = path.read_bytes()
        if path.suffix.lower() == ".gz":
            data = _gunzip(data, max_file_bytes)
    except _TooBig:
        yield LoadError(name, 0, f"unpacks to over the {max_file_bytes:,}-byte limit (NEWSBOT_MAX_FILE_BYTES)")
        return
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as err:
        yield LoadError(name, 0, f"cannot read: {first_line(err)}")
        return
    if not data.strip():
        yield LoadError(name, 0, "empty file")
        return
    if suffix not in JSON_SUFFIXES | JSONL_SUFFIXES and _looks_binary(data):
        yield LoadError(name, 0, "binary data, not a text article")
        return
    text = decode(data)
    if not text.strip():  # e.g. only a byte-order mark
        yield LoadError(name, 0, "empty file")
        return
    if suffix in TEXT_SUFFIXES:
        items: Iterable[Loaded] = [_from_text(text, name)]
    elif suffix in HTML_SUFFIXES:
        items = [_from_html(text, name)]
    elif suffix in JSON_SUFFIXES:
        items = _from_json(text, name)
    else:
        items = _from_jsonl(text, name)
    for item in items:
        if isinstance(item, Article) and len(item.body) > max_article_chars:
            item = LoadError(*split_origin(item.origin), f"article body is {len(item.body):,} characters, over the "
                             f"{max_article_chars:,}-character limit (NEWSBOT_MAX_ARTICLE_CHARS)")
        yield item


class _TooBig(Exception):
    pass


def _gunzip(data: bytes, limit: int) -> bytes:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = d.decompress(data, limit + 1)
    if len(out) > limit:
        raise _TooBig
    if not d.eof:
        raise EOFError("truncated gzip stream")
    return out


def _looks_binary(data: bytes) -> bool:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return False  # UTF-16 with a BOM: NUL bytes are normal there, and decode() reads it
    head = data[:8192]
    if b"\x00" in head:
        return True
    controls = sum(1 for b in head if b < 9 or 13 < b < 32)
    return controls > len(head) * 0.05


def decode(data: bytes) -> str:
    """Decode UTF-8 (with or without BOM), UTF-16 with BOM, else Windows-1252/Latin-1; never fails."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            return data.decode("latin-1")


def split_origin(origin: str) -> tuple[str, int]:
    """(path, record number) from an Article.origin like "corpus.json, record 12" (record 0 = whole file)."""
    m = re.fullmatch(r"(.*), record (\d+)", origin)
    return (m.group(1), int(m.group(2))) if m else (origin, 0)


def clean_text(text: str) -> str:
    """Normalise line endings and drop control characters; keep paragraphs."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text).replace("\u00a0", " ")


_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n", re.S)


def _from_text(text: str, name: str) -> Loaded:
    text = clean_text(text).lstrip("\ufeff")
    record: dict[str, Any] = {}
    if m := _FRONT_MATTER.match(text):
        for line in m.group(1).splitlines():
            key, sep, value = line.partition(":")
            if sep:
                record[key.strip().lower()] = value.strip().strip("\"'")
        text = text[m.end():]
    lines = text.split("\n")
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        return LoadError(name, 0, "no text")
    record.setdefault("title", lines[first].strip().lstrip("#").strip())
    record["body"] = "\n".join(lines[first + 1:]).strip()
    if not record["body"]:
        return LoadError(name, 0, "only a title line, no body text")
    return article_from_record(record, origin=name)


def _from_html(text: str, name: str) -> Loaded:
    return article_from_html(text, origin=name)


def article_from_html(text: str, *, origin: str, url: str = "", defaults: dict[str, str] | None = None) -> Loaded:
    """The main article of an HTML page (title, outlet, date, author, text); ``url`` is its address and id source,
    ``defaults`` fill fields the page lacks (e.g. a feed entry's title and date)."""
    import trafilatura

    name = origin
    try:
        doc = trafilatura.bare_extraction(text, url=url or None, with_metadata=True, include_comments=False)
    except Exception as err:  # trafilatura raises many kinds on hostile markup
        log.debug("trafilatura failed on %s", name, exc_info=True)
        return LoadError(name, 0, f"cannot extract article from HTML: {first_line(err)}")
    if doc is None:
        return LoadError(name, 0, "no article text found in HTML")
    meta = doc.as_dict() if hasattr(doc, "as_dict") else dict(doc)
    record = {
        "title": meta.get("title") or "",
        "body": meta.get("text") or "",
        "url": meta.get("url") or "",
        "source": meta.get("sitename") or meta.get("hostname") or "",
        "author": meta.get("author") or "",
        "published_at": meta.get("date") or "",
        "category": ", ".join(meta.get("categories") or []) if isinstance(meta.get("categories"), list) else "",
    }
    first, _, rest = record["body"].partition("\n")
    if record["title"] and first.strip() == record["title"].strip() and rest.strip():
        record["body"] = rest  # trafilatura repeats the headline as the first line
    if url:
        record["url"] = url
    for key, value in (defaults or {}).items():
        if value and not record.get(key):
            record[key] = value
    if not record["title"] and record["body"]:
        record["title"] = record["body"].split("\n", 1)[0][:120]
    return article_from_record(record, origin=name)


def _from_json(text: str, name: str) -> Iterator[Loaded]:
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        yield LoadError(name, 0, f"malformed JSON: {first_line(err)}")
        return
    if isinstance(data, dict):
        records: list[Any] = data.get("articles") if isinstance(data.get("articles"), list) else [data]
    elif isinstance(data, list):
        records = data
    else:
        yield LoadError(name, 0, "JSON must be an article record or an array of them")
        return
    for i, record in enumerate(records, 1):
        yield _record(record, name, i)


def _from_jsonl(text: str, name: str) -> Iterator[Loaded]:
    n = 0
    for line in text.split("\n"):  # not splitlines(): U+2028, U+0085, \x1c… may sit raw inside a JSON string
        if not line.strip():
            continue
        n += 1
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as err:
            yield LoadError(name, n, f"malformed JSON: {first_line(err)}")
            continue
        yield _record(record, name, n)


def _record(record: Any, name: str, n: int) -> Loaded:
    if not isinstance(record, dict):
        return LoadError(name, n, f"expected an object, got {type(record).__name__}")
    try:
        return article_from_record(record, origin=f"{name}, record {n}")
    except (TypeError, ValueError, RecursionError) as err:
        return LoadError(name, n, first_line(err))


def article_from_record(record: dict[str, Any], *, origin: str) -> Loaded:
    """Validate one article record (the JSON field names) and build an ``Article``."""
    path, n = split_origin(origin)
    rec = {FIELD_ALIASES.get(str(k).lower(), str(k).lower()): v for k, v in record.items()}
    body_field = next((f for f in BODY_FIELDS if rec.get(f) not in (None, "")), None)
    if body_field is None:
        return LoadError(path, n, 'no "body" field (or "text"/"content") with article text')
    body = rec[body_field]
    if not isinstance(body, str):
        return LoadError(path, n, f'"{body_field}" must be a string, got {type(body).__name__}')
    body = clean_text(body).strip()
    if not body:
        return LoadError(path, n, f'"{body_field}" is empty')
    fields: dict[str, str] = {}
    for key in ("title", "url", "source", "author", "published_at", "category", "id"):
        value = rec.get(key)
        if value is None:
            fields[key] = ""
        elif isinstance(value, str | int | float) and not isinstance(value, bool):
            fields[key] = clean_text(str(value)).strip()
        elif key in ("author", "category") and isinstance(value, list) and all(isinstance(v, str) for v in value):
            fields[key] = ", ".join(v.strip() for v in value)
        else:
            return LoadError(path, n, f'"{key}" must be a string, got {type(value).__name__}')
    title = " ".join(fields["title"].split()) or " ".join(body.split("\n", 1)[0].split())[:120]
    published = ""
    if fields["published_at"]:
        published = parse_date(fields["published_at"])
        if not published:
            return LoadError(path, n, f'"published_at" is not a date: {fields["published_at"][:40]!r}')
    url = fields["url"]
    extra: Metadata = {}
    for key, value in rec.items():
        if key in KNOWN_FIELDS or key in RESERVED_META:
            continue
        if isinstance(value, str | int | float | bool) and key.isidentifier() and len(key) <= 64:
            extra[key] = value if not isinstance(value, str) else value[:1000]
    article_id = fields["id"] or article_id_for(url, title, body)
    return Article(id=article_id, title=title, body=body, source=fields["source"], url=url,
                   author=fields["author"], published_at=published, category=fields["category"],
                   origin=origin, extra=extra)


def article_id_for(url: str, title: str, body: str) -> str:
    """Stable id: from the URL when there is one, else from the content."""
    key = ("url:" + url.strip()) if url.strip() else ("text:" + title + "\n" + body)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


_HAS_YEAR = re.compile(r"(?<![0-9])[0-9]{4}(?![0-9])|[0-9]{1,2}[/.-][0-9]{1,2}[/.-][0-9]{2}", re.ASCII)


def parse_date(value: str) -> str:
    """ISO 8601 (UTC) for ISO strings and common date formats; "" when unparseable."""
    from dateutil import parser

    value = value.strip()
    if re.fullmatch(r"\d{9,11}(\.\d+)?", value):  # unix seconds
        try:
            return datetime.fromtimestamp(float(value), tz=UTC).isoformat()
        except (OverflowError, OSError, ValueError):
            return ""
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        if not _HAS_YEAR.search(value):
            return ""  # dateutil would fill the missing year/month from today: "3" or "-1" is no date
        try:
            dt = parser.parse(value, fuzzy=False)
        except (ValueError, OverflowError, TypeError, parser.ParserError):
            return ""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        return dt.astimezone(UTC).isoformat()
    except (OverflowError, ValueError):
        return ""


def timestamp(iso: str) -> int:
    """Seconds since the epoch for an ISO date from ``parse_date``; 0 when unknown."""
    if not iso:
        return 0
    try:
        return int(datetime.fromisoformat(iso).timestamp())
    except (ValueError, OverflowError, OSError):
        return 0



DAY_SECONDS = 86400


def date_bound(value: str, *, end: bool) -> int:
    """Unix seconds for a date a user typed; as an ``end`` bound a bare day covers the whole day.
    Raises ValueError when ``value`` is not a date."""
    iso = parse_date(value)
    if not iso:
        raise ValueError(value)
    ts = timestamp(iso)
    return ts + DAY_SECONDS - 1 if end and len(value.strip()) <= 10 else ts
