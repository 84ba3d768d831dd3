"""Storing articles: the only module that writes ``articles``, ``tags``, ``article_tags`` and
``article_urls``.

``store_batch`` writes one batch of ``ArticleInput`` records in one write transaction: it looks
up existing articles for the whole batch at once (by stable key, then by canonical URL, then by
the other URLs stored articles are known by), sanitises only what is new or changed, and writes
with multi-row statements. An article's key is its feed guid/id, else its canonical URL, else a
hash of its content; the same article from two sources is one row with the union of their tags.
Every URL an entry brings (its link and its ``aliases``: where a page was fetched from, where
that redirected, its ``og:url``) that differs from the row's own canonical URL is remembered in
``article_urls``, so a page ingested by URL and the same story arriving in a feed are one
article whichever comes first. ``store_articles`` stores a whole parsed source batch by batch.
``store_full_text`` puts the text of an entry's linked page in place of its summary. A rejected
entry never stops the good entries of its source, and an entry whose sanitising fails in a way
nobody foresaw is rejected with the reason, not its whole batch.

On the way in, the CMS boilerplate of summaries and content ("The post X appeared first on Y.",
"Continue reading", tracking pixels) is removed (``excerpts``) before the text is derived, each
article keeps the lead image its reader chose, and the editors' tag rules (``tagrules``, loaded
from ``tagstore``) tag every new or changed article; its tags are written by ``tagstore``.
"""

from __future__ import annotations

import hashlib
import html
import re
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import urljoin

from sqlite_utils import Database

from ..store import transaction
from ..store.bulk import insert_rows, next_id, row_chunks, select_in
from ..timeutil import to_iso
from .excerpts import strip_boilerplate
from .inputs import ArticleInput, ParsedSource, Rejection
from .sanitize import clean_html, html_to_text
from .tagging import make_tag
from .tagrules import ArticleFields, RuleSet
from .tagstore import TaggedArticle, TagOrigin, attach_tags, hidden_tag_ids, load_rules
from .urls import article_url, canonical_url

# Articles per write transaction.
BATCH_SIZE = 1000


@dataclass
class SourceReport:
    """What happened to one source (or one batch of it): counts, rejected entries with the
    reason, warnings (date fallbacks, truncation, encoding), or ``error`` when the source could
    not be read at all."""

    source: str = ""
    kind: str = ""
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0  # published before --since
    untagged: int = 0  # new articles without a tag (that is not hidden)
    rejected: list[Rejection] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Lines for an editor to check what was read: what each page or text scrape gave, what
    # fetching the linked pages of a summary-only feed gave.
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    article_ids: list[int] = field(default_factory=list, repr=False)  # stored or matched
    # What this ingest left each of them as: id -> (content hash, its tag ids joined by ","),
    # the parts of the state ``remember_source`` records.
    states: dict[int, tuple[str, str]] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None and not self.rejected

    @property
    def total(self) -> int:
        return self.new + self.updated + self.unchanged + self.skipped + len(self.rejected)

    def add(self, other: SourceReport) -> None:
        self.new += other.new
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.skipped += other.skipped
        self.untagged += other.untagged
        self.rejected += other.rejected
        self.warnings += other.warnings
        self.notes += other.notes
        self.article_ids += other.article_ids
        self.states.update(other.states)  # a later batch saw the earlier one's writes

    def summary_line(self) -> str:
        if self.error:
            return f"{self.source}: failed: {self.error}"
        parts = [f"{self.new} new", f"{self.updated} updated", f"{self.unchanged} unchanged"]
        if self.skipped:
            parts.append(f"{self.skipped} before --since")
        parts.append(f"{len(self.rejected)} rejected")
        return f"{self.source}: " + ", ".join(parts)


def _fingerprint(item: ArticleInput) -> str:
    # Each part followed by a NUL byte, hashed in one go.
    parts = (item.title or "", item.summary_html or "", item.content_html or "", "")
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


