"""The web app, phase 2: the state-changing token POSTs, the subscribe form and its confirmation
email, the archive, the editor preview with "[TEST]" sends, and the admin subscriber pages.
Flask's test client on a real SQLite file; mail goes to a real aiosmtpd server on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import json
import re
import time
from datetime import UTC, date, datetime, timedelta

import pytest
from conftest import WEB_SECRET
from markupsafe import escape

from digest import users
from digest.audience.lists import LookChanges, edit_list, get_list
from digest.audience.suppressions import suppress
from digest.delivery.notices import queued_notices
from digest.delivery.preview import preview_digest
from digest.delivery.publish import build_digest
from digest.store import open_db
from digest.tokens import make_token
from digest.web.security import MESSAGE_CSP
from digest.web.staff import as_test_copy

PASSWORD = "correct horse battery"
DAY = datetime(2025, 1, 20, 6, 0, tzinfo=UTC)


# --- helpers ------------------------------------------------------------------------------------


def csrf_from(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF field in the page"
    return m.group(1)


def login(client, name="ed"):
    page = client.get("/login").get_data(as_text=True)
    response = client.post(
        "/login", data={"csrf_token": csrf_from(page), "name": name, "password": PASSWORD}
    )
    assert response.status_code == 302
    return csrf_from(client.get("/editor/").get_data(as_text=True))


def events(db, email_address):
    """The address's history, without what the test's fixtures did to set it up."""
    return [
        (r["list_slug"], r["old_status"], r["new_status"], r["source"], r["reason"])
        for r in db.query(
            "SELECT * FROM status_events WHERE email = ? AND source != 'fixture' ORDER BY id",
            [email_address],
        )
    ]


def subscription(db, email_address, slug="world"):
    return next(
        db.query(
            "SELECT s.status, s.frequency, s.tags FROM subscriptions s"
            " JOIN subscribers p ON p.id = s.subscriber_id JOIN lists l ON l.id = s.list_id"
            " WHERE p.email = ? AND l.slug = ?",
            [email_address, slug],
        ),
        None,
    )


def parse(data: bytes):
    return email.message_from_bytes(data, policy=email.policy.default)


def wait_for(condition, timeout: float = 15.0) -> None:
    """Confirmation emails are sent by the app's worker thread, after the request: wait."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the notices worker"
        time.sleep(0.02)


def outbox_sent(db) -> bool:
    return queued_notices(db) == 0


def confirm_link(message) -> str:
    text = message.get_body(("plain",)).get_content()
    m = re.search(r"http://127\.0\.0\.1:8080(/c/[A-Za-z0-9_-]+)", text)
    assert m, text
    return m.group(1)


@pytest.fixture
def staff(db, web_clock):
    users.add_user(db, "ed", PASSWORD, "editor", now=web_clock.now)
    users.add_user(db, "ada", PASSWORD, "admin", now=web_clock.now)


@pytest.fixture
def world(newsroom):
    # One article per tag: the subscribe and preferences pages offer only tags in use.
    newsroom.add_article(
        "Haiti and Kenya", datetime(2025, 1, 1, tzinfo=UTC), tags=["Haiti", "Kenya"]
    )
    return newsroom.add_list(tags=("Haiti", "Kenya"), title="World Desk")


@pytest.fixture
def smtp(smtp_server):
    return smtp_server()


@pytest.fixture
def app(make_web_app, smtp):
    return make_web_app(f'[[smtp]]\nurl = "{smtp.url()}"\n')


def token(purpose, sid, list_id, when):
    return make_token(WEB_SECRET, purpose, sid, list_id, now=when)


# --- confirm, unsubscribe, preferences: the state-changing POSTs --------------------------------


def test_confirm_post_activates_and_records_a_web_event(app, web_clock, db, world, newsroom):
    sid = newsroom.subscribe(world, "ann@example.com", status="pending")
    client = app.test_client()
    url = f"/c/{token('confirm', sid, world.id, web_clock.now)}"
    csrf = csrf_from(client.get(url).get_data(as_text=True))
    response = client.post(url, data={"csrf_token": csrf})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "You're subscribed" in html
    assert subscription(db, "ann@example.com")["status"] == "active"
    assert events(db, "ann@example.com") == [
        ("world", "pending", "active", "web", "double opt-in confirmation")
    ]
    # The page links to the preferences page, which works.
    prefs = re.search(r'href="(/p/[^"]+)"', html).group(1)
    assert client.get(prefs).status_code == 200
    # Confirming again changes nothing and records nothing.
    client.post(url, data={"csrf_token": csrf})
    assert len(events(db, "ann@example.com")) == 1


def test_an_old_confirmation_link_does_not_resubscribe_after_unsubscribing(
    app, web_clock, db, world, newsroom
):
    sid = newsroom.subscribe(world, "ann@example.com", status="pending")
    old = f"/c/{token('confirm', sid, world.id, web_clock.now)}"
    client = app.test_client()
    csrf = csrf_from(client.get(old).get_data(as_text=True))
    client.post(old, data={"csrf_token": csrf})
    web_clock.advance(hours=1)
    unsub = f"/u/{token('unsubscribe', sid, world.id, web_clock.now)}"
    client.post(unsub, data={"csrf_token": csrf, "scope": "list"})
    assert subscription(db, "ann@example.com")["status"] == "unsubscribed"
    web_clock.advance(hours=1)
    page = client.get(old).get_data(as_text=True)
    assert "This subscription can't be confirmed" in page
    client.post(old, data={"csrf_token": csrf})
    assert subscription(db, "ann@example.com")["status"] == "unsubscribed"
    # A link issued after the unsubscribe (a new subscribe request) re-activates.
    new = f"/c/{token('confirm', sid, world.id, web_clock.now)}"
    assert "Yes, subscribe me" in client.get(new).get_data(as_text=True)
    client.post(new, data={"csrf_token": csrf})
    assert subscription(db, "ann@example.com")["status"] == "active"
    assert events(db, "ann@example.com")[-1] == (
        "world",
        "unsubscribed",
        "active",
        "web",
        "re-activated by a new double opt-in confirmation",
    )


