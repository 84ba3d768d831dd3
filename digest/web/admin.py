"""Admin pages for subscribers: search (by address or name, paginated), add, unsubscribe, CSV
import (upload -> dry-run report -> apply) and CSV export. Everything goes through
``digest.audience.subscriptions`` and ``digest.audience.csvfiles`` with source ``web``, so the history of each
address says the change came from the web pages and which admin made it.

An uploaded CSV is kept in a private temporary file named by a random id that only this
session knows; "Apply" re-reads that same file, so what is applied is what the dry run showed
(unless the database changed in between). A new upload, apply or cancel deletes it.
"""

from __future__ import annotations

import io
import logging
import os
import secrets
import stat
import tempfile
import time
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import FileStorage

from ..addresses import normalise_email
from ..audience.csvfiles import ParsedFile, apply_rows, parse_csv, write_csv
from ..audience.lists import MailingList, all_lists, get_list
from ..audience.records import FREQUENCIES, SubscriptionStatus
from ..audience.subscriptions import add_subscription, search_subscriptions, unsubscribe
from ..errors import InvalidInput, NotFound
from .auth import admin_required
from .context import get_db, now

log = logging.getLogger(__name__)

bp = Blueprint("admin", __name__, url_prefix="/admin")

PAGE_SIZE = 50
UPLOAD_MAX_AGE = 24 * 3600  # seconds an abandoned upload is kept
_UPLOADS = "digest-web-imports"


def _who() -> str:
    return f"by admin {g.user.name} on the web"


# --- search, add, unsubscribe ----------------------------------------------------------------


@bp.route("/subscribers")
@admin_required
def subscribers() -> ResponseReturnValue:
    db = get_db()
    lists = all_lists(db)
    query = request.args.get("q", "").strip()
    slug = request.args.get("list", "")
    status = request.args.get("status", "")
    try:
        page = max(1, int(request.args.get("page", "1")))
    except ValueError:
        page = 1
    mlist = get_list(db, slug) if slug else None
    statuses = [str(s) for s in SubscriptionStatus]
    if status and status not in statuses:
        raise InvalidInput(f"unknown status {status!r} (one of {', '.join(statuses)})")
    rows, more = search_subscriptions(
        db,
        query,
        list_id=mlist.id if mlist else None,
        status=status or None,
        page=page,
        page_size=PAGE_SIZE,
    )

    def page_url(n: int) -> str:
        return url_for("admin.subscribers", q=query, list=slug, status=status, page=n)

    return render_template(
        "admin/subscribers.html",
        lists=lists,
        rows=rows,
        query=query,
        slug=slug,
        status=status,
        statuses=statuses,
        frequencies=[str(f) for f in FREQUENCIES],
        page=page,
        prev_url=page_url(page - 1) if page > 1 else None,
        next_url=page_url(page + 1) if more else None,
    )


@bp.route("/subscribers/add", methods=["POST"])
@admin_required
def add() -> ResponseReturnValue:
    db = get_db()
    form = request.form
    address = form.get("email", "").strip()
    try:
        mlist = get_list(db, form.get("list", ""))
        tags = [t for t in form.get("tags", "").split(",") if t.strip()]
        sub = add_subscription(
            db,
            mlist,
            address,
            name=form.get("name") or None,
            tags=tags,
            frequency=form.get("frequency", "daily"),
            confirmed=form.get("confirmed") == "yes",
            source="web",
            reason=f"added {_who()}",
            now=now(),
        )
    except (InvalidInput, NotFound) as e:
        flash(f"Not added: {e}", "error")
        return redirect(url_for("admin.subscribers"), code=303)
    flash(f"{sub.email} is {sub.status} on {mlist.title} ({sub.frequency}).", "notice")
    return redirect(url_for("admin.subscribers", q=sub.email), code=303)


@bp.route("/subscribers/unsubscribe", methods=["POST"])
@admin_required
def remove_from_list() -> ResponseReturnValue:
    db = get_db()
    address = request.form.get("email", "")
    slug = request.form.get("list") or None
    try:
        address = normalise_email(address)
        changed = unsubscribe(
            db, address, list_slug=slug, source="web", reason=f"unsubscribed {_who()}", now=now()
        )
    except (InvalidInput, NotFound) as e:
        flash(f"Not unsubscribed: {e}", "error")
        return redirect(url_for("admin.subscribers"), code=303)
    if changed:
        where = ", ".join(sub.list_slug for sub in changed)
        flash(f"{address} unsubscribed from {where}.", "notice")
    else:
        flash(f"{address} had no pending or active subscription to end.", "notice")
    return redirect(url_for("admin.subscribers", q=address), code=303)


# --- CSV import and export -------------------------------------------------------------------


