"""Public pages: the home page, the subscribe form, the archive of sent digests, and the
signed-token links from every email (``digest.links``): ``/c/<token>`` confirm, ``/u/<token>``
unsubscribe, ``/p/<token>`` preferences.

No GET changes anything: link scanners (corporate mail filters, antivirus) fetch every URL in
a message, so confirm and unsubscribe pages show a button that POSTs. The exception is the
RFC 8058 one-click POST, which unsubscribes at once.

State changes go through the audience stage (``audience.subscriptions``), and the subscribe
form through ``delivery.notices``, which only queues the confirmation email (the app's worker
thread sends it), so every outcome of the form gets the same answer in the same time. The
archive renders stored digests with ``issues.build.render_web_version``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from .. import links
from ..addresses import normalise_email
from ..audience.lists import MailingList, all_lists, get_list, get_list_by_id
from ..audience.records import ENDED, FREQUENCIES, LIVE
from ..audience.subscriptions import (
    confirm_subscription,
    get_subscriber_by_id,
    get_subscription,
    update_preferences,
)
from ..audience.subscriptions import unsubscribe as end_subscription
from ..delivery import ledger
from ..delivery.notices import request_subscription
from ..errors import InvalidInput, NotFound, TokenError
from ..issues.build import render_web_version
from ..issues.store import digests_of_list, find_digest_by_label
from ..timeutil import from_iso
from ..tokens import Token, make_token, read_token
from .context import enforce_limit, get_db, is_one_click_unsubscribe, now, web
from .security import MESSAGE_CSP

log = logging.getLogger(__name__)

bp = Blueprint("public", __name__)

# The archive may be cached briefly by browsers and proxies: it is the same for everyone.
ARCHIVE_CACHE = "public, max-age=300"
_ISSUE_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")


@dataclass(frozen=True)
class LinkTarget:
    """Who a token link is for and where they stand on its list. ``status`` is None when the
    subscriber or the subscription no longer exists (e.g. removed by an admin)."""

    token: Token
    mlist: MailingList
    email: str | None
    name: str | None
    status: str | None
    frequency: str | None
    tag_keys: tuple[str, ...]  # () = every tag of the list
    updated_at: str | None = None  # the subscription's last change

    @property
    def exists(self) -> bool:
        return self.status is not None

    @property
    def can_confirm(self) -> bool:
        """A pending subscription can be confirmed. An ended one (unsubscribed, bounced,
        complained) only with a link issued after it ended: a new subscribe request, never an
        old confirmation email from before the person unsubscribed."""
        if self.status == "pending":
            return True
        if self.status in ENDED and self.updated_at:
            ended = int(from_iso(self.updated_at).timestamp())
            return int(self.token.issued_at.timestamp()) >= ended
        return False


def link_target(token: str, purpose: str) -> LinkTarget:
    """Verify ``token`` (TokenError -> 400 page) and look up what it points at."""
    tok = read_token(web().secret, token, purpose, now=now())
    db = get_db()
    try:
        mlist = get_list_by_id(db, tok.list_id)
    except NotFound:
        raise NotFound("the list this link belongs to no longer exists") from None
    person = get_subscriber_by_id(db, tok.subscriber_id)
    sub = get_subscription(db, tok.subscriber_id, tok.list_id) if person else None
    return LinkTarget(
        token=tok,
        mlist=mlist,
        email=person.email if person else None,
        name=person.name if person else None,
        status=sub.status if sub else None,
        frequency=sub.frequency if sub else None,
        tag_keys=sub.tags if sub else (),
        updated_at=sub.updated_at if sub else None,
    )


def preferences_path(target: LinkTarget) -> str:
    """This site's preferences link for the subscriber a confirmation link was for."""
    tok = make_token(
        web().secret, "preferences", target.token.subscriber_id, target.mlist.id, now=now()
    )
    return links.preferences_url(request.script_root, tok)


@bp.route("/")
def home() -> ResponseReturnValue:
    root = request.script_root
    lists = [
        (mlist, links.subscribe_url(root, mlist.slug), links.archive_url(root, mlist.slug))
        for mlist in all_lists(get_db())
    ]
    return render_template("home.html", lists=lists)


# --- subscribe --------------------------------------------------------------------------------


