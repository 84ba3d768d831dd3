"""A reader's whole way in, end to end in Debian's Chromium: the admin copies a list's embed
snippet, a blog on another origin (``localhost``, another site than ``127.0.0.1``) serves it,
the reader subscribes there (no cookie of ours, no CSRF token: the signed form token), the
confirmation email arrives over real SMTP (aiosmtpd, through the ``notices`` outbox and the
app's worker thread), the reader confirms, the issue is built and sent to them, the archive
shows it, and the list's Atom feed parses with feedparser and links to it."""

from __future__ import annotations

import email
import email.policy
import re
import threading
import time
import urllib.request
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import feedparser
import pytest
from conftest import WEB_SECRET, Clock
from playwright.sync_api import expect

from digest import users
from digest.config import load_config
from digest.delivery.publish import build_digest
from digest.delivery.send import send_pending

PASSWORD = "correct horse battery"
NOW = datetime(2025, 1, 21, 6, 30, tzinfo=UTC)


class Blog:
    """Another site: serves ``page`` at ``http://localhost:<port>/``."""

    def __init__(self):
        self.page = b""
        blog = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(blog.page)))
                self.end_headers()
                self.wfile.write(blog.page)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://localhost:{self.httpd.server_address[1]}/"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served(db_path, tmp_path, smtp_server):
    from werkzeug.serving import make_server

    from digest.web import create_app

    smtp = smtp_server()
    holder = {}
    server = make_server("127.0.0.1", 0, lambda e, s: holder["app"](e, s), threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    cfg = tmp_path / "digest.toml"
    cfg.write_text(
        f'[site]\nname = "World Desk News"\nbase_url = "{base}"\n[[smtp]]\nurl = "{smtp.url()}"\n',
        encoding="utf-8",
    )
    config = load_config(cfg, env={})
    clock = Clock(NOW)
    holder["app"] = create_app(db_path, config, secret=WEB_SECRET, clock=clock)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    blog = Blog()
    yield base, smtp, config, clock, blog
    blog.close()
    server.shutdown()
    thread.join(timeout=30)
    server.server_close()
    holder["app"].extensions["digest"].notices.stop()


def wait_for(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_embed_subscribe_confirm_receive_archive_and_feed(browser, served, db, newsroom):
    base, smtp, config, clock, blog = served
    world = newsroom.add_list(tags=("Haiti", "Kenya"), title="World Desk")
    for i in range(3):
        newsroom.add_article(f"Kenya story {i}", datetime(2025, 1, 20, 8 + i, tzinfo=UTC),
                             tags=["Kenya"])  # fmt: skip
    users.add_user(db, "ada", PASSWORD, "admin", now=NOW)

    # The admin copies the snippet from the list's page.
    admin = browser.new_context().new_page()
    admin.goto(f"{base}/admin/lists/world")
    admin.get_by_label("Name").fill("ada")
    admin.get_by_label("Password").fill(PASSWORD)
    admin.get_by_role("button", name="Log in").click()
    admin.wait_for_url(f"{base}/admin/lists/world")
    snippet = admin.get_by_label("Embed code").input_value()
    admin.context.close()
    blog.page = f"<!doctype html><title>A blog</title><h1>My blog</h1>{snippet}".encode()

    # A reader on the blog subscribes: a cross-site form POST, no cookie of ours.
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(blog.url)
    assert context.cookies() == []
    page.get_by_label("Email").fill("reader@example.org")
    page.get_by_label("Name (optional)").fill("Rea")
    page.get_by_label("How often").select_option("daily")
    page.get_by_role("button", name="Subscribe to World Desk").click()
    page.wait_for_url(f"{base}/subscribe/world/sent")
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()

    # The confirmation email, sent by the app's worker from the notices outbox.
    wait_for(lambda: smtp.handler.received)
    [received] = smtp.handler.received
    assert received.rcpt_to == ["reader@example.org"]
    message = email.message_from_bytes(received.data, policy=email.policy.default)
    link = re.search(
        rf"{re.escape(base)}/c/[A-Za-z0-9_-]+", message.get_body(("plain",)).get_content()
    )
    page.goto(link.group(0))
    page.get_by_role("button", name="Yes, subscribe me").click()
    expect(page.get_by_role("heading", name="You're subscribed")).to_be_visible()

    # The next issue is built and sent to them over SMTP.
    clock.now = datetime(2025, 1, 21, 7, 1, tzinfo=UTC)
    built = build_digest(db, config, world, "daily", date(2025, 1, 21), now=clock.now)
    report = send_pending(db, config, secret=WEB_SECRET, clock=lambda: clock.now,
                          allow_insecure_links=True)  # fmt: skip
    assert report.sent == 1
    digest_mail = smtp.handler.received[-1]
    assert digest_mail.rcpt_to == ["reader@example.org"]
    subject = email.message_from_bytes(digest_mail.data, policy=email.policy.default)["Subject"]

    # The archive shows the issue; its page invites others to subscribe.
    page.goto(f"{base}/archive/world/")
    issue_url = f"{base}/archive/world/daily/2025-01-21/"
    page.get_by_role("link", name=subject).click()
    page.wait_for_url(issue_url)
    expect(page.get_by_role("link", name="Kenya story 2")).to_be_visible()
    expect(page.get_by_role("link", name="Subscribe")).to_be_visible()

    # The Atom feed parses and links to it.
    with urllib.request.urlopen(f"{base}/archive/world/feed.atom", timeout=10) as response:
        feed = feedparser.parse(response.read())
    assert feed.bozo == 0 and feed.version == "atom10"
    assert [e.link for e in feed.entries] == [issue_url]
    assert feed.entries[0].title == subject
    assert errors == []
    context.close()
    assert built.recipients == 1
