"""Playwright (Debian's Chromium) walks every admin and editor page at 1280 and 375 px, logged in
as an admin and as an editor, and performs every admin and editor action through the forms.
One server and one browser for the module; one page per role, reused.

Every page: no horizontal overflow at 375 px, under 50 KB of HTML, no console errors (a CSP
violation is one). Screenshots go to ``<pytest tmp>/screenshots/``; with
``DIGEST_SCREENSHOTS=docs/screenshots`` the README's set (``SHOWCASE``) is written there too:

    DIGEST_SCREENSHOTS=docs/screenshots .venv/bin/pytest tests/web/test_admin_browser.py
"""

from __future__ import annotations

import email
import email.policy
import os
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from conftest import WEB_SECRET, Clock, FeedServer, Newsroom, SmtpHandler, SmtpTestServer
from playwright.sync_api import expect

from digest import users
from digest.audience.lists import LookChanges, edit_list
from digest.audience.subscriptions import add_subscription, mark_bounced, unsubscribe
from digest.audience.suppressions import suppress
from digest.config import load_config
from digest.delivery import ledger
from digest.delivery.publish import build_digest
from digest.ingest.feeds import add_feed, list_feeds
from digest.store import open_db

PASSWORD = "correct horse battery"
NOW = datetime(2025, 1, 21, 7, 10, tzinfo=UTC)
MAX_PAGE_BYTES = 50_000
WIDTHS = {"1280": {"width": 1280, "height": 900}, "375": {"width": 375, "height": 812}}
RSS = """<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title>
<item><title>Floods close the Mombasa road</title><link>https://example.org/w/1</link>
<guid>w1</guid><pubDate>Mon, 20 Jan 2025 09:00:00 GMT</pubDate><description>d</description></item>
</channel></rss>"""

# (name, path) of every page, by who may open it. Names are screenshot file names.
EDITOR_PAGES = [
    ("editor", "/editor/"),
    ("preview", "/editor/preview?list=world&frequency=daily&date=2025-01-21"),
    ("preview-empty", "/editor/preview"),
    ("issues", "/editor/issues/"),
    ("issue", "/editor/issues/world/2025-01-21/"),
    ("issue-approval", "/editor/issues/science/2025-01-22/"),
    ("tags", "/editor/tags/"),
    ("account", "/account"),
]
ADMIN_PAGES = [
    ("dashboard", "/admin/"),
    ("lists", "/admin/lists/"),
    ("list-new", "/admin/lists/new"),
    ("list", "/admin/lists/world"),
    ("list-delete", "/admin/lists/science/delete"),
    ("feeds", "/admin/feeds/"),
    ("feed-remove", "/admin/feeds/remove?url={feed}"),
    ("subscribers", "/admin/subscribers?list=world"),
    ("subscriber", "/admin/subscribers/{bounced}"),
    ("unsubscribe", "/admin/subscribers/unsubscribe?email=ann@example.com&list=world"),
    ("reactivate", "/admin/subscribers/reactivate?email=gone@example.com&list=world"),
    ("suppressions", "/admin/suppressions"),
    ("lift", "/admin/suppressions/lift?email=trap@example.com"),
    ("import", "/admin/import"),
    ("export", "/admin/export"),
    ("users", "/admin/users"),
    ("user-remove", "/admin/users/remove?name=ed"),
]
PUBLIC_PAGES = [
    ("home", "/"),
    ("login", "/login"),
    ("subscribe", "/subscribe/world"),
    ("archive", "/archive/world/"),
    ("archive-issue", "/archive/world/daily/2025-01-21/"),
]
# What the README shows (docs/screenshots/<name>-<width>.png).
SHOWCASE = {
    ("dashboard", "1280"), ("dashboard", "375"), ("subscriber", "1280"), ("list", "1280"),
    ("feeds", "1280"), ("preview-frames", "1280"), ("archive", "375"),
    ("issue-edited", "1280"), ("issue-edited", "375"), ("issues", "1280"), ("tags", "1280"),
}  # fmt: skip
MARKUP = "<img src=x onerror=alert(1)><b>bold</b>"  # what a feed or an editor might write


