"""The delivery ledger: one row per (digest, subscriber) in ``deliveries``, and the only module
that writes it or reads it. Building an issue enqueues its deliveries here (``enqueue``); a
sender claims owed deliveries in batches under a lease (owner +
expiry), so several senders on one database never hold the same row; it records each outcome
right after the server's reply (``sent``, ``deferred`` with a retry time, ``failed``,
``skipped``); ``recover`` releases the leases of senders that died.

A claimed row keeps its status (``queued`` or ``deferred``) and only gains ``lease_owner`` and
``lease_until``: if its sender disappears, the row is owed exactly as before and any sender may
take it once the lease expires.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlite_utils import Database

from ..audience.subscriptions import AUDIENCE_SELECT
from ..store import transaction
from ..timeutil import from_iso, to_iso


class DeliveryStatus(StrEnum):
    QUEUED = "queued"  # owed, never tried
    SENT = "sent"  # a relay accepted it
    DEFERRED = "deferred"  # owed, to be retried at next_attempt_at
    FAILED = "failed"  # given up: a permanent refusal, or deferred for too long
    SKIPPED = "skipped"  # not sent: unsubscribed or suppressed since it was queued


STATUSES = tuple(DeliveryStatus)
OWED = (DeliveryStatus.QUEUED, DeliveryStatus.DEFERRED)
# As written in the partial index idx_deliveries_pending: a query that means to walk it must
# spell the condition exactly so.
_OWED_SQL = "d.status IN ('queued', 'deferred')"

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


def due_filter(
    *, list_id: int | None, digest_id: int | None, retry_now: bool, leases: bool = True
) -> str:
    # The status test is written exactly as in the partial index idx_deliveries_pending, so
    # ``claim`` can walk that index (owed rows only, in id order): without it SQLite would sort
    # every owed row for each batch.
    where = [_OWED_SQL]
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
    where = due_filter(list_id=list_id, digest_id=digest_id, retry_now=retry_now)
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
    where = due_filter(list_id=list_id, digest_id=digest_id, retry_now=retry_now)
    params = {"now": to_iso(now), "list_id": list_id, "digest_id": digest_id, "limit": limit}
    until = to_iso(now + timedelta(seconds=lease_seconds))
    with transaction(db):
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


def recover(db: Database, *, alive: Callable[[int], bool] = _process_alive) -> int:
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
    uniform = rng.uniform if rng is not None else random.uniform
    delay = min(RETRY_BASE * 2 ** max(attempts - 1, 0), RETRY_CAP)
    return delay * uniform(0.5, 1.0)


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


def record_sent_many(
    db: Database, sent: list[tuple[int, str, str | None, str]], *, now: datetime
) -> None:
    """``record_sent`` for many deliveries at once: (delivery id, reply, relay, Message-ID)."""
    stamp = to_iso(now)
    db.conn.executemany(
        """
        UPDATE deliveries SET status = 'sent', attempts = attempts + 1, reply = ?, relay = ?,
            message_id = ?, sent_at = ?, updated_at = ?, next_attempt_at = NULL,
            lease_owner = NULL, lease_until = NULL
        WHERE id = ? AND status IN ('queued', 'deferred')
        """,
        [(reply, relay, mid, stamp, stamp, delivery_id) for delivery_id, reply, relay, mid in sent],
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


def summary(
    db: Database, *, digest_id: int | None = None, status: str | None = None
) -> list[dict[str, Any]]:
    """Counts per digest and status, with each digest's list and period."""
    where: list[str] = []
    params: list[Any] = []
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


# -- Enqueueing (inside the builder's transaction) -------------------------------------------


