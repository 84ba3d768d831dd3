"""Admin pages for mailing lists: the lists with their counts, a new list, a list's settings
(edit, its embeddable subscribe form, delete). Creating, editing and deleting call the same
library functions as ``digest lists create|edit|delete`` (``audience.lists``,
``audience.subscriptions.delete_list``), so the validation and its messages are the CLI's.

The form is built from ``LIST_FIELDS``: a setting added to lists is one more ``ListField`` here
(and the keyword the library takes), not a new template.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from .. import links
from ..audience import lists as lists_lib
from ..audience.lists import WEEKDAYS, MailingList, all_lists, get_list
from ..audience.subscriptions import delete_list, list_counts
from ..errors import InvalidInput
from ..issues.store import count_digests
from ..tokens import form_token
from .auth import admin_required
from .context import get_db, now, web

bp = Blueprint("lists", __name__, url_prefix="/admin/lists")


@dataclass(frozen=True)
class ListField:
    """One setting of a list on the form: its keyword in ``create_list`` / ``edit_list``, its
    label and help, and how it is entered ('text', 'textarea', 'weekday', 'check', 'tags')."""

    name: str
    label: str
    kind: str = "text"
    hint: str = ""
    required: bool = False

    def shown(self, mlist: MailingList | None) -> Any:
        """The field's value as the form shows it for ``mlist`` (None: a new list)."""
        if mlist is None:
            return {"timezone": "UTC", "send_time": "07:00", "weekly_day": "monday"}.get(
                self.name, False if self.kind == "check" else ""
            )
        value = getattr(mlist, self.name)
        if self.kind == "tags":
            return ", ".join(value)
        return value if value is not None else ("" if self.kind != "check" else False)

    def parse(self, form: MultiDict[str, str]) -> Any:
        """The keyword value for the library from the submitted form."""
        if self.kind == "check":
            return form.get(self.name) == "yes"
        value = form.get(self.name, "")
        if self.kind == "tags":
            return [t for t in value.split(",")]
        return value


LIST_FIELDS: tuple[ListField, ...] = (
    ListField("title", "Title", hint="Shown in digests and on the web pages.", required=True),
    ListField(
        "from_addr",
        "From",
        hint="Name <address@your-domain>: who the digest is from.",
        required=True,
    ),  # fmt: skip
    ListField("reply_to", "Reply-To", hint="Optional; empty: replies go to the From address."),
    ListField(
        "tags",
        "Topics",
        "tags",
        "Tags covered, comma-separated, in section order; empty: every tag.",
    ),  # fmt: skip
    ListField("timezone", "Timezone", hint="IANA name, e.g. Africa/Nairobi, Europe/Berlin, UTC."),
    ListField("send_time", "Send time", hint="HH:MM in 24-hour time, in the list's timezone."),
    ListField("weekly_day", "Weekly issue on", "weekday"),
    ListField("description", "Description", "textarea", "One paragraph for the subscribe page."),
    ListField(
        "private", "Private", "check", "Not on the home page; no archive index or Atom feed."
    ),  # fmt: skip
    # email-wiring: language, brand, subject pattern, intro and approval go here.
)


def _values(form: MultiDict[str, str]) -> dict[str, Any]:
    return {f.name: f.parse(form) for f in LIST_FIELDS}


def _form_page(
    mlist: MailingList | None, shown: dict[str, Any], error: str | None, status: int = 200
) -> ResponseReturnValue:
    context: dict[str, Any] = {
        "mlist": mlist,
        "fields": LIST_FIELDS,
        "shown": shown,
        "weekdays": WEEKDAYS,
        "error": error,
    }
    if mlist is not None:
        context.update(
            counts=list_counts(get_db(), mlist),
            digests=count_digests(get_db(), mlist.id),
            snippet=embed_snippet(mlist),
            archive_url=links.archive_url(request.script_root, mlist.slug),
        )
    return render_template("admin/list.html", **context), status


def embed_snippet(mlist: MailingList) -> str:
    """The HTML another site pastes to embed the list's subscribe form: it posts to
    ``/embed/<list>`` on ``[site] base_url`` with the list's signed form token and a honeypot
    field that people never see (a bot that fills every field gives itself away)."""
    return render_template(
        "embed_snippet.html",
        mlist=mlist,
        action=links.embed_url(web().config.base_url, mlist.slug),
        token=form_token(web().secret, mlist.id),
    ).strip()


@bp.route("/")
@admin_required
def index() -> ResponseReturnValue:
    db = get_db()
    rows = [(m, list_counts(db, m)) for m in all_lists(db)]
    return render_template("admin/lists.html", rows=rows)


@bp.route("/new", methods=["GET", "POST"])
@admin_required
def new() -> ResponseReturnValue:
    if request.method == "GET":
        shown = {f.name: f.shown(None) for f in LIST_FIELDS}
        return _form_page(None, {**shown, "slug": ""}, None)
    slug = request.form.get("slug", "").strip()
    values = _values(request.form)
    try:
        mlist = lists_lib.create_list(get_db(), slug, now=now(), **values)
    except InvalidInput as e:
        return _form_page(None, {**dict(request.form.items()), "slug": slug,
                                 "private": values["private"]}, str(e), 400)  # fmt: skip
    flash(f"Created list {mlist.slug} ({mlist.title}).", "notice")
    return redirect(url_for("lists.edit", slug=mlist.slug), code=303)


@bp.route("/<slug>", methods=["GET", "POST"])
@admin_required
def edit(slug: str) -> ResponseReturnValue:
    db = get_db()
    mlist = get_list(db, slug)
    if request.method == "GET":
        return _form_page(mlist, {f.name: f.shown(mlist) for f in LIST_FIELDS}, None)
    values = _values(request.form)
    try:
        mlist = lists_lib.edit_list(db, slug, now=now(), **values)
    except InvalidInput as e:
        shown = {**dict(request.form.items()), "private": values["private"]}
        return _form_page(mlist, shown, str(e), 400)
    flash(f"Saved list {mlist.slug}.", "notice")
    return redirect(url_for("lists.edit", slug=mlist.slug), code=303)


@bp.route("/<slug>/delete", methods=["GET", "POST"])
@admin_required
def delete(slug: str) -> ResponseReturnValue:
    """A confirmation page, then the delete. Live subscriptions end with the list, recorded in
    each address's history (source web, the admin's name)."""
    db = get_db()
    mlist = get_list(db, slug)
    counts = list_counts(db, mlist)
    live = counts.active + counts.pending
    if request.method == "GET" or request.form.get("confirm") != "yes":
        return render_template(
            "admin/list_delete.html", mlist=mlist, live=live, digests=count_digests(db, mlist.id)
        )
    outcome = delete_list(db, slug, now=now(), force=True, source="web",
                          reason=f"list deleted by admin {g.user.name} on the web")  # fmt: skip
    kept = " (its sent digests stay in the archive)" if outcome == "archived" else ""
    flash(f"Deleted list {slug}{kept}; {live} subscription(s) ended.", "notice")
    return redirect(url_for("lists.index"), code=303)
