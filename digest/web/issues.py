"""The editors' issue pages (editors and admins): each list's upcoming and recent issues, and one
issue date of a list with its note, subject, stories by section (pin to the top, drop, take
back), size against the budget per variant, approval and deliveries; with a link to its preview.

Each action is one call of ``delivery.publish`` (``shape_issue``, ``approve``), as ``digest
issues note|pin|drop|clear|approve`` makes it, with the same checks and messages: an edit
applies to every issue of the list dated that day (daily, and weekly on the weekly day), an
issue already built is rendered again at once, and a sent issue can no longer be changed (the
library refuses, naming it). Edits are recorded with the editor's name.
"""

from __future__ import annotations

from datetime import date

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from ..audience.lists import all_lists, get_list
from ..audience.records import FREQUENCIES
from ..delivery.publish import (
    DeliveryState,
    ShapeResult,
    approve,
    delivery_state,
    editor_issues,
    shape_issue,
)
from ..errors import DigestError, InvalidInput
from ..issues.approval import ApprovalStatus, IssueApproval, describe
from ..issues.edits import NOTE_LIMIT
from ..issues.overview import issue_overview
from ..issues.store import variants_of
from .auth import editor_required
from .context import get_db, now, web

bp = Blueprint("issues", __name__, url_prefix="/editor/issues")

ACTIONS = {"pin": "pinned", "drop": "dropped", "clear": "cleared"}


def issue_date(value: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(f"date {value!r}: expected the issue date as YYYY-MM-DD") from None


def issue_state(
    built: bool, approval: IssueApproval | None, deliveries: DeliveryState | None
) -> tuple[str, str]:
    """(words, badge class) for where an issue stands: not built, awaiting approval, sending,
    sent..."""
    if deliveries is not None and deliveries.sent:
        return f"sent to {deliveries.accepted:,}", "st-sent"
    if deliveries is not None and deliveries.owed:
        return f"sending: {deliveries.accepted:,} sent, {deliveries.owed:,} to go", "st-queued"
    if approval is not None and approval.status is not ApprovalStatus.APPROVED:
        if approval.status is ApprovalStatus.AWAITING:
            return "awaiting approval", "st-pending"
        return "skipped: not approved", "st-skipped"
    if approval is not None:
        return "approved", "st-active"
    if built:
        return "built, nothing queued", "st-skipped"
    return "not built yet", "st-unsubscribed"


def _by() -> str:
    return f"{g.user.name} (web)"


@bp.route("/")
@editor_required
def index() -> ResponseReturnValue:
    db = get_db()
    lists = [(m, editor_issues(db, m, now=now())) for m in all_lists(db)]
    return render_template("editor/issues.html", lists=lists, state=issue_state)


@bp.route("/<slug>/<day>/")
@editor_required
def issue(slug: str, day: str) -> ResponseReturnValue:
    db = get_db()
    mlist = get_list(db, slug)
    view = issue_overview(db, mlist, issue_date(day), now=now())
    built = {i.frequency: i.digest for i in view.issues if i.digest is not None}
    states = {f: delivery_state(db, d.id) for f, d in built.items()}
    variants = {f: variants_of(db, d.id) for f, d in built.items()}
    return render_template(
        "editor/issue.html",
        mlist=mlist,
        view=view,
        states=states,
        variants=variants,
        sent=[f for f, s in states.items() if s.sent],
        awaiting=ApprovalStatus.AWAITING,
        state=issue_state,
        describe=describe,
        budget=web().config.digest.html_budget,
        note_limit=NOTE_LIMIT,
    )


def _back(slug: str, day: str) -> ResponseReturnValue:
    return redirect(url_for("issues.issue", slug=slug, day=day), code=303)


def _report(first: str, result: ShapeResult) -> None:
    flash(first, "notice")
    for line in result.report_lines():
        flash(line, "notice")


@bp.route("/<slug>/<day>/note", methods=["POST"])
@editor_required
def note(slug: str, day: str) -> ResponseReturnValue:
    get_list(get_db(), slug)  # an unknown list or a bad date: an error page, not a flash
    when = issue_date(day)
    text = request.form.get("note", "")
    try:
        result = shape_issue(get_db(), web().config, slug, when, note=text,
                             by=_by(), now=now())  # fmt: skip
    except DigestError as e:
        flash(f"Not changed: {e}", "error")
        return _back(slug, day)
    _report("note set" if result.edits.note else "note removed", result)
    return _back(slug, day)


@bp.route("/<slug>/<day>/article", methods=["POST"])
@editor_required
def article(slug: str, day: str) -> ResponseReturnValue:
    """Pin, drop or clear (``action``) one article (``article_id``) in the issue."""
    get_list(get_db(), slug)  # an unknown list or a bad date: an error page, not a flash
    when = issue_date(day)
    action = request.form.get("action", "")
    raw_id = request.form.get("article_id", "").strip()
    try:
        if action not in ACTIONS:
            raise InvalidInput(f"unknown issue edit {action!r}: pin, drop or clear")
        if not (raw_id.isascii() and raw_id.isdigit() and len(raw_id) < 16):
            raise InvalidInput(f"article id {raw_id!r}: expected a number (the ids shown here)")
        article_id = int(raw_id)
        result = shape_issue(get_db(), web().config, slug, when,
                             article_id=article_id, action=action, by=_by(), now=now())  # fmt: skip
    except DigestError as e:
        flash(f"Not changed: {e}", "error")
        return _back(slug, day)
    _report(f"article {article_id} {ACTIONS[action]}", result)
    return _back(slug, day)


@bp.route("/<slug>/<day>/approve", methods=["POST"])
@editor_required
def approve_issue(slug: str, day: str) -> ResponseReturnValue:
    get_list(get_db(), slug)  # an unknown list or a bad date: an error page, not a flash
    when = issue_date(day)
    frequency = request.form.get("frequency") or None
    try:
        if frequency is not None and frequency not in FREQUENCIES:
            raise InvalidInput(f"frequency {frequency!r}: choose daily or weekly")
        approved = approve(get_db(), web().config, slug, when, by=_by(), now=now(),
                           frequency=frequency)  # fmt: skip
    except DigestError as e:
        flash(f"Not approved: {e}", "error")
        return _back(slug, day)
    for a in approved:
        flash(f"approved {slug}/{a.frequency}/{a.period_label}", "notice")
    return _back(slug, day)
