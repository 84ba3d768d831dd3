"""Time helpers. Every stored instant is a UTC ISO 8601 string of fixed width
(``2025-01-21T07:00:00.000000+00:00``) so that string order is time order in SQL.

Only the CLI edge reads the clock (``utc_now``); library functions take ``now`` as a parameter.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def to_iso(dt: datetime) -> str:
    """Fixed-width UTC ISO 8601; naive datetimes are taken to be UTC."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat(timespec="microseconds")


def from_iso(value: str) -> datetime:
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)
