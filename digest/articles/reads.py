"""Reading articles: the one read model (``Article``) and the queries the rest of the flow asks
(``list_articles``, ``search_articles``, ``load_articles``, ``articles_in_window``). Nothing here
writes."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlite_utils import Database

from ..errors import InvalidInput, NotFound
from ..timeutil import from_iso, to_iso
from .leadimage import LeadImage
from .sanitize import html_to_text
from .tags import tag_key


class Tag(NamedTuple):
    key: str  # tag_key(name)
    name: str  # display name


@dataclass(frozen=True)
class Article:
    """A stored article with its tags (sorted by key; hidden tags are left out: they are never
    a section) and its lead image (``url``, ``width``, ``height``, ``alt``; for the HTML email
    only, never the plain text). ``content_html`` is loaded only when asked for
    (``content=True``): digests need the summary and text, not the whole page."""

    id: int
    title: str
    url: str | None
    author: str | None
    published_at: datetime
    ingested_at: datetime
    updated_at: datetime
    summary: str | None
    text: str | None
    tags: tuple[Tag, ...]
    source: str
    note: str | None
    content_html: str | None = None
    image: LeadImage | None = None

    @property
    def tag_names(self) -> list[str]:
        return [t.name for t in self.tags]

    def to_json(self, *, content: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "title": self.title,
            "url": self.url,
            "author": self.author,
            "published_at": to_iso(self.published_at),
            "tags": self.tag_names,
            "source": self.source,
            "summary": self.summary,
            "note": self.note,
            "image": (
                {
                    "url": self.image.url,
                    "width": self.image.width,
                    "height": self.image.height,
                    "alt": self.image.alt,
                }
                if self.image
                else None
            ),
            "ingested_at": to_iso(self.ingested_at),
            "updated_at": to_iso(self.updated_at),
        }
        if content:
            out["content_html"] = self.content_html
            out["text"] = self.text
        return out


_COLUMNS = (
    "id, title, url, author, published_at, ingested_at, updated_at, summary, text, source, note,"
    " image_url, image_width, image_height, image_alt"
)


def load_articles(db: Database, ids: Iterable[int], *, content: bool = False) -> list[Article]:
    """The articles ``ids`` with their tags, newest first (published, then id)."""
    ids = list(ids)
    if not ids:
        return []
    id_json = json.dumps(ids)
    tags: dict[int, list[Tag]] = {}
    for article_id, key, name in db.execute(
        "SELECT at.article_id, t.key, t.name FROM article_tags at JOIN tags t ON t.id = at.tag_id"
        " WHERE at.article_id IN (SELECT value FROM json_each(?)) AND t.hidden = 0"
        " ORDER BY t.key",
        [id_json],
    ):
        tags.setdefault(article_id, []).append(Tag(key, name))
    columns = _COLUMNS + (", content_html" if content else "")
    articles = [
        Article(
            id=row["id"],
            title=row["title"],
            url=row["url"],
            author=row["author"],
            published_at=from_iso(row["published_at"]),
            ingested_at=from_iso(row["ingested_at"]),
            updated_at=from_iso(row["updated_at"]),
            summary=row["summary"],
            text=row["text"],
            tags=tuple(tags.get(row["id"], ())),
            source=row["source"],
            note=row["note"],
            content_html=row.get("content_html"),
            image=LeadImage(
                row["image_url"], row["image_width"], row["image_height"], row["image_alt"]
            )
            if row["image_url"]
            else None,
        )
        for row in db.query(
            f"SELECT {columns} FROM articles WHERE id IN (SELECT value FROM json_each(?))",
            [id_json],
        )
    ]
    articles.sort(key=lambda a: (a.published_at, a.id), reverse=True)
    return articles


def _tag_filter(db: Database, tags: Iterable[str]) -> tuple[str, list[str]]:
    keys = sorted({tag_key(t) for t in tags if tag_key(t)})
    if not keys:
        return "", []
    marks = ",".join("?" * len(keys))
    known = {r[0] for r in db.execute(f"SELECT key FROM tags WHERE key IN ({marks})", keys)}
    unknown = [k for k in keys if k not in known]
    if unknown and not known:
        raise NotFound(f"no articles are tagged {', '.join(repr(k) for k in unknown)}")
    return (
        " AND a.id IN (SELECT x.article_id FROM article_tags x JOIN tags t ON t.id = x.tag_id"
        f" WHERE t.key IN ({marks}))",
        keys,
    )


def list_articles(
    db: Database,
    *,
    tags: Iterable[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
) -> list[Article]:
    """Articles newest first, optionally only those with any of ``tags`` and published in
    [since, until)."""
    where = "WHERE 1=1"
    tag_sql, tag_params = _tag_filter(db, tags)
    where += tag_sql
    params: list[Any] = list(tag_params)
    if since is not None:
        where += " AND a.published_at >= ?"
        params.append(to_iso(since))
    if until is not None:
        where += " AND a.published_at < ?"
        params.append(to_iso(until))
    sql = f"SELECT a.id FROM articles a {where} ORDER BY a.published_at DESC, a.id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return load_articles(db, [row[0] for row in db.execute(sql, params)], content=True)


def fts_query(query: str) -> str:
    """The words of a user's query as an FTS5 expression (every word must appear), so
    punctuation or stray operators in the query cannot cause an FTS syntax error."""
    words = re.findall(r"\w+", query)
    if not words:
        raise InvalidInput(f"search query {query!r} has no words to search for")
    return " ".join('"' + w.replace('"', '""') + '"' for w in words)


def search_articles(db: Database, query: str, *, limit: int = 50) -> list[Article]:
    """Full-text search over title, summary and text, best match first."""
    ids = [
        row[0]
        for row in db.execute(
            "SELECT a.id FROM articles a JOIN articles_fts ON articles_fts.rowid = a.id"
            " WHERE articles_fts MATCH ? ORDER BY articles_fts.rank, a.published_at DESC LIMIT ?",
            [fts_query(query), limit],
        )
    ]
    found = {a.id: a for a in load_articles(db, ids, content=True)}
    return [found[i] for i in ids]


def articles_in_window(
    db: Database,
    *,
    start: datetime,
    end: datetime,
    ingested_by: datetime,
    tag_keys: Iterable[str] | None,
    late_since: datetime | None = None,
    late_ingested_after: str | None = None,
) -> list[int]:
    """Ids of the articles published in [start, end) and ingested by ``ingested_by``, newest
    first, with any of ``tag_keys`` that is not hidden (None: every article, tagged or not).
    With ``late_since``, also those published in [late_since, start) but ingested after
    ``late_ingested_after`` (an ISO instant): late arrivals for the period after the one they
    were published in."""
    tag_filter = _window_tags(tag_keys)
    in_period = "a.published_at >= :start AND a.published_at < :end"
    if late_since is not None:
        in_period = (
            f"(({in_period}) OR (a.published_at >= :lookback AND a.published_at < :start"
            " AND a.ingested_at > :late_after))"
        )
    sql = f"""
        SELECT a.id FROM articles a
        WHERE {in_period} AND a.ingested_at <= :now AND {tag_filter}
        ORDER BY a.published_at DESC, a.id DESC
    """
    params = {
        "start": to_iso(start),
        "end": to_iso(end),
        "lookback": to_iso(late_since) if late_since else "",
        "late_after": late_ingested_after or "",
        "now": to_iso(ingested_by),
        "keys": json.dumps(list(tag_keys or ())),
    }
    return [row[0] for row in db.execute(sql, params)]


def _window_tags(tag_keys: Iterable[str] | None) -> str:
    """The condition on ``a``'s tags: any visible tag among ``:keys``, or none (every article:
    a list that covers every tag shows the untagged ones last)."""
    if tag_keys is None:
        return "1"
    return (
        "EXISTS (SELECT 1 FROM article_tags at JOIN tags t ON t.id = at.tag_id"
        " WHERE at.article_id = a.id AND t.hidden = 0"
        " AND t.key IN (SELECT value FROM json_each(:keys)))"
    )


def count_untagged_in_window(
    db: Database, *, start: datetime, end: datetime, ingested_by: datetime
) -> int:
    """Articles published in [start, end), ingested by ``ingested_by``, without a tag that is
    not hidden: the ones that reach only lists covering every tag."""
    row = db.execute(
        """
        SELECT count(*) FROM articles a
        WHERE a.published_at >= ? AND a.published_at < ? AND a.ingested_at <= ?
          AND NOT EXISTS (SELECT 1 FROM article_tags at JOIN tags t ON t.id = at.tag_id
                          WHERE at.article_id = a.id AND t.hidden = 0)
        """,
        [to_iso(start), to_iso(end), to_iso(ingested_by)],
    ).fetchone()
    return int(row[0])


def count_ingested_after(
    db: Database,
    *,
    start: datetime,
    end: datetime,
    after: str,
    tag_keys: Iterable[str] | None,
    excluding: Iterable[int],
) -> int:
    """Articles published in [start, end) with any of ``tag_keys`` (None: every article)
    ingested after ``after`` (an ISO instant), not counting ``excluding``."""
    tag_filter = _window_tags(tag_keys)
    row = db.execute(
        f"""
        SELECT count(*) FROM articles a
        WHERE a.published_at >= :start AND a.published_at < :end AND a.ingested_at > :after
          AND {tag_filter} AND a.id NOT IN (SELECT value FROM json_each(:excluding))
        """,
        {
            "start": to_iso(start),
            "end": to_iso(end),
            "after": after,
            "keys": json.dumps(list(tag_keys or ())),
            "excluding": json.dumps(list(excluding)),
        },
    ).fetchone()
    return int(row[0])


def stored_state(conn: sqlite3.Connection, ids: list[int]) -> list[tuple[int, str, str | None]]:
    """(id, content hash, its tag ids joined by ",") of the articles ``ids``, in id order: what
    a re-ingest compares to tell whether its articles were changed since."""
    rows = conn.execute(
        "SELECT a.id, a.content_hash, (SELECT group_concat(tag_id) FROM (SELECT tag_id FROM"
        " article_tags WHERE article_id = a.id ORDER BY tag_id)) FROM articles a"
        " WHERE a.id IN (SELECT value FROM json_each(?)) ORDER BY a.id",
        [json.dumps(ids)],
    )
    return [(row[0], row[1], row[2]) for row in rows]


@dataclass(frozen=True)
class SourceSummary:
    """What one source (a feed URL, a file) has given the store: its articles and the newest."""

    articles: int
    latest_title: str | None
    latest_published_at: datetime | None


def source_summaries(db: Database, sources: Iterable[str]) -> dict[str, SourceSummary]:
    """source -> its article count and newest article (by publication time), for the sources
    given (the admin's feeds page); a source with no articles is left out."""
    # SQLite returns the bare column (title) from the row that holds max(published_at).
    return {
        source: SourceSummary(count, title, from_iso(latest) if latest else None)
        for source, count, title, latest in db.execute(
            "SELECT source, count(*), title, max(published_at) FROM articles"
            " WHERE source IN (SELECT value FROM json_each(?)) GROUP BY source",
            [json.dumps(list(sources))],
        )
    }


class EntryContent(NamedTuple):
    """What ingest's full-text step needs to know of a stored entry."""

    id: int
    url: str | None
    text: str
    content_is_summary: bool  # its source gave no content beyond the summary
    content_hash: str


def entry_contents(conn: sqlite3.Connection, ids: list[int]) -> list[EntryContent]:
    """The link, text and content hash of the articles ``ids``, in id order."""
    rows = conn.execute(
        "SELECT id, url, coalesce(text, ''), summary, content_html IS summary, content_hash"
        " FROM articles WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id",
        [json.dumps(ids)],
    )
    out = []
    for article_id, url, text, summary, same, content_hash in rows:
        # The store keeps a summary-only entry's summary as its content too, with relative
        # links made absolute in the content alone: the same text either way.
        is_summary = summary is not None and (bool(same) or html_to_text(summary) == text)
        out.append(EntryContent(article_id, url, text, is_summary, content_hash))
    return out
