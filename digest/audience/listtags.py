"""Tags as lists and subscribers see them, kept coherent with the tag store: renaming or merging
a tag renames it in the lists that cover it and re-keys the subscriptions that chose it, in the
same transaction (``rename_tag``, ``merge_tags``); editing a list's tags reports the subscribers
left following none of them and can move them to every tag (``edit_list_checked``); the
subscribe and preferences pages offer only tags that are used and not hidden
(``offered_tags``); ``tag_overview`` is what ``digest tags list`` shows. The tables are written
by their owners (``articles.tagstore``, ``lists``, ``subscriptions``); this module only
composes their functions."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from ..articles import tagstore
from ..store import transaction
from ..timeutil import to_iso
from .lists import MailingList, all_lists, get_list, rename_list_tags
from .records import Frequency
from .subscriptions import (
    OrphanedSubscription,
    edit_list,
    move_to_all_tags,
    orphaned_subscriptions,
    rekey_subscription_tags,
)


@dataclass(frozen=True)
class TagOverview:
    """One tag for ``digest tags list``: its use, and the lists whose digests show it (a list
    scoped to it, and every list covering every tag; none when it is hidden)."""

    stats: tagstore.TagStats
    lists: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        s = self.stats
        return {
            "name": s.tag.name,
            "key": s.tag.key,
            "articles": s.articles,
            "first_seen": to_iso(s.first) if s.first else None,
            "last_seen": to_iso(s.last) if s.last else None,
            "hidden": s.tag.hidden,
            "rules": s.rules,
            "aliases": list(s.aliases),
            "lists": list(self.lists),
        }


def tag_overview(db: Database) -> list[TagOverview]:
    """Every tag with its article count, first and last article, rules, aliases and the lists
    covering it; by name."""
    lists = all_lists(db)
    every = tuple(f"{m.slug} (every tag)" for m in lists if not m.tags)
    out = []
    for stats in tagstore.tag_stats(db):
        covering: tuple[str, ...] = ()
        if not stats.tag.hidden:
            covering = tuple(m.slug for m in lists if stats.tag.key in m.tag_keys) + every
        out.append(TagOverview(stats, covering))
    return out


def offered_tags(db: Database, mlist: MailingList) -> list[tuple[str, str]]:
    """(key, name) of the tags the subscribe and preferences pages offer for ``mlist``, in the
    list's order: its tags that are not hidden and have at least one article. A list that covers
    every tag offers none (its subscribers get everything)."""
    if not mlist.tags:
        return []
    keys = list(mlist.tag_keys)
    marks = ",".join("?" * len(keys))
    usable = {
        row[0]
        for row in db.execute(
            f"SELECT t.key FROM tags t WHERE t.key IN ({marks}) AND t.hidden = 0"
            " AND EXISTS (SELECT 1 FROM article_tags at WHERE at.tag_id = t.id)",
            keys,
        )
    }
    return [(key, name) for key, name in zip(keys, mlist.tags, strict=True) if key in usable]


# ---------------------------------------------------------------------------- lists


@dataclass
class ListEdit:
    """A list after ``edit_list_checked``: the subscribers who follow only tags it no longer
    covers (they get nothing from it), how many of them were moved to every tag, and how many
    subscribers moved to each frequency because the list stopped offering theirs."""

    mlist: MailingList
    orphans: list[OrphanedSubscription] = field(default_factory=list)
    moved: int = 0
    orphaned_tags: list[str] = field(default_factory=list)  # the names they follow, each once
    frequency_moves: dict[Frequency, int] = field(default_factory=dict)


def edit_list_checked(
    db: Database,
    slug: str,
    *,
    now: datetime,
    move_orphans_to_all: bool = False,
    source: str = "cli",
    **changes: Any,
) -> ListEdit:
    """``subscriptions.edit_list(db, slug, now=now, source=source, **changes)`` (which moves the
    subscribers of a frequency the list stops offering), and then, when the tags changed (or
    ``move_orphans_to_all`` asks), the pending and active subscribers who chose only tags the
    list no longer covers; with ``move_orphans_to_all`` they get every tag of the list (recorded
    in their history). One transaction."""
    with transaction(db):
        before = get_list(db, slug)
        tags = changes.get("tags")
        edited = edit_list(db, slug, now=now, source=source, **changes)
        mlist = edited.mlist
        result = ListEdit(mlist, frequency_moves=edited.moved)
        if tags is not None or move_orphans_to_all:
            result.orphans = orphaned_subscriptions(db, mlist, mlist.tag_keys)
            keys = dict.fromkeys(key for sub in result.orphans for key in sub.tags)
            result.orphaned_tags = _tag_names(db, before, keys)
        if move_orphans_to_all and result.orphans:
            dropped = ", ".join(result.orphaned_tags)
            result.moved = move_to_all_tags(
                db,
                mlist,
                result.orphans,
                source=source,
                reason=f"moved to every tag: the list no longer covers {dropped}",
                now=now,
            )
    return result


def _tag_names(db: Database, mlist: MailingList, keys: Iterable[str]) -> list[str]:
    """Display names of tag keys: the list's spelling, else the tag store's, else the key."""
    names = dict(zip(mlist.tag_keys, mlist.tags, strict=True))
    out = []
    for key in keys:
        if key not in names:
            row = db.execute("SELECT name FROM tags WHERE key = ?", [key]).fetchone()
            names[key] = row[0] if row else key
        out.append(names[key])
    return out


# ---------------------------------------------------------------------------- tags


def articles_text(n: int) -> str:
    """``1 article``, ``1,204 articles``."""
    return f"{n:,} article" + ("" if n == 1 else "s")


@dataclass(frozen=True)
class TagRename:
    renamed: tagstore.Renamed
    lists: list[str]  # slugs of the lists whose tags were renamed
    subscriptions: int  # subscriptions whose chosen tags were re-keyed

    def report_lines(self) -> list[str]:
        """What the rename did, a line each (the CLI indents all but the first; the web page
        shows them as notices)."""
        r = self.renamed
        lines = [f"renamed {r.old.name} to {r.new.name}"]
        if self.lists:
            lines.append(f"lists: {', '.join(self.lists)}")
        if self.subscriptions:
            lines.append(f"subscriptions that follow it: {self.subscriptions}")
        if r.old.key != r.new.key:
            lines.append(f"later articles tagged {r.old.name!r} land in {r.new.name}")
        if r.took_alias_from:
            lines.append(
                f"note: {r.new.name!r} was an old name of {r.took_alias_from}; articles tagged"
                f" so now land in {r.new.name}"
            )
        return lines


def rename_tag(db: Database, old: str, new: str, *, now: datetime) -> TagRename:
    """Rename a tag (``tagstore.rename_tag``), in the lists that cover it and the subscriptions
    that chose it too."""
    with transaction(db):
        renamed = tagstore.rename_tag(db, old, new, now=now)
        old_key, new_tag = renamed.old.key, renamed.new
        lists = rename_list_tags(db, {old_key: new_tag.name}, now=now)
        subs = rekey_subscription_tags(db, {old_key: new_tag.key}) if old_key != new_tag.key else 0
    return TagRename(renamed, lists, subs)


@dataclass(frozen=True)
class TagMerge:
    merged: tagstore.Merged
    lists: list[str]
    subscriptions: int

    def report_lines(self) -> list[str]:
        """What the merge did, a line each (as ``TagRename.report_lines``)."""
        m = self.merged
        if not m.merged:
            return [f"nothing to merge into {m.into.name}"]
        parts = ", ".join(f"{t.name} ({articles_text(n)})" for t, n in m.merged)
        lines = [f"merged {parts} into {m.into.name}: now {articles_text(m.articles)}"]
        if self.lists:
            lines.append(f"lists: {', '.join(self.lists)}")
        if self.subscriptions:
            lines.append(f"subscriptions that follow it: {self.subscriptions}")
        names = " or ".join(repr(t.name) for t, _ in m.merged)
        lines.append(f"later articles tagged {names} land in {m.into.name}")
        return lines


def merge_tags(db: Database, into: str, others: Iterable[str], *, now: datetime) -> TagMerge:
    """Merge tags into one (``tagstore.merge_tags``); the lists covering a merged tag cover
    ``into`` instead (once), and the subscriptions that chose one follow ``into``."""
    with transaction(db):
        merged = tagstore.merge_tags(db, into, others, now=now)
        target = merged.into
        lists = rename_list_tags(db, {t.key: target.name for t, _ in merged.merged}, now=now)
        subs = rekey_subscription_tags(db, {t.key: target.key for t, _ in merged.merged})
    return TagMerge(merged, lists, subs)


__all__ = [
    "ListEdit",
    "articles_text",
    "TagMerge",
    "TagOverview",
    "TagRename",
    "edit_list_checked",
    "merge_tags",
    "offered_tags",
    "rename_tag",
    "tag_overview",
]
