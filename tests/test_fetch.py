"""URLs and feeds: pages and RSS/Atom served by a local HTTP server on 127.0.0.1 that these tests run."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bot.cli import parse_every
from index.feeds import FeedState, feed_round, parse_feed
from index.fetch import Fetcher, FetchError, FetchLimits, is_public
from index.ingest import IngestReport
from index.load import article_id_for
from index.types import Article, LoadError
from tests.fakes import make_settings

OUTLET = "Valley Post"
ARTICLES = {
    1: ("Reservoir reaches record low after dry summer", "Mia Chen", "2024-08-30T06:00:00+00:00",
        ["The main reservoir fell to 18 percent of capacity on Friday, the lowest level since records began in 1951.",
         "Water officials said households should expect a second round of restrictions from September.",
         "Farmers in the eastern valley have already cut irrigation by a third to save the remaining water.",
         "Engineers are studying a pipeline from the northern lakes, which would take four years to build."]),
    2: ("Night trains return to the coastal line", "Omar Haddad", "2024-09-02T18:30:00+00:00",
        ["Overnight passenger trains will run on the coastal line again from October after a ten-year pause.",
         "The operator bought twelve refurbished sleeper carriages from a company that closed last spring.",
         "Tickets for the first month sold out within two hours of going on sale on Monday morning.",
         "Rail unions welcomed the move but asked for more staff on the late shifts at smaller stations."]),
    3: ("City library opens a repair cafe for broken appliances", "Lena Park", "2024-09-05T09:15:00+00:00",
        ["Volunteers at the central library will fix toasters, lamps and bicycles every Saturday afternoon.",
         "The repair cafe kept more than two tonnes of appliances out of landfill during its trial in June.",
         "Organisers are looking for people with electrical skills to join the volunteer team this autumn.",
         "The library will lend tools such as drills and sewing machines to members for up to a week."]),
}


def page(n: int) -> bytes:
    title, author, date, paras = ARTICLES[n]
    body = "".join(f"<p>{p}</p>" for p in paras)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title} | {OUTLET}</title>"
            f"<meta property='og:title' content='{title}'><meta property='og:site_name' content='{OUTLET}'>"
            f"<meta name='author' content='{author}'><meta property='article:published_time' content='{date}'>"
            f"</head><body><nav><a href='/'>Home</a></nav><article><h1>{title}</h1>{body}</article>"
            f"<footer>Copyright {OUTLET}</footer></body></html>").encode()


class Site:
    """The test web server's content and request log (a stand-in for news sites; loopback only)."""

    def __init__(self) -> None:
        self.base = ""
        self.entries = [1, 2]
        self.feed_version = 1
        self.requests: list[tuple[str, dict[str, str], float]] = []

    def rss(self) -> bytes:
        titles = {n: ARTICLES[n][0] if n in ARTICLES else f"Entry {n}" for n in self.entries}
        items = "".join(f"<item><title>{titles[n]}</title><link>{self.base}/article/{n}</link>"
                        f"<guid>{self.base}/article/{n}</guid><pubDate>{formatdate(1725000000 + n * 3600)}</pubDate>"
                        f"</item>" for n in self.entries)
        return (f"<?xml version='1.0'?><rss version='2.0'><channel><title>{OUTLET}</title><link>{self.base}/</link>"
                f"<description>news</description>{items}</channel></rss>").encode()

    def atom(self) -> bytes:
        entries = "".join(f"<entry><title>{ARTICLES[n][0]}</title><link href='{self.base}/article/{n}'/>"
                          f"<id>urn:valley:{n}</id><updated>{ARTICLES[n][2]}</updated></entry>" for n in self.entries)
        return (f"<?xml version='1.0' encoding='utf-8'?><feed xmlns='http://www.w3.org/2005/Atom'>"
                f"<title>{OUTLET} (Atom)</title><id>urn:valley</id><updated>2024-09-05T09:15:00Z</updated>"
                f"{entries}</feed>").encode()

    def paths(self) -> list[str]:
        return [p for p, _, _ in self.requests]


