"""Admin pages for people: subscriber search (address or name; list, status and topic filters;
50 per page), one subscriber's page (subscriptions, history, deliveries, bounces), adding and
unsubscribing (each after a confirmation page), re-activating an ended subscription (with a
reason, recorded), and the suppression list (add; lift with a reason).

Everything goes through ``digest.audience`` with source ``web`` and the admin's name in the
reason, so the history of each address says the change came from the web pages and who made
it. The admission rule is the library's (``records.admit``): an address that unsubscribed,
bounced, complained or is suppressed is refused by "add", and the page then offers the
re-activation form instead of the refusal; the re-activation form asks the same rule what
ended the address. Someone added as pending is asked to confirm (``delivery.optin`` queues the
email with the subscription; the app's worker sends it).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from ..addresses import normalise_email
from ..audience.lists import MailingList, all_lists, get_list
from ..audience.records import ENDED, FREQUENCIES, LIVE, SubscriptionStatus
from ..audience.subscriptions import (
    Refused,
    find_subscription,
    get_subscriber,
    get_subscriber_by_id,
    search_subscriptions,
    subscriber_history,
    subscription_tags,
    unsubscribe,
    would_refuse,
)
from ..audience.suppressions import (
    count_suppressions,
    get_suppression,
    search_suppressions,
    suppress,
    unsuppress,
)
from ..delivery import ledger, optin
from ..errors import InvalidInput, NotFound
from ..feedback.events import list_events
from ..text import clean_name
from .auth import admin_required
from .context import get_db, now, web

bp = Blueprint("admin", __name__, url_prefix="/admin")

PAGE_SIZE = 50


def _who() -> str:
    return f"by admin {g.user.name} on the web"


def _page_number() -> int:
    try:
        return max(1, int(request.args.get("page", "1")))
    except ValueError:
        return 1


# --- search -------------------------------------------------------------------------------------


@bp.route("/subscribers")
@admin_required
def subscribers() -> ResponseReturnValue:
    db = get_db()
    lists = all_lists(db)
    query = request.args.get("q", "").strip()
    slug = request.args.get("list", "")
    status = request.args.get("status", "")
    tag = request.args.get("tag", "").strip()
    page = _page_number()
    mlist = get_list(db, slug) if slug else None
    statuses = [str(s) for s in SubscriptionStatus]
    if status and status not in statuses:
        raise InvalidInput(f"unknown status {status!r} (one of {', '.join(statuses)})")
    rows, more = search_subscriptions(
        db,
        query,
        list_id=mlist.id if mlist else None,
        status=status or None,
        tag=tag or None,
        page=page,
        page_size=PAGE_SIZE,
    )

    def page_url(n: int) -> str:
        return url_for("admin.subscribers", q=query, list=slug, status=status, tag=tag, page=n)

    topics = sorted({t for m in lists for t in m.tags}, key=str.casefold)
    return render_template(
        "admin/subscribers.html",
        lists=lists,
        rows=rows,
        query=query,
        slug=slug,
        status=status,
        tag=tag,
        topics=topics,
        statuses=statuses,
        frequencies=[str(f) for f in FREQUENCIES],
        page=page,
        prev_url=page_url(page - 1) if page > 1 else None,
        next_url=page_url(page + 1) if more else None,
    )


# --- one subscriber -----------------------------------------------------------------------------


@bp.route("/subscribers/<int:subscriber_id>")
@admin_required
def subscriber(subscriber_id: int) -> ResponseReturnValue:
    """Everything known about one subscriber: why are they (not) getting the digest?"""
    db = get_db()
    person = get_subscriber_by_id(db, subscriber_id)
    if person is None:
        raise NotFound(f"no subscriber with id {subscriber_id} (removed, or never existed)")
    history = subscriber_history(db, person.email)
    deliveries = ledger.deliveries_to(db, subscriber_id, limit=50)
    # Bounces and complaints: the reports received about the address (bounce mailbox and
    # webhooks), the status changes they caused, and the deliveries a relay refused outright.
    reports = list_events(db, email=person.email, limit=50)
    bounces = [e for e in history.events if e.new_status in ("bounced", "complained")]
    refused = [d for d in deliveries if d.status == "failed"]
    return render_template(
        "admin/subscriber.html",
        person=person,
        history=history,
        deliveries=deliveries,
        reports=reports,
        bounces=bounces,
        refused=refused,
        live=[str(s) for s in LIVE],
        ended=[str(s) for s in ENDED],
    )


def _subscriber_url(email: str) -> str:
    """The subscriber's page (the address in any letter case), or the search for the address if
    it has no subscriber row."""
    try:
        person = get_subscriber(get_db(), email)
    except NotFound:
        return url_for("admin.subscribers", q=email)
    return url_for("admin.subscriber", subscriber_id=person.id)


# --- add (with a confirmation page), re-activate ------------------------------------------------


def _add_form() -> dict[str, Any]:
    form = request.form
    return {
        "list": form.get("list", ""),
        "email": form.get("email", "").strip(),
        "name": form.get("name", ""),
        "tags": form.get("tags", ""),
        "frequency": form.get("frequency", ""),  # "": the list's default
        "confirmed": form.get("confirmed") == "yes",
    }


def _tag_list(text: str) -> list[str]:
    return [t for t in text.split(",") if t.strip()]


def _reactivate_page(
    mlist: MailingList,
    email: str,
    refusal: str,
    values: dict[str, Any],
    error: str | None = None,
    status: int = 409,
) -> ResponseReturnValue:
    """The re-activation form; 409 when "add" was refused, 400 with an error, else 200."""
    history = subscriber_history(get_db(), email)
    status = 400 if error else status
    return render_template(
        "admin/reactivate.html", mlist=mlist, email=email, refusal=refusal, values=values,
        history=history, error=error, frequencies=[str(f) for f in mlist.frequencies],
    ), status  # fmt: skip


@bp.route("/subscribers/add", methods=["POST"])
@admin_required
def add() -> ResponseReturnValue:
    """First post: checks the form and shows what will happen (a confirmation page, or the
    re-activation form for an ended address). Second post (``confirm=yes``): adds."""
    db = get_db()
    values = _add_form()
    try:
        mlist = get_list(db, values["list"])
        email = normalise_email(values["email"])
        tags = subscription_tags(mlist, _tag_list(values["tags"]))
        values["frequency"] = str(mlist.offered_frequency(values["frequency"]))
        clean_name(values["name"])
        if request.form.get("confirm") != "yes":
            refused = would_refuse(db, mlist, email)
            if refused is not None:
                return _reactivate_page(mlist, email, refused.detail, values)
            return render_template(
                "admin/add_confirm.html", mlist=mlist, email=email, values=values,
                topics=", ".join(mlist.tag_names(tags)) or "every topic",
                existing=_existing(mlist, email),
            )  # fmt: skip
        # Someone added as pending is asked to confirm: the email is queued with the
        # subscription and sent by the app's worker.
        added = optin.add_subscriber(
            db,
            web().config,
            mlist,
            email,
            name=values["name"] or None,
            tags=tags,
            frequency=values["frequency"],
            confirmed=values["confirmed"],
            source="web",
            reason=f"added {_who()}",
            now=now(),
        )
    except Refused as e:
        return _reactivate_page(mlist, e.email, e.detail, values)
    except (InvalidInput, NotFound) as e:
        flash(f"Not added: {e}", "error")
        return redirect(url_for("admin.subscribers"), code=303)
    sub = added.subscription
    if added.asked:
        web().notices.wake()
    asked = " A confirmation email is on its way." if added.asked else ""
    flash(f"{sub.email} is {sub.status} on {mlist.title} ({sub.frequency}).{asked}", "notice")
    return redirect(url_for("admin.subscriber", subscriber_id=sub.subscriber_id), code=303)


def _existing(mlist: MailingList, email: str) -> str | None:
    """What the confirmation page says about an address already known on the list."""
    try:
        sub = find_subscription(get_db(), mlist, email)
    except NotFound:
        return None
    return str(sub.status)


@bp.route("/subscribers/reactivate", methods=["GET", "POST"])
@admin_required
def reactivate() -> ResponseReturnValue:
    """Subscribe again an address whose subscription ended or that is suppressed, as active,
    with the admin's reason (required, recorded in the history): only for a person who asked
    for it (the admin has their consent)."""
    db = get_db()
    mlist = get_list(db, request.values.get("list", ""))
    email = normalise_email(request.values.get("email", ""))
    try:
        sub = find_subscription(db, mlist, email)
    except NotFound:
        sub = None
    kept = sub is not None and sub.frequency in mlist.frequencies
    values: dict[str, Any] = {
        "name": request.values.get("name", ""),
        "tags": request.values.get("tags", ", ".join(mlist.tag_names(sub.tags)) if sub else ""),
        "frequency": request.values.get(
            "frequency", str(sub.frequency) if sub and kept else str(mlist.default_frequency)
        ),
    }
    # What "add" would refuse, by the one admission rule (records.admit); nothing refused:
    # nothing to re-activate.
    refused = would_refuse(db, mlist, email)
    if refused is None:
        flash(f"{email} needs no re-activation: add it as usual.", "notice")
        return redirect(url_for("admin.subscribers", q=email), code=303)
    refusal = refused.detail
    if request.method == "GET":
        return _reactivate_page(mlist, email, refusal, values, status=200)
    reason = " ".join(request.form.get("reason", "").split())
    if not reason:
        return _reactivate_page(mlist, email, refusal, values,
                                error="Give the reason: it is kept in the address's history.")  # fmt: skip
    try:
        sub = optin.add_subscriber(
            db,
            web().config,
            mlist,
            email,
            name=values["name"] or None,
            tags=_tag_list(values["tags"]),
            frequency=values["frequency"],
            confirmed=True,
            source="web",
            force=True,
            reason=f"{reason} (re-activated {_who()})",
            now=now(),
        ).subscription
    except InvalidInput as e:
        return _reactivate_page(mlist, email, refusal, values, error=str(e))
    flash(f"{sub.email} is {sub.status} on {mlist.title} again.", "notice")
    return redirect(url_for("admin.subscriber", subscriber_id=sub.subscriber_id), code=303)


# --- unsubscribe (with a confirmation page) -----------------------------------------------------


@bp.route("/subscribers/unsubscribe", methods=["GET", "POST"])
@admin_required
def remove_from_list() -> ResponseReturnValue:
    db = get_db()
    slug = request.values.get("list") or None
    try:
        address = normalise_email(request.values.get("email", ""))
        mlist = get_list(db, slug) if slug else None
    except (InvalidInput, NotFound) as e:
        flash(f"Not unsubscribed: {e}", "error")
        return redirect(url_for("admin.subscribers"), code=303)
    if request.method == "GET" or request.form.get("confirm") != "yes":
        return render_template("admin/unsubscribe_confirm.html", email=address, mlist=mlist)
    reason = " ".join(request.form.get("reason", "").split())
    why = f"unsubscribed {_who()}" + (f": {reason}" if reason else "")
    try:
        changed = unsubscribe(db, address, list_slug=slug, source="web", reason=why, now=now())
    except (InvalidInput, NotFound) as e:
        flash(f"Not unsubscribed: {e}", "error")
        return redirect(url_for("admin.subscribers"), code=303)
    if changed:
        where = ", ".join(sub.list_slug for sub in changed)
        flash(f"{address} unsubscribed from {where}.", "notice")
    else:
        flash(f"{address} had no pending or active subscription to end.", "notice")
    return redirect(_subscriber_url(address), code=303)


# --- suppressions -------------------------------------------------------------------------------


@bp.route("/suppressions")
@admin_required
def suppressions() -> ResponseReturnValue:
    db = get_db()
    query = request.args.get("q", "").strip()
    return render_template(
        "admin/suppressions.html",
        rows=search_suppressions(db, query, limit=PAGE_SIZE * 2),
        total=count_suppressions(db),
        query=query,
        limit=PAGE_SIZE * 2,
    )


@bp.route("/suppressions/add", methods=["POST"])
@admin_required
def suppress_address() -> ResponseReturnValue:
    try:
        address = normalise_email(request.form.get("email", ""))
    except InvalidInput as e:
        flash(f"Not suppressed: {e}", "error")
        return redirect(url_for("admin.suppressions"), code=303)
    reason = " ".join(request.form.get("reason", "").split()) or None
    why = f"{reason or 'suppressed'} ({_who()})"
    if suppress(get_db(), address, why, source="web", now=now()):
        flash(f"suppressed {address}: it gets nothing from any list.", "notice")
    else:
        flash(f"{address} was already suppressed.", "notice")
    return redirect(url_for("admin.suppressions", q=address), code=303)


@bp.route("/suppressions/lift", methods=["GET", "POST"])
@admin_required
def lift() -> ResponseReturnValue:
    """A form asking why, then the suppression is lifted (its subscriptions stay as they are:
    an ended one needs the person's confirmation or a re-activation)."""
    db = get_db()
    address = normalise_email(request.values.get("email", ""))
    suppression = get_suppression(db, address)
    if suppression is None:
        raise NotFound(f"{address} is not on the suppression list")
    error = None
    if request.method == "POST":
        reason = " ".join(request.form.get("reason", "").split())
        try:
            unsuppress(db, address, reason=f"{reason} (lifted {_who()})" if reason else "",
                       source="web", now=now())  # fmt: skip
        except InvalidInput as e:
            error = str(e)
        else:
            flash(f"{address} is no longer suppressed.", "notice")
            return redirect(_subscriber_url(address), code=303)
    return render_template(
        "admin/lift.html", suppression=suppression, error=error
    ), 400 if error else 200
