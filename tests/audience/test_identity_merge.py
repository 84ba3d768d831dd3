"""Migration m018 merges subscribers whose addresses differ only in letter case: one subscriber
(the first entered), the union of subscriptions with the most restrictive status per list,
histories combined, deliveries and queued emails re-pointed, suppressions keyed by identity,
and a report (a log line when the database is opened, and a history event per merge).

The database is built at the schema before m018 with the rows an older version wrote, then
opened as the new version opens it."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.audience.history import events_for
from digest.audience.subscriptions import skip_reasons
from digest.delivery import ledger
from digest.store import open_db
from digest.store.migrations import migrations

MERGE = "m018_subscribers_identity_merge"
T = "2024-{:02d}-01T00:00:00.000000+00:00".format


def old_database(path: Path):
    """A database as the version before one-identity-per-mailbox left it."""
    db = open_db(path, create=True, migrate=False)
    migrations.apply(db, stop_before=MERGE)
    run = db.execute
    for i, slug in enumerate(["world", "kenya", "haiti", "arts"], 1):
        run("INSERT INTO lists (id, slug, title, from_addr, created_at, updated_at)"
            " VALUES (?, ?, ?, 'Desk <d@example.com>', ?, ?)", [i, slug, slug.title(), T(1), T(1)])  # fmt: skip
    for sid, email, name, month in [
        (1, "Ann@example.com", None, 1),
        (2, "ann@example.com", "Ann Lee", 2),
        (3, "ANN@EXAMPLE.COM", "A", 3),
        (4, "bob@example.org", "Bob", 1),
        (5, "Cy@example.net", None, 1),
        (6, "cy@example.net", "Cy", 2),
        # Letters SQLite's lower() does not fold: the identity is Python's.
        (7, "ÉLODIE@example.com", None, 1),
        (8, "élodie@example.com", "Élodie", 2),
    ]:
        run("INSERT INTO subscribers (id, email, name, created_at) VALUES (?, ?, ?, ?)",
            [sid, email, name, T(month)])  # fmt: skip
    for sid, list_id, status, frequency, tags, created, updated in [
        (1, 1, "active", "daily", "[]", 1, 1),
        (2, 1, "unsubscribed", "weekly", '["europe"]', 2, 6),
        (1, 2, "pending", "daily", "[]", 1, 1),
        (3, 2, "active", "weekly", '["kenya"]', 3, 4),
        (2, 3, "bounced", "daily", "[]", 2, 5),
        (1, 4, "active", "daily", "[]", 1, 1),
        (2, 4, "complained", "daily", "[]", 2, 7),
        (3, 4, "pending", "weekly", "[]", 3, 8),
        (4, 1, "active", "daily", "[]", 1, 1),
        (5, 1, "pending", "daily", "[]", 1, 1),
        (6, 1, "pending", "weekly", "[]", 2, 2),
        (7, 1, "active", "daily", "[]", 1, 1),
        (8, 1, "unsubscribed", "daily", "[]", 2, 3),
    ]:
        run(
            "INSERT INTO subscriptions (subscriber_id, list_id, frequency, tags, status,"
            " created_at, updated_at, confirmed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [sid, list_id, frequency, tags, status, T(created), T(updated),
             T(created) if status != "pending" else None],
        )  # fmt: skip
    for email, list_slug, old, new, month in [
        ("Ann@example.com", "world", None, "active", 1),
        ("ann@example.com", "world", "active", "unsubscribed", 6),
        ("ANN@EXAMPLE.COM", "kenya", None, "active", 3),
        ("bob@example.org", "world", None, "active", 1),
    ]:
        run("INSERT INTO status_events (email, list_slug, old_status, new_status, source, at)"
            " VALUES (?, ?, ?, ?, 'cli', ?)", [email, list_slug, old, new, T(month)])  # fmt: skip
    for email, month in [("ANN@EXAMPLE.COM", 5), ("ann@example.com", 4), ("zed@example.com", 1)]:
        run("INSERT INTO suppressions (email, reason, source, created_at)"
            " VALUES (?, ?, 'cli', ?)", [email, f"reason {month}", T(month)])  # fmt: skip
    for digest_id, list_id in [(1, 1), (2, 2), (3, 3)]:
        run("INSERT INTO digests (id, list_id, frequency, period_start, period_end,"
            " period_label, built_at) VALUES (?, ?, 'daily', ?, ?, ?, ?)",
            [digest_id, list_id, T(9), T(10), f"2024-10-0{digest_id}", T(9)])  # fmt: skip
        run("INSERT INTO variants (id, digest_id, tags_key, subject, article_count)"
            " VALUES (?, ?, '', 's', 1)", [digest_id, digest_id])  # fmt: skip
    for digest_id, sid, email, status in [
        (1, 1, "Ann@example.com", "sent"),
        (1, 2, "ann@example.com", "queued"),  # the same digest again: dropped
        (1, 4, "bob@example.org", "sent"),
        (2, 3, "ANN@EXAMPLE.COM", "queued"),  # re-pointed, sent to the first spelling
        (3, 2, "ann@example.com", "sent"),  # two merged spellings, one digest: the sent stays
        (3, 3, "ANN@EXAMPLE.COM", "deferred"),
    ]:
        run("INSERT INTO deliveries (digest_id, variant_id, subscriber_id, email, status,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [digest_id, digest_id, sid, email, status, T(10), T(10)])  # fmt: skip
    for sid, list_id, status, month in [
        (2, 1, "queued", 6),
        (3, 1, "queued", 7),
        (3, 2, "sent", 3),
    ]:
        run("INSERT INTO notices (kind, subscriber_id, list_id, status, next_attempt_at,"
            " created_at, updated_at) VALUES ('confirm', ?, ?, ?, ?, ?, ?)",
            [sid, list_id, status, T(month), T(month), T(month)])  # fmt: skip
    # Bounce reports about two spellings of Ann (and one about Bob); the table has no foreign
    # key, so only the merge can re-point them.
    for key, email, sid, kind, month in [
        ("k1", "ANN@EXAMPLE.COM", 3, "soft", 4),
        ("k2", "ann@example.com", 2, "soft", 5),
        ("k3", "bob@example.org", 4, "hard", 6),
    ]:
        run("INSERT INTO bounce_events (email, subscriber_id, kind, source, identified_by,"
            " event_key, occurred_at, received_at) VALUES (?, ?, ?, 'bounce-mailbox', 'verp', ?,"
            " ?, ?)", [email, sid, kind, key, T(month), T(month)])  # fmt: skip
    db.close()


@pytest.fixture
def merged(tmp_path, caplog):
    path = tmp_path / "old.db"
    old_database(path)
    with caplog.at_level(logging.WARNING, logger="digest.store"):
        db = open_db(path)
    yield db, caplog
    db.close()


def test_one_subscriber_per_mailbox_first_spelling_kept(merged):
    db, _ = merged
    assert db.execute("SELECT id, email, identity, name, created_at FROM subscribers"
                      " ORDER BY id").fetchall() == [
        (1, "Ann@example.com", "ann@example.com", "Ann Lee", T(1)),
        (4, "bob@example.org", "bob@example.org", "Bob", T(1)),
        (5, "Cy@example.net", "cy@example.net", "Cy", T(1)),
        (7, "ÉLODIE@example.com", "élodie@example.com", "Élodie", T(1)),
    ]  # fmt: skip


def test_each_list_keeps_the_most_restrictive_status_nothing_resurrected_nothing_lost(merged):
    db, _ = merged
    rows = db.execute(
        "SELECT l.slug, s.status, s.frequency, s.tags, s.created_at, s.updated_at"
        " FROM subscriptions s JOIN lists l ON l.id = s.list_id WHERE s.subscriber_id = 1"
        " ORDER BY l.slug"
    ).fetchall()
    assert rows == [
        ("arts", "complained", "daily", "[]", T(1), T(8)),  # complained beats active and pending
        ("haiti", "bounced", "daily", "[]", T(2), T(5)),  # only another spelling had it
        ("kenya", "active", "weekly", '["kenya"]', T(1), T(4)),  # active beats pending
        ("world", "unsubscribed", "weekly", '["europe"]', T(1), T(6)),  # unsubscribed beats active
    ]
    # Equal statuses: the latest change's choices.
    assert db.execute(
        "SELECT status, frequency FROM subscriptions WHERE subscriber_id = 5"
    ).fetchall() == [("pending", "weekly")]
    assert db.execute("SELECT status FROM subscriptions WHERE subscriber_id = 7").fetchall() == [
        ("unsubscribed",)
    ]
    assert db.execute("SELECT count(*) FROM subscriptions").fetchone()[0] == 7
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []


def test_suppressions_are_keyed_by_identity(merged):
    db, _ = merged
    assert db.execute(
        "SELECT identity, email, reason, created_at FROM suppressions ORDER BY identity"
    ).fetchall() == [
        ("ann@example.com", "ann@example.com", "reason 4", T(4)),  # the first suppression stays
        ("zed@example.com", "zed@example.com", "reason 1", T(1)),
    ]


def test_histories_are_combined_and_the_merge_is_recorded(merged):
    db, _ = merged
    events = [(e.list_slug, e.old_status, e.new_status, e.source) for e in
              events_for(db, "ann@example.com")]  # fmt: skip
    assert events[:3] == [
        ("world", None, "active", "cli"),
        ("kenya", None, "active", "cli"),
        ("world", "active", "unsubscribed", "cli"),
    ]
    migration = [e for e in events_for(db, "ann@example.com") if e.source == "migration"]
    assert {(e.list_slug, e.old_status, e.new_status) for e in migration} == {
        ("arts", "active", "complained"),
        ("haiti", None, "bounced"),
        ("kenya", "pending", "active"),
        ("world", "active", "unsubscribed"),
        (None, None, "merged"),
    }
    [merge] = [e for e in migration if e.new_status == "merged"]
    assert merge.reason.startswith("ann@example.com, ANN@EXAMPLE.COM merged into this subscriber")
    assert "bob@example.org" not in {e.reason for e in events_for(db, "bob@example.org")}


def test_deliveries_and_queued_emails_are_repointed_without_duplicates(merged):
    db, _ = merged
    assert db.execute(
        "SELECT digest_id, subscriber_id, email, status FROM deliveries ORDER BY digest_id,"
        " subscriber_id"
    ).fetchall() == [
        (1, 1, "Ann@example.com", "sent"),
        (1, 4, "bob@example.org", "sent"),
        (2, 1, "Ann@example.com", "queued"),  # still owed: goes to the kept spelling
        (3, 1, "ann@example.com", "sent"),  # sent: keeps the address it went to
    ]
    assert db.execute(
        "SELECT subscriber_id, list_id, status, created_at FROM notices ORDER BY id"
    ).fetchall() == [(1, 1, "queued", T(7)), (1, 2, "sent", T(3))]
    # Still owed, but the merged person is suppressed: the sender skips it.
    claimed = ledger.claim(db, "t", now=datetime(2025, 1, 1, tzinfo=UTC), lease_seconds=60,
                           limit=10)  # fmt: skip
    assert list(skip_reasons(db, claimed).values()) == ["address is suppressed (reason 4)"]


def test_bounce_reports_follow_the_merged_subscriber_and_are_found_in_any_case(merged):
    from digest.feedback import events

    db, _ = merged
    assert db.execute(
        "SELECT event_key, subscriber_id, email FROM bounce_events ORDER BY event_key"
    ).fetchall() == [
        ("k1", 1, "ANN@EXAMPLE.COM"),  # each report keeps the address it named
        ("k2", 1, "ann@example.com"),
        ("k3", 4, "bob@example.org"),
    ]
    # The bounce policy counts the soft bounces of every spelling; the admin page lists them.
    assert len(events.policy_events(db, "Ann@Example.COM", since=None)) == 2
    assert [e.email for e in events.list_events(db, email="ann@EXAMPLE.com")] == [
        "ann@example.com",
        "ANN@EXAMPLE.COM",
    ]
    assert len(events.list_events(db, email="BOB@example.org")) == 1


def test_the_merge_is_logged_once_when_the_database_is_opened(merged, tmp_path):
    db, caplog = merged
    # The fixture opened the database: its records belong to the test's setup.
    lines = [r.getMessage() for r in caplog.get_records("setup") if r.name == "digest.store"]
    assert lines[0].startswith(
        "merged 7 subscriber address(es) that differed from another only in letter case into 3"
    )
    assert lines[1] == (
        "  Ann@example.com (merged ann@example.com, ANN@EXAMPLE.COM); arts: complained, haiti:"
        " bounced, kenya: active, world: unsubscribed; 2 duplicate deliveries of one digest folded"
    )
    assert lines[2] == "  Cy@example.net (merged cy@example.net); world: pending"
    assert lines[3] == "  ÉLODIE@example.com (merged élodie@example.com); world: unsubscribed"
    caplog.clear()
    open_db(tmp_path / "old.db").close()  # applied once: nothing more to say
    assert not [r for r in caplog.records if r.name == "digest.store"]


def test_the_first_command_after_the_upgrade_prints_the_merge(tmp_path):
    path = tmp_path / "old.db"
    old_database(path)
    env = {**os.environ, "DIGEST_SECRET": "s"}
    env.pop("DIGEST_CONFIG", None)
    result = subprocess.run(
        [sys.executable, "-m", "digest", "--db", str(path), "subscribers", "show",
         "ANN@example.com"],
        capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "merged 7 subscriber address(es)" in result.stderr
    assert result.stdout.startswith("Ann@example.com (Ann Lee)\n")
    assert "list world: unsubscribed, weekly, europe" in result.stdout
    assert "merged via migration: ann@example.com, ANN@EXAMPLE.COM merged" in result.stdout


def test_a_database_without_case_variants_merges_nothing(tmp_path, caplog):
    path = tmp_path / "clean.db"
    db = open_db(path, create=True, migrate=False)
    migrations.apply(db, stop_before=MERGE)
    db.execute("INSERT INTO subscribers (email, created_at) VALUES ('a@example.com', ?)", [T(1)])
    db.close()
    with caplog.at_level(logging.WARNING, logger="digest.store"):
        db = open_db(path)
    assert not caplog.records
    assert db.execute("SELECT identity FROM subscribers").fetchall() == [("a@example.com",)]
    # The identity is unique from now on, and computed for any row written (ASCII addresses
    # need nothing more than their email).
    with pytest.raises(Exception, match="UNIQUE"):
        db.execute("INSERT INTO subscribers (email, created_at) VALUES ('A@example.com', ?)",
                   [T(2)])  # fmt: skip


def test_the_rebuild_without_the_email_index_loses_nothing(merged):
    from digest.store.migrations import rebuild_without_unique

    db, _ = merged
    # The copy kept every subscription and queued email (no ON DELETE CASCADE fired), the
    # foreign keys are back on, and only the identity is unique now.
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT count(*) FROM subscriptions").fetchone()[0] == 7
    assert db.execute("SELECT count(*) FROM notices").fetchone()[0] == 2
    indexes = {r[1]: r[2] for r in db.execute("PRAGMA index_list(subscribers)")}
    assert indexes == {"idx_subscribers_identity": 1}
    # Every table that references subscribers still does, and its foreign key still acts:
    # a row for a subscriber that does not exist is refused, and removing a subscriber takes
    # their subscriptions and queued emails with them.
    referencing = {
        t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        for fk in db.execute(f"PRAGMA foreign_key_list({t})") if fk[2] == "subscribers"
    }  # fmt: skip
    assert referencing == {"subscriptions", "notices"}
    with pytest.raises(Exception, match="FOREIGN KEY"):
        db.execute("INSERT INTO notices (kind, subscriber_id, list_id, next_attempt_at,"
                   " created_at, updated_at) VALUES ('confirm', 99, 1, ?, ?, ?)",
                   [T(1), T(1), T(1)])  # fmt: skip
    db.execute("DELETE FROM subscribers WHERE id = 1")
    assert db.execute("SELECT count(*) FROM subscriptions WHERE subscriber_id = 1").fetchone() == (
        0,
    )
    assert db.execute("SELECT count(*) FROM notices").fetchone()[0] == 0
    # The identity stays unique in any case, and so does an address as entered.
    for spelling in ("BOB@example.org", "bob@example.org"):
        with pytest.raises(Exception, match="UNIQUE"):
            db.execute("INSERT INTO subscribers (email, created_at) VALUES (?, ?)",
                       [spelling, T(2)])  # fmt: skip
    sql = db.execute("SELECT sql FROM sqlite_master WHERE name = 'subscribers'").fetchone()[0]
    rebuild_without_unique(db, "subscribers", "email")  # nothing left to do
    assert (
        db.execute("SELECT sql FROM sqlite_master WHERE name = 'subscribers'").fetchone()[0] == sql
    )
