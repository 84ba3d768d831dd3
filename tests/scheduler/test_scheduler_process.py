"""Real ``digest run`` processes: the one-per-database lock, SIGTERM while sending to a real
aiosmtpd server, and ``send_pending``'s stop event. Synchronisation is by events from the
servers and by lines the process logs, never by sleeping."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import SmtpHandler

from digest.config import load_config
from digest.delivery.send import send_pending
from digest.delivery.transports import transport_from_config
from digest.scheduler.runner import RunLock, SchedulerBusy, run, running_pid
from digest.scheduler.tick import TickReport


def _env(tmp_path: Path, smtp_url: str | None = None) -> dict[str, str]:
    config = tmp_path / "digest.toml"
    config.write_text("[send]\nconcurrency = 2\nclaim_batch = 5\ntimeout = 10\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env.update(DIGEST_SECRET="test-secret", DIGEST_CONFIG=str(config))
    if smtp_url:
        env["DIGEST_SMTP_URL"] = smtp_url
    return env


def _start(tmp_path, db_path, *args, smtp_url=None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "digest", "--db", str(db_path), "run", *args],
        cwd=tmp_path,
        env=_env(tmp_path, smtp_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class Lines:
    """Reads a process's stderr in a thread; ``wait_for(text)`` returns the first line
    containing ``text`` (or fails after a generous timeout)."""

    def __init__(self, proc: subprocess.Popen):
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []

        def read():
            for line in proc.stderr:
                self.lines.put(line.rstrip("\n"))
            self.lines.put(None)

        threading.Thread(target=read, daemon=True).start()

    def wait_for(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            if line is None:
                raise AssertionError(f"process ended before logging {text!r}: {self.seen}")
            self.seen.append(line)
            if text in line:
                return line

    def rest(self, timeout: float = 60) -> list[str]:
        out = []
        while (line := self.lines.get(timeout=timeout)) is not None:
            out.append(line)
        self.seen += out
        return out


def test_a_second_digest_run_is_refused_naming_the_holder(db, db_path, tmp_path):
    first = _start(tmp_path, db_path)
    lines = Lines(first)
    try:
        started = lines.wait_for("digest run started")
        assert f"(pid {first.pid})" in started
        assert running_pid(db_path) == first.pid

        second = _start(tmp_path, db_path, "--once")
        out, err = second.communicate(timeout=60)
        assert second.returncode == 1 and out == ""
        assert err == (
            f"Error: another `digest run` (pid {first.pid}) is already running on {db_path}"
            f" (lock file {db_path}.run.lock); stop that one first\n"
        )
        # The same from a library caller in this process.
        with pytest.raises(SchedulerBusy, match=f"pid {first.pid}"):
            RunLock(db_path).acquire()
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(60)
    assert first.returncode == 0
    assert any("received SIGTERM" in line for line in lines.rest())
    # Released on exit: the next one gets the lock.
    assert running_pid(db_path) is None
    with RunLock(db_path):
        assert running_pid(db_path) == os.getpid()


def test_sigterm_while_sending_finishes_the_message_in_flight_and_exits_0(
    db, db_path, newsletter, smtp_server, tmp_path
):
    proc_box: list[subprocess.Popen] = []
    signalled: list[float] = []
    lock = threading.Lock()

    def hold(item):  # the server has stored the 10th message and not yet answered
        with lock:
            # ">=": with two connections, two messages can be stored before either hold runs.
            if len(server.handler.received) >= 10 and not signalled:
                signalled.append(time.monotonic())
                proc_box[0].send_signal(signal.SIGTERM)

    server = smtp_server(SmtpHandler(hold=hold))
    newsletter.make(40)
    proc = _start(tmp_path, db_path, smtp_url=server.url())
    proc_box.append(proc)
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # never signalled: do not leave a scheduler running
            proc.kill()
            proc.wait(30)
    exited = time.monotonic()

    assert proc.returncode == 0, err
    assert signalled and exited - signalled[0] < 10, err  # "within a few seconds"
    assert "received SIGTERM: stopped after the work in hand" in err
    assert "Traceback" not in err

    # Everything the server accepted is recorded as sent, once; the rest is still owed and
    # free for the next run (no leases held).
    rows = {r["email"]: r for r in db.query("SELECT * FROM deliveries")}
    received = server.handler.recipients()
    sent = {e for e, r in rows.items() if r["status"] == "sent"}
    assert 10 <= len(received) < 40
    assert sorted(received) == sorted(sent)
    assert {r["status"] for e, r in rows.items() if e not in sent} == {"queued"}
    assert all(r["lease_owner"] is None for r in rows.values())

    # The next run sends the rest, and nobody gets anything twice.
    again = _start(tmp_path, db_path, "--once", smtp_url=server.url())
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert sorted(server.handler.recipients()) == sorted(rows)
    assert db.execute("SELECT DISTINCT status FROM deliveries").fetchall() == [("sent",)]


def test_send_pending_stop_event_finishes_the_message_in_flight(db, newsletter, smtp_server):
    stop = threading.Event()

    def hold(item):
        if len(server.handler.received) >= 3:
            stop.set()

    server = smtp_server(SmtpHandler(hold=hold))
    newsletter.make(10)
    config = load_config(None, env={})
    report = send_pending(
        db,
        config,
        secret=b"test-secret",
        clock=lambda: datetime(2025, 1, 21, 7, tzinfo=UTC),
        transport=transport_from_config(config, smtp_url=server.url()),
        concurrency=1,
        stop=stop,
    )
    assert (report.sent, report.stopped) == (3, "asked to stop; the rest wait for the next run")
    assert len(server.handler.received) == 3
    counts = dict(db.execute("SELECT status, count(*) FROM deliveries GROUP BY status"))
    assert counts == {"sent": 3, "queued": 7}
    assert (
        db.execute("SELECT count(*) FROM deliveries WHERE lease_owner IS NOT NULL").fetchone()[0]
        == 0
    )

    # A stop already set: nothing is sent, nothing stays leased.
    report = send_pending(
        db,
        config,
        secret=b"test-secret",
        clock=lambda: datetime(2025, 1, 21, 7, tzinfo=UTC),
        transport=transport_from_config(config, smtp_url=server.url()),
        stop=stop,
    )
    assert report.sent == 0 and len(server.handler.received) == 3


def test_run_loop_ticks_with_the_injected_clock_until_stopped(db, db_path, newsroom, smtp_server):
    """``run`` in a thread: its first tick uses the injected clock; further ticks come from the
    ``schedule`` library (every 0.05 s here) with the clock advanced an hour per tick."""
    server = smtp_server()
    world = newsroom.add_list("world", tags=("Kenya",), timezone="Africa/Nairobi")
    newsroom.subscribe(world, "ann@example.com")
    newsroom.add_article("Monday", datetime(2025, 1, 20, 9, tzinfo=UTC), tags=["Kenya"])
    newsroom.add_article("Tuesday", datetime(2025, 1, 21, 9, tzinfo=UTC), tags=["Kenya"])
    config = load_config(None, env={"DIGEST_SMTP_URL": server.url()})

    stop = threading.Event()
    reports: list[TickReport] = []
    now = [datetime(2025, 1, 21, 4, tzinfo=UTC)]

    def clock():
        return now[0]

    def on_tick(report):
        reports.append(report)
        now[0] += timedelta(hours=1)
        if len(reports) == 30:
            stop.set()

    errors = []

    def target():
        try:
            run(
                db_path,
                config,
                secret=b"test-secret",
                clock=clock,
                stop_event=stop,
                tick_seconds=0.05,
                on_tick=on_tick,
            )
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(120)
    assert not thread.is_alive() and not errors
    built = [(r.now.hour, b.period.label) for r in reports for b in r.built]
    # 07:00 EAT is 04:00 UTC: the tick at 04:00 of each day builds that day's issue.
    assert built == [(4, "2025-01-21"), (4, "2025-01-22")]
    assert sorted(server.handler.recipients()) == ["ann@example.com"] * 2
    assert running_pid(db_path) is None
