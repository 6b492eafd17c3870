"""Property-based fuzzing of the loaders, the question path and the command line (hypothesis).

``make test`` runs a small derandomized slice (the "ci" profile); ``make fuzz`` runs the same properties
with NEWSBOT_FUZZ_EXAMPLES examples per unit of weight (>= 10,000 generated cases in all) and writes the
number of cases run to NEWSBOT_FUZZ_REPORT when that is set.
"""

from __future__ import annotations

import gzip
import itertools
import json
import os
import re
import string
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from index.errors import NewsbotError
from index.load import (
    _CONTROL,
    FIELD_ALIASES,
    KNOWN_FIELDS,
    RESERVED_META,
    clean_text,
    load_file,
    parse_date,
    timestamp,
)
from index.types import Article, LoadError
from tests.fakes import HashEmbedder, make_settings

FUZZ_EXAMPLES = int(os.environ.get("NEWSBOT_FUZZ_EXAMPLES", "0") or 0)
# set per test, not as a global profile, so that other modules' hypothesis tests keep their own settings
BASE = settings(derandomize=not FUZZ_EXAMPLES, database=None, deadline=None, print_blob=True,
                suppress_health_check=list(HealthCheck))
CASES: Counter[str] = Counter()


def examples(ci: int, weight: float) -> settings:
    """``ci`` fixed-seed examples in ``make test``; ``weight`` x NEWSBOT_FUZZ_EXAMPLES random ones in ``make fuzz``."""
    return settings(BASE, max_examples=max(ci, int(FUZZ_EXAMPLES * weight)) if FUZZ_EXAMPLES else ci)


@pytest.fixture(scope="module", autouse=True)
def _report_cases() -> Any:
    yield
    total = sum(CASES.values())
    report = os.environ.get("NEWSBOT_FUZZ_REPORT")
    if report:
        with open(report, "a", encoding="utf-8") as f:
            f.write(json.dumps({"total": total, **CASES}) + "\n")
    assert total > 0


# -- strategies --------------------------------------------------------------------------------------------
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff\u202e\u2066"
NASTY = "\x00\x01\x07\x08\x0b\x0c\x1b\x7f\x85\xa0\u2028\u2029\x1c\x1d\x1e" + ZERO_WIDTH + "\r\n\t"
LATIN1 = string.ascii_letters + string.digits + " .,;:!?'-\n\t" + "".join(chr(c) for c in range(0xC0, 0x100))
nasty_text = st.text(st.one_of(st.characters(exclude_categories=("Cs",)), st.sampled_from(NASTY),
                               st.sampled_from("@#<>&[]*_`|\\\"")), max_size=80)
# what a real text file holds: no C0 controls (the loader takes > 5 % of those for a binary file)
text_file_text = st.text(st.one_of(st.characters(exclude_categories=("Cs", "Cc")),
                                   st.sampled_from("\x85\xa0\u2028\u2029\t" + ZERO_WIDTH)), max_size=80)
latin1_text = st.text(st.sampled_from(LATIN1), max_size=80)
TAKEN = KNOWN_FIELDS | RESERVED_META | set(FIELD_ALIASES) | {"articles"}
word = st.text(st.sampled_from(string.ascii_lowercase), min_size=3, max_size=10).filter(lambda w: w not in TAKEN)


@st.composite
def odd_dates(draw: st.DrawFn) -> tuple[str, int | None]:
    """A date string and the year it must parse to (None: any result, or none, is acceptable)."""
    dt = draw(st.datetimes(min_value=datetime(1975, 1, 1), max_value=datetime(2090, 12, 31)))
    fmt = draw(st.sampled_from(["iso", "isoz", "%d %B %Y", "%B %d, %Y", "%a, %d %b %Y %H:%M:%S GMT", "%Y/%m/%d",
                                "%Y-%m-%d", "unix", "junk", "nonsense"]))
    if fmt == "iso":
        return dt.isoformat(), dt.year
    if fmt == "isoz":
        return dt.strftime("%Y-%m-%dT%H:%M:%SZ"), dt.year
    if fmt == "unix":
        return str(int(dt.replace(tzinfo=UTC).timestamp())), dt.year
    if fmt == "junk":
        return draw(st.sampled_from(["not a date", "-1", "\u0663", "2023-13-45", "yesterday-ish", "0000", "1e400",
                                     "10000000000000000000000", "32/32/32", "\x00", "  "])), None
    if fmt == "nonsense":
        return draw(nasty_text), None
    return dt.strftime(fmt), dt.year


