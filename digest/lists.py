"""Mailing lists: who a digest is from, which tags it covers (in section order), and when it is
sent in its own timezone. (Create/edit/delete and validation: see the subscribers issue.)"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import time
from zoneinfo import ZoneInfo

from sqlite_utils import Database

from .errors import NotFound
from .store import tag_key

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True)
class MailingList:
    id: int
    slug: str
    title: str
    from_addr: str
    reply_to: str | None
    tags: tuple[str, ...]  # display names in section order; () = every tag
    timezone: str
    send_time: str  # "HH:MM" local
    weekly_day: str  # "monday".."sunday"
    description: str | None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def tag_keys(self) -> tuple[str, ...]:
        return tuple(tag_key(t) for t in self.tags)

    @property
    def send_clock(self) -> time:
        hh, mm = self.send_time.split(":")
        return time(int(hh), int(mm))

    @property
    def weekday_index(self) -> int:
        return WEEKDAYS.index(self.weekly_day)

    @classmethod
    def from_row(cls, row: dict) -> MailingList:
        return cls(
            id=row["id"],
            slug=row["slug"],
            title=row["title"],
            from_addr=row["from_addr"],
            reply_to=row["reply_to"],
            tags=tuple(json.loads(row["tags"] or "[]")),
            timezone=row["timezone"],
            send_time=row["send_time"],
            weekly_day=row["weekly_day"],
            description=row["description"],
        )


def get_list(db: Database, slug: str) -> MailingList:
    rows = list(db.query("SELECT * FROM lists WHERE slug = ?", [slug]))
    if not rows:
        known = ", ".join(r["slug"] for r in db.query("SELECT slug FROM lists ORDER BY slug"))
        raise NotFound(
            f"no list {slug!r} (known lists: {known or 'none; create one with `digest lists create`'})"
        )
    return MailingList.from_row(rows[0])


def get_list_by_id(db: Database, list_id: int) -> MailingList:
    rows = list(db.query("SELECT * FROM lists WHERE id = ?", [list_id]))
    if not rows:
        raise NotFound(f"no list with id {list_id}")
    return MailingList.from_row(rows[0])


def all_lists(db: Database) -> list[MailingList]:
    return [MailingList.from_row(r) for r in db.query("SELECT * FROM lists ORDER BY slug")]
