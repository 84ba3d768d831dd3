"""Asking people to confirm, whoever added them: the admin paths that add someone as pending
(``subscribers add``, ``import``, ``sync``, the admin pages) queue a confirmation email in the
same transaction as the subscription (``notices``), reminders re-ask those still pending, old
pending subscriptions expire, and a confirmation by link applies the person's new choices and
queues the list's welcome email.

Rules:
- Someone who *becomes* pending is asked once, by the path that made them pending; re-importing
  a file with them still pending asks nobody again (that is ``remind``'s job). ``ask=False``
  (``--no-email``) adds them without an email, for a later ``remind``.
- ``remind`` sends a first confirmation to pending people never asked, and a reminder (at most
  ``[subscribers] max_reminders`` of them) to those asked before ``older_than`` ago.
- A pending subscription older than ``[subscribers] pending_expire_days`` expires
  (``expire``, run by the scheduler's tick).
- The emails go through the outbox: ``send=True`` sends what is queued right away (the CLI),
  otherwise the web worker, ``digest run`` or ``digest send`` do, with retries. A relay that
  cannot be reached leaves them queued; nothing is lost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlite_utils import Database

from ..addresses import normalise_email
from ..audience import csvfiles
from ..audience.lists import MailingList, get_list_by_id
from ..audience.records import Subscription, SubscriptionStatus
from ..audience.subscriptions import (
    add_subscription,
    confirm_subscription,
    expire_pending,
    get_subscription,
    mark_asked,
    plan_reminders,
    subscription_status,
)
from ..config import Config
from ..errors import DigestError
from ..store import transaction
from ..tokens import Token
from .notices import NoticeKind, NoticeReport, flush_notices, has_welcome, queue_notices
from .transports import Transport


def _ask(db: Database, mlist: MailingList, subscriber_ids: list[int], *, now: datetime) -> None:
    """Queue a confirmation email for each (inside the caller's transaction)."""
    queue_notices(db, NoticeKind.CONFIRM, mlist.id, subscriber_ids, now=now)
    mark_asked(db, mlist.id, subscriber_ids, now=now, reminder=False)


def _send(
    db: Database,
    config: Config,
    *,
    secret: bytes,
    now: datetime,
    transport: Transport | None,
) -> NoticeReport:
    return flush_notices(db, config, secret=secret, now=now, transport=transport)


@dataclass(frozen=True)
class Added:
    """What ``add_subscriber`` did: the subscription, whether a confirmation email was queued,
    and what sending the outbox right away did (None: not tried)."""

    subscription: Subscription
    asked: bool
    sent: NoticeReport | None = None


def add_subscriber(
    db: Database,
    config: Config,
    mlist: MailingList,
    email: str,
    *,
    name: str | None = None,
    tags: Iterable[str] = (),
    frequency: str | None = None,
    confirmed: bool = False,
    force: bool = False,
    reason: str | None = None,
    source: str,
    now: datetime,
    ask: bool = True,
    send: bool = False,
    secret: bytes = b"",
    transport: Transport | None = None,
) -> Added:
    """``subscriptions.add_subscription``, and when that made the person pending (new, or
    expired before), a confirmation email queued in the same transaction (unless ``ask`` is
    False); ``send`` then sends the outbox at once (needs ``secret``)."""
    address = normalise_email(email)
    with transaction(db):
        before = subscription_status(db, mlist, address)
        sub = add_subscription(db, mlist, address, name=name, tags=tags, frequency=frequency,
                               confirmed=confirmed, source=source, now=now, force=force,
                               reason=reason)  # fmt: skip
        newly_pending = sub.status == SubscriptionStatus.PENDING and (
            before is None or before.status != SubscriptionStatus.PENDING
        )
        asked = ask and newly_pending
        if asked:
            _ask(db, mlist, [sub.subscriber_id], now=now)
    sent = (
        _send(db, config, secret=secret, now=now, transport=transport) if asked and send else None
    )
    return Added(sub, asked, sent)


@dataclass
class Imported:
    """What an import or a sync did: the per-file reports (or the error that stopped a file),
    and what sending the confirmation emails right away did (None: not tried)."""

    reports: list[csvfiles.Report | DigestError] = field(default_factory=list)
    sent: NoticeReport | None = None

    @property
    def asked(self) -> int:
        return sum(r.asked for r in self.reports if isinstance(r, csvfiles.Report))


def apply_import(
    db: Database,
    config: Config,
    mlist: MailingList,
    parsed: csvfiles.ParsedFile,
    *,
    confirmed: bool,
    dry_run: bool,
    source: str,
    now: datetime,
    ask: bool = True,
    send: bool = False,
    secret: bytes = b"",
    transport: Transport | None = None,
    progress: Callable[[int], None] | None = None,
) -> Imported:
    """``csvfiles.apply_rows`` of a parsed file, with a confirmation email queued for each
    person it made pending, in each batch's transaction (unless ``ask`` is False)."""
    report = csvfiles.apply_rows(
        db, mlist, parsed, confirmed=confirmed, dry_run=dry_run, source=source, now=now,
        progress=progress, ask=_asker(mlist, now) if ask and not dry_run else None,
    )  # fmt: skip
    result = Imported([report])
    if report.asked and ask and send and not dry_run:
        result.sent = _send(db, config, secret=secret, now=now, transport=transport)
    return result


def _asker(mlist: MailingList, now: datetime) -> csvfiles.AskPending:
    def ask(db: Database, subscriber_ids: list[int]) -> None:
        _ask(db, mlist, subscriber_ids, now=now)

    return ask


def sync_subscribers(
    db: Database,
    config: Config,
    directory: str | Path,
    *,
    confirmed: bool,
    dry_run: bool,
    now: datetime,
    ask: bool = True,
    send: bool = False,
    secret: bytes = b"",
    transport: Transport | None = None,
) -> Imported:
    """``csvfiles.sync_directory``, asking the people it made pending like ``apply_import``."""
    asker = (lambda mlist: _asker(mlist, now)) if ask and not dry_run else None
    result = Imported(
        list(
            csvfiles.sync_directory(
                db, directory, now=now, confirmed=confirmed, dry_run=dry_run, ask=asker
            )
        )  # fmt: skip
    )
    if result.asked and send:
        result.sent = _send(db, config, secret=secret, now=now, transport=transport)
    return result


@dataclass(frozen=True)
class Reminded:
    """What ``remind`` did to one list's pending subscribers: ``asked`` got their first
    confirmation email (added with --no-email), ``reminded`` a reminder; ``capped`` had all
    their reminders already, ``recent`` were asked too recently."""

    asked: int
    reminded: int
    capped: int
    recent: int
    sent: NoticeReport | None = None


def remind(
    db: Database,
    config: Config,
    mlist: MailingList,
    *,
    now: datetime,
    older_than: timedelta = timedelta(0),
    send: bool = False,
    secret: bytes = b"",
    transport: Transport | None = None,
) -> Reminded:
    """Ask the pending subscribers of ``mlist`` again: those never asked get a confirmation
    email, those last asked more than ``older_than`` ago a reminder, each at most
    ``[subscribers] max_reminders`` times (a new link each time)."""
    with transaction(db):
        plan = plan_reminders(db, mlist, asked_before=now - older_than,
                              max_reminders=config.subscribers.max_reminders)  # fmt: skip
        if plan.first:
            _ask(db, mlist, plan.first, now=now)
        if plan.due:
            queue_notices(db, NoticeKind.REMIND, mlist.id, plan.due, now=now)
            mark_asked(db, mlist.id, plan.due, now=now, reminder=True)
    sent = None
    if send and (plan.first or plan.due):
        sent = _send(db, config, secret=secret, now=now, transport=transport)
    return Reminded(len(plan.first), len(plan.due), plan.capped, plan.recent, sent)


def expire(db: Database, config: Config, *, now: datetime) -> list[Subscription]:
    """Pending subscriptions older than ``[subscribers] pending_expire_days`` expire (each
    recorded in the address's history). Returns them as they were."""
    return expire_pending(db, older_than=now - config.subscribers.pending_expiry, now=now)


@dataclass(frozen=True)
class Confirmed:
    """What following a confirmation link did: the subscription now, whether it was already
    active, and whether a welcome email was queued."""

    subscription: Subscription
    was_active: bool
    welcomed: bool


def confirm_by_link(db: Database, config: Config, token: Token, *, now: datetime) -> Confirmed:
    """The person followed a confirmation link (a new double opt-in): the subscription becomes
    active, the choices they made with that link replace the old ones, and the list's welcome
    email is queued if it has one and they were not active already."""
    with transaction(db):
        before = get_subscription(db, token.subscriber_id, token.list_id)
        sub = confirm_subscription(db, token.subscriber_id, token.list_id, source="web", now=now,
                                   link_issued_at=token.issued_at)  # fmt: skip
        was_active = before is not None and before.status == SubscriptionStatus.ACTIVE
        welcomed = False
        if not was_active and has_welcome(config, get_list_by_id(db, token.list_id)):
            queue_notices(db, NoticeKind.WELCOME, token.list_id, [token.subscriber_id], now=now)
            welcomed = True
    return Confirmed(sub, was_active, welcomed)
