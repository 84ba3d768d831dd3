"""The shared date parser: the forms real sources carry, junk rejected instead of misread, never an
exception (fuzzed), feedparser's struct_times converted safely, future dates clamped, and
agreement with feedparser on every date in the corpus feeds."""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import feedparser
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.ingest.dates import (
    EARLIEST,
    LATEST,
    clamp_future,
    from_struct_time,
    parse_date,
    resolve_published,
)

FEEDS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "feeds"
NOW = datetime(2025, 1, 24, 12, 0, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # ISO 8601 / RFC 3339 / W3DTF
        ("2025-01-21T07:00:00Z", utc(2025, 1, 21, 7)),
        ("2025-01-21T09:00:00+02:00", utc(2025, 1, 21, 7)),
        ("2021-11-01T10:52:50+0100", utc(2021, 11, 1, 9, 52, 50)),
        ("2019-01-03T07:00:02.000Z", utc(2019, 1, 3, 7, 0, 2)),
        ("2017-11-03 03:01:00.000000", utc(2017, 11, 3, 3, 1)),
        ("20250121T080000Z", utc(2025, 1, 21, 8)),
        ("2025-01-21", utc(2025, 1, 21)),
        ("2025-01", utc(2025, 1, 1)),
        ("2025", utc(2025, 1, 1)),
        ("2025-01-21 07:00:00 -05:00", utc(2025, 1, 21, 12)),  # MSSQL style, space before zone
        ("2025-01-21T07:00:00.5 +0100", utc(2025, 1, 21, 6, 0, 0, 500000)),
        ("2025-001-21T07:00:00Z", utc(2025, 1, 21, 7)),  # zero-padded month seen in Google feeds
        # RFC 822 / 2822 and their deviations
        ("Tue, 21 Jan 2025 07:00:00 GMT", utc(2025, 1, 21, 7)),
        ("Tue, 21 Jan 2025 07:00:00 +0000", utc(2025, 1, 21, 7)),
        ("Tue, 21 Jan 2025", utc(2025, 1, 21)),
        ("Tue, 21 Jan 25 07:00 GMT", utc(2025, 1, 21, 7)),  # two-digit year
        ("Thu, 21 Jan 99 07:00 GMT", utc(1999, 1, 21, 7)),
        ("Tue,  7 Jan 2025 07:00:00 GMT", utc(2025, 1, 7, 7)),
        ("Tue, 21 January 2025 07:00:00 GMT", utc(2025, 1, 21, 7)),
        ("Tue, 21 Jan, 2025 07:00:00 UTC", utc(2025, 1, 21, 7)),
        ("Tue Jan 21 2025 08:00:00 +0100", utc(2025, 1, 21, 7)),  # day and month swapped
        ("Tue, 21 Jan 2025 07:00:00 Etc/GMT", utc(2025, 1, 21, 7)),
        ("Tue, 21 Jan 2025 08:30:00 GMT+01:30", utc(2025, 1, 21, 7)),
        ("Tue, 21 Jan 2025 08:30:00 UTC +01:30", utc(2025, 1, 21, 7)),
        ("Tue Jan 21 07:00:00 2025", utc(2025, 1, 21, 7)),  # asctime
        ("Tue Jan 21 07:00:00 +0000 2025", utc(2025, 1, 21, 7)),  # Twitter's asctime
        ("Tue Jan 21 2025 08:00:00 GMT+0100 (Central European Standard Time)", utc(2025, 1, 21, 7)),
        ("Tue, 2025/01/21 02:00:00 EST", utc(2025, 1, 21, 7)),  # Perforce
        # named zones as feedparser reads them, and common ones it leaves out
        ("Tue, 21 Jan 2025 02:00:00 EST", utc(2025, 1, 21, 7)),
        ("Tue, 21 Jan 2025 03:00:00 EDT", utc(2025, 1, 21, 7)),
        ("Tue, 21 Jan 2025 08:00:00 MET", utc(2025, 1, 21, 7)),
        ("Tue, 21 Jan 2025 09:00:00 MEST", utc(2025, 1, 21, 7)),
        ("Tue, 21 Jan 2025 08:00:00 CET", utc(2025, 1, 21, 7)),
        ("Tue, 21 Jan 2025 09:00:00 CEST", utc(2025, 1, 21, 7)),
        ("Mon, 20 Jan 2025 23:00:00 PT", utc(2025, 1, 21, 7)),
        ("Mon, 20 Jan 2025 23:00:00 PST", utc(2025, 1, 21, 7)),
        ("Tue, 21 Jan 2025 01:00:00 CT", utc(2025, 1, 21, 7)),
        ("Tue, 21 Jan 2025 16:00:00 JST", utc(2025, 1, 21, 7)),
        ("Tue, 21 Jan 2025 07:00:00 XST", utc(2025, 1, 21, 7)),  # unknown: UTC, as feedparser
        ("2025-01-21 08:00 Europe/Paris", utc(2025, 1, 21, 7)),
        # prose, weekday-prefixed or not
        ("Tuesday, January 21, 2025", utc(2025, 1, 21)),
        ("January 21, 2025", utc(2025, 1, 21)),
        ("Jan. 21, 2025", utc(2025, 1, 21)),
        ("Sept 21 2025", utc(2025, 9, 21)),
        ("21 January 2025", utc(2025, 1, 21)),
        ("21\u00a0January\u00a02025", utc(2025, 1, 21)),
        ("Tuesday 21st January 2025", utc(2025, 1, 21)),
        ("January 21st, 2025 at 8:30 PM", utc(2025, 1, 21, 20, 30)),
        ("January 21, 2025 8:30 pm EST", utc(2025, 1, 22, 1, 30)),
        ("Jan 21, 2025 12:05am", utc(2025, 1, 21, 0, 5)),
        ("21-Jan-2025", utc(2025, 1, 21)),
        ("21.01.2025 08:00", utc(2025, 1, 21, 8)),
        ("2025/01/21 07:00", utc(2025, 1, 21, 7)),
        ("1/21/2025", utc(2025, 1, 21)),
        ("21/1/2025", utc(2025, 1, 21)),
        ("2025年1月21日", utc(2025, 1, 21)),
        ("2025年1月21日 07:00", utc(2025, 1, 21, 7)),
        # feedparser's localised readers
        ("2025\ub144 01\uc6d4 21\uc77c 16:00:00", utc(2025, 1, 21, 7)),  # Korean, KST
        ("\u03a4\u03c1\u03b9, 21 \u0399\u03b1\u03bd 2025 07:00:00 GMT", utc(2025, 1, 21, 7)),
        ("2025-janu\u00e1r-21T07:00+00:00", utc(2025, 1, 21, 7)),  # Hungarian
        # timestamps and objects
        (1737442800, utc(2025, 1, 21, 7)),
        (1737442800.5, utc(2025, 1, 21, 7, 0, 0, 500000)),
        (1737442800000, utc(2025, 1, 21, 7)),  # JavaScript milliseconds
        ("1737442800", utc(2025, 1, 21, 7)),
        (datetime(2025, 1, 21, 8, tzinfo=timezone(timedelta(hours=1))), utc(2025, 1, 21, 7)),
        (datetime(2025, 1, 21, 7), utc(2025, 1, 21, 7)),  # naive: UTC
        (date(2025, 1, 21), utc(2025, 1, 21)),
        (time.struct_time((2025, 1, 21, 7, 0, 0, 1, 21, 0)), utc(2025, 1, 21, 7)),
    ],
)
def test_reads(value: object, expected: datetime) -> None:
    got = parse_date(value)
    assert got == expected
    assert got is not None and got.tzinfo is UTC


