"""Double opt-in: what a subscribe form submission does, and the outbox of transactional emails
(the ``notices`` table, written only here): confirmations, reminders of a pending confirmation,
and the optional welcome email after one.

``request_subscription`` validates the form the same way whoever the address belongs to (so an
error never tells a visitor anything about the address), records a new or pending subscription
as ``pending`` (source ``web``), and queues a confirmation email. It never sends anything
itself: the request only writes to the store (or, for an address that is not mailed, writes
nothing), so the answer takes the same time and has the same status whoever the address
belongs to, and a slow or failing relay cannot be seen from the form. What the person sees
afterwards is always the same "check your inbox" page; the returned ``SubscribeResult`` is for
logs and tests only. Rules for addresses we already know:

- pending or expired: the form's name, topics and frequency replace the old ones; the
  subscription is pending and a new link is queued.
- active: nothing changes yet; the form's choices are kept with the new link, and replace the
  old ones only when the person follows it (``confirm_subscription``), so a stranger cannot
  change someone else's topics by submitting the form, and the person's own new choices win.
- unsubscribed: the same, and following the new link re-activates the subscription (a new
  double opt-in, see ``audience.subscriptions.confirm_subscription``) with the new choices.
- bounced, complained, or on the suppression list: nothing is queued (mail to them would bounce
  again or be reported as spam); an admin can lift a suppression.

Addresses are compared by identity (any letter case is the same person).

``flush_notices`` sends what is queued: the web app's worker thread (``web.worker``) right
after each request, and ``digest run`` ticks and ``digest send`` as well. Each notice is
claimed under a lease (two senders never send the same one), checked again (an address
suppressed since is skipped), made from its row and sent; the relay's answer is recorded at
once. A temporary failure is retried with backoff for ``NOTICE_MAX_AGE``; a permanent one, or
a message that cannot be made, fails that notice alone with one log line naming it; a
transport that cannot work at all (no relay, wrong password) leaves everything queued.

The confirmation email is a small transactional message: a text and an HTML part from
``templates/email/confirm.txt`` / ``confirm.html``, headers folded and injection-safe
(``headers.fold_header``), no List-Unsubscribe (there is nothing to unsubscribe from yet). A
reminder is the same email with a new link and "Reminder:" in the subject, sent only while the
subscription is still pending. The welcome email is the list's own template,
``email/welcome/<list>.txt`` (and optionally ``.html``) in the templates folder, sent after a
confirmation when the list has one, with the subscriber's preferences and unsubscribe links.
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.headerregistry import Address
from enum import StrEnum

from jinja2 import TemplateError, TemplateNotFound
from sqlite_utils import Database

from .. import links, subjects, tokens
from ..addresses import address_of, normalise_email, sender_domain
from ..audience.lists import MailingList, get_list_by_id
from ..audience.records import SubscriptionStatus
from ..audience.subscriptions import (
    add_subscription,
    get_subscription,
    mark_asked,
    request_choices,
    subscription_status,
    subscription_tags,
)
from ..audience.suppressions import get_suppression
from ..config import Config
from ..errors import DigestError, NotFound
from ..headers import clean_header_value, fold_header
from ..i18n import get_language
from ..issues import render
from ..issues.template import encode_body, multipart_alternative
from ..store import transaction
from ..text import clean_name
from ..timeutil import from_iso, to_iso
from .personalise import Outgoing
from .transports import (
    Connection,
    RelayUnavailable,
    Transport,
    TransportError,
    transport_from_config,
)

log = logging.getLogger(__name__)

NOT_MAILED = (SubscriptionStatus.BOUNCED, SubscriptionStatus.COMPLAINED)
# A confirmation the relay keeps deferring is given up after this long (its link would
# expire a few days later anyway).
NOTICE_MAX_AGE = timedelta(hours=48)
# Finished notices are kept this long (to answer "was my confirmation sent?"), then deleted.
NOTICE_KEEP = timedelta(days=30)
CLAIM_BATCH = 50


class NoticeKind(StrEnum):
    CONFIRM = "confirm"  # a confirmation link: a subscribe form, an admin adding someone pending
    REMIND = "remind"  # the same, again, to someone still pending (`subscribers remind`)
    WELCOME = "welcome"  # after a confirmation, if the list has a welcome template


class NoticeStatus(StrEnum):
    QUEUED = "queued"  # owed: not before next_attempt_at
    SENT = "sent"
    FAILED = "failed"  # refused by the relay, deferred for too long, or could not be made
    SKIPPED = "skipped"  # the address was suppressed, bounced or removed before it was sent


@dataclass(frozen=True)
class SubscribeResult:
    """What ``request_subscription`` did. ``status`` is the subscription's status afterwards
    (None: no subscription); ``queued`` whether a confirmation email was queued; ``note``
    why not."""

    email: str
    status: str | None
    queued: bool
    note: str


@dataclass
class NoticeReport:
    """What one ``flush_notices`` did. ``error``: the transport could not work at all (no
    relay configured, wrong password); the notices it did not send stay queued."""

    sent: int = 0
    deferred: int = 0
    failed: int = 0
    skipped: int = 0
    error: str | None = None

    @property
    def total(self) -> int:
        return self.sent + self.deferred + self.failed + self.skipped


def confirmation_subject(mlist: MailingList, *, reminder: bool = False) -> str:
    """In the list's language (``subjects.confirmation_subject``, ``subjects.reminder``)."""
    lang = get_language(mlist.language)
    subject = subjects.confirmation_subject(mlist.title, lang)
    return subjects.reminder(subject, lang) if reminder else subject


