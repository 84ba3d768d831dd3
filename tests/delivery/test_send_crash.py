"""Real ``digest send`` processes: killed with SIGKILL at several points and restarted, and two
running at once on one database. The SMTP server runs in this test process and decides when
the kill happens (from its handler), so the points are exact, not timed."""

from __future__ import annotations

import contextlib
import email
import email.policy
import os
import signal
import subprocess
import sys
import threading
from collections import Counter, defaultdict
from pathlib import Path

from conftest import SmtpHandler

# Messages in flight per sender (digest.send): concurrency (2) x (pipelining depth 1 + 7).
WINDOW = 2 * (1 + 7)


def _env(tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "digest.toml"
    config.write_text(
        "[send]\nconcurrency = 2\nclaim_batch = 5\nlease_seconds = 300\n"
        "max_age_hours = 1000000\ntimeout = 10\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env.update(DIGEST_SECRET="test-secret", DIGEST_CONFIG=str(config))
    return env


def _start(tmp_path, db_path, url, *extra) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "digest", "--db", str(db_path), "send", "--smtp", url, *extra],
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class Killer:
    """Kills the sender process at the n-th RCPT (before the server keeps anything) or after
    the n-th stored message (the server has it, the sender has not heard back: in flight)."""

    def __init__(self, at_rcpt: set[int], at_stored: set[int]):
        self.at_rcpt, self.at_stored = at_rcpt, at_stored
        self.rcpts = self.stored = 0
        self.proc: subprocess.Popen | None = None
        self.kills: list[str] = []
        self.lock = threading.Lock()

    def _kill(self, what: str) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kills.append(what)
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def on_rcpt(self, address: str) -> None:
        with self.lock:
            self.rcpts += 1
            if self.rcpts in self.at_rcpt:
                self._kill(f"rcpt {self.rcpts}")

    def hold(self, item) -> None:
        with self.lock:
            self.stored += 1
            if self.stored in self.at_stored:
                self._kill(f"stored {self.stored}")


def test_sigkill_at_several_points_loses_nothing(db, db_path, newsletter, smtp_server, tmp_path):
    killer = Killer(at_rcpt={1}, at_stored={6, 17})
    handler = SmtpHandler(hold=killer.hold, on_rcpt=killer.on_rcpt)
    server = smtp_server(handler)
    newsletter.make(30)

    runs = []
    proc = killer.proc = _start(tmp_path, db_path, server.url())
    out, err = proc.communicate(timeout=60)
    runs.append(proc.returncode)
    assert proc.returncode == -signal.SIGKILL and killer.kills == ["rcpt 1"]

    # Without --recover, the dead sender's leases still hold its claimed batch.
    proc = _start(tmp_path, db_path, server.url(), "--limit", "0")
    proc.communicate(timeout=60)
    leased = db.execute("SELECT count(*) FROM deliveries WHERE lease_owner IS NOT NULL")
    assert leased.fetchone()[0] == 5

    errors = []
    for _ in range(5):
        proc = killer.proc = _start(tmp_path, db_path, server.url(), "--recover")
        out, err = proc.communicate(timeout=60)
        runs.append(proc.returncode)
        errors.append(err)
        if proc.returncode == 0:
            break
    if runs != [-9, -9, -9, 0]:
        print(*errors, sep="\n----\n")  # the captured output is shown whole, not truncated
    assert runs == [-9, -9, -9, 0], (runs, errors)
    assert killer.kills == ["rcpt 1", "stored 6", "stored 17"]
    assert errors[0] == "released 5 deliveries leased by senders that died\n"

    # Every delivery was sent and recorded once; the server got every recipient at least once.
    rows = {r["email"]: r for r in db.query("SELECT * FROM deliveries")}
    assert {r["status"] for r in rows.values()} == {"sent"}
    assert all(r["lease_owner"] is None for r in rows.values())
    copies: dict[str, list] = defaultdict(list)
    for item in handler.received:
        msg = email.message_from_bytes(item.data, policy=email.policy.default)
        assert msg["To"].addresses[0].addr_spec == item.rcpt_to[0]
        copies[item.rcpt_to[0]].append((msg["Message-ID"], item.data))
    assert set(copies) == set(rows)
    # Duplicates: only messages in flight at a kill (at most WINDOW per kill), and each copy is
    # the same message with the same Message-ID as the ledger records.
    duplicates = sum(len(c) - 1 for c in copies.values())
    assert duplicates <= WINDOW * 2  # two kills happened with messages at the server
    for address, versions in copies.items():
        assert {mid for mid, _ in versions} == {rows[address]["message_id"]}
        assert len({data for _, data in versions}) == 1


def test_two_senders_at_once_never_send_the_same_delivery(
    db, db_path, newsletter, smtp_server, tmp_path
):
    # Each sender has one connection; the server holds both connections until both are open,
    # so the two processes really send at the same time.
    barrier = threading.Barrier(2, timeout=30)

    def both_connected():
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()

    handler = SmtpHandler(on_connect=both_connected)
    server = smtp_server(handler)
    newsletter.make(40)
    procs = [_start(tmp_path, db_path, server.url(), "--concurrency", "1") for _ in range(2)]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    sent = [int(out.split("sent ")[1].split(",")[0]) for out, _ in outputs]
    assert sum(sent) == 40 and min(sent) > 0, sent
    assert Counter(handler.recipients()) == Counter({f"p{i}@example.com": 1 for i in range(1, 41)})
    assert db.execute("SELECT DISTINCT status FROM deliveries").fetchall() == [("sent",)]
