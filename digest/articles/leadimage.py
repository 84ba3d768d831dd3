"""One lead image per article, for the email digest: picked from what a feed entry says
(``media:content`` and ``media:thumbnail``, image enclosures), from a page's metadata
(``og:image``, ``twitter:image``), or else the first real ``<img>`` of the content. Pure
functions over parsed feeds and HTML strings; nothing is downloaded.

Every candidate passes ``image_candidate``: an absolute http(s) URL on a public host (a
protocol-relative ``//host/...`` becomes https, since an email has no page scheme to inherit;
relative URLs are resolved against the article or feed link), not a tracking pixel or a known
non-picture (feed trackers, analytics beacons, share buttons, WordPress emoji, avatars), not
1x1 or 2x2 (with width/height known), not a sliver (a side over ``MAX_ASPECT`` times the other:
spacers and ad banners), not a file over ``MAX_IMAGE_BYTES`` when a feed gives its length.
Width and height are kept when a source gives them as pixels, alt text when it has any.

Which candidate wins: the feed's media (the largest by known area; media without a size count as
a typical photo), unless that is a thumbnail under ``SMALL_SIDE`` pixels and the content has a
picture that is not known to be small (Blogger's ``media:thumbnail`` is a 72x72 crop, sometimes
of the blog's signature, while the post carries a 640-pixel photo); then the page's
``og:image``; then the content's first picture.
"""

from __future__ import annotations

import html
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote, urljoin, urlsplit

MAX_URL_CHARS = 2048
MAX_ALT_CHARS = 300
MAX_IMAGE_BYTES = 10_000_000  # more than any email client should be asked to load per article
MAX_SIDE = 20_000  # larger "dimensions" are errors; the image is kept, the size dropped
MAX_ASPECT = 6  # wider or taller than 6:1 is a spacer, divider or ad banner, not a lead image
SMALL_SIDE = 150  # a feed thumbnail smaller than this loses to a picture in the content
TYPICAL_AREA = 600 * 400  # the assumed area of media that do not give their size
MAX_CONTENT_IMAGES = 30
MAX_PAGE_CHARS = (
    500_000  # of a page read for its meta tags  # <img> tags examined per article before giving up
)

_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif")

# Hosts that serve only trackers or feed furniture (share buttons, "flares", comment counts).
TRACKER_HOSTS = frozenset(
    {
        "feeds.feedburner.com",  # /~r/.../~4/... open pixels, /~ff/ flares
        "feedproxy.google.com",
        "feeds.wordpress.com",  # WordPress.com comment/share buttons in feeds
        "stats.wordpress.com",
        "pixel.wp.com",
        "www.facebook.com",  # the /tr pixel; never a lead image in a feed
    }
)
# Ad and analytics domains, with every subdomain (feedads.g.doubleclick.net: FeedBurner ads).
TRACKER_DOMAINS = (
    "doubleclick.net",
    "google-analytics.com",
    "scorecardresearch.com",
    "quantserve.com",
    "mathtag.com",
)
# (host, path prefix) pairs of trackers.
TRACKER_PATHS = (
    ("blogger.googleusercontent.com", "/tracker/"),  # Blogger's per-post footer pixel
    ("www.blogger.com", "/img/blank.gif"),
    ("medium.com", "/_/stat"),  # Medium's full_rss view pixel
)
# (host, path prefix) pairs of images that belong in the content but are never its lead
# image: WordPress's emoji-as-images, author avatars.
NOT_LEAD_PATHS = (
    ("s.w.org", "/images/core/emoji/"),
    ("secure.gravatar.com", "/avatar/"),
    ("www.gravatar.com", "/avatar/"),
    ("gravatar.com", "/avatar/"),
    ("0.gravatar.com", "/avatar/"),
    ("1.gravatar.com", "/avatar/"),
    ("2.gravatar.com", "/avatar/"),
)
# Path segments and file names that mean a pixel whatever the host.
_TRACKER_SEGMENTS = frozenset({"pixel", "pixels", "tracker", "tracking", "beacon", "~r", "~ff"})
_SPACER_FILES = re.compile(
    r"(?:pixel|spacer|blank|1x1|transparent|clear|trans|tracking|beacon)\.(?:gif|png)$", re.I
)