def test_unsubscribe_button_post_with_csrf(app, web_clock, db, world, newsroom):
    sid = newsroom.subscribe(world, "ann@example.com")
    client = app.test_client()
    url = f"/u/{token('unsubscribe', sid, world.id, web_clock.now)}"
    csrf = csrf_from(client.get(url).get_data(as_text=True))
    response = client.post(url, data={"csrf_token": csrf, "scope": "list"})
    assert response.status_code == 200
    assert "You're unsubscribed" in response.get_data(as_text=True)
    assert subscription(db, "ann@example.com")["status"] == "unsubscribed"
    assert events(db, "ann@example.com") == [
        ("world", "active", "unsubscribed", "web", "unsubscribe page")
    ]


@pytest.mark.parametrize("content_type", [None, "multipart/form-data"])
def test_one_click_unsubscribe_rfc8058(app, web_clock, db, world, newsroom, content_type):
    sid = newsroom.subscribe(world, "ann@example.com")
    url = f"/u/{token('unsubscribe', sid, world.id, web_clock.now)}"
    kwargs = {"content_type": content_type} if content_type else {}
    # A mailbox provider's POST: no cookie, no CSRF token, no session.
    response = app.test_client().post(url, data={"List-Unsubscribe": "One-Click"}, **kwargs)
    assert response.status_code == 200
    assert "Location" not in response.headers
    assert "Set-Cookie" not in response.headers
    assert subscription(db, "ann@example.com")["status"] == "unsubscribed"
    assert events(db, "ann@example.com") == [
        ("world", "active", "unsubscribed", "web", "one-click (RFC 8058)")
    ]
    # Repeated (providers retry): still 200, nothing more recorded.
    again = app.test_client().post(url, data={"List-Unsubscribe": "One-Click"}, **kwargs)
    assert again.status_code == 200 and len(events(db, "ann@example.com")) == 1


def test_a_post_without_the_one_click_body_needs_csrf(app, web_clock, db, world, newsroom):
    sid = newsroom.subscribe(world, "ann@example.com")
    url = f"/u/{token('unsubscribe', sid, world.id, web_clock.now)}"
    response = app.test_client().post(url, data={"List-Unsubscribe": "Yes"})
    assert response.status_code == 400
    assert subscription(db, "ann@example.com")["status"] == "active"


def test_preferences_save_tags_and_frequency(app, web_clock, db, world, newsroom):
    sid = newsroom.subscribe(world, "ann@example.com")
    client = app.test_client()
    url = f"/p/{token('preferences', sid, world.id, web_clock.now)}"
    csrf = csrf_from(client.get(url).get_data(as_text=True))
    response = client.post(
        url, data={"csrf_token": csrf, "action": "save", "tag": ["kenya"], "frequency": "weekly"}
    )
    assert response.status_code == 302 and response.location.endswith("?saved=1")
    assert "Saved." in client.get(response.location).get_data(as_text=True)
    row = subscription(db, "ann@example.com")
    assert (row["status"], row["frequency"], json.loads(row["tags"])) == (
        "active",
        "weekly",
        ["kenya"],
    )
    assert events(db, "ann@example.com") == [
        ("world", "active", "active", "web", "preferences changed: weekly, Kenya")
    ]
    # Ticking every topic stores "all topics" ([]).
    client.post(
        url,
        data={
            "csrf_token": csrf,
            "action": "save",
            "tag": ["haiti", "kenya"],
            "frequency": "daily",
        },
    )
    assert json.loads(subscription(db, "ann@example.com")["tags"]) == []


def test_preferences_unsubscribe_this_list_or_everything(app, web_clock, db, world, newsroom):
    other = newsroom.add_list("science", tags=("Space",), title="Science Desk")
    sid = newsroom.subscribe(world, "ann@example.com")
    newsroom.subscribe(other, "ann@example.com")
    client = app.test_client()
    url = f"/p/{token('preferences', sid, world.id, web_clock.now)}"
    csrf = csrf_from(client.get(url).get_data(as_text=True))
    page = client.post(url, data={"csrf_token": csrf, "action": "unsubscribe_list"})
    assert "from <strong>World Desk</strong>" in page.get_data(as_text=True)
    assert subscription(db, "ann@example.com")["status"] == "unsubscribed"
    assert subscription(db, "ann@example.com", "science")["status"] == "active"

    other_url = f"/p/{token('preferences', sid, other.id, web_clock.now)}"
    page = client.post(other_url, data={"csrf_token": csrf, "action": "unsubscribe_all"})
    assert "from any of our lists" in page.get_data(as_text=True)
    assert subscription(db, "ann@example.com", "science")["status"] == "unsubscribed"
    assert [e[:4] for e in events(db, "ann@example.com")] == [
        ("world", "active", "unsubscribed", "web"),
        ("science", "active", "unsubscribed", "web"),
    ]


