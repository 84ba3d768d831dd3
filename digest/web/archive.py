"""The public archive of sent digests (an issue counts as sent once a relay accepted one of its
deliveries): each list's index of issues with their subject and top headlines, each issue's web
version (``issues.build.render_web_version``) with a subscribe call to action, Open Graph and
Twitter meta and a canonical URL, and an Atom feed of the list's newest issues.

A private list has no index and no feed (404); the web version of each of its issues is shown
only at the address its emails link to ("view in your browser", "N more stories"), which carries
the issue's random key (``digests.web_key``; issues built before keys existed have none), marked
noindex and without the sharing meta. A deleted list's archive stays, without the call to subscribe.

Everything shown comes from feeds and editors (subjects, headlines, list titles): it is escaped
by Jinja2 in the pages and by ElementTree in the feed, never spliced in as markup.
"""

from __future__ import annotations

import hmac
import re
import xml.etree.ElementTree as ET
from datetime import date

from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue

from .. import links
from ..audience.lists import MailingList, get_list
from ..audience.records import FREQUENCIES
from ..delivery import ledger
from ..errors import NotFound
from ..issues.build import render_web_version
from ..issues.store import (
    ArchiveEntry,
    StoredDigest,
    archive_entries,
    digests_of_list,
    find_digest_by_label,
)
from ..timeutil import to_iso
from .context import get_db, web
from .security import MESSAGE_CSP

bp = Blueprint("archive", __name__, url_prefix="/archive")

# The archive may be cached briefly by browsers and proxies: it is the same for everyone.
ARCHIVE_CACHE = "public, max-age=300"
FEED_ENTRIES = 20
ATOM = "http://www.w3.org/2005/Atom"
_ISSUE_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_BODY = re.compile(r"<body\b[^>]*>", re.IGNORECASE)


def _public_list(slug: str) -> MailingList:
    mlist = get_list(get_db(), slug, include_deleted=True)
    if mlist.private:
        raise NotFound(f"list {slug!r} has no public archive")
    return mlist


def _sent_digests(mlist: MailingList) -> list[StoredDigest]:
    db = get_db()
    built = digests_of_list(db, mlist.id)
    sent = ledger.sent_among(db, [d.id for d in built])
    return [d for d in built if d.id in sent]


def _issue_url(base: str, mlist: MailingList, digest: StoredDigest) -> str:
    return links.digest_web_url(
        base, mlist.slug, digest.frequency, digest.period_label, key=digest.web_key
    )


@bp.route("/<slug>/")
def index(slug: str) -> ResponseReturnValue:
    mlist = _public_list(slug)
    root = request.script_root
    entries = [
        (entry, _issue_url(root, mlist, entry.digest))
        for entry in archive_entries(get_db(), _sent_digests(mlist))
    ]
    body = render_template(
        "archive/index.html",
        mlist=mlist,
        brand_list=mlist,
        entries=entries,
        feed_url=links.archive_feed_url(root, mlist.slug),
        subscribe_url=None if mlist.deleted_at else links.subscribe_url(root, mlist.slug),
    )
    return body, 200, {"Cache-Control": ARCHIVE_CACHE}


@bp.route("/<slug>/feed.atom")
def feed(slug: str) -> ResponseReturnValue:
    """Atom (RFC 4287) of the list's newest sent issues, with absolute URLs on ``base_url``."""
    mlist = _public_list(slug)
    entries = archive_entries(get_db(), _sent_digests(mlist)[:FEED_ENTRIES])
    body = atom_feed(mlist, entries, base=web().config.base_url, site=web().config.site_name)
    headers = {
        "Content-Type": "application/atom+xml; charset=utf-8",
        "Cache-Control": ARCHIVE_CACHE,
    }
    return body, 200, headers