@dataclass(frozen=True, slots=True)
class LeadImage:
    """An article's lead image: absolute http(s) URL, size in pixels when known, alt text."""

    url: str
    width: int | None = None
    height: int | None = None
    alt: str | None = None

    @property
    def area(self) -> int | None:
        return self.width * self.height if self.width and self.height else None

    @property
    def small(self) -> bool:
        """Known to be thumbnail-sized (both sides under ``SMALL_SIDE``)."""
        return (
            self.width is not None
            and self.height is not None
            and max(self.width, self.height) < SMALL_SIDE
        )


# ---------------------------------------------------------------------------- checking


def image_candidate(
    url: object,
    *,
    width: object = None,
    height: object = None,
    alt: object = None,
    base_url: str | None = None,
    length: object = None,
) -> LeadImage | None:
    """``url`` as a lead image if it passes the checks of the module docstring, else None.
    ``width``/``height`` may be ints or strings (``"640"``, ``"640px"``); ``length`` is a byte
    count from an enclosure or ``fileSize``."""
    if not isinstance(url, str):
        return None
    absolute = absolute_image_url(url, base_url)
    if absolute is None:
        return None
    w, h = dimension(width), dimension(height)
    if is_tracking_image(absolute, w, h) or _not_lead(absolute):
        return None
    if w and h and max(w, h) > MAX_ASPECT * min(w, h):
        return None
    size = dimension(length, limit=None)
    if size is not None and size > MAX_IMAGE_BYTES:
        return None
    return LeadImage(absolute, w, h, clean_alt(alt))


def absolute_image_url(url: str, base_url: str | None = None) -> str | None:
    """An absolute http(s) URL on a public host, percent-encoded where needed, or None."""
    url = url.strip()
    if not url or len(url) > MAX_URL_CHARS or any(ord(ch) < 32 or ch == "\x7f" for ch in url):
        return None
    if url.startswith("//"):
        url = "https:" + url
    elif not re.match(r"[a-zA-Z][a-zA-Z0-9+.\-]*:", url):
        if not base_url or not base_url.startswith(("http://", "https://")):
            return None
        url = urljoin(base_url, url)
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    if not _public_host(host):
        return None
    # Spaces and non-ASCII in paths are common in CMS uploads ("My Photo.jpg"); encode them so
    # the URL stays one token in the email's HTML. Existing %-escapes are kept.
    return quote(url, safe=":/?#[]@!$&'()*+,;=%~")


def _public_host(host: str) -> bool:
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "." in host  # a bare intranet name is unreachable for subscribers
    return address.is_global


def _not_lead(url: str) -> bool:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return any(host == h and parts.path.startswith(p) for h, p in NOT_LEAD_PATHS)


def is_tracking_image(url: str, width: int | None = None, height: int | None = None) -> bool:
    """True for tracking pixels and feed furniture (share buttons, ads): images an article's
    reader never meant to see. ``url`` is absolute."""
    if (width is not None and width <= 2) or (height is not None and height <= 2):
        return True
    try:
        parts = urlsplit(url)
    except ValueError:
        return True
    host = (parts.hostname or "").lower()
    if host in TRACKER_HOSTS or any(
        host == domain or host.endswith("." + domain) for domain in TRACKER_DOMAINS
    ):
        return True
    path = parts.path
    for tracker_host, prefix in TRACKER_PATHS:
        if host == tracker_host and path.startswith(prefix):
            return True
    segments = path.lower().split("/")
    if any(segment in _TRACKER_SEGMENTS for segment in segments[:-1]):
        return True
    return bool(_SPACER_FILES.search(segments[-1]))