class Site:
    """The app on a real HTTP server thread, with a store that has something on every page."""

    def __init__(self, root: Path):
        from werkzeug.serving import make_server

        from digest.web import create_app

        self.smtp = SmtpTestServer(SmtpHandler()).start()
        self.feeds = FeedServer()
        self.feeds.routes["/wire.xml"] = (RSS.encode(), {"ETag": '"w1"'})
        self.db_path = root / "digest.db"
        db = self.db = open_db(self.db_path, create=True)
        holder: dict = {}
        self.server = make_server(
            "127.0.0.1", 0, lambda env, start: holder["app"](env, start), threaded=True
        )
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        config_path = root / "digest.toml"
        config_path.write_text(
            f'[site]\nname = "World Desk News"\nbase_url = "{self.base}"\n'
            f"[ingest]\nallow_private_addresses = true\n"
            f'[[smtp]]\nurl = "{self.smtp.url()}"\n',
            encoding="utf-8",
        )
        self.config = load_config(config_path, env={})
        self.populate(db)
        self.clock = Clock(NOW)
        self.app = holder["app"] = create_app(
            self.db_path, self.config, secret=WEB_SECRET, clock=self.clock
        )
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def populate(self, db) -> None:
        news = Newsroom(db)
        world = news.add_list(tags=("Haiti", "Kenya"), title="World Desk",
                              description="The day's news from Haiti and Kenya.")  # fmt: skip
        science = news.add_list("science", tags=("Space",), title="Science Desk")
        # Science is in approval mode: its issue of 2025-01-22 is built and awaits approval.
        science = edit_list(db, "science", look=LookChanges(approval=True, approval_lead="24h",
                            editors="ed@example.org"), now=NOW - timedelta(days=30))  # fmt: skip
        day = datetime(2025, 1, 20, 6, 0, tzinfo=UTC)
        for i in range(4):
            news.add_article(f"Haiti story {i}", day + timedelta(hours=i), tags=["Haiti"])
            news.add_article(f"Kenya story {i}", day + timedelta(hours=i), tags=["Kenya"])
        news.add_article(f"Haiti {MARKUP}", day + timedelta(hours=5), tags=["Haiti", "Haïti"],
                         summary="<p>A title with markup in it.</p>")  # fmt: skip
        news.add_article("Quilting on a log cabin", day, tags=["log cabin", "Featured", MARKUP])
        news.add_article("Jacmel harbour reopens", day)  # untagged: a tag rule gives it one
        news.add_article("Comet seen at dawn", NOW - timedelta(hours=4), tags=["Space"])
        news.subscribe(science, "sci@example.org")
        build_digest(db, self.config, science, "daily", date(2025, 1, 22), now=NOW)
        for i in range(12):
            add_subscription(db, world, f"reader{i:02d}@example.org", name=f"Reader {i}",
                             confirmed=True, tags=["Kenya"] if i % 3 else [], source="cli",
                             now=NOW - timedelta(days=20 - i))  # fmt: skip
        add_subscription(db, world, "ann@example.com", name="Ann Lee", confirmed=True,
                         source="cli", now=NOW - timedelta(days=9))  # fmt: skip
        add_subscription(db, world, "pat@example.com", source="cli", now=NOW - timedelta(days=2))
        add_subscription(db, world, "gone@example.com", confirmed=True, source="cli",
                         now=NOW - timedelta(days=8))  # fmt: skip
        unsubscribe(db, "gone@example.com", list_slug="world", source="cli",
                    reason="asked by email", now=NOW - timedelta(days=1))  # fmt: skip
        built = build_digest(db, self.config, world, "daily", date(2025, 1, 21),
                             now=NOW - timedelta(hours=3))  # fmt: skip
        claimed = ledger.claim(db, "t", now=NOW, lease_seconds=60, limit=100)
        for d in claimed[2:]:
            ledger.record_sent(db, d.id, reply="250 2.0.0 Ok: queued", relay="127.0.0.1:25",
                               message_id=f"<{d.id}@x>", now=NOW - timedelta(hours=2))  # fmt: skip
        ledger.record_deferred(db, claimed[0], reply="451 4.7.1 greylisted, try again later",
                               relay="mx.example.org", message_id=None,
                               now=NOW - timedelta(hours=2), max_age=timedelta(days=3))  # fmt: skip
        ledger.record_failed(db, claimed[1].id, reply="550 5.1.1 <reader01@example.org>: user"
                             " unknown", relay="mx.example.org", message_id=None,
                             now=NOW - timedelta(hours=1))  # fmt: skip
        ledger.release(db, "t")
        mark_bounced(db, claimed[1].email, "550 5.1.1 user unknown", now=NOW - timedelta(hours=1))
        self.bounced = claimed[1].subscriber_id
        suppress(db, "trap@example.com", "spam trap reported by the relay", source="cli",
                 now=NOW - timedelta(days=3))  # fmt: skip
        add_feed(db, self.feeds.url("/wire.xml"), tags=["Kenya"], now=NOW - timedelta(days=5))
        users.add_user(db, "ed", PASSWORD, "editor", now=NOW)
        users.add_user(db, "ada", PASSWORD, "admin", now=NOW)
        self.digest_id = built.id
        self.ann = db.execute("SELECT id FROM subscribers WHERE email = 'ann@example.com'")
        self.ann = self.ann.fetchone()[0]

    def path(self, template: str) -> str:
        return template.format(feed=list_feeds(self.db)[0].url, ann=self.ann, bounced=self.bounced)

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=30)
        self.server.server_close()
        self.app.extensions["digest"].notices.stop()
        self.smtp.stop()
        self.feeds.close()
        self.db.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    s = Site(tmp_path_factory.mktemp("site"))
    yield s
    s.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    """Where screenshots go: the test's tmp folder, and the README's folder when asked."""
    folder = tmp_path_factory.mktemp("screenshots")
    docs = os.environ.get("DIGEST_SCREENSHOTS")

    def shoot(page, name: str, width: str, *, full_page: bool = True) -> None:
        page.screenshot(path=folder / f"{name}-{width}.png", full_page=full_page)
        if docs and (name, width) in SHOWCASE:
            Path(docs).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=Path(docs) / f"{name}-{width}.png", full_page=full_page)

    shoot.folder = folder  # type: ignore[attr-defined]
    return shoot


