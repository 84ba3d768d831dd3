"""Email addresses: the one way an address is checked and normalised, wherever it comes from
(CLI, CSV file, web form, list settings), the identity that says which addresses are one
mailbox (``identity_key``), and how a From header is read.

Normalising follows email-validator's syntax rules without DNS look-ups; plain ASCII addresses
take a fast path proven equivalent (tests/audience/test_addresses.py).
"""

from __future__ import annotations

import email.utils
import re
from email.headerregistry import Address

from email_validator import EmailNotValidError, validate_email

from .errors import InvalidInput
from .text import CONTROL, check_single_line


def has_control(text: str) -> bool:
    return CONTROL.search(text) is not None


_NAME_ADDR = re.compile(r"(.*?)<([^<>]*)>\Z")

# A strict fast path for plain ASCII addresses. email-validator is thorough but slow (it
# NFC-normalises a window at every character while splitting); for an address matching these
# patterns its result is provably ``local@domain.lower()`` (with RFC 2142 role names
# lower-cased): the local part is a plain dot-atom, the domain is LDH labels ending in a letter
# with no '--' (so no Punycode or R-LDH label), within the length limits and not special-use.
# Anything else goes through email-validator. tests/audience/test_addresses.py checks the
# equivalence over many generated addresses.
_ATEXT = r"A-Za-z0-9_!#$%&'*+\-/=?^`{|}~"
_FAST_LOCAL = re.compile(rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*")
_FAST_DOMAIN = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"(?:[A-Za-z]|[A-Za-z0-9][A-Za-z0-9-]{0,61}[A-Za-z])"
)
_SPECIAL_USE = frozenset(["arpa", "invalid", "local", "localhost", "onion", "test"])
_ROLE_NAMES = frozenset(
    [
        "info",
        "marketing",
        "sales",
        "support",
        "abuse",
        "noc",
        "security",
        "postmaster",
        "hostmaster",
        "usenet",
        "news",
        "webmaster",
        "www",
        "uucp",
        "ftp",
    ]
)


# Domain as written -> normalised domain, or None if not in the fast subset. A large import has
# far fewer domains than addresses, so most addresses only need their local part checked.
_FAST_DOMAINS: dict[str, str | None] = {}


def _fast_domain(domain: str) -> str | None:
    if _FAST_DOMAIN.fullmatch(domain) is None:
        return None
    domain = domain.lower()
    if len(domain) > 253 or "--" in domain:
        return None
    # Every special-use name is a single label, so "is it or ends with .it" is the last label.
    if domain[domain.rfind(".") + 1 :] in _SPECIAL_USE:
        return None
    return domain


def fast_normalise(text: str) -> str | None:
    """``local@domain`` normalised exactly as email-validator would, or None when the address
    is not in the plain-ASCII subset this handles (the caller then asks email-validator)."""
    if len(text) > 254:
        return None
    # The local part's characters exclude '@', so an address with two is refused either way.
    local, at, raw_domain = text.rpartition("@")
    if not at:
        return None
    try:
        domain = _FAST_DOMAINS[raw_domain]
    except KeyError:
        if len(_FAST_DOMAINS) > 100_000:
            _FAST_DOMAINS.clear()
        domain = _FAST_DOMAINS[raw_domain] = _fast_domain(raw_domain)
    if domain is None or _FAST_LOCAL.fullmatch(local) is None:
        return None
    if local.lower() in _ROLE_NAMES:
        local = local.lower()
    return local + "@" + domain


def normalise_email(text: str) -> str:
    """The normalised form of an address (email-validator syntax rules, no DNS look-ups; the
    domain lower-cased, and an internationalised domain in its IDNA form, ``xn--...``, which
    every relay can deliver to). A non-ASCII local part is kept (NFC): such an address is sent
    only through a relay that offers SMTPUTF8, and the delivery fails with that reason
    elsewhere. Raises ``InvalidInput`` saying what is wrong."""
    text = text.strip(" ")
    fast = fast_normalise(text)
    if fast is not None:
        return fast
    if not text:
        raise InvalidInput("empty address")
    if has_control(text):
        raise InvalidInput(f"invalid address {text!r}: it contains a control character")
    try:
        valid = validate_email(text, check_deliverability=False)
    except EmailNotValidError as e:
        raise InvalidInput(f"invalid address {text!r}: {e}") from None
    return f"{valid.local_part}@{valid.ascii_domain}"


def identity_key(address: str) -> str:
    """Which mailbox a normalised address is: the whole address lower-cased. ``Ann@Example.com``
    and ``ann@example.com`` are one person everywhere (subscribers, suppressions, history,
    look-ups), while the address as first entered is kept for display and sending. Mail
    systems treat the local part case-insensitively in practice, although RFC 5321 allows
    otherwise, and two spellings of one address must never be two subscriptions, one of which
    keeps mailing someone who unsubscribed with the other."""
    return address.lower()


def folded_identity(address: str) -> str | None:
    """What the store keeps beside an address so that SQL computes its identity: nothing for
    an ASCII address (SQLite's ``lower()`` folds it exactly as ``identity_key``), the identity
    itself for one with other characters (``lower()`` folds ASCII letters only). The
    ``identity`` columns of subscribers and status_events are ``coalesce(folded,
    lower(email))``."""
    return None if address.isascii() else identity_key(address)


def normalised_identity(text: str) -> tuple[str, str]:
    """``(normalised address, identity)`` of an address as typed; ``InvalidInput`` if bad."""
    address = normalise_email(text)
    return address, identity_key(address)


def needs_smtputf8(address: str) -> bool:
    """Whether an address can only be sent to with SMTPUTF8 (RFC 6531): a non-ASCII local part."""
    return not address.isascii()


def check_address_header(value: str, field: str) -> str:
    """A 'Name <addr@domain>' or bare address, with the address validated; returns the
    display form with the name quoted where RFC 5322 needs it."""
    check_single_line(value, field)
    m = _NAME_ADDR.match(value.strip())
    if m:
        name, addr = m.group(1).strip(), m.group(2).strip()
        if len(name) >= 2 and name[0] == name[-1] == '"':
            name = name[1:-1].replace('\\"', '"').strip()
    else:
        name, addr = "", value.strip()
    if not addr or "@" not in addr or "<" in addr or ">" in addr:
        raise InvalidInput(
            f"{field} {value!r} is not an address (expected e.g. 'News <news@example.com>')"
        )
    try:
        addr = normalise_email(addr)
    except InvalidInput as e:
        raise InvalidInput(f"{field}: {e}") from None
    if not name:
        return addr
    local, _, domain = addr.rpartition("@")
    return str(Address(display_name=name.strip(), username=local, domain=domain))


def sender_domain(from_addr: str) -> str:
    """The domain of a From address (for Message-IDs and List-Id)."""
    return email.utils.parseaddr(from_addr)[1].rpartition("@")[2].lower() or "localhost"


def address_of(from_addr: str) -> str:
    """The bare address of a 'Name <addr>' header value."""
    return email.utils.parseaddr(from_addr)[1]