BAD_RECORDS: list[Any] = [
    7, "just a string", None, [1, 2], True,
    {"title": "no body at all"},
    {"body": 12}, {"body": ["a", "b"]}, {"body": {"nested": "x"}}, {"body": False},
    {"body": ""}, {"body": "   \n\t "}, {"body": "\x00\x01\x02"}, {"text": None, "content": ""},
    {"body": "fine text", "title": {"a": 1}}, {"body": "fine text", "url": [1, 2]},
    {"body": "fine text", "author": [1, "x"]}, {"body": "fine text", "title": True},
    {"body": "fine text", "published_at": "not a date"}, {"body": "fine text", "published_at": "-1"},
    {"body": "fine text", "published_at": {"y": 2024}}, {"body": "fine text", "date": "2023-13-45"},
]


@st.composite
def good_record(draw: st.DrawFn, n: int, text: st.SearchStrategy[str]) -> tuple[dict[str, Any], int | None]:
    """A valid article record (unique by construction) and the year its date must parse to."""
    body_key = draw(st.sampled_from(["body", "text", "content", "Body"]))
    body = draw(text) + f" token{n}x " + draw(text)
    rec: dict[str, Any] = {body_key: body}
    if draw(st.booleans()):
        rec[draw(st.sampled_from(["title", "headline"]))] = draw(text)
    how = draw(st.sampled_from(["id", "url", "content"]))
    if how == "id":
        rec["id"] = f"rec-{n}"
    elif how == "url":
        rec[draw(st.sampled_from(["url", "link"]))] = f"https://news.example/{n}"
    year = None
    if draw(st.booleans()):
        date, year = draw(odd_dates().filter(lambda d: d[1] is not None))
        rec[draw(st.sampled_from(["published_at", "date", "published"]))] = date
    if draw(st.booleans()):
        rec[draw(st.sampled_from(["source", "outlet", "publisher"]))] = draw(text)
    if draw(st.booleans()):
        rec["author"] = draw(st.one_of(text, st.lists(text, max_size=3)))
    for key, value in draw(st.dictionaries(word, st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(),
                                                            text, st.lists(st.integers(), max_size=3),
                                                            st.none()), max_size=3)).items():
        rec.setdefault(key, value)
    return rec, year


def _is_one_line(message: str) -> bool:
    return bool(message.strip()) and "\n" not in message and "Traceback" not in message


def _check_items(items: list[Article | LoadError], path: Path, max_chars: int) -> None:
    """Invariants every loader result holds, whatever the input."""
    for item in items:
        assert isinstance(item, Article | LoadError)
        if isinstance(item, LoadError):
            assert item.path == str(path) and item.record >= 0 and _is_one_line(item.message), item
        else:
            assert item.id and item.body.strip() and len(item.body) <= max_chars
            assert not _CONTROL.search(item.body) and not _CONTROL.search(item.title)
            assert item.origin == str(path) or item.origin.startswith(f"{path}, record ")


