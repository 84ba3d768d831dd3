"""Subscribers and their subscriptions: status changes (always recorded with time, source and
reason), the global suppression list, and bounces. (CLI administration, import/export, sync:
see the subscribers issue.)"""

from __future__ import annotations

from datetime import datetime

from sqlite_utils import Database

from .timeutil import to_iso

STATUSES = ("pending", "active", "unsubscribed", "bounced", "complained")
SOURCES = ("cli", "import", "sync", "web", "bounce")


def record_event(
    db: Database,
    email: str,
    new_status: str,
    *,
    source: str,
    now: datetime,
    list_slug: str | None = None,
    old_status: str | None = None,
    reason: str | None = None,
) -> None:
    db.execute(
        "INSERT INTO status_events (email, list_slug, old_status, new_status, source, reason, at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [email, list_slug, old_status, new_status, source, reason, to_iso(now)],
    )


def is_suppressed(db: Database, email: str) -> bool:
    return db.execute("SELECT 1 FROM suppressions WHERE email = ?", [email]).fetchone() is not None


def suppress(db: Database, email: str, reason: str | None, *, source: str, now: datetime) -> bool:
    """Add ``email`` (normalised) to the suppression list. Returns False if already there."""
    with db.atomic():
        if is_suppressed(db, email):
            return False
        db.execute(
            "INSERT INTO suppressions (email, reason, source, created_at) VALUES (?, ?, ?, ?)",
            [email, reason, source, to_iso(now)],
        )
        record_event(db, email, "suppressed", source=source, now=now, reason=reason)
    return True


def mark_bounced(
    db: Database, email: str, reason: str, *, now: datetime, source: str = "bounce"
) -> None:
    """A permanent failure (5.1.x unknown user, 5.2.1 mailbox disabled): every pending or active
    subscription of ``email`` becomes ``bounced`` and the address is suppressed, with the
    server's reply as the reason."""
    with db.atomic():
        rows = list(
            db.query(
                """
                SELECT s.id, s.status, l.slug FROM subscriptions s
                JOIN subscribers p ON p.id = s.subscriber_id JOIN lists l ON l.id = s.list_id
                WHERE p.email = ? AND s.status IN ('pending', 'active')
                """,
                [email],
            )
        )
        for row in rows:
            db.execute(
                "UPDATE subscriptions SET status = 'bounced', updated_at = ? WHERE id = ?",
                [to_iso(now), row["id"]],
            )
            record_event(
                db,
                email,
                "bounced",
                source=source,
                now=now,
                list_slug=row["slug"],
                old_status=row["status"],
                reason=reason,
            )
        suppress(db, email, reason, source=source, now=now)
