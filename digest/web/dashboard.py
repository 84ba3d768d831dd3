"""The admin dashboard (``/admin/``): each list's subscribers by status with their growth over
the last 30 days, the last issues with their delivery outcomes, the scheduler's status and next
issues (what ``digest status`` prints, from ``scheduler.status``), and relay health (the last
send errors of digests and confirmation emails). Reads only."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue

from ..audience.growth import active_growth
from ..audience.lists import all_lists
from ..audience.records import SubscriptionStatus
from ..audience.subscriptions import counts_by_list
from ..audience.suppressions import count_suppressions
from ..delivery import ledger
from ..delivery.notices import queued_notices, recent_notice_errors
from ..feedback.events import FeedbackCounts, counts_by_digest
from ..scheduler.status import scheduler_status
from .auth import admin_required
from .context import get_db, now, web
from .look import sparkline

bp = Blueprint("dashboard", __name__)

GROWTH_DAYS = 30
RECENT_ISSUES = 10
# Delivery outcomes in the order the table shows them; then bounce reports and complaints about
# the issue's deliveries (``feedback.events.counts_by_digest``).
OUTCOMES = ("queued", "sent", "deferred", "failed", "skipped")


@bp.route("/admin/")
@admin_required
def home() -> ResponseReturnValue:
    db = get_db()
    lists = all_lists(db)
    growth = active_growth(db, lists, now=now(), days=GROWTH_DAYS)
    issues = ledger.recent_outcomes(db, limit=RECENT_ISSUES)
    feedback = counts_by_digest(db, [i.digest_id for i in issues])
    return render_template(
        "admin/index.html",
        lists=lists,
        counts=counts_by_list(db),
        statuses=[str(s) for s in SubscriptionStatus],
        growth=growth,
        sparks={list_id: sparkline(g.counts) for list_id, g in growth.items()},
        growth_days=GROWTH_DAYS,
        suppressed=count_suppressions(db),
        issues=issues,
        feedback={i.digest_id: feedback.get(i.digest_id, FeedbackCounts()) for i in issues},
        outcomes=OUTCOMES,
        status=scheduler_status(db, web().db_path, now=now()),
        send_errors=ledger.recent_send_errors(db, limit=8),
        notice_errors=recent_notice_errors(db, limit=5),
        notices_owed=queued_notices(db),
        worker_error=web().notices.last_error,
    )
