"""The global suppression list: the only module that writes ``suppressions``. A suppressed
address is never mailed, whatever its subscriptions say, and is never subscribed again except by
the person's own new confirmation or an admin's explicit ``force``."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import datetime

from sqlite_utils import Database

from ..errors import InvalidInput, NotFound
from ..store import transaction
from ..timeutil import to_iso
from .history import record_event
from .records import Suppression


def is_suppressed(db: Database, email: str) -> bool:
    return db.execute("SELECT 1 FROM suppressions WHERE email = ?", [email]).fetchone() is not None


def get_suppression(db: Database, email: str) -> Suppression | None:
    row = db.execute(
        "SELECT email, reason, source, created_at FROM suppressions WHERE email = ?", [email]
    ).fetchone()
    return Suppression(*row) if row else None


def suppressed_among(db: Database, emails: Iterable[str]) -> dict[str, str | None]:
    """address -> reason, for the suppressed ones among ``emails`` (one query)."""
    if not db.execute("SELECT EXISTS (SELECT 1 FROM suppressions)").fetchone()[0]:
        return {}
    return dict(
        db.execute(
            "SELECT email, reason FROM suppressions WHERE email IN (SELECT value FROM json_each(?))",
            [json.dumps(list(emails), ensure_ascii=False)],
        ).fetchall()
    )


def count_suppressions(db: Database) -> int:
    return int(db.execute("SELECT count(*) FROM suppressions").fetchone()[0])


def iter_suppressions(db: Database) -> Iterator[Suppression]:
    for row in db.execute(
        "SELECT email, reason, source, created_at FROM suppressions ORDER BY created_at, email"
    ):
        yield Suppression(*row)


def search_suppressions(db: Database, query: str = "", *, limit: int = 100) -> list[Suppression]:
    """The newest suppressions whose address contains ``query`` (the admin's page)."""
    like = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return [
        Suppression(*row)
        for row in db.execute(
            "SELECT email, reason, source, created_at FROM suppressions"
            " WHERE email LIKE ? ESCAPE '\\' ORDER BY created_at DESC, email LIMIT ?",
            [like, limit],
        )
    ]


def suppress(
    db: Database,
    email: str,
    reason: str | None,
    *,
    source: str,
    now: datetime,
    event: bool = True,
) -> bool:
    """Add ``email`` (normalised) to the suppression list, recorded in its history unless
    ``event=False`` (the caller records its own). Returns False if already there."""
    with transaction(db):
        if is_suppressed(db, email):
            return False
        db.execute(
            "INSERT INTO suppressions (email, reason, source, created_at) VALUES (?, ?, ?, ?)",
            [email, reason, source, to_iso(now)],
        )
        if event:
            record_event(db, email, "suppressed", source=source, now=now, reason=reason)
    return True


def lift_suppression(db: Database, email: str, *, source: str, reason: str, now: datetime) -> None:
    """Take ``email`` off the suppression list (the person confirmed again, or an admin forced
    it); the history keeps why it had been suppressed."""
    old = get_suppression(db, email)
    if old is None:
        return
    db.execute("DELETE FROM suppressions WHERE email = ?", [email])
    record_event(
        db,
        email,
        "unsuppressed",
        source=source,
        now=now,
        old_status="suppressed",
        reason=f"{reason} (was suppressed: {old.reason or 'no reason given'})",
    )


def unsuppress(db: Database, email: str, *, reason: str, source: str, now: datetime) -> Suppression:
    """An admin lifts the suppression of ``email`` (normalised), with a ``reason`` recorded in
    its history; returns what was lifted. The address's ended subscriptions stay ended: only
    the person's new confirmation or an admin's re-activation subscribes it again."""
    if not (reason or "").strip():
        raise InvalidInput("give a reason for lifting the suppression; it is kept in the history")
    with transaction(db):
        old = get_suppression(db, email)
        if old is None:
            raise NotFound(f"{email} is not on the suppression list")
        lift_suppression(db, email, source=source, reason=reason.strip(), now=now)
    return old