@bp.route("/subscribe/<slug>", methods=["GET", "POST"])
def subscribe(slug: str) -> ResponseReturnValue:
    mlist = get_list(get_db(), slug)
    form: dict[str, Any] = {"email": "", "name": "", "tags": (), "frequency": "daily"}
    error = None
    if request.method == "POST":
        enforce_limit("subscribe")
        form = {
            "email": request.form.get("email", "").strip(),
            "name": request.form.get("name", ""),
            "tags": tuple(request.form.getlist("tag")),
            "frequency": request.form.get("frequency", ""),
        }
        try:
            normalise_email(form["email"])  # the address first: it is the field most often wrong
            tags, frequency = parse_preferences(mlist, request.form)
            result = request_subscription(
                get_db(),
                web().config,
                mlist,
                form["email"],
                name=form["name"] or None,
                tags=tags,
                frequency=frequency,
                now=now(),
            )
        except InvalidInput as e:
            error = str(e)
        else:
            log.info("subscribe %s to %s: %s (%s)", result.email, slug, result.status, result.note)
            # Woken whatever happened, so that every outcome does the same work in the request.
            web().notices.wake()
            # The same page whatever happened: it must not reveal who is subscribed.
            return redirect(url_for("public.subscribe_sent", slug=slug), code=303)
    return (
        render_template(
            "subscribe.html",
            mlist=mlist,
            form=form,
            error=error,
            frequencies=FREQUENCIES,
            lang=mlist.language,
        ),
        400 if error else 200,
    )


@bp.route("/subscribe/<slug>/sent")
def subscribe_sent(slug: str) -> ResponseReturnValue:
    mlist = get_list(get_db(), slug)
    return render_template("subscribe_sent.html", mlist=mlist, lang=mlist.language)


# --- the links of previews and test copies -----------------------------------------------------

PREVIEW_LINKS = ("unsubscribe", "preferences")


@bp.route("/preview-link/<purpose>", methods=["GET", "POST"])
def preview_link(purpose: str) -> ResponseReturnValue:
    """Where the unsubscribe and preferences links of a staff preview or "[TEST]" copy lead:
    a page that says so. They never carry a subscriber's token, so there is nothing to act on;
    a mailbox provider's RFC 8058 one-click POST gets 200, like a real link's."""
    if purpose not in PREVIEW_LINKS:
        raise NotFound("There is no page at this address.")
    if request.method == "POST":
        return (
            "This was a preview: nothing changed.\n",
            200,
            {"Content-Type": "text/plain; charset=utf-8"},
        )
    return render_template("preview_link.html", purpose=purpose)


# --- archive ----------------------------------------------------------------------------------


@bp.route("/archive/<slug>/")
def archive(slug: str) -> ResponseReturnValue:
    db = get_db()
    mlist = get_list(db, slug, include_deleted=True)
    built = digests_of_list(db, mlist.id)
    sent = ledger.sent_among(db, [d.id for d in built])
    digests = [
        {
            "frequency": d.frequency,
            "period_label": d.period_label,
            "url": links.digest_web_url(
                request.script_root, mlist.slug, d.frequency, d.period_label
            ),
        }
        for d in built
        if d.id in sent
    ]
    body = render_template("archive/index.html", mlist=mlist, digests=digests)
    return body, 200, {"Cache-Control": ARCHIVE_CACHE}


@bp.route("/archive/<slug>/<frequency>/<label>/")
def archive_digest(slug: str, frequency: str, label: str) -> ResponseReturnValue:
    db = get_db()
    mlist = get_list(db, slug, include_deleted=True)
    if frequency not in FREQUENCIES or not _valid_date(label):
        raise NotFound(f"no {mlist.title} digest at this address")
    digest = find_digest_by_label(db, mlist.id, frequency, label)
    if digest is None or not ledger.sent_among(db, [digest.id]):
        raise NotFound(f"no {frequency} {mlist.title} digest was sent for {label}")
    html = render_web_version(db, web().config, digest.id)
    # The stored digest carries its own <style>: it gets the message policy (inline styles,
    # no scripts, sandboxed), not the site's.
    headers = {
        "Content-Type": "text/html; charset=utf-8",
        "Content-Security-Policy": MESSAGE_CSP,
        "Cache-Control": ARCHIVE_CACHE,
    }
    return html, 200, headers


def _valid_date(label: str) -> bool:
    if not _ISSUE_DATE.match(label):
        return False
    try:
        date.fromisoformat(label)
    except ValueError:
        return False
    return True


# --- confirm ----------------------------------------------------------------------------------


