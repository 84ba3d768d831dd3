"""The one import path. ``ingest_sources`` (``digest ingest``) and ``fetch_feeds`` (``digest
fetch`` and the scheduler) both come down to ``_store_source``: recognise a source whose bytes
and articles are unchanged since its last ingest (``unchanged``), else parse it and store its
articles batch by batch, with the WAL checkpointed beside a long source's writes.

Failures belong to the smallest thing that failed, and this module is where that holds for
sources and feeds: a rejected entry never stops the good entries of its source; a source or feed
that fails in *any* way (unreadable, unreachable, too slow, or an exception nobody foresaw) is
reported as failed in one line naming it, a feed records that line (``feeds list`` shows it),
and the other sources and feeds still go in. Only a stop request (``stop``, set by ``digest
run`` on SIGTERM) ends a poll early: the fetch in progress is cut within a second or so, and the
feeds not yet polled keep their state for the next poll.

Text that came from outside (a server's reason phrase, a parser's message, an entry's title in
its label) reaches every report through ``visible``: control characters are shown escaped, never
sent raw to a terminal or a log.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlite_utils import Database

from ..articles.inputs import Rejection
from ..articles.writes import BATCH_SIZE, Progress, SourceReport, store_articles
from ..config import Config
from ..errors import DigestError, describe_error
from ..store.bulk import background_checkpoints
from ..text import visible
from .feeds import get_feed, list_feeds, record_poll
from .http import http_get
from .sources import file_source_bytes, is_url, parse_bytes, read_file_source
from .unchanged import remember_source, source_fingerprint, unchanged_source

__all__ = ["FeedReport", "FeedStatus", "SourceReport", "fetch_feeds", "ingest_sources"]

logger = logging.getLogger("digest.ingest")


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
    source, in order. Never raises for one bad source, whatever goes wrong with it: its report
    carries the ``error``."""
    options = _Options(now, config.ingest.max_text_bytes, tuple(tags), since)
    reports = []
    for source in sources:
        try:
            report = _ingest_one(db, source, config=config, options=options, progress=progress)
        except Exception as e:  # noqa: BLE001 - one source fails alone (see the module docstring)
            report = SourceReport(source=source, error=_failure(source, e))
        reports.append(_visible_report(report))
    return reports


def _failure(label: str, e: Exception) -> str:
    """The one line that says why ``label`` failed. A ``DigestError`` carries a message for the
    user; anything else is a bug or a case nobody foresaw, named by its type (the traceback goes
    to the debug log)."""
    if isinstance(e, DigestError):
        return str(e).removeprefix(f"{label}: ")
    logger.debug("%s failed unexpectedly", visible(label), exc_info=e)
    return f"failed unexpectedly ({visible(describe_error(e))[:300]})"


def _visible_report(report: SourceReport) -> SourceReport:
    """``report`` with every message shown through ``visible`` (see the module docstring)."""
    report.source = visible(report.source)
    if report.error is not None:
        report.error = visible(report.error)
    report.warnings = [visible(w) for w in report.warnings]
    report.rejected = [
        r if r.entry.isprintable() and r.reason.isprintable()
        else Rejection(visible(r.entry), visible(r.reason))
        for r in report.rejected
    ]  # fmt: skip
    return report


def _ingest_one(
    db: Database, source: str, *, config: Config, options: _Options, progress: Progress | None
) -> SourceReport:
    """Ingest one source; raises ``DigestError`` if it cannot be read at all."""
    if is_url(source):
        response = http_get(
            source,
            timeout=config.ingest.fetch_timeout,
            max_bytes=config.ingest.max_feed_bytes,
            allow_private=config.ingest.allow_private_addresses,
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


class FeedStatus(StrEnum):
    FETCHED = "fetched"
    NOT_MODIFIED = "not modified"
    FAILED = "failed"
    STOPPED = "stopped"  # a stop request cut the fetch short; nothing recorded for the feed


@dataclass
class FeedReport:
    url: str
    status: FeedStatus
    report: SourceReport | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status != FeedStatus.FAILED and (self.report is None or self.report.ok)

    def summary_line(self) -> str:
        if self.status == FeedStatus.FAILED:
            return f"{self.url}: failed: {self.error}"
        if self.status == FeedStatus.STOPPED:
            return f"{self.url}: {self.error}"
        if self.status == FeedStatus.NOT_MODIFIED:
            return f"{self.url}: not modified"
        assert self.report is not None
        return self.report.summary_line()


def fetch_feeds(
    db: Database,
    config: Config,
    *,
    now: datetime,
    progress: Callable[[str, int, int], None] | None = None,
    stop: threading.Event | None = None,
    only: str | None = None,
) -> list[FeedReport]:
    """Poll every registered feed once (conditional GET) and store new and changed entries.
    Records last success / last error per feed; never raises because of one bad feed. Once
    ``stop`` is set, the fetch in progress is cut short (reported as stopped, nothing recorded)
    and no further feed is polled. ``only``: poll just this registered feed URL (the admin's
    "fetch now"; ``NotFound`` if it is not registered)."""
    feeds = [get_feed(db, only)] if only is not None else list_feeds(db)
    reports: list[FeedReport] = []
    for done, feed in enumerate(feeds, 1):
        if stop is not None and stop.is_set():
            break
        options = _Options(now, config.ingest.max_text_bytes, feed.tags, None)
        try:
            response = http_get(
                feed.url,
                timeout=config.ingest.fetch_timeout,
                max_bytes=config.ingest.max_feed_bytes,
                etag=feed.etag,
                last_modified=feed.last_modified,
                allow_private=config.ingest.allow_private_addresses,
                stop=stop,
            )
            if response.status == 304:
                report = FeedReport(feed.url, FeedStatus.NOT_MODIFIED)
            else:
                stored = _store_source(
                    db, feed.url, response.body or b"", response.content_type, options, None
                )
                report = FeedReport(feed.url, FeedStatus.FETCHED, report=_visible_report(stored))
        except Exception as e:  # noqa: BLE001 - one feed fails alone (see the module docstring)
            message = visible(_failure(feed.url, e))
            if stop is not None and stop.is_set():
                reports.append(FeedReport(feed.url, FeedStatus.STOPPED, error=message))
                break
            record_poll(db, feed, now=now, error=message)
            reports.append(FeedReport(feed.url, FeedStatus.FAILED, error=message))
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
