"""Fetching feeds over HTTP and the registry of feeds that ``digest fetch`` polls.

``http_get`` is plain urllib with a conditional GET (ETag / Last-Modified), one deadline for
the whole download and a size cap. ``fetch_feeds`` polls every registered feed once, stores
what it got, and records each feed's last success or last error; one bad feed never stops the
others. A feed's new ETag/Last-Modified are saved only after its articles are stored, so a
failure while storing cannot turn the next poll into a "304 Not Modified" that loses entries.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from http.client import HTTPException
from urllib.parse import urlsplit

from sqlite_utils import Database

from . import __version__
from .articles import SourceReport, store_articles
from .config import Config
from .errors import DigestError, InvalidInput, NotFound, SourceError
from .sources import parse_bytes
from .store import clean_tag_name, tag_key
from .timeutil import from_iso, to_iso

USER_AGENT = f"digest/{__version__} (+feed reader; newsletter digests)"


@dataclass(frozen=True)
class HttpResponse:
    status: int  # 200 or 304
    body: bytes | None
    etag: str | None
    last_modified: str | None
    content_type: str | None
    url: str  # after redirects


def _size(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB" if n >= 1_000_000 else f"{n / 1000:.0f} KB"


def http_get(
    url: str,
    *,
    timeout: float = 20,
    max_bytes: int = 20_000_000,
    etag: str | None = None,
    last_modified: str | None = None,
) -> HttpResponse:
    """GET ``url``; raise ``SourceError`` with a readable reason for anything but 200/304.

    ``timeout`` bounds every socket operation and the body download as a whole (checked
    between reads), so a server that trickles bytes cannot hold a poll for much longer."""
    check_feed_url(url)
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    request = urllib.request.Request(url, headers=headers)
    deadline = time.monotonic() + timeout
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise SourceError(
                    f"{url}: response is {_size(int(length))}, over the "
                    f"{_size(max_bytes)} limit ([ingest] max_feed_bytes)"
                )
            chunks: list[bytes] = []
            size = 0
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                chunk = response.read1(65536)
                if not chunk:
                    break
                size += len(chunk)
                if size > max_bytes:
                    raise SourceError(
                        f"{url}: response is over the {_size(max_bytes)} limit "
                        "([ingest] max_feed_bytes)"
                    )
                chunks.append(chunk)
            return HttpResponse(
                status=200,
                body=b"".join(chunks),
                etag=response.headers.get("ETag"),
                last_modified=response.headers.get("Last-Modified"),
                content_type=response.headers.get("Content-Type"),
                url=response.geturl(),
            )
    except urllib.error.HTTPError as e:
        if e.code == 304:
            return HttpResponse(
                304, None, e.headers.get("ETag") or etag,
                e.headers.get("Last-Modified") or last_modified, None, url,
            )  # fmt: skip
        raise SourceError(f"{url}: HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise SourceError(f"{url}: {_reason(e.reason, timeout)}") from None
    except TimeoutError:
        raise SourceError(
            f"{url}: timed out after {timeout:g} s ([ingest] fetch_timeout)"
        ) from None
    except (ConnectionError, ssl.SSLError, HTTPException, OSError) as e:
        raise SourceError(f"{url}: {_reason(e, timeout)}") from None


def _reason(reason: object, timeout: float) -> str:
    if isinstance(reason, TimeoutError | socket.timeout):
        return f"timed out after {timeout:g} s ([ingest] fetch_timeout)"
    if isinstance(reason, ConnectionRefusedError):
        return "unreachable (connection refused)"
    if isinstance(reason, socket.gaierror):
        return "unreachable (host name not found)"
    if isinstance(reason, ssl.SSLError):
        return f"TLS error ({getattr(reason, 'reason', None) or reason})"
    if isinstance(reason, HTTPException):
        return f"bad HTTP response ({type(reason).__name__}: {reason})"
    if isinstance(reason, OSError):
        return f"unreachable ({reason.strerror or reason})"
    return f"unreachable ({reason})"


def check_feed_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(
            f"{url!r} is not an http(s) URL (expected e.g. https://example.org/feed.xml)"
        )
    return url


# ---------------------------------------------------------------------------- registered feeds


@dataclass(frozen=True)
class Feed:
    id: int
    url: str
    tags: tuple[str, ...]
    etag: str | None
    last_modified: str | None
    last_fetched_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: dict) -> Feed:
        def t(v):
            return from_iso(v) if v else None

        return cls(
            id=row["id"],
            url=row["url"],
            tags=tuple(json.loads(row["tags"] or "[]")),
            etag=row["etag"],
            last_modified=row["last_modified"],
            last_fetched_at=t(row["last_fetched_at"]),
            last_success_at=t(row["last_success_at"]),
            last_error=row["last_error"],
            last_error_at=t(row["last_error_at"]),
            created_at=from_iso(row["created_at"]),
        )

    def to_json(self) -> dict:
        def t(v):
            return to_iso(v) if v else None

        return {
            "url": self.url,
            "tags": list(self.tags),
            "last_fetched_at": t(self.last_fetched_at),
            "last_success_at": t(self.last_success_at),
            "last_error": self.last_error,
            "last_error_at": t(self.last_error_at),
            "created_at": t(self.created_at),
        }


def _rows(db: Database, where: str = "", params: Iterable = ()) -> list[Feed]:
    cur = db.execute(f"SELECT * FROM feeds {where} ORDER BY url", list(params))
    names = [c[0] for c in cur.description]
    return [Feed.from_row(dict(zip(names, r, strict=True))) for r in cur.fetchall()]


def list_feeds(db: Database) -> list[Feed]:
    return _rows(db)


def get_feed(db: Database, url: str) -> Feed:
    found = _rows(db, "WHERE url = ?", [url])
    if not found:
        raise NotFound(f"no registered feed {url} (see `digest feeds list`)")
    return found[0]


def add_feed(
    db: Database, url: str, *, tags: Iterable[str] = (), now: datetime
) -> tuple[Feed, bool]:
    """Register ``url`` (True) or, if it is already registered, add ``tags`` to it (False)."""
    url = check_feed_url(url.strip())
    names = [clean_tag_name(t) for t in tags if tag_key(t)]
    with db.atomic():
        existing = _rows(db, "WHERE url = ?", [url])
        if existing:
            merged = list(existing[0].tags)
            keys = {tag_key(t) for t in merged}
            merged += [n for n in names if tag_key(n) not in keys and not keys.add(tag_key(n))]
            db.execute("UPDATE feeds SET tags = ? WHERE url = ?", [json.dumps(merged), url])
            return get_feed(db, url), False
        unique: dict[str, str] = {}
        for n in names:
            unique.setdefault(tag_key(n), n)
        db.execute(
            "INSERT INTO feeds (url, tags, created_at) VALUES (?, ?, ?)",
            [url, json.dumps(list(unique.values())), to_iso(now)],
        )
    return get_feed(db, url), True


def remove_feed(db: Database, url: str) -> Feed:
    """Stop polling ``url``. Its articles stay in the store."""
    feed = get_feed(db, url)
    db.execute("DELETE FROM feeds WHERE id = ?", [feed.id])
    return feed


@dataclass
class FeedReport:
    url: str
    status: str  # "fetched" | "not modified" | "failed"
    report: SourceReport | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status != "failed" and (self.report is None or self.report.ok)

    def summary_line(self) -> str:
        if self.status == "failed":
            return f"{self.url}: failed: {self.error}"
        if self.status == "not modified":
            return f"{self.url}: not modified"
        assert self.report is not None
        return self.report.summary_line()


def fetch_feeds(
    db: Database,
    config: Config,
    *,
    now: datetime,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[FeedReport]:
    """Poll every registered feed once (conditional GET) and store new and changed entries.
    Records last success / last error per feed; never raises because of one bad feed."""
    timeout = config.get("ingest", "fetch_timeout")
    max_bytes = config.get("ingest", "max_feed_bytes")
    max_text = config.get("ingest", "max_text_bytes")
    feeds = list_feeds(db)
    reports = []
    now_iso = to_iso(now)
    for done, feed in enumerate(feeds, 1):
        try:
            response = http_get(
                feed.url,
                timeout=timeout,
                max_bytes=max_bytes,
                etag=feed.etag,
                last_modified=feed.last_modified,
            )
            if response.status == 304:
                report = FeedReport(feed.url, "not modified")
            else:
                parsed = parse_bytes(
                    response.body or b"", feed.url, content_type=response.content_type
                )
                stored = store_articles(
                    db, parsed, now=now, max_text_bytes=max_text, tags=feed.tags
                )
                report = FeedReport(feed.url, "fetched", report=stored)
        except DigestError as e:
            message = str(e).removeprefix(f"{feed.url}: ")
            db.execute(
                "UPDATE feeds SET last_fetched_at = ?, last_error = ?, last_error_at = ?"
                " WHERE id = ?",
                [now_iso, message, now_iso, feed.id],
            )
            reports.append(FeedReport(feed.url, "failed", error=message))
        else:
            problem = None
            if report.report is not None and report.report.rejected:
                problem = "; ".join(str(r) for r in report.report.rejected[:3])
            db.execute(
                "UPDATE feeds SET etag = ?, last_modified = ?, last_fetched_at = ?,"
                " last_success_at = ?, last_error = ?, last_error_at = CASE WHEN ? IS NULL"
                " THEN last_error_at ELSE ? END WHERE id = ?",
                [
                    response.etag, response.last_modified, now_iso, now_iso,
                    problem, problem, now_iso, feed.id,
                ],
            )  # fmt: skip
            reports.append(report)
        if progress is not None:
            progress("feeds", done, len(feeds))
    return reports
