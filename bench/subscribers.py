"""Benchmark for subscriber import and listing (issue 3). Not part of the test suite.

Writes a 100,000-row subscriber CSV, then measures:
- the rate of a bare sqlite-utils ``insert_all`` of the same rows (already parsed into dicts,
  into a WAL database like ours: the baseline, timed around ``insert_all`` alone);
- the rate of ``digest subscribers import`` (the library call: read, validate, apply);
- the time until ``digest subscribers list --list L`` (a real subprocess) prints its first
  line, on those 100,000 subscribers.

Usage: python bench/subscribers.py [--rows N] [--repeat N] [--json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlite_utils import Database

from digest.csvfiles import import_csv
from digest.lists import create_list
from digest.store import open_db

NOW = datetime(2025, 1, 21, 7, 0, tzinfo=UTC)
TAGS = ["Africa", "Europe", "Asia", "Americas", "Oceania"]


def write_csv(path: Path, rows: int) -> None:
    rng = random.Random(3)
    first = ["Ann", "Bob", "Chidi", "Dana", "Élodie", "Farah", "Gustav", "Hana", "Ivan", "Jo"]
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["email", "name", "tags", "frequency"])
        for i in range(rows):
            name = f"{rng.choice(first)} {rng.choice(first)}son"
            local = f"{name.split()[0].lower()}.{i}" if rng.random() < 0.9 else f"User+{i}"
            domain = f"mail{i % 997}.example.{rng.choice(['com', 'org', 'net'])}"
            if rng.random() < 0.05:
                domain = domain.upper()
            local = local.replace("é", "e")
            tags = ";".join(rng.sample(TAGS, rng.randint(0, 2)))
            w.writerow([f"{local}@{domain}", name, tags, rng.choice(["daily", "weekly"])])


def bench_insert_all(path: Path, db_path: Path) -> float:
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    conn_db = Database(db_path)
    conn_db.execute("PRAGMA journal_mode=WAL")
    conn_db.execute("PRAGMA synchronous=NORMAL")
    start = time.perf_counter()
    conn_db["subscribers"].insert_all(rows)
    elapsed = time.perf_counter() - start
    assert conn_db["subscribers"].count == len(rows)
    conn_db.close()
    return len(rows) / elapsed


def bench_import(path: Path, db_path: Path, rows: int) -> tuple[float, float]:
    db = open_db(db_path)
    create_list(
        db, "bench", title="Bench", from_addr="Bench <bench@example.com>", tags=TAGS, now=NOW
    )
    start = time.perf_counter()
    report = import_csv(db, path, "bench", now=NOW, confirmed=True)
    elapsed = time.perf_counter() - start
    assert len(report.added) == rows and not report.rejected, report.summary()
    start = time.perf_counter()
    again = import_csv(db, path, "bench", now=NOW, confirmed=True)
    again_elapsed = time.perf_counter() - start
    assert again.unchanged == rows, again.summary()
    db.close()
    return rows / elapsed, rows / again_elapsed


def bench_first_line(db_path: Path) -> tuple[float, float]:
    env = dict(os.environ, DIGEST_SECRET="bench")
    start = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "digest",
            "--db",
            str(db_path),
            "subscribers",
            "list",
            "--list",
            "bench",
        ],
        stdout=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    first_at = time.perf_counter() - start
    assert b"@" in first, first
    lines = 1 + sum(1 for _ in proc.stdout)
    proc.wait()
    total = time.perf_counter() - start
    assert proc.returncode == 0 and lines > 0
    return first_at, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5, help="interleaved runs of each")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        csv_path = tmp_path / "people.csv"
        write_csv(csv_path, args.rows)
        # --repeat runs each, alternating, so that a busy moment on a shared machine hits both
        # sides alike; the ratio is taken per round (the two runs next to each other).
        baselines, rates, agains = [], [], []
        for i in range(args.repeat):
            baselines.append(bench_insert_all(csv_path, tmp_path / f"baseline{i}.db"))
            rate, again = bench_import(csv_path, tmp_path / f"digest{i}.db", args.rows)
            rates.append(rate)
            agains.append(again)
        first, total = bench_first_line(tmp_path / "digest0.db")
    med = statistics.median
    ratios = [r / b for r, b in zip(rates, baselines, strict=True)]
    ratio = med(ratios)
    best = max(rates) / max(baselines)

    def runs(values: list[float]) -> str:
        return f"{med(values):,.0f} rows/s (runs {min(values):,.0f}–{max(values):,.0f})"

    table = [
        ("sqlite-utils insert_all (baseline)", runs(baselines), "-", ""),
        ("subscribers import", runs(rates), ">= 1/3 of baseline", ""),
        (
            "import / insert_all (median of per-round ratios)",
            f"{ratio:.2f} (runs {min(ratios):.2f}–{max(ratios):.2f})",
            ">= 0.33",
            "PASS" if ratio >= 1 / 3 else "FAIL",
        ),
        ("  best import / best insert_all", f"{best:.2f}", "", ""),
        ("re-import, nothing changes", runs(agains), "-", ""),
        (
            "subscribers list: first line",
            f"{first:.3f} s",
            "< 1 s",
            "PASS" if first < 1 else "FAIL",
        ),
        ("subscribers list: all rows", f"{total:.3f} s", "-", ""),
    ]
    if args.json:
        key = {"subscribers import"}  # shown in bench/run.py's summary besides the verdicts
        results = [
            {"measure": m, "value": v, "target": t, "result": r or None, "key": m in key}
            for m, v, t, r in table
        ]
        settings = {"rows": args.rows, "repeat": args.repeat}
        print(json.dumps({"benchmark": "subscribers", "settings": settings, "rows": results}))
        return
    print(
        f"digest subscribers benchmark: {args.rows:,} rows, median of {args.repeat} interleaved runs, "
        f"Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}"
    )
    widths = [
        max(len(r[i]) for r in [("measure", "result", "target", "")] + table) for i in range(4)
    ]
    header = ("measure", "result", "target", "")
    for row in [header, tuple("-" * w for w in widths), *table]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


if __name__ == "__main__":
    main()
