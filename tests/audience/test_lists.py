"""Mailing lists: create/edit/delete with validation, and the `digest lists` commands."""

from __future__ import annotations

import dataclasses
import re
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


# -- how a list's emails look and read; the approval workflow ---------------------------------


def test_look_settings_are_checked_stored_and_removed(db):
    from datetime import timedelta

    from digest.audience.lists import ImageMode, LookChanges

    mlist = _world(
        db,
        look=LookChanges(
            language="pt-br",
            images="Lead",
            logo_url="https://img.example.org/logo.png",
            logo_size="1104x240",
            accent="#0B6E4F",
            footer_text="  You subscribed on our site.  ",
            postal_address="12 Harbour Road,\n   Mombasa 80100",
            subject_pattern="{top} — {date}",
            intro="Welcome to this week's news.",
        ),
    )
    look, brand = mlist.look, mlist.brand
    assert (look.language, look.images) == ("pt_BR", ImageMode.LEAD)
    # The logo is scaled to the sheet's width (552 px), then to at most 120 px high.
    assert (brand.logo_url, brand.logo_width, brand.logo_height) == (
        "https://img.example.org/logo.png",
        552,
        120,
    )
    assert brand.accent == "#0b6e4f" and brand.footer_text == "You subscribed on our site."
    assert brand.postal_address == "12 Harbour Road, Mombasa 80100"
    assert look.subject_pattern == "{top} — {date}" and look.intro == "Welcome to this week's news."
    assert get_list(db, "world") == mlist

    # Changing one brand field keeps the others; "" removes an optional one.
    mlist = edit_list(db, "world", look=LookChanges(accent=""), now=NOW)
    assert mlist.brand.accent == "#b3261e" and mlist.brand.logo_width == 552
    mlist = edit_list(
        db, "world", look=LookChanges(logo_url="", subject_pattern="", intro=""), now=NOW
    )
    assert mlist.brand.logo_url is None and mlist.look.subject_pattern is None
    assert mlist.look.intro is None and mlist.brand.footer_text == "You subscribed on our site."

    mlist = edit_list(
        db,
        "world",
        look=LookChanges(
            approval=True,
            approval_lead="1h30m",
            approval_deadline="0",
            editors="ed@Example.ORG, ed@example.org,chief@example.org",
        ),
        now=NOW,
    )
    rules = mlist.approval
    assert rules.required and rules.lead == timedelta(minutes=90) and rules.deadline == timedelta(0)
    assert rules.editors == ("ed@example.org", "chief@example.org")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"language": "xx"}, "unknown language 'xx'"),
        ({"images": "huge"}, "images 'huge' is not one of none, lead, thumbnails"),
        ({"logo_url": "javascript:alert(1)"}, "logo URL must be an absolute http(s) URL"),
        ({"logo_url": 'https://x.org/a".png'}, "contains quotes"),
        ({"logo_url": "https://x.org/a.png", "logo_size": "big"}, "not WIDTHxHEIGHT"),
        ({"accent": "red"}, "accent colour must be a hex colour"),
        ({"accent": "#ffff00"}, "contrast of 1.1:1 on white"),
        ({"subject_pattern": "{top} {nope}"}, "unknown placeholder {nope}"),
        ({"subject_pattern": "Bcc: x\nTo: y"}, "subject pattern"),
        ({"approval": True}, "approval mode needs --editors"),
        ({"approval_lead": "soon"}, "not a duration"),
        ({"approval_deadline": "200h"}, "longer than a week"),
        ({"editors": "not an address"}, "not an address"),
    ],
)
def test_look_settings_that_are_refused(db, changes, message):
    from digest.audience.lists import LookChanges

    _world(db)
    with pytest.raises(InvalidInput, match=re.escape(message)):
        edit_list(db, "world", look=LookChanges(**changes), now=NOW)
    # Nothing half-written.
    row = db.execute("SELECT language, images, logo_url, accent, approval FROM lists").fetchone()
    assert tuple(row) == ("en", "none", None, None, 0)


def test_lists_commands_for_the_look_and_approval(run):
    r = run(
        "lists", "create", "monde", "--title", "Le Monde en bref", "--from",
        "Rédaction <monde@example.com>", "--language", "fr", "--images", "lead", "--accent",
        "#0b6e4f", "--postal-address", "12 rue du Port, 13002 Marseille, France",
        "--subject", "{top} — {date}",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    for line in (
        "  language:    fr",
        "  images:      lead",
        "  accent:      #0b6e4f",
        "  address:     12 rue du Port, 13002 Marseille, France",
        "  subject:     {top} — {date}",
        "  approval:    off",
    ):
        assert line in r.output.splitlines(), line
    r = run("lists", "edit", "monde", "--approval", "on")
    assert r.exit_code == 1 and "needs --editors" in r.output
    r = run(
        "lists", "edit", "monde", "--approval", "on", "--approval-lead", "2h",
        "--approval-deadline", "1h", "--editors", "ed@example.com",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert (
        "  approval:    on: built 2h before the send time, approval accepted until 1h after it"
        in r.output.splitlines()
    )
    assert "  editors:     ed@example.com" in r.output.splitlines()
    r = run("lists", "edit", "monde", "--images", "huge")
    assert r.exit_code == 2 and "'huge' is not one of" in r.output


def test_the_untagged_section_is_titled_by_the_list_or_in_its_language(db):
    mlist = create_list(db, "all", title="All", from_addr="a@example.com", tags=[], now=NOW)
    assert mlist.untagged_section_title == "More stories"

    def speaking(code: str):
        return dataclasses.replace(mlist, look=dataclasses.replace(mlist.look, language=code))

    assert speaking("fr").untagged_section_title == "Autres articles"
    assert speaking("pt-BR").untagged_section_title == "Mais notícias"
    own = dataclasses.replace(speaking("fr"), untagged_title="Brèves")
    assert own.untagged_section_title == "Brèves"
