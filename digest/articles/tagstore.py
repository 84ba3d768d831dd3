"""The tag store: the only module that writes ``tags``, ``article_tags``, ``tag_aliases`` and
``tag_rules``. It attaches the tags of stored articles at ingest (``attach_tags``), keeps editors'
tag rules (``add_rule``, ``list_rules``, ``remove_rule``, ``load_rules``) and re-applies them to
stored articles (``apply_rules``), hides tags, and renames and merges them on the article side
(``rename_tag``, ``merge_tags``; ``audience.listtags`` brings the lists and subscriptions
along).

How a tag is found: every ``tags`` row is keyed by ``tag_key`` of its display name, so a list's
tag names (``MailingList.tag_keys``) and subscriptions' keys always match it. Other keys that
mean the same tag are aliases (``tag_aliases``): the old key of a renamed or merged tag, so that
later articles with the old spelling land in the new tag, and an Atom ``term`` whose ``label``
is the name (``tagging.Tag`` keyed by the term). A key is looked up as an alias first, then as a
tag key, then by the key of its display name; a tag is created only when none matches.

Where an article's tag came from is its ``origin``: ``source`` (the entry's own categories, or
its feed's), ``feed`` (``--tag`` on ``digest ingest`` or ``digest feeds add``) or ``rule``. A
tag the source gives is never removed by rules; a rule tag that no rule gives any more is.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

from sqlite_utils import Database

from ..errors import InvalidInput, NotFound
from ..store import transaction
from ..store.bulk import insert_rows, next_id, select_in
from ..timeutil import from_iso, to_iso
from .tagging import make_tag
from .tagrules import (
    ArticleFields,
    InvalidRule,
    Rule,
    RuleField,
    RuleReport,
    RuleSet,
    StoredTagging,
    rule_changes,
)
from .tags import tag_key

__all__ = [
    "InvalidRule",
    "StoredRule",
    "TagOrigin",
    "TagRow",
    "TagStats",
    "TaggedArticle",
    "add_rule",
    "apply_rules",
    "attach_tags",
    "canonical_names",
    "count_untagged",
    "find_tag",
    "hidden_tag_ids",
    "list_rules",
    "load_rules",
    "merge_tags",
    "remove_rule",
    "rename_tag",
    "set_hidden",
    "tag_stats",
]

# Stored articles read per query by ``apply_rules``.
APPLY_CHUNK = 1000


class TagOrigin(StrEnum):
    """Where an article's tag came from (``article_tags.origin``)."""

    SOURCE = "source"  # the entry's categories, or its feed's feed-level categories
    FEED = "feed"  # --tag on `digest ingest` or `digest feeds add`: every article of a source
    RULE = "rule"  # an editor's tag rule


@dataclass(frozen=True, slots=True)
class TagRow:
    """One stored tag."""

    id: int
    key: str  # tag_key(name)
    name: str
    hidden: bool


@dataclass(frozen=True, slots=True)
class TagStats:
    """A tag with how much it is used: articles, and the publication dates of its first and
    last article (None without articles)."""

    tag: TagRow
    articles: int
    first: datetime | None
    last: datetime | None
    rules: int
    aliases: tuple[str, ...]  # other keys that land in this tag


# ---------------------------------------------------------------------------- finding tags


def _row(values: Sequence[Any]) -> TagRow:
    return TagRow(int(values[0]), values[1], values[2], bool(values[3]))


def find_tag(db: Database, name: str) -> TagRow:
    """The tag called ``name`` (any spelling of its key, or an old name kept as an alias).
    Raises ``NotFound`` naming close matches."""
    found = _lookup(db.conn, name)
    if found is not None:
        return found
    part = tag_key(name)[:20]
    pattern = "%" + part.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    like = [
        r[0]
        for r in db.execute(
            "SELECT name FROM tags WHERE key LIKE ? ESCAPE '\\' ORDER BY name LIMIT 5", [pattern]
        )
    ]
    hint = f" (did you mean {', '.join(repr(n) for n in like)}?)" if like else ""
    raise NotFound(f"no tag {name!r}{hint}; `digest tags list` shows every tag")


