"""Loading every supported format, and one clear error per bad input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from index.load import load_paths, parse_date
from index.types import Article, LoadError
from tests.fakes import FIXTURES, SAMPLE


def _load(*paths: Path) -> tuple[list[Article], list[LoadError]]:
    items = list(load_paths(paths))
    return [i for i in items if isinstance(i, Article)], [i for i in items if isinstance(i, LoadError)]


def test_text_file_first_line_is_title() -> None:
    [article], errors = _load(SAMPLE)
    assert not errors
    assert article.title.startswith("Remarks come after report")
    assert "failed to attain Washington’s aim" in article.body
    assert not article.body.startswith("Remarks")


def test_markdown_front_matter(tmp_path: Path) -> None:
    f = tmp_path / "a.md"
    f.write_text("---\nsource: Coastal Times\npublished_at: 3 March 2024\n---\n"
                 "# Tide record broken\n\nThe tide reached 4.2 metres.\n")
    [article], _ = _load(f)
    assert (article.title, article.source) == ("Tide record broken", "Coastal Times")
    assert article.published_at.startswith("2024-03-03")


def test_html_extracts_text_and_metadata() -> None:
    [article], errors = _load(FIXTURES / "article.html")
    assert not errors
    assert article.title == "Ferry service resumes after storm"
    assert article.source == "Coastal Times"
    assert article.url == "https://coastal.example/ferry-resumes"
    assert article.published_at.startswith("2024-02-10")
    assert "all six vessels" in article.body and "Copyright" not in article.body


def test_json_array_single_record_jsonl_and_gz(tmp_path: Path) -> None:
    records = [json.loads(line) for line in (FIXTURES / "articles.jsonl").read_text().splitlines()]
    (tmp_path / "many.json").write_text(json.dumps(records[:3]))
    (tmp_path / "one.json").write_text(json.dumps({**records[3], "text": records[3]["body"], "body": None,
                                                   "shares": 12, "tags": ["a"]}))
    with gzip.open(tmp_path / "rest.jsonl.gz", "wt") as f:
        f.write("\n".join(json.dumps(r) for r in records[4:]))
    articles, errors = _load(tmp_path)
    assert not errors
    assert len(articles) == 6
    one = next(a for a in articles if a.title.startswith("Underdogs"))
    assert one.extra == {"shares": 12}  # scalars kept, lists dropped (Chroma can't store them)
    assert {a.source for a in articles} >= {"Market Wire", "Sports Daily"}


def test_directory_is_recursive(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x.txt").write_text("Headline\nBody text of the article.\n")
    (tmp_path / "a" / "notes.pdf").write_bytes(b"%PDF-1.4")
    articles, errors = _load(tmp_path)
    assert [a.title for a in articles] == ["Headline"] and not errors


def test_stable_ids_from_url_else_content() -> None:
    rec = FIXTURES / "articles.jsonl"
    first, _ = _load(rec)
    again, _ = _load(rec)
    assert [a.id for a in first] == [a.id for a in again]
    assert len({a.id for a in first}) == len(first)


def test_bad_inputs_each_get_one_line_naming_file_and_record(tmp_path: Path) -> None:
    (tmp_path / "binary.txt").write_bytes(b"\x00\x01\x02\x03" * 100)
    (tmp_path / "empty.md").write_text("   \n")
    (tmp_path / "broken.json").write_text('[{"title": "x", "body": "y"')
    (tmp_path / "nobody.jsonl").write_text(json.dumps({"title": "ok", "body": "fine text here"}) + "\n"
                                           + json.dumps({"title": "no body"}) + "\n" + "not json\n"
                                           + json.dumps({"title": "bad type", "body": 42}) + "\n")
    (tmp_path / "latin1.txt").write_bytes("Café owners protest\nThe café owners of Zürich protested.".encode("latin-1"))
    (tmp_path / "bad.gz").write_bytes(b"not gzip at all")
    (tmp_path / "bad.json.gz").write_bytes(b"not gzip at all")
    articles, errors = _load(tmp_path)
    assert sorted(a.title for a in articles) == ["Café owners protest", "ok"]
    text = {str(e) for e in errors}
    assert any(e.startswith(str(tmp_path / "binary.txt")) and "binary" in e for e in text)
    assert any("empty.md" in e and "empty" in e for e in text)
    assert any("broken.json" in e and "malformed JSON" in e for e in text)
    assert any("nobody.jsonl, record 2" in e and '"body"' in e for e in text)
    assert any("nobody.jsonl, record 3" in e and "malformed JSON" in e for e in text)
    assert any("nobody.jsonl, record 4" in e and "must be a string" in e for e in text)
    assert any("bad.json.gz" in e and "cannot read" in e for e in text)
    assert all("\n" not in e for e in text)


def test_missing_path_and_unsupported_file(tmp_path: Path) -> None:
    (tmp_path / "x.pdf").write_bytes(b"%PDF")
    _, errors = _load(tmp_path / "nope.txt", tmp_path / "x.pdf")
    assert "no such file" in errors[0].message
    assert "unsupported file type .pdf" in errors[1].message


def test_dates_in_common_formats() -> None:
    assert parse_date("2023-11-27T08:45:59+00:00") == "2023-11-27T08:45:59+00:00"
    assert parse_date("Mon, 27 Nov 2023 08:45:59 GMT") == "2023-11-27T08:45:59+00:00"
    assert parse_date("November 27, 2023").startswith("2023-11-27")
    assert parse_date("2023-11-27Z").startswith("2023-11-27") or parse_date("2023-11-27").startswith("2023-11-27")
    assert parse_date("not a date") == ""


def test_bad_date_names_the_field(tmp_path: Path) -> None:
    f = tmp_path / "d.json"
    f.write_text(json.dumps({"title": "t", "body": "some body text", "published_at": "yesterday-ish"}))
    _, [error] = _load(f)
    assert '"published_at"' in error.message and error.record == 1
