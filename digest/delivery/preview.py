"""Previewing a digest exactly as a subscriber would receive it.

For a built digest the message comes from ``messages.Assembler`` — the same bytes ``digest send``
would hand to SMTP for that subscriber. For an issue not built yet (or a tag set the built digest
has no variant for) the variant is rendered the same way without storing anything, and the
report says so. The web preview page reuses ``preview_digest``.
"""

from __future__ import annotations

import email
import email.policy
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlite_utils import Database

from . import render
from .config import Config
from .digests import (
    audience,
    digest_article_ids,
    find_digest,
    load_articles,
    render_variant,
    select_articles,
    variant_key,
)
from .errors import InvalidInput, NotFound
from .lists import MailingList
from .messages import (
    Assembler,
    CompiledTemplate,
    Recipient,
    VariantInfo,
    recipient_values,
)
from .periods import issue_for, latest_due
from .timeutil import from_iso, to_iso

SAMPLE_RECIPIENT = Recipient(0, "reader@example.com", "Sample Reader")
# What a preview report takes over from the variant's render report.
RENDER_REPORT_KEYS = (
    "sections",
    "article_count",
    "shown_count",
    "cut_count",
    "html_size",
    "html_budget",
    "placeholder_room",
    "style_size",
    "links",
    "warnings",
)


@dataclass
class Preview:
    message: bytes | None  # None: this subscriber's tag set has no articles, nothing is sent
    html: str | None  # the decoded HTML part, personalised
    text: str | None  # the decoded text part, personalised
    report: dict[str, Any] = field(default_factory=dict)


def _subscription(db: Database, mlist: MailingList, address: str) -> dict:
    row = next(
        db.query(
            """
            SELECT p.id AS subscriber_id, p.email, p.name, s.tags, s.frequency, s.status
            FROM subscribers p JOIN subscriptions s ON s.subscriber_id = p.id
            WHERE s.list_id = ? AND p.email = ? COLLATE NOCASE
            """,
            [mlist.id, address.strip()],
        ),
        None,
    )
    if row is None:
        raise NotFound(f"{address} is not subscribed to list {mlist.slug!r}")
    return row


def _late_arrivals(db: Database, mlist: MailingList, digest: dict) -> int:
    """Articles of the digest's period (and tags) ingested after it was built."""
    tag_filter = (
        "EXISTS (SELECT 1 FROM article_tags at JOIN tags t ON t.id = at.tag_id"
        " WHERE at.article_id = a.id AND t.key IN (SELECT value FROM json_each(:keys)))"
        if mlist.tags
        else "EXISTS (SELECT 1 FROM article_tags at WHERE at.article_id = a.id)"
    )
    return db.execute(
        f"""
        SELECT count(*) FROM articles a
        WHERE a.published_at >= :start AND a.published_at < :end AND a.ingested_at > :built
          AND {tag_filter}
          AND a.id NOT IN (SELECT article_id FROM digest_articles WHERE digest_id = :digest)
        """,
        {
            "start": digest["period_start"],
            "end": digest["period_end"],
            "built": digest["built_at"],
            "keys": json.dumps(list(mlist.tag_keys)),
            "digest": digest["id"],
        },
    ).fetchone()[0]


