"""The scheduler behind ``digest run``: ``tick`` works out from the store what is due at ``now``
and does it — fetch the registered feeds once, build each due digest, send what the ledger owes
— so that it can run every minute, after hours of downtime, or twice at once, and still build
and send each issue once. ``run`` drives ticks and feed polls with the ``schedule`` library,
holding a per-database lock file, until its stop event is set (SIGTERM / SIGINT in the CLI).

Rules (see README "Running it unattended"):
- Per list and frequency with active subscribers, only the latest issue whose send time has
  passed (``periods.latest_due``) is ever built, and only if that send time is not before the
  list was created. If it is later than ``[schedule] max_lateness_daily_hours`` /
  ``max_lateness_weekly_hours`` it is skipped instead.
- Older issues missed while no scheduler ran (send time after the previous tick) are skipped,
  never sent: after downtime a list gets one catch-up issue, not a flood. Each skip is stored in
  ``schedule_events`` and logged once.
- Building is idempotent (one digest per list, frequency and period) and sending goes through
  the ledger's leases, so overlapping ticks cannot build or send anything twice.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import schedule
from sqlite_utils import Database

from .config import Config
from .digests import BuiltDigest, build_digest, find_digest, has_active_subscribers
from .errors import DigestError
from .fetch import Feed, FeedReport, fetch_feeds, list_feeds
from .lists import MailingList, all_lists
from .periods import FREQUENCIES, Period, latest_due, next_issue, previous_issue
from .send import SendReport, send_pending
from .smtp import Transport
from .store import open_db
from .timeutil import from_iso, to_iso, utc_now

logger = logging.getLogger("digest.scheduler")

# After long downtime, at most this many older issues per list and frequency are looked at (and
# recorded as skipped) in one tick; anything older is left alone.
MAX_MISSED = 100
# While sending, a progress line at most this often (seconds).
PROGRESS_EVERY = 10.0


class SchedulerBusy(DigestError):
    """Another ``digest run`` holds the database's lock file."""


@dataclass(frozen=True)
class Skipped:
    """An issue the scheduler will not send: too late, or missed while nothing ran."""

    list: MailingList
    frequency: str
    period: Period
    reason: str

    @property
    def name(self) -> str:
        return f"{self.list.slug}/{self.frequency}/{self.period.label}"


@dataclass(frozen=True)
class DueIssue:
    list: MailingList
    frequency: str
    period: Period

    @property
    def name(self) -> str:
        return f"{self.list.slug}/{self.frequency}/{self.period.label}"


@dataclass
class TickReport:
    """What one tick did."""

    now: datetime
    due: list[DueIssue] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)  # newly recorded by this tick
    fetched: list[FeedReport] | None = None  # None: the feeds were not fetched
    built: list[BuiltDigest] = field(default_factory=list)
    sent: SendReport | None = None
    errors: list[str] = field(default_factory=list)
    stopped: bool = False  # the stop event cut the tick short

    @property
    def ok(self) -> bool:
        return not self.errors


# ---------------------------------------------------------------------------- what is due


def last_tick_at(db: Database) -> datetime | None:
    row = db.execute("SELECT value FROM schedule_state WHERE key = 'last_tick_at'").fetchone()
    return from_iso(row[0]) if row else None


def _max_lateness(config: Config, frequency: str) -> timedelta:
    return timedelta(hours=config.get("schedule", f"max_lateness_{frequency}_hours"))


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.1f} h"


def _list_created(db: Database, mlist: MailingList) -> datetime:
    row = db.execute("SELECT created_at FROM lists WHERE id = ?", [mlist.id]).fetchone()
    return from_iso(row[0])


def plan(db: Database, config: Config, *, now: datetime) -> tuple[list[DueIssue], list[Skipped]]:
    """The issues a tick at ``now`` builds, and the ones it skips (not yet recorded).

    Reads only; ``tick`` records the skips and the tick time."""
    previous_tick = last_tick_at(db)
    due: list[DueIssue] = []
    skipped: list[Skipped] = []
    for mlist in all_lists(db):
        created = _list_created(db, mlist)
        for frequency in FREQUENCIES:
            if not has_active_subscribers(db, mlist, frequency):
                continue
            latest = latest_due(mlist, frequency, now)
            skipped += _missed(db, mlist, latest, previous_tick, created)
            # An issue whose send time came before the list existed was never missed.
            if latest.send_at < created or find_digest(db, mlist, latest) is not None:
                continue
            late = now - latest.send_at
            limit = _max_lateness(config, frequency)
            if late <= limit:
                due.append(DueIssue(mlist, frequency, latest))
            else:
                reason = (
                    f"{_hours(late)} late, over max_lateness_{frequency}_hours ({_hours(limit)})"
                )
                skipped.append(Skipped(mlist, frequency, latest, reason))
    return due, skipped


