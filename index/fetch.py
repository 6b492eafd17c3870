"""Pages and feeds off the web, safely: http(s) only, public addresses only, bounded size and time.

Every address a request may connect to is checked twice: the host's resolved addresses before the
request (for a clear message), and the address actually dialled at connect time (so a DNS answer that
changes between the two cannot reach a private network). Redirects are followed by hand, each hop
checked again. Responses are streamed and cut off at the size and time limits.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from index.errors import NewsbotError, first_line
from index.load import article_from_html, decode
from index.types import Article, LoadError

log = logging.getLogger(__name__)

USER_AGENT = "newsbot/0.1 (news question answering; polite feed reader)"
MAX_REDIRECTS = 5
SCHEMES = ("http", "https")

Resolver = Callable[[str, int], list[str]]


class FetchError(NewsbotError):
    """A page or feed that could not be fetched; the message names the URL and the reason."""


@dataclass(frozen=True)
class FetchLimits:
    """What one download may cost and where it may go."""

    max_bytes: int = 5 * 1024 * 1024
    timeout: float = 20.0
    host_delay: float = 1.0
    allow_private: bool = False
    max_article_chars: int = 1_000_000


@dataclass(frozen=True)
class Fetched:
    """One response body (or a 304); ``url`` is the address after redirects."""

    url: str
    status: int
    body: bytes = b""
    etag: str = ""
    last_modified: str = ""
    content_type: str = ""

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def resolve(host: str, port: int) -> list[str]:
    """Every IP address ``host`` resolves to."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as err:
        raise _Refused(f"cannot resolve host {host!r}: {err}") from err
    return sorted({str(info[4][0]) for info in infos})


def is_public(address: str) -> bool:
    """True for globally routable unicast addresses (not private, loopback, link-local, reserved, ...)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_private or ip.is_loopback or ip.is_link_local
                                 or ip.is_reserved or ip.is_unspecified)


class _Refused(Exception):
    """An address or URL the safety rules refuse (raised below httpx so it is never retried or wrapped)."""


class _GuardedBackend(httpcore.SyncBackend):
    """httpcore's socket backend, refusing to dial non-public addresses and dialling only checked ones."""

    def __init__(self, allow_private: bool, resolver: Resolver, address_ok: Callable[[str], bool]) -> None:
        self.allow_private = allow_private
        self.resolver = resolver
        self.address_ok = address_ok

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> httpcore.NetworkStream:
        addresses = self.resolver(host, port)
        if not addresses:
            raise _Refused(f"host {host!r} has no address")
        if not self.allow_private:
            bad = [a for a in addresses if not self.address_ok(a)]
            if bad:
                raise _Refused(f"refused, host {host!r} resolves to a non-public address ({bad[0]}); "
                               "set NEWSBOT_ALLOW_PRIVATE_URLS=1 to allow it")
        last: Exception | None = None
        for address in addresses:  # connect to an address we checked, never re-resolve
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as err:
                last = err
        assert last is not None
        raise last


