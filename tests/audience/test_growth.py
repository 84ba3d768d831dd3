"""Each list's active subscriptions per day, worked out from today's count and the history."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from digest.audience.growth import active_growth
from digest.audience.subscriptions import (
    add_subscription,
    confirm_subscription,
    mark_bounced,
    unsubscribe,
    update_preferences,
)

NOW = datetime(2025, 1, 31, 12, 0, tzinfo=UTC)


def at(days_ago: int) -> datetime:
    return NOW - timedelta(days=days_ago)


def test_growth_follows_every_change_into_and_out_of_active(db, newsroom):
    world = newsroom.add_list()
    other = newsroom.add_list("other", title="Other")
    add_subscription(db, world, "old@example.com", confirmed=True, source="cli", now=at(60))
    add_subscription(db, world, "a@example.com", confirmed=True, source="cli", now=at(5))
    pending = add_subscription(db, world, "p@example.com", source="cli", now=at(4))
    confirm_subscription(db, pending.subscriber_id, world.id, source="web", now=at(3))
    # A change of preferences is recorded active -> active: no change in the count.
    update_preferences(db, pending.subscriber_id, world.id, tags=["Kenya"], frequency="weekly",
                       source="web", now=at(3))  # fmt: skip
    unsubscribe(db, "a@example.com", list_slug="world", source="cli", reason=None, now=at(2))
    mark_bounced(db, "old@example.com", "550", now=at(1))
    add_subscription(db, other, "o@example.com", confirmed=True, source="cli", now=at(2))

    growth = active_growth(db, [world, other], now=NOW, days=7)
    assert growth[world.id].days == (
        (date(2025, 1, 25), 1),
        (date(2025, 1, 26), 2),  # a joined
        (date(2025, 1, 27), 2),  # p pending: not active yet
        (date(2025, 1, 28), 3),  # p confirmed
        (date(2025, 1, 29), 2),  # a unsubscribed
        (date(2025, 1, 30), 1),  # old bounced
        (date(2025, 1, 31), 1),
    )
    assert (growth[world.id].first, growth[world.id].last, growth[world.id].change) == (1, 1, 0)
    assert growth[other.id].counts == [0, 0, 0, 0, 1, 1, 1]
