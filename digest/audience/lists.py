"""Mailing lists: who a digest is from, which tags it covers (in section order), and when it is
sent in its own timezone; how its emails look and read (language, lead images, brand, subject
pattern, default intro: ``EmailLook``) and whether editors approve each issue before it goes
(``Approval``). Creating and editing a list validates every field up front (slug, From address,
IANA timezone, send time, weekday, tags, language, brand through ``branding.Brand.create``,
subject placeholders, durations, editors' addresses), so the steps downstream can trust what
they read; which frequencies it offers (daily, weekly or both, and the default for new
subscribers). A list whose digests were already sent is only marked deleted, so its archive
stays. (Moving subscribers off a frequency a list stops offering is ``subscriptions.edit_list``'s
job: that module owns subscriptions.)"""

from __future__ import annotations

import json
import re
import sqlite3
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlite_utils import Database

from .. import i18n
from ..addresses import check_address_header, normalise_email
from ..articles.tags import clean_tag_name, tag_key
from ..articles.tagstore import canonical_names
from ..errors import InvalidInput, NotFound
from ..store import transaction
from ..subjects import check_pattern
from ..text import check_single_line
from ..timeutil import to_iso
from ..verp import check_bounce_address
from .branding import DEFAULT_ACCENT, Brand
from .records import FREQUENCIES, Frequency, check_frequencies, check_frequency

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_SLUG = re.compile(r"[a-z0-9][a-z0-9-]*\Z")
_SEND_TIME = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)\Z")
_DURATION = re.compile(r"(?:(\d{1,3})h)?(?:(\d{1,4})m(?:in)?)?\Z")
_LOGO_SIZE = re.compile(r"(\d{1,5})(?:x(\d{1,5}))?\Z")


class ImageMode(StrEnum):
    """Which pictures a list's emails show: none, each story's lead image across the sheet,
    or a small thumbnail of it."""

    NONE = "none"
    LEAD = "lead"
    THUMBNAILS = "thumbnails"


@dataclass(frozen=True)
class EmailLook:
    """How a list's emails look and read."""

    language: str = "en"  # normalised code (i18n.normalise_code)
    images: ImageMode = ImageMode.NONE
    brand: Brand = Brand()
    subject_pattern: str | None = None  # None: templates/email/subject.txt, translated
    intro: str | None = None  # shown at the top of an issue that has no note of its own


@dataclass(frozen=True)
class Approval:
    """An approval-mode list's issues are built ``lead`` before their send time, its
    ``editors`` are told, and an issue goes out only once approved, at its send time or when
    approved if later, up to ``deadline`` after the send time; past that it is skipped."""

    required: bool = False
    lead: timedelta = timedelta(hours=2)
    deadline: timedelta = timedelta(hours=1)
    editors: tuple[str, ...] = ()


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
    look: EmailLook = field(default_factory=EmailLook)
    approval: Approval = field(default_factory=Approval)
    untagged_title: str | None = None  # None: "More stories" in the list's language
    bounce_address: str | None = None  # envelope sender of its digests; None: [bounces] address

    @property
    def language(self) -> str:
        return self.look.language

    @property
    def brand(self) -> Brand:
        return self.look.brand

    frequencies: tuple[Frequency, ...] = FREQUENCIES  # what subscribers may choose
    default_frequency: Frequency = Frequency.DAILY  # what a new subscriber gets unless they choose

    @property
    def untagged_section_title(self) -> str:
        """The title of the section of untagged articles (lists covering every tag): the
        list's own, else "More stories" in the list's language."""
        if self.untagged_title:
            return self.untagged_title
        return i18n.get_language(self.language).gettext("More stories")

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

    def offered_frequency(self, value: str | None) -> Frequency:
        """The frequency a subscriber asks for, checked against what this list offers; None or
        empty: the list's default. ``InvalidInput`` naming what the list offers otherwise."""
        if value is None or not value.strip():
            return self.default_frequency
        frequency = check_frequency(value)
        if frequency not in self.frequencies:
            offered = " or ".join(self.frequencies)
            raise InvalidInput(f"list {self.slug!r} offers only {offered} digests, not {frequency}")
        return frequency

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
            frequencies=check_frequencies(row.get("frequencies") or "daily,weekly"),
            default_frequency=Frequency(row.get("default_frequency") or "daily"),
            private=bool(row.get("private")),
            look=EmailLook(
                language=row.get("language") or "en",
                images=ImageMode(row.get("images") or "none"),
                brand=Brand(
                    logo_url=row.get("logo_url"),
                    logo_width=row.get("logo_width") or 0,
                    logo_height=row.get("logo_height"),
                    accent=row.get("accent") or DEFAULT_ACCENT,
                    footer_text=row.get("footer_text"),
                    postal_address=row.get("postal_address"),
                ),
                subject_pattern=row.get("subject_pattern"),
                intro=row.get("intro"),
            ),
            approval=Approval(
                required=bool(row.get("approval")),
                lead=timedelta(minutes=row.get("approval_lead_minutes") or 0),
                deadline=timedelta(minutes=row.get("approval_deadline_minutes") or 0),
                editors=tuple(json.loads(row.get("editors") or "[]")),
            ),
            untagged_title=row.get("untagged_title"),
            bounce_address=row.get("bounce_address"),
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