def _missed(
    db: Database,
    mlist: MailingList,
    latest: Period,
    previous_tick: datetime | None,
    created: datetime,
) -> list[Skipped]:
    """Unbuilt issues before ``latest`` whose send time fell after the previous tick: no tick
    ever saw them due, so they were missed while nothing ran. Oldest first."""
    if previous_tick is None:
        return []  # the first tick on this database has no history to look back on
    horizon = max(previous_tick, created)
    missed = []
    period = previous_issue(mlist, latest)
    for _ in range(MAX_MISSED):
        if period.send_at <= horizon:
            break
        if find_digest(db, mlist, period) is None:
            reason = (
                f"missed while no scheduler ran (due {_when(period)});"
                f" only the latest issue, {latest.label}, is sent"
            )
            missed.append(Skipped(mlist, latest.frequency, period, reason))
        period = previous_issue(mlist, period)
    return missed[::-1]


def _when(period: Period) -> str:
    local = period.send_at.astimezone(ZoneInfo(period.timezone))
    return f"{local:%Y-%m-%d %H:%M} {period.timezone}"


def _record(db: Database, skipped: list[Skipped], *, now: datetime) -> list[Skipped]:
    """Store the skips and the tick time; return the skips not recorded before (so each is
    logged once, however many ticks, or processes, see it)."""
    new = []
    stamp = to_iso(now)
    with db.atomic():
        for skip in skipped:
            cur = db.execute(
                "INSERT OR IGNORE INTO schedule_events (list_id, frequency, period_label, kind,"
                " detail, at) VALUES (?, ?, ?, 'skipped', ?, ?)",
                [skip.list.id, skip.frequency, skip.period.label, skip.reason, stamp],
            )
            if cur.rowcount:
                new.append(skip)
        db.execute(
            "INSERT INTO schedule_state (key, value) VALUES ('last_tick_at', ?)"
            " ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
            [stamp],
        )
    return new


# ---------------------------------------------------------------------------- doing it


def poll_feeds(
    db: Database, config: Config, *, now: datetime, log: logging.Logger = logger
) -> list[FeedReport]:
    """Fetch every registered feed once and log one line per feed."""
    reports = fetch_feeds(db, config, now=now)
    for r in reports:
        if r.status == "failed":
            log.warning(
                "feed %s failed: %s",
                r.url,
                r.error,
                extra={"event": "feed_failed", "feed": r.url, "error": r.error},
            )
        elif r.status == "not modified":
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
    return reports


def _log_built(log: logging.Logger, issue: DueIssue, result: BuiltDigest) -> None:
    fields = {
        "event": "built",
        "list": issue.list.slug,
        "frequency": issue.frequency,
        "period": issue.period.label,
        "digest_id": result.id,
        "articles": result.article_count,
        "variants": len(result.variants),
        "recipients": result.recipients,
    }
    if result.new and not result.article_count:
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
) -> TickReport:
    """Do what is due at ``now``: record and log skipped issues, fetch the registered feeds
    (only if something is about to be built), build each due issue, then send every delivery
    the ledger owes (new ones, and deferred ones whose retry time has come).

    ``clock`` is what the sender reads while it works (default: ``now`` throughout); ``stop``,
    once set, ends the tick after the work in hand (a build in progress completes; a send
    finishes only the messages already at the server). Errors of one digest or of the transport
    are logged and listed in ``TickReport.errors``; the rest of the tick goes on."""
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
    report.skipped = _record(db, skipped, now=now)
    for skip in report.skipped:
        log.warning(
            "skipped stale period %s: %s",
            skip.name,
            skip.reason,
            extra={
                "event": "skipped",
                "list": skip.list.slug,
                "frequency": skip.frequency,
                "period": skip.period.label,
                "reason": skip.reason,
            },
        )
    if not due:
        log.debug("tick at %s: nothing to build", to_iso(now), extra={"event": "tick"})

    if due and not stopping():
        # Once per tick, right before building, so articles published just before the send
        # time are in the digest.
        report.fetched = poll_feeds(db, config, now=now, log=log)
    for issue in due:
        if stopping():
            break
        try:
            result = build_digest(
                db, config, issue.list, issue.frequency, issue.period.issue_date, now=now
            )
        except DigestError as e:
            message = f"building {issue.name} failed: {e}"
            report.errors.append(message)
            log.error(message, extra={"event": "build_failed", "list": issue.list.slug})
            continue
        report.built.append(result)
        _log_built(log, issue, result)

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
            )
        except DigestError as e:
            message = f"sending failed: {e}"
            report.errors.append(message)
            log.error(message, extra={"event": "send_failed"})
        else:
            _log_sent(log, report.sent)
            if report.sent.stopped and stop is not None and stop.is_set():
                report.stopped = True
    return report


