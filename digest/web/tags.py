"""The tags page (editors and admins): every tag with its article count, first and last article,
the lists whose digests show it and whether it is hidden; rename, merge, hide and show again;
the tag rules (add with the syntax of ``digest tags rule add``, remove) and applying them to the
stored articles; and how many articles have no tag.

Tags are editorial, as in the CLI (``digest tags``, the README's section for editors): they
decide which section a story lands in, like pinning and dropping, so editors have this page
too. A rename or merge carries the new name into the lists covering the tag and the topics
subscribers chose (``audience.listtags``), as ``digest tags rename|merge`` does; no address or
subscriber is shown or changed otherwise. Each action is one library call with the CLI's checks
and messages.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from ..articles import tagstore
from ..articles.tagrules import RuleField
from ..audience import listtags
from ..errors import DigestError, InvalidInput
from ..ingest.dates import parse_when
from .auth import editor_required
from .context import get_db, now

bp = Blueprint("tags", __name__, url_prefix="/editor/tags")

PAGE_SIZE = 40  # tags a page: each row has its hide button, and a page stays under 50 KB


def _page_number() -> int:
    try:
        return max(1, int(request.args.get("page", "1")))
    except ValueError:
        return 1


@bp.route("/")
@editor_required
def index() -> ResponseReturnValue:
    db = get_db()
    query = request.args.get("q", "").strip()
    found = listtags.tag_overview(db)
    if query:
        needle = query.casefold()
        found = [t for t in found if needle in t.stats.tag.name.casefold()]
    page = _page_number()
    start = (page - 1) * PAGE_SIZE

    def page_url(n: int) -> str:
        return url_for("tags.index", q=query or None, page=n)

    return render_template(
        "editor/tags.html",
        tags=found[start : start + PAGE_SIZE],
        total=len(found),
        query=query,
        prev_url=page_url(page - 1) if page > 1 else None,
        next_url=page_url(page + 1) if start + PAGE_SIZE < len(found) else None,
        untagged=tagstore.count_untagged(db),
        rules=tagstore.list_rules(db),
        fields=[f.value for f in RuleField],
    )


def _back() -> ResponseReturnValue:
    return redirect(url_for("tags.index"), code=303)


def _notices(lines: list[str]) -> ResponseReturnValue:
    for line in lines:
        flash(line, "notice")
    return _back()


def _refused(what: str, e: DigestError) -> ResponseReturnValue:
    flash(f"{what}: {e}", "error")
    return _back()


@bp.route("/rename", methods=["POST"])
@editor_required
def rename() -> ResponseReturnValue:
    old, new = request.form.get("old", ""), request.form.get("new", "")
    try:
        result = listtags.rename_tag(get_db(), old, new, now=now())
    except DigestError as e:
        return _refused("Not renamed", e)
    return _notices(result.report_lines())


@bp.route("/merge", methods=["POST"])
@editor_required
def merge() -> ResponseReturnValue:
    into, other = request.form.get("into", ""), request.form.get("other", "")
    try:
        result = listtags.merge_tags(get_db(), into, [other], now=now())
    except DigestError as e:
        return _refused("Not merged", e)
    return _notices(result.report_lines())


@bp.route("/hide", methods=["POST"])
@editor_required
def hide() -> ResponseReturnValue:
    """Hide (``hidden=1``) or show again (``hidden=0``) one tag."""
    hidden = request.form.get("hidden") == "1"
    try:
        found = tagstore.set_hidden(get_db(), request.form.get("tag", ""), hidden)
    except DigestError as e:
        return _refused("Not changed", e)
    if hidden:
        return _notices([f"hid {found.name}: never a section, never offered to subscribers"])
    return _notices([f"{found.name} is shown again"])


@bp.route("/rules/add", methods=["POST"])
@editor_required
def rule_add() -> ResponseReturnValue:
    form = request.form
    try:
        stored = tagstore.add_rule(
            get_db(),
            form.get("tag", ""),
            form.get("match", ""),
            field=form.get("field") or RuleField.TITLE.value,
            feed=form.get("feed", "").strip() or None,
            regex=form.get("regex") == "yes",
            now=now(),
        )
    except DigestError as e:
        return _refused("Rule not added", e)
    return _notices(
        [
            f"added rule {stored.describe()}",
            "it tags articles ingested from now on; “Apply the rules” tags stored ones",
        ]
    )


@bp.route("/rules/remove", methods=["POST"])
@editor_required
def rule_remove() -> ResponseReturnValue:
    raw = request.form.get("rule_id", "").strip()
    try:
        if not (raw.isascii() and raw.isdigit() and len(raw) < 16):
            raise InvalidInput(f"rule id {raw!r}: expected a number")
        stored = tagstore.remove_rule(get_db(), int(raw))
    except DigestError as e:
        return _refused("Rule not removed", e)
    return _notices(
        [
            f"removed rule {stored.describe()}",
            "“Apply the rules” takes the tags it gave off stored articles",
        ]
    )


@bp.route("/apply", methods=["POST"])
@editor_required
def apply() -> ResponseReturnValue:
    """Re-apply the rules to stored articles (or, with ``dry_run``, count what would change)."""
    dry_run = request.form.get("dry_run") == "yes"
    since = request.form.get("since", "").strip()
    try:
        report, names = tagstore.apply_rules(
            get_db(), since=parse_when(since, now()) if since else None, dry_run=dry_run
        )
    except DigestError as e:
        return _refused("Not applied", e)
    return _notices([("dry run: " if dry_run else "") + report.summary_line(names)])