def _lookup(conn: sqlite3.Connection, name: str) -> TagRow | None:
    key = tag_key(name)
    if not key:
        return None
    row = conn.execute(
        "SELECT t.id, t.key, t.name, t.hidden FROM tags t WHERE t.id ="
        " coalesce((SELECT tag_id FROM tag_aliases WHERE alias_key = ?),"
        " (SELECT id FROM tags WHERE key = ?))",
        [key, key],
    ).fetchone()
    return _row(row) if row else None


def canonical_names(db: Database, names: Iterable[str]) -> list[str]:
    """Tag names as an editor gave them for a list, with each old name of a renamed or merged
    tag (an alias) replaced by the tag's name, so that the list covers the tag it means."""
    out = []
    for name in names:
        key = tag_key(name)
        row = db.execute(
            "SELECT t.name FROM tag_aliases a JOIN tags t ON t.id = a.tag_id WHERE a.alias_key = ?",
            [key],
        ).fetchone()
        out.append(row[0] if row else name)
    return out


def _checked_name(name: str) -> tuple[str, str]:
    """(key, display name) of a tag an editor typed; InvalidInput if it cannot be one."""
    tag = make_tag(name)
    if tag is None:
        raise InvalidInput(f"tag name {name!r} is empty or longer than 100 characters")
    return tag.key, tag.name


def _tag_for(conn: sqlite3.Connection, name: str) -> TagRow:
    """The tag an editor names, created (without articles) if there is none."""
    found = _lookup(conn, name)
    if found is not None:
        return found
    key, display = _checked_name(name)
    tag_id = next_id(conn, "tags")
    conn.execute("INSERT INTO tags (id, key, name) VALUES (?, ?, ?)", [tag_id, key, display])
    return TagRow(tag_id, key, display, False)


def hidden_tag_ids(conn: sqlite3.Connection) -> set[int]:
    return {int(r[0]) for r in conn.execute("SELECT id FROM tags WHERE hidden = 1")}


# ---------------------------------------------------------------------------- ingest


class TaggedArticle(NamedTuple):  # a tuple: one per stored article, made in the write path
    """The tags one stored article should carry after an ingest: ``tags`` maps each tag's
    identity key (``tagging.Tag.key``) to its display name and origin. ``rule_keys`` is every
    tag key the rules give it (None when the rules did not look at it: the article was
    unchanged); rule tags it has and that are not in ``rule_keys`` are removed."""

    article_id: int
    existed: bool  # stored before this ingest (it may have tags already)
    tags: Mapping[str, tuple[str, TagOrigin]]
    rule_keys: frozenset[str] | None = None


def attach_tags(
    conn: sqlite3.Connection, articles: Sequence[TaggedArticle], *, now: datetime
) -> dict[int, list[int]]:
    """Add the tags of ``articles`` to what they have (inside the caller's write transaction),
    creating tags and aliases as needed; returns each article's tag ids. A tag an article
    already has from a rule becomes the source's or feed's when they give it too."""
    wanted: dict[str, str] = {}
    for article in articles:
        for key, (name, _) in article.tags.items():
            wanted.setdefault(key, name)
    old_ids = [a.article_id for a in articles if a.existed]
    if not wanted and not old_ids:
        return {}
    ids = _resolve(conn, wanted, now=now)
    have: dict[int, dict[int, str]] = defaultdict(dict)  # article id -> tag id -> origin
    sql = "SELECT article_id, tag_id, origin FROM article_tags WHERE article_id IN ({})"
    for article_id, tag_id, origin in select_in(conn, sql, old_ids):
        have[article_id][tag_id] = origin
    inserts: list[tuple[int, int, str]] = []
    upgrades: list[tuple[str, int, int]] = []
    stale: list[tuple[int, int]] = []
    for article in articles:
        current = have[article.article_id]
        for key, (_, origin) in article.tags.items():
            tag_id = ids[key]
            before = current.get(tag_id)
            if before is None:
                inserts.append((article.article_id, tag_id, origin.value))
                current[tag_id] = origin.value
            elif before == TagOrigin.RULE and origin is not TagOrigin.RULE:
                upgrades.append((origin.value, article.article_id, tag_id))
                current[tag_id] = origin.value
        if article.rule_keys is not None and article.existed:
            given = {ids[k] for k in article.rule_keys if k in ids}
            for tag_id, origin in list(current.items()):
                if origin == TagOrigin.RULE and tag_id not in given:
                    stale.append((article.article_id, tag_id))
                    del current[tag_id]
    insert_rows(conn, "article_tags (article_id, tag_id, origin)", inserts)
    if upgrades:
        conn.executemany(
            "UPDATE article_tags SET origin = ? WHERE article_id = ? AND tag_id = ?", upgrades
        )
    if stale:
        conn.executemany("DELETE FROM article_tags WHERE article_id = ? AND tag_id = ?", stale)
    return {article_id: list(tags) for article_id, tags in have.items() if tags}