def logged_in(browser, site, name):
    context = browser.new_context(viewport=WIDTHS["1280"])
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.errors = []  # type: ignore[attr-defined]
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{site.base}/login")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{site.base}/editor/")
    return page


@pytest.fixture(scope="module")
def admin(browser, site):
    page = logged_in(browser, site, "ada")
    yield page
    page.context.close()


@pytest.fixture(scope="module")
def editor(browser, site):
    page = logged_in(browser, site, "ed")
    yield page
    page.context.close()


def visit(page, site, path: str, width: str):
    page.set_viewport_size(WIDTHS[width])
    response = page.goto(site.base + site.path(path))
    assert response is not None
    return response


def check_page(page, response, name: str, width: str, shots) -> None:
    assert response.status == 200, (name, response.status)
    body = response.body()
    assert len(body) < MAX_PAGE_BYTES, (name, len(body))
    if width == "375":
        # Nothing wider than a phone: the page never scrolls sideways.
        assert page.evaluate("document.documentElement.scrollWidth") <= 375, name
    shots(page, name, width)
    assert page.errors == [], (name, page.errors)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(("name", "path"), ADMIN_PAGES + EDITOR_PAGES, ids=lambda v: str(v))
def test_every_admin_and_editor_page_as_an_admin(admin, site, shots, name, path, width):
    check_page(admin, visit(admin, site, path, width), name, width, shots)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(("name", "path"), EDITOR_PAGES, ids=lambda v: str(v))
def test_every_editor_page_as_an_editor(editor, site, shots, name, path, width):
    check_page(editor, visit(editor, site, path, width), f"editor-{name}", width, shots)
    # An editor's navigation offers no admin pages.
    assert editor.get_by_role("link", name="Dashboard").count() == 0


@pytest.mark.parametrize(("name", "path"), ADMIN_PAGES, ids=lambda v: str(v))
def test_an_editor_is_refused_every_admin_page(editor, site, name, path):
    response = visit(editor, site, path, "375")
    assert response.status == 403, name
    expect(editor.get_by_role("heading", name="Not allowed")).to_be_visible()
    assert "This page is for admins; you are logged in as editor." in editor.content()
    assert editor.evaluate("document.documentElement.scrollWidth") <= 375


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(("name", "path"), PUBLIC_PAGES, ids=lambda v: str(v))
def test_public_pages_fit_a_phone_and_stay_small(browser, site, shots, name, path, width):
    context = browser.new_context(viewport=WIDTHS[width])
    page = context.new_page()
    page.errors = []  # type: ignore[attr-defined]
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    try:
        check_page(page, visit(page, site, path, width), name, width, shots)
    finally:
        context.close()


