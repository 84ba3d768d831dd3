"""send_pending against a real aiosmtpd server: what the server received is compared with the
ledger, message by message, with faults injected through the server's handler."""

from __future__ import annotations

import email
import email.policy
import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from conftest import BUILT_AT, SmtpHandler

from digest.audience.subscriptions import unsubscribe
from digest.audience.suppressions import suppress
from digest.config import load_config, parse_smtp_url
from digest.delivery.send import send_pending
from digest.delivery.transports import SmtpTransport
from digest.errors import NotFound
from digest.store.instance import instance_id
from digest.tokens import read_token

SECRET = b"test-secret"


class Clock:
    def __init__(self, now=BUILT_AT + timedelta(hours=1)):
        self.now = now

    def __call__(self):
        return self.now


KEY = "0123456789abcdef"  # a variant's placeholder key


def make_config(tmp_path, **send):
    lines = ["[send]"] + [f"{k} = {v}" for k, v in send.items()]
    path = tmp_path / "digest.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_config(path, env={})


def transport(server, **kwargs):
    kwargs.setdefault("timeout", 5)
    return SmtpTransport([parse_smtp_url(server.url())], **kwargs)


def ledger(db) -> dict[str, dict]:
    return {r["email"]: r for r in db.query("SELECT * FROM deliveries ORDER BY id")}


def check_messages(db, handler: SmtpHandler) -> Counter:
    """Every received message is addressed to its envelope recipient, carries that recipient's
    own unsubscribe link (header, HTML and text) and the ledger's Message-ID for it."""
    rows = ledger(db)
    seen = Counter()
    for item in handler.received:
        assert len(item.rcpt_to) == 1
        rcpt = item.rcpt_to[0]
        seen[rcpt] += 1
        msg = email.message_from_bytes(item.data, policy=email.policy.default)
        assert msg["To"].addresses[0].addr_spec == rcpt
        sub_id = rows[rcpt]["subscriber_id"]
        header_url = re.match(r"<([^>]+)>", msg["List-Unsubscribe"]).group(1)
        token = header_url.rsplit("/", 1)[1]
        assert read_token(SECRET, token, "unsubscribe", now=BUILT_AT).subscriber_id == sub_id
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        assert header_url in text
        assert f'href="{header_url}"' in html
        instance = instance_id(db)  # this database's random part: never reused elsewhere
        assert len(instance) == 10
        assert msg["Message-ID"] == f"<world.daily.2025-01-21.{sub_id}.{instance}@news.example.com>"
        if rows[rcpt]["status"] == "sent":
            assert rows[rcpt]["message_id"] == msg["Message-ID"]
    return seen


def test_sends_each_recipient_their_own_message_once(db, newsletter, smtp_server, tmp_path):
    server = smtp_server()
    newsletter.make(12)
    report = send_pending(
        db,
        make_config(tmp_path),
        secret=SECRET,
        clock=Clock(),
        transport=transport(server),
        concurrency=3,
        batch_size=5,
    )
    assert (report.sent, report.deferred, report.failed, report.skipped) == (12, 0, 0, 0)
    seen = check_messages(db, server.handler)
    assert seen == Counter({f"p{i}@example.com": 1 for i in range(1, 13)})
    rows = ledger(db)
    assert {r["status"] for r in rows.values()} == {"sent"}
    assert all(r["reply"].startswith("250 2.0.0 queued as") for r in rows.values())
    assert all(r["sent_at"] and r["lease_owner"] is None for r in rows.values())
    assert all(r["attempts"] == 1 for r in rows.values())
    # Nothing is owed any more: a second run sends nothing.
    again = send_pending(
        db, make_config(tmp_path), secret=SECRET, clock=Clock(), transport=transport(server)
    )
    assert again.total == 0 and len(server.handler.received) == 12


