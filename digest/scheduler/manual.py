"""``digest build`` by hand, under the scheduler's rule for "due" (``plan.check_due``): without
a date it builds the issue ``digest run`` would send now, or says why none is due and which
comes next; with a date it builds that issue, but one older than ``[schedule]
max_lateness_*_hours`` only when forced, because its deliveries would go out as stale as the
scheduler refuses to send them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlite_utils import Database

from ..audience.lists import MailingList, all_lists, get_list
from ..audience.records import FREQUENCIES
from ..audience.subscriptions import has_active_subscribers
from ..config import Config
from ..delivery.publish import BuildFailure, build_for_date, build_issues
from ..issues.build import BuiltDigest, ProgressCallback
from ..issues.periods import Period
from .plan import DueCheck, check_due, stale_reason

Progress = Callable[[MailingList, str], ProgressCallback | None]


@dataclass
class ManualBuild:
    """What ``build_now`` did: the issues built (or found built), the (list, frequency) pairs
    with nothing due and why, and the ones that failed."""

    built: list[BuiltDigest] = field(default_factory=list)
    not_due: list[DueCheck] = field(default_factory=list)
    failures: list[BuildFailure] = field(default_factory=list)

    @property
    def checked(self) -> int:
        return len(self.built) + len(self.not_due) + len(self.failures)


def build_now(
    db: Database,
    config: Config,
    *,
    now: datetime,
    list_slug: str | None = None,
    frequency: str | None = None,
    progress: Progress | None = None,
) -> ManualBuild:
    """For every (list, frequency) with active subscribers (or the ones selected): build its
    latest issue if it is due now (an issue already built is returned as it is, after queueing
    anyone who became active since), else report why not and which issue is next."""
    lists = [get_list(db, list_slug)] if list_slug else all_lists(db)
    frequencies = [frequency] if frequency else list(FREQUENCIES)
    result = ManualBuild()
    jobs: list[tuple[MailingList, str, date]] = []
    for mlist in lists:
        for freq in frequencies:
            if not has_active_subscribers(db, mlist, freq):
                continue
            check = check_due(db, config, mlist, freq, now=now)
            if check.due:
                jobs.append((mlist, freq, check.period.issue_date))
            else:
                result.not_due.append(check)
    result.built = build_issues(
        db, config, jobs, now=now, progress=progress, failures=result.failures
    )
    return result


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
