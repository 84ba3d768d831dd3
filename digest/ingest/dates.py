"""Reading dates as sources write them, and the bounds users give (``--since 7d``)."""

from __future__ import annotations

import re
from calendar import timegm
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime

from feedparser.datetimes import _parse_date as feedparser_parse_date

from ..errors import InvalidInput

_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y/%m/%d",
    "%d %B %Y",
    "%d %b %Y",
    "%B %d, %Y",
    "%b %d, %Y",
    "%B %d %Y",
    "%d.%m.%Y",
    "%d.%m.%Y %H:%M",
)


def parse_date(value: object) -> datetime | None:
    """A tz-aware UTC datetime from whatever a source gave, or None if nothing usable.

    Accepts datetimes/dates (YAML front matter), Unix timestamps, ISO 8601, RFC 2822, and the
    formats feedparser knows (W3DTF, asctime, several locales) plus a few common written forms.
    A value without a timezone is taken to be UTC."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        return _utc(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    try:
        # Python 3.11 reads ISO 8601 with "Z" itself; most JSON sources write this form.
        return _utc(datetime.fromisoformat(text))
    except ValueError:
        pass
    if "z" in text:
        try:
            return _utc(datetime.fromisoformat(text.replace("z", "+00:00")))
        except ValueError:
            pass
    try:
        return _utc(parsedate_to_datetime(text))
    except (TypeError, ValueError, IndexError):
        pass
    for fmt in _FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    try:
        parsed = feedparser_parse_date(text)
    except Exception:  # feedparser's locale handlers raise assorted errors on junk
        parsed = None
    if parsed:
        return datetime.fromtimestamp(timegm(parsed), UTC)
    return None


def _utc(dt: datetime) -> datetime:
    tz = dt.tzinfo
    if tz is UTC:
        return dt
    if tz is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


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
