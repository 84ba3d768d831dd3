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
from ..store.instance import instance_id


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
    instance: str = ""  # store.instance_id of the database (in Message-IDs)

    @functools.cached_property
    def sender(self) -> str:
        """The envelope sender: the address of the list's From."""
        return address_of(self.from_addr)

    @functools.cached_property
    def domain(self) -> str:
        return sender_domain(self.from_addr)

    @property
    def slot_set(self) -> frozenset[tuple[str, str]]:
        return self.compiled.slot_set

    def message_id(self, subscriber_id: int) -> str:
        # Deterministic per (digest, subscriber): a resend after a crash carries the same ID.
        # The database's random instance id keeps two installations (or a rebuilt database)
        # from ever reusing one.
        prefix, suffix = self._message_id_parts
        return f"{prefix}{subscriber_id}{suffix}"

    @functools.cached_property
    def _message_id_parts(self) -> tuple[str, str]:
        instance = f".{self.instance}" if self.instance else ""
        return (
            f"<{self.list_slug}.{self.frequency}.{self.period_label}.",
            f"{instance}@{self.domain}>",
        )


def _qp(value: str) -> bytes:
    """A value quoted-printable encoded as the template's parts are. Most values (addresses,
    signed links) are short printable ASCII without '=', which QP leaves as they are."""
    plain = value.isascii() and value.isprintable() and "=" not in value
    if plain and len(value) <= 76 and value[-1:] not in (" ", "\t"):
        return value.encode("ascii")
    return qp_encode(value).encode("ascii")


def recipient_values(
    info: VariantInfo,
    recipient: Recipient,
    *,
    base_url: str,
    secret: bytes,
    unsubscribe_mailto: str | None = None,
    message_id: str | None = None,
    inert: bool = False,
) -> dict[tuple[str, str], bytes]:
    """The bytes that fill each placeholder for one recipient (only the slots its template
    has; a part sent in base64 has ``TEXT64``/``HTML64`` slots). ``inert``: for previews shown
    to staff, the unsubscribe and preferences links open a page saying this is a preview
    (``links.preview_link_url``) instead of carrying the recipient's signed token."""
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
    if inert:
        unsub = links.preview_link_url(base_url, "unsubscribe")
        prefs = links.preview_link_url(base_url, "preferences")
    name = clean_header_value(recipient.name or "")
    fields = {
        "NAME": name,
        "EMAIL": recipient.email,
        "RECIPIENT": f"{name} <{recipient.email}>" if name else recipient.email,
        "UNSUBSCRIBE_URL": unsub,
        "PREFERENCES_URL": prefs,
    }
    values: dict[tuple[str, str], bytes] = {}
    # Only the slots this template has (a footer uses a few of the ten).
    for kind, field in info.slot_set:
        if kind == "TEXT":
            values[(kind, field)] = _qp(fields[field])
        elif kind == "HTML":
            values[(kind, field)] = _qp(html.escape(fields[field]))
        elif kind == "TEXT64":  # a part sent in base64 (smaller for CJK text, issues.transfer)
            values[(kind, field)] = base64_value(fields[field], html_part=False)
        elif kind == "HTML64":
            values[(kind, field)] = base64_value(fields[field], html_part=True)
    list_unsub = f"<{unsub}>"
    if unsubscribe_mailto:
        # RFC 8058 one-click is the HTTPS link; some mailbox providers only honour mailto. The
        # subject carries the signed token, so whoever reads that mailbox can tell who asked.
        token = unsub.rsplit("/", 1)[-1]
        list_unsub += (
            f", <mailto:{clean_header_value(unsubscribe_mailto)}?subject=unsubscribe%20{token}>"
        )
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
        self.instance = instance_id(db)
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
                instance=self.instance,
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
