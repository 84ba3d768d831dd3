"""Benchmark for subscriber import and listing (issue 3). Not part of the test suite.

Writes a 100,000-row subscriber CSV, then measures, each round on fresh WAL databases:
- a bare sqlite-utils ``insert_all`` of the same rows (the baseline): the file read with
  ``csv.DictReader`` (the same four columns, as strings), then ``insert_all`` of those dicts;
- ``digest subscribers import`` of the same file (the library calls: ``parse_csv`` reads and
  validates, ``apply_rows`` writes subscribers, subscriptions and status events).
Both sides are timed in two parts, reading the file and writing the rows, so the table compares
like with like twice: both from the CSV file (read + write; the target) and both from parsed
rows (write alone). It also shows the time until ``digest subscribers list --list L`` (a real
subprocess) prints its first line, on those 100,000 subscribers.

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

from digest.audience.csvfiles import apply_rows, import_csv, parse_csv
from digest.audience.lists import create_list, get_list
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


def bench_insert_all(path: Path, db_path: Path) -> tuple[float, float]:
    """Seconds to read the CSV into dicts, and to ``insert_all`` them."""
    conn_db = Database(db_path)
    conn_db.execute("PRAGMA journal_mode=WAL")
    conn_db.execute("PRAGMA synchronous=NORMAL")
    start = time.perf_counter()
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    parsed = time.perf_counter()
    conn_db["subscribers"].insert_all(rows)
    done = time.perf_counter()
    assert conn_db["subscribers"].count == len(rows)
    conn_db.close()
    return parsed - start, done - parsed


def bench_import(path: Path, db_path: Path, rows: int) -> tuple[float, float, float]:
    """Seconds to read and validate the CSV, to apply its rows, and to import it again."""
    db = open_db(db_path, create=True)
    create_list(
        db, "bench", title="Bench", from_addr="Bench <bench@example.com>", tags=TAGS, now=NOW
    )
    # What import_csv does, timed in its two parts.
    start = time.perf_counter()
    mlist = get_list(db, "bench")
    parsed = parse_csv(path, mlist)
    read = time.perf_counter()
    report = apply_rows(db, mlist, parsed, confirmed=True, dry_run=False, source="import", now=NOW)
    done = time.perf_counter()
    assert len(report.added) == rows and not report.rejected, report.summary()
    start_again = time.perf_counter()
    again = import_csv(db, path, "bench", now=NOW, confirmed=True)
    again_elapsed = time.perf_counter() - start_again
    assert again.unchanged == rows, again.summary()
    db.close()
    return read - start, done - read, again_elapsed


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
        base_read, base_write, imp_read, imp_write, agains = [], [], [], [], []
        for i in range(args.repeat):
            read, write = bench_insert_all(csv_path, tmp_path / f"baseline{i}.db")
            base_read.append(read)
            base_write.append(write)
            read, write, again = bench_import(csv_path, tmp_path / f"digest{i}.db", args.rows)
            imp_read.append(read)
            imp_write.append(write)
            agains.append(args.rows / again)
        first, total = bench_first_line(tmp_path / "digest0.db")
    med = statistics.median
    n = args.rows
    base_file = [n / (r + w) for r, w in zip(base_read, base_write, strict=True)]
    base_rows = [n / w for w in base_write]
    imp_file = [n / (r + w) for r, w in zip(imp_read, imp_write, strict=True)]
    imp_rows = [n / w for w in imp_write]

    def ratios(num: list[float], den: list[float]) -> list[float]:
        return [a / b for a, b in zip(num, den, strict=True)]

    def runs(values: list[float]) -> str:
        return f"{med(values):,.0f} rows/s (runs {min(values):,.0f}–{max(values):,.0f})"

    def ratio_row(measure: str, values: list[float], target: bool) -> tuple[str, ...]:
        verdict = ("PASS" if med(values) >= 1 / 3 else "FAIL") if target else ""
        value = f"{med(values):.2f} (runs {min(values):.2f}–{max(values):.2f})"
        return (measure, value, ">= 0.33" if target else "-", verdict)

    def ms(values: list[float]) -> str:
        return f"{med(values) * 1000:,.0f} ms"

    table = [
        ("from the CSV file (read + write):", "", "", ""),
        ("  sqlite-utils insert_all (baseline)", runs(base_file), "-", ""),
        ("  subscribers import", runs(imp_file), ">= 1/3 of baseline", ""),
        ratio_row(
            "  import / insert_all (median of per-round ratios)", ratios(imp_file, base_file), True
        ),  # fmt: skip
        ("  best import / best insert_all", f"{max(imp_file) / max(base_file):.2f}", "", ""),
        ("from parsed rows (write alone):", "", "", ""),
        ("  sqlite-utils insert_all (baseline)", runs(base_rows), "-", ""),
        ("  subscribers import (apply_rows)", runs(imp_rows), ">= 1/3 of baseline", ""),
        ratio_row(
            "  import / insert_all (median of per-round ratios)", ratios(imp_rows, base_rows), True
        ),  # fmt: skip
        (
            "read the CSV: csv.DictReader / parse_csv",
            f"{ms(base_read)} / {ms(imp_read)}",
            "-",
            "",
        ),  # fmt: skip
        ratio_row(
            "import from the file / insert_all of parsed rows (mixed; not a target)",
            ratios(imp_file, base_rows),
            False,
        ),  # fmt: skip
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
        # Indented rows belong to the heading above them; the key row is shown in
        # bench/run.py's summary besides the verdicts.
        key = "from the CSV file (read + write): subscribers import"
        results, section = [], ""
        for m, v, t, r in table:
            if m.endswith(":") and not v:
                section = m
                continue
            name = f"{section} {m.strip()}" if m.startswith("  ") else m
            results.append(
                {"measure": name, "value": v, "target": t, "result": r or None, "key": name == key}
            )
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
