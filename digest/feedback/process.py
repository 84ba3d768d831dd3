"""Acting on what comes back: each bounce-mailbox message and each verified provider event is
classified, matched to its subscriber, recorded (``events``), weighed by the policy
(``policy.decide`` over the address's events since it last became active) and applied: a hard
bounce (or ``soft_threshold`` soft ones within ``soft_window_days``) makes every subscription of
the address ``bounced``, a complaint makes it ``complained``, and the address is suppressed;
the history says where it came from and what the server said.

Matching, most trustworthy first: a token we signed (the provider's copy of the delivery token,
the VERP return path, the returned message's List-Unsubscribe link), then the returned
Message-ID when it agrees with the address the report names, then that address alone. Anyone
can mail a bounce address: an unsigned report only ever acts on the address it names, and only
when that address is a subscriber's.

Failures belong to the one message: one that cannot be used (not a bounce, a complaint or an
auto-reply; or naming nobody we know) is left in the mailbox, unread, with one line saying why,
and the run goes on. Each message is marked done only after its outcome is committed, and
recording is idempotent, so a run stopped half-way is simply run again.
"""

from __future__ import annotations

import hashlib
import sqlite3
import ssl
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from sqlite_utils import Database

from ..addresses import normalise_email
from ..audience.subscriptions import (
    active_since,
    get_subscriber,
    get_subscriber_by_id,
    mark_bounced,
    mark_complained,
)
from ..config import Config
from ..errors import InvalidInput, NotFound, describe_error
from ..store import transaction
from ..text import single_line
from ..verp import (
    read_bounce_address,
    read_list_unsubscribe,
    read_message_id,
    read_verp_token,
)
from . import events
from .events import DeliveryRef, IdentifiedBy, NewEvent
from .mailboxes import (
    DEFAULT_PASSWORD_ENV,
    BounceMailbox,
    DoneAction,
    ImapMailbox,
    MailboxError,
    MaildirMailbox,
    MboxMailbox,
    imap_settings,
)
from .policy import BounceKind, Outcome, decide
from .reports import Report, parse_report
from .webhooks import ProviderEvent

MAILBOX_SOURCE = "bounce-mailbox"


@dataclass(frozen=True)
class BouncePolicy:
    """What applying an event needs besides the database: the secret that signs VERP and
    unsubscribe tokens, the MTA's recipient delimiter and the soft-bounce threshold."""

    secret: bytes = field(repr=False)
    delimiter: str = "+"
    soft_threshold: int = 3
    soft_window_days: float = 15

    @classmethod
    def from_config(cls, config: Config, secret: bytes) -> BouncePolicy:
        b = config.bounces
        return cls(secret, b.delimiter, b.soft_threshold, b.soft_window_days)


class Effect(StrEnum):
    """What became of one message or event."""

    BOUNCED = "bounced"  # the address's subscriptions are now bounced, and it is suppressed
    COMPLAINED = "complained"  # ... complained, and suppressed
    COUNTED = "counted"  # a soft bounce, counted towards the threshold
    RECORDED = "recorded"  # recorded; nothing more to change (already bounced, a delivery...)
    DUPLICATE = "duplicate"  # the same event was recorded before: nothing changed
    IGNORED = "ignored"  # an auto-reply, a delay warning, a report that asks for nothing
    UNUSABLE = "unusable"  # not understood, or about nobody we know: left for a person


CHANGES = (Effect.BOUNCED, Effect.COMPLAINED)


@dataclass(frozen=True)
class Result:
    """One message's or event's outcome, with one line for a person."""

    effect: Effect
    kind: BounceKind
    email: str | None
    line: str
    key: str = ""  # the mailbox key, for a message

    @property
    def used(self) -> bool:
        """Whether the message is done with (flag, delete or move it)."""
        return self.effect is not Effect.UNUSABLE


@dataclass(frozen=True)
class _Target:
    email: str
    subscriber_id: int | None
    delivery: DeliveryRef | None
    identified_by: IdentifiedBy


# --- matching ------------------------------------------------------------------------------------


def _subscriber(db: Database, address: str | None) -> tuple[int, str] | None:
    if not address:
        return None
    try:
        found = get_subscriber(db, normalise_email(address))
    except (InvalidInput, NotFound):
        return None
    return found.id, found.email


def _by_delivery(db: Database, delivery_id: int | None, how: IdentifiedBy) -> _Target | None:
    ref = events.find_delivery(db, delivery_id) if delivery_id is not None else None
    if ref is None:
        return None
    return _Target(ref.email, ref.subscriber_id, ref, how)


