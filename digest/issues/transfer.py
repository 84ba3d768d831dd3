"""Content-Transfer-Encoding per MIME part: quoted-printable or base64, whichever is smaller,
with the recipient placeholders kept substitutable in both. The only module that encodes a
message body (``template.build_template`` calls ``multipart_alternative``).

Why: quoted-printable spends 3 bytes on every non-ASCII byte, so CJK text (3 UTF-8 bytes a
character) costs ~9 bytes a character, against 4 for base64; English HTML with inline styles is
~1.02x in quoted-printable against 1.37x in base64. A Japanese digest in quoted-printable fills
the Gmail budget 2.3 times sooner than in base64.

Placeholders in base64: a variant's message is encoded once and each recipient's values are
substituted as bytes (``messages.CompiledTemplate``). Base64 maps 3 bytes to 4 characters, so the
encoding of a concatenation is the concatenation of the encodings only when every piece but the
last is a multiple of 3 bytes long. So:

- each literal chunk between placeholders is padded to a multiple of 3 bytes with 0-2 ASCII
  spaces, put before the chunk's last line break (a trailing space on a line: invisible in the
  text part, collapsed in HTML) or, without one, at the chunk's end;
- each chunk is base64-encoded on its own lines (at most 76 characters, CRLF) and the placeholder
  follows it unencoded as ``%%DIGEST_<key>_HTML64_<FIELD>%%`` / ``%%DIGEST_<key>_TEXT64_<FIELD>%%``
  (the variant's random key, as in quoted-printable: see ``template``; content cannot forge a
  placeholder in either encoding, and base64 output has no ``%`` at all);
- a recipient's value (HTML-escaped for HTML) is padded with 0-2 trailing spaces to a multiple
  of 3 bytes (trailing spaces in a URL attribute are stripped by the URL parser; in text they
  end a line or collapse) and base64-encoded on its own lines (``base64_value``).

The decoded part is then exactly the rendered text plus those few spaces. In quoted-printable
(``encode_body``) each placeholder of the key stays as rendered, alone between soft breaks.
"""

from __future__ import annotations

import base64
import email.quoprimime
import html
import re
from dataclasses import dataclass
from enum import StrEnum

CRLF = "\r\n"
LINE = 76  # RFC 2045: encoded lines at most 76 characters
_KEY = re.compile(r"[0-9a-f]{16}")
# Every placeholder kind a message template may hold, any key (CompiledTemplate reads the key of
# its own template from its To line and only takes that one).
PLACEHOLDER_BYTES = re.compile(
    rb"%%DIGEST_([0-9a-f]{16})_(HDR|HTML|TEXT|HTML64|TEXT64)_([A-Z_]+)%%"
)


class TransferEncoding(StrEnum):
    QUOTED_PRINTABLE = "quoted-printable"
    BASE64 = "base64"


@dataclass(frozen=True)
class EncodedPart:
    encoding: TransferEncoding
    body: str  # ASCII, CRLF lines, placeholders kept whole


