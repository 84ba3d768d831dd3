"""Lists choose the frequencies they offer (issue 15, bullet 3), and an export imports back to
exactly the same state without activating anyone pending or stopped (bullet 6). Library, CLI
and CSV paths on real SQLite files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from digest.audience.csvfiles import export_csv, import_csv
from digest.audience.lists import create_list
from digest.audience.subscriptions import (
    add_subscription,
    expire_pending,
    mark_bounced,
    unsubscribe,
    update_preferences,
)
from digest.errors import InvalidInput
from digest.store import open_db

NOW = datetime(2025, 1, 21, 7, 0, tzinfo=UTC)


@pytest.fixture
def weekly(db):
    return create_list(db, "weekly-news", title="Weekly", from_addr="w@example.com",
                       tags=["Africa", "Europe"], frequencies="weekly", now=NOW)  # fmt: skip


def test_a_list_offers_what_it_chose_and_says_so(db, weekly):
    assert (weekly.frequencies, weekly.default_frequency) == (("weekly",), "weekly")
    sub = add_subscription(db, weekly, "ann@example.com", source="cli", now=NOW)
    assert sub.frequency == "weekly"  # the list's default
    with pytest.raises(
        InvalidInput, match="list 'weekly-news' offers only weekly digests, not daily"
    ):
        add_subscription(db, weekly, "bob@example.org", frequency="daily", source="cli", now=NOW)
    with pytest.raises(InvalidInput, match="offers only weekly digests"):
        update_preferences(db, sub.subscriber_id, weekly.id, tags=[], frequency="daily",
                           source="web", now=NOW)  # fmt: skip
    with pytest.raises(
        InvalidInput, match="the default frequency daily is not one the list offers"
    ):
        create_list(db, "x", title="X", from_addr="w@example.com", frequencies="weekly",
                    default_frequency="daily", now=NOW)  # fmt: skip
    with pytest.raises(InvalidInput, match="at least one frequency"):
        create_list(db, "y", title="Y", from_addr="w@example.com", frequencies=",", now=NOW)
    with pytest.raises(InvalidInput, match="unknown frequency 'hourly'"):
        create_list(db, "z", title="Z", from_addr="w@example.com", frequencies="hourly", now=NOW)


def test_csv_rows_asking_for_an_unoffered_frequency_are_rejected_by_line(db, weekly, tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("email,frequency\na@example.com,weekly\nb@example.com,daily\nc@example.com,\n",
                    encoding="utf-8")  # fmt: skip
    report = import_csv(db, path, "weekly-news", now=NOW, confirmed=True)
    assert [(p.line, p.message) for p in report.rejected] == [
        (3, "list 'weekly-news' offers only weekly digests, not daily")
    ]
    assert sorted(report.added) == ["a@example.com", "c@example.com"]
    assert {r[0] for r in db.execute("SELECT frequency FROM subscriptions")} == {"weekly"}


def test_dropping_a_frequency_moves_its_subscribers_and_says_how_many(db, run, db_path):
    mlist = create_list(db, "world", title="W", from_addr="w@example.com", now=NOW)
    for i in range(3):
        add_subscription(db, mlist, f"d{i}@example.com", confirmed=True, source="cli", now=NOW)
    add_subscription(db, mlist, "w@example.org", frequency="weekly", source="cli", now=NOW)
    add_subscription(db, mlist, "gone@example.com", confirmed=True, source="cli", now=NOW)
    unsubscribe(db, "gone@example.com", list_slug="world", source="cli", reason="x", now=NOW)
    before = db.execute("SELECT updated_at FROM subscriptions WHERE status = 'unsubscribed'"
                        ).fetchone()  # fmt: skip
    r = run("lists", "edit", "world", "--frequencies", "weekly")
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[:2] == [
        "updated list world",
        "moved 3 subscriber(s) to weekly: the list no longer offers their frequency",
    ]
    assert "  frequencies: weekly (default weekly)" in r.output
    check = open_db(db_path)
    assert {f for (f,) in check.execute("SELECT frequency FROM subscriptions")} == {"weekly"}
    # Each move is in the person's history; an ended subscription moves quietly.
    reasons = [r[0] for r in check.execute(
        "SELECT reason FROM status_events WHERE email = 'd0@example.com' ORDER BY id")]  # fmt: skip
    assert reasons[-1] == "moved from daily to weekly: the list no longer offers daily digests"
    assert check.execute("SELECT updated_at FROM subscriptions WHERE status = 'unsubscribed'"
                         ).fetchone() == before  # fmt: skip
    r = run("lists", "edit", "world", "--default-frequency", "daily")
    assert r.exit_code == 1
    assert "the default frequency daily is not one the list offers (weekly)" in r.output
    r = run("lists", "edit", "world", "--frequencies", "daily,weekly")
    assert "moved" not in r.output and "frequencies: daily, weekly (default weekly)" in r.output
    r = run("subscribers", "add", "new@example.com", "--list", "world", "--confirmed")
    assert r.output == "new@example.com is active on list world (weekly)\n"


def test_lists_create_takes_the_options(run):
    r = run("lists", "create", "kenya", "--title", "K", "--from", "k@example.com",
            "--frequencies", "daily,weekly", "--default-frequency", "weekly")  # fmt: skip
    assert r.exit_code == 0 and "  frequencies: daily, weekly (default weekly)" in r.output
    bad = run("lists", "create", "x", "--title", "X", "--from", "x@example.com",
              "--frequencies", "monthly")  # fmt: skip
    assert bad.exit_code == 1 and "unknown frequency 'monthly'" in bad.output


# --- export round trip -------------------------------------------------------------------------


def state(db, slug="world"):
    """Everything a list's export is about, by address."""
    return db.execute(
        "SELECT p.email, p.name, s.status, s.frequency, s.tags, s.created_at, s.confirmed_at"
        " FROM subscriptions s JOIN subscribers p ON p.id = s.subscriber_id"
        " JOIN lists l ON l.id = s.list_id WHERE l.slug = ? ORDER BY p.identity",
        [slug],
    ).fetchall()


