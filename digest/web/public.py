"""Public pages: the home page, the subscribe form, and the signed-token links from every
email (``digest.links``): ``/c/<token>`` confirm, ``/u/<token>`` unsubscribe, ``/p/<token>``
preferences, with ``/p/<token>/data.json`` (download what is stored about me) and
``/p/<token>/delete`` (delete it).

No GET changes anything: link scanners (corporate mail filters, antivirus) fetch every URL in
a message, so confirm and unsubscribe pages show a button that POSTs. The exception is the
RFC 8058 one-click POST, which unsubscribes at once. An expired confirmation link offers a new
one (a button); the unsubscribe page offers weekly instead of daily before the unsubscribe, and
"resubscribe" (a new confirmation email) after it; deleting one's data needs the signed link,
a POST with the form's CSRF token and a ticked confirmation.

State changes go through the audience stage (``audience.subscriptions``), and the subscribe
form through ``delivery.notices``, which only queues the confirmation email (the app's worker
thread sends it), so every outcome of the form gets the same answer in the same time. The
archive is in ``archive``, the embeddable subscribe form in ``embed``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from .. import links
from ..addresses import normalise_email
from ..audience.lists import MailingList, all_lists, get_list, get_list_by_id
from ..audience.listtags import offered_tags
from ..audience.records import ENDED, LIVE, Frequency
from ..audience.subscriptions import (
    RequestedChoices,
    get_subscriber_by_id,
    get_subscription,
    requested_choices,
    update_preferences,
)
from ..audience.subscriptions import unsubscribe as end_subscription
from ..delivery import optin, rights
from ..delivery.notices import request_subscription
from ..errors import InvalidInput, NotFound, TokenError
from ..timeutil import from_iso
from ..tokens import Token, TokenExpired, make_token, read_token
from .context import enforce_limit, get_db, is_one_click_unsubscribe, now, web

log = logging.getLogger(__name__)

bp = Blueprint("public", __name__)


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
    requested: RequestedChoices | None = None  # a subscribe form's choices awaiting this link

    @property
    def exists(self) -> bool:
        return self.status is not None

    @property
    def new_choices(self) -> RequestedChoices | None:
        """Choices from the subscribe form that sent this confirmation link, if any."""
        if self.requested is not None and self.requested.matches(self.token.issued_at):
            return self.requested
        return None

    @property
    def can_confirm(self) -> bool:
        """A pending subscription can be confirmed. An ended one (unsubscribed, bounced,
        complained) only with a link issued after it ended: a new subscribe request, never an
        old confirmation email from before the person unsubscribed. An active one when the
        link carries new choices from the subscribe form."""
        if self.status == "pending":
            return True
        if self.status in ENDED and self.updated_at:
            ended = int(from_iso(self.updated_at).timestamp())
            return int(self.token.issued_at.timestamp()) >= ended
        return self.status == "active" and self.new_choices is not None

    @property
    def can_have_weekly(self) -> bool:
        """The list offers weekly and this subscriber gets daily: "fewer emails" is possible."""
        return Frequency.WEEKLY in self.mlist.frequencies and self.frequency != Frequency.WEEKLY

    def topic_names(self, keys: tuple[str, ...]) -> str:
        return ", ".join(self.mlist.tag_names(keys)) or "all topics"


def link_target(token: str, purpose: str) -> LinkTarget:
    """Verify ``token`` (TokenError -> 400 page) and look up what it points at."""
    return _target(read_token(web().secret, token, purpose, now=now()))


def _target(tok: Token) -> LinkTarget:
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
        requested=requested_choices(db, tok.subscriber_id, tok.list_id) if sub else None,
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
        for mlist in all_lists(get_db(), public_only=True)
    ]
    return render_template("home.html", lists=lists)


# --- subscribe --------------------------------------------------------------------------------


@bp.route("/subscribe/<slug>", methods=["GET", "POST"])
def subscribe(slug: str) -> ResponseReturnValue:
    mlist = get_list(get_db(), slug)
    form: dict[str, Any] = {
        "email": "", "name": "", "tags": (), "frequency": mlist.default_frequency
    }  # fmt: skip
    error: InvalidInput | None = None
    if request.method == "POST":
        enforce_limit("subscribe")
        form = {
            "email": request.form.get("email", "").strip(),
            "name": request.form.get("name", ""),
            "tags": tuple(request.form.getlist("tag")),
            "frequency": request.form.get("frequency", ""),
        }
        try:
            check_address(form["email"])  # the address first: it is the field most often wrong
            tags, frequency = parse_preferences(mlist, request.form, offered_tags(get_db(), mlist))
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
            error = e  # said in the list's language by form_error.html
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
            frequencies=mlist.frequencies,
            lang=mlist.language,
            topics=offered_tags(get_db(), mlist),
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


# --- confirm ----------------------------------------------------------------------------------


@bp.route("/c/<token>", methods=["GET", "POST"])
def confirm(token: str) -> ResponseReturnValue:
    enforce_limit("token")
    try:
        target = link_target(token, "confirm")
    except TokenExpired as e:
        return _expired_confirmation(e)
    if not target.exists:
        raise NotFound("this subscription no longer exists; subscribe again from the list's page")
    done = None
    if request.method == "POST" and target.can_confirm:
        choices = target.new_choices
        done = optin.confirm_by_link(get_db(), web().config, target.token, now=now())
        if done.welcomed:
            web().notices.wake()
        # Shown on the page: the choices this confirmation just applied.
        target = dataclasses.replace(link_target(token, "confirm"), requested=choices)
    prefs = preferences_path(target) if target.status == "active" else None
    return render_template(
        "confirm.html", target=target, done=done, prefs_url=prefs, lang=target.mlist.language
    )


def _expired_confirmation(error: TokenExpired) -> ResponseReturnValue:
    """An expired confirmation link (older than 7 days) offers a new one: a button that queues
    a new confirmation email to the same address, with the same choices."""
    target = _target(error.token)
    sent = False
    if request.method == "POST" and request.form.get("action") == "resend":
        if target.email is not None and target.status is not None:
            _ask_again(target, frequency=target.frequency)
        sent = True
    page = render_template("confirm_expired.html", target=target, error=str(error), sent=sent,
                           lang=target.mlist.language)  # fmt: skip
    return page, 200 if sent else 400


def _ask_again(target: LinkTarget, *, frequency: str | None) -> None:
    """Queue a new confirmation email to the target's address, as if they had filled in the
    subscribe form with their current topics and ``frequency``: the same rules apply (nothing
    for a bounced or suppressed address; a pending or expired one is asked again; an active or
    unsubscribed one gets the choices once they follow the new link)."""
    assert target.email is not None
    result = request_subscription(get_db(), web().config, target.mlist, target.email,
                                  name=target.name, tags=target.tag_keys, frequency=frequency,
                                  now=now())  # fmt: skip
    log.info("new confirmation for %s on %s: %s", result.email, target.mlist.slug, result.note)
    web().notices.wake()


# --- unsubscribe ------------------------------------------------------------------------------


@bp.route("/u/<token>", methods=["GET", "POST"])
def unsubscribe(token: str) -> ResponseReturnValue:
    if is_one_click_unsubscribe():
        return _one_click(token)
    enforce_limit("token")
    target = link_target(token, "unsubscribe")
    done = None
    if request.method == "POST":
        action = request.form.get("action", "unsubscribe")
        if action == "weekly" and target.status in LIVE and target.can_have_weekly:
            # Fewer emails instead of none: the same subscription, weekly.
            update_preferences(get_db(), target.token.subscriber_id, target.mlist.id,
                               tags=target.tag_keys, frequency=Frequency.WEEKLY, source="web",
                               now=now())  # fmt: skip
            done = "weekly"
        elif action in ("resubscribe", "resubscribe_weekly") and target.exists:
            weekly = action == "resubscribe_weekly" and Frequency.WEEKLY in target.mlist.frequencies
            _ask_again(target, frequency=Frequency.WEEKLY if weekly else target.frequency)
            done = "asked"
        elif action == "unsubscribe" and target.status in LIVE:
            _unsubscribe(target, scope=request.form.get("scope", "list"), reason="unsubscribe page")
            done = "unsubscribed"
        target = link_target(token, "unsubscribe")
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
    error: InvalidInput | None = None
    if request.method == "POST":
        action = request.form.get("action", "save")
        if action in ("unsubscribe_list", "unsubscribe_all"):
            scope = "list" if action == "unsubscribe_list" else "all"
            _unsubscribe(target, scope=scope, reason="preferences page")
            target = link_target(token, "preferences")
            return render_template(
                "unsubscribe.html",
                target=target,
                done="unsubscribed",
                scope=scope,
                lang=target.mlist.language,
            )
        if action == "resubscribe":
            _ask_again(target, frequency=target.frequency)
            return render_template(
                "unsubscribe.html", target=target, done="asked", lang=target.mlist.language
            )
        try:
            topics = offered_tags(get_db(), target.mlist)
            tags, frequency = parse_preferences(target.mlist, request.form, topics)
        except InvalidInput as e:
            error = e  # said in the list's language by form_error.html
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
            frequencies=target.mlist.frequencies,
            lang=target.mlist.language,
            topics=offered_tags(get_db(), target.mlist),
        ),
        400 if error else 200,
    )


@bp.route("/p/<token>/data.json")
def my_data(token: str) -> ResponseReturnValue:
    """Everything stored about the subscriber this link is for, as a JSON download."""
    enforce_limit("token")
    target = link_target(token, "preferences")
    if target.email is None:
        raise NotFound("there is no data about this subscriber any more")
    data = rights.subscriber_export(get_db(), target.token.subscriber_id, now=now())
    body = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    return (
        body,
        200,
        {
            "Content-Type": "application/json; charset=utf-8",
            "Content-Disposition": 'attachment; filename="my-subscription-data.json"',
        },
    )


@bp.route("/p/<token>/delete", methods=["GET", "POST"])
def delete_my_data(token: str) -> ResponseReturnValue:
    """Delete everything stored about the subscriber (a POST with the CSRF token and the
    confirmation box ticked); the address stays only as a hash on the suppression list."""
    enforce_limit("token")
    target = link_target(token, "preferences")
    lang = target.mlist.language
    if target.email is None:
        return render_template("delete_data.html", target=target, deleted=True, lang=lang)
    unticked = False
    if request.method == "POST":
        if request.form.get("confirm") != "yes":
            unticked = True
        else:
            rights.erase(get_db(), target.token.subscriber_id, now=now())
            log.info("subscriber %d deleted their data", target.token.subscriber_id)
            return render_template("delete_data.html", target=target, deleted=True, lang=lang)
    page = render_template("delete_data.html", target=target, deleted=False, unticked=unticked,
                           lang=lang)  # fmt: skip
    return page, 400 if unticked else 200


class FormProblem(InvalidInput):
    """What is wrong with a subscriber's form, by ``code``, so that the page says it in the
    list's language (``templates/web/form_error.html``); the message stays English for logs.
    Codes: email, frequency, topic (``value`` the unknown one), no_topic."""

    def __init__(self, code: str, message: str, value: str = ""):
        super().__init__(message)
        self.code = code
        self.value = value


def frequency_problem(mlist: MailingList) -> FormProblem:
    """The problem of a form that asks for a frequency ``mlist`` does not offer."""
    return FormProblem("frequency", f"choose how often: {' or '.join(mlist.frequencies)}")


def check_address(text: str) -> None:
    """``FormProblem`` ("email") if ``text`` is not an address we can mail."""
    try:
        normalise_email(text)
    except InvalidInput as e:
        raise FormProblem("email", str(e), value=text) from None


def parse_preferences(
    mlist: MailingList, form: MultiDict[str, str], topics: list[tuple[str, str]]
) -> tuple[tuple[str, ...], str]:
    """Tags (display names, in the list's order; () = all of them) and frequency (one the list
    offers) from a form with ``tag`` checkboxes (values are tag keys) and a ``frequency``
    choice. ``topics`` are the (key, name) pairs the page offered (``listtags.offered_tags``);
    ticking all of them is all of the list's tags, including those not offered yet."""
    frequency = form.get("frequency", "")
    if frequency not in mlist.frequencies:
        raise frequency_problem(mlist)
    if not mlist.tags or not topics:
        return (), frequency
    keys = {key for key, _ in topics}
    chosen = set(form.getlist("tag"))
    unknown = chosen - keys
    if unknown:
        first = sorted(unknown)[0]
        raise FormProblem(
            "topic", f"unknown topic {first!r}; choose from the list shown", value=first
        )
    if not chosen:
        raise FormProblem("no_topic", "choose at least one topic (or unsubscribe below)")
    if chosen == keys:
        return (), frequency
    return tuple(name for key, name in topics if key in chosen), frequency
