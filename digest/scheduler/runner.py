"""The loop behind ``digest run``: hold a per-database lock file and drive ticks, feed polls and
(with ``[bounces] poll_minutes``) bounce-mailbox reads with the ``schedule`` library until the
stop event is set (SIGTERM / SIGINT in the CLI). One tick or poll that fails (a locked database,
an unreachable mailbox) is logged and the next one runs as usual."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import schedule
from sqlite_utils import Database

from ..config import Config
from ..delivery.transports import Transport
from ..errors import DigestError, describe_error
from ..feedback.process import CHANGES, Effect, MailboxReport, process_configured_mailbox
from ..store import open_db
from ..timeutil import utc_now
from .tick import TickReport, logger, poll_feeds, tick


class SchedulerBusy(DigestError):
    """Another ``digest run`` holds the database's lock file."""


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

    def __exit__(self, *exc: object) -> None:
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
    allow_insecure_links: bool = False,
) -> TickReport | None:
    """Hold the database's lock and tick until ``stop_event`` is set (or once, with ``once``;
    the tick's report is returned). ``clock`` gives each tick its ``now``; the ``schedule``
    library decides when ticks happen: every minute on the minute (or every ``tick_seconds``),
    and a feed poll every ``[schedule] poll_minutes``. Raises ``SchedulerBusy`` if another
    ``digest run`` holds the lock."""
    with RunLock(db_path):
        db = open_db(db_path)
        # Failures already logged by this run: one that repeats every tick is logged once.
        logged: set[str] = set()

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
                logged=logged,
                allow_insecure_links=allow_insecure_links,
            )

        def read_bounces() -> MailboxReport:
            return process_configured_mailbox(db, config, secret=secret, clock=clock)

        try:
            if once:
                report = one_tick()
                if on_tick is not None:
                    on_tick(report)
                return report
            _loop(db, config, one_tick, clock, stop_event, log, tick_seconds, on_tick, logged,
                  read_bounces)  # fmt: skip
            return None
        finally:
            db.close()


def _loop(
    db: Database,
    config: Config,
    one_tick: Callable[[], TickReport],
    clock: Callable[[], datetime],
    stop_event: threading.Event,
    log: logging.Logger,
    tick_seconds: float,
    on_tick: Callable[[TickReport], None] | None,
    logged: set[str],
    read_bounces: Callable[[], MailboxReport] | None = None,
) -> None:
    poll_minutes = config.schedule.poll_minutes
    bounce_minutes = config.bounces.poll_minutes
    reads_bounces = read_bounces is not None and bool(bounce_minutes)
    log.info(
        "digest run started (pid %d): ticks every %s, feeds polled every %g min%s",
        os.getpid(),
        "minute" if tick_seconds == 60 else f"{tick_seconds:g} s",
        poll_minutes,
        f", bounce mailbox read every {bounce_minutes:g} min" if reads_bounces else "",
        extra={"event": "started", "pid": os.getpid()},
    )

    def do_tick() -> TickReport | None:
        try:
            report = one_tick()
        except sqlite3.OperationalError as e:
            # Typically "database is locked" for longer than the busy timeout: transient.
            log.warning("tick skipped: %s; trying again at the next tick", e)
            return None
        except Exception as e:  # noqa: BLE001 - `digest run` keeps ticking after anything
            message = f"tick failed: {describe_error(e)}; trying again at the next tick"
            if message not in logged:
                logged.add(message)
                log.error(message, extra={"event": "tick_failed"})
                log.debug("traceback of: %s", message, exc_info=e)
            return None
        if on_tick is not None:
            on_tick(report)
        return report

    def do_poll() -> None:
        if stop_event.is_set():
            return
        try:
            poll_feeds(db, config, now=clock(), stop=stop_event, log=log)
        except sqlite3.OperationalError as e:
            log.warning("feed poll skipped: %s; trying again at the next poll", e)
        except Exception as e:  # noqa: BLE001 - contained like a tick
            message = f"feed poll failed: {describe_error(e)}; trying again at the next poll"
            if message not in logged:
                logged.add(message)
                log.error(message, extra={"event": "poll_failed"})

    scheduler = schedule.Scheduler()
    if tick_seconds == 60:
        scheduler.every().minute.at(":00").do(do_tick)
    else:
        # schedule takes fractional intervals (it builds a timedelta); its hint says int.
        scheduler.every(tick_seconds).seconds.do(do_tick)  # type: ignore[arg-type]
    scheduler.every(poll_minutes).minutes.do(do_poll)  # type: ignore[arg-type]  # as above

    def do_bounces() -> None:
        assert read_bounces is not None
        if stop_event.is_set():
            return
        try:
            report = read_bounces()
        except sqlite3.OperationalError as e:
            log.warning("bounce mailbox skipped: %s; trying again at the next poll", e)
            return
        except Exception as e:  # noqa: BLE001 - contained like a feed poll
            message = f"bounce mailbox failed: {describe_error(e)}; trying again at the next poll"
            if message not in logged:
                logged.add(message)
                log.error(message, extra={"event": "bounces_failed"})
            return
        _log_bounces(report, log, logged)

    if reads_bounces:
        # config.py refuses poll_minutes without a mailbox: there is one to read.
        scheduler.every(bounce_minutes).minutes.do(do_bounces)  # type: ignore[arg-type]

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


def _log_bounces(report: MailboxReport, log: logging.Logger, logged: set[str]) -> None:
    """One line per change, one per message left unread (once per run: it stays there), and
    the totals when anything was read."""
    for r in report.results:
        if r.effect in CHANGES or r.effect is Effect.COUNTED:
            log.info(r.line, extra={"event": "bounce", "effect": r.effect.value, "email": r.email})
        elif r.effect is Effect.UNUSABLE and f"bounce left {r.key}" not in logged:
            logged.add(f"bounce left {r.key}")
            log.warning(
                "bounce mailbox: left %s: %s", r.key, r.line, extra={"event": "bounce_left"}
            )
    if report.results:
        log.info("bounce mailbox: %s", report.summary(), extra={"event": "bounces"})
    if report.stopped:
        message = f"bounce mailbox stopped: {report.stopped}"
        if message not in logged:
            logged.add(message)
            log.error(message, extra={"event": "bounces_failed"})


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
