"""The record of what came back about subscribers: the only module that writes ``bounce_events``.
One row per bounce, complaint or provider delivery notice, whichever way it arrived (a bounce
mailbox, a provider webhook), keyed by ``event_key`` so that the same event recorded twice (a
provider's retry, a mailbox message read again after a crash) changes nothing.

It also reads what the policy and the edges need: an address's events since it last became active
(the input of ``policy.decide``), the list for ``digest bounces list``, counts per digest for
``digest deliveries`` and the web dashboard (``counts_by_digest``), and the delivery a report
names (read from the ledger's ``deliveries``, never written here).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlite_utils import Database

from ..addresses import folded_identity, identity_key
from ..store.bulk import select_in
from ..timeutil import from_iso, to_iso
from .policy import BounceEvent, BounceKind

# The kinds worth keeping: what ``policy.decide`` acts on. Delay warnings, auto-replies and
# reports that say nothing about the subscription are counted by the run that read them and
# not stored.
RECORDED_KINDS = (BounceKind.HARD, BounceKind.SOFT, BounceKind.COMPLAINT, BounceKind.DELIVERY)


class IdentifiedBy(StrEnum):
    """How an event was matched to its subscriber, most trustworthy first."""

    DELIVERY_TOKEN = "delivery-token"  # a provider handed back the token we set (signed)
    VERP = "verp"  # the return path it was sent back to (signed)
    LIST_UNSUBSCRIBE = "list-unsubscribe"  # the returned message's unsubscribe link (signed)
    MESSAGE_ID = "message-id"  # the returned message's Message-ID, agreeing with the report
    ADDRESS = "address"  # the address the report or the provider names
    RELAY = "relay"  # our relay refused the delivery while we sent it (no report to match)


@dataclass(frozen=True)
class NewEvent:
    """One event to record, about one subscriber's address."""

    email: str
    subscriber_id: int | None
    delivery_id: int | None
    kind: BounceKind
    source: str  # bounce-mailbox | webhook:ses | ...
    status: str | None
    diagnostic: str
    identified_by: IdentifiedBy
    message_key: str | None  # which message it is about (several reports count once)
    event_key: str
    occurred_at: datetime
    received_at: datetime

    def policy_event(self) -> BounceEvent:
        return BounceEvent(
            self.kind, self.occurred_at, self.source, self.diagnostic, self.message_key
        )


def record(db: Database, event: NewEvent) -> bool:
    """Store ``event`` unless an event with its key is already there. True if it was new."""
    if event.kind not in RECORDED_KINDS:
        raise ValueError(f"{event.kind} events are not recorded")
    cur = db.execute(
        "INSERT OR IGNORE INTO bounce_events (email, folded, subscriber_id, delivery_id, kind,"
        " source, status, diagnostic, identified_by, message_key, event_key, occurred_at,"
        " received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            event.email,
            folded_identity(event.email),  # the identity column is SQL's (store.migrations)
            event.subscriber_id,
            event.delivery_id,
            event.kind.value,
            event.source,
            event.status,
            event.diagnostic,
            event.identified_by.value,
            event.message_key,
            event.event_key,
            to_iso(event.occurred_at),
            to_iso(event.received_at),
        ],
    )
    return cur.rowcount == 1


def policy_events(db: Database, email: str, *, since: datetime | None) -> list[BounceEvent]:
    """The events recorded for ``email`` (in any letter case) at or after ``since``, as the
    policy's input."""
    rows = db.execute(
        "SELECT kind, occurred_at, source, diagnostic, message_key FROM bounce_events"
        " WHERE identity = ? AND occurred_at >= ? ORDER BY occurred_at",
        [identity_key(email), to_iso(since) if since is not None else ""],
    )
    return [BounceEvent(BounceKind(k), from_iso(at), s, d, m) for k, at, s, d, m in rows]


def forget_address(db: Database, email: str, subscriber_id: int) -> int:
    """A subscriber deleted their data: the reports about their address (in any letter case)
    or about them keep only what the per-digest counts need (kind, digest, times), never the
    address or the server's words (which may quote it). Returns how many rows changed."""
    return db.execute(
        "UPDATE bounce_events SET email = '', folded = NULL, diagnostic = '', subscriber_id = NULL"
        " WHERE identity = ? OR subscriber_id = ?",
        [identity_key(email), subscriber_id],
    ).rowcount


# --- the deliveries a report names (read from the ledger) ----------------------------------------


@dataclass(frozen=True)
class DeliveryRef:
    """The delivery an event is about."""

    delivery_id: int
    digest_id: int
    subscriber_id: int
    email: str


def find_delivery(db: Database, delivery_id: int) -> DeliveryRef | None:
    row = db.execute(
        "SELECT id, digest_id, subscriber_id, email FROM deliveries WHERE id = ?", [delivery_id]
    ).fetchone()
    return DeliveryRef(*row) if row else None


