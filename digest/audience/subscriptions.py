"""Subscribers and their subscriptions: adding, confirming, unsubscribing and removing people,
with every status change recorded (time, source, reason) so ``subscribers show`` can say why
someone stopped getting the digest; the global suppression list; bounces.

The rule that matters most: an address that unsubscribed, bounced, complained or is suppressed is
never made active again by ``add``, ``import`` or ``sync``. Only a new double opt-in confirmation
(``confirm_subscription`` from the web form) or an admin's explicit ``force`` with a recorded
reason re-activates it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from email_validator import EmailNotValidError, validate_email
from sqlite_utils import Database

from .errors import InvalidInput, NotFound
from .lists import MailingList, get_list, get_list_by_id
from .store import tag_key, write_transaction
from .timeutil import to_iso

STATUSES = ("pending", "active", "unsubscribed", "bounced", "complained")
SOURCES = ("cli", "import", "sync", "web", "bounce")
FREQUENCIES = ("daily", "weekly")
ENDED = ("unsubscribed", "bounced", "complained")


# -- Addresses ------------------------------------------------------------------------------

# A strict fast path for plain ASCII addresses. email-validator is thorough but slow (it
# NFC-normalises a window at every character while splitting); for an address matching these
# patterns its result is provably ``local@domain.lower()`` (with RFC 2142 role names
# lower-cased): the local part is a plain dot-atom, the domain is LDH labels ending in a letter
# with no '--' (so no Punycode or R-LDH label), within the length limits and not special-use.
# Anything else goes through email-validator. tests/test_subscribers_email.py checks the
# equivalence over many generated addresses.
_ATEXT = r"A-Za-z0-9_!#$%&'*+\-/=?^`{|}~"
_FAST_LOCAL = re.compile(rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*")
_FAST_DOMAIN = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"(?:[A-Za-z]|[A-Za-z0-9][A-Za-z0-9-]{0,61}[A-Za-z])"
)
_SPECIAL_USE = frozenset(["arpa", "invalid", "local", "localhost", "onion", "test"])
_ROLE_NAMES = frozenset(
    [
        "info",
        "marketing",
        "sales",
        "support",
        "abuse",
        "noc",
        "security",
        "postmaster",
        "hostmaster",
        "usenet",
        "news",
        "webmaster",
        "www",
        "uucp",
        "ftp",
    ]
)


# Domain as written -> normalised domain, or None if not in the fast subset. A large import has
# far fewer domains than addresses, so most addresses only need their local part checked.
_FAST_DOMAINS: dict[str, str | None] = {}


def _fast_domain(domain: str) -> str | None:
    if _FAST_DOMAIN.fullmatch(domain) is None:
        return None
    domain = domain.lower()
    if len(domain) > 253 or "--" in domain:
        return None
    # Every special-use name is a single label, so "is it or ends with .it" is the last label.
    if domain[domain.rfind(".") + 1 :] in _SPECIAL_USE:
        return None
    return domain


def _fast_normalise(text: str) -> str | None:
    """``local@domain`` normalised exactly as email-validator would, or None when the address
    is not in the plain-ASCII subset this handles (the caller then asks email-validator)."""
    if len(text) > 254:
        return None
    # The local part's characters exclude '@', so an address with two is refused either way.
    local, at, raw_domain = text.rpartition("@")
    if not at:
        return None
    try:
        domain = _FAST_DOMAINS[raw_domain]
    except KeyError:
        if len(_FAST_DOMAINS) > 100_000:
            _FAST_DOMAINS.clear()
        domain = _FAST_DOMAINS[raw_domain] = _fast_domain(raw_domain)
    if domain is None or _FAST_LOCAL.fullmatch(local) is None:
        return None
    if local.lower() in _ROLE_NAMES:
        local = local.lower()
    return local + "@" + domain


def normalise_email(text: str) -> str:
    """The normalised form of an address (email-validator syntax rules, no DNS look-ups;
    the domain is lower-cased). Raises ``InvalidInput`` saying what is wrong."""
    text = text.strip(" ")
    fast = _fast_normalise(text)
    if fast is not None:
        return fast
    if not text:
        raise InvalidInput("empty address")
    try:
        return validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError as e:
        raise InvalidInput(f"invalid address {text!r}: {e}") from None


# -- Records --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subscriber:
    id: int
    email: str
    name: str | None
    created_at: str


@dataclass(frozen=True)
class Subscription:
    id: int
    subscriber_id: int
    list_id: int
    list_slug: str
    email: str
    name: str | None
    frequency: str
    tags: tuple[str, ...]  # tag keys; () = all of the list's tags
    status: str
    created_at: str
    updated_at: str
    confirmed_at: str | None

    @classmethod
    def from_row(cls, row) -> Subscription:
        return cls(
            id=row["id"],
            subscriber_id=row["subscriber_id"],
            list_id=row["list_id"],
            list_slug=row["list_slug"],
            email=row["email"],
            name=row["name"],
            frequency=row["frequency"],
            tags=tuple(json.loads(row["tags"])),
            status=row["status"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            confirmed_at=row["confirmed_at"],
        )

    def as_json(self) -> dict:
        return {
            "email": self.email,
            "name": self.name,
            "list": self.list_slug,
            "status": self.status,
            "frequency": self.frequency,
            "tags": list(self.tags),
            "created_at": self.created_at,
            "confirmed_at": self.confirmed_at,
        }


@dataclass(frozen=True)
class StatusEvent:
    at: str
    list_slug: str | None
    old_status: str | None
    new_status: str
    source: str
    reason: str | None


@dataclass(frozen=True)
class Suppression:
    email: str
    reason: str | None
    source: str
    created_at: str


@dataclass
class SubscriberHistory:
    email: str
    subscriber: Subscriber | None
    subscriptions: list[Subscription] = field(default_factory=list)
    suppression: Suppression | None = None
    events: list[StatusEvent] = field(default_factory=list)


_SUBSCRIPTION_SELECT = """
    SELECT s.id, s.subscriber_id, s.list_id, l.slug AS list_slug, p.email, p.name, s.frequency,
           s.tags, s.status, s.created_at, s.updated_at, s.confirmed_at
    FROM subscriptions s
    JOIN subscribers p ON p.id = s.subscriber_id
    JOIN lists l ON l.id = s.list_id
