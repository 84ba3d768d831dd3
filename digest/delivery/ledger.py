"""The delivery ledger: one row per (digest, subscriber) in ``deliveries``, and the only place
that changes its state. A sender claims owed deliveries in batches under a lease (owner +
expiry), so several senders on one database never hold the same row; it records each outcome
right after the server's reply (``sent``, ``deferred`` with a retry time, ``failed``,
``skipped``); ``recover`` releases the leases of senders that died.

A claimed row keeps its status (``queued`` or ``deferred``) and only gains ``lease_owner`` and
``lease_until``: if its sender disappears, the row is owed exactly as before and any sender may
take it once the lease expires.
"""

from __future__ import annotations

import os
import random
import secrets
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlite_utils import Database

from .store import write_transaction
from .timeutil import from_iso, to_iso

STATUSES = ("queued", "sent", "deferred", "failed", "skipped")
OWED = ("queued", "deferred")

# Retry schedule for deferred deliveries: 5 min, 10 min, 20 min ... capped at 6 hours, each
# delay drawn from its upper half ("equal jitter") so that a relay that refused a whole batch
# at once does not get the whole batch back at the same second.
RETRY_BASE = timedelta(minutes=5)
RETRY_CAP = timedelta(hours=6)


@dataclass(frozen=True)
class Delivery:
    """A claimed delivery, with what sending it needs."""

    id: int
    digest_id: int
    variant_id: int
    list_id: int
    subscriber_id: int
    email: str
    name: str | None
    attempts: int
    created_at: datetime


def new_lease_owner() -> str:
    """``host/pid/random``: unique per sender run; ``recover`` reads the host and pid back."""
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"


def _due_filter(
    *, list_id: int | None, digest_id: int | None, retry_now: bool, leases: bool = True
) -> str:
    # The status test is written exactly as in the partial index idx_deliveries_pending, so
    # ``claim`` can walk that index (owed rows only, in id order): without it SQLite would sort
    # every owed row for each batch.
    where = ["d.status IN ('queued', 'deferred')"]
    if leases:
        where.append("(d.lease_until IS NULL OR d.lease_until <= :now)")
    if not retry_now:
        where.append("(d.next_attempt_at IS NULL OR d.next_attempt_at <= :now)")
    if digest_id is not None:
        where.append("d.digest_id = :digest_id")
    if list_id is not None:
        where.append("d.digest_id IN (SELECT id FROM digests WHERE list_id = :list_id)")
    return " AND ".join(where)


def count_due(
    db: Database,
    *,
    now: datetime,
    list_id: int | None = None,
    digest_id: int | None = None,
    retry_now: bool = False,
) -> int:
    """How many deliveries a sender could claim right now."""
    where = _due_filter(list_id=list_id, digest_id=digest_id, retry_now=retry_now)
    row = db.execute(
        f"SELECT count(*) FROM deliveries d WHERE {where}",
        {"now": to_iso(now), "list_id": list_id, "digest_id": digest_id},
    ).fetchone()
    return row[0]


def claim(
    db: Database,
    owner: str,
    *,
    now: datetime,
    lease_seconds: float,
    limit: int,
    list_id: int | None = None,
    digest_id: int | None = None,
    retry_now: bool = False,
) -> list[Delivery]:
    """Lease up to ``limit`` owed deliveries to ``owner`` (oldest first) and return them.

    Runs in one ``BEGIN IMMEDIATE`` transaction, so two senders can never claim the same row.
    ``retry_now`` also takes deferred deliveries whose retry time has not come yet."""
    if limit <= 0:
        return []
    where = _due_filter(list_id=list_id, digest_id=digest_id, retry_now=retry_now)
    params = {"now": to_iso(now), "list_id": list_id, "digest_id": digest_id, "limit": limit}
    until = to_iso(now + timedelta(seconds=lease_seconds))
    with write_transaction(db):
        rows = db.execute(
            f"""
            SELECT d.id, d.digest_id, d.variant_id, g.list_id, d.subscriber_id, d.email,
                   s.name, d.attempts, d.created_at
            FROM deliveries d INDEXED BY idx_deliveries_pending
            JOIN digests g ON g.id = d.digest_id
            LEFT JOIN subscribers s ON s.id = d.subscriber_id
            WHERE {where}
            ORDER BY d.id LIMIT :limit
            """,
            params,
        ).fetchall()
        db.conn.executemany(
            "UPDATE deliveries SET lease_owner = ?, lease_until = ? WHERE id = ?",
            [(owner, until, row[0]) for row in rows],
        )
    return [
        Delivery(
            id=r[0],
            digest_id=r[1],
            variant_id=r[2],
            list_id=r[3],
            subscriber_id=r[4],
            email=r[5],
            name=r[6],
            attempts=r[7],
            created_at=from_iso(r[8]),
        )
        for r in rows
    ]


