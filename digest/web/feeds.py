"""Admin pages for the feeds ``digest fetch`` and ``digest run`` poll: each feed with its tags,
its articles, its last poll's result and error; add one (full text or not), turn full text on
or off, remove one (after a confirmation page), fetch one or all now. The same library calls as
``digest feeds add|remove`` (``--full-text/--no-full-text``) and ``digest fetch`` (``ingest.feeds``, ``ingest.pipeline.fetch_feeds``): the address policy, time limit and
containment of a failing feed are theirs, and a fetch's outcome is reported in the same lines.
"""

from __future__ import annotations

import logging

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from ..articles.reads import source_summaries
from ..errors import InvalidInput
from ..ingest.feeds import Feed, add_feed, get_feed, list_feeds, remove_feed
from ..ingest.pipeline import FeedStatus, fetch_feeds
from .auth import admin_required
from .context import get_db, now, web

log = logging.getLogger(__name__)

bp = Blueprint("feeds", __name__, url_prefix="/admin/feeds")


@bp.route("/")
@admin_required
def index() -> ResponseReturnValue:
    db = get_db()
    feeds = list_feeds(db)
    return render_template(
        "admin/feeds.html", feeds=feeds, sources=source_summaries(db, [f.url for f in feeds])
    )


@bp.route("/add", methods=["POST"])
@admin_required
def add() -> ResponseReturnValue:
    url = request.form.get("url", "").strip()
    tags = [t for t in request.form.get("tags", "").split(",") if t.strip()]
    # Unticked on add means "as it is" for a registered feed, as without --full-text.
    full_text = True if request.form.get("full_text") == "yes" else None
    try:
        feed, created = add_feed(get_db(), url, tags=tags, full_text=full_text, now=now())
    except InvalidInput as e:
        flash(f"Not added: {e}", "error")
        return redirect(url_for("feeds.index"), code=303)
    flash(f"{'added' if created else 'already registered, tags merged'}: {feed_line(feed)}",
          "notice")  # fmt: skip
    return redirect(url_for("feeds.index"), code=303)


def feed_line(feed: Feed) -> str:
    """The feed as ``digest feeds add|list`` names it: URL, [tags], "full text"."""
    shown = f" [{', '.join(feed.tags)}]" if feed.tags else ""
    return f"{feed.url}{shown}" + (" full text" if feed.full_text else "")


@bp.route("/full-text", methods=["POST"])
@admin_required
def full_text() -> ResponseReturnValue:
    """Turn fetching the linked pages of summary-only entries on (``on=1``) or off for one
    registered feed, as ``digest feeds add URL --full-text|--no-full-text``."""
    feed = get_feed(get_db(), request.form.get("url", ""))
    on = request.form.get("on") == "1"
    feed, _ = add_feed(get_db(), feed.url, tags=[], full_text=on, now=now())
    flash(f"full text {'on' if on else 'off'}: {feed_line(feed)}", "notice")
    return redirect(url_for("feeds.index"), code=303)


@bp.route("/fetch", methods=["POST"])
@admin_required
def fetch() -> ResponseReturnValue:
    """Poll one feed (``url``) or every feed now, in this request (each within the configured
    ``[ingest] fetch_timeout``), and report each outcome as ``digest fetch`` prints it."""
    url = request.form.get("url") or None
    reports = fetch_feeds(get_db(), web().config, now=now(), only=url)
    for report in reports:
        failed = report.status == FeedStatus.FAILED or not report.ok
        flash(report.summary_line(), "error" if failed else "notice")
    if not reports:
        flash("no feeds registered", "notice")
    log.info("%s fetched %s: %d feed(s)", g.user.name, url or "every feed", len(reports))
    return redirect(url_for("feeds.index"), code=303)


@bp.route("/remove", methods=["GET", "POST"])
@admin_required
def remove() -> ResponseReturnValue:
    """A confirmation page, then the removal (the feed's articles stay in the store)."""
    url = request.values.get("url", "")
    feed = get_feed(get_db(), url)
    if request.method == "GET" or request.form.get("confirm") != "yes":
        return render_template("admin/feed_remove.html", feed=feed)
    remove_feed(get_db(), feed.url)
    flash(f"removed: {feed.url} (its articles stay)", "notice")
    return redirect(url_for("feeds.index"), code=303)
