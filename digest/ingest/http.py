"""Fetching over HTTP: ``http_get`` is plain urllib with a conditional GET (ETag /
Last-Modified), one deadline for the whole download and a size cap, and a readable reason for
every failure."""

from __future__ import annotations

import socket
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.client import HTTPException
from urllib.parse import urlsplit

from .. import __version__
from ..errors import InvalidInput, SourceError

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