@pytest.mark.parametrize(
    "value",
    [
        # junk feedparser's lenient ISO 8601 reader misreads (as 2013-12-01, 2026-01-01, ...)
        "2013-xx-27",
        "2025-13-45",
        "2025-01-21 junk",
        "2025-01-21 08:00 junk",
        "2013-01-28T11:30:00-06:00Textra",
        "12",
        "031231",
        "-0312",
        # impossible or unrepresentable values
        "0000-00-00T00:00:00Z",
        "0000-00-00 00:00:00",
        "9999-12-31T23:59:59-99:99",
        "Fri, 31 Dec 9999 23:59:59 -0100",
        "Sun, 31 Dec 9999 23:59:59 -9999",
        "2025-01-21T25:00:00Z",
        "2025-01-21T10:61:00Z",
        "Sun, 99 Jun 2009 12:00:00 GMT",
        "Sun, 16 Dec 2012 1:2:3:4 GMT",
        "Sun, 16 zzz 2012 11:47:32 GMT",
        "Sun, 16 Dec 2012 11:47:32 +zz:00",
        "Thu, 01 Jan 0100 00:00:01 +0100",  # year 99 after the shift: no article is that old
        "1970-01-01T00:00:00Z",  # a zero timestamp, rendered
        "Wed, 31 Dec 1969 19:00:00 EST",
        0,
        -1,
        10**20,
        float("nan"),
        float("inf"),
        # not dates, or not whole dates
        "",
        "   ",
        "not a date",
        "tomorrow",
        "January 2025",
        "1/2/2025",  # US or European order? rejected rather than read wrong half the time
        "Posted on January 21, 2025 by Jane",
        "21 janvier 2025",
        "x" * 10_000,
        True,
        None,
        [2025, 1, 21],
        {"date": "2025-01-21"},
        b"2025-01-21",
        time.struct_time((10000, 1, 1, 0, 0, 0, 0, 1, 0)),
    ],
)
def test_rejects(value: object) -> None:
    assert parse_date(value) is None