# --- subscribe form and confirmation email ------------------------------------------------------


def post_subscribe(client, slug="world", **form):
    csrf = csrf_from(client.get(f"/subscribe/{slug}").get_data(as_text=True))
    data = {"csrf_token": csrf, "frequency": "daily", "tag": ["haiti", "kenya"], **form}
    return client.post(f"/subscribe/{slug}", data=data)


def test_subscribe_form_shows_the_lists_topics(app, world):
    html = app.test_client().get("/subscribe/world").get_data(as_text=True)
    assert "Subscribe to World Desk" in html
    assert 'value="haiti" checked' in html and 'value="kenya" checked' in html
    assert 'value="daily" checked' in html
    assert app.test_client().get("/subscribe/nope").status_code == 404


def test_subscribe_new_address_sends_a_confirmation_that_activates(app, smtp, db, world):
    client = app.test_client()
    response = post_subscribe(client, email="New.Person@Example.COM", name="Néa Person",
                              tag=["kenya"], frequency="weekly")  # fmt: skip
    assert response.status_code == 303 and response.location == "/subscribe/world/sent"
    sent_page = client.get(response.location).get_data(as_text=True)
    assert "Check your inbox" in sent_page

    row = subscription(db, "New.Person@example.com")
    assert (row["status"], row["frequency"], row["tags"]) == ("pending", "weekly", '["kenya"]')
    assert events(db, "New.Person@example.com") == [("world", None, "pending", "web", None)]

    wait_for(lambda: len(smtp.handler.received) == 1)
    received = smtp.handler.received[0]
    assert received.mail_from == "news@news.example.com"
    assert received.rcpt_to == ["New.Person@example.com"]
    message = parse(received.data)
    assert message["Subject"] == "Confirm your subscription to World Desk"
    assert message["From"] == "World Desk <news@news.example.com>"
    assert message["To"].addresses[0].display_name == "Néa Person"
    assert message["To"].addresses[0].addr_spec == "New.Person@example.com"
    assert message["Date"].datetime == datetime.fromisoformat("2025-01-21T07:00:00+00:00")
    assert message["Message-ID"].startswith("<confirm.")
    assert "List-Unsubscribe" not in message
    html = message.get_body(("html",)).get_content()
    link = confirm_link(message)
    assert f'href="http://127.0.0.1:8080{link}"' in html

    csrf = csrf_from(client.get(link).get_data(as_text=True))
    client.post(link, data={"csrf_token": csrf})
    assert subscription(db, "New.Person@example.com")["status"] == "active"


def test_subscribe_html_part_escapes_what_people_type(app, smtp, db, newsroom):
    newsroom.add_list("arts", tags=(), title="Arts & <Letters>")
    client = app.test_client()
    post_subscribe(client, "arts", email="x@example.com", name="<b>Bold</b>", tag=[])
    wait_for(lambda: len(smtp.handler.received) == 1)
    message = parse(smtp.handler.received[0].data)
    html = message.get_body(("html",)).get_content()
    assert "Arts &amp; &lt;Letters&gt;" in html and "<Letters>" not in html
    assert message["Subject"] == "Confirm your subscription to Arts & <Letters>"


@pytest.mark.parametrize("state", ["pending", "active", "unsubscribed", "bounced", "suppressed"])
def test_a_known_address_sees_the_same_page(app, smtp, db, world, newsroom, web_clock, state):
    client = app.test_client()
    fresh = post_subscribe(client, email="fresh@example.com")
    fresh_page = client.get(fresh.location).get_data(as_text=True)
    newsroom.subscribe(
        world, "ann@example.com", status="active" if state == "suppressed" else state,
        tags=["haiti"], frequency="daily",
    )  # fmt: skip
    if state == "suppressed":
        suppress(db, "ann@example.com", "spam trap", source="cli",
                 now=datetime(2025, 1, 1, tzinfo=UTC))  # fmt: skip
    before = events(db, "ann@example.com")
    response = post_subscribe(client, email="ann@example.com", tag=["kenya"], frequency="weekly")
    assert response.status_code == 303 and response.location == fresh.location
    assert client.get(response.location).get_data(as_text=True) == fresh_page

    wait_for(lambda: outbox_sent(db))
    row = subscription(db, "ann@example.com")
    mailed = [r for m in smtp.handler.received for r in m.rcpt_to if r == "ann@example.com"]
    if state == "pending":  # not confirmed yet: the latest form wins; a new link is sent
        assert (row["frequency"], row["tags"]) == ("weekly", '["kenya"]')
        assert len(mailed) == 1
    elif state in ("active", "unsubscribed"):  # nothing changes until the person clicks
        assert (row["status"], row["frequency"], row["tags"]) == (state, "daily", '["haiti"]')
        assert events(db, "ann@example.com") == before
        assert len(mailed) == 1
        link = confirm_link(parse(smtp.handler.received[-1].data))
        page = client.get(link).get_data(as_text=True)
        # The page says what confirming changes; the person's new choices win once they do.
        assert "With your new choices: weekly, Kenya." in page
        client.post(link, data={"csrf_token": csrf_from(page)})
        row = subscription(db, "ann@example.com")
        assert (row["status"], row["frequency"], row["tags"]) == ("active", "weekly", '["kenya"]')
    else:  # bounced or suppressed: never mailed, nothing changes
        assert mailed == []
        assert row["status"] == ("bounced" if state == "bounced" else "active")
        assert events(db, "ann@example.com") == before


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"email": "not an address"}, "invalid address 'not an address': check it and try"),
        ({"email": ""}, "invalid address '': check it and try again"),
        ({"email": "<b>x"}, "invalid address '&lt;b&gt;x'"),  # what was typed, as text
        ({"email": "a@example.com", "frequency": "hourly"}, "choose how often: daily or weekly"),
        ({"email": "a@example.com", "tag": []}, "choose at least one topic"),
        ({"email": "a@example.com", "tag": ["mars"]}, "unknown topic 'mars'"),
        ({"email": "a@example.com", "name": "Ann\nBcc: x@evil.example"}, "line break"),
    ],
)
def test_subscribe_validation_errors_are_shown_on_the_form(app, smtp, db, world, form, message):
    response = post_subscribe(app.test_client(), **form)
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert message in html and 'class="error"' in html
    assert "Subscribe to World Desk" in html  # the form again, with what was typed
    assert db.execute("SELECT count(*) FROM subscribers").fetchone()[0] == 0
    assert smtp.handler.received == []


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"email": "pas une adresse"}, "adresse invalide 'pas une adresse'\u00a0: vérifiez-la"),
        ({"email": "a@example.com", "frequency": "hourly"}, "choisissez la fréquence\u00a0:"),
        ({"email": "a@example.com", "tag": []}, "choisissez au moins un sujet"),
        ({"email": "a@example.com", "tag": ["<i>mars"]}, "sujet inconnu '&lt;i&gt;mars'"),
    ],
)
def test_subscribe_errors_are_said_in_the_lists_language(app, db, world, form, message):
    edit_list(db, "world", look=LookChanges(language="fr"), now=datetime(2025, 1, 2, tzinfo=UTC))
    response = post_subscribe(app.test_client(), **form)
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert message in html and 'lang="fr"' in html
    for english in ("invalid address", "choose", "unknown topic"):
        assert english not in html


