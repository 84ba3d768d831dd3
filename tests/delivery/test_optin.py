"""Asking pending people (issue 15, bullet 2): every admin path that adds someone as pending
sends the confirmation email (through the notices outbox), `--no-email` leaves it to
`digest subscribers remind`, reminders are capped, old pending subscriptions expire, and the
confirmation link's 7 days end with an offer of a new email. Real SQLite files, the real CLI
and a real SMTP server (aiosmtpd on 127.0.0.1)."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime, timedelta

import pytest
from conftest import WEB_SECRET

from digest.audience.csvfiles import parse_csv
from digest.audience.lists import create_list, get_list
from digest.audience.subscriptions import add_subscription, confirm_subscription
from digest.config import load_config
from digest.delivery import optin
from digest.delivery.notices import flush_notices
from digest.scheduler.tick import tick

NOW = datetime(2025, 1, 21, 7, 0, tzinfo=UTC)


@pytest.fixture
def smtp(smtp_server):
    return smtp_server()


@pytest.fixture
def cli(run, smtp, monkeypatch):
    """The CLI with the test relay configured (as DIGEST_SMTP_URL would in production)."""
    monkeypatch.setenv("DIGEST_SMTP_URL", smtp.url())
    result = run("lists", "create", "world", "--title", "World Desk", "--from",
                 "World Desk <news@news.example.com>", "--tags", "Haiti,Kenya")  # fmt: skip
    assert result.exit_code == 0, result.output
    return run


def messages(smtp) -> list[email.message.EmailMessage]:
    return [
        email.message_from_bytes(r.data, policy=email.policy.default)  # type: ignore[misc]
        for r in smtp.handler.received
    ]


def recipients(smtp) -> list[str]:
    return sorted(smtp.handler.recipients())


def confirm_path(message) -> str:
    return re.search(r"/c/[A-Za-z0-9_-]+", message.get_body(("plain",)).get_content()).group(0)


def test_subscribers_add_pending_sends_one_confirmation(cli, smtp, db):
    r = cli("subscribers", "add", "Ann@Example.com", "--list", "world", "--name", "Ann")
    assert r.exit_code == 0, r.output
    assert r.output.splitlines() == [
        "Ann@example.com is pending on list world (daily)",
        "confirmation email: 1 sent",
    ]
    assert recipients(smtp) == ["Ann@example.com"]
    [message] = messages(smtp)
    assert message["Subject"] == "Confirm your subscription to World Desk"
    # Adding the same person again (any spelling) while pending asks nobody again...
    r = cli("subscribers", "add", "ann@example.com", "--list", "world", "--tags", "kenya")
    assert r.output == "Ann@example.com is pending on list world (daily)\n"
    # ... and an admin who has the person's consent sends no confirmation at all.
    r = cli("subscribers", "add", "bob@example.org", "--list", "world", "--confirmed")
    assert r.output == "bob@example.org is active on list world (daily)\n"
    assert recipients(smtp) == ["Ann@example.com"]
    assert db.execute("SELECT asked_at, reminders FROM subscriptions WHERE status = 'pending'"
                      ).fetchall() == [(db.execute("SELECT created_at FROM notices"
                                                   ).fetchone()[0], 0)]  # fmt: skip


def test_a_pending_csv_import_of_three_sends_one_confirmation_each(cli, smtp, tmp_path):
    (tmp_path / "people.csv").write_text(
        "email,name\nann@example.com,Ann\nBob@Example.org,Bob\ncy@example.net,\n",
        encoding="utf-8",
    )
    r = cli("subscribers", "import", "people.csv", "--list", "world")
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[-2:] == [
        "people.csv -> world: 3 added, 0 activated, 0 updated, 0 unchanged, 0 skipped, 0 rejected",
        "confirmation emails: 3 sent",
    ]
    assert recipients(smtp) == ["Bob@example.org", "ann@example.com", "cy@example.net"]
    assert len(smtp.handler.received) == 3
    # Importing the file again changes nothing and asks nobody again.
    r = cli("subscribers", "import", "people.csv", "--list", "world")
    assert "0 added, 0 activated, 0 updated, 3 unchanged" in r.output
    assert len(smtp.handler.received) == 3
    # A dry run never sends anything.
    (tmp_path / "more.csv").write_text("email\nnew@example.com\n", encoding="utf-8")
    r = cli("subscribers", "import", "more.csv", "--list", "world", "--dry-run")
    assert "1 would be added" in r.output and len(smtp.handler.received) == 3


def test_remind_resends_only_to_those_still_pending_at_most_max_reminders(cli, smtp, db, tmp_path):
    (tmp_path / "digest.toml").write_text("[subscribers]\nmax_reminders = 1\n", encoding="utf-8")
    (tmp_path / "people.csv").write_text(
        "email\nann@example.com\nbob@example.org\ncy@example.net\n", encoding="utf-8"
    )
    assert cli("subscribers", "import", "people.csv", "--list", "world").exit_code == 0
    assert len(smtp.handler.received) == 3
    assert cli("subscribers", "confirm", "BOB@example.org", "--list", "world").exit_code == 0

    r = cli("subscribers", "remind", "--list", "world", "--older-than", "3d")
    assert r.output.splitlines() == [
        "world: 0 asked for the first time, 0 reminded, 0 at the limit of 1 reminders, "
        "2 asked too recently"
    ]
    r = cli("subscribers", "remind", "--list", "world")
    assert r.output.splitlines() == [
        "world: 0 asked for the first time, 2 reminded, 0 at the limit of 1 reminders, "
        "0 asked too recently",
        "emails: 2 sent",
    ]
    reminders = messages(smtp)[3:]
    assert sorted(m["To"].addresses[0].addr_spec for m in reminders) == [
        "ann@example.com", "cy@example.net",
    ]  # fmt: skip
    assert {m["Subject"] for m in reminders} == {
        "Reminder: Confirm your subscription to World Desk"
    }
    assert confirm_path(reminders[0]).startswith("/c/")
    # The cap: nobody gets a second reminder.
    r = cli("subscribers", "remind", "--list", "world")
    assert "0 reminded, 2 at the limit of 1 reminders" in r.output
    assert len(smtp.handler.received) == 5
    bad = cli("subscribers", "remind", "--list", "world", "--older-than", "soon")
    assert bad.exit_code == 2 and "'soon' is not an age such as 3d" in bad.output


def test_no_email_leaves_it_to_remind(cli, smtp, tmp_path):
    r = cli("subscribers", "add", "ann@example.com", "--list", "world", "--no-email")
    assert r.output.splitlines() == [
        "ann@example.com is pending on list world (daily)",
        "no confirmation email sent (--no-email): `digest subscribers remind --list world` asks them",
    ]
    (tmp_path / "people.csv").write_text("email\nbob@example.org\n", encoding="utf-8")
    r = cli("subscribers", "import", "people.csv", "--list", "world", "--no-email")
    assert "1 pending, not emailed (--no-email)" in r.output
    (tmp_path / "subscribers").mkdir()
    (tmp_path / "subscribers" / "world.csv").write_text(
        "email\nann@example.com\nbob@example.org\ncy@example.net\n", encoding="utf-8"
    )
    r = cli("subscribers", "sync", "--no-email")
    assert r.exit_code == 0, r.output
    assert smtp.handler.received == []
    r = cli("subscribers", "remind", "--list", "world")
    assert r.output.startswith("world: 3 asked for the first time, 0 reminded")
    # A first confirmation, not a reminder.
    assert {m["Subject"] for m in messages(smtp)} == {"Confirm your subscription to World Desk"}
    assert recipients(smtp) == ["ann@example.com", "bob@example.org", "cy@example.net"]


def test_sync_asks_the_people_it_adds_as_pending(cli, smtp, tmp_path):
    (tmp_path / "subscribers").mkdir()
    (tmp_path / "subscribers" / "world.csv").write_text(
        "email\nann@example.com\nbob@example.org\n", encoding="utf-8"
    )
    r = cli("subscribers", "sync")
    assert r.output.splitlines()[-1] == "confirmation emails: 2 sent"
    assert cli("subscribers", "sync").output.count("sent") == 0
    assert len(smtp.handler.received) == 2


def test_a_relay_that_is_down_leaves_the_confirmation_queued_for_later(run, smtp, db, monkeypatch):
    monkeypatch.setenv("DIGEST_SMTP_URL", "smtp://127.0.0.1:9")
    run("lists", "create", "world", "--title", "W", "--from", "w@news.example.com")
    r = run("subscribers", "add", "ann@example.com", "--list", "world")
    assert r.exit_code == 0 and "Traceback" not in r.output
    assert r.output.splitlines()[1] == (
        "confirmation email: 0 sent, 1 deferred (retried later), 0 failed"
    )
    assert db.execute("SELECT status, attempts FROM notices").fetchall() == [("queued", 1)]
    # The outbox sends it once the relay is back (`digest run`, `digest send`, the web worker).
    config = load_config(None, env={"DIGEST_SMTP_URL": smtp.url()})
    later = datetime.now(UTC) + timedelta(minutes=2)
    assert flush_notices(db, config, secret=b"test-secret", now=later).sent == 1
    assert recipients(smtp) == ["ann@example.com"]


def test_pending_subscriptions_expire_at_the_tick_and_are_recorded(db, smtp, tmp_path):
    config = load_config(None, env={"DIGEST_SMTP_URL": smtp.url()})
    mlist = create_list(db, "world", title="World", from_addr="w@news.example.com", now=NOW)
    added = optin.add_subscriber(db, config, mlist, "ann@example.com", source="cli", now=NOW)
    assert added.asked
    later = NOW + timedelta(days=20)
    optin.add_subscriber(db, config, mlist, "bob@example.org", source="cli", now=later)
    report = tick(db, config, now=NOW + timedelta(days=30, minutes=1), secret=WEB_SECRET)
    assert report.expired == 1
    statuses = dict(db.execute(
        "SELECT p.email, s.status FROM subscriptions s JOIN subscribers p"
        " ON p.id = s.subscriber_id").fetchall())  # fmt: skip
    assert statuses == {"ann@example.com": "expired", "bob@example.org": "pending"}
    event = db.execute(
        "SELECT old_status, new_status, source, reason FROM status_events"
        " WHERE email = 'ann@example.com' ORDER BY id DESC LIMIT 1"
    ).fetchone()
    assert event == ("pending", "expired", "expiry", "not confirmed within 30 days")
    # Expired people get no reminders...
    reminded = optin.remind(db, config, mlist, now=NOW + timedelta(days=31))
    assert (reminded.asked, reminded.reminded) == (0, 1)
    # ... and adding them again asks them again.
    again = optin.add_subscriber(db, config, mlist, "ANN@example.com", source="cli",
                                 now=NOW + timedelta(days=32))  # fmt: skip
    assert (again.subscription.status, again.asked) == ("pending", True)
    # A confirmation link of an expired subscription no longer confirms it (it is not pending).
    assert tick(db, config, now=NOW + timedelta(days=33), secret=WEB_SECRET).expired == 0


def test_expiry_age_is_configurable(db, tmp_path):
    (tmp_path / "d.toml").write_text("[subscribers]\npending_expire_days = 3\n", encoding="utf-8")
    config = load_config(tmp_path / "d.toml", env={})
    mlist = create_list(db, "world", title="World", from_addr="w@news.example.com", now=NOW)
    add_subscription(db, mlist, "ann@example.com", source="cli", now=NOW)
    assert optin.expire(db, config, now=NOW + timedelta(days=2)) == []
    [gone] = optin.expire(db, config, now=NOW + timedelta(days=3, seconds=1))
    assert gone.email == "ann@example.com"
    (tmp_path / "bad.toml").write_text("[subscribers]\npending_expire_days = 0\n", encoding="utf-8")
    with pytest.raises(Exception, match="pending_expire_days must be at least 1"):
        load_config(tmp_path / "bad.toml", env={})


def test_an_admin_web_add_and_import_ask_pending_people(
    make_web_app, db, smtp, tmp_path, web_clock
):
    import io
    import time

    from digest import users
    from digest.audience.subscriptions import expire_pending

    app = make_web_app(f'[[smtp]]\nurl = "{smtp.url()}"\n')
    users.add_user(db, "ada", "correct horse battery", "admin", now=web_clock.now)
    create_list(db, "world", title="World", from_addr="w@news.example.com", now=NOW,
                frequencies="weekly")  # fmt: skip
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post("/login", data={"csrf_token": csrf, "name": "ada",
                                "password": "correct horse battery"})  # fmt: skip
    page = client.get("/admin/").get_data(as_text=True)  # a new CSRF token after login
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)

    def wait_for(n: int) -> None:
        deadline = time.monotonic() + 15
        while len(smtp.handler.received) < n and time.monotonic() < deadline:
            time.sleep(0.05)

    # "Add" says what will happen (the list's only frequency, an email), then adds and asks.
    form = {"csrf_token": csrf, "email": "Ann@example.com", "list": "world", "frequency": ""}
    ask = client.post("/admin/subscribers/add", data=form).get_data(as_text=True)
    assert "a confirmation email is sent to them" in ask and "<dd>weekly</dd>" in ask
    assert not smtp.handler.received
    r = client.post("/admin/subscribers/add", data={**form, "confirm": "yes"})
    assert r.status_code == 303
    flashed = client.get(r.location).get_data(as_text=True)
    assert "A confirmation email is on its way." in flashed
    wait_for(1)
    # A frequency the list does not offer is refused, with what it offers.
    refused = client.post("/admin/subscribers/add", data={**form, "email": "cy@example.com",
                                                          "frequency": "daily"})  # fmt: skip
    assert "offers only weekly digests" in client.get(refused.location).get_data(as_text=True)

    upload = client.post(
        "/admin/import",
        data={"csrf_token": csrf, "list": "world",
              "file": (io.BytesIO(b"email\nbob@example.org\n"), "p.csv")},
        content_type="multipart/form-data",
    )  # fmt: skip
    upload_id = re.search(r'name="upload" value="([^"]+)"', upload.get_data(as_text=True)).group(1)
    client.post("/admin/import/apply", data={"csrf_token": csrf, "upload": upload_id})
    wait_for(2)
    assert recipients(smtp) == ["Ann@example.com", "bob@example.org"]

    # An expired request is not a refusal (the one admission rule): nothing to re-activate,
    # and "Add" asks the person again.
    expire_pending(db, older_than=web_clock.now + timedelta(days=1), now=web_clock.now)
    again = client.get("/admin/subscribers/reactivate?email=ANN@example.com&list=world")
    assert again.status_code == 303
    assert "needs no re-activation" in client.get(again.location).get_data(as_text=True)
    client.post("/admin/subscribers/add", data={**form, "email": "ann@EXAMPLE.com",
                                                "confirm": "yes"})  # fmt: skip
    wait_for(3)
    assert recipients(smtp) == ["Ann@example.com", "Ann@example.com", "bob@example.org"]
    # A bounced one is refused by "Add" and re-activated only with a reason: active, no email.
    mlist = get_list(db, "world")
    add_subscription(db, mlist, "dee@example.com", confirmed=True, source="cli", now=NOW)
    db.execute("UPDATE subscriptions SET status = 'bounced' WHERE subscriber_id ="
               " (SELECT id FROM subscribers WHERE email = 'dee@example.com')")  # fmt: skip
    page = client.get("/admin/subscribers/reactivate?email=DEE@example.com&list=world")
    assert page.status_code == 200
    assert "bounced from list" in page.get_data(as_text=True)
    done = client.post("/admin/subscribers/reactivate", data={
        "csrf_token": csrf, "list": "world", "email": "Dee@example.com",
        "reason": "asked by phone"})  # fmt: skip
    assert done.status_code == 303
    status = db.execute("SELECT status FROM subscriptions WHERE subscriber_id ="
                        " (SELECT id FROM subscribers WHERE email = 'dee@example.com')")  # fmt: skip
    assert status.fetchone()[0] == "active"
    time.sleep(0.3)
    assert len(smtp.handler.received) == 3


def test_parse_and_apply_through_optin_report_who_was_asked(db, smtp, tmp_path):
    config = load_config(None, env={"DIGEST_SMTP_URL": smtp.url()})
    mlist = create_list(db, "world", title="World", from_addr="w@news.example.com", now=NOW)
    (tmp_path / "p.csv").write_text("email\na@example.com\nb@example.com\n", encoding="utf-8")
    parsed = parse_csv(tmp_path / "p.csv", get_list(db, "world"))
    imported = optin.apply_import(db, config, mlist, parsed, confirmed=False, dry_run=False,
                                  source="import", now=NOW, send=True, secret=WEB_SECRET)  # fmt: skip
    assert imported.asked == 2 and imported.sent is not None and imported.sent.sent == 2
    sid = db.execute("SELECT id FROM subscribers WHERE email = 'a@example.com'").fetchone()[0]
    confirm_subscription(db, sid, mlist.id, source="cli", now=NOW)
    assert db.execute("SELECT count(*) FROM notices WHERE status = 'sent'").fetchone()[0] == 2


def test_the_welcome_template_example_in_templates_readme_works(db, tmp_path):
    from pathlib import Path

    from digest.delivery.notices import welcome_message

    readme = (Path(__file__).resolve().parents[2] / "templates" / "README.md").read_text()
    example = re.search(r"```jinja\n(.*?)```", readme, re.S).group(1)
    folder = tmp_path / "t" / "email" / "welcome"
    folder.mkdir(parents=True)
    (folder / "world.txt").write_text(example, encoding="utf-8")
    (tmp_path / "d.toml").write_text(f'templates_dir = "{tmp_path / "t"}"\n', encoding="utf-8")
    config = load_config(tmp_path / "d.toml", env={})
    mlist = create_list(db, "world", title="World Desk", from_addr="w@news.example.com",
                        tags=["Haiti", "Kenya"], now=NOW)  # fmt: skip
    sub = add_subscription(db, mlist, "ann@example.com", name="Ann", tags=["kenya"],
                           frequency="weekly", confirmed=True, source="cli", now=NOW)  # fmt: skip
    outgoing = welcome_message(config, mlist, subscriber_id=sub.subscriber_id,
                               address=sub.email, name=sub.name, secret=WEB_SECRET, db=db,
                               now=NOW)  # fmt: skip
    assert outgoing is not None
    message = email.message_from_bytes(outgoing.data, policy=email.policy.default)
    assert message["Subject"] == "Welcome to World Desk, Ann"
    assert message.get_content_type() == "text/plain"
    text = message.get_content()
    assert "you will get World Desk weekly about Kenya." in text
    assert "Change that at http://127.0.0.1:8080/p/" in text


def test_reminders_and_welcome_subjects_are_in_the_lists_language(db, smtp, tmp_path):
    from digest.audience.lists import LookChanges
    from digest.delivery.notices import confirmation_subject

    mlist = create_list(db, "monde", title="Le Monde", from_addr="m@news.example.com",
                        look=LookChanges(language="fr"), now=NOW)  # fmt: skip
    assert confirmation_subject(mlist, reminder=True) == (
        "Rappel : Confirmez votre abonnement à Le Monde"
    )
    config = load_config(None, env={"DIGEST_SMTP_URL": smtp.url()})
    optin.add_subscriber(db, config, mlist, "ann@example.com", source="cli", now=NOW)
    done = optin.remind(db, config, mlist, now=NOW + timedelta(days=1), send=True,
                        secret=WEB_SECRET)  # fmt: skip
    assert done.sent is not None and done.sent.sent == 2
    subjects = [m["Subject"] for m in messages(smtp)]
    assert subjects == ["Confirmez votre abonnement à Le Monde",
                        "Rappel : Confirmez votre abonnement à Le Monde"]  # fmt: skip