def confirmation_message(
    config: Config,
    mlist: MailingList,
    *,
    subscriber_id: int,
    address: str,
    name: str | None,
    secret: bytes,
    now: datetime,
    reminder: bool = False,
) -> Outgoing:
    """The confirmation email for ``address``, with a confirm link issued at ``now``."""
    token = tokens.make_token(secret, "confirm", subscriber_id, mlist.id, now=now)
    url = links.confirm_url(config.base_url, token)
    env = render.template_environment(config)
    context = {
        "site": config.site_name,
        "list_title": mlist.title,
        "list_description": mlist.description,
        "email": address,
        "confirm_url": url,
        "days": tokens.CONFIRM_MAX_AGE.days,
        "lang": get_language(mlist.language),
        "brand": mlist.brand,
    }
    text = env.get_template("email/confirm.txt").render(context)
    html = env.get_template("email/confirm.html").render(context)

    sender = address_of(mlist.from_addr)
    domain = sender_domain(mlist.from_addr)
    # Unique per message (a new link each time); derived from the token, so nothing random.
    digest = hashlib.sha256(token.encode("ascii")).hexdigest()
    message_id = f"<confirm.{digest[:24]}@{domain}>"
    to = str(Address(display_name=name or "", addr_spec=address))
    headers = [
        ("From", mlist.from_addr),
        *([("Reply-To", mlist.reply_to)] if mlist.reply_to else []),
        ("To", to),
        ("Subject", confirmation_subject(mlist, reminder=reminder)),
        ("Date", email.utils.format_datetime(now)),
        ("Message-ID", message_id),
    ]
    data = multipart_alternative(
        b"".join(fold_header(k, v) for k, v in headers),
        text,
        html,
        boundary="=_digest_confirm_" + digest[24:56],
    )
    return Outgoing(message_id=message_id, sender=sender, recipient=address, data=data)


def request_subscription(
    db: Database,
    config: Config,
    mlist: MailingList,
    address: str,
    *,
    name: str | None = None,
    tags: tuple[str, ...] | list[str] = (),
    frequency: str | None = None,
    now: datetime,
) -> SubscribeResult:
    """Handle a subscribe form for ``mlist`` (see the module docstring): record what the rules
    say and queue a confirmation, in one transaction; nothing is sent here. Raises
    ``InvalidInput`` for a bad address, name, topic or frequency (one the list does not offer),
    before looking anything up."""
    address = normalise_email(address)
    name = clean_name(name)
    frequency = mlist.offered_frequency(frequency)
    keys = subscription_tags(mlist, tags)

    with transaction(db):
        known = subscription_status(db, mlist, address)
        status = known.status if known else None
        if status in NOT_MAILED or get_suppression(db, address) is not None:
            why = "suppressed" if status not in NOT_MAILED else status
            return SubscribeResult(address, status, False, f"not mailed: address is {why}")
        if status in (None, SubscriptionStatus.PENDING, SubscriptionStatus.EXPIRED):
            sub = add_subscription(db, mlist, address, name=name, tags=keys, frequency=frequency,
                                   confirmed=False, source="web", now=now)  # fmt: skip
            subscriber_id, status = sub.subscriber_id, sub.status
            mark_asked(db, mlist.id, [subscriber_id], now=now, reminder=False)
        else:  # active or unsubscribed: unchanged until the person follows the link
            assert known is not None
            subscriber_id = known.subscriber_id
            request_choices(db, subscriber_id, mlist.id, name=name, tags=keys,
                            frequency=frequency, now=now)  # fmt: skip
        queue_notice(db, NoticeKind.CONFIRM, subscriber_id, mlist.id, now=now)
    return SubscribeResult(address, status, True, "confirmation queued")


