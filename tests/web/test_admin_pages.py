"""The admin pages of issue 19: lists, feeds, a subscriber's page, suppressions, staff accounts,
one's own password, the dashboard and exports; and what an attacker would try on them (an
editor reaching admin pages, a POST without the CSRF token, markup in list names, feed errors
and article titles, redirects off the site). Flask's test client on a real SQLite file; feeds
come from a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from markupsafe import escape

from digest import users
from digest.audience.lists import all_lists, get_list
from digest.audience.subscriptions import mark_bounced
from digest.audience.suppressions import get_suppression, suppress
from digest.delivery import ledger
from digest.delivery.publish import build_digest
from digest.errors import InvalidInput
from digest.ingest.feeds import add_feed, list_feeds

PASSWORD = "correct horse battery"
DAY = datetime(2025, 1, 20, 6, 0, tzinfo=UTC)
XSS = '<img src=x onerror=alert(1)><script>alert("x")</script>'


def csrf_from(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF field in the page"
    return m.group(1)


def login(client, name="ada", password=PASSWORD) -> str:
    page = client.get("/login").get_data(as_text=True)
    response = client.post(
        "/login", data={"csrf_token": csrf_from(page), "name": name, "password": password}
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    return csrf_from(client.get("/editor/").get_data(as_text=True))


def text(response) -> str:
    return response.get_data(as_text=True)


def follow(client, response) -> str:
    assert response.status_code == 303, text(response)
    return text(client.get(response.location))


def history(db, address):
    return [
        (r["list_slug"], r["old_status"], r["new_status"], r["source"], r["reason"])
        for r in db.query(
            "SELECT * FROM status_events WHERE email = ? AND source != 'fixture' ORDER BY id",
            [address],
        )
    ]


@pytest.fixture
def staff(db, web_clock):
    users.add_user(db, "ed", PASSWORD, "editor", now=web_clock.now)
    users.add_user(db, "ada", PASSWORD, "admin", now=web_clock.now)


@pytest.fixture
def world(newsroom):
    return newsroom.add_list(tags=("Haiti", "Kenya"), title="World Desk")


@pytest.fixture
def smtp(smtp_server):
    return smtp_server()


@pytest.fixture
def app(make_web_app, smtp):
    return make_web_app(
        f'[[smtp]]\nurl = "{smtp.url()}"\n[ingest]\nallow_private_addresses = true\n'
    )


@pytest.fixture
def admin(app, staff):
    client = app.test_client()
    client.csrf = login(client, "ada")
    return client


# Every admin page and action, as (method, path): an editor gets 403 for each, a visitor is sent
# to the login page, and a POST without the CSRF token is refused before anything else.
ADMIN_GETS = [
    "/admin/",
    "/admin/lists/",
    "/admin/lists/new",
    "/admin/lists/world",
    "/admin/lists/world/delete",
    "/admin/feeds/",
    "/admin/feeds/remove?url=http://127.0.0.1:9/feed.xml",
    "/admin/subscribers",
    "/admin/subscribers/1",
    "/admin/subscribers/unsubscribe?email=ann@example.com&list=world",
    "/admin/subscribers/reactivate?email=ann@example.com&list=world",
    "/admin/suppressions",
    "/admin/suppressions/lift?email=ann@example.com",
    "/admin/import",
    "/admin/export",
    "/admin/lists/world/export.csv",
    "/admin/users",
    "/admin/users/remove?name=ed",
]
ADMIN_POSTS = [
    "/admin/lists/new",
    "/admin/lists/world",
    "/admin/lists/world/delete",
    "/admin/feeds/add",
    "/admin/feeds/fetch",
    "/admin/feeds/remove",
    "/admin/feeds/full-text",
    "/admin/subscribers/add",
    "/admin/subscribers/unsubscribe",
    "/admin/subscribers/reactivate",
    "/admin/suppressions/add",
    "/admin/suppressions/lift",
    "/admin/import",
    "/admin/import/apply",
    "/admin/import/cancel",
    "/admin/users/add",
    "/admin/users/role",
    "/admin/users/remove",
]


@pytest.fixture
def everything(db, world, newsroom, web_clock):
    """A list with one subscriber, one feed and one suppression, so every admin URL exists."""
    newsroom.subscribe(world, "ann@example.com", name="Ann")
    add_feed(db, "http://127.0.0.1:9/feed.xml", now=web_clock.now)
    suppress(db, "ann@example.com", "test", source="cli", now=web_clock.now)


def snapshot(db):
    return [
        db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        for table in ("lists", "subscriptions", "status_events", "suppressions", "feeds", "users")
    ]


@pytest.mark.parametrize("path", ADMIN_GETS)
def test_every_admin_page_is_refused_to_an_editor_and_works_for_an_admin(
    app, staff, everything, path
):
    editor = app.test_client()
    login(editor, "ed")
    refused = editor.get(path)
    assert refused.status_code == 403
    assert "This page is for admins; you are logged in as editor." in text(refused)
    visitor = app.test_client().get(path)
    assert visitor.status_code == 302 and visitor.location.startswith("/login?next=")
    admin = app.test_client()
    login(admin, "ada")
    assert admin.get(path).status_code == 200


@pytest.mark.parametrize("path", ADMIN_POSTS)
def test_every_admin_action_is_refused_to_an_editor_even_with_its_csrf_token(
    app, staff, everything, db, path
):
    """An editor who crafts the admin's forms (with a valid token of their own session) does
    not escalate: 403, and nothing changes."""
    editor = app.test_client()
    csrf = login(editor, "ed")
    before = snapshot(db)
    data = {
        "csrf_token": csrf, "slug": "x", "title": "X", "from_addr": "x@example.com",
        "url": "http://127.0.0.1:9/feed.xml", "email": "ann@example.com", "list": "world",
        "confirm": "yes", "reason": "r", "name": "ed", "role": "admin", "password": "p" * 12,
        "password2": "p" * 12,
    }  # fmt: skip
    assert editor.post(path, data=data).status_code == 403
    assert snapshot(db) == before
    assert users.list_users(db)[1].role == "editor"  # ada, ed


@pytest.mark.parametrize("path", ADMIN_POSTS)
def test_every_admin_action_needs_the_csrf_token(app, admin, everything, db, path):
    before = snapshot(db)
    data = {"slug": "x", "title": "X", "from_addr": "x@example.com", "email": "ann@example.com",
            "list": "world", "confirm": "yes", "reason": "r", "name": "ed", "role": "admin"}  # fmt: skip
    for token in (None, "forged-token"):
        form = dict(data) if token is None else {**data, "csrf_token": token}
        response = admin.post(path, data=form)
        assert response.status_code == 400
        assert "This form has expired or was not sent from this site" in text(response)
    assert snapshot(db) == before


# --- lists ----------------------------------------------------------------------------------------


def test_create_edit_and_delete_a_list_with_the_clis_messages(admin, db, run):
    form = {"csrf_token": admin.csrf, "slug": "science", "title": "Science Desk",
            "from_addr": "Science <sci@example.com>", "reply_to": "", "tags": "Space, Climate",
            "timezone": "Europe/Berlin", "send_time": "6:30", "weekly_day": "friday",
            "description": "Every Friday."}  # fmt: skip
    page = follow(admin, admin.post("/admin/lists/new", data=form))
    assert "Created list science (Science Desk)." in page
    mlist = get_list(db, "science")
    assert (mlist.tags, mlist.timezone, mlist.send_time, mlist.weekly_day, mlist.private) == (
        ("Space", "Climate"), "Europe/Berlin", "06:30", "friday", False,
    )  # fmt: skip
    # The embed snippet is on the list's page, with the list's signed form token.
    assert "http://127.0.0.1:8080/embed/science" in page and "form_token" in page

    # The same validation and messages as `digest lists create`.
    cases = [
        ({"timezone": "Mars/Olympus"}, ["other", "--timezone", "Mars/Olympus"]),
        ({"send_time": "25:00"}, ["other", "--send-time", "25:00"]),
        ({"weekly_day": "someday"}, ["other", "--weekly-day", "someday"]),
        ({"slug": "Bad Slug"}, ["Bad Slug"]),
        ({"slug": "science"}, ["science"]),
    ]
    for change, args in cases:
        bad = admin.post("/admin/lists/new", data={**form, "slug": "other", **change})
        cli = run("lists", "create", *args, "--title", "T", "--from", "a@example.com")
        message = cli.output.strip().removeprefix("Error: ")
        assert cli.exit_code == 1 and message, cli.output
        assert bad.status_code == 400, change
        assert str(escape(message)) in text(bad), (change, message)
    bad_from = admin.post("/admin/lists/new", data={**form, "slug": "other", "from_addr": "nope"})
    cli = run("lists", "create", "other", "--title", "T", "--from", "nope")
    assert str(escape(cli.output.strip().removeprefix("Error: "))) in text(bad_from)
    assert [m.slug for m in all_lists(db)] == ["science"]  # nothing half-made

    edited = follow(admin, admin.post("/admin/lists/science", data={
        **form, "title": "Science & Space", "private": "yes", "tags": "Space"}))  # fmt: skip
    assert "Saved list science." in edited
    mlist = get_list(db, "science")
    assert (mlist.title, mlist.private, mlist.tags) == ("Science & Space", True, ("Space",))
    bad = admin.post("/admin/lists/science", data={**form, "title": "  "})
    assert bad.status_code == 400 and "title must not be empty" in text(bad)

    from digest.audience.subscriptions import add_subscription

    add_subscription(db, mlist, "sam@example.com", confirmed=True, source="cli",
                     now=datetime(2025, 1, 21, tzinfo=UTC))  # fmt: skip
    ask = text(admin.get("/admin/lists/science/delete"))
    assert "1 active or pending subscription(s) end" in ask
    # A post without the confirmation field shows the question again and deletes nothing.
    assert "Delete Science &amp; Space?" in text(
        admin.post("/admin/lists/science/delete", data={"csrf_token": admin.csrf})
    )
    done = follow(admin, admin.post("/admin/lists/science/delete",
                                    data={"csrf_token": admin.csrf, "confirm": "yes"}))  # fmt: skip
    assert "Deleted list science; 1 subscription(s) ended." in done
    assert history(db, "sam@example.com")[-1] == (
        "science", "active", "unsubscribed", "web", "list deleted by admin ada on the web",
    )  # fmt: skip


def test_a_private_list_is_not_on_the_home_page_and_has_no_archive(app, admin, db, world):
    admin.post("/admin/lists/world", data={
        "csrf_token": admin.csrf, "title": "World Desk", "from_addr": world.from_addr,
        "tags": "Haiti, Kenya", "timezone": "UTC", "send_time": "07:00",
        "weekly_day": "monday", "private": "yes"})  # fmt: skip
    visitor = app.test_client()
    assert "World Desk" not in text(visitor.get("/"))
    assert visitor.get("/archive/world/").status_code == 404
    assert visitor.get("/archive/world/feed.atom").status_code == 404
    assert visitor.get("/subscribe/world").status_code == 200  # the form still works


# --- feeds ----------------------------------------------------------------------------------------

FEED = """<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>
<item><title>{title}</title><link>https://example.org/1</link><guid>g1</guid>
<pubDate>Mon, 20 Jan 2025 06:00:00 GMT</pubDate><description>d</description></item>
</channel></rss>"""


def test_add_fetch_and_remove_a_feed(admin, db, feed_server, closed_port_url):
    feed_server.routes["/feed.xml"] = (FEED.format(title="Rains &amp; roads").encode(), {})
    url = feed_server.url("/feed.xml")
    page = follow(admin, admin.post("/admin/feeds/add", data={
        "csrf_token": admin.csrf, "url": url, "tags": "Kenya"}))  # fmt: skip
    assert f"added: {url} [Kenya]" in page and "never fetched" in page
    bad = follow(admin, admin.post("/admin/feeds/add",
                                   data={"csrf_token": admin.csrf, "url": "ftp://x/feed"}))  # fmt: skip
    assert "Not added:" in bad and "ftp" in bad

    page = follow(
        admin, admin.post("/admin/feeds/fetch", data={"csrf_token": admin.csrf, "url": url})
    )
    assert f"{url}: 1 new, 0 updated, 0 unchanged, 0 rejected" in page
    assert "Rains &amp;amp; roads" not in page and "Rains &amp; roads" in page  # escaped once
    assert ">ok<" in page

    add_feed(db, closed_port_url, now=DAY)
    page = follow(admin, admin.post("/admin/feeds/fetch", data={"csrf_token": admin.csrf}))
    assert f"{closed_port_url}: failed: unreachable (connection refused)" in page
    assert f"{url}: 0 new, 0 updated, 1 unchanged, 0 rejected" in page  # the other feed
    row = next(f for f in list_feeds(db) if f.url == closed_port_url)
    assert row.last_error and ">error<" in page and row.last_error in page

    ask = admin.get(f"/admin/feeds/remove?url={closed_port_url}")
    assert "Stop polling this feed?" in text(ask)
    follow(admin, admin.post("/admin/feeds/remove", data={
        "csrf_token": admin.csrf, "url": closed_port_url, "confirm": "yes"}))  # fmt: skip
    assert [f.url for f in list_feeds(db)] == [url]
    assert admin.get("/admin/feeds/remove?url=http://nope.example/").status_code == 404


# --- subscribers ----------------------------------------------------------------------------------


def test_filters_by_status_list_and_topic(admin, db, world, newsroom):
    other = newsroom.add_list("science", tags=("Space",), title="Science")
    newsroom.subscribe(world, "all@example.com")
    newsroom.subscribe(world, "kenya@example.com", tags=["Kenya"])
    newsroom.subscribe(world, "haiti@example.com", tags=["Haiti"], status="pending")
    newsroom.subscribe(other, "space@example.com")
    page = text(admin.get("/admin/subscribers?tag=Kenya"))
    assert "all@example.com" in page and "kenya@example.com" in page
    assert "haiti@example.com" not in page and "space@example.com" not in page
    page = text(admin.get("/admin/subscribers?tag=Space"))
    assert "space@example.com" in page and "all@example.com" not in page
    page = text(admin.get("/admin/subscribers?status=pending&list=world"))
    assert "haiti@example.com" in page and "all@example.com" not in page
    assert admin.get("/admin/subscribers?status=gone").status_code == 400


def test_a_subscribers_page_has_history_deliveries_and_bounces(admin, db, world, newsroom):
    sid = newsroom.subscribe(world, "bo@example.com", name="Bo")
    newsroom.add_article("Kenya story", DAY, tags=["Kenya"])
    from digest.config import load_config

    built = build_digest(db, load_config(None, env={}), world, "daily", DAY.date() + timedelta(1),
                         now=DAY + timedelta(hours=22))  # fmt: skip
    db.execute(
        "UPDATE deliveries SET status = 'failed', reply = '550 5.1.1 no such user',"
        " relay = 'smtp.example.com' WHERE digest_id = ?",
        [built.id],
    )
    mark_bounced(db, "bo@example.com", "550 5.1.1 no such user", now=DAY + timedelta(days=1))
    page = text(admin.get(f"/admin/subscribers/{sid}"))
    assert "<h1>bo@example.com</h1>" in page and "Bo" in page
    assert "active → " in page and ">bounced<" in page  # history
    assert "world · daily · 2025-01-21" in page and ">failed<" in page  # deliveries
    assert "550 5.1.1 no such user" in page and "(smtp.example.com)" in page
    assert "Bounces and complaints" in page and "delivery of world 2025-01-21 refused" in page
    assert ">yes<" in page and "Lift…" in page  # suppressed by the bounce
    assert "Re-activate…" in page
    assert admin.get("/admin/subscribers/999").status_code == 404


# --- suppressions ---------------------------------------------------------------------------------


def test_suppress_and_lift_with_a_reason(admin, db):
    page = follow(admin, admin.post("/admin/suppressions/add", data={
        "csrf_token": admin.csrf, "email": "trap@Example.com", "reason": "spam trap"}))  # fmt: skip
    assert "suppressed trap@example.com" in page and "spam trap (by admin ada on the web)" in page
    bad = follow(admin, admin.post("/admin/suppressions/add",
                                   data={"csrf_token": admin.csrf, "email": "nope"}))  # fmt: skip
    assert "Not suppressed:" in bad
    lift = text(admin.get("/admin/suppressions/lift?email=trap@example.com"))
    assert "Lift the suppression of trap@example.com?" in lift
    refused = admin.post("/admin/suppressions/lift", data={
        "csrf_token": admin.csrf, "email": "trap@example.com", "reason": " "})  # fmt: skip
    assert refused.status_code == 400 and "give a reason" in text(refused)
    assert get_suppression(db, "trap@example.com") is not None
    follow(admin, admin.post("/admin/suppressions/lift", data={
        "csrf_token": admin.csrf, "email": "trap@example.com", "reason": "not a trap after all"}))  # fmt: skip
    assert get_suppression(db, "trap@example.com") is None
    assert history(db, "trap@example.com")[-1][2:] == (
        "unsuppressed", "web",
        "not a trap after all (lifted by admin ada on the web) (was suppressed: spam trap (by"
        " admin ada on the web))",
    )  # fmt: skip
    assert admin.get("/admin/suppressions/lift?email=trap@example.com").status_code == 404


# --- staff accounts, one's own password --------------------------------------------------------


def test_admins_add_change_and_remove_accounts_but_not_their_own(app, admin, db):
    form = {"csrf_token": admin.csrf, "name": "cy", "role": "editor", "password": PASSWORD,
            "password2": PASSWORD}  # fmt: skip
    assert "added editor cy" in follow(admin, admin.post("/admin/users/add", data=form))
    assert "the two passwords differ" in follow(
        admin, admin.post("/admin/users/add", data={**form, "name": "dee", "password2": "x"})
    )
    assert "user &#39;cy&#39; already exists" in follow(
        admin, admin.post("/admin/users/add", data=form)
    )
    assert "password too short" in follow(admin, admin.post("/admin/users/add", data={
        **form, "name": "dee", "password": "short", "password2": "short"}))  # fmt: skip
    cy = app.test_client()
    login(cy, "cy")
    assert cy.get("/admin/").status_code == 403
    page = follow(admin, admin.post("/admin/users/role", data={
        "csrf_token": admin.csrf, "name": "cy", "role": "admin"}))  # fmt: skip
    assert "cy is now admin; their sessions have ended." in page
    assert cy.get("/admin/").status_code == 302  # logged out by the change
    login(cy, "cy")
    assert cy.get("/admin/").status_code == 200
    # Not their own account: the site must keep an admin.
    for path, data in (("/admin/users/role", {"role": "editor"}),
                       ("/admin/users/remove", {"confirm": "yes"})):  # fmt: skip
        page = follow(
            admin, admin.post(path, data={"csrf_token": admin.csrf, "name": "ada", **data})
        )
        assert "you cannot" in page and "your own account" in page
    assert users.list_users(db)[0].role == "admin"
    assert "Remove the account cy?" in text(admin.get("/admin/users/remove?name=cy"))
    assert "removed cy" in follow(admin, admin.post("/admin/users/remove", data={
        "csrf_token": admin.csrf, "name": "cy", "confirm": "yes"}))  # fmt: skip
    assert cy.get("/admin/").status_code == 302
    assert "Not removed: no user &#39;cy&#39;" in follow(admin, admin.post("/admin/users/remove", data={
        "csrf_token": admin.csrf, "name": "cy", "confirm": "yes"}))  # fmt: skip


def test_changing_ones_own_password_needs_the_current_one_and_ends_other_sessions(app, staff, db):
    mine, other = app.test_client(), app.test_client()
    csrf = login(mine, "ed")
    login(other, "ed")
    form = {"csrf_token": csrf, "current_password": "wrong password", "new_password": "a new password",
            "new_password2": "a new password"}  # fmt: skip
    wrong = mine.post("/account", data=form)
    assert wrong.status_code == 400 and "current password is not right" in text(wrong)
    differ = mine.post(
        "/account", data={**form, "current_password": PASSWORD, "new_password2": "x"}
    )
    assert differ.status_code == 400 and "two new passwords differ" in text(differ)
    short = mine.post("/account", data={**form, "current_password": PASSWORD,
                                        "new_password": "short", "new_password2": "short"})  # fmt: skip
    assert short.status_code == 400 and "password too short" in text(short)
    assert users.authenticate(db, "ed", PASSWORD, now=DAY) is not None
    done = mine.post("/account", data={**form, "current_password": PASSWORD})
    assert "every other session of your account has ended" in follow(mine, done)
    assert mine.get("/editor/").status_code == 200  # this browser stays logged in
    assert other.get("/editor/").status_code == 302  # the other session ended
    assert users.authenticate(db, "ed", "a new password", now=DAY) is not None
    assert users.authenticate(db, "ed", PASSWORD, now=DAY) is None


def test_users_passwd_is_the_same_command_as_password(run, db):
    users.add_user(db, "ed", PASSWORD, "editor", now=DAY)
    for command in ("passwd", "password"):
        result = run("users", command, "ed", "--password-stdin", input="another password 1\n")
        assert result.exit_code == 0, result.output
        assert "changed the password of ed; its sessions have ended" in result.output
    role = run("users", "role", "ed", "admin")
    assert role.exit_code == 0 and role.output.strip() == "ed is now admin"
    assert run("users", "role", "nobody", "admin").output.strip() == "Error: no user 'nobody'"
    with pytest.raises(InvalidInput, match="cannot remove your own account"):
        users.remove_user(db, "ed", acting="ed")


# --- dashboard, exports ---------------------------------------------------------------------------


def test_dashboard_shows_growth_outcomes_scheduler_and_relay_errors(
    app, admin, db, world, newsroom, web_clock
):
    # web_clock: 2025-01-21 07:00 UTC; three people joined in the last days, one left.
    for i, days_ago in enumerate((3, 2, 2)):
        from digest.audience.subscriptions import add_subscription

        add_subscription(db, world, f"n{i}@example.com", confirmed=True, source="cli",
                         now=web_clock.now - timedelta(days=days_ago))  # fmt: skip
    newsroom.add_article("Kenya story", DAY, tags=["Kenya"])
    from digest.config import load_config

    built = build_digest(db, load_config(None, env={}), world, "daily", DAY.date() + timedelta(1),
                         now=DAY + timedelta(hours=22))  # fmt: skip
    claimed = ledger.claim(db, "test", now=web_clock.now, lease_seconds=60, limit=2)
    ledger.record_sent(db, claimed[0].id, reply="250 ok", relay="r1", message_id="<m1@x>",
                       now=web_clock.now)  # fmt: skip
    ledger.record_deferred(db, claimed[1], reply="451 4.7.1 try later", relay="smtp.example.com",
                           message_id=None, now=web_clock.now, max_age=timedelta(days=3))  # fmt: skip
    ledger.release(db, "test")
    mark_bounced(db, "n2@example.com", "550 5.1.1 gone", now=web_clock.now)
    # A bounce report about the delivery that was sent (as `digest bounces process` records it).
    from digest.feedback.events import IdentifiedBy, NewEvent, record
    from digest.feedback.policy import BounceKind

    record(db, NewEvent(email=claimed[0].email, subscriber_id=claimed[0].subscriber_id,
                        delivery_id=claimed[0].id, kind=BounceKind.HARD, source="bounce-mailbox",
                        status="5.1.1", diagnostic="550 5.1.1 <user unknown>",
                        identified_by=IdentifiedBy.VERP, message_key="<m1@x>", event_key="e1",
                        occurred_at=web_clock.now, received_at=web_clock.now))  # fmt: skip
    page = text(admin.get("/admin/"))
    assert "<h1>Dashboard</h1>" in page
    # Growth over 30 days: 0 -> 2 active (three joined, one bounced), drawn as a polyline.
    assert "0 → 2 (+2)" in page and "<polyline points=" in page
    # The issue with its outcome counts, and the bounce report about one of its deliveries.
    row = re.search(r"2025-01-21</a>.*?</tr>", page, re.S).group(0)
    cells = re.findall(r'data-label="(\w+)">(\d+)</td>', row)
    assert cells == [("Queued", "1"), ("Sent", "1"), ("Deferred", "1"), ("Failed", "0"),
                     ("Skipped", "0"), ("Bounced", "1"), ("Complained", "0")]  # fmt: skip
    # The scheduler's view, as `digest status` prints it.
    assert "not running" in page and "last tick never" in page
    assert "2025-01-22" in page and "Wed 2025-01-22 07:00 UTC" in page
    # Relay health: the deferral with the relay's reply.
    assert "451 4.7.1 try later" in page and "smtp.example.com" in page
    assert built.id
    # The subscriber's own page lists the report, escaped, with the issue it was about.
    person = text(admin.get(f"/admin/subscribers/{claimed[0].subscriber_id}"))
    assert "hard report (bounce-mailbox, 5.1.1) about world daily 2025-01-21" in person
    assert "550 5.1.1 &lt;user unknown&gt;" in person


def test_exports_page_links_each_lists_csv(admin, world):
    page = text(admin.get("/admin/export"))
    assert 'href="/admin/lists/world/export.csv">world.csv</a>' in page


# --- hostile input on admin pages -----------------------------------------------------------------


def test_markup_in_list_titles_feed_errors_and_article_titles_is_shown_as_text(
    admin, db, newsroom, web_clock, feed_server
):
    world = newsroom.add_list(title=f"World {XSS}", description=XSS)
    newsroom.subscribe(world, "ann@example.com", name=XSS)
    feed_server.routes["/x.xml"] = (FEED.format(title=XSS.replace("<", "&lt;")).encode(), {})
    url = feed_server.url("/x.xml")
    add_feed(db, url, now=web_clock.now)
    admin.post("/admin/feeds/fetch", data={"csrf_token": admin.csrf})
    db.execute(
        "UPDATE feeds SET last_error = ?, last_error_at = ?", [XSS, "2099-01-01T00:00:00+00:00"]
    )
    sid = db.execute("SELECT id FROM subscribers").fetchone()[0]
    pages = ["/admin/", "/admin/lists/", "/admin/lists/world", "/admin/feeds/", "/admin/subscribers",
             f"/admin/subscribers/{sid}", "/admin/export", "/editor/"]  # fmt: skip
    for path in pages:
        page = text(admin.get(path))
        assert "<script>alert" not in page and "<img src=x" not in page, path
        assert "onerror=alert" not in page or "&lt;img src=x onerror=alert(1)&gt;" in page, path
    assert "World &lt;img src=x onerror=alert(1)&gt;&lt;script&gt;" in text(
        admin.get("/admin/lists/")
    )
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in text(admin.get("/admin/feeds/"))


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example"])
def test_login_from_an_admin_link_never_leaves_the_site(app, staff, target):
    client = app.test_client()
    page = text(client.get(f"/login?next={target}"))
    response = client.post("/login", data={"csrf_token": csrf_from(page), "name": "ada",
                                           "password": PASSWORD, "next": target})  # fmt: skip
    assert response.location == "/editor/"


def test_an_imports_messages_name_the_uploaded_file_never_the_servers_copy(admin, world):
    import io

    data = b"email,colour\nann@example.com,blue\nbad,red\n"
    response = admin.post(
        "/admin/import",
        data={"csrf_token": admin.csrf, "list": "world", "file": (io.BytesIO(data), "my list.csv")},
        content_type="multipart/form-data",
    )
    page = text(response)
    assert "warning: my list.csv: ignoring unknown column(s) &#39;colour&#39;" in page
    assert "my list.csv: line 3: rejected: invalid address &#39;bad&#39;" in page
    assert "digest-web-imports" not in page and "/tmp/" not in page
    assert not re.search(r"[A-Za-z0-9_-]{24}\.csv", page)  # the random name of the stored copy


def test_lists_can_be_made_private_from_the_cli_too(run, db):
    result = run("lists", "create", "notes", "--title", "Notes", "--from", "a@example.com",
                 "--private")  # fmt: skip
    assert "visibility:  private (not on the home page, no archive)" in result.output
    assert get_list(db, "notes").private
    assert "visibility:  public" in run("lists", "edit", "notes", "--public").output


def test_an_editor_sends_a_test_from_the_preview(app, staff, db, world, newsroom, smtp):
    newsroom.add_article("Kenya story", DAY, tags=["Kenya"])
    editor = app.test_client()
    csrf = login(editor, "ed")
    response = editor.post("/editor/preview/send", data={
        "csrf_token": csrf, "list": "world", "date": "2025-01-21", "to": "ed@example.org"})  # fmt: skip
    assert response.status_code == 200 and "Test sent to ed@example.org: 250" in text(response)
    assert smtp.handler.received[-1].rcpt_to == ["ed@example.org"]
    dark = editor.get("/editor/preview/frame?list=world&date=2025-01-21&scheme=dark")
    assert "@media all" in text(dark) and "prefers-color-scheme: dark" not in text(dark)


def test_a_lists_frequencies_on_its_page_move_subscribers_and_shape_its_forms(
    admin, db, world, run
):
    from digest.audience.subscriptions import add_subscription

    at = datetime(2025, 1, 21, tzinfo=UTC)
    for address, frequency in (("d1@example.com", "daily"), ("w1@example.com", "weekly")):
        add_subscription(db, world, address, frequency=frequency, confirmed=True, source="cli",
                         now=at)  # fmt: skip
    page = text(admin.get("/admin/lists/world"))
    assert 'name="frequencies"' in page and 'name="default_frequency"' in page
    form = {"csrf_token": admin.csrf, "title": "World Desk", "from_addr": world.from_addr,
            "tags": "Haiti, Kenya", "timezone": "UTC", "send_time": "07:00",
            "weekly_day": "monday"}  # fmt: skip
    # The library's check, with the CLI's message.
    bad = admin.post("/admin/lists/world", data={**form, "frequencies": "weekly",
                                                 "default_frequency": "daily"})  # fmt: skip
    cli = run("lists", "edit", "world", "--frequencies", "weekly", "--default-frequency", "daily")
    assert bad.status_code == 400 and cli.exit_code == 1
    assert str(escape(cli.output.strip().removeprefix("Error: "))) in text(bad)
    saved = follow(admin, admin.post("/admin/lists/world", data={
        **form, "frequencies": "weekly", "default_frequency": "weekly"}))  # fmt: skip
    assert "1 subscriber(s) moved to weekly: the list no longer offers their frequency." in saved
    mlist = get_list(db, "world")
    assert (mlist.frequencies, mlist.default_frequency) == (("weekly",), "weekly")
    assert db.execute("SELECT DISTINCT frequency FROM subscriptions").fetchall() == [("weekly",)]
    assert history(db, "d1@example.com")[-1][3:] == (
        "web", "moved from daily to weekly: the list no longer offers daily digests",
    )  # fmt: skip
    # The embeddable form and the subscribe page offer only what the list does.
    assert 'value="daily"' not in saved.split("digest-subscribe", 1)[1].split("</form>")[0]
    subscribe = text(admin.get("/subscribe/world"))
    assert 'value="weekly"' in subscribe and 'value="daily"' not in subscribe
    # A form without the fields (an older page) leaves the offer as it is.
    follow(admin, admin.post("/admin/lists/world", data={**form, "title": "World"}))
    assert get_list(db, "world").frequencies == ("weekly",)


def test_a_lists_look_and_approval_settings_on_its_page(admin, db, world, run):
    page = text(admin.get("/admin/lists/world"))
    for label in ("<h2>Look</h2>", "<h2>Approval</h2>", 'name="accent"', 'name="editors"'):
        assert label in page
    form = {"csrf_token": admin.csrf, "title": "World Desk", "from_addr": world.from_addr,
            "tags": "Haiti, Kenya", "timezone": "UTC", "send_time": "07:00",
            "weekly_day": "monday", "language": "fr", "images": "lead",
            "logo_url": "https://cdn.example.org/logo.png", "logo_size": "180x40",
            "accent": "#0B5CAD", "subject_pattern": "{list}: {top}", "intro": "Bonjour",
            "footer_text": "", "postal_address": "1 rue X, Paris", "approval_lead": "2h",
            "approval_deadline": "1h", "editors": ""}  # fmt: skip
    # The library's checks, with the CLI's messages.
    for change, args in (
        ({"accent": "#ffff00"}, ["--accent", "#ffff00"]),
        ({"approval": "yes"}, ["--approval", "on"]),
        ({"approval_lead": "soon"}, ["--approval-lead", "soon"]),
        ({"logo_url": "javascript:alert(1)"}, ["--logo-url", "javascript:alert(1)"]),
    ):
        bad = admin.post("/admin/lists/world", data={**form, **change})
        cli = run("lists", "edit", "world", *args)
        assert bad.status_code == 400 and cli.exit_code == 1, change
        assert str(escape(cli.output.strip().removeprefix("Error: "))) in text(bad), change
    saved = follow(admin, admin.post("/admin/lists/world", data={
        **form, "approval": "yes", "editors": "ed@example.org"}))  # fmt: skip
    assert "Saved list world." in saved
    mlist = get_list(db, "world")
    assert (mlist.language, mlist.brand.accent, mlist.brand.logo_width) == ("fr", "#0b5cad", 180)
    assert mlist.approval.required and mlist.approval.editors == ("ed@example.org",)
    assert 'value="#0b5cad"' in saved and 'value="180x40"' in saved and "1 rue X, Paris" in saved
