"""Pipelined SMTP over asyncio, and the event-loop pool that drives many connections from one
thread. This module speaks the protocol; what a reply *means* for a delivery (sent, deferred,
failed, a dead relay) is decided by the caller (``smtp.SmtpTransport``).

Why pipelining (RFC 2920): a relay across a real network costs a round trip per command, and a
message waiting for the replies to MAIL, RCPT, DATA and end-of-data one by one costs four. With
PIPELINING the client sends a *group* and reads the replies afterwards, in order. In steady state
one group per message carries: the previous message's content and end-of-data, then the next
message's MAIL, RCPT and DATA (RFC 2920 3.1: DATA may only end a group, and the content may
start one). Each message then costs one round trip::

    C: MAIL FROM / RCPT TO / DATA                                  (first message)
    S: 250 / 250 / 354
    C: <content 1> . / MAIL FROM / RCPT TO / DATA                  (one write)
    S: 250 (message 1 accepted) / 250 / 250 / 354
    C: <content 2> . / MAIL FROM / ...

A refusal inside a group is per message: the first non-2xx reply among MAIL, RCPT, DATA decides
that message (the server answers the rest of its group with 503/554, which we read and drop),
and the next group starts with RSET (RFC 5321 4.1.1.5). A server that answers DATA with 354
although it refused the recipient (RFC 2920 3.1 says it must not) gets an empty message ended at
once; it has no recipient, so nothing is delivered. Servers without PIPELINING get the classic
sequence, one command and one reply at a time. Servers offering CHUNKING (RFC 3030) get
``BDAT <size> LAST`` with the message bytes as they are (no dot-stuffing, no 354 wait).

Why not aiosmtplib: its protocol keeps one outstanding reply waiter per connection, so sending a
group means reaching into its private state; connecting, STARTTLS and AUTH are a few lines over
an asyncio Protocol (``_Wire``), which also keeps one code path for TLS errors and timeouts.
``_Wire`` parses replies as bytes arrive and wakes the sender once per group, not per line: on
a relay next door the protocol's own CPU time per message is what limits the rate.

Deadlines: every reply must come within ``timeout`` seconds of the previous one (the per-command
deadline, as smtplib's socket timeout did), and a message's last reply within
``message_timeout`` of the moment its first command was written (a relay trickling bytes cannot
hold a connection forever).

In-flight bound: on one connection at most ``depth`` messages have their content written and
their final reply unread (``depth`` = 1: the end-of-data reply of message k arrives before the
content of message k+1 can be sent, which needs its 354), plus the envelope of the next one,
which the server cannot accept without its content.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .personalise import Outgoing

# Postfix "421 4.7.0 Too many connections", Exim "421 Too many concurrent SMTP connections",
# Microsoft 365 "421 4.3.2 The maximum number of concurrent server connections has exceeded".
TOO_MANY_CONNECTIONS = ("too many", "concurrent", "connection limit", "maximum number of")


class Reply(NamedTuple):
    """One SMTP reply: the code and the text of its lines joined by newlines. (A NamedTuple:
    several are made per message, and a frozen dataclass costs more to create.)"""

    code: int
    text: str

    @property
    def line(self) -> str:
        """The reply on one line, as stored in the ledger: "451 4.7.1 try later"."""
        return " ".join(f"{self.code} {self.text}".split())

    @property
    def too_many_connections(self) -> bool:
        return self.code in (421, 450, 451, 452, 454) and any(
            phrase in self.text.lower() for phrase in TOO_MANY_CONNECTIONS
        )


class SmtpError(Exception):
    """Base of the protocol-level errors; the message says what happened, without secrets."""


class ConnectionFailed(SmtpError):
    """The connection could not be opened or broke (refused, timed out, closed, 421, a reply
    that is not SMTP). Worth trying again later, maybe on another relay. ``reply`` is set when
    the server said why (a 421 or a refused greeting)."""

    def __init__(self, message: str, reply: Reply | None = None, *, jobs: list[Job] | None = None):
        super().__init__(message)
        self.reply = reply
        self.jobs: list[Job] = jobs or []


class CertificateError(SmtpError):
    """The server's TLS certificate did not verify."""

    def __init__(self, verify_message: str):
        super().__init__(verify_message)
        self.verify_message = verify_message


class StartTlsMissing(SmtpError):
    """STARTTLS was required and the server does not offer it."""


class AuthUnavailable(SmtpError):
    """A username is configured and the server offers no usable AUTH mechanism."""


