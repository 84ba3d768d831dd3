"""The one date parser every source shares. ``parse_date`` turns whatever a feed, a JSON object,
YAML front matter, a web page or a scraped text gave as a date into a tz-aware UTC ``datetime``,
or None when there is nothing usable; it never raises. It reads ISO 8601 / RFC 3339, W3DTF
(``2003``, ``2003-12``), RFC 822/2822 and their common deviations (long month names, swapped day
and month, two-digit years, named zones), asctime, Unix timestamps, ``datetime``/``date`` values,
weekday-prefixed prose (``Tuesday, January 21, 2025 at 8:30 PM``), CJK dates (``2025年1月21日``) and
feedparser's localised forms (Greek, Hungarian, Korean).

It rejects what it cannot read *whole* rather than guess: ``2013-xx-27``, ``2025-13-45``,
``2025-01-21 junk`` and ambiguous ``01/02/2025`` give None, where feedparser's lenient ISO 8601
reader answers 2013-12-01, 2026-01-01 and 2025-01-21. Values outside ``EARLIEST``..``LATEST``
(including anything not representable, such as ``Fri, 31 Dec 9999 23:59:59 -0100``) give None.

Named zones are read as feedparser reads them (``EST`` -5, ``MET`` +1, ``PT`` -8, the RFC 822
military letters with RFC 822's signs) plus common ones feedparser leaves out (``CEST`` +2,
``JST`` +9, ...); an unknown zone name after a time is read as UTC, as feedparser does. IANA names
(``Europe/Paris``) are looked up in the system's zone database.

``from_struct_time`` converts feedparser's ``*_parsed`` values safely, and ``clamp_future``
replaces a date far in the future by the ingest time, with a warning for the editor.
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

from feedparser.datetimes import (
    _parse_date_greek,
    _parse_date_hungarian,
    _parse_date_nate,
    _parse_date_onblog,
)

from ..errors import InvalidInput

# The Unix epoch itself (and the hours around it in any zone) is what a zero or missing timestamp
# renders as ("1970-01-01T00:00:00Z", "Wed, 31 Dec 1969 19:00:00 EST"): never a real publication
# date, so the accepted range starts the day after.
EARLIEST = datetime(1970, 1, 2, tzinfo=UTC)
# The largest value every consumer can still format and shift by a zone without overflowing.
LATEST = datetime(9999, 12, 30, tzinfo=UTC)
# How far past the ingest time a date may be before ``clamp_future`` treats it as wrong: zones
# mislabelled by up to 14 hours and posts scheduled for the next morning are common and harmless.
FUTURE_TOLERANCE = timedelta(days=1)

# Longer than any real date string; bounds the work done on hostile input.
_MAX_LENGTH = 200
# A Unix timestamp above this is in milliseconds (JavaScript's Date.now()); in seconds it would
# be past the year 5000.
_MILLISECONDS_ABOVE = 100_000_000_000

# Offsets in hours: feedparser's table (feedparser/datetimes/rfc822.py), so feeds read the same as
# before, including RFC 822's military single letters with RFC 822's (reversed) signs, then
# widely used abbreviations feedparser lacks. Ambiguous ones (IST: India, Ireland or Israel; BST
# before 1971 ...) are left out and read as UTC, as any unknown name is.
ZONE_OFFSETS: dict[str, float] = {
    "ut": 0, "utc": 0, "gmt": 0, "z": 0, "wet": 0,
    "adt": -3, "ast": -4, "at": -4,
    "edt": -4, "est": -5, "et": -5,
    "cdt": -5, "cst": -6, "ct": -6,
    "mdt": -6, "mst": -7, "mt": -7,
    "pdt": -7, "pst": -8, "pt": -8,
    "akdt": -8, "akst": -9, "hst": -10, "ndt": -2.5, "nst": -3.5,
    "a": -1, "n": 1, "m": -12, "y": 12,
    "met": 1, "mest": 2, "cet": 1, "cest": 2, "west": 1, "bst": 1,
    "eet": 2, "eest": 3, "msk": 3,
    "hkt": 8, "sgt": 8, "awst": 8, "jst": 9, "kst": 9,
    "acst": 9.5, "acdt": 10.5, "aest": 10, "aedt": 11, "nzst": 12, "nzdt": 13,
}  # fmt: skip

_MONTHS = {
    name: n
    for n, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        1,
    )
    for name in names
}
_WEEKDAYS = {
    "mon", "monday", "tue", "tues", "tuesday", "wed", "weds", "wednesday", "thu", "thur",
    "thurs", "thursday", "fri", "friday", "sat", "saturday", "sun", "sunday",
}  # fmt: skip
# Words that join the parts of a written date and carry no information.
_FILLERS = {"at", "on", "the", "of", "-", "|", "@", "·", "–", "—"}

_TIME = re.compile(
    r"(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?"  # 8:30, 08:30:15, 08:30:15.123
    r"(z|[+-]\d{2}(?::?\d{2})?)?"  # an offset written against the time: 08:30:15+01:00
)
_HOUR_AMPM = re.compile(r"(\d{1,2})(?::(\d{2}))?(am|pm|a\.m\.|p\.m\.)")
_AMPM = {"am": False, "a.m.": False, "pm": True, "p.m.": True}
_OFFSET = re.compile(r"(?:gmt|utc|ut)?([+-])(\d{1,2})(?::?(\d{2}))?")
_ISO_DATE = re.compile(r"(\d{4})[-/](\d{1,3})[-/](\d{1,2})")  # 2025-01-21, 2025/01/21, 2003-012-31
_DOTTED_DATE = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})")  # 21.01.2025 (day first, always)
_SLASHED_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")  # 1/21/2025 or 21/1/2025
_DASHED_DATE = re.compile(r"(\d{1,2})-([a-z]{3,9})-(\d{2}|\d{4})")  # 21-jan-2025
_ORDINAL = re.compile(r"(\d{1,2})(?:st|nd|rd|th)")
_W3DTF_MONTH = re.compile(r"(\d{4})-(\d{2})")  # W3DTF's year-month precision: 2003-12
_CJK_DATE = re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日\s*")
_PARENTHESISED = re.compile(r"\([^()]*\)")  # "(PST)", "(Central European Standard Time)"
_ISO_T = re.compile(r"^(\d{4}-\d{1,3}-\d{1,2})[tT](?=\d)")
_DIGITS = re.compile(r"-?\d{1,17}(?:\.\d+)?")

_UNICODE_HANDLERS = (_parse_date_greek, _parse_date_hungarian, _parse_date_onblog, _parse_date_nate)


def parse_date(value: object) -> datetime | None:
    """A tz-aware UTC datetime from what a source gave, or None if there is nothing usable.

    Never raises. A value without a zone is taken to be UTC. See the module docstring for the
    forms read and what is rejected."""
    try:
        return _parse(value)
    except Exception:  # noqa: BLE001 - the contract is "never raises", for any input at all
        return None


def from_struct_time(st: object) -> datetime | None:
    """feedparser's ``*_parsed`` value (a UTC ``time.struct_time`` or 9-tuple) as a UTC datetime,
    or None when it is out of range or not a date. feedparser builds these from whatever a feed
    wrote, so year 0, year 10000 and negative years do occur; ``datetime.fromtimestamp(timegm(st))``
    raises OverflowError or ValueError on them."""
    try:
        if not isinstance(st, time.struct_time | tuple) or len(st) < 6:
            return None
        year, month, day, hour, minute, second = (int(x) for x in st[:6])
        # struct_time allows a leap second (60) and, historically, 61.
        return _in_range(datetime(year, month, day, hour, minute, min(second, 59), tzinfo=UTC))
    except Exception:  # noqa: BLE001 - never raises, as parse_date
        return None


def clamp_future(
    published: datetime, now: datetime, tolerance: timedelta = FUTURE_TOLERANCE
) -> tuple[datetime, str | None]:
    """``published``, or ``now`` and a warning when ``published`` is more than ``tolerance``
    after ``now``: an entry dated in the future would sit at the top of every digest until then."""
    if published > now + tolerance:
        return now, (
            f"dated {published:%Y-%m-%d %H:%M} UTC, in the future; the ingest time is used instead"
        )
    return published, None


def resolve_published(
    value: object, now: datetime, tolerance: timedelta = FUTURE_TOLERANCE
) -> tuple[datetime, str | None]:
    """The publication date to store for a source's date ``value``, and a warning for the
    editor if any: an unreadable or out-of-range date is replaced by ``now`` (the entry is kept),
    and so is one far in the future (``clamp_future``). A missing date is ``now`` without a
    warning: most sources simply leave it out."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return now, None
    published = parse_date(value)
    if published is None:
        return now, f"cannot read the date {_shown(value)}; the ingest time is used instead"
    return clamp_future(published, now, tolerance)