def test_subscribe_is_rate_limited(make_web_app, smtp, db, world):
    app = make_web_app(f'[[smtp]]\nurl = "{smtp.url()}"\n[web]\nsubscribe_limit = 2\n')
    client = app.test_client()
    codes = [post_subscribe(client, email=f"p{i}@example.com").status_code for i in range(3)]
    assert codes == [303, 303, 429]
    wait_for(lambda: outbox_sent(db))
    assert len(smtp.handler.received) == 2
    assert client.get("/subscribe/world").status_code == 200  # the form itself is not limited


def test_subscribe_when_mail_cannot_be_sent_still_shows_the_page(
    make_web_app, closed_port_url, db, world, caplog
):
    port = closed_port_url.split(":")[2].split("/")[0]
    app = make_web_app(f'[[smtp]]\nurl = "smtp://127.0.0.1:{port}"\n[send]\ntimeout = 5\n')
    response = post_subscribe(app.test_client(), email="ann@example.com")
    assert response.status_code == 303 and response.location == "/subscribe/world/sent"
    assert subscription(db, "ann@example.com")["status"] == "pending"
    wait_for(lambda: "confirmation email to ann@example.com for list world not sent" in caplog.text)
    assert queued_notices(db) == 1  # kept, for a retry


def test_subscribe_without_any_relay_configured_still_shows_the_page(
    make_web_app, db, world, caplog
):
    response = post_subscribe(make_web_app().test_client(), email="ann@example.com")
    assert response.status_code == 303
    assert subscription(db, "ann@example.com")["status"] == "pending"
    wait_for(lambda: "no SMTP relay configured" in caplog.text)
    assert queued_notices(db) == 1


def test_home_links_each_lists_subscribe_and_archive_pages(app, world):
    html = app.test_client().get("/").get_data(as_text=True)
    assert 'href="/subscribe/world"' in html and 'href="/archive/world/"' in html


# --- archive ------------------------------------------------------------------------------------


@pytest.fixture
def built(db, world, newsroom):
    """A built daily digest of 21 Jan 2025 (articles of 20 Jan) with a tiny HTML budget, so
    sections are cut and carry "N more stories" links. Returns (config, digest id)."""
    from digest.config import load_config

    for i in range(6):
        newsroom.add_article(f"Haiti story {i}", DAY + timedelta(minutes=i), tags=["Haiti"])
        newsroom.add_article(f"Kenya story {i}", DAY + timedelta(minutes=i), tags=["Kenya"])
    newsroom.subscribe(world, "ann@example.com", name="Ann")
    config = load_config(None, env={})
    config = dataclasses.replace(
        config, digest=dataclasses.replace(config.digest, html_budget=10_000)
    )
    result = build_digest(
        db, config, world, "daily", date(2025, 1, 21), now=datetime.fromisoformat(
            "2025-01-21T04:00:00+00:00")
    )  # fmt: skip
    return config, result.id


def mark_sent(db, digest_id):
    db.execute("UPDATE deliveries SET status = 'sent' WHERE digest_id = ?", [digest_id])


def test_archive_lists_only_sent_digests(app, db, built):
    _, digest_id = built
    client = app.test_client()
    page = client.get("/archive/world/")
    assert page.status_code == 200
    assert "Nothing sent yet." in page.get_data(as_text=True)
    assert client.get("/archive/world/daily/2025-01-21/").status_code == 404
    mark_sent(db, digest_id)
    page = client.get("/archive/world/")
    html = page.get_data(as_text=True)
    subject = db.execute(
        "SELECT subject FROM variants WHERE digest_id = ? AND tags_key = ''", [digest_id]
    ).fetchone()[0]
    assert f'<a href="/archive/world/daily/2025-01-21/">{escape(subject)}</a>' in html
    assert page.headers["Cache-Control"] == "public, max-age=300"


