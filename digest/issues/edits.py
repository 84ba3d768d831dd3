"""What editors do to an issue before it goes out: an intro note, pinned articles (shown first
in their section, added to the issue if the selection left them out) and dropped articles
(left out). The only module that writes ``issue_edits``.

Edits are keyed by list and issue date, and apply to every issue of the list dated that day
(the daily one, and the weekly one on the list's weekly day). They can be made before the
issue is built (the build applies them) or after: a build that finds an issue's edits changed
since it was rendered renders its variants again (``delivery.publish``); deliveries already
sent stay sent, the ones still queued go out with the new version.

The issue's stored articles (``digest_articles``) stay the selection as first built, with
pinned articles appended: an article goes out once per list and frequency, so a dropped
article does not come back in the next issue, and a pinned one is not sent again later.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlite_utils import Database

from ..articles.reads import Article, load_articles
from ..audience.lists import MailingList
from ..errors import InvalidInput, NotFound
from ..store import transaction
from ..timeutil import to_iso

NOTE_LIMIT = 2_000  # characters: a note is a paragraph, not an article


@dataclass(frozen=True)
class IssueEdits:
    """The edits of one issue date of a list."""

    note: str | None = None
    pinned: tuple[int, ...] = ()  # in the order they were pinned
    dropped: frozenset[int] = field(default_factory=frozenset)

    def apply(self, articles: list[Article]) -> list[Article]:
        """``articles`` (newest first) without the dropped ones, pinned ones first (in pin
        order): a section shows its stories in this order, so a pinned story leads it and
        keeps its place whatever the budget cuts."""
        kept = [a for a in articles if a.id not in self.dropped]
        rank = {article_id: i for i, article_id in enumerate(self.pinned)}
        pinned = sorted((a for a in kept if a.id in rank), key=lambda a: rank[a.id])
        return pinned + [a for a in kept if a.id not in rank]

    @property
    def fingerprint(self) -> str:
        """A hash of the edits ('' for none), stored with the digest rendered with them."""
        if not (self.note or self.pinned or self.dropped):
            return ""
        data = json.dumps([self.note, list(self.pinned), sorted(self.dropped)])
        return hashlib.sha256(data.encode("utf-8")).hexdigest()[:32]


def edits_for(db: Database, list_id: int, issue_date: date) -> IssueEdits:
    note: str | None = None
    pinned: list[int] = []
    dropped: set[int] = set()
    for row in db.query(
        "SELECT kind, article_id, text FROM issue_edits WHERE list_id = ? AND issue_date = ?"
        " ORDER BY id",
        [list_id, issue_date.isoformat()],
    ):
        if row["kind"] == "note":
            note = row["text"]
        elif row["kind"] == "pin":
            pinned.append(int(row["article_id"]))
        else:
            dropped.add(int(row["article_id"]))
    return IssueEdits(note=note, pinned=tuple(pinned), dropped=frozenset(dropped))


def _check_article(db: Database, mlist: MailingList, article_id: int) -> Article:
    found = load_articles(db, [article_id])
    if not found:
        raise NotFound(f"no article with id {article_id} (see `digest articles list`)")
    article = found[0]
    if mlist.tags and not set(mlist.tag_keys) & {t.key for t in article.tags}:
        raise InvalidInput(
            f"article {article_id} ({article.title[:60]!r}) has none of the tags of list"
            f" {mlist.slug!r} ({', '.join(mlist.tags)}): it would appear in no section"
        )
    return article


def set_note(
    db: Database, mlist: MailingList, issue_date: date, text: str, *, by: str, now: datetime
) -> IssueEdits:
    """Set the issue's intro note (plain text; "" removes it)."""
    text = "\n".join(line.rstrip() for line in text.strip().splitlines())
    if len(text) > NOTE_LIMIT:
        raise InvalidInput(f"the note is {len(text)} characters; keep it under {NOTE_LIMIT}")
    day = issue_date.isoformat()
    with transaction(db):
        db.execute(
            "DELETE FROM issue_edits WHERE list_id = ? AND issue_date = ? AND kind = 'note'",
            [mlist.id, day],
        )
        if text:
            db.execute(
                "INSERT INTO issue_edits (list_id, issue_date, kind, article_id, text, edited_by,"
                " at) VALUES (?, ?, 'note', 0, ?, ?, ?)",
                [mlist.id, day, text, by, to_iso(now)],
            )
    return edits_for(db, mlist.id, issue_date)


def mark_article(
    db: Database,
    mlist: MailingList,
    issue_date: date,
    article_id: int,
    kind: str,
    *,
    by: str,
    now: datetime,
) -> IssueEdits:
    """Pin (``kind="pin"``) or drop (``"drop"``) an article in the issue, or take back either
    (``"clear"``). Pinning a dropped article un-drops it, and the other way round."""
    if kind not in ("pin", "drop", "clear"):
        raise InvalidInput(f"unknown issue edit {kind!r}: pin, drop or clear")
    if kind == "pin":
        _check_article(db, mlist, article_id)
    day = issue_date.isoformat()
    with transaction(db):
        db.execute(
            "DELETE FROM issue_edits WHERE list_id = ? AND issue_date = ? AND article_id = ?"
            " AND kind IN ('pin', 'drop')",
            [mlist.id, day, article_id],
        )
        if kind != "clear":
            db.execute(
                "INSERT INTO issue_edits (list_id, issue_date, kind, article_id, edited_by, at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [mlist.id, day, kind, article_id, by, to_iso(now)],
            )
    return edits_for(db, mlist.id, issue_date)
