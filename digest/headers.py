"""Header lines: every header of every message we write is encoded here, so that nothing a
source, a list or a subscriber supplies can start a header line of its own or become structure.

The rules (RFC 5322, RFC 2047, RFC 6532):
- A value is first made one line (``text.single_line``: CR, LF and every other control or format
  character becomes a space).
- Text is never *decoded*: an input that looks like an encoded-word (``=?utf-8?q?...?=``) is
  literal text, and is itself encoded so that a reader shows it literally. (The standard
  library's header parser decodes such words, which let ``=0D=0A`` in a feed's tag become a real
  line break in a Subject.)
- Unstructured text (Subject) that is not plain printable ASCII is written as UTF-8
  encoded-words; display names in address headers are atoms, quoted strings or encoded-words.
- Addresses are written as they were validated (``addresses.normalise_email``: domains in IDNA
  form); a non-ASCII local part is written as UTF-8 (RFC 6532), which the sender only hands to a
  relay that offers SMTPUTF8.
- Lines are folded at 78 characters where there is a place to fold, and never exceed 998.
"""

from __future__ import annotations

import base64
import email.utils
import re

from .errors import InvalidInput
from .text import single_line

CRLF = "\r\n"
SOFT_LIMIT = 78  # RFC 5322 2.1.1: lines SHOULD be at most 78 characters
HARD_LIMIT = 998  # ... and MUST be at most 998
_ENCODED_WORD_LIMIT = 75  # RFC 2047 2

ADDRESS_HEADERS = frozenset({"from", "to", "cc", "reply-to", "sender"})
# Values we build ourselves from identifiers: ASCII tokens, written as they are.
TOKEN_HEADERS = frozenset(
    {
        "message-id",
        "date",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "references",
        "in-reply-to",
        "auto-submitted",
        "precedence",
        "x-auto-response-suppress",
    }
)

# RFC 5322 atext: what a display name may hold without quoting.
_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+")
# RFC 2047 5(3): characters a "Q"-encoded word may carry as themselves in a phrase.
_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")


def _plain(text: str) -> bool:
    """Printable ASCII that no reader would take for an encoded-word."""
    return text.isascii() and text.isprintable() and "=?" not in text


def encoded_words(text: str) -> list[str]:
    """``text`` as UTF-8 encoded-words of at most 75 characters each, never splitting a
    character across two words. "Q" where it is mostly ASCII letters, else "B"."""
    data = text.encode("utf-8")
    readable = sum(1 for b in data if b in _Q_SAFE or b == 0x20)
    q = readable >= 0.7 * max(len(data), 1)
    prefix, suffix = ("=?utf-8?q?", "?=") if q else ("=?utf-8?b?", "?=")
    room = _ENCODED_WORD_LIMIT - len(prefix) - len(suffix)
    words: list[str] = []
    chunk = b""
    for ch in text:
        raw = ch.encode("utf-8")
        if _encoded_length(chunk + raw, q) > room and chunk:
            words.append(prefix + _encode(chunk, q) + suffix)
            chunk = b""
        chunk += raw
    if chunk or not words:
        words.append(prefix + _encode(chunk, q) + suffix)
    return words


def _encoded_length(data: bytes, q: bool) -> int:
    if q:
        return sum(1 if (b in _Q_SAFE or b == 0x20) else 3 for b in data)
    return 4 * ((len(data) + 2) // 3)


def _encode(data: bytes, q: bool) -> str:
    if not q:
        return base64.b64encode(data).decode("ascii")
    out = []
    for b in data:
        if b == 0x20:
            out.append("_")
        elif b in _Q_SAFE:
            out.append(chr(b))
        else:
            out.append(f"={b:02X}")
    return "".join(out)


def unstructured(text: str) -> list[str]:
    """The words of an unstructured value (Subject): plain ASCII words as they are, else the
    whole value as encoded-words."""
    text = single_line(text)
    words = text.split(" ")
    if _plain(text) and all(len(w) <= HARD_LIMIT - 100 for w in words):
        return [w for w in words if w] or [""]
    return encoded_words(text)


def phrase(name: str) -> list[str]:
    """A display name as words: atoms, one quoted string, or encoded-words."""
    name = single_line(name)
    if not name:
        return []
    if _plain(name):
        parts = name.split(" ")
        if all(_ATOM.fullmatch(p) and len(p) <= SOFT_LIMIT - 10 for p in parts):
            return parts
        quoted = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if len(quoted) <= SOFT_LIMIT - 10:
            return [quoted]
    return encoded_words(name)


def address_words(name: str | None, addr: str) -> list[str]:
    """``Name <addr>`` (or ``addr`` alone) as foldable words. ``addr`` must be a validated
    address: it is written as it is, so it may not contain anything a header could be built
    from."""
    addr = addr.strip()
    if not addr or any(c in addr for c in '<>,;"\\ \t\r\n') or not addr.isprintable():
        raise InvalidInput(f"address {addr!r} cannot be written in a header")
    words = phrase(name or "")
    return [*words, f"<{addr}>"] if words else [addr]


def fold(name: str, words: list[str]) -> str:
    """``words`` joined by spaces after ``Name: ``, folded before a word that would take the
    line past 78 characters (RFC 5322 folding whitespace). Returns the value with its fold
    breaks, without the name and the final CRLF."""
    lines: list[str] = []
    line = ""
    used = len(name) + 2
    for word in words:
        if not line:
            line = word
        elif used + len(line) + 1 + len(word) <= SOFT_LIMIT:
            line += " " + word
        else:
            lines.append(line)
            line = word
            used = 0
        if used + len(line) > HARD_LIMIT:
            raise InvalidInput(f"{name} header: a part is too long to fold ({len(word)} chars)")
    lines.append(line)
    return (CRLF + " ").join(lines)


def header_value(name: str, value: str) -> str:
    """The encoded, folded value of header ``name`` (see the module docstring)."""
    key = name.lower()
    if key in ADDRESS_HEADERS:
        display, addr = email.utils.parseaddr(single_line(value))
        if not addr:
            raise InvalidInput(f"{name} header: {value!r} is not an address")
        return fold(name, address_words(display, addr))
    if key in TOKEN_HEADERS:
        token = single_line(value)
        if not token.isascii():
            raise InvalidInput(f"{name} header: {token!r} is not ASCII")
        return fold(name, token.split(" "))
    if key == "list-id":
        # RFC 2919: an optional phrase, then the list's identifier in angle brackets.
        text = single_line(value)
        label, _, ident = text.rpartition("<")
        ident = "<" + ident
        if not re.fullmatch(r"<[A-Za-z0-9.\-]+>", ident):
            raise InvalidInput(f"List-Id header: {text!r} has no <list.id>")
        return fold(name, [*phrase(label.strip()), ident])
    return fold(name, unstructured(value))


def fold_header(name: str, value: str) -> bytes:
    """One header line, ``Name: value\\r\\n``, encoded and folded (see the module docstring).
    The bytes are UTF-8: only an address with a non-ASCII local part leaves non-ASCII in them."""
    return f"{name}: {header_value(name, value)}{CRLF}".encode()


def clean_header_value(value: str) -> str:
    """A value made one line (for text that ends up in a header, such as a title)."""
    return single_line(value)