def enqueue(
    db: Database,
    digest_id: int,
    *,
    list_id: int,
    frequency: str,
    variant_of_tags: dict[str, int],
    now: datetime,
) -> int:
    """Queue a delivery of ``digest_id`` for every active, unsuppressed subscriber of the list
    and frequency not queued for it yet, with the variant their tag set maps to
    (``variant_of_tags``: raw ``tags`` JSON -> variant id; a tag set missing from it gets
    nothing). Returns how many were queued. One INSERT ... SELECT: the raw tags JSON of each
    subscription is mapped to its variant through a temporary table, so no Python runs per
    subscriber."""
    db.execute(
        "CREATE TEMP TABLE IF NOT EXISTS digest_variant_map"
        " (tags TEXT PRIMARY KEY, variant_id INTEGER NOT NULL)"
    )
    db.execute("DELETE FROM temp.digest_variant_map")
    db.execute(
        "INSERT INTO temp.digest_variant_map (tags, variant_id) SELECT key, value FROM json_each(?)",
        [json.dumps(variant_of_tags)],
    )
    stamp = to_iso(now)
    audience = AUDIENCE_SELECT.format(variant_map="temp.digest_variant_map")
    queued = db.execute(
        f"""
        INSERT OR IGNORE INTO deliveries
            (digest_id, variant_id, subscriber_id, email, status, created_at, updated_at)
        SELECT :digest_id, a.variant_id, a.subscriber_id, a.email, 'queued', :stamp, :stamp
        FROM ({audience}) a
        """,
        {"digest_id": digest_id, "stamp": stamp, "list_id": list_id, "frequency": frequency},
    ).rowcount
    db.execute("DELETE FROM temp.digest_variant_map")
    return int(queued)


def fail_variant(db: Database, variant_id: int, *, reason: str, now: datetime) -> int:
    """Fail every owed delivery of a variant that could not be rendered, with ``reason``."""
    cur = db.execute(
        "UPDATE deliveries SET status = 'failed', reply = ?, updated_at = ?, next_attempt_at = NULL"
        " WHERE variant_id = ? AND status IN ('queued', 'deferred')",
        [reason, to_iso(now), variant_id],
    )
    return int(cur.rowcount)


def skip_variant(db: Database, variant_id: int, *, reason: str, now: datetime) -> int:
    """Skip every owed delivery of a variant that has nothing to show any more (the editors
    dropped its articles), with ``reason``."""
    cur = db.execute(
        "UPDATE deliveries SET status = 'skipped', reply = ?, updated_at = ?,"
        " next_attempt_at = NULL WHERE variant_id = ? AND status IN ('queued', 'deferred')"
        " AND lease_owner IS NULL",
        [reason, to_iso(now), variant_id],
    )
    return int(cur.rowcount)


def counts_by_variant(db: Database, digest_id: int) -> dict[int, int]:
    """variant id -> deliveries of a digest (any status)."""
    counted = db.execute(
        "SELECT json_group_object(variant_id, n) FROM"
        " (SELECT variant_id, count(*) AS n FROM deliveries WHERE digest_id = ? GROUP BY variant_id)",
        [digest_id],
    ).fetchone()[0]
    return {int(k): n for k, n in json.loads(counted).items()}


def variant_recipients(db: Database, variant_id: int) -> int:
    row = db.execute("SELECT count(*) FROM deliveries WHERE variant_id = ?", [variant_id])
    return int(row.fetchone()[0])


def delivery_variant(db: Database, digest_id: int, subscriber_id: int) -> int | None:
    """The variant a subscriber's delivery of a digest was queued with, if any."""
    row = db.execute(
        "SELECT variant_id FROM deliveries WHERE digest_id = ? AND subscriber_id = ?",
        [digest_id, subscriber_id],
    ).fetchone()
    return int(row[0]) if row else None


# -- What the ledger says --------------------------------------------------------------------


def status_counts(db: Database, digest_id: int) -> dict[str, int]:
    """status -> deliveries of one digest."""
    return dict(
        db.execute(
            "SELECT status, count(*) FROM deliveries WHERE digest_id = ? GROUP BY status",
            [digest_id],
        ).fetchall()
    )


@dataclass(frozen=True)
class Owed:
    queued: int
    deferred: int
    next_retry_at: datetime | None


def owed(db: Database) -> Owed:
    """Deliveries still owed across every digest, and when the next deferred one is retried."""
    counts = dict(
        db.execute(
            "SELECT status, count(*) FROM deliveries d WHERE " + _OWED_SQL + " GROUP BY status"
        ).fetchall()
    )
    retry = db.execute(
        "SELECT min(next_attempt_at) FROM deliveries WHERE status = 'deferred'"
    ).fetchone()[0]
    return Owed(
        counts.get(DeliveryStatus.QUEUED, 0),
        counts.get(DeliveryStatus.DEFERRED, 0),
        from_iso(retry) if retry else None,
    )