def _by_message_id(db: Database, message_id: str | None) -> DeliveryRef | None:
    mid = read_message_id(message_id)
    if mid is None:
        return None
    return events.find_issue_delivery(
        db,
        list_slug=mid.list_slug,
        frequency=mid.frequency,
        period_label=mid.period_label,
        subscriber_id=mid.subscriber_id,
    )


def _report_target(
    db: Database, report: Report, policy: BouncePolicy, now: datetime
) -> _Target | None:
    for path in report.return_paths:
        delivery_id = read_bounce_address(path, policy.secret, delimiter=policy.delimiter)
        if found := _by_delivery(db, delivery_id, IdentifiedBy.VERP):
            return found
    named = [a.lower() for a in report.addresses]
    from_message_id = _by_message_id(db, report.original_message_id)
    unsub = read_list_unsubscribe(report.list_unsubscribe_url, policy.secret, now=now)
    if unsub is not None:
        subscriber = get_subscriber_by_id(db, unsub.subscriber_id)
        if subscriber is not None:
            ref = from_message_id
            if ref is not None and ref.subscriber_id != subscriber.id:
                ref = None
            return _Target(subscriber.email, subscriber.id, ref, IdentifiedBy.LIST_UNSUBSCRIBE)
    # Unsigned: the Message-ID counts only where the report names nobody else.
    if from_message_id is not None and (not named or from_message_id.email.lower() in named):
        ref = from_message_id
        return _Target(ref.email, ref.subscriber_id, ref, IdentifiedBy.MESSAGE_ID)
    for address in named:
        if person := _subscriber(db, address):
            return _Target(person[1], person[0], None, IdentifiedBy.ADDRESS)
    return None


def _event_target(db: Database, event: ProviderEvent, policy: BouncePolicy) -> _Target | None:
    if event.delivery_token:
        delivery_id = read_verp_token(event.delivery_token, policy.secret)
        if found := _by_delivery(db, delivery_id, IdentifiedBy.DELIVERY_TOKEN):
            return found
    if event.return_path:
        delivery_id = read_bounce_address(
            event.return_path, policy.secret, delimiter=policy.delimiter
        )
        if found := _by_delivery(db, delivery_id, IdentifiedBy.VERP):
            return found
    # The provider's signature vouches for the address it names.
    person = _subscriber(db, event.email)
    ref = _by_message_id(db, event.message_id)
    if ref is not None and (person is None or ref.subscriber_id == person[0]):
        return _Target(ref.email, ref.subscriber_id, ref, IdentifiedBy.MESSAGE_ID)
    if person is not None:
        return _Target(person[1], person[0], None, IdentifiedBy.ADDRESS)
    return None


# --- applying ------------------------------------------------------------------------------------


def _apply(db: Database, new: NewEvent, policy: BouncePolicy, now: datetime) -> Result:
    """Record ``new`` and act on the policy's decision, in one transaction."""
    with transaction(db):
        if not events.record(db, new):
            effect, why = Effect.DUPLICATE, "already recorded, nothing changed"
        elif new.kind is BounceKind.DELIVERY:
            effect, why = Effect.RECORDED, "delivered"
        else:
            history = events.policy_events(db, new.email, since=active_since(db, new.email))
            decision = decide(history, now, policy.soft_threshold, policy.soft_window_days)
            why = decision.reason
            if decision.outcome is Outcome.BOUNCED:
                changed = mark_bounced(db, new.email, why, now=now, source=new.source)
                effect = Effect.BOUNCED if changed else Effect.RECORDED
            elif decision.outcome is Outcome.COMPLAINED:
                changed = mark_complained(db, new.email, why, now=now, source=new.source)
                effect = Effect.COMPLAINED if changed else Effect.RECORDED
            else:
                effect = Effect.COUNTED if new.kind is BounceKind.SOFT else Effect.RECORDED
    if effect is Effect.BOUNCED:
        # The diagnostic of a hard bounce says it all; a threshold reached says how.
        why = "bounced and suppressed" + (f" ({why})" if new.kind is BounceKind.SOFT else "")
    elif effect is Effect.COMPLAINED:
        why = "complained and suppressed"
    elif effect is Effect.RECORDED and new.kind is not BounceKind.DELIVERY:
        why = "recorded; already bounced or complained"
    line = f"{new.email}: {why}" + (f": {new.diagnostic}" if new.diagnostic else "")
    return Result(effect, new.kind, new.email, line)


def _clean(text: str) -> str:
    """A diagnostic as stored and shown: one line, no control characters (a remote server
    wrote it: it must not reach a terminal or a log as escape sequences), at most 1000
    characters."""
    return single_line(text)[:1000]


def _message_key(target: _Target, fallback: str | None) -> str | None:
    if target.delivery is not None:
        return f"delivery:{target.delivery.delivery_id}"
    return fallback