def make_handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def send(self, status: int, body: bytes = b"", kind: str = "text/html; charset=utf-8",
                 headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            try:
                self.wfile.write(body)
            except OSError:
                pass  # the client gave up (the timeout tests)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            site.requests.append((self.path, dict(self.headers), time.monotonic()))
            path = self.path
            if path.startswith("/article/") and path[9:].isdigit() and int(path[9:]) in ARTICLES:
                return self.send(200, page(int(path[9:])))
            if path in ("/feed.rss", "/feed.atom"):
                etag = f'"v{site.feed_version}"'
                modified = formatdate(1725000000 + site.feed_version * 60, usegmt=True)
                if self.headers.get("If-None-Match") == etag:
                    return self.send(304, headers={"ETag": etag})
                body = site.rss() if path.endswith("rss") else site.atom()
                return self.send(200, body, "application/rss+xml" if path.endswith("rss") else "application/atom+xml",
                                 {"ETag": etag, "Last-Modified": modified})
            if path == "/malformed.xml":
                return self.send(200, b"<rss><channel><title>broken</ti", "application/rss+xml")
            if path == "/slow":
                time.sleep(1.5)
                return self.send(200, page(1))
            if path == "/huge":  # no Content-Length: the limit must stop the stream itself
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                try:
                    for _ in range(400):
                        self.wfile.write(b"<p>" + b"x" * 8000 + b"</p>")
                except OSError:
                    pass
                return None
            if path == "/to-private":
                return self.send(302, headers={"Location": "http://10.1.2.3/internal"})
            if path == "/to-article":
                return self.send(301, headers={"Location": "/article/2"})
            if path == "/loop":
                return self.send(302, headers={"Location": "/loop"})
            if path == "/image":
                return self.send(200, b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "image/png")
            return self.send(404, b"not found")

    return Handler


@pytest.fixture
def site() -> Iterator[Site]:
    s = Site()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(s))
    server.daemon_threads = True
    s.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield s
    server.shutdown()
    server.server_close()


def loopback_is_public(address: str) -> bool:
    """Test network rule: 127.0.0.1 stands in for a public host; every real rule still applies to the rest."""
    return address == "127.0.0.1" or is_public(address)


FAST = FetchLimits(max_bytes=256 * 1024, timeout=0.6, host_delay=0.0, allow_private=True)


@pytest.fixture
def app(tmp_path: Path, hash_embedder):  # type: ignore[no-untyped-def]
    from bot.wiring import Services

    return Services(make_settings(tmp_path / "data", allow_private_urls=True, fetch_host_delay=0, fetch_timeout=0.6,
                             fetch_max_bytes=256 * 1024), embedder=hash_embedder)


# -- pages -----------------------------------------------------------------------------------------------
def test_url_ingest_extracts_article_and_uses_the_url_as_id(app, site: Site) -> None:
    url = f"{site.base}/article/1"
    [article] = app.index.load([url])
    assert isinstance(article, Article)
    assert article.title == ARTICLES[1][0] and article.source == OUTLET and article.author == "Mia Chen"
    assert article.published_at.startswith("2024-08-30") and article.url == url
    assert article.id == article_id_for(url, "", "") and "18 percent of capacity" in article.body
    assert ARTICLES[1][0] not in article.body.split("\n", 1)[0]  # headline not repeated as the first line
    report = app.index.ingest([article])
    assert report.new == 1
    answer = app.answerer.ask("how low is the reservoir?")
    assert answer.citations[0].url == url
    assert app.index.forget(url)[0] == [article.id]


def test_failing_pages_are_reported_one_line_each_and_skipped(app, site: Site) -> None:
    bad = {f"{site.base}/missing": "HTTP 404", f"{site.base}/slow": "no answer within 0.6 s",
           f"{site.base}/huge": "over the 262,144-byte limit", f"{site.base}/loop": "more than 5 redirects",
           f"{site.base}/image": "not a web page (image/png)", "ftp://127.0.0.1/x": "only http and https"}
    good = f"{site.base}/article/2"
    started = time.monotonic()
    items = app.index.load([*bad, good])
    assert time.monotonic() - started < 6  # the slow page was cut off, not waited out
    articles = [i for i in items if isinstance(i, Article)]
    errors = {e.path: e.message for e in items if isinstance(e, LoadError)}
    assert [a.url for a in articles] == [good]
    for url, reason in bad.items():
        assert reason in errors[url], (url, errors[url])
        assert "\n" not in errors[url] and "Traceback" not in errors[url]
    report = app.index.ingest(items)
    assert report.new == 1 and report.failed == len(bad)


def test_private_addresses_refused_by_default_and_on_redirect(site: Site) -> None:
    strict = Fetcher(FetchLimits(timeout=2, host_delay=0))  # the real rule: loopback is not public
    with pytest.raises(FetchError, match="non-public address.*NEWSBOT_ALLOW_PRIVATE_URLS"):
        strict.get(f"{site.base}/article/1")
    with pytest.raises(FetchError, match="non-public"):
        strict.get(f"http://localhost:{site.base.rsplit(':', 1)[1]}/article/1")
    assert site.requests == []  # refused before connecting

    fetcher = Fetcher(FetchLimits(timeout=2, host_delay=0), address_ok=loopback_is_public)
    assert fetcher.get(f"{site.base}/to-article").url == f"{site.base}/article/2"  # a redirect is followed...
    with pytest.raises(FetchError, match=r"http://10\.1\.2\.3/internal: refused.*non-public address \(10\.1\.2\.3\)"):
        fetcher.get(f"{site.base}/to-private")  # ...but re-checked, and a private target refused
    item = fetcher.article(f"{site.base}/to-private")
    assert isinstance(item, LoadError) and "refused" in item.message