def test_the_preview_shows_320_375_600_and_dark_mode(admin, site, shots):
    visit(admin, site, "/editor/preview?list=world&frequency=daily&date=2025-01-21", "1280")
    widths = admin.evaluate(
        "[...document.querySelectorAll('iframe')].map(f => f.getBoundingClientRect().width)"
    )
    assert [round(w) for w in widths] == [600, 375, 320, 375]
    for frame in ("iframe.w600", "iframe.w320", "iframe.dark"):
        expect(admin.frame_locator(frame).get_by_role("link", name="Kenya story 3")).to_be_visible()
    dark = (
        admin.frame_locator("iframe.dark")
        .locator(".container")
        .evaluate("e => getComputedStyle(e).backgroundColor")
    )
    light = (
        admin.frame_locator("iframe.w600")
        .locator(".container")
        .evaluate("e => getComputedStyle(e).backgroundColor")
    )
    assert dark == "rgb(28, 31, 38)" and light == "rgb(255, 255, 255)"
    expect(admin.get_by_role("heading", name="Plain text")).to_be_visible()
    expect(admin.get_by_role("heading", name="Headers")).to_be_visible()
    expect(admin.get_by_role("heading", name="Size")).to_be_visible()
    # Sandboxed frames are blank in full-page shots: the frames are shot in the viewport.
    admin.set_viewport_size({"width": 1280, "height": 1280})
    admin.locator(".frames").evaluate("e => e.scrollIntoView()")
    shots(admin, "preview-frames", "1280", full_page=False)
    admin.set_viewport_size(WIDTHS["1280"])

    # Send a test: through the real relay, "[TEST]" in the subject.
    admin.get_by_label("Send to").fill("ada@example.org")
    admin.get_by_role("button", name="Send test").click()
    expect(admin.get_by_text("Test sent to ada@example.org: 250")).to_be_visible()
    message = email.message_from_bytes(
        site.smtp.handler.received[-1].data, policy=email.policy.default
    )
    assert message["Subject"].startswith("[TEST] ")


def test_lists_actions(admin, site, shots):
    page = admin
    visit(page, site, "/admin/lists/new", "1280")
    page.locator("[name=slug]").fill("culture")
    page.locator("[name=title]").fill("Culture Desk")
    page.locator("input[name=from_addr]").fill("Culture <culture@news.example.com>")
    page.locator("[name=tags]").fill("Music, Film")
    page.locator("[name=timezone]").fill("Mars/Olympus")
    page.get_by_role("button", name="Create list").click()
    assert page.get_by_role("alert").inner_text().startswith("timezone 'Mars/Olympus' is not")
    page.locator("[name=timezone]").fill("America/Port-au-Prince")
    page.get_by_role("button", name="Create list").click()
    page.wait_for_url(f"{site.base}/admin/lists/culture")
    expect(page.get_by_text("Created list culture (Culture Desk).")).to_be_visible()
    snippet = page.get_by_label("Embed code").input_value()
    assert f'action="{site.base}/embed/culture"' in snippet and 'name="form_token"' in snippet
    page.locator("[name=send_time]").fill("18:30")
    page.get_by_label("Private").check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved list culture.")).to_be_visible()
    assert page.locator("[name=send_time]").input_value() == "18:30"
    page.get_by_role("link", name="Delete Culture Desk…").click()
    shots(page, "list-delete-confirm", "1280")
    page.get_by_role("button", name="Delete culture").click()
    page.wait_for_url(f"{site.base}/admin/lists/")
    expect(page.get_by_text("Deleted list culture; 0 subscription(s) ended.")).to_be_visible()