def populate(db):
    mlist = create_list(db, "world", title="W", from_addr="w@example.com",
                        tags=["Africa", "Europe"], now=NOW)  # fmt: skip
    day = timedelta(days=1)
    add_subscription(db, mlist, "Active@example.com", name="=HYPERLINK(1)", tags=["europe"],
                     frequency="weekly", confirmed=True, source="cli", now=NOW)  # fmt: skip
    add_subscription(db, mlist, "pending@example.com", name="Pen", source="cli", now=NOW + day)
    for address in ("left@example.com", "bounced@example.com"):
        add_subscription(db, mlist, address, confirmed=True, source="cli", now=NOW + 2 * day)
    unsubscribe(db, "left@example.com", list_slug="world", source="cli", reason="x",
                now=NOW + 3 * day)  # fmt: skip
    mark_bounced(db, "bounced@example.com", "550 5.1.1", now=NOW + 3 * day)
    add_subscription(db, mlist, "old@example.com", source="cli", now=NOW - 40 * day)
    expire_pending(db, older_than=NOW - 30 * day, now=NOW)
    return mlist


@pytest.mark.parametrize("confirmed", [False, True])
def test_an_export_imports_back_to_exactly_the_same_state(db, tmp_path, confirmed):
    populate(db)
    assert export_csv(db, "world", tmp_path / "world.csv") == 5
    other = open_db(tmp_path / "other.db", create=True)
    create_list(other, "world", title="W", from_addr="w@example.com", tags=["Africa", "Europe"],
                now=NOW)  # fmt: skip
    # Even with --confirmed, the pending person stays pending and nobody stopped is activated.
    report = import_csv(other, tmp_path / "world.csv", "world", now=NOW + timedelta(days=9),
                        confirmed=confirmed)  # fmt: skip
    assert report.ok and len(report.added) == 5
    assert state(other) == state(db)
    assert [row[:3] for row in state(other)] == [
        ("Active@example.com", "=HYPERLINK(1)", "active"),
        ("bounced@example.com", None, "bounced"),
        ("left@example.com", None, "unsubscribed"),
        ("old@example.com", None, "expired"),
        ("pending@example.com", "Pen", "pending"),
    ]
    assert report.asked == 1  # the pending one is asked to confirm (by delivery.optin)
    # Importing the export into the database it came from changes nothing.
    again = import_csv(db, tmp_path / "world.csv", "world", now=NOW, confirmed=confirmed)
    assert again.unchanged == 5 and state(db) == state(other)


def test_an_export_never_reactivates_what_the_database_has_stopped(db, tmp_path):
    mlist = populate(db)
    export_csv(db, "world", tmp_path / "world.csv")
    unsubscribe(db, "active@example.com", list_slug="world", source="cli", reason="x", now=NOW)
    add_subscription(db, mlist, "left@example.org", confirmed=True, source="cli", now=NOW)
    report = import_csv(db, tmp_path / "world.csv", "world", now=NOW, confirmed=True)
    # The file says Active is active, the database says unsubscribed: skipped.
    assert [p.message.split(" ")[0:3] for p in report.skipped] == [
        ["Active@example.com", "is", "unsubscribed;"]
    ]
    assert dict((r[0], r[2]) for r in state(db))["Active@example.com"] == "unsubscribed"


def test_an_exported_ended_status_ends_a_live_subscription(db, tmp_path):
    mlist = create_list(db, "world", title="W", from_addr="w@example.com", now=NOW)
    add_subscription(db, mlist, "ann@example.com", confirmed=True, source="cli", now=NOW)
    path = tmp_path / "p.csv"
    path.write_text("email,status\nANN@example.com,unsubscribed\nbob@example.org,Pending\n"
                    "cy@example.net,sleeping\n", encoding="utf-8")  # fmt: skip
    report = import_csv(db, path, "world", now=NOW, confirmed=True)
    assert report.stopped == ["ann@example.com"]
    assert [(p.line, p.message) for p in report.rejected] == [
        (4, "unknown status 'sleeping' (one of pending, active, unsubscribed, bounced, "
            "complained, expired)")
    ]  # fmt: skip
    assert "1 stopped" in report.summary()
    assert [(r[0], r[2]) for r in state(db)] == [
        ("ann@example.com", "unsubscribed"), ("bob@example.org", "pending"),
    ]  # fmt: skip
    bad = tmp_path / "bad.csv"
    bad.write_text("email,created_at\nd@example.com,yesterday\n", encoding="utf-8")
    [problem] = import_csv(db, bad, "world", now=NOW).rejected
    assert problem.message.startswith("created_at 'yesterday' is not a date and time")


def test_export_command_writes_the_state_columns(run, tmp_path):
    run("lists", "create", "world", "--title", "W", "--from", "w@example.com")
    run("subscribers", "add", "ann@example.com", "--list", "world", "--confirmed")
    r = run("subscribers", "export", "--list", "world")
    header, line = r.output.splitlines()
    assert header == "email,name,tags,frequency,status,created_at,confirmed_at"
    assert line.startswith("ann@example.com,,,daily,active,20")