def _resolve(
    conn: sqlite3.Connection, wanted: Mapping[str, str], *, now: datetime
) -> dict[str, int]:
    """Tag ids for identity keys (``wanted``: key -> display name): an alias, else a tag with
    that key, else a tag whose key is that of the display name (an Atom term labelled with an
    existing tag's name: the term becomes its alias), else a new tag named so."""
    keys = list(wanted)
    found = _known(conn, keys)
    rest = [k for k in keys if k not in found]
    if not rest:
        return found
    name_keys = {k: tag_key(wanted[k]) for k in rest}
    by_name = _known(conn, sorted(set(name_keys.values())))
    new_tags: list[tuple[int, str, str]] = []
    aliases: list[tuple[str, int, str]] = []
    new_id = 0
    for key in rest:
        name_key = name_keys[key]
        tag_id = by_name.get(name_key)
        if tag_id is None:
            new_id = new_id or next_id(conn, "tags")
            tag_id = by_name[name_key] = new_id
            new_tags.append((new_id, name_key, wanted[key]))
            new_id += 1
        found[key] = tag_id
        if key != name_key:
            aliases.append((key, tag_id, to_iso(now)))
    insert_rows(conn, "tags (id, key, name)", new_tags)
    insert_rows(conn, "tag_aliases (alias_key, tag_id, created_at)", aliases)
    return found


def _known(conn: sqlite3.Connection, keys: list[str]) -> dict[str, int]:
    """key -> tag id for the keys that are aliases or tag keys (an alias wins)."""
    found: dict[str, int] = dict(
        select_in(conn, "SELECT alias_key, tag_id FROM tag_aliases WHERE alias_key IN ({})", keys)
    )
    rest = [k for k in keys if k not in found]
    found.update(select_in(conn, "SELECT key, id FROM tags WHERE key IN ({})", rest))
    return found


# ---------------------------------------------------------------------------- rules


@dataclass(frozen=True, slots=True)
class StoredRule:
    id: int
    rule: Rule
    created_at: datetime

    def describe(self) -> str:
        return f"{self.id}  {self.rule.describe()}"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tag": self.rule.tag,
            "pattern": self.rule.pattern,
            "field": self.rule.field.value,
            "feed": self.rule.feed,
            "regex": self.rule.regex,
            "created_at": to_iso(self.created_at),
        }


_RULE_COLUMNS = (
    "r.id, t.name, t.key, r.pattern, r.field, r.feed_url, r.regex, r.created_at"
    " FROM tag_rules r JOIN tags t ON t.id = r.tag_id"
)


def _stored_rule(row: Sequence[Any]) -> StoredRule:
    rule_id, name, key, pattern, fld, feed, regex, created = row
    rule = Rule(name, pattern, field=RuleField(fld), feed=feed or None, regex=bool(regex), key=key)
    return StoredRule(int(rule_id), rule, from_iso(created))


