"""How each list's audience changed: the number of active subscriptions at the end of each of
the last N days (UTC), worked out backwards from today's count and the recorded history
(``status_events``), for the admin dashboard. Reads only.

Every change into or out of ``active`` is in the history (adds, confirmations, imports, syncs,
unsubscribes, bounces, complaints, list deletions), so today's count minus the changes after a
day is that day's count. A subscriber removed with ``subscribers remove`` takes their history
with them, so the days before their removal count them as if they had never been there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlite_utils import Database

from ..timeutil import to_iso
from .lists import MailingList
from .records import SubscriptionStatus


@dataclass(frozen=True)
class Growth:
    """Active subscriptions of one list at the end of each day, oldest first."""

    days: tuple[tuple[date, int], ...]

    @property
    def first(self) -> int:
        return self.days[0][1] if self.days else 0

    @property
    def last(self) -> int:
        return self.days[-1][1] if self.days else 0

    @property
    def change(self) -> int:
        return self.last - self.first

    @property
    def counts(self) -> list[int]:
        return [n for _, n in self.days]


def active_growth(
    db: Database, lists: list[MailingList], *, now: datetime, days: int = 30
) -> dict[int, Growth]:
    """list id -> its active subscriptions at the end of each of the ``days`` days up to
    ``now`` (the last one is today, so far)."""
    today = now.date()
    first = today - timedelta(days=days - 1)
    active = SubscriptionStatus.ACTIVE.value
    current = dict(
        db.execute(
            "SELECT list_id, count(*) FROM subscriptions WHERE status = ? GROUP BY list_id",
            [active],
        ).fetchall()
    )
    # Net change per list and UTC day: +1 into active, -1 out of it (a change of preferences
    # records active -> active, which is neither).
    changes: dict[tuple[str, str], int] = {}
    for slug, day, delta in db.execute(
        """
        SELECT list_slug, substr(at, 1, 10),
               sum(CASE WHEN new_status = :active THEN 1 ELSE 0 END)
               - sum(CASE WHEN old_status = :active THEN 1 ELSE 0 END)
        FROM status_events
        WHERE at >= :since AND list_slug IS NOT NULL
          AND (new_status = :active) != (coalesce(old_status, '') = :active)
        GROUP BY list_slug, substr(at, 1, 10)
        """,
        {"active": active, "since": to_iso(datetime.combine(first, datetime.min.time(),
                                                           tzinfo=now.tzinfo))},
    ):  # fmt: skip
        changes[(slug, day)] = int(delta)
    result = {}
    for mlist in lists:
        count = int(current.get(mlist.id, 0))
        series: list[tuple[date, int]] = []
        day = today
        while day >= first:
            series.append((day, count))
            count -= changes.get((mlist.slug, day.isoformat()), 0)
            day -= timedelta(days=1)
        result[mlist.id] = Growth(tuple(reversed(series)))
    return result
