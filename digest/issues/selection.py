"""Which articles an issue gets: those published in its period, plus late ones — published up
to ``LATE_LOOKBACK`` before the period, ingested after the previous digest of the same (list,
frequency) was built, and in no digest of it yet. An article is in at most one digest of a
(list, frequency); one ingested after ``now`` is left for the next digest. A list that covers
every tag takes the articles without a tag too (they are its last section); a list scoped to
tags takes only articles with one of its tags that is not hidden."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlite_utils import Database

from ..articles.reads import articles_in_window, count_ingested_after, count_untagged_in_window
from ..audience.lists import MailingList
from ..timeutil import to_iso
from .periods import Period
from .store import StoredDigest, digest_article_ids, previous_built_at, used_article_ids

LATE_LOOKBACK = timedelta(days=14)


def select_articles(
    db: Database, mlist: MailingList, period: Period, *, now: datetime
) -> list[int]:
    """Ids of the articles a new digest of ``period`` gets, newest first."""
    previous = previous_built_at(db, mlist, period)
    candidates = articles_in_window(
        db,
        start=period.start,
        end=period.end,
        ingested_by=now,
        tag_keys=mlist.tag_keys or None,
        late_since=period.start - LATE_LOOKBACK if previous is not None else None,
        late_ingested_after=previous,
    )
    used = used_article_ids(db, mlist.id, period.frequency)
    return [i for i in candidates if i not in used]


def late_arrivals(db: Database, mlist: MailingList, digest: StoredDigest) -> int:
    """Articles of the digest's period (and tags) ingested after it was built: they go into
    the next one."""
    return count_ingested_after(
        db,
        start=digest.period_start,
        end=digest.period_end,
        after=to_iso(digest.built_at),
        tag_keys=mlist.tag_keys or None,
        excluding=digest_article_ids(db, digest.id),
    )


def untagged_note(
    db: Database, mlist: MailingList, period: Period, *, ingested_by: datetime
) -> str | None:
    """What ``digest build`` and ``digest preview`` say about the articles of the period without
    a tag (ingested by ``ingested_by``), if there are any: a list covering every tag shows
    them last; a list scoped to tags never shows them."""
    n = count_untagged_in_window(db, start=period.start, end=period.end, ingested_by=ingested_by)
    if not n:
        return None
    what = f"{n} article{'s' if n != 1 else ''} of the period {'has' if n == 1 else 'have'} no tag"
    if not mlist.tags:
        return f"{what}: {'it is' if n == 1 else 'they are'} in {mlist.untagged_section_title!r}"
    return (
        f"{what}: not in this list, which covers only its tags; a list covering every tag shows"
        f" {'it' if n == 1 else 'them'} (tag rules: `digest tags rule --help`)"
    )
