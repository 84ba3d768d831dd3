"""Mailing lists: who a digest is from, which tags it covers (in section order), and when it is
sent in its own timezone. Creating and editing a list validates every field up front (slug, From
address, IANA timezone, send time, weekday, tags), so the steps downstream can trust what they
read. A list whose digests were already sent is only marked deleted, so its archive stays."""

from __future__ import annotations

import json
import re
import sqlite3
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlite_utils import Database

from ..addresses import check_address_header
from ..articles.tags import clean_tag_name, tag_key
from ..errors import InvalidInput, NotFound
from ..store import transaction
from ..text import check_single_line
from ..timeutil import to_iso

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_SLUG = re.compile(r"[a-z0-9][a-z0-9-]*\Z")
_SEND_TIME = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)\Z")


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
    deleted_at: str | None = None  # set when deleted but kept for the archive
    created_at: str = "1970-01-01T00:00:00.000000+00:00"  # UTC ISO
    private: bool = False  # not on the home page, no public archive index or feed

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

    def tag_names(self, keys: Iterable[str]) -> list[str]:
        """Display names for tag keys (the list's spelling where it has one)."""
        names = dict(zip(self.tag_keys, self.tags, strict=True))
        return [names.get(k, k) for k in keys]

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
            deleted_at=row.get("deleted_at"),
            created_at=row["created_at"],
            private=bool(row.get("private")),
        )


def get_list(db: Database, slug: str, *, include_deleted: bool = False) -> MailingList:
    """The list called ``slug``. A deleted list (kept only for its archive) is not found unless
    ``include_deleted``."""
    rows = list(db.query("SELECT * FROM lists WHERE slug = ?", [slug]))
    if rows and rows[0]["deleted_at"] and not include_deleted:
        raise NotFound(f"list {slug!r} was deleted on {rows[0]['deleted_at'][:10]}")
    if not rows:
        known = ", ".join(
            r["slug"]
            for r in db.query("SELECT slug FROM lists WHERE deleted_at IS NULL ORDER BY slug")
        )
        raise NotFound(
            f"no list {slug!r} (known lists: {known or 'none; create one with `digest lists create`'})"
        )
    return MailingList.from_row(rows[0])


def get_list_by_id(db: Database, list_id: int) -> MailingList:
    """The list with this id, deleted or not (old unsubscribe links still name it)."""
    rows = list(db.query("SELECT * FROM lists WHERE id = ?", [list_id]))
    if not rows:
        raise NotFound(f"no list with id {list_id}")
    return MailingList.from_row(rows[0])


def all_lists(
    db: Database, *, include_deleted: bool = False, public_only: bool = False
) -> list[MailingList]:
    """Every list by slug; ``public_only`` leaves out private lists (the home page)."""
    where = [] if include_deleted else ["deleted_at IS NULL"]
    if public_only:
        where.append("NOT private")
    sql = "SELECT * FROM lists" + (" WHERE " + " AND ".join(where) if where else "")
    return [MailingList.from_row(r) for r in db.query(sql + " ORDER BY slug")]


# Validation: each returns the stored form or raises InvalidInput naming the field.


def check_slug(slug: str) -> str:
    if not _SLUG.match(slug or ""):
        raise InvalidInput(
            f"list name {slug!r} is not valid: use lowercase letters, digits and '-', "
            "starting with a letter or digit (e.g. world-news)"
        )
    return slug


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"timezone {name!r} is not an IANA timezone name (e.g. UTC, Europe/Berlin, Africa/Nairobi)"
        ) from None
    return name


def check_send_time(value: str) -> str:
    m = _SEND_TIME.match(value.strip())
    if not m:
        raise InvalidInput(f"send time {value!r} is not HH:MM in 24-hour time (e.g. 07:00)")
    return f"{int(m.group(1)):02d}:{m.group(2)}"


def check_weekday(value: str) -> str:
    v = value.strip().lower()
    for day in WEEKDAYS:
        if v == day or (len(v) >= 3 and day.startswith(v)):
            return day
    raise InvalidInput(f"weekly day {value!r} is not a weekday (mon, tue, ..., sun)")


def clean_list_tags(tags: Iterable[str]) -> list[str]:
    """Display names, cleaned, in the given order; repeated tags (same key) kept once."""
    out: list[str] = []
    seen: set[str] = set()
    for raw in tags:
        name = clean_tag_name(raw)
        if not name:
            continue
        key = tag_key(name)
        if key not in seen:
            seen.add(key)
            out.append(name)
    return out


