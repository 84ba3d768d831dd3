"""Optional DKIM signing (RFC 6376) of finished messages, for people who send through a relay
that does not sign for their domain. Uses dkimpy, rsa-sha256, relaxed/relaxed
canonicalisation (header folding or trailing whitespace changed by a relay does not break
the signature).

The signed headers (``h=``) always include List-Unsubscribe and List-Unsubscribe-Post: RFC 8058
section 4 requires both to be covered by a valid DKIM signature for one-click unsubscribe to be
honoured, and Gmail and Yahoo check it. Headers in ``SIGNED_HEADERS`` that a message does not
have are signed as absent, so nobody can add them later without breaking the signature.

Cost: dkimpy's RSA is pure Python; a 2048-bit signature takes milliseconds per message, which
is the price of signing each recipient's (different) message.
"""

from __future__ import annotations

from pathlib import Path

import dkim as dkimpy

from ..errors import DigestError

SIGNED_HEADERS: tuple[bytes, ...] = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"reply-to",
    b"list-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"mime-version",
    b"content-type",
)


class DkimError(DigestError):
    """The DKIM key or settings cannot be used; the message says what to fix."""


def load_key(path: str | Path) -> bytes:
    """The PEM private key in ``path`` (PKCS#1 "RSA PRIVATE KEY" or PKCS#8 "PRIVATE KEY")."""
    try:
        key = Path(path).read_bytes()
    except OSError as e:
        raise DkimError(f"DKIM key {path}: cannot read it ({e.strerror or e})") from None
    if b"-----BEGIN" not in key or b"PRIVATE KEY-----" not in key:
        raise DkimError(f"DKIM key {path}: not a PEM private key (expected '-----BEGIN ...')")
    try:
        dkimpy.crypto.parse_pem_private_key(key)
    except dkimpy.crypto.UnparsableKeyError as e:
        raise DkimError(f"DKIM key {path}: not a usable RSA private key ({e})") from None
    return key


def sign(message: bytes, *, selector: str, domain: str, key_pem: bytes) -> bytes:
    """``message`` (CRLF line ends) with a DKIM-Signature header added at the top, made with
    the private key ``key_pem`` for ``selector._domainkey.domain``."""
    if not selector or not domain:
        raise DkimError("DKIM signing needs a selector and a domain")
    try:
        header: bytes = dkimpy.sign(
            message,
            selector.encode("ascii"),
            domain.encode("ascii"),
            key_pem,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=list(SIGNED_HEADERS),
        )
    except UnicodeEncodeError:
        raise DkimError(
            f"DKIM selector {selector!r} and domain {domain!r} must be ASCII (use the IDNA "
            "form of an internationalised domain)"
        ) from None
    except dkimpy.DKIMException as e:
        raise DkimError(f"DKIM signing for {domain} failed: {e}") from None
    return header + message
