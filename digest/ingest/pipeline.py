"""The one import path. ``ingest_sources`` (``digest ingest``) and ``fetch_feeds`` (``digest
fetch`` and the scheduler) both come down to ``_store_source``: recognise a source whose bytes
and articles are unchanged since its last ingest (``unchanged``), else parse it and store its
articles batch by batch, with the WAL checkpointed beside a long source's writes.

Failures belong to the smallest thing that failed: a rejected entry never stops the good entries
of its source; a source that cannot be read at all is reported as failed and the other sources
still go in; a feed that fails records its error (``feeds list`` shows it) and the others are
polled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlite_utils import Database

from ..articles.writes import BATCH_SIZE, Progress, SourceReport, store_articles
from ..config import Config
from ..errors import DigestError
from ..store.bulk import background_checkpoints
from .feeds import list_feeds, record_poll
from .http import http_get
from .sources import file_source_bytes, is_url, parse_bytes, read_file_source
from .unchanged import remember_source, source_fingerprint, unchanged_source

__all__ = ["FeedReport", "SourceReport", "fetch_feeds", "ingest_sources"]


@dataclass(frozen=True)
class _Options:
    now: datetime
    max_text_bytes: int
    tags: tuple[str, ...]
    since: datetime | None


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
    """Ingest every source (an http(s) URL, a file or a directory) in turn; one report per
    source, in order. Never raises for one bad source: its report carries the ``error``."""
    options = _Options(now, config.ingest.max_text_bytes, tuple(tags), since)
    reports = []
    for source in sources:
        try:
            report = _ingest_one(db, source, config=config, options=options, progress=progress)
        except DigestError as e:
            report = SourceReport(source=source, error=str(e).removeprefix(f"{source}: "))
        reports.append(report)
    return reports


def _ingest_one(
    db: Database, source: str, *, config: Config, options: _Options, progress: Progress | None
) -> SourceReport:
    """Ingest one source; raises ``DigestError`` if it cannot be read at all."""
    if is_url(source):
        response = http_get(
            source, timeout=config.ingest.fetch_timeout, max_bytes=config.ingest.max_feed_bytes
        )
        return _store_source(
            db, source, response.body or b"", response.content_type, options, progress
        )
    data = file_source_bytes(source)
    if data is None:  # a directory or a Markdown/HTML file: read entry by entry
        return store_articles(
            db,
            read_file_source(source),
            now=options.now,
            max_text_bytes=options.max_text_bytes,
            tags=options.tags,
            since=options.since,
            progress=progress,
        )
    return _store_source(db, source, data, None, options, progress)


def _store_source(
    db: Database,
    label: str,
    data: bytes,
    content_type: str | None,
    options: _Options,
    progress: Progress | None,
) -> SourceReport:
    fingerprint = source_fingerprint(
        data,
        content_type=content_type,
        tags=options.tags,
        since=options.since,
        max_text_bytes=options.max_text_bytes,
    )
    report = unchanged_source(db, label, fingerprint)
    if report is not None:
        return report
    parsed = parse_bytes(data, label, content_type=content_type)
    # A source of several batches is checkpointed beside its writes; see the function.
    with background_checkpoints(db, enabled=len(parsed.items) > BATCH_SIZE) as checkpoint:
        report = store_articles(
            db,
            parsed,
            now=options.now,
            max_text_bytes=options.max_text_bytes,
            tags=options.tags,
            since=options.since,
            progress=progress,
            after_batch=checkpoint,
        )
        remember_source(db, label, fingerprint, report, now=options.now)
    return report


@dataclass
class FeedReport:
    url: str
    status: str  # "fetched" | "not modified" | "failed"
    report: SourceReport | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status != "failed" and (self.report is None or self.report.ok)

    def summary_line(self) -> str:
        if self.status == "failed":
            return f"{self.url}: failed: {self.error}"
        if self.status == "not modified":
            return f"{self.url}: not modified"
        assert self.report is not None
        return self.report.summary_line()


def fetch_feeds(
    db: Database,
    config: Config,
    *,
    now: datetime,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[FeedReport]:
    """Poll every registered feed once (conditional GET) and store new and changed entries.
    Records last success / last error per feed; never raises because of one bad feed."""
    feeds = list_feeds(db)
    reports = []
    for done, feed in enumerate(feeds, 1):
        options = _Options(now, config.ingest.max_text_bytes, feed.tags, None)
        try:
            response = http_get(
                feed.url,
                timeout=config.ingest.fetch_timeout,
                max_bytes=config.ingest.max_feed_bytes,
                etag=feed.etag,
                last_modified=feed.last_modified,
            )
            if response.status == 304:
                report = FeedReport(feed.url, "not modified")
            else:
                stored = _store_source(
                    db, feed.url, response.body or b"", response.content_type, options, None
                )
                report = FeedReport(feed.url, "fetched", report=stored)
        except DigestError as e:
            message = str(e).removeprefix(f"{feed.url}: ")
            record_poll(db, feed, now=now, error=message)
            reports.append(FeedReport(feed.url, "failed", error=message))
        else:
            problem = None
            if report.report is not None and report.report.rejected:
                problem = "; ".join(str(r) for r in report.report.rejected[:3])
            record_poll(
                db,
                feed,
                now=now,
                problem=problem,
                etag=response.etag,
                last_modified=response.last_modified,
            )
            reports.append(report)
        if progress is not None:
            progress("feeds", done, len(feeds))
    return reports