def test_unsubscribed_or_suppressed_since_the_build_get_nothing(
    db, newsletter, smtp_server, tmp_path
):
    server = smtp_server()
    newsletter.make(4)
    since = datetime(2025, 1, 21, 5, tzinfo=UTC)
    unsubscribe(db, "p2@example.com", source="cli", reason="changed their mind", now=since)
    suppress(db, "p3@example.com", "complaint", source="cli", now=since)
    report = send_pending(
        db, make_config(tmp_path), secret=SECRET, clock=Clock(), transport=transport(server)
    )
    assert (report.sent, report.skipped) == (2, 2)
    assert sorted(server.handler.recipients()) == ["p1@example.com", "p4@example.com"]
    rows = ledger(db)
    assert rows["p2@example.com"]["status"] == "skipped"
    assert rows["p2@example.com"]["reply"] == "subscription is unsubscribed"
    assert rows["p3@example.com"]["reply"] == "address is suppressed (complaint)"


def test_faults_are_deferred_failed_or_bounced_and_retries_deliver_once(
    db, newsletter, smtp_server, tmp_path
):
    handler = SmtpHandler(
        faults={
            "p2@example.com": ["451 4.7.1 greylisted, try later"],
            "p3@example.com": ["550 5.1.1 no such user"],
            "p4@example.com": ["drop"],
            "p5@example.com": ["421 4.3.2 service shutting down"],
            "p6@example.com": ["554 5.7.1 rejected by policy"],
            "p7@example.com": ["451 4.3.0 again", "451 4.3.0 and again"],
        }
    )
    server = smtp_server(handler)
    newsletter.make(10)
    config = make_config(tmp_path)
    clock = Clock()
    import random

    report = send_pending(
        db,
        config,
        secret=SECRET,
        clock=clock,
        transport=transport(server, failure_threshold=100),
        concurrency=2,
        rng=random.Random(1),
    )
    assert (report.sent, report.deferred, report.failed) == (4, 4, 2)
    assert {f.email for f in report.failures} == {"p3@example.com", "p6@example.com"}
    rows = ledger(db)
    assert rows["p2@example.com"]["status"] == "deferred"
    assert rows["p2@example.com"]["reply"] == "451 4.7.1 greylisted, try later"
    assert "lost" in rows["p4@example.com"]["reply"]
    assert rows["p5@example.com"]["reply"] == "421 4.3.2 service shutting down"
    for who in ("p2", "p4", "p5", "p7"):
        retry = rows[f"{who}@example.com"]["next_attempt_at"]
        assert clock.now + timedelta(minutes=2.5) <= _dt(retry) <= clock.now + timedelta(minutes=5)
    # 5.1.1: failed, the subscriber bounced and suppressed with the reply as reason.
    assert rows["p3@example.com"]["status"] == "failed"
    status = db.execute(
        "SELECT s.status FROM subscriptions s JOIN subscribers p ON p.id = s.subscriber_id"
        " WHERE p.email = 'p3@example.com'"
    ).fetchone()[0]
    assert status == "bounced"
    assert db.execute("SELECT reason FROM suppressions WHERE email = 'p3@example.com'").fetchone()[
        0
    ] == ("550 5.1.1 no such user")
    # ... and recorded as a hard bounce report about that delivery (dashboard, subscriber page).
    (event,) = db.query("SELECT * FROM bounce_events")
    assert (event["email"], event["kind"], event["source"], event["status"]) == (
        "p3@example.com", "hard", "relay", "5.1.1",
    )  # fmt: skip
    assert event["delivery_id"] == rows["p3@example.com"]["id"]
    # 5.7.1 is a permanent failure but not a dead address.
    assert rows["p6@example.com"]["status"] == "failed"
    assert (
        db.execute("SELECT 1 FROM suppressions WHERE email = 'p6@example.com'").fetchone() is None
    )

    # Not yet due: nothing is sent.
    assert (
        send_pending(db, config, secret=SECRET, clock=clock, transport=transport(server)).total == 0
    )
    clock.now += timedelta(minutes=5)
    second = send_pending(db, config, secret=SECRET, clock=clock, transport=transport(server))
    assert (second.sent, second.deferred, second.failed) == (3, 1, 0)
    clock.now += timedelta(minutes=10)
    third = send_pending(db, config, secret=SECRET, clock=clock, transport=transport(server))
    assert (third.sent, third.deferred, third.failed) == (1, 0, 0)

    seen = check_messages(db, handler)
    expected = {f"p{i}@example.com" for i in range(1, 11)} - {"p3@example.com", "p6@example.com"}
    assert seen == Counter({e: 1 for e in expected})
    rows = ledger(db)
    assert {e for e, r in rows.items() if r["status"] == "sent"} == expected
    assert rows["p7@example.com"]["attempts"] == 3


