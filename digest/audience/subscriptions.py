"""Subscribers and their subscriptions: the only module that writes ``subscribers`` and
``subscriptions``. Adding, confirming, unsubscribing and removing people, one at a time or a
CSV batch at a time, with every status change recorded in the history (``history``).

The rule that matters most lives in ``records.admit`` and every path here goes through it: an
address that unsubscribed, bounced, complained or is suppressed is never made active again by
``add``, ``import`` or ``sync``. Only a new double opt-in confirmation (the person followed a
signed link from the web form) or an admin's explicit ``force`` with a recorded reason
re-activates it.

One identity per mailbox: people are found by ``subscribers.identity`` (``addresses.identity_key``,
the address lower-cased), never by the address as typed, so ``ANN@example.com`` finds, updates
or unsubscribes ``Ann@example.com``; the address as first entered is kept for display and
sending.

Pending people are asked to confirm by the delivery stage (``delivery.optin`` queues the
emails); this module records when they were asked (``mark_asked``), which pending
subscriptions are due for a reminder, and which expire (``expire_pending``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlite_utils import Database

from ..addresses import folded_identity, identity_key, normalise_email, normalised_identity
from ..articles.tags import tag_key
from ..errors import InvalidInput, NotFound
from ..store import transaction
from ..store.bulk import insert_rows, next_id, select_in
from ..text import clean_name
from ..timeutil import from_iso, to_iso
from .history import EventRow, events_for, forget, record_event, record_events
from .lists import MailingList, all_lists, get_list, get_list_by_id, remove_list_row
from .lists import edit_list as edit_list_row
from .records import (
    ENDED,
    LIVE,
    Admission,
    Frequency,
    Subscriber,
    SubscriberHistory,
    Subscription,
    SubscriptionStatus,
    Suppression,
    admit,
    sql_list,
)
from .suppressions import (
    get_suppression,
    is_suppressed,
    lift_suppression,
    suppress,
    suppress_erased,
    suppressed_identities,
)

_LIVE_SQL = sql_list(LIVE)
_ENDED_SQL = sql_list(ENDED)

_SUBSCRIPTION_SELECT = """
    SELECT s.id, s.subscriber_id, s.list_id, l.slug AS list_slug, p.email, p.name, s.frequency,
           s.tags, s.status, s.created_at, s.updated_at, s.confirmed_at
    FROM subscriptions s
    JOIN subscribers p ON p.id = s.subscriber_id
    JOIN lists l ON l.id = s.list_id
"""


# CROSS JOIN makes SQLite walk subscribers in the order of their identity index (addresses
# without regard to case) and look up each one's subscriptions: rows come out already in order,
# so the first is printed at once instead of after sorting every row (EXPLAIN QUERY PLAN shows
# no temp b-tree; a test checks).
STREAM_SELECT = """
    SELECT s.id, s.subscriber_id, s.list_id, l.slug AS list_slug, p.email, p.name, s.frequency,
           s.tags, s.status, s.created_at, s.updated_at, s.confirmed_at
    FROM subscribers p
    CROSS JOIN subscriptions s ON s.subscriber_id = p.id
    JOIN lists l ON l.id = s.list_id{where}
    ORDER BY p.identity, p.id, s.list_id
"""


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {d[0]: v for d, v in zip(cursor.description, row, strict=True)}


def get_subscription(db: Database, subscriber_id: int, list_id: int) -> Subscription | None:
    cur = db.execute(
        _SUBSCRIPTION_SELECT + " WHERE s.subscriber_id = ? AND s.list_id = ?",
        [subscriber_id, list_id],
    )
    cur.row_factory = _dict_row
    row = cur.fetchone()
    return Subscription.from_row(row) if row else None


def _subscription(db: Database, subscriber_id: int, list_id: int) -> Subscription:
    sub = get_subscription(db, subscriber_id, list_id)
    assert sub is not None, (subscriber_id, list_id)
    return sub


def get_subscriber(db: Database, email: str) -> Subscriber:
    """The subscriber with this address, in any letter case; ``NotFound`` if none."""
    email, identity = normalised_identity(email)
    row = db.execute(
        "SELECT id, email, name, created_at FROM subscribers WHERE identity = ?", [identity]
    ).fetchone()
    if row is None:
        raise NotFound(f"no subscriber {email}")
    return Subscriber(*row)


def get_subscriber_by_id(db: Database, subscriber_id: int) -> Subscriber | None:
    row = db.execute(
        "SELECT id, email, name, created_at FROM subscribers WHERE id = ?", [subscriber_id]
    ).fetchone()
    return Subscriber(*row) if row else None


def find_subscription(db: Database, mlist: MailingList, address: str) -> Subscription:
    """The subscription of ``address`` (any case) to ``mlist``; ``NotFound`` if none."""
    cur = db.execute(
        _SUBSCRIPTION_SELECT + " WHERE s.list_id = ? AND p.identity = ?",
        [mlist.id, identity_key(normalise_email(address))],
    )
    cur.row_factory = _dict_row
    row = cur.fetchone()
    if row is None:
        raise NotFound(f"{address} is not subscribed to list {mlist.slug!r}")
    return Subscription.from_row(row)


@dataclass(frozen=True)
class KnownAddress:
    """A subscriber and, if any, their subscription status on one list."""

    subscriber_id: int
    name: str | None
    status: SubscriptionStatus | None


def subscription_status(db: Database, mlist: MailingList, email: str) -> KnownAddress | None:
    """What is known of a (normalised) address, in any letter case, for ``mlist``; None: not a
    subscriber."""
    row = db.execute(
        "SELECT p.id, p.name, s.status FROM subscribers p LEFT JOIN subscriptions s"
        " ON s.subscriber_id = p.id AND s.list_id = ? WHERE p.identity = ?",
        [mlist.id, identity_key(email)],
    ).fetchone()
    if row is None:
        return None
    return KnownAddress(row[0], row[1], SubscriptionStatus(row[2]) if row[2] else None)


# -- Validation shared with the CSV import ---------------------------------------------------


def subscription_tags(mlist: MailingList, tags: Iterable[str]) -> list[str]:
    """Tag keys for a subscription to ``mlist``, in the list's section order; each must be
    one of the list's tags (a list without tags covers every tag). [] = all of them."""
    keys: list[str] = []
    for raw in tags:
        key = tag_key(raw)
        if key and key not in keys:
            keys.append(key)
    list_keys = mlist.tag_keys
    if not list_keys:
        return keys
    unknown = [k for k in keys if k not in list_keys]
    if unknown:
        raise InvalidInput(
            f"tag {', '.join(repr(k) for k in unknown)} is not covered by list {mlist.slug!r}"
            f" (its tags: {', '.join(mlist.tags)})"
        )
    return sorted(keys, key=list_keys.index)


# -- One person at a time --------------------------------------------------------------------


class Refused(InvalidInput):
    """An address that unsubscribed, bounced, complained or is suppressed was not subscribed
    again. ``because`` is what ended it ('unsubscribed', 'bounced', 'complained', 'suppressed')
    and ``detail`` says it in words (the suppression's reason); the edges offer what fits them
    (the CLI ``--force --reason``, the admin pages a re-activation form with a reason)."""

    def __init__(self, message: str, *, email: str, because: str, detail: str):
        super().__init__(message)
        self.email = email
        self.because = because
        self.detail = detail


def _need_reason(force: bool, reason: str | None) -> None:
    if force and not (reason and reason.strip()):
        raise InvalidInput("--force needs a --reason, recorded in the address's history")


