"""``digest build`` by hand, under the scheduler's rule for "due" (``plan.check_due``): without
a date it builds the issue ``digest run`` would send now, or says why none is due and which
comes next; with a date it builds that issue, but one older than ``[schedule]
max_lateness_*_hours`` only when forced, because its deliveries would go out as stale as the
scheduler refuses to send them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlite_utils import Database

from ..audience.lists import MailingList, all_lists, get_list
from ..audience.records import FREQUENCIES
from ..audience.subscriptions import has_active_subscribers
from ..config import Config
from ..delivery.publish import BuildFailure, build_for_date, build_issues
from ..issues.build import BuiltDigest, ProgressCallback
from ..issues.periods import Period
from .plan import DueCheck, Skipped, check_due, plan, stale_reason

Progress = Callable[[MailingList, str], ProgressCallback | None]


@dataclass(frozen=True)
class NotDue:
    """A (list, frequency) with nothing to build now: why, and which issue is next."""

    mailing_list: MailingList
    frequency: str
    reason: str
    next: Period


@dataclass
class ManualBuild:
    """What ``build_now`` did: the issues built (or found built), the (list, frequency) pairs
    with nothing due and why, and the ones that failed."""

    built: list[BuiltDigest] = field(default_factory=list)
    not_due: list[NotDue] = field(default_factory=list)
    failures: list[BuildFailure] = field(default_factory=list)


def build_now(
    db: Database,
    config: Config,
    *,
    now: datetime,
    list_slug: str | None = None,
    frequency: str | None = None,
    progress: Progress | None = None,
) -> ManualBuild:
    """For every (list, frequency) with active subscribers (or the ones selected): build what
    a ``digest run`` tick at ``now`` would build (``plan``), and an issue that is due but
    already built again (which queues anyone who became active since); else say why nothing
    is due and which issue is next."""
    lists = [get_list(db, list_slug)] if list_slug else all_lists(db)
    frequencies = [frequency] if frequency else list(FREQUENCIES)
    wanted = {(m.id, f) for m in lists for f in frequencies}
    planned, skipped = plan(db, config, now=now)
    jobs: list[tuple[MailingList, str, date]] = [
        (d.mailing_list, d.frequency, d.period.issue_date)
        for d in planned
        if (d.mailing_list.id, d.frequency) in wanted
    ]
    result = ManualBuild()
    covered = {(mlist.id, freq) for mlist, freq, _ in jobs}
    for mlist in lists:
        for freq in frequencies:
            if (mlist.id, freq) in covered or not has_active_subscribers(db, mlist, freq):
                continue
            check = check_due(db, config, mlist, freq, now=now)
            if not mlist.approval.required and check.due and check.built:
                jobs.append((mlist, freq, check.period.issue_date))
                continue
            result.not_due.append(NotDue(mlist, freq, _why_not(mlist, check, skipped), check.next))
    result.built = build_issues(
        db, config, jobs, now=now, progress=progress, failures=result.failures
    )
    return result


def _why_not(mlist: MailingList, check: DueCheck, skipped: list[Skipped]) -> str:
    for skip in skipped:
        same = (skip.mailing_list.id, skip.frequency, skip.period)
        if same == (mlist.id, check.frequency, check.period):
            return f"the issue of {skip.period.label} is {skip.reason}"
    if mlist.approval.required:
        return (
            "the list is in approval mode: an issue is built for the editors"
            f" {_duration(mlist.approval.lead)} before its send time and queued once approved"
        )
    return check.reason or "already built"


def _duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"


def build_dated(
    db: Database,
    config: Config,
    issue_date: date,
    *,
    now: datetime,
    force: bool = False,
    list_slug: str | None = None,
    frequency: str | None = None,
    progress: Progress | None = None,
    failures: list[BuildFailure] | None = None,
) -> list[BuiltDigest]:
    """Build the issues of ``issue_date`` (``publish.build_for_date``); one that is too late to
    send now is refused (a failure naming ``--force``) unless ``force``."""

    def refuse(mlist: MailingList, freq: str, period: Period) -> str | None:
        stale = None if force else stale_reason(config, period, now)
        if stale is None:
            return None
        return (
            f"the issue of {period.label} was due {period.send_at:%Y-%m-%d %H:%M} UTC and is"
            f" {stale}; `digest run` would not send it: add --force to build it anyway"
        )

    return build_for_date(db, config, issue_date, now=now, list_slug=list_slug,
                          frequency=frequency, progress=progress, failures=failures,
                          refuse=refuse)  # fmt: skip
