"""Signed tokens for subscriber links (confirm, unsubscribe, preferences), and the form token of
each list's embeddable subscribe form.

A token is opaque, URL-safe and verifiable without being stored: base64url of a small packed
payload (purpose, subscriber id, list id, issue time) followed by a truncated HMAC-SHA256 of it.
The signing secret comes from ``DIGEST_SECRET``, else from a file beside the database created
once with mode 0600. Any changed character invalidates a token (the decoded form must re-encode
to exactly the given string). Confirmation tokens expire (default 7 days); the others do not.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .errors import TokenError

PURPOSES = {"confirm": b"c", "unsubscribe": b"u", "preferences": b"p"}
_BY_CODE = {v: k for k, v in PURPOSES.items()}
CONFIRM_MAX_AGE = timedelta(days=7)
_PAYLOAD = struct.Struct(">cQQQ")  # purpose, subscriber id, list id, issued (unix seconds)
_SIG_BYTES = 16


@dataclass(frozen=True)
class Token:
    purpose: str
    subscriber_id: int
    list_id: int
    issued_at: datetime


class TokenExpired(TokenError):
    """A genuine token past its age limit: ``token`` says whose it was (a confirmation page
    can offer to send a new link)."""

    def __init__(self, message: str, token: Token):
        super().__init__(message)
        self.token = token


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, b"digest-token-v1:" + payload, hashlib.sha256).digest()[:_SIG_BYTES]


def make_token(
    secret: bytes, purpose: str, subscriber_id: int, list_id: int, *, now: datetime
) -> str:
    """A signed token for ``purpose`` ('confirm', 'unsubscribe', 'preferences')."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    payload = _PAYLOAD.pack(PURPOSES[purpose], subscriber_id, list_id, int(now.timestamp()))
    return _b64(payload + _sign(secret, payload))


def read_token(
    secret: bytes,
    token: str,
    purpose: str,
    *,
    now: datetime,
    max_age: timedelta | None = None,
) -> Token:
    """Verify and decode ``token``. Raises ``TokenError`` if it is forged, damaged or for another
    purpose, and ``TokenExpired`` (a ``TokenError``) if it is genuine but (for confirmations, or
    when ``max_age`` is given) expired."""
    try:
        raw = _unb64(token)
    except (binascii.Error, ValueError):
        raise TokenError("this link is damaged (not a valid token)") from None
    if len(raw) != _PAYLOAD.size + _SIG_BYTES or _b64(raw) != token:
        raise TokenError("this link is damaged (not a valid token)")
    payload, sig = raw[: _PAYLOAD.size], raw[_PAYLOAD.size :]
    if not hmac.compare_digest(sig, _sign(secret, payload)):
        raise TokenError("this link is not valid (signature does not match)")
    code, subscriber_id, list_id, issued = _PAYLOAD.unpack(payload)
    if _BY_CODE.get(code) != purpose:
        raise TokenError(f"this link is not a {purpose} link")
    issued_at = datetime.fromtimestamp(issued, UTC)
    if max_age is None and purpose == "confirm":
        max_age = CONFIRM_MAX_AGE
    decoded = Token(purpose, subscriber_id, list_id, issued_at)
    if max_age is not None and now - issued_at > max_age:
        raise TokenExpired(
            f"this {purpose} link has expired (issued {issued_at:%Y-%m-%d}); ask for a new one",
            decoded,
        )
    return decoded


def form_token(secret: bytes, list_id: int) -> str:
    """The signed token of one list's embeddable subscribe form (``/embed/<list>``). It is
    pasted into other sites' pages, so it does not expire; it stops working when the secret
    changes. It proves only that the form was made here for this list: the form's POST still
    goes through rate limits, a honeypot field and double opt-in."""
    mac = hmac.new(secret, b"digest-embed-form-v1:%d" % list_id, hashlib.sha256)
    return _b64(mac.digest()[:_SIG_BYTES])


def check_form_token(secret: bytes, list_id: int, token: str | None) -> None:
    """``TokenError`` unless ``token`` is the form token of list ``list_id``."""
    expected = form_token(secret, list_id).encode("ascii")
    given = (token or "").encode("utf-8", "replace")
    if not hmac.compare_digest(expected, given):
        raise TokenError(
            "this subscribe form is not valid for this list (it was changed, or made for another"
            " list or site); use the form on the list's own page"
        )


def load_secret(db_path: str | Path, env: dict[str, str] | None = None) -> bytes:
    """The signing secret: ``DIGEST_SECRET`` if set, else ``<db>.secret`` (created once, 0600)."""
    environ: Mapping[str, str] = os.environ if env is None else env
    if environ.get("DIGEST_SECRET"):
        return environ["DIGEST_SECRET"].encode("utf-8")
    path = Path(str(db_path) + ".secret")
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    value = secrets.token_urlsafe(32).encode("ascii")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as f:
        f.write(value)
    return value
