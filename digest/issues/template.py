"""Messages: a variant's whole MIME message is encoded once, with placeholders where each
recipient's details go; a recipient's message is then made by substituting bytes into it.

Why: rendering (Jinja2) and CSS inlining (premailer) are slow and identical for everyone who gets
the same variant, so they run once per variant; personalising is a byte join (microseconds).

Encoding: multipart/alternative (text/plain first, text/html last), UTF-8, both parts
quoted-printable. Our encoder puts every placeholder on a line of its own between QP soft line
breaks (``=\\r\\n``), so no soft break can split it and line lengths stay within 76 once the
recipient's value (QP-encoded and wrapped the same way) replaces it.

Placeholders (ASCII, survive HTML escaping, premailer and QP untouched):
- in the HTML body: ``html_placeholder(FIELD)``  -> value HTML-escaped, then QP-encoded
- in the text body: ``text_placeholder(FIELD)``  -> value as is, QP-encoded
- headers To, Message-ID and List-Unsubscribe are added by ``build_template`` itself.
FIELD is one of ``FIELDS``.
"""

from __future__ import annotations

import email.policy
import email.quoprimime
import email.utils
import functools
import hashlib
import html
import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from sqlite_utils import Database

from . import links, tokens
from .timeutil import from_iso

# RECIPIENT is "Name <email>", or just the address when the subscriber gave no name.
FIELDS = ("NAME", "EMAIL", "RECIPIENT", "UNSUBSCRIBE_URL", "PREFERENCES_URL")
_HEADER_FIELDS = ("TO", "MESSAGE_ID", "LIST_UNSUBSCRIBE")
_PLACEHOLDER = re.compile(r"%%DIGEST_(HDR|HTML|TEXT)_([A-Z_]+)%%")
_PLACEHOLDER_B = re.compile(rb"%%DIGEST_(HDR|HTML|TEXT)_([A-Z_]+)%%")
CRLF = "\r\n"
_POLICY = email.policy.SMTP


def html_placeholder(field: str) -> str:
    assert field in FIELDS, field
    return f"%%DIGEST_HTML_{field}%%"


def text_placeholder(field: str) -> str:
    assert field in FIELDS, field
    return f"%%DIGEST_TEXT_{field}%%"


def clean_header_value(value: str) -> str:
    """Remove CR, LF and every other control character (header injection), collapse spaces."""
    value = "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in value)
    return " ".join(value.split())


def fold_header(name: str, value: str) -> bytes:
    """One header line (folded, RFC 2047-encoded where non-ASCII), injection-safe."""
    header_name, header = _POLICY.header_store_parse(name, clean_header_value(value))
    return _POLICY.fold_binary(header_name, header)


def _qp(text: str) -> str:
    # quoprimime works on code points < 256: hand it the UTF-8 bytes as latin-1 characters.
    return email.quoprimime.body_encode(
        text.encode("utf-8").decode("latin-1"), maxlinelen=76, eol=CRLF
    )