def _check_text(value: str, field: str) -> str:
    value = check_single_line(unicodedata.normalize("NFC", value).strip(), field)
    if not value:
        raise InvalidInput(f"{field} must not be empty")
    return value


def _fields(
    title: str | None,
    from_addr: str | None,
    reply_to: str | None,
    tags: Iterable[str] | None,
    timezone: str | None,
    send_time: str | None,
    weekly_day: str | None,
    description: str | None,
    private: bool | None = None,
) -> dict:
    values: dict = {}
    if title is not None:
        values["title"] = _check_text(title, "title")
    if from_addr is not None:
        values["from_addr"] = check_address_header(from_addr, "From")
    if reply_to is not None:
        values["reply_to"] = check_address_header(reply_to, "Reply-To") if reply_to else None
    if tags is not None:
        values["tags"] = json.dumps(clean_list_tags(tags), ensure_ascii=False)
    if timezone is not None:
        values["timezone"] = check_timezone(timezone)
    if send_time is not None:
        values["send_time"] = check_send_time(send_time)
    if weekly_day is not None:
        values["weekly_day"] = check_weekday(weekly_day)
    if description is not None:
        values["description"] = description.strip() or None
    if private is not None:
        values["private"] = int(private)
    return values


def create_list(
    db: Database,
    slug: str,
    *,
    title: str,
    from_addr: str,
    now: datetime,
    reply_to: str | None = None,
    tags: Iterable[str] = (),
    timezone: str = "UTC",
    send_time: str = "07:00",
    weekly_day: str = "monday",
    description: str | None = None,
    private: bool = False,
) -> MailingList:
    check_slug(slug)
    values = _fields(title, from_addr, reply_to, tags, timezone, send_time, weekly_day, description,
                     private)  # fmt: skip
    with transaction(db):
        existing = db.execute("SELECT deleted_at FROM lists WHERE slug = ?", [slug]).fetchone()
        if existing:
            if existing[0]:
                raise InvalidInput(
                    f"list {slug!r} was deleted but its sent digests keep the name for the "
                    "archive; choose another name"
                )
            raise InvalidInput(f"list {slug!r} already exists (change it with `digest lists edit`)")
        db.execute(
            "INSERT INTO lists (slug, title, from_addr, reply_to, tags, timezone, send_time,"
            " weekly_day, description, private, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                slug,
                values["title"],
                values["from_addr"],
                values.get("reply_to"),
                values["tags"],
                values["timezone"],
                values["send_time"],
                values["weekly_day"],
                values.get("description"),
                values["private"],
                to_iso(now),
                to_iso(now),
            ],
        )
    return get_list(db, slug)


def edit_list(
    db: Database,
    slug: str,
    *,
    now: datetime,
    title: str | None = None,
    from_addr: str | None = None,
    reply_to: str | None = None,
    tags: Iterable[str] | None = None,
    timezone: str | None = None,
    send_time: str | None = None,
    weekly_day: str | None = None,
    description: str | None = None,
    private: bool | None = None,
) -> MailingList:
    """Change the given fields (None = leave as is; ``reply_to=""`` removes it)."""
    mlist = get_list(db, slug)
    values = _fields(title, from_addr, reply_to, tags, timezone, send_time, weekly_day, description,
                     private)  # fmt: skip
    if values:
        values["updated_at"] = to_iso(now)
        sets = ", ".join(f"{k} = ?" for k in values)
        db.execute(f"UPDATE lists SET {sets} WHERE id = ?", [*values.values(), mlist.id])
    return get_list(db, slug)


def remove_list_row(db: Database, mlist: MailingList, *, now: datetime) -> str:
    """Remove ``mlist`` (its subscriptions already ended by the caller): 'deleted', or
    'archived' when digests were built for it, whose rows reference the list (the foreign key
    refuses the delete): then it is only marked deleted, so its archive keeps working."""
    with transaction(db):
        try:
            db.execute("DELETE FROM lists WHERE id = ?", [mlist.id])
        except sqlite3.IntegrityError:
            db.execute(
                "UPDATE lists SET deleted_at = ?, updated_at = ? WHERE id = ?",
                [to_iso(now), to_iso(now), mlist.id],
            )
            return "archived"
    return "deleted"
