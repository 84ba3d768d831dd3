"""Ingestion: read each source (file, directory or URL), store its articles, and report per
source what was new, updated, unchanged or rejected. A source that cannot be read at all is
reported as failed and the other sources still go in; entries that are rejected never stop the
good entries of the same source.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlite_utils import Database

from .articles import Progress, SourceReport, store_articles
from .config import Config
from .errors import DigestError
from .fetch import http_get
from .sources import ParsedSource, is_url, parse_bytes, read_file_source

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
            parsed = read_source(source, config=config)
            report = store_articles(
                db,
                parsed,
                now=now,
                max_text_bytes=max_text,
                tags=tags,
                since=since,
                progress=progress,
            )
        except DigestError as e:
            report = SourceReport(source=source, error=str(e).removeprefix(f"{source}: "))
        reports.append(report)
    return reports