def _dt(text):
    from digest.timeutil import from_iso

    return from_iso(text)


def test_server_stalling_past_the_timeout_defers(db, newsletter, smtp_server, tmp_path):
    handler = SmtpHandler(faults={"p1@example.com": ["stall"]})
    server = smtp_server(handler)
    newsletter.make(3)
    report = send_pending(
        db,
        make_config(tmp_path),
        secret=SECRET,
        clock=Clock(),
        transport=transport(server, timeout=0.5),
        concurrency=1,
    )
    assert (report.sent, report.deferred) == (2, 1)
    assert ledger(db)["p1@example.com"]["reply"].endswith("timed out")
    assert sorted(handler.recipients()) == ["p2@example.com", "p3@example.com"]


def test_deferred_past_max_age_fails(db, newsletter, smtp_server, tmp_path):
    handler = SmtpHandler(faults={"p1@example.com": ["451 4.2.0 mailbox busy"] * 3})
    server = smtp_server(handler)
    newsletter.make(1)
    config = make_config(tmp_path, max_age_hours=2)
    clock = Clock(BUILT_AT + timedelta(minutes=90))
    first = send_pending(db, config, secret=SECRET, clock=clock, transport=transport(server))
    assert first.deferred == 1
    # The last retry is scheduled at the deadline, not past it.
    assert _dt(ledger(db)["p1@example.com"]["next_attempt_at"]) <= BUILT_AT + timedelta(hours=2)
    clock.now = BUILT_AT + timedelta(hours=2)
    last = send_pending(db, config, secret=SECRET, clock=clock, transport=transport(server))
    assert last.failed == 1
    row = ledger(db)["p1@example.com"]
    assert row["status"] == "failed"
    assert row["reply"] == (
        "gave up after 2 attempts over 2 hours; last reply: 451 4.2.0 mailbox busy"
    )


def test_retry_now_ignores_the_backoff(db, newsletter, smtp_server, tmp_path):
    handler = SmtpHandler(faults={"p1@example.com": ["451 4.2.0 later"]})
    server = smtp_server(handler)
    newsletter.make(2)
    config = make_config(tmp_path)
    send_pending(db, config, secret=SECRET, clock=Clock(), transport=transport(server))
    report = send_pending(
        db, config, secret=SECRET, clock=Clock(), transport=transport(server), retry_now=True
    )
    assert report.sent == 1 and sorted(handler.recipients()) == ["p1@example.com", "p2@example.com"]


def test_limit_hourly_rate_and_connection_reuse(db, newsletter, smtp_server, tmp_path):
    server = smtp_server()
    newsletter.make(10)
    config = make_config(tmp_path, rate_per_hour=7)
    clock = Clock()
    first = send_pending(
        db,
        config,
        secret=SECRET,
        clock=clock,
        transport=transport(server, per_connection=2),
        concurrency=1,
        limit=4,
    )
    assert first.sent == 4 and first.stopped is None
    assert server.handler.sessions == 2  # 2 messages per connection
    second = send_pending(
        db, config, secret=SECRET, clock=clock, transport=transport(server), concurrency=1
    )
    assert second.sent == 3
    assert "hourly rate limit reached (7 messages per hour)" in second.stopped
    clock.now += timedelta(hours=1, seconds=1)
    third = send_pending(db, config, secret=SECRET, clock=clock, transport=transport(server))
    assert third.sent == 3
    assert Counter(server.handler.recipients()) == Counter(
        {f"p{i}@example.com": 1 for i in range(1, 11)}
    )


