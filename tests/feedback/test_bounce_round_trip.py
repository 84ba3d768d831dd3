"""End to end, through the commands: a digest is built and sent over SMTP (aiosmtpd on
127.0.0.1) with VERP on; a gateway returns one subscriber's copy with a bounce that hides the
recipient, sent to that message's own return path; `digest bounces process` reads it from a
Maildir; that subscriber is bounced and suppressed, the next digest is not sent to them, and
nobody else is touched."""

from __future__ import annotations

import mailbox
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from digest.audience.subscriptions import subscriber_history
from digest.cli import App
from digest.verp import read_bounce_address

DATA = Path(__file__).parents[1] / "data" / "bounces"
PEOPLE = ["ann@example.com", "ben@example.com", "cat@example.com", "dan@example.com"]
# The gateway's bounce of the fixture, whose VERP address is replaced by the real one.
FIXTURE_RETURN_PATH = b"bounces+ofjrtiaxok45ihezgi@news.example.org"


@pytest.fixture
def clock(monkeypatch):
    """The CLI reads the clock only through App.now(): a settable one."""
    state = {"now": datetime(2025, 1, 21, 7, 5, tzinfo=UTC)}
    monkeypatch.setattr(App, "now", lambda self: state["now"])
    return state


def history(db) -> dict[str, tuple]:
    out = {}
    for email in PEOPLE:
        h = subscriber_history(db, email)
        out[email] = (
            tuple(str(s.status) for s in h.subscriptions),
            h.suppression,
            tuple(h.events),
        )
    return out


def test_a_returned_digest_bounces_its_subscriber_and_no_one_else(
    db, run, newsroom, smtp_server, clock, tmp_path
) -> None:
    config = tmp_path / "digest.toml"
    config.write_text('[bounces]\naddress = "bounces@news.example.com"\nverp = true\n')
    world = newsroom.add_list(tags=("Kenya",), timezone="UTC")
    newsroom.add_article("Rains return", datetime(2025, 1, 20, 9, tzinfo=UTC), tags=["Kenya"])
    newsroom.add_article("Tea prices", datetime(2025, 1, 21, 9, tzinfo=UTC), tags=["Kenya"])
    for email in PEOPLE:
        newsroom.subscribe(world, email)
    server = smtp_server()

    built = run("--config", str(config), "build", "--list", "world", "--date", "2025-01-21")
    assert built.exit_code == 0, built.output
    sent = run("--config", str(config), "send", "--smtp", server.url())
    assert sent.exit_code == 0, sent.output
    first = {item.rcpt_to[0]: item.mail_from for item in server.handler.received}
    assert sorted(first) == PEOPLE
    # Every envelope sender is the bounce address with a token naming that delivery.
    deliveries = dict(db.execute("SELECT email, id FROM deliveries").fetchall())
    for email, sender in first.items():
        assert sender.startswith("bounces+") and sender.endswith("@news.example.com")
        assert read_bounce_address(sender, b"test-secret") == deliveries[email]

    # ben's copy comes back from a gateway that does not say who the recipient was.
    dsn = (DATA / "verp-hidden-recipient.eml").read_bytes()
    assert b"ben@example.com" not in dsn
    dsn = dsn.replace(FIXTURE_RETURN_PATH, first["ben@example.com"].encode())
    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    box.add(dsn)
    before = history(db)

    clock["now"] += timedelta(hours=1)
    processed = run("bounces", "process", "--maildir", str(tmp_path / "Maildir"))
    assert processed.exit_code == 0, processed.output
    assert processed.output.splitlines() == [
        "ben@example.com: bounced and suppressed: 5.1.1 Reason: 550 5.1.1 mailbox unavailable",
        "1 message: 1 bounced",
    ]
    after = history(db)
    assert {e for e in PEOPLE if after[e] != before[e]} == {"ben@example.com"}
    ben = subscriber_history(db, "ben@example.com")
    assert [str(s.status) for s in ben.subscriptions] == ["bounced"]
    assert ben.suppression is not None and ben.suppression.source == "bounce-mailbox"
    assert "5.1.1 mailbox unavailable" in (ben.suppression.reason or "")

    shown = run("deliveries")
    header, row = shown.output.splitlines()[:2]
    assert header.split()[-2:] == ["bounced", "complaints"]
    assert row.split()[-2:] == ["1", "0"]

    # The next day's digest goes to everyone but ben.
    clock["now"] = datetime(2025, 1, 22, 7, 5, tzinfo=UTC)
    newsroom.add_article("Harvest", datetime(2025, 1, 21, 15, tzinfo=UTC), tags=["Kenya"])
    built = run("--config", str(config), "build", "--list", "world", "--date", "2025-01-22")
    assert built.exit_code == 0, built.output
    server.handler.received.clear()
    assert run("--config", str(config), "send", "--smtp", server.url()).exit_code == 0
    assert sorted(r for item in server.handler.received for r in item.rcpt_to) == [
        "ann@example.com",
        "cat@example.com",
        "dan@example.com",
    ]
    assert {e for e in PEOPLE if history(db)[e] != before[e]} == {"ben@example.com"}
