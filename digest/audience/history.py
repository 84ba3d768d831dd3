"""The history of every address: the only module that writes ``status_events``. Each change of
a subscription's status, each suppression and each removal is one row (time, list, old and new
status, source, reason), so ``subscribers show`` can say why someone stopped getting digests.

Events are found by identity (``addresses.identity_key``; the table's ``identity`` column is
computed by SQLite, see ``addresses.folded_identity``), so the history of ``Ann@Example.com``
includes what happened under ``ann@example.com``; each row keeps the spelling it was recorded
with."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlite_utils import Database

from ..addresses import folded_identity
from ..store.bulk import insert_rows
from ..timeutil import to_iso
from .records import StatusEvent

# (email, list slug or None, old status or None, new status, source, reason or None, ISO time)
EventRow = tuple[str, str | None, str | None, str, str, str | None, str]


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
        "INSERT INTO status_events (email, folded, list_slug, old_status, new_status, source,"
        " reason, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [email, folded_identity(email), list_slug, old_status, new_status, source, reason,
         to_iso(now)],
    )  # fmt: skip


def record_events(db: Database, rows: Iterable[EventRow]) -> None:
    """Many events at once (imports, syncs): multi-row inserts."""
    insert_rows(
        db.conn,
        "status_events (email, folded, list_slug, old_status, new_status, source, reason, at)",
        [(r[0], folded_identity(r[0]), *r[1:]) for r in rows],
    )


def events_for(db: Database, identity: str) -> list[StatusEvent]:
    return [
        StatusEvent(*r)
        for r in db.execute(
            "SELECT at, list_slug, old_status, new_status, source, reason FROM status_events"
            " WHERE identity = ? ORDER BY at, id",
            [identity],
        )
    ]


def forget(db: Database, identity: str) -> None:
    """Delete an address's history, in every spelling (its personal data), e.g. when the
    subscriber is removed."""
    db.execute("DELETE FROM status_events WHERE identity = ?", [identity])
