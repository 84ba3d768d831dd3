"""The web application behind ``digest serve``: public pages for subscribers (signed-token links,
subscribe form, archive), and pages for logged-in editors and admins.

``create_app(db_path, config, secret=..., clock=...)`` builds a Flask app; every request opens
the store with ``open_db`` and closes it on teardown. Security lives here and in ``security``:
signed session cookies (Secure, HttpOnly, SameSite=Lax), a CSRF token on every form POST
except the RFC 8058 one-click unsubscribe, rate limits, strict response headers, and error pages
rendered from templates (never a stack trace).

For production, run ``app_from_env()`` under a WSGI server (waitress, gunicorn) behind a
TLS-terminating reverse proxy; see the README.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, g, render_template, request, session
from flask.typing import ResponseReturnValue
from jinja2 import ChoiceLoader, FileSystemLoader
from sqlite_utils import Database
from werkzeug.exceptions import BadRequest, HTTPException, InternalServerError, TooManyRequests
from werkzeug.middleware.proxy_fix import ProxyFix

from ..config import Config, load_config
from ..errors import DigestError, InvalidInput, NotFound, TokenError
from ..store import open_db
from ..timeutil import utc_now
from ..tokens import load_secret
from .security import (
    NO_STORE,
    SECURITY_HEADERS,
    RateLimiter,
    csrf_matches,
    new_csrf_token,
)

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # CSV imports (admin) are the largest request bodies


@dataclass
class WebContext:
    """What the views need besides the request: where the store is, settings, the signing
    secret for tokens, the clock and the rate limiters. One per app."""

    db_path: Path
    config: Config
    secret: bytes
    clock: Callable[[], datetime]
    limiters: dict[str, RateLimiter]


def builtin_templates_dir() -> Path:
    """``templates/`` shipped with digest: inside the package when installed from a wheel
    (pyproject force-include), beside the package in a source checkout."""
    package = Path(__file__).resolve().parent.parent
    installed = package / "templates"
    return installed if installed.is_dir() else package.parent / "templates"


def session_key(secret: bytes) -> bytes:
    """The cookie-signing key, derived from the project secret so it is not the token key."""
    return hmac.new(secret, b"digest-web-session-v1", hashlib.sha256).digest()


def cookies_may_be_plain(config: Config) -> bool:
    """Secure cookies can be off only for local development over plain http, or on request."""
    if not config.web.secure_cookies:
        return True
    base = urlsplit(config.base_url)
    if base.scheme != "http":
        return False
    host = base.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_app(
    db_path: str | Path,
    config: Config,
    *,
    secret: bytes,
    clock: Callable[[], datetime] = utc_now,
) -> Flask:
    db_path = Path(db_path)
    # Create or migrate the store now, so a wrong path fails at startup, not on the first visit.
    open_db(db_path).close()

    app = Flask(__name__, static_folder="static", template_folder=None)
    secure = not cookies_may_be_plain(config)
    hours = config.web.session_hours
    app.config.update(
        SECRET_KEY=session_key(secret),
        # The __Host- prefix makes browsers refuse the cookie unless Secure, Path=/, no Domain.
        SESSION_COOKIE_NAME="__Host-digest" if secure else "digest_session",
        SESSION_COOKIE_SECURE=secure,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=int(hours * 3600),
        MAX_CONTENT_LENGTH=MAX_UPLOAD_BYTES,
    )
    window = config.web.limit_window_seconds
    app.extensions["digest"] = WebContext(
        db_path=db_path,
        config=config,
        secret=secret,
        clock=clock,
        limiters={
            group: RateLimiter(config.web.limit(group), window)
            for group in ("subscribe", "token", "login")
        },
    )
    loaders = [FileSystemLoader(builtin_templates_dir() / "web")]
    if config.templates_dir is not None:
        loaders.insert(0, FileSystemLoader(config.templates_dir / "web"))
    app.jinja_loader = ChoiceLoader(loaders)
    hops = config.web.proxy_hops
    if hops:
        # Flask documents replacing wsgi_app with middleware; mypy sees a method assignment.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops
        )

    from . import admin, auth, public, staff

    app.register_blueprint(admin.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(public.bp)
    app.register_blueprint(staff.bp)

    app.before_request(_check_csrf)
    app.before_request(auth.load_user)
    app.after_request(_add_headers)
    app.teardown_appcontext(_close_db)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(TokenError, _digest_error(400, "This link does not work"))
    app.register_error_handler(InvalidInput, _digest_error(400, "That did not work"))
    app.register_error_handler(NotFound, _digest_error(404, "Not found"))
    app.register_error_handler(DigestError, _digest_error(400, "That did not work"))
    app.register_error_handler(InternalServerError, _server_error)
    app.jinja_env.globals.update(csrf_token=csrf_token, site_name=config.site_name, zip=zip)
    return app


def app_from_env() -> Flask:
    """The app for a production WSGI server, configured like the CLI from the environment:
    DIGEST_DB (default ./digest.db), DIGEST_CONFIG (default ./digest.toml if present) and
    DIGEST_SECRET (else the secret file beside the database).

    Example: ``waitress-serve --host 127.0.0.1 --port 8080 --call digest.web:app_from_env``
    """
    db_path = Path(os.environ.get("DIGEST_DB") or "digest.db")
    config_path = os.environ.get("DIGEST_CONFIG") or (
        "digest.toml" if Path("digest.toml").exists() else None
    )
    config = load_config(config_path)
    open_db(db_path).close()  # NoDatabase before a secret file is made beside nothing
    return create_app(db_path, config, secret=load_secret(db_path))


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


def _close_db(exc: BaseException | None) -> None:
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
        request.endpoint == "public.unsubscribe"
        and request.form.get("List-Unsubscribe") == "One-Click"
    )


def _check_csrf() -> None:
    if request.method != "POST" or request.endpoint == "static":
        return
    if is_one_click_unsubscribe():
        return
    if not csrf_matches(session.get("csrf"), request.form.get("csrf_token")):
        raise CsrfFailure()


# --- responses --------------------------------------------------------------------------------


def _add_headers(response: Response) -> Response:
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


def _http_error(e: HTTPException) -> ResponseReturnValue:
    code = e.code or 500
    if code >= 500:
        return _server_error(e)
    message = e.description or ""
    if code == 404 and "requested URL was not found" in message:
        message = "There is no page at this address."
    if code == 429:
        message = "Too many requests from your address. Please wait a minute and try again."
    headers = {k: v for k, v in e.get_headers() if k in ("Retry-After", "Allow")}
    return render_error(code, _TITLES.get(code, "Error"), message, headers)


def _digest_error(code: int, title: str) -> Callable[[DigestError], ResponseReturnValue]:
    def handler(e: DigestError) -> ResponseReturnValue:
        return render_error(code, title, str(e))

    return handler


def _server_error(e: Exception) -> ResponseReturnValue:
    original = getattr(e, "original_exception", None) or e
    log.error("error serving %s %s", request.method, request.path, exc_info=original)
    return render_error(
        500,
        _TITLES[500],
        "The page could not be shown because of an error on our side. Please try again later.",
    )
