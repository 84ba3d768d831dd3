"""Built issues as stored: the only module that writes ``digests``, ``digest_articles`` and
``variants``. A digest is one issue of a (list, frequency, period); its articles are fixed when
it is first built; each variant is the rendered message template for one tag set."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from ..audience.lists import MailingList
from ..errors import NotFound
from ..timeutil import from_iso, to_iso
from .periods import Period
from .render import RenderReport


@dataclass(frozen=True)
class StoredDigest:
    id: int
    list_id: int
    frequency: str
    period_start: datetime
    period_end: datetime
    period_label: str  # the issue date, YYYY-MM-DD
    built_at: datetime
    edits_hash: str = ""  # the editors' edits it was rendered with (edits.IssueEdits.fingerprint)
    # A private list's issue key: its web version is shown only to links that carry it.
    web_key: str | None = None


_DIGEST_COLUMNS = (
    "id, list_id, frequency, period_start, period_end, period_label, built_at, edits_hash, web_key"
)


def _digest(row: tuple[Any, ...]) -> StoredDigest:
    id_, list_id, frequency, start, end, label, built_at, edits_hash, web_key = row
    return StoredDigest(
        id_,
        list_id,
        frequency,
        from_iso(start),
        from_iso(end),
        label,
        from_iso(built_at),
        edits_hash or "",
        web_key,
    )


def find_digest(db: Database, mlist: MailingList, period: Period) -> StoredDigest | None:
    row = db.execute(
        f"SELECT {_DIGEST_COLUMNS} FROM digests"
        " WHERE list_id = ? AND frequency = ? AND period_start = ?",
        [mlist.id, period.frequency, to_iso(period.start)],
    ).fetchone()
    return _digest(row) if row else None


def get_digest(db: Database, digest_id: int) -> StoredDigest:
    row = db.execute(f"SELECT {_DIGEST_COLUMNS} FROM digests WHERE id = ?", [digest_id]).fetchone()
    if row is None:
        raise NotFound(f"no digest with id {digest_id}")
    return _digest(row)


def find_digest_by_label(
    db: Database, list_id: int, frequency: str, label: str
) -> StoredDigest | None:
    row = db.execute(
        f"SELECT {_DIGEST_COLUMNS} FROM digests"
        " WHERE list_id = ? AND frequency = ? AND period_label = ? LIMIT 1",
        [list_id, frequency, label],
    ).fetchone()
    return _digest(row) if row else None


def digests_of_list(db: Database, list_id: int) -> list[StoredDigest]:
    """Every digest of a list, newest issue first."""
    return [
        _digest(row)
        for row in db.execute(
            f"SELECT {_DIGEST_COLUMNS} FROM digests WHERE list_id = ?"
            " ORDER BY period_label DESC, frequency",
            [list_id],
        )
    ]


def latest_digest(db: Database, list_id: int, frequency: str) -> StoredDigest | None:
    row = db.execute(
        f"SELECT {_DIGEST_COLUMNS} FROM digests WHERE list_id = ? AND frequency = ?"
        " ORDER BY period_start DESC LIMIT 1",
        [list_id, frequency],
    ).fetchone()
    return _digest(row) if row else None


def count_digests(db: Database, list_id: int) -> int:
    return int(
        db.execute("SELECT count(*) FROM digests WHERE list_id = ?", [list_id]).fetchone()[0]
    )


@dataclass(frozen=True)
class RecentDigest:
    id: int
    slug: str
    title: str
    frequency: str
    period_label: str
    built_at: str
    variants: int


def recent_digests(db: Database, limit: int = 50) -> list[RecentDigest]:
    """The newest digests of every list (the editor's start page)."""
    return [
        RecentDigest(*row)
        for row in db.execute(
            """
            SELECT d.id, l.slug, l.title, d.frequency, d.period_label, d.built_at,
                   (SELECT count(*) FROM variants v WHERE v.digest_id = d.id) AS variants
            FROM digests d JOIN lists l ON l.id = d.list_id
            ORDER BY d.period_start DESC, l.slug, d.frequency
            LIMIT ?
            """,
            [limit],
        )
    ]


def previous_built_at(db: Database, mlist: MailingList, period: Period) -> str | None:
    """When the digest before ``period`` of the same (list, frequency) was built (ISO), if any."""
    row = db.execute(
        "SELECT built_at FROM digests WHERE list_id = ? AND frequency = ? AND period_start < ?"
        " ORDER BY period_start DESC LIMIT 1",
        [mlist.id, period.frequency, to_iso(period.start)],
    ).fetchone()
    return str(row[0]) if row else None


def used_article_ids(db: Database, list_id: int, frequency: str) -> set[int]:
    """Articles already in a digest of this (list, frequency): an article goes out once."""
    return {
        row[0]
        for row in db.execute(
            "SELECT da.article_id FROM digest_articles da JOIN digests d ON d.id = da.digest_id"
            " WHERE d.list_id = ? AND d.frequency = ?",
            [list_id, frequency],
        )
    }


def digest_article_ids(db: Database, digest_id: int) -> list[int]:
    return [
        row[0]
        for row in db.execute(
            "SELECT article_id FROM digest_articles WHERE digest_id = ? ORDER BY position",
            [digest_id],
        )
    ]


# -- Writing a build (inside the builder's transaction) --------------------------------------


def insert_digest(
    db: Database,
    mlist: MailingList,
    period: Period,
    article_ids: list[int],
    *,
    now: datetime,
    edits_hash: str = "",
    web_key: str | None = None,
) -> int:
    digest_id = db.execute(
        "INSERT INTO digests (list_id, frequency, period_start, period_end, period_label,"
        " built_at, edits_hash, web_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [mlist.id, period.frequency, to_iso(period.start), to_iso(period.end), period.label,
         to_iso(now), edits_hash, web_key],
    ).lastrowid  # fmt: skip
    assert digest_id is not None
    db.execute(
        "INSERT INTO digest_articles (digest_id, article_id, position)"
        " SELECT ?, value, key FROM json_each(?)",
        [digest_id, json.dumps(article_ids)],
    )
    return digest_id