def test_the_accepted_range_is_documented() -> None:
    assert parse_date(EARLIEST) == EARLIEST
    assert parse_date(EARLIEST - timedelta(seconds=1)) is None
    assert parse_date(LATEST) == LATEST
    assert parse_date("9999-12-31T00:00:00Z") is None


# --------------------------------------------------------------------------- never raises

_DATE_ALPHABET = st.sampled_from(
    list("0123456789-+:/., TZtz()年月日")
    + ["Jan", "January", "Tue", "Tuesday", "GMT", "EST", "CEST", "Etc/", "am", "PM", "\u00a0"]
    + [
        "9999",
        "0000",
        "99:99",
        "2025",
        "Europe/Paris",
        "\x00",
        "\ud800",
        "年",
        "\u0399\u03b1\u03bd",
    ]
)


@settings(max_examples=3000, deadline=None)
@given(st.lists(_DATE_ALPHABET, max_size=14).map("".join))
def test_fuzz_date_like_strings_never_raise(text: str) -> None:
    got = parse_date(text)
    assert got is None or (got.tzinfo is UTC and EARLIEST <= got <= LATEST)


@settings(max_examples=1500, deadline=None)
@given(
    st.one_of(
        st.text(max_size=60),
        st.integers(),
        st.floats(),
        st.datetimes(timezones=st.none() | st.timezones()),
        st.dates(),
        st.binary(max_size=20),
    )
)
def test_fuzz_any_value_never_raises(value: object) -> None:
    got = parse_date(value)
    assert got is None or (got.tzinfo is UTC and EARLIEST <= got <= LATEST)


@settings(max_examples=1500, deadline=None)
@given(st.tuples(*[st.integers(-(10**6), 10**6)] * 9))
def test_fuzz_struct_times_never_raise(values: tuple[int, ...]) -> None:
    got = from_struct_time(values)
    assert got is None or EARLIEST <= got <= LATEST


# --------------------------------------------------------------------------- struct_time


def test_from_struct_time() -> None:
    assert from_struct_time(time.gmtime(1737442800)) == utc(2025, 1, 21, 7)
    assert from_struct_time((2016, 12, 31, 23, 59, 60, 5, 366, 0)) == utc(2016, 12, 31, 23, 59, 59)
    # feedparser's own output for junk a feed wrote: year -1 (from 0000-00-00), year 10000
    assert from_struct_time(feedparser.datetimes._parse_date("0000-00-00T00:00:00Z")) is None
    assert from_struct_time(feedparser.datetimes._parse_date("9999-12-31T23:59:59-99:99")) is None
    assert from_struct_time(None) is None
    assert from_struct_time((2025, 1)) is None
    assert from_struct_time("2025-01-21") is None


