"""What is due: the issues a tick at ``now`` builds and the ones it skips, and the record of
skips and ticks: the only module that writes ``schedule_events`` and ``schedule_state``.

Rules (see README "Running it unattended"; ``check_due`` is the rule, which ``digest build``
uses too):
- Per list and frequency with active subscribers, only the latest issue whose send time has
  passed (``periods.latest_due``) is ever built, and only if that send time is not before the
  list was created. If it is later than ``[schedule] max_lateness_daily_hours`` /
  ``max_lateness_weekly_hours`` it is skipped instead.
- Older issues missed while no scheduler ran (send time after the previous tick) are skipped,
  never sent: after downtime a list gets one catch-up issue, not a flood. Each skip is stored in
  ``schedule_events`` and logged once.
- A list in approval mode (``issues.approval``): its next issue is due to be built
  ``approval.lead`` before its send time (the build stores it without deliveries and the tick
  tells the editors); once approved and its send time has come, it is due again (that build
  queues its deliveries); still not approved ``approval.deadline`` after its send time, it is
  skipped, with the reason recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlite_utils import Database

from ..audience.lists import MailingList, all_lists
from ..audience.records import FREQUENCIES
from ..audience.subscriptions import has_active_subscribers
from ..config import Config
from ..issues import approval
from ..issues.periods import Period, latest_due, next_issue, previous_issue
from ..issues.store import find_digest
from ..store import transaction
from ..timeutil import from_iso, to_iso

# After long downtime, at most this many older issues per list and frequency are looked at (and
# recorded as skipped) in one tick; anything older is left alone.
MAX_MISSED = 100


@dataclass(frozen=True)
class Skipped:
    """An issue the scheduler will not send: too late, or missed while nothing ran."""

    mailing_list: MailingList
    frequency: str
    period: Period
    reason: str
    approval_id: int | None = None  # an issue that was not approved in time

    @property
    def name(self) -> str:
        return f"{self.mailing_list.slug}/{self.frequency}/{self.period.label}"


@dataclass(frozen=True)
class DueIssue:
    mailing_list: MailingList
    frequency: str
    period: Period
    for_approval: bool = False  # built ahead of its send time, for the editors to approve

    @property
    def name(self) -> str:
        return f"{self.mailing_list.slug}/{self.frequency}/{self.period.label}"


def last_tick_at(db: Database) -> datetime | None:
    row = db.execute("SELECT value FROM schedule_state WHERE key = 'last_tick_at'").fetchone()
    return from_iso(row[0]) if row else None


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.1f} h"


@dataclass(frozen=True)
class DueCheck:
    """The one rule for "due", shared by ``digest run`` (``plan``) and ``digest build``: of a
    (list, frequency), the latest issue whose send time has passed is due unless its send time
    came before the list was created or it is later than ``[schedule] max_lateness_*_hours``.
    ``built`` says whether it is built already (a tick then only sends what it still owes)."""

    mailing_list: MailingList
    frequency: str
    period: Period  # the latest issue whose send time is at or before now
    built: bool
    before_list: bool  # its send time came before the list existed: never due, never missed
    stale: str | None  # why it is too late to send, or None
    next: Period  # the first issue whose send time is after now

    @property
    def due(self) -> bool:
        return not self.before_list and self.stale is None

    @property
    def reason(self) -> str | None:
        """Why the latest issue is not due, or None if it is."""
        if self.before_list:
            return (
                f"the issue of {self.period.label} was due {_when(self.period)}, before the list"
                " was created"
            )
        if self.stale is not None:
            return f"the issue of {self.period.label} is {self.stale}"
        return None


def stale_reason(config: Config, period: Period, now: datetime) -> str | None:
    """Why ``period`` is too late to send at ``now`` (over the frequency's max lateness), or
    None. An issue whose send time is still ahead is never stale."""
    late = now - period.send_at
    limit = config.schedule.max_lateness(period.frequency)
    if late <= limit:
        return None
    return f"{_hours(late)} late, over max_lateness_{period.frequency}_hours ({_hours(limit)})"


def check_due(
    db: Database, config: Config, mlist: MailingList, frequency: str, *, now: datetime
) -> DueCheck:
    """Whether the latest issue of ``mlist`` and ``frequency`` is due at ``now`` (the rule in
    ``DueCheck``), and which issue comes next."""
    latest = latest_due(mlist, frequency, now)
    return DueCheck(
        mailing_list=mlist,
        frequency=frequency,
        period=latest,
        built=find_digest(db, mlist, latest) is not None,
        before_list=latest.send_at < from_iso(mlist.created_at),
        stale=stale_reason(config, latest, now),
        next=next_issue(mlist, frequency, now),
    )


def plan(db: Database, config: Config, *, now: datetime) -> tuple[list[DueIssue], list[Skipped]]:
    """The issues a tick at ``now`` builds, and the ones it skips (not yet recorded).

    Reads only; ``tick`` records the skips and the tick time."""
    previous_tick = last_tick_at(db)
    due: list[DueIssue] = []
    skipped: list[Skipped] = []
    for mlist in all_lists(db):
        created = from_iso(mlist.created_at)
        for frequency in FREQUENCIES:
            if not has_active_subscribers(db, mlist, frequency):
                continue
            check = check_due(db, config, mlist, frequency, now=now)
            skipped += _missed(db, mlist, check.period, previous_tick, created)
            if mlist.approval.required:
                more_due, more_skipped = _approval_issues(db, config, mlist, check.period, now=now)
                due += more_due
                skipped += more_skipped
                continue
            # An issue whose send time came before the list existed was never missed.
            if check.before_list or (check.built and not _held(db, mlist, check.period)):
                continue
            if check.stale is None:
                due.append(DueIssue(mlist, frequency, check.period))
            else:
                skipped.append(Skipped(mlist, frequency, check.period, check.stale))
    return due, skipped


def _held(db: Database, mlist: MailingList, period: Period) -> bool:
    """An issue built for approval while the list was in approval mode, never queued: once the
    list leaves approval mode it is due like any other (its build queues it)."""
    found = approval.approval_of(db, mlist.id, period.frequency, period.label)
    return (
        found is not None
        and found.released_at is None
        and found.status is not approval.ApprovalStatus.SKIPPED
    )


def _approval_issues(
    db: Database, config: Config, mlist: MailingList, latest: Period, *, now: datetime
) -> tuple[list[DueIssue], list[Skipped]]:
    """What is due for an approval-mode list (see the module docstring)."""
    created = from_iso(mlist.created_at)
    rules = mlist.approval
    due: list[DueIssue] = []
    skipped: list[Skipped] = []
    upcoming = latest_due(mlist, latest.frequency, now + rules.lead)
    for period in dict.fromkeys([latest, upcoming]):  # the same issue when the lead is 0
        if period.send_at < created:
            continue
        deadline = period.send_at + rules.deadline
        if find_digest(db, mlist, period) is None:
            if now <= deadline:
                due.append(DueIssue(mlist, period.frequency, period, for_approval=True))
            elif period == latest:
                reason = f"not built for approval before its deadline ({_when(period, deadline)})"
                skipped.append(Skipped(mlist, period.frequency, period, reason))
            continue
        found = approval.approval_of(db, mlist.id, period.frequency, period.label)
        if (
            found is None  # built before the list went into approval mode
            or found.released_at is not None
            or found.status is approval.ApprovalStatus.SKIPPED
            or period.send_at > now
        ):
            continue
        if found.status is approval.ApprovalStatus.APPROVED:
            late = now - period.send_at
            limit = max(config.schedule.max_lateness(period.frequency), rules.deadline)
            if late <= limit:
                due.append(DueIssue(mlist, period.frequency, period))
            else:
                reason = f"approved but {_hours(late)} late, over {_hours(limit)}"
                skipped.append(Skipped(mlist, period.frequency, period, reason, found.id))
        elif now > deadline:
            reason = f"not approved by its deadline ({_when(period, deadline)})"
            skipped.append(Skipped(mlist, period.frequency, period, reason, found.id))
    return due, skipped


def _missed(
    db: Database,
    mlist: MailingList,
    latest: Period,
    previous_tick: datetime | None,
    created: datetime,
) -> list[Skipped]:
    """Unbuilt issues before ``latest`` whose send time fell after the previous tick: no tick
    ever saw them due, so they were missed while nothing ran. Oldest first."""
    if previous_tick is None:
        return []  # the first tick on this database has no history to look back on
    horizon = max(previous_tick, created)
    missed = []
    period = previous_issue(mlist, latest)
    for _ in range(MAX_MISSED):
        if period.send_at <= horizon:
            break
        if find_digest(db, mlist, period) is None:
            reason = (
                f"missed while no scheduler ran (due {_when(period)});"
                f" only the latest issue, {latest.label}, is sent"
            )
            missed.append(Skipped(mlist, latest.frequency, period, reason))
        period = previous_issue(mlist, period)
    return missed[::-1]


def _when(period: Period, at: datetime | None = None) -> str:
    local = (at or period.send_at).astimezone(ZoneInfo(period.timezone))
    return f"{local:%Y-%m-%d %H:%M} {period.timezone}"


def record_skips(db: Database, skipped: list[Skipped], *, now: datetime) -> list[Skipped]:
    """Store the skips and the tick time; return the skips not recorded before (so each is
    logged once, however many ticks, or processes, see it)."""
    new = []
    stamp = to_iso(now)
    with transaction(db):
        for skip in skipped:
            cur = db.execute(
                "INSERT OR IGNORE INTO schedule_events (list_id, frequency, period_label, kind,"
                " detail, at) VALUES (?, ?, ?, 'skipped', ?, ?)",
                [skip.mailing_list.id, skip.frequency, skip.period.label, skip.reason, stamp],
            )
            if cur.rowcount:
                new.append(skip)
            if skip.approval_id is not None:
                approval.skip_issue(db, skip.approval_id, reason=skip.reason, now=now)
        db.execute(
            "INSERT INTO schedule_state (key, value) VALUES ('last_tick_at', ?)"
            " ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
            [stamp],
        )
    return new


def recent_skips(db: Database, limit: int = 10) -> list[dict[str, Any]]:
    """The most recently recorded skipped issues, newest first."""
    return [
        {
            "list": row["slug"],
            "frequency": row["frequency"],
            "period": row["period_label"],
            "reason": row["detail"],
            "at": row["at"],
        }
        for row in db.query(
            "SELECT l.slug, e.frequency, e.period_label, e.detail, e.at FROM schedule_events e"
            " JOIN lists l ON l.id = e.list_id WHERE e.kind = 'skipped'"
            " ORDER BY e.at DESC, e.period_label DESC LIMIT ?",
            [limit],
        )
    ]