def test_only_the_chosen_list_or_digest(db, newsletter, smtp_server, tmp_path):
    server = smtp_server()
    world = newsletter.make(2, slug="world")
    newsletter.make(2, slug="tech")
    config = make_config(tmp_path)
    report = send_pending(
        db, config, secret=SECRET, clock=Clock(), transport=transport(server), list_slug="tech"
    )
    assert report.sent == 2 and set(report.by_digest) == {2}
    report = send_pending(
        db, config, secret=SECRET, clock=Clock(), transport=transport(server), digest_id=world
    )
    assert report.sent == 2 and set(report.by_digest) == {world}
    with pytest.raises(NotFound, match="no list 'nope'"):
        send_pending(db, config, secret=SECRET, list_slug="nope")
    with pytest.raises(NotFound, match="no digest with id 99"):
        send_pending(db, config, secret=SECRET, digest_id=99)


def test_dry_run_sends_and_changes_nothing(db, newsletter, smtp_server, tmp_path):
    server = smtp_server()
    newsletter.make(7)
    db.execute("UPDATE subscriptions SET status = 'unsubscribed' WHERE subscriber_id = 7")
    before = list(db.query("SELECT * FROM deliveries"))
    report = send_pending(
        db,
        make_config(tmp_path),
        secret=SECRET,
        clock=Clock(),
        transport=transport(server),
        dry_run=True,
    )
    assert [(p.digest_id, p.due, p.would_skip) for p in report.planned] == [(1, 7, 1)]
    assert report.planned[0].first_recipients == [f"p{i}@example.com" for i in range(1, 6)]
    assert list(db.query("SELECT * FROM deliveries")) == before
    assert server.handler.received == [] and server.handler.sessions == 0


# --- the commands ------------------------------------------------------------------------


def test_cli_send_summary_failures_and_exit_status(
    run, db, newsletter, smtp_server, tmp_path, monkeypatch
):
    handler = SmtpHandler(faults={"p2@example.com": ["550 5.1.1 user unknown"]})
    server = smtp_server(handler)
    newsletter.make(3)
    result = run("send", "--smtp", server.url())
    assert result.exit_code == 1
    assert "sent 2, deferred 0, failed 1, skipped 0" in result.output
    assert "failed: p2@example.com (digest 1): 550 5.1.1 user unknown" in result.output

    result = run("deliveries")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == [
        "digest",
        "list",
        "period",
        *["queued", "sent", "deferred", "failed", "skipped"],
        *["bounced", "complaints"],  # bounce reports: the relay's refusals, and what came back
    ]
    assert lines[1].split() == [
        *["1", "world", "daily", "2025-01-21", "0", "2", "0", "1", "0"],
        *["1", "0"],  # the 550 5.1.1 at send time is a hard bounce
    ]
    assert "p2@example.com (digest 1, 1 attempts): 550 5.1.1 user unknown" in result.output

    data = json.loads(run("deliveries", "--json").output)
    assert data["digests"][0]["counts"]["sent"] == 2
    assert [d["email"] for d in data["deliveries"]] == ["p2@example.com"]

    listed = run("deliveries", "--status", "sent").output
    assert "p1@example.com" in listed and "p3@example.com" in listed

    assert run("send", "--smtp", server.url()).output.strip() == "nothing to send"


def test_cli_dry_run_and_outbox(run, db, newsletter, tmp_path):
    import mailbox

    newsletter.make(3)
    result = run("send", "--dry-run")
    assert result.exit_code == 0
    assert result.output.splitlines() == [
        "digest 1 (world daily 2025-01-21): 3 to send; first: "
        "p1@example.com, p2@example.com, p3@example.com",
        "dry run: 3 deliveries would be sent; nothing was sent",
    ]
    result = run("send", "--outbox", "out")
    assert result.exit_code == 0, result.output
    assert "sent 3, deferred 0, failed 0, skipped 0" in result.output
    box = mailbox.Maildir(tmp_path / "out", create=False)
    recipients = sorted(m["Delivered-To"] for m in box)
    assert recipients == ["p1@example.com", "p2@example.com", "p3@example.com"]
    assert {r["status"] for r in db.query("SELECT status FROM deliveries")} == {"sent"}