def test_archive_digest_is_the_stored_web_version(app, db, built):
    config, digest_id = built
    mark_sent(db, digest_id)
    response = app.test_client().get("/archive/world/daily/2025-01-21/")
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"] == MESSAGE_CSP
    html = response.get_data(as_text=True)
    from digest.issues.build import render_web_version

    # The stored web version, with the archive's meta tags and banner added (test_archive.py).
    stored = render_web_version(db, config, digest_id)
    head, _, body = stored.partition("</head>")
    assert html.startswith(head) and html.endswith(body.split("<body>", 1)[1])
    assert 'id="tag-haiti"' in html and 'id="tag-kenya"' in html
    assert html.count("story") >= 12  # every article, no cut


def test_more_stories_links_point_at_the_archive_anchors(app, db, built, web_clock):
    _, digest_id = built
    mark_sent(db, digest_id)
    world = get_list(db, "world")
    preview = preview_digest(db, app.extensions["digest"].config, world, "daily",
                             date(2025, 1, 21), now=web_clock.now, secret=WEB_SECRET)  # fmt: skip
    hrefs = re.findall(r'href="([^"]+)"[^>]*>\d+ more (\w+) stor', preview.html)
    assert hrefs, "the tiny budget should cut some articles"
    client = app.test_client()
    for href, _section in hrefs:
        path, _, anchor = href.removeprefix("http://127.0.0.1:8080").partition("#")
        assert path == "/archive/world/daily/2025-01-21/"
        assert f'id="{anchor}"' in client.get(path).get_data(as_text=True)


@pytest.mark.parametrize(
    "path",
    [
        "/archive/nope/",
        "/archive/world/hourly/2025-01-21/",
        "/archive/world/daily/2025-02-30/",
        "/archive/world/daily/21-01-2025/",
        "/archive/world/daily/2025-01-22/",
        "/archive/world/weekly/2025-01-21/",
    ],
)
def test_archive_unknown_things_are_404(app, db, built, path):
    mark_sent(db, built[1])
    response = app.test_client().get(path)
    assert response.status_code == 404
    assert "Traceback" not in response.get_data(as_text=True)


def test_archive_of_a_deleted_list_stays(app, db, built):
    mark_sent(db, built[1])
    db.execute("UPDATE lists SET deleted_at = '2025-01-22T00:00:00.000000+00:00'")
    client = app.test_client()
    assert client.get("/archive/world/daily/2025-01-21/").status_code == 200
    assert client.get("/subscribe/world").status_code == 404


# --- editor preview -----------------------------------------------------------------------------


def test_preview_pages_need_an_editor_login(app, world):
    client = app.test_client()
    for path in ("/editor/preview?list=world", "/editor/preview/frame?list=world"):
        response = client.get(path)
        assert response.status_code == 302 and response.location.startswith("/login?next=")
    assert client.post("/editor/preview/send", data={}).status_code == 400  # no CSRF


def test_preview_shows_exactly_the_message_that_will_be_sent(app, db, built, staff, web_clock):
    config, _ = built
    client = app.test_client()
    login(client)
    response = client.get("/editor/preview?list=world&frequency=daily&date=2025-01-21")
    html = response.get_data(as_text=True)
    from markupsafe import escape

    assert response.status_code == 200
    # The web shows the library's preview with inert links (tests/web/test_web_containment.py).
    expected = preview_digest(db, config, get_list(db, "world"), "daily", date(2025, 1, 21),
                              now=web_clock.now, secret=WEB_SECRET, inert=True)  # fmt: skip
    subject = expected.report.subject
    assert str(escape(subject)) in html
    frame = "/editor/preview/frame?list=world&amp;frequency=daily&amp;date=2025-01-21"
    assert f'<iframe class="w600" src="{frame}" sandbox' in html
    assert f'<iframe class="w375" src="{frame}" sandbox' in html
    # The plain-text part and the raw headers, as sent.
    assert escape(expected.text.strip()[:200]) in html
    head = expected.message.partition(b"\r\n\r\n")[0].decode("ascii").replace("\r\n", "\n")
    assert escape(head) in html
    # The size report against the configured budget.
    budget = app.extensions["digest"].config.digest.html_budget
    assert f"of {budget / 1000:.1f} KB budget" in html
    frame_response = client.get(frame.replace("&amp;", "&"))
    assert frame_response.status_code == 200
    assert frame_response.headers["Content-Security-Policy"] == MESSAGE_CSP
    assert frame_response.get_data(as_text=True) == expected.html