def atom_feed(mlist: MailingList, entries: list[ArchiveEntry], *, base: str, site: str) -> bytes:
    """The Atom document of ``entries`` (newest first)."""
    ET.register_namespace("", ATOM)

    def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        element = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
        if text is not None:
            element.text = text
        return element

    archive = links.archive_url(base, mlist.slug)
    root = ET.Element(f"{{{ATOM}}}feed")
    sub(root, "id", archive)
    sub(root, "title", f"{mlist.title} — {site}")
    if mlist.description:
        sub(root, "subtitle", mlist.description)
    sub(root, "link", rel="self", href=links.archive_feed_url(base, mlist.slug))
    sub(root, "link", rel="alternate", type="text/html", href=archive)
    updated = entries[0].digest.built_at if entries else None
    sub(root, "updated", to_iso(updated) if updated else mlist.created_at)
    author = sub(root, "author")
    sub(author, "name", site)
    for entry in entries:
        digest = entry.digest
        url = _issue_url(base, mlist, digest)
        item = sub(root, "entry")
        sub(item, "id", url)
        sub(item, "title", entry.subject or f"{mlist.title}, {digest.period_label}")
        sub(item, "link", rel="alternate", type="text/html", href=url)
        sub(item, "published", to_iso(digest.built_at))
        sub(item, "updated", to_iso(digest.built_at))
        sub(item, "summary", _summary(entry), type="text")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _summary(entry: ArchiveEntry) -> str:
    stories = f"{entry.article_count} stor{'y' if entry.article_count == 1 else 'ies'}"
    if not entry.headlines:
        return stories
    return f"{stories}, among them: " + " · ".join(entry.headlines)


@bp.route("/<slug>/<frequency>/<label>/")
def issue(slug: str, frequency: str, label: str) -> ResponseReturnValue:
    db = get_db()
    mlist = get_list(db, slug, include_deleted=True)
    if frequency not in FREQUENCIES or not _valid_date(label):
        raise NotFound(f"no {mlist.title} digest at this address")
    digest = find_digest_by_label(db, mlist.id, frequency, label)
    if digest is None or not ledger.sent_among(db, [digest.id]):
        raise NotFound(f"no {frequency} {mlist.title} digest was sent for {label}")
    if digest.web_key and not hmac.compare_digest(request.args.get("k", ""), digest.web_key):
        # A private list's issue: only its emails' links carry the key. The same answer as an
        # address with no issue, so the page does not say that one exists.
        raise NotFound(f"no {frequency} {mlist.title} digest was sent for {label}")
    config = web().config
    [entry] = archive_entries(db, [digest])
    root = request.script_root
    head = render_template(
        "archive/issue_head.html",
        mlist=mlist,
        entry=entry,
        canonical=_issue_url(config.base_url, mlist, digest),
        feed_url=links.archive_feed_url(root, mlist.slug),
        description=_summary(entry),
    )
    banner = render_template(
        "archive/issue_banner.html",
        mlist=mlist,
        subscribe_url=None if mlist.deleted_at else links.subscribe_url(root, mlist.slug),
        archive_url=None if mlist.private else links.archive_url(root, mlist.slug),
    )
    html = with_page_parts(render_web_version(db, config, digest.id), head, banner)
    # The stored digest carries its own <style>: it gets the message policy (inline styles,
    # no scripts, sandboxed), not the site's.
    headers = {
        "Content-Type": "text/html; charset=utf-8",
        "Content-Security-Policy": MESSAGE_CSP,
        "Cache-Control": ARCHIVE_CACHE,
    }
    if mlist.private:
        headers["X-Robots-Tag"] = "noindex"
    return html, 200, headers


def with_page_parts(html: str, head: str, banner: str) -> str:
    """The web version with ``head`` (meta tags) at the end of its <head> and ``banner`` at the
    start of its <body>. The markup is our template's (templates/email/base.html or the
    installation's copy); its first </head> and <body> are its own, since stories' text is
    escaped and their HTML sanitised before it gets there."""
    at = html.find("</head>")
    html = html[:at] + head + html[at:] if at >= 0 else head + html
    body = _BODY.search(html)
    return html[: body.end()] + banner + html[body.end() :] if body else banner + html


def _valid_date(label: str) -> bool:
    if not _ISSUE_DATE.match(label):
        return False
    try:
        date.fromisoformat(label)
    except ValueError:
        return False
    return True
