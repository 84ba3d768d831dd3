"""Benchmark of `digest send` against a fast local SMTP sink; prints a table with targets.

    .venv/bin/python bench/send.py            # full run (20,000 and 200,000 deliveries)
    .venv/bin/python bench/send.py --quick    # smaller numbers, for a smoke test
    .venv/bin/python bench/send.py --json     # the results as one JSON object (bench/run.py)

What it measures, in one run:
- A: messages/s of a `digest send` subprocess delivering N personalised digests (~60 KB HTML,
  4 variants) through the whole path: claim from SQLite, subscription/suppression check,
  per-recipient assembly, SMTP, outcome recorded.
- B: messages/s of a plain smtplib loop sending one pre-built message of the same size to the
  same sink over the same number of connections (one thread per connection, never
  reconnecting — `digest send` reconnects every 100 messages, as configured by default).
- A/B (target >= 0.9), and the peak RSS of a `digest send` subprocess delivering to M
  subscribers (target <= 150 MB).

The sink is a minimal asyncio SMTP server in its own process that accepts and discards
(aiosmtpd is far slower than the client it would measure). The database rows (list,
subscribers, subscriptions, a digest, variants made with messages.build_template, queued
deliveries) are created directly with bulk inserts, as the digest builder would leave them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONCURRENCY = 4
SECRET = "bench-secret"


# --- the sink -------------------------------------------------------------------------------


class _Sink(asyncio.Protocol):
    def connection_made(self, transport):
        self.t = transport
        self.buf = b""
        self.in_data = False
        transport.write(b"220 sink ESMTP\r\n")

    def data_received(self, data):
        self.buf += data
        while self.buf:
            if self.in_data:
                end = self.buf.find(b"\r\n.\r\n")
                if end < 0:
                    # keep only what could start the terminator
                    self.buf = self.buf[-4:]
                    return
                self.buf = self.buf[end + 5 :]
                self.in_data = False
                self.t.write(b"250 2.0.0 accepted\r\n")
                continue
            end = self.buf.find(b"\r\n")
            if end < 0:
                return
            line, self.buf = self.buf[:end], self.buf[end + 2 :]
            verb = line[:4].upper()
            if verb == b"EHLO":
                self.t.write(
                    b"250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 100000000\r\n"
                )
            elif verb == b"DATA":
                self.in_data = True
                # the client sends the body after 354: it starts with a line, so a
                # terminator right at the start is "\r\n.\r\n" only after a first CRLF
                self.buf = b"\r\n" + self.buf
                self.t.write(b"354 go ahead\r\n")
            elif verb == b"QUIT":
                self.t.write(b"221 bye\r\n")
                self.t.close()
                return
            else:
                self.t.write(b"250 ok\r\n")


def run_sink() -> None:
    async def main():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Sink, "127.0.0.1", 0, backlog=256)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(main())


def start_sink() -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, __file__, "--sink"], stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline())
    return proc, port


# --- the database ---------------------------------------------------------------------------


def article_html(i: int) -> str:
    return (
        f'<tr><td style="padding:12px 0"><h2 style="font:bold 18px Georgia,serif;margin:0">'
        f'<a href="https://news.example.com/articles/{i}" style="color:#1a0dab">Article {i}: '
        f"a headline about the day's events</a></h2>"
        f'<p style="font:15px/1.5 Georgia,serif;color:#333;margin:6px 0">'
        + "Lorem ipsum dolor sit amet, ελληνικά, consectetur adipiscing elit. " * 6
        + "</p></td></tr>"
    )


def make_db(path: Path, subscribers: int) -> None:
    from digest.messages import build_template, html_placeholder, text_placeholder
    from digest.store import open_db

    db = open_db(path)
    now = "2025-01-21T04:00:00.000000+00:00"
    db.execute(
        "INSERT INTO lists (slug, title, from_addr, created_at, updated_at)"
        " VALUES ('world', 'World', 'World Desk <news@example.com>', ?, ?)",
        [now, now],
    )
    db.execute(
        "INSERT INTO digests (list_id, frequency, period_start, period_end, period_label,"
        " built_at) VALUES (1, 'daily', ?, ?, '2025-01-21', ?)",
        [now, now, now],
    )
    for v in range(4):
        html = (
            f"<html><body><p>Hello {html_placeholder('NAME')},</p><table>"
            + "".join(article_html(v * 1000 + i) for i in range(60))
            + f'</table><p><a href="{html_placeholder("UNSUBSCRIBE_URL")}">Unsubscribe</a> · '
            f'<a href="{html_placeholder("PREFERENCES_URL")}">Preferences</a></p></body></html>'
        )
        text = (
            f"Hello {text_placeholder('NAME')},\n\n"
            + "Article: a headline about the day's events\n" * 60
            + f"\nUnsubscribe: {text_placeholder('UNSUBSCRIBE_URL')}\n"
        )
        template = build_template(
            [
                ("From", "World Desk <news@example.com>"),
                ("Subject", f"World — daily digest, 2025-01-21 (variant {v})"),
                ("Date", "Tue, 21 Jan 2025 07:00:00 +0000"),
            ],
            text,
            html,
            boundary_seed=f"v{v}",
        )
        db.execute(
            "INSERT INTO variants (digest_id, tags_key, subject, template, article_count,"
            " html_size) VALUES (1, ?, 'World', ?, 72, ?)",
            [f"t{v}", template, len(html)],
        )
    with db.atomic():
        db.conn.executemany(
            "INSERT INTO subscribers (id, email, name, created_at) VALUES (?, ?, ?, ?)",
            ((i, f"reader{i}@example.org", f"Reader {i}", now) for i in range(1, subscribers + 1)),
        )
        db.conn.executemany(
            "INSERT INTO subscriptions (subscriber_id, list_id, frequency, status, created_at,"
            " updated_at) VALUES (?, 1, 'daily', 'active', ?, ?)",
            ((i, now, now) for i in range(1, subscribers + 1)),
        )
        db.conn.executemany(
            "INSERT INTO deliveries (digest_id, variant_id, subscriber_id, email, status,"
            " created_at, updated_at) VALUES (1, ?, ?, ?, 'queued', ?, ?)",
            ((i % 4 + 1, i, f"reader{i}@example.org", now, now) for i in range(1, subscribers + 1)),
        )
    db.close()


def one_message(path: Path):
    from digest.messages import Assembler, Recipient
    from digest.store import open_db

    db = open_db(path)
    out = Assembler(db, base_url="http://127.0.0.1:8080", secret=SECRET.encode()).message(
        1, Recipient(1, "reader1@example.org", "Reader 1")
    )
    db.close()
    return out


# --- the measurements -----------------------------------------------------------------------


def digest_send(db_path: Path, port: int, workdir: Path) -> dict:
    """Run `digest send` as a subprocess; return its own rate, wall rate and peak RSS."""
    config = workdir / "digest.toml"
    config.write_text(
        f"[send]\nconcurrency = {CONCURRENCY}\nmax_age_hours = 1000000\n", encoding="utf-8"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env.update(DIGEST_SECRET=SECRET, DIGEST_CONFIG=str(config))
    started = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "digest",
            "--db",
            str(db_path),
            "send",
            "--smtp",
            f"smtp://127.0.0.1:{port}",
        ],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # wait4 gives this child's own peak RSS (ru_maxrss, KiB on Linux).
    out = proc.stdout.read().decode()
    err = proc.stderr.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    m = re.search(r"sent (\d+), deferred (\d+), failed (\d+), skipped (\d+) in ([\d.]+) s", out)
    if proc.returncode != 0 or not m:
        raise SystemExit(f"digest send failed ({proc.returncode}): {out}{err}")
    sent, deferred, failed = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if deferred or failed:
        raise SystemExit(f"digest send did not send everything: {out}")
    return {
        "sent": sent,
        "rate": sent / float(m.group(5)),
        "wall_rate": sent / wall,
        "rss_mb": usage.ru_maxrss / 1024,
    }


def smtplib_loop(port: int, message, total: int) -> float:
    """B: CONCURRENCY threads, one connection each, sending the same message in a loop."""
    per_thread = total // CONCURRENCY
    errors = []

    def loop():
        try:
            smtp = smtplib.SMTP("127.0.0.1", port, timeout=30)
            for _ in range(per_thread):
                smtp.sendmail(message.sender, [message.recipient], message.data)
            smtp.quit()
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=loop) for _ in range(CONCURRENCY)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise SystemExit(f"smtplib loop failed: {errors[0]}")
    return per_thread * CONCURRENCY / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="2,000 / 20,000 deliveries")
    parser.add_argument("--rounds", type=int, default=2, help="A and B alternately, best kept")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = parser.parse_args()
    if args.sink:
        run_sink()
        return
    n_a, n_rss = (2_000, 20_000) if args.quick else (20_000, 200_000)
    sink, port = start_sink()
    try:
        with tempfile.TemporaryDirectory(prefix="digest-bench-") as tmp:
            work = Path(tmp)
            print(f"building databases ({n_a:,} and {n_rss:,} deliveries)…", file=sys.stderr)
            template_db = work / "a-template.db"
            make_db(template_db, n_a)
            message = one_message(template_db)
            a_runs, b_runs = [], []
            for r in range(args.rounds):
                b_runs.append(smtplib_loop(port, message, n_a))
                db_path = work / f"a{r}.db"
                db_path.write_bytes(template_db.read_bytes())
                a_runs.append(digest_send(db_path, port, work))
                print(
                    f"round {r + 1}: A {a_runs[-1]['rate']:,.0f}/s "
                    f"(wall {a_runs[-1]['wall_rate']:,.0f}/s), B {b_runs[-1]:,.0f}/s",
                    file=sys.stderr,
                )
            big = work / "rss.db"
            make_db(big, n_rss)
            rss = digest_send(big, port, work)
    finally:
        sink.terminate()
        sink.wait()

    a = max(a_runs, key=lambda x: x["rate"])
    b = max(b_runs)
    ratio = a["rate"] / b
    size_kb = len(message.data) / 1024
    rows = [
        (
            f"A: digest send, {n_a:,} digests ({size_kb:.0f} KB each)",
            f"{a['rate']:,.0f} msg/s",
            "> 1,000 msg/s",
            a["rate"] > 1000,
        ),
        ("   same, wall clock incl. process start", f"{a['wall_rate']:,.0f} msg/s", "", None),
        (f"B: smtplib loop, same message, {CONCURRENCY} connections", f"{b:,.0f} msg/s", "", None),
        ("A / B", f"{ratio:.2f}", ">= 0.90", ratio >= 0.9),
        (
            f"peak RSS, digest send to {n_rss:,} subscribers",
            f"{rss['rss_mb']:.0f} MB",
            "<= 150 MB",
            rss["rss_mb"] <= 150,
        ),
        (f"   (that run: {rss['sent']:,} sent)", f"{rss['rate']:,.0f} msg/s", "", None),
    ]
    if args.json:
        key = {f"B: smtplib loop, same message, {CONCURRENCY} connections"}
        results = [
            {
                "measure": name.strip(),
                "value": value,
                "target": target,
                "result": None if ok is None else ("PASS" if ok else "FAIL"),
                "key": name in key,
            }
            for name, value, target, ok in rows
        ]
        settings = {"deliveries": n_a, "rss_deliveries": n_rss, "rounds": args.rounds}
        print(json.dumps({"benchmark": "send", "settings": settings, "rows": results}))
        return
    w = max(len(r[0]) for r in rows)
    print(f"{'measure':<{w}}  {'result':>14}  {'target':>14}  verdict")
    print(f"{'-' * w}  {'-' * 14}  {'-' * 14}  -------")
    for name, value, target, ok in rows:
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        print(f"{name:<{w}}  {value:>14}  {target:>14}  {verdict}")
    print(
        f"(best of {args.rounds} alternating rounds for A and B; sink: asyncio, separate "
        f"process; {os.cpu_count()} CPUs)"
    )


if __name__ == "__main__":
    main()
