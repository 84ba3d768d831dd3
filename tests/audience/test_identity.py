"""One identity per mailbox (issue 15, bullet 1): an address in any letter case is one person for
identity, dedupe, suppression, unsubscribe and look-up, through the library, the CLI, CSV
import and sync, the web form and the send-time checks; the address as first entered is kept
for display and sending. Real SQLite files."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from digest.addresses import identity_key
from digest.audience.csvfiles import import_csv, sync_directory
from digest.audience.lists import create_list, get_list
from digest.audience.subscriptions import (
    add_subscription,
    audience_groups,
    find_subscription,
    get_subscriber,
    skip_reasons,
    subscriber_history,
    unsubscribe,
)
from digest.audience.suppressions import is_suppressed, suppress
from digest.config import load_config
from digest.delivery import ledger
from digest.delivery.notices import request_subscription
from digest.errors import InvalidInput

NOW = datetime(2025, 1, 21, 7, 0, tzinfo=UTC)


@pytest.fixture
def world(db):
    return create_list(db, "world", title="World", from_addr="desk@example.com",
                       tags=["Africa", "Europe"], now=NOW)  # fmt: skip


def people(db) -> list[tuple[str, str]]:
    return db.execute("SELECT email, identity FROM subscribers ORDER BY id").fetchall()


def test_identity_is_the_whole_address_lower_cased():
    assert identity_key("Ann.Lee@example.com") == "ann.lee@example.com"
    # Non-ASCII local parts too (Python's full Unicode lower-casing, not SQLite's ASCII one).
    assert identity_key("ÉLODIE@example.com") == identity_key("élodie@example.com")


def test_a_second_spelling_is_the_same_subscriber_and_the_first_spelling_stays(db, world):
    first = add_subscription(db, world, "Ann.Lee@Example.com", name="Ann", source="cli", now=NOW)
    again = add_subscription(db, world, "ANN.LEE@example.COM", tags=["europe"],
                             frequency="weekly", confirmed=True, source="cli", now=NOW)  # fmt: skip
    assert again.subscriber_id == first.subscriber_id
    assert (again.email, again.status, again.frequency, again.tags) == (
        "Ann.Lee@example.com", "active", "weekly", ("europe",),
    )  # fmt: skip
    assert people(db) == [("Ann.Lee@example.com", "ann.lee@example.com")]
    assert get_subscriber(db, "ann.lee@EXAMPLE.com").id == first.subscriber_id
    assert find_subscription(db, world, " aNN.lee@example.com ").id == first.id
    # The history is one, whatever spelling asks for it.
    history = subscriber_history(db, "ann.lee@example.com")
    assert history.email == "Ann.Lee@example.com"
    assert [e.new_status for e in history.events] == ["pending", "active"]


@pytest.mark.parametrize("ending", ["unsubscribe", "suppress"])
def test_an_ended_or_suppressed_spelling_is_never_reactivated_by_another(db, world, ending):
    add_subscription(db, world, "ann@example.com", confirmed=True, source="cli", now=NOW)
    if ending == "unsubscribe":
        [ended] = unsubscribe(db, "ANN@EXAMPLE.COM", list_slug="world", source="cli",
                              reason="asked", now=NOW)  # fmt: skip
        assert ended.status == "unsubscribed"
    else:
        suppress(db, "Ann@Example.com", "spam trap", source="cli", now=NOW)
        assert is_suppressed(db, "ann@example.com")
        assert not suppress(db, "ANN@example.com", "again", source="cli", now=NOW)
    with pytest.raises(InvalidInput, match="not subscribed again"):
        add_subscription(db, world, "Ann@example.com", confirmed=True, source="cli", now=NOW)
    assert people(db) == [("ann@example.com", "ann@example.com")]


def test_cli_finds_changes_and_shows_one_person_in_any_case(run):
    run("lists", "create", "world", "--title", "W", "--from", "d@example.com")
    assert (
        run("subscribers", "add", "Ann@Example.com", "--list", "world", "--confirmed").exit_code
        == 0
    )
    r = run("subscribers", "add", "ANN@example.com", "--list", "world", "--frequency", "weekly")
    assert r.output == "Ann@example.com is active on list world (weekly)\n"
    r = run("subscribers", "unsubscribe", "aNn@EXAMPLE.com", "--list", "world")
    assert r.output == "Ann@example.com unsubscribed from list world\n"
    r = run("subscribers", "show", "ann@example.com")
    assert r.output.startswith("Ann@example.com\n") and "list world: unsubscribed" in r.output
    r = run("subscribers", "add", "ann@example.com", "--list", "world", "--confirmed")
    assert r.exit_code == 1
    assert "Ann@example.com is unsubscribed from list 'world'" in r.output
    assert run("suppress", "ANN@EXAMPLE.COM").output == "suppressed ANN@example.com\n"
    assert run("suppress", "ann@example.com").output == "ann@example.com was already suppressed\n"
    assert run("suppressed").output.count("\n") == 1
    r = run("subscribers", "list", "--json")
    assert r.output.count('"email"') == 1


def test_csv_rows_match_in_any_case_and_duplicates_by_case_are_rejected(db, world, tmp_path):
    add_subscription(db, world, "Ann@example.com", name="Ann", source="cli", now=NOW)
    add_subscription(db, world, "Bob@example.org", confirmed=True, source="cli", now=NOW)
    unsubscribe(db, "bob@example.org", list_slug="world", source="cli", reason="asked", now=NOW)
    path = tmp_path / "people.csv"
    path.write_text(
        "email,name,frequency\n"
        "ANN@EXAMPLE.COM,Ann Lee,weekly\n"  # 2: updates Ann, keeps her spelling
        "bob@EXAMPLE.org,,\n"  # 3: Bob unsubscribed: skipped, never re-activated
        "cy@example.com,Cy,\n"  # 4: new
        "CY@example.com,Cy again,\n",  # 5: the same mailbox as line 4
        encoding="utf-8",
    )
    report = import_csv(db, path, "world", now=NOW, confirmed=True)
    assert report.added == ["cy@example.com"]
    assert report.activated == ["Ann@example.com"]
    assert [(p.line, p.message) for p in report.rejected] == [
        (5, "duplicate address CY@example.com (first on line 4)")
    ]
    assert [p.line for p in report.skipped] == [3]
    assert "Bob@example.org is unsubscribed" in report.skipped[0].message
    assert people(db) == [
        ("Ann@example.com", "ann@example.com"),
        ("Bob@example.org", "bob@example.org"),
        ("cy@example.com", "cy@example.com"),
    ]
    ann = find_subscription(db, world, "ann@example.com")
    assert (ann.name, ann.frequency, ann.status) == ("Ann Lee", "weekly", "active")


def test_sync_keeps_an_address_the_file_spells_differently(db, world, tmp_path):
    add_subscription(db, world, "Ann@example.com", confirmed=True, source="cli", now=NOW)
    add_subscription(db, world, "gone@example.com", confirmed=True, source="cli", now=NOW)
    folder = tmp_path / "subscribers"
    folder.mkdir()
    (folder / "world.csv").write_text("email\nANN@EXAMPLE.COM\n", encoding="utf-8")
    (report,) = sync_directory(db, folder, now=NOW, confirmed=True)
    assert not isinstance(report, Exception)
    assert report.removed == ["gone@example.com"] and report.added == []
    assert find_subscription(db, world, "ann@example.com").status == "active"


def test_the_subscribe_form_treats_any_case_as_the_known_person(db, world):
    config = load_config(None, env={})
    add_subscription(db, world, "Ann@example.com", confirmed=True, tags=["africa"],
                     source="cli", now=NOW)  # fmt: skip
    result = request_subscription(db, config, world, "ANN@example.com", tags=["europe"],
                                  frequency="weekly", now=NOW)  # fmt: skip
    # Known and active: nothing changes until the person follows the link.
    assert (result.status, result.queued) == ("active", True)
    assert people(db) == [("Ann@example.com", "ann@example.com")]
    assert find_subscription(db, world, "ann@example.com").tags == ("africa",)
    suppress(db, "ann@EXAMPLE.com", "complaint", source="cli", now=NOW)
    refused = request_subscription(db, config, world, "Ann@Example.com", now=NOW)
    assert (refused.queued, refused.note) == (False, "not mailed: address is suppressed")


def test_send_time_checks_see_a_suppression_in_any_case(db, newsletter):
    digest_id = newsletter.make(2)
    suppress(db, "P1@EXAMPLE.COM", "spam trap", source="cli", now=NOW)
    # `send --dry-run` counts it as one it would skip...
    [planned] = ledger.plan(db, now=NOW, list_id=None, digest_id=digest_id, retry_now=True,
                            limit=None)  # fmt: skip
    assert (planned.due, planned.would_skip) == (2, 1)
    # ... the sender skips it ...
    claimed = ledger.claim(db, "test", now=NOW, lease_seconds=60, limit=10)
    reasons = skip_reasons(db, claimed)
    by_email = {d.email: reasons.get(d.id) for d in claimed}
    assert by_email == {"p1@example.com": "address is suppressed (spam trap)",
                        "p2@example.com": None}  # fmt: skip
    # ... and the next build leaves the address out of the audience.
    assert sum(audience_groups(db, get_list(db, "world"), "daily").values()) == 1


def test_identity_is_never_null_after_any_path(db, world, tmp_path):
    add_subscription(db, world, "a@example.com", source="cli", now=NOW)
    path = tmp_path / "p.csv"
    path.write_text("email\nB@example.com\nc@example.com\n", encoding="utf-8")
    import_csv(db, path, "world", now=NOW)
    request_subscription(db, load_config(None, env={}), world, "D@example.com", now=NOW)
    assert db.execute("SELECT count(*) FROM subscribers WHERE identity IS NULL").fetchone()[0] == 0
    assert (
        db.execute("SELECT count(*) FROM status_events WHERE identity IS NULL").fetchone()[0] == 0
    )
    assert (
        db.execute("SELECT count(*) FROM subscribers WHERE identity != lower(email)").fetchone()[0]
        == 0
    )