def test_a_changing_dns_answer_is_caught_when_connecting(site: Site) -> None:
    """DNS rebinding: the check before the request sees a public address, the connection would hit loopback."""
    port = int(site.base.rsplit(":", 1)[1])
    answers = iter([["93.184.215.14"], ["127.0.0.1"]])
    fetcher = Fetcher(FetchLimits(timeout=2, host_delay=0), resolver=lambda host, p: next(answers))
    with pytest.raises(FetchError, match="refused, host 'news.example' resolves to a non-public address"):
        fetcher.get(f"http://news.example:{port}/article/1")
    assert site.requests == []


@pytest.mark.parametrize("address,public", [
    ("8.8.8.8", True), ("93.184.215.14", True), ("2606:4700:4700::1111", True),
    ("127.0.0.1", False), ("127.8.9.10", False), ("10.0.0.1", False), ("172.16.5.4", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False), ("224.0.0.1", False), ("::1", False),
    ("fe80::1", False), ("fc00::1", False), ("::ffff:127.0.0.1", False), ("::ffff:10.0.0.1", False),
    ("nonsense", False),
])
def test_is_public(address: str, public: bool) -> None:
    assert is_public(address) is public


def test_politeness_delay_spaces_requests_to_one_host(site: Site) -> None:
    fetcher = Fetcher(FetchLimits(timeout=2, host_delay=0.3, allow_private=True))
    for n in (1, 2, 3):
        fetcher.get(f"{site.base}/article/{n}")
    times = [t for _, _, t in site.requests]
    assert len(times) == 3 and all(b - a >= 0.28 for a, b in zip(times, times[1:], strict=False))


# -- feeds -----------------------------------------------------------------------------------------------
def test_parse_rss_atom_and_reject_malformed(site: Site) -> None:
    title, entries = parse_feed(site.rss(), site.base + "/feed.rss")
    assert title == OUTLET and [e.link for e in entries] == [f"{site.base}/article/1", f"{site.base}/article/2"]
    assert entries[0].title == ARTICLES[1][0] and entries[0].published_at.startswith("2024-08-30")
    title, entries = parse_feed(site.atom(), site.base + "/feed.atom")
    assert title == f"{OUTLET} (Atom)" and [e.key for e in entries] == ["urn:valley:1", "urn:valley:2"]
    with pytest.raises(FetchError, match="not a readable RSS or Atom feed"):
        parse_feed(b"<rss><channel><title>broken</ti", "u")
    with pytest.raises(FetchError, match="not a readable RSS or Atom feed"):
        parse_feed(page(1), "u")


def test_ingest_feeds_keeps_going_past_broken_ones(app, site: Site) -> None:
    feeds = [f"{site.base}/malformed.xml", f"{site.base}/nofeed", f"{site.base}/feed.atom"]
    summary, report = app.index.ingest_feeds(feeds, only_new=False)
    assert summary.feeds == 3 and summary.failed == 2 and summary.entries == 2 and summary.fetched == 2
    assert report.new == 2 and report.failed == 2
    messages = {e.path: e.message for e in report.errors}
    assert "not a readable RSS or Atom feed" in messages[feeds[0]] and "HTTP 404" in messages[feeds[1]]
    assert app.index.stats().as_dict()["sources"] == [OUTLET]
    assert app.answerer.ask("night trains coastal line sleeper").citations[0].url == f"{site.base}/article/2"


def test_watch_ingests_only_new_entries_with_conditional_requests(app, site: Site) -> None:
    feed = f"{site.base}/feed.rss"
    first, report = app.index.ingest_feeds([feed], only_new=True)
    assert (first.fetched, report.new) == (2, 2)

    site.requests.clear()
    second, report = app.index.ingest_feeds([feed], only_new=True)
    assert second.not_modified == 1 and second.fetched == 0 and report.new == 0
    assert site.paths() == ["/feed.rss"]
    sent = site.requests[0][1]
    assert sent["If-None-Match"] == '"v1"' and sent["If-Modified-Since"] == formatdate(1725000060, usegmt=True)

    site.entries, site.feed_version = [1, 2, 3], 2
    site.requests.clear()
    third, report = app.index.ingest_feeds([feed], only_new=True)
    assert third.entries == 3 and third.skipped == 2 and third.fetched == 1 and report.new == 1
    assert site.paths() == ["/feed.rss", "/article/3"]  # only the new entry's page was downloaded
    assert app.index.stats().as_dict()["articles"] == 3