def record_edits(db: Database, digest_id: int, article_ids: list[int], edits_hash: str) -> None:
    """The digest was rendered again with the edits ``edits_hash``: append the articles it
    did not have yet (pinned since), so they count as sent once, like the others."""
    db.execute(
        "INSERT OR IGNORE INTO digest_articles (digest_id, article_id, position)"
        " SELECT ?, value, key + (SELECT coalesce(max(position), -1) + 1 FROM digest_articles"
        " WHERE digest_id = ?) FROM json_each(?)"
        " WHERE value NOT IN (SELECT article_id FROM digest_articles WHERE digest_id = ?)",
        [digest_id, digest_id, json.dumps(article_ids), digest_id],
    )
    db.execute("UPDATE digests SET edits_hash = ? WHERE id = ?", [edits_hash, digest_id])


def stored_variants(db: Database, digest_id: int) -> dict[str, tuple[int, bool]]:
    """tags_key -> (variant id, whether it has a template) of a digest's variants."""
    found = json.loads(
        db.execute(
            "SELECT json_group_object(tags_key, json_array(id, template IS NOT NULL))"
            " FROM variants WHERE digest_id = ?",
            [digest_id],
        ).fetchone()[0]
    )
    return {key: (int(v[0]), bool(v[1])) for key, v in found.items()}


def insert_variants(db: Database, digest_id: int, tags_keys: Iterable[str]) -> None:
    """Placeholder rows for variants still rendering (``fill_variant`` completes them before
    the builder commits), so their recipients can be enqueued meanwhile."""
    db.execute(
        "INSERT INTO variants (digest_id, tags_key, subject, article_count)"
        " SELECT ?, value, '', 0 FROM json_each(?)",
        [digest_id, json.dumps(list(tags_keys))],
    )


def fill_variant(
    db: Database,
    variant_id: int,
    *,
    subject: str,
    template: bytes | None,
    article_count: int,
    cut_count: int,
    report: RenderReport,
) -> None:
    db.execute(
        "UPDATE variants SET subject = ?, template = ?, article_count = ?, cut_count = ?,"
        " html_size = ?, style_size = ?, report = ? WHERE id = ?",
        [
            subject,
            template,
            article_count,
            cut_count,
            report.html_size,
            report.style_size,
            json.dumps(report.to_json(), ensure_ascii=False),
            variant_id,
        ],
    )