def test_feeds_actions(admin, site, closed_port_url, shots):
    page = admin
    visit(page, site, "/admin/feeds/", "1280")
    page.get_by_label("Feed URL").fill(closed_port_url)
    page.get_by_label("Tags").fill("Haiti")
    page.get_by_label("Full text").check()
    page.get_by_role("button", name="Add feed").click()
    expect(page.get_by_text(f"added: {closed_port_url} [Haiti] full text")).to_be_visible()
    wire = site.feeds.url("/wire.xml")
    page.get_by_role("row").filter(has_text=wire).get_by_role("button", name="Full text on").click()
    expect(page.get_by_text(f"full text on: {wire} [Kenya] full text")).to_be_visible()
    page.get_by_role("row").filter(has_text=wire).get_by_role(
        "button", name="Full text off"
    ).click()
    expect(page.get_by_text(f"full text off: {wire} [Kenya]")).to_be_visible()
    page.get_by_role("button", name="Fetch every feed now").click()
    expect(page.get_by_text(f"{closed_port_url}: failed: unreachable").first).to_be_visible()
    expect(page.get_by_text(f"{site.feeds.url('/wire.xml')}: 1 new")).to_be_visible()
    expect(page.get_by_text("newest: Floods close the Mombasa road")).to_be_visible()
    shots(page, "feeds-fetched", "1280")
    page.set_viewport_size(WIDTHS["375"])
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    shots(page, "feeds-fetched", "375")
    page.set_viewport_size(WIDTHS["1280"])
    row = page.get_by_role("row").filter(has_text=closed_port_url)
    row.get_by_role("button", name="Fetch now").click()
    expect(page.get_by_text(f"{closed_port_url}: failed: unreachable").first).to_be_visible()
    page.get_by_role("row").filter(has_text=closed_port_url).get_by_role(
        "link", name="Remove…"
    ).click()
    page.get_by_role("button", name="Remove feed").click()
    expect(page.get_by_text(f"removed: {closed_port_url} (its articles stay)")).to_be_visible()


def test_subscriber_actions(admin, site, shots):
    page = admin
    visit(page, site, "/admin/subscribers", "1280")
    page.locator("form.stack [name=list]").select_option("world")
    page.get_by_label("Email").fill("new@example.org")
    page.get_by_label("Name (optional)").fill("New Reader")
    page.get_by_label("Topics", exact=False).last.fill("Kenya")
    page.get_by_label("Weekly").check()
    page.get_by_label("Confirmed").check()
    page.get_by_role("button", name="Add…").click()
    expect(page.get_by_role("heading", name="Add new@example.org?")).to_be_visible()
    shots(page, "add-confirm", "1280")
    page.get_by_role("button", name="Add new@example.org").click()
    expect(page.get_by_text("new@example.org is active on World Desk (weekly).")).to_be_visible()
    expect(page.get_by_role("heading", name="new@example.org")).to_be_visible()

    # Unsubscribe from the subscriber's page, with a reason.
    page.get_by_role("link", name="Unsubscribe…").click()
    page.get_by_label("Reason (optional)").fill("asked by phone")
    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.get_by_text("new@example.org unsubscribed from world.")).to_be_visible()

    # Adding again offers re-activation with a reason, never a command-line option.
    visit(page, site, "/admin/subscribers?list=world", "1280")
    page.get_by_label("Email").fill("new@example.org")
    page.get_by_role("button", name="Add…").click()
    expect(page.get_by_role("heading", name="Re-activate new@example.org?")).to_be_visible()
    assert "--force" not in page.content()
    shots(page, "reactivate", "1280")
    page.get_by_label("Reason").fill("asked again in writing on 21 January")
    page.get_by_role("button", name="Re-activate on World Desk").click()
    expect(page.get_by_text("new@example.org is active on World Desk again.")).to_be_visible()
    expect(
        page.get_by_text("asked again in writing on 21 January (re-activated by admin ada")
    ).to_be_visible()

    # Search and filters.
    visit(page, site, "/admin/subscribers", "375")
    page.locator("form.search [name=status]").select_option("pending")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("link", name="pat@example.com")).to_be_visible()
    assert page.get_by_role("link", name="ann@example.com").count() == 0
    page.locator("form.search [name=tag]").select_option("Haiti")
    page.locator("form.search [name=status]").select_option("active")
    page.get_by_role("button", name="Search").click()
    assert page.get_by_role("link", name="reader00@example.org").is_visible()  # every topic
    assert page.get_by_role("link", name="reader01@example.org").count() == 0  # Kenya only
    assert page.evaluate("document.documentElement.scrollWidth") <= 375


def test_suppression_actions(admin, site):
    page = admin
    visit(page, site, "/admin/suppressions", "1280")
    page.get_by_label("Email").fill("bad@example.net")
    page.get_by_label("Reason").fill("complained by phone")
    page.get_by_role("button", name="Suppress").click()
    expect(page.get_by_text("suppressed bad@example.net")).to_be_visible()
    page.get_by_role("row").filter(has_text="bad@example.net").get_by_role(
        "link", name="Lift…"
    ).click()
    page.get_by_label("Reason").fill("the person asked to hear from us again")
    page.get_by_role("button", name="Lift suppression").click()
    expect(page.get_by_text("bad@example.net is no longer suppressed.")).to_be_visible()