def _refusal(
    mlist: MailingList, email: str, decision: Admission, suppression: Suppression | None
) -> Refused:
    why = (
        f"on the suppression list ({suppression.reason or 'no reason given'})"
        if decision.refused_because == "suppressed" and suppression is not None
        else f"{decision.refused_because} from list {mlist.slug!r}"
    )
    return Refused(
        f"{email} is {why}; it is not subscribed again without a new confirmation "
        "from the person, or --force with a --reason",
        email=email,
        because=decision.refused_because or "",
        detail=f"{email} is {why}",
    )


def would_refuse(db: Database, mlist: MailingList, email: str) -> Refused | None:
    """What ``add_subscription`` (without ``force``) would refuse ``email`` (normalised) for
    on ``mlist``, or None: for a page that asks before it adds."""
    known = subscription_status(db, mlist, email)
    suppression = get_suppression(db, email)
    decision = admit(known.status if known else None, suppression is not None, confirmed=True)
    return None if decision.status is not None else _refusal(mlist, email, decision, suppression)


def add_subscription(
    db: Database,
    mlist: MailingList,
    email: str,
    *,
    name: str | None = None,
    tags: Iterable[str] = (),
    frequency: str | None = None,
    confirmed: bool = False,
    source: str,
    now: datetime,
    force: bool = False,
    reason: str | None = None,
) -> Subscription:
    """Subscribe ``email`` to ``mlist``: ``pending`` until confirmed, or ``active`` when
    ``confirmed`` (the admin has the person's consent). An existing pending or active
    subscription (of the address in any letter case) gets the new name, tags and frequency
    (None: the list's default for a new subscription, unchanged for an existing one).

    An address that unsubscribed, bounced, complained or is suppressed is refused
    (``InvalidInput``) unless ``force`` with a ``reason``, which is recorded. Whether the
    person must now be asked to confirm is ``Subscription.status`` together with what it was
    before (``subscription_status``); ``delivery.optin`` does the asking."""
    email, identity = normalised_identity(email)
    if frequency is not None and frequency.strip():
        mlist.offered_frequency(frequency)
    keys = json.dumps(subscription_tags(mlist, tags), ensure_ascii=False)
    name = clean_name(name)
    _need_reason(force, reason)
    stamp = to_iso(now)
    with transaction(db):
        row = db.execute(
            "SELECT id, name, email FROM subscribers WHERE identity = ?", [identity]
        ).fetchone()
        existing = get_subscription(db, row[0], mlist.id) if row else None
        suppression = get_suppression(db, email)
        decision = admit(
            existing.status if existing else None,
            suppression is not None,
            confirmed=confirmed,
            force=force,
        )
        if decision.status is None:
            # The address as first entered, as everywhere the person is named.
            raise _refusal(mlist, row[2] if row else email, decision, suppression)
        new_status = decision.status
        if row is None:
            subscriber_id = db.execute(
                "INSERT INTO subscribers (email, folded, name, created_at) VALUES (?, ?, ?, ?)",
                [email, folded_identity(email), name, stamp],
            ).lastrowid
            assert subscriber_id is not None
        else:
            subscriber_id, email = row[0], row[2]  # the address as first entered stays
            if name and name != row[1]:
                db.execute("UPDATE subscribers SET name = ? WHERE id = ?", [name, subscriber_id])
        confirmed_at = stamp if new_status == SubscriptionStatus.ACTIVE else None
        if existing is None:
            freq = mlist.offered_frequency(frequency)
            db.execute(
                "INSERT INTO subscriptions (subscriber_id, list_id, frequency, tags, status,"
                " created_at, updated_at, confirmed_at, pending_since)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [subscriber_id, mlist.id, freq, keys, new_status, stamp, stamp, confirmed_at,
                 stamp if new_status == SubscriptionStatus.PENDING else None],
            )  # fmt: skip
            record_event(db, email, new_status, source=source, now=now, list_slug=mlist.slug,
                         reason=reason)  # fmt: skip
        else:
            freq = mlist.offered_frequency(frequency or _kept_frequency(mlist, existing))
            repending = (
                new_status == SubscriptionStatus.PENDING
                and existing.status != SubscriptionStatus.PENDING
            )
            db.execute(
                "UPDATE subscriptions SET frequency = ?, tags = ?, status = ?, updated_at = ?,"
                " confirmed_at = coalesce(confirmed_at, ?) WHERE id = ?",
                [freq, keys, new_status, stamp, confirmed_at, existing.id],
            )
            if repending:
                _start_pending(db, [existing.id], stamp)
            if new_status != existing.status:
                record_event(db, email, new_status, source=source, now=now,
                             list_slug=mlist.slug, old_status=existing.status,
                             reason=reason)  # fmt: skip
        if suppression is not None:
            lift_suppression(db, email, source=source, reason=reason or "", now=now)
        return _subscription(db, subscriber_id, mlist.id)


def _kept_frequency(mlist: MailingList, sub: Subscription) -> str:
    """An existing subscription keeps its frequency, unless the list no longer offers it."""
    return sub.frequency if sub.frequency in mlist.frequencies else mlist.default_frequency


def _start_pending(db: Database, subscription_ids: Sequence[int], stamp: str) -> None:
    """These subscriptions just became pending: expiry counts from now, and they have not been
    asked or reminded yet in this round."""
    db.conn.executemany(
        "UPDATE subscriptions SET pending_since = ?, asked_at = NULL, reminders = 0 WHERE id = ?",
        [(stamp, i) for i in subscription_ids],
    )


def confirm_subscription(
    db: Database,
    subscriber_id: int,
    list_id: int,
    *,
    source: str,
    now: datetime,
    force: bool = False,
    reason: str | None = None,
    link_issued_at: datetime | None = None,
) -> Subscription:
    """Make a subscription active.

    With ``source="web"`` this is a new double opt-in confirmation (the person followed a
    signed confirmation link), which may re-activate an unsubscribed, bounced or complained
    subscription and lifts a suppression of the address; the history says so. From any other
    source only a pending subscription is confirmed, unless ``force`` with a ``reason``.

    ``link_issued_at``: the confirmation link's issue time. Choices the person made on the
    subscribe form that sent that link (``request_choices``) now replace the old ones: a
    returning subscriber's new topics, frequency and name win once they confirm."""
    _need_reason(force, reason)
    with transaction(db):
        sub = get_subscription(db, subscriber_id, list_id)
        if sub is None:
            mlist = get_list_by_id(db, list_id)
            raise NotFound(f"no subscription of subscriber {subscriber_id} to list {mlist.slug!r}")
        suppression = get_suppression(db, sub.email)
        opt_in = source == "web"
        decision = admit(
            sub.status, suppression is not None, confirmed=True, force=force, opt_in=opt_in
        )
        if decision.status is None:
            raise InvalidInput(
                f"{sub.email} is {decision.refused_because}; only a new confirmation by the "
                "person (the web form) or --force with a --reason re-activates it"
            )
        reactivating = sub.status in ENDED or suppression is not None
        if reason is None:
            reason = (
                "re-activated by a new double opt-in confirmation"
                if reactivating
                else ("double opt-in confirmation" if opt_in else None)
            )
        stamp = to_iso(now)
        if sub.status != SubscriptionStatus.ACTIVE:
            db.execute(
                "UPDATE subscriptions SET status = ?, updated_at = ?, confirmed_at = ?"
                " WHERE id = ?",
                [SubscriptionStatus.ACTIVE, stamp, stamp, sub.id],
            )
            record_event(db, sub.email, SubscriptionStatus.ACTIVE, source=source, now=now,
                         list_slug=sub.list_slug, old_status=sub.status,
                         reason=reason)  # fmt: skip
        if suppression is not None:
            lift_suppression(db, sub.email, source=source, reason=reason or "", now=now)
        if link_issued_at is not None:
            _apply_requested(db, sub, link_issued_at, source=source, now=now)
        return _subscription(db, subscriber_id, list_id)