def test_feed_entries_with_junk_dates_do_not_break_conversion() -> None:
    feed = feedparser.parse(
        "<rss version='2.0'><channel><item><title>a</title>"
        "<pubDate>0000-00-00T00:00:00Z</pubDate></item><item><title>b</title>"
        "<pubDate>9999-12-31T23:59:59-99:99</pubDate></item><item><title>c</title>"
        "<pubDate>2013-xx-27</pubDate></item></channel></rss>"
    )
    for entry in feed.entries:
        assert from_struct_time(entry.get("published_parsed")) is None or entry.title == "c"
        assert parse_date(entry.get("published")) is None  # the raw text is rejected whole


# --------------------------------------------------------------------------- future, warnings


def test_clamp_future() -> None:
    assert clamp_future(utc(2025, 1, 25, 11), NOW) == (utc(2025, 1, 25, 11), None)
    clamped, warning = clamp_future(utc(2031, 1, 1), NOW)
    assert clamped == NOW
    assert warning == "dated 2031-01-01 00:00 UTC, in the future; the ingest time is used instead"
    assert clamp_future(utc(2025, 1, 24, 13), NOW, timedelta(0))[0] == NOW


def test_resolve_published() -> None:
    assert resolve_published("2025-01-21", NOW) == (utc(2025, 1, 21), None)
    assert resolve_published(None, NOW) == (NOW, None)
    assert resolve_published("  ", NOW) == (NOW, None)
    assert resolve_published("2013-xx-27", NOW) == (
        NOW,
        "cannot read the date '2013-xx-27'; the ingest time is used instead",
    )
    assert resolve_published("2099-01-01", NOW)[1] is not None


# --------------------------------------------------------------------------- corpus


def _corpus_dates() -> list[tuple[str, object]]:
    """Every date feedparser read in the corpus feeds: (the raw text, feedparser's struct)."""
    pairs: list[tuple[str, object]] = []

    def walk(obj: object) -> None:
        if isinstance(obj, dict):
            for key, value in obj.items():
                raw = obj.get(key[: -len("_parsed")]) if key.endswith("_parsed") else None
                if isinstance(raw, str):
                    pairs.append((raw, value))
                walk(value)
        elif isinstance(obj, list):
            for value in obj:
                walk(value)

    for path in sorted(FEEDS.rglob("*")):
        if path.is_file() and path.suffix not in (".config", ".expected"):
            walk(feedparser.parse(path.read_bytes()))
    return pairs


@pytest.mark.skipif(not FEEDS.is_dir(), reason="../shared/corpus/feeds is absent")
def test_every_corpus_feed_date_agrees_with_feedparser() -> None:
    pairs = _corpus_dates()
    assert len(pairs) > 250
    differ = []
    for raw, parsed in pairs:
        ours = parse_date(raw)
        # feedparser keeps whole seconds
        if (ours and ours.replace(microsecond=0)) != from_struct_time(parsed):
            differ.append((raw, ours, parsed))
    assert differ == []


_EXPECT = re.compile(
    r"(feed|entries\[0\])\['(\w+)_parsed'\] == \((\d+), (\d+), (\d+), (\d+), (\d+), (\d+)"
)


@pytest.mark.skipif(not FEEDS.is_dir(), reason="../shared/corpus/feeds is absent")
def test_corpus_expect_lines_for_parsed_dates() -> None:
    """The feedparser test files whose ``Expect:`` line states a ``*_parsed`` value: the raw
    text of that element read by ``parse_date`` gives the same instant."""
    checked = 0
    for path in sorted(FEEDS.rglob("*.xml")):
        head = path.read_text(errors="replace")[:600]
        for where, field, *numbers in _EXPECT.findall(head):
            d = feedparser.parse(path.read_bytes())
            holder = d.feed if where == "feed" else d.entries[0]
            expected = utc(*(int(n) for n in numbers))
            assert parse_date(holder[field]) == expected, path.name
            checked += 1
    assert checked >= 25
