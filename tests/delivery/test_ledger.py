"""The delivery ledger: leases, recovery, backoff, and the m004 migration."""

from __future__ import annotations

import random
from datetime import timedelta

from conftest import BUILT_AT

from digest.delivery import ledger
from digest.store import open_db
from digest.timeutil import from_iso

NOW = BUILT_AT + timedelta(hours=1)


def states(db):
    return db.execute(
        "SELECT id, status, lease_owner, lease_until FROM deliveries ORDER BY id"
    ).fetchall()


def test_claims_never_overlap_and_leases_expire(db, newsletter):
    newsletter.make(5)
    a = ledger.claim(db, "h/1/a", now=NOW, lease_seconds=60, limit=3)
    b = ledger.claim(db, "h/2/b", now=NOW, lease_seconds=60, limit=10)
    assert [d.id for d in a] == [1, 2, 3] and [d.id for d in b] == [4, 5]
    assert a[0].email == "p1@example.com" and a[0].name == "Person 1" and a[0].list_id == 1
    assert ledger.claim(db, "h/3/c", now=NOW, lease_seconds=60, limit=10) == []
    assert ledger.count_due(db, now=NOW) == 0
    # Still queued: a lease is not an outcome.
    assert {s for _, s, _, _ in states(db)} == {"queued"}
    # After the lease expires, anyone may take the rows again.
    later = NOW + timedelta(seconds=61)
    assert len(ledger.claim(db, "h/3/c", now=later, lease_seconds=60, limit=10)) == 5


def test_renew_and_release(db, newsletter):
    newsletter.make(3)
    ledger.claim(db, "h/1/a", now=NOW, lease_seconds=60, limit=3)
    assert ledger.renew(db, "h/1/a", now=NOW + timedelta(seconds=50), lease_seconds=60) == 3
    assert ledger.claim(db, "x", now=NOW + timedelta(seconds=100), lease_seconds=60, limit=9) == []
    assert ledger.release(db, "h/1/a", [2]) == 1
    assert [d.id for d in ledger.claim(db, "x", now=NOW, lease_seconds=60, limit=9)] == [2]
    assert ledger.release(db, "h/1/a") == 2
    assert states(db)[0][2:] == (None, None)


def test_recover_releases_only_dead_senders_on_this_host(db, newsletter):
    import socket

    host = socket.gethostname()
    newsletter.make(3)
    ledger.claim(db, f"{host}/111/a", now=NOW, lease_seconds=600, limit=1)
    ledger.claim(db, f"{host}/222/b", now=NOW, lease_seconds=600, limit=1)
    ledger.claim(db, "elsewhere/111/c", now=NOW, lease_seconds=600, limit=1)
    released = ledger.recover(db, alive=lambda pid: pid == 222)
    assert released == 1
    assert [owner for _, _, owner, _ in states(db)] == [None, f"{host}/222/b", "elsewhere/111/c"]


def test_recover_with_a_real_dead_process(db, newsletter):
    import subprocess
    import sys

    newsletter.make(1)
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    import socket

    owner = f"{socket.gethostname()}/{proc.stdout.strip()}/x"
    ledger.claim(db, owner, now=NOW, lease_seconds=600, limit=1)
    assert ledger.recover(db) == 1
    mine = ledger.new_lease_owner()
    ledger.claim(db, mine, now=NOW, lease_seconds=600, limit=1)
    assert ledger.recover(db) == 0  # this process is alive


def test_backoff_grows_with_jitter_and_is_capped():
    rng = random.Random(7)
    for attempts, base in [(1, 5), (2, 10), (3, 20), (5, 80)]:
        for _ in range(20):
            delay = ledger.retry_delay(attempts, rng)
            assert timedelta(minutes=base / 2) <= delay <= timedelta(minutes=base)
    assert ledger.retry_delay(30, rng) <= timedelta(hours=6)
    assert len({ledger.retry_delay(1, rng) for _ in range(10)}) == 10


def test_outcomes(db, newsletter):
    newsletter.make(4)
    d1, d2, d3, d4 = ledger.claim(db, "o", now=NOW, lease_seconds=60, limit=4)
    ledger.record_sent(db, d1.id, reply="250 ok", relay="r", message_id="<m1>", now=NOW)
    status = ledger.record_deferred(
        db,
        d2,
        reply="451 later",
        relay="r",
        message_id="<m2>",
        now=NOW,
        max_age=timedelta(hours=72),
        rng=random.Random(1),
    )
    assert status == "deferred"
    ledger.record_failed(db, d3.id, reply="550 no", relay="r", message_id="<m3>", now=NOW)
    ledger.record_skipped(db, d4.id, reason="subscription is unsubscribed", now=NOW)
    rows = {r["id"]: r for r in db.query("SELECT * FROM deliveries")}
    assert rows[1]["status"] == "sent" and rows[1]["sent_at"] and rows[1]["attempts"] == 1
    assert rows[2]["status"] == "deferred" and from_iso(rows[2]["next_attempt_at"]) > NOW
    assert rows[3]["status"] == "failed" and rows[3]["reply"] == "550 no"
    assert rows[4]["status"] == "skipped" and rows[4]["attempts"] == 0
    assert all(r["lease_owner"] is None for r in rows.values())
    # An outcome never overwrites another final outcome.
    ledger.record_failed(db, d1.id, reply="late", relay="r", message_id=None, now=NOW)
    assert db.execute("SELECT status FROM deliveries WHERE id = 1").fetchone()[0] == "sent"
    assert ledger.sent_since(db, NOW) == 1 and ledger.sent_since(db, NOW + timedelta(1)) == 0
    summary = ledger.summary(db)
    assert summary[0]["counts"] == {
        "queued": 0,
        "sent": 1,
        "deferred": 1,
        "failed": 1,
        "skipped": 1,
    }


def test_claim_uses_the_pending_index(db, newsletter):
    newsletter.make(2)
    where = ledger.due_filter(list_id=None, digest_id=None, retry_now=False)
    plan = " ".join(
        r[3]
        for r in db.execute(
            "EXPLAIN QUERY PLAN SELECT d.id FROM deliveries d INDEXED BY idx_deliveries_pending"
            f" WHERE {where} ORDER BY d.id LIMIT 5",
            {"now": "x"},
        )
    )
    assert "idx_deliveries_pending" in plan and "TEMP B-TREE" not in plan


def test_m004_applies_on_a_database_at_m003(tmp_path):
    from digest.store import migrations

    old = open_db(tmp_path / "old.db", migrate=False, create=True)
    migrations.apply(old, stop_before="m004_ledger")
    assert "idx_deliveries_pending" not in old["deliveries"].indexes.__repr__()
    old.close()
    db = open_db(tmp_path / "old.db", create=True)
    names = {i.name for i in db["deliveries"].indexes}
    assert {"idx_deliveries_pending", "idx_deliveries_sent_at"} <= names