def test_preview_of_a_tag_set_and_of_a_subscriber(app, db, built, staff, newsroom):
    world = get_list(db, "world")
    newsroom.subscribe(world, "ken@example.com", tags=["Kenya"], name="Ken")
    client = app.test_client()
    login(client)
    html = client.get("/editor/preview?list=world&date=2025-01-21&tag=kenya").get_data(as_text=True)
    assert "topics kenya" in html and "to reader@example.com" in html
    frame = client.get("/editor/preview/frame?list=world&date=2025-01-21&tag=kenya")
    body = frame.get_data(as_text=True)
    assert "Kenya story" in body and "Haiti story" not in body
    html = client.get(
        "/editor/preview?list=world&date=2025-01-21&address=ken@example.com"
    ).get_data(as_text=True)
    assert "to ken@example.com" in html and "topics kenya" in html


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("list=nope", "no list &#39;nope&#39;"),
        ("list=world&date=2025-13-01", "date &#39;2025-13-01&#39;: expected a date as YYYY-MM-DD"),
        ("list=world&frequency=hourly", "frequency &#39;hourly&#39;: choose daily or weekly"),
        ("list=world&tag=mars", "list &#39;world&#39; has no topic &#39;mars&#39;"),
        ("list=world&address=zed@example.com", "zed@example.com is not subscribed"),
        ("list=world&address=a@example.com&tag=kenya", "not both"),
    ],
)
def test_preview_bad_choices_are_shown_on_the_page(app, world, staff, query, message):
    client = app.test_client()
    login(client)
    response = client.get(f"/editor/preview?{query}")
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)


def test_send_test_goes_through_smtp_with_test_in_the_subject(app, smtp, db, built, staff):
    client = app.test_client()
    csrf = login(client)
    form = {"csrf_token": csrf, "list": "world", "frequency": "daily", "date": "2025-01-21"}
    response = client.post("/editor/preview/send", data={**form, "to": "Ed <ed@example.org>"})
    assert response.status_code == 400
    assert "test address" in response.get_data(as_text=True)
    assert smtp.handler.received == []

    response = client.post("/editor/preview/send", data={**form, "to": "ed@example.org"})
    assert response.status_code == 200
    assert "Test sent to ed@example.org: 250" in response.get_data(as_text=True)
    [received] = smtp.handler.received
    assert received.rcpt_to == ["ed@example.org"]
    assert received.mail_from == "news@news.example.com"
    expected = preview_digest(db, app.extensions["digest"].config, get_list(db, "world"),
                              "daily", date(2025, 1, 21), now=app.extensions["digest"].clock(),
                              secret=WEB_SECRET, inert=True)  # fmt: skip
    sent, original = parse(received.data), parse(expected.message)
    assert sent["Subject"] == "[TEST] " + original["Subject"]
    assert sent["To"] == "ed@example.org"
    assert sent["Message-ID"] != original["Message-ID"]
    for name in ("From", "Date", "List-Unsubscribe", "List-Unsubscribe-Post"):
        assert sent[name] == original[name]
    assert sent.get_body(("html",)).get_content() == original.get_body(("html",)).get_content()
    assert sent.get_body(("plain",)).get_content() == original.get_body(("plain",)).get_content()


def test_send_test_without_csrf_is_refused(app, smtp, built, staff):
    client = app.test_client()
    login(client)
    response = client.post("/editor/preview/send", data={"list": "world", "to": "ed@example.org"})
    assert response.status_code == 400 and smtp.handler.received == []


def test_send_test_when_the_relay_refuses_shows_the_error(make_web_app, smtp, built, staff):
    smtp.handler.faults["ed@example.org"] = ["550 5.1.1 no such user"]
    app = make_web_app(f'[[smtp]]\nurl = "{smtp.url()}"\n')
    client = app.test_client()
    csrf = login(client)
    response = client.post(
        "/editor/preview/send",
        data={"csrf_token": csrf, "list": "world", "date": "2025-01-21", "to": "ed@example.org"},
    )
    assert response.status_code == 502
    assert "not sent: message to ed@example.org not accepted: 550 5.1.1 no such user" in (
        response.get_data(as_text=True)
    )


def _message(subject: str) -> bytes:
    from digest.issues.template import build_template

    return build_template(
        [("From", "Désk <desk@news.example.com>"), ("Subject", subject), ("Date", "x")],
        "text body\n",
        "<p>html body</p>",
        boundary_seed="s",
        key="0123456789abcdef",
    )


@pytest.mark.parametrize(
    "subject",
    [
        "Plain subject",
        "Ελληνικά και 中文 — a long subject that has to be folded over several lines " * 2,
        "=?utf-8?q?looks_encoded?= but is not",
    ],
)
def test_as_test_copy_rebuilds_the_subject_and_keeps_the_rest(subject):
    original = _message(subject)
    data, message_id = as_test_copy(original, "ed@example.org")
    sent, before = parse(data), parse(original)
    assert sent["Subject"] == "[TEST] " + before["Subject"]
    assert sent["To"] == "ed@example.org" and sent["Message-ID"] == message_id
    assert sent["From"] == before["From"]
    assert sent.get_body(("html",)).get_content() == before.get_body(("html",)).get_content()
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    assert data.partition(b"\r\n\r\n")[2] == original.partition(b"\r\n\r\n")[2]


def test_as_test_copy_cannot_inject_headers():
    data, _ = as_test_copy(_message("hi"), "ed@example.org\r\nBcc: victim@example.com")
    assert b"\r\nBcc:" not in data.partition(b"\r\n\r\n")[0]


# --- admin --------------------------------------------------------------------------------------


def test_admin_pages_need_an_admin(app, staff, world):
    client = app.test_client()
    assert client.get("/admin/subscribers").location.startswith("/login?next=")
    login(client, "ed")
    for path in ("/admin/subscribers", "/admin/import", "/admin/lists/world/export.csv"):
        assert client.get(path).status_code == 403


