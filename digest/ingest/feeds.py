"""The registry of feeds that ``digest fetch`` and ``digest run`` poll: the only module that
writes ``feeds``. Each feed keeps its tags, whether its entries' linked pages are fetched for
their full text (``--full-text``), its conditional-GET validators and the result of its last
poll (``record_poll``), including how many of its entries kept their summary because their
page failed."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from ..articles.tags import clean_tag_name, tag_key
from ..errors import NotFound
from ..store import transaction
from ..text import visible
from ..timeutil import from_iso, to_iso
from .http import check_feed_url


@dataclass(frozen=True)
class Feed:
    id: int
    url: str
    tags: tuple[str, ...]
    etag: str | None
    last_modified: str | None
    last_fetched_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    created_at: datetime
    full_text: bool = False  # fetch the linked page of summary-only entries
    full_text_failed: int = 0  # entries whose page failed, at the last poll

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Feed:
        def t(v: str | None) -> datetime | None:
            return from_iso(v) if v else None

        return cls(
            id=row["id"],
            url=row["url"],
            tags=tuple(json.loads(row["tags"] or "[]")),
            etag=row["etag"],
            last_modified=row["last_modified"],
            last_fetched_at=t(row["last_fetched_at"]),
            last_success_at=t(row["last_success_at"]),
            last_error=row["last_error"],
            last_error_at=t(row["last_error_at"]),
            created_at=from_iso(row["created_at"]),
            full_text=bool(row["full_text"]),
            full_text_failed=row["full_text_failed"],
        )

    def to_json(self) -> dict[str, Any]:
        def t(v: datetime | None) -> str | None:
            return to_iso(v) if v else None

        return {
            "url": self.url,
            "tags": list(self.tags),
            "last_fetched_at": t(self.last_fetched_at),
            "last_success_at": t(self.last_success_at),
            "last_error": self.last_error,
            "last_error_at": t(self.last_error_at),
            "created_at": t(self.created_at),
            "full_text": self.full_text,
            "full_text_failed": self.full_text_failed,
        }


def _rows(db: Database, where: str = "", params: Iterable = ()) -> list[Feed]:
    cur = db.execute(f"SELECT * FROM feeds {where} ORDER BY url", list(params))
    names = [c[0] for c in cur.description]
    return [Feed.from_row(dict(zip(names, r, strict=True))) for r in cur.fetchall()]


def list_feeds(db: Database) -> list[Feed]:
    return _rows(db)


def get_feed(db: Database, url: str) -> Feed:
    found = _rows(db, "WHERE url = ?", [url])
    if not found:
        raise NotFound(f"no registered feed {url} (see `digest feeds list`)")
    return found[0]


def add_feed(
    db: Database,
    url: str,
    *,
    tags: Iterable[str] = (),
    full_text: bool | None = None,
    now: datetime,
) -> tuple[Feed, bool]:
    """Register ``url`` (True) or, if it is already registered, add ``tags`` to it (False).
    ``full_text`` turns fetching the linked pages of summary-only entries on or off (None:
    off for a new feed, unchanged for a registered one)."""
    url = check_feed_url(url.strip())
    names = [clean_tag_name(t) for t in tags if tag_key(t)]
    with transaction(db):
        existing = _rows(db, "WHERE url = ?", [url])
        if existing:
            merged = list(existing[0].tags)
            keys = {tag_key(t) for t in merged}
            for n in names:
                if tag_key(n) not in keys:
                    keys.add(tag_key(n))
                    merged.append(n)
            db.execute(
                "UPDATE feeds SET tags = ?, full_text = coalesce(?, full_text) WHERE url = ?",
                [json.dumps(merged), full_text, url],
            )
            return get_feed(db, url), False
        unique: dict[str, str] = {}
        for n in names:
            unique.setdefault(tag_key(n), n)
        db.execute(
            "INSERT INTO feeds (url, tags, full_text, created_at) VALUES (?, ?, ?, ?)",
            [url, json.dumps(list(unique.values())), bool(full_text), to_iso(now)],
        )
    return get_feed(db, url), True


def remove_feed(db: Database, url: str) -> Feed:
    """Stop polling ``url``. Its articles stay in the store."""
    feed = get_feed(db, url)
    db.execute("DELETE FROM feeds WHERE id = ?", [feed.id])
    return feed


def record_poll(
    db: Database,
    feed: Feed,
    *,
    now: datetime,
    error: str | None = None,
    problem: str | None = None,
    etag: str | None = None,
    last_modified: str | None = None,
    full_text_failed: int | None = None,
) -> None:
    """Record one poll of ``feed``: a failure (``error``), or a success with the new validators
    and, if some entries were rejected, a ``problem`` to show in ``feeds list``; with
    ``full_text_failed``, how many entries kept their summary because their page failed. The
    validators are saved only here, after the articles are stored, so a failure while storing
    cannot turn the next poll into a "304 Not Modified" that loses entries. Both texts are
    stored through ``visible``: they quote what servers and feeds said, and ``feeds list``
    prints them."""
    stamp = to_iso(now)
    error = visible(error) if error is not None else None
    problem = visible(problem) if problem is not None else None
    if error is not None:
        db.execute(
            "UPDATE feeds SET last_fetched_at = ?, last_error = ?, last_error_at = ? WHERE id = ?",
            [stamp, error, stamp, feed.id],
        )
        return
    db.execute(
        "UPDATE feeds SET etag = ?, last_modified = ?, last_fetched_at = ?,"
        " last_success_at = ?, last_error = ?, last_error_at = CASE WHEN ? IS NULL"
        " THEN last_error_at ELSE ? END, full_text_failed = coalesce(?, full_text_failed)"
        " WHERE id = ?",
        [etag, last_modified, stamp, stamp, problem, problem, stamp, full_text_failed, feed.id],
    )