def preview_digest(
    db: Database,
    config: Config,
    mlist: MailingList,
    frequency: str | None = None,
    issue_date: date | None = None,
    *,
    now: datetime,
    secret: bytes,
    address: str | None = None,
    tags: Iterable[str] | None = None,
) -> Preview:
    """The message ``address`` (default: a sample reader of the all-tags variant, or of the
    variant for ``tags``, tag names or keys) would get for the issue of ``issue_date``
    (default: the latest due one), with a report."""
    notes: list[str] = []
    if address and tags:
        raise InvalidInput("preview either a subscriber's address or a tag set, not both")
    if address:
        sub = _subscription(db, mlist, address)
        if frequency and frequency != sub["frequency"]:
            raise InvalidInput(
                f"{sub['email']} gets the {sub['frequency']} digest of {mlist.slug!r}, "
                f"not the {frequency} one (leave out --frequency)"
            )
        frequency = sub["frequency"]
        if sub["status"] != "active":
            notes.append(
                f"{sub['email']} is {sub['status']}, not active: no digest is sent to them"
            )
        recipient = Recipient(sub["subscriber_id"], sub["email"], sub["name"])
        tags_key, wanted = variant_key(sub["tags"], mlist)
    else:
        frequency = frequency or "daily"
        recipient = SAMPLE_RECIPIENT
        tags_key, wanted = variant_key(json.dumps(list(tags or ())), mlist)
    if issue_date is None:
        period = latest_due(mlist, frequency, now)
    else:
        period = issue_for(mlist, frequency, issue_date)
        if period.issue_date != issue_date:
            notes.append(
                f"weekly issues of {mlist.slug!r} are sent on {mlist.weekly_day}s: showing the"
                f" issue of {period.label}, the most recent one on or before {issue_date}"
            )

    report: dict[str, Any] = {
        "list": mlist.slug,
        "frequency": frequency,
        "issue_date": period.label,
        "period": period.describe(),
        "tags_key": tags_key,
        "recipient": recipient.email,
    }
    digest = find_digest(db, mlist, period)
    message: bytes | None = None
    variant_report: dict[str, Any] | None = None
    unsubscribe_mailto = config.get("site", "unsubscribe_mailto")
    if digest is not None:
        report["built"] = True
        report["built_at"] = digest["built_at"]
        variant_id = None
        if recipient.subscriber_id:
            row = db.execute(
                "SELECT variant_id FROM deliveries WHERE digest_id = ? AND subscriber_id = ?",
                [digest["id"], recipient.subscriber_id],
            ).fetchone()
            variant_id = row[0] if row else None
        variant = next(
            db.query(
                "SELECT id, template IS NOT NULL AS has_template, report FROM variants"
                " WHERE digest_id = ? AND " + ("id = ?" if variant_id else "tags_key = ?"),
                [digest["id"], variant_id or tags_key],
            ),
            None,
        )
        late = _late_arrivals(db, mlist, digest)
        if late:
            notes.append(
                f"{late} article{'s' if late != 1 else ''} arrived after this digest was built;"
                " they go in the next one"
            )
        if variant is not None:
            variant_report = json.loads(variant["report"])
            report["variant_id"] = variant["id"]
            report["recipients"] = db.execute(
                "SELECT count(*) FROM deliveries WHERE variant_id = ?", [variant["id"]]
            ).fetchone()[0]
            if variant["has_template"]:
                assembler = Assembler(
                    db,
                    base_url=config.base_url,
                    secret=secret,
                    unsubscribe_mailto=unsubscribe_mailto,
                )
                message = assembler.message(variant["id"], recipient).data
        else:
            notes.append(
                "the built digest has no variant for this tag set yet: rendered without storing"
                " (`digest build` for this issue adds it and queues its subscribers)"
            )
            articles = load_articles(db, digest_article_ids(db, digest["id"]))
            message, variant_report = _render_unstored(
                config,
                mlist,
                period,
                articles,
                wanted,
                from_iso(digest["built_at"]),
                recipient,
                secret,
            )
            report["recipients"] = 0
    else:
        report["built"] = False
        notes.append(
            "not built yet: rendered without storing; the real build fixes the articles, and its"
            " time goes into the Date header and link tokens"
        )
        articles = load_articles(db, select_articles(db, mlist, period, now=now))
        message, variant_report = _render_unstored(
            config, mlist, period, articles, wanted, now, recipient, secret
        )
        report["recipients"] = sum(
            count for key, _, count in audience(db, mlist, frequency).values() if key == tags_key
        )
    report.update({k: v for k, v in (variant_report or {}).items() if k in RENDER_REPORT_KEYS})
    if message is None:
        notes.append("no articles for this tag set: nothing would be sent")
        report["notes"] = notes
        return Preview(None, None, None, report)
    parsed = email.message_from_bytes(message, policy=email.policy.default)
    report["subject"] = str(parsed["Subject"])
    report["notes"] = notes
    return Preview(
        message=message,
        html=parsed.get_body(("html",)).get_content().replace("\r\n", "\n"),
        text=parsed.get_body(("plain",)).get_content().replace("\r\n", "\n"),
        report=report,
    )


def _render_unstored(
    config: Config,
    mlist: MailingList,
    period,
    articles,
    wanted,
    built_at: datetime,
    recipient: Recipient,
    secret: bytes,
) -> tuple[bytes | None, dict[str, Any] | None]:
    env = render.template_environment(config)
    variant = render_variant(env, config, mlist, period, articles, wanted, built_at=built_at)
    if variant.template is None:
        return None, {"sections": [], "cut_count": 0}
    info = VariantInfo(
        variant_id=0,
        digest_id=0,
        list_id=mlist.id,
        list_slug=mlist.slug,
        frequency=period.frequency,
        period_label=period.label,
        from_addr=mlist.from_addr,
        built_at=from_iso(to_iso(built_at)),
        compiled=CompiledTemplate(variant.template),
    )
    values = recipient_values(
        info,
        recipient,
        base_url=config.base_url,
        secret=secret,
        unsubscribe_mailto=config.get("site", "unsubscribe_mailto"),
    )
    return info.compiled.fill(values), variant.email.report
