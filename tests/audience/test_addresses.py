"""Address normalisation: the fast path for plain ASCII addresses must give exactly what
email-validator gives, and must hand everything else to email-validator."""

from __future__ import annotations

import random

import pytest
from email_validator import EmailNotValidError, validate_email

from digest.addresses import fast_normalise, normalise_email
from digest.errors import InvalidInput

ATEXT = "abcxyzABCXYZ0189_!#$%&'*+-/=?^`{|}~"
AWKWARD = ATEXT + '.@"<> ()[]\\,;:é\u00a0\t-'
DOMAINS = [
    "example.com", "EXAMPLE.ORG", "mail.example.net", "x.io", "a-b.example.co.uk",
    "xn--bcher-kva.example", "a--b.example.com", "example.local", "host.localhost",
    "site.onion", "x.test", "x.invalid", "in-addr.arpa", "example", "example.c0m", "example.123",
    "-bad.example.com", "bad-.example.com", "a..b.com", "b\u00fccher.example", "EXAMPLE.COM.",
    "[127.0.0.1]", "x" * 64 + ".com", "x" * 63 + ".com", ".".join(["abcdefghij"] * 25) + ".com",
    "ex_ample.com", "1.2.3.4", "e.x", "sub.EXAMPLE.Com",
]  # fmt: skip
ROLES = ["info", "INFO", "Sales", "postmaster", "Webmaster", "news", "nEws", "newsy"]


def _candidates(n: int):
    rng = random.Random(20250121)
    for role in ROLES:
        for domain in DOMAINS:
            yield f"{role}@{domain}"
    for _ in range(n):
        pool = ATEXT if rng.random() < 0.7 else AWKWARD
        local = "".join(rng.choice(pool) for _ in range(rng.choice([1, 2, 5, 12, 70])))
        if rng.random() < 0.2:
            local = ".".join([local[: len(local) // 2], local[len(local) // 2 :]])
        yield f"{local}@{rng.choice(DOMAINS)}"
    yield "a" * 250 + "@example.com"
    yield "a" * 240 + "@example.com"


def test_fast_path_equals_email_validator_wherever_it_answers():
    answered = valid = 0
    for address in _candidates(20_000):
        fast = fast_normalise(address)
        try:
            expected = validate_email(address, check_deliverability=False).normalized
            valid += 1
        except EmailNotValidError:
            expected = None
        if fast is not None:
            answered += 1
            assert fast == expected, address
    # The fast path must actually carry the common case, or it is pointless.
    # (The valid ones it declines are mostly the Punycode, "--" and non-ASCII domains above.)
    assert answered > valid * 0.6, (answered, valid)


def test_plain_addresses_take_the_fast_path():
    for address in ["ann@example.com", "Ann.Lee+news@Mail.Example.ORG", "x_1@a-b.example.co.uk"]:
        assert fast_normalise(address) is not None


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("Ann@Example.COM", "Ann@example.com"),
        ("  ann@example.com ", "ann@example.com"),
        ("Info@Example.com", "info@example.com"),  # RFC 2142 role mailbox
        # Internationalised domains are kept in IDNA form, which every relay can deliver to;
        # a non-ASCII local part stays (it needs a relay that offers SMTPUTF8).
        ("zoë@bücher.example", "zoë@xn--bcher-kva.example"),
        ("ann@xn--bcher-kva.example", "ann@xn--bcher-kva.example"),
        ("ann@BÜCHER.example", "ann@xn--bcher-kva.example"),
    ],
)
def test_normalise_email(address, expected):
    assert normalise_email(address) == expected


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("", "empty address"),
        ("ann", "must have an @-sign"),
        ("ann@mail.localhost", "special-use or reserved name"),
        ("ann@example", "should have a period"),
        ("Ann <ann@example.com>", "display name"),
        ("ann@exa mple.com", "invalid characters"),
        ("ann@example.com\r\nBcc: x@example.com", "control character"),
    ],
)
def test_invalid_addresses_say_why(address, reason):
    with pytest.raises(InvalidInput, match=reason):
        normalise_email(address)
