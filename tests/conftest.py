"""Shared fixtures: real SQLite files in tmp_path, a CLI runner bound to them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from digest.cli import cli
from digest.store import open_db

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def _direct_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests talk to servers on 127.0.0.1: a proxy set in the machine's environment (which
    ``http_get`` honours) must not carry them elsewhere. Proxy tests set their own."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A new, empty digest database (what `digest init` makes)."""
    path = tmp_path / "digest.db"
    open_db(path, create=True).close()
    return path


@pytest.fixture
def db(db_path: Path):
    database = open_db(db_path, create=True)
    yield database
    database.close()


@pytest.fixture
def run(db_path: Path, tmp_path: Path, monkeypatch):
    """Run the CLI against this test's database: ``run("ingest", "feed.xml")``.
    Returns click's Result; the working directory is tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIGEST_CONFIG", raising=False)
    monkeypatch.delenv("DIGEST_BASE_URL", raising=False)
    monkeypatch.delenv("DIGEST_SMTP_URL", raising=False)
    monkeypatch.setenv("DIGEST_SECRET", "test-secret")
    runner = CliRunner()

    def _run(*args: str, input: str | None = None):
        return runner.invoke(
            cli, ["--db", str(db_path), *args], input=input, catch_exceptions=False
        )

    return _run


# --- web (digest serve) -------------------------------------------------------------------------


class Clock:
    """An injectable clock for the web app: ``clock()`` returns ``clock.now``."""

    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, **delta):
        from datetime import timedelta

        self.now += timedelta(**delta)


WEB_SECRET = b"web-test-secret"


@pytest.fixture
def web_clock():
    from datetime import UTC, datetime

    return Clock(datetime(2025, 1, 21, 7, 0, tzinfo=UTC))


@pytest.fixture
def make_web_app(db_path: Path, web_clock, tmp_path: Path):
    """``make_web_app(toml_text="")`` -> a Flask app on this test's database, with the config
    written from ``toml_text`` (defaults: base_url http://127.0.0.1:8080)."""
    from digest.config import load_config
    from digest.web import create_app

    apps = []

    def _make(toml_text: str = ""):
        cfg_path = tmp_path / "web.toml"
        cfg_path.write_text(toml_text, encoding="utf-8")
        config = load_config(cfg_path, env={})
        app = create_app(db_path, config, secret=WEB_SECRET, clock=web_clock)
        apps.append(app)
        return app

    yield _make
    for app in apps:  # each app's outbox worker thread (delivery.notices)
        app.extensions["digest"].notices.stop()


@pytest.fixture
def web_app(make_web_app):
    return make_web_app()


@pytest.fixture
def live_server(web_app):
    """The web app served by a real HTTP server thread on 127.0.0.1 (free port).
    Yields the base URL, e.g. ``http://127.0.0.1:40123``."""
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, web_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=30)
    server.server_close()


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright (never a downloaded browser). Skips when Chromium
    is not installed, except under CI, where a missing browser is a failure."""
    import os

    if not Path(CHROMIUM).exists():
        reason = f"{CHROMIUM} not installed (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"browser tests need Chromium in CI: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh browser context (no cookies) and page; desktop size, generous timeouts."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    pg = context.new_page()
    yield pg
    context.close()


# --- ingestion: a real HTTP server on 127.0.0.1 for feed URLs --------------------------------


class FeedServer:
    """Serves ``routes[path] = (body, headers)`` with ETag/Last-Modified conditional GET.
    ``/stall`` accepts the request and never answers until the test ends; ``requests`` records
    (path, request headers) for assertions."""

    def __init__(self):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.routes: dict[str, tuple[bytes, dict[str, str]]] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                server.requests.append((self.path, dict(self.headers)))
                if self.path == "/stall":
                    server.release.wait(30)
                    return
                if self.path not in server.routes:
                    self.send_error(404, "Not Found")
                    return
                body, headers = server.routes[self.path]
                etag = headers.get("ETag")
                modified = headers.get("Last-Modified")
                if (etag and self.headers.get("If-None-Match") == etag) or (
                    modified and self.headers.get("If-Modified-Since") == modified
                ):
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def feed_server():
    server = FeedServer()
    yield server
    server.close()


@pytest.fixture
def closed_port_url():
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/feed.xml"


# ---- digests area: rows inserted directly into the schema (ingest/subscribers APIs are
# written in parallel; the lead may switch these to the real functions after merging).


class Newsroom:
    """Lists, tagged articles and subscriptions in a real SQLite store, made through the
    library (``create_list``, ``store_batch``, ``add_subscription``)."""

    STAMP = datetime(2025, 1, 1, tzinfo=UTC)

    def __init__(self, database):
        self.db = database
        self._n = 0

    def add_list(self, slug="world", *, tags=("Haiti", "Kenya"), timezone="UTC", **extra):
        from digest.audience.lists import create_list

        return create_list(
            self.db,
            slug,
            title=extra.pop("title", "World Desk"),
            from_addr=extra.pop("from_addr", "World Desk <news@news.example.com>"),
            reply_to=extra.pop("reply_to", None),
            tags=tags,
            timezone=timezone,
            send_time=extra.pop("send_time", "07:00"),
            weekly_day=extra.pop("weekly_day", "monday"),
            description=extra.pop("description", None),
            now=self.STAMP,
        )

    def add_article(self, title, published, *, tags=(), ingested=None, summary=None, url=None):
        """``published``/``ingested``: aware datetimes (ingested defaults to published).
        Returns the article id."""
        from digest.articles.inputs import ArticleInput
        from digest.articles.tagging import make_tag
        from digest.articles.writes import store_batch

        self._n += 1
        n = self._n
        item = ArticleInput(
            entry=f"article {n}",
            title=title,
            url=url or f"https://example.org/a/{n}",
            guid=f"article-{n}",
            published=published,
            summary_html=summary if summary is not None else f"<p>Summary of {title}.</p>",
            tags=tuple(t for t in map(make_tag, tags) if t is not None),
        )
        report = store_batch(self.db, [item], source="test", now=ingested or published)
        (article_id,) = report.article_ids
        return article_id

    def subscribe(self, mlist, email, *, tags=(), frequency="daily", status="active", name=None):
        """Subscribe through the library; its history events have the source ``fixture``."""
        from digest.audience.subscriptions import add_subscription, mark_bounced, unsubscribe

        sub = add_subscription(self.db, mlist, email, name=name, tags=tags, frequency=frequency,
                               confirmed=status != "pending", source="fixture",
                               now=self.STAMP)  # fmt: skip
        if status == "unsubscribed":
            unsubscribe(self.db, email, list_slug=mlist.slug, source="fixture", reason=None,
                        now=self.STAMP)  # fmt: skip
        elif status == "bounced":
            mark_bounced(self.db, sub.email, "550 5.1.1 no such user", now=self.STAMP,
                         source="fixture")  # fmt: skip
        else:
            assert status in ("active", "pending"), status
        return sub.subscriber_id


@pytest.fixture
def newsroom(db):
    return Newsroom(db)


# --- delivery: a real SMTP server (aiosmtpd) on 127.0.0.1, and ledger rows -----------------

import asyncio  # noqa: E402
import threading  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword  # noqa: E402


@dataclass
class Received:
    mail_from: str
    rcpt_to: list[str]
    data: bytes
    session: int


@dataclass
class SmtpHandler:
    """An aiosmtpd handler that records what it accepts, with per-recipient fault injection.

    ``faults[email]`` is a list of actions used one per attempt (then the recipient is
    accepted): a reply such as ``"451 4.7.1 try later"`` (given at RCPT), ``"drop"`` (close the
    connection after the data, before replying: the server keeps nothing), ``"stall"`` (never
    answer RCPT until the test ends). ``hold`` (optional) is called in a worker thread after a
    message is stored and before it is acknowledged; it may block."""

    faults: dict[str, list[str]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    sessions: int = 0
    hold: object = None
    on_connect: object = None  # called (in a thread, may block) at a session's first EHLO
    on_rcpt: object = None  # called (in a thread, may block) with each RCPT address
    unstall: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _next_fault(self, address: str) -> str | None:
        with self.lock:
            actions = self.faults.get(address)
            return actions.pop(0) if actions else None

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        if getattr(session, "_counted", None) is None:
            with self.lock:
                self.sessions += 1
                session._counted = self.sessions
            if self.on_connect is not None:
                await asyncio.get_running_loop().run_in_executor(None, self.on_connect)
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.on_rcpt is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.on_rcpt, address)
        fault = self._next_fault(address)
        if fault == "stall":
            await asyncio.get_running_loop().run_in_executor(None, self.unstall.wait, 30)
            return "451 4.4.2 stalled"
        if fault == "drop":
            envelope.drop = True
        elif fault:
            return fault
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if getattr(envelope, "drop", False):
            server.transport.close()
            return "451 dropped"
        item = Received(
            envelope.mail_from,
            list(envelope.rcpt_tos),
            envelope.content,
            getattr(session, "_counted", 0),
        )
        with self.lock:
            self.received.append(item)
        if self.hold is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.hold, item)
        return "250 2.0.0 queued as " + str(len(self.received))

    def recipients(self) -> list[str]:
        with self.lock:
            return [r for item in self.received for r in item.rcpt_to]


class SmtpTestServer:
    """aiosmtpd listening on 127.0.0.1, on a free port (bound to port 0), in its own thread.

    ``implicit_tls``: an ``ssl.SSLContext`` for TLS from the first byte (smtps);
    ``starttls``: a context offered through STARTTLS; ``password``: AUTH required with
    user ``news`` and this password; ``mechanisms``: AUTH mechanisms offered."""

    def __init__(
        self,
        handler: SmtpHandler,
        *,
        implicit_tls=None,
        starttls=None,
        password: str | None = None,
        mechanisms: tuple[str, ...] = ("PLAIN", "LOGIN"),
        smtputf8: bool = False,
    ):
        self.handler = handler
        self.smtputf8 = smtputf8
        self.implicit_tls = implicit_tls
        self.starttls = starttls
        self.password = password
        self.mechanisms = mechanisms
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == b"news"
            and auth_data.password == (self.password or "").encode()
        )
        # handled=False: aiosmtpd itself answers 535 on failure.
        return AuthResult(success=ok, handled=False)

    def _protocol(self):
        kwargs = {}
        if self.password is not None:
            all_mechs = {"PLAIN", "LOGIN"}
            kwargs = {
                "authenticator": self._authenticate,
                "auth_required": True,
                "auth_require_tls": False,
                "auth_exclude_mechanism": sorted(all_mechs - set(self.mechanisms)),
            }
        with warnings.catch_warnings():
            # "AUTH without TLS": deliberate, the AUTH tests run over plain TCP on 127.0.0.1.
            warnings.simplefilter("ignore", UserWarning)
            return SMTP(
                self.handler,
                hostname="localhost",
                tls_context=self.starttls,
                require_starttls=self.starttls is not None,
                timeout=30,
                loop=self.loop,
                enable_SMTPUTF8=self.smtputf8,
                **kwargs,
            )

    def start(self) -> SmtpTestServer:
        self.thread.start()
        coro = self.loop.create_server(self._protocol, "127.0.0.1", 0, ssl=self.implicit_tls)
        self.server = asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def url(self, scheme: str = "smtp", user: str | None = None) -> str:
        return f"{scheme}://{user + '@' if user else ''}127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.handler.unstall.set()

        async def _close():
            self.server.close()

        asyncio.run_coroutine_threadsafe(_close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def smtp_server():
    """``smtp_server(handler=None, **options)`` starts an SmtpTestServer (stopped at the end)."""
    started = []

    def _start(handler: SmtpHandler | None = None, **options) -> SmtpTestServer:
        server = SmtpTestServer(handler or SmtpHandler(), **options).start()
        started.append(server)
        return server

    yield _start
    for server in started:
        server.stop()


BUILT_AT = datetime(2025, 1, 21, 4, 0, tzinfo=UTC)


class Newsletter:
    """A list, subscribers, a built digest with one variant template, and its queued
    deliveries, made through the library (what the digest builder stores), for delivery
    tests that need a known message rather than a rendered one."""

    def __init__(self, db):
        self.db = db

    def make(
        self,
        count: int,
        *,
        slug: str = "world",
        label: str = "2025-01-21",
        html_padding: int = 0,
        created_at: datetime = BUILT_AT,
    ) -> int:
        """A list ``slug`` with ``count`` active subscribers (``p1@example.com`` ...) and one
        digest queued for all of them. Returns the digest id."""
        from datetime import date

        from digest.audience.lists import create_list, get_list
        from digest.audience.subscriptions import add_subscription
        from digest.delivery import ledger
        from digest.errors import NotFound
        from digest.issues.periods import issue_for
        from digest.issues.render import RenderReport
        from digest.issues.store import (
            fill_variant,
            insert_digest,
            insert_variants,
            stored_variants,
        )
        from digest.issues.template import (
            build_template,
            html_placeholder,
            new_placeholder_key,
            text_placeholder,
        )
        from digest.store import transaction

        db = self.db
        try:
            mlist = get_list(db, slug)
        except NotFound:
            mlist = create_list(
                db, slug, title=slug.title(),
                from_addr=f"{slug.title()} Desk <{slug}@news.example.com>", now=created_at,
            )  # fmt: skip
        # Each call's subscribers get the call's issue date as their tag set, so the digest is
        # queued for exactly them (a later call with fewer people leaves the others out).
        for i in range(1, count + 1):
            add_subscription(db, mlist, f"p{i}@example.com", name=f"Person {i}", confirmed=True,
                             tags=[label], source="cli", now=created_at)  # fmt: skip
        key = new_placeholder_key()
        html = (
            f"<p>Hello {html_placeholder('NAME', key)}</p>"
            + "<p>News of the day, ελληνικά.</p>" * (html_padding // 30)
            + f'<p><a href="{html_placeholder("UNSUBSCRIBE_URL", key)}">Unsubscribe</a>'
            + f' <a href="{html_placeholder("PREFERENCES_URL", key)}">Preferences</a></p>'
        )
        text = (
            f"Hello {text_placeholder('NAME', key)}\n\nUnsubscribe: "
            f"{text_placeholder('UNSUBSCRIBE_URL', key)}\n"
        )
        template = build_template(
            [
                ("From", mlist.from_addr),
                ("Subject", f"{slug} digest {label}"),
                ("Date", "Tue, 21 Jan 2025 07:00:00 +0000"),
            ],
            text,
            html,
            boundary_seed=f"{slug}-{label}",
            key=key,
        )
        period = issue_for(mlist, "daily", date.fromisoformat(label))
        with transaction(db):
            digest_id = insert_digest(db, mlist, period, [], now=created_at)
            insert_variants(db, digest_id, [""])
            variant_id = stored_variants(db, digest_id)[""][0]
            fill_variant(db, variant_id, subject=f"{slug} digest {label}", template=template,
                         article_count=1, cut_count=0, report=RenderReport())  # fmt: skip
            ledger.enqueue(db, digest_id, list_id=mlist.id, frequency="daily",
                           variant_of_tags={json.dumps([label]): variant_id},
                           now=created_at)  # fmt: skip
        return digest_id


@pytest.fixture
def newsletter(db) -> Newsletter:
    return Newsletter(db)
