"""Bounce-mailbox benchmark (issue 16): prints a table with the target and PASS/FAIL.

    .venv/bin/python bench/bounces.py [--messages 10000] [--repeat 3] [--json]

Fills a temporary Maildir with --messages messages, cycling through the bounce fixtures in
tests/data/bounces/ (Postfix, Exim, Exchange, Gmail, Yahoo and qmail bounces, delay warnings,
ARF complaints, auto-replies, a person's reply: a harder mix than a real mailbox, where most
are Postfix DSNs), each with its own Message-ID. Then, in each round, one after the other:
- the reference: ``mailbox.Maildir`` keys + ``get_bytes`` + ``email.message_from_bytes`` (just
  reading and parsing every message, as any bounce processor must);
- digest's processing: ``MaildirMailbox.messages()`` + ``parse_report`` (classify: DSN, ARF,
  flufl.bounce heuristics, auto-reply headers) + ``verp.identify`` (VERP token, List-Unsubscribe
  token, Message-ID). ``done()`` is not called, so every round reads the same mailbox.
Target: >= 500 messages/s for the processing. The ratio to the reference is printed beside it
(medians of --repeat rounds; the machine is shared, so ratios are steadier than rates).
"""

from __future__ import annotations

import argparse
import email
import json
import mailbox
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from digest.delivery.verp import identify  # noqa: E402
from digest.feedback.mailboxes import MaildirMailbox  # noqa: E402
from digest.feedback.reports import parse_report  # noqa: E402

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "data" / "bounces"
SECRET = b"test-secret"
NOW = datetime(2025, 1, 21, 12, 0, tzinfo=UTC)


def fill(path: Path, n: int) -> None:
    box = mailbox.Maildir(path, create=True)
    samples = [p.read_bytes() for p in sorted(FIXTURES.glob("*.eml"))]
    for i in range(n):
        raw = samples[i % len(samples)]
        # A distinct report each time, as in a real mailbox.
        raw = raw.replace(b"Message-I", b"X-Bench: %d\nMessage-I" % i, 1)
        box.add(raw)


def reference(path: Path) -> tuple[float, int]:
    started = time.perf_counter()
    box = mailbox.Maildir(path, factory=None, create=False)
    count = 0
    for key in box.iterkeys():
        msg = email.message_from_bytes(box.get_bytes(key))
        count += msg.get("Subject") is not None
    return time.perf_counter() - started, count


def process(path: Path) -> tuple[float, Counter[str]]:
    started = time.perf_counter()
    kinds: Counter[str] = Counter()
    with MaildirMailbox(path) as box:
        for _key, raw in box.messages():
            report = parse_report(raw)
            found = identify(
                return_paths=report.return_paths,
                message_id=report.original_message_id,
                list_unsubscribe=report.list_unsubscribe_url,
                secret=SECRET,
                now=NOW,
            )
            kinds[f"{report.kind}{'' if found else ' (no identity)'}"] += 1
    return time.perf_counter() - started, kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = parser.parse_args()
    n = args.messages
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "Maildir"
        fill(path, n)
        ref_times: list[float] = []
        our_times: list[float] = []
        kinds: Counter[str] = Counter()
        reference(path)  # warm the page cache and the imports
        for i in range(args.repeat):
            # Alternate the order so neither side always runs on a warmer machine.
            if i % 2:
                our_times.append(process(path)[0])
                ref_times.append(reference(path)[0])
            else:
                ref_times.append(reference(path)[0])
                elapsed, kinds = process(path)
                our_times.append(elapsed)
    ref, ours = statistics.median(ref_times), statistics.median(our_times)
    ratios = sorted(o / r for o, r in zip(our_times, ref_times, strict=True))
    rate = n / ours

    def spread(values: list[float], fmt: str) -> str:
        return f"{fmt.format(min(values))}–{fmt.format(max(values))}"

    rows = [
        (
            "reference: Maildir read + email.message_from_bytes",
            f"{n / ref:,.0f} msg/s ({ref:.2f} s, runs {spread([n / t for t in ref_times], '{:,.0f}')})",
            "",
            "",
        ),
        (
            "bounces: read + parse_report + identify",
            f"{rate:,.0f} msg/s ({ours:.2f} s, runs {spread([n / t for t in our_times], '{:,.0f}')})",
            ">= 500 msg/s",
            "PASS" if rate >= 500 else "FAIL",
        ),
        (
            "  time per message vs. the reference (median ratio)",
            f"{statistics.median(ratios):.2f}x (runs {spread(ratios, '{:.2f}')}x)",
            "",
            "",
        ),
    ]
    if args.json:
        print(
            json.dumps(
                {
                    "benchmark": "bounces",
                    "settings": {"messages": n, "repeat": args.repeat},
                    "rows": [
                        {"measure": m.strip(), "value": v, "target": t, "result": r or None}
                        for m, v, t, r in rows
                    ],
                    "kinds": dict(kinds),
                }
            )
        )
        return
    header = ("what", "measured", "target", "result")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    print(
        f"bounces benchmark: {n:,} messages in a Maildir, median of {args.repeat} runs "
        f"({len(list(FIXTURES.glob('*.eml')))} fixture shapes, cycled)"
    )
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    print("classified: " + ", ".join(f"{k} {v:,}" for k, v in sorted(kinds.items())))


if __name__ == "__main__":
    main()
