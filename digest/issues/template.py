"""Messages: a variant's whole MIME message is encoded once, with placeholders where each
recipient's details go; a recipient's message is then made by substituting bytes into it.

Why: rendering (Jinja2) and CSS inlining (premailer) are slow and identical for everyone who gets
the same variant, so they run once per variant; personalising is a byte join (microseconds).

Encoding (``transfer``): multipart/alternative (text/plain first, text/html last), UTF-8, each
part quoted-printable or base64, whichever is smaller. In quoted-printable every placeholder is
on a line of its own between soft line breaks (``=\\r\\n``), so no soft break can split it and
line lengths stay within 76 once the recipient's value (QP-encoded and wrapped the same way)
replaces it; in base64 the text around it is aligned to 3 bytes and it becomes an ``HTML64`` /
``TEXT64`` slot, filled with the value's own base64 lines.

Placeholders (ASCII, survive HTML escaping, premailer and QP untouched) carry a random key
made for each rendered variant (``new_placeholder_key``): ``%%DIGEST_<key>_HTML_EMAIL%%``. Content
(a feed's title or link, a tag, a list or subscriber field) cannot predict the key, so nothing it
contains can become a placeholder: text that looks like one is just text. The key is written
once, in the template's own ``To:`` header line, where content never goes; ``CompiledTemplate``
reads it from there (templates stored before keys existed have none and are read the old way).
- in the HTML body: ``html_placeholder(FIELD, key)``  -> value HTML-escaped, then QP-encoded
- in the text body: ``text_placeholder(FIELD, key)``  -> value as is, QP-encoded
- headers To, Message-ID and List-Unsubscribe are added by ``build_template`` itself.
FIELD is one of ``FIELDS``.
"""

from __future__ import annotations

import hashlib
import re
import secrets

from ..headers import fold_header
from .transfer import check_key, encode_body, multipart_alternative, qp_encode

__all__ = [
    "FIELDS",
    "CompiledTemplate",
    "build_template",
    "encode_body",
    "html_placeholder",
    "multipart_alternative",
    "new_placeholder_key",
    "qp_encode",
    "text_placeholder",
]

# RECIPIENT is "Name <email>", or just the address when the subscriber gave no name.
FIELDS = ("NAME", "EMAIL", "RECIPIENT", "UNSUBSCRIBE_URL", "PREFERENCES_URL")
HEADER_FIELDS = ("TO", "MESSAGE_ID", "LIST_UNSUBSCRIBE")
# Every (kind, field) a template may have a slot for; anything else is literal text.
SLOTS = frozenset(
    [("HDR", f) for f in HEADER_FIELDS]
    + [(k, f) for k in ("HTML", "TEXT", "HTML64", "TEXT64") for f in FIELDS]
)
_KEY_LINE = re.compile(rb"^To: %%DIGEST_([0-9a-f]{16})_HDR_TO%%\r$", re.M)
_LEGACY_B = re.compile(rb"%%DIGEST_(HDR|HTML|TEXT)_([A-Z_]+)%%")
CRLF = "\r\n"


def new_placeholder_key() -> str:
    """A fresh key for one rendered variant: 64 random bits no content can guess."""
    return secrets.token_hex(8)


def html_placeholder(field: str, key: str) -> str:
    assert field in FIELDS, field
    return f"%%DIGEST_{check_key(key)}_HTML_{field}%%"


def text_placeholder(field: str, key: str) -> str:
    assert field in FIELDS, field
    return f"%%DIGEST_{check_key(key)}_TEXT_{field}%%"


def build_template(
    headers: list[tuple[str, str]],
    text: str,
    html_body: str,
    *,
    boundary_seed: str,
    key: str,
) -> bytes:
    """The variant's message with placeholders of ``key``. ``headers`` are the shared ones
    (From, Subject, Date, List-Id, Reply-To, ...); To, Message-ID, List-Unsubscribe(-Post),
    MIME-Version and Content-Type are added here. ``text``/``html_body`` may contain body
    placeholders of ``key``."""
    boundary = "=_digest_" + hashlib.sha256(boundary_seed.encode("utf-8")).hexdigest()[:32]
    k = check_key(key)
    lines: list[bytes] = [fold_header(name, value) for name, value in headers]
    lines.append(f"To: %%DIGEST_{k}_HDR_TO%%\r\n".encode())
    lines.append(f"Message-ID: %%DIGEST_{k}_HDR_MESSAGE_ID%%\r\n".encode())
    lines.append(f"List-Unsubscribe: %%DIGEST_{k}_HDR_LIST_UNSUBSCRIBE%%\r\n".encode())
    lines.append(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
    return multipart_alternative(b"".join(lines), text, html_body, boundary=boundary, key=k)


class CompiledTemplate:
    """A template split once into literal chunks and placeholder slots, for fast joins. The
    placeholder key is read from the template's ``To:`` header line; only known slots of that
    key are slots, everything else is literal."""

    def __init__(self, template: bytes):
        self.chunks: list[bytes] = []
        self.slots: list[tuple[str, str]] = []  # (kind, field), one after each chunk but the last
        head = template[: template.find(b"\r\n\r\n") + 2]
        found = _KEY_LINE.search(head)
        pattern = (
            re.compile(
                rb"%%DIGEST_" + found.group(1) + rb"_(HDR|HTML|TEXT|HTML64|TEXT64)_([A-Z_]+)%%"
            )
            if found
            else _LEGACY_B  # stored before keys existed
        )
        pos = 0
        for m in pattern.finditer(template):
            slot = (m.group(1).decode(), m.group(2).decode())
            if slot not in SLOTS:
                continue
            self.chunks.append(template[pos : m.start()])
            self.slots.append(slot)
            pos = m.end()
        self.chunks.append(template[pos:])
        self.slot_set = frozenset(self.slots)

    def fill(self, values: dict[tuple[str, str], bytes]) -> bytes:
        out = [self.chunks[0]]
        for slot, chunk in zip(self.slots, self.chunks[1:], strict=True):
            out.append(values[slot])
            out.append(chunk)
        return b"".join(out)
