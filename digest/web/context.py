"""What the views share: the app's ``WebContext`` (store path, settings, secret, clock, rate
limiters), the per-request database connection, rate limiting, CSRF checks, security headers
and error pages. ``create_app`` wires these into Flask; the blueprints import them from here."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from flask import Response, current_app, g, render_template, request, session
from flask.typing import ResponseReturnValue
from sqlite_utils import Database
from werkzeug.exceptions import BadRequest, HTTPException, TooManyRequests

from ..config import Config
from ..errors import DigestError
from ..store import open_db
from .security import NO_STORE, SECURITY_HEADERS, RateLimiter, csrf_matches, new_csrf_token
from .worker import NoticeWorker

log = logging.getLogger("digest.web")


@dataclass
class WebContext:
    """What the views need besides the request: where the store is, settings, the signing
    secret for tokens, the clock, the rate limiters and the worker that sends queued emails.
    One per app."""

    db_path: Path
    config: Config
    secret: bytes
    clock: Callable[[], datetime]
    limiters: dict[str, RateLimiter]
    notices: NoticeWorker


# --- per-request helpers used by the views -------------------------------------------------


def web() -> WebContext:
    context: WebContext = current_app.extensions["digest"]
    return context


def get_db() -> Database:
    """This request's connection to the store, opened on first use, closed on teardown."""
    if "db" not in g:
        g.db = open_db(web().db_path, migrate=False)
    db: Database = g.db
    return db


def now() -> datetime:
    return web().clock()


def start_worker() -> None:
    """Runs before every request: the outbox worker is running in this process (it starts
    with the first request, and again in each forked worker process)."""
    web().notices.ensure_running()


def close_db(exc: BaseException | None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.close()


def enforce_limit(group: str) -> None:
    """Count this request against ``group``'s limit for the client address; 429 if over."""
    limiter = web().limiters[group]
    key = f"{request.remote_addr}|{group}"
    at = now().timestamp()
    if not limiter.hit(key, at):
        raise TooManyRequests(retry_after=limiter.retry_after(key, at))


# --- CSRF -------------------------------------------------------------------------------------


class CsrfFailure(BadRequest):
    description = (
        "This form has expired or was not sent from this site. "
        "Go back, reload the page and try again."
    )


def csrf_token() -> str:
    """The session's CSRF token (created on first use), for a hidden ``csrf_token`` field."""
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = new_csrf_token()
    return token


def is_one_click_unsubscribe() -> bool:
    """RFC 8058: the mailbox provider POSTs ``List-Unsubscribe=One-Click`` to the URL from the
    List-Unsubscribe header, without cookies. The signed token in the URL is the protection."""
    return (
        request.endpoint in ("public.unsubscribe", "public.preview_link")
        and request.form.get("List-Unsubscribe") == "One-Click"
    )


# Views that check a signed token of their own instead of the session's CSRF token: the
# embeddable subscribe form is posted from other sites' pages, where our cookie never is.
SIGNED_FORMS = frozenset({"embed.subscribe"})


def check_csrf() -> None:
    if request.method != "POST" or request.endpoint == "static" or request.blueprint == "hooks":
        return  # provider webhooks are authenticated by the provider's signature
    if is_one_click_unsubscribe() or request.endpoint in SIGNED_FORMS:
        return
    if not csrf_matches(session.get("csrf"), request.form.get("csrf_token")):
        raise CsrfFailure()


# --- responses --------------------------------------------------------------------------------


def add_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        # A view may set a stricter or different policy (e.g. the sandboxed message view).
        response.headers.setdefault(name, value)
    if request.endpoint != "static" and "Cache-Control" not in response.headers:
        # Token pages, staff pages and forms with CSRF tokens must not be stored anywhere.
        # Public pages that may be cached (the archive) set their own Cache-Control.
        response.headers["Cache-Control"] = NO_STORE
    return response


_TITLES = {
    400: "Bad request",
    403: "Not allowed",
    404: "Page not found",
    405: "Not allowed here",
    413: "Too large",
    429: "Too many requests",
    500: "Something went wrong",
}


def render_error(
    code: int, title: str, message: str, headers: dict[str, str] | None = None
) -> ResponseReturnValue:
    body = render_template("error.html", code=code, title=title, message=message)
    return body, code, headers or {}


def http_error(e: HTTPException) -> ResponseReturnValue:
    code = e.code or 500
    if code >= 500:
        return server_error(e)
    message = e.description or ""
    if code == 404 and "requested URL was not found" in message:
        message = "There is no page at this address."
    if code == 429:
        message = "Too many requests from your address. Please wait a minute and try again."
    headers = {k: v for k, v in e.get_headers() if k in ("Retry-After", "Allow")}
    return render_error(code, _TITLES.get(code, "Error"), message, headers)


def digest_error(code: int, title: str) -> Callable[[DigestError], ResponseReturnValue]:
    def handler(e: DigestError) -> ResponseReturnValue:
        return render_error(code, title, str(e))

    return handler


def server_error(e: Exception) -> ResponseReturnValue:
    original = getattr(e, "original_exception", None) or e
    log.error("error serving %s %s", request.method, request.path, exc_info=original)
    return render_error(
        500,
        _TITLES[500],
        "The page could not be shown because of an error on our side. Please try again later.",
    )