def sent_among(db: Database, digest_ids: list[int]) -> set[int]:
    """The digests among ``digest_ids`` that count as sent: at least one delivery was
    accepted by a relay (the public archive shows only those)."""
    return {
        row[0]
        for row in db.execute(
            "SELECT DISTINCT digest_id FROM deliveries WHERE status = 'sent'"
            " AND digest_id IN (SELECT value FROM json_each(?))",
            [json.dumps(digest_ids)],
        )
    }


@dataclass
class PlannedDigest:
    """What ``send --dry-run`` would send for one digest."""

    digest_id: int
    list_slug: str
    frequency: str
    period_label: str
    due: int
    would_skip: int
    first_recipients: list[str] = field(default_factory=list)


def plan(
    db: Database,
    *,
    now: datetime,
    list_id: int | None,
    digest_id: int | None,
    retry_now: bool,
    limit: int | None,
) -> list[PlannedDigest]:
    """Per digest, the deliveries a send would take now (at most ``limit`` in all), how many of
    them it would skip (unsubscribed or suppressed since), and the first few addresses."""
    where = due_filter(list_id=list_id, digest_id=digest_id, retry_now=retry_now)
    params: dict[str, Any] = {"now": to_iso(now), "list_id": list_id, "digest_id": digest_id}
    rows = db.execute(
        f"""
        SELECT d.digest_id, l.slug, g.frequency, g.period_label, count(*) AS due,
               sum(CASE WHEN s.status IS NOT 'active' OR x.identity IS NOT NULL THEN 1 ELSE 0 END)
        FROM deliveries d JOIN digests g ON g.id = d.digest_id JOIN lists l ON l.id = g.list_id
        LEFT JOIN subscriptions s ON s.subscriber_id = d.subscriber_id AND s.list_id = g.list_id
        LEFT JOIN subscribers p ON p.id = d.subscriber_id
        LEFT JOIN suppressions x ON x.identity = p.identity
        WHERE {where} GROUP BY d.digest_id ORDER BY d.digest_id
        """,
        params,
    ).fetchall()
    planned = []
    remaining = limit
    for digest, slug, frequency, label, due, skip in rows:
        if remaining is not None:
            if remaining <= 0:
                break
            due = min(due, remaining)
            remaining -= due
        first = [
            r[0]
            for r in db.execute(
                f"SELECT d.email FROM deliveries d WHERE {where} AND d.digest_id = :d"
                " ORDER BY d.id LIMIT 5",
                {**params, "d": digest},
            )
        ]
        planned.append(PlannedDigest(digest, slug, frequency, label, due, min(skip, due), first))
    return planned


# -- The admin pages: one address's deliveries, recent issues' outcomes, relay errors --------


@dataclass(frozen=True)
class DeliveryRecord:
    """One delivery to one address, as the subscriber page shows it."""

    digest_id: int
    list_slug: str
    frequency: str
    period_label: str
    status: str
    attempts: int
    relay: str | None
    reply: str | None
    updated_at: str
    sent_at: str | None


def deliveries_to(db: Database, subscriber_id: int, *, limit: int = 50) -> list[DeliveryRecord]:
    """The newest deliveries to a subscriber, newest digest first."""
    # CROSS JOIN walks the digests (few) and probes the UNIQUE (digest_id, subscriber_id)
    # index for each, instead of scanning every delivery for the subscriber.
    rows = db.execute(
        """
        SELECT g.id, l.slug, g.frequency, g.period_label, d.status, d.attempts, d.relay, d.reply,
               d.updated_at, d.sent_at
        FROM digests g CROSS JOIN deliveries d ON d.digest_id = g.id AND d.subscriber_id = ?
        JOIN lists l ON l.id = g.list_id
        ORDER BY g.id DESC LIMIT ?
        """,
        [subscriber_id, limit],
    ).fetchall()
    return [DeliveryRecord(*row) for row in rows]


