"""Telling a list's editors that an issue awaits their approval: a short plain-text email to
each address of ``Approval.editors``, sent outside the ledger (like a confirmation email) by the
scheduler right after it built the issue for approval. Staff read it, so it is in English, like
the CLI and the web editor.

A failure to tell them belongs to that issue alone: it is recorded with the approval
(``notify_error``, shown by ``digest issues show``) and tried again at the next tick; the
issue still waits for approval either way.
"""

from __future__ import annotations

import email.utils
import hashlib
from datetime import date, datetime
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from sqlite_utils import Database

from ..addresses import address_of, sender_domain
from ..audience.lists import MailingList, get_list_by_id
from ..config import Config
from ..errors import DigestError, describe_error
from ..headers import fold_header
from ..issues import approval
from ..issues.build import BuiltDigest, describe_digest
from ..issues.periods import issue_for
from ..issues.store import find_digest
from ..issues.template import multipart_alternative
from . import ledger
from .personalise import Outgoing
from .send import send_message
from .transports import Transport


def approval_text(config: Config, mlist: MailingList, built: BuiltDigest) -> tuple[str, str]:
    """(subject, body) of the notice for a built issue."""
    period = built.period
    zone = ZoneInfo(mlist.timezone)
    send_at = period.send_at.astimezone(zone)
    deadline = (period.send_at + mlist.approval.deadline).astimezone(zone)
    day = period.label
    slug = mlist.slug
    subject = f"[Approval] {mlist.title}: the {built.frequency} issue of {day} awaits approval"
    variants = [v for v in built.variants if not v.empty]
    headline = variants[0].subject if variants else "(no articles: nothing would be sent)"
    query = urlencode({"list": slug, "frequency": built.frequency, "date": day})
    lines = [
        f"The {built.frequency} issue of {mlist.title} dated {day} is built and waits for an"
        " editor's approval.",
        "",
        f"Once approved it is sent at {send_at:%Y-%m-%d %H:%M} {mlist.timezone} (or when"
        " approved, if later).",
        f"If it is not approved by {deadline:%Y-%m-%d %H:%M} {mlist.timezone}, it is skipped.",
        "",
        f"Subject:    {headline}",
        f"Stories:    {built.article_count} in {len(built.sections)} sections"
        + (f" ({', '.join(built.sections[:6])}{', ...' if len(built.sections) > 6 else ''})"),
        f"Variants:   {len(variants)}",
        "",
        "Look at it:",
        f"  digest issues show {slug} {day}",
        f"  {config.base_url}/editor/preview?{query}",
        "Shape it (the issue is rendered again):",
        f'  digest issues note {slug} {day} "A few words for the readers"',
        f"  digest issues pin {slug} {day} ARTICLE_ID",
        f"  digest issues drop {slug} {day} ARTICLE_ID",
        "Approve it:",
        f"  digest issues approve {slug} {day}",
        "",
        f"-- {config.site_name}",
    ]
    return subject, "\n".join(lines) + "\n"


def approval_messages(
    config: Config, mlist: MailingList, built: BuiltDigest, *, now: datetime
) -> list[Outgoing]:
    """One message per editor (each its own To, so no editor sees the others' addresses)."""
    subject, text = approval_text(config, mlist, built)
    sender = address_of(mlist.from_addr)
    domain = sender_domain(mlist.from_addr)
    out = []
    for editor in mlist.approval.editors:
        seed = f"{mlist.slug}:{built.frequency}:{built.period.label}:{editor}:{now.isoformat()}"
        tag = hashlib.sha256(seed.encode("utf-8")).hexdigest()
        message_id = f"<approval.{tag[:24]}@{domain}>"
        headers = [
            ("From", mlist.from_addr),
            ("To", editor),
            ("Subject", subject),
            ("Date", email.utils.format_datetime(now)),
            ("Message-ID", message_id),
            ("Auto-Submitted", "auto-generated"),  # RFC 3834: no auto-replies to it
        ]
        data = multipart_alternative(
            b"".join(fold_header(k, v) for k, v in headers),
            text,
            "<pre>" + _escape(text) + "</pre>\n",
            boundary="=_digest_approval_" + tag[24:56],
        )
        out.append(Outgoing(message_id=message_id, sender=sender, recipient=editor, data=data))
    return out


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def notify_editors(
    db: Database,
    config: Config,
    *,
    now: datetime,
    transport: Transport | None = None,
) -> list[tuple[str, str | None]]:
    """Tell the editors of every issue awaiting approval whose editors were not told yet;
    (issue name, error or None) for each. One failing issue does not stop the others."""
    results: list[tuple[str, str | None]] = []
    for pending in approval.to_notify(db):
        mlist = get_list_by_id(db, pending.list_id)
        name = f"{mlist.slug}/{pending.frequency}/{pending.period_label}"
        error: str | None = None
        try:
            period = issue_for(mlist, pending.frequency, date.fromisoformat(pending.period_label))
            stored = find_digest(db, mlist, period)
            if stored is None:
                raise DigestError(f"issue {name} is not built")
            built = describe_digest(
                db, mlist, stored.id, counts=ledger.counts_by_variant(db, stored.id)
            )
            messages = approval_messages(config, mlist, built, now=now)
            if not messages:
                raise DigestError(f"list {mlist.slug!r} has no editors to tell (--editors)")
            for outgoing in messages:
                send_message(config, outgoing, transport=transport)
        except Exception as e:  # noqa: BLE001 - contained: this issue's notice is retried
            error = describe_error(e)
        approval.mark_notified(db, pending.id, now=now, error=error)
        results.append((name, error))
    return results