@dataclass(frozen=True)
class RequestedChoices:
    """What someone asked for on a subscribe form while already subscribed (or unsubscribed):
    applied only when they follow the confirmation link sent at ``at``."""

    name: str | None
    tags: tuple[str, ...]  # tag keys; () = all
    frequency: Frequency
    at: str  # ISO time of the request (= the link's issue time)

    def matches(self, link_issued_at: datetime) -> bool:
        # Tokens carry whole seconds.
        return int(from_iso(self.at).timestamp()) == int(link_issued_at.timestamp())


def request_choices(
    db: Database,
    subscriber_id: int,
    list_id: int,
    *,
    name: str | None,
    tags: Sequence[str],
    frequency: str,
    now: datetime,
) -> None:
    """Keep a subscribe form's choices (tag keys, frequency, name) on an existing subscription
    until the confirmation link issued ``now`` is followed (``confirm_subscription``). A later
    request replaces an earlier one; nothing about the subscription changes yet."""
    value = {"name": name, "tags": list(tags), "frequency": str(frequency), "at": to_iso(now)}
    db.execute(
        "UPDATE subscriptions SET requested = ? WHERE subscriber_id = ? AND list_id = ?",
        [json.dumps(value, ensure_ascii=False), subscriber_id, list_id],
    )


def requested_choices(db: Database, subscriber_id: int, list_id: int) -> RequestedChoices | None:
    row = db.execute(
        "SELECT requested FROM subscriptions WHERE subscriber_id = ? AND list_id = ?",
        [subscriber_id, list_id],
    ).fetchone()
    if row is None or not row[0]:
        return None
    value = json.loads(row[0])
    return RequestedChoices(
        name=value.get("name"),
        tags=tuple(value.get("tags") or ()),
        frequency=Frequency(value["frequency"]),
        at=value["at"],
    )


def _apply_requested(
    db: Database, sub: Subscription, link_issued_at: datetime, *, source: str, now: datetime
) -> None:
    wanted = requested_choices(db, sub.subscriber_id, sub.list_id)
    if wanted is None or not wanted.matches(link_issued_at):
        return
    db.execute("UPDATE subscriptions SET requested = NULL WHERE id = ?", [sub.id])
    mlist = get_list_by_id(db, sub.list_id)
    # The list may have changed since the request: topics it no longer covers are dropped, a
    # frequency it no longer offers becomes its default.
    keys = [k for k in wanted.tags if not mlist.tag_keys or k in mlist.tag_keys]
    if wanted.tags and not keys:
        keys = list(sub.tags)
    freq = wanted.frequency if wanted.frequency in mlist.frequencies else mlist.default_frequency
    if wanted.name and wanted.name != sub.name:
        db.execute("UPDATE subscribers SET name = ? WHERE id = ?", [wanted.name, sub.subscriber_id])
    if tuple(keys) == sub.tags and freq == sub.frequency:
        return
    db.execute(
        "UPDATE subscriptions SET tags = ?, frequency = ?, updated_at = ? WHERE id = ?",
        [json.dumps(keys, ensure_ascii=False), freq, to_iso(now), sub.id],
    )
    shown = ", ".join(mlist.tag_names(keys)) or "all tags"
    record_event(db, sub.email, SubscriptionStatus.ACTIVE, source=source, now=now,
                 list_slug=sub.list_slug, old_status=SubscriptionStatus.ACTIVE,
                 reason=f"choices from the subscribe form, confirmed by the person: {freq}, "
                 f"{shown}")  # fmt: skip


def _end(
    db: Database,
    subs: Sequence[Subscription],
    status: SubscriptionStatus,
    *,
    source: str,
    reason: str | None,
    now: datetime,
) -> None:
    for sub in subs:
        db.execute(
            "UPDATE subscriptions SET status = ?, updated_at = ? WHERE id = ?",
            [status, to_iso(now), sub.id],
        )
        record_event(db, sub.email, status, source=source, now=now, list_slug=sub.list_slug,
                     old_status=sub.status, reason=reason)  # fmt: skip


def _live_subscriptions(
    db: Database, *, subscriber_id: int | None = None, email: str | None = None,
    list_id: int | None = None,
) -> list[Subscription]:  # fmt: skip
    where: list[str] = [f"s.status IN ({_LIVE_SQL})"]
    params: list[Any] = []
    if subscriber_id is not None:
        where.append("s.subscriber_id = ?")
        params.append(subscriber_id)
    if email is not None:
        where.append("p.identity = ?")
        params.append(identity_key(email))
    if list_id is not None:
        where.append("s.list_id = ?")
        params.append(list_id)
    cur = db.execute(_SUBSCRIPTION_SELECT + " WHERE " + " AND ".join(where), params)
    cur.row_factory = _dict_row
    return [Subscription.from_row(r) for r in cur.fetchall()]


def unsubscribe(
    db: Database,
    email: str,
    *,
    list_slug: str | None = None,
    source: str,
    reason: str | None,
    now: datetime,
) -> list[Subscription]:
    """End ``email``'s (in any letter case) pending or active subscription to ``list_slug``
    (None: to every list). Returns the subscriptions that changed (empty if there was nothing
    to end)."""
    email, identity = normalised_identity(email)
    with transaction(db):
        subscriber = db.execute(
            "SELECT id FROM subscribers WHERE identity = ?", [identity]
        ).fetchone()
        if subscriber is None:
            raise NotFound(f"no subscriber {email}")
        list_id = get_list(db, list_slug).id if list_slug is not None else None
        subs = _live_subscriptions(db, subscriber_id=subscriber[0], list_id=list_id)
        _end(db, subs, SubscriptionStatus.UNSUBSCRIBED, source=source, reason=reason, now=now)
        return [_subscription(db, s.subscriber_id, s.list_id) for s in subs]


def update_preferences(
    db: Database,
    subscriber_id: int,
    list_id: int,
    *,
    tags: Iterable[str],
    frequency: str,
    source: str,
    now: datetime,
) -> Subscription:
    """Change which of the list's tags (display names or keys; empty = all) and how often (one
    the list offers) a pending or active subscriber gets the digest. Recorded in the
    history."""
    with transaction(db):
        sub = get_subscription(db, subscriber_id, list_id)
        if sub is None:
            raise NotFound(f"no subscription of subscriber {subscriber_id} to list {list_id}")
        if sub.status not in LIVE:
            raise InvalidInput(f"{sub.email} is {sub.status} from list {sub.list_slug!r}")
        mlist = get_list_by_id(db, list_id)
        freq = mlist.offered_frequency(frequency)
        keys = subscription_tags(mlist, tags)
        if tuple(keys) == sub.tags and freq == sub.frequency:
            return sub
        db.execute(
            "UPDATE subscriptions SET tags = ?, frequency = ?, updated_at = ? WHERE id = ?",
            [json.dumps(keys, ensure_ascii=False), freq, to_iso(now), sub.id],
        )
        shown = ", ".join(mlist.tag_names(keys)) or "all tags"
        record_event(db, sub.email, sub.status, source=source, now=now, list_slug=sub.list_slug,
                     old_status=sub.status,
                     reason=f"preferences changed: {freq}, {shown}")  # fmt: skip
        return _subscription(db, subscriber_id, list_id)