def check_offer(
    frequencies: str | Iterable[str] | None,
    default_frequency: str | None,
    current: MailingList | None = None,
) -> tuple[tuple[Frequency, ...], Frequency]:
    """What a list offers and its default, from the options given (None: as ``current`` has
    it, or daily and weekly with daily first for a new list). A default the list does not offer
    is refused; when only ``frequencies`` changes and the old default is no longer offered, the
    default becomes the first one offered."""
    offered = (
        check_frequencies(frequencies)
        if frequencies is not None
        else (current.frequencies if current else FREQUENCIES)
    )
    if default_frequency is not None and default_frequency.strip():
        default = check_frequency(default_frequency)
        if default not in offered:
            raise InvalidInput(
                f"the default frequency {default} is not one the list offers ({', '.join(offered)})"
            )
    elif current is not None and current.default_frequency in offered:
        default = current.default_frequency
    else:
        default = offered[0]
    return offered, default


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
    untagged_title: str | None = None,
    bounce_address: str | None = None,
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
    if untagged_title is not None:
        values["untagged_title"] = _check_text(untagged_title, "untagged title")
    if bounce_address is not None:
        # The longest VERP token must fit in it (RFC 5321's 64-octet local part).
        values["bounce_address"] = check_bounce_address(bounce_address) if bounce_address else None
    if private is not None:
        values["private"] = int(private)
    return values


def check_duration(value: str, what: str) -> int:
    """Minutes of a duration such as ``2h``, ``90m``, ``1h30m`` or ``0``."""
    text = value.strip().lower().replace(" ", "")
    m = _DURATION.match(text)
    if text == "0":
        return 0
    if not text or not m or not (m.group(1) or m.group(2)):
        raise InvalidInput(f"{what} {value!r} is not a duration such as 2h, 90m or 1h30m")
    minutes = int(m.group(1) or 0) * 60 + int(m.group(2) or 0)
    if minutes > 7 * 24 * 60:
        raise InvalidInput(f"{what} {value!r} is longer than a week")
    return minutes


def check_logo_size(value: str) -> tuple[int, int | None]:
    """``WIDTHxHEIGHT`` (or ``WIDTH``) in pixels."""
    m = _LOGO_SIZE.match(value.strip().lower())
    if not m:
        raise InvalidInput(f"logo size {value!r} is not WIDTHxHEIGHT in pixels (e.g. 180x40)")
    return int(m.group(1)), int(m.group(2)) if m.group(2) else None


def check_editors(value: str | Iterable[str]) -> list[str]:
    """Editors' addresses, comma-separated or a list; each checked and normalised."""
    items = value.split(",") if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        if item.strip():
            address = normalise_email(item.strip())
            if address not in out:
                out.append(address)
    return out


def _optional_text(value: str, field_name: str, *, multiline: bool = False) -> str | None:
    text = unicodedata.normalize("NFC", value).strip()
    if not multiline:
        text = check_single_line(text, field_name)
    return text or None


@dataclass(frozen=True)
class LookChanges:
    """Changes to a list's look and approval workflow: None leaves a setting as it is, ""
    removes an optional one (logo, accent, footer, address, subject pattern, intro, editors)."""

    language: str | None = None
    images: str | None = None
    logo_url: str | None = None
    logo_size: str | None = None  # WIDTHxHEIGHT
    accent: str | None = None
    footer_text: str | None = None
    postal_address: str | None = None
    subject_pattern: str | None = None
    intro: str | None = None
    approval: bool | None = None
    approval_lead: str | None = None  # a duration: 2h, 90m
    approval_deadline: str | None = None
    editors: str | None = None  # comma-separated addresses