# ---------------------------------------------------------------------------- one per database


def lock_path(db_path: str | Path) -> Path:
    db_path = Path(db_path)
    return db_path.with_name(db_path.name + ".run.lock")


class RunLock:
    """An exclusive ``flock`` on ``<db>.run.lock`` holding the owner's pid. The kernel drops it
    when the process ends however it ends, so a crash never leaves a stale lock behind. The file
    itself is left in place: deleting it could let two processes lock two different files."""

    def __init__(self, db_path: str | Path):
        self.db_path = Path(db_path)
        self.path = lock_path(db_path)
        self.fd: int | None = None

    def acquire(self) -> RunLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise DigestError(f"{self.path}: cannot create the lock file ({e.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            who = f"pid {pid}" if pid else "pid unknown"
            raise SchedulerBusy(
                f"another `digest run` ({who}) is already running on {self.db_path}"
                f" (lock file {self.path}); stop that one first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def running_pid(db_path: str | Path) -> int | None:
    """The pid of the ``digest run`` holding the database's lock, or None if none runs."""
    try:
        fd = os.open(lock_path(db_path), os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd) or 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------- the loop


def run(
    db_path: str | Path,
    config: Config,
    *,
    secret: bytes,
    clock: Callable[[], datetime] = utc_now,
    stop_event: threading.Event,
    once: bool = False,
    transport: Transport | None = None,
    log: logging.Logger = logger,
    tick_seconds: float = 60,
    on_tick: Callable[[TickReport], None] | None = None,
) -> TickReport | None:
    """Hold the database's lock and tick until ``stop_event`` is set (or once, with ``once``;
    the tick's report is returned). ``clock`` gives each tick its ``now``; the ``schedule``
    library decides when ticks happen: every minute on the minute (or every ``tick_seconds``),
    and a feed poll every ``[schedule] poll_minutes``. Raises ``SchedulerBusy`` if another
    ``digest run`` holds the lock."""
    with RunLock(db_path):
        db = open_db(db_path)

        def one_tick() -> TickReport:
            return tick(
                db,
                config,
                now=clock(),
                secret=secret,
                transport=transport,
                clock=clock,
                stop=stop_event,
                log=log,
            )

        try:
            if once:
                report = one_tick()
                if on_tick is not None:
                    on_tick(report)
                return report
            _loop(db, config, one_tick, clock, stop_event, log, tick_seconds, on_tick)
            return None
        finally:
            db.close()


def _loop(db, config, one_tick, clock, stop_event, log, tick_seconds, on_tick) -> None:
    poll_minutes = config.get("schedule", "poll_minutes")
    log.info(
        "digest run started (pid %d): ticks every %s, feeds polled every %g min",
        os.getpid(),
        "minute" if tick_seconds == 60 else f"{tick_seconds:g} s",
        poll_minutes,
        extra={"event": "started", "pid": os.getpid()},
    )

    def do_tick() -> TickReport | None:
        try:
            report = one_tick()
        except sqlite3.OperationalError as e:
            # Typically "database is locked" for longer than the busy timeout: transient.
            log.warning("tick skipped: %s; trying again at the next tick", e)
            return None
        if on_tick is not None:
            on_tick(report)
        return report

    def do_poll() -> None:
        if stop_event.is_set():
            return
        try:
            poll_feeds(db, config, now=clock(), log=log)
        except sqlite3.OperationalError as e:
            log.warning("feed poll skipped: %s; trying again at the next poll", e)

    scheduler = schedule.Scheduler()
    if tick_seconds == 60:
        scheduler.every().minute.at(":00").do(do_tick)
    else:
        scheduler.every(tick_seconds).seconds.do(do_tick)
    scheduler.every(poll_minutes).minutes.do(do_poll)

    first = do_tick()
    if first is None or first.fetched is None:
        do_poll()
    while not stop_event.is_set():
        scheduler.run_pending()
        idle = scheduler.idle_seconds
        # Wake for the next job, for the stop event, and at least every 30 s in case the
        # wall clock was changed under the schedule library.
        stop_event.wait(min(max(idle if idle is not None else 30.0, 0.0), 30.0))
    log.info("digest run stopped", extra={"event": "stopped", "pid": os.getpid()})


# ---------------------------------------------------------------------------- digest status


@dataclass
class IssueStatus:
    frequency: str
    subscribers: int  # active
    last: dict | None  # the most recent digest: label, built_at, delivery counts by status
    next: Period  # the first issue whose send time is after now


@dataclass
class ListStatus:
    list: MailingList
    issues: list[IssueStatus]


@dataclass
class SchedulerStatus:
    now: datetime
    running_pid: int | None  # 0: running, pid unknown
    last_tick_at: datetime | None
    lists: list[ListStatus]
    queued: int
    deferred: int
    next_retry_at: datetime | None
    skipped: list[dict]  # the most recent skipped issues
    feed_errors: list[Feed]


def scheduler_status(
    db: Database, db_path: str | Path, *, now: datetime, recent: int = 10
) -> SchedulerStatus:
    lists = []
    for mlist in all_lists(db):
        issues = []
        for frequency in FREQUENCIES:
            count = db.execute(
                "SELECT count(*) FROM subscriptions WHERE list_id = ? AND frequency = ?"
                " AND status = 'active'",
                [mlist.id, frequency],
            ).fetchone()[0]
            last = db.execute(
                "SELECT id, period_label, built_at FROM digests WHERE list_id = ?"
                " AND frequency = ? ORDER BY period_start DESC LIMIT 1",
                [mlist.id, frequency],
            ).fetchone()
            last_info = None
            if last is not None:
                counts = dict(
                    db.execute(
                        "SELECT status, count(*) FROM deliveries WHERE digest_id = ?"
                        " GROUP BY status",
                        [last[0]],
                    ).fetchall()
                )
                last_info = {
                    "digest_id": last[0],
                    "period": last[1],
                    "built_at": from_iso(last[2]),
                    "deliveries": counts,
                }
            issues.append(
                IssueStatus(frequency, count, last_info, next_issue(mlist, frequency, now))
            )
        lists.append(ListStatus(mlist, issues))
    owed = dict(
        db.execute(
            "SELECT status, count(*) FROM deliveries WHERE status IN ('queued', 'deferred')"
            " GROUP BY status"
        ).fetchall()
    )
    retry = db.execute(
        "SELECT min(next_attempt_at) FROM deliveries WHERE status = 'deferred'"
    ).fetchone()[0]
    skipped = [
        {
            "list": row["slug"],
            "frequency": row["frequency"],
            "period": row["period_label"],
            "reason": row["detail"],
            "at": row["at"],
        }
        for row in db.query(
            "SELECT l.slug, e.frequency, e.period_label, e.detail, e.at FROM schedule_events e"
            " JOIN lists l ON l.id = e.list_id WHERE e.kind = 'skipped'"
            " ORDER BY e.at DESC, e.period_label DESC LIMIT ?",
            [recent],
        )
    ]
    return SchedulerStatus(
        now=now,
        running_pid=running_pid(db_path),
        last_tick_at=last_tick_at(db),
        lists=lists,
        queued=owed.get("queued", 0),
        deferred=owed.get("deferred", 0),
        next_retry_at=from_iso(retry) if retry else None,
        skipped=skipped,
        feed_errors=[f for f in list_feeds(db) if f.last_error],
    )


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, message and the record's ``extra`` fields
    (event, list, frequency, period, counts…)."""

    _STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self._STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)
