"""Transports: how a finished message leaves. ``SmtpTransport`` speaks SMTP to one or more
relays — plain, STARTTLS or implicit TLS with certificate verification on unless a relay says
``tls_verify = false`` — with AUTH, a deadline on connect, on every reply and on every whole
message, connections reused up to a cap, a global per-second rate limit, and relays used
round-robin with a relay that keeps failing skipped for a while. The protocol itself, pipelined
where the relay offers it, is in ``pipelining``; this module decides what a reply means.
``OutboxTransport`` writes each message into a Maildir instead. Both turn the server's answer
into an ``Outcome`` (sent / deferred / failed); errors no retry can fix (wrong password,
untrusted certificate) raise ``TransportError``.

A send run drives a transport through ``serve``: one coroutine per connection, all on the
event loop of a ``pipelining.Pool``. ``connect`` gives a blocking ``Connection`` for one-off
messages (a confirmation, a test send).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..config import Config, SmtpRelay, parse_smtp_url
from ..errors import DigestError
from . import pipelining
from .personalise import Outgoing
from .pipelining import Job, JobQueue, Reply
from .pipelining import dot_stuff as dot_stuff  # a public name of this module

T = TypeVar("T")
_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")


class TransportError(DigestError):
    """The transport cannot send anything until its configuration is fixed (wrong password, no
    password, untrusted certificate, unwritable outbox). Deliveries are left unsent."""


class SmtpAuthError(TransportError):
    """The relay refused the username/password."""


class RelayUnavailable(DigestError):
    """Every relay is being skipped after repeated failures; the message was not tried."""


class DeliveryError(DigestError):
    """One ad-hoc message (``send_message``) was not accepted."""


@dataclass(frozen=True)
class Outcome:
    """What became of one message: ``sent``, ``deferred`` (try again later) or ``failed``
    (never retried). ``bounce`` marks the permanent failures that mean the address is dead
    (5.1.x unknown user or domain, 5.2.1 mailbox disabled)."""

    status: str
    reply: str
    relay: str | None = None
    bounce: bool = False


def _reply_text(code: int, message: bytes | str) -> str:
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    return " ".join(f"{code} {message}".split())


def classify(code: int, message: bytes | str, relay: str | None) -> Outcome:
    """Turn an SMTP reply into an outcome: 2xx sent, 4xx deferred, 5xx failed."""
    reply = _reply_text(code, message)
    if 200 <= code < 300:
        return Outcome("sent", reply, relay)
    if 400 <= code < 500:
        return Outcome("deferred", reply, relay)
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    m = _ENHANCED.match(text)
    bounce = (
        m is not None and m.group(1) == "5" and (m.group(2) == "1" or m.group(2, 3) == ("2", "1"))
    )
    return Outcome("failed", reply, relay, bounce=bounce)


class Connection:
    """A blocking channel to the outside, for one-off messages; not shared between threads."""

    def send(self, outgoing: Outgoing, wire: bytes | None = None) -> Outcome:  # pragma: no cover
        """Send ``outgoing``. ``wire``, if given, is ``dot_stuff(outgoing.data)`` made ahead."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class Transport:
    """Shared by the connections of one send run."""

    def connect(self) -> Connection:  # pragma: no cover - interface
        raise NotImplementedError

    async def serve(self, queue: JobQueue) -> None:
        """One connection's work in a send run: take jobs from ``queue`` until it is closed or
        halted, and report each with ``queue.done`` (``job.outcome`` set; left None when the
        job was not tried; ``job.error`` set when the transport cannot work at all, after
        which the queue is halted). This default runs the blocking ``connect`` in a thread of
        the loop's executor: fine for the outbox, which writes files."""
        connection = await asyncio.to_thread(self.connect)
        try:
            while (job := await queue.get()) is not None:
                try:
                    job.outcome = await asyncio.to_thread(
                        connection.send, job.outgoing, job.payload
                    )
                except RelayUnavailable:
                    pass
                except Exception as e:  # noqa: BLE001 - TransportError, or a bug: stop, keep track
                    job.error = e
                    queue.halt()
                queue.done(job)
        finally:
            await asyncio.to_thread(connection.close)

    def unavailable(self) -> str | None:
        """Why nothing can be sent right now (every relay is being skipped), else None."""
        return None

    def close(self) -> None:
        pass


