"""The global suppression list: the only module that writes ``suppressions``. A suppressed
address is never mailed, whatever its subscriptions say, and is never subscribed again except by
the person's own new confirmation or an admin's explicit ``force``.

Suppressions are keyed by identity (``addresses.identity_key``: the address lower-cased), so
``ANN@example.com`` is suppressed when ``ann@example.com`` is. When a person deletes their data
(``subscriptions.erase_subscriber``) their address is kept only as a one-way hash of its
identity (``erased_key``): it cannot be read back, but the address is still recognised and never
mailed again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from datetime import datetime

from sqlite_utils import Database

from ..addresses import identity_key
from ..errors import InvalidInput, NotFound
from ..store import transaction
from ..timeutil import to_iso
from .history import record_event
from .records import Suppression

ERASED_PREFIX = "sha256:"


def erased_key(identity: str) -> str:
    """The suppression key of an identity whose address was erased: a SHA-256 of it (with a
    fixed prefix, so it is never the hash of the same text used elsewhere)."""
    digest = hashlib.sha256(b"digest-suppression-v1:" + identity.encode("utf-8")).hexdigest()
    return ERASED_PREFIX + digest


def _keys(identity: str) -> list[str]:
    return [identity, erased_key(identity)]


def _suppression(row: tuple[str, str | None, str | None, str, str]) -> Suppression:
    identity, email, reason, source, created_at = row
    return Suppression(email or identity, reason, source, created_at, erased=email is None)


def is_suppressed(db: Database, email: str) -> bool:
    """Whether the (normalised) address, in any letter case, is suppressed."""
    keys = _keys(identity_key(email))
    row = db.execute("SELECT 1 FROM suppressions WHERE identity IN (?, ?)", keys).fetchone()
    return row is not None


def get_suppression(db: Database, email: str) -> Suppression | None:
    row = db.execute(
        "SELECT identity, email, reason, source, created_at FROM suppressions"
        " WHERE identity IN (?, ?) ORDER BY email IS NULL LIMIT 1",
        _keys(identity_key(email)),
    ).fetchone()
    return _suppression(row) if row else None


def suppressed_identities(db: Database, identities: Iterable[str]) -> dict[str, str | None]:
    """identity -> reason, for the suppressed ones among ``identities`` (one query)."""
    if not db.execute("SELECT EXISTS (SELECT 1 FROM suppressions)").fetchone()[0]:
        return {}
    wanted = {}
    for identity in identities:
        wanted[identity] = identity
        wanted[erased_key(identity)] = identity
    found: dict[str, str | None] = {}
    for key, reason in db.execute(
        "SELECT identity, reason FROM suppressions"
        " WHERE identity IN (SELECT value FROM json_each(?))",
        [json.dumps(list(wanted), ensure_ascii=False)],
    ):
        found.setdefault(wanted[key], reason)
    return found


def count_suppressions(db: Database) -> int:
    return int(db.execute("SELECT count(*) FROM suppressions").fetchone()[0])


def iter_suppressions(db: Database) -> Iterator[Suppression]:
    for row in db.execute(
        "SELECT identity, email, reason, source, created_at FROM suppressions"
        " ORDER BY created_at, identity"
    ):
        yield _suppression(row)


def search_suppressions(db: Database, query: str = "", *, limit: int = 100) -> list[Suppression]:
    """The newest suppressions whose address contains ``query`` (the admin's page; ASCII letters
    in any case). An erased address shows as its hash and matches only an empty query."""
    like = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return [
        _suppression(row)
        for row in db.execute(
            "SELECT identity, email, reason, source, created_at FROM suppressions"
            " WHERE coalesce(email, identity) LIKE ? ESCAPE '\\'"
            " ORDER BY created_at DESC, identity LIMIT ?",
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
    ``event=False`` (the caller records its own). Returns False if already there (in any
    letter case)."""
    with transaction(db):
        if is_suppressed(db, email):
            return False
        db.execute(
            "INSERT INTO suppressions (identity, email, reason, source, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [identity_key(email), email, reason, source, to_iso(now)],
        )
        if event:
            record_event(db, email, "suppressed", source=source, now=now, reason=reason)
    return True


def suppress_erased(
    db: Database, identity: str, reason: str, *, source: str, now: datetime
) -> None:
    """Keep an erased address on the suppression list as the hash of its identity only: any
    suppression of it in clear is replaced, and no history is written (there is none left)."""
    with transaction(db):
        db.execute("DELETE FROM suppressions WHERE identity IN (?, ?)", _keys(identity))
        db.execute(
            "INSERT INTO suppressions (identity, email, reason, source, created_at)"
            " VALUES (?, NULL, ?, ?, ?)",
            [erased_key(identity), reason, source, to_iso(now)],
        )


def lift_suppression(db: Database, email: str, *, source: str, reason: str, now: datetime) -> None:
    """Take ``email`` off the suppression list (the person confirmed again, or an admin forced
    it); the history keeps why it had been suppressed."""
    old = get_suppression(db, email)
    if old is None:
        return
    db.execute("DELETE FROM suppressions WHERE identity IN (?, ?)", _keys(identity_key(email)))
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