class AuthRefused(SmtpError):
    """The server refused the credentials; ``reply`` is its answer."""

    def __init__(self, reply: Reply):
        super().__init__(reply.line)
        self.reply = reply


@dataclass(slots=True)
class Job:
    """One message for the pool. ``payload`` is the DATA payload (dot-stuffed, CRLF-ended) when
    the caller made it ahead; ``token`` is the caller's (the delivery), untouched here."""

    outgoing: Outgoing
    payload: bytes | None = None
    token: Any = None
    needs_utf8: bool = field(init=False)
    outcome: Any = None  # set by the transport: what became of it (None: not tried)
    error: BaseException | None = None  # set when the transport cannot work at all

    def __post_init__(self) -> None:
        self.needs_utf8 = not (self.outgoing.sender.isascii() and self.outgoing.recipient.isascii())


def dot_stuff(data: bytes) -> bytes:
    """The DATA payload of ``data`` (RFC 5321 4.5.2): a '.' starting a line is doubled, and the
    payload ends with CRLF. Same result as smtplib's own quoting, several times faster on a
    60 KB message (bytes.replace instead of a multi-line regex)."""
    wire = data.replace(b"\n.", b"\n..")
    if wire.startswith(b"."):
        wire = b"." + wire
    return wire if wire.endswith(b"\r\n") else wire + b"\r\n"


_FQDN: list[str] = []


def local_hostname() -> str:
    """The name said in EHLO. smtplib asks ``socket.getfqdn()`` on every connection, which can
    cost a DNS round trip each time; once per process is enough."""
    if not _FQDN:
        name = socket.getfqdn()
        # RFC 5321 4.1.4: a name, else an address literal.
        _FQDN.append(name if "." in name else "[127.0.0.1]")
    return _FQDN[0]


def _error_text(e: BaseException) -> str:
    """A short, user-readable reason for a network error ("connection refused")."""
    if isinstance(e, TimeoutError):
        return "timed out"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, ConnectionResetError):
        return "connection reset"
    if isinstance(e, socket.gaierror):
        return f"host name not resolved: {e.strerror or e}"
    if isinstance(e, asyncio.IncompleteReadError):
        return "connection closed by the server"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror[0].lower() + e.strerror[1:]
    text = str(e) or type(e).__name__
    return " ".join(text.split())


class _Wire(asyncio.Protocol):
    """The connection's bytes: parses replies as they arrive (RFC 5321 4.2.1: "250-first
    line", ..., "250 last line", the code on every line) and wakes the session once it has
    as many as it waits for: one wake-up per pipelined group, not one per line."""

    LIMIT = 1 << 16  # a reply line longer than this is not SMTP

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.replies: collections.deque[Reply] = collections.deque()
        self.buffer = b""
        self.lines: list[bytes] = []
        self.waiter: asyncio.Future[None] | None = None
        self.wanted = 0
        self.progress = 0.0  # loop time of the last reply
        self.error: ConnectionFailed | None = None
        self.paused = False
        self.drained: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        start = 0
        before = len(self.replies)
        while (end := buffer.find(b"\n", start)) >= 0:
            line = buffer[start:end]
            start = end + 1
            code, separator = line[:3], line[3:4]
            if not code.isdigit() or separator not in (b" ", b"-", b"\r", b""):
                self._fail(ConnectionFailed(f"not an SMTP reply: {line[:80]!r}"))
                return
            self.lines.append(line[4:].rstrip(b"\r"))
            if separator != b"-":
                text = b"\n".join(self.lines).decode("utf-8", "replace")
                self.replies.append(Reply(int(code), text))
                self.lines = []
        self.buffer = buffer[start:]
        if len(self.buffer) > self.LIMIT:
            self._fail(ConnectionFailed("reply line too long: not an SMTP server"))
            return
        if len(self.replies) > before:
            self.progress = asyncio.get_running_loop().time()
            waiter = self.waiter
            if waiter is not None and len(self.replies) >= self.wanted and not waiter.done():
                waiter.set_result(None)

    def _fail(self, error: ConnectionFailed) -> None:
        if self.error is None:
            self.error = error
        if self.transport is not None:
            self.transport.abort()
        for waiter in (self.waiter, self.drained):
            if waiter is not None and not waiter.done():
                waiter.set_exception(self.error)

    def eof_received(self) -> bool:
        self._fail(ConnectionFailed("connection closed by the server"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionFailed(_error_text(exc) if exc else "connection closed"))

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)


