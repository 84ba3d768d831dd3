"""Pages for logged-in staff: the editor landing page (lists and recently built digests) and
the admin overview (lists with subscriber counts by status, staff accounts)."""

from __future__ import annotations

from flask import Blueprint, render_template

from .. import users
from ..lists import all_lists
from ..subscribers import STATUSES
from . import get_db
from .auth import admin_required, editor_required

bp = Blueprint("staff", __name__)


@bp.route("/editor/")
@editor_required
def home():
    db = get_db()
    digests = list(
        db.query(
            """
            SELECT d.id, l.slug, l.title, d.frequency, d.period_label, d.built_at,
                   (SELECT count(*) FROM variants v WHERE v.digest_id = d.id) AS variants
            FROM digests d JOIN lists l ON l.id = d.list_id
            ORDER BY d.period_start DESC, l.slug, d.frequency
            LIMIT 50
            """
        )
    )
    return render_template("editor/index.html", lists=all_lists(db), digests=digests)


@bp.route("/admin/")
@admin_required
def admin_home():
    db = get_db()
    counts: dict[int, dict[str, int]] = {}
    for row in db.query(
        "SELECT list_id, status, count(*) AS n FROM subscriptions GROUP BY list_id, status"
    ):
        counts.setdefault(row["list_id"], {})[row["status"]] = row["n"]
    return render_template(
        "admin/index.html",
        lists=all_lists(db),
        counts=counts,
        statuses=STATUSES,
        suppressed=db.execute("SELECT count(*) FROM suppressions").fetchone()[0],
    )


@bp.route("/admin/users")
@admin_required
def admin_users():
    return render_template("admin/users.html", users=users.list_users(get_db()))