def dimension(value: object, *, limit: int | None = MAX_SIDE) -> int | None:
    """A pixel size (or byte count) from ``640``, ``"640"``, ``"640px"``; None for ``"100%"``,
    ``"auto"``, zero, negative or, with ``limit``, implausibly large values."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        n = value
    elif isinstance(value, float) and value.is_integer():
        n = int(value)
    elif isinstance(value, str):
        m = re.fullmatch(r"\s*(\d{1,9})(?:\.0*)?\s*(?:px)?\s*", value, re.I)
        if not m:
            return None
        n = int(m.group(1))
    else:
        return None
    if n <= 0 or (limit is not None and n > limit):
        return None
    return n


def clean_alt(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    text = " ".join(html.unescape(value).split())
    if len(text) > MAX_ALT_CHARS:
        text = text[: MAX_ALT_CHARS - 1].rstrip() + "…"
    return text or None


def _looks_like_image(url: object) -> bool:
    if not isinstance(url, str):
        return False
    path = urlsplit(url).path.lower() if "://" in url else url.lower().split("?", 1)[0]
    return path.endswith(_IMAGE_EXTENSIONS)


# ---------------------------------------------------------------------------- feed entries


def entry_media_images(entry: Mapping[str, object], base_url: str | None = None) -> list[LeadImage]:
    """The pictures a feedparser entry names outside its content, in the order: media:content
    with ``medium="image"`` or an image type (or an image file name when it says neither),
    image enclosures, media:thumbnail."""
    out: list[LeadImage | None] = []
    for media in _dicts(entry.get("media_content")):
        medium = str(media.get("medium") or "").lower()
        kind = str(media.get("type") or "").lower()
        if (
            medium == "image"
            or kind.startswith("image/")
            or (not medium and not kind and _looks_like_image(media.get("url")))
        ):
            out.append(
                image_candidate(
                    media.get("url"),
                    width=media.get("width"),
                    height=media.get("height"),
                    length=media.get("filesize") or media.get("fileSize"),
                    base_url=base_url,
                )
            )
    enclosures = list(_dicts(entry.get("enclosures")))
    if not enclosures:  # feedparser lists Atom rel="enclosure" links under links only
        enclosures = [link for link in _dicts(entry.get("links")) if link.get("rel") == "enclosure"]
    for enclosure in enclosures:
        kind = str(enclosure.get("type") or "").lower()
        href = enclosure.get("href") or enclosure.get("url")
        if kind.startswith("image/") or (not kind and _looks_like_image(href)):
            out.append(image_candidate(href, length=enclosure.get("length"), base_url=base_url))
    for thumb in _dicts(entry.get("media_thumbnail")):
        out.append(
            image_candidate(
                thumb.get("url"),
                width=thumb.get("width"),
                height=thumb.get("height"),
                base_url=base_url,
            )
        )
    return [image for image in out if image is not None]


def _dicts(value: object) -> Iterable[Mapping[str, object]]:
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, Mapping)]
    return ()


def feed_entry_image(entry: Mapping[str, object], base_url: str | None = None) -> LeadImage | None:
    """The lead image of a feedparser entry: its media, else the first picture of its content
    (or summary). ``base_url`` resolves relative URLs (the entry's link, else the feed's)."""
    html_text = ""
    for content in _dicts(entry.get("content")):
        value = content.get("value")
        if isinstance(value, str) and value:
            html_text = value
            break
    if not html_text:
        summary = entry.get("summary")
        html_text = summary if isinstance(summary, str) else ""
    return choose_lead_image(
        entry_media_images(entry, base_url), content=content_image(html_text, base_url)
    )


def value_image(value: object, base_url: str | None = None) -> LeadImage | None:
    """The image of a JSON Feed item (``image``, ``banner_image``), a JSON Lines article or
    front matter (``image``): a URL, or an object with ``url`` (or ``src``), ``width``,
    ``height`` and ``alt``."""
    if isinstance(value, str):
        return image_candidate(value, base_url=base_url)
    if isinstance(value, Mapping):
        return image_candidate(
            value.get("url") or value.get("src"),
            width=value.get("width"),
            height=value.get("height"),
            alt=value.get("alt"),
            base_url=base_url,
        )
    return None


def choose_lead_image(
    media: Sequence[LeadImage],
    *,
    page: LeadImage | None = None,
    content: LeadImage | None = None,
) -> LeadImage | None:
    """The winner among a source's candidates (see the module docstring)."""
    if media:
        # max() keeps the first of equals: media:content before enclosures before thumbnails.
        best = max(media, key=lambda image: image.area or TYPICAL_AREA)
        if best.small and content is not None and not content.small:
            return content
        if content is not None and content.url == best.url:
            # Ghost puts the feature image both in media:content (bare) and first in the
            # content (with its alt text): one image, described by both.
            return LeadImage(
                best.url,
                best.width or content.width,
                best.height or content.height,
                best.alt or content.alt,
            )
        return best
    return page or content


# ---------------------------------------------------------------------------- HTML

# [^<>]: an unclosed "<img src=x" stops at the next tag instead of scanning to the end of
# the document from every "<img" (quadratic on hostile input).
_IMG = re.compile(r"<img\b([^<>]*)>", re.I)
_META = re.compile(r"<meta\b([^<>]*)>", re.I)
_LINK = re.compile(r"<link\b([^<>]*)>", re.I)
_ATTR = re.compile(r"""([^\s=/>"']+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?""")
_STYLE_SIZE = re.compile(r"(?:^|;)\s*(width|height)\s*:\s*(\d+)px", re.I)
_HIDDEN = re.compile(r"(?:^|;)\s*(?:display\s*:\s*none|visibility\s*:\s*hidden)", re.I)
_LAZY_SOURCES = ("data-src", "data-lazy-src", "data-original", "data-orig-file")


