"""Plain-text hygiene shared by every stage: the one definition of a control character, and the
checks and clean-ups built on it.

Text that ends up on one line of a message (a header, a name, a title) must never carry a line
break: a CR or LF there would start a new header line (header injection). Every module that
accepts such a value uses these functions, so the definition cannot drift apart.
"""

from __future__ import annotations

import re
import unicodedata

from .errors import InvalidInput

# C0 and C1 control characters, DEL, and the Unicode line and paragraph separators.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# The same without TAB, LF and CR, for text where line ends are expected (a CSV file).
CONTROL_BUT_LINE_ENDS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")
# A UTF-16 surrogate on its own: JSON's "\\ud800" escape decodes to one, and it cannot be
# encoded as UTF-8 (the store, nh3 and SMTP would all fail on it).
LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


def without_lone_surrogates(value: str) -> str:
    """``value`` with each lone UTF-16 surrogate replaced by U+FFFD (the replacement
    character), as a UTF-8 decoder does with bytes it cannot read."""
    return LONE_SURROGATE.sub("\ufffd", value)


def single_line(value: str) -> str:
    """``value`` on one line: every control or format character (Unicode category C: CR, LF,
    TAB, zero-width and bidi controls...) becomes a space, and runs of spaces become one."""
    if value.isprintable() and "  " not in value:
        return value.strip()
    value = "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in value)
    return " ".join(value.split())


def check_single_line(value: str, field: str) -> str:
    """``value`` unchanged, or ``InvalidInput`` naming ``field`` if it has a line break or
    another control character."""
    if CONTROL.search(value):
        raise InvalidInput(f"{field} {value!r} contains a line break or control character")
    return value


def clean_name(name: str | None, *, max_length: int = 200) -> str | None:
    """A person's display name as given by them or an admin: spaces collapsed, None if empty.
    A name with a line break or control character is refused (it would end up in a header)."""
    if name is None:
        return None
    check_single_line(name, "name")
    name = " ".join(name.split())
    if len(name) > max_length:
        raise InvalidInput(f"name is too long (at most {max_length} characters)")
    return name or None


def visible(text: str) -> str:
    """``text`` safe to print on a terminal or store for display: every control, format or
    line-separator character (ESC, CR, LF, bidi overrides...) is shown as its escape (``\\x1b``,
    ``\\u202e``), so outside text (a server's reason phrase, a parser's error message) can neither
    drive the terminal nor forge a line of output. Idempotent; printable text is unchanged."""
    if text.isprintable():
        return text
    return "".join(
        ch if ch == " " or ch.isprintable() or unicodedata.category(ch) == "Zs"
        else ascii(ch)[1:-1]
        for ch in text
    )  # fmt: skip