def mark_bounced(
    db: Database, email: str, reason: str, *, now: datetime, source: str = "bounce"
) -> bool:
    """A permanent failure (5.1.x unknown user, 5.2.1 mailbox disabled): every pending or active
    subscription of ``email`` becomes ``bounced`` and the address is suppressed, with the
    server's reply as the reason. Returns False if there was nothing left to change."""
    with transaction(db):
        subs = _live_subscriptions(db, email=email)
        _end(db, subs, SubscriptionStatus.BOUNCED, source=source, reason=reason, now=now)
        added = suppress(db, email, reason, source=source, now=now)
        return bool(subs) or added


def mark_complained(
    db: Database, email: str, reason: str, *, now: datetime, source: str = "complaint"
) -> bool:
    """The person reported a digest as spam (an ARF report, a provider's complaint event): every
    pending or active subscription of ``email`` becomes ``complained`` and the address is
    suppressed, with ``reason`` (which names where the complaint came from). Returns False if
    there was nothing left to change."""
    with transaction(db):
        subs = _live_subscriptions(db, email=email)
        _end(db, subs, SubscriptionStatus.COMPLAINED, source=source, reason=reason, now=now)
        added = suppress(db, email, reason, source=source, now=now)
        return bool(subs) or added


def active_since(db: Database, email: str) -> datetime | None:
    """When ``email`` last became active (subscribed, confirmed again, or taken off the
    suppression list), from its history in any spelling of the address: the bounce policy
    holds nothing older against it."""
    row = db.execute(
        "SELECT max(at) FROM status_events WHERE identity = ?"
        " AND new_status IN ('active', 'unsuppressed')"
        " AND (old_status IS NULL OR old_status != new_status)",
        [identity_key(email)],
    ).fetchone()
    return from_iso(row[0]) if row and row[0] else None


def remove_subscriber(db: Database, email: str, *, now: datetime) -> bool:
    """Delete a subscriber's personal data (name, subscriptions, history in every spelling).
    If the address had ever unsubscribed, bounced or complained it stays on the suppression
    list (with one history line saying so) so it is never mailed again. Returns True if it was
    suppressed."""
    email, identity = normalised_identity(email)
    with transaction(db):
        row = db.execute(
            "SELECT id, email FROM subscribers WHERE identity = ?", [identity]
        ).fetchone()
        if row is None:
            raise NotFound(f"no subscriber {email}")
        email = row[1]
        ended = db.execute(
            f"SELECT count(*) FROM subscriptions WHERE subscriber_id = ? AND status IN ({_ENDED_SQL})",
            [row[0]],
        ).fetchone()[0]
        db.execute("DELETE FROM subscribers WHERE id = ?", [row[0]])
        forget(db, identity)
        keep = ended > 0 or is_suppressed(db, email)
        if keep:
            suppress(db, email, "removed after unsubscribing", source="cli", now=now, event=False)
            record_event(db, email, "removed", source="cli", now=now,
                         reason="personal data deleted; address kept on the suppression list")  # fmt: skip
        return keep


def subscriber_history(db: Database, email: str) -> SubscriberHistory:
    """Everything known about an address (in any letter case): subscriber, subscriptions,
    suppression, events."""
    email, identity = normalised_identity(email)
    row = db.execute(
        "SELECT id, email, name, created_at FROM subscribers WHERE identity = ?", [identity]
    ).fetchone()
    history = SubscriberHistory(row[1] if row else email, Subscriber(*row) if row else None)
    if row:
        cur = db.execute(
            _SUBSCRIPTION_SELECT + " WHERE s.subscriber_id = ? ORDER BY l.slug", [row[0]]
        )
        cur.row_factory = _dict_row
        history.subscriptions = [Subscription.from_row(r) for r in cur]
    history.suppression = get_suppression(db, email)
    history.events = events_for(db, identity)
    if history.subscriber is None and history.suppression is None and not history.events:
        raise NotFound(f"nothing is known about {email}")
    return history


def iter_subscriptions(
    db: Database, list_slug: str | None = None, status: str | None = None
) -> Iterator[Subscription]:
    """Subscriptions (by address without regard to case, then list), streamed from the cursor
    one row at a time."""
    where: list[str] = []
    params: list[Any] = []
    if list_slug is not None:
        where.append("s.list_id = ?")
        params.append(get_list(db, list_slug, include_deleted=True).id)
    if status is not None:
        if status not in tuple(SubscriptionStatus):
            known = ", ".join(SubscriptionStatus)
            raise InvalidInput(f"unknown status {status!r} (one of {known})")
        where.append("s.status = ?")
        params.append(status)
    sql = STREAM_SELECT.format(where=" WHERE " + " AND ".join(where) if where else "")
    cur = db.conn.cursor()
    cur.row_factory = _dict_row
    yield from map(Subscription.from_row, cur.execute(sql, params))


# -- Lists and their members -----------------------------------------------------------------


@dataclass(frozen=True)
class ListCounts:
    pending: int = 0
    active: int = 0
    unsubscribed: int = 0
    bounced: int = 0
    complained: int = 0
    expired: int = 0


def list_counts(db: Database, mlist: MailingList) -> ListCounts:
    counts = {
        r["status"]: r["n"]
        for r in db.query(
            "SELECT status, count(*) AS n FROM subscriptions WHERE list_id = ? GROUP BY status",
            [mlist.id],
        )
    }
    return ListCounts(**counts)


def counts_by_list(db: Database) -> dict[int, dict[str, int]]:
    """list id -> status -> subscriptions, for every list."""
    counts: dict[int, dict[str, int]] = {}
    for row in db.query(
        "SELECT list_id, status, count(*) AS n FROM subscriptions GROUP BY list_id, status"
    ):
        counts.setdefault(row["list_id"], {})[row["status"]] = row["n"]
    return counts


def delete_list(
    db: Database, slug: str, *, now: datetime, force: bool = False, source: str = "cli",
    reason: str = "list deleted",
) -> str:  # fmt: skip
    """Delete a list. Refuses while it has active or pending subscribers unless ``force``
    (their subscriptions end, recorded in each address's history). A list that digests were
    built for is only marked deleted, so the archive keeps working. Returns 'deleted' or
    'archived'. (Ending subscriptions is this module's job, so deleting a list is here.)"""
    mlist = get_list(db, slug)
    with transaction(db):
        members = _live_subscriptions(db, list_id=mlist.id)
        if members and not force:
            raise InvalidInput(
                f"list {slug!r} has {len(members)} active or pending subscriber(s); "
                "use --force to delete it anyway"
            )
        for m in members:
            record_event(db, m.email, SubscriptionStatus.UNSUBSCRIBED, source=source, now=now,
                         list_slug=slug, old_status=m.status, reason=reason)  # fmt: skip
        db.execute("DELETE FROM subscriptions WHERE list_id = ?", [mlist.id])
        return remove_list_row(db, mlist, now=now)


# -- Asking pending people -------------------------------------------------------------------


def mark_asked(
    db: Database, list_id: int, subscriber_ids: Iterable[int], *, now: datetime, reminder: bool
) -> None:
    """A confirmation email was queued for these pending subscribers of a list (``reminder``:
    a reminder, counted against [subscribers] max_reminders)."""
    db.conn.executemany(
        "UPDATE subscriptions SET asked_at = ?, reminders = reminders + ?"
        " WHERE subscriber_id = ? AND list_id = ? AND status = 'pending'",
        [(to_iso(now), 1 if reminder else 0, sid, list_id) for sid in subscriber_ids],
    )