@dataclass(frozen=True)
class IssueOutcome:
    """A built issue and what became of its deliveries (bounce reports and complaints about
    them are ``feedback.events.counts_by_digest``)."""

    digest_id: int
    list_slug: str
    list_title: str
    frequency: str
    period_label: str
    built_at: str
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def recent_outcomes(db: Database, *, limit: int = 10) -> list[IssueOutcome]:
    """The newest built issues of every list with their delivery counts by status, newest
    first."""
    digests = db.execute(
        "SELECT g.id AS digest_id, l.slug, l.title, g.frequency, g.period_label, g.built_at"
        " FROM digests g JOIN lists l ON l.id = g.list_id ORDER BY g.built_at DESC, g.id DESC"
        " LIMIT ?",
        [limit],
    ).fetchall()
    if not digests:
        return []
    ids = [row[0] for row in digests]
    counts: dict[int, dict[str, int]] = {i: {s.value: 0 for s in STATUSES} for i in ids}
    for digest_id, status, n in db.execute(
        "SELECT digest_id, status, count(*) FROM deliveries"
        " WHERE digest_id IN (SELECT value FROM json_each(?)) GROUP BY digest_id, status",
        [json.dumps(ids)],
    ):
        counts[digest_id][status] = n
    return [
        IssueOutcome(
            digest_id=digest_id,
            list_slug=slug,
            list_title=title,
            frequency=frequency,
            period_label=label,
            built_at=built_at,
            counts=counts[digest_id],
        )
        for digest_id, slug, title, frequency, label, built_at in digests
    ]


@dataclass(frozen=True)
class SendError:
    """A delivery a relay deferred or refused, with its reply: the admin's relay health."""

    at: str
    status: str
    relay: str | None
    reply: str
    email: str
    digest_id: int


def recent_send_errors(db: Database, *, limit: int = 10) -> list[SendError]:
    """The newest deferred or failed deliveries that carry a reply, newest first."""
    rows = db.execute(
        "SELECT updated_at, status, relay, reply, email, digest_id FROM deliveries"
        " WHERE status IN ('deferred', 'failed') AND reply IS NOT NULL"
        " ORDER BY updated_at DESC LIMIT ?",
        [limit],
    ).fetchall()
    return [SendError(*row) for row in rows]


# --- one recipient's deliveries (a subscriber's own data) ----------------------------------------


def deliveries_of(db: Database, subscriber_id: int) -> list[dict[str, Any]]:
    """Every delivery to a subscriber, oldest first: the list, frequency and issue date of the
    digest, the status and when it was queued and sent (a subscriber's data download)."""
    # As in deliveries_to: walk the digests and probe the (digest_id, subscriber_id) index.
    return [
        {
            "list": row["slug"],
            "frequency": row["frequency"],
            "issue": row["period_label"],
            "status": row["status"],
            "queued_at": row["created_at"],
            "sent_at": row["sent_at"],
        }
        for row in db.query(
            "SELECT l.slug, g.frequency, g.period_label, d.status, d.created_at, d.sent_at"
            " FROM digests g CROSS JOIN deliveries d ON d.digest_id = g.id AND d.subscriber_id = ?"
            " JOIN lists l ON l.id = g.list_id ORDER BY g.id, d.id",
            [subscriber_id],
        )
    ]


def forget_recipient(db: Database, subscriber_id: int, *, now: datetime) -> int:
    """A subscriber deleted their data: their deliveries keep only what the ledger's counts
    need (digest, status, times), never the address or the server's replies (which may quote
    it); any still owed are skipped. Returns how many rows were changed."""
    stamp = to_iso(now)
    with transaction(db):
        return db.execute(
            "UPDATE deliveries SET email = '', relay = NULL, lease_owner = NULL,"
            " lease_until = NULL, updated_at = ?,"
            " reply = CASE WHEN status IN ('queued', 'deferred')"
            " THEN 'not sent: the recipient deleted their data' END,"
            " status = CASE WHEN status IN ('queued', 'deferred') THEN 'skipped' ELSE status END"
            " WHERE subscriber_id = ?",
            [stamp, subscriber_id],
        ).rowcount