@bp.route("/c/<token>", methods=["GET", "POST"])
def confirm(token: str) -> ResponseReturnValue:
    enforce_limit("token")
    target = link_target(token, "confirm")
    if not target.exists:
        raise NotFound("this subscription no longer exists; subscribe again from the list's page")
    done = False
    if request.method == "POST" and target.can_confirm:
        confirm_subscription(
            get_db(), target.token.subscriber_id, target.mlist.id, source="web", now=now()
        )
        target = link_target(token, "confirm")
        done = True
    prefs = preferences_path(target) if target.status == "active" else None
    return render_template(
        "confirm.html", target=target, done=done, prefs_url=prefs, lang=target.mlist.language
    )


# --- unsubscribe ------------------------------------------------------------------------------


@bp.route("/u/<token>", methods=["GET", "POST"])
def unsubscribe(token: str) -> ResponseReturnValue:
    if is_one_click_unsubscribe():
        return _one_click(token)
    enforce_limit("token")
    target = link_target(token, "unsubscribe")
    done = False
    if request.method == "POST" and target.status in LIVE:
        _unsubscribe(target, scope=request.form.get("scope", "list"), reason="unsubscribe page")
        done = True
    return render_template("unsubscribe.html", target=target, done=done, lang=target.mlist.language)


def _one_click(token: str) -> ResponseReturnValue:
    """RFC 8058: answer 200 with no redirect and no cookie. A valid token is never refused
    (mailbox providers send these from a few shared addresses, so a per-address limit would
    drop real unsubscribes); invalid tokens count against the token rate limit."""
    try:
        target = link_target(token, "unsubscribe")
    except (TokenError, NotFound) as e:
        if isinstance(e, TokenError):
            enforce_limit("token")
            raise
        return "Unsubscribed.\n", 200, {"Content-Type": "text/plain; charset=utf-8"}
    if target.status in LIVE:
        _unsubscribe(target, scope="list", reason="one-click (RFC 8058)")
    return "Unsubscribed.\n", 200, {"Content-Type": "text/plain; charset=utf-8"}


def _unsubscribe(target: LinkTarget, *, scope: str, reason: str) -> None:
    if scope not in ("list", "all"):
        raise InvalidInput(f"unknown unsubscribe scope {scope!r} (expected list or all)")
    if target.email is None:
        return  # the subscriber was removed meanwhile: nothing left to end
    end_subscription(
        get_db(),
        target.email,
        list_slug=target.mlist.slug if scope == "list" else None,
        source="web",
        reason=reason,
        now=now(),
    )


# --- preferences ------------------------------------------------------------------------------


@bp.route("/p/<token>", methods=["GET", "POST"])
def preferences(token: str) -> ResponseReturnValue:
    enforce_limit("token")
    target = link_target(token, "preferences")
    if not target.exists:
        raise NotFound("this subscription no longer exists; subscribe again from the list's page")
    error = None
    if request.method == "POST":
        action = request.form.get("action", "save")
        if action in ("unsubscribe_list", "unsubscribe_all"):
            scope = "list" if action == "unsubscribe_list" else "all"
            _unsubscribe(target, scope=scope, reason="preferences page")
            return render_template(
                "unsubscribe.html",
                target=target,
                done=True,
                scope=scope,
                lang=target.mlist.language,
            )
        try:
            tags, frequency = parse_preferences(target.mlist, request.form)
        except InvalidInput as e:
            error = str(e)
        else:
            update_preferences(
                get_db(),
                target.token.subscriber_id,
                target.mlist.id,
                tags=tags,
                frequency=frequency,
                source="web",
                now=now(),
            )
            return redirect(url_for("public.preferences", token=token, saved=1))
    return (
        render_template(
            "preferences.html",
            target=target,
            error=error,
            saved=bool(request.args.get("saved")),
            frequencies=FREQUENCIES,
            lang=target.mlist.language,
        ),
        400 if error else 200,
    )


def parse_preferences(mlist: MailingList, form: MultiDict[str, str]) -> tuple[tuple[str, ...], str]:
    """Tags (display names, in the list's order; () = all of them) and frequency from a form
    with ``tag`` checkboxes (values are tag keys) and a ``frequency`` choice."""
    frequency = form.get("frequency", "")
    if frequency not in FREQUENCIES:
        raise InvalidInput("choose how often: daily or weekly")
    if not mlist.tags:
        return (), frequency
    chosen = set(form.getlist("tag"))
    unknown = chosen - set(mlist.tag_keys)
    if unknown:
        raise InvalidInput(f"unknown topic {sorted(unknown)[0]!r}; choose from the list shown")
    if not chosen:
        raise InvalidInput("choose at least one topic (or unsubscribe below)")
    if chosen == set(mlist.tag_keys):
        return (), frequency
    return tuple(
        name for name, key in zip(mlist.tags, mlist.tag_keys, strict=True) if key in chosen
    ), frequency
