"""Return paths that name the delivery (VERP), and the fallbacks that identify a delivery from a
returned message: its Message-ID and its List-Unsubscribe link.

With VERP the envelope sender of each message is ``bounces+<token>@domain`` for a configured
bounce address ``bounces@domain``: every DSN, whatever it hides, is sent back to that address,
so the token tells which delivery failed. The token is the delivery id and a truncated
HMAC-SHA256 of it (the same construction as ``tokens.py``, under its own domain-separation
prefix), in lowercase base32 without padding: some MTAs lowercase local parts, and base32 survives
that where base64 does not. A forged or damaged token reads as ``None``, never as another
delivery.

Trust: a VERP token and a List-Unsubscribe token are signed; a Message-ID is not (anyone who can
mail the bounce address can write one), so ``DeliveryIdentity.signed`` says which it was.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from urllib.parse import unquote, urlsplit

from .errors import InvalidInput, TokenError
from .tokens import read_token

_SIG_BYTES = 10  # 80 bits: forging one needs ~2^79 tries against the bounce mailbox
_MAX_ID_BYTES = 8
# RFC 5321 4.5.3.1.1: a local part is at most 64 octets.
_MAX_LOCAL = 64
# lists.py: a list slug is [a-z0-9][a-z0-9-]*, so it never contains the dots used below.
_MESSAGE_ID = re.compile(
    # ``.INSTANCE`` (store.instance_id) follows the subscriber id in Message-IDs made since
    # instance ids exist; older ones end at the subscriber id.
    r"([a-z0-9][a-z0-9-]*)\.(daily|weekly)\.(\d{4}-\d{2}-\d{2})\.(\d{1,19})(?:\.[0-9a-f]{1,32})?\Z",
    re.ASCII,
)
_ANGLE = re.compile(r"<([^<>]*)>")


def _b32(data: bytes) -> str:
    return base64.b32encode(data).rstrip(b"=").decode("ascii").lower()


def _sign(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, b"digest-verp-v1:" + payload, hashlib.sha256).digest()[:_SIG_BYTES]


def _split_address(address: str) -> tuple[str, str]:
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise InvalidInput(f"bounce address {address!r} is not an address (expected name@domain)")
    return local, domain


def make_token(delivery_id: int, secret: bytes) -> str:
    """The VERP token for ``delivery_id``: lowercase base32, 18 to 29 characters."""
    if delivery_id < 0 or delivery_id >= 1 << (8 * _MAX_ID_BYTES):
        raise ValueError(f"delivery id {delivery_id} out of range")
    payload = delivery_id.to_bytes(max(1, (delivery_id.bit_length() + 7) // 8), "big")
    return _b32(payload + _sign(secret, payload))


def read_verp_token(token: str, secret: bytes) -> int | None:
    """The delivery id in ``token``, or None if it is damaged or not signed with ``secret``."""
    token = token.strip().lower()
    if not 0 < len(token) <= _MAX_LOCAL:
        return None
    try:
        raw = base64.b32decode(token.upper() + "=" * (-len(token) % 8))
    except (binascii.Error, ValueError):
        return None
    payload, sig = raw[:-_SIG_BYTES], raw[-_SIG_BYTES:]
    # One encoding per id: no leading zero byte, and the text must be what we would write.
    if not 1 <= len(payload) <= _MAX_ID_BYTES or (len(payload) > 1 and payload[0] == 0):
        return None
    if _b32(raw) != token:
        return None
    if not hmac.compare_digest(sig, _sign(secret, payload)):
        return None
    return int.from_bytes(payload, "big")


def bounce_address(base: str, delivery_id: int, secret: bytes, *, delimiter: str = "+") -> str:
    """``bounces+<token>@domain`` for the configured bounce address ``bounces@domain``.
    ``delimiter`` is the MTA's recipient delimiter (Postfix ``recipient_delimiter``, ``+`` by
    default; ``-`` on qmail-style setups). Raises ``InvalidInput`` for an unusable base."""
    base = base.strip()
    if base.startswith("<") and base.endswith(">"):
        base = base[1:-1]
    local, domain = _split_address(base)
    if any(c in base for c in ' <>"\\,;\r\n\t'):
        raise InvalidInput(f"bounce address {base!r} must be a plain address like bounces@domain")
    local_with_token = f"{local}{delimiter}{make_token(delivery_id, secret)}"
    if len(local_with_token.encode("utf-8")) > _MAX_LOCAL:
        raise InvalidInput(
            f"bounce address {base!r}: the local part is too long to carry a VERP token "
            f"(RFC 5321 allows {_MAX_LOCAL} octets; use a shorter one, e.g. bounces@{domain})"
        )
    return f"{local_with_token}@{domain}"


def check_bounce_address(base: str, *, delimiter: str = "+") -> str:
    """``base`` as stored, if it can carry any delivery's VERP token (the longest one);
    ``InvalidInput`` saying why not."""
    base = base.strip()
    bounce_address(base, (1 << (8 * _MAX_ID_BYTES)) - 1, b"check", delimiter=delimiter)
    return base.strip("<>")


# The custom variable each message carries for the providers' webhooks (Postmark metadata,
# Mailgun user variables, SendGrid unique args): the delivery's VERP token. The provider hands it
# back in every event about the message, whatever it did to the envelope sender.
DELIVERY_VARIABLE = "digest_delivery"


@dataclass(frozen=True)
class ReturnPath:
    """How each delivery's envelope sender is chosen: the list's own bounce address, else the
    installation's (``[bounces] address``), with a VERP token when ``verp``; without either, the
    list's From address. ``provider`` adds the header that carries the token to that provider's
    webhooks."""

    address: str | None
    verp: bool
    secret: bytes = field(repr=False)
    delimiter: str = "+"
    provider: str | None = None

    def sender(self, delivery_id: int, *, list_address: str | None, from_sender: str) -> str:
        base = list_address or self.address
        if base is None:
            return from_sender
        if not self.verp:
            return base
        return bounce_address(base, delivery_id, self.secret, delimiter=self.delimiter)

    def header(self, delivery_id: int) -> bytes:
        """The header line (CRLF-terminated) naming the delivery to ``provider``, or b"". The
        token is base32: nothing in it needs quoting in JSON or a header."""
        if self.provider is None:
            return b""
        token = make_token(delivery_id, self.secret)
        if self.provider == "postmark":
            line = f"X-PM-Metadata-{DELIVERY_VARIABLE}: {token}"
        elif self.provider == "mailgun":
            line = f'X-Mailgun-Variables: {{"{DELIVERY_VARIABLE}": "{token}"}}'
        elif self.provider == "sendgrid":
            line = f'X-SMTPAPI: {{"unique_args": {{"{DELIVERY_VARIABLE}": "{token}"}}}}'
        else:
            raise ValueError(f"unknown provider {self.provider!r}")
        return line.encode("ascii") + b"\r\n"


def read_bounce_address(
    address: str, secret: bytes, *, delimiter: str = "+", base: str | None = None
) -> int | None:
    """The delivery id in a VERP return path (``bounces+<token>@domain``, with or without angle
    brackets or a display name), or None if it carries no valid token. With ``base``, the
    address must also be that bounce address plus a token (compared case-insensitively)."""
    if not address or len(address) > 1000:
        return None
    text = address.strip()
    if "<" in text:
        text = email.utils.parseaddr(text)[1]
    local, at, domain = text.rpartition("@")
    if not at or delimiter not in local:
        return None
    prefix, _, token = local.rpartition(delimiter)
    if base is not None:
        try:
            base_local, base_domain = _split_address(base.strip().strip("<>"))
        except InvalidInput:
            return None
        if prefix.lower() != base_local.lower() or domain.lower() != base_domain.lower():
            return None
    return read_verp_token(token, secret)


@dataclass(frozen=True)
class MessageIdentity:
    """What a digest's Message-ID names (``personalise.VariantInfo.message_id``)."""

    list_slug: str
    frequency: str
    period_label: str  # the issue date, YYYY-MM-DD
    subscriber_id: int
    domain: str


