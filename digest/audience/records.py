"""The audience's records: statuses and frequencies as enums, subscribers, subscriptions, their
history and suppressions as dataclasses, and the one admission rule every path that adds or
re-activates someone goes through (``admit``)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..errors import InvalidInput


class SubscriptionStatus(StrEnum):
    PENDING = "pending"  # waiting for the person's confirmation
    ACTIVE = "active"  # receives digests
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"  # the address does not exist (any more)
    COMPLAINED = "complained"  # the person reported a digest as spam
    # Pending for longer than [subscribers] pending_expire_days without a confirmation. The
    # person never agreed, so nothing is sent and no reminder goes out; adding them again asks
    # them again (it is not an end the person chose, unlike the three above).
    EXPIRED = "expired"


# A subscription in one of these states has ended: only the person can start it again.
ENDED = frozenset(
    {SubscriptionStatus.UNSUBSCRIBED, SubscriptionStatus.BOUNCED, SubscriptionStatus.COMPLAINED}
)
LIVE = (SubscriptionStatus.PENDING, SubscriptionStatus.ACTIVE)


def sql_list(values: tuple[StrEnum, ...] | frozenset[StrEnum]) -> str:
    """``'a', 'b'`` for an SQL ``IN (...)``: statuses are literals where an index or a query
    plan depends on them (a partial index matches only the literal form)."""
    return ", ".join(f"'{v.value}'" for v in sorted(values))


class Frequency(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"


FREQUENCIES = tuple(Frequency)


def check_frequency(value: str) -> Frequency:
    v = value.strip().lower()
    try:
        return Frequency(v)
    except ValueError:
        raise InvalidInput(f"unknown frequency {value!r} (expected daily or weekly)") from None


def check_frequencies(value: str | Iterable[str]) -> tuple[Frequency, ...]:
    """What a list offers, from ``"daily,weekly"``, ``"weekly"`` or a sequence: at least one,
    each once, in the canonical order (daily before weekly)."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    chosen = {check_frequency(p) for p in parts if p.strip()}
    if not chosen:
        raise InvalidInput("a list must offer at least one frequency (daily, weekly or both)")
    return tuple(f for f in FREQUENCIES if f in chosen)


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
    frequency: Frequency
    tags: tuple[str, ...]  # tag keys; () = all of the list's tags
    status: SubscriptionStatus
    created_at: str
    updated_at: str
    confirmed_at: str | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Subscription:
        return cls(
            id=row["id"],
            subscriber_id=row["subscriber_id"],
            list_id=row["list_id"],
            list_slug=row["list_slug"],
            email=row["email"],
            name=row["name"],
            frequency=Frequency(row["frequency"]),
            tags=tuple(json.loads(row["tags"])),
            status=SubscriptionStatus(row["status"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            confirmed_at=row["confirmed_at"],
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "name": self.name,
            "list": self.list_slug,
            "status": str(self.status),
            "frequency": str(self.frequency),
            "tags": list(self.tags),
            "created_at": self.created_at,
            "confirmed_at": self.confirmed_at,
        }


@dataclass(frozen=True)
class StatusEvent:
    at: str
    list_slug: str | None
    old_status: str | None
    new_status: str  # a SubscriptionStatus, or suppressed / unsuppressed / removed / merged
    source: str
    reason: str | None


@dataclass(frozen=True)
class Suppression:
    email: str  # the address as suppressed; for an erased one, the hash it is kept as
    reason: str | None
    source: str
    created_at: str
    erased: bool = False  # the person deleted their data: only a hash of the address is kept


@dataclass
class SubscriberHistory:
    email: str
    subscriber: Subscriber | None
    subscriptions: list[Subscription] = field(default_factory=list)
    suppression: Suppression | None = None
    events: list[StatusEvent] = field(default_factory=list)


@dataclass(frozen=True)
class Admission:
    """What ``admit`` decided: the status to store, or why the address is refused."""

    status: SubscriptionStatus | None  # None: refused
    refused_because: str | None = None  # "unsubscribed" | "bounced" | "complained" | "suppressed"

    @property
    def refused(self) -> bool:
        return self.status is None


def admit(
    current: SubscriptionStatus | None,
    suppressed: bool,
    *,
    confirmed: bool,
    force: bool = False,
    opt_in: bool = False,
) -> Admission:
    """The one rule for adding or re-activating a subscription, used by every path (single add,
    CSV import, sync, web form, confirmation link).

    An address whose subscription ended (unsubscribed, bounced, complained) or that is
    suppressed is never made active or pending again, unless by the person's own new
    confirmation (``opt_in``: they followed a signed confirmation link) or an admin's explicit
    ``force`` (with a recorded reason). Otherwise an active subscription stays active, and a new
    or pending one becomes active only when ``confirmed`` (the admin has the person's
    consent)."""
    if not (force or opt_in):
        if current in ENDED:
            assert current is not None
            return Admission(None, str(current))
        if suppressed:
            return Admission(None, "suppressed")
    if confirmed or opt_in or current == SubscriptionStatus.ACTIVE:
        return Admission(SubscriptionStatus.ACTIVE)
    return Admission(SubscriptionStatus.PENDING)