def queue_notice(
    db: Database, kind: NoticeKind, subscriber_id: int, list_id: int, *, now: datetime
) -> None:
    """Queue a ``kind`` email to a subscriber about a list. One still waiting for the same
    person and list is renewed instead (its link issued now), so a form submitted again while
    the relay is down sends one email, not several."""
    stamp = to_iso(now)
    with transaction(db):
        renewed = db.execute(
            "UPDATE notices SET created_at = ?, updated_at = ?, next_attempt_at = ?, attempts = 0"
            " WHERE subscriber_id = ? AND list_id = ? AND kind = ? AND status = 'queued'",
            [stamp, stamp, stamp, subscriber_id, list_id, kind.value],
        ).rowcount
        if not renewed:
            db.execute(
                "INSERT INTO notices (kind, subscriber_id, list_id, next_attempt_at, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                [kind.value, subscriber_id, list_id, stamp, stamp, stamp],
            )


def queue_notices(
    db: Database, kind: NoticeKind, list_id: int, subscriber_ids: list[int], *, now: datetime
) -> None:
    """``queue_notice`` for many subscribers of one list (an import's new pending people)."""
    with transaction(db):
        for subscriber_id in subscriber_ids:
            queue_notice(db, kind, subscriber_id, list_id, now=now)


def queued_notices(db: Database) -> int:
    """How many notices are owed (queued, due or waiting for a retry)."""
    return int(db.execute("SELECT count(*) FROM notices WHERE status = 'queued'").fetchone()[0])


@dataclass(frozen=True)
class NoticeError:
    """A confirmation email the relay deferred or refused (or that could not be made)."""

    at: str
    status: str  # queued (to be retried) or failed
    attempts: int
    reply: str


def recent_notice_errors(db: Database, *, limit: int = 5) -> list[NoticeError]:
    """The newest confirmation emails that are waiting for a retry or failed, with the last
    reply: what the admin dashboard shows under relay health."""
    rows = db.execute(
        "SELECT updated_at, status, attempts, reply FROM notices"
        " WHERE reply IS NOT NULL AND (status = 'failed' OR (status = 'queued' AND attempts > 0))"
        " ORDER BY updated_at DESC LIMIT ?",
        [limit],
    ).fetchall()
    return [NoticeError(*row) for row in rows]


# --- sending the outbox -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Notice:
    id: int
    kind: str
    subscriber_id: int
    list_id: int
    attempts: int
    created_at: datetime


def _backoff(attempts: int) -> timedelta:
    """1, 2, 4 ... minutes after each failed attempt, at most an hour."""
    return timedelta(minutes=min(60, 2 ** max(0, attempts - 1)))


def _claim(db: Database, now: datetime, lease: timedelta, limit: int) -> list[_Notice]:
    stamp = to_iso(now)
    with transaction(db):
        db.execute(
            "DELETE FROM notices WHERE status != 'queued' AND updated_at < ?",
            [to_iso(now - NOTICE_KEEP)],
        )
        rows = list(
            db.query(
                "SELECT id, kind, subscriber_id, list_id, attempts, created_at FROM notices"
                " WHERE status = 'queued' AND next_attempt_at <= ?"
                " AND (lease_until IS NULL OR lease_until <= ?) ORDER BY id LIMIT ?",
                [stamp, stamp, limit],
            )
        )
        if rows:
            ids = [r["id"] for r in rows]
            db.execute(
                f"UPDATE notices SET lease_until = ? WHERE id IN ({', '.join('?' * len(ids))})",
                [to_iso(now + lease), *ids],
            )
    return [
        _Notice(
            id=r["id"],
            kind=r["kind"],
            subscriber_id=r["subscriber_id"],
            list_id=r["list_id"],
            attempts=r["attempts"],
            created_at=from_iso(r["created_at"]),
        )
        for r in rows
    ]


def _finish(
    db: Database, notice: _Notice, status: NoticeStatus, reply: str, *, now: datetime
) -> None:
    stamp = to_iso(now)
    db.execute(
        "UPDATE notices SET status = ?, reply = ?, attempts = attempts + ?, lease_until = NULL,"
        " updated_at = ?, sent_at = ? WHERE id = ?",
        [status.value, reply, 0 if status is NoticeStatus.SKIPPED else 1, stamp,
         stamp if status is NoticeStatus.SENT else None, notice.id],
    )  # fmt: skip