def read_message_id(message_id: str | None) -> MessageIdentity | None:
    """Parse ``<slug.frequency.YYYY-MM-DD.SUBSCRIBERID[.INSTANCE]@domain>``; None for any other
    ID."""
    if not message_id or len(message_id) > 1000:
        return None
    text = message_id.strip()
    m = _ANGLE.search(text)
    if m:
        text = m.group(1)
    local, at, domain = text.strip().rpartition("@")
    if not at or not domain:
        return None
    m = _MESSAGE_ID.match(local)
    if not m:
        return None
    try:
        date.fromisoformat(m.group(3))
    except ValueError:
        return None
    return MessageIdentity(m.group(1), m.group(2), m.group(3), int(m.group(4)), domain.lower())


@dataclass(frozen=True)
class UnsubscribeIdentity:
    """What a List-Unsubscribe link names (``tokens.read_token(..., "unsubscribe")``)."""

    subscriber_id: int
    list_id: int


def unsubscribe_urls(header: str | None) -> list[str]:
    """The http(s) URLs of a List-Unsubscribe value (RFC 2369: ``<url>, <mailto:...>``)."""
    if not header:
        return []
    header = header[:4000]
    found = _ANGLE.findall(header) or [header]
    return [u.strip() for u in found if u.strip().lower().startswith(("http://", "https://"))]


