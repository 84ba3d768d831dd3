"""The web application behind ``digest serve``: public pages for subscribers (signed-token links,
subscribe form, archive), and pages for logged-in editors and admins.

``create_app(db_path, config, secret=..., clock=...)`` builds a Flask app; every request opens
the store with ``open_db`` and closes it on teardown. Security lives here and in ``security``:
signed session cookies (Secure, HttpOnly, SameSite=Lax), a CSRF token on every form POST
except the RFC 8058 one-click unsubscribe, rate limits, strict response headers, and error pages
rendered from templates (never a stack trace). Staff sessions are kept on the server
(``users``), and emails the pages cause (confirmations) are queued in the store and sent by a
background thread (``worker``), never while a request waits.

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
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask
from jinja2 import ChoiceLoader, FileSystemLoader
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.middleware.proxy_fix import ProxyFix

from .. import i18n
from ..config import Config, load_config
from ..errors import DigestError, InvalidInput, NotFound, TokenError
from ..store import open_db
from ..timeutil import utc_now
from ..tokens import load_secret
from . import (
    accounts,
    admin,
    archive,
    auth,
    dashboard,
    embed,
    feeds,
    hooks,
    imports,
    issues,
    lists,
    look,
    public,
    staff,
    tags,
)
from .context import (
    WebContext,
    add_headers,
    check_csrf,
    close_db,
    csrf_token,
    digest_error,
    http_error,
    server_error,
    start_worker,
)
from .security import RateLimiter
from .worker import NoticeWorker

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # CSV imports (admin) are the largest request bodies

# The staff navigation marks its item as the current page on these pages too.
NAV_CHILDREN = {
    "lists.index": ("lists.new", "lists.edit", "lists.delete"),
    "feeds.index": ("feeds.remove",),
    "admin.subscribers": (
        "admin.subscriber",
        "admin.add",
        "admin.reactivate",
        "admin.remove_from_list",
    ),
    "admin.suppressions": ("admin.lift",),
    "imports.import_csv": ("imports.import_apply",),
    "accounts.users_page": ("accounts.remove",),
    "issues.index": ("issues.issue",),
}


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
        notices=NoticeWorker(db_path, config, secret=secret, clock=clock),
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

    for module in (accounts, admin, archive, auth, dashboard, embed, feeds, imports, issues, lists,
                   look, public, staff, tags):  # fmt: skip
        app.register_blueprint(module.bp)
    app.register_blueprint(hooks.bp)  # provider webhooks: signed, no session or CSRF

    app.before_request(start_worker)
    app.before_request(check_csrf)
    app.before_request(auth.load_user)
    app.after_request(add_headers)
    app.teardown_appcontext(close_db)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(TokenError, digest_error(400, "This link does not work"))
    app.register_error_handler(InvalidInput, digest_error(400, "That did not work"))
    app.register_error_handler(NotFound, digest_error(404, "Not found"))
    app.register_error_handler(DigestError, digest_error(400, "That did not work"))
    app.register_error_handler(InternalServerError, server_error)
    app.jinja_env.globals.update(
        csrf_token=csrf_token,
        site_name=config.site_name,
        zip=zip,
        list_logo=look.list_logo,
        local_text=look.local_text,
        nav_children=NAV_CHILDREN,
    )
    app.jinja_env.filters["utc"] = look.utc_text
    # Subscriber pages in the list's language: the email catalogs, `lang` from each view.
    i18n.install(app.jinja_env)
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
