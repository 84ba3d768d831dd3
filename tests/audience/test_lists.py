"""Mailing lists: create/edit/delete with validation, and the `digest lists` commands."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from digest.audience.lists import all_lists, create_list, edit_list, get_list, get_list_by_id
from digest.audience.subscriptions import add_subscription, delete_list
from digest.errors import InvalidInput, NotFound
from digest.issues.periods import issue_for
from digest.issues.store import insert_digest

NOW = datetime(2025, 1, 21, 7, 0, tzinfo=UTC)


def _world(db, **kw):
    args = {"title": "World News", "from_addr": "News Desk <news@example.com>", "now": NOW} | kw
    return create_list(db, "world", **args)


def test_create_validates_and_normalises(db):
    mlist = create_list(
        db,
        "world-news",
        title=" World  News ",
        from_addr="Désk, Ltd <News@Example.COM>",
        reply_to="Editors@Example.org",
        tags=["Africa", " east   africa ", "AFRICA", "", "Europe"],
        timezone="Africa/Nairobi",
        send_time="6:30",
        weekly_day="Fri",
        now=NOW,
    )
    # 'news' is an RFC 2142 role mailbox: email-validator lower-cases it like the domain.
    assert mlist.from_addr == '"Désk, Ltd" <news@example.com>'
    assert mlist.reply_to == "Editors@example.org"
    assert mlist.tags == ("Africa", "east africa", "Europe")
    assert (mlist.timezone, mlist.send_time, mlist.weekly_day) == (
        "Africa/Nairobi",
        "06:30",
        "friday",
    )
    assert get_list(db, "world-news") == mlist


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"slug": "World"}, "list name 'World' is not valid"),
        ({"slug": "-x"}, "list name '-x' is not valid"),
        ({"from_addr": "News <news@localhost>"}, "From: invalid address"),
        ({"from_addr": "News Desk"}, "is not an address"),
        ({"from_addr": "News <a@example.com>\r\nBcc: x@example.com"}, "control character"),
        ({"reply_to": "not an address"}, "Reply-To"),
        ({"timezone": "Mars/Olympus"}, "not an IANA timezone"),
        ({"send_time": "25:00"}, "not HH:MM"),
        ({"weekly_day": "someday"}, "not a weekday"),
        ({"title": "  "}, "title must not be empty"),
    ],
)
def test_create_rejects_bad_values_and_writes_nothing(db, kwargs, message):
    args = {"slug": "world", "title": "World", "from_addr": "news@example.com", "now": NOW}
    args |= kwargs
    slug = args.pop("slug")
    with pytest.raises(InvalidInput, match=message):
        create_list(db, slug, **args)
    assert all_lists(db) == []


def test_duplicate_slug_and_edit(db):
    _world(db)
    with pytest.raises(InvalidInput, match="already exists"):
        _world(db)
    edited = edit_list(db, "world", send_time="05:45", tags=["Asia"], reply_to="", now=NOW)
    assert (edited.send_time, edited.tags, edited.reply_to, edited.title) == (
        "05:45",
        ("Asia",),
        None,
        "World News",
    )
    with pytest.raises(InvalidInput, match="timezone"):
        edit_list(db, "world", timezone="Nowhere", send_time="08:00", now=NOW)
    assert get_list(db, "world").send_time == "05:45"  # nothing half-applied


def test_delete_refuses_with_subscribers_unless_forced(db):
    mlist = _world(db)
    add_subscription(db, mlist, "ann@example.com", confirmed=True, source="cli", now=NOW)
    with pytest.raises(InvalidInput, match="1 active or pending subscriber"):
        delete_list(db, "world", now=NOW)
    assert get_list(db, "world")
    assert delete_list(db, "world", now=NOW, force=True) == "deleted"
    with pytest.raises(NotFound, match="no list 'world'"):
        get_list(db, "world")
    assert db.execute("SELECT count(*) FROM subscriptions").fetchone()[0] == 0
    reasons = [r[0] for r in db.execute("SELECT reason FROM status_events ORDER BY id")]
    assert reasons[-1] == "list deleted"


def test_delete_keeps_a_list_with_sent_digests_for_the_archive(db):
    mlist = _world(db)
    insert_digest(db, mlist, issue_for(mlist, "daily", date(2025, 1, 20)), [], now=NOW)
    assert delete_list(db, "world", now=NOW) == "archived"
    with pytest.raises(NotFound, match="was deleted on 2025-01-21"):
        get_list(db, "world")
    assert all_lists(db) == []
    assert get_list(db, "world", include_deleted=True).deleted_at
    assert get_list_by_id(db, mlist.id).slug == "world"
    assert db.execute("SELECT count(*) FROM digests").fetchone()[0] == 1
    with pytest.raises(InvalidInput, match="archive; choose another name"):
        _world(db)


def test_lists_commands(run):
    r = run(
        "lists",
        "create",
        "world",
        "--title",
        "World News",
        "--from",
        "News Desk <news@example.com>",
        "--tags",
        "Africa,Europe",
        "--timezone",
        "Europe/Berlin",
    )
    assert r.exit_code == 0, r.output
    assert "created list world" in r.output and "Africa, Europe" in r.output
    r = run("lists", "create", "bad", "--title", "x", "--from", "x@example.com", "--send-time", "7")
    assert r.exit_code == 1
    assert r.output.strip() == "Error: send time '7' is not HH:MM in 24-hour time (e.g. 07:00)"
    r = run("lists", "create", "bad", "--title", "x")
    assert r.exit_code == 2 and "missing --from" in r.output
    r = run("lists", "edit", "world", "--weekly-day", "sun")
    assert r.exit_code == 0 and "weekly day:  sunday" in r.output
    r = run("lists", "list")
    assert r.output.startswith("world ") and "0 active" in r.output
    r = run("subscribers", "add", "ann@example.com", "--list", "world", "--confirmed")
    r = run("lists", "delete", "world")
    assert r.exit_code == 1 and "use --force" in r.output
    r = run("lists", "delete", "world", "--force")
    assert r.exit_code == 0 and r.output == "deleted list world\n"
    r = run("lists", "show", "world")
    assert r.exit_code == 1 and "no list 'world'" in r.output
