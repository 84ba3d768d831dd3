"""Browser tests: Playwright driving Debian's Chromium (/usr/bin/chromium, headless) against the
real app in a real server thread, with mail captured by a real aiosmtpd server on 127.0.0.1.
Screenshots go to the test's tmp directory."""

from __future__ import annotations

import email
import email.policy
import json
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from conftest import WEB_SECRET

from digest import users

PASSWORD = "correct horse battery"


def test_editor_logs_in_and_sees_the_landing_page(page, live_server, db, web_clock, tmp_path):
    users.add_user(db, "ed", PASSWORD, "editor", now=web_clock.now)
    db["lists"].insert(
        {
            "slug": "world",
            "title": "World News",
            "from_addr": "Desk <desk@news.example.com>",
            "tags": json.dumps(["Kenya", "East Africa"]),
            "created_at": "2025-01-01T00:00:00.000000+00:00",
            "updated_at": "2025-01-01T00:00:00.000000+00:00",
        }
    )
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    page.goto(f"{live_server}/editor/")
    assert page.url == f"{live_server}/login?next=/editor/"
    page.get_by_label("Name").fill("ed")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server}/editor/")
    assert page.get_by_role("heading", name="Editor").is_visible()
    assert page.get_by_text("Logged in as ed (editor)").is_visible()
    assert page.get_by_text("World News").is_visible()
    # The stylesheet loaded under the CSP (no violations reported in the console).
    assert page.evaluate("getComputedStyle(document.body).margin") == "0px"
    page.screenshot(path=tmp_path / "editor-desktop.png", full_page=True)

    page.set_viewport_size({"width": 375, "height": 812})
    # Readable on a phone: nothing wider than the viewport.
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.screenshot(path=tmp_path / "editor-375.png", full_page=True)
    assert (tmp_path / "editor-desktop.png").stat().st_size > 1000
    assert (tmp_path / "editor-375.png").stat().st_size > 1000
    assert errors == []

    page.get_by_role("button", name="Log out ed").click()
    page.wait_for_url(f"{live_server}/login")
    page.goto(f"{live_server}/editor/")
    assert "/login" in page.url


# --- phase 2: a subscriber's whole journey, and the editor preview ------------------------------