@dataclass
class ReminderPlan:
    """The pending subscribers of a list, by what asking them again means: ``first`` were
    never asked (added without an email), ``due`` were asked before the cut-off and may get a
    reminder (subscriber ids); ``capped`` had ``max_reminders`` already, ``recent`` were asked
    after the cut-off."""

    first: list[int] = field(default_factory=list)
    due: list[int] = field(default_factory=list)
    capped: int = 0
    recent: int = 0


def plan_reminders(
    db: Database, mlist: MailingList, *, asked_before: datetime, max_reminders: int
) -> ReminderPlan:
    """Which pending subscribers of ``mlist`` to ask again (``ReminderPlan``)."""
    plan = ReminderPlan()
    cutoff = to_iso(asked_before)
    for sid, asked_at, reminders in db.execute(
        "SELECT subscriber_id, asked_at, reminders FROM subscriptions"
        " WHERE list_id = ? AND status = 'pending' ORDER BY subscriber_id",
        [mlist.id],
    ):
        if asked_at is None:
            plan.first.append(sid)
        elif reminders >= max_reminders:
            plan.capped += 1
        elif asked_at > cutoff:
            plan.recent += 1
        else:
            plan.due.append(sid)
    return plan


def expire_pending(db: Database, *, older_than: datetime, now: datetime) -> list[Subscription]:
    """Pending subscriptions that became pending before ``older_than`` (never confirmed)
    become ``expired``, each recorded in the address's history. Returns them as they were."""
    due = "SELECT 1 FROM subscriptions WHERE status = 'pending' AND pending_since < ? LIMIT 1"
    if db.execute(due, [to_iso(older_than)]).fetchone() is None:
        return []  # the usual tick: no write transaction for nothing
    with transaction(db):
        cur = db.execute(
            _SUBSCRIPTION_SELECT + " WHERE s.status = 'pending' AND s.pending_since < ?",
            [to_iso(older_than)],
        )
        cur.row_factory = _dict_row
        subs = [Subscription.from_row(r) for r in cur.fetchall()]
        days = (now - older_than).days
        _end(db, subs, SubscriptionStatus.EXPIRED, source="expiry", now=now,
             reason=f"not confirmed within {days} days")  # fmt: skip
    return subs


# -- List settings that move subscribers ----------------------------------------------------


@dataclass(frozen=True)
class FrequencyEdit:
    """What ``edit_list`` did: the list as it is now, and how many pending or active
    subscriptions moved to each frequency because their own is no longer offered."""

    mlist: MailingList
    moved: dict[Frequency, int]


def edit_list(
    db: Database,
    slug: str,
    *,
    now: datetime,
    frequencies: str | Iterable[str] | None = None,
    default_frequency: str | None = None,
    source: str = "cli",
    **settings: Any,
) -> FrequencyEdit:
    """Change a list's settings (``lists.edit_list``; ``settings`` are its other options) in
    one transaction with what follows from them here: when the list stops offering a
    frequency, its subscribers move to the remaining one (the list's default), each move
    recorded in the address's history."""
    with transaction(db):
        mlist = edit_list_row(db, slug, now=now, frequencies=frequencies,
                              default_frequency=default_frequency, **settings)  # fmt: skip
        moved: dict[Frequency, int] = {}
        target = mlist.default_frequency
        unoffered = [f for f in Frequency if f not in mlist.frequencies]
        if unoffered:
            cur = db.execute(
                _SUBSCRIPTION_SELECT + " WHERE s.list_id = ? AND s.frequency IN"
                f" ({', '.join('?' * len(unoffered))})",
                [mlist.id, *unoffered],
            )
            cur.row_factory = _dict_row
            subs = [Subscription.from_row(r) for r in cur.fetchall()]
            stamp = to_iso(now)
            live = [sub for sub in subs if sub.status in LIVE]
            # Ended subscriptions change frequency quietly (no event, same updated_at): if the
            # person comes back, they get one the list offers.
            db.conn.executemany(
                "UPDATE subscriptions SET frequency = ? WHERE id = ?",
                [(target, sub.id) for sub in subs if sub.status not in LIVE],
            )
            db.conn.executemany(
                "UPDATE subscriptions SET frequency = ?, updated_at = ? WHERE id = ?",
                [(target, stamp, sub.id) for sub in live],
            )
            record_events(
                db,
                [
                    (sub.email, mlist.slug, sub.status, sub.status, source,
                     f"moved from {sub.frequency} to {target}: the list no longer offers "
                     f"{sub.frequency} digests", stamp)
                    for sub in live
                ],
            )  # fmt: skip
            if live:
                moved[target] = len(live)
        return FrequencyEdit(mlist, moved)


# -- Self-service data ----------------------------------------------------------------------


def subscriber_data(db: Database, subscriber_id: int) -> dict[str, Any]:
    """What is stored about a subscriber, for them to download: their address and name, every
    subscription with its status, frequency, topics and times, and their history (in every
    spelling of the address). Deliveries come from the ledger (``delivery.ledger``)."""
    person = get_subscriber_by_id(db, subscriber_id)
    if person is None:
        raise NotFound("this subscriber no longer exists")
    cur = db.execute(
        _SUBSCRIPTION_SELECT + " WHERE s.subscriber_id = ? ORDER BY l.slug", [subscriber_id]
    )
    cur.row_factory = _dict_row
    subscriptions = [Subscription.from_row(r).as_json() for r in cur]
    for sub in subscriptions:
        del sub["email"], sub["name"]
    identity = identity_key(person.email)
    suppression = get_suppression(db, person.email)
    return {
        "email": person.email,
        "name": person.name,
        "created_at": person.created_at,
        "subscriptions": subscriptions,
        "suppressed": (
            {"reason": suppression.reason, "since": suppression.created_at}
            if suppression is not None
            else None
        ),
        "history": [
            {
                "at": e.at,
                "list": e.list_slug,
                "old_status": e.old_status,
                "new_status": e.new_status,
                "source": e.source,
                "reason": e.reason,
            }
            for e in events_for(db, identity)
        ],
    }


def erase_subscriber(db: Database, subscriber_id: int, *, source: str, now: datetime) -> str:
    """Delete everything stored about a subscriber at their request: the subscriber, their
    subscriptions, their history in every spelling, and any suppression in clear. Only a
    one-way hash of the address stays on the suppression list (``suppressions.erased_key``),
    so it is never mailed again. Deliveries are the ledger's to forget
    (``delivery.ledger.forget_recipient``); call both in one transaction. Returns the
    address erased (for the caller to show once)."""
    with transaction(db):
        person = get_subscriber_by_id(db, subscriber_id)
        if person is None:
            raise NotFound("this subscriber no longer exists")
        identity = identity_key(person.email)
        db.execute("DELETE FROM subscribers WHERE id = ?", [subscriber_id])
        forget(db, identity)
        suppress_erased(db, identity, "personal data deleted at the person's request",
                        source=source, now=now)  # fmt: skip
    return person.email


# -- Who gets a digest -----------------------------------------------------------------------


def has_active_subscribers(db: Database, mlist: MailingList, frequency: str) -> bool:
    row = db.execute(
        "SELECT 1 FROM subscriptions WHERE list_id = ? AND frequency = ? AND status = ? LIMIT 1",
        [mlist.id, frequency, SubscriptionStatus.ACTIVE],
    ).fetchone()
    return row is not None


