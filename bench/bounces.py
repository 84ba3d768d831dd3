"""Bounce-mailbox benchmark (issue 16): prints a table with the target and PASS/FAIL.

    .venv/bin/python bench/bounces.py [--messages 10000] [--repeat 3] [--json]

Fills a temporary Maildir with --messages messages, cycling through the bounce fixtures in
tests/data/bounces/ (Postfix, Exim, Exchange, Gmail, Yahoo and qmail bounces, delay warnings,
ARF complaints, auto-replies, a person's reply: a harder mix than a real mailbox, where most
are Postfix DSNs), each with its own Message-ID and returned to the VERP address of its own
delivery in a store of --messages subscribers who were each sent one digest. Then, in each
round, one after the other:
- the reference: ``mailbox.Maildir`` keys + ``get_bytes`` + ``email.message_from_bytes`` (just
  reading and parsing every message, as any bounce processor must);
- parse-only: ``MaildirMailbox.messages()`` + ``parse_report`` (classify: DSN, ARF,
  flufl.bounce heuristics, auto-reply headers) + ``verp.identify`` (VERP token, List-Unsubscribe
  token, Message-ID). ``done()`` is not called, so every round reads the same mailbox;
- ``digest bounces process`` without the CLI (``feedback.process.process_mailbox``) on a fresh
  copy of the Maildir and the store: all of the above, plus the database work for each message
  (match the delivery, record the event, weigh the address's events, bounce or complain and
  suppress it with its history, one transaction each) and ``done()`` (flag it read).
Target: >= 500 messages/s, for the parse-only row and for the full processing. Ratios are
printed beside them (medians of --repeat rounds; the machine is shared, so ratios are steadier
than rates).
"""

from __future__ import annotations

import argparse
import email
import json
import mailbox
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from digest.feedback.mailboxes import DoneAction, MaildirMailbox  # noqa: E402
from digest.feedback.process import BouncePolicy, process_mailbox  # noqa: E402
from digest.feedback.reports import parse_report  # noqa: E402
from digest.store import open_db  # noqa: E402
from digest.verp import identify, make_token  # noqa: E402

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "data" / "bounces"
SECRET = b"test-secret"
NOW = datetime(2025, 1, 21, 12, 0, tzinfo=UTC)


_VERP = re.compile(rb"bounces\+[a-z2-7]+@")
_MESSAGE_ID = re.compile(rb"(world-news\.daily\.2025-01-21\.)\d+@")


def fill(path: Path, n: int) -> None:
    box = mailbox.Maildir(path, create=True)
    samples = [p.read_bytes() for p in sorted(FIXTURES.glob("*.eml"))]
    for i in range(n):
        raw = samples[i % len(samples)]
        # A distinct report each time, as in a real mailbox, about delivery i + 1 (to
        # subscriber i + 1): its VERP return path and the returned Message-ID name it.
        raw = raw.replace(b"Message-I", b"X-Bench: %d\nMessage-I" % i, 1)
        token = make_token(i + 1, SECRET).encode()
        raw = _VERP.sub(b"bounces+" + token + b"@", raw)
        raw = _MESSAGE_ID.sub(rb"\g<1>%d@" % (i + 1), raw)
        box.add(raw)


