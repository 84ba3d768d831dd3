"""What an editor sees of one issue date of a list (``digest issues show``, the web editor):
its edits, and for each issue of that date (daily, and weekly on the weekly day) whether it is
built, its approval, its subject and its stories by section with their ids (to pin or drop),
marked pinned, and the dropped ones apart. An issue not built yet shows the articles it would
get if it were built now. Reads only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlite_utils import Database

from ..articles.reads import Article, load_articles
from ..audience.lists import MailingList
from ..audience.records import FREQUENCIES
from .approval import IssueApproval, approval_of
from .build import issue_articles
from .edits import IssueEdits, edits_for
from .periods import Period, issue_for
from .sections import group_sections, section_order
from .selection import select_articles
from .store import StoredDigest, digest_article_ids, find_digest, variants_of


@dataclass(frozen=True)
class StoryLine:
    id: int
    title: str
    pinned: bool


@dataclass(frozen=True)
class IssueView:
    """One issue (frequency) of the date."""

    frequency: str
    period: Period
    digest: StoredDigest | None  # None: not built yet
    approval: IssueApproval | None
    subject: str | None  # of the all-tags variant (or the first), when built
    sections: list[tuple[str, list[StoryLine]]]
    dropped: list[StoryLine]


@dataclass(frozen=True)
class IssueOverview:
    mailing_list: MailingList
    issue_date: date
    edits: IssueEdits
    issues: list[IssueView]
    not_issue_dates: list[str]  # frequencies with no issue that day, and why


def issue_overview(
    db: Database, mlist: MailingList, issue_date: date, *, now: datetime
) -> IssueOverview:
    edits = edits_for(db, mlist.id, issue_date)
    issues: list[IssueView] = []
    others: list[str] = []
    for frequency in FREQUENCIES:
        period = issue_for(mlist, frequency, issue_date)
        if period.issue_date != issue_date:
            others.append(
                f"{frequency}: no issue that day ({frequency} issues are on {mlist.weekly_day}s)"
            )
            continue
        stored = find_digest(db, mlist, period)
        if stored is not None:
            ids = digest_article_ids(db, stored.id)
            variants = variants_of(db, stored.id)
            chosen = next(
                (v for v in variants if v.tags_key == ""), variants[0] if variants else None
            )
            subject = chosen.subject if chosen else None
        else:
            ids = select_articles(db, mlist, period, now=now)
            subject = None
        shaped = issue_articles(db, ids, edits)
        sections = group_sections(shaped, section_order(mlist, shaped), None, mlist=mlist)
        pinned = set(edits.pinned)
        dropped = [a for a in load_articles(db, sorted(edits.dropped)) if a.id in edits.dropped]
        issues.append(
            IssueView(
                frequency=frequency,
                period=period,
                digest=stored,
                approval=approval_of(db, mlist.id, frequency, period.label),
                subject=subject,
                sections=[
                    (s.name, [StoryLine(a.id, a.title, a.id in pinned) for a in s.articles])
                    for s in sections
                ],
                dropped=[_line(a, pinned) for a in dropped],
            )
        )
    return IssueOverview(mlist, issue_date, edits, issues, others)


def _line(article: Article, pinned: set[int]) -> StoryLine:
    return StoryLine(article.id, article.title, article.id in pinned)
