"""Ingestion: read each source (file, directory or URL), store its articles, and report per
source what was new, updated, unchanged or rejected. A source that cannot be read at all is
reported as failed and the other sources still go in; entries that are rejected never stop the
good entries of the same source.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlite_utils import Database

from .articles import (
    BATCH_SIZE,
    Progress,
    SourceReport,
    background_checkpoints,
    remember_source,
    source_fingerprint,
    store_articles,
    unchanged_source,
)
from .config import Config
from .errors import DigestError
from .fetch import http_get
from .sources import ParsedSource, file_source_bytes, is_url, parse_bytes, read_file_source

__all__ = ["SourceReport", "ingest_sources", "read_source"]


def read_source(source: str, *, config: Config) -> ParsedSource:
    """Parse one SOURCE as the user named it: an http(s) URL, a file, or a directory."""
    if is_url(source):
        response = http_get(
            source,
            timeout=config.get("ingest", "fetch_timeout"),
            max_bytes=config.get("ingest", "max_feed_bytes"),
        )
        return parse_bytes(response.body or b"", source, content_type=response.content_type)
    return read_file_source(source)


def ingest_sources(
    db: Database,
    sources: Iterable[str],
    *,
    config: Config,
    now: datetime,
    tags: Iterable[str] = (),
    since: datetime | None = None,
    progress: Progress | None = None,
) -> list[SourceReport]:
    """Ingest every source in turn; one report per source, in order. Never raises for one bad
    source: its report carries the ``error``."""
    tags = tuple(tags)
    max_text = config.get("ingest", "max_text_bytes")
    reports = []
    for source in sources:
        try:
            report = ingest_source(
                db, source, config=config, now=now, tags=tags, since=since,
                max_text_bytes=max_text, progress=progress,
            )  # fmt: skip
        except DigestError as e:
            report = SourceReport(source=source, error=str(e).removeprefix(f"{source}: "))
        reports.append(report)
    return reports


def ingest_source(
    db: Database,
    source: str,
    *,
    config: Config,
    now: datetime,
    tags: tuple[str, ...],
    since: datetime | None,
    max_text_bytes: int,
    progress: Progress | None = None,
) -> SourceReport:
    """Ingest one source; raises ``DigestError`` if it cannot be read at all."""
    content_type = None
    if is_url(source):
        response = http_get(
            source,
            timeout=config.get("ingest", "fetch_timeout"),
            max_bytes=config.get("ingest", "max_feed_bytes"),
        )
        data, content_type = response.body or b"", response.content_type
    else:
        data = file_source_bytes(source)
    options = dict(now=now, max_text_bytes=max_text_bytes, tags=tags, since=since)
    if data is None:  # a directory or a Markdown/HTML file: read entry by entry
        return store_articles(db, read_file_source(source), progress=progress, **options)
    fingerprint = source_fingerprint(
        data, content_type=content_type, tags=tags, since=since, max_text_bytes=max_text_bytes
    )
    report = unchanged_source(db, source, fingerprint)
    if report is None:
        parsed = parse_bytes(data, source, content_type=content_type)
        # A source of several batches is checkpointed beside its writes; see the function.
        with background_checkpoints(db, enabled=len(parsed.items) > BATCH_SIZE) as checkpoint:
            report = store_articles(
                db, parsed, progress=progress, after_batch=checkpoint, **options
            )
            remember_source(db, source, fingerprint, report, now=now)
    return report