class Session:
    """One SMTP connection: opened (greeting, EHLO, STARTTLS, AUTH) by ``open``, then used by
    ``send`` for any number of messages, then ``close``."""

    def __init__(self, wire: _Wire, *, timeout: float, message_timeout: float):
        self.wire = wire
        self.timeout = timeout
        self.message_timeout = message_timeout
        self.extensions: dict[str, str] = {}
        self.messages = 0  # messages sent on this connection (for the per-connection cap)
        self._rset = False  # the last transaction was refused: start the next with RSET
        self._loop = asyncio.get_running_loop()

    # --- opening ------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        security: str = "plain",
        context: ssl.SSLContext | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30,
        message_timeout: float = 120,
    ) -> Session:
        """Connect and get ready to send. ``security``: "plain", "starttls" or "tls"
        (implicit). Raises ConnectionFailed, CertificateError, StartTlsMissing, AuthUnavailable
        or AuthRefused."""
        implicit = security == "tls"
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, wire = await loop.create_connection(
                    _Wire,
                    host,
                    port,
                    ssl=(context or ssl.create_default_context()) if implicit else None,
                    server_hostname=host if implicit else None,
                )
        except ssl.SSLCertVerificationError as e:
            raise CertificateError(e.verify_message or str(e)) from None
        except (OSError, TimeoutError, ssl.SSLError) as e:
            raise ConnectionFailed(_error_text(e)) from None
        session = cls(wire, timeout=timeout, message_timeout=message_timeout)
        try:
            await session._handshake(host, security, context, username, password)
        except ssl.SSLCertVerificationError as e:
            session.abort()
            raise CertificateError(e.verify_message or str(e)) from None
        except (OSError, TimeoutError, ssl.SSLError) as e:
            session.abort()
            raise ConnectionFailed(_error_text(e)) from None
        except BaseException:
            session.abort()
            raise
        return session

    async def _handshake(
        self,
        host: str,
        security: str,
        context: ssl.SSLContext | None,
        username: str | None,
        password: str | None,
    ) -> None:
        [greeting] = await self._replies(1, self._loop.time() + self.timeout)
        if greeting.code != 220:
            raise ConnectionFailed(greeting.line, greeting)
        await self._ehlo()
        if security == "starttls":
            if "STARTTLS" not in self.extensions:
                raise StartTlsMissing("STARTTLS not offered")
            reply = await self.command(b"STARTTLS")
            if reply.code != 220:
                raise ConnectionFailed(reply.line, reply)
            wire = self.wire
            assert wire.transport is not None
            async with asyncio.timeout(self.timeout):
                tls = await self._loop.start_tls(
                    wire.transport,
                    wire,
                    context or ssl.create_default_context(),
                    server_hostname=host,
                )
            assert isinstance(tls, asyncio.Transport)
            wire.transport = tls
            # RFC 3207 4.2: everything learnt before TLS is forgotten; ask again.
            await self._ehlo()
        if username:
            await self._login(username, password or "")

    async def _ehlo(self) -> None:
        reply = await self.command(b"EHLO " + local_hostname().encode())
        if reply.code == 250:
            self.extensions = {}
            for line in reply.text.split("\n")[1:]:
                keyword, _, params = line.strip().partition(" ")
                self.extensions[keyword.upper()] = params
            return
        if reply.code == 421:
            raise ConnectionFailed(reply.line, reply)
        # RFC 5321 3.2: a server that does not know EHLO gets HELO and no extensions.
        reply = await self.command(b"HELO " + local_hostname().encode())
        if reply.code != 250:
            raise ConnectionFailed(reply.line, reply)
        self.extensions = {}

    async def _login(self, username: str, password: str) -> None:
        offered = self.extensions.get("AUTH", "").upper().split()
        user, secret = username.encode("utf-8"), password.encode("utf-8")
        if "PLAIN" in offered:
            token = base64.b64encode(b"\0" + user + b"\0" + secret)
            reply = await self.command(b"AUTH PLAIN " + token)
        elif "LOGIN" in offered:
            reply = await self.command(b"AUTH LOGIN")
            if reply.code == 334:
                reply = await self.command(base64.b64encode(user))
            if reply.code == 334:
                reply = await self.command(base64.b64encode(secret))
        else:
            raise AuthUnavailable("no AUTH PLAIN or LOGIN offered")
        if reply.code == 421:
            raise ConnectionFailed(reply.line, reply)
        if reply.code != 235:
            raise AuthRefused(reply)

    # --- extensions ---------------------------------------------------------------------

    @property
    def pipelining(self) -> bool:
        return "PIPELINING" in self.extensions

    @property
    def chunking(self) -> bool:
        return "CHUNKING" in self.extensions

    @property
    def smtputf8(self) -> bool:
        return "SMTPUTF8" in self.extensions

    # --- reading and writing ------------------------------------------------------------

    async def _replies(self, n: int, deadline: float) -> list[Reply]:
        """The next ``n`` replies. Each must come within ``timeout`` of the previous one (or
        of this call), and all before ``deadline`` (the message's)."""
        wire = self.wire
        if len(wire.replies) < n:
            if wire.error is not None:
                raise wire.error
            waiter = self._loop.create_future()
            wire.waiter, wire.wanted = waiter, n
            wire.progress = self._loop.time()
            # One timer per wait, re-armed only when it fires early (cheaper than moving it
            # on every reply).
            timer = self._loop.call_at(
                min(wire.progress + self.timeout, deadline), self._expire, waiter, deadline
            )
            try:
                await waiter
            finally:
                timer.cancel()
                wire.waiter = None
        replies = wire.replies
        return [replies.popleft() for _ in range(n)]

    def _expire(self, waiter: asyncio.Future[None], deadline: float) -> None:
        if waiter.done():
            return
        now = self._loop.time()
        due = min(self.wire.progress + self.timeout, deadline)
        if now < due:
            self._loop.call_at(due, self._expire, waiter, deadline)
        else:
            waiter.set_exception(TimeoutError())

    def _write(self, data: bytes) -> None:
        transport = self.wire.transport
        if self.wire.error is not None or transport is None:
            raise self.wire.error or ConnectionFailed("not connected")
        transport.write(data)

    async def _drain(self, deadline: float) -> None:
        # Flow control: wait while the transport's buffer is over its high-water mark.
        wire = self.wire
        if wire.paused:
            wire.drained = self._loop.create_future()
            try:
                async with asyncio.timeout_at(deadline):
                    await wire.drained
            finally:
                wire.drained = None

    async def command(self, line: bytes) -> Reply:
        """One command, one reply (no pipelining)."""
        self._write(line + b"\r\n")
        [reply] = await self._replies(1, self._loop.time() + self.timeout)
        return reply

    def abort(self) -> None:
        if self.wire.transport is not None:
            self.wire.transport.abort()

    async def close(self) -> None:
        """QUIT, without waiting for its 221: the server has every reply that matters, and the
        transport flushes the QUIT before closing."""
        transport = self.wire.transport
        if transport is not None and self.wire.error is None:
            with contextlib.suppress(Exception):
                transport.write(b"QUIT\r\n")
                transport.close()

    # --- sending ------------------------------------------------------------------------

    def _envelope(self, job: Job) -> bytes:
        out = job.outgoing
        utf8 = b" SMTPUTF8" if job.needs_utf8 else b""
        # Addresses go out as the ledger stores them: validated on the way in, so CR/LF
        # (command injection) cannot be in them.
        mail = b"MAIL FROM:<" + out.sender.encode() + b">" + utf8 + b"\r\n"
        rcpt = b"RCPT TO:<" + out.recipient.encode() + b">\r\n"
        if self.chunking:
            return mail + rcpt + b"BDAT %d LAST\r\n" % len(out.data)
        return mail + rcpt + b"DATA\r\n"

    def _write_content(self, job: Job, then: bytes = b"") -> None:
        # The payload is written as it is (no 60 KB copy to append the terminator); asyncio
        # sets TCP_NODELAY, so the small write after it does not wait on Nagle's algorithm.
        payload = job.payload if job.payload is not None else dot_stuff(job.outgoing.data)
        self._write(payload)
        self._write(b".\r\n" + then)

    async def send(
        self,
        first: Job,
        take: Callable[[], Job | None],
        done: Callable[[Job, Reply | None, str | None], None],
        *,
        limit: int,
    ) -> None:
        """Send ``first``, then the jobs ``take()`` hands out (None: no more for now), at most
        ``limit`` messages on this connection in all. ``done(job, reply, refusal)`` is called
        once per job as soon as its fate is known: ``reply`` is the server's deciding reply
        (the end of data, or the first refusal), ``refusal`` a reason found here (a non-ASCII
        address and no SMTPUTF8).

        Raises ConnectionFailed when the connection broke or the server said 421; its ``jobs``
        then lists the jobs of this call not done: first the one whose reply was awaited
        (charge it), then those only queued behind it (not tried)."""
        pending: collections.deque[Job] = collections.deque()

        def next_job() -> Job | None:
            while self.messages < limit:
                job = take()
                if job is None or not (job.needs_utf8 and not self.smtputf8):
                    return job
                done(job, None, NO_SMTPUTF8)
            return None

        job: Job | None = first
        if first.needs_utf8 and not self.smtputf8:
            done(first, None, NO_SMTPUTF8)
            job = next_job()
        try:
            while job is not None:
                if self.pipelining:
                    await self._group(job, next_job, done, pending)
                else:
                    await self._classic(job, done, pending)
                job = next_job()
        except ConnectionFailed as e:
            e.jobs = list(pending)
            raise
        except (OSError, TimeoutError) as e:
            raise ConnectionFailed(_error_text(e), jobs=list(pending)) from None

    async def _classic(
        self,
        job: Job,
        done: Callable[[Job, Reply | None, str | None], None],
        pending: collections.deque[Job],
    ) -> None:
        # One command at a time (RFC 5321 without PIPELINING), stopping at the first refusal.
        self.messages += 1
        pending.append(job)
        deadline = self._loop.time() + self.message_timeout
        if self._rset:
            reply = await self.command(b"RSET")
            if reply.code != 250:
                raise ConnectionFailed(f"RSET refused: {reply.line}", reply)
            self._rset = False
        mail, rcpt, last = self._envelope(job).split(b"\r\n")[:3]
        steps: list[tuple[bytes | None, tuple[int, ...]]] = [
            (mail + b"\r\n", (250,)),
            (rcpt + b"\r\n", (250, 251)),
        ]
        if self.chunking:
            steps.append((last + b"\r\n" + job.outgoing.data, (250,)))
        else:
            steps.append((b"DATA\r\n", (354,)))
            steps.append((None, (250,)))  # the content
        for i, (data, expected) in enumerate(steps):
            if data is None:
                self._write_content(job)
            else:
                self._write(data)
            await self._drain(deadline)
            [reply] = await self._replies(1, deadline)
            if reply.code not in expected:
                if reply.code == 421:
                    raise ConnectionFailed(reply.line, reply)
                # After the end of data the transaction is over either way; before it, reset.
                self._rset = i < len(steps) - 1
                break
        pending.popleft()
        done(job, reply, None)

    async def _group(
        self,
        job: Job,
        next_job: Callable[[], Job | None],
        done: Callable[[Job, Reply | None, str | None], None],
        pending: collections.deque[Job],
    ) -> None:
        """Pipelined: send ``job``'s envelope, then read replies and send contents, each
        content carrying the next job's envelope, until a job is refused or no job is ready.
        ``pending`` holds the jobs whose replies are awaited, oldest first."""
        rset = self._rset
        self._rset = False
        self.messages += 1
        pending.append(job)
        self._write((b"RSET\r\n" if rset else b"") + self._envelope(job))
        if self.chunking:
            self._write(job.outgoing.data)
        loop = self._loop
        while pending:
            job = pending[0]
            deadline = loop.time() + self.message_timeout
            await self._drain(deadline)
            if rset:
                [reply] = await self._replies(1, deadline)
                if reply.code != 250:
                    # A server that cannot reset gets a fresh connection; nothing was sent.
                    raise ConnectionFailed(f"RSET refused: {reply.line}", reply)
                rset = False
            mail, rcpt, last = await self._replies(3, deadline)
            accepted = mail.code == 250 and rcpt.code in (250, 251)
            if accepted and self.chunking:
                # BDAT ... LAST: the third reply is the message's own.
                self._decide(pending, last, done, refused=last.code != 250)
                return
            if not (accepted and last.code == 354):
                if last.code == 354:
                    # RFC 2920 3.1 says a server must refuse DATA when no recipient was
                    # accepted; one that does not gets an empty message, delivered nowhere.
                    self._write(b".\r\n")
                    await self._replies(1, deadline)
                decisive = mail if mail.code != 250 else rcpt if not accepted else last
                self._decide(pending, decisive, done, refused=True)
                return
            # 354: the content, and in the same write the next message's envelope.
            nxt = next_job()
            if nxt is None:
                self._write_content(job)
            else:
                self.messages += 1
                pending.append(nxt)
                self._write_content(job, self._envelope(nxt))
            await self._drain(deadline)
            [end] = await self._replies(1, deadline)
            self._decide(pending, end, done, refused=False)

    def _decide(
        self,
        pending: collections.deque[Job],
        reply: Reply,
        done: Callable[[Job, Reply | None, str | None], None],
        *,
        refused: bool,
    ) -> None:
        if reply.code == 421:
            # The server is closing the channel (RFC 5321 3.8): the message was not taken.
            raise ConnectionFailed(reply.line, reply)
        if refused:
            self._rset = True
        done(pending.popleft(), reply, None)


