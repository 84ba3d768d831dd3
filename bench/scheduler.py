"""Benchmark: what the scheduler's tick costs when it has nothing to do (it runs every minute).

A. A quiet tick — every list's latest issues already built, nothing owed — on stores with 1, 10
   and 100 lists, each with 1,000 active daily and 200 weekly subscribers, and one sent delivery
   per daily subscriber and day for the last 7 days plus the weekly issue (up to 720,000
   delivery rows). Target: a quiet tick takes under 1% of the minute between ticks (600 ms),
   on the largest store.
B. The first tick after 30 days of downtime on the 100-list store: it records and logs every
   missed issue (29 daily + 4 weekly per list) and builds nothing (the latest issues exist).
   Reported for information (it happens once), with the number of issues recorded.

Usage: python bench/scheduler.py [--quick]
"""

from __future__ import annotations

import json
import logging
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from digest.audience.lists import all_lists
from digest.audience.records import FREQUENCIES
from digest.config import load_config
from digest.issues.periods import latest_due, previous_issue
from digest.scheduler.tick import tick
from digest.store import open_db
from digest.timeutil import to_iso

NOW = datetime(2025, 1, 21, 5, 0, tzinfo=UTC)
STAMP = to_iso(NOW - timedelta(days=60))
TARGET_MS = 600.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def make_db(path: Path, lists: int, daily: int, weekly: int, days: int) -> None:
    db = open_db(path, create=True)
    zones = ["Africa/Nairobi", "America/New_York", "Europe/Paris", "Asia/Tokyo", "UTC"]
    with db.atomic():
        for n in range(lists):
            db["lists"].insert(
                {
                    "slug": f"list-{n}",
                    "title": f"List {n}",
                    "from_addr": "Desk <news@example.com>",
                    "tags": json.dumps(["Kenya"]),
                    "timezone": zones[n % len(zones)],
                    "send_time": "07:00",
                    "weekly_day": "monday",
                    "created_at": STAMP,
                    "updated_at": STAMP,
                }
            )
        db.conn.executemany(
            "INSERT INTO subscribers (id, email, created_at) VALUES (?, ?, ?)",
            [(i, f"p{i}@example.com", STAMP) for i in range(1, daily + weekly + 1)],
        )
        for mlist in all_lists(db):
            db.conn.executemany(
                "INSERT INTO subscriptions (subscriber_id, list_id, frequency, status,"
                " created_at, updated_at) VALUES (?, ?, ?, 'active', ?, ?)",
                [
                    (i, mlist.id, "daily" if i <= daily else "weekly", STAMP, STAMP)
                    for i in range(1, daily + weekly + 1)
                ],
            )
            # The latest issue of each frequency and the days before it, already built and sent.
            for frequency in FREQUENCIES:
                period = latest_due(mlist, frequency, NOW)
                for _ in range(days if frequency == "daily" else 1):
                    digest_id = db.execute(
                        "INSERT INTO digests (list_id, frequency, period_start, period_end,"
                        " period_label, built_at) VALUES (?, ?, ?, ?, ?, ?)",
                        [
                            mlist.id,
                            frequency,
                            to_iso(period.start),
                            to_iso(period.end),
                            period.label,
                            to_iso(period.send_at),
                        ],
                    ).lastrowid
                    variant_id = db.execute(
                        "INSERT INTO variants (digest_id, tags_key, subject, article_count)"
                        " VALUES (?, '', 's', 1)",
                        [digest_id],
                    ).lastrowid
                    sent = to_iso(period.send_at)
                    people = (
                        range(1, daily + 1)
                        if frequency == "daily"
                        else range(daily + 1, daily + weekly + 1)
                    )
                    db.conn.executemany(
                        "INSERT INTO deliveries (digest_id, variant_id, subscriber_id, email,"
                        " status, attempts, created_at, updated_at, sent_at)"
                        " VALUES (?, ?, ?, ?, 'sent', 1, ?, ?, ?)",
                        [
                            (digest_id, variant_id, i, f"p{i}@example.com", sent, sent, sent)
                            for i in people
                        ],
                    )
                    period = previous_issue(mlist, period)
    db.close()


def quiet_ticks(path: Path, rounds: int) -> list[float]:
    db = open_db(path, create=True)
    config = load_config(None, env={})
    quiet = logging.getLogger("bench.quiet")
    quiet.disabled = True
    times = []
    for i in range(rounds):
        now = NOW + timedelta(seconds=60 * (i + 1))
        started = time.perf_counter()
        report = tick(db, config, now=now, secret=b"bench", log=quiet)
        times.append(time.perf_counter() - started)
        assert not report.built and not report.skipped and report.sent.total == 0, report
    db.close()
    return times


def downtime_tick(path: Path) -> tuple[float, int]:
    """A store where only the latest issues exist and the previous tick was 30 days ago."""
    db = open_db(path, create=True)
    config = load_config(None, env={})
    quiet = logging.getLogger("bench.quiet")
    quiet.disabled = True
    db.execute(
        "INSERT INTO schedule_state (key, value) VALUES ('last_tick_at', ?)",
        [to_iso(NOW - timedelta(days=30))],
    )
    started = time.perf_counter()
    report = tick(db, config, now=NOW, secret=b"bench", log=quiet)
    elapsed = time.perf_counter() - started
    db.close()
    return elapsed, len(report.skipped)


def main() -> None:
    quick = "--quick" in sys.argv
    sizes = [1, 10] if quick else [1, 10, 100]
    rounds = 5 if quick else 20
    days = 7
    tmp = Path(tempfile.mkdtemp(prefix="digest-bench-"))
    rows = []
    try:
        for lists in sizes:
            path = tmp / f"lists-{lists}.db"
            log(f"building a store with {lists} lists …")
            make_db(path, lists, 1000, 200, days)
            times = quiet_ticks(path, rounds)
            deliveries = lists * (1000 * days + 200)
            rows.append((lists, deliveries, statistics.median(times), max(times)))
        log("first tick after 30 days down …")
        path = tmp / "downtime.db"
        make_db(path, sizes[-1], 1000, 200, 1)
        down, recorded = downtime_tick(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(
        "A. quiet tick (nothing due, nothing owed); target: under "
        f"{TARGET_MS:.0f} ms on the largest store"
    )
    print(f"{'lists':>6} {'subscriptions':>14} {'deliveries':>11} {'median ms':>10} {'max ms':>8}")
    for lists, deliveries, median, worst in rows:
        print(
            f"{lists:>6} {lists * 1200:>14,} {deliveries:>11,} {median * 1000:>10.1f}"
            f" {worst * 1000:>8.1f}"
        )
    largest = rows[-1][2] * 1000
    verdict = "meets" if largest < TARGET_MS else "MISSES"
    print(
        f"largest store: {largest:.1f} ms per quiet tick ({verdict} the {TARGET_MS:.0f} ms target)"
    )
    print()
    print(
        f"B. first tick after 30 days down, {sizes[-1]} lists: {down * 1000:.0f} ms,"
        f" {recorded:,} missed issues recorded and logged"
    )


if __name__ == "__main__":
    main()
