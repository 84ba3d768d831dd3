"""The notices outbox (``delivery.notices``): the subscribe form only queues a confirmation
email; ``flush_notices`` sends it with retries, leases and per-notice containment; ``digest
run`` ticks, ``digest send`` and the web app's worker thread all flush it. Real SQLite files
and a real aiosmtpd server on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
import logging
import re
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from conftest import WEB_SECRET

from digest.audience.subscriptions import remove_subscriber
from digest.audience.suppressions import suppress
from digest.config import load_config
from digest.delivery.notices import (
    NOTICE_MAX_AGE,
    flush_notices,
    queued_notices,
    request_subscription,
)

NOW = datetime(2025, 1, 21, 7, 0, tzinfo=UTC)


@pytest.fixture
def world(newsroom):
    return newsroom.add_list(tags=("Haiti", "Kenya"), title="World Desk")


@pytest.fixture
def smtp(smtp_server):
    return smtp_server()


def config_for(server, tmp_path=None, toml: str = ""):
    if tmp_path is None:
        return load_config(None, env={"DIGEST_SMTP_URL": server.url()})
    path = tmp_path / "digest.toml"
    path.write_text(toml, encoding="utf-8")
    return load_config(path, env={"DIGEST_SMTP_URL": server.url()})


def notices(db) -> list[dict]:
    return list(db.query("SELECT * FROM notices ORDER BY id"))


def subscribe(db, config, mlist, address, now=NOW, **form):
    return request_subscription(db, config, mlist, address, now=now, **form)


def test_the_request_only_queues_and_the_flush_sends(db, world, smtp):
    config = config_for(smtp)
    result = subscribe(db, config, world, "ann@example.com", name="Ann")
    assert (result.status, result.queued) == ("pending", True)
    assert smtp.handler.received == []  # nothing sent while the request ran
    [row] = notices(db)
    assert (row["kind"], row["status"], row["created_at"]) == (
        "confirm", "queued", "2025-01-21T07:00:00.000000+00:00",
    )  # fmt: skip
    report = flush_notices(db, config, secret=WEB_SECRET, now=NOW + timedelta(seconds=5))
    assert (report.sent, report.total, report.error) == (1, 1, None)
    [received] = smtp.handler.received
    message = email.message_from_bytes(received.data, policy=email.policy.default)
    assert message["Subject"] == "Confirm your subscription to World Desk"
    assert message["Date"].datetime == NOW  # the link was issued at the request
    assert re.search(r"/c/[A-Za-z0-9_-]+", message.get_body(("plain",)).get_content())
    assert notices(db)[0]["status"] == "sent" and queued_notices(db) == 0
    # Nothing is sent twice.
    assert flush_notices(db, config, secret=WEB_SECRET, now=NOW + timedelta(minutes=1)).total == 0
    assert len(smtp.handler.received) == 1


def test_a_form_sent_again_while_queued_renews_the_one_notice(db, world, smtp):
    config = config_for(smtp)
    subscribe(db, config, world, "ann@example.com")
    subscribe(db, config, world, "ann@example.com", now=NOW + timedelta(minutes=3))
    [row] = notices(db)
    assert row["created_at"].startswith("2025-01-21T07:03")
    flush_notices(db, config, secret=WEB_SECRET, now=NOW + timedelta(minutes=4))
    assert len(smtp.handler.received) == 1


def test_suppressed_and_bounced_addresses_queue_nothing(db, world, smtp, newsroom):
    config = config_for(smtp)
    newsroom.subscribe(world, "bee@example.com", status="bounced")
    suppress(db, "sue@example.com", "spam trap", source="cli", now=NOW)
    for address in ("bee@example.com", "sue@example.com"):
        result = subscribe(db, config, world, address)
        assert not result.queued and result.note.startswith("not mailed")
    assert notices(db) == []


def test_a_temporary_failure_is_retried_with_backoff_then_sent(db, world, smtp, caplog):
    smtp.handler.faults["ann@example.com"] = ["451 4.3.0 try again later"]
    config = config_for(smtp)
    subscribe(db, config, world, "ann@example.com")
    first = flush_notices(db, config, secret=WEB_SECRET, now=NOW)
    assert (first.deferred, first.sent) == (1, 0)
    assert "confirmation email to ann@example.com for list world not sent: 451" in caplog.text
    [row] = notices(db)
    assert (row["status"], row["attempts"], row["lease_until"]) == ("queued", 1, None)
    assert row["next_attempt_at"].startswith("2025-01-21T07:01")
    assert flush_notices(db, config, secret=WEB_SECRET, now=NOW + timedelta(seconds=30)).total == 0
    second = flush_notices(db, config, secret=WEB_SECRET, now=NOW + timedelta(minutes=1))
    assert second.sent == 1 and len(smtp.handler.received) == 1


def test_a_relay_that_keeps_deferring_is_given_up_after_the_max_age(db, world, smtp):
    smtp.handler.faults["ann@example.com"] = ["451 4.3.0 later"] * 100
    config = config_for(smtp)
    subscribe(db, config, world, "ann@example.com")
    flush_notices(db, config, secret=WEB_SECRET, now=NOW)
    late = flush_notices(db, config, secret=WEB_SECRET, now=NOW + NOTICE_MAX_AGE)
    assert late.failed == 1
    assert notices(db)[0]["status"] == "failed" and queued_notices(db) == 0


def test_a_permanent_refusal_fails_that_notice_alone(db, world, smtp, caplog):
    smtp.handler.faults["ann@example.com"] = ["550 5.1.1 no such user"]
    config = config_for(smtp)
    subscribe(db, config, world, "ann@example.com")
    subscribe(db, config, world, "bob@example.com")
    report = flush_notices(db, config, secret=WEB_SECRET, now=NOW)
    assert (report.failed, report.sent) == (1, 1)
    assert [r["status"] for r in notices(db)] == ["failed", "sent"]
    assert notices(db)[0]["reply"].startswith("550 5.1.1")
    assert "confirmation email to ann@example.com for list world not sent: 550" in caplog.text


def test_an_address_suppressed_or_removed_meanwhile_is_not_mailed(db, world, smtp):
    config = config_for(smtp)
    subscribe(db, config, world, "ann@example.com")
    subscribe(db, config, world, "bob@example.com")
    suppress(db, "ann@example.com", "complaint", source="cli", now=NOW)
    remove_subscriber(db, "bob@example.com", now=NOW)  # its notice goes with it
    report = flush_notices(db, config, secret=WEB_SECRET, now=NOW)
    assert (report.skipped, report.sent) == (1, 0) and smtp.handler.received == []
    [row] = notices(db)
    assert (row["status"], row["reply"]) == ("skipped", "not mailed: address is suppressed")


def test_no_relay_leaves_everything_queued(db, world):
    config = load_config(None, env={})
    subscribe(db, config, world, "ann@example.com")
    subscribe(db, config, world, "bob@example.com")
    report = flush_notices(db, config, secret=WEB_SECRET, now=NOW)
    assert report.error is not None and "no SMTP relay configured" in report.error
    assert report.total == 0 and queued_notices(db) == 2
    assert all(r["lease_until"] is None and r["attempts"] == 0 for r in notices(db))


def test_a_message_that_cannot_be_made_fails_alone_and_the_flush_goes_on(
    db, world, smtp, tmp_path, caplog
):
    (tmp_path / "mine" / "email").mkdir(parents=True)
    (tmp_path / "mine" / "email" / "confirm.txt").write_text("{{ no_such_function() }}\n")
    config = config_for(smtp, tmp_path, 'templates_dir = "mine"\n')
    subscribe(db, config, world, "ann@example.com")
    subscribe(db, config, world, "bob@example.com")
    with caplog.at_level(logging.ERROR):
        report = flush_notices(db, config, secret=WEB_SECRET, now=NOW)
    assert (report.failed, report.error) == (2, None)
    assert [r["status"] for r in notices(db)] == ["failed", "failed"]
    assert notices(db)[0]["reply"].startswith("cannot make the email:")
    assert caplog.text.count("cannot be made") == 2 and "Traceback" not in caplog.text


def test_two_senders_at_once_send_each_notice_once(db_path, db, world, smtp):
    from digest.store import open_db

    smtp.handler.hold = lambda item: time.sleep(0.05)
    config = config_for(smtp)
    for i in range(12):
        subscribe(db, config, world, f"p{i}@example.com")
    reports = []

    def sender():
        own = open_db(db_path)
        try:
            reports.append(flush_notices(own, config, secret=WEB_SECRET, now=NOW))
        finally:
            own.close()

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(smtp.handler.recipients()) == sorted(f"p{i}@example.com" for i in range(12))
    assert sum(r.sent for r in reports) == 12 and queued_notices(db) == 0


def test_digest_run_and_digest_send_flush_the_outbox(run, db, world, smtp, monkeypatch):
    config = config_for(smtp)
    subscribe(db, config, world, "ann@example.com")
    monkeypatch.setenv("DIGEST_SMTP_URL", smtp.url())
    # A dry run or an outbox review never sends them.
    assert "notices" not in run("send", "--dry-run").output
    assert queued_notices(db) == 1
    result = run("run", "--once", "--now", "2025-01-21T07:01:00Z")
    assert result.exit_code == 0, result.output
    assert smtp.handler.recipients() == ["ann@example.com"] and queued_notices(db) == 0

    subscribe(db, config, world, "bob@example.com", now=NOW + timedelta(minutes=5))
    monkeypatch.setenv("DIGEST_SECRET", "test-secret")
    result = run("send")
    assert result.exit_code == 0, result.output
    assert "notices: sent 1, deferred 0, failed 0, skipped 0" in result.output
    assert smtp.handler.recipients() == ["ann@example.com", "bob@example.com"]
    assert "notices" not in run("send").output  # nothing left: nothing said


def test_the_web_worker_sends_what_an_earlier_process_left_queued(db, world, smtp, make_web_app):
    """The outbox survives the process: a notice queued before a crash is sent by the next
    web app's worker, which starts with its first request."""
    config = config_for(smtp)
    subscribe(db, config, world, "ann@example.com")
    app = make_web_app(f'[[smtp]]\nurl = "{smtp.url()}"\n')
    assert app.test_client().get("/").status_code == 200
    deadline = time.monotonic() + 15
    while not smtp.handler.received:
        assert time.monotonic() < deadline, "the worker did not send the queued notice"
        time.sleep(0.02)
    assert smtp.handler.recipients() == ["ann@example.com"]


def test_a_tick_without_a_relay_reports_it_and_logs_it_once(db, world, caplog):
    from digest.scheduler.tick import tick

    config = load_config(None, env={})
    subscribe(db, config, world, "ann@example.com")
    logged: set[str] = set()
    with caplog.at_level(logging.ERROR, logger="digest.scheduler"):
        for minute in (1, 2, 3):
            report = tick(db, config, now=NOW + timedelta(minutes=minute), secret=WEB_SECRET,
                          logged=logged)  # fmt: skip
            assert any("sending notices failed: no SMTP relay configured" in e
                       for e in report.errors)  # fmt: skip
    assert caplog.text.count("sending notices failed") == 1
    assert queued_notices(db) == 1
