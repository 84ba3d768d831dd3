"""At send time a failure belongs to the delivery that failed: a message that cannot be made
is recorded failed with the reason and the other deliveries go out."""

from __future__ import annotations

from datetime import UTC, datetime

from digest.config import load_config, parse_smtp_url
from digest.delivery.send import send_pending
from digest.delivery.transports import SmtpTransport

NOW = datetime(2025, 1, 21, 7, 0, tzinfo=UTC)


def test_a_message_that_cannot_be_made_fails_alone(db, newsletter, smtp_server):
    newsletter.make(3)
    # An address stored before addresses were validated (an old database): it cannot be
    # written in a To header. No library path stores one, so it is written directly.
    db.execute("UPDATE deliveries SET email = 'p2 <x>@example.com' WHERE email = 'p2@example.com'")
    server = smtp_server()
    transport = SmtpTransport([parse_smtp_url(server.url())], timeout=5)
    report = send_pending(
        db, load_config(None, env={}), secret=b"s", clock=lambda: NOW, transport=transport
    )
    assert (report.sent, report.failed) == (2, 1)
    (failure,) = report.failures
    assert failure.reply.startswith("message could not be made: address")
    assert sorted(server.handler.recipients()) == ["p1@example.com", "p3@example.com"]
    status = dict(db.execute("SELECT email, status FROM deliveries").fetchall())
    assert status["p2 <x>@example.com"] == "failed"