def active_count(db: Database, mlist: MailingList, frequency: str) -> int:
    row = db.execute(
        "SELECT count(*) FROM subscriptions WHERE list_id = ? AND frequency = ? AND status = ?",
        [mlist.id, frequency, SubscriptionStatus.ACTIVE],
    ).fetchone()
    return int(row[0])


def audience_groups(db: Database, mlist: MailingList, frequency: str) -> dict[str, int]:
    """How many active, unsuppressed subscribers of ``mlist`` get ``frequency``, by their raw
    ``tags`` JSON (the tag set they chose; the build maps each to a variant)."""
    where = "s.list_id = ? AND s.frequency = ? AND s.status = 'active'"
    params = [mlist.id, frequency]
    # Count every active subscription per tag set (index-only, idx_subscriptions_audience),
    # then take away the suppressed ones, found from the (short) suppression list.
    counts: dict[str, int] = dict(
        db.execute(
            f"SELECT s.tags, count(*) FROM subscriptions s WHERE {where} GROUP BY s.tags", params
        )
    )
    for raw, suppressed in db.execute(
        f"""
        SELECT s.tags, count(*) FROM suppressions x
        CROSS JOIN subscribers p ON p.identity = x.identity
        CROSS JOIN subscriptions s ON s.subscriber_id = p.id
        WHERE {where} GROUP BY s.tags
        """,
        params,
    ):
        counts[raw] -= suppressed
    return {raw: n for raw, n in counts.items() if n > 0}


# Deliveries are enqueued by the ledger with one INSERT ... SELECT over this: the active,
# unsuppressed subscriptions of a (list, frequency), mapped to variants through a temporary
# table of (tags JSON, variant id). idx_subscriptions_list yields subscriptions in insertion
# order, so deliveries are appended to their (digest_id, subscriber_id) index mostly in order;
# the tag-ordered audience index would scatter those writes and double the cost at 100,000.
AUDIENCE_SELECT = """
    SELECT s.subscriber_id, p.email, m.variant_id
    FROM subscriptions s INDEXED BY idx_subscriptions_list
    JOIN subscribers p ON p.id = s.subscriber_id
    JOIN {variant_map} m ON m.tags = s.tags
    WHERE s.list_id = :list_id AND s.frequency = :frequency AND s.status = 'active'
      AND NOT EXISTS (SELECT 1 FROM suppressions x WHERE x.identity = p.identity)
"""


def skip_reasons(db: Database, deliveries: Sequence[Queued]) -> dict[int, str]:
    """Why each of these queued deliveries must not go out now (unsubscribed since the build,
    suppressed...): {delivery id: reason} for those that must not, in two queries."""
    if not deliveries:
        return {}
    subscribers = list({d.subscriber_id for d in deliveries})
    statuses: dict[tuple[int, int], str] = {}
    # "subscriber_id IN (...)" walks the UNIQUE (subscriber_id, list_id) index; a row-value
    # IN over both columns would scan the whole table.
    for sub, lst, status in select_in(
        db.conn,
        "SELECT subscriber_id, list_id, status FROM subscriptions WHERE subscriber_id IN ({})",
        subscribers,
    ):
        statuses[(sub, lst)] = status
    # Suppression by identity: the delivery's address in any letter case.
    identities = {d.id: identity_key(d.email) for d in deliveries}
    suppressed = suppressed_identities(db, set(identities.values()))
    reasons = {}
    for d in deliveries:
        identity = identities[d.id]
        reason = _why_skip(
            statuses.get((d.subscriber_id, d.list_id)),
            suppressed.get(identity),
            identity in suppressed,
        )
        if reason is not None:
            reasons[d.id] = reason
    return reasons


class Queued(Protocol):
    """What ``skip_reasons`` needs of a queued delivery."""

    @property
    def id(self) -> int: ...
    @property
    def subscriber_id(self) -> int: ...
    @property
    def list_id(self) -> int: ...
    @property
    def email(self) -> str: ...


def _why_skip(status: str | None, suppressed_reason: str | None, suppressed: bool) -> str | None:
    if suppressed:
        return "address is suppressed" + (f" ({suppressed_reason})" if suppressed_reason else "")
    if status is None:
        return "no longer subscribed to the list (subscription removed)"
    if status != SubscriptionStatus.ACTIVE:
        return f"subscription is {status}"
    return None


# -- Search (the admin pages) ----------------------------------------------------------------


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True)
class SubscriptionRow:
    """One line of the admin's subscriber search."""

    email: str
    name: str | None
    slug: str
    title: str
    status: str
    frequency: str
    topics: str  # the tag keys chosen, comma-separated
    updated_at: str
    subscriber_id: int = 0


def search_subscriptions(
    db: Database,
    query: str = "",
    *,
    list_id: int | None = None,
    status: str | None = None,
    tag: str | None = None,
    page: int = 1,
    page_size: int = 50,
) -> tuple[list[SubscriptionRow], bool]:
    """One page of subscriptions whose address or name contains ``query`` (case-insensitive
    for ASCII), by address; and whether there is a next page. ``tag``: only subscriptions that
    receive that tag (chose it, or chose every tag of a list that covers it)."""
    where: list[str] = []
    params: list[Any] = []
    if query:
        where.append("(p.email LIKE ? ESCAPE '\\' OR p.name LIKE ? ESCAPE '\\')")
        params += [_like(query), _like(query)]
    if list_id is not None:
        where.append("s.list_id = ?")
        params.append(list_id)
    if status is not None:
        where.append("s.status = ?")
        params.append(status)
    if tag:
        key = tag_key(tag)
        covering = [m.id for m in all_lists(db, include_deleted=True)
                    if not m.tags or key in m.tag_keys]  # fmt: skip
        where.append(
            "(EXISTS (SELECT 1 FROM json_each(s.tags) WHERE value = ?)"
            " OR (s.tags = '[]' AND s.list_id IN (SELECT value FROM json_each(?))))"
        )
        params += [key, json.dumps(covering)]
    sql = (
        "SELECT p.id AS subscriber_id, p.email, p.name, l.slug, l.title, s.status, s.frequency,"
        " s.tags, s.updated_at"
        " FROM subscriptions s JOIN subscribers p ON p.id = s.subscriber_id"
        " JOIN lists l ON l.id = s.list_id"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY p.identity, p.id, l.slug LIMIT ? OFFSET ?"
    )
    rows = [
        SubscriptionRow(
            email=row["email"],
            name=row["name"],
            slug=row["slug"],
            title=row["title"],
            status=row["status"],
            frequency=row["frequency"],
            topics=", ".join(json.loads(row["tags"] or "[]")),
            updated_at=row["updated_at"],
            subscriber_id=row["subscriber_id"],
        )
        for row in db.query(sql, [*params, page_size + 1, (page - 1) * page_size])
    ]
    return rows[:page_size], len(rows) > page_size


# -- A CSV batch at a time -------------------------------------------------------------------

# One valid CSV row: (line, normalised address, identity, name, tags, frequency). Plain tuples,
# because a 100,000-row file makes 100,000 of them. tags: JSON list of tag keys; None = column
# absent; name and frequency: None = column absent or empty.
Row = tuple[int, str, str, str | None, str | None, str | None]


@dataclass(frozen=True)
class Restore:
    """What an exported row says beyond the import format's basics (the ``status``,
    ``created_at`` and ``confirmed_at`` columns), so that importing an export restores the
    same state. None: the cell was empty."""

    status: SubscriptionStatus | None
    created_at: str | None
    confirmed_at: str | None


