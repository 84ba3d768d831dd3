"""The SMTP transport against real aiosmtpd servers: TLS (STARTTLS and implicit) with a test CA
and verification on, AUTH, several relays, the rate limiter, and reply classification."""

from __future__ import annotations

import email
import email.policy
import mailbox
import socket
import ssl
from datetime import timedelta

import pytest
import trustme
from conftest import BUILT_AT, SmtpHandler

from digest.config import load_config, parse_smtp_url
from digest.delivery.personalise import Outgoing
from digest.delivery.send import send_message, send_pending
from digest.delivery.transports import (
    DeliveryError,
    OutboxTransport,
    RateLimiter,
    SmtpAuthError,
    SmtpTransport,
    TransportError,
    classify,
)

NOW = BUILT_AT + timedelta(hours=1)


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture(scope="module")
def server_tls(ca):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    return ctx


@pytest.fixture(scope="module")
def client_tls(ca):
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


def outgoing(to="ann@example.com"):
    data = (
        b"From: news@example.com\r\nTo: " + to.encode() + b"\r\nSubject: hello\r\n"
        b"Message-ID: <1@example.com>\r\n\r\n.leading dot survives\r\nbody\r\n"
    )
    return Outgoing("<1@example.com>", "news@example.com", to, data)


def relay(url, **kw):
    return parse_smtp_url(url, **kw)


def test_plain_smtp_send_message(smtp_server):
    server = smtp_server()
    reply = send_message(
        load_config(None, env={}),
        outgoing(),
        transport=SmtpTransport([relay(server.url())], timeout=5),
    )
    assert reply.startswith("250 2.0.0 queued")
    [item] = server.handler.received
    assert item.rcpt_to == ["ann@example.com"] and item.mail_from == "news@example.com"
    msg = email.message_from_bytes(item.data, policy=email.policy.default)
    assert msg.get_content().startswith(".leading dot survives")


def test_send_message_refused_raises_with_the_reply(smtp_server):
    server = smtp_server(SmtpHandler(faults={"ann@example.com": ["550 5.1.1 no such user"]}))
    with pytest.raises(DeliveryError, match="ann@example.com not accepted: 550 5.1.1 no such user"):
        send_message(
            load_config(None, env={}),
            outgoing(),
            transport=SmtpTransport([relay(server.url())], timeout=5),
        )


def test_send_message_uses_the_configured_relay(smtp_server):
    server = smtp_server()
    config = load_config(None, env={"DIGEST_SMTP_URL": server.url()})
    assert send_message(config, outgoing()).startswith("250")
    assert server.handler.recipients() == ["ann@example.com"]


@pytest.mark.parametrize("mode", ["starttls", "tls"])
def test_tls_with_verification(smtp_server, server_tls, client_tls, mode):
    if mode == "starttls":
        server = smtp_server(starttls=server_tls)  # the server refuses MAIL before STARTTLS
        url = server.url("smtp+starttls")
    else:
        server = smtp_server(implicit_tls=server_tls)
        url = server.url("smtps")
    transport = SmtpTransport([relay(url)], timeout=5, ssl_context=client_tls)
    assert send_message(load_config(None, env={}), outgoing(), transport=transport).startswith(
        "250"
    )
    assert server.handler.recipients() == ["ann@example.com"]

    # The system trust store does not know the test CA: a clear error, nothing sent.
    untrusted = SmtpTransport([relay(url)], timeout=5)
    with pytest.raises(TransportError) as e:
        send_message(load_config(None, env={}), outgoing("bob@example.com"), transport=untrusted)
    assert str(e.value).startswith(f"relay 127.0.0.1:{server.port}: TLS certificate verification")
    assert "tls_verify = false" in str(e.value)

    # tls_verify = false (a test relay): encrypted, not verified.
    lax = SmtpTransport([relay(url, tls_verify=False)], timeout=5)
    send_message(load_config(None, env={}), outgoing("bob@example.com"), transport=lax)
    assert server.handler.recipients() == ["ann@example.com", "bob@example.com"]


def test_starttls_relay_without_starttls_is_refused(smtp_server):
    server = smtp_server()
    transport = SmtpTransport([relay(server.url("smtp+starttls"))], timeout=5)
    with pytest.raises(TransportError, match="does not offer STARTTLS"):
        send_message(load_config(None, env={}), outgoing(), transport=transport)
    assert server.handler.received == []


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth(smtp_server, db, newsletter, mechanism):
    server = smtp_server(password="right", mechanisms=(mechanism,))
    newsletter.make(4)
    config = load_config(None, env={})
    url = server.url(user="news")

    with pytest.raises(SmtpAuthError) as e:
        send_pending(
            db,
            config,
            secret=b"k",
            clock=lambda: NOW,
            transport=SmtpTransport([relay(url)], password="wrong", timeout=5),
            concurrency=2,
        )
    message = str(e.value)
    assert message.startswith(f"relay 127.0.0.1:{server.port}: authentication as 'news' failed")
    assert "535" in message and "DIGEST_SMTP_PASSWORD" in message and "wrong" not in message
    # Nothing lost, nothing failed: every delivery still queued, unleased, not attempted.
    rows = db.execute("SELECT status, attempts, lease_owner FROM deliveries").fetchall()
    assert rows == [("queued", 0, None)] * 4
    assert server.handler.received == []

    report = send_pending(
        db,
        config,
        secret=b"k",
        clock=lambda: NOW,
        transport=SmtpTransport([relay(url)], password="right", timeout=5),
        concurrency=2,
    )
    assert report.sent == 4 and len(server.handler.received) == 4


