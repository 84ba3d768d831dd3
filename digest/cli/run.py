"""``digest run`` (the scheduler, or one tick of it) and ``digest status``: thin wrappers over
``digest.scheduler``."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

import click

from ..errors import InvalidInput
from ..scheduler.runner import JsonLogFormatter, run
from ..scheduler.status import SchedulerStatus, scheduler_status
from .app import App, cli, pass_app

LEVELS = ("debug", "info", "warning", "error")


def parse_now(value: str) -> datetime:
    """``--now``: an ISO 8601 instant; without an offset it is taken as UTC."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"--now {value!r}: expected an ISO 8601 time such as 2025-01-21T07:00:00Z"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _logger(log_json: bool, level: str) -> tuple[logging.Logger, logging.Handler]:
    log = logging.getLogger("digest.scheduler")
    handler = logging.StreamHandler(sys.stderr)
    if log_json:
        handler.setFormatter(JsonLogFormatter())
    else:
        text = logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%Y-%m-%dT%H:%M:%SZ")
        text.converter = time.gmtime
        handler.setFormatter(text)
    log.addHandler(handler)
    log.setLevel(level.upper())
    log.propagate = False
    return log, handler


class _Signals:
    """SIGTERM / SIGINT set the stop event (the run finishes the message in flight, records it
    and exits 0); a second Ctrl-C interrupts at once."""

    def __init__(self, stop: threading.Event):
        self.stop = stop
        self.received: str | None = None
        self.previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = signal.Signals(signum).name
        self.stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __enter__(self) -> _Signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


@cli.command("run")
@click.option("--once", is_flag=True, help="Do a single tick and exit (for cron).")
@click.option(
    "--now",
    "now_text",
    metavar="ISO",
    help="With --once: act as if it were this time (UTC unless an offset is given).",
)
@click.option("--log-json", is_flag=True, help="Log one JSON object per line.")
@click.option(
    "--log-level",
    type=click.Choice(LEVELS),
    default="info",
    show_default=True,
    help="Least important messages logged (debug also logs quiet ticks and unchanged feeds).",
)
@click.option(
    "--allow-insecure-links",
    is_flag=True,
    help="Send even though [site] base_url is plain http on a public host (links and one-click"
    " unsubscribe then go over http).",
)
@pass_app
def run_command(
    app: App,
    once: bool,
    now_text: str | None,
    log_json: bool,
    log_level: str,
    allow_insecure_links: bool,
) -> None:
    """Keep the newsletter going: poll feeds, and build and send each list's digests at its
    send time in its timezone; retry deferred deliveries when their backoff expires.

    Every minute a tick works out from the database what is due. After downtime, each list
    gets the latest missed issue (if not older than [schedule] max_lateness_*_hours); older
    ones are skipped and logged. One `digest run` per database; SIGTERM or Ctrl-C finishes the
    message in flight and exits 0. Logs go to stderr. With --once, the exit status is 1 if a
    build or the transport failed.

    \b
    Example:
      digest run
      digest run --log-json --log-level debug
      digest run --once                         # from cron, every minute
      digest run --once --now 2025-01-21T07:00:00Z
    """
    if now_text and not once:
        raise click.UsageError("--now only works with --once")
    now = parse_now(now_text) if now_text else None
    config = app.config
    secret = app.secret
    log, handler = _logger(log_json, log_level)
    stop = threading.Event()
    try:
        with _Signals(stop) as signals:
            report = run(
                app.db_path,
                config,
                secret=secret,
                clock=(lambda: now) if now else app.now,
                stop_event=stop,
                once=once,
                allow_insecure_links=allow_insecure_links,
                log=log,
            )
            if signals.received:
                log.info(
                    "received %s: stopped after the work in hand",
                    signals.received,
                    extra={"event": "signal", "signal": signals.received},
                )
    finally:
        log.removeHandler(handler)
    if report is not None and not report.ok:
        sys.exit(1)


def _utc(dt: datetime) -> str:
    return f"{dt.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _local(dt: datetime, zone: ZoneInfo) -> str:
    local = dt.astimezone(zone)
    return f"{local:%a %Y-%m-%d %H:%M} {local.tzname()}"


