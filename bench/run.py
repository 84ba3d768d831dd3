"""Run every benchmark under bench/ and print one summary table with PASS/FAIL per target.

    .venv/bin/python bench/run.py            # full sizes (several minutes)
    .venv/bin/python bench/run.py --quick    # smaller sizes, for a smoke test
    .venv/bin/python bench/run.py --only ingest --only build

Each benchmark runs as its own subprocess with ``--json`` (one JSON object on stdout: its rows,
with targets and verdicts); their progress goes to stderr as usual. Nothing is measured here
except each subprocess's wall time and peak RSS (from ``wait4``). The summary shows every row
that has a target plus the few context rows each script marks as key (e.g. the feedparser
baseline rate), with the machine's CPU count and the Python and SQLite versions. Exit status 1
if any target failed or any benchmark did not finish.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

# name -> (script, extra arguments for --quick). Every script accepts --json.
BENCHMARKS = {
    "ingest": ("ingest.py", ["--entries", "1000", "--repeat", "1"]),
    "subscribers": ("subscribers.py", ["--rows", "10000", "--repeat", "1"]),
    "build": ("build.py", ["--quick"]),
    "send": ("send.py", ["--quick", "--rounds", "1"]),
    "bounces": ("bounces.py", ["--messages", "1000", "--repeat", "1"]),
    "pages": ("pages.py", ["--repeat", "1"]),  # skips (no rows) without ../shared/corpus/pages
}


def run_one(name: str, quick: bool) -> dict:
    """Run one benchmark script; its parsed JSON plus wall time, peak RSS and any error."""
    script, quick_args = BENCHMARKS[name]
    command = [sys.executable, str(BENCH / script), "--json", *(quick_args if quick else [])]
    print(f"== {name}: {' '.join(command[1:])}", file=sys.stderr, flush=True)
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, cwd=ROOT, env=env)
    assert proc.stdout is not None
    output = proc.stdout.read()
    proc.stdout.close()
    # wait4 rather than wait: the child's own resource usage, with its peak RSS.
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    outcome: dict = {
        "name": name,
        "seconds": time.perf_counter() - started,
        "rss_mb": usage.ru_maxrss / 1024,  # Linux reports KiB
        "rows": [],
        "error": None,
    }
    lines = output.decode("utf-8", "replace").strip().splitlines()
    try:
        outcome.update(json.loads(lines[-1]))
    except (IndexError, json.JSONDecodeError):
        outcome["error"] = f"exit status {proc.returncode}, no JSON result on stdout"
        return outcome
    if proc.returncode not in (0, 1):  # build.py exits 1 when a target fails
        outcome["error"] = f"exit status {proc.returncode}"
    return outcome


def table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for i, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke test)")
    parser.add_argument(
        "--only", action="append", choices=sorted(BENCHMARKS), help="run only this (repeatable)"
    )
    args = parser.parse_args()
    names = [n for n in BENCHMARKS if not args.only or n in args.only]
    results = [run_one(name, args.quick) for name in names]

    rows = [("benchmark", "measure", "value", "target", "result")]
    failed = 0
    for result in results:
        if result["error"]:
            rows.append((result["name"], "did not finish", result["error"], "", "FAIL"))
            failed += 1
        for row in result["rows"]:
            if row["result"] is None and not row["key"]:
                continue
            rows.append(
                (result["name"], row["measure"], row["value"], row["target"], row["result"] or "")
            )
            failed += row["result"] == "FAIL"
    runs = [("benchmark", "wall time", "peak RSS of the script (incl. waited children)")]
    for result in results:
        runs.append((result["name"], f"{result['seconds']:.0f} s", f"{result['rss_mb']:.0f} MB"))

    size = (
        "quick sizes (--quick): smaller than the targets are defined for"
        if args.quick
        else ("full sizes")
    )
    print(
        f"digest benchmarks, {size}; {os.cpu_count()} CPUs, {platform.machine()},"
        f" Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    )
    print()
    print("\n".join(table(rows)))
    print()
    print("\n".join(table(runs)))
    print()
    verdicts = sum(1 for r in rows[1:] if r[4] in ("PASS", "FAIL"))
    print(
        f"{verdicts - failed} of {verdicts} targets met" + (f"; {failed} FAILED" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
