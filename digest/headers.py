"""Header lines: every header value that goes into a message is encoded here, so that nothing
a source, a list or a subscriber supplies can start a header line of its own."""

from __future__ import annotations

import email.policy

from .text import single_line

_POLICY = email.policy.SMTP


def clean_header_value(value: str) -> str:
    """Remove CR, LF and every other control character (header injection), collapse spaces."""
    return single_line(value)


def fold_header(name: str, value: str) -> bytes:
    """One header line (folded, RFC 2047-encoded where non-ASCII), injection-safe."""
    header_name, header = _POLICY.header_store_parse(name, clean_header_value(value))
    return _POLICY.fold_binary(header_name, header)