@pytest.fixture
def served(db_path, web_clock, tmp_path, smtp_server):
    """The app on a real HTTP server thread whose ``[site] base_url`` is that server (so the
    links in emails work in the browser), sending mail to a real aiosmtpd on 127.0.0.1.
    Yields (base URL, SMTP test server)."""
    import threading

    from werkzeug.serving import make_server

    from digest.config import load_config
    from digest.web import create_app

    smtp = smtp_server()
    holder = {}
    server = make_server(
        "127.0.0.1", 0, lambda environ, start: holder["app"](environ, start), threaded=True
    )
    base = f"http://127.0.0.1:{server.server_port}"
    cfg = tmp_path / "browser.toml"
    cfg.write_text(
        f'[site]\nname = "World Desk News"\nbase_url = "{base}"\n[[smtp]]\nurl = "{smtp.url()}"\n',
        encoding="utf-8",
    )
    holder["app"] = create_app(
        db_path, load_config(cfg, env={}), secret=WEB_SECRET, clock=web_clock
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield base, smtp
    server.shutdown()
    thread.join(timeout=30)
    server.server_close()


def _status(db, address):
    return db.execute(
        "SELECT s.status, s.frequency, s.tags FROM subscriptions s"
        " JOIN subscribers p ON p.id = s.subscriber_id WHERE p.email = ?",
        [address],
    ).fetchone()


def _fits(page, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 812})
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def test_subscribe_confirm_preferences_unsubscribe_and_preview(
    page, served, db, newsroom, web_clock, tmp_path
):
    base, smtp = served
    newsroom.add_list(tags=("Haiti", "Kenya"), title="World Desk", description="Daily news.")
    day = datetime(2025, 1, 20, 6, 0, tzinfo=UTC)
    for i in range(3):
        newsroom.add_article(f"Haiti story {i}", day + timedelta(hours=i), tags=["Haiti"])
        newsroom.add_article(f"Kenya story {i}", day + timedelta(hours=i), tags=["Kenya"])
    users.add_user(db, "ed", PASSWORD, "editor", now=web_clock.now)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    # Subscribe on the form, from the home page.
    page.goto(f"{base}/")
    page.get_by_role("link", name="Subscribe").click()
    page.wait_for_url(f"{base}/subscribe/world")
    page.screenshot(path=tmp_path / "subscribe-desktop.png", full_page=True)
    _fits(page, 375)
    page.screenshot(path=tmp_path / "subscribe-375.png", full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_label("Email").fill("reader@example.org")
    page.get_by_label("Name (optional)").fill("Rea Der")
    page.get_by_label("Haiti").uncheck()
    page.get_by_role("button", name="Subscribe").click()
    page.wait_for_url(f"{base}/subscribe/world/sent")
    assert page.get_by_role("heading", name="Check your inbox").is_visible()
    assert _status(db, "reader@example.org") == ("pending", "daily", '["kenya"]')

    # Confirm through the link in the email aiosmtpd received (sent by the app's notices
    # worker after the request, so it may take a moment).
    deadline = time.monotonic() + 15
    while not smtp.handler.received:
        assert time.monotonic() < deadline, "no confirmation email from the notices worker"
        time.sleep(0.05)
    [received] = smtp.handler.received
    message = email.message_from_bytes(received.data, policy=email.policy.default)
    assert received.rcpt_to == ["reader@example.org"]
    link = re.search(
        rf"{re.escape(base)}/c/[A-Za-z0-9_-]+", message.get_body(("plain",)).get_content()
    )
    page.goto(link.group(0))
    page.get_by_role("button", name="Yes, subscribe me").click()
    assert page.get_by_role("heading", name="You're subscribed").is_visible()
    assert _status(db, "reader@example.org")[0] == "active"

    # Change preferences.
    page.get_by_role("link", name="Choose your topics and how often").click()
    page.wait_for_url(re.compile(r".*/p/.*"))
    page.screenshot(path=tmp_path / "preferences-desktop.png", full_page=True)
    _fits(page, 375)
    page.screenshot(path=tmp_path / "preferences-375.png", full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_label("Haiti").check()
    page.get_by_label("Weekly").check()
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r".*\?saved=1$"))
    assert page.get_by_text("Saved.").is_visible()
    assert _status(db, "reader@example.org") == ("active", "weekly", "[]")

    # Unsubscribe.
    page.get_by_role("button", name="Unsubscribe from World Desk").click()
    assert page.get_by_role("heading", name="You're unsubscribed").is_visible()
    assert _status(db, "reader@example.org")[0] == "unsubscribed"

    # The editor logs in and opens the preview.
    page.goto(f"{base}/editor/preview?list=world&date=2025-01-21")
    assert "/login?next=" in page.url
    page.get_by_label("Name").fill("ed")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/editor/preview?list=world&date=2025-01-21")
    assert page.get_by_role("heading", name="Size").is_visible()
    for frame in ("iframe.w600", "iframe.w375"):
        assert page.frame_locator(frame).get_by_role("link", name="Kenya story 2").is_visible()
    widths = page.evaluate(
        "[...document.querySelectorAll('iframe')].map(f => f.getBoundingClientRect().width)"
    )
    assert [round(w) for w in widths] == [600, 375, 320, 375]  # the last: dark mode
    # Chromium leaves sandboxed (cross-origin) iframes blank in full-page screenshots, so the
    # preview is shot as the viewport scrolled to the frames, plus the whole page.
    page.screenshot(path=tmp_path / "preview-page-desktop.png", full_page=True)
    page.set_viewport_size({"width": 1280, "height": 1100})
    page.locator(".frames").scroll_into_view_if_needed()
    page.screenshot(path=tmp_path / "preview-desktop.png")
    _fits(page, 375)
    page.locator("iframe.w600").scroll_into_view_if_needed()
    page.screenshot(path=tmp_path / "preview-375.png")
    page.screenshot(path=tmp_path / "preview-page-375.png", full_page=True)
    for name in ("subscribe", "preferences", "preview"):
        for size in ("desktop", "375"):
            assert (tmp_path / f"{name}-{size}.png").stat().st_size > 1000
    assert errors == []