def add_rule(
    db: Database,
    tag: str,
    pattern: str,
    *,
    now: datetime,
    field: RuleField | str = RuleField.TITLE,
    feed: str | None = None,
    regex: bool = False,
) -> StoredRule:
    """Store a rule giving ``tag`` (created if new; an old name means the tag it became) to
    the articles whose ``field`` matches ``pattern``. ``InvalidRule`` names what is wrong with
    the pattern; the same rule twice is refused."""
    try:
        fld = RuleField(field)
    except ValueError:
        names = ", ".join(f.value for f in RuleField)
        raise InvalidRule(f"unknown rule field {field!r} (use one of: {names})") from None
    Rule(tag, pattern, field=fld, feed=feed, regex=regex)  # InvalidRule before anything changes
    with transaction(db):
        target = _tag_for(db.conn, tag)
        rule = Rule(target.name, pattern, field=fld, feed=feed, regex=regex, key=target.key)
        same = db.execute(
            "SELECT id FROM tag_rules WHERE tag_id = ? AND pattern = ? AND field = ?"
            " AND feed_url = ? AND regex = ?",
            [target.id, rule.pattern, rule.field.value, rule.feed or "", int(rule.regex)],
        ).fetchone()
        if same:
            raise InvalidInput(f"rule {same[0]} is the same rule: {rule.describe()}")
        cursor = db.execute(
            "INSERT INTO tag_rules (tag_id, pattern, field, feed_url, regex, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [target.id, rule.pattern, rule.field.value, rule.feed or "", int(rule.regex),
             to_iso(now)],
        )  # fmt: skip
        rule_id = int(cursor.lastrowid or 0)
    return StoredRule(rule_id, rule, now)


def list_rules(db: Database) -> list[StoredRule]:
    """Every rule, by tag name then id."""
    return [
        _stored_rule(row)
        for row in db.execute(f"SELECT {_RULE_COLUMNS} ORDER BY t.name COLLATE NOCASE, r.id")
    ]


def remove_rule(db: Database, rule_id: int) -> StoredRule:
    """Delete rule ``rule_id``; the tags it gave stay until ``apply_rules`` takes them off."""
    with transaction(db):
        row = db.execute(f"SELECT {_RULE_COLUMNS} WHERE r.id = ?", [rule_id]).fetchone()
        if row is None:
            raise NotFound(f"no tag rule {rule_id} (`digest tags rule list` shows them)")
        db.execute("DELETE FROM tag_rules WHERE id = ?", [rule_id])
    return _stored_rule(row)


_RULESETS: dict[tuple[tuple[Any, ...], ...], RuleSet] = {}


def load_rules(db: Database) -> RuleSet:
    """Every stored rule, compiled; kept while the stored rules stay the same (a `digest
    fetch` stores dozens of sources, and regex rules cost a few milliseconds each to compile)."""
    rows = tuple(
        tuple(row) for row in db.execute(f"SELECT {_RULE_COLUMNS} ORDER BY r.id").fetchall()
    )
    found = _RULESETS.get(rows)
    if found is None:
        if len(_RULESETS) >= 8:
            _RULESETS.clear()
        found = _RULESETS[rows] = RuleSet(_stored_rule(row).rule for row in rows)
    return found


def apply_rules(
    db: Database, *, since: datetime | None = None, dry_run: bool = False
) -> tuple[RuleReport, dict[str, str]]:
    """Make the stored articles (published at or after ``since``) carry exactly the tags the
    current rules give them: add what a rule gives, remove rule tags no rule gives any more;
    tags from sources and feeds are never touched. Idempotent: a second run changes nothing.
    Returns the report and the display name of each tag key in it."""
    rules = load_rules(db)
    with transaction(db):
        report = rule_changes(_stored_taggings(db.conn, since), rules)
        names = dict(db.execute("SELECT key, name FROM tags").fetchall())
        if report.changes and not dry_run:
            ids = dict(db.execute("SELECT key, id FROM tags").fetchall())
            conn = db.conn
            insert_rows(
                conn,
                "article_tags (article_id, tag_id, origin)",
                [(c.article_id, ids[k], TagOrigin.RULE.value) for c in report.changes
                 for k in sorted(c.added)],
            )  # fmt: skip
            conn.executemany(
                "DELETE FROM article_tags WHERE article_id = ? AND tag_id = ? AND origin = 'rule'",
                [(c.article_id, ids[k]) for c in report.changes for k in c.removed],
            )
    return report, names