NO_SMTPUTF8 = "relay does not support SMTPUTF8, needed for a non-ASCII address"


class JobQueue:
    """The jobs handed to the pool and not yet taken by a connection. Used on the event loop's
    thread only. ``report(job)`` is called for every job once: when it is ``done`` (its
    ``outcome`` set), or given back untried after ``halt``."""

    def __init__(self, report: Callable[[Job], None], stop: threading.Event | None = None):
        self._jobs: collections.deque[Job] = collections.deque()
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._report = report
        self._stop = stop
        self.halted = False
        self.closed = False

    def extend(self, jobs: Iterable[Job]) -> None:
        self._jobs.extend(jobs)
        self._wake(len(self._jobs))

    def done(self, job: Job) -> None:
        self._report(job)

    def put_back(self, job: Job) -> None:
        """A job taken but not tried (the connection failed before it): first in line again,
        or reported untried once halted."""
        if self.halted:
            self._report(job)
        else:
            self._jobs.appendleft(job)
            self._wake(1)

    def _wake(self, n: int) -> None:
        while n > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                n -= 1

    def take(self) -> Job | None:
        """The next job now, or None (none queued, or halted, or asked to stop)."""
        if self.halted:
            return None
        if self._stop is not None and self._stop.is_set():
            self.halt()
            return None
        return self._jobs.popleft() if self._jobs else None

    async def get(self) -> Job | None:
        """The next job, waiting for one; None once the queue is halted or closed."""
        while True:
            job = self.take()
            if job is not None or self.halted or self.closed:
                return job
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    def halt(self) -> None:
        """Hand out nothing more; what is queued is reported back untried."""
        self.halted = True
        while self._jobs:
            self._report(self._jobs.popleft())
        self._wake(len(self._waiters))

    def close(self) -> None:
        """No more jobs will come: connections waiting for one finish."""
        self.closed = True
        self._wake(len(self._waiters))