@dataclass(frozen=True)
class ReadMessage:
    """One mailbox message, parsed (no database needed): what ``use_report`` acts on."""

    report: Report
    digest: str  # sha256 of the raw bytes: the same message read again is the same event


def read_message(raw: bytes) -> ReadMessage:
    """Parse one bounce-mailbox message (``reports.parse_report``: never raises)."""
    return ReadMessage(parse_report(raw), hashlib.sha256(raw).hexdigest())


def use_report(
    db: Database,
    message: ReadMessage,
    *,
    policy: BouncePolicy,
    now: datetime,
    source: str = MAILBOX_SOURCE,
) -> Result:
    """Match a parsed message to its subscriber, record it and apply the policy. Never raises
    for what the message contains (a database failure does raise)."""
    report = message.report
    kind = report.kind
    if kind in (BounceKind.AUTO_REPLY, BounceKind.DELAYED, BounceKind.DELIVERY) or (
        kind is BounceKind.OTHER and report.evidence == "arf"
    ):
        return Result(Effect.IGNORED, kind, None, f"ignored: {report.summary}")
    if kind is BounceKind.OTHER:
        return Result(Effect.UNUSABLE, kind, None, f"not a bounce or a complaint: {report.summary}")
    target = _report_target(db, report, policy, now)
    if target is None:
        return Result(Effect.UNUSABLE, kind, None, f"names no subscriber of ours: {report.summary}")
    event = report.event(now, source=source)
    main = next((r for r in report.recipients if r.kind is kind), None)
    new = NewEvent(
        email=target.email,
        subscriber_id=target.subscriber_id,
        delivery_id=target.delivery.delivery_id if target.delivery else None,
        kind=kind,
        source=source,
        status=main.status if main else None,
        diagnostic=_clean(event.diagnostic),
        identified_by=target.identified_by,
        message_key=_message_key(target, report.original_message_id),
        # Not the report's Message-ID: that is the sender's to choose, and some MTAs reuse one.
        event_key=f"mailbox:sha256:{message.digest}",
        occurred_at=now,
        received_at=now,
    )
    return _apply(db, new, policy, now)


def process_report(
    db: Database,
    raw: bytes,
    *,
    policy: BouncePolicy,
    now: datetime,
    source: str = MAILBOX_SOURCE,
) -> Result:
    """Classify one bounce-mailbox message, match it, record it and apply the policy. Never
    raises for what the message contains (a database failure does raise)."""
    return use_report(db, read_message(raw), policy=policy, now=now, source=source)


def process_provider_events(
    db: Database, found: Iterable[ProviderEvent], *, policy: BouncePolicy, now: datetime
) -> list[Result]:
    """Match, record and apply each verified provider event (each in its own transaction)."""
    results = []
    for event in found:
        if event.kind not in events.RECORDED_KINDS:
            results.append(
                Result(Effect.IGNORED, event.kind, event.email, f"ignored: {event.kind}")
            )
            continue
        target = _event_target(db, event, policy)
        if target is None:
            results.append(
                Result(Effect.UNUSABLE, event.kind, event.email, f"{event.email}: not a subscriber")
            )
            continue
        policy_event = event.event(received_at=now, delivery_key=_message_key(target, None))
        new = NewEvent(
            email=target.email,
            subscriber_id=target.subscriber_id,
            delivery_id=target.delivery.delivery_id if target.delivery else None,
            kind=event.kind,
            source=policy_event.source,
            status=_clean(event.status) if event.status else None,
            diagnostic=_clean(event.diagnostic),
            identified_by=target.identified_by,
            message_key=policy_event.delivery_key,
            event_key=event.event_id,
            # A provider's clock a little ahead of ours must not put the event in the future,
            # where the policy would not count it yet.
            occurred_at=min(policy_event.at, now),
            received_at=now,
        )
        results.append(_apply(db, new, policy, now))
    return results


# --- mailboxes -----------------------------------------------------------------------------------


@dataclass
class MailboxReport:
    """What one run over a bounce mailbox did."""

    results: list[Result] = field(default_factory=list)
    stopped: str | None = None  # the mailbox failed part-way: why

    @property
    def counts(self) -> Counter[Effect]:
        return Counter(r.effect for r in self.results)

    def summary(self) -> str:
        c = self.counts
        n = len(self.results)
        parts = [f"{c[e]} {e.value}" for e in Effect if c[e]]
        return f"{n} message{'s' if n != 1 else ''}" + (f": {', '.join(parts)}" if parts else "")


# Messages parsed, then recorded in one transaction, then marked done: a commit and the write
# lock per batch rather than per message, held only for the database work, never while parsing.
BATCH = 50


