"""Issue periods in the list's timezone, DST-correct, with the clock injected."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from digest.audience.lists import MailingList
from digest.errors import InvalidInput
from digest.issues.periods import (
    issue_for,
    latest_due,
    next_issue,
    parse_issue_date,
    previous_issue,
)


def _list(timezone="UTC", send_time="07:00", weekly_day="monday") -> MailingList:
    return MailingList(
        id=1,
        slug="world",
        title="World",
        from_addr="news@example.com",
        reply_to=None,
        tags=(),
        timezone=timezone,
        send_time=send_time,
        weekly_day=weekly_day,
        description=None,
    )


def test_daily_issue_covers_the_previous_local_day_in_nairobi():
    p = issue_for(_list("Africa/Nairobi"), "daily", date(2025, 1, 21))
    assert p.start == datetime(2025, 1, 19, 21, 0, tzinfo=UTC)
    assert p.end == datetime(2025, 1, 20, 21, 0, tzinfo=UTC)
    assert p.send_at == datetime(2025, 1, 21, 4, 0, tzinfo=UTC)
    assert p.label == "2025-01-21"
    assert p.describe() == "covers Mon 20 Jan 2025 (Africa/Nairobi)"


def test_new_york_spring_forward_day_is_one_23_hour_period():
    ny = _list("America/New_York")
    # 9 March 2025: clocks go from 02:00 EST to 03:00 EDT.
    p = issue_for(ny, "daily", date(2025, 3, 10))
    assert p.start == datetime(2025, 3, 9, 5, 0, tzinfo=UTC)
    assert p.end == datetime(2025, 3, 10, 4, 0, tzinfo=UTC)
    assert p.end - p.start == timedelta(hours=23)
    assert p.send_at == datetime(2025, 3, 10, 11, 0, tzinfo=UTC)  # 07:00 EDT
    before = issue_for(ny, "daily", date(2025, 3, 8))
    assert before.send_at == datetime(2025, 3, 8, 12, 0, tzinfo=UTC)  # 07:00 EST


def test_new_york_fall_back_day_is_one_25_hour_period():
    p = issue_for(_list("America/New_York"), "daily", date(2025, 11, 3))
    assert p.end - p.start == timedelta(hours=25)


@pytest.mark.parametrize("zone", ["America/New_York", "Africa/Nairobi", "Europe/London"])
def test_consecutive_periods_leave_no_gap_and_no_overlap_over_a_year(zone):
    mlist = _list(zone)
    day = date(2025, 1, 1)
    p = issue_for(mlist, "daily", day)
    for _ in range(400):
        following = issue_for(mlist, "daily", p.issue_date + timedelta(days=1))
        assert following.start == p.end
        assert previous_issue(mlist, following) == p
        p = following


def test_weekly_issue_date_moves_back_to_the_weekly_day_and_covers_seven_days():
    mlist = _list("America/New_York", weekly_day="monday")
    p = issue_for(mlist, "weekly", date(2025, 3, 12))  # a Wednesday
    assert p.issue_date == date(2025, 3, 10)
    assert p.local_start.date() == date(2025, 3, 3)
    assert p.local_end.date() == date(2025, 3, 10)
    # The week containing the spring-forward Sunday is an hour short.
    assert p.end - p.start == timedelta(days=7, hours=-1)
    assert p.describe() == "covers Mon 3 Mar 2025 – Sun 9 Mar 2025 (America/New_York)"


def test_latest_due_switches_at_the_local_send_instant():
    mlist = _list("Africa/Nairobi", send_time="07:00")
    send = datetime(2025, 1, 21, 4, 0, tzinfo=UTC)
    assert latest_due(mlist, "daily", send - timedelta(seconds=1)).issue_date == date(2025, 1, 20)
    assert latest_due(mlist, "daily", send).issue_date == date(2025, 1, 21)
    assert next_issue(mlist, "daily", send).issue_date == date(2025, 1, 22)


def test_latest_due_weekly_around_dst_in_new_york():
    mlist = _list("America/New_York", send_time="06:30", weekly_day="monday")
    send = datetime(2025, 3, 10, 10, 30, tzinfo=UTC)  # Monday 06:30 EDT
    assert latest_due(mlist, "weekly", send - timedelta(minutes=1)).issue_date == date(2025, 3, 3)
    assert latest_due(mlist, "weekly", send).issue_date == date(2025, 3, 10)
    assert latest_due(mlist, "weekly", send + timedelta(days=6)).issue_date == date(2025, 3, 10)


def test_bad_frequency_and_date_are_clear_errors():
    with pytest.raises(InvalidInput, match="daily or weekly"):
        issue_for(_list(), "monthly", date(2025, 1, 1))
    with pytest.raises(InvalidInput, match="YYYY-MM-DD"):
        parse_issue_date("21/01/2025")