@dataclass
class BatchResult:
    """What applying a batch of CSV rows did (or, without writing, would do)."""

    added: list[str] = field(default_factory=list)
    activated: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)  # a row's ended status ended a subscription
    unchanged: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line, why)
    asked: list[int] = field(default_factory=list)  # subscriber ids that became pending


def _row_outcome(
    old_status: SubscriptionStatus | None,
    restore: Restore | None,
    suppressed: bool,
    *,
    confirmed: bool,
) -> tuple[SubscriptionStatus | None, str | None]:
    """The status a row leads to, or None and why it is refused. A row without a status is
    an admission (``admit``); a row whose exported status is pending or active is admitted as
    that (a pending row is never made active, whatever ``--confirmed`` says); an ended status
    ends a live subscription (stopping is always allowed), and an expired one only lapses a
    pending request."""
    wanted = restore.status if restore is not None else None
    if wanted is None or wanted in LIVE:
        if wanted is not None:
            confirmed = wanted == SubscriptionStatus.ACTIVE
        decision = admit(old_status, suppressed, confirmed=confirmed)
        return decision.status, decision.refused_because
    if wanted == SubscriptionStatus.EXPIRED:
        lapses = old_status in (None, SubscriptionStatus.PENDING, SubscriptionStatus.EXPIRED)
        return (wanted if lapses else old_status), None
    if old_status in ENDED:
        return old_status, None  # already ended: the stored end stays
    return wanted, None


def apply_batch(
    db: Database,
    mlist: MailingList,
    rows: list[Row],
    result: BatchResult,
    *,
    confirmed: bool,
    source: str,
    reason: str,
    now: datetime,
    write: bool,
    restore: dict[int, Restore] | None = None,
) -> None:
    """Apply CSV rows to ``mlist`` (inside the caller's write transaction when ``write``): new
    addresses are added, pending/active ones (in any letter case) updated, ended or suppressed
    ones skipped (``admit``); ``restore`` (line -> exported status and times) restores an
    export. Adds to ``result``, including the subscribers who became pending and must be
    asked to confirm (``result.asked``)."""
    stamp = to_iso(now)
    restore = restore or {}
    identities = json.dumps([r[2] for r in rows], ensure_ascii=False)
    existing = {
        r[1]: r
        for r in db.execute(
            "SELECT p.id, p.identity, p.name, s.id, s.status, s.frequency, s.tags, p.email"
            " FROM subscribers p LEFT JOIN subscriptions s"
            " ON s.subscriber_id = p.id AND s.list_id = ?"
            " WHERE p.identity IN (SELECT value FROM json_each(?))",
            [mlist.id, identities],
        )
    }
    suppressed = suppressed_identities(db, (r[2] for r in rows)) if rows else {}
    # (subscriber id, email, identity, name, tags, frequency, 1 if the subscriber is new,
    # status, created_at, confirmed_at). Inside BEGIN IMMEDIATE no other writer can take
    # subscriber ids, so new ones are numbered here.
    new_subs: list[tuple[Any, ...]] = []
    new_id = next_id(db.conn, "subscribers")
    name_updates: list[tuple[str, int]] = []
    sub_updates: list[tuple[Any, ...]] = []
    repending: list[int] = []  # subscription ids that became pending again
    events: list[EventRow] = []  # status changes of existing subscriptions
    status = admit(None, False, confirmed=confirmed).status
    assert status is not None
    all_new = not existing and not suppressed and not restore
    if all_new:
        # Only new addresses (the usual first import): no per-row decisions to make.
        result.added.extend(r[1] for r in rows)
        if write and status == SubscriptionStatus.PENDING:
            result.asked.extend(range(new_id, new_id + len(rows)))
        new_subs, rows = list(rows), []
    for line, email, identity, name, row_tags, row_freq in rows:
        old = existing.get(identity)
        if old is not None:
            email = old[7]  # the address as first entered stays
        old_status = SubscriptionStatus(old[4]) if old is not None and old[4] else None
        kept = restore.get(line)
        new_status, refused = _row_outcome(
            old_status, kept, identity in suppressed, confirmed=confirmed
        )
        if new_status is None:
            shown = old[7] if old is not None else email
            if refused == "suppressed":
                why = (f"{shown} is on the suppression list "
                       f"({suppressed[identity] or 'no reason given'}); not subscribed")  # fmt: skip
            else:
                why = (f"{shown} is {refused}; not subscribed again (needs a "
                       "new confirmation by the person, or an admin's re-activation with a "
                       "reason)")  # fmt: skip
            result.skipped.append((line, why))
            continue
        created = kept.created_at if kept else None
        confirmed_at = kept.confirmed_at if kept else None
        if new_status == SubscriptionStatus.ACTIVE and confirmed_at is None:
            confirmed_at = stamp
        if old is None or old[3] is None:
            person = new_id if old is None else old[0]
            new_subs.append((person, email, identity, name, row_tags, row_freq,
                             1 if old is None else 0, new_status, created, confirmed_at))  # fmt: skip
            if old is None:
                new_id += 1
            elif name and name != old[2]:
                name_updates.append((name, person))
            result.added.append(email)
            if new_status == SubscriptionStatus.PENDING:
                result.asked.append(person)
            continue
        person_id, _, old_name, sub_id, _, old_freq, old_tags, _ = old
        if name and name != old_name:
            name_updates.append((name, person_id))
        freq = row_freq or (old_freq if old_freq in mlist.frequencies else mlist.default_frequency)
        tags = old_tags if row_tags is None else row_tags
        if new_status != old_status:
            if new_status in ENDED or new_status == SubscriptionStatus.EXPIRED:
                result.stopped.append(email)
            else:
                result.activated.append(email)
            events.append((email, mlist.slug, old_status, new_status, source, reason, stamp))
            if new_status == SubscriptionStatus.PENDING:
                repending.append(sub_id)
                result.asked.append(person_id)
        elif freq != old_freq or tags != old_tags or (name and name != old_name):
            result.updated.append(email)
        else:
            result.unchanged += 1
            continue
        sub_updates.append((freq, tags, new_status, stamp, confirmed_at, sub_id))
    if not write:
        result.asked.clear()
        return
    db.conn.executemany("UPDATE subscribers SET name = ? WHERE id = ?", name_updates)
    db.conn.executemany(
        "UPDATE subscriptions SET frequency = ?, tags = ?, status = ?, updated_at = ?,"
        " confirmed_at = coalesce(confirmed_at, ?) WHERE id = ?",
        sub_updates,
    )
    _start_pending(db, repending, stamp)
    record_events(db, events)
    if new_subs:
        _insert_new(db, mlist, new_subs, all_new=all_new, first_id=new_id, status=status,
                    source=source, reason=reason, stamp=stamp)  # fmt: skip


