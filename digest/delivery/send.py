"""Sending: the step from the delivery ledger to the outside world. ``send_pending`` claims owed
deliveries in batches, checks each one against the subscriber's current subscription and the
suppression list right before it goes, makes the recipient's message from the variant template
(``messages.Assembler``), hands it to a pool of transport workers and records each outcome in
the ledger as soon as the server has answered.

Threads: all SQLite reads and writes happen on the calling thread; the N worker threads only
talk SMTP (smtplib releases the GIL while it waits on the network). At most ``2 × concurrency``
messages are *in flight* — handed to a worker and not yet recorded. Those, and only those, are
what a crash (SIGKILL, power cut) can leave unrecorded although the server may have accepted
them; the next run sends them again, with the same Message-ID.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlite_utils import Database

from ..audience.lists import get_list
from ..audience.subscriptions import mark_bounced, skip_reason
from ..config import Config
from ..errors import InvalidInput
from ..issues.store import get_digest
from ..issues.template import CompiledTemplate
from ..store import durable, transaction
from ..timeutil import utc_now
from . import ledger
from .ledger import Delivery, PlannedDigest
from .personalise import Assembler, Outgoing, Recipient, VariantInfo
from .transports import DeliveryError, Outcome, RelayUnavailable, Transport, transport_from_config


@dataclass(frozen=True)
class Failure:
    delivery_id: int
    digest_id: int
    email: str
    reply: str


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


_STOP = object()


def _worker(
    transport: Transport,
    work: queue.SimpleQueue,
    results: queue.SimpleQueue,
    halt: threading.Event,
    stop: threading.Event | None,
) -> None:
    connection = None
    try:
        connection = transport.connect()
        while True:
            item = work.get()
            if item is _STOP:
                return
            delivery, outgoing, wire = item
            # ``stop`` is checked here too, not only by the claiming thread: a message queued for
            # this worker but not yet started is given back rather than sent after the request.
            if halt.is_set() or (stop is not None and stop.is_set()):
                results.put((delivery, outgoing, None, None))
                continue
            try:
                outcome = connection.send(outgoing, wire)
            except RelayUnavailable:
                # Not tried: the delivery stays owed, without spending an attempt.
                results.put((delivery, outgoing, None, None))
                continue
            except Exception as e:  # noqa: BLE001 - TransportError, or a bug: stop, keep track
                halt.set()
                results.put((delivery, outgoing, None, e))
                continue
            results.put((delivery, outgoing, outcome, None))
    finally:
        if connection is not None:
            connection.close()


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
        self.max_age = config.send.max_age
        self.per_hour = config.send.rate_per_hour
        self.claimed = 0
        self.exhausted = False
        self.error: BaseException | None = None
        self._wires: dict[int, _WireTemplate | None] = {}

    def claim(self, held: deque, in_flight: int) -> None:
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
        held.extend(batch)

    def prepare(self, delivery: Delivery) -> tuple[Outgoing, bytes | None] | None:
        """The message for ``delivery`` and its DATA payload, or None if it was skipped (and
        recorded so)."""
        reason = skip_reason(self.db, delivery.subscriber_id, delivery.list_id, delivery.email)
        if reason is None:
            try:
                info = self.assembler.variant(delivery.variant_id)
            except LookupError:
                reason = f"variant {delivery.variant_id} has no message (empty digest)"
        if reason is not None:
            ledger.record_skipped(self.db, delivery.id, reason=reason, now=self.clock())
            self.report.count(delivery, "skipped")
            return None
        outgoing, values = self.assembler.message_and_values(
            delivery.variant_id, Recipient(delivery.subscriber_id, delivery.email, delivery.name)
        )
        wire = self._wire(info)
        return outgoing, (wire.fill(values) if wire is not None else None)

    def _wire(self, info: VariantInfo) -> _WireTemplate | None:
        if info.variant_id not in self._wires:
            wire = _WireTemplate(info.compiled)
            self._wires[info.variant_id] = wire if wire.usable else None
        return self._wires[info.variant_id]

    def record(self, delivery: Delivery, outgoing: Outgoing, outcome: Outcome) -> None:
        now = self.clock()
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
            status = "failed"
        if status == "failed":
            report.failures.append(
                Failure(delivery.id, delivery.digest_id, delivery.email, outcome.reply)
            )
        report.count(delivery, status)

    def run(self) -> None:
        concurrency = self.o["concurrency"]
        work: queue.SimpleQueue = queue.SimpleQueue()
        results: queue.SimpleQueue = queue.SimpleQueue()
        halt = threading.Event()
        threads = [
            threading.Thread(
                target=_worker,
                args=(self.transport, work, results, halt, self.stop),
                daemon=True,
            )
            for _ in range(concurrency)
        ]
        for t in threads:
            t.start()
        window = 2 * concurrency
        held: deque[Delivery] = deque()
        in_flight: dict[int, Delivery] = {}
        renew_every = max(self.lease_seconds / 3, 0.05)
        next_renew = time.monotonic() + renew_every
        started = time.monotonic()
        try:
            while True:
                if self.stop is not None and self.stop.is_set() and not halt.is_set():
                    # Asked to stop: claim and start nothing more; the messages already at the
                    # server are finished and recorded below, the rest go back to the ledger.
                    halt.set()
                    self.report.stopped = "asked to stop; the rest wait for the next run"
                while not halt.is_set() and len(in_flight) < window:
                    if not held:
                        if self.exhausted:
                            break
                        self.claim(held, len(in_flight))
                        continue
                    unavailable = self.transport.unavailable()
                    if unavailable:
                        # Do not burn an attempt on every held delivery while no relay works.
                        self.report.stopped = unavailable + "; the rest wait for a later run"
                        self.exhausted = True
                        held.clear()
                        break
                    delivery = held.popleft()
                    prepared = self.prepare(delivery)
                    if prepared is not None:
                        in_flight[delivery.id] = delivery
                        work.put((delivery, *prepared))
                if not in_flight:
                    break
                try:
                    items = [results.get(timeout=renew_every)]
                except queue.Empty:
                    items = []
                while True:
                    try:
                        items.append(results.get_nowait())
                    except queue.Empty:
                        break
                if items:
                    self._record_all(items, in_flight)
                    self.report.elapsed = time.monotonic() - started
                    if self.progress is not None:
                        self.progress(self.report)
                if time.monotonic() >= next_renew:
                    ledger.renew(
                        self.db, self.owner, now=self.clock(), lease_seconds=self.lease_seconds
                    )
                    next_renew = time.monotonic() + renew_every
        finally:
            # Ctrl-C or an error: let the workers finish the message in hand, record what the
            # server answered, and give back the leases of everything not sent.
            halt.set()
            for _ in threads:
                work.put(_STOP)
            for t in threads:
                t.join()
            leftovers = []
            while True:
                try:
                    leftovers.append(results.get_nowait())
                except queue.Empty:
                    break
            self._record_all(leftovers, in_flight)
            ledger.release(self.db, self.owner)
            self.report.elapsed = time.monotonic() - started

    def _record_all(self, items: list, in_flight: dict[int, Delivery]) -> None:
        # One transaction for every reply that arrived together: each outcome is durable as
        # soon as the server has answered, at one commit per batch rather than per message.
        with transaction(self.db):
            for delivery, outgoing, outcome, error in items:
                in_flight.pop(delivery.id, None)
                if outcome is not None:
                    self.record(delivery, outgoing, outcome)
                elif error is not None and self.error is None:
                    self.error = error


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
) -> SendReport:
    """Send every delivery that is due (optionally only one list's or one digest's, at most
    ``limit``). ``transport=None`` uses the configured relays, with ``rate`` (messages per
    second) overriding ``[send] rate_per_second``; a given transport brings its own limit. Raises ``TransportError`` (after
    recording every reply already received) if the transport cannot work at all, e.g. the relay
    refuses the password; the deliveries not sent stay queued.

    ``stop`` (optional): once set, no further message is started; the messages already handed
    to the server are finished and recorded, every other claimed delivery is released, and the
    report says why the run ``stopped``. Setting it from a signal handler is the way to end a
    run cleanly (SIGTERM under ``digest run``)."""
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
