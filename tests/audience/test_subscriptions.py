"""Subscriptions and their status rules, suppression, removal, history, and the commands."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from digest.audience.lists import create_list
from digest.audience.subscriptions import (
    add_subscription,
    confirm_subscription,
    iter_subscriptions,
    mark_bounced,
    remove_subscriber,
    subscriber_history,
    unsubscribe,
    update_preferences,
)
from digest.audience.suppressions import is_suppressed, suppress
from digest.cli import cli
from digest.errors import InvalidInput, NotFound

NOW = datetime(2025, 1, 21, 7, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=3)


@pytest.fixture
def world(db):
    return create_list(
        db,
        "world",
        title="World",
        from_addr="desk@example.com",
        tags=["Africa", "Europe", "East Africa"],
        now=NOW,
    )


def _status(db, email, slug="world"):
    row = db.execute(
        "SELECT s.status FROM subscriptions s JOIN subscribers p ON p.id = s.subscriber_id"
        " JOIN lists l ON l.id = s.list_id WHERE p.email = ? AND l.slug = ?",
        [email, slug],
    ).fetchone()
    return row[0] if row else None


def test_add_pending_then_confirm(db, world):
    sub = add_subscription(
        db, world, " Ann@Example.COM ", name="Ann", tags=["east africa", "Africa"], source="cli",
        now=NOW,
    )  # fmt: skip
    assert (sub.email, sub.status, sub.tags, sub.confirmed_at) == (
        "Ann@example.com",
        "pending",
        ("africa", "east africa"),
        None,
    )
    confirmed = confirm_subscription(db, sub.subscriber_id, world.id, source="web", now=LATER)
    assert confirmed.status == "active" and confirmed.confirmed_at.startswith("2025-01-24")
    events = subscriber_history(db, "Ann@EXAMPLE.com").events
    assert [(e.old_status, e.new_status, e.source) for e in events] == [
        (None, "pending", "cli"),
        ("pending", "active", "web"),
    ]


def test_tags_and_frequency_are_checked(db, world):
    with pytest.raises(InvalidInput, match="tag 'asia' is not covered by list 'world'"):
        add_subscription(db, world, "a@example.com", tags=["Asia"], source="cli", now=NOW)
    with pytest.raises(InvalidInput, match="unknown frequency 'hourly'"):
        add_subscription(db, world, "a@example.com", frequency="hourly", source="cli", now=NOW)
    with pytest.raises(InvalidInput, match="invalid address 'a@b'"):
        add_subscription(db, world, "a@b", source="cli", now=NOW)
    assert db.execute("SELECT count(*) FROM subscribers").fetchone()[0] == 0


@pytest.mark.parametrize("ending", ["unsubscribed", "bounced", "suppressed"])
def test_ended_addresses_are_never_reactivated_without_consent_or_force(db, world, ending):
    sub = add_subscription(db, world, "bob@example.org", confirmed=True, source="cli", now=NOW)
    if ending == "unsubscribed":
        unsubscribe(db, "bob@example.org", source="web", reason="clicked the link", now=NOW)
    elif ending == "bounced":
        mark_bounced(db, "bob@example.org", "550 5.1.1 no such user", now=NOW)
    else:
        suppress(db, "bob@example.org", "spam trap", source="cli", now=NOW)
    before = _status(db, "bob@example.org")
    with pytest.raises(InvalidInput, match="--force with a --reason"):
        add_subscription(db, world, "bob@example.org", confirmed=True, source="cli", now=LATER)
    with pytest.raises(InvalidInput, match="only a new confirmation by the person"):
        confirm_subscription(db, sub.subscriber_id, world.id, source="cli", now=LATER)
    with pytest.raises(InvalidInput, match="needs a --reason"):
        add_subscription(db, world, "bob@example.org", source="cli", now=LATER, force=True)
    assert _status(db, "bob@example.org") == before

    again = add_subscription(
        db, world, "bob@example.org", confirmed=True, source="cli", now=LATER, force=True,
        reason="asked by phone to be subscribed again",
    )  # fmt: skip
    assert again.status == "active"
    assert not is_suppressed(db, "bob@example.org")
    reasons = [e.reason for e in subscriber_history(db, "bob@example.org").events]
    assert any(r and r.startswith("asked by phone") for r in reasons)


def test_a_new_double_opt_in_reactivates_and_lifts_the_suppression(db, world):
    sub = add_subscription(db, world, "cy@example.org", confirmed=True, source="cli", now=NOW)
    unsubscribe(db, "cy@example.org", source="web", reason="one-click", now=NOW)
    remove_subscriber(db, "cy@example.org", now=NOW)  # stays suppressed
    sub = add_subscription(
        db, world, "cy@example.org", source="cli", now=LATER, force=True, reason="re-signup"
    )
    assert sub.status == "pending"
    suppress(db, "cy@example.org", "complaint", source="bounce", now=LATER)
    sub = confirm_subscription(db, sub.subscriber_id, world.id, source="web", now=LATER)
    assert sub.status == "active" and not is_suppressed(db, "cy@example.org")
    last = subscriber_history(db, "cy@example.org").events[-1]
    assert last.new_status == "unsuppressed" and "was suppressed: complaint" in last.reason


def test_unsubscribe_one_list_or_all(db, world):
    other = create_list(db, "other", title="Other", from_addr="o@example.com", now=NOW)
    add_subscription(db, world, "d@example.com", confirmed=True, source="cli", now=NOW)
    add_subscription(db, other, "d@example.com", source="cli", now=NOW)
    changed = unsubscribe(db, "d@example.com", list_slug="world", source="cli", reason="x",
                          now=NOW)  # fmt: skip
    assert [(s.list_slug, s.status) for s in changed] == [("world", "unsubscribed")]
    assert _status(db, "d@example.com", "other") == "pending"
    changed = unsubscribe(db, "d@example.com", source="cli", reason="all", now=NOW)
    assert [s.list_slug for s in changed] == ["other"]
    assert unsubscribe(db, "d@example.com", source="cli", reason="again", now=NOW) == []
    with pytest.raises(NotFound):
        unsubscribe(db, "nobody@example.com", source="cli", reason=None, now=NOW)


def test_update_preferences(db, world):
    sub = add_subscription(db, world, "e@example.com", confirmed=True, source="web", now=NOW)
    sub = update_preferences(db, sub.subscriber_id, world.id, tags=["Europe", "africa"],
                             frequency="weekly", source="web", now=LATER)  # fmt: skip
    assert (sub.tags, sub.frequency, sub.status) == (("africa", "europe"), "weekly", "active")
    assert subscriber_history(db, "e@example.com").events[-1].reason == (
        "preferences changed: weekly, Africa, Europe"
    )
    with pytest.raises(InvalidInput, match="not covered"):
        update_preferences(db, sub.subscriber_id, world.id, tags=["Mars"], frequency="daily",
                           source="web", now=LATER)  # fmt: skip


def test_remove_deletes_personal_data_but_keeps_unsubscribed_addresses_suppressed(db, world):
    add_subscription(db, world, "f@example.com", name="Fay", confirmed=True, source="cli", now=NOW)
    add_subscription(db, world, "g@example.com", name="Gus", confirmed=True, source="cli", now=NOW)
    unsubscribe(db, "f@example.com", source="web", reason="one-click", now=NOW)

    assert remove_subscriber(db, "f@example.com", now=LATER) is True
    assert remove_subscriber(db, "g@example.com", now=LATER) is False
    assert db.execute("SELECT count(*) FROM subscribers").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM subscriptions").fetchone()[0] == 0
    assert is_suppressed(db, "f@example.com") and not is_suppressed(db, "g@example.com")
    history = subscriber_history(db, "f@example.com")
    assert history.subscriber is None and [e.new_status for e in history.events] == ["removed"]
    assert not list(db.query("SELECT * FROM status_events WHERE email = 'g@example.com'"))
    with pytest.raises(NotFound, match="nothing is known about g@example.com"):
        subscriber_history(db, "g@example.com")
    with pytest.raises(InvalidInput, match="suppression list"):
        add_subscription(db, world, "f@example.com", confirmed=True, source="cli", now=LATER)


def test_iter_subscriptions_filters(db, world):
    for i, status in enumerate(["pending", "active", "active"]):
        add_subscription(db, world, f"p{i}@example.com", confirmed=status == "active",
                         source="cli", now=NOW)  # fmt: skip
    gen = iter_subscriptions(db, "world", "active")
    assert iter(gen) is gen  # a generator, not a list
    assert [s.email for s in gen] == ["p1@example.com", "p2@example.com"]
    with pytest.raises(NotFound):
        list(iter_subscriptions(db, "nope"))


def test_subscriber_commands(run):
    run("lists", "create", "world", "--title", "W", "--from", "d@example.com", "--tags", "A,B")
    r = run("subscribers", "add", "Ann@Example.com", "--list", "world", "--name", "Ann",
            "--tags", "a")  # fmt: skip
    assert r.exit_code == 0
    assert r.output.splitlines() == [
        "Ann@example.com is pending on list world (daily)",
        "confirmation email queued, not sent yet: no SMTP relay configured: add an [[smtp]] "
        "table to the config, set DIGEST_SMTP_URL, or pass --smtp URL (or --outbox DIR to "
        "write a Maildir); `digest run` or `digest send` sends it when the relay can be reached",
    ]
    r = run("subscribers", "confirm", "no-one@example.com", "--list", "world")
    assert r.exit_code == 1 and "no subscriber no-one@example.com" in r.output
    # One identity per mailbox: any letter case finds Ann, who keeps her first spelling.
    r = run("subscribers", "confirm", "ANN@example.com", "--list", "world")
    assert r.output == "Ann@example.com is active on list world\n"
    run("subscribers", "add", "bob@example.org", "--list", "world", "--frequency", "weekly")

    r = run("subscribers", "list", "--json")
    rows = json.loads(r.output)
    assert [(x["email"], x["list"], x["status"], x["frequency"], x["tags"], x["name"])
            for x in rows] == [
        ("Ann@example.com", "world", "active", "daily", ["a"], "Ann"),
        ("bob@example.org", "world", "pending", "weekly", [], None),
    ]  # fmt: skip
    r = run("subscribers", "list", "--status", "pending")
    assert r.output == "bob@example.org\tworld\tpending\tweekly\t*\t\n"
    assert json.loads(run("subscribers", "list", "--json", "--list", "world", "--status",
                          "bounced").output) == []  # fmt: skip

    r = run("subscribers", "unsubscribe", "Ann@example.com")
    assert r.exit_code == 2 and "exactly one of --list SLUG or --all" in r.output
    r = run("subscribers", "unsubscribe", "Ann@example.com", "--all", "--reason", "asked")
    assert r.output == "Ann@example.com unsubscribed from list world\n"
    r = run("subscribers", "add", "Ann@example.com", "--list", "world", "--confirmed")
    assert r.exit_code == 1 and "unsubscribed from list 'world'" in r.output
    r = run("subscribers", "show", "Ann@example.com")
    assert "list world: unsubscribed" in r.output
    assert "active -> unsubscribed [world] via cli: asked" in r.output

    r = run("suppress", "Spam@Example.net", "--reason", "spam trap")
    assert r.output == "suppressed Spam@example.net\n"
    assert run("suppress", "Spam@example.NET").output == "Spam@example.net was already suppressed\n"
    r = run("suppressed")
    assert r.output.startswith("Spam@example.net\t") and r.output.endswith("\tcli\tspam trap\n")

    r = run("subscribers", "remove", "Ann@example.com")
    assert r.output == "removed Ann@example.com; the address stays on the suppression list\n"
    r = run("subscribers", "show", "bob@example.org")
    assert "bob@example.org\n" in r.output and "list world: pending, weekly, all tags" in r.output


cli.load_all()  # so that _commands sees every command module


def _commands(group, prefix=()):
    for name, cmd in sorted(group.commands.items()):
        yield (*prefix, name), cmd
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, (*prefix, name))


def test_every_command_of_this_area_has_help_with_an_example():
    names = {("lists",), ("subscribers",), ("suppress",), ("suppressed",)}
    found = 0
    for path, _cmd in _commands(cli):
        if path[:1] not in names and path not in names:
            continue
        found += 1
        result = CliRunner().invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, path
        assert "Example:" in result.output, path
    assert found >= 18


@pytest.mark.parametrize(
    "where", ["", " WHERE s.list_id = ?", " WHERE s.list_id = ? AND s.status = ?"]
)
def test_subscriptions_stream_in_order_without_sorting_first(db, where):
    from digest.audience.subscriptions import STREAM_SELECT

    plan = db.execute(
        "EXPLAIN QUERY PLAN " + STREAM_SELECT.format(where=where),
        [1, "active"][: where.count("?")],
    ).fetchall()
    assert not any("TEMP B-TREE" in row[3] for row in plan), plan
