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
  subscription (a new double opt-in, see ``audience.subscriptions.confirm_subscription``).
- bounced, complained, or on the suppression list: nothing is sent (mail to them would bounce
  again or be reported as spam); an admin can lift a suppression.

The confirmation email is a small transactional message: a text and an HTML part from
``templates/email/confirm.txt`` / ``confirm.html``, headers folded and injection-safe
(``headers.fold_header``), no List-Unsubscribe (there is nothing to unsubscribe from yet).
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address

from sqlite_utils import Database

from .. import links, tokens
from ..addresses import address_of, normalise_email, sender_domain
from ..audience.lists import MailingList
from ..audience.records import check_frequency
from ..audience.subscriptions import add_subscription, subscription_status, subscription_tags
from ..audience.suppressions import get_suppression
from ..config import Config
from ..errors import DigestError
from ..headers import fold_header
from ..i18n import get_language
from ..issues import render, subjects
from ..issues.template import multipart_alternative
from ..text import clean_name
from .personalise import Outgoing
from .send import send_message
from .transports import Transport

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
    """In the list's language (``issues.subjects.confirmation_subject``)."""
    return subjects.confirmation_subject(mlist.title, get_language(mlist.language))


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
    name = clean_name(name)
    frequency = check_frequency(frequency)
    keys = subscription_tags(mlist, tags)

    known = subscription_status(db, mlist, address)
    status = known.status if known else None
    if status in NOT_MAILED or get_suppression(db, address) is not None:
        why = "suppressed" if status not in NOT_MAILED else status
        log.info("subscribe form for %s on %s: not mailed (%s)", address, mlist.slug, why)
        return SubscribeResult(address, status, False, f"not mailed: address is {why}")
    if status in (None, "pending"):
        sub = add_subscription(db, mlist, address, name=name, tags=keys, frequency=frequency,
                               confirmed=False, source="web", now=now)  # fmt: skip
        subscriber_id, status, name = sub.subscriber_id, sub.status, sub.name
    else:  # active or unsubscribed: unchanged until the person follows the link
        assert known is not None
        subscriber_id, name = known.subscriber_id, known.name

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