# ---------------------------------------------------------------------------- sanitising

_RELATIVE = re.compile(r'\b(href|src)="(?![a-zA-Z][a-zA-Z0-9+.\-]*:|#)([^"]*)"')


def _absolute_links(fragment: str, base: str) -> str:
    def fix(m: re.Match) -> str:
        return f'{m.group(1)}="{html.escape(urljoin(base, html.unescape(m.group(2))))}"'

    return _RELATIVE.sub(fix, fragment)


def _size(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB" if n >= 1_000_000 else f"{n / 1000:.0f} KB"


@dataclass(slots=True)
class _Rendered:
    title: str
    summary: str | None
    content_html: str
    text: str
    note: str | None
    title_from_text: bool


def _render(item: ArticleInput, *, max_text_bytes: int, base: str | None) -> _Rendered:
    """Sanitise and derive text; cap the stored text at ``max_text_bytes`` with a note."""
    raw = item.content_html or item.summary_html or ""
    note = None
    original = len(raw.encode("utf-8", "surrogatepass")) if len(raw) > max_text_bytes else 0
    # Bound the work on huge entries: markup is rarely more than a few times the text.
    raw_cap = max_text_bytes * 4 + 4096
    content = clean_html(raw[:raw_cap] if len(raw) > raw_cap else raw) if raw else ""
    if content:
        content = strip_boilerplate(content)
    # Without content the summary is what was just cleaned (RSS items with only a
    # <description>): clean it once, not twice.
    summary = content if item.summary_html and not item.content_html else None
    if base and ('href="' in content or 'src="' in content):
        content = _absolute_links(content, base)
    text = html_to_text(content) if content else ""
    encoded = text.encode("utf-8")
    if len(encoded) > max_text_bytes or len(raw) > raw_cap:
        text = encoded[:max_text_bytes].decode("utf-8", "ignore").rstrip()
        if len(content) > 2 * max_text_bytes:
            content = clean_html(content[: 2 * max_text_bytes])
        note = (
            f"text truncated to {_size(max_text_bytes)} ([ingest] max_text_bytes); "
            f"the entry was {_size(original)}"
        )
    if summary is None and item.summary_html:
        s = item.summary_html
        summary = strip_boilerplate(clean_html(s[:raw_cap] if len(s) > raw_cap else s))
    title = item.title
    from_text = False
    if not title:
        words = text.split()
        if words:
            title = " ".join(words[:12])
            if len(title) > 90:
                title = title[:89].rstrip() + "…"
            elif len(words) > 12:
                title += "…"
            from_text = True
        else:
            title = item.url or "(untitled)"
    return _Rendered(title, summary, content, text, note, from_text)


# ---------------------------------------------------------------------------- storing


class _StoredRow(NamedTuple):
    """What the store already has for an incoming article."""

    id: int
    key: str
    canonical_url: str | None
    content_hash: str


@dataclass(slots=True)
class _Pending:
    item: ArticleInput
    key: str
    canon: str | None
    url: str | None
    fingerprint: str
    tags: dict[str, tuple[str, TagOrigin]]  # tag key -> (display name, where it came from)
    aliases: tuple[str, ...] = ()  # canonical forms of the entry's other URLs, not ``canon``
    existing: _StoredRow | None = None  # the stored row it matched
    by_key: bool = False
    article_id: int | None = None
    rendered: _Rendered | Rejection | None = None  # sanitised ahead of need (see store_articles)
    rule_keys: frozenset[str] | None = None  # the tags rules give it, once rendered


@dataclass(slots=True)
class _Prepared:
    """One batch checked and keyed, before the database is asked anything."""

    result: SourceReport
    pending: list[_Pending]
    keys: list[str]


def store_batch(
    db: Database,
    items: Sequence[ArticleInput | Rejection],
    *,
    source: str,
    now: datetime,
    max_text_bytes: int = 200_000,
    tags: Iterable[str] = (),
    since: datetime | None = None,
    base_url: str | None = None,
    rules: RuleSet | None = None,
) -> SourceReport:
    """Store one batch in one write transaction (all of it or none of it).

    New articles are inserted; an article already stored under the same key whose title or
    content changed is updated; an article matched only by canonical URL (the same story from
    another source) keeps its stored content. Tags are always unioned. Entries published before
    ``since`` are skipped. ``rules`` (default: the stored tag rules) tag new and changed
    articles."""
    prepared = _prepare(items, tags=tags, since=since, base_url=base_url)
    return _write(
        db, prepared, source=source, now=now, max_text_bytes=max_text_bytes, base_url=base_url,
        rules=load_rules(db) if rules is None else rules,
    )  # fmt: skip


def _prepare(
    items: Sequence[ArticleInput | Rejection],
    *,
    tags: Iterable[str],
    since: datetime | None,
    base_url: str | None,
) -> _Prepared:
    """Reject, skip, key and merge the entries of one batch; no database access."""
    result = SourceReport()
    extra_tags: dict[str, tuple[str, TagOrigin]] = {}
    for name in tags:
        extra = make_tag(name)
        if extra is not None:
            extra_tags.setdefault(extra.key, (extra.name, TagOrigin.FEED))
    pending: list[_Pending] = []
    by_key: dict[str, _Pending] = {}
    by_canon: dict[str, _Pending] = {}
    for item in items:
        if isinstance(item, Rejection):
            result.rejected.append(item)
            continue
        url, warning = article_url(item.url, base_url)
        if warning:
            result.warnings.append(f"{item.entry}: {warning}")
        if not url and not (item.content_html or item.summary_html):
            result.rejected.append(Rejection(item.entry, "neither a link nor any text"))
            continue
        if since is not None and item.published is not None and item.published < since:
            result.skipped += 1
            continue
        fingerprint = _fingerprint(item)
        canon = canonical_url(url) if url else None
        key = f"id:{item.guid}" if item.guid else f"url:{canon}" if canon else f"hash:{fingerprint}"
        entry_tags = {tag.key: (tag.name, TagOrigin.SOURCE) for tag in item.tags}
        for k, given in extra_tags.items():
            entry_tags.setdefault(k, given)
        aliases = _aliases(item, canon, base_url) if item.aliases else ()
        twin = by_key.get(key)
        for u in (canon, *aliases) if twin is None and canon else ():
            twin = twin or by_canon.get(u)
        if twin is not None:
            # The same article twice in one source: one row, tags merged.
            for k, given in entry_tags.items():
                twin.tags.setdefault(k, given)
            result.unchanged += 1
            result.warnings.append(f"{item.entry}: same article as {twin.item.entry}; merged")
            continue
        p = _Pending(item, key, canon, url, fingerprint, entry_tags, aliases)
        pending.append(p)
        by_key[key] = p
        for u in (canon, *aliases) if canon else ():
            by_canon.setdefault(u, p)
    return _Prepared(result, pending, list(by_key))


def _aliases(item: ArticleInput, canon: str | None, base_url: str | None) -> tuple[str, ...]:
    """The canonical forms of an entry's other http(s) URLs, without its own and repeats."""
    out: list[str] = []
    for alias in item.aliases:
        url, _ = article_url(alias, base_url)
        if url:
            c = canonical_url(url)
            if c != canon and c not in out:
                out.append(c)
    return tuple(out)


def _render_all(
    prepared: _Prepared,
    *,
    max_text_bytes: int,
    base_url: str | None,
    rules: RuleSet | None = None,
    source: str = "",
) -> _Prepared:
    """Sanitise (and tag by ``rules``) every pending article of a batch ahead of need (see
    ``store_articles``)."""
    for p in prepared.pending:
        p.rendered = _render_entry(p.item, max_text_bytes=max_text_bytes, base=p.url or base_url)
        if isinstance(p.rendered, _Rendered):
            p.rule_keys = _rule_keys(p, p.rendered, rules, source)
    return prepared


def _render_entry(
    item: ArticleInput, *, max_text_bytes: int, base: str | None
) -> _Rendered | Rejection:
    """``_render``, or the entry's rejection if it fails (see the module docstring)."""
    try:
        return _render(item, max_text_bytes=max_text_bytes, base=base)
    except BaseException as e:  # noqa: BLE001 - the entry fails alone
        # nh3 is Rust: a panic in it arrives as pyo3's PanicException, a BaseException.
        if isinstance(e, KeyboardInterrupt | SystemExit | GeneratorExit):
            raise
        return Rejection(item.entry, f"could not be sanitised ({type(e).__name__}: {e})"[:300])


def _rule_keys(
    p: _Pending, rendered: _Rendered, rules: RuleSet | None, source: str
) -> frozenset[str] | None:
    """The keys of the tags ``rules`` give an article as it will be stored; None when there
    are no rules to ask (``rules`` None: the caller did not load them)."""
    if rules is None:
        return None
    if not rules:
        return frozenset()
    title, text, url, author = rendered.title, rendered.text, p.url, p.item.author
    try:
        return rules.apply(ArticleFields(title, text, url, author, source))
    except UnicodeEncodeError:
        # RE2 takes UTF-8: a lone surrogate (JSON "\ud800") is matched as "?".
        return rules.apply(
            ArticleFields(_utf8(title), _utf8(text), _utf8(url), _utf8(author), _utf8(source))
        )


def _utf8(value: str | None) -> str:
    return value.encode("utf-8", "replace").decode("utf-8") if value else ""


def _write(
    db: Database,
    prepared: _Prepared,
    *,
    source: str,
    now: datetime,
    max_text_bytes: int,
    base_url: str | None,
    decided: Callable[[int, int], None] | None = None,
    rules: RuleSet | None = None,
) -> SourceReport:
    """Look up, sanitise what is new or changed, and write one prepared batch in one write
    transaction. ``decided(to_store, pending)`` says how many of the batch's articles are new or
    changed; it is called once they are sanitised, before anything is written. ``rules`` tag
    what is new or changed (None: rules are not applied)."""
    result, pending, keys = prepared.result, prepared.pending, prepared.keys
    if not pending:
        return result

    now_iso = to_iso(now)
    with transaction(db):
        conn = db.conn
        columns = "SELECT id, key, canonical_url, content_hash FROM articles"
        found = {
            m.key: m
            for m in map(_StoredRow._make, select_in(conn, f"{columns} WHERE key IN ({{}})", keys))
        }
        canons = list(
            {u: None for p in pending if p.canon and p.key not in found for u in _urls(p)}
        )
        canon_found: dict[str, _StoredRow] = {}
        sql = f"{columns} WHERE canonical_url IN ({{}}) ORDER BY id DESC"
        for m in map(_StoredRow._make, select_in(conn, sql, canons)):
            if m.canonical_url is not None:
                canon_found[m.canonical_url] = m  # the oldest row wins (ordered by id desc)
        # An article's own canonical URL wins over another article's alias for the same URL.
        sql = (
            "SELECT u.url, a.id, a.key, a.canonical_url, a.content_hash FROM article_urls u"
            " JOIN articles a ON a.id = u.article_id WHERE u.url IN ({})"
        )
        alias_found = {
            row[0]: _StoredRow._make(row[1:])
            for row in select_in(conn, sql, [u for u in canons if u not in canon_found])
        }

        new_id = next_id(conn, "articles")
        to_store: list[_Pending] = []
        for p in pending:
            match = found.get(p.key)
            p.by_key = match is not None
            if match is None and p.canon:
                match = next((canon_found[u] for u in _urls(p) if u in canon_found), None)
                match = match or next((alias_found[u] for u in _urls(p) if u in alias_found), None)
            if match is not None:
                p.existing = match
                p.article_id = match.id
                if not p.by_key or match.content_hash == p.fingerprint:
                    result.unchanged += 1
                    p.rule_keys = None  # rules tag what is stored new or changed
                    continue
            to_store.append(p)
        inserts: list[tuple[Any, ...]] = []
        updates: list[tuple[Any, ...]] = []
        for p in to_store:
            item, row = p.item, p.existing
            r = p.rendered or _render_entry(
                item, max_text_bytes=max_text_bytes, base=p.url or base_url
            )
            if isinstance(r, Rejection):
                result.rejected.append(r)
                p.article_id = None
                p.rule_keys = None
                continue
            if p.rule_keys is None:
                p.rule_keys = _rule_keys(p, r, rules, source)
            if not r.text and not p.url:
                result.rejected.append(
                    Rejection(
                        item.entry, "neither a link nor any text (nothing left after cleaning)"
                    )
                )
                p.article_id = None
                p.rule_keys = None
                continue
            if r.note:
                result.warnings.append(f"{item.entry}: {r.note}")
            if r.title_from_text:
                result.warnings.append(f"{item.entry}: no title; used the first words of the text")
            image = item.image
            pictured = (image.url, image.width, image.height, image.alt) if image else (None,) * 4
            if row is None:
                published = _published(item, now, result)
                p.article_id = new_id
                new_id += 1
                inserts.append(
                    (
                        p.article_id, p.key, p.canon, p.url, r.title, item.author,
                        to_iso(published), r.summary, r.content_html, r.text, p.fingerprint,
                        source, r.note, now_iso, now_iso, *pictured,
                    )
                )  # fmt: skip
                result.new += 1
            else:
                updates.append(
                    (
                        p.url, r.title, item.author,
                        to_iso(_published(item, now, result)) if item.published else None,
                        r.summary, r.content_html, r.text, p.fingerprint, r.note, now_iso,
                        *pictured, p.article_id,
                    )
                )  # fmt: skip
                result.updated += 1
        if decided is not None:
            decided(len(to_store), len(pending))
        # One statement for many rows: the FTS triggers then index the whole batch at once.
        # Run row by row, FTS5 writes its pending index to disk after every statement, which
        # made indexing ~60% of the time of storing an article.
        insert_rows(
            conn,
            "articles (id, key, canonical_url, url, title, author, published_at, summary,"
            " content_html, text, content_hash, source, note, ingested_at, updated_at,"
            " image_url, image_width, image_height, image_alt)",
            inserts,
        )
        if updates:
            for chunk in row_chunks(conn, updates):
                one = "(" + ",".join("?" * len(chunk[0])) + ")"
                conn.execute(
                    "UPDATE articles SET url = coalesce(v.column1, url), title = v.column2,"
                    " author = coalesce(v.column3, author),"
                    " published_at = coalesce(v.column4, published_at), summary = v.column5,"
                    " content_html = v.column6, text = v.column7, content_hash = v.column8,"
                    " note = v.column9, updated_at = v.column10,"
                    # An update without an image keeps the one the article had.
                    " image_url = coalesce(v.column11, image_url),"
                    " image_width = iif(v.column11 IS NULL, image_width, v.column12),"
                    " image_height = iif(v.column11 IS NULL, image_height, v.column13),"
                    " image_alt = iif(v.column11 IS NULL, image_alt, v.column14)"
                    f" FROM (VALUES {','.join([one] * len(chunk))}) AS v"
                    " WHERE articles.id = v.column15",
                    [value for row in chunk for value in row],
                )
        stored = [(p, p.article_id) for p in pending if p.article_id is not None]
        tags_of = attach_tags(conn, [_tagged(p, a, rules) for p, a in stored], now=now)
        if result.new:
            hidden = hidden_tag_ids(conn)
            result.untagged += sum(
                1
                for p, article_id in stored
                if p.existing is None and not set(tags_of.get(article_id, ())) - hidden
            )
        _remember_urls(conn, stored)
    result.article_ids = [article_id for _, article_id in stored]
    for p, article_id in stored:
        row = p.existing
        kept = row is not None and (not p.by_key or row.content_hash == p.fingerprint)
        tag_ids = tags_of.get(article_id)
        result.states[article_id] = (
            row.content_hash if row is not None and kept else p.fingerprint,
            ",".join(map(str, sorted(tag_ids))) if tag_ids else "None",
        )
    return result


def _urls(p: _Pending) -> tuple[str, ...]:
    return (p.canon, *p.aliases) if p.canon else ()


def _remember_urls(conn: sqlite3.Connection, stored: list[tuple[_Pending, int]]) -> None:
    """Record the URLs each stored entry came with that its row is not already known by. A URL
    already recorded for an article stays with that article."""
    rows: list[tuple[str, int]] = []
    for p, article_id in stored:
        own = p.existing.canonical_url if p.existing is not None else p.canon
        rows.extend((u, article_id) for u in _urls(p) if u != own)
    if rows:
        conn.executemany("INSERT OR IGNORE INTO article_urls (url, article_id) VALUES (?, ?)", rows)


# An entry dated further ahead than this is taken to have a wrong date (a timezone slip is hours,
# not days): it is stored with the ingest time, so it cannot sit at the top of every digest.
FUTURE_TOLERANCE = timedelta(days=1)


def _published(item: ArticleInput, now: datetime, result: SourceReport) -> datetime:
    """When the article counts as published: its date, else (no date, an unreadable one, or
    one far in the future) the ingest time, with a warning naming the entry."""
    published = item.published
    if published is None:
        why = f"unreadable date {item.raw_date!r}" if item.raw_date else "no date"
        result.warnings.append(f"{item.entry}: {why}; used the ingest time")
        return now
    if published > now + FUTURE_TOLERANCE:
        result.warnings.append(
            f"{item.entry}: dated {published:%Y-%m-%d %H:%M} UTC, in the future; used the ingest"
            " time"
        )
        return now
    return published


Progress = Callable[[str, int, int], None]  # (source label, entries done, entries in total)


def store_articles(
    db: Database,
    parsed: ParsedSource,
    *,
    now: datetime,
    max_text_bytes: int = 200_000,
    tags: Iterable[str] = (),
    since: datetime | None = None,
    progress: Progress | None = None,
    batch_size: int = BATCH_SIZE,
    after_batch: Callable[[], None] | None = None,
    rules: RuleSet | None = None,
) -> SourceReport:
    """Store every entry of a parsed source, one write transaction per batch; ``after_batch()``
    is called after each batch is committed (see ``background_checkpoints``). ``rules``
    (default: the stored tag rules, loaded once) tag new and changed articles.

    With more than one batch, a worker thread prepares batch n+1 while batch n is written:
    SQLite releases the GIL inside each statement, so the worker's Python runs while the main
    thread waits for SQLite. When most of batch n turned out new or changed, the worker also
    sanitises batch n+1 ahead of need; a source whose entries are mostly stored already is
    sanitised only where the lookups ask for it."""
    report = SourceReport(source=parsed.label, kind=parsed.kind, warnings=list(parsed.warnings))
    tags = tuple(tags)
    items = parsed.items
    total = len(items)
    base_url = parsed.base_url
    ruleset = load_rules(db) if rules is None else rules

    def write(prepared: _Prepared, decided: Callable[[int, int], None] | None = None) -> None:
        report.add(
            _write(db, prepared, source=parsed.label, now=now, max_text_bytes=max_text_bytes,
                   base_url=base_url, decided=decided, rules=ruleset)
        )  # fmt: skip

    def prepare(start: int, ahead: bool) -> _Prepared:
        prepared = _prepare(
            items[start : start + batch_size], tags=tags, since=since, base_url=base_url
        )
        if ahead:
            _render_all(prepared, max_text_bytes=max_text_bytes, base_url=base_url,
                        rules=ruleset, source=parsed.label)  # fmt: skip
        return prepared

    if total == 0:
        return report
    if total <= batch_size:
        write(prepare(0, False))
        if after_batch is not None:
            after_batch()
        if progress is not None:
            progress(parsed.label, total, total)
        return report

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="digest-prepare") as worker:
        following: Future[_Prepared] | None = worker.submit(prepare, 0, False)
        for start in range(0, total, batch_size):
            assert following is not None
            current, following = following.result(), None
            after = start + batch_size

            def decided(to_store: int, pending: int, after: int = after) -> None:
                nonlocal following
                if after < total:
                    following = worker.submit(prepare, after, 2 * to_store >= pending)

            write(current, decided)
            if after_batch is not None:
                after_batch()
            if following is None and after < total:  # nothing was pending in this batch
                following = worker.submit(prepare, after, False)
            if progress is not None:
                progress(parsed.label, min(after, total), total)
    return report