def _stored_taggings(conn: sqlite3.Connection, since: datetime | None) -> Iterator[StoredTagging]:
    where, params = ("WHERE a.published_at >= ?", [to_iso(since)]) if since else ("", [])
    ids = [r[0] for r in conn.execute(f"SELECT a.id FROM articles a {where} ORDER BY a.id", params)]
    for start in range(0, len(ids), APPLY_CHUNK):
        chunk = ids[start : start + APPLY_CHUNK]
        tags: dict[int, set[str]] = defaultdict(set)
        rule_tags: dict[int, set[str]] = defaultdict(set)
        sql = (
            "SELECT at.article_id, t.key, at.origin FROM article_tags at"
            " JOIN tags t ON t.id = at.tag_id WHERE at.article_id IN ({})"
        )
        for article_id, key, origin in select_in(conn, sql, chunk):
            tags[article_id].add(key)
            if origin == TagOrigin.RULE:
                rule_tags[article_id].add(key)
        sql = "SELECT id, title, text, url, author, source FROM articles WHERE id IN ({})"
        for article_id, title, text, url, author, source in select_in(conn, sql, chunk):
            yield StoredTagging(
                article_id,
                ArticleFields(title or "", text or "", url, author, source),
                frozenset(tags[article_id]),
                frozenset(rule_tags[article_id]),
            )


# ---------------------------------------------------------------------------- editing tags


def set_hidden(db: Database, name: str, hidden: bool) -> TagRow:
    """Hide (or show again) the tag ``name``: a hidden tag stays on its articles but is never a
    section and never offered to subscribers."""
    with transaction(db):
        tag = find_tag(db, name)
        db.execute("UPDATE tags SET hidden = ? WHERE id = ?", [int(hidden), tag.id])
    return TagRow(tag.id, tag.key, tag.name, hidden)


@dataclass(frozen=True, slots=True)
class Renamed:
    old: TagRow
    new: TagRow
    # Another tag's old name that the new name takes over (later articles with that spelling
    # now land in the renamed tag), if any.
    took_alias_from: str | None = None


def rename_tag(db: Database, old: str, new: str, *, now: datetime) -> Renamed:
    """Give tag ``old`` the display name ``new``. When the key changes too (not only the
    case), the old key stays as an alias, so later articles spelled the old way land in the
    renamed tag. A name that is another tag's is refused (merge them instead)."""
    with transaction(db):
        tag = find_tag(db, old)
        key, name = _checked_name(new)
        conn = db.conn
        other = conn.execute("SELECT name FROM tags WHERE key = ? AND id != ?", [key, tag.id])
        clash = other.fetchone()
        if clash:
            raise InvalidInput(
                f"tag {clash[0]!r} exists already; to make one tag of the two:"
                f" digest tags merge {_quote(clash[0])} {_quote(tag.name)}"
            )
        took = None
        alias = conn.execute(
            "SELECT t.name, t.id FROM tag_aliases a JOIN tags t ON t.id = a.tag_id"
            " WHERE a.alias_key = ?",
            [key],
        ).fetchone()
        if alias is not None:
            if alias[1] != tag.id:
                took = alias[0]
            conn.execute("DELETE FROM tag_aliases WHERE alias_key = ?", [key])
        conn.execute("UPDATE tags SET key = ?, name = ? WHERE id = ?", [key, name, tag.id])
        if key != tag.key:
            conn.execute(
                "INSERT OR REPLACE INTO tag_aliases (alias_key, tag_id, created_at)"
                " VALUES (?, ?, ?)",
                [tag.key, tag.id, to_iso(now)],
            )
    return Renamed(tag, TagRow(tag.id, key, name, tag.hidden), took)


@dataclass(frozen=True, slots=True)
class Merged:
    into: TagRow
    merged: tuple[tuple[TagRow, int], ...]  # each merged tag with its article count before
    articles: int  # articles of ``into`` afterwards


