"""Benchmark: the shared date parser (``digest.dates.parse_date``) against feedparser and against
the parser it replaces (``digest.sources.parse_date``). Skips the corpus rows when
``../shared/corpus/feeds`` is absent.

- **agreement with feedparser** on every date feedparser reads in the corpus feeds (each
  ``*_parsed`` value next to its raw text): the same instant to the second.
- **Expect lines**: the feedparser test files whose ``Expect:`` line states a ``*_parsed``
  tuple; ``parse_date`` on the raw text gives that instant.
- **junk**: values that must give None (or an in-range date), never an exception; how many
  feedparser's ``_parse_date`` misreads as a date, and how many the old parser raised on.
- **speed**: microseconds per call over the corpus date strings plus common JSON/front-matter
  forms, median of ``--repeat`` runs, as a ratio to the old parser (target: no slower).

Usage: python bench/dates.py [--repeat N]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

import feedparser
from feedparser.datetimes import _parse_date as feedparser_parse_date

from digest.ingest import sources
from digest.ingest.dates import from_struct_time, parse_date

FEEDS = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus" / "feeds"
_EXPECT = re.compile(
    r"(feed|entries\[0\])\['(\w+)_parsed'\] == \((\d+), (\d+), (\d+), (\d+), (\d+), (\d+)"
)
JUNK = [
    "2013-xx-27",
    "2025-13-45",
    "2025-01-21 junk",
    "0000-00-00T00:00:00Z",
    "9999-12-31T23:59:59-99:99",
    "Fri, 31 Dec 9999 23:59:59 -0100",
    "Sun, 31 Dec 9999 23:59:59 -9999",
    "2013-01-28T11:30:00-06:00Textra",
    "12",
    "1/2/2025",
    "2025-01-21T25:00:00Z",
    "Sun, 99 Jun 2009 12:00:00 GMT",
    "not a date",
    "x" * 5000,
]
COMMON = [
    "2025-01-21T07:00:00Z",
    "2025-01-21T09:00:00+02:00",
    "2025-01-21",
    "Tue, 21 Jan 2025 07:00:00 GMT",
    "Tue, 21 Jan 2025 07:00:00 +0000",
    "January 21, 2025",
    "Tuesday, January 21, 2025",
]


def corpus_pairs() -> list[tuple[str, object]]:
    pairs: list[tuple[str, object]] = []

    def walk(obj: object) -> None:
        if isinstance(obj, dict):
            for key, value in obj.items():
                raw = obj.get(key[: -len("_parsed")]) if key.endswith("_parsed") else None
                if isinstance(raw, str):
                    pairs.append((raw, value))
                walk(value)
        elif isinstance(obj, list):
            for value in obj:
                walk(value)

    for path in sorted(FEEDS.rglob("*")):
        if path.is_file() and path.suffix not in (".config", ".expected"):
            walk(feedparser.parse(path.read_bytes()))
    return pairs


def expect_checks() -> tuple[int, int]:
    agree = total = 0
    for path in sorted(FEEDS.rglob("*.xml")):
        head = path.read_text(errors="replace")[:600]
        for where, field, *numbers in _EXPECT.findall(head):
            d = feedparser.parse(path.read_bytes())
            holder = d.feed if where == "feed" else d.entries[0]
            got = parse_date(holder[field])
            total += 1
            agree += got is not None and got.timetuple()[:6] == tuple(int(n) for n in numbers)
    return agree, total


def old_parse(value: str) -> object:
    try:
        return sources.parse_date(value)
    except Exception as e:  # noqa: BLE001 - counting what the old parser raised
        return e


def per_call(fn, values: list[str], repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        for value in values:
            fn(value)
        runs.append(time.perf_counter() - start)
    return statistics.median(runs) / len(values) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows: list[tuple[str, str]] = []
    values = list(COMMON)
    if FEEDS.is_dir():
        pairs = corpus_pairs()
        agree = sum(
            (p := parse_date(raw)) is not None
            and p.replace(microsecond=0) == from_struct_time(parsed)
            or p is None
            and from_struct_time(parsed) is None
            for raw, parsed in pairs
        )
        rows.append(("corpus dates agreeing with feedparser", f"{agree}/{len(pairs)}"))
        ok, total = expect_checks()
        rows.append(("Expect: lines with a *_parsed value met", f"{ok}/{total}"))
        values += [raw for raw, _ in pairs]
    else:
        rows.append(("corpus", f"skipped: {FEEDS} is absent"))
    rejected = sum(parse_date(v) is None for v in JUNK)
    misread = sum(bool(from_struct_time(feedparser_parse_date(v))) for v in JUNK)
    raised = sum(isinstance(old_parse(v), Exception) for v in JUNK)
    rows.append((f"junk values rejected ({len(JUNK)})", f"{rejected}/{len(JUNK)}"))
    rows.append(("  feedparser reads as a date", f"{misread}/{len(JUNK)}"))
    rows.append(("  old sources.parse_date raised on", f"{raised}/{len(JUNK)}"))
    values = values * max(1, 2000 // len(values))
    ours = per_call(parse_date, values, args.repeat)
    old = per_call(old_parse, values, args.repeat)
    fp = per_call(feedparser_parse_date, values, args.repeat)
    rows.append((f"µs per call, ours ({len(values)} values)", f"{ours:.1f}"))
    rows.append(("µs per call, old sources.parse_date", f"{old:.1f}"))
    rows.append(("µs per call, feedparser _parse_date", f"{fp:.1f}"))
    rows.append(("speed ratio old / ours (>= 1 is no slower)", f"{old / ours:.2f}x"))
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  value")
    print(f"{'-' * width}  -----")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
