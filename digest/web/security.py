"""Web security pieces that do not depend on Flask's request: the sliding-window rate limiter,
CSRF token handling, the ``next`` check that prevents open redirects, and the response headers.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections import OrderedDict, deque
from urllib.parse import urlsplit

# No inline scripts or styles anywhere (the pages have no JS at all). The digest preview is
# served from this site into a sandboxed iframe, hence frame-src 'self'; no one else may frame us.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; "
    "style-src 'self'; "
    "img-src 'self' https: data:; "
    "form-action 'self'; "
    "frame-src 'self'; "
    "frame-ancestors 'self'; "
    "base-uri 'none'"
)

# For a stored digest shown as a page (the web version) or inside the preview iframe: email HTML
# carries its CSS in style attributes (premailer), so inline styles are allowed there, scripts
# never; ``sandbox`` gives the frame a unique origin with no scripts, forms or top navigation.
MESSAGE_CSP = (
    "default-src 'none'; "
    "style-src 'unsafe-inline'; "
    "img-src https: data:; "
    "frame-ancestors 'self'; "
    "sandbox allow-popups allow-popups-to-escape-sandbox"
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    # Token URLs must never leak to other sites through the Referer header.
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "SAMEORIGIN",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}

NO_STORE = "no-store"


class RateLimiter:
    """In-process sliding-window limiter: at most ``limit`` hits per ``window`` seconds for each
    key (client address + endpoint group). Thread-safe. Memory is bounded: at most
    ``max_keys`` keys are tracked, the least recently used are forgotten first.

    In-process means each worker process counts on its own; with N workers the effective limit
    is up to N times higher. That is acceptable for abuse damping, which is all this is for.
    """

    def __init__(self, limit: int, window: float, *, max_keys: int = 10_000):
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def hit(self, key: str, now: float) -> bool:
        """Record a request at time ``now`` (seconds). False if it is over the limit (and then
        it is not counted, so a client that keeps hammering gets back in once the window has
        passed since its last allowed requests)."""
        if self.limit <= 0:
            return True
        with self._lock:
            hits = self._hits.get(key)
            if hits is None:
                hits = self._hits[key] = deque()
                while len(self._hits) > self.max_keys:
                    self._hits.popitem(last=False)
            else:
                self._hits.move_to_end(key)
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return False
            hits.append(now)
            return True

    def retry_after(self, key: str, now: float) -> int:
        """Whole seconds until the oldest counted hit of ``key`` leaves the window."""
        with self._lock:
            hits = self._hits.get(key)
            if not hits:
                return 0
            return max(1, int(hits[0] + self.window - now + 0.999))


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_matches(expected: str | None, given: str | None) -> bool:
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


def safe_next(target: str | None, default: str = "/") -> str:
    """``target`` if it is a path on this site, else ``default``. Rejects absolute URLs,
    scheme-relative ``//host`` and the ``/\\host`` form browsers treat the same, and anything
    with control characters or whitespace."""
    if not target or not target.startswith("/"):
        return default
    if target.startswith(("//", "/\\")):
        return default
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F or ch == "\\" for ch in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target
