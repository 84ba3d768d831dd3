"""Approval of issues for lists in approval mode: the only module that writes
``issue_approvals``.

An issue of such a list is built ``Approval.lead`` before its send time as a draft: its digest
and variants are stored but no delivery is queued (``delivery.publish`` asks ``is_held``), and
it is recorded here as ``awaiting``; the scheduler then tells the list's editors by email. An
editor approves it (``digest issues approve``, or the web editor's button through
``approve_issues``); the scheduler queues its deliveries at the send time, or at once if the
approval came later, up to ``Approval.deadline`` after the send time. An issue still awaiting
approval then is ``skipped`` with the reason (and ``digest status`` shows it). Nothing is ever
queued for an issue that was not approved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from sqlite_utils import Database

from ..audience.lists import MailingList
from ..errors import InvalidInput, NotFound
from ..store import transaction
from ..timeutil import from_iso, to_iso
from .periods import Period


class ApprovalStatus(StrEnum):
    AWAITING = "awaiting"
    APPROVED = "approved"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class IssueApproval:
    id: int
    list_id: int
    frequency: str
    period_label: str
    status: ApprovalStatus
    requested_at: datetime
    notified_at: datetime | None
    notify_error: str | None
    decided_at: datetime | None
    decided_by: str | None
    detail: str | None
    released_at: datetime | None

    @classmethod
    def from_row(cls, row: dict) -> IssueApproval:
        def when(name: str) -> datetime | None:
            return from_iso(row[name]) if row[name] else None

        return cls(
            id=row["id"],
            list_id=row["list_id"],
            frequency=row["frequency"],
            period_label=row["period_label"],
            status=ApprovalStatus(row["status"]),
            requested_at=from_iso(row["requested_at"]),
            notified_at=when("notified_at"),
            notify_error=row["notify_error"],
            decided_at=when("decided_at"),
            decided_by=row["decided_by"],
            detail=row["detail"],
            released_at=when("released_at"),
        )


def approval_of(db: Database, list_id: int, frequency: str, label: str) -> IssueApproval | None:
    rows = list(
        db.query(
            "SELECT * FROM issue_approvals WHERE list_id = ? AND frequency = ? AND period_label = ?",
            [list_id, frequency, label],
        )
    )
    return IssueApproval.from_row(rows[0]) if rows else None


def is_held(db: Database, mlist: MailingList, period: Period, *, new: bool, now: datetime) -> bool:
    """Whether a build of this issue at ``now`` must queue nothing: the list is in approval
    mode and the issue is not approved, or its send time has not come (an approved issue goes
    out at its send time, not when approved). An issue built before the list went into
    approval mode (``new`` false, no approval record) keeps going out as before."""
    if not mlist.approval.required:
        return False
    found = approval_of(db, mlist.id, period.frequency, period.label)
    if found is None:
        return new
    return found.status is not ApprovalStatus.APPROVED or now < period.send_at


def request_approval(db: Database, mlist: MailingList, period: Period, *, now: datetime) -> None:
    """Record that the issue was built and awaits approval (inside the build's transaction;
    a second build of the same issue changes nothing)."""
    db.execute(
        "INSERT OR IGNORE INTO issue_approvals (list_id, frequency, period_label, status,"
        " requested_at) VALUES (?, ?, ?, 'awaiting', ?)",
        [mlist.id, period.frequency, period.label, to_iso(now)],
    )


def mark_released(db: Database, approval_id: int, *, now: datetime) -> None:
    db.execute(
        "UPDATE issue_approvals SET released_at = coalesce(released_at, ?) WHERE id = ?",
        [to_iso(now), approval_id],
    )


def mark_notified(
    db: Database, approval_id: int, *, now: datetime, error: str | None = None
) -> None:
    """The editors were told (``error`` None), or telling them failed (tried again later)."""
    if error is None:
        db.execute(
            "UPDATE issue_approvals SET notified_at = ?, notify_error = NULL WHERE id = ?",
            [to_iso(now), approval_id],
        )
    else:
        db.execute("UPDATE issue_approvals SET notify_error = ? WHERE id = ?", [error, approval_id])


def skip_issue(db: Database, approval_id: int, *, reason: str, now: datetime) -> bool:
    """Skip an issue not approved by its deadline (or approved too late to send); False if it
    was queued meanwhile (by another process). Inside the caller's transaction."""
    cur = db.execute(
        "UPDATE issue_approvals SET status = 'skipped', detail = ?, decided_at = ?"
        " WHERE id = ? AND status != 'skipped' AND released_at IS NULL",
        [reason, to_iso(now), approval_id],
    )
    return bool(cur.rowcount)


