"""`digest run` reads the bounce mailbox of [bounces] every poll_minutes, beside its ticks: a
bounce dropped into the Maildir while it runs takes effect; a mailbox that cannot be read is
logged once and the scheduler goes on ticking."""

from __future__ import annotations

import logging
import mailbox
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from bounce_world import SECRET, build_world

from digest.audience.subscriptions import subscriber_history
from digest.config import load_config
from digest.scheduler.runner import run
from digest.store import open_db

DATA = Path(__file__).parents[1] / "data" / "bounces"
NOW = datetime(2025, 1, 21, 12, 0, tzinfo=UTC)


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.getMessage()}")


def run_until(db_path: Path, config_text: str, tmp_path: Path, done, ticks: list[int]) -> Records:
    path = tmp_path / "digest.toml"
    path.write_text(config_text, encoding="utf-8")
    config = load_config(path, env={})
    log = logging.getLogger(f"test-bounce-polling-{id(path)}")
    log.propagate = False
    log.setLevel(logging.INFO)
    records = Records()
    log.addHandler(records)
    stop = threading.Event()

    def on_tick(report) -> None:
        ticks.append(1)
        if done():
            stop.set()

    thread = threading.Thread(
        target=run,
        args=(db_path, config),
        kwargs={
            "secret": SECRET,
            "clock": lambda: NOW,
            "stop_event": stop,
            "log": log,
            "tick_seconds": 0.05,
            "on_tick": on_tick,
        },  # fmt: skip
    )
    thread.start()
    thread.join(60)
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    return records


def test_the_scheduler_reads_the_bounce_mailbox(db, db_path, tmp_path) -> None:
    build_world(db)
    maildir = tmp_path / "Maildir"
    box = mailbox.Maildir(maildir, create=True)
    box.add((DATA / "postfix-hard-user-unknown.eml").read_bytes())
    box.add((DATA / "ooo-subject-only.eml").read_bytes())
    config = f'[bounces]\npoll_minutes = 0.005\nmaildir = "{maildir}"\ndone = "delete"\n'

    def alice_bounced() -> bool:
        # Asked from the scheduler's thread: a connection of its own.
        other = open_db(db_path)
        try:
            return subscriber_history(other, "alice@example.com").suppression is not None
        finally:
            other.close()

    ticks: list[int] = []
    records = run_until(db_path, config, tmp_path, alice_bounced, ticks)
    assert alice_bounced()
    assert "bounce mailbox read every 0.005 min" in records.lines[0]
    assert "INFO alice@example.com: bounced and suppressed: 5.1.1 smtp; 550 5.1.1" in "\n".join(
        records.lines
    )
    assert "INFO bounce mailbox: 2 messages: 1 bounced, 1 ignored" in records.lines
    assert list(box.keys()) == []  # done = "delete"


def test_a_mailbox_that_cannot_be_read_is_logged_once_and_ticks_go_on(
    db, db_path, tmp_path
) -> None:
    build_world(db)
    (tmp_path / "not-a-maildir").mkdir()
    config = f'[bounces]\npoll_minutes = 0.002\nmaildir = "{tmp_path / "not-a-maildir"}"\n'
    ticks: list[int] = []
    started = time.monotonic()
    records = run_until(db_path, config, tmp_path, lambda: time.monotonic() - started > 1.5, ticks)
    failures = [line for line in records.lines if "bounce mailbox failed" in line]
    assert failures == [
        f"ERROR bounce mailbox failed: {tmp_path / 'not-a-maildir'} is not a Maildir (no cur/, "
        "new/, tmp/ inside); trying again at the next poll"
    ]
    assert len(ticks) > 5
