"""Personalising: each recipient's message is the variant's stored template (``issues.template``)
with the recipient's values substituted into its placeholders (name, address, signed
unsubscribe and preferences links, To, Message-ID, List-Unsubscribe). A byte join per
recipient: rendering and CSS inlining ran once per variant when the issue was built.
"""

from __future__ import annotations

import functools
import html
from dataclasses import dataclass
from datetime import datetime

from sqlite_utils import Database

from .. import links, tokens
from ..addresses import address_of, sender_domain
from ..headers import address_words, clean_header_value, fold
from ..issues.store import load_variant
from ..issues.template import CompiledTemplate, qp_encode
from ..issues.transfer import base64_value


@dataclass(frozen=True)
class Recipient:
    subscriber_id: int
    email: str
    name: str | None


@dataclass(frozen=True)
class VariantInfo:
    """What personalisation needs from a variant's digest and list."""

    variant_id: int
    digest_id: int
    list_id: int
    list_slug: str
    frequency: str
    period_label: str
    from_addr: str
    built_at: datetime
    compiled: CompiledTemplate

    @functools.cached_property
    def sender(self) -> str:
        """The envelope sender: the address of the list's From."""
        return address_of(self.from_addr)

    @property
    def domain(self) -> str:
        return sender_domain(self.from_addr)

    def message_id(self, subscriber_id: int) -> str:
        # Deterministic per (digest, subscriber): a resend after a crash carries the same ID.
        return (
            f"<{self.list_slug}.{self.frequency}.{self.period_label}.{subscriber_id}@{self.domain}>"
        )


def recipient_values(
    info: VariantInfo,
    recipient: Recipient,
    *,
    base_url: str,
    secret: bytes,
    unsubscribe_mailto: str | None = None,
    message_id: str | None = None,
) -> dict[tuple[str, str], bytes]:
    """The bytes that fill each placeholder for one recipient (the base64 slots only when the
    variant's template has a base64 part)."""
    # Tokens are issued "at" the build time so a recipient's message is byte-identical whenever
    # it is assembled (preview, first send, resend after a crash).
    unsub = links.unsubscribe_url(
        base_url,
        tokens.make_token(
            secret, "unsubscribe", recipient.subscriber_id, info.list_id, now=info.built_at
        ),
    )
    prefs = links.preferences_url(
        base_url,
        tokens.make_token(
            secret, "preferences", recipient.subscriber_id, info.list_id, now=info.built_at
        ),
    )
    name = clean_header_value(recipient.name or "")
    fields = {
        "NAME": name,
        "EMAIL": recipient.email,
        "RECIPIENT": f"{name} <{recipient.email}>" if name else recipient.email,
        "UNSUBSCRIBE_URL": unsub,
        "PREFERENCES_URL": prefs,
    }
    values: dict[tuple[str, str], bytes] = {}
    for field, value in fields.items():
        values[("TEXT", field)] = qp_encode(value).encode("ascii")
        values[("HTML", field)] = qp_encode(html.escape(value)).encode("ascii")
        if info.compiled.base64_slots:
            # A part sent in base64 (smaller for CJK text, issues.transfer) has its own slots.
            values[("TEXT64", field)] = base64_value(value, html_part=False)
            values[("HTML64", field)] = base64_value(value, html_part=True)
    list_unsub = f"<{unsub}>"
    if unsubscribe_mailto:
        list_unsub += f", <mailto:{clean_header_value(unsubscribe_mailto)}?subject=unsubscribe>"
    # Encoded and folded like every header we write (headers.py); UTF-8 only for an address
    # with a non-ASCII local part, which is sent only where the relay offers SMTPUTF8.
    values[("HDR", "TO")] = fold("To", address_words(name, recipient.email)).encode("utf-8")
    values[("HDR", "MESSAGE_ID")] = (message_id or info.message_id(recipient.subscriber_id)).encode(
        "ascii"
    )
    values[("HDR", "LIST_UNSUBSCRIBE")] = list_unsub.encode("ascii")
    return values


@dataclass(frozen=True)
class Outgoing:
    """One message ready for the transport."""

    message_id: str
    sender: str  # envelope sender (the list's From address)
    recipient: str  # envelope recipient
    data: bytes


class Assembler:
    """Makes each recipient's message from the stored variant template. Caches one compiled
    template per variant, so a send of 100,000 deliveries over 50 variants parses 50 templates."""

    def __init__(
        self, db: Database, *, base_url: str, secret: bytes, unsubscribe_mailto: str | None = None
    ):
        self.db = db
        self.base_url = base_url
        self.secret = secret
        self.unsubscribe_mailto = unsubscribe_mailto
        self._variants: dict[int, VariantInfo] = {}

    def variant(self, variant_id: int) -> VariantInfo:
        """The variant's template and what personalising it needs; ``LookupError`` if it has
        none (an empty variant)."""
        info = self._variants.get(variant_id)
        if info is None:
            stored = load_variant(self.db, variant_id)
            if stored is None or stored.template is None:
                raise LookupError(f"variant {variant_id} has no message template")
            info = VariantInfo(
                variant_id=stored.id,
                digest_id=stored.digest_id,
                list_id=stored.list_id,
                list_slug=stored.list_slug,
                frequency=stored.frequency,
                period_label=stored.period_label,
                from_addr=stored.from_addr,
                built_at=stored.built_at,
                compiled=CompiledTemplate(stored.template),
            )
            self._variants[variant_id] = info
        return info

    def message(self, variant_id: int, recipient: Recipient) -> Outgoing:
        return self.message_and_values(variant_id, recipient)[0]

    def message_and_values(
        self, variant_id: int, recipient: Recipient
    ) -> tuple[Outgoing, dict[tuple[str, str], bytes]]:
        """The message and the placeholder values it was filled with (a sender that keeps its
        own pre-encoded copy of the template fills that from the same values)."""
        info = self.variant(variant_id)
        values = recipient_values(
            info,
            recipient,
            base_url=self.base_url,
            secret=self.secret,
            unsubscribe_mailto=self.unsubscribe_mailto,
        )
        outgoing = Outgoing(
            message_id=values[("HDR", "MESSAGE_ID")].decode("ascii"),
            sender=info.sender,
            recipient=recipient.email,
            data=info.compiled.fill(values),
        )
        return outgoing, values