def _tagged(p: _Pending, article_id: int, rules: RuleSet | None) -> TaggedArticle:
    """What ``tagstore.attach_tags`` needs of one stored article: its tags with their origin,
    the rule tags among them, and (when rules looked at it) every tag the rules give it."""
    tags = p.tags
    if p.rule_keys and rules is not None:
        tags = dict(tags)
        for key in sorted(p.rule_keys):
            tags.setdefault(key, (rules.tags[key].name, TagOrigin.RULE))
    return TaggedArticle(article_id, p.existing is not None, tags, p.rule_keys)


@dataclass(frozen=True, slots=True)
class FullText:
    """The article of an entry's linked page, to store in place of the entry's summary.
    ``content_html`` is raw (sanitised here); ``entry_hash`` is the entry's ``content_hash``
    when the page was fetched for it."""

    article_id: int
    entry_hash: str
    content_html: str
    base_url: str | None
    author: str | None = None
    urls: tuple[str, ...] = ()  # where the page was found: redirect target, its canonical URL


def store_full_text(
    db: Database, full_text: FullText, *, now: datetime, max_text_bytes: int = 200_000
) -> bool:
    """Put the linked page's text in place of the summary of one stored entry, sanitised and
    capped like any content: ``content_html`` and ``text`` change; the summary, the title and
    ``content_hash`` stay the feed's, so the next poll of an unchanged entry leaves the full
    text in place (an entry the feed changes gets its summary back, and its page fetched
    again). Text over ``max_text_bytes`` is truncated with a note, as at ingest. Returns False,
    writing nothing, if the entry changed or was deleted since the page was fetched."""
    item = ArticleInput(entry=str(full_text.article_id), title="-", url=None,
                        content_html=full_text.content_html)  # fmt: skip
    r = _render(item, max_text_bytes=max_text_bytes, base=full_text.base_url)
    with transaction(db):
        cur = db.conn.execute(
            "UPDATE articles SET content_html = ?, text = ?, author = coalesce(author, ?),"
            " note = ?, updated_at = ? WHERE id = ? AND content_hash = ?",
            [r.content_html, r.text, full_text.author, r.note, to_iso(now),
             full_text.article_id, full_text.entry_hash],
        )  # fmt: skip
        if cur.rowcount != 1:
            return False
        own = db.conn.execute(
            "SELECT canonical_url FROM articles WHERE id = ?", [full_text.article_id]
        ).fetchone()[0]
        urls = {canonical_url(u) for u in full_text.urls if article_url(u, None)[0]}
        db.conn.executemany(
            "INSERT OR IGNORE INTO article_urls (url, article_id) VALUES (?, ?)",
            [(u, full_text.article_id) for u in sorted(urls) if u != own],
        )
    return True