def test_cli_errors_are_one_line(run, db, newsletter):
    newsletter.make(1)
    result = run("send")
    assert result.exit_code == 1
    assert result.output.startswith("Error: no SMTP relay configured")
    result = run("send", "--smtp", "ftp://x")
    assert result.exit_code == 1 and "scheme must be one of" in result.output
    result = run("send", "--smtp", "smtp://127.0.0.1:1", "--outbox", "o")
    assert result.exit_code == 1 and "not both" in result.output
    assert run("send", "--list", "nope").output.startswith("Error: no list 'nope'")
    assert db.execute("SELECT status, attempts FROM deliveries").fetchall() == [("queued", 0)]


@pytest.mark.parametrize("command", ["send", "deliveries"])
def test_commands_have_help_with_example(run, command):
    result = run(command, "--help")
    assert result.exit_code == 0 and "Example:" in result.output


def test_data_payload_is_dot_stuffed_exactly_like_smtplib(db, newsletter, smtp_server, tmp_path):
    """The pre-stuffed DATA payload equals smtplib's quoting of the assembled message, and the
    message equals Assembler.message's, including names and template lines starting with '.'."""
    import smtplib

    from digest.delivery.personalise import Assembler, Recipient
    from digest.delivery.send import _WireTemplate
    from digest.delivery.transports import dot_stuff
    from digest.issues.template import build_template, html_placeholder

    template = build_template(
        [("From", "news@example.com"), ("Subject", ".dot")],
        ".starts with a dot\n" + text_placeholder_line(),
        "<p>\n.x " + html_placeholder("NAME", KEY) + "</p>\n" + "." * 300,
        boundary_seed="s",
        key=KEY,
    )
    newsletter.make(3)
    db.execute("UPDATE variants SET template = ?", [template])
    db.execute("UPDATE subscribers SET name = '.Dot ' || id || ' ' || '.' || hex(randomblob(60))")
    assembler = Assembler(db, base_url="http://127.0.0.1:8080/.x", secret=SECRET)
    info = assembler.variant(1)
    wire = _WireTemplate(info.compiled)
    assert wire.usable
    from digest.delivery.personalise import recipient_values

    for row in db.query("SELECT id, email, name FROM subscribers"):
        who = Recipient(row["id"], row["email"], row["name"])
        values = recipient_values(info, who, base_url=assembler.base_url, secret=SECRET)
        data = assembler.message(1, who).data
        assert b"\n." in data and b"=\r\n.Dot" in data  # lines and values starting with '.'
        assert info.compiled.fill(values) == data
        expected = smtplib._quote_periods(data)
        assert wire.fill(values) == expected == dot_stuff(data)
    # End to end: the server receives the original message (it removes the stuffing).
    server = smtp_server()
    config = tmp_path / "site.toml"
    config.write_text('[site]\nbase_url = "http://127.0.0.1:8080/.x"\n', encoding="utf-8")
    report = send_pending(
        db, load_config(config, env={}), secret=SECRET, clock=Clock(), transport=transport(server)
    )
    assert report.sent == 3
    received = {item.rcpt_to[0]: item.data for item in server.handler.received}
    for row in db.query("SELECT id, email, name FROM subscribers"):
        who = Recipient(row["id"], row["email"], row["name"])
        assert received[row["email"]].replace(b"\r\n", b"\n") == assembler.message(
            1, who
        ).data.replace(b"\r\n", b"\n")


def text_placeholder_line():
    from digest.issues.template import text_placeholder

    return "Hi " + text_placeholder("NAME", KEY) + "\n"