def _retry(db: Database, notice: _Notice, reply: str, *, now: datetime) -> None:
    db.execute(
        "UPDATE notices SET attempts = attempts + 1, next_attempt_at = ?, reply = ?,"
        " lease_until = NULL, updated_at = ? WHERE id = ?",
        [to_iso(now + _backoff(notice.attempts + 1)), reply, to_iso(now), notice.id],
    )


def _release(db: Database, notices: list[_Notice]) -> None:
    for notice in notices:
        db.execute("UPDATE notices SET lease_until = NULL WHERE id = ?", [notice.id])


def _message(
    db: Database, config: Config, notice: _Notice, secret: bytes
) -> tuple[Outgoing | None, str]:
    """The email for ``notice`` and what it is (for the log), or None and why it is not sent
    (the address was suppressed, bounced or removed meanwhile; a reminder to someone no
    longer pending; a welcome for a list without a welcome template)."""
    person = db.execute(
        "SELECT email, name FROM subscribers WHERE id = ?", [notice.subscriber_id]
    ).fetchone()
    try:
        mlist = get_list_by_id(db, notice.list_id)
    except NotFound:
        return None, "the list no longer exists"
    if person is None:
        return None, "the subscriber was removed"
    address, name = person
    if mlist.deleted_at:
        return None, f"list {mlist.slug} was deleted"
    known = subscription_status(db, mlist, address)
    if known is not None and known.status in NOT_MAILED:
        return None, f"not mailed: address is {known.status}"
    if get_suppression(db, address) is not None:
        return None, "not mailed: address is suppressed"
    kind = NoticeKind(notice.kind)
    if kind is NoticeKind.WELCOME:
        if known is None or known.status != SubscriptionStatus.ACTIVE:
            return None, "no longer subscribed"
        outgoing = welcome_message(config, mlist, subscriber_id=notice.subscriber_id,
                                   address=address, name=name, secret=secret,
                                   db=db, now=notice.created_at)  # fmt: skip
        if outgoing is None:
            return None, f"list {mlist.slug} has no welcome template"
        return outgoing, f"welcome email to {address} for list {mlist.slug}"
    if kind is NoticeKind.REMIND and (known is None or known.status != SubscriptionStatus.PENDING):
        return None, "no longer pending"
    outgoing = confirmation_message(config, mlist, subscriber_id=notice.subscriber_id,
                                    address=address, name=name, secret=secret,
                                    now=notice.created_at,
                                    reminder=kind is NoticeKind.REMIND)  # fmt: skip
    what = "reminder" if kind is NoticeKind.REMIND else "confirmation email"
    return outgoing, f"{what} to {address} for list {mlist.slug}"


def welcome_template_names(mlist: MailingList) -> tuple[str, str]:
    """The list's welcome templates: the plain text (required) and the HTML (optional)."""
    return f"email/welcome/{mlist.slug}.txt", f"email/welcome/{mlist.slug}.html"


def has_welcome(config: Config, mlist: MailingList) -> bool:
    """Whether the list has a welcome email (its template exists in the templates folder)."""
    env = render.template_environment(config)
    try:
        env.get_template(welcome_template_names(mlist)[0])
    except TemplateNotFound:
        return False
    return True


