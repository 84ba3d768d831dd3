"""The data step of migration m018 (one identity per mailbox): subscribers whose addresses differ
only in letter case (``Ann@Example.com``, ``ann@example.com``) become one subscriber.

For each identity with several subscribers, the one entered first is kept, with its address
as entered (for display and sending) and the first name any of them had. Each list keeps one
subscription: the most restrictive status of the spellings (an
unsubscribe, a bounce or a complaint beats active, active beats pending), with the frequency
and topics of the subscription that had that status. Histories are combined (events are found
by identity, whatever spelling they name), deliveries, queued emails and bounce reports are
re-pointed to the kept subscriber, and two deliveries of one digest become one (the one that
went furthest: a sent one over a queued one, so nobody gets that digest twice). Every merge is recorded in the
kept address's history (source ``migration``), with a status change per list whose status the
merge changed, and returned for the migration to log.

Suppressions are keyed by identity by the migration itself, so a spelling that was suppressed
suppresses the merged subscriber. Nothing here is changed once shipped: it is part of m018.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from ..addresses import folded_identity
from ..timeutil import to_iso

# The most restrictive status wins a list: an end the person (or their mail server) chose beats
# active, active beats pending, and a live subscription beats a lapsed request. (Written out
# here, not taken from audience.records, because a shipped migration must not change.)
_RESTRICTIVENESS = {
    "complained": 6,
    "bounced": 5,
    "unsubscribed": 4,
    "active": 3,
    "pending": 2,
    "expired": 1,
}
# Which of two deliveries of one digest to the same person survives: the one that went
# furthest (ties: the kept subscriber's own).
_DELIVERY_RANK = {"sent": 4, "failed": 3, "skipped": 2, "deferred": 1, "queued": 1}


@dataclass
class MergedIdentity:
    """One identity whose spellings were merged."""

    kept: str  # the address kept (first entered)
    merged: list[str]  # the other spellings, now gone
    statuses: dict[str, str] = field(default_factory=dict)  # list slug -> status after merging
    deliveries_folded: int = 0  # duplicate deliveries of one digest, dropped

    def describe(self) -> str:
        lists = ", ".join(f"{slug}: {status}" for slug, status in sorted(self.statuses.items()))
        text = f"{self.kept} (merged {', '.join(self.merged)})"
        if lists:
            text += f"; {lists}"
        if self.deliveries_folded:
            text += f"; {self.deliveries_folded} duplicate deliveries of one digest folded"
        return text


def merge_case_variants(db: Database, *, now: datetime) -> list[MergedIdentity]:
    """Merge every group of subscribers sharing an identity (the ``subscribers.identity``
    column). Runs inside the migration's transaction."""
    groups = [
        r[0]
        for r in db.execute(
            "SELECT identity FROM subscribers GROUP BY identity HAVING count(*) > 1 ORDER BY identity"
        )
    ]
    if not groups:
        return []
    stamp = to_iso(now)
    merged: dict[int, MergedIdentity] = {}  # kept subscriber id -> what was merged into it
    old_to_new: dict[int, int] = {}
    for identity in groups:
        people = db.execute(
            "SELECT id, email, name, created_at FROM subscribers WHERE identity = ?"
            " ORDER BY created_at, id",
            [identity],
        ).fetchall()
        keep, others = people[0], people[1:]
        result = MergedIdentity(kept=keep[1], merged=[p[1] for p in others])
        _merge_subscriptions(db, keep, [p[0] for p in others], result, stamp)
        name = keep[2] or next((p[2] for p in others if p[2]), None)
        db.execute(
            "UPDATE subscribers SET name = ?, created_at = ? WHERE id = ?",
            [name, min(p[3] for p in people), keep[0]],
        )
        for other in others:
            old_to_new[other[0]] = keep[0]
        merged[keep[0]] = result
        _event(db, result.kept, None, None, "merged", stamp,
               f"{', '.join(result.merged)} merged into this subscriber: one identity per "
               "mailbox, whatever the letter case")  # fmt: skip
    kept_email = {kept_id: r.kept for kept_id, r in merged.items()}
    for kept_id, n in _repoint_deliveries(db, old_to_new, kept_email).items():
        merged[kept_id].deliveries_folded = n
    _repoint_notices(db, old_to_new)
    # Bounce and complaint reports stay about the address they named; they now belong to the
    # kept subscriber (the table has no foreign key, so nothing else would notice).
    db.conn.executemany(
        "UPDATE bounce_events SET subscriber_id = ? WHERE subscriber_id = ?",
        [(new, old) for old, new in old_to_new.items()],
    )
    db.conn.executemany("DELETE FROM subscribers WHERE id = ?", [(o,) for o in old_to_new])
    return list(merged.values())


def _event(
    db: Database,
    email: str,
    list_slug: str | None,
    old: str | None,
    new: str,
    stamp: str,
    reason: str,
) -> None:
    db.execute(
        "INSERT INTO status_events (email, folded, list_slug, old_status, new_status, source,"
        " reason, at) VALUES (?, ?, ?, ?, ?, 'migration', ?, ?)",
        [email, folded_identity(email), list_slug, old, new, reason, stamp],
    )


