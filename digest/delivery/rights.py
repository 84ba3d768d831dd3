"""A subscriber's rights over their own data, used by the preferences page: download what is
stored about them (``subscriber_export``: subscriptions, history, deliveries with dates) and
delete it (``erase``).

Erasing removes the subscriber, their subscriptions, their history in every spelling of the
address, their queued emails (the outbox rows go with the subscriber) and the address and
replies in their deliveries and in the bounce reports about them, in one transaction. Only a one-way hash of the address stays, on
the suppression list, so that it is never mailed again (``audience.suppressions.erased_key``).
It lives in the delivery stage because the ledger is one of the places it reaches.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlite_utils import Database

from ..audience.subscriptions import erase_subscriber, get_subscriber_by_id, subscriber_data
from ..feedback.events import forget_address
from ..store import transaction
from ..timeutil import to_iso
from . import ledger


def subscriber_export(db: Database, subscriber_id: int, *, now: datetime) -> dict[str, Any]:
    """What is stored about a subscriber, as one JSON-ready object."""
    data = subscriber_data(db, subscriber_id)
    data["deliveries"] = ledger.deliveries_of(db, subscriber_id)
    return {"exported_at": to_iso(now), **data}


def erase(db: Database, subscriber_id: int, *, now: datetime) -> str:
    """Delete everything about a subscriber at their request (see the module docstring).
    Returns the address erased."""
    with transaction(db):
        person = get_subscriber_by_id(db, subscriber_id)
        if person is not None:
            forget_address(db, person.email, subscriber_id)
        ledger.forget_recipient(db, subscriber_id, now=now)
        return erase_subscriber(db, subscriber_id, source="web", now=now)