def process_mailbox(
    db: Database,
    box: BounceMailbox,
    *,
    policy: BouncePolicy,
    clock: Callable[[], datetime],
    action: DoneAction = DoneAction.SEEN,
    on_result: Callable[[Result], None] | None = None,
) -> MailboxReport:
    """Process every unread message of ``box``: classify, match, record, apply the policy;
    commit (``BATCH`` messages at a time), then mark each one done with ``action``. A message
    that cannot be used is left as it is, and one whose processing fails fails alone. A mailbox
    that fails part-way ends the run with ``stopped`` set; what was committed stays done, and a
    message recorded but not yet marked done is a duplicate, changing nothing, next time."""
    report = MailboxReport()
    batch: list[tuple[str, ReadMessage | Result]] = []

    def flush() -> None:
        results = []
        with transaction(db):
            for key, item in batch:
                result = item if isinstance(item, Result) else _use_alone(db, item, policy, clock)
                results.append(Result(result.effect, result.kind, result.email, result.line, key))
        batch.clear()
        for result in results:
            if result.used:
                box.done(result.key, action)
            report.results.append(result)
            if on_result is not None:
                on_result(result)

    try:
        for key, raw in box.messages():
            try:
                batch.append((key, read_message(raw)))
            except Exception as e:  # noqa: BLE001 - contained: this message fails alone
                why = f"could not be read: {describe_error(e)}"
                batch.append((key, Result(Effect.UNUSABLE, BounceKind.OTHER, None, why)))
            if len(batch) >= BATCH:
                flush()
        if batch:
            flush()
    except MailboxError as e:
        report.stopped = str(e)
    return report


def _use_alone(
    db: Database, message: ReadMessage, policy: BouncePolicy, clock: Callable[[], datetime]
) -> Result:
    """``use_report`` for one message of a batch. Its writes are a savepoint of the batch's
    transaction (``_apply``), so a message whose processing fails is undone alone."""
    try:
        return use_report(db, message, policy=policy, now=clock())
    except sqlite3.Error:
        raise  # the database's failure, not the message's: stop here
    except Exception as e:  # noqa: BLE001 - contained: this message fails alone
        why = f"could not be processed: {describe_error(e)}"
        return Result(Effect.UNUSABLE, BounceKind.OTHER, None, why)


def open_mailbox(
    *,
    maildir: str | Path | None = None,
    mbox: str | Path | None = None,
    imap: str | None = None,
    folder: str | None = None,
    move_to: str | None = None,
    env: Mapping[str, str],
    ssl_context: ssl.SSLContext | None = None,
) -> BounceMailbox:
    """The one bounce mailbox named (a Maildir, an mbox file or an IMAP URL, whose password is
    in ``DIGEST_IMAP_PASSWORD``). ``MailboxError`` if it cannot be opened."""
    given = [name for name, v in (("maildir", maildir), ("mbox", mbox), ("imap", imap)) if v]
    if len(given) != 1:
        raise InvalidInput("name one bounce mailbox: --maildir DIR, --mbox FILE or --imap URL")
    if folder is not None and not imap:
        raise InvalidInput("--folder is for an IMAP mailbox")
    if maildir:
        return MaildirMailbox(maildir, move_to=move_to)
    if mbox:
        return MboxMailbox(mbox, move_to=move_to)
    assert imap is not None
    settings = imap_settings(imap, env, folder=folder, password_env=DEFAULT_PASSWORD_ENV)
    return ImapMailbox(settings, move_to=move_to, ssl_context=ssl_context)


def done_action(*, delete: bool, move_to: str | None) -> DoneAction:
    if delete and move_to:
        raise InvalidInput("choose --delete or --move-to, not both")
    if delete:
        return DoneAction.DELETE
    return DoneAction.MOVE if move_to else DoneAction.SEEN


def process_configured_mailbox(
    db: Database,
    config: Config,
    *,
    secret: bytes,
    clock: Callable[[], datetime],
    on_result: Callable[[Result], None] | None = None,
) -> MailboxReport:
    """Process the mailbox of ``[bounces]`` (what ``digest run`` polls)."""
    b = config.bounces
    if not b.mailbox_configured:
        raise InvalidInput("no bounce mailbox in [bounces]: set maildir, mbox or imap")
    action = DoneAction(b.done)
    with open_mailbox(
        maildir=b.maildir,
        mbox=b.mbox,
        imap=b.imap,
        move_to=b.move_to if action is DoneAction.MOVE else None,
        env=config.env,
    ) as box:
        return process_mailbox(
            db,
            box,
            policy=BouncePolicy.from_config(config, secret),
            clock=clock,
            action=action,
            on_result=on_result,
        )
