"""Admin pages for mailing lists: the lists with their counts, a new list, a list's settings
(edit, its embeddable subscribe form, delete). Creating, editing and deleting call the same
library functions as ``digest lists create|edit|delete`` (``audience.lists``,
``audience.listtags.edit_list_checked``, ``audience.subscriptions.delete_list``), so the
validation and its messages are the CLI's; a list that stops offering a frequency moves its
subscribers to the remaining one, and the page says how many.

The form is built from ``LIST_FIELDS``: a setting added to lists is one more ``ListField`` here
(and the keyword the library takes), not a new template.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from itertools import groupby
from operator import attrgetter
from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from .. import links
from ..audience import lists as lists_lib
from ..audience.branding import DEFAULT_ACCENT
from ..audience.lists import WEEKDAYS, ImageMode, LookChanges, MailingList, all_lists, get_list
from ..audience.listtags import edit_list_checked
from ..audience.subscriptions import delete_list, list_counts
from ..errors import InvalidInput
from ..issues.store import count_digests
from ..tokens import form_token
from .auth import admin_required
from .context import get_db, now, web

bp = Blueprint("lists", __name__, url_prefix="/admin/lists")


@dataclass(frozen=True)
class ListField:
    """One setting of a list on the form: its keyword in ``create_list`` / ``edit_list`` (or, with
    ``look``, in their ``LookChanges``), its label and help, how it is entered ('text',
    'textarea', 'weekday', 'check', 'tags', 'choice') and the form's section."""

    name: str
    label: str
    kind: str = "text"
    hint: str = ""
    required: bool = False
    look: bool = False
    choices: tuple[str, ...] = ()
    section: str = "Sending"
    optional: bool = False  # not on the submitted form: left as it is (the library's None)

    def shown(self, mlist: MailingList | None) -> Any:
        """The field's value as the form shows it for ``mlist`` (None: a new list)."""
        if mlist is None:
            return NEW_LIST.get(self.name, False if self.kind == "check" else "")
        if self.look:
            return _look_shown(mlist, self.name)
        value = getattr(mlist, self.name)
        if self.kind == "tags":
            return ", ".join(value)
        if isinstance(value, tuple):  # the frequencies offered, as the choice spells them
            return ",".join(value)
        return value if value is not None else ("" if self.kind != "check" else False)

    def parse(self, form: MultiDict[str, str]) -> Any:
        """The keyword value for the library from the submitted form."""
        if self.kind == "check":
            return form.get(self.name) == "yes"
        if (self.look or self.optional) and self.name not in form:
            return None  # not on the form that was sent: left as it is
        value = form.get(self.name, "")
        if self.kind == "tags":
            return [t for t in value.split(",")]
        return value


NEW_LIST = {
    "timezone": "UTC",
    "send_time": "07:00",
    "weekly_day": "monday",
    "frequencies": "daily,weekly",
    "default_frequency": "daily",
    "language": "en",
    "images": "none",
    "approval_lead": "2h",
    "approval_deadline": "1h",
}
LOOK = "Look"
APPROVAL = "Approval"
SECTION = attrgetter("section")

