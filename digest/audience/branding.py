"""What a list's emails show besides text: its brand (logo, accent colour, footer text, postal
address) and the stories' lead images, as checked records the templates can trust.

Checks happen when the values are set (``Brand.create``, ``LeadImage.create`` raise
``InvalidInput`` with a message an editor can act on), so rendering never meets a bad value:
- URLs are absolute http(s) (a relative or ``javascript:`` URL means nothing in an email);
- the accent colour is a hex colour (it goes into CSS) with a contrast of at least 4.5:1 on the
  white sheet (WCAG 2 AA for text: it colours section names and "N more" links);
- images are never wider than the sheet's content (600 px less 2 x 24 px padding) and carry
  their width and height (Outlook for Windows ignores CSS sizes and shows the file's own).
CAN-SPAM (15 U.S.C. 7704(a)(5)) asks commercial mail for a valid physical postal address: the
footer shows ``postal_address`` when set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import InvalidInput

CONTENT_WIDTH = 552  # the 600 px sheet less 24 px padding each side
LOGO_MAX_HEIGHT = 120
DEFAULT_ACCENT = "#b3261e"
MIN_CONTRAST = 4.5
_HEX = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")


def check_url(url: str, what: str) -> str:
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput(f"{what} must be an absolute http(s) URL, not {url!r}")
    if any(ch in url for ch in "\"'<> \t\r\n"):
        raise InvalidInput(f"{what} contains quotes, spaces or angle brackets: {url!r}")
    return url


def _luminance(colour: str) -> float:
    """Relative luminance (WCAG 2) of a #rgb or #rrggbb colour."""
    digits = colour[1:]
    if len(digits) == 3:
        digits = "".join(d * 2 for d in digits)
    channels = [int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_on_white(colour: str) -> float:
    return 1.05 / (_luminance(colour) + 0.05)


def check_accent(colour: str) -> str:
    """``colour`` normalised to lower case, if it is a hex colour readable on white."""
    colour = (colour or "").strip()
    if not _HEX.fullmatch(colour):
        raise InvalidInput(f"accent colour must be a hex colour such as #b3261e, not {colour!r}")
    ratio = contrast_on_white(colour)
    if ratio < MIN_CONTRAST:
        raise InvalidInput(
            f"accent colour {colour} has a contrast of {ratio:.1f}:1 on white; text needs at"
            f" least {MIN_CONTRAST}:1 (WCAG AA): choose a darker shade"
        )
    return colour.lower()


def _fit(width: int, height: int | None, max_width: int) -> tuple[int, int | None]:
    if width <= 0 or (height is not None and height <= 0):
        raise InvalidInput(f"image size {width}x{height} must be positive")
    if width <= max_width:
        return width, height
    return max_width, None if height is None else max(1, round(height * max_width / width))


@dataclass(frozen=True)
class Brand:
    """A list's branding as the email and the list's web pages show it."""

    logo_url: str | None = None
    logo_width: int = 0  # px as shown; set with the URL
    logo_height: int | None = None
    logo_alt: str | None = None  # default: the list's title
    accent: str = DEFAULT_ACCENT
    footer_text: str | None = None
    postal_address: str | None = None

    @classmethod
    def create(
        cls,
        *,
        logo_url: str | None = None,
        logo_width: int = 200,
        logo_height: int | None = None,
        logo_alt: str | None = None,
        accent: str | None = None,
        footer_text: str | None = None,
        postal_address: str | None = None,
    ) -> Brand:
        """A checked brand (see the module docstring); a logo is scaled down to fit the sheet
        and to at most ``LOGO_MAX_HEIGHT`` px high."""
        width, height = 0, None
        if logo_url:
            logo_url = check_url(logo_url, "logo URL")
            width, height = _fit(logo_width, logo_height, CONTENT_WIDTH)
            if height is not None and height > LOGO_MAX_HEIGHT:
                width, height = max(1, round(width * LOGO_MAX_HEIGHT / height)), LOGO_MAX_HEIGHT
        return cls(
            logo_url=logo_url or None,
            logo_width=width,
            logo_height=height,
            logo_alt=(logo_alt or "").strip() or None,
            accent=check_accent(accent) if accent else DEFAULT_ACCENT,
            footer_text=(footer_text or "").strip() or None,
            postal_address=" ".join((postal_address or "").split()) or None,
        )


@dataclass(frozen=True)
class LeadImage:
    """A story's lead image as the HTML part shows it (the plain text never does)."""

    url: str
    width: int
    height: int
    alt: str  # "" for a decorative image: the headline next to it says what it is

    @classmethod
    def create(cls, url: str, width: int, height: int, alt: str | None = None) -> LeadImage:
        """A checked image, scaled down to the sheet's content width, aspect kept."""
        url = check_url(url, "image URL")
        w, h = _fit(width, height, CONTENT_WIDTH)
        assert h is not None
        return cls(url=url, width=w, height=h, alt=" ".join((alt or "").split()))
