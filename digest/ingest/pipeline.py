"""The one import path. ``ingest_sources`` (``digest ingest``) and ``fetch_feeds`` (``digest
fetch`` and the scheduler) both come down to ``_store_source``: recognise a source whose bytes
and articles are unchanged since its last ingest (``unchanged``), else parse it and store its
articles batch by batch, with the WAL checkpointed beside a long source's writes. A source that
is articles one by one (a web page, a text scrape, an article file or a directory of them) is
read by ``documents`` and stored as it is, with a line saying what was extracted. After a feed
is stored, the linked pages of its summary-only entries are fetched for their full text when
asked (``--full-text``, ``fulltext``).

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
from pathlib import Path

from sqlite_utils import Database

from ..articles.inputs import Rejection
from ..articles.reads import load_articles
from ..articles.writes import BATCH_SIZE, Progress, SourceReport, store_articles
from ..config import Config
from ..errors import DigestError, SourceError, describe_error
from ..store.bulk import background_checkpoints
from ..text import visible
from .documents import (
    NO_OVERRIDES,
    ArticleOverrides,
    ReadSource,
    read_directory,
    read_file,
    read_page,
)
from .feeds import Feed, get_feed, list_feeds, record_poll
from .fulltext import FullTextReport, fetch_full_text
from .http import http_get
from .pages import is_article_page
from .sources import is_url, parse_bytes
from .unchanged import remember_source, source_fingerprint, unchanged_source

__all__ = ["FeedReport", "FeedStatus", "SourceReport", "fetch_feeds", "ingest_sources"]

logger = logging.getLogger("digest.ingest")


@dataclass(frozen=True)
class _Options:
    now: datetime
    max_text_bytes: int
    tags: tuple[str, ...]
    since: datetime | None
    overrides: ArticleOverrides = NO_OVERRIDES
    full_text: bool = False


def ingest_sources(
    db: Database,
    sources: Iterable[str],
    *,
    config: Config,
    now: datetime,
    tags: Iterable[str] = (),
    since: datetime | None = None,
    overrides: ArticleOverrides = NO_OVERRIDES,
    full_text: bool = False,
    progress: Progress | None = None,
) -> list[SourceReport]:
    """Ingest every source (an http(s) URL, a file or a directory) in turn; one report per
    source, in order. ``overrides`` set the title, date or author of a source that is one
    article (a page, a text scrape, an article file; any other source fails with the reason);
    ``full_text`` fetches the linked pages of a feed's summary-only entries. Never raises for
    one bad source, whatever goes wrong with it: its report carries the ``error``."""
    options = _Options(now, config.ingest.max_text_bytes, tuple(tags), since, overrides, full_text)
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
    report.notes = [visible(n) for n in report.notes]
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
    overrides = options.overrides
    content_type = None
    if is_url(source):
        response = http_get(
            source,
            timeout=config.ingest.fetch_timeout,
            max_bytes=config.ingest.max_feed_bytes,
            allow_private=config.ingest.allow_private_addresses,
        )
        data = response.body or b""
        content_type = response.content_type
        if is_article_page(data, content_type=content_type):
            page = read_page(
                data,
                label=source,
                url=response.url,
                also=(source,),
                content_type=content_type,
                now=options.now,
                overrides=overrides,
            )
            return _store_read(db, page, options, progress)
    else:
        path = Path(source).expanduser()
        if path.is_dir():
            overrides.refuse(source, "a directory")
            return _store_read(db, read_directory(path, source, now=options.now), options, progress)
        if not path.exists():
            raise SourceError(f"{source}: no such file or directory")
        read = read_file(path, source, now=options.now, overrides=overrides)
        if isinstance(read, ReadSource):
            return _store_read(db, read, options, progress)
        data = read
    overrides.refuse(source, "a feed or a JSON file of articles")
    report = _store_source(db, source, data, content_type, options, progress)
    if options.full_text and report.article_ids:
        _full_text(db, report, config=config, now=options.now, progress=progress)
    return report


def _store_read(
    db: Database, read: ReadSource, options: _Options, progress: Progress | None
) -> SourceReport:
    """Store a source read article by article (``documents``), with its extraction lines. A
    page or scrape that turned out to be a story stored earlier from another source says so:
    the stored article keeps its text and gains the page's tags and URLs."""
    report = store_articles(
        db,
        read.parsed,
        now=options.now,
        max_text_bytes=options.max_text_bytes,
        tags=options.tags,
        since=options.since,
        progress=progress,
    )
    report.notes[:0] = read.notes
    if read.parsed.kind in ("page", "text") and report.unchanged and report.article_ids:
        for article in load_articles(db, report.article_ids[:1]):
            if article.source != read.parsed.label:
                ignored = f"; {options.overrides.options} not applied" if options.overrides else ""
                report.notes.append(
                    f"same story as article {article.id}, stored from {article.source}: its"
                    f" text is kept; tags and URLs added{ignored}"
                )
    return report


def _full_text(
    db: Database,
    report: SourceReport,
    *,
    config: Config,
    now: datetime,
    progress: Callable[[str, int, int], None] | None,
    stop: threading.Event | None = None,
) -> FullTextReport:
    """Fetch the full text of the summary-only entries of a stored feed; its lines go into
    ``report`` (a summary note, one warning per failed page). Contained: whatever goes wrong,
    the feed's articles are stored already and keep their summaries."""
    try:
        full = fetch_full_text(
            db,
            report.article_ids,
            config=config,
            now=now,
            label=report.source,
            stop=stop,
            progress=progress,
        )
    except Exception as e:  # noqa: BLE001 - the feed is stored; its full text fails alone
        logger.debug("full text for %s failed unexpectedly", visible(report.source), exc_info=e)
        full = FullTextReport(retry=1)
        report.warnings.append(
            f"full text failed unexpectedly ({visible(describe_error(e))[:300]}); the summaries"
            " are kept"
        )
    line = full.summary_line()
    if line:
        report.notes.append(line)
    report.warnings.extend(f"full text for {f}; the summary is kept" for f in full.failed)
    return full


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
        full: FullTextReport | None = None
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
                if feed.full_text and stored.article_ids:
                    full = _full_text(
                        db, stored, config=config, now=now, progress=progress, stop=stop
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
            # Pages left to fetch or retry: the next poll downloads the feed again (no validators)
            # instead of hearing "304 Not Modified", so it gets to them.
            later = full is not None and not full.complete
            record_poll(
                db,
                feed,
                now=now,
                problem=problem,
                etag=None if later else response.etag,
                last_modified=None if later else response.last_modified,
                full_text_failed=_failed_count(feed, full),
            )
            reports.append(report)
        if progress is not None:
            progress("feeds", done, len(feeds))
    return reports


def _failed_count(feed: Feed, full: FullTextReport | None) -> int | None:
    if not feed.full_text:
        return 0
    return full.failures if full is not None else None