def renew(db: Database, owner: str, *, now: datetime, lease_seconds: float) -> int:
    """Extend every lease ``owner`` still holds (a long, rate-limited run keeps its rows)."""
    cur = db.execute(
        "UPDATE deliveries SET lease_until = ? WHERE lease_owner = ?"
        " AND status IN ('queued', 'deferred')",
        [to_iso(now + timedelta(seconds=lease_seconds)), owner],
    )
    return cur.rowcount


def release(db: Database, owner: str, ids: Iterable[int] | None = None) -> int:
    """Give back leases of deliveries ``owner`` claimed but did not send (all, or ``ids``)."""
    if ids is None:
        cur = db.execute(
            "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?",
            [owner],
        )
        return cur.rowcount
    cur = db.conn.executemany(
        "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL"
        " WHERE id = ? AND lease_owner = ?",
        [(i, owner) for i in ids],
    )
    return cur.rowcount


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def recover(db: Database, *, alive=_process_alive) -> int:
    """Release the leases of senders on this host whose process no longer exists, so their
    deliveries can be sent at once instead of after the lease expires. Leases of running
    senders, and of senders on other hosts (which cannot be checked from here), are kept.
    Returns the number of deliveries released."""
    host = socket.gethostname()
    owners = [
        r[0]
        for r in db.execute(
            "SELECT DISTINCT lease_owner FROM deliveries d"
            " WHERE d.status IN ('queued', 'deferred') AND lease_owner IS NOT NULL"
        )
    ]
    released = 0
    for owner in owners:
        owner_host, _, rest = owner.partition("/")
        pid_text = rest.partition("/")[0]
        if owner_host != host or not pid_text.isdigit():
            continue
        if not alive(int(pid_text)):
            released += release(db, owner)
    return released


def retry_delay(attempts: int, rng: random.Random | None = None) -> timedelta:
    """Backoff before the next try after ``attempts`` tries (>= 1), with jitter."""
    rng = rng or random
    delay = min(RETRY_BASE * 2 ** max(attempts - 1, 0), RETRY_CAP)
    return delay * rng.uniform(0.5, 1.0)


def record_sent(
    db: Database,
    delivery_id: int,
    *,
    reply: str,
    relay: str | None,
    message_id: str,
    now: datetime,
) -> None:
    db.execute(
        """
        UPDATE deliveries SET status = 'sent', attempts = attempts + 1, reply = ?, relay = ?,
            message_id = ?, sent_at = ?, updated_at = ?, next_attempt_at = NULL,
            lease_owner = NULL, lease_until = NULL
        WHERE id = ? AND status IN ('queued', 'deferred')
        """,
        [reply, relay, message_id, to_iso(now), to_iso(now), delivery_id],
    )


def record_failed(
    db: Database,
    delivery_id: int,
    *,
    reply: str,
    relay: str | None,
    message_id: str | None,
    now: datetime,
) -> None:
    db.execute(
        """
        UPDATE deliveries SET status = 'failed', attempts = attempts + 1, reply = ?, relay = ?,
            message_id = coalesce(?, message_id), updated_at = ?, next_attempt_at = NULL,
            lease_owner = NULL, lease_until = NULL
        WHERE id = ? AND status IN ('queued', 'deferred')
        """,
        [reply, relay, message_id, to_iso(now), delivery_id],
    )