def test_cli_wrong_password_is_a_clear_error(run, db, newsletter, smtp_server, monkeypatch):
    server = smtp_server(password="right")
    newsletter.make(2)
    monkeypatch.setenv("DIGEST_SMTP_PASSWORD", "wrong-secret")
    result = run("send", "--smtp", server.url(user="news"))
    assert result.exit_code == 1
    [error] = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert error.startswith(
        f"Error: relay 127.0.0.1:{server.port}: authentication as 'news' failed (535 5.7.8"
    )
    assert "wrong-secret" not in result.output and "Traceback" not in result.output
    assert db.execute("SELECT DISTINCT status, attempts FROM deliveries").fetchall() == [
        ("queued", 0)
    ]
    monkeypatch.delenv("DIGEST_SMTP_PASSWORD")
    result = run("send", "--smtp", server.url(user="news"))
    assert result.exit_code == 1
    assert "username 'news' is set but DIGEST_SMTP_PASSWORD is not" in result.output


def _dead_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_relays_round_robin_and_a_failing_relay_is_skipped(db, newsletter, smtp_server):
    a, b = smtp_server(), smtp_server()
    newsletter.make(6)
    transport = SmtpTransport(
        [relay(a.url()), relay(b.url())], timeout=5, per_connection=1, failure_threshold=1
    )
    report = send_pending(
        db,
        load_config(None, env={}),
        secret=b"k",
        clock=lambda: NOW,
        transport=transport,
        concurrency=1,
    )
    assert report.sent == 6
    assert len(a.handler.received) == 3 and len(b.handler.received) == 3

    dead = f"smtp://127.0.0.1:{_dead_port()}"
    newsletter.make(5, label="2025-01-22")
    clock = [0.0]
    transport = SmtpTransport(
        [relay(dead), relay(a.url())],
        timeout=5,
        per_connection=1,
        failure_threshold=1,
        skip_seconds=60,
        clock=lambda: clock[0],
    )
    report = send_pending(
        db,
        load_config(None, env={}),
        secret=b"k",
        clock=lambda: NOW,
        transport=transport,
        concurrency=1,
    )
    assert (report.sent, report.deferred) == (4, 1)
    deferred = db.execute("SELECT reply FROM deliveries WHERE status = 'deferred'").fetchone()[0]
    assert deferred.startswith(f"cannot connect to relay {dead[7:]}")
    assert len(a.handler.received) == 7


def test_every_relay_failing_stops_the_run_without_burning_attempts(db, newsletter):
    newsletter.make(5)
    transport = SmtpTransport(
        [relay(f"smtp://127.0.0.1:{_dead_port()}")], timeout=5, failure_threshold=1
    )
    report = send_pending(
        db,
        load_config(None, env={}),
        secret=b"k",
        clock=lambda: NOW,
        transport=transport,
        concurrency=1,
    )
    assert (report.sent, report.deferred) == (0, 1)
    assert report.stopped.startswith("every relay is failing")
    rows = db.execute("SELECT status, count(*), max(lease_owner) FROM deliveries GROUP BY 1")
    assert sorted(rows.fetchall()) == [("deferred", 1, None), ("queued", 4, None)]


def test_connection_cap_reconnects(smtp_server):
    server = smtp_server()
    transport = SmtpTransport([relay(server.url())], timeout=5, per_connection=3)
    conn = transport.connect()
    for i in range(7):
        assert conn.send(outgoing(f"r{i}@example.com")).status == "sent"
    conn.close()
    assert server.handler.sessions == 3


def test_rate_limiter_spaces_messages():
    now = [100.0]
    slept = []

    def sleep(seconds):
        slept.append(round(seconds, 6))
        now[0] += seconds

    limiter = RateLimiter(10, clock=lambda: now[0], sleep=sleep)
    for _ in range(4):
        limiter.wait()
    assert slept == [0.1, 0.1, 0.1]
    now[0] += 5  # idle time is not saved up into a burst
    limiter.wait()
    limiter.wait()
    assert slept[-1] == 0.1 and len(slept) == 4
    unlimited = RateLimiter(0, clock=lambda: now[0], sleep=sleep)
    unlimited.wait()
    assert len(slept) == 4


@pytest.mark.parametrize(
    ("code", "text", "status", "bounce"),
    [
        (250, "2.0.0 ok", "sent", False),
        (451, "4.7.1 greylisted", "deferred", False),
        (421, "4.3.2 closing", "deferred", False),
        (550, "5.1.1 no such user", "failed", True),
        (550, "5.1.10 null MX", "failed", True),
        (550, "5.2.1 mailbox disabled", "failed", True),
        (552, "5.2.2 mailbox full", "failed", False),
        (554, "5.7.1 policy", "failed", False),
        (550, "no such user", "failed", False),
    ],
)
def test_classify(code, text, status, bounce):
    outcome = classify(code, text.encode(), "r")
    assert (outcome.status, outcome.bounce, outcome.reply) == (status, bounce, f"{code} {text}")


def test_outbox_writes_a_maildir(tmp_path):
    transport = OutboxTransport(tmp_path / "box")
    reply = send_message(load_config(None, env={}), outgoing(), transport=transport)
    assert reply.startswith("written to ")
    [msg] = list(mailbox.Maildir(tmp_path / "box", create=False))
    assert msg["Delivered-To"] == "ann@example.com" and msg["Subject"] == "hello"
    assert list((tmp_path / "box" / "tmp").iterdir()) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(TransportError, match="cannot create a Maildir"):
        OutboxTransport(tmp_path / "file")