class Pool:
    """An event loop on one background thread running ``channels`` coroutines, each
    ``serve(queue)``: the life of one connection slot (``smtp.Transport.serve``). The caller's
    thread hands jobs over with ``submit``; ``report(job)`` is called on the loop's thread for
    each finished or untried job and must not block (``queue.SimpleQueue.put`` is right)."""

    def __init__(
        self,
        serve: Callable[[JobQueue], Coroutine[Any, Any, None]],
        channels: int,
        report: Callable[[Job], None],
        *,
        stop: threading.Event | None = None,
    ):
        self.serve = serve
        self.channels = channels
        self.loop = asyncio.new_event_loop()
        self.queue = JobQueue(report, stop)
        self._thread = threading.Thread(target=self._main, name="digest-send", daemon=True)
        self._started = threading.Event()
        self._finish: asyncio.Event | None = None

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._run())
        finally:
            self.loop.close()

    async def _run(self) -> None:
        self._finish = asyncio.Event()
        tasks = [asyncio.create_task(self.serve(self.queue)) for _ in range(self.channels)]
        self._started.set()
        await self._finish.wait()
        self.queue.close()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.queue.halt()  # anything still queued (every channel ended early) goes back

    def start(self) -> Pool:
        self._thread.start()
        self._started.wait()
        return self

    def submit(self, jobs: list[Job]) -> None:
        """Hand ``jobs`` to the connections: one wake-up of the loop for the whole list."""
        self.loop.call_soon_threadsafe(self.queue.extend, jobs)

    def halt(self) -> None:
        """Start nothing more; queued jobs are reported back untried."""
        self.loop.call_soon_threadsafe(self.queue.halt)

    def close(self) -> None:
        """Let the connections finish what they have (then QUIT), and end the loop's thread."""
        if self._thread.is_alive():
            finish = self._finish
            assert finish is not None
            self.loop.call_soon_threadsafe(finish.set)
            self._thread.join()
