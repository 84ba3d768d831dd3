"""Sending: the step from the delivery ledger to the outside world. ``send_pending`` claims owed
deliveries in batches, checks each one against the subscriber's current subscription and the
suppression list right before it goes, makes the recipient's message from the variant template
(``messages.Assembler``), hands it to a pool of transport workers and records each outcome in
the ledger as soon as the server has answered.

Threads: all SQLite reads and writes happen on the calling thread; the connections live on
one event loop in one background thread (``pipelining.Pool``), which never touches SQLite. The
replies that arrive together are recorded in one transaction (group commit), each outcome
durable before its slot is given to another message.

In-flight bound: at most ``window = concurrency × (depth + 7)`` messages are *in flight* —
handed to the pool and not yet recorded — where ``depth`` is how many messages one connection
may have sent whole and not heard back about (1: with DATA, the end-of-data reply of one
message comes back before the next one's content may go, RFC 2920; with BDAT we also keep one).
The other slots of a connection hold the next message's envelope (sent, but a server cannot
accept a message without its content), one message ready to go, and up to five answered and
waiting for their group commit. So a crash (SIGKILL, power cut) can leave at most ``window``
messages unrecorded although the server may have accepted them — in practice
``concurrency × depth`` plus the replies that arrived during the last commit; the next run
sends them again, with the same Message-ID.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlite_utils import Database

from ..audience.lists import get_list, get_list_by_id
from ..audience.subscriptions import mark_bounced, skip_reasons
from ..config import Config
from ..errors import ConfigError, InvalidInput, describe_error
from ..feedback import events
from ..feedback.policy import BounceKind, status_code
from ..issues.store import get_digest
from ..issues.template import CompiledTemplate
from ..store import durable, transaction
from ..timeutil import utc_now
from ..verp import ReturnPath
from . import ledger
from .ledger import Delivery, PlannedDigest
from .personalise import Assembler, Outgoing, Recipient, VariantInfo, recipient_values
from .pipelining import Job, Pool
from .safety import check_links
from .transports import DeliveryError, Outcome, SmtpTransport, Transport, transport_from_config


@dataclass(frozen=True)
class Failure:
    delivery_id: int
    digest_id: int
    email: str
    reply: str


RELAY_SOURCE = "relay"  # bounce_events.source of a refusal our relay gave while we sent


def _record_refusal(
    db: Database, delivery: Delivery, outgoing: Outgoing, outcome: Outcome, now: datetime
) -> None:
    """A permanent refusal at send time (550 5.1.1 no such user) is a hard bounce like one
    that comes back later by mail: recorded in the bounce reports, so the dashboard, the
    subscriber's page and ``digest bounces list`` count it."""
    events.record(
        db,
        events.NewEvent(
            email=delivery.email,
            subscriber_id=delivery.subscriber_id,
            delivery_id=delivery.id,
            kind=BounceKind.HARD,
            source=RELAY_SOURCE,
            status=status_code(outcome.reply),
            diagnostic=outcome.reply[:1000],
            identified_by=events.IdentifiedBy.RELAY,
            message_key=outgoing.message_id,
            event_key=f"relay:{delivery.id}",
            occurred_at=now,
            received_at=now,
        ),
    )


@dataclass
class SendReport:
    """The result of one ``send_pending`` run (counts are for this run only)."""

    total: int = 0  # deliveries due when the run started (the progress bar's length)
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    skipped: int = 0
    released: int = 0  # leases of dead senders released by ``recover``
    by_digest: dict[int, Counter] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    stopped: str | None = None  # why the run ended before sending everything due
    planned: list[PlannedDigest] | None = None  # dry run only
    elapsed: float = 0.0
    deferred_replies: Counter = field(default_factory=Counter)  # reply -> deliveries deferred
    warnings: list[str] = field(default_factory=list)  # e.g. links that will not work

    @property
    def not_tried(self) -> int:
        """Deliveries due at the start that this run did not attempt (they stay owed)."""
        return max(0, self.total - self.done)

    def explanation(self) -> list[str]:
        """Why messages did not go out, one line per reason, most frequent first:
        "deferred 1000: cannot connect to relay smtp.example.org:587 (connection refused)"."""
        lines = [f"deferred {n}: {reply}" for reply, n in self.deferred_replies.most_common(5)]
        others = sum(self.deferred_replies.values()) - sum(
            n for _, n in self.deferred_replies.most_common(5)
        )
        if others:
            lines.append(f"deferred {others}: other replies (see `digest deliveries`)")
        if self.stopped and self.not_tried:
            lines.append(f"not tried {self.not_tried}: {self.stopped}")
        return lines

    @property
    def done(self) -> int:
        return self.sent + self.deferred + self.failed + self.skipped

    @property
    def rate(self) -> float:
        """Messages handed over (sent, deferred or failed) per second."""
        attempted = self.sent + self.deferred + self.failed
        return attempted / self.elapsed if self.elapsed > 0 else 0.0

    def count(self, delivery: Delivery, status: str) -> None:
        setattr(self, status, getattr(self, status) + 1)
        self.by_digest.setdefault(delivery.digest_id, Counter())[status] += 1