def make_store(path: Path, n: int) -> None:
    """List world-news (id 1) whose digest of 2025-01-21 went to n subscribers, subscriber i by
    delivery i, with the history of their subscribing (rows inserted as the library would)."""
    db = open_db(path, create=True)
    now = "2025-01-01T00:00:00.000000+00:00"
    db.execute(
        "INSERT INTO lists (slug, title, from_addr, created_at, updated_at)"
        " VALUES ('world-news', 'World News', 'World News <digest@news.example.org>', ?, ?)",
        [now, now],
    )
    db.execute(
        "INSERT INTO digests (list_id, frequency, period_start, period_end, period_label,"
        " built_at) VALUES (1, 'daily', ?, ?, '2025-01-21', ?)",
        [now, now, now],
    )
    db.execute(
        "INSERT INTO variants (digest_id, tags_key, subject, article_count) VALUES (1, '', 'W', 1)"
    )
    people = [(i, f"reader{i}@example.org") for i in range(1, n + 1)]
    with db.atomic():
        db.conn.executemany(
            "INSERT INTO subscribers (id, email, created_at) VALUES (?, ?, ?)",
            ((i, email, now) for i, email in people),
        )
        db.conn.executemany(
            "INSERT INTO subscriptions (subscriber_id, list_id, frequency, status, created_at,"
            " updated_at) VALUES (?, 1, 'daily', 'active', ?, ?)",
            ((i, now, now) for i, _ in people),
        )
        db.conn.executemany(
            "INSERT INTO status_events (email, list_slug, new_status, source, at)"
            " VALUES (?, 'world-news', 'active', 'import', ?)",
            ((email, now) for _, email in people),
        )
        db.conn.executemany(
            "INSERT INTO deliveries (id, digest_id, variant_id, subscriber_id, email, status,"
            " created_at, updated_at, sent_at) VALUES (?, 1, 1, ?, ?, 'sent', ?, ?, ?)",
            ((i, i, email, now, now, now) for i, email in people),
        )
    db.close()


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


def process_all(work: Path, maildir: Path, store: Path, n: int) -> tuple[float, Counter[str]]:
    """One ``process_mailbox`` run over a fresh copy of the Maildir and the store (the copying
    is not timed)."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    shutil.copytree(maildir, work / "Maildir")
    shutil.copy(store, work / "digest.db")
    db = open_db(work / "digest.db")
    try:
        started = time.perf_counter()
        with MaildirMailbox(work / "Maildir") as box:
            report = process_mailbox(
                db, box, policy=BouncePolicy(SECRET), clock=lambda: NOW, action=DoneAction.SEEN
            )
        elapsed = time.perf_counter() - started
        bounced = db.execute("SELECT count(*) FROM suppressions").fetchone()[0]
    finally:
        db.close()
    assert len(report.results) == n and report.stopped is None, report.stopped
    effects = Counter(r.effect.value for r in report.results)
    effects["suppressed (in the store)"] = bounced
    return elapsed, effects


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = parser.parse_args()
    n = args.messages
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "Maildir"
        store = Path(tmp) / "store.db"
        fill(path, n)
        make_store(store, n)
        ref_times: list[float] = []
        our_times: list[float] = []
        full_times: list[float] = []
        kinds: Counter[str] = Counter()
        effects: Counter[str] = Counter()
        reference(path)  # warm the page cache and the imports
        for i in range(args.repeat):
            # Alternate the order so neither side always runs on a warmer machine.
            if i % 2:
                full_times.append(process_all(Path(tmp) / "work", path, store, n)[0])
                our_times.append(process(path)[0])
                ref_times.append(reference(path)[0])
            else:
                ref_times.append(reference(path)[0])
                elapsed, kinds = process(path)
                our_times.append(elapsed)
                elapsed, effects = process_all(Path(tmp) / "work", path, store, n)
                full_times.append(elapsed)
    ref, ours = statistics.median(ref_times), statistics.median(our_times)
    full = statistics.median(full_times)
    ratios = sorted(o / r for o, r in zip(our_times, ref_times, strict=True))
    full_ratios = sorted(f / o for f, o in zip(full_times, our_times, strict=True))
    rate = n / ours
    full_rate = n / full

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
            "parse-only: read + parse_report + identify",
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
        (
            "bounces process: + match, record, policy, bounce/suppress, done",
            f"{full_rate:,.0f} msg/s ({full:.2f} s, runs {spread([n / t for t in full_times], '{:,.0f}')})",
            ">= 500 msg/s",
            "PASS" if full_rate >= 500 else "FAIL",
        ),
        (
            "  time per message vs. parse-only (median ratio)",
            f"{statistics.median(full_ratios):.2f}x (runs {spread(full_ratios, '{:.2f}')}x)",
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
                        {
                            "measure": m.strip(),
                            "value": v,
                            "target": t,
                            "result": r or None,
                            "key": True,
                        }
                        for m, v, t, r in rows
                    ],
                    "kinds": dict(kinds),
                    "effects": dict(effects),
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
    print("processed: " + ", ".join(f"{k} {v:,}" for k, v in sorted(effects.items())))


if __name__ == "__main__":
    main()