# ---------------------------------------------------------------------------- internals


def _parse(value: object) -> datetime | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        return _in_range(_utc(value))
    if isinstance(value, date):
        return _in_range(datetime(value.year, value.month, value.day, tzinfo=UTC))
    if isinstance(value, int | float):
        return _from_timestamp(value)
    if isinstance(value, time.struct_time):
        return from_struct_time(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > _MAX_LENGTH:
        return None
    # The common case first: Python 3.11 reads ISO 8601 / RFC 3339 itself, "Z" included.
    try:
        return _in_range(_utc(datetime.fromisoformat(text)))
    except (ValueError, OverflowError):
        pass
    if _DIGITS.fullmatch(text):
        return _numeric(text)
    if m := _W3DTF_MONTH.fullmatch(text):
        try:
            return _in_range(datetime(int(m[1]), int(m[2]), 1, tzinfo=UTC))
        except ValueError:
            return None
    if text.isascii():
        return _written(text)
    cjk = _CJK_DATE.match(text)
    if cjk:
        try:
            day = datetime(int(cjk[1]), int(cjk[2]), int(cjk[3]), tzinfo=UTC)
        except ValueError:
            return None
        rest = text[cjk.end() :]
        return _written(rest, day) if rest else _in_range(day)
    for handler in _UNICODE_HANDLERS:
        try:
            st = handler(text)
        except Exception:  # noqa: BLE001 - feedparser's locale handlers raise assorted errors
            continue
        if st:
            return from_struct_time(st)
    # Typographic spaces and dashes from web pages ("21\u00a0January\u00a02025").
    plain = text.translate(_TYPOGRAPHIC)
    return _written(plain) if plain.isascii() else None


_TYPOGRAPHIC = str.maketrans({"\u00a0": " ", "\u202f": " ", "\u2009": " ", "\u2013": "-"})


def _numeric(text: str) -> datetime | None:
    """A string of digits: W3DTF's bare year (``2003``) or a Unix timestamp."""
    if len(text) == 4 and text.isdigit():
        return _in_range(datetime(int(text), 1, 1, tzinfo=UTC))
    number = float(text)
    if "." not in text and len(text.lstrip("-")) < 9:
        return None  # too short for a timestamp after 1973, not a year: a count, an id
    return _from_timestamp(number)


def _from_timestamp(number: float) -> datetime | None:
    if math.isnan(number) or math.isinf(number):
        return None
    if abs(number) > _MILLISECONDS_ABOVE:
        number /= 1000
    try:
        return _in_range(datetime.fromtimestamp(number, UTC))
    except (OverflowError, OSError, ValueError):
        return None


class _Parts:
    """What a written date has said so far; each part may be said once."""

    __slots__ = ("year", "month", "day", "time", "ampm", "zone", "numbers")

    def __init__(self) -> None:
        self.year: int | None = None
        self.month: int | None = None
        self.day: int | None = None
        self.time: tuple[int, int, int, int] | None = None  # hour, minute, second, microsecond
        self.ampm: bool | None = None  # True for pm
        self.zone: tzinfo | None = None
        self.numbers: list[str] = []  # bare numbers, assigned to day/year at the end


def _written(text: str, day: datetime | None = None) -> datetime | None:
    """Dates written out in words and numbers: RFC 822/2822 and their deviations, asctime,
    ``Tuesday, January 21, 2025``, ``21 Jan 2025 8:30 pm EST``, ``2025-01-21 08:00 -05:00``,
    ``21.01.2025 08:00``. Every token must be understood, or the whole value is rejected."""
    text = _PARENTHESISED.sub(" ", text).replace(",", " ")
    text = _ISO_T.sub(r"\1 ", text, count=1)
    p = _Parts()
    if day is not None:
        p.year, p.month, p.day = day.year, day.month, day.day
    written = text.split()
    tokens = [t.lower() for t in written]
    try:
        return _read_tokens(p, tokens, written)
    except _Reject:
        return None


def _read_tokens(p: _Parts, tokens: list[str], written: list[str]) -> datetime | None:
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if tok in _FILLERS:
            continue
        word = tok.rstrip(".")
        if word in _WEEKDAYS:
            continue  # feedparser ignores a wrong weekday too; the date is what counts
        if word in _MONTHS:
            if p.month is not None:
                return None
            p.month = _MONTHS[word]
            continue
        if tok.isdigit():
            if len(tok) > 4 or len(tok) == 3:
                return None
            p.numbers.append(tok)
            continue
        if _take_ordinal(p, tok) or _take_time(p, tok) or _take_numeric_date(p, tok):
            continue
        if tok in _AMPM and p.time is not None and p.ampm is None:
            p.ampm = _AMPM[tok]
            continue
        if p.time is not None and p.zone is None:
            # "GMT +01:00", "UTC +0100": a zone name then the offset as a separate token
            if tok in ("gmt", "utc", "ut") and i < len(tokens) and tokens[i][:1] in "+-":
                tok, i = tokens[i], i + 1
            zone = _zone(tok, written[i - 1])
            if zone is not None:
                p.zone = zone
                continue
        return None
    return _assemble(p)


def _take_ordinal(p: _Parts, tok: str) -> bool:
    m = _ORDINAL.fullmatch(tok)
    if not m:
        return False
    p.numbers.append(m[1])
    return True


def _take_time(p: _Parts, tok: str) -> bool:
    m = _TIME.fullmatch(tok)
    ampm = None
    if m:
        hour, minute, second = int(m[1]), int(m[2]), int(m[3] or 0)
        micro = int((m[4] or "0")[:6].ljust(6, "0"))
        offset = m[5]
    else:
        m = _HOUR_AMPM.fullmatch(tok)
        if not m:
            return False
        hour, minute, second, micro, offset = int(m[1]), int(m[2] or 0), 0, 0, None
        ampm = _AMPM[m[3]]
    if p.time is not None:
        raise _Reject
    p.time = (hour, minute, second, micro)
    p.ampm = ampm
    if offset:
        p.zone = _zone(offset)
        if p.zone is None:
            raise _Reject
    return True


def _take_numeric_date(p: _Parts, tok: str) -> bool:
    if m := _ISO_DATE.fullmatch(tok):
        year, month, day = int(m[1]), int(m[2]), int(m[3])
    elif m := _DOTTED_DATE.fullmatch(tok):
        day, month, year = int(m[1]), int(m[2]), int(m[3])
    elif m := _SLASHED_DATE.fullmatch(tok):
        first, second, year = int(m[1]), int(m[2]), int(m[3])
        # 1/21/2025 can only be US order and 21/1/2025 only the other; 1/2/2025 could be either
        # and is rejected rather than read wrong half of the time.
        if first > 12 >= second:
            day, month = first, second
        elif second > 12 >= first:
            month, day = first, second
        else:
            raise _Reject
    elif (m := _DASHED_DATE.fullmatch(tok)) and m[2] in _MONTHS:
        day, month, year = int(m[1]), _MONTHS[m[2]], _two_digit_year(m[3])
    else:
        return False
    if p.year is not None or p.month is not None:
        raise _Reject
    p.year, p.month, p.day = year, month, day
    return True


class _Reject(Exception):
    """A token contradicts what was read before it: the value is junk."""


def _zone(tok: str, written: str = "") -> tzinfo | None:
    """The zone a token names, or None. ``written`` is the token as written: an unknown name is
    taken for a zone only in capitals (``XST``), so ``2025-01-21 08:00 junk`` stays junk."""
    tok = tok.removeprefix("etc/")
    if tok in ZONE_OFFSETS:
        return timezone(timedelta(hours=ZONE_OFFSETS[tok]))
    m = _OFFSET.fullmatch(tok)
    if m:
        hours, minutes = int(m[2]), int(m[3] or 0)
        if hours > 14 or minutes > 59:
            return None
        sign = -1 if m[1] == "-" else 1
        return timezone(sign * timedelta(hours=hours, minutes=minutes))
    if "/" in tok:
        try:
            # IANA names are case-sensitive on disk: "america/new_york" -> "America/New_York"
            return ZoneInfo("/".join(part.title() for part in tok.split("/")))
        except (ValueError, OSError, KeyError):
            return None
    if tok.isalpha() and 2 <= len(tok) <= 5 and written.isupper():
        return UTC  # an unknown zone name: read as UTC, as feedparser does
    return None


def _assemble(p: _Parts) -> datetime | None:
    numbers = p.numbers
    if p.year is None:
        if p.month is None:
            return None
        years = [n for n in numbers if len(n) == 4]
        shorts = [n for n in numbers if len(n) <= 2]
        if len(years) == 1 and len(shorts) == 1:
            p.year, p.day = int(years[0]), int(shorts[0])
        elif not years and len(shorts) == 2:
            # RFC 822's two-digit year: "01 Jan 04". The year comes last.
            p.day, p.year = int(shorts[0]), _two_digit_year(shorts[1])
        else:
            return None
    elif numbers:
        return None
    if p.day is None or p.month is None:
        return None
    hour, minute, second, micro = p.time or (0, 0, 0, 0)
    if p.ampm is not None:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if p.ampm else 0)
    try:
        local = datetime(p.year, p.month, p.day, hour, minute, min(second, 59), micro)
    except ValueError:
        return None
    try:
        return _in_range(_utc(local.replace(tzinfo=p.zone or UTC)))
    except OverflowError:  # 9999-12-31 23:59 -01:00 is in the year 10000 in UTC
        return None


def _two_digit_year(text: str) -> int:
    year = int(text)
    if len(text) > 2:
        return year
    # feedparser's rule (after RFC 2822 section 4.3): 90-99 are the 1990s, 00-89 this century.
    return year + (1900 if year >= 90 else 2000)


def _utc(dt: datetime) -> datetime:
    tz = dt.tzinfo
    if tz is UTC:
        return dt
    if tz is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def _in_range(dt: datetime) -> datetime | None:
    return dt if EARLIEST <= dt <= LATEST else None


def _shown(value: object) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:59] + "…"


def parse_when(value: str, now: datetime) -> datetime:
    """A user-given bound for --since/--until: a date or date-time (see ``parse_date``), or a
    relative age like ``36h``, ``7d`` or ``2w`` before ``now``."""
    m = re.fullmatch(r"\s*(\d+)\s*([hdw])\s*", value)
    if m:
        n, unit = int(m.group(1)), m.group(2)
        return now - timedelta(hours=n * {"h": 1, "d": 24, "w": 24 * 7}[unit])
    parsed = parse_date(value)
    if parsed is None:
        raise InvalidInput(
            f"cannot read {value!r} as a date (use e.g. 2025-01-20, 2025-01-20T08:00Z or 7d)"
        )
    return parsed