def test_admin_search_by_address_or_name_paginated(app, staff, world, newsroom):
    for i in range(53):
        newsroom.subscribe(world, f"p{i:02d}@example.com", name=f"Person {i:02d}")
    newsroom.subscribe(world, "zoe@other.example", name="Zoë Quill", status="pending")
    client = app.test_client()
    login(client, "ada")
    page1 = client.get("/admin/subscribers?q=example.com").get_data(as_text=True)
    assert page1.count("@example.com</a><br>") == 50
    assert "p00@example.com" in page1 and "p50@example.com" not in page1
    assert "Next →" in page1
    page2 = client.get("/admin/subscribers?q=example.com&page=2").get_data(as_text=True)
    assert "p52@example.com" in page2 and "Next →" not in page2 and "← Previous" in page2
    by_name = client.get("/admin/subscribers?q=quill").get_data(as_text=True)
    assert "zoe@other.example" in by_name and "p01@example.com" not in by_name
    pending = client.get("/admin/subscribers?list=world&status=pending").get_data(as_text=True)
    assert "zoe@other.example" in pending and "p01@example.com" not in pending
    # LIKE wildcards in the query are literal.
    assert "No subscriptions match." in client.get("/admin/subscribers?q=%25").get_data(
        as_text=True
    )


def test_admin_add_and_unsubscribe_record_web_events(app, staff, db, world, newsroom):
    client = app.test_client()
    csrf = login(client, "ada")
    form = {"csrf_token": csrf, "list": "world", "email": "amy@example.com", "name": "Amy",
            "tags": "Kenya", "frequency": "weekly", "confirmed": "yes"}  # fmt: skip
    # The first post shows what will happen and changes nothing.
    page = client.post("/admin/subscribers/add", data=form)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Add amy@example.com?" in html
    assert "active: the person agreed to receive it" in html and "Kenya" in html
    assert subscription(db, "amy@example.com") is None
    response = client.post("/admin/subscribers/add", data={**form, "confirm": "yes"})
    assert response.status_code == 303
    page = client.get(response.location).get_data(as_text=True)
    assert "amy@example.com is active on World Desk (weekly)." in page
    assert events(db, "amy@example.com") == [
        ("world", None, "active", "web", "added by admin ada on the web")
    ]
    client.post(
        "/admin/subscribers/add",
        data={"csrf_token": csrf, "list": "world", "email": "pat@example.com", "confirm": "yes"},
    )
    assert subscription(db, "pat@example.com")["status"] == "pending"

    # Unsubscribing asks first (GET or a post without confirm), then records the reason.
    ask = client.get("/admin/subscribers/unsubscribe?email=amy@example.com&list=world")
    assert "Unsubscribe amy@example.com?" in ask.get_data(as_text=True)
    client.post("/admin/subscribers/unsubscribe",
                data={"csrf_token": csrf, "email": "amy@example.com", "list": "world"})  # fmt: skip
    assert subscription(db, "amy@example.com")["status"] == "active"
    response = client.post(
        "/admin/subscribers/unsubscribe",
        data={"csrf_token": csrf, "email": "amy@example.com", "list": "world", "confirm": "yes",
              "reason": "asked by email"},
    )  # fmt: skip
    assert "amy@example.com unsubscribed from world." in client.get(response.location).get_data(
        as_text=True
    )
    assert events(db, "amy@example.com")[-1] == (
        "world", "active", "unsubscribed", "web", "unsubscribed by admin ada on the web: asked by email",
    )  # fmt: skip

    # An unsubscribed address is not re-added by "add": the page offers the re-activation
    # form (with a reason), never a command-line option.
    for data in ({**form}, {**form, "confirm": "yes"}):
        refused = client.post("/admin/subscribers/add", data=data)
        html = refused.get_data(as_text=True)
        assert refused.status_code == 409
        assert "Re-activate amy@example.com?" in html
        assert "amy@example.com is unsubscribed from list &#39;world&#39;" in html
        assert "--force" not in html and "--reason" not in html
    assert subscription(db, "amy@example.com")["status"] == "unsubscribed"
    no_reason = client.post("/admin/subscribers/reactivate", data={
        "csrf_token": csrf, "list": "world", "email": "amy@example.com", "reason": "  "})  # fmt: skip
    assert no_reason.status_code == 400
    assert "Give the reason" in no_reason.get_data(as_text=True)
    assert subscription(db, "amy@example.com")["status"] == "unsubscribed"
    done = client.post("/admin/subscribers/reactivate", data={
        "csrf_token": csrf, "list": "world", "email": "amy@example.com", "tags": "Kenya",
        "frequency": "weekly", "reason": "asked by phone on 20 January"})  # fmt: skip
    assert done.status_code == 303
    assert subscription(db, "amy@example.com")["status"] == "active"
    assert events(db, "amy@example.com")[-1] == (
        "world", "unsubscribed", "active", "web",
        "asked by phone on 20 January (re-activated by admin ada on the web)",
    )  # fmt: skip
    # Without CSRF nothing happens.
    assert (
        client.post(
            "/admin/subscribers/add",
            data={"list": "world", "email": "x@example.com", "confirm": "yes"},
        ).status_code
        == 400
    )
    assert subscription(db, "x@example.com") is None


CSV = (
    "email,name,tags,frequency\n"
    "ann@example.com,Ann,Kenya,daily\n"
    "not-an-address,Bob,,daily\n"
    "cat@example.com,Cat,Mars,weekly\n"
    "dan@example.com,Dan,,weekly\n"
)