def _look_values(current: MailingList | None, changes: LookChanges) -> dict[str, Any]:
    """Column values for ``changes`` on top of ``current`` (None: a new list), every value
    checked; the brand as a whole through ``Brand.create``."""
    values: dict[str, Any] = {}
    c = changes
    if c.language is not None:
        values["language"] = i18n.normalise_code(c.language) if c.language.strip() else "en"
    if c.images is not None:
        try:
            values["images"] = ImageMode(c.images.strip().lower()).value
        except ValueError:
            raise InvalidInput(
                f"images {c.images!r} is not one of none, lead, thumbnails"
            ) from None
    brand_given = (c.logo_url, c.logo_size, c.accent, c.footer_text, c.postal_address)
    if any(v is not None for v in brand_given):
        old = current.brand if current else Brand()
        logo_url = old.logo_url if c.logo_url is None else (c.logo_url.strip() or None)
        width, height = (old.logo_width or 200, old.logo_height)
        if c.logo_size is not None and c.logo_size.strip():
            width, height = check_logo_size(c.logo_size)
        accent = old.accent if c.accent is None else (c.accent.strip() or None)
        footer = (
            old.footer_text
            if c.footer_text is None
            else _optional_text(c.footer_text, "footer text", multiline=True)
        )
        postal = (
            old.postal_address
            if c.postal_address is None
            else _optional_text(c.postal_address, "postal address", multiline=True)
        )
        brand = Brand.create(
            logo_url=logo_url,
            logo_width=width,
            logo_height=height,
            accent=accent,
            footer_text=footer,
            postal_address=postal,
        )
        values.update(
            logo_url=brand.logo_url,
            logo_width=brand.logo_width or None,
            logo_height=brand.logo_height,
            accent=None if brand.accent == DEFAULT_ACCENT and not accent else brand.accent,
            footer_text=brand.footer_text,
            postal_address=brand.postal_address,
        )
    if c.subject_pattern is not None:
        pattern = _optional_text(c.subject_pattern, "subject pattern")
        values["subject_pattern"] = check_pattern(pattern) if pattern else None
    if c.intro is not None:
        values["intro"] = _optional_text(c.intro, "intro", multiline=True)
    if c.approval is not None:
        values["approval"] = int(c.approval)
    if c.approval_lead is not None:
        values["approval_lead_minutes"] = check_duration(c.approval_lead, "approval lead time")
    if c.approval_deadline is not None:
        values["approval_deadline_minutes"] = check_duration(
            c.approval_deadline, "approval deadline"
        )
    if c.editors is not None:
        values["editors"] = json.dumps(check_editors(c.editors))
    approval_on = values.get("approval", int(current.approval.required) if current else 0)
    editors = (
        json.loads(values["editors"])
        if "editors" in values
        else (list(current.approval.editors) if current else [])
    )
    if approval_on and not editors:
        raise InvalidInput(
            "a list in approval mode needs --editors (the addresses told when an issue awaits"
            " approval)"
        )
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
    look: LookChanges | None = None,
    untagged_title: str | None = None,
    bounce_address: str | None = None,
    frequencies: str | Iterable[str] | None = None,
    default_frequency: str | None = None,
) -> MailingList:
    """A new list. ``frequencies`` (default: daily and weekly) is what subscribers may choose;
    ``default_frequency`` (default: the first offered) what they get unless they choose."""
    check_slug(slug)
    tags = canonical_names(db, tags)  # an old name of a renamed tag means that tag
    values = _fields(title, from_addr, reply_to, tags, timezone, send_time, weekly_day, description,
                     untagged_title=untagged_title, bounce_address=bounce_address,
                     private=private)  # fmt: skip
    values.update(_look_values(None, look or LookChanges()))
    offered, default = check_offer(frequencies, default_frequency)
    with transaction(db):
        existing = db.execute("SELECT deleted_at FROM lists WHERE slug = ?", [slug]).fetchone()
        if existing:
            if existing[0]:
                raise InvalidInput(
                    f"list {slug!r} was deleted but its sent digests keep the name for the "
                    "archive; choose another name"
                )
            raise InvalidInput(f"list {slug!r} already exists (change it with `digest lists edit`)")
        row = {"slug": slug, **values, "created_at": to_iso(now), "updated_at": to_iso(now),
               "frequencies": ",".join(offered), "default_frequency": str(default)}  # fmt: skip
        db.execute(
            f"INSERT INTO lists ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",
            list(row.values()),
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
    look: LookChanges | None = None,
    untagged_title: str | None = None,
    bounce_address: str | None = None,
    frequencies: str | Iterable[str] | None = None,
    default_frequency: str | None = None,
) -> MailingList:
    """Change the given fields (None = leave as is; ``reply_to=""`` and ``bounce_address=""``
    remove it). Subscribers of a frequency the list stops offering keep it here: change
    frequencies through ``subscriptions.edit_list``, which moves them."""
    mlist = get_list(db, slug)
    if tags is not None:
        tags = canonical_names(db, tags)  # an old name of a renamed tag means that tag
    values = _fields(title, from_addr, reply_to, tags, timezone, send_time, weekly_day, description,
                     untagged_title=untagged_title, bounce_address=bounce_address,
                     private=private)  # fmt: skip
    values.update(_look_values(mlist, look or LookChanges()))
    if frequencies is not None or default_frequency is not None:
        offered, default = check_offer(frequencies, default_frequency, mlist)
        values["frequencies"] = ",".join(offered)
        values["default_frequency"] = str(default)
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


def rename_list_tags(db: Database, names: Mapping[str, str], *, now: datetime) -> list[str]:
    """Rename tags in every list's tags (deleted lists too: their archive is rendered with
    them): each tag whose key is in ``names`` becomes that display name, a tag that then
    appears twice is kept at its first place. Returns the slugs of the lists changed."""
    changed = []
    with transaction(db):
        for row in db.execute("SELECT id, slug, tags FROM lists ORDER BY slug").fetchall():
            old = json.loads(row[2] or "[]")
            new = clean_list_tags(names.get(tag_key(name), name) for name in old)
            if new != old:
                db.execute(
                    "UPDATE lists SET tags = ?, updated_at = ? WHERE id = ?",
                    [json.dumps(new, ensure_ascii=False), to_iso(now), row[0]],
                )
                changed.append(row[1])
    return changed
