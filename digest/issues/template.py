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
import hashlib
import re

from ..headers import fold_header

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


def qp_encode(text: str) -> str:
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
        out.append(qp_encode(text[pos : m.start()]))
        out.append("=" + CRLF + m.group(0) + "=" + CRLF)
        pos = m.end()
    out.append(qp_encode(text[pos:]))
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
