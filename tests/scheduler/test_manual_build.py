"""`digest build` under the scheduler's rule for "due" (one rule, ``plan.check_due``): without
--date it builds what `digest run` would send now, or says why nothing is due and what is next;
a past issue needs --date, and one later than the max lateness also --force. Real SQLite
files, the CLI through click's runner with its clock pinned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from digest.audience.lists import create_list
from digest.cli import App
from digest.config import load_config
from digest.scheduler.manual import build_now
from digest.scheduler.plan import check_due, plan


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def clock(monkeypatch):
    """Pin the CLI's clock: ``clock.now = ...``."""

    class Clock:
        now = utc(2025, 1, 21, 7, 5)

    monkeypatch.setattr(App, "now", lambda self: Clock.now)
    return Clock


@pytest.fixture
def world(newsroom):
    """Daily at 07:00 UTC, weekly on mondays; one daily and one weekly reader."""
    mlist = newsroom.add_list(tags=("Kenya",), weekly_day="monday")
    newsroom.add_article("Kenya story", utc(2025, 1, 20, 6), tags=["Kenya"])
    newsroom.subscribe(mlist, "day@example.com")
    newsroom.subscribe(mlist, "week@example.com", frequency="weekly")
    return mlist


def lines(result) -> list[str]:
    return result.stdout.splitlines()


def test_without_a_date_it_builds_what_digest_run_would_send_now(run, world, clock):
    clock.now = utc(2025, 1, 21, 7, 5)  # a tuesday: daily due; monday's weekly 24 h late: due
    result = run("build")
    assert result.exit_code == 0, result.output
    assert [line for line in lines(result) if not line.startswith("  ")] == [
        "world daily 2025-01-21, covers Mon 20 Jan 2025 (UTC): built",
        "world weekly 2025-01-20, covers Mon 13 Jan 2025 – Sun 19 Jan 2025 (UTC): built",
    ]
    clock.now = utc(2025, 1, 24, 7, 5)  # friday: the weekly issue is 96 h late
    result = run("build", "--frequency", "weekly")
    assert lines(result) == [
        "world weekly: nothing due (the issue of 2025-01-20 is 96.1 h late, over"
        " max_lateness_weekly_hours (72.0 h)); next 2025-01-27 at Mon 2025-01-27 07:00 UTC"
        " = 2025-01-27 07:00 UTC"
    ]


def test_a_stale_issue_is_not_built_and_the_next_one_is_named(run, world, clock, tmp_path):
    (tmp_path / "digest.toml").write_text("[schedule]\nmax_lateness_daily_hours = 1\n")
    clock.now = utc(2025, 1, 21, 9, 0)
    result = run("build", "--frequency", "daily")
    assert result.exit_code == 0, result.output
    assert lines(result) == [
        "world daily: nothing due (the issue of 2025-01-21 is 2.0 h late, over"
        " max_lateness_daily_hours (1.0 h)); next 2025-01-22 at Wed 2025-01-22 07:00 UTC"
        " = 2025-01-22 07:00 UTC"
    ]


def test_an_issue_due_before_the_list_existed_is_not_due(run, db, newsroom, clock):
    mlist = create_list(db, "late", title="Late", from_addr="a@example.com",
                        now=utc(2025, 1, 21, 8, 0))  # fmt: skip
    newsroom.subscribe(mlist, "x@example.com")
    clock.now = utc(2025, 1, 21, 9, 0)
    result = run("build", "--list", "late", "--frequency", "daily")
    assert lines(result) == [
        "late daily: nothing due (the issue of 2025-01-21 was due 2025-01-21 07:00 UTC, before"
        " the list was created); next 2025-01-22 at Wed 2025-01-22 07:00 UTC"
        " = 2025-01-22 07:00 UTC"
    ]
    assert db.execute("SELECT count(*) FROM digests").fetchone()[0] == 0


def test_a_past_issue_needs_a_date_and_past_the_lateness_force(run, world, db, clock):
    clock.now = utc(2025, 3, 1, 12, 0)
    refused = run("build", "--list", "world", "--frequency", "daily", "--date", "2025-01-21")
    assert refused.exit_code == 1
    assert refused.stderr.strip() == (
        "world daily: not built: the issue of 2025-01-21 was due 2025-01-21 07:00 UTC and is"
        " 941.0 h late, over max_lateness_daily_hours (24.0 h); `digest run` would not send it:"
        " add --force to build it anyway"
    )
    assert db.execute("SELECT count(*) FROM digests").fetchone()[0] == 0
    forced = run("build", "--list", "world", "--frequency", "daily", "--date", "2025-01-21",
                 "--force")  # fmt: skip
    assert forced.exit_code == 0, forced.output
    assert lines(forced)[0] == "world daily 2025-01-21, covers Mon 20 Jan 2025 (UTC): built"
    # An issue within the lateness needs no --force.
    clock.now = utc(2025, 1, 22, 7, 30)
    assert run("build", "--date", "2025-01-22", "--frequency", "daily").exit_code == 0


def test_force_goes_with_a_date(run, world, clock):
    result = run("build", "--force")
    assert result.exit_code == 2 and "--force goes with --date" in result.output


@pytest.mark.parametrize(
    "now",
    [
        utc(2025, 1, 21, 6, 59),
        utc(2025, 1, 21, 7, 0),
        utc(2025, 1, 21, 23, 0),
        utc(2025, 1, 27, 7, 0),
        utc(2025, 1, 30, 8, 0),
    ],  # fmt: skip
)
def test_build_now_builds_exactly_what_the_scheduler_plans(db, world, now):
    config = load_config(None, env={})
    due, _ = plan(db, config, now=now)
    result = build_now(db, config, now=now)
    assert sorted((b.mailing_list.slug, b.frequency, b.period.label) for b in result.built) == (
        sorted((d.mailing_list.slug, d.frequency, d.period.label) for d in due)
    )
    # ... and what it did not build, it explains with the same check the scheduler uses.
    for nothing in result.not_due:
        assert not check_due(db, config, world, nothing.frequency, now=now).due
    assert len(result.built) + len(result.not_due) == 2
    assert plan(db, config, now=now + timedelta(seconds=1))[0] == []  # built: nothing left
