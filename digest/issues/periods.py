"""Digest periods: which local days an issue covers and when it is sent, in the list's timezone.

An issue is named by its *issue date*: the local date on which it is sent at the list's
``send_time``. A daily issue on local date D covers local day D-1 (``[D-1 00:00, D 00:00)``); a
weekly issue on the list's weekly day D covers the seven local days before it
(``[D-7 00:00, D 00:00)``). Boundaries are local midnights converted to UTC with zoneinfo, so a
23-hour or 25-hour day around a DST change is still exactly one daily period and consecutive
periods never overlap or leave a gap. ``now`` is always passed in (only the CLI reads the clock).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ..audience.lists import MailingList
from ..audience.records import FREQUENCIES
from ..errors import InvalidInput


@dataclass(frozen=True)
class Period:
    """One issue of a (list, frequency): the UTC instants it covers and when it is sent."""

    frequency: str
    issue_date: date  # local date of sending
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive
    send_at: datetime  # UTC instant of the local send time on the issue date
    timezone: str

    @property
    def label(self) -> str:
        return self.issue_date.isoformat()

    @property
    def local_start(self) -> datetime:
        return self.start.astimezone(ZoneInfo(self.timezone))

    @property
    def local_end(self) -> datetime:
        return self.end.astimezone(ZoneInfo(self.timezone))

    def describe(self) -> str:
        """'covers Mon 20 Jan 2025 – Tue 21 Jan 2025 00:00 Africa/Nairobi' style summary."""
        first = self.local_start.date()
        last = self.local_end.date() - timedelta(days=1)
        if first == last:
            return f"covers {_fmt(first)} ({self.timezone})"
        return f"covers {_fmt(first)} – {_fmt(last)} ({self.timezone})"


def _fmt(d: date) -> str:
    return f"{d:%a} {d.day} {d:%b %Y}"


def _check_frequency(frequency: str) -> None:
    if frequency not in FREQUENCIES:
        raise InvalidInput(f"frequency must be daily or weekly, not {frequency!r}")


def _local_midnight_utc(mlist: MailingList, d: date) -> datetime:
    # A midnight that falls in a DST gap (a few zones switch at 00:00) resolves with fold=0 to
    # the instant just after the gap; both neighbouring periods use the same instant.
    return datetime.combine(d, time(0), tzinfo=mlist.zone).astimezone(UTC)


def weekly_issue_date(mlist: MailingList, d: date) -> date:
    """The most recent weekly day of the list on or before ``d``."""
    return d - timedelta(days=(d.weekday() - mlist.weekday_index) % 7)


def issue_for(mlist: MailingList, frequency: str, issue_date: date) -> Period:
    """The issue sent on ``issue_date`` (local). For weekly, ``issue_date`` is moved back to the
    most recent weekly day on or before it; compare ``period.issue_date`` to tell."""
    _check_frequency(frequency)
    if frequency == "weekly":
        issue_date = weekly_issue_date(mlist, issue_date)
        first = issue_date - timedelta(days=7)
    else:
        first = issue_date - timedelta(days=1)
    send_at = datetime.combine(issue_date, mlist.send_clock, tzinfo=mlist.zone).astimezone(UTC)
    return Period(
        frequency=frequency,
        issue_date=issue_date,
        start=_local_midnight_utc(mlist, first),
        end=_local_midnight_utc(mlist, issue_date),
        send_at=send_at,
        timezone=mlist.timezone,
    )


def latest_due(mlist: MailingList, frequency: str, now: datetime) -> Period:
    """The most recent issue whose send instant is at or before ``now``."""
    _check_frequency(frequency)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    today = now.astimezone(mlist.zone).date()
    step = timedelta(days=7 if frequency == "weekly" else 1)
    candidate = issue_for(mlist, frequency, today)
    while candidate.send_at > now:
        candidate = issue_for(mlist, frequency, candidate.issue_date - step)
    return candidate


def next_issue(mlist: MailingList, frequency: str, now: datetime) -> Period:
    """The first issue whose send instant is after ``now``."""
    current = latest_due(mlist, frequency, now)
    step = timedelta(days=7 if frequency == "weekly" else 1)
    return issue_for(mlist, frequency, current.issue_date + step)


def previous_issue(mlist: MailingList, period: Period) -> Period:
    step = timedelta(days=7 if period.frequency == "weekly" else 1)
    return issue_for(mlist, period.frequency, period.issue_date - step)


def parse_issue_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"--date {value!r}: expected a date as YYYY-MM-DD") from None