# -- loaders: arbitrary bytes ------------------------------------------------------------------------------
SUFFIXES = [".txt", ".md", ".html", ".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".txt.gz", ".csv"]
PREFIXES = {"none": b"", "utf8-bom": b"\xef\xbb\xbf", "utf16le-bom": b"\xff\xfe", "utf16be-bom": b"\xfe\xff",
            "gzip-magic": b"\x1f\x8b\x08\x00", "brace": b"{", "deep": b"[" * 50_000, "long-line": b"a" * 300_000}


@examples(60, 1.0)
@given(data=st.binary(max_size=3000), suffix=st.sampled_from(SUFFIXES), prefix=st.sampled_from(sorted(PREFIXES)),
       gz=st.sampled_from(["raw", "valid", "truncated"]), limit=st.sampled_from([10**9, 64, 1]),
       max_chars=st.sampled_from([1_000_000, 120]))
def test_any_bytes_in_any_file_type_load_or_fail_with_file_and_one_line(
        tmp_path: Path, data: bytes, suffix: str, prefix: bytes, gz: str, limit: int, max_chars: int) -> None:
    CASES["bytes"] += 1
    payload = PREFIXES[prefix] + data
    if suffix.endswith(".gz") and gz != "raw":
        payload = gzip.compress(payload)
        if gz == "truncated":
            payload = payload[: max(1, len(payload) // 2)]
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(payload)
    items = list(load_file(path, max_file_bytes=limit, max_article_chars=max_chars))
    assert items, "a file always yields something: articles or an error"
    _check_items(items, path, max_chars)
    if len(payload) > limit and not suffix.endswith(".csv"):
        assert len(items) == 1 and "NEWSBOT_MAX_FILE_BYTES" in items[0].message  # type: ignore[union-attr]


# -- loaders: records, encodings, limits -------------------------------------------------------------------
@examples(60, 1.0)
@given(data=st.data(), layout=st.sampled_from([".json", ".jsonl", "articles.json"]),
       encoding=st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"]), crlf=st.booleans(),
       max_chars=st.sampled_from([1_000_000, 150]))
def test_good_records_load_once_bad_ones_are_reported_with_file_and_record(
        tmp_path: Path, data: st.DataObject, layout: str, encoding: str, crlf: bool, max_chars: int) -> None:
    CASES["records"] += 1
    text = latin1_text if encoding == "latin-1" else nasty_text
    n = data.draw(st.integers(1, 12))
    records: list[Any] = []
    expect: list[tuple[str, Any]] = []  # ("good", (record, year)) or ("bad", None), one per record
    for i in range(1, n + 1):
        if data.draw(st.integers(0, 3)) == 0:
            records.append(data.draw(st.sampled_from(BAD_RECORDS)))
            expect.append(("bad", None))
        else:
            rec, year = data.draw(good_record(i, text))
            body = next(rec[k] for k in rec if k.lower() in ("body", "text", "content"))
            too_long = len(clean_text(body).strip()) > max_chars
            records.append(rec)
            expect.append(("bad" if too_long else "good", (rec, year, body)))
    if layout == ".jsonl":
        raw = "\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n"
        raw = raw.replace("\n", "\r\n") if crlf else raw
    else:
        raw = json.dumps({"articles": records} if layout == "articles.json" else records, ensure_ascii=False,
                         indent=1 if crlf else None)
    path = tmp_path / f"corpus{'.json' if layout == 'articles.json' else layout}"
    path.write_bytes(raw.encode(encoding))
    items = list(load_file(path, max_article_chars=max_chars))
    _check_items(items, path, max_chars)
    assert len(items) == n, [str(i) for i in items if isinstance(i, LoadError)]
    for i, (item, (kind, info)) in enumerate(zip(items, expect, strict=True), 1):
        if kind == "bad":
            assert isinstance(item, LoadError) and item.record == i, (i, item, records[i - 1])
            assert str(item).startswith(f"{path}, record {i}: ")
            continue
        assert isinstance(item, Article), (item, records[i - 1])
        rec, year, body = info
        assert item.origin == f"{path}, record {i}" and item.body == clean_text(body).strip()
        if "id" in rec:
            assert item.id == rec["id"]
        if year is not None:
            assert item.published_at and item.published_at[:4] in {str(year), str(year - 1), str(year + 1)}
    goods = [item.id for item in items if isinstance(item, Article)]
    assert len(goods) == len(set(goods)), "each good record is its own article"


@examples(40, 1.0)
@given(title=text_file_text, body=text_file_text, encoding=st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"]),
       suffix=st.sampled_from([".txt", ".md"]), front=st.booleans())
def test_text_files_in_any_encoding_keep_their_words(tmp_path: Path, title: str, body: str, encoding: str,
                                                     suffix: str, front: bool) -> None:
    CASES["text"] += 1
    if encoding == "latin-1":
        title, body = (re.sub(f"[^{re.escape(LATIN1)}]", "", t) for t in (title, body))
    raw = (("---\nsource: Coastal Times\n---\n" if front else "") + f"Headline {title.replace(chr(10), ' ')}\n"
           f"Fête à Málaga {body} end.\n")
    path = tmp_path / f"a{suffix}"
    path.write_bytes(raw.encode(encoding, "surrogatepass"))
    items = list(load_file(path))
    _check_items(items, path, 1_000_000)
    assert len(items) == 1 and isinstance(items[0], Article), items
    art = items[0]
    assert art.title.startswith("Headline") and "Fête à Málaga" in art.body and art.body.endswith("end.")
    assert art.source == ("Coastal Times" if front else "")


def test_latin1_file_loads_with_its_accents(tmp_path: Path) -> None:
    CASES["fixed"] += 1
    path = tmp_path / "old.txt"
    path.write_bytes("Café déjà vu\nLa señora pagó 5 € en Málaga; ¿por qué?\n".encode("cp1252"))
    art = next(iter(load_file(path)))
    assert isinstance(art, Article)
    assert art.title == "Café déjà vu" and art.body == "La señora pagó 5 € en Málaga; ¿por qué?"
    path.write_bytes("Garçon\nÀ bientôt, naïve Zoë.\n".encode("latin-1"))
    art = next(iter(load_file(path)))
    assert isinstance(art, Article) and art.body == "À bientôt, naïve Zoë."


def test_raw_unicode_line_separators_inside_jsonl_strings(tmp_path: Path) -> None:
    """U+2028, U+0085 and \\x1c are legal unescaped in a JSON string: they must not split a JSONL record."""
    CASES["fixed"] += 1
    path = tmp_path / "seps.jsonl"
    lines = [json.dumps({"id": f"a{i}", "body": f"one{sep}still the same record {i}"}, ensure_ascii=False)
             for i, sep in enumerate(["\u2028", "\u2029", "\x85", "\x1c", "\x1d", "\x1e"])]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    items = list(load_file(path))
    assert [a.id for a in items if isinstance(a, Article)] == [f"a{i}" for i in range(6)], items


def test_deeply_nested_and_enormous_json(tmp_path: Path) -> None:
    CASES["fixed"] += 1
    deep = "[" * 200_000 + "]" * 200_000
    nested = tmp_path / "deep.json"
    nested.write_text(deep)
    (err,) = list(load_file(nested))
    assert isinstance(err, LoadError) and err.record == 0 and err.message.startswith("malformed JSON")
    lines = tmp_path / "deep.jsonl"
    lines.write_text(json.dumps({"id": "ok1", "body": "fine"}) + "\n" + '{"body": "x", "n": ' + deep + "}\n"
                     + json.dumps({"id": "ok2", "body": "fine too"}) + "\n")
    items = list(load_file(lines))
    assert [type(i).__name__ for i in items] == ["Article", "LoadError", "Article"] and items[1].record == 2
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps([{"id": f"h{i}", "body": f"body number {i}"} for i in range(20_000)] + [42]))
    items = list(load_file(huge))
    assert len(items) == 20_001 and sum(isinstance(i, Article) for i in items) == 20_000
    assert str(items[-1]) == f"{huge}, record 20001: expected an object, got int"
    (err,) = list(load_file(huge, max_file_bytes=1000))
    assert isinstance(err, LoadError) and "over the 1,000-byte limit (NEWSBOT_MAX_FILE_BYTES)" in err.message
    bomb = tmp_path / "bomb.json.gz"
    bomb.write_bytes(gzip.compress(b" " * 5_000_000 + b"[]"))
    (err,) = list(load_file(bomb, max_file_bytes=1_000_000))
    assert isinstance(err, LoadError) and "unpacks to over" in err.message


@examples(100, 1.0)
@given(date=st.one_of(odd_dates(), st.tuples(st.text(max_size=60), st.none())))
def test_dates_in_any_format_parse_or_are_refused(date: tuple[str, int | None]) -> None:
    CASES["dates"] += 1
    value, year = date
    iso = parse_date(value)
    assert isinstance(iso, str)
    if iso:
        parsed = datetime.fromisoformat(iso)
        assert parsed.tzinfo is not None and isinstance(timestamp(iso), int)
    if year is not None:
        assert iso[:4] in {str(year), str(year - 1), str(year + 1)}, (value, iso)
    if not re.search(r"[0-9]{4}|[0-9]{1,2}[/.-][0-9]{1,2}[/.-][0-9]{2}", value, re.ASCII):
        assert iso == "", f"{value!r} has no year, yet became {iso}"


@pytest.fixture(scope="module")
def store_app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """An App over a real Chroma in a temp dir (hash embedder); each example uses ids of its own."""
    from bot.wiring import Services

    return Services(make_settings(tmp_path_factory.mktemp("fuzz-store") / "data"), embedder=HashEmbedder())


RUN = itertools.count()


@examples(6, 0.05)
@given(data=st.data())
def test_good_records_are_stored_exactly_once(store_app: Any, tmp_path: Path, data: st.DataObject) -> None:
    CASES["stored"] += 1
    run = next(RUN)
    records, good = [], []
    for i in range(data.draw(st.integers(1, 8))):
        if data.draw(st.integers(0, 2)) == 0:
            records.append(data.draw(st.sampled_from(BAD_RECORDS)))
        else:
            rec = {**data.draw(good_record(i, nasty_text))[0], "id": f"s{run}-{i}"}
            records.append(rec)
            good.append(rec["id"])
    path = tmp_path / f"run{run}.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8")
    report = store_app.index.ingest(store_app.index.load([path]))
    assert (report.new, report.failed) == (len(good), len(records) - len(good)), report.errors
    assert all(e.path == str(path) and e.record >= 1 for e in report.errors)
    catalog = store_app.index.store.catalog(good)
    assert sorted(catalog) == sorted(good)
    for aid, rec in catalog.items():  # all its chunks, and no stray extra one
        ids = [f"{aid}:{k}" for k in range(rec.n_chunks + 1)]
        assert sorted(store_app.index.store.get_chunks(ids)) == sorted(ids[:-1])
    total = report.chunks_total
    again = store_app.index.ingest(store_app.index.load([path]))
    assert (again.new, again.updated, again.unchanged, again.chunks_total) == (0, 0, len(good), total)


# -- the question path -------------------------------------------------------------------------------------
questions = st.one_of(
    nasty_text,
    st.text(st.characters(codec=None, exclude_categories=()), max_size=300),  # surrogates too (argv can hold them)
    st.text(st.sampled_from(ZERO_WIDTH + " \t\n\r\x00"), max_size=40),  # empty once cleaned
    st.builds(lambda n, c: c * n, st.integers(1_990, 10_000), st.sampled_from(["a", "é", " ", "\u200b", "ab "])),
    st.builds(lambda q, junk: junk.join(q.split()), st.sampled_from(
        ["how did the council vote on the bike lanes", "drought restrictions in the valley", "@everyone ping <@&1>"]),
        st.sampled_from(["\u200b ", " \x07", "\u202e ", " \u2028"])),
)


@pytest.fixture(scope="module")
def corpus_app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A real Chroma index (hash embedder) over the fixture corpus, shared by the question properties."""
    from bot.wiring import Services

    app = Services(make_settings(tmp_path_factory.mktemp("fuzz-data") / "data", max_answer_chars=400),
              embedder=HashEmbedder())
    report = app.index.ingest(app.index.load([Path(__file__).parent / "fixtures" / "articles.jsonl"]))
    assert report.new == 6
    return app


@examples(200, 1.0)
@given(q=questions)
def test_check_question_cleans_or_refuses_clearly(corpus_app: Any, q: str) -> None:
    CASES["check_question"] += 1
    try:
        cleaned = corpus_app.answerer.check_question(q)
    except NewsbotError as err:
        msg = str(err)
        assert _is_one_line(msg) and ("empty" in msg or "NEWSBOT_MAX_QUESTION_CHARS" in msg), msg
        assert len(msg) < 200  # the question itself is never echoed back
        return
    assert cleaned and cleaned == cleaned.strip() and len(cleaned) <= corpus_app.settings.max_question_chars
    assert all(ch.isprintable() or ch == " " for ch in cleaned) and "\u200b" not in cleaned


@examples(25, 0.1)
@given(q=questions, history=st.lists(st.tuples(nasty_text, nasty_text), max_size=2))
def test_every_question_gets_an_answer_or_a_clear_refusal(corpus_app: Any, q: str,
                                                           history: list[tuple[str, str]]) -> None:
    from bot.conversation import Turn

    CASES["ask"] += 1
    try:
        answer = corpus_app.answerer.ask(q, [Turn(a, b) for a, b in history])
    except NewsbotError as err:
        assert _is_one_line(str(err))
        with pytest.raises(NewsbotError):
            corpus_app.answerer.check_question(q)  # only the question check refuses
        return
    numbers = {c.n for c in answer.citations}
    assert all(set(s.cites) <= numbers and s.cites for s in answer.statements)
    assert answer.abstained == (not answer.statements)
    assert len(answer.text) <= corpus_app.settings.max_answer_chars


# -- the command line, in-process ----------------------------------------------------------------------------


def _assert_clean_failure(code: int, out: str, err: str) -> None:
    assert "Traceback" not in out + err and "internal error" not in err, err
    for line in err.splitlines():
        assert line.startswith("newsbot: "), err


@examples(8, 0.02)
@given(data=st.data())
def test_cli_ingest_and_ask_never_show_a_traceback(cli: Any, tmp_path: Path, data: st.DataObject) -> None:
    CASES["cli"] += 1
    n = data.draw(st.integers(1, 5))
    records = [data.draw(good_record(0, nasty_text))[0]]  # the index is never empty (see the test below)
    records += [data.draw(st.one_of(st.sampled_from(BAD_RECORDS), good_record(i, nasty_text).map(lambda r: r[0])))
                for i in range(1, n)]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8")
    code, out, err = cli("ingest", "--json", str(path))
    _assert_clean_failure(code, out, err)
    report = json.loads(out)
    failed = report["articles"]["failed"]
    assert code == (1 if failed else 0)
    assert all(e["path"] == str(path) and e["record"] >= 1 for e in report["errors"])
    q = data.draw(questions)
    code, out, err = cli("ask", "--json", q)
    _assert_clean_failure(code, out, err)
    if code == 0:
        assert "answer" in json.loads(out)
    else:
        assert code == 1 and len(err.splitlines()) == 1
    code, out, err = cli("ask", q)
    _assert_clean_failure(code, out, err)


def test_only_bad_records_into_an_empty_index_is_a_clean_failure(cli: Any, tmp_path: Path) -> None:
    CASES["fixed"] += 1
    path = tmp_path / "bad.jsonl"
    path.write_text('{"title": "no body"}\n7\n')
    code, out, err = cli("ingest", str(path))
    _assert_clean_failure(code, out, err)
    assert code == 1 and err.splitlines() == [
        f'newsbot: {path}, record 1: no "body" field (or "text"/"content") with article text',
        f"newsbot: {path}, record 2: expected an object, got int"]
    assert "0 new" in out


def test_cli_question_limits_and_empty_questions_are_refused_in_one_line(cli: Any) -> None:
    CASES["fixed"] += 1
    fixture = str(Path(__file__).parent / "fixtures" / "articles.jsonl")
    assert cli("ingest", fixture)[0] == 0
    code, out, err = cli("ask", "x" * 10_000)
    assert (code, out) == (1, "") and err == ("newsbot: the question is 10,000 characters; the limit is 2,000 "
                                              "(NEWSBOT_MAX_QUESTION_CHARS)\n")
    for empty in ("", "   ", "\u200b\u200b", "\x00\x07"):
        code, out, err = cli("ask", empty)
        assert code == 1 and err.startswith("newsbot: the question is empty") and len(err.splitlines()) == 1


def test_closed_stdout_is_quiet(tmp_path: Path, cli_env: dict[str, str]) -> None:
    """``newsbot ask … | head -1``: the reader leaves early; no "internal error", no BrokenPipeError noise."""
    import subprocess

    CASES["fixed"] += 1
    fixture = str(Path(__file__).parent / "fixtures" / "articles.jsonl")
    bot = f"{sys.executable} -m bot"
    script = (f"set -o pipefail; {bot} ingest {fixture} >/dev/null && "
              f"{bot} ask --passages 'How did the city council vote on the bike lanes?' | true")
    proc = subprocess.run(["bash", "-c", script], env=cli_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
