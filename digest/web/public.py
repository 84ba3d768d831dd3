"""Public pages: the home page, and the signed-token links from every email (``digest.links``):
``/c/<token>`` confirm, ``/u/<token>`` unsubscribe, ``/p/<token>`` preferences.

No GET changes anything: link scanners (corporate mail filters, antivirus) fetch every URL in
a message, so confirm and unsubscribe pages show a button that POSTs. The exception is the
RFC 8058 one-click POST, which unsubscribes at once.

State changes go through the subscribers area (``digest.subscribers``), imported inside the
views.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from flask import Blueprint, redirect, render_template, request, url_for

from ..errors import InvalidInput, NotFound, TokenError
from ..lists import MailingList, all_lists, get_list_by_id
from ..tokens import Token, read_token
from . import enforce_limit, get_db, is_one_click_unsubscribe, now, web

bp = Blueprint("public", __name__)

FREQUENCIES = ("daily", "weekly")


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

    @property
    def exists(self) -> bool:
        return self.status is not None


def link_target(token: str, purpose: str) -> LinkTarget:
    """Verify ``token`` (TokenError -> 400 page) and look up what it points at."""
    tok = read_token(web().secret, token, purpose, now=now())
    db = get_db()
    try:
        mlist = get_list_by_id(db, tok.list_id)
    except NotFound:
        raise NotFound("the list this link belongs to no longer exists") from None
    rows = list(
        db.query(
            """
            SELECT p.email, p.name, s.status, s.frequency, s.tags
            FROM subscribers p
            LEFT JOIN subscriptions s ON s.subscriber_id = p.id AND s.list_id = ?
            WHERE p.id = ?
            """,
            [tok.list_id, tok.subscriber_id],
        )
    )
    row = rows[0] if rows else {}
    return LinkTarget(
        token=tok,
        mlist=mlist,
        email=row.get("email"),
        name=row.get("name"),
        status=row.get("status"),
        frequency=row.get("frequency"),
        tag_keys=tuple(json.loads(row.get("tags") or "[]")),
    )


@bp.route("/")
def home():
    return render_template("home.html", lists=all_lists(get_db()))


# --- confirm ----------------------------------------------------------------------------------


@bp.route("/c/<token>", methods=["GET", "POST"])
def confirm(token: str):
    enforce_limit("token")
    target = link_target(token, "confirm")
    if not target.exists:
        raise NotFound("this subscription no longer exists; subscribe again from the list's page")
    if request.method == "POST" and target.status == "pending":
        from ..subscribers import confirm_subscription

        confirm_subscription(
            get_db(), target.token.subscriber_id, target.mlist.id, source="web", now=now()
        )
        target = link_target(token, "confirm")
    return render_template("confirm.html", target=target, done=request.method == "POST")


# --- unsubscribe ------------------------------------------------------------------------------


@bp.route("/u/<token>", methods=["GET", "POST"])
def unsubscribe(token: str):
    if is_one_click_unsubscribe():
        return _one_click(token)
    enforce_limit("token")
    target = link_target(token, "unsubscribe")
    done = False
    if request.method == "POST" and target.status in ("pending", "active"):
        _unsubscribe(target, scope=request.form.get("scope", "list"), reason="unsubscribe page")
        done = True
    return render_template("unsubscribe.html", target=target, done=done)


def _one_click(token: str):
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
    if target.status in ("pending", "active"):
        _unsubscribe(target, scope="list", reason="one-click (RFC 8058)")
    return "Unsubscribed.\n", 200, {"Content-Type": "text/plain; charset=utf-8"}


def _unsubscribe(target: LinkTarget, *, scope: str, reason: str) -> None:
    from ..subscribers import unsubscribe

    if scope not in ("list", "all"):
        raise InvalidInput(f"unknown unsubscribe scope {scope!r} (expected list or all)")
    unsubscribe(
        get_db(),
        target.email,
        list_slug=target.mlist.slug if scope == "list" else None,
        source="web",
        reason=reason,
        now=now(),
    )


# --- preferences ------------------------------------------------------------------------------


@bp.route("/p/<token>", methods=["GET", "POST"])
def preferences(token: str):
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
            return render_template("unsubscribe.html", target=target, done=True, scope=scope)
        try:
            tags, frequency = parse_preferences(target.mlist, request.form)
        except InvalidInput as e:
            error = str(e)
        else:
            from ..subscribers import update_preferences

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
        ),
        400 if error else 200,
    )


def parse_preferences(mlist: MailingList, form) -> tuple[tuple[str, ...], str]:
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