def read_list_unsubscribe(
    header: str | None, secret: bytes, *, now: datetime
) -> UnsubscribeIdentity | None:
    """The subscriber and list named by the signed token of a List-Unsubscribe link
    (``<base>/u/<token>``, see ``links.unsubscribe_url``); None if absent, damaged or forged."""
    for url in unsubscribe_urls(header):
        try:
            path = urlsplit(url).path
        except ValueError:
            continue
        head, sep, token = path.rstrip("/").rpartition("/u/")
        if not sep or "/" in token or not token:
            continue
        try:
            found = read_token(secret, unquote(token), "unsubscribe", now=now)
        except TokenError:
            continue
        return UnsubscribeIdentity(found.subscriber_id, found.list_id)
    return None


class IdentitySource(StrEnum):
    VERP = "verp"
    LIST_UNSUBSCRIBE = "list-unsubscribe"
    MESSAGE_ID = "message-id"


@dataclass(frozen=True)
class DeliveryIdentity:
    """The delivery (or, from the fallbacks, the subscriber and digest) a report is about.
    Exactly the fields its source can give are set."""

    source: IdentitySource
    delivery_id: int | None = None
    subscriber_id: int | None = None
    list_id: int | None = None
    list_slug: str | None = None
    frequency: str | None = None
    period_label: str | None = None

    @property
    def signed(self) -> bool:
        """True when the identity comes from a token we signed (VERP, List-Unsubscribe)."""
        return self.source is not IdentitySource.MESSAGE_ID


def identify(
    *,
    return_paths: Iterable[str],
    message_id: str | None,
    list_unsubscribe: str | None,
    secret: bytes,
    now: datetime,
    delimiter: str = "+",
    base: str | None = None,
) -> DeliveryIdentity | None:
    """The first identity found, most trustworthy first: a VERP token in any of
    ``return_paths`` (``bounce_parse.Report.return_paths``), the List-Unsubscribe token, then the
    Message-ID of the returned message."""
    for address in return_paths:
        delivery_id = read_bounce_address(address, secret, delimiter=delimiter, base=base)
        if delivery_id is not None:
            return DeliveryIdentity(IdentitySource.VERP, delivery_id=delivery_id)
    unsub = read_list_unsubscribe(list_unsubscribe, secret, now=now)
    if unsub is not None:
        return DeliveryIdentity(
            IdentitySource.LIST_UNSUBSCRIBE,
            subscriber_id=unsub.subscriber_id,
            list_id=unsub.list_id,
        )
    mid = read_message_id(message_id)
    if mid is not None:
        return DeliveryIdentity(
            IdentitySource.MESSAGE_ID,
            subscriber_id=mid.subscriber_id,
            list_slug=mid.list_slug,
            frequency=mid.frequency,
            period_label=mid.period_label,
        )
    return None
