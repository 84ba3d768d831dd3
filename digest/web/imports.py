"""Admin pages for CSV files: import (upload -> dry-run report -> apply or cancel) and export
(one list's subscribers in the import format). Through ``digest.audience.csvfiles`` with source
``web``, so each address's history says the change came from the web pages, and which file;
applied through ``delivery.optin``, so the people a file adds as pending are asked to confirm
(the emails are queued with the batch and sent by the app's worker).

An uploaded CSV is kept in a private temporary file named by a random id that only this
session knows; "Apply" re-reads that same file, so what is applied is what the dry run showed
(unless the database changed in between). A new upload, apply or cancel deletes it. Every
message names the file as the admin uploaded it, never the server's temporary path.
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

from ..audience.csvfiles import ParsedFile, Report, apply_rows, parse_csv, write_csv
from ..audience.lists import MailingList, all_lists, get_list
from ..audience.subscriptions import list_counts
from ..delivery import optin
from ..errors import DigestError, InvalidInput
from .auth import admin_required
from .context import get_db, now, web

log = logging.getLogger(__name__)

bp = Blueprint("imports", __name__, url_prefix="/admin")

UPLOAD_MAX_AGE = 24 * 3600  # seconds an abandoned upload is kept
_UPLOADS = "digest-web-imports"


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


def _renamed(text: str, pending: dict[str, Any]) -> str:
    """``text`` with the server's temporary file (its path, or its name alone) replaced by the
    name of the file as the admin uploaded it."""
    path = _upload_path(pending["id"])
    return text.replace(str(path), pending["name"]).replace(path.name, pending["name"])


def _parse_upload(pending: dict[str, Any]) -> tuple[MailingList, ParsedFile]:
    """Parse the session's uploaded file for its list. Every message (whole-file errors,
    warnings, line problems) names the upload as the admin named it."""
    mlist = get_list(get_db(), pending["list"])
    path = _upload_path(pending["id"])
    if not path.exists():
        raise InvalidInput("the uploaded file is gone (it is kept for a day); upload it again")
    try:
        parsed = parse_csv(path, mlist)
    except DigestError as e:
        raise InvalidInput(_renamed(str(e), pending)) from None
    parsed.path = pending["name"]
    parsed.warnings = [_renamed(w, pending) for w in parsed.warnings]
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
        except DigestError as e:
            _forget_upload()
            error = _renamed(str(e), pending)
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
        imported = optin.apply_import(db, web().config, mlist, parsed,
                                      confirmed=pending["confirmed"], dry_run=False,
                                      source="web", now=now())  # fmt: skip
        (report,) = imported.reports
        if not isinstance(report, Report):
            raise report
        if report.asked:
            web().notices.wake()
    except DigestError as e:
        raise InvalidInput(_renamed(str(e), pending)) from None
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
    return redirect(url_for("imports.import_csv"), code=303)


@bp.route("/export")
@admin_required
def exports() -> ResponseReturnValue:
    db = get_db()
    rows = [(m, list_counts(db, m)) for m in all_lists(db)]
    return render_template("admin/exports.html", rows=rows)


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