def html_attributes(tag_body: str) -> dict[str, str]:
    """The attributes of one tag (the text between the tag name and ``>``), names lower-case,
    values entity-decoded; the first of a repeated name wins, as in browsers."""
    attrs: dict[str, str] = {}
    for m in _ATTR.finditer(tag_body):
        name = m.group(1).lower()
        value = m.group(2) if m.group(2) is not None else m.group(3) or m.group(4) or ""
        attrs.setdefault(name, html.unescape(value) if "&" in value else value)
    return attrs


def _largest_srcset(srcset: str) -> str | None:
    best, best_w = None, -1.0
    for candidate in srcset.split(","):
        fields = candidate.split()
        if not fields:
            continue
        w = 1.0
        if len(fields) > 1 and fields[1][:-1].replace(".", "", 1).isdigit():
            w = float(fields[1][:-1]) * (1 if fields[1].endswith("w") else 1000)
        if w > best_w:
            best, best_w = fields[0], w
    return best


def content_image(fragment: str, base_url: str | None = None) -> LeadImage | None:
    """The first ``<img>`` of an HTML fragment that is a real picture: a lazy-loading
    placeholder gives way to ``data-src``/``srcset``; hidden, tiny and tracker images are
    skipped (raw or sanitised HTML alike)."""
    if "<img" not in fragment and "<IMG" not in fragment:
        return None
    for n, m in enumerate(_IMG.finditer(fragment)):
        if n >= MAX_CONTENT_IMAGES:
            break
        attrs = html_attributes(m.group(1))
        style = attrs.get("style", "")
        if style and _HIDDEN.search(style):
            continue
        sizes = {k.lower(): v for k, v in _STYLE_SIZE.findall(style)} if style else {}
        width = attrs.get("width") or sizes.get("width")
        height = attrs.get("height") or sizes.get("height")
        sources = [attrs.get("src", "")]
        sources += [attrs.get(name, "") for name in _LAZY_SOURCES]
        for name in ("srcset", "data-srcset"):
            if attrs.get(name):
                sources.append(_largest_srcset(attrs[name]) or "")
        for src in sources:
            if not src or src.startswith("data:"):
                continue
            image = image_candidate(
                src, width=width, height=height, alt=attrs.get("alt"), base_url=base_url
            )
            if image is not None:
                return image
            # Otherwise the next source: a lazy-loading page's src is often a placeholder
            # pixel (/wp-content/plugins/.../blank.gif) while data-src has the photo.
    return None


def page_image(document: str, base_url: str | None = None) -> LeadImage | None:
    """A page's declared share image: ``og:image`` (``og:image:secure_url``/``:url``) with its
    ``og:image:width``/``:height``/``:alt``, else ``twitter:image``, else
    ``<link rel="image_src">``. Only the first ``MAX_PAGE_CHARS`` are read."""
    # Meta tags belong in <head>, but broken templates put them in <body> too; the first of
    # each property wins, so the head's come first.
    head = document[:MAX_PAGE_CHARS]
    meta: dict[str, str] = {}
    for m in _META.finditer(head):
        attrs = html_attributes(m.group(1))
        prop = (attrs.get("property") or attrs.get("name") or "").strip().lower()
        content = attrs.get("content")
        if prop and content is not None and prop not in meta:
            meta[prop] = content
    for key in ("og:image:secure_url", "og:image", "og:image:url"):
        image = image_candidate(
            meta.get(key),
            width=meta.get("og:image:width"),
            height=meta.get("og:image:height"),
            alt=meta.get("og:image:alt"),
            base_url=base_url,
        )
        if image is not None:
            return image
    for key in ("twitter:image", "twitter:image:src"):
        image = image_candidate(meta.get(key), alt=meta.get("twitter:image:alt"), base_url=base_url)
        if image is not None:
            return image
    for m in _LINK.finditer(head):
        attrs = html_attributes(m.group(1))
        if attrs.get("rel", "").strip().lower() == "image_src":
            return image_candidate(attrs.get("href"), base_url=base_url)
    return None