class _WireTemplate:
    """A variant template with its literal chunks dot-stuffed once (RFC 5321 4.5.2), so that a
    recipient's DATA payload is a join of these and of the (tiny) recipient values, stuffed
    as needed, instead of a scan of the whole 60 KB message per recipient."""

    def __init__(self, compiled: CompiledTemplate):
        chunks = compiled.chunks
        # A value is at a line start if the chunk before it ends one. Chunks after a value
        # never start with '.' in templates made by build_template (a placeholder is followed
        # by "=\r\n" or "\r\n"); if one did, fall back to stuffing the whole message.
        self.usable = chunks[-1].endswith(b"\r\n") and not any(
            c.startswith(b".") or not c for c in chunks[1:-1]
        )
        self.slots = compiled.slots
        self.line_start = [c.endswith(b"\n") for c in chunks[:-1]]
        self.chunks = [c.replace(b"\n.", b"\n..") for c in chunks]
        if self.chunks[0].startswith(b"."):
            self.chunks[0] = b"." + self.chunks[0]
        # The usual case: no literal line starts with '.', so the payload is the message
        # itself whenever the recipient's values need no stuffing either (no second 60 KB join).
        self.plain = self.chunks == chunks

    def payload(self, data: bytes, values: dict[tuple[str, str], bytes]) -> bytes:
        """The DATA payload of ``data``, the template filled with ``values``."""
        if self.plain:
            for slot, at_start in zip(self.slots, self.line_start, strict=True):
                value = values[slot]
                if b"\n." in value or (at_start and value.startswith(b".")):
                    break
            else:
                return data
        return self.fill(values)

    def fill(self, values: dict[tuple[str, str], bytes]) -> bytes:
        out = [self.chunks[0]]
        for slot, at_start, chunk in zip(self.slots, self.line_start, self.chunks[1:], strict=True):
            value = values[slot]
            if b"\n." in value:
                value = value.replace(b"\n.", b"\n..")
            if at_start and value.startswith(b"."):
                value = b"." + value
            out.append(value)
            out.append(chunk)
        return b"".join(out)


# Slots of the in-flight window per connection: ``depth`` (1) message sent whole and awaiting
# its reply, the next one's envelope, one ready to go the moment a reply comes, and five
# answered and waiting for their commit. A commit with synchronous=FULL waits on an fsync
# (milliseconds), and a relay next door answers several messages per connection meanwhile;
# with fewer slots the sender waits on the disk (9 KB messages, 4 connections, local relay:
# 2,500 msg/s with 4 slots, 3,500 with 6, 3,950 with 8).
DEPTH = 1
WINDOW_PER_CONNECTION = DEPTH + 7


def dkim_signer(config: Config) -> Callable[[bytes], bytes] | None:
    """``message -> signed message`` when ``[dkim]`` is configured, else None."""
    settings, path = config.dkim, config.dkim_key_path
    if not settings.enabled or path is None:
        return None
    try:
        from . import dkim
    except ImportError:
        raise ConfigError(
            "[dkim] is configured but the dkimpy package is missing: pip install 'digest[dkim]'"
        ) from None
    key = dkim.load_key(path)
    selector, domain = settings.selector or "", settings.domain or ""

    def sign(message: bytes) -> bytes:
        return dkim.sign(message, selector=selector, domain=domain, key_pem=key)

    return sign