"""


# CROSS JOIN makes SQLite walk subscribers in the order of their email index and look up each
# one's subscriptions: rows come out already in order, so the first is printed at once instead
# of after sorting every row (EXPLAIN QUERY PLAN shows no temp b-tree; a test checks).
_STREAM_SELECT = """
    SELECT s.id, s.subscriber_id, s.list_id, l.slug AS list_slug, p.email, p.name, s.frequency,
           s.tags, s.status, s.created_at, s.updated_at, s.confirmed_at
    FROM subscribers p
    CROSS JOIN subscriptions s ON s.subscriber_id = p.id
    JOIN lists l ON l.id = s.list_id{where}
    ORDER BY p.email, s.list_id
"""


def _subscription(db: Database, subscriber_id: int, list_id: int) -> Subscription | None:
    cur = db.execute(
        _SUBSCRIPTION_SELECT + " WHERE s.subscriber_id = ? AND s.list_id = ?",
        [subscriber_id, list_id],
    )
    cur.row_factory = _dict_row
    row = cur.fetchone()
    return Subscription.from_row(row) if row else None


def _dict_row(cursor, row) -> dict:
    return {d[0]: v for d, v in zip(cursor.description, row, strict=True)}


def get_subscriber(db: Database, email: str) -> Subscriber:
    email = normalise_email(email)
    row = db.execute(
        "SELECT id, email, name, created_at FROM subscribers WHERE email = ?", [email]
    ).fetchone()
    if row is None:
        raise NotFound(f"no subscriber {email}")
    return Subscriber(*row)


# -- Validation shared with the CSV import ---------------------------------------------------


def check_frequency(value: str) -> str:
    v = value.strip().lower()
    if v not in FREQUENCIES:
        raise InvalidInput(f"unknown frequency {value!r} (expected daily or weekly)")
    return v


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


# -- Status changes --------------------------------------------------------------------------


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


def get_suppression(db: Database, email: str) -> Suppression | None:
    row = db.execute(
        "SELECT email, reason, source, created_at FROM suppressions WHERE email = ?", [email]
    ).fetchone()
    return Suppression(*row) if row else None


def iter_suppressions(db: Database) -> Iterator[Suppression]:
    for row in db.execute(
        "SELECT email, reason, source, created_at FROM suppressions ORDER BY created_at, email"
    ):
        yield Suppression(*row)


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


def _lift_suppression(db: Database, email: str, *, source: str, reason: str, now: datetime):
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


class _transaction:  # noqa: N801 - used like a function
    """``write_transaction`` at the top level, a savepoint when the caller already holds one."""

    def __init__(self, db: Database):
        self.db = db
        self.inner = db.atomic() if db.conn.in_transaction else write_transaction(db)

    def __enter__(self):
        return self.inner.__enter__()

    def __exit__(self, *exc):
        return self.inner.__exit__(*exc)


def add_subscription(
    db: Database,
    mlist: MailingList,
    email: str,
    *,
    name: str | None = None,
    tags: Iterable[str] = (),
    frequency: str = "daily",
    confirmed: bool = False,
    source: str,
    now: datetime,
    force: bool = False,
    reason: str | None = None,
) -> Subscription:
    """Subscribe ``email`` to ``mlist``: ``pending`` until confirmed, or ``active`` when
    ``confirmed`` (the admin has the person's consent). An existing pending or active
    subscription gets the new name, tags and frequency.

    An address that unsubscribed, bounced, complained or is suppressed is refused
    (``InvalidInput``) unless ``force`` with a ``reason``, which is recorded."""
    email = normalise_email(email)
    frequency = check_frequency(frequency)
    keys = json.dumps(subscription_tags(mlist, tags), ensure_ascii=False)
    name = _clean_name(name)
    if force and not (reason and reason.strip()):
        raise InvalidInput("--force needs a --reason, recorded in the address's history")
    stamp = to_iso(now)
    with _transaction(db):
        row = db.execute("SELECT id, name FROM subscribers WHERE email = ?", [email]).fetchone()
        if row is None:
            subscriber_id = db.execute(
                "INSERT INTO subscribers (email, name, created_at) VALUES (?, ?, ?)",
                [email, name, stamp],
            ).lastrowid
        else:
            subscriber_id = row[0]
            if name and name != row[1]:
                db.execute("UPDATE subscribers SET name = ? WHERE id = ?", [name, subscriber_id])
        existing = _subscription(db, subscriber_id, mlist.id)
        suppression = get_suppression(db, email)
        blocked = existing is not None and existing.status in ENDED
        if (blocked or suppression) and not force:
            why = (
                f"{existing.status} from list {mlist.slug!r}"
                if blocked
                else f"on the suppression list ({suppression.reason or 'no reason given'})"
            )
            raise InvalidInput(
                f"{email} is {why}; it is not subscribed again without a new confirmation "
                "from the person, or --force with a --reason"
            )
        new_status = "active" if confirmed else "pending"
        if existing is None:
            db.execute(
                "INSERT INTO subscriptions (subscriber_id, list_id, frequency, tags, status,"
                " created_at, updated_at, confirmed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [subscriber_id, mlist.id, frequency, keys, new_status, stamp, stamp,
                 stamp if confirmed else None],
            )  # fmt: skip
            record_event(db, email, new_status, source=source, now=now, list_slug=mlist.slug,
                         reason=reason)  # fmt: skip
        else:
            if existing.status == "active":
                new_status = "active"
            db.execute(
                "UPDATE subscriptions SET frequency = ?, tags = ?, status = ?, updated_at = ?,"
                " confirmed_at = coalesce(confirmed_at, ?) WHERE id = ?",
                [frequency, keys, new_status, stamp, stamp if new_status == "active" else None,
                 existing.id],
            )  # fmt: skip
            if new_status != existing.status:
                record_event(db, email, new_status, source=source, now=now,
                             list_slug=mlist.slug, old_status=existing.status,
                             reason=reason)  # fmt: skip
        if suppression is not None:
            _lift_suppression(db, email, source=source, reason=reason or "", now=now)
        return _subscription(db, subscriber_id, mlist.id)


def confirm_subscription(
    db: Database,
    subscriber_id: int,
    list_id: int,
    *,
    source: str,
    now: datetime,
    force: bool = False,
    reason: str | None = None,
) -> Subscription:
    """Make a subscription active.

    With ``source="web"`` this is a new double opt-in confirmation (the person followed a
    signed confirmation link), which may re-activate an unsubscribed, bounced or complained
    subscription and lifts a suppression of the address; the history says so. From any other
    source only a pending subscription is confirmed, unless ``force`` with a ``reason``."""
    if force and not (reason and reason.strip()):
        raise InvalidInput("--force needs a --reason, recorded in the address's history")
    with _transaction(db):
        sub = _subscription(db, subscriber_id, list_id)
        if sub is None:
            mlist = get_list_by_id(db, list_id)
            raise NotFound(f"no subscription of subscriber {subscriber_id} to list {mlist.slug!r}")
        suppression = get_suppression(db, sub.email)
        reactivating = sub.status in ENDED or suppression is not None
        opt_in = source == "web"
        if reactivating and not opt_in and not force:
            why = sub.status if sub.status in ENDED else "suppressed"
            raise InvalidInput(
                f"{sub.email} is {why}; only a new confirmation by the person (the web form) "
                "or --force with a --reason re-activates it"
            )
        if reason is None:
            reason = (
                "re-activated by a new double opt-in confirmation"
                if reactivating
                else ("double opt-in confirmation" if opt_in else None)
            )
        if sub.status != "active":
            stamp = to_iso(now)
            db.execute(
                "UPDATE subscriptions SET status = 'active', updated_at = ?, confirmed_at = ?"
                " WHERE id = ?",
                [stamp, stamp, sub.id],
            )
            record_event(db, sub.email, "active", source=source, now=now,
                         list_slug=sub.list_slug, old_status=sub.status,
                         reason=reason)  # fmt: skip
        if suppression is not None:
            _lift_suppression(db, sub.email, source=source, reason=reason or "", now=now)
        return _subscription(db, subscriber_id, list_id)


def unsubscribe(
    db: Database,
    email: str,
    *,
    list_slug: str | None = None,
    source: str,
    reason: str | None,
    now: datetime,
) -> list[Subscription]:
    """End ``email``'s pending or active subscription to ``list_slug`` (None: to every list).
    Returns the subscriptions that changed (empty if there was nothing to end)."""
    email = normalise_email(email)
    with _transaction(db):
        subscriber = db.execute("SELECT id FROM subscribers WHERE email = ?", [email]).fetchone()
        if subscriber is None:
            raise NotFound(f"no subscriber {email}")
        where, params = "s.subscriber_id = ? AND s.status IN ('pending', 'active')", [subscriber[0]]
        if list_slug is not None:
            mlist = get_list(db, list_slug)
            where += " AND s.list_id = ?"
            params.append(mlist.id)
        cur = db.execute(_SUBSCRIPTION_SELECT + " WHERE " + where, params)
        cur.row_factory = _dict_row
        subs = [Subscription.from_row(r) for r in cur.fetchall()]
        for sub in subs:
            db.execute(
                "UPDATE subscriptions SET status = 'unsubscribed', updated_at = ? WHERE id = ?",
                [to_iso(now), sub.id],
            )
            record_event(db, email, "unsubscribed", source=source, now=now,
                         list_slug=sub.list_slug, old_status=sub.status,
                         reason=reason)  # fmt: skip
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
    """Change which of the list's tags (display names or keys; empty = all) and how often a
    pending or active subscriber gets the digest. Recorded in the history."""
    frequency = check_frequency(frequency)
    with _transaction(db):
        sub = _subscription(db, subscriber_id, list_id)
        if sub is None:
            raise NotFound(f"no subscription of subscriber {subscriber_id} to list {list_id}")
        if sub.status not in ("pending", "active"):
            raise InvalidInput(f"{sub.email} is {sub.status} from list {sub.list_slug!r}")
        mlist = get_list_by_id(db, list_id)
        keys = subscription_tags(mlist, tags)
        if tuple(keys) == sub.tags and frequency == sub.frequency:
            return sub
        db.execute(
            "UPDATE subscriptions SET tags = ?, frequency = ?, updated_at = ? WHERE id = ?",
            [json.dumps(keys, ensure_ascii=False), frequency, to_iso(now), sub.id],
        )
        shown = ", ".join(mlist.tag_names(keys)) or "all tags"
        record_event(db, sub.email, sub.status, source=source, now=now, list_slug=sub.list_slug,
                     old_status=sub.status,
                     reason=f"preferences changed: {frequency}, {shown}")  # fmt: skip
        return _subscription(db, subscriber_id, list_id)


def remove_subscriber(db: Database, email: str, *, now: datetime) -> bool:
    """Delete a subscriber's personal data (name, subscriptions, history). If the address had
    ever unsubscribed, bounced or complained it stays on the suppression list (with one
    history line saying so) so it is never mailed again. Returns True if it was suppressed."""
    email = normalise_email(email)
    with _transaction(db):
        row = db.execute("SELECT id FROM subscribers WHERE email = ?", [email]).fetchone()
        if row is None:
            raise NotFound(f"no subscriber {email}")
        ended = db.execute(
            "SELECT count(*) FROM subscriptions WHERE subscriber_id = ? AND status IN"
            " ('unsubscribed', 'bounced', 'complained')",
            [row[0]],
        ).fetchone()[0]
        db.execute("DELETE FROM subscribers WHERE id = ?", [row[0]])
        db.execute("DELETE FROM status_events WHERE email = ?", [email])
        keep = ended > 0 or is_suppressed(db, email)
        if keep:
            if not is_suppressed(db, email):
                db.execute(
                    "INSERT INTO suppressions (email, reason, source, created_at)"
                    " VALUES (?, ?, 'cli', ?)",
                    [email, "removed after unsubscribing", to_iso(now)],
                )
            record_event(db, email, "removed", source="cli", now=now,
                         reason="personal data deleted; address kept on the suppression list")  # fmt: skip
        return keep


def subscriber_history(db: Database, email: str) -> SubscriberHistory:
    """Everything known about an address: subscriber, subscriptions, suppression, events."""
    email = normalise_email(email)
    row = db.execute(
        "SELECT id, email, name, created_at FROM subscribers WHERE email = ?", [email]
    ).fetchone()
    history = SubscriberHistory(email, Subscriber(*row) if row else None)
    if row:
        cur = db.execute(
            _SUBSCRIPTION_SELECT + " WHERE s.subscriber_id = ? ORDER BY l.slug", [row[0]]
        )
        cur.row_factory = _dict_row
        history.subscriptions = [Subscription.from_row(r) for r in cur]
    history.suppression = get_suppression(db, email)
    history.events = [
        StatusEvent(*r)
        for r in db.execute(
            "SELECT at, list_slug, old_status, new_status, source, reason FROM status_events"
            " WHERE email = ? ORDER BY at, id",
            [email],
        )
    ]
    if history.subscriber is None and history.suppression is None and not history.events:
        raise NotFound(f"nothing is known about {email}")
    return history


def iter_subscriptions(
    db: Database, list_slug: str | None = None, status: str | None = None
) -> Iterator[Subscription]:
    """Subscriptions (by address, then list), streamed from the cursor one row at a time."""
    where, params = [], []
    if list_slug is not None:
        where.append("s.list_id = ?")
        params.append(get_list(db, list_slug, include_deleted=True).id)
    if status is not None:
        if status not in STATUSES:
            raise InvalidInput(f"unknown status {status!r} (one of {', '.join(STATUSES)})")
        where.append("s.status = ?")
        params.append(status)
    sql = _STREAM_SELECT.format(where=" WHERE " + " AND ".join(where) if where else "")
    cur = db.conn.cursor()
    cur.row_factory = _dict_row
    yield from map(Subscription.from_row, cur.execute(sql, params))


_NAME_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _clean_name(name: str | None) -> str | None:
    if name is None:
        return None
    if _NAME_CONTROL.search(name):
        raise InvalidInput(f"name {name!r} contains a line break or control character")
    return " ".join(name.split()) or None