def find_issue_delivery(
    db: Database, *, list_slug: str, frequency: str, period_label: str, subscriber_id: int
) -> DeliveryRef | None:
    """The delivery of one issue (as a digest's Message-ID names it) to one subscriber."""
    row = db.execute(
        "SELECT d.id, d.digest_id, d.subscriber_id, d.email FROM lists l"
        " JOIN digests g ON g.list_id = l.id AND g.frequency = ? AND g.period_label = ?"
        " JOIN deliveries d ON d.digest_id = g.id AND d.subscriber_id = ?"
        " WHERE l.slug = ?",
        [frequency, period_label, subscriber_id, list_slug],
    ).fetchone()
    return DeliveryRef(*row) if row else None


# --- what the edges show -------------------------------------------------------------------------


@dataclass(frozen=True)
class BounceRow:
    """One recorded event, for ``digest bounces list``."""

    received_at: str
    occurred_at: str
    email: str
    kind: str
    source: str
    status: str | None
    diagnostic: str
    identified_by: str
    delivery_id: int | None
    digest_id: int | None
    list_slug: str | None
    period: str | None  # "daily 2025-01-21"

    def as_json(self) -> dict[str, Any]:
        return {
            "received_at": self.received_at,
            "occurred_at": self.occurred_at,
            "email": self.email,
            "kind": self.kind,
            "source": self.source,
            "status": self.status,
            "diagnostic": self.diagnostic,
            "identified_by": self.identified_by,
            "delivery_id": self.delivery_id,
            "digest_id": self.digest_id,
            "list": self.list_slug,
            "period": self.period,
        }


def list_events(
    db: Database,
    *,
    since: datetime | None = None,
    kinds: Iterable[str] = ("hard", "soft", "complaint"),
    limit: int | None = None,
    email: str | None = None,
) -> list[BounceRow]:
    """Recorded events received at or after ``since`` (about ``email`` only, if given: in any
    letter case), newest first, with the digest each was about when it is known."""
    kinds = list(kinds)
    where = [f"e.kind IN ({', '.join('?' for _ in kinds)})"]
    params: list[Any] = list(kinds)
    if email is not None:
        where.append("e.identity = ?")
        params.append(identity_key(email))
    if since is not None:
        where.append("e.received_at >= ?")
        params.append(to_iso(since))
    sql = (
        "SELECT e.received_at, e.occurred_at, e.email, e.kind, e.source, e.status, e.diagnostic,"
        " e.identified_by, e.delivery_id, d.digest_id, l.slug, g.frequency, g.period_label"
        " FROM bounce_events e LEFT JOIN deliveries d ON d.id = e.delivery_id"
        " LEFT JOIN digests g ON g.id = d.digest_id LEFT JOIN lists l ON l.id = g.list_id"
        f" WHERE {' AND '.join(where)} ORDER BY e.received_at DESC, e.id DESC"
    )
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return [
        BounceRow(
            received_at=r[0],
            occurred_at=r[1],
            email=r[2],
            kind=r[3],
            source=r[4],
            status=r[5],
            diagnostic=r[6],
            identified_by=r[7],
            delivery_id=r[8],
            digest_id=r[9],
            list_slug=r[10],
            period=f"{r[11]} {r[12]}" if r[11] else None,
        )
        for r in db.execute(sql, params)
    ]


@dataclass(frozen=True)
class FeedbackCounts:
    """How many of a digest's deliveries came back as each kind (a delivery counts once per
    kind, however many reports named it)."""

    hard: int = 0
    soft: int = 0
    complaint: int = 0

    @property
    def bounced(self) -> int:
        return self.hard + self.soft

    def as_json(self) -> dict[str, int]:
        return {"hard": self.hard, "soft": self.soft, "complaint": self.complaint}


def counts_by_digest(
    db: Database, digest_ids: Iterable[int] | None = None
) -> dict[int, FeedbackCounts]:
    """Bounces and complaints per digest (digest id -> counts), for every digest with any, or
    for ``digest_ids`` only. The web dashboard's per-digest counts come from here too."""
    sql = (
        "SELECT d.digest_id, e.kind, count(DISTINCT e.delivery_id)"
        " FROM bounce_events e JOIN deliveries d ON d.id = e.delivery_id"
        " WHERE e.delivery_id IS NOT NULL AND e.kind IN ('hard', 'soft', 'complaint')"
    )
    found: dict[int, dict[str, int]] = {}
    if digest_ids is None:
        rows = db.execute(sql + " GROUP BY d.digest_id, e.kind").fetchall()
    else:
        rows = list(
            select_in(
                db.conn,
                sql + " AND d.digest_id IN ({}) GROUP BY d.digest_id, e.kind",
                list(digest_ids),
            )
        )
    for digest_id, kind, n in rows:
        found.setdefault(digest_id, {})[kind] = n
    return {d: FeedbackCounts(**c) for d, c in found.items()}
