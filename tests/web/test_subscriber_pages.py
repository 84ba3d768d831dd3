"""The public subscriber pages of issue 15: an expired confirmation link offers a new email, a
confirmation applies the person's new choices and sends the list's welcome email, the
unsubscribe page offers "fewer emails" and "resubscribe", the preferences page offers only the
list's frequencies and lets the person download and delete their data. Flask's test client on
a real SQLite file; mail goes to a real aiosmtpd server on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
import json
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from conftest import WEB_SECRET

from digest.audience.lists import get_list
from digest.audience.subscriptions import edit_list
from digest.audience.suppressions import erased_key, get_suppression, is_suppressed
from digest.delivery import ledger
from digest.delivery.notices import request_subscription
from digest.tokens import make_token


def csrf_from(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF field in the page"
    return m.group(1)


def parse(data: bytes):
    return email.message_from_bytes(data, policy=email.policy.default)


def wait_for(condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def row(db, address, slug="world"):
    return next(
        db.query(
            "SELECT s.* FROM subscriptions s JOIN subscribers p ON p.id = s.subscriber_id"
            " JOIN lists l ON l.id = s.list_id WHERE p.identity = lower(?) AND l.slug = ?",
            [address, slug],
        ),
        None,
    )


@pytest.fixture
def world(newsroom):
    mlist = newsroom.add_list(tags=("Haiti", "Kenya"), title="World Desk")
    # The pages offer a topic once it has an article (listtags.offered_tags).
    for tag in mlist.tags:
        newsroom.add_article(f"{tag} story", datetime(2025, 1, 20, tzinfo=UTC), tags=[tag])
    return mlist


@pytest.fixture
def smtp(smtp_server):
    return smtp_server()


@pytest.fixture
def welcome_dir(tmp_path):
    folder = tmp_path / "my-templates" / "email" / "welcome"
    folder.mkdir(parents=True)
    (folder / "world.txt").write_text(
        '{% set subject = "Welcome aboard, " ~ (name or "reader") %}'
        "Hello {{ name or email }}: you get {{ list_title }} {{ frequency }}"
        " ({{ topics|join(', ') or 'every topic' }}).\n"
        "Preferences: {{ preferences_url }}\nUnsubscribe: {{ unsubscribe_url }}\n",
        encoding="utf-8",
    )
    (folder / "world.html").write_text(
        '<p>Hello {{ name or email }}</p><p><a href="{{ preferences_url }}">Preferences</a></p>',
        encoding="utf-8",
    )
    return tmp_path / "my-templates"


@pytest.fixture
def app(make_web_app, smtp, welcome_dir):
    return make_web_app(f'templates_dir = "{welcome_dir}"\n[[smtp]]\nurl = "{smtp.url()}"\n')


def token(purpose, sid, list_id, when):
    return make_token(WEB_SECRET, purpose, sid, list_id, now=when)


def post_subscribe(client, slug="world", **form):
    csrf = csrf_from(client.get(f"/subscribe/{slug}").get_data(as_text=True))
    data = {"csrf_token": csrf, "frequency": "daily", "tag": ["haiti", "kenya"], **form}
    return client.post(f"/subscribe/{slug}", data=data)


def link_in(message) -> str:
    return re.search(r"/c/[A-Za-z0-9_-]+", message.get_body(("plain",)).get_content()).group(0)


# --- confirmation links: expiry, new choices, welcome ---------------------------------------------


def test_an_expired_confirmation_link_offers_a_new_email(app, smtp, db, world, web_clock):
    client = app.test_client()
    post_subscribe(client, email="ann@example.com", tag=["kenya"], frequency="weekly")
    wait_for(lambda: len(smtp.handler.received) == 1)
    old_link = link_in(parse(smtp.handler.received[0].data))
    web_clock.advance(days=7, minutes=1)
    page = client.get(old_link)
    html = page.get_data(as_text=True)
    assert page.status_code == 400
    assert "this confirm link has expired (issued 2025-01-21)" in html
    assert "Send me a new link" in html
    # The old link confirms nothing, even by POST without asking for a new one.
    client.post(old_link, data={"csrf_token": csrf_from(html)})
    assert row(db, "ann@example.com")["status"] == "pending"
    sent = client.post(old_link, data={"csrf_token": csrf_from(html), "action": "resend"})
    assert sent.status_code == 200 and "Check your inbox" in sent.get_data(as_text=True)
    wait_for(lambda: len(smtp.handler.received) == 2)
    new_link = link_in(parse(smtp.handler.received[1].data))
    assert new_link != old_link
    page = client.get(new_link).get_data(as_text=True)
    client.post(new_link, data={"csrf_token": csrf_from(page)})
    sub = row(db, "ann@example.com")
    # Confirmed with the choices the person made, which the new link kept.
    assert (sub["status"], sub["frequency"], sub["tags"]) == ("active", "weekly", '["kenya"]')


def test_confirming_sends_the_lists_welcome_email_once(app, smtp, db, world):
    client = app.test_client()
    post_subscribe(client, email="ann@example.com", name="Ann", tag=["kenya"])
    wait_for(lambda: len(smtp.handler.received) == 1)
    link = link_in(parse(smtp.handler.received[0].data))
    page = client.get(link).get_data(as_text=True)
    done = client.post(link, data={"csrf_token": csrf_from(page)}).get_data(as_text=True)
    assert "You're subscribed" in done and "A welcome email is on its way." in done
    wait_for(lambda: len(smtp.handler.received) == 2)
    welcome = parse(smtp.handler.received[1].data)
    assert welcome["Subject"] == "Welcome aboard, Ann"
    assert welcome["To"].addresses[0].addr_spec == "ann@example.com"
    text = welcome.get_body(("plain",)).get_content()
    assert "you get World Desk daily (Kenya)" in text
    assert re.search(r"Preferences: http://127\.0\.0\.1:8080/p/[A-Za-z0-9_-]+", text)
    assert welcome["List-Unsubscribe"].startswith("<http://127.0.0.1:8080/u/")
    assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "Preferences</a>" in welcome.get_body(("html",)).get_content()
    # Confirming again sends nothing more.
    client.post(link, data={"csrf_token": csrf_from(page)})
    time.sleep(0.3)
    assert len(smtp.handler.received) == 2


def test_a_list_without_a_welcome_template_sends_none(make_web_app, smtp, db, newsroom):
    newsroom.add_list("arts", tags=(), title="Arts")
    app = make_web_app(f'[[smtp]]\nurl = "{smtp.url()}"\n')
    client = app.test_client()
    post_subscribe(client, "arts", email="ann@example.com", tag=[])
    wait_for(lambda: len(smtp.handler.received) == 1)
    link = link_in(parse(smtp.handler.received[0].data))
    page = client.get(link).get_data(as_text=True)
    done = client.post(link, data={"csrf_token": csrf_from(page)}).get_data(as_text=True)
    assert "welcome" not in done
    time.sleep(0.3)
    assert len(smtp.handler.received) == 1
    assert db.execute("SELECT count(*) FROM notices WHERE kind = 'welcome'").fetchone()[0] == 0


def test_a_returning_persons_new_choices_win_only_with_their_link(app, smtp, db, world, newsroom):
    newsroom.subscribe(world, "ann@example.com", tags=["haiti"], frequency="daily", name="Ann")
    client = app.test_client()
    # A stranger (or Ann) asks for other choices: nothing changes yet.
    post_subscribe(client, email="ANN@example.com", name="Ann B", tag=["kenya"], frequency="weekly")
    wait_for(lambda: len(smtp.handler.received) == 1)
    assert (row(db, "ann@example.com")["frequency"], row(db, "ann@example.com")["tags"]) == (
        "daily", '["haiti"]',
    )  # fmt: skip
    link = link_in(parse(smtp.handler.received[0].data))
    page = client.get(link).get_data(as_text=True)
    assert "With your new choices: weekly, Kenya." in page
    done = client.post(link, data={"csrf_token": csrf_from(page)}).get_data(as_text=True)
    assert "Your new choices are saved: weekly, Kenya." in done
    sub = row(db, "ann@example.com")
    assert (sub["status"], sub["frequency"], sub["tags"]) == ("active", "weekly", '["kenya"]')
    assert db.execute("SELECT name FROM subscribers").fetchone()[0] == "Ann B"
    assert (
        db.execute(
            "SELECT reason FROM status_events WHERE source = 'web' ORDER BY id DESC LIMIT 1"
        ).fetchone()[0]
        == "choices from the subscribe form, confirmed by the person: weekly, Kenya"
    )
    # No welcome: Ann was subscribed already.
    time.sleep(0.3)
    assert len(smtp.handler.received) == 1


# --- unsubscribe: fewer emails, resubscribe --------------------------------------------------------


def test_the_unsubscribe_page_offers_weekly_instead(app, db, world, newsroom, web_clock):
    sid = newsroom.subscribe(world, "ann@example.com", frequency="daily")
    client = app.test_client()
    url = f"/u/{token('unsubscribe', sid, world.id, web_clock.now)}"
    page = client.get(url).get_data(as_text=True)
    assert "Fewer emails: once a week instead" in page
    done = client.post(url, data={"csrf_token": csrf_from(page), "action": "weekly"})
    assert "now gets <strong>World Desk</strong> once a week" in done.get_data(as_text=True)
    sub = row(db, "ann@example.com")
    assert (sub["status"], sub["frequency"]) == ("active", "weekly")
    # Already weekly: no such offer.
    assert "Fewer emails" not in client.get(url).get_data(as_text=True)


def test_after_unsubscribing_the_page_offers_resubscribe_with_a_new_confirmation(
    app, smtp, db, world, newsroom, web_clock
):
    sid = newsroom.subscribe(world, "ann@example.com", frequency="daily", tags=["kenya"])
    client = app.test_client()
    url = f"/u/{token('unsubscribe', sid, world.id, web_clock.now)}"
    # The one-click (RFC 8058) POST of a mail client.
    assert client.post(url, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert row(db, "ann@example.com")["status"] == "unsubscribed"
    web_clock.advance(minutes=5)
    page = client.get(url).get_data(as_text=True)
    assert "Changed your mind?" in page and "Fewer emails: resubscribe, once a week" in page
    done = client.post(url, data={"csrf_token": csrf_from(page), "action": "resubscribe_weekly"})
    assert "Check your inbox" in done.get_data(as_text=True)
    # Nothing changes until the person confirms...
    assert row(db, "ann@example.com")["status"] == "unsubscribed"
    wait_for(lambda: len(smtp.handler.received) == 1)
    link = link_in(parse(smtp.handler.received[0].data))
    confirm = client.get(link).get_data(as_text=True)
    client.post(link, data={"csrf_token": csrf_from(confirm)})
    sub = row(db, "ann@example.com")
    # ... then the subscription is back, weekly, with the same topics.
    assert (sub["status"], sub["frequency"], sub["tags"]) == ("active", "weekly", '["kenya"]')


def test_resubscribe_never_mails_a_bounced_address(app, smtp, db, world, newsroom, web_clock):
    sid = newsroom.subscribe(world, "gone@example.com", status="bounced")
    client = app.test_client()
    url = f"/u/{token('unsubscribe', sid, world.id, web_clock.now)}"
    page = client.get(url).get_data(as_text=True)
    assert "Resubscribe" not in page
    csrf = csrf_from(client.get("/subscribe/world").get_data(as_text=True))
    client.post(url, data={"csrf_token": csrf, "action": "resubscribe"})
    time.sleep(0.3)
    assert smtp.handler.received == [] and row(db, "gone@example.com")["status"] == "bounced"


# --- what a list offers ------------------------------------------------------------------------


def test_forms_offer_only_the_lists_frequencies(app, db, world, newsroom, web_clock):
    sid = newsroom.subscribe(world, "ann@example.com", frequency="daily")
    edited = edit_list(db, "world", frequencies="weekly", now=web_clock.now)
    assert edited.moved == {"weekly": 1}
    client = app.test_client()
    form = client.get("/subscribe/world").get_data(as_text=True)
    assert 'type="hidden" name="frequency" value="weekly"' in form and 'value="daily"' not in form
    refused = post_subscribe(client, email="bob@example.org", frequency="daily")
    assert refused.status_code == 400
    assert "choose how often: weekly" in refused.get_data(as_text=True)
    prefs_url = f"/p/{token('preferences', sid, world.id, web_clock.now)}"
    page = client.get(prefs_url).get_data(as_text=True)
    assert 'value="daily"' not in page
    bad = client.post(prefs_url, data={"csrf_token": csrf_from(page), "frequency": "daily",
                                       "tag": ["haiti"]})  # fmt: skip
    assert bad.status_code == 400 and row(db, "ann@example.com")["frequency"] == "weekly"
    # A default other than daily: the form starts there.
    edit_list(
        db, "world", frequencies="daily,weekly", default_frequency="weekly", now=web_clock.now
    )
    assert 'value="weekly" checked' in client.get("/subscribe/world").get_data(as_text=True)
    assert get_list(db, "world").default_frequency == "weekly"


# --- data rights -------------------------------------------------------------------------------


@pytest.fixture
def reader(db, world, newsletter):
    """A subscriber of list "news" with one digest sent to them and one queued: (subscriber id,
    list id)."""
    newsletter.make(1, slug="news", label="2025-01-20")
    db.execute("UPDATE deliveries SET status = 'sent', sent_at = created_at, reply = '250 ok'"
               " WHERE id = 1")  # fmt: skip
    newsletter.make(1, slug="news", label="2025-01-21")
    sid = db.execute("SELECT id FROM subscribers WHERE email = 'p1@example.com'").fetchone()[0]
    return sid, get_list(db, "news").id


def test_a_subscriber_downloads_what_is_stored_about_them(app, db, reader, web_clock):
    sid, list_id = reader
    client = app.test_client()
    url = f"/p/{token('preferences', sid, list_id, web_clock.now)}"
    page = client.get(url).get_data(as_text=True)
    assert "Download what we store about you" in page and "Delete everything" in page
    response = client.get(url + "/data.json")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="my-subscription-data.json"'
    )
    assert response.headers["Cache-Control"] == "no-store"
    data = json.loads(response.get_data(as_text=True))
    assert (data["email"], data["name"]) == ("p1@example.com", "Person 1")
    assert [(s["list"], s["status"], s["frequency"]) for s in data["subscriptions"]] == [
        ("news", "active", "daily")
    ]
    assert data["subscriptions"][0]["created_at"] and data["subscriptions"][0]["confirmed_at"]
    # Subscribed, then the second digest's call updated the topics: no status change.
    assert [e["new_status"] for e in data["history"]] == ["active"]
    assert [(d["issue"], d["status"]) for d in data["deliveries"]] == [
        ("2025-01-20", "sent"), ("2025-01-21", "queued"),
    ]  # fmt: skip
    assert data["deliveries"][0]["sent_at"] and data["deliveries"][0]["queued_at"]
    # Another purpose's token, or a forged one, gets nothing.
    other = token("unsubscribe", sid, list_id, web_clock.now)
    assert client.get(f"/p/{other}/data.json").status_code == 400


def test_deleting_needs_the_token_a_post_and_the_confirmation(app, db, world, reader, web_clock):
    from digest.feedback import events
    from digest.feedback.policy import BounceKind

    sid, list_id = reader
    # A soft bounce reported about the address in another letter case, quoting it.
    events.record(db, events.NewEvent(
        email="P1@Example.com", subscriber_id=None, delivery_id=None, kind=BounceKind.SOFT,
        source="bounce-mailbox", status="4.2.2", diagnostic="P1@Example.com: mailbox full",
        identified_by=events.IdentifiedBy.ADDRESS, message_key=None, event_key="e1",
        occurred_at=web_clock.now, received_at=web_clock.now,
    ))  # fmt: skip
    client = app.test_client()
    url = f"/p/{token('preferences', sid, list_id, web_clock.now)}/delete"
    page = client.get(url).get_data(as_text=True)
    assert "Delete everything we store about you?" in page
    assert db.execute("SELECT count(*) FROM subscribers").fetchone()[0] == 1  # GET: nothing
    no_csrf = client.post(url, data={"confirm": "yes"})
    assert no_csrf.status_code == 400
    unticked = client.post(url, data={"csrf_token": csrf_from(page)})
    assert unticked.status_code == 400 and "Tick the box" in unticked.get_data(as_text=True)
    forged = make_token(b"not the secret", "preferences", sid, list_id, now=web_clock.now)
    assert client.post(f"/p/{forged}/delete", data={"csrf_token": csrf_from(page),
                                                    "confirm": "yes"}).status_code == 400  # fmt: skip
    assert db.execute("SELECT count(*) FROM subscribers").fetchone()[0] == 1

    done = client.post(url, data={"csrf_token": csrf_from(page), "confirm": "yes"})
    assert done.status_code == 200 and "Your data is deleted" in done.get_data(as_text=True)
    # Nothing about the person stays but a hash of the address on the suppression list.
    assert db.execute("SELECT count(*) FROM subscribers").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM subscriptions").fetchone()[0] == 0
    assert (
        db.execute(
            "SELECT count(*) FROM status_events WHERE identity = 'p1@example.com'"
        ).fetchone()[0]
        == 0
    )
    assert db.execute("SELECT identity, email FROM suppressions").fetchall() == [
        (erased_key("p1@example.com"), None)
    ]
    dump = "\n".join(db.conn.iterdump())
    assert "p1@example.com" not in dump.lower() and "Person 1" not in dump
    # The bounce report stays for the counts, without the address or its words.
    assert db.execute("SELECT kind, email, diagnostic FROM bounce_events").fetchall() == [
        ("soft", "", "")
    ]
    assert db.execute("SELECT status, email FROM deliveries ORDER BY id").fetchall() == [
        ("sent", ""), ("skipped", ""),
    ]  # fmt: skip
    # ... which still stops every path from mailing the address.
    assert is_suppressed(db, "P1@example.com")
    assert get_suppression(db, "p1@example.com").erased
    result = request_subscription(db, app.extensions["digest"].config, world, "p1@example.com",
                                  now=web_clock.now)  # fmt: skip
    assert not result.queued
    # The link now leads to a page saying so; deleting again changes nothing.
    again = client.post(url, data={"csrf_token": csrf_from(page), "confirm": "yes"})
    assert "Your data is deleted" in again.get_data(as_text=True)
    assert ledger.owed(db).queued == 0


def test_erased_addresses_show_as_hashes_and_stay_out_of_imports(run, db_path, tmp_path):
    from digest.delivery.rights import erase
    from digest.store import open_db

    run("lists", "create", "world", "--title", "W", "--from", "w@news.example.com")
    run("subscribers", "add", "ann@example.com", "--list", "world", "--confirmed")
    db = open_db(db_path)
    sid = db.execute("SELECT id FROM subscribers").fetchone()[0]
    from datetime import UTC, datetime

    erase(db, sid, now=datetime(2025, 1, 21, tzinfo=UTC))
    listing = run("suppressed").output
    assert listing.startswith("(erased; kept as sha256:") and "ann@example.com" not in listing
    r = run("subscribers", "show", "ANN@example.com")
    assert "personal data deleted at the person's request" in r.output
    (tmp_path / "p.csv").write_text("email\nAnn@Example.com\n", encoding="utf-8")
    r = run("subscribers", "import", "p.csv", "--list", "world", "--confirmed")
    assert "1 skipped" in r.output and "suppression list" in r.output
    r = run("subscribers", "add", "ann@example.com", "--list", "world", "--confirmed", "--force",
            "--reason", "asked in person to be subscribed again")  # fmt: skip
    assert r.exit_code == 0 and "is active" in r.output
    assert run("suppressed").output == "no suppressed addresses\n"


def test_expired_token_page_for_a_removed_subscriber_offers_the_form(app, db, world, web_clock):
    old = token("confirm", 999, world.id, web_clock.now - timedelta(days=8))
    page = app.test_client().get(f"/c/{old}").get_data(as_text=True)
    assert "This link has expired" in page and "/subscribe/world" in page
    assert "Send me a new link" not in page