def record_deferred(
    db: Database,
    delivery: Delivery,
    *,
    reply: str,
    relay: str | None,
    message_id: str | None,
    now: datetime,
    max_age: timedelta,
    rng: random.Random | None = None,
) -> str:
    """A temporary failure: schedule a retry, or fail the delivery once it is older than
    ``max_age`` (counted from when it was queued). Returns the status recorded."""
    deadline = delivery.created_at + max_age
    attempts = delivery.attempts + 1
    if now >= deadline:
        hours = max_age.total_seconds() / 3600
        record_failed(
            db,
            delivery.id,
            reply=f"gave up after {attempts} attempts over {hours:g} hours; last reply: {reply}",
            relay=relay,
            message_id=message_id,
            now=now,
        )
        return "failed"
    # The last retry happens at the deadline, not after it.
    next_at = min(now + retry_delay(attempts, rng), deadline)
    db.execute(
        """
        UPDATE deliveries SET status = 'deferred', attempts = attempts + 1, reply = ?, relay = ?,
            message_id = coalesce(?, message_id), updated_at = ?, next_attempt_at = ?,
            lease_owner = NULL, lease_until = NULL
        WHERE id = ? AND status IN ('queued', 'deferred')
        """,
        [reply, relay, message_id, to_iso(now), to_iso(next_at), delivery.id],
    )
    return "deferred"


def record_skipped(db: Database, delivery_id: int, *, reason: str, now: datetime) -> None:
    db.execute(
        """
        UPDATE deliveries SET status = 'skipped', reply = ?, updated_at = ?,
            next_attempt_at = NULL, lease_owner = NULL, lease_until = NULL
        WHERE id = ? AND status IN ('queued', 'deferred')
        """,
        [reason, to_iso(now), delivery_id],
    )


def sent_since(db: Database, since: datetime) -> int:
    """Deliveries sent at or after ``since`` (by any sender): the hourly rate limit's count."""
    return db.execute(
        "SELECT count(*) FROM deliveries WHERE sent_at IS NOT NULL AND sent_at >= ?",
        [to_iso(since)],
    ).fetchone()[0]


def summary(db: Database, *, digest_id: int | None = None, status: str | None = None) -> list[dict]:
    """Counts per digest and status, with each digest's list and period."""
    where, params = [], []
    if digest_id is not None:
        where.append("d.digest_id = ?")
        params.append(digest_id)
    if status is not None:
        where.append("d.status = ?")
        params.append(status)
    sql = f"""
        SELECT d.digest_id, l.slug AS list, g.frequency, g.period_label, d.status,
               count(*) AS count
        FROM deliveries d JOIN digests g ON g.id = d.digest_id JOIN lists l ON l.id = g.list_id
        {"WHERE " + " AND ".join(where) if where else ""}
        GROUP BY d.digest_id, d.status ORDER BY d.digest_id, d.status
    """
    by_digest: dict[int, dict] = {}
    for row in db.query(sql, params):
        entry = by_digest.setdefault(
            row["digest_id"],
            {
                "digest_id": row["digest_id"],
                "list": row["list"],
                "frequency": row["frequency"],
                "period": row["period_label"],
                "counts": {s: 0 for s in STATUSES},
            },
        )
        entry["counts"][row["status"]] = row["count"]
    return list(by_digest.values())


def listing(
    db: Database,
    *,
    statuses: Iterable[str],
    digest_id: int | None = None,
    limit: int | None = None,
) -> list[dict]:
    """Deliveries in ``statuses`` (newest change first) with their last server reply."""
    statuses = list(statuses)
    where = [f"status IN ({', '.join('?' for _ in statuses)})"]
    params: list = list(statuses)
    if digest_id is not None:
        where.append("digest_id = ?")
        params.append(digest_id)
    sql = (
        "SELECT id, digest_id, email, status, attempts, relay, reply, next_attempt_at,"
        " updated_at FROM deliveries WHERE " + " AND ".join(where) + " ORDER BY updated_at DESC"
    )
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return list(db.query(sql, params))