def welcome_message(
    config: Config,
    mlist: MailingList,
    *,
    subscriber_id: int,
    address: str,
    name: str | None,
    secret: bytes,
    db: Database,
    now: datetime,
) -> Outgoing | None:
    """The list's welcome email to a subscriber who just confirmed, from its templates (None:
    the list has none). The template may set its subject with ``{% set subject = "..." %}``
    (default: "Welcome to <list title>"). Its context: site, list_title, list_description,
    email, name, frequency, topics (names; empty = every topic), preferences_url,
    unsubscribe_url, archive_url."""
    text_name, html_name = welcome_template_names(mlist)
    env = render.template_environment(config)
    try:
        text_template = env.get_template(text_name)
    except TemplateNotFound:
        return None
    sub = get_subscription(db, subscriber_id, mlist.id)
    unsubscribe = links.unsubscribe_url(
        config.base_url, tokens.make_token(secret, "unsubscribe", subscriber_id, mlist.id, now=now)
    )
    context = {
        "site": config.site_name,
        "list_title": mlist.title,
        "list_description": mlist.description,
        "email": address,
        "name": name,
        "frequency": str(sub.frequency) if sub else str(mlist.default_frequency),
        "topics": mlist.tag_names(sub.tags) if sub else [],
        "preferences_url": links.preferences_url(
            config.base_url,
            tokens.make_token(secret, "preferences", subscriber_id, mlist.id, now=now),
        ),
        "unsubscribe_url": unsubscribe,
        "archive_url": links.archive_url(config.base_url, mlist.slug),
        "lang": get_language(mlist.language),
        "brand": mlist.brand,
    }
    module = text_template.make_module(context)
    text = str(module)
    subject = clean_header_value(str(getattr(module, "subject", "") or f"Welcome to {mlist.title}"))
    try:
        html: str | None = env.get_template(html_name).render(context)
    except TemplateNotFound:
        html = None
    sender = address_of(mlist.from_addr)
    domain = sender_domain(mlist.from_addr)
    token_seed = f"welcome:{subscriber_id}:{mlist.id}:{int(now.timestamp())}"
    digest = hashlib.sha256(token_seed.encode("ascii")).hexdigest()
    message_id = f"<welcome.{digest[:24]}@{domain}>"
    to = str(Address(display_name=name or "", addr_spec=address))
    headers = [
        ("From", mlist.from_addr),
        *([("Reply-To", mlist.reply_to)] if mlist.reply_to else []),
        ("To", to),
        ("Subject", subject),
        ("Date", email.utils.format_datetime(now)),
        ("Message-ID", message_id),
        # It goes to a subscriber: one-click unsubscribe as in every digest (RFC 8058).
        ("List-Unsubscribe", f"<{unsubscribe}>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
    ]
    head = b"".join(fold_header(k, v) for k, v in headers)
    if html is not None:
        data = multipart_alternative(head, text, html, boundary="=_digest_welcome_" + digest[24:56])
    else:
        data = (
            head
            + b'MIME-Version: 1.0\r\nContent-Type: text/plain; charset="utf-8"\r\n'
            + b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
            + encode_body(text).encode("ascii")
        )
    return Outgoing(message_id=message_id, sender=sender, recipient=address, data=data)


def flush_notices(
    db: Database,
    config: Config,
    *,
    secret: bytes,
    now: datetime,
    transport: Transport | None = None,
    limit: int | None = None,
    log: logging.Logger = log,
) -> NoticeReport:
    """Send the queued notices that are due at ``now`` (at most ``limit``), recording each
    outcome as the relay answers (see the module docstring). ``transport`` defaults to the
    configured relays, made only if something is due. Never raises for one notice's problem
    (each is logged in one line); a transport that cannot work at all is reported in
    ``NoticeReport.error`` for the caller to log."""
    report = NoticeReport()
    lease = timedelta(seconds=config.send.lease_seconds)
    own = transport is None
    connection: Connection | None = None
    try:
        while limit is None or report.total < limit:
            size = CLAIM_BATCH if limit is None else min(CLAIM_BATCH, limit - report.total)
            batch = _claim(db, now, lease, size)
            if not batch:
                break
            for i, notice in enumerate(batch):
                try:
                    outgoing, what = _message(db, config, notice, secret)
                except (DigestError, ValueError, TemplateError) as e:
                    # A name no header encoder accepts, a broken confirm template: this notice
                    # fails alone, with one line naming it.
                    _finish(db, notice, NoticeStatus.FAILED, f"cannot make the email: {e}",
                            now=now)  # fmt: skip
                    report.failed += 1
                    log.error("notice %d (%s) cannot be made: %s", notice.id, notice.kind, e)
                    continue
                if outgoing is None:
                    _finish(db, notice, NoticeStatus.SKIPPED, what, now=now)
                    report.skipped += 1
                    continue
                try:
                    if connection is None:
                        if transport is None:
                            transport = transport_from_config(config)
                        connection = transport.connect()
                    outcome = connection.send(outgoing)
                except (TransportError, RelayUnavailable) as e:
                    # Nothing can go out until this is fixed: the rest wait, untouched. The
                    # caller logs it (once, not at every retry).
                    _release(db, batch[i:])
                    report.error = str(e)
                    return report
                if outcome.status == "sent":
                    _finish(db, notice, NoticeStatus.SENT, outcome.reply, now=now)
                    report.sent += 1
                    log.info("%s sent: %s", what, outcome.reply)
                elif outcome.status == "deferred" and now - notice.created_at < NOTICE_MAX_AGE:
                    _retry(db, notice, outcome.reply, now=now)
                    report.deferred += 1
                    log.warning("%s not sent: %s (will retry)", what, outcome.reply)
                else:
                    _finish(db, notice, NoticeStatus.FAILED, outcome.reply, now=now)
                    report.failed += 1
                    log.error("%s not sent: %s (given up)", what, outcome.reply)
    finally:
        if connection is not None:
            connection.close()
        if own and transport is not None:
            transport.close()
    return report
