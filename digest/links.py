"""Public URLs on ``[site] base_url``. The URL scheme is fixed here and served by ``digest serve``:

- ``/c/<token>``  confirm a subscription (double opt-in)
- ``/u/<token>``  unsubscribe: GET shows a confirm button; POST (RFC 8058 one-click) unsubscribes
- ``/p/<token>``  preferences (tags, frequency, unsubscribe)
- ``/archive/<list>/``  a list's sent digests
- ``/archive/<list>/<frequency>/<YYYY-MM-DD>/``  one digest's web version (``#tag-<key>`` anchors)
- ``/subscribe/<list>``  the subscribe form
- ``/embed/<list>``  where a list's subscribe form embedded in other sites' pages posts
- ``/archive/<list>/feed.atom``  the Atom feed of a list's sent digests
- ``/preview-link/<unsubscribe|preferences>``  what those links are in a preview or test copy
  shown to staff: a page that says so, never a working token
"""

from __future__ import annotations

from urllib.parse import quote


def confirm_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/c/{token}"


def unsubscribe_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/u/{token}"


def preferences_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/p/{token}"


def preview_link_url(base_url: str, purpose: str) -> str:
    """The inert stand-in for a subscriber's ``purpose`` link in previews and test sends."""
    return f"{base_url.rstrip('/')}/preview-link/{quote(purpose)}"


def subscribe_url(base_url: str, list_slug: str) -> str:
    return f"{base_url.rstrip('/')}/subscribe/{quote(list_slug)}"


def archive_url(base_url: str, list_slug: str) -> str:
    return f"{base_url.rstrip('/')}/archive/{quote(list_slug)}/"


def digest_web_url(
    base_url: str,
    list_slug: str,
    frequency: str,
    period_label: str,
    tag: str | None = None,
    *,
    key: str | None = None,
) -> str:
    """The web version of one digest; ``tag`` (a tag key) adds the section anchor; ``key``
    (a private list's issue key, ``digests.web_key``) is what lets the page be shown."""
    url = f"{archive_url(base_url, list_slug)}{frequency}/{period_label}/"
    if key:
        url += f"?k={key}"
    if tag:
        url += "#tag-" + quote(tag.replace(" ", "-"), safe="-")
    return url


def embed_url(base_url: str, list_slug: str) -> str:
    return f"{base_url.rstrip('/')}/embed/{quote(list_slug)}"


def archive_feed_url(base_url: str, list_slug: str) -> str:
    return f"{archive_url(base_url, list_slug)}feed.atom"
