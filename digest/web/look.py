"""How the pages look beyond the one stylesheet: a list's brand (its accent colour as a tiny
stylesheet of its own, ``/brand/<list>.css``, since the CSP allows no inline styles; its logo in
the header of the list's pages) and the small inline SVG charts of the admin dashboard.

A list's brand is a checked ``audience.branding.Brand`` (hex colour with 4.5:1 contrast on
white, absolute http(s) logo URL), so nothing a brand holds can become CSS or markup structure.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from flask import Blueprint
from flask.typing import ResponseReturnValue

from ..audience.branding import Brand
from ..audience.lists import MailingList, get_list
from ..timeutil import from_iso
from .context import get_db

bp = Blueprint("look", __name__)

BRAND_CACHE = "public, max-age=300"


def list_brand(mlist: MailingList) -> Brand | None:
    """The list's brand (``lists edit --accent/--logo-url``, or the admin's list page), or None
    when it has none of its own: the pages then keep the site's colours (the emails' default
    accent is for the emails)."""
    return None if mlist.brand == Brand() else mlist.brand


def list_logo(mlist: MailingList | None) -> Brand | None:
    """The list's brand if it has a logo (for the page header), else None."""
    brand = list_brand(mlist) if mlist is not None else None
    return brand if brand is not None and brand.logo_url else None


def brand_css(brand: Brand | None) -> str:
    """The stylesheet of one list's pages: its accent colour, on white (the colour's contrast
    was checked on white when the brand was made)."""
    if brand is None:
        return "/* this list has no colours of its own */\n"
    return f":root {{ --accent: {brand.accent}; --bg: #fff; }}\n"


@bp.route("/brand/<slug>.css")
def brand_css_route(slug: str) -> ResponseReturnValue:
    mlist = get_list(get_db(), slug, include_deleted=True)
    headers = {"Content-Type": "text/css; charset=utf-8", "Cache-Control": BRAND_CACHE}
    return brand_css(list_brand(mlist)), 200, headers


def sparkline(values: Sequence[int], *, width: int = 120, height: int = 28) -> str:
    """The ``points`` of an SVG polyline drawing ``values`` left to right in a width x height
    box (the lowest value at the bottom, a flat line in the middle)."""
    if not values:
        return ""
    low, high = min(values), max(values)
    step = width / max(len(values) - 1, 1)
    points = []
    for i, v in enumerate(values):
        y = height / 2 if high == low else height - 2 - (v - low) * (height - 4) / (high - low)
        points.append(f"{i * step:.1f},{y:.1f}")
    return " ".join(points)


def utc_text(value: datetime | str | None) -> str:
    """A stored time (ISO text or datetime) as ``2025-01-21 07:00 UTC``; '' for None."""
    if value is None or value == "":
        return ""
    when = from_iso(value) if isinstance(value, str) else value
    return f"{when.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def local_text(value: datetime, timezone: str) -> str:
    """``value`` in a list's timezone: ``Tue 2025-01-21 10:00 EAT``."""
    local = value.astimezone(ZoneInfo(timezone))
    return f"{local:%a %Y-%m-%d %H:%M} {local.tzname()}"
