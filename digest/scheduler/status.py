"""``digest status``: what the scheduler did last and will do next, per list and frequency, and
what the ledger still owes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from ..audience.lists import MailingList, all_lists
from ..audience.records import FREQUENCIES
from ..audience.subscriptions import active_count
from ..delivery import ledger
from ..ingest.feeds import Feed, list_feeds
from ..issues.periods import Period, next_issue
from ..issues.store import latest_digest
from .plan import last_tick_at, recent_skips
from .runner import running_pid


@dataclass
class IssueStatus:
    frequency: str
    subscribers: int  # active
    last: dict | None  # the most recent digest: label, built_at, delivery counts by status
    next: Period  # the first issue whose send time is after now


@dataclass
class ListStatus:
    mailing_list: MailingList
    issues: list[IssueStatus]


@dataclass
class SchedulerStatus:
    now: datetime
    running_pid: int | None  # 0: running, pid unknown
    last_tick_at: datetime | None
    lists: list[ListStatus]
    queued: int
    deferred: int
    next_retry_at: datetime | None
    skipped: list[dict]  # the most recent skipped issues
    feed_errors: list[Feed]


def scheduler_status(
    db: Database, db_path: str | Path, *, now: datetime, recent: int = 10
) -> SchedulerStatus:
    lists = []
    for mlist in all_lists(db):
        issues = []
        for frequency in FREQUENCIES:
            last = latest_digest(db, mlist.id, frequency)
            last_info: dict[str, Any] | None = None
            if last is not None:
                last_info = {
                    "digest_id": last.id,
                    "period": last.period_label,
                    "built_at": last.built_at,
                    "deliveries": ledger.status_counts(db, last.id),
                }
            issues.append(
                IssueStatus(
                    frequency,
                    active_count(db, mlist, frequency),
                    last_info,
                    next_issue(mlist, frequency, now),
                )
            )
        lists.append(ListStatus(mlist, issues))
    owed = ledger.owed(db)
    return SchedulerStatus(
        now=now,
        running_pid=running_pid(db_path),
        last_tick_at=last_tick_at(db),
        lists=lists,
        queued=owed.queued,
        deferred=owed.deferred,
        next_retry_at=owed.next_retry_at,
        skipped=recent_skips(db, recent),
        feed_errors=[f for f in list_feeds(db) if f.last_error],
    )