class _Variant:
    """What preparing a message needs from a variant, computed once per variant."""

    def __init__(self, info: VariantInfo, bounce_address: str | None = None):
        self.info = info
        self.bounce_address = bounce_address  # the list's own, if it has one
        wire = _WireTemplate(info.compiled)
        self.wire = wire if wire.usable else None

    def message_id(self, subscriber_id: int) -> str:
        return self.info.message_id(subscriber_id)


class _Run:
    """State of one ``send_pending`` call."""

    def __init__(
        self,
        db: Database,
        config: Config,
        *,
        clock: Callable[[], datetime],
        transport: Transport,
        assembler: Assembler,
        report: SendReport,
        progress: Callable[[SendReport], None] | None,
        rng: random.Random | None,
        opts: dict[str, Any],
        stop: threading.Event | None,
    ):
        self.db = db
        self.stop = stop
        self.config = config
        self.clock = clock
        self.transport = transport
        self.assembler = assembler
        self.report = report
        self.progress = progress
        self.rng = rng
        self.o = opts
        self.owner = ledger.new_lease_owner()
        self.lease_seconds = config.send.lease_seconds
        self.signer = dkim_signer(config)
        self.max_age = config.send.max_age
        self.per_hour = config.send.rate_per_hour
        self.claimed = 0
        self.exhausted = False
        self.error: BaseException | None = None
        self._variants: dict[int, _Variant | None] = {}
        b = config.bounces
        self.return_path = ReturnPath(b.address, b.verp, assembler.secret, b.delimiter, b.provider)

    def claim(self, held: list[Delivery], in_flight: int) -> None:
        want = self.o["batch"]
        if self.o["limit"] is not None:
            want = min(want, self.o["limit"] - self.claimed)
            if want <= 0:
                self.exhausted = True
                return
        now = self.clock()
        if self.per_hour:
            used = ledger.sent_since(self.db, now - timedelta(hours=1)) + in_flight
            if used >= self.per_hour:
                self.report.stopped = (
                    f"hourly rate limit reached ({self.per_hour} messages per hour); "
                    "the rest wait for a later run"
                )
                self.exhausted = True
                return
            want = min(want, self.per_hour - used)
        reason = self.transport.unavailable()
        if reason:
            self.report.stopped = reason + "; the rest wait for a later run"
            self.exhausted = True
            return
        batch = ledger.claim(
            self.db,
            self.owner,
            now=now,
            lease_seconds=self.lease_seconds,
            limit=want,
            list_id=self.o["list_id"],
            digest_id=self.o["digest_id"],
            retry_now=self.o["retry_now"],
        )
        self.claimed += len(batch)
        if not batch:
            self.exhausted = True
        # Held in reverse so that the oldest is popped first, from the end.
        held[:0] = reversed(batch)

    def prepare_all(self, deliveries: list[Delivery]) -> list[Job]:
        """The jobs for ``deliveries``, checked against subscriptions and suppressions right
        before they go (the skipped ones are recorded so, in one transaction).

        A failure belongs to the smallest thing that failed: a delivery whose message cannot
        be made (an address that cannot be written in a header, say) is recorded ``failed``
        with the reason, and the others go out."""
        reasons = skip_reasons(self.db, deliveries)
        jobs = []
        skipped = []
        broken = []
        for delivery in deliveries:
            reason = reasons.get(delivery.id)
            variant = self._variant(delivery.variant_id) if reason is None else None
            if variant is None:
                reason = reason or f"variant {delivery.variant_id} has no message (empty digest)"
                skipped.append((delivery, reason))
                continue
            try:
                jobs.append(self._job(delivery, variant))
            except Exception as e:  # noqa: BLE001 - contained: this delivery fails alone
                broken.append((delivery, f"message could not be made: {describe_error(e)}"))
        if skipped or broken:
            now = self.clock()
            with transaction(self.db):
                for delivery, reason in skipped:
                    ledger.record_skipped(self.db, delivery.id, reason=reason, now=now)
                    self.report.count(delivery, "skipped")
                for delivery, reason in broken:
                    ledger.record_failed(
                        self.db, delivery.id, reply=reason, relay=None, message_id=None, now=now
                    )
                    self.report.failures.append(
                        Failure(delivery.id, delivery.digest_id, delivery.email, reason)
                    )
                    self.report.count(delivery, "failed")
        return jobs

    def prepare(self, delivery: Delivery) -> tuple[Outgoing, bytes | None] | None:
        """The message for ``delivery`` and its DATA payload, or None if it was skipped (and
        recorded so)."""
        jobs = self.prepare_all([delivery])
        return (jobs[0].outgoing, jobs[0].payload) if jobs else None

    def _variant(self, variant_id: int) -> _Variant | None:
        if variant_id not in self._variants:
            try:
                info = self.assembler.variant(variant_id)
                bounces = get_list_by_id(self.db, info.list_id).bounce_address
                self._variants[variant_id] = _Variant(info, bounces)
            except LookupError:
                self._variants[variant_id] = None
        return self._variants[variant_id]

    def _job(self, delivery: Delivery, variant: _Variant) -> Job:
        info = variant.info
        a = self.assembler
        message_id = variant.message_id(delivery.subscriber_id)
        values = recipient_values(
            info,
            Recipient(delivery.subscriber_id, delivery.email, delivery.name),
            base_url=a.base_url,
            secret=a.secret,
            unsubscribe_mailto=a.unsubscribe_mailto,
            message_id=message_id,
        )
        data = info.compiled.fill(values)
        # The envelope sender names the delivery (VERP), so that its bounce finds it; a header
        # line does the same for a provider's webhooks (it never starts with '.': no stuffing).
        sender = self.return_path.sender(
            delivery.id, list_address=variant.bounce_address, from_sender=info.sender
        )
        tag = self.return_path.header(delivery.id)
        if self.signer is not None:
            # The signature covers the whole message, so the pre-stuffed copy cannot be used.
            data = self.signer(tag + data)
            return Job(Outgoing(message_id, sender, delivery.email, data), None, delivery)
        wire = variant.wire.payload(data, values) if variant.wire is not None else None
        if tag:
            data, wire = tag + data, (tag + wire if wire is not None else None)
        return Job(Outgoing(message_id, sender, delivery.email, data), wire, delivery)

    def record(
        self, delivery: Delivery, outgoing: Outgoing, outcome: Outcome, now: datetime | None = None
    ) -> None:
        now = now or self.clock()
        report = self.report
        if outcome.status == "sent":
            ledger.record_sent(
                self.db,
                delivery.id,
                reply=outcome.reply,
                relay=outcome.relay,
                message_id=outgoing.message_id,
                now=now,
            )
            status = "sent"
        elif outcome.status == "deferred":
            status = ledger.record_deferred(
                self.db,
                delivery,
                reply=outcome.reply,
                relay=outcome.relay,
                message_id=outgoing.message_id,
                now=now,
                max_age=self.max_age,
                rng=self.rng,
            )
            if status == "deferred":
                report.deferred_replies[outcome.reply] += 1
        else:
            ledger.record_failed(
                self.db,
                delivery.id,
                reply=outcome.reply,
                relay=outcome.relay,
                message_id=outgoing.message_id,
                now=now,
            )
            if outcome.bounce:
                mark_bounced(self.db, delivery.email, outcome.reply, now=now)
                _record_refusal(self.db, delivery, outgoing, outcome, now)
            status = "failed"
        if status == "failed":
            report.failures.append(
                Failure(delivery.id, delivery.digest_id, delivery.email, outcome.reply)
            )
        report.count(delivery, status)

    def run(self) -> None:
        concurrency = self.o["concurrency"]
        results: queue.SimpleQueue[Job] = queue.SimpleQueue()
        pool = Pool(self.transport.serve, concurrency, results.put, stop=self.stop).start()
        window = WINDOW_PER_CONNECTION * concurrency
        held: list[Delivery] = []
        in_flight: dict[int, Delivery] = {}
        renew_every = max(self.lease_seconds / 3, 0.05)
        # The wait for replies also wakes up this often to notice ``stop``.
        wake_every = min(renew_every, 0.25)
        next_renew = time.monotonic() + renew_every
        started = time.monotonic()
        halted = False
        try:
            while True:
                if self.stop is not None and self.stop.is_set() and not halted:
                    # Asked to stop: claim and start nothing more; the messages already at the
                    # server are finished and recorded below, the rest go back to the ledger.
                    halted = True
                    pool.halt()
                    self.report.stopped = "asked to stop; the rest wait for the next run"
                if not halted and len(in_flight) < window:
                    self._refill(pool, held, in_flight, window)
                if not in_flight:
                    break
                try:
                    items = [results.get(timeout=wake_every)]
                except queue.Empty:
                    items = []
                while True:
                    try:
                        items.append(results.get_nowait())
                    except queue.Empty:
                        break
                if items:
                    self._record_all(items, in_flight)
                    if self.error is not None and not halted:
                        halted = True
                        pool.halt()
                    self.report.elapsed = time.monotonic() - started
                    if self.progress is not None:
                        self.progress(self.report)
                if time.monotonic() >= next_renew:
                    ledger.renew(
                        self.db, self.owner, now=self.clock(), lease_seconds=self.lease_seconds
                    )
                    next_renew = time.monotonic() + renew_every
        finally:
            # Ctrl-C or an error: let the connections finish the messages in hand, record what
            # the servers answered, and give back the leases of everything not sent.
            pool.halt()
            pool.close()
            leftovers = []
            while True:
                try:
                    leftovers.append(results.get_nowait())
                except queue.Empty:
                    break
            self._record_all(leftovers, in_flight)
            ledger.release(self.db, self.owner)
            self.report.elapsed = time.monotonic() - started

    def _refill(
        self, pool: Pool, held: list[Delivery], in_flight: dict[int, Delivery], window: int
    ) -> None:
        """Hand the pool deliveries until ``window`` are in flight (or none are left)."""
        while len(in_flight) < window:
            if not held:
                # A new batch only once the pool runs low (2 per connection: the next
                # message for each is still there), so a batch is not claimed just to top
                # up the window by a few, and a crash leaves fewer leases held.
                if self.exhausted or len(in_flight) > 2 * self.o["concurrency"]:
                    return
                self.claim(held, len(in_flight))
                continue
            unavailable = self.transport.unavailable()
            if unavailable:
                # Do not burn an attempt on every held delivery while no relay works.
                self.report.stopped = unavailable + "; the rest wait for a later run"
                self.exhausted = True
                held.clear()
                return
            n = min(window - len(in_flight), len(held))
            chunk = held[-n:][::-1]
            del held[-n:]
            jobs = self.prepare_all(chunk)
            for job in jobs:
                in_flight[job.token.id] = job.token
            if jobs:
                pool.submit(jobs)

    def _record_all(self, items: list[Job], in_flight: dict[int, Delivery]) -> None:
        # One transaction for every reply that arrived together: each outcome is durable as
        # soon as the server has answered, at one commit per batch rather than per message.
        now = self.clock()
        sent: list[tuple[int, str, str | None, str]] = []
        with transaction(self.db):
            for job in items:
                delivery = job.token
                in_flight.pop(delivery.id, None)
                if job.outcome is not None and job.outcome.status == "sent":
                    sent.append(
                        (delivery.id, job.outcome.reply, job.outcome.relay, job.outgoing.message_id)
                    )
                    self.report.count(delivery, "sent")
                elif job.outcome is not None:
                    self.record(delivery, job.outgoing, job.outcome, now)
                elif job.error is not None and self.error is None:
                    self.error = job.error
                elif job.error is None and self.report.stopped is None:
                    # Given back untried: no relay would take it (or we are stopping).
                    unavailable = self.transport.unavailable()
                    if unavailable:
                        self.report.stopped = unavailable + "; the rest wait for a later run"
            ledger.record_sent_many(self.db, sent, now=now)