def merge_tags(db: Database, into: str, others: Iterable[str], *, now: datetime) -> Merged:
    """Make the tags ``others`` part of tag ``into``: their articles and rules move to it, and
    their keys (and aliases) become its aliases, so later articles with those spellings land in
    it too; then they are deleted."""
    with transaction(db):
        target = find_tag(db, into)
        conn = db.conn
        merged: list[tuple[TagRow, int]] = []
        seen = {target.id}
        for name in others:
            tag = find_tag(db, name)
            if tag.id in seen:
                if tag.id == target.id:
                    raise InvalidInput(f"{name!r} is the tag {target.name!r} itself")
                continue
            seen.add(tag.id)
            count = conn.execute(
                "SELECT count(*) FROM article_tags WHERE tag_id = ?", [tag.id]
            ).fetchone()[0]
            # The strongest origin wins: a source or feed tag is never taken off by rules.
            conn.execute(
                "UPDATE article_tags AS t SET origin = o.origin FROM article_tags AS o"
                " WHERE t.tag_id = ? AND o.tag_id = ? AND o.article_id = t.article_id"
                " AND t.origin = 'rule' AND o.origin != 'rule'",
                [target.id, tag.id],
            )
            conn.execute(
                "INSERT OR IGNORE INTO article_tags (article_id, tag_id, origin)"
                " SELECT article_id, ?, origin FROM article_tags WHERE tag_id = ?",
                [target.id, tag.id],
            )
            conn.execute("UPDATE OR IGNORE tag_rules SET tag_id = ? WHERE tag_id = ?",
                         [target.id, tag.id])  # fmt: skip
            conn.execute("UPDATE tag_aliases SET tag_id = ? WHERE tag_id = ?", [target.id, tag.id])
            conn.execute(
                "INSERT OR REPLACE INTO tag_aliases (alias_key, tag_id, created_at)"
                " VALUES (?, ?, ?)",
                [tag.key, target.id, to_iso(now)],
            )
            # Its article_tags and the rules the target already had go with it (cascade).
            conn.execute("DELETE FROM tags WHERE id = ?", [tag.id])
            merged.append((tag, int(count)))
        total = conn.execute(
            "SELECT count(*) FROM article_tags WHERE tag_id = ?", [target.id]
        ).fetchone()[0]
    return Merged(target, tuple(merged), int(total))


def _quote(name: str) -> str:
    return name if name.replace("-", "").isalnum() else f'"{name}"'


# ---------------------------------------------------------------------------- reading


def tag_stats(db: Database) -> list[TagStats]:
    """Every tag with its article count, the dates of its first and last article, its rules
    and aliases; by name."""
    aliases: dict[int, list[str]] = defaultdict(list)
    for alias, tag_id in db.execute("SELECT alias_key, tag_id FROM tag_aliases ORDER BY 1"):
        aliases[tag_id].append(alias)
    rules = dict(db.execute("SELECT tag_id, count(*) FROM tag_rules GROUP BY tag_id").fetchall())
    out = []
    for row in db.execute(
        """
        SELECT t.id, t.key, t.name, t.hidden, count(a.id), min(a.published_at),
               max(a.published_at)
        FROM tags t
        LEFT JOIN article_tags at ON at.tag_id = t.id
        LEFT JOIN articles a ON a.id = at.article_id
        GROUP BY t.id ORDER BY t.name COLLATE NOCASE, t.key
        """
    ):
        tag = _row(row[:4])
        out.append(
            TagStats(
                tag,
                int(row[4]),
                from_iso(row[5]) if row[5] else None,
                from_iso(row[6]) if row[6] else None,
                int(rules.get(tag.id, 0)),
                tuple(aliases.get(tag.id, ())),
            )
        )
    return out


def count_untagged(db: Database, *, since: datetime | None = None) -> int:
    """Articles without a tag that is not hidden (published at or after ``since``)."""
    where, params = ("AND a.published_at >= ?", [to_iso(since)]) if since else ("", [])
    return int(
        db.execute(
            "SELECT count(*) FROM articles a WHERE NOT EXISTS (SELECT 1 FROM article_tags at"
            " JOIN tags t ON t.id = at.tag_id WHERE at.article_id = a.id AND t.hidden = 0)"
            f" {where}",
            params,
        ).fetchone()[0]
    )
