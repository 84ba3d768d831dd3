"""Previewing a digest exactly as a subscriber would receive it.

For a built digest the message comes from ``personalise.Assembler`` — the same bytes ``digest
send`` would hand to SMTP for that subscriber. For an issue not built yet (or a tag set the
built digest has no variant for) the variant is rendered the same way without storing anything,
and the report says so. The web preview page reuses ``preview_digest`` with ``inert=True``:
staff see and test-send the subscriber's variant with the sample reader's name and address and
links that lead to a page saying it is a preview, never a subscriber's working tokens.
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

from ..articles.reads import Article
from ..audience.lists import MailingList
from ..audience.subscriptions import audience_groups, find_subscription
from ..config import Config
from ..errors import InvalidInput
from ..issues import render
from ..issues.build import issue_articles, render_variant
from ..issues.edits import edits_for
from ..issues.periods import Period, issue_for, latest_due
from ..issues.render import RenderReport, SectionCount
from ..issues.sections import variant_key
from ..issues.selection import late_arrivals, select_articles, untagged_note
from ..issues.store import digest_article_ids, find_digest, find_variant
from ..issues.template import CompiledTemplate
from ..store.instance import instance_id
from ..timeutil import from_iso, to_iso
from . import ledger
from .personalise import Assembler, Recipient, VariantInfo, recipient_values

SAMPLE_RECIPIENT = Recipient(0, "reader@example.com", "Sample Reader")


@dataclass
class PreviewReport:
    """What a preview shows besides the message."""

    list_slug: str
    frequency: str
    issue_date: str
    period: str  # "covers Mon 20 Jan 2025 (Africa/Nairobi)"
    tags_key: str  # '' = all tags
    recipient: str
    built: bool = False
    built_at: str | None = None  # ISO, when built
    variant_id: int | None = None
    recipients: int = 0  # subscribers who get this variant
    subject: str | None = None
    render: RenderReport | None = None  # None: nothing to render
    notes: list[str] = field(default_factory=list)

    @property
    def sections(self) -> list[SectionCount]:
        return self.render.sections if self.render else []

    @property
    def warnings(self) -> list[str]:
        return self.render.warnings if self.render else []

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "list": self.list_slug,
            "frequency": self.frequency,
            "issue_date": self.issue_date,
            "period": self.period,
            "tags_key": self.tags_key,
            "recipient": self.recipient,
            "built": self.built,
            "built_at": self.built_at,
            "variant_id": self.variant_id,
            "recipients": self.recipients,
            "subject": self.subject,
            "notes": self.notes,
        }
        if self.render is not None:
            rendered = self.render.to_json()
            rendered.pop("subject", None)
            rendered.pop("tags_key", None)
            out.update(rendered)
        return out


@dataclass
class Preview:
    message: bytes | None  # None: this subscriber's tag set has no articles, nothing is sent
    html: str | None  # the decoded HTML part, personalised
    text: str | None  # the decoded text part, personalised
    report: PreviewReport


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
    inert: bool = False,
) -> Preview:
    """The message ``address`` (default: a sample reader of the all-tags variant, or of the
    variant for ``tags``, tag names or keys) would get for the issue of ``issue_date``
    (default: the latest due one), with a report.

    ``inert`` (the web pages, for staff): the same variant, but filled with the sample reader's
    name and address and with unsubscribe and preferences links that open the site's
    ``/preview-link/...`` page, so no subscriber's signed token or address is shown or sent."""
    notes: list[str] = []
    if address and tags:
        raise InvalidInput("preview either a subscriber's address or a tag set, not both")
    if address:
        sub = find_subscription(db, mlist, address)
        if frequency and frequency != sub.frequency:
            raise InvalidInput(
                f"{sub.email} gets the {sub.frequency} digest of {mlist.slug!r}, "
                f"not the {frequency} one (leave out --frequency)"
            )
        frequency = sub.frequency
        if sub.status != "active":
            notes.append(f"{sub.email} is {sub.status}, not active: no digest is sent to them")
        recipient = Recipient(sub.subscriber_id, sub.email, sub.name)
        tags_key, wanted = variant_key(json.dumps(list(sub.tags)), mlist)
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

    # Who the message is filled in for; the variant is still the one ``recipient`` gets.
    filled = SAMPLE_RECIPIENT if inert else recipient
    if inert:
        notes.append(
            "links here are placeholders that open a page saying this is a preview, and the"
            f" name and address are {SAMPLE_RECIPIENT.email}'s; the real message has the"
            " subscriber's own"
        )
    report = PreviewReport(
        list_slug=mlist.slug,
        frequency=frequency,
        issue_date=period.label,
        period=period.describe(),
        tags_key=tags_key,
        recipient=recipient.email,
        notes=notes,
    )
    digest = find_digest(db, mlist, period)
    untagged = untagged_note(db, mlist, period, ingested_by=digest.built_at if digest else now)
    if untagged:
        notes.append(untagged)
    message: bytes | None = None
    if digest is not None:
        report.built = True
        report.built_at = to_iso(digest.built_at)
        variant_id = None
        if recipient.subscriber_id:
            variant_id = ledger.delivery_variant(db, digest.id, recipient.subscriber_id)
        variant = find_variant(db, digest.id, variant_id=variant_id, tags_key=tags_key)
        late = late_arrivals(db, mlist, digest)
        if late:
            notes.append(
                f"{late} article{'s' if late != 1 else ''} arrived after this digest was built;"
                " they go in the next one"
            )
        if variant is not None:
            report.render = variant.report
            report.variant_id = variant.id
            report.recipients = ledger.variant_recipients(db, variant.id)
            if not variant.empty:
                assembler = Assembler(
                    db,
                    base_url=config.base_url,
                    secret=secret,
                    unsubscribe_mailto=config.site.unsubscribe_mailto,
                )
                if inert:
                    info = assembler.variant(variant.id)
                    values = recipient_values(
                        info,
                        filled,
                        base_url=config.base_url,
                        secret=secret,
                        unsubscribe_mailto=config.site.unsubscribe_mailto,
                        inert=True,
                    )
                    message = info.compiled.fill(values)
                else:
                    message = assembler.message(variant.id, recipient).data
        else:
            notes.append(
                "the built digest has no variant for this tag set yet: rendered without storing"
                " (`digest build` for this issue adds it and queues its subscribers)"
            )
            edits = edits_for(db, mlist.id, period.issue_date)
            articles = issue_articles(db, digest_article_ids(db, digest.id), edits)
            message, report.render = _render_unstored(
                db, config, mlist, period, articles, wanted, digest.built_at, filled, secret, inert,
                intro=edits.note, web_key=digest.web_key,
            )  # fmt: skip
    else:
        notes.append(
            "not built yet: rendered without storing; the real build fixes the articles, and its"
            " time goes into the Date header and link tokens"
        )
        # As the build will: the editors' note, pins and drops of this issue date apply.
        edits = edits_for(db, mlist.id, period.issue_date)
        articles = issue_articles(db, select_articles(db, mlist, period, now=now), edits)
        message, report.render = _render_unstored(
            db, config, mlist, period, articles, wanted, now, filled, secret, inert,
            intro=edits.note,
        )  # fmt: skip
        report.recipients = sum(
            count
            for raw, count in audience_groups(db, mlist, frequency).items()
            if variant_key(raw, mlist)[0] == tags_key
        )
    if message is None:
        notes.append("no articles for this tag set: nothing would be sent")
        return Preview(None, None, None, report)
    parsed = email.message_from_bytes(message, policy=email.policy.default)
    report.subject = str(parsed["Subject"])
    html_part = parsed.get_body(("html",))
    text_part = parsed.get_body(("plain",))
    assert isinstance(html_part, email.message.EmailMessage)
    assert isinstance(text_part, email.message.EmailMessage)
    return Preview(
        message=message,
        html=html_part.get_content().replace("\r\n", "\n"),
        text=text_part.get_content().replace("\r\n", "\n"),
        report=report,
    )


def _render_unstored(
    db: Database,
    config: Config,
    mlist: MailingList,
    period: Period,
    articles: list[Article],
    wanted: frozenset[str] | None,
    built_at: datetime,
    recipient: Recipient,
    secret: bytes,
    inert: bool,
    *,
    intro: str | None = None,
    web_key: str | None = None,
) -> tuple[bytes | None, RenderReport | None]:
    env = render.template_environment(config)
    variant = render_variant(
        env, config, mlist, period, articles, wanted, built_at=built_at, intro=intro,
        web_key=web_key,
    )  # fmt: skip
    instance = instance_id(db)
    if variant.template is None or variant.email is None:
        return None, None
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
        instance=instance,
    )
    values = recipient_values(
        info,
        recipient,
        base_url=config.base_url,
        secret=secret,
        unsubscribe_mailto=config.site.unsubscribe_mailto,
        inert=inert,
    )
    return info.compiled.fill(values), variant.email.report