# -- Reading variants ------------------------------------------------------------------------


@dataclass(frozen=True)
class VariantRow:
    id: int
    tags_key: str
    subject: str
    article_count: int
    cut_count: int
    empty: bool  # no template: nobody gets it
    report: RenderReport


def variants_of(db: Database, digest_id: int) -> list[VariantRow]:
    return [
        VariantRow(
            id=v["id"],
            tags_key=v["tags_key"],
            subject=v["subject"],
            article_count=v["article_count"],
            cut_count=v["cut_count"],
            empty=v["template_missing"] == 1,
            report=RenderReport.from_json(json.loads(v["report"])),
        )
        for v in db.query(
            "SELECT id, tags_key, subject, article_count, cut_count, report,"
            " template IS NULL AS template_missing FROM variants WHERE digest_id = ? ORDER BY id",
            [digest_id],
        )
    ]


def find_variant(
    db: Database, digest_id: int, *, variant_id: int | None = None, tags_key: str = ""
) -> VariantRow | None:
    """The digest's variant ``variant_id``, else the one for ``tags_key``."""
    for v in variants_of(db, digest_id):
        if (variant_id is not None and v.id == variant_id) or (
            variant_id is None and v.tags_key == tags_key
        ):
            return v
    return None


@dataclass(frozen=True)
class StoredVariant:
    """A variant's message template with what personalising it needs."""

    id: int
    digest_id: int
    list_id: int
    list_slug: str
    from_addr: str
    frequency: str
    period_label: str
    built_at: datetime
    template: bytes | None


def load_variant(db: Database, variant_id: int) -> StoredVariant | None:
    row = db.execute(
        """
        SELECT v.id, d.id, l.id, l.slug, l.from_addr, d.frequency, d.period_label, d.built_at,
               v.template
        FROM variants v JOIN digests d ON d.id = v.digest_id
        JOIN lists l ON l.id = d.list_id WHERE v.id = ?
        """,
        [variant_id],
    ).fetchone()
    if row is None:
        return None
    id_, digest_id, list_id, slug, from_addr, frequency, label, built_at, template = row
    return StoredVariant(
        id_, digest_id, list_id, slug, from_addr, frequency, label, from_iso(built_at), template
    )


@dataclass(frozen=True)
class ArchiveEntry:
    """A sent issue as the archive index and the Atom feed show it."""

    digest: StoredDigest
    subject: str  # the subject most readers got: the all-topics variant's, else the fullest
    headlines: tuple[str, ...]  # the first articles' titles, in the digest's order
    article_count: int


def archive_entries(
    db: Database, digests: list[StoredDigest], *, headlines: int = 3
) -> list[ArchiveEntry]:
    """``digests`` (in the given order) with their subject, first headlines and size."""
    if not digests:
        return []
    ids = json.dumps([d.id for d in digests])
    subjects: dict[int, str] = {}
    for digest_id, subject in db.execute(
        "SELECT digest_id, subject FROM variants"
        " WHERE digest_id IN (SELECT value FROM json_each(?)) AND template IS NOT NULL"
        " ORDER BY digest_id, tags_key = '' DESC, article_count DESC, id",
        [ids],
    ):
        subjects.setdefault(digest_id, subject)
    titles: dict[int, list[str]] = {}
    counts: dict[int, int] = {}
    for digest_id, title, n in db.execute(
        """
        SELECT digest_id, title, total FROM (
            SELECT da.digest_id, a.title,
                   row_number() OVER (PARTITION BY da.digest_id ORDER BY da.position) AS rank,
                   count(*) OVER (PARTITION BY da.digest_id) AS total
            FROM digest_articles da JOIN articles a ON a.id = da.article_id
            WHERE da.digest_id IN (SELECT value FROM json_each(?))
        ) WHERE rank <= ? ORDER BY digest_id, rank
        """,
        [ids, headlines],
    ):
        titles.setdefault(digest_id, []).append(title)
        counts[digest_id] = n
    return [
        ArchiveEntry(
            digest=d,
            subject=subjects.get(d.id, ""),
            headlines=tuple(titles.get(d.id, ())),
            article_count=counts.get(d.id, 0),
        )
        for d in digests
    ]