def _insert_new(
    db: Database,
    mlist: MailingList,
    new_subs: list[tuple[Any, ...]],
    *,
    all_new: bool,
    first_id: int,
    status: SubscriptionStatus,
    source: str,
    reason: str,
    stamp: str,
) -> None:
    # New subscriptions go through a staging table: Python binds a few values a row once (many
    # rows per statement), and SQLite copies them into subscribers, subscriptions and
    # status_events itself, several times faster than binding every value of every table
    # from Python. Rows of the all-new shortcut carry no status or times: the batch's
    # ``status`` and ``stamp`` apply; the other rows carry theirs (a restored export).
    db.execute(
        "CREATE TEMP TABLE IF NOT EXISTS import_rows (n INTEGER PRIMARY KEY, line INTEGER,"
        " person_id INTEGER, email TEXT, identity TEXT, name TEXT, tags TEXT, frequency TEXT,"
        " new_person INTEGER, status TEXT, created_at TEXT, confirmed_at TEXT)"
    )
    db.execute("DELETE FROM temp.import_rows")
    offset = 0
    if all_new:
        # The parsed rows go in as they are and are numbered in insertion order (n), which
        # saves building a second tuple per row: person_id and new_person stay NULL.
        insert_rows(
            db.conn, "temp.import_rows (line, email, identity, name, tags, frequency)", new_subs
        )
        offset = first_id - db.execute("SELECT min(n) FROM temp.import_rows").fetchone()[0]
    else:
        insert_rows(
            db.conn,
            "temp.import_rows (person_id, email, identity, name, tags, frequency, new_person,"
            " status, created_at, confirmed_at)",
            new_subs,
        )
    confirmed_at = stamp if status == SubscriptionStatus.ACTIVE else None
    pending_since = stamp if status == SubscriptionStatus.PENDING else None
    # Only an address with other characters than ASCII stores its identity (``folded``); a
    # batch of ASCII addresses (the usual one) skips computing it per row.
    folded = (
        "NULL" if all(row[1].isascii() for row in new_subs) else "nullif(identity, lower(email))"
    )
    db.execute(
        "INSERT INTO subscribers (id, email, folded, name, created_at)"
        f" SELECT coalesce(person_id, n + ?), email, {folded}, name, coalesce(created_at, ?)"
        " FROM temp.import_rows WHERE coalesce(new_person, 1)",
        [offset, stamp],
    )
    if all_new:
        # The whole batch gets the batch's status and times: constants, nothing per row.
        db.execute(
            "INSERT INTO subscriptions (subscriber_id, list_id, frequency, tags, status,"
            " created_at, updated_at, confirmed_at, pending_since)"
            " SELECT n + ?, ?, coalesce(frequency, ?), coalesce(tags, '[]'), ?, ?, ?, ?, ?"
            " FROM temp.import_rows",
            [offset, mlist.id, mlist.default_frequency, status, stamp, stamp, confirmed_at,
             pending_since],
        )  # fmt: skip
        db.execute(
            "INSERT INTO status_events (email, folded, list_slug, old_status, new_status, source,"
            f" reason, at) SELECT email, {folded}, ?, NULL, ?, ?, ?, ? FROM temp.import_rows",
            [mlist.slug, status, source, reason, stamp],
        )
    else:
        db.execute(
            "INSERT INTO subscriptions (subscriber_id, list_id, frequency, tags, status,"
            " created_at, updated_at, confirmed_at, pending_since)"
            " SELECT person_id, :list_id, coalesce(frequency, :default), coalesce(tags, '[]'),"
            " status, coalesce(created_at, :stamp), :stamp, confirmed_at,"
            " CASE WHEN status = 'pending' THEN :stamp END FROM temp.import_rows",
            {"list_id": mlist.id, "default": mlist.default_frequency, "stamp": stamp},
        )  # fmt: skip
        db.execute(
            "INSERT INTO status_events (email, folded, list_slug, old_status, new_status, source,"
            f" reason, at) SELECT email, {folded}, ?, NULL, status, ?, ?, ?"
            " FROM temp.import_rows",
            [mlist.slug, source, reason, stamp],
        )
    db.execute("DELETE FROM temp.import_rows")


def end_missing(
    db: Database,
    mlist: MailingList,
    keep: set[str],
    *,
    source: str,
    reason: str,
    now: datetime,
    write: bool,
) -> list[str]:
    """Unsubscribe the pending or active members of ``mlist`` whose identity is not in
    ``keep`` (a synced file's addresses, lower-cased); returns their addresses."""
    stamp = to_iso(now)
    gone = [
        (sub.id, sub.email, sub.status)
        for sub in iter_subscriptions(db, mlist.slug)
        if sub.status in LIVE and identity_key(sub.email) not in keep
    ]
    if write:
        db.conn.executemany(
            "UPDATE subscriptions SET status = 'unsubscribed', updated_at = ? WHERE id = ?",
            [(stamp, sid) for sid, _, _ in gone],
        )
        record_events(
            db,
            [
                (email, mlist.slug, old, SubscriptionStatus.UNSUBSCRIBED, source, reason, stamp)
                for _, email, old in gone
            ],
        )
    return [email for _, email, _ in gone]


# -- Keeping subscriptions coherent with their list's tags ---------------------------------


@dataclass(frozen=True)
class OrphanedSubscription:
    """A live subscription whose chosen tags are none of its list's tags any more: it would
    get nothing."""

    id: int
    email: str
    status: str
    tags: tuple[str, ...]  # the keys it chose


def orphaned_subscriptions(
    db: Database, mlist: MailingList, tag_keys: Sequence[str]
) -> list[OrphanedSubscription]:
    """The pending and active subscriptions to ``mlist`` that chose tags of which none is in
    ``tag_keys`` (the list's tags after an edit; () = every tag, which orphans nobody)."""
    if not tag_keys:
        return []
    keys = set(tag_keys)
    rows = db.execute(
        "SELECT s.id, p.email, s.status, s.tags FROM subscriptions s"
        " JOIN subscribers p ON p.id = s.subscriber_id"
        f" WHERE s.list_id = ? AND s.status IN ({_LIVE_SQL}) AND s.tags != '[]' ORDER BY p.email",
        [mlist.id],
    ).fetchall()
    out = []
    for sub_id, email, status, raw in rows:
        chosen = tuple(json.loads(raw or "[]"))
        if chosen and keys.isdisjoint(chosen):
            out.append(OrphanedSubscription(sub_id, email, status, chosen))
    return out


def move_to_all_tags(
    db: Database,
    mlist: MailingList,
    subscriptions: Sequence[OrphanedSubscription],
    *,
    source: str,
    reason: str,
    now: datetime,
) -> int:
    """Give ``subscriptions`` every tag of ``mlist``, recorded in each one's history."""
    with transaction(db):
        for sub in subscriptions:
            db.execute(
                "UPDATE subscriptions SET tags = '[]', updated_at = ? WHERE id = ?",
                [to_iso(now), sub.id],
            )
        record_events(
            db,
            [
                (sub.email, mlist.slug, sub.status, sub.status, source, reason, to_iso(now))
                for sub in subscriptions
            ],
        )
    return len(subscriptions)


def rekey_subscription_tags(db: Database, keys: dict[str, str]) -> int:
    """Replace tag keys in every subscription's chosen tags (``keys``: old key -> new key,
    after a tag was renamed or merged), keeping the first of a key that then appears twice.
    Returns how many subscriptions changed."""
    if not keys:
        return 0
    changed = 0
    with transaction(db):
        rows = db.execute(
            "SELECT DISTINCT s.id, s.tags FROM subscriptions s, json_each(s.tags) j"
            " WHERE j.value IN (SELECT value FROM json_each(?))",
            [json.dumps(list(keys))],
        ).fetchall()
        for sub_id, raw in rows:
            new: list[str] = []
            for key in json.loads(raw or "[]"):
                key = keys.get(key, key)
                if key not in new:
                    new.append(key)
            db.execute(
                "UPDATE subscriptions SET tags = ? WHERE id = ?",
                [json.dumps(new, ensure_ascii=False), sub_id],
            )
            changed += 1
    return changed