def uploads_dir() -> Path:
    """The folder for uploaded CSV files (subscribers' addresses): in the system's temporary
    folder, which other users can write to, so it is named per user and used only if it is a
    real folder of ours, private to us (0700). Anything else there is refused, never used."""
    path = Path(tempfile.gettempdir()) / f"{_UPLOADS}-{os.getuid()}"
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        info = os.lstat(path)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            raise InvalidInput(
                f"the upload folder {path} is not a folder owned by this user; remove it"
            )
        if stat.S_IMODE(info.st_mode) != 0o700:
            os.chmod(path, 0o700)  # ours but opened up (e.g. an older version, a umask of 000)
    except OSError as e:
        raise InvalidInput(f"the upload folder {path} cannot be used ({e.strerror})") from None
    return path


def _save_upload(upload: FileStorage, path: Path) -> None:
    """Write the uploaded file readable by its owner only (0600), never through a link."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        upload.save(f)


def _upload_path(upload_id: str) -> Path:
    return uploads_dir() / f"{upload_id}.csv"


def _forget_upload() -> None:
    pending = session.pop("import", None)
    if pending:
        _upload_path(pending["id"]).unlink(missing_ok=True)


def _sweep_uploads() -> None:
    # Housekeeping against the file system's own clock (file mtimes are wall-clock times).
    cutoff = time.time() - UPLOAD_MAX_AGE
    for path in uploads_dir().glob("*.csv"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except FileNotFoundError:
            pass


def _display_name(filename: str | None) -> str:
    name = os.path.basename((filename or "").replace("\\", "/")).strip()
    name = "".join(ch for ch in name if ch.isprintable())
    return name[:100] or "upload.csv"


def _parse_upload(pending: dict[str, Any]) -> tuple[MailingList, ParsedFile]:
    """Parse the session's uploaded file for its list; whole-file errors name the upload."""
    mlist = get_list(get_db(), pending["list"])
    path = _upload_path(pending["id"])
    if not path.exists():
        raise InvalidInput("the uploaded file is gone (it is kept for a day); upload it again")
    try:
        parsed = parse_csv(path, mlist)
    except InvalidInput as e:
        raise InvalidInput(str(e).replace(str(path), pending["name"])) from None
    parsed.path = pending["name"]
    return mlist, parsed


@bp.route("/import", methods=["GET", "POST"])
@admin_required
def import_csv() -> ResponseReturnValue:
    db = get_db()
    lists = all_lists(db)
    if request.method == "GET":
        return render_template("admin/import.html", lists=lists, report=None, error=None)
    _forget_upload()
    _sweep_uploads()
    upload = request.files.get("file")
    slug = request.form.get("list", "")
    confirmed = request.form.get("confirmed") == "yes"
    error = None
    if upload is None or not upload.filename:
        error = "choose a CSV file to upload"
    else:
        pending: dict[str, Any] = {
            "id": secrets.token_urlsafe(18),
            "name": _display_name(upload.filename),
            "list": slug,
            "confirmed": confirmed,
        }
        _save_upload(upload, _upload_path(pending["id"]))
        session["import"] = pending
        try:
            mlist, parsed = _parse_upload(pending)
            report = apply_rows(db, mlist, parsed, confirmed=confirmed, dry_run=True,
                                source="web", now=now())  # fmt: skip
        except (InvalidInput, NotFound) as e:
            _forget_upload()
            error = str(e)
        else:
            return render_template(
                "admin/import.html", lists=lists, report=report, pending=pending, error=None,
                mlist=mlist,
            )  # fmt: skip
    return render_template("admin/import.html", lists=lists, report=None, error=error), 400


@bp.route("/import/apply", methods=["POST"])
@admin_required
def import_apply() -> ResponseReturnValue:
    db = get_db()
    pending = session.get("import")
    if not pending or request.form.get("upload") != pending["id"]:
        raise InvalidInput(
            "this import is no longer waiting to be applied (applied, cancelled, or replaced "
            "by a newer upload); upload the file again"
        )
    try:
        mlist, parsed = _parse_upload(pending)
        report = apply_rows(db, mlist, parsed, confirmed=pending["confirmed"], dry_run=False,
                            source="web", now=now())  # fmt: skip
    finally:
        _forget_upload()
    log.info("%s imported %s into %s: %s", g.user.name, pending["name"], mlist.slug,
             report.summary())  # fmt: skip
    return render_template(
        "admin/import.html", lists=all_lists(db), report=report, pending=None, error=None,
        mlist=mlist,
    )  # fmt: skip


@bp.route("/import/cancel", methods=["POST"])
@admin_required
def import_cancel() -> ResponseReturnValue:
    _forget_upload()
    flash("Import cancelled; nothing was written.", "notice")
    return redirect(url_for("admin.import_csv"), code=303)


@bp.route("/lists/<slug>/export.csv")
@admin_required
def export_csv(slug: str) -> ResponseReturnValue:
    db = get_db()
    mlist = get_list(db, slug, include_deleted=True)
    out = io.StringIO()
    write_csv(db, mlist.slug, out)
    headers = {
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="{mlist.slug}.csv"',
    }
    return out.getvalue(), 200, headers