def upload(client, csrf, data: bytes, name="people.csv", **extra):
    import io

    return client.post(
        "/admin/import",
        data={"csrf_token": csrf, "list": "world", "file": (io.BytesIO(data), name), **extra},
        content_type="multipart/form-data",
    )


def test_admin_import_dry_run_then_apply(app, staff, db, world):
    client = app.test_client()
    csrf = login(client, "ada")
    response = upload(client, csrf, CSV.encode())
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "people.csv: line 3: rejected: invalid address &#39;not-an-address&#39;" in html
    assert "people.csv: line 4: rejected: tag &#39;mars&#39; is not covered by list" in html
    assert (
        "dry run, nothing written: people.csv -&gt; world: 2 would be added, 0 would be"
        " activated, 0 would be updated, 0 unchanged, 0 skipped, 2 rejected" in html
    )
    assert db.execute("SELECT count(*) FROM subscribers").fetchone()[0] == 0
    upload_id = re.search(r'name="upload" value="([^"]+)"', html).group(1)

    applied = client.post("/admin/import/apply", data={"csrf_token": csrf, "upload": upload_id})
    html = applied.get_data(as_text=True)
    assert applied.status_code == 200
    assert "people.csv -&gt; world: 2 added" in html and "dry run, nothing written" not in html
    assert subscription(db, "ann@example.com")["status"] == "pending"
    assert subscription(db, "dan@example.com")["frequency"] == "weekly"
    assert events(db, "ann@example.com") == [
        ("world", None, "pending", "web", "web from people.csv")
    ]
    # Applying the same upload twice is refused; nothing is written twice.
    again = client.post("/admin/import/apply", data={"csrf_token": csrf, "upload": upload_id})
    assert again.status_code == 400
    assert "no longer waiting to be applied" in again.get_data(as_text=True)
    assert len(events(db, "ann@example.com")) == 1


def test_admin_import_confirmed_cancel_and_bad_files(app, staff, db, world):
    client = app.test_client()
    csrf = login(client, "ada")
    html = upload(client, csrf, CSV.encode(), confirmed="yes").get_data(as_text=True)
    upload_id = re.search(r'name="upload" value="([^"]+)"', html).group(1)
    assert "as confirmed" in html
    client.post("/admin/import/cancel", data={"csrf_token": csrf})
    refused = client.post("/admin/import/apply", data={"csrf_token": csrf, "upload": upload_id})
    assert refused.status_code == 400
    assert db.execute("SELECT count(*) FROM subscribers").fetchone()[0] == 0

    bad = upload(client, csrf, b"\xff\xfebinary\x00data", name="../../etc/evil.csv")
    text = bad.get_data(as_text=True)
    assert bad.status_code == 400
    assert "evil.csv: not a CSV text file (binary data at byte 8); nothing imported" in text
    assert "/tmp" not in text  # the temporary file's path is never shown
    no_header = upload(client, csrf, b"ann@example.com\n")
    assert "line 1 must be a header" in no_header.get_data(as_text=True)
    missing = client.post(
        "/admin/import", data={"csrf_token": csrf, "list": "world"},
        content_type="multipart/form-data",
    )  # fmt: skip
    assert missing.status_code == 400 and "choose a CSV file" in missing.get_data(as_text=True)

    html = upload(client, csrf, CSV.encode(), confirmed="yes").get_data(as_text=True)
    upload_id = re.search(r'name="upload" value="([^"]+)"', html).group(1)
    client.post("/admin/import/apply", data={"csrf_token": csrf, "upload": upload_id})
    assert subscription(db, "ann@example.com")["status"] == "active"


def test_admin_export_downloads_the_import_format(app, staff, db, world, newsroom):
    newsroom.subscribe(world, "ann@example.com", name="Ann", tags=["Kenya"])
    newsroom.subscribe(world, "gone@example.com", status="unsubscribed")
    client = app.test_client()
    login(client, "ada")
    response = client.get("/admin/lists/world/export.csv")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == 'attachment; filename="world.csv"'
    # Every subscription with its state, so that importing the file restores it.
    at = "2025-01-01T00:00:00.000000+00:00"
    assert response.get_data(as_text=True) == (
        "email,name,tags,frequency,status,created_at,confirmed_at\n"
        f"ann@example.com,Ann,Kenya,daily,active,{at},{at}\n"
        f"gone@example.com,,,daily,unsubscribed,{at},{at}\n"
    )
    assert client.get("/admin/lists/nope/export.csv").status_code == 404


def test_admin_overview_links_to_the_subscriber_pages(app, staff, world):
    client = app.test_client()
    login(client, "ada")
    html = client.get("/admin/").get_data(as_text=True)
    assert 'href="/admin/subscribers?list=world"' in html
    assert 'href="/admin/lists/world/export.csv"' in html
    assert 'href="/admin/import"' in html


def test_the_store_is_untouched_by_get_requests(app, staff, db, built, web_clock, newsroom):
    """Link scanners fetch every URL: no GET changes a subscription."""
    world = get_list(db, "world")
    sid = newsroom.subscribe(world, "pat@example.com", status="pending")
    client = app.test_client()
    for purpose, prefix in (("confirm", "c"), ("unsubscribe", "u"), ("preferences", "p")):
        client.get(f"/{prefix}/{token(purpose, sid, world.id, web_clock.now)}")
    assert (
        subscription(open_db(app.extensions["digest"].db_path, create=True), "pat@example.com")[
            "status"
        ]
        == "pending"
    )