def check_key(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise ValueError(f"placeholder key {key!r} is not 16 hex digits")
    return key


def body_placeholders(key: str) -> re.Pattern[str]:
    """The body placeholders (and header ones) of ``key`` in rendered text."""
    return re.compile(rf"%%DIGEST_{check_key(key)}_(HDR|HTML|TEXT)_([A-Z_]+)%%")


def qp_encode(text: str) -> str:
    # quoprimime works on code points < 256: hand it the UTF-8 bytes as latin-1 characters.
    return email.quoprimime.body_encode(
        text.encode("utf-8").decode("latin-1"), maxlinelen=76, eol=CRLF
    )


def encode_body(text: str, key: str | None = None) -> str:
    """Quoted-printable with CRLF line ends, each placeholder of ``key`` alone between soft
    breaks (without a key, nothing in ``text`` is a placeholder)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    out: list[str] = []
    pos = 0
    for m in body_placeholders(key).finditer(text) if key else ():
        out.append(qp_encode(text[pos : m.start()]))
        out.append("=" + CRLF + m.group(0) + "=" + CRLF)
        pos = m.end()
    out.append(qp_encode(text[pos:]))
    encoded = "".join(out)
    return encoded if encoded.endswith(CRLF) else encoded + CRLF


def _b64_lines(data: bytes) -> str:
    if not data:
        return ""
    encoded = base64.b64encode(data).decode("ascii")
    return "".join(encoded[i : i + LINE] + CRLF for i in range(0, len(encoded), LINE))


def _pad(chunk: bytes) -> bytes:
    """``chunk`` with 0-2 spaces so that its length is a multiple of 3 (see the docstring)."""
    missing = -len(chunk) % 3
    if not missing:
        return chunk
    spaces = b" " * missing
    cut = chunk.rfind(b"\n")
    if cut == -1:
        return chunk + spaces
    if cut > 0 and chunk[cut - 1 : cut] == b"\r":
        cut -= 1
    return chunk[:cut] + spaces + chunk[cut:]


def encode_base64_body(text: str, key: str | None = None) -> str:
    """Base64 with CRLF line ends (the text's line ends made CRLF, as for quoted-printable),
    the placeholders of ``key`` kept substitutable (see the module docstring)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", CRLF)
    out: list[str] = []
    pos = 0
    for m in body_placeholders(key).finditer(text) if key else ():
        if m.group(1) == "HDR":
            continue  # never in a body; left as text
        out.append(_b64_lines(_pad(text[pos : m.start()].encode("utf-8"))))
        out.append(f"%%DIGEST_{key}_{m.group(1)}64_{m.group(2)}%%")
        pos = m.end()
    out.append(_b64_lines(text[pos:].encode("utf-8")))
    return "".join(out)


def base64_size(text: str, key: str | None = None) -> int:
    """Bytes of ``encode_base64_body(text, key)``, placeholders counted as their tokens."""
    return len(encode_base64_body(text, key))


def quoted_printable_size(text: str, key: str | None = None) -> int:
    return len(encode_body(text, key))


def encode_part(text: str, key: str | None = None) -> EncodedPart:
    """The smaller of quoted-printable and base64 for this part (ties: quoted-printable, which
    stays readable in a raw message)."""
    qp = encode_body(text, key)
    if text.isascii():  # base64 can only be larger
        return EncodedPart(TransferEncoding.QUOTED_PRINTABLE, qp)
    b64 = encode_base64_body(text, key)
    if len(b64) < len(qp):
        return EncodedPart(TransferEncoding.BASE64, b64)
    return EncodedPart(TransferEncoding.QUOTED_PRINTABLE, qp)


def best_size(text: str, key: str | None = None) -> int:
    """Encoded bytes of the part as ``encode_part`` would send it."""
    return len(encode_part(text, key).body)


def base64_value(value: str, *, html_part: bool) -> bytes:
    """What replaces ``%%DIGEST_<key>_HTML64_X%%`` (``html_part``) or ``..._TEXT64_X%%`` for one
    recipient: the value, HTML-escaped for HTML, padded to 3 bytes, base64 lines."""
    raw = (html.escape(value) if html_part else value).encode("utf-8")
    raw += b" " * (-len(raw) % 3)
    return _b64_lines(raw).encode("ascii")


def multipart_alternative(
    headers: bytes, text: str, html_body: str, *, boundary: str, key: str | None = None
) -> bytes:
    """A whole message: ``headers`` (folded lines), then MIME-Version and a multipart/alternative
    body of the text part and the HTML part (UTF-8), each in its smaller encoding, the
    placeholders of ``key`` kept substitutable."""
    parts = [
        headers,
        b"MIME-Version: 1.0\r\n",
        f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'.encode(),
    ]
    for subtype, body in (("plain", text), ("html", html_body)):
        encoded = encode_part(body, key)
        parts.append(f"--{boundary}\r\n".encode())
        parts.append(f'Content-Type: text/{subtype}; charset="utf-8"\r\n'.encode())
        parts.append(f"Content-Transfer-Encoding: {encoded.encoding}\r\n\r\n".encode())
        parts.append(encoded.body.encode("ascii"))
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts)