def _merge_subscriptions(
    db: Database,
    keep: tuple[Any, ...],
    other_ids: list[int],
    result: MergedIdentity,
    stamp: str,
) -> None:
    ids = [keep[0], *other_ids]
    emails = {row[0]: row[1] for row in db.execute(
        f"SELECT id, email FROM subscribers WHERE id IN ({', '.join('?' * len(ids))})", ids
    )}  # fmt: skip
    rows = db.execute(
        "SELECT s.id, s.subscriber_id, s.list_id, l.slug, s.status, s.created_at, s.updated_at,"
        " s.confirmed_at FROM subscriptions s JOIN lists l ON l.id = s.list_id"
        f" WHERE s.subscriber_id IN ({', '.join('?' * len(ids))}) ORDER BY s.list_id",
        ids,
    ).fetchall()
    by_list: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
    for row in rows:
        by_list[row[2]].append(row)
    for subs in by_list.values():
        slug = subs[0][3]
        # The most restrictive status wins; among equals the latest change, then the kept
        # subscriber's own.
        winner = max(
            subs,
            key=lambda s: (_RESTRICTIVENESS.get(s[4], 0), s[6], s[1] == keep[0]),
        )
        own = next((s for s in subs if s[1] == keep[0]), None)
        losers = [s[0] for s in subs if s[0] != winner[0]]
        if losers:
            db.conn.executemany("DELETE FROM subscriptions WHERE id = ?", [(i,) for i in losers])
        confirmed = [s[7] for s in subs if s[7]]
        db.execute(
            "UPDATE subscriptions SET subscriber_id = ?, created_at = ?, updated_at = ?,"
            " confirmed_at = ? WHERE id = ?",
            [keep[0], min(s[5] for s in subs), max(s[6] for s in subs),
             winner[7] or (min(confirmed) if confirmed else None), winner[0]],
        )  # fmt: skip
        result.statuses[slug] = winner[4]
        if own is None or own[4] != winner[4]:
            spelling = emails[winner[1]]
            _event(db, keep[1], slug, own[4] if own else None, winner[4], stamp,
                   f"merged with {spelling}, which was {winner[4]} on this list")  # fmt: skip


def _repoint_deliveries(
    db: Database, old_to_new: dict[int, int], kept_email: dict[int, str]
) -> dict[int, int]:
    """Deliveries of merged subscribers now belong to the kept one; of two deliveries of one
    digest, the one that went furthest stays. Returns kept id -> deliveries dropped."""
    db.execute("CREATE TEMP TABLE merge_map (old_id INTEGER PRIMARY KEY, new_id INTEGER)")
    db.conn.executemany("INSERT INTO temp.merge_map VALUES (?, ?)", list(old_to_new.items()))
    rows = db.execute(
        "SELECT d.id, d.digest_id, coalesce(m.new_id, d.subscriber_id), d.subscriber_id, d.status"
        " FROM deliveries d LEFT JOIN temp.merge_map m ON m.old_id = d.subscriber_id"
        " WHERE d.subscriber_id IN (SELECT old_id FROM temp.merge_map"
        " UNION SELECT new_id FROM temp.merge_map)"
    ).fetchall()
    per_digest: dict[tuple[int, int], list[tuple[Any, ...]]] = defaultdict(list)
    for row in rows:
        per_digest[(row[1], row[2])].append(row)
    dropped: list[int] = []
    folded: dict[int, int] = defaultdict(int)
    for (_, target), same in per_digest.items():
        if len(same) < 2:
            continue
        best = max(same, key=lambda r: (_DELIVERY_RANK.get(r[4], 0), r[3] == target))
        for r in same:
            if r[0] != best[0]:
                dropped.append(r[0])
                folded[target] += 1
    db.conn.executemany("DELETE FROM deliveries WHERE id = ?", [(i,) for i in dropped])
    # What is still owed goes to the kept spelling; what was sent keeps the address it went to.
    db.conn.executemany(
        "UPDATE deliveries SET subscriber_id = ?,"
        " email = CASE WHEN status IN ('queued', 'deferred') THEN ? ELSE email END WHERE id = ?",
        [(r[2], kept_email[r[2]], r[0]) for r in rows if r[3] != r[2] and r[0] not in dropped],
    )
    db.execute("DROP TABLE temp.merge_map")
    return dict(folded)


def _repoint_notices(db: Database, old_to_new: dict[int, int]) -> None:
    """Queued emails of merged subscribers go to the kept one; of two queued for the same list
    and kind, one is kept (the latest request)."""
    for old, new in old_to_new.items():
        db.execute("UPDATE notices SET subscriber_id = ? WHERE subscriber_id = ?", [new, old])
    kept = sorted(set(old_to_new.values()))
    db.execute(
        "DELETE FROM notices WHERE status = 'queued' AND EXISTS (SELECT 1 FROM notices n"
        " WHERE n.subscriber_id = notices.subscriber_id AND n.list_id = notices.list_id"
        " AND n.kind = notices.kind AND n.status = 'queued'"
        " AND (n.created_at > notices.created_at"
        " OR (n.created_at = notices.created_at AND n.id > notices.id)))"
        f" AND subscriber_id IN ({', '.join('?' * len(kept))})",
        kept,
    )
