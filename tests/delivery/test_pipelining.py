"""The pipelined SMTP client (digest.pipelining) against real servers on 127.0.0.1: a small
hand-rolled asyncio server that answers a whole pipelined group at once with scripted mixed
replies (and can refuse PIPELINING, offer CHUNKING, or limit connections), and aiosmtpd made to
advertise PIPELINING, with the fault injection of the delivery tests."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from conftest import BUILT_AT, SmtpHandler

from digest.config import load_config, parse_smtp_url
from digest.delivery.send import send_pending
from digest.delivery.transports import SmtpTransport

SECRET = b"test-secret"
NOW = BUILT_AT + timedelta(hours=1)


@dataclass
class Script:
    """What the hand-rolled server does. ``rcpt``/``data``/``end``: recipient -> reply to its
    RCPT, DATA or end of data. ``max_connections``: more at once are greeted with 421."""

    pipelining: bool = True
    chunking: bool = False
    rcpt: dict[str, str] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)
    end: dict[str, str] = field(default_factory=dict)
    max_connections: int = 0
    accept_data_without_recipient: bool = False
    delay: float = 0.0  # seconds before each batch of replies (a relay across a network)


class Server:
    """A strict little SMTP server. It reads what arrived, answers every complete command in it
    together, records each read's commands (``reads``), and fails the session if a client
    sends a second command before the reply to the first when PIPELINING was not offered."""

    def __init__(self, script: Script):
        self.script = script
        self.messages: list[tuple[str, str, bytes]] = []  # (mail from, rcpt to, content)
        self.reads: list[list[bytes]] = []
        self.errors: list[str] = []
        self.commands: list[bytes] = []
        self.open = 0
        self.refused_connections = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        s = self.script
        if s.max_connections and self.open >= s.max_connections:
            self.refused_connections += 1
            writer.write(b"421 4.7.0 Too many connections, try again later\r\n")
            await writer.drain()
            writer.close()
            return
        self.open += 1
        writer.write(b"220 test ESMTP\r\n")
        mail = rcpt = None
        rcpt_ok = False
        buf = b""
        try:
            while True:
                chunk = await reader.read(1 << 16)
                if not chunk:
                    return
                buf += chunk
                out = []
                commands = []
                while True:
                    if b"\r\n" not in buf:
                        break
                    line, rest = buf.split(b"\r\n", 1)
                    verb = line[:4].upper()
                    if verb == b"BDAT":
                        size = int(line.split()[1])
                        if len(rest) < size:
                            break
                        content, buf = rest[:size], rest[size:]
                        commands.append(line)
                        if mail and rcpt_ok:
                            self.messages.append((mail, rcpt, content))
                            out.append(s.end.get(rcpt, "250 2.0.0 queued"))
                        else:
                            out.append("503 5.5.1 no valid recipients")
                        mail = rcpt = None
                        continue
                    buf = rest
                    commands.append(line)
                    if verb == b"EHLO":
                        ext = ["250-test"]
                        if s.pipelining:
                            ext.append("250-PIPELINING")
                        if s.chunking:
                            ext.append("250-CHUNKING")
                        ext.append("250 8BITMIME")
                        out.append("\r\n".join(ext))
                    elif verb == b"MAIL":
                        if mail is not None:
                            out.append("503 5.5.1 nested MAIL")
                        else:
                            mail = line.split(b"<", 1)[1].split(b">", 1)[0].decode()
                            out.append("250 2.1.0 ok")
                    elif verb == b"RCPT":
                        address = line.split(b"<", 1)[1].split(b">", 1)[0].decode()
                        if mail is None:
                            out.append("503 5.5.1 MAIL first")
                            continue
                        rcpt = address
                        reply = s.rcpt.get(address, "250 2.1.5 ok")
                        rcpt_ok = reply.startswith("2")
                        out.append(reply)
                    elif verb == b"DATA":
                        reply = s.data.get(rcpt or "", "354 go ahead")
                        if not rcpt_ok and not s.accept_data_without_recipient:
                            reply = "554 5.5.1 no valid recipients"
                        out.append(reply)
                        if reply.startswith("354"):
                            # The content starts a line: a "." right away ends it at once.
                            buf = b"\r\n" + buf
                            end = buf.find(b"\r\n.\r\n")
                            while end < 0:
                                # answer what we have first: the client waits for the 354
                                if out:
                                    if s.delay:
                                        await asyncio.sleep(s.delay)
                                    writer.write(("\r\n".join(out) + "\r\n").encode())
                                    out = []
                                more = await reader.read(1 << 16)
                                if not more:
                                    return
                                buf += more
                                end = buf.find(b"\r\n.\r\n")
                            content, buf = buf[2 : end + 2], buf[end + 5 :]
                            if rcpt_ok:
                                self.messages.append(
                                    (mail, rcpt, content.replace(b"\r\n..", b"\r\n."))
                                )
                                out.append(s.end.get(rcpt, "250 2.0.0 queued"))
                            else:
                                out.append("554 5.5.1 no valid recipients, message dropped")
                            mail = rcpt = None
                            rcpt_ok = False
                    elif verb == b"RSET":
                        mail = rcpt = None
                        rcpt_ok = False
                        out.append("250 2.0.0 reset")
                    elif verb == b"QUIT":
                        writer.write(b"221 bye\r\n")
                        writer.close()
                        return
                    else:
                        out.append("502 5.5.2 not implemented")
                if commands:
                    self.reads.append(commands)
                    self.commands.extend(commands)
                    if not s.pipelining and len(commands) > 1:
                        self.errors.append(f"pipelined without PIPELINING: {commands}")
                if out:
                    if s.delay:
                        await asyncio.sleep(s.delay)
                    writer.write(("\r\n".join(out) + "\r\n").encode())
        finally:
            self.open -= 1

    def start(self) -> Server:
        self.thread.start()
        coro = asyncio.start_server(self._session, "127.0.0.1", 0)
        self.server = asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def scripted():
    started = []

    def _start(script: Script) -> Server:
        server = Server(script).start()
        started.append(server)
        return server

    yield _start
    for server in started:
        server.stop()


def _send(db, url, **kwargs):
    kwargs.setdefault("concurrency", 1)
    transport = SmtpTransport([parse_smtp_url(url)], timeout=5, failure_threshold=100)
    return send_pending(
        db,
        load_config(None, env={}),
        secret=SECRET,
        clock=lambda: NOW,
        transport=transport,
        **kwargs,
    )


def _ledger(db):
    return {r["email"]: r for r in db.query("SELECT * FROM deliveries ORDER BY id")}


def test_a_pipelined_group_with_mixed_replies_is_decided_per_message(db, newsletter, scripted):
    server = scripted(
        Script(
            rcpt={"p2@example.com": "550 5.1.1 no such user"},
            data={"p3@example.com": "451 4.3.0 try again later"},
            end={"p5@example.com": "554 5.7.1 rejected by content filter"},
        )
    )
    newsletter.make(7)
    report = _send(db, server.url())
    assert (report.sent, report.deferred, report.failed) == (4, 1, 2)
    rows = _ledger(db)
    assert rows["p2@example.com"]["status"] == "failed"
    assert rows["p2@example.com"]["reply"] == "550 5.1.1 no such user"
    assert rows["p3@example.com"]["status"] == "deferred"
    assert rows["p3@example.com"]["reply"] == "451 4.3.0 try again later"
    assert rows["p5@example.com"]["status"] == "failed"
    assert rows["p5@example.com"]["reply"] == "554 5.7.1 rejected by content filter"
    # 5.1.1 is a dead address: bounced and suppressed, as with the classic sequence.
    assert db.execute("SELECT reason FROM suppressions").fetchall() == [("550 5.1.1 no such user",)]
    assert [m[1] for m in server.messages] == [f"p{i}@example.com" for i in (1, 4, 5, 6, 7)]
    assert server.errors == []
    # Each message's content went in one write with the next message's MAIL, RCPT and DATA,
    # and a refused transaction was reset before the next one.
    groups = [[c.split(b" ")[0].split(b":")[0] for c in read] for read in server.reads]
    # (a read holds the DATA, the content that follows its 354, and the next envelope)
    assert [b"MAIL", b"RCPT", b"DATA", b"MAIL", b"RCPT", b"DATA"] in groups
    assert [b"RSET", b"MAIL", b"RCPT", b"DATA"] in groups
    assert server.commands.count(b"RSET") == 2  # after p2 (RCPT) and p3 (DATA), not after p5
    # One read per message (plus EHLO, the first envelope, QUIT): one round trip each.
    assert len(server.reads) <= 7 + 4
    for mail_from, rcpt, content in server.messages:
        msg = email.message_from_bytes(content, policy=email.policy.default)
        assert msg["To"].addresses[0].addr_spec == rcpt
        assert mail_from == "world@news.example.com"


def test_a_server_without_pipelining_gets_one_command_at_a_time(db, newsletter, scripted):
    server = scripted(Script(pipelining=False, rcpt={"p2@example.com": "550 5.1.1 no such user"}))
    newsletter.make(4)
    report = _send(db, server.url(), concurrency=2)
    assert (report.sent, report.failed) == (3, 1)
    assert server.errors == []
    assert sorted(m[1] for m in server.messages) == [
        "p1@example.com",
        "p3@example.com",
        "p4@example.com",
    ]


def test_data_accepted_after_a_refused_recipient_delivers_nothing(db, newsletter, scripted):
    # RFC 2920 says the server must refuse DATA then; one that does not gets an empty message.
    server = scripted(
        Script(
            rcpt={"p1@example.com": "550 5.1.1 no such user"}, accept_data_without_recipient=True
        )
    )
    newsletter.make(2)
    report = _send(db, server.url())
    assert (report.sent, report.failed) == (1, 1)
    assert [m[1] for m in server.messages] == ["p2@example.com"]
    assert _ledger(db)["p1@example.com"]["reply"] == "550 5.1.1 no such user"


def test_chunking_sends_bdat_with_the_message_unstuffed(db, newsletter, scripted):
    server = scripted(Script(chunking=True, rcpt={"p2@example.com": "450 4.2.1 busy"}))
    newsletter.make(3)
    db.execute("UPDATE subscribers SET name = '.Dot ' || id")  # a line starting with '.'
    report = _send(db, server.url())
    assert (report.sent, report.deferred) == (2, 1)
    assert any(c.startswith(b"BDAT ") and c.endswith(b" LAST") for c in server.commands)
    assert b"DATA" not in server.commands
    for _, rcpt, content in server.messages:
        msg = email.message_from_bytes(content, policy=email.policy.default)
        assert msg["To"].addresses[0].addr_spec == rcpt
        assert msg.get_body(("plain",)).get_content().startswith("Hello .Dot")


def test_too_many_connections_means_fewer_connections_not_deferrals(db, newsletter, scripted):
    server = scripted(Script(max_connections=2, delay=0.01))
    newsletter.make(60)
    report = _send(db, server.url(), concurrency=8)
    assert (report.sent, report.deferred) == (60, 0)
    assert server.refused_connections >= 1
    assert Counter(m[1] for m in server.messages) == Counter(
        {f"p{i}@example.com": 1 for i in range(1, 61)}
    )


class PipeliningHandler(SmtpHandler):
    """aiosmtpd reads commands one by one from its stream, so it accepts pipelined groups; it
    just does not say so. This handler makes it say so."""

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        responses = await super().handle_EHLO(server, session, envelope, hostname, responses)
        return [responses[0], "250-PIPELINING", *responses[1:]]


def test_aiosmtpd_pipelined_faults_have_the_classic_outcomes(db, newsletter, smtp_server):
    handler = PipeliningHandler(
        faults={
            "p2@example.com": ["451 4.7.1 greylisted, try later"],
            "p3@example.com": ["550 5.1.1 no such user"],
            "p4@example.com": ["drop"],
            "p5@example.com": ["421 4.3.2 service shutting down"],
            "p6@example.com": ["554 5.7.1 rejected by policy"],
        }
    )
    server = smtp_server(handler)
    newsletter.make(10)
    report = _send(db, server.url(), concurrency=2)
    assert (report.sent, report.deferred, report.failed) == (5, 3, 2)
    rows = _ledger(db)
    assert rows["p2@example.com"]["reply"] == "451 4.7.1 greylisted, try later"
    assert "lost" in rows["p4@example.com"]["reply"]
    assert rows["p5@example.com"]["reply"] == "421 4.3.2 service shutting down"
    assert rows["p3@example.com"]["status"] == rows["p6@example.com"]["status"] == "failed"
    sent = {e for e, r in rows.items() if r["status"] == "sent"}
    assert Counter(handler.recipients()) == Counter({e: 1 for e in sent})
    assert all(r["attempts"] == 1 for r in rows.values())


def test_aiosmtpd_pipelined_many_connections(db, newsletter, smtp_server):
    handler = PipeliningHandler()
    server = smtp_server(handler)
    newsletter.make(120)
    report = _send(db, server.url(), concurrency=100)
    assert report.sent == 120
    assert Counter(handler.recipients()) == Counter({f"p{i}@example.com": 1 for i in range(1, 121)})


def _dead_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_cli_says_why_nothing_went_out(run, db, newsletter):
    from datetime import UTC, datetime

    newsletter.make(5, created_at=datetime.now(UTC))
    port = _dead_port()
    result = run("send", "--smtp", f"smtp://127.0.0.1:{port}")
    lines = result.output.splitlines()
    assert result.exit_code == 0, result.output
    # Three tries, one at a time (a relay never accepted yet is probed by one connection),
    # then the relay is skipped and the rest is not tried.
    assert lines[0].startswith("sent 0, deferred 3, failed 0, skipped 0 in ")
    assert "messages/s" not in result.output
    assert f"  deferred 3: cannot connect to relay 127.0.0.1:{port} (connection refused)" in lines
    assert any(line.startswith("  not tried 2: every relay is failing") for line in lines), lines