LIST_FIELDS: tuple[ListField, ...] = (
    ListField("title", "Title", hint="Shown in digests and on the web pages.", required=True),
    ListField(
        "from_addr", "From", hint="Name <address@your-domain>: who the digest is from.",
        required=True,
    ),
    ListField("reply_to", "Reply-To", hint="Optional; empty: replies go to the From address."),
    ListField(
        "tags", "Topics", "tags",
        "Tags covered, comma-separated, in section order; empty: every tag.",
    ),
    ListField("timezone", "Timezone", hint="IANA name, e.g. Africa/Nairobi, Europe/Berlin, UTC."),
    ListField("send_time", "Send time", hint="HH:MM in 24-hour time, in the list's timezone."),
    ListField("weekly_day", "Weekly issue on", "weekday"),
    ListField(
        "frequencies", "Frequencies offered", "choice",
        "What subscribers may choose; fewer: their subscribers move to the remaining one.",
        choices=("daily,weekly", "daily", "weekly"), optional=True,
    ),
    ListField(
        "default_frequency", "Default frequency", "choice",
        "What a new subscriber gets unless they choose; one the list offers.",
        choices=("daily", "weekly"), optional=True,
    ),
    ListField("description", "Description", "textarea", "One paragraph for the subscribe page."),
    ListField(
        "private", "Private", "check", "Not on the home page; no archive index or Atom feed."
    ),
    ListField(
        "language", "Language", hint="Of the emails and subscriber pages: en, fr, es, pt, sw ...",
        look=True, section=LOOK,
    ),
    ListField(
        "images", "Images", "choice", "Stories' lead images.", look=True,
        choices=tuple(m.value for m in ImageMode), section=LOOK,
    ),
    ListField("logo_url", "Logo URL", hint="https://…; empty: no logo.", look=True, section=LOOK),
    ListField(
        "logo_size", "Logo size", hint="WIDTHxHEIGHT in pixels, e.g. 180x40.", look=True,
        section=LOOK,
    ),
    ListField(
        "accent", "Accent colour", hint="#RRGGBB, readable on white (4.5:1); empty: the default.",
        look=True, section=LOOK,
    ),
    ListField(
        "subject_pattern", "Subject",
        hint="{top} {tags} {date} {list} {site} {frequency} {count}; empty: the default.",
        look=True, section=LOOK,
    ),
    ListField(
        "intro", "Intro", "textarea", "At the top of every issue without a note.", look=True,
        section=LOOK,
    ),
    ListField("footer_text", "Footer", "textarea", look=True, section=LOOK),
    ListField(
        "postal_address", "Postal address", "textarea",
        "In the footer; commercial mail needs one (CAN-SPAM).", look=True, section=LOOK,
    ),
    ListField(
        "approval", "Approval", "check", "Editors approve each issue before it is sent.",
        look=True, section=APPROVAL,
    ),
    ListField(
        "approval_lead", "Built ahead by",
        hint="How long before the send time an issue is built for approval: 2h, 90m.",
        look=True, section=APPROVAL,
    ),
    ListField(
        "approval_deadline", "Approval accepted until",
        hint="How long after the send time: 1h, 30m.", look=True, section=APPROVAL,
    ),
    ListField(
        "editors", "Editors", hint="Addresses told when an issue awaits approval, comma-separated.",
        look=True, section=APPROVAL,
    ),
)  # fmt: skip


def _duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"


def _look_shown(mlist: MailingList, name: str) -> Any:
    """The current value of a look or approval setting, as the form shows it."""
    brand, look, approval = mlist.brand, mlist.look, mlist.approval
    size = f"{brand.logo_width}x{brand.logo_height}" if brand.logo_url and brand.logo_height else ""
    values: dict[str, Any] = {
        "language": look.language,
        "images": look.images.value,
        "logo_url": brand.logo_url or "",
        "logo_size": size,
        "accent": "" if brand.accent == DEFAULT_ACCENT else brand.accent,
        "subject_pattern": look.subject_pattern or "",
        "intro": look.intro or "",
        "footer_text": brand.footer_text or "",
        "postal_address": brand.postal_address or "",
        "approval": approval.required,
        "approval_lead": _duration(approval.lead),
        "approval_deadline": _duration(approval.deadline),
        "editors": ", ".join(approval.editors),
    }
    return values[name]


def _as_sent(form: MultiDict[str, str]) -> dict[str, Any]:
    """The form as submitted, to show it again with the error."""
    checks = {f.name: f.parse(form) for f in LIST_FIELDS if f.kind == "check"}
    return {**dict(form.items()), **checks}


def _values(form: MultiDict[str, str]) -> dict[str, Any]:
    """The keywords of ``create_list`` / ``edit_list`` from the form, the look's in one
    ``LookChanges`` (an emptied optional setting is removed)."""
    values = {f.name: f.parse(form) for f in LIST_FIELDS if not f.look}
    values["look"] = LookChanges(**{f.name: f.parse(form) for f in LIST_FIELDS if f.look})
    return values


def _form_page(
    mlist: MailingList | None, shown: dict[str, Any], error: str | None, status: int = 200
) -> ResponseReturnValue:
    context: dict[str, Any] = {
        "mlist": mlist,
        "sections": [(name, list(group)) for name, group in groupby(LIST_FIELDS, SECTION)],
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
        return _form_page(None, {**_as_sent(request.form), "slug": slug}, str(e), 400)
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
        edited = edit_list_checked(db, slug, now=now(), source="web", **values)
    except InvalidInput as e:
        return _form_page(mlist, _as_sent(request.form), str(e), 400)
    mlist = edited.mlist
    moved = "".join(
        f" {n} subscriber(s) moved to {frequency}: the list no longer offers their frequency."
        for frequency, n in edited.frequency_moves.items()
    )
    if edited.orphans:
        moved += (f" {len(edited.orphans)} subscriber(s) follow only topics the list no longer"
                  " covers and will get nothing.")  # fmt: skip
    flash(f"Saved list {mlist.slug}.{moved}", "notice")
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
