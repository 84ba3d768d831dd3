"""One tick of the scheduler behind ``digest run``: work out from the store what is due at
``now`` (``plan``) and do it — fetch the registered feeds once, build each due digest, send what
the ledger owes — so that it can run every minute, after hours of downtime, or twice at once,
and still build and send each issue once. Building is idempotent (one digest per list,
frequency and period) and sending goes through the ledger's leases, so overlapping ticks cannot
build or send anything twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlite_utils import Database

from ..config import Config
from ..delivery.approval_notice import notify_editors
from ..delivery.notices import NoticeReport, flush_notices
from ..delivery.optin import expire
from ..delivery.publish import build_digest
from ..delivery.send import SendReport, send_pending
from ..delivery.transports import Transport
from ..errors import DigestError, describe_error
from ..ingest.pipeline import FeedReport, FeedStatus, fetch_feeds
from ..issues.build import BuiltDigest
from ..timeutil import to_iso
from .plan import DueIssue, Skipped, plan, record_skips

logger = logging.getLogger("digest.scheduler")


def _error_once(
    log: logging.Logger,
    logged: set[str] | None,
    message: str,
    error: BaseException,
    extra: dict[str, str],
) -> None:
    if logged is not None:
        if message in logged:
            return
        logged.add(message)
    log.error(message, extra=extra)
    if not isinstance(error, DigestError):
        log.debug("traceback of: %s", message, exc_info=error)


# While sending, a progress line at most this often (seconds).
PROGRESS_EVERY = 10.0


@dataclass
class TickReport:
    """What one tick did."""

    now: datetime
    due: list[DueIssue] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)  # newly recorded by this tick
    fetched: list[FeedReport] | None = None  # None: the feeds were not fetched
    built: list[BuiltDigest] = field(default_factory=list)
    sent: SendReport | None = None
    notified: list[tuple[str, str | None]] = field(default_factory=list)  # (issue, error)
    notices: NoticeReport | None = None  # confirmation emails queued by the web pages
    expired: int = 0  # pending subscriptions that expired ([subscribers] pending_expire_days)
    errors: list[str] = field(default_factory=list)
    stopped: bool = False  # the stop event cut the tick short

    @property
    def ok(self) -> bool:
        return not self.errors


def poll_feeds(
    db: Database,
    config: Config,
    *,
    now: datetime,
    stop: threading.Event | None = None,
    log: logging.Logger = logger,
) -> list[FeedReport]:
    """Fetch every registered feed once and log one line per feed. A feed that fails, in any
    way, is logged and recorded and the others are polled (``fetch_feeds``); once ``stop`` is
    set, the fetch in progress is cut short within a second or so and the poll ends."""
    reports = fetch_feeds(db, config, now=now, stop=stop)
    for r in reports:
        if r.status == FeedStatus.STOPPED:
            log.info(
                "feed %s: %s",
                r.url,
                r.error,
                extra={"event": "feed_stopped", "feed": r.url},
            )
        elif r.status == FeedStatus.FAILED:
            log.warning(
                "feed %s failed: %s",
                r.url,
                r.error,
                extra={"event": "feed_failed", "feed": r.url, "error": r.error},
            )
        elif r.status == FeedStatus.NOT_MODIFIED:
            log.debug("feed %s: not modified", r.url, extra={"event": "feed", "feed": r.url})
        else:
            assert r.report is not None
            counts = {
                "new": r.report.new,
                "updated": r.report.updated,
                "rejected": len(r.report.rejected),
            }
            level = logging.INFO if r.report.new or r.report.updated else logging.DEBUG
            if r.report.rejected:
                level = logging.WARNING
            log.log(
                level,
                "fetched feed %s: %d new, %d updated, %d rejected",
                r.url,
                counts["new"],
                counts["updated"],
                counts["rejected"],
                extra={"event": "fetched", "feed": r.url, **counts},
            )
            _log_feed_lines(log, r.url, r.report.notes, r.report.warnings)
    return reports


# A feed can warn once per entry (dates, full-text pages): the log shows the first few.
MAX_FEED_WARNINGS = 10


def _log_feed_lines(log: logging.Logger, url: str, notes: list[str], warnings: list[str]) -> None:
    """The notes (``full text: 5 summary-only entries · ...``) and warnings (``full text for
    URL: timed out ...; the summary is kept``) that ``digest fetch`` prints under a feed."""
    for note in notes:
        log.info("feed %s: %s", url, note, extra={"event": "feed_note", "feed": url})
    for warning in warnings[:MAX_FEED_WARNINGS]:
        log.warning("feed %s: %s", url, warning, extra={"event": "feed_warning", "feed": url})
    if len(warnings) > MAX_FEED_WARNINGS:
        log.warning(
            "feed %s: … and %d more warnings (digest fetch prints them all)",
            url,
            len(warnings) - MAX_FEED_WARNINGS,
            extra={"event": "feed_warning", "feed": url},
        )


def _log_built(log: logging.Logger, issue: DueIssue, result: BuiltDigest) -> None:
    fields = {
        "event": "built",
        "list": issue.mailing_list.slug,
        "frequency": issue.frequency,
        "period": issue.period.label,
        "digest_id": result.id,
        "articles": result.article_count,
        "variants": len(result.variants),
        "recipients": result.recipients,
    }
    if result.awaiting_approval:
        log.info(
            "built %s for approval: %d articles, %d variants; nothing is queued until an editor"
            " approves it",
            issue.name,
            result.article_count,
            len(result.variants),
            extra={**fields, "event": "awaiting_approval"},
        )
    elif result.new and not result.article_count:
        log.info(
            "built %s: no articles, nothing to send",
            issue.name,
            extra=fields,
        )
    elif result.new:
        log.info(
            "built %s: %d articles, %d variants, %d recipients",
            issue.name,
            result.article_count,
            len(result.variants),
            result.recipients,
            extra=fields,
        )
    elif issue.mailing_list.approval.required and not issue.for_approval:
        log.info(
            "sending approved %s: %d recipients queued",
            issue.name,
            result.recipients,
            extra={**fields, "event": "approved_queued"},
        )
    else:
        # Another tick (another process) stored it between our plan and our build.
        log.info(
            "%s was already built by another process; %d recipients queued",
            issue.name,
            result.recipients,
            extra={**fields, "event": "already_built"},
        )


class _SendProgress:
    """Log 'sending N deliveries' when a send starts, then a line at most every
    ``PROGRESS_EVERY`` seconds while it lasts."""

    def __init__(self, log: logging.Logger):
        self.log = log
        self.started = False
        self.next_line = 0.0

    def __call__(self, report: SendReport) -> None:
        if not self.started:
            self.started = True
            self.next_line = time.monotonic() + PROGRESS_EVERY
            if report.released:
                self.log.info(
                    "released %d deliveries leased by senders that died",
                    report.released,
                    extra={"event": "released", "count": report.released},
                )
            self.log.info(
                "sending %d deliveries",
                report.total,
                extra={"event": "sending", "due": report.total},
            )
        elif time.monotonic() >= self.next_line:
            self.next_line = time.monotonic() + PROGRESS_EVERY
            self.log.info(
                "sending: %d of %d done (%d sent, %d deferred, %d failed)",
                report.done,
                report.total,
                report.sent,
                report.deferred,
                report.failed,
                extra={"event": "progress", "done": report.done, "due": report.total},
            )


def _log_sent(log: logging.Logger, report: SendReport) -> None:
    if report.total == 0:
        return
    log.info(
        "sent %d in %.1f s (deferred %d, failed %d, skipped %d)",
        report.sent,
        report.elapsed,
        report.deferred,
        report.failed,
        report.skipped,
        extra={
            "event": "sent",
            "sent": report.sent,
            "deferred": report.deferred,
            "failed": report.failed,
            "skipped": report.skipped,
            "seconds": round(report.elapsed, 3),
        },
    )
    for f in report.failures[:20]:
        log.warning(
            "delivery to %s failed (digest %d): %s",
            f.email,
            f.digest_id,
            f.reply,
            extra={"event": "delivery_failed", "email": f.email, "digest_id": f.digest_id},
        )
    if len(report.failures) > 20:
        log.warning("… and %d more failed deliveries", len(report.failures) - 20)
    for line in report.warnings:
        log.warning(line, extra={"event": "send_warning"})
    for line in report.explanation():
        # Why messages did not go out: "deferred 1000: cannot connect to relay ... (refused)".
        log.warning(line, extra={"event": "send_explained"})
    if report.stopped:
        log.info("sending stopped: %s", report.stopped, extra={"event": "send_stopped"})


def tick(
    db: Database,
    config: Config,
    *,
    now: datetime,
    secret: bytes,
    transport: Transport | None = None,
    clock: Callable[[], datetime] | None = None,
    stop: threading.Event | None = None,
    log: logging.Logger = logger,
    logged: set[str] | None = None,
    allow_insecure_links: bool = False,
) -> TickReport:
    """Do what is due at ``now``: record and log skipped issues, fetch the registered feeds
    (only if something is about to be built), build each due issue, then send every delivery
    the ledger owes (new ones, and deferred ones whose retry time has come).

    ``clock`` is what the sender reads while it works (default: ``now`` throughout); ``stop``,
    once set, ends the tick after the work in hand (a build in progress completes; a send
    finishes only the messages already at the server).

    A failure belongs to the smallest thing that failed: an issue that cannot be built (for any
    reason, an unexpected one included) is listed in ``TickReport.errors`` and logged in one
    line, and the other issues are built and the ledger is sent; a failing send is logged and
    retried at the next tick. ``logged`` (kept by the runner across ticks) makes a failure that
    repeats at every tick appear in the log once, until it changes."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    report = TickReport(now=now)
    clock = clock or (lambda: now)

    def stopping() -> bool:
        if stop is not None and stop.is_set():
            report.stopped = True
        return report.stopped

    due, skipped = plan(db, config, now=now)
    report.due = due
    report.skipped = record_skips(db, skipped, now=now)
    for skip in report.skipped:
        log.warning(
            "skipped stale period %s: %s",
            skip.name,
            skip.reason,
            extra={
                "event": "skipped",
                "list": skip.mailing_list.slug,
                "frequency": skip.frequency,
                "period": skip.period.label,
                "reason": skip.reason,
            },
        )
    if not due:
        log.debug("tick at %s: nothing to build", to_iso(now), extra={"event": "tick"})

    if due and not stopping():
        # Once per tick, right before building, so articles published just before the send
        # time (or the approval lead time) are in the digest.
        report.fetched = poll_feeds(db, config, now=now, stop=stop, log=log)
    for issue in due:
        if stopping():
            break
        try:
            result = build_digest(
                db, config, issue.mailing_list, issue.frequency, issue.period.issue_date, now=now
            )
        except Exception as e:  # noqa: BLE001 - contained: this issue fails, the others go on
            message = f"building {issue.name} failed: {describe_error(e)}"
            report.errors.append(message)
            _error_once(log, logged, message, e,
                        {"event": "build_failed", "list": issue.mailing_list.slug})  # fmt: skip
            continue
        report.built.append(result)
        _log_built(log, issue, result)

    if not stopping():
        # Right after building for approval (and again each tick while it failed).
        report.notified = notify_editors(db, config, now=now, transport=transport)
        for name, error in report.notified:
            if error is None:
                log.info("told the editors that %s awaits approval", name,
                         extra={"event": "approval_requested", "issue": name})  # fmt: skip
            else:
                message = f"telling the editors that {name} awaits approval failed: {error}"
                report.errors.append(message)
                _error_once(log, logged, message, RuntimeError(error),
                            {"event": "approval_notice_failed", "issue": name})  # fmt: skip

    if not stopping():
        try:
            report.sent = send_pending(
                db,
                config,
                secret=secret,
                clock=clock,
                transport=transport,
                # Leases of senders on this host that died (a killed `digest run`) are given
                # back at once instead of after [send] lease_seconds; live senders keep theirs.
                recover=True,
                stop=stop,
                progress=_SendProgress(log),
                allow_insecure_links=allow_insecure_links,
            )
        except Exception as e:  # noqa: BLE001 - contained: logged, the next tick tries again
            message = f"sending failed: {describe_error(e)}"
            report.errors.append(message)
            _error_once(log, logged, message, e, {"event": "send_failed"})
        else:
            _log_sent(log, report.sent)
            if report.sent.stopped and stop is not None and stop.is_set():
                report.stopped = True
    if not stopping():
        # Pending subscriptions nobody confirmed expire: no more reminders, nothing sent.
        try:
            gone = expire(db, config, now=now)
        except Exception as e:  # noqa: BLE001 - contained: logged, the next tick tries again
            message = f"expiring pending subscriptions failed: {describe_error(e)}"
            report.errors.append(message)
            _error_once(log, logged, message, e, {"event": "expiry_failed"})
        else:
            report.expired = len(gone)
            if gone:
                log.info(
                    "expired %d pending subscription(s) not confirmed within %g days",
                    len(gone),
                    config.subscribers.pending_expire_days,
                    extra={"event": "expired", "count": len(gone)},
                )
    if not stopping():
        # Confirmation emails the web pages queued: `digest serve` sends them at once itself;
        # this covers a web process that is not running (or cannot reach the relay).
        try:
            report.notices = flush_notices(
                db, config, secret=secret, now=clock(), transport=transport, log=log
            )
            if report.notices.error:
                raise DigestError(report.notices.error)
        except Exception as e:  # noqa: BLE001 - contained like the send above
            message = f"sending notices failed: {describe_error(e)}"
            report.errors.append(message)
            _error_once(log, logged, message, e, {"event": "notices_failed"})
    return report