class RateLimiter:
    """At most ``per_second`` messages per second over all connections (0 = no limit): each
    message gets the next free time slot, ``1/per_second`` after the previous one."""

    def __init__(
        self,
        per_second: float = 0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.interval = 1.0 / per_second if per_second and per_second > 0 else 0.0
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take the next slot; return how long to wait for it (0: go now)."""
        if not self.interval:
            return 0.0
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
        return slot - now

    def wait(self) -> None:
        delay = self.reserve()
        if delay > 0:
            self._sleep(delay)

    async def wait_async(self) -> None:
        delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)


class _RelayHealth:
    """Round-robin over relays; a relay with ``threshold`` connection-level failures in a row
    (cannot connect, dropped, timed out, 421) is skipped for ``skip_seconds``.

    It also holds how many connections each relay may have. A relay that answers a new
    connection with "421 too many connections" while we already hold others to it gets a cap
    of what we hold (that is what it accepts), and the cap grows back by one every
    ``skip_seconds`` (additive increase, as TCP does after a loss). Until a relay has accepted
    one connection, only one connection attempt at a time goes to it: a dead relay costs one
    refused connection per try, not one per configured connection."""

    def __init__(
        self,
        relays: list[SmtpRelay],
        threshold: int,
        skip_seconds: float,
        clock: Callable[[], float],
    ):
        self.relays = relays
        self.threshold = threshold
        self.skip_seconds = skip_seconds
        self.clock = clock
        self.failures = [0] * len(relays)
        self.skip_until = [0.0] * len(relays)
        self.last_error = [""] * len(relays)
        self.open = [0] * len(relays)  # connections open or being opened
        self.connected = [False] * len(relays)  # one connection accepted since the last failure
        self.cap: list[int | None] = [None] * len(relays)
        self.grow_at = [0.0] * len(relays)
        self.cursor = 0
        self.lock = threading.Lock()

    def next(self) -> int | None:
        """The next relay not being skipped (round-robin), else None."""
        with self.lock:
            now = self.clock()
            for step in range(len(self.relays)):
                i = (self.cursor + step) % len(self.relays)
                if self.skip_until[i] <= now:
                    self.cursor = i + 1
                    return i
            return None

    def acquire(self) -> int | None | bool:
        """A relay for a new connection (counted as open until ``release``); None if every
        relay is being skipped; False if the usable ones are at their cap or being probed."""
        with self.lock:
            now = self.clock()
            usable = False
            for step in range(len(self.relays)):
                i = (self.cursor + step) % len(self.relays)
                if self.skip_until[i] > now:
                    continue
                usable = True
                cap = self.cap[i]
                if cap is not None and now >= self.grow_at[i]:
                    cap = self.cap[i] = cap + 1
                    self.grow_at[i] = now + self.skip_seconds
                if cap is not None and self.open[i] >= cap:
                    continue
                if not self.connected[i] and self.open[i] > 0:
                    continue  # a first connection is on its way: wait for its result
                self.cursor = i + 1
                self.open[i] += 1
                return i
            return False if usable else None

    def release(self, i: int) -> None:
        with self.lock:
            self.open[i] -= 1

    def too_many(self, i: int) -> bool:
        """The relay refused a connection as one too many. True if we hold others to it (the
        cap is lowered; not a failure of the relay), False if this was our only one."""
        with self.lock:
            others = self.open[i] - 1
            if others <= 0:
                return False
            self.cap[i] = others
            self.grow_at[i] = self.clock() + self.skip_seconds
            return True

    def failed(self, i: int, error: str) -> None:
        with self.lock:
            self.failures[i] += 1
            self.last_error[i] = error
            self.connected[i] = False
            if self.failures[i] >= self.threshold:
                self.skip_until[i] = self.clock() + self.skip_seconds
                self.failures[i] = 0

    def succeeded(self, i: int) -> None:
        with self.lock:
            self.failures[i] = 0
            self.connected[i] = True

    def unavailable(self) -> str | None:
        with self.lock:
            now = self.clock()
            if any(until <= now for until in self.skip_until):
                return None
            wait = min(self.skip_until) - now
            errors = "; ".join(
                f"{r.label}: {e}" for r, e in zip(self.relays, self.last_error, strict=True)
            )
            return f"every relay is failing (next try in {wait:.0f} s): {errors}"


class SmtpTransport(Transport):
    """SMTP to the given relays. ``password`` is DIGEST_SMTP_PASSWORD (used for every relay
    that has a username). ``ssl_context`` replaces the system trust store for relays that
    verify certificates (e.g. a private CA). ``timeout``: seconds for connecting and for each
    reply; ``message_timeout`` (default 4 × timeout): for one whole message, from its first
    command to its last reply."""

    def __init__(
        self,
        relays: list[SmtpRelay],
        *,
        password: str | None = None,
        timeout: float = 30,
        message_timeout: float | None = None,
        per_connection: int = 100,
        rate_per_second: float = 0,
        ssl_context: ssl.SSLContext | None = None,
        failure_threshold: int = 3,
        skip_seconds: float = 60,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not relays:
            raise TransportError(
                "no SMTP relay configured: add an [[smtp]] table to the config, set "
                "DIGEST_SMTP_URL, or pass --smtp URL (or --outbox DIR to write a Maildir)"
            )
        self.relays = list(relays)
        self.password = password
        self.timeout = timeout
        self.message_timeout = message_timeout if message_timeout is not None else 4 * timeout
        self.per_connection = max(1, per_connection)
        self.limiter = RateLimiter(rate_per_second)
        self.health = _RelayHealth(self.relays, failure_threshold, skip_seconds, clock)
        self._verified = ssl_context
        self._unverified: ssl.SSLContext | None = None

    def context_for(self, relay: SmtpRelay) -> ssl.SSLContext:
        if relay.tls_verify:
            if self._verified is None:
                self._verified = ssl.create_default_context()
            return self._verified
        if self._unverified is None:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self._unverified = ctx
        return self._unverified

    def connect(self) -> SmtpConnection:
        return SmtpConnection(self)

    def unavailable(self) -> str | None:
        return self.health.unavailable()

    async def serve(self, queue: JobQueue) -> None:
        channel = _Channel(self)
        try:
            while (job := await queue.get()) is not None:
                try:
                    await channel.send(job, queue)
                except TransportError as e:
                    job.error = e
                    queue.halt()
                    queue.done(job)
        finally:
            await channel.close()


class _Channel:
    """One connection slot: a session to some relay, replaced after ``per_connection``
    messages or a failure."""

    def __init__(self, transport: SmtpTransport):
        self.t = transport
        self.session: pipelining.Session | None = None
        self.index = 0

    @property
    def label(self) -> str:
        return self.t.relays[self.index].label

    async def _open(self, job: Job, queue: JobQueue | None) -> bool:
        """Open a session for ``job``; False if the job was dealt with instead (deferred,
        given back, or not tried)."""
        t = self.t
        while True:
            index = t.health.acquire()
            if index is None:
                # Not tried: the delivery stays owed, without spending an attempt.
                if queue is None:
                    raise RelayUnavailable(t.health.unavailable() or "no relay available")
                queue.done(job)
                return False
            if index is not False:
                break
            # Every usable relay is at its cap, or being probed by a first connection: the
            # job goes back for a connection that is open, and this one tries again later.
            if queue is not None:
                queue.put_back(job)
                await asyncio.sleep(0.1)
                return False
            await asyncio.sleep(0.05)
        self.index = index
        relay = t.relays[index]
        where = f"relay {relay.label}"
        if relay.username and not t.password:
            t.health.release(index)
            raise TransportError(
                f"{where}: username {relay.username!r} is set but DIGEST_SMTP_PASSWORD is not"
            )
        try:
            self.session = await pipelining.Session.open(
                relay.host,
                relay.port,
                security=relay.security,
                context=t.context_for(relay) if relay.security != "plain" else None,
                username=relay.username,
                password=t.password,
                timeout=t.timeout,
                message_timeout=t.message_timeout,
            )
        except pipelining.ConnectionFailed as e:
            if (
                queue is not None
                and e.reply is not None
                and e.reply.too_many_connections
                and t.health.too_many(index)
            ):
                # We hold other connections to it: fewer connections, not a failure.
                t.health.release(index)
                queue.put_back(job)
                await asyncio.sleep(1)
                return False
            self._failed(job, queue, f"cannot connect to {where} ({e})")
            return False
        except pipelining.CertificateError as e:
            t.health.release(index)
            raise TransportError(
                f"{where}: TLS certificate verification failed ({e.verify_message}); "
                "fix the relay's certificate, or set tls_verify = false for a test relay"
            ) from None
        except pipelining.StartTlsMissing:
            t.health.release(index)
            raise TransportError(
                f"{where} does not offer STARTTLS; refusing to send in clear text "
                "(use an smtp:// URL if that is really wanted)"
            ) from None
        except pipelining.AuthUnavailable:
            t.health.release(index)
            raise TransportError(
                f"{where} does not offer AUTH on this connection; a username is configured"
            ) from None
        except pipelining.AuthRefused as e:
            t.health.release(index)
            # A relay may echo what it was sent: the reply is shown without the password.
            reply = e.reply.line.replace(t.password, "***") if t.password else e.reply.line
            raise SmtpAuthError(
                f"{where}: authentication as {relay.username!r} failed ({reply}); "
                "check the username in the config and DIGEST_SMTP_PASSWORD"
            ) from None
        except BaseException:
            t.health.release(index)
            raise
        t.health.succeeded(index)
        return True

    def _failed(self, job: Job, queue: JobQueue | None, error: str) -> None:
        # The connection is gone: the relay is charged, the job deferred with the reason.
        self.t.health.failed(self.index, error)
        self.t.health.release(self.index)
        self.session = None
        job.outcome = Outcome("deferred", error, self.label)
        if queue is not None:
            queue.done(job)

    async def send(self, job: Job, queue: JobQueue | None) -> None:
        """Send ``job`` and, pipelined after it, what ``queue`` has ready. Without a queue
        (one-off messages) ``job.outcome`` holds the result."""
        t = self.t
        if queue is None or t.limiter.interval:
            await t.limiter.wait_async()
        session = self.session
        if session is not None and session.messages >= t.per_connection:
            await self.close()
            session = None
        if session is None:
            if not await self._open(job, queue):
                return
            session = self.session
            assert session is not None
        label = self.label
        health, index = t.health, self.index

        def done(finished: Job, reply: Reply | None, refusal: str | None) -> None:
            if reply is None:
                finished.outcome = Outcome("failed", refusal or "", label)
            else:
                finished.outcome = classify(reply.code, reply.text, label)
            if queue is not None:
                queue.done(finished)

        # With a rate limit, each message waits for its own slot: no piggybacking.
        take = queue.take if queue is not None and not t.limiter.interval else _nothing
        try:
            await session.send(job, take, done, limit=t.per_connection)
        except pipelining.ConnectionFailed as e:
            session.abort()
            if not e.jobs:
                self.t.health.failed(self.index, str(e))
                self.t.health.release(self.index)
                self.session = None
                return
            charged, *untried = e.jobs
            if e.reply is not None and e.reply.code == 421:
                # 421: the server is closing the channel; the message may be retried elsewhere.
                error = e.reply.line
            else:
                error = f"connection to relay {label} lost: {e}"
            self._failed(charged, queue, error)
            for other in untried:
                if queue is not None:
                    queue.put_back(other)
            return
        health.succeeded(index)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.t.health.release(self.index)
            self.session = None


def _nothing() -> None:
    return None


class SmtpConnection(Connection):
    """A blocking connection for one message at a time. Its event loop runs in a thread of
    its own, so it works from any caller, even one inside another event loop (a web
    request handler, Playwright's sync API)."""

    def __init__(self, transport: SmtpTransport):
        self.t = transport
        self.channel = _Channel(transport)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
            self.thread = threading.Thread(
                target=self.loop.run_forever, name="digest-smtp", daemon=True
            )
            self.thread.start()
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def send(self, outgoing: Outgoing, wire: bytes | None = None) -> Outcome:
        job = Job(outgoing, wire)
        self._run(self.channel.send(job, None))
        assert job.outcome is not None
        return job.outcome

    def close(self) -> None:
        if self.loop is not None and self.thread is not None:
            self._run(self.channel.close())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join()
            self.loop.close()
            self.loop = self.thread = None


class OutboxTransport(Transport):
    """Writes each message into the Maildir ``path`` (created if needed) instead of sending it:
    for reviewing a send, and for the demo. Same ledger semantics as SMTP.

    The messages hold subscribers' addresses and their personal unsubscribe links, so the
    folders it creates are private to their owner (0700) and each message file is 0600,
    whatever the umask."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
            for sub in ("tmp", "new", "cur"):
                (self.path / sub).mkdir(mode=0o700, exist_ok=True)
        except OSError as e:
            raise TransportError(f"outbox {self.path}: cannot create a Maildir ({e})") from None
        self.host = socket.gethostname().replace("/", "_").replace(":", "_")
        self._seq = 0
        self._lock = threading.Lock()

    def connect(self) -> Connection:
        return _OutboxConnection(self)

    def write(self, outgoing: Outgoing) -> Path:
        with self._lock:
            self._seq += 1
            seq = self._seq
        digest = hashlib.sha256(outgoing.message_id.encode()).hexdigest()[:16]
        name = f"{time.time():.6f}.P{os.getpid()}Q{seq}M{digest}.{self.host}"
        envelope = (
            f"Return-Path: <{outgoing.sender}>\r\nDelivered-To: {outgoing.recipient}\r\n"
        ).encode()
        tmp = self.path / "tmp" / name
        # Write under tmp/, then rename into new/: a reader never sees half a message.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(envelope + outgoing.data)
            f.flush()
            os.fsync(f.fileno())
        final = self.path / "new" / name
        os.rename(tmp, final)
        return final


class _OutboxConnection(Connection):
    def __init__(self, outbox: OutboxTransport):
        self.outbox = outbox

    def send(self, outgoing: Outgoing, wire: bytes | None = None) -> Outcome:
        try:
            path = self.outbox.write(outgoing)
        except OSError as e:
            raise TransportError(f"outbox {self.outbox.path}: cannot write ({e})") from None
        return Outcome("sent", f"written to {path.name}", f"outbox:{self.outbox.path}")


def transport_from_config(
    config: Config,
    *,
    smtp_url: str | None = None,
    outbox: str | Path | None = None,
    rate: float | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> Transport:
    """The transport a send run uses: ``outbox`` (a Maildir), else ``smtp_url`` (one relay,
    replacing the configured ones), else the configured ``[[smtp]]`` relays."""
    if outbox is not None:
        if smtp_url is not None:
            raise DigestError("choose either an SMTP URL or an outbox directory, not both")
        return OutboxTransport(outbox)
    relays = [parse_smtp_url(smtp_url)] if smtp_url else list(config.smtp)
    return SmtpTransport(
        relays,
        password=config.smtp_password,
        timeout=config.send.timeout,
        per_connection=config.send.per_connection,
        rate_per_second=config.send.rate_per_second if rate is None else rate,
        ssl_context=ssl_context,
    )
