"""Shared fixtures: real SQLite files in tmp_path, a CLI runner bound to them."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from digest.cli import cli
from digest.store import open_db


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "digest.db"


@pytest.fixture
def db(db_path: Path):
    database = open_db(db_path)
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

    def _make(toml_text: str = ""):
        cfg_path = tmp_path / "web.toml"
        cfg_path.write_text(toml_text, encoding="utf-8")
        config = load_config(cfg_path, env={})
        return create_app(db_path, config, secret=WEB_SECRET, clock=web_clock)

    return _make


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
    """Insert lists, tagged articles and subscriptions straight into a real SQLite store."""

    STAMP = "2025-01-01T00:00:00.000000+00:00"

    def __init__(self, database):
        self.db = database
        self._n = 0

    def add_list(self, slug="world", *, tags=("Haiti", "Kenya"), timezone="UTC", **extra):
        import json

        row = {
            "slug": slug,
            "title": extra.pop("title", "World Desk"),
            "from_addr": extra.pop("from_addr", "World Desk <news@news.example.com>"),
            "reply_to": extra.pop("reply_to", None),
            "tags": json.dumps(list(tags), ensure_ascii=False),
            "timezone": timezone,
            "send_time": extra.pop("send_time", "07:00"),
            "weekly_day": extra.pop("weekly_day", "monday"),
            "description": extra.pop("description", None),
            "created_at": self.STAMP,
            "updated_at": self.STAMP,
        }
        assert not extra, extra
        self.db["lists"].insert(row)
        from digest.lists import get_list

        return get_list(self.db, slug)

    def tag_id(self, name):
        from digest.store import tag_key

        key = tag_key(name)
        row = self.db.execute("SELECT id FROM tags WHERE key = ?", [key]).fetchone()
        if row:
            return row[0]
        return self.db["tags"].insert({"key": key, "name": name}).last_pk

    def add_article(self, title, published, *, tags=(), ingested=None, summary=None, url=None):
        """``published``/``ingested``: aware datetimes (ingested defaults to published)."""
        from digest.timeutil import to_iso

        self._n += 1
        n = self._n
        article_id = (
            self.db["articles"]
            .insert(
                {
                    "key": f"article-{n}",
                    "canonical_url": url or f"https://example.org/a/{n}",
                    "url": url or f"https://example.org/a/{n}",
                    "title": title,
                    "author": None,
                    "published_at": to_iso(published),
                    "summary": summary if summary is not None else f"<p>Summary of {title}.</p>",
                    "content_html": None,
                    "text": f"Text of {title}.",
                    "content_hash": f"h{n}",
                    "source": "test",
                    "ingested_at": to_iso(ingested or published),
                    "updated_at": to_iso(ingested or published),
                }
            )
            .last_pk
        )
        for name in tags:
            self.db["article_tags"].insert({"article_id": article_id, "tag_id": self.tag_id(name)})
        return article_id

    def subscribe(self, mlist, email, *, tags=(), frequency="daily", status="active", name=None):
        import json

        from digest.store import tag_key

        row = self.db.execute("SELECT id FROM subscribers WHERE email = ?", [email]).fetchone()
        sub_id = (
            row[0]
            if row
            else self.db["subscribers"]
            .insert({"email": email, "name": name, "created_at": self.STAMP})
            .last_pk
        )
        self.db["subscriptions"].insert(
            {
                "subscriber_id": sub_id,
                "list_id": mlist.id,
                "frequency": frequency,
                "tags": json.dumps([tag_key(t) for t in tags], ensure_ascii=False),
                "status": status,
                "created_at": self.STAMP,
                "updated_at": self.STAMP,
            }
        )
        return sub_id


@pytest.fixture
def newsroom(db):
    return Newsroom(db)
