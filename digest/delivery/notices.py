"""Double opt-in: what a subscribe form submission does, and the confirmation email it sends.

``request_subscription`` validates the form the same way whoever the address belongs to (so an
error never tells a visitor anything about the address), records a new or pending subscription
as ``pending`` (source ``web``), and mails a signed confirmation link. What the person sees
afterwards is always the same "check your inbox" page; the returned ``SubscribeResult`` is for
logs and tests only. Rules for addresses we already know:

- pending: the form's name, topics and frequency replace the old ones; a new link is sent.
- active: nothing changes; the link is sent again (following it just says "you're subscribed"),
  so a stranger cannot change someone else's topics by submitting the form.
- unsubscribed: nothing changes until the person follows the new link, which re-activates the
  subscription (a new double opt-in, see ``subscribers.confirm_subscription``).
- bounced, complained, or on the suppression list: nothing is sent (mail to them would bounce
  again or be reported as spam); an admin can lift a suppression.

The confirmation email is a small transactional message: a text and an HTML part from
``templates/email/confirm.txt`` / ``confirm.html``, headers folded and injection-safe
(``messages.fold_header``), no List-Unsubscribe (there is nothing to unsubscribe from yet).
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address

from sqlite_utils import Database

from . import links, render, tokens
from .config import Config
from .errors import DigestError, InvalidInput
from .lists import MailingList
from .messages import Outgoing, fold_header, multipart_alternative, sender_domain
from .send import send_message
from .smtp import Transport
from .subscribers import (
    _clean_name,
    add_subscription,
    check_frequency,
    get_suppression,
    normalise_email,
    subscription_tags,
)

log = logging.getLogger(__name__)

NOT_MAILED = ("bounced", "complained")


@dataclass(frozen=True)
class SubscribeResult:
    """What ``request_subscription`` did. ``status`` is the subscription's status afterwards
    (None: no subscription); ``mailed`` whether a confirmation was accepted by the relay;
    ``note`` why not, or the relay's reply."""

    email: str
    status: str | None
    mailed: bool
    note: str


def confirmation_subject(mlist: MailingList) -> str:
    return f"Confirm your subscription to {mlist.title}"


def confirmation_message(
    config: Config,
    mlist: MailingList,
    *,
    subscriber_id: int,
    address: str,
    name: str | None,
    secret: bytes,
    now: datetime,
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
    }
    text = env.get_template("email/confirm.txt").render(context)
    html = env.get_template("email/confirm.html").render(context)

    sender = email.utils.parseaddr(mlist.from_addr)[1]
    domain = sender_domain(mlist.from_addr)
    # Unique per message (a new link each time); derived from the token, so nothing random.
    digest = hashlib.sha256(token.encode("ascii")).hexdigest()
    message_id = f"<confirm.{digest[:24]}@{domain}>"
    to = str(Address(display_name=name or "", addr_spec=address))
    headers = [
        ("From", mlist.from_addr),
        *([("Reply-To", mlist.reply_to)] if mlist.reply_to else []),
        ("To", to),
        ("Subject", confirmation_subject(mlist)),
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
    frequency: str = "daily",
    secret: bytes,
    now: datetime,
    transport: Transport | None = None,
) -> SubscribeResult:
    """Handle a subscribe form for ``mlist`` (see the module docstring). Raises
    ``InvalidInput`` for a bad address, name, topic or frequency, before looking anything up.
    A failure to send is logged and reported in the result, never raised: the subscription
    stays pending and the person can submit the form again."""
    address = normalise_email(address)
    name = _clean_name(name)
    if name is not None and len(name) > 200:
        raise InvalidInput("name is too long (at most 200 characters)")
    frequency = check_frequency(frequency)
    keys = subscription_tags(mlist, tags)

    row = db.execute(
        "SELECT p.id, p.name, s.status FROM subscribers p LEFT JOIN subscriptions s"
        " ON s.subscriber_id = p.id AND s.list_id = ? WHERE p.email = ?",
        [mlist.id, address],
    ).fetchone()
    status = row[2] if row else None
    if status in NOT_MAILED or get_suppression(db, address) is not None:
        why = "suppressed" if status not in NOT_MAILED else status
        log.info("subscribe form for %s on %s: not mailed (%s)", address, mlist.slug, why)
        return SubscribeResult(address, status, False, f"not mailed: address is {why}")
    if status in (None, "pending"):
        sub = add_subscription(db, mlist, address, name=name, tags=keys, frequency=frequency,
                               confirmed=False, source="web", now=now)  # fmt: skip
        subscriber_id, status, name = sub.subscriber_id, sub.status, sub.name
    else:  # active or unsubscribed: unchanged until the person follows the link
        subscriber_id, name = row[0], row[1]

    outgoing = confirmation_message(
        config, mlist, subscriber_id=subscriber_id, address=address, name=name, secret=secret,
        now=now,
    )  # fmt: skip
    try:
        reply = send_message(config, outgoing, transport=transport)
    except DigestError as e:
        log.error("confirmation email to %s for list %s not sent: %s", address, mlist.slug, e)
        return SubscribeResult(address, status, False, f"not sent: {e}")
    return SubscribeResult(address, status, True, reply)