def send_pending(
    db: Database,
    config: Config,
    *,
    secret: bytes,
    clock: Callable[[], datetime] = utc_now,
    transport: Transport | None = None,
    list_slug: str | None = None,
    digest_id: int | None = None,
    limit: int | None = None,
    concurrency: int | None = None,
    rate: float | None = None,
    recover: bool = False,
    retry_now: bool = False,
    dry_run: bool = False,
    progress: Callable[[SendReport], None] | None = None,
    rng: random.Random | None = None,
    batch_size: int | None = None,
    stop: threading.Event | None = None,
    allow_insecure_links: bool = False,
) -> SendReport:
    """Send every delivery that is due (optionally only one list's or one digest's, at most
    ``limit``). ``transport=None`` uses the configured relays, with ``rate`` (messages per
    second) overriding ``[send] rate_per_second``; a given transport brings its own limit. Raises ``TransportError`` (after
    recording every reply already received) if the transport cannot work at all, e.g. the relay
    refuses the password; the deliveries not sent stay queued.

    ``stop`` (optional): once set, no further message is started; the messages already handed
    to the server are finished and recorded, every other claimed delivery is released, and the
    report says why the run ``stopped``. Setting it from a signal handler is the way to end a
    run cleanly (SIGTERM under ``digest run``).

    Through SMTP, the links of the digests are checked first (``safety.check_links``): plain
    http on a public host is refused unless ``allow_insecure_links``; warnings go in the
    report."""
    list_id = get_list(db, list_slug).id if list_slug else None
    if digest_id is not None:
        get_digest(db, digest_id)  # NotFound if there is none
    if limit is not None and limit < 0:
        raise InvalidInput(f"limit must be 0 or more, got {limit}")
    concurrency = concurrency if concurrency is not None else config.send.concurrency
    if concurrency < 1:
        raise InvalidInput(f"concurrency must be at least 1, got {concurrency}")
    if rate is not None and rate < 0:
        raise InvalidInput(f"rate must be 0 (no limit) or more messages per second, got {rate}")
    released = ledger.recover(db) if recover else 0
    opts = {
        "list_id": list_id,
        "digest_id": digest_id,
        "limit": limit,
        "retry_now": retry_now,
        "concurrency": concurrency,
        "batch": max(1, batch_size or config.send.claim_batch),
    }
    if dry_run:
        planned = ledger.plan(
            db, now=clock(), list_id=list_id, digest_id=digest_id, retry_now=retry_now, limit=limit
        )
        return SendReport(total=sum(p.due for p in planned), released=released, planned=planned)
    due = ledger.count_due(
        db, now=clock(), list_id=list_id, digest_id=digest_id, retry_now=retry_now
    )
    report = SendReport(total=min(due, limit) if limit is not None else due, released=released)
    if report.total == 0:
        return report
    if progress is not None:
        progress(report)
    own_transport = transport is None
    if transport is None:
        transport = transport_from_config(config, rate=rate)
    if isinstance(transport, SmtpTransport):
        try:
            report.warnings += check_links(
                config.base_url, transport.relays, allow_insecure=allow_insecure_links
            )
        except BaseException:
            if own_transport:
                transport.close()
            raise
    assembler = Assembler(
        db,
        base_url=config.base_url,
        secret=secret,
        unsubscribe_mailto=config.site.unsubscribe_mailto,
    )
    run = _Run(
        db,
        config,
        clock=clock,
        transport=transport,
        assembler=assembler,
        report=report,
        progress=progress,
        rng=rng,
        opts=opts,
        stop=stop,
    )
    # Each commit of an outcome reaches the disk before the next message goes out in its
    # place, so a power cut cannot forget more than the messages in flight.
    try:
        with durable(db):
            run.run()
    finally:
        if own_transport:
            transport.close()
    if run.error is not None:
        raise run.error
    return report


def send_message(config: Config, outgoing: Outgoing, *, transport: Transport | None = None) -> str:
    """Send one ad-hoc message (a confirmation, a "[TEST]" preview) outside the ledger and
    return the server's reply. Raises ``DeliveryError`` if it was not accepted, or
    ``TransportError`` if the transport cannot work at all."""
    transport = transport or transport_from_config(config)
    connection = transport.connect()
    try:
        outcome = connection.send(outgoing)
    finally:
        connection.close()
    if outcome.status != "sent":
        temporary = " (temporary; try again later)" if outcome.status == "deferred" else ""
        raise DeliveryError(
            f"message to {outgoing.recipient} not accepted{temporary}: {outcome.reply}"
        )
    return outcome.reply