def test_failed_entry_is_retried_next_round(tmp_path: Path, hash_embedder, site: Site) -> None:
    """A page that fails keeps its feed's validators unsaved, so the next round asks again."""
    fetcher = Fetcher(FetchLimits(timeout=2, host_delay=0), address_ok=loopback_is_public)
    state = FeedState(tmp_path / "feeds.json")
    ingested: list[str] = []

    def ingest(items):  # type: ignore[no-untyped-def]
        report = IngestReport()
        for item in items:
            if isinstance(item, LoadError):
                report.errors.append(item)
            else:
                ingested.append(item.url)
        return report

    site.entries = [1, 4]  # entry 4 links to a page that 404s
    summary, report = feed_round([f"{site.base}/feed.rss"], fetcher, ingest, state)
    assert summary.fetched == 2 and [e.path for e in report.errors] == [f"{site.base}/article/4"]
    assert state.feed(f"{site.base}/feed.rss")["etag"] == ""
    site.requests.clear()
    summary, _ = feed_round([f"{site.base}/feed.rss"], fetcher, ingest, FeedState(tmp_path / "feeds.json"))
    assert summary.not_modified == 0 and summary.skipped == 1 and site.paths() == ["/feed.rss", "/article/4"]
    assert ingested == [f"{site.base}/article/1"]


# -- the command line ------------------------------------------------------------------------------------
@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, hash_embedder) -> Callable[..., tuple[int, str, str]]:
    """``newsbot`` in-process with the hash embedder (the real model is covered by the e2e tests)."""
    import bot.wiring
    from bot.cli import main

    original = bot.wiring.Services.__init__

    def init(self, settings, *, embedder=None, llm=None):  # type: ignore[no-untyped-def]
        original(self, settings, embedder=embedder or hash_embedder, llm=llm)

    monkeypatch.setattr(bot.wiring.Services, "__init__", init)
    for name, value in {"NEWSBOT_DATA_DIR": str(tmp_path / "cli"), "NEWSBOT_ALLOW_PRIVATE_URLS": "1",
                        "NEWSBOT_FETCH_HOST_DELAY": "0", "NEWSBOT_FETCH_TIMEOUT": "2"}.items():
        monkeypatch.setenv(name, value)

    def run(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
        root = logging.getLogger()
        handlers = list(root.handlers)
        try:
            code = main(list(args))
        finally:
            for h in root.handlers[len(handlers):]:
                h.close()
            root.handlers[:] = handlers
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_cli_ingest_url_feed_and_watch(cli, site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli("ingest", f"{site.base}/article/3", f"{site.base}/missing", capsys=capsys)
    assert code == 1 and out.startswith("1 new, 0 updated, 0 unchanged, 1 failed")
    assert err == f"newsbot: {site.base}/missing: HTTP 404 Not Found\n"

    code, out, err = cli("ingest", "--feed", f"{site.base}/feed.rss", capsys=capsys)
    assert code == 0 and err == "" and "1 feeds (0 not modified, 0 failed), 2 entries, 2 fetched; 2 new" in out

    site.requests.clear()
    site.feed_version = 2  # same entries, new ETag: the first round reads the feed, skips both entries
    code, out, err = cli("watch", f"{site.base}/feed.rss", "--every", "0.05s", "--rounds", "2", "--json",
                         capsys=capsys)
    rounds = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(rounds) == 2 and err == ""
    assert rounds[0]["feeds"]["skipped_unchanged"] == 2 and rounds[0]["articles"]["new"] == 0
    assert rounds[1]["feeds"]["not_modified"] == 1
    assert site.paths() == ["/feed.rss", "/feed.rss"]

    code, _, err = cli("watch", "u", "--every", "soon", capsys=capsys)
    assert code == 1 and err == "newsbot: --every: not a duration: 'soon' (try 30s, 15m or 1h)\n"
    code, _, err = cli("ingest", capsys=capsys)
    assert code == 1 and "nothing to ingest" in err


def test_parse_every() -> None:
    assert parse_every("15m") == 900 and parse_every("30s") == 30 and parse_every("1h") == 3600
    assert parse_every("45") == 45 and parse_every("0.5s") == 0.5
    for bad in ("", "m", "-5m", "0", "soon"):
        with pytest.raises(ValueError):
            parse_every(bad)
