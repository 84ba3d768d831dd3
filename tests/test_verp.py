"""VERP return paths and the Message-ID / List-Unsubscribe fallbacks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from digest.errors import InvalidInput
from digest.links import unsubscribe_url
from digest.tokens import make_token as make_link_token
from digest.verp import (
    bounce_address,
    make_token,
    read_bounce_address,
    read_list_unsubscribe,
    read_message_id,
    read_verp_token,
)

SECRET = b"test-secret"
NOW = datetime(2025, 1, 21, 7, 0, tzinfo=UTC)


@pytest.mark.parametrize("delivery_id", [0, 1, 255, 256, 12345, 10**9, 2**63 - 1])
def test_round_trip(delivery_id: int) -> None:
    address = bounce_address("bounces@news.example.org", delivery_id, SECRET)
    local, domain = address.split("@")
    assert domain == "news.example.org"
    assert local.startswith("bounces+")
    token = local.removeprefix("bounces+")
    assert token == token.lower() and token.isalnum()  # survives a lowercasing MTA
    assert len(local) <= 64
    assert read_bounce_address(address, SECRET) == delivery_id


def test_case_insensitive_and_wrapped_forms() -> None:
    address = bounce_address("Bounces@News.Example.org", 4242, SECRET)
    assert read_bounce_address(address.upper(), SECRET) == 4242
    assert read_bounce_address(f"<{address}>", SECRET) == 4242
    assert read_bounce_address(f'"Mail System" <{address}>', SECRET) == 4242
    assert read_bounce_address(address, SECRET, base="bounces@news.example.org") == 4242
    assert read_bounce_address(address, SECRET, base="other@news.example.org") is None


def test_short_token() -> None:
    assert len(make_token(12345, SECRET)) <= 20


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("a" if t[-1] != "a" else "b"),  # one character changed
        lambda t: t[:-1],  # truncated
        lambda t: t + "a",  # extended
        lambda t: "aa" + t,  # a leading zero byte / different id
        lambda t: t.replace(t[0], "!", 1),  # not base32
        lambda t: "",
    ],
)
def test_forged_or_damaged_tokens_read_as_none(mangle) -> None:  # type: ignore[no-untyped-def]
    token = make_token(777, SECRET)
    assert read_verp_token(mangle(token), SECRET) is None


def test_other_secret_and_non_verp_addresses() -> None:
    address = bounce_address("bounces@news.example.org", 9, SECRET)
    assert read_bounce_address(address, b"other") is None
    assert read_bounce_address("bounces@news.example.org", SECRET) is None
    assert read_bounce_address("alice+news@example.com", SECRET) is None
    assert read_bounce_address("", SECRET) is None
    assert read_bounce_address("<>", SECRET) is None
    assert read_bounce_address("x" * 5000, SECRET) is None


def test_delimiter_and_base_with_plus() -> None:
    address = bounce_address("news+bounces@example.org", 5, SECRET)
    assert address.startswith("news+bounces+")
    assert read_bounce_address(address, SECRET) == 5
    dashed = bounce_address("bounces@example.org", 5, SECRET, delimiter="-")
    assert read_bounce_address(dashed, SECRET, delimiter="-") == 5


@pytest.mark.parametrize(
    "base",
    [
        "bounces",
        "@example.org",
        "bounces@",
        "Bounce Box <b@x> extra",
        "a b@example.org",
        "x" * 60 + "@e.org",
    ],
)
def test_unusable_base_is_a_user_error(base: str) -> None:
    with pytest.raises(InvalidInput, match="bounce address"):
        bounce_address(base, 1, SECRET)


def test_message_id() -> None:
    found = read_message_id("<world-news.weekly.2025-01-20.42@News.Example.org>")
    assert found is not None
    assert (found.list_slug, found.frequency, found.period_label, found.subscriber_id) == (
        "world-news",
        "weekly",
        "2025-01-20",
        42,
    )
    assert found.domain == "news.example.org"
    for other in [
        None,
        "",
        "<confirm.0123456789abcdef01234567@news.example.org>",
        "<world-news.daily.2025-02-30.42@news.example.org>",  # no such date
        "<world-news.hourly.2025-01-20.42@news.example.org>",
        "<world-news.daily.2025-01-20.x42@news.example.org>",
        "<world-news.daily.2025-01-20.42>",
        "<CAF=pat-1234@mail.example.com>",
    ]:
        assert read_message_id(other) is None, other


def test_list_unsubscribe() -> None:
    token = make_link_token(SECRET, "unsubscribe", 17, 3, now=NOW)
    url = unsubscribe_url("https://news.example.org/digest", token)
    header = f"<{url}>, <mailto:unsubscribe@news.example.org?subject=unsubscribe>"
    found = read_list_unsubscribe(header, SECRET, now=NOW)
    assert found is not None and (found.subscriber_id, found.list_id) == (17, 3)
    assert read_list_unsubscribe(url, SECRET, now=NOW) == found  # a bare URL too
    assert read_list_unsubscribe(header, b"other", now=NOW) is None
    prefs = make_link_token(SECRET, "preferences", 17, 3, now=NOW)
    assert read_list_unsubscribe(f"<https://x.example/u/{prefs}>", SECRET, now=NOW) is None
    assert read_list_unsubscribe("<mailto:u@x.example>", SECRET, now=NOW) is None
    assert read_list_unsubscribe(None, SECRET, now=NOW) is None
    assert read_list_unsubscribe("<https://x.example/u/\udcff>", SECRET, now=NOW) is None


def test_message_ids_with_the_instance_part_are_read():
    found = read_message_id("<world-news.daily.2025-01-20.42.5a59f66230@news.example.org>")
    assert found is not None and found.subscriber_id == 42 and found.list_slug == "world-news"