def test_import_and_export_actions(admin, site, shots):
    page = admin
    visit(page, site, "/admin/import", "1280")
    page.get_by_label("List").select_option("world")
    csv = b"email,name,tags,frequency\nimp@example.org,Imp,Kenya,daily\nnot-an-address,,,\n"
    page.set_input_files("input[name=file]",
                         files=[{"name": "people.csv", "mimeType": "text/csv", "buffer": csv}])  # fmt: skip
    page.get_by_role("button", name="Upload and check").click()
    report = page.locator("pre.report").inner_text()
    assert "people.csv: line 3: rejected: invalid address 'not-an-address'" in report
    assert "dry run, nothing written: people.csv -> world: 1 would be added" in report
    assert "/tmp" not in page.content() and "digest-web-imports" not in page.content()
    shots(page, "import-dry-run", "1280")
    page.get_by_role("button", name="Apply: import people.csv into World Desk").click()
    assert "people.csv -> world: 1 added" in page.locator("pre.report").inner_text()

    visit(page, site, "/admin/export", "1280")
    with page.expect_download() as download:
        page.get_by_role("link", name="world.csv").click()
    assert download.value.suggested_filename == "world.csv"
    assert "imp@example.org,Imp,Kenya,daily" in Path(download.value.path()).read_text()


def test_staff_account_actions(admin, browser, site):
    page = admin
    visit(page, site, "/admin/users", "1280")
    page.get_by_label("Name").fill("zed")
    page.get_by_label("Editor").check()
    page.locator("[name=password]").fill(PASSWORD)
    page.locator("[name=password2]").fill(PASSWORD)
    page.get_by_role("button", name="Add account").click()
    expect(page.get_by_text("added editor zed")).to_be_visible()
    page.get_by_role("row").filter(has_text="zed").get_by_role("button", name="Make admin").click()
    expect(page.get_by_text("zed is now admin; their sessions have ended.")).to_be_visible()
    page.get_by_role("row").filter(has_text="zed").get_by_role("link", name="Remove…").click()
    page.get_by_role("button", name="Remove zed").click()
    expect(page.get_by_text("removed zed")).to_be_visible()
    # No way to remove or demote oneself from the page.
    own = page.get_by_role("row").filter(has_text="(you)")
    assert (
        own.get_by_role("button").count() == 0
        and own.get_by_role("link", name="Remove…").count() == 0
    )


def test_own_password_change(browser, site):
    users.add_user(site.db, "pw", PASSWORD, "editor", now=NOW)
    page = logged_in(browser, site, "pw")
    other = logged_in(browser, site, "pw")
    try:
        page.goto(f"{site.base}/account")
        page.locator("[name=current_password]").fill(PASSWORD)
        page.locator("[name=new_password]").fill("a brand new password")
        page.locator("[name=new_password2]").fill("a brand new password")
        page.get_by_role("button", name="Change password").click()
        expect(page.get_by_text("every other session of your account has ended")).to_be_visible()
        other.goto(f"{site.base}/editor/")
        assert "/login" in other.url
    finally:
        page.context.close()
        other.context.close()


def story(page, title: str):
    return page.get_by_role("listitem").filter(has_text=title).first


