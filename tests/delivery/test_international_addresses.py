"""Addresses with an internationalised domain or local part: stored in a form every relay can
take (IDNA domains), sent with SMTPUTF8 where the relay offers it, and otherwise failed alone
with a clear reason; never a crash that stops the other deliveries."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, date, datetime

from digest.config import load_config, parse_smtp_url
from digest.delivery.publish import build_digest
from digest.delivery.send import send_pending
from digest.delivery.transports import SmtpTransport

NOW = datetime(2025, 1, 21, 4, 0, tzinfo=UTC)


def _newsletter(db, newsroom):
    mlist = newsroom.add_list()
    newsroom.add_article("Story", datetime(2025, 1, 20, 12, tzinfo=UTC), tags=["Haiti"])
    newsroom.subscribe(mlist, "ann@example.com", name="Ann")
    newsroom.subscribe(mlist, "üser@exämple.com", name="Zoë Ü")
    newsroom.subscribe(mlist, "bob@exämple.com", name="Bob")
    config = load_config(None, env={})
    build_digest(db, config, mlist, "daily", date(2025, 1, 21), now=NOW)
    return config


def _send(db, config, server):
    transport = SmtpTransport([parse_smtp_url(server.url())], timeout=5)
    return send_pending(db, config, secret=b"s", clock=lambda: NOW, transport=transport)


def test_stored_in_idna_form(db, newsroom):
    _newsletter(db, newsroom)
    emails = {r[0] for r in db.execute("SELECT email FROM subscribers")}
    assert emails == {"ann@example.com", "üser@xn--exmple-cua.com", "bob@xn--exmple-cua.com"}


def test_a_relay_with_smtputf8_gets_every_message(db, newsroom, smtp_server):
    config = _newsletter(db, newsroom)
    server = smtp_server(smtputf8=True)
    report = _send(db, config, server)
    assert (report.sent, report.failed) == (3, 0)
    by_rcpt = {m.rcpt_to[0]: m for m in server.handler.received}
    # RFC 6532: the header is UTF-8 (the message went with SMTPUTF8).
    data = by_rcpt["üser@xn--exmple-cua.com"].data.decode("utf-8")
    msg = email.message_from_string(data, policy=email.policy.default)
    assert msg["To"].addresses[0].addr_spec == "üser@xn--exmple-cua.com"
    assert msg["To"].addresses[0].display_name == "Zoë Ü"


def test_without_smtputf8_only_that_delivery_fails_with_a_reason(db, newsroom, smtp_server):
    config = _newsletter(db, newsroom)
    server = smtp_server(smtputf8=False)
    report = _send(db, config, server)
    assert (report.sent, report.failed) == (2, 1)
    (failure,) = report.failures
    assert failure.email == "üser@xn--exmple-cua.com" and "SMTPUTF8" in failure.reply
    assert sorted(m.rcpt_to[0] for m in server.handler.received) == [
        "ann@example.com",
        "bob@xn--exmple-cua.com",
    ]