def encode_body(text: str) -> str:
    """Quoted-printable with CRLF line ends, each placeholder alone between soft breaks."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    out: list[str] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(text):
        out.append(_qp(text[pos : m.start()]))
        out.append("=" + CRLF + m.group(0) + "=" + CRLF)
        pos = m.end()
    out.append(_qp(text[pos:]))
    body = "".join(out)
    return body if body.endswith(CRLF) else body + CRLF


def build_template(
    headers: list[tuple[str, str]], text: str, html_body: str, *, boundary_seed: str
) -> bytes:
    """The variant's message with placeholders. ``headers`` are the shared ones (From, Subject,
    Date, List-Id, Reply-To, ...); To, Message-ID, List-Unsubscribe(-Post), MIME-Version and
    Content-Type are added here. ``text``/``html_body`` may contain body placeholders."""
    boundary = "=_digest_" + hashlib.sha256(boundary_seed.encode("utf-8")).hexdigest()[:32]
    lines: list[bytes] = [fold_header(name, value) for name, value in headers]
    lines.append(b"To: %%DIGEST_HDR_TO%%\r\n")
    lines.append(b"Message-ID: %%DIGEST_HDR_MESSAGE_ID%%\r\n")
    lines.append(b"List-Unsubscribe: %%DIGEST_HDR_LIST_UNSUBSCRIBE%%\r\n")
    lines.append(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
    return multipart_alternative(b"".join(lines), text, html_body, boundary=boundary)


def multipart_alternative(headers: bytes, text: str, html_body: str, *, boundary: str) -> bytes:
    """A whole message: ``headers`` (folded lines), then MIME-Version and a multipart/alternative
    body of the text part and the HTML part (UTF-8, quoted-printable, placeholders kept whole)."""
    parts = [
        headers,
        b"MIME-Version: 1.0\r\n",
        f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'.encode(),
    ]
    for subtype, body in (("plain", text), ("html", html_body)):
        parts.append(f"--{boundary}\r\n".encode())
        parts.append(f'Content-Type: text/{subtype}; charset="utf-8"\r\n'.encode())
        parts.append(b"Content-Transfer-Encoding: quoted-printable\r\n\r\n")
        parts.append(encode_body(body).encode("ascii"))
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts)


def sender_domain(from_addr: str) -> str:
    """The domain of a From address, for Message-IDs."""
    return email.utils.parseaddr(from_addr)[1].rpartition("@")[2].lower() or "localhost"


@dataclass(frozen=True)
class Recipient:
    subscriber_id: int
    email: str
    name: str | None


class CompiledTemplate:
    """A template split once into literal chunks and placeholder slots, for fast joins."""

    def __init__(self, template: bytes):
        self.chunks: list[bytes] = []
        self.slots: list[tuple[str, str]] = []  # (kind, field), one after each chunk but the last
        pos = 0
        for m in _PLACEHOLDER_B.finditer(template):
            self.chunks.append(template[pos : m.start()])
            self.slots.append((m.group(1).decode(), m.group(2).decode()))
            pos = m.end()
        self.chunks.append(template[pos:])

    def fill(self, values: dict[tuple[str, str], bytes]) -> bytes:
        out = [self.chunks[0]]
        for slot, chunk in zip(self.slots, self.chunks[1:], strict=True):
            out.append(values[slot])
            out.append(chunk)
        return b"".join(out)


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
        return email.utils.parseaddr(self.from_addr)[1]

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
    """The bytes that fill each placeholder for one recipient."""
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
        values[("TEXT", field)] = _qp(value).encode("ascii")
        values[("HTML", field)] = _qp(html.escape(value)).encode("ascii")
    to = (
        email.utils.formataddr((name, recipient.email), charset="utf-8")
        if name
        else recipient.email
    )
    list_unsub = f"<{unsub}>"
    if unsubscribe_mailto:
        list_unsub += f", <mailto:{clean_header_value(unsubscribe_mailto)}?subject=unsubscribe>"
    values[("HDR", "TO")] = clean_header_value(to).encode("ascii")
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
        info = self._variants.get(variant_id)
        if info is None:
            row = next(
                self.db.query(
                    """
                    SELECT v.id, v.template, d.id AS digest_id, d.frequency, d.period_label,
                           d.built_at, l.id AS list_id, l.slug, l.from_addr
                    FROM variants v JOIN digests d ON d.id = v.digest_id
                    JOIN lists l ON l.id = d.list_id WHERE v.id = ?
                    """,
                    [variant_id],
                ),
                None,
            )
            if row is None or row["template"] is None:
                raise LookupError(f"variant {variant_id} has no message template")
            info = VariantInfo(
                variant_id=row["id"],
                digest_id=row["digest_id"],
                list_id=row["list_id"],
                list_slug=row["slug"],
                frequency=row["frequency"],
                period_label=row["period_label"],
                from_addr=row["from_addr"],
                built_at=from_iso(row["built_at"]),
                compiled=CompiledTemplate(row["template"]),
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


def variant_report(db: Database, variant_id: int) -> dict:
    row = db.execute("SELECT report FROM variants WHERE id = ?", [variant_id]).fetchone()
    return json.loads(row[0]) if row else {}