def test_issue_actions(editor, site, shots):
    """An editor pins, drops, restores, writes a note (with markup: shown as text) and approves
    an issue awaiting approval, all through the issue page's buttons."""
    page = editor
    visit(page, site, "/editor/issues/", "1280")
    page.get_by_role("link", name="2025-01-21 daily").click()
    page.wait_for_url(f"{site.base}/editor/issues/world/2025-01-21/")
    expect(page.get_by_text(f"Haiti {MARKUP}").first).to_be_visible()  # a title, as text
    assert page.locator("main img").count() == 0 and page.locator("main b").count() == 0
    story(page, "Kenya story 1").get_by_role("button", name="Pin to top").click()
    expect(page.get_by_text("pinned", exact=False).first).to_be_visible()
    expect(page.get_by_text("rendered again: world/daily/2025-01-21").first).to_be_visible()
    expect(story(page, "Kenya story 1").get_by_role("button", name="Unpin")).to_be_visible()
    story(page, "Haiti story 2").get_by_role("button", name="Drop").click()
    expect(page.get_by_role("status").filter(has_text="dropped")).to_be_visible()
    story(page, "Haiti story 2").get_by_role("button", name="Restore").click()
    expect(page.get_by_role("status").filter(has_text="cleared")).to_be_visible()
    story(page, "Haiti story 2").get_by_role("button", name="Drop").click()
    note = f"Our reporters are on the coast all week. {MARKUP}"
    page.get_by_label("Note").fill(note)
    page.get_by_role("button", name="Save note").click()
    expect(page.get_by_role("status").filter(has_text="note set")).to_be_visible()
    assert page.get_by_label("Note").input_value() == note
    assert page.locator("main img").count() == 0 and page.locator("main b").count() == 0
    page.set_viewport_size(WIDTHS["375"])
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    shots(page, "issue-edited", "375")
    page.set_viewport_size(WIDTHS["1280"])
    shots(page, "issue-edited", "1280")
    # The preview of the issue shows the note.
    page.get_by_role("link", name="Preview the daily issue").click()
    expect(
        page.frame_locator("iframe.w600").get_by_text("Our reporters are on the coast")
    ).to_be_visible()

    visit(page, site, "/editor/issues/science/2025-01-22/", "1280")
    expect(page.get_by_text("awaiting approval").first).to_be_visible()
    page.get_by_role("button", name="Approve the daily issue").click()
    expect(
        page.get_by_role("status").filter(has_text="approved science/daily/2025-01-22")
    ).to_be_visible()
    expect(page.get_by_text("approved by ed (web)")).to_be_visible()

    # A form posted without the session's CSRF token is refused.
    response = page.request.post(f"{site.base}/editor/issues/world/2025-01-21/note",
                                 form={"note": "forged"})  # fmt: skip
    assert response.status == 400
    visit(page, site, "/editor/issues/world/2025-01-21/", "1280")
    assert page.get_by_label("Note").input_value() == note


def test_tags_actions(editor, site, shots):
    """An editor renames, merges, hides and shows tags, adds a rule, applies it, removes it."""
    page = editor
    visit(page, site, "/editor/tags/", "1280")
    expect(page.get_by_text("1 article without a tag")).to_be_visible()
    expect(page.get_by_role("cell", name=MARKUP)).to_be_visible()  # a tag name, as text
    assert page.locator("main img").count() == 0 and page.locator("main b").count() == 0
    page.locator("input[name=old]").fill("log cabin")
    page.locator("input[name=new]").fill("Log Cabin")
    page.get_by_role("button", name="Rename tag").click()
    expect(page.get_by_text("renamed log cabin to Log Cabin")).to_be_visible()
    page.locator("input[name=other]").fill("Haïti")
    page.locator("input[name=into]").fill("Haiti")
    page.get_by_role("button", name="Merge tags").click()
    expect(page.get_by_text("merged Haïti (1 article) into Haiti: now 5 articles")).to_be_visible()
    page.get_by_role("row").filter(has_text="Featured").get_by_role("button", name="Hide").click()
    expect(page.get_by_text("hid Featured: never a section")).to_be_visible()
    page.get_by_role("row").filter(has_text="Featured").get_by_role("button", name="Show").click()
    expect(page.get_by_text("Featured is shown again")).to_be_visible()
    page.locator("form:has(input[name=match]) input[name=tag]").fill("Haiti")
    page.get_by_label("Match").fill("Jacmel")
    page.get_by_role("button", name="Add rule").click()
    expect(page.get_by_text("Haiti <- title keyword 'Jacmel'").first).to_be_visible()
    page.get_by_role("button", name="Count only (dry run)").click()
    expect(page.get_by_text("dry run: ").first).to_be_visible()
    expect(page.get_by_text("1 gain a tag (Haiti 1)")).to_be_visible()
    page.get_by_role("button", name="Apply the rules").click()
    expect(page.get_by_role("status").filter(has_text="1 gain a tag (Haiti 1)")).to_be_visible()
    expect(page.get_by_text("without a tag")).to_have_count(0)
    shots(page, "tags-applied", "1280")
    page.set_viewport_size(WIDTHS["375"])
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.set_viewport_size(WIDTHS["1280"])
    page.get_by_role("button", name="Remove rule 1").click()
    expect(page.get_by_text("removed rule 1  Haiti")).to_be_visible()