def _status_json(s: SchedulerStatus) -> dict:
    def t(v: datetime | None) -> str | None:
        return v.astimezone(UTC).isoformat() if v else None

    return {
        "now": t(s.now),
        "running_pid": s.running_pid,
        "last_tick_at": t(s.last_tick_at),
        "lists": [
            {
                "list": ls.mailing_list.slug,
                "timezone": ls.mailing_list.timezone,
                "send_time": ls.mailing_list.send_time,
                "weekly_day": ls.mailing_list.weekly_day,
                "issues": [
                    {
                        "frequency": i.frequency,
                        "active_subscribers": i.subscribers,
                        "last": None
                        if i.last is None
                        else {**i.last, "built_at": t(i.last["built_at"])},
                        "next": {
                            "period": i.next.label,
                            "send_at": t(i.next.send_at),
                            "send_at_local": i.next.send_at.astimezone(
                                ls.mailing_list.zone
                            ).isoformat(),
                        },
                    }
                    for i in ls.issues
                ],
            }
            for ls in s.lists
        ],
        "deliveries": {
            "queued": s.queued,
            "deferred": s.deferred,
            "next_retry_at": t(s.next_retry_at),
        },
        "skipped": s.skipped,
        "feed_errors": [
            {"url": f.url, "error": f.last_error, "at": t(f.last_error_at)} for f in s.feed_errors
        ],
    }


@cli.command()
@click.option(
    "--now", "now_text", metavar="ISO", help="Show the schedule as of this time (default: now)."
)
@click.option("--json", "as_json", is_flag=True, help="Output JSON.")
@pass_app
def status(app: App, now_text: str | None, as_json: bool) -> None:
    """Show the scheduler's view: whether `digest run` is running, each list's last and next
    digest per frequency (list-local time and UTC), deliveries still owed, recently skipped
    issues and the feeds whose last poll failed.

    \b
    Example:
      digest status
      digest status --json
    """
    now = parse_now(now_text) if now_text else app.now()
    s = scheduler_status(app.db, app.db_path, now=now)
    if as_json:
        click.echo(json.dumps(_status_json(s), indent=2, ensure_ascii=False))
        return
    if s.running_pid is None:
        running = "not running"
    else:
        running = f"running (pid {s.running_pid or 'unknown'})"
    last_tick = _utc(s.last_tick_at) if s.last_tick_at else "never"
    click.echo(f"digest run: {running}; last tick {last_tick}")
    if not s.lists:
        click.echo("no lists (create one with `digest lists create`)")
    for ls in s.lists:
        m = ls.mailing_list
        click.echo(f"{m.slug} ({m.timezone}, sent {m.send_time}; weekly on {m.weekly_day}s)")
        for i in ls.issues:
            people = f"{i.subscribers} active subscriber{'s' if i.subscribers != 1 else ''}"
            click.echo(f"  {i.frequency:<7} {people}")
            if i.last:
                counts = ", ".join(f"{n} {k}" for k, n in sorted(i.last["deliveries"].items()))
                click.echo(
                    f"    last  {i.last['period']} (digest {i.last['digest_id']}, built"
                    f" {_utc(i.last['built_at'])}; {counts or 'no deliveries'})"
                )
            else:
                click.echo("    last  none built yet")
            when = f"{_local(i.next.send_at, m.zone)} = {_utc(i.next.send_at)}"
            idle = "" if i.subscribers else " (not built without active subscribers)"
            click.echo(f"    next  {i.next.label} at {when}{idle}")
    retry = f" (next retry {_utc(s.next_retry_at)})" if s.next_retry_at else ""
    click.echo(f"deliveries owed: {s.queued} queued, {s.deferred} deferred{retry}")
    if s.skipped:
        click.echo("recently skipped:")
        for k in s.skipped:
            click.echo(f"  {k['list']}/{k['frequency']}/{k['period']}: {k['reason']}")
    if s.feed_errors:
        click.echo("feed errors:")
        for f in s.feed_errors:
            at = _utc(f.last_error_at) if f.last_error_at else "?"
            click.echo(f"  {f.url}: {f.last_error} ({at})")