class Fetcher:
    """GET pages and feeds within ``FetchLimits``; one per process, thread-safe politeness bookkeeping."""

    def __init__(self, limits: FetchLimits = FetchLimits(), *, resolver: Resolver = resolve,
                 address_ok: Callable[[str], bool] = is_public, sleep: Callable[[float], None] = time.sleep) -> None:
        """``resolver`` and ``address_ok`` (which addresses count as public) are seams for tests."""
        self.limits = limits
        self._resolver = resolver
        self._address_ok = address_ok
        self._sleep = sleep
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()
        transport = httpx.HTTPTransport(retries=0)
        pool = getattr(transport, "_pool", None)
        if pool is None or not hasattr(pool, "_network_backend"):  # pragma: no cover - httpx internals moved
            raise RuntimeError("this httpx version cannot be guarded; pin httpx<0.29")
        pool._network_backend = _GuardedBackend(limits.allow_private, resolver, address_ok)
        self._client = httpx.Client(transport=transport, timeout=httpx.Timeout(limits.timeout), trust_env=False,
                                    follow_redirects=False, headers={"User-Agent": USER_AGENT})

    def close(self) -> None:
        self._client.close()

    def check_url(self, url: str) -> tuple[str, int]:
        """The (host, port) of an acceptable URL; ``FetchError`` for other schemes or non-public hosts."""
        parts = urlsplit(url)
        if parts.scheme.lower() not in SCHEMES:
            raise FetchError(f"{url}: only http and https URLs can be fetched")
        host = parts.hostname or ""
        if not host:
            raise FetchError(f"{url}: no host name")
        try:
            port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
        except ValueError as err:
            raise FetchError(f"{url}: bad port") from err
        if not self.limits.allow_private:
            try:
                addresses = self._resolver(host, port)
            except _Refused as err:
                raise FetchError(f"{url}: {err}") from err
            bad = [a for a in addresses if not self._address_ok(a)]
            if bad or not addresses:
                raise FetchError(f"{url}: refused, {host} resolves to a non-public address "
                                 f"({bad[0] if bad else 'none'}); set NEWSBOT_ALLOW_PRIVATE_URLS=1 to allow it")
        return host.lower(), port

    def get(self, url: str, *, etag: str = "", last_modified: str = "", accept: str = "*/*") -> Fetched:
        """GET ``url`` following up to ``MAX_REDIRECTS`` checked redirects; conditional when validators are given."""
        deadline = time.monotonic() + self.limits.timeout
        headers = {"Accept": accept}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            host, port = self.check_url(current)
            self._polite(f"{host}:{port}")
            try:
                with self._client.stream("GET", current, headers=headers) as resp:
                    if resp.is_redirect and "location" in resp.headers:
                        current = urljoin(current, resp.headers["location"])
                        continue
                    if resp.status_code == 304:
                        return Fetched(current, 304, etag=resp.headers.get("etag", etag),
                                       last_modified=resp.headers.get("last-modified", last_modified))
                    if resp.status_code >= 400:
                        raise FetchError(f"{current}: HTTP {resp.status_code} {resp.reason_phrase}".rstrip())
                    body = self._read(resp, current, deadline)
                    return Fetched(current, resp.status_code, body, etag=resp.headers.get("etag", ""),
                                   last_modified=resp.headers.get("last-modified", ""),
                                   content_type=resp.headers.get("content-type", ""))
            except _Refused as err:
                raise FetchError(f"{current}: {err}") from err
            except httpx.TimeoutException as err:
                raise FetchError(f"{current}: no answer within {self.limits.timeout:g} s "
                                 "(NEWSBOT_FETCH_TIMEOUT)") from err
            except httpx.HTTPError as err:
                raise FetchError(f"{current}: {first_line(err)}") from err
        raise FetchError(f"{url}: more than {MAX_REDIRECTS} redirects")

    def _read(self, resp: httpx.Response, url: str, deadline: float) -> bytes:
        limit = self.limits.max_bytes
        declared = resp.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise FetchError(f"{url}: {int(declared):,} bytes, over the {limit:,}-byte limit (NEWSBOT_FETCH_MAX_BYTES)")
        chunks: list[bytes] = []
        size = 0
        for chunk in resp.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise FetchError(f"{url}: over the {limit:,}-byte limit (NEWSBOT_FETCH_MAX_BYTES); stopped")
            if time.monotonic() > deadline:
                raise FetchError(f"{url}: download took over {self.limits.timeout:g} s (NEWSBOT_FETCH_TIMEOUT)")
            chunks.append(chunk)
        return b"".join(chunks)

    def _polite(self, key: str) -> None:
        """Wait until ``host_delay`` has passed since the previous request to the same host and port."""
        with self._lock:
            now = time.monotonic()
            wait = self._last.get(key, -1e9) + self.limits.host_delay - now
            self._last[key] = now + max(wait, 0.0)
        if wait > 0:
            self._sleep(wait)

    # -- articles ---------------------------------------------------------------------------------------
    def article(self, url: str, defaults: dict[str, str] | None = None) -> Article | LoadError:
        """The article at ``url`` (its id comes from ``url``), or a ``LoadError`` naming the URL and the reason."""
        try:
            page = self.get(url, accept="text/html,application/xhtml+xml;q=0.9,*/*;q=0.5")
        except FetchError as err:
            return LoadError(url, 0, str(err).removeprefix(f"{url}: "))
        kind = page.content_type.split(";", 1)[0].strip().lower()
        if kind and not (kind.startswith("text/") or "html" in kind or "xml" in kind):
            return LoadError(url, 0, f"not a web page ({kind})")
        item = article_from_html(decode(page.body), origin=url, url=url, defaults=defaults)
        if isinstance(item, Article) and len(item.body) > self.limits.max_article_chars:
            return LoadError(url, 0, f"article body is {len(item.body):,} characters, over the "
                                     f"{self.limits.max_article_chars:,}-character limit (NEWSBOT_MAX_ARTICLE_CHARS)")
        return item

