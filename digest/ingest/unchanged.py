"""Recognising a source that has not changed since it was last ingested: the only module that
writes ``source_states``. A re-ingest of the same bytes (and options) whose articles are still
exactly as that ingest left them is answered from the record, without parsing the source again
(feedparser is most of an RSS ingest's time)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import datetime

from sqlite_utils import Database

from ..articles.reads import stored_state
from ..articles.writes import SourceReport
from ..store import transaction
from ..timeutil import to_iso

# Part of every fingerprint: change it when the same bytes would be stored differently.
_STORE_VERSION = "1"


def source_fingerprint(
    data: bytes,
    *,
    content_type: str | None = None,
    tags: Iterable[str] = (),
    since: datetime | None = None,
    max_text_bytes: int = 200_000,
) -> str:
    """A hash of a source's bytes and of every option that changes what ingesting it stores."""
    h = hashlib.sha256(data)
    options = [_STORE_VERSION, content_type or "", to_iso(since) if since else "", max_text_bytes]
    h.update(json.dumps([options, sorted(tags)]).encode())
    return h.hexdigest()


def _state_hash(rows: Iterable[tuple[int, str, str | None]]) -> str:
    # (id, content hash, tag ids joined by "," or None), in id order.
    return hashlib.sha256("".join([f"{i} {h} {t}\n" for i, h, t in rows]).encode()).hexdigest()


def unchanged_source(db: Database, source: str, fingerprint: str) -> SourceReport | None:
    """The report of re-ingesting ``source`` (everything unchanged) if its last ingest had the
    same ``fingerprint`` and was clean, and its articles are still exactly as that ingest left
    them; else None (the source must be parsed and stored)."""
    row = db.execute(
        "SELECT kind, article_ids, state, unchanged, skipped FROM source_states"
        " WHERE source = ? AND fingerprint = ?",
        [source, fingerprint],
    ).fetchone()
    if row is None:
        return None
    kind, ids, state, unchanged, skipped = row
    article_ids = json.loads(ids)
    if _state_hash(stored_state(db.conn, article_ids)) != state:
        return None
    return SourceReport(
        source=source, kind=kind, unchanged=unchanged, skipped=skipped, article_ids=article_ids
    )


def remember_source(
    db: Database, source: str, fingerprint: str, report: SourceReport, *, now: datetime
) -> None:
    """Record a source's fingerprint after a complete ingest, so an unchanged re-ingest is
    recognised. Only a clean ingest (nothing rejected, no warnings) is recorded: replaying a
    report must not hide what the user was told the first time."""
    if report.error or report.rejected or report.warnings:
        db.execute("DELETE FROM source_states WHERE source = ?", [source])
        return
    ids = sorted(set(report.article_ids))
    # The state is what the ingest itself wrote (reading it back costs ~3 µs an article). If
    # anything else changed those articles meanwhile, the next re-ingest finds a different
    # stored state and stores the source again, which is the safe way round.
    states = report.states
    if all(i in states for i in ids):
        state = _state_hash((i, *states[i]) for i in ids)
    else:
        state = _state_hash(stored_state(db.conn, ids))
    with transaction(db):
        db.execute(
            "INSERT OR REPLACE INTO source_states (source, fingerprint, kind, article_ids, state,"
            " unchanged, skipped, ingested_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                source, fingerprint, report.kind, json.dumps(ids), state,
                report.new + report.updated + report.unchanged, report.skipped, to_iso(now),
            ],
        )  # fmt: skip
