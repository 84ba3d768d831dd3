"""Browser tests: Playwright driving Debian's Chromium (/usr/bin/chromium, headless) against the
real app in a real server thread. Screenshots go to the test's tmp directory."""

from __future__ import annotations

import json

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