def to_notify(db: Database) -> list[IssueApproval]:
    """Issues awaiting approval whose editors were not told yet."""
    return [
        IssueApproval.from_row(row)
        for row in db.query(
            "SELECT * FROM issue_approvals WHERE status = 'awaiting' AND notified_at IS NULL"
            " ORDER BY requested_at, id"
        )
    ]


def approvals_of_date(db: Database, mlist: MailingList, issue_date: date) -> list[IssueApproval]:
    return [
        IssueApproval.from_row(row)
        for row in db.query(
            "SELECT * FROM issue_approvals WHERE list_id = ? AND period_label = ?"
            " ORDER BY frequency",
            [mlist.id, issue_date.isoformat()],
        )
    ]


def approve_issues(
    db: Database,
    mlist: MailingList,
    issue_date: date,
    *,
    by: str,
    now: datetime,
    frequency: str | None = None,
) -> list[IssueApproval]:
    """Approve the issues of ``mlist`` dated ``issue_date`` that await approval (only the
    ``frequency`` one, if given). Raises ``NotFound`` when none awaits approval, saying why."""
    found = [
        a
        for a in approvals_of_date(db, mlist, issue_date)
        if frequency is None or a.frequency == frequency
    ]
    waiting = [a for a in found if a.status is ApprovalStatus.AWAITING]
    if not waiting:
        if not mlist.approval.required and not found:
            raise InvalidInput(
                f"list {mlist.slug!r} is not in approval mode: its issues are sent without"
                " approval (`digest lists edit --approval on` changes that)"
            )
        done = "; ".join(f"{a.frequency}: {_describe(a)}" for a in found)
        raise NotFound(
            f"no issue of {mlist.slug!r} dated {issue_date} awaits approval"
            + (f" ({done})" if done else " (it is built for approval before its send time)")
        )
    with transaction(db):
        for a in waiting:
            db.execute(
                "UPDATE issue_approvals SET status = 'approved', decided_at = ?, decided_by = ?"
                " WHERE id = ? AND status = 'awaiting'",
                [to_iso(now), by, a.id],
            )
    return [
        approval
        for a in waiting
        if (approval := approval_of(db, mlist.id, a.frequency, a.period_label)) is not None
    ]


def _describe(a: IssueApproval) -> str:
    if a.status is ApprovalStatus.APPROVED:
        return f"approved by {a.decided_by}"
    if a.status is ApprovalStatus.SKIPPED:
        return f"skipped: {a.detail}"
    return "awaiting approval"


def describe(a: IssueApproval) -> str:
    """One line for ``digest issues show`` and the logs."""
    text = _describe(a)
    if a.status is ApprovalStatus.APPROVED and a.decided_at:
        text += f" at {a.decided_at:%Y-%m-%d %H:%M} UTC"
    if a.released_at:
        text += f"; queued at {a.released_at:%Y-%m-%d %H:%M} UTC"
    if a.status is ApprovalStatus.AWAITING:
        if a.notified_at:
            text += f"; editors told at {a.notified_at:%Y-%m-%d %H:%M} UTC"
        elif a.notify_error:
            text += f"; telling the editors failed: {a.notify_error}"
    return text
