"""Storing and reading articles. ``store_batch`` writes one batch of ``ArticleInput`` records in
one write transaction: it looks up existing articles for the whole batch at once (by stable key,
then by canonical URL), sanitises only what is new or changed, and writes with ``executemany``.
An article's key is its feed guid/id, else its canonical URL, else a hash of its content; the
same article from two sources is one row with the union of their tags. ``list_articles`` and
``search_articles`` are what the CLI and the digest builder read.
"""

from __future__ import annotations

import hashlib
import html
import json
import queue
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urljoin, urlsplit, urlunsplit

from sqlite_utils import Database

from .errors import InvalidInput, NotFound
from .sanitize import clean_html, html_to_text
from .sources import ArticleInput, ParsedSource, Rejection
from .store import clean_tag_name, tag_key, write_transaction
from .timeutil import from_iso, to_iso

# SQLite's default limit on host parameters is 32766 (>= 3.32); stay well under it.
_CHUNK = 900
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
    rejected: list[Rejection] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
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
        self.rejected += other.rejected
        self.warnings += other.warnings
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


@dataclass(frozen=True)
class Article:
    id: int
    title: str
    url: str | None
    author: str | None
    published_at: datetime
    summary: str | None
    content_html: str | None
    text: str | None
    tags: tuple[str, ...]  # display names, sorted by key
    source: str
    note: str | None
    ingested_at: datetime
    updated_at: datetime

    def to_json(self, *, content: bool = False) -> dict:
        out = {
            "id": self.id,
            "title": self.title,
            "url": self.url,
            "author": self.author,
            "published_at": to_iso(self.published_at),
            "tags": list(self.tags),
            "source": self.source,
            "summary": self.summary,
            "note": self.note,
            "ingested_at": to_iso(self.ingested_at),
            "updated_at": to_iso(self.updated_at),
        }
        if content:
            out["content_html"] = self.content_html
            out["text"] = self.text
        return out


# ---------------------------------------------------------------------------- URLs and keys

_TRACKING = re.compile(r"(utm_[a-z_]+|fbclid|gclid|mc_cid|mc_eid)$", re.I)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.\-]*:")


# Most links are already canonical; recognising them with one regex is ~20x cheaper than
# taking them apart.
_PLAIN_URL = re.compile(r"https?://[a-z0-9.\-]+(/[^?#\s]*)?")


def canonical_url(url: str) -> str:
    """The form used to match one article across sources: lower-case scheme and host, no
    default port, no fragment, no tracking parameters (utm_*, fbclid, gclid, mc_*)."""
    url = url.strip()
    m = _PLAIN_URL.fullmatch(url)
    if m:
        return url if m.group(1) else url + "/"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if port and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    query = "&".join(
        p for p in parts.query.split("&") if p and not _TRACKING.match(p.split("=", 1)[0])
    )
    return urlunsplit((scheme, host, parts.path or "/", query, ""))


def article_url(url: str | None, base: str | None) -> tuple[str | None, str | None]:
    """(absolute http(s) link or None, warning or None)."""
    if not url:
        return None, None
    if not _SCHEME.match(url) and base:
        url = urljoin(base, url)
    scheme = url.split(":", 1)[0].lower()
    if scheme not in ("http", "https"):
        return None, f"link {url[:60]!r} is not an http(s) URL; ignored"
    return url, None


_TAG_NAMES: dict[str, tuple[str, str]] = {}


def _tag(name: str) -> tuple[str, str]:
    """(key, display name) of a tag as written in a source; the same few tags recur on every
    entry, so they are worked out once per process."""
    found = _TAG_NAMES.get(name)
    if found is None:
        if len(_TAG_NAMES) > 10_000:
            _TAG_NAMES.clear()
        found = _TAG_NAMES[name] = (tag_key(name), clean_tag_name(name))
    return found


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
        summary = clean_html(s[:raw_cap] if len(s) > raw_cap else s)
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


@dataclass(slots=True)
class _Pending:
    item: ArticleInput
    key: str
    canon: str | None
    url: str | None
    fingerprint: str
    tags: dict[str, str]  # tag key -> display name
    existing: tuple | None = None  # (id, key, canonical_url, content_hash) of the stored row
    by_key: bool = False
    article_id: int | None = None
    rendered: _Rendered | None = None  # sanitised ahead of need (see store_articles)


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
) -> SourceReport:
    """Store one batch in one write transaction (all of it or none of it).

    New articles are inserted; an article already stored under the same key whose title or
    content changed is updated; an article matched only by canonical URL (the same story from
    another source) keeps its stored content. Tags are always unioned. Entries published before
    ``since`` are skipped."""
    prepared = _prepare(items, tags=tags, since=since, base_url=base_url)
    return _write(
        db, prepared, source=source, now=now, max_text_bytes=max_text_bytes, base_url=base_url
    )


def _prepare(
    items: Sequence[ArticleInput | Rejection],
    *,
    tags: Iterable[str],
    since: datetime | None,
    base_url: str | None,
) -> _Prepared:
    """Reject, skip, key and merge the entries of one batch; no database access."""
    result = SourceReport()
    extra_tags = dict(_tag(t) for t in tags if _tag(t)[0])
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
        entry_tags = dict(extra_tags)
        for name in item.tags:
            k, display = _tag(name)
            if k and k not in entry_tags:
                entry_tags[k] = display
        twin = by_key.get(key) or (by_canon.get(canon) if canon else None)
        if twin is not None:
            # The same article twice in one source: one row, tags merged.
            for k, name in entry_tags.items():
                twin.tags.setdefault(k, name)
            result.unchanged += 1
            result.warnings.append(f"{item.entry}: same article as {twin.item.entry}; merged")
            continue
        p = _Pending(item, key, canon, url, fingerprint, entry_tags)
        pending.append(p)
        by_key[key] = p
        if canon:
            by_canon[canon] = p
    return _Prepared(result, pending, list(by_key))


def _render_all(prepared: _Prepared, *, max_text_bytes: int, base_url: str | None) -> _Prepared:
    """Sanitise every pending article of a batch ahead of need (see ``store_articles``)."""
    for p in prepared.pending:
        p.rendered = _render(p.item, max_text_bytes=max_text_bytes, base=p.url or base_url)
    return prepared


def _write(
    db: Database,
    prepared: _Prepared,
    *,
    source: str,
    now: datetime,
    max_text_bytes: int,
    base_url: str | None,
    decided: Callable[[int, int], None] | None = None,
) -> SourceReport:
    """Look up, sanitise what is new or changed, and write one prepared batch in one write
    transaction. ``decided(to_store, pending)`` says how many of the batch's articles are new or
    changed; it is called once they are sanitised, before anything is written."""
    result, pending, keys = prepared.result, prepared.pending, prepared.keys
    if not pending:
        return result

    now_iso = to_iso(now)
    with write_transaction(db):
        conn = db.conn
        columns = "SELECT id, key, canonical_url, content_hash FROM articles"
        found = {row[1]: row for row in _select_in(conn, f"{columns} WHERE key IN ({{}})", keys)}
        canons = [p.canon for p in pending if p.canon and p.key not in found]
        canon_found: dict[str, tuple] = {}
        sql = f"{columns} WHERE canonical_url IN ({{}}) ORDER BY id DESC"
        for row in _select_in(conn, sql, canons):
            canon_found[row[2]] = row  # the oldest row wins (ordered by id desc)

        next_id = (conn.execute("SELECT max(id) FROM articles").fetchone()[0] or 0) + 1
        to_store: list[_Pending] = []
        for p in pending:
            row = found.get(p.key)
            p.by_key = row is not None
            if row is None and p.canon:
                row = canon_found.get(p.canon)
            if row is not None:
                p.existing = row
                p.article_id = row[0]
                if not p.by_key or row[3] == p.fingerprint:
                    result.unchanged += 1
                    continue
            to_store.append(p)
        inserts: list[tuple] = []
        updates: list[tuple] = []
        for p in to_store:
            item, row = p.item, p.existing
            r = p.rendered or _render(item, max_text_bytes=max_text_bytes, base=p.url or base_url)
            if not r.text and not p.url:
                result.rejected.append(
                    Rejection(
                        item.entry, "neither a link nor any text (nothing left after cleaning)"
                    )
                )
                p.article_id = None
                continue
            if r.note:
                result.warnings.append(f"{item.entry}: {r.note}")
            if r.title_from_text:
                result.warnings.append(f"{item.entry}: no title; used the first words of the text")
            if row is None:
                published = item.published
                if published is None:
                    published = now
                    why = f"unreadable date {item.raw_date!r}" if item.raw_date else "no date"
                    result.warnings.append(f"{item.entry}: {why}; used the ingest time")
                p.article_id = next_id
                next_id += 1
                inserts.append(
                    (
                        p.article_id, p.key, p.canon, p.url, r.title, item.author,
                        to_iso(published), r.summary, r.content_html, r.text, p.fingerprint,
                        source, r.note, now_iso, now_iso,
                    )
                )  # fmt: skip
                result.new += 1
            else:
                updates.append(
                    (
                        p.url, r.title, item.author, to_iso(item.published) if item.published else None,
                        r.summary, r.content_html, r.text, p.fingerprint, r.note, now_iso, p.article_id,
                    )
                )  # fmt: skip
                result.updated += 1
        if decided is not None:
            decided(len(to_store), len(pending))
        # One statement for many rows: the FTS triggers then index the whole batch at once.
        # Run row by row, FTS5 writes its pending index to disk after every statement, which
        # made indexing ~60% of the time of storing an article.
        _insert_rows(
            conn,
            "articles (id, key, canonical_url, url, title, author, published_at, summary,"
            " content_html, text, content_hash, source, note, ingested_at, updated_at)",
            inserts,
        )
        if updates:
            for chunk in _row_chunks(conn, updates):
                one = "(" + ",".join("?" * len(chunk[0])) + ")"
                conn.execute(
                    "UPDATE articles SET url = coalesce(v.column1, url), title = v.column2,"
                    " author = coalesce(v.column3, author),"
                    " published_at = coalesce(v.column4, published_at), summary = v.column5,"
                    " content_html = v.column6, text = v.column7, content_hash = v.column8,"
                    " note = v.column9, updated_at = v.column10"
                    f" FROM (VALUES {','.join([one] * len(chunk))}) AS v"
                    " WHERE articles.id = v.column11",
                    [value for row in chunk for value in row],
                )
        stored = [p for p in pending if p.article_id is not None]
        tags_of = _union_tags(conn, stored, result, now_iso)
    result.article_ids = [p.article_id for p in stored]
    for p in stored:
        row = p.existing
        kept = row is not None and (not p.by_key or row[3] == p.fingerprint)
        tag_ids = tags_of.get(p.article_id)
        result.states[p.article_id] = (
            row[3] if kept else p.fingerprint,
            ",".join(map(str, sorted(tag_ids))) if tag_ids else "None",
        )
    return result


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
) -> SourceReport:
    """Store every entry of a parsed source, one write transaction per batch; ``after_batch()``
    is called after each batch is committed (see ``background_checkpoints``).

    With more than one batch, a worker thread prepares batch n+1 while batch n is written:
    SQLite releases the GIL inside each statement, so the worker's Python runs while the main
    thread waits for SQLite. When most of batch n turned out new or changed, the worker also
    sanitises batch n+1 ahead of need; a source whose entries are mostly stored already is
    sanitised only where the lookups ask for it."""
    report = SourceReport(source=parsed.label, kind=parsed.kind, warnings=list(parsed.warnings))
    tags = tuple(tags)
    items = parsed.items
    total = len(items)
    options = dict(source=parsed.label, now=now, max_text_bytes=max_text_bytes)
    base_url = parsed.base_url

    def prepare(start: int, ahead: bool) -> _Prepared:
        prepared = _prepare(
            items[start : start + batch_size], tags=tags, since=since, base_url=base_url
        )
        if ahead:
            _render_all(prepared, max_text_bytes=max_text_bytes, base_url=base_url)
        return prepared

    if total == 0:
        return report
    if total <= batch_size:
        report.add(_write(db, prepare(0, False), base_url=base_url, **options))
        if after_batch is not None:
            after_batch()
        if progress is not None:
            progress(parsed.label, total, total)
        return report

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="digest-prepare") as worker:
        following = worker.submit(prepare, 0, False)
        for start in range(0, total, batch_size):
            current, following = following.result(), None
            after = start + batch_size

            def decided(to_store: int, pending: int, after: int = after) -> None:
                nonlocal following
                if after < total:
                    following = worker.submit(prepare, after, 2 * to_store >= pending)

            report.add(_write(db, current, base_url=base_url, decided=decided, **options))
            if after_batch is not None:
                after_batch()
            if following is None and after < total:  # nothing was pending in this batch
                following = worker.submit(prepare, after, False)
            if progress is not None:
                progress(parsed.label, min(after, total), total)
    return report


@contextmanager
def background_checkpoints(db: Database, *, enabled: bool = True) -> Iterator[Callable[[], None]]:
    """``with background_checkpoints(db) as checkpoint:`` — while a long ingest writes, the WAL
    is checkpointed on a connection and thread of its own; call ``checkpoint()`` after each
    commit.

    SQLite's automatic checkpoint runs inside the commit that crosses ``wal_autocheckpoint``
    pages: it copies the WAL into the database and syncs while the writer waits (~13 ms in
    every other batch of 1,000 articles). Inside this block the connection's automatic
    checkpoints are off and each ``checkpoint()`` asks the thread for a PASSIVE checkpoint,
    which runs beside the next batch's writes. On exit the checkpoints asked for are finished
    (their work is part of the ingest) and the setting is restored. A no-op for a database that
    is not a WAL file, or with ``enabled=False``."""
    conn = db.conn
    limit = conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
    path = next((row[2] for row in conn.execute("PRAGMA database_list") if row[1] == "main"), "")
    if not enabled or not path or limit <= 0:
        yield lambda: None
        return
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        yield lambda: None
        return
    requests: queue.SimpleQueue[bool] = queue.SimpleQueue()  # True: checkpoint, False: stop

    def run() -> None:
        # A checkpoint that fails is harmless (the next automatic one does its work), so an
        # error ends the thread quietly rather than printing a traceback.
        with suppress(sqlite3.Error), closing(sqlite3.connect(path, timeout=30)) as other:
            going = True
            while going:
                asked = [requests.get()]
                while not requests.empty():  # requests made during a checkpoint: one more
                    asked.append(requests.get())
                going = all(asked)
                if any(asked):
                    other.execute("PRAGMA wal_checkpoint(PASSIVE)")

    thread = threading.Thread(target=run, name="digest-checkpoint", daemon=True)
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    thread.start()
    try:
        yield lambda: requests.put(True)
    finally:
        requests.put(False)
        thread.join()
        conn.execute(f"PRAGMA wal_autocheckpoint = {int(limit)}")


def _union_tags(
    conn, stored: list[_Pending], result: SourceReport, now_iso: str
) -> dict[int, list[int]]:
    """Add the tags of ``stored`` articles to what they have; returns each one's tag ids."""
    wanted = {}
    for p in stored:
        for k, name in p.tags.items():
            wanted.setdefault(k, name)
    old_ids = [p.article_id for p in stored if p.existing is not None]
    if not wanted and not old_ids:
        return {}
    keys = list(wanted)
    tag_ids: dict[str, int] = dict(
        _select_in(conn, "SELECT key, id FROM tags WHERE key IN ({})", keys)
    )
    missing = [k for k in keys if k not in tag_ids]
    if missing:
        next_id = (conn.execute("SELECT max(id) FROM tags").fetchone()[0] or 0) + 1
        rows = []
        for k in missing:
            tag_ids[k] = next_id
            rows.append((next_id, k, wanted[k]))
            next_id += 1
        _insert_rows(conn, "tags (id, key, name)", rows)

    # Only articles that were already stored can have tags; new ones start with none.
    sql = "SELECT article_id, tag_id FROM article_tags WHERE article_id IN ({})"
    have: set[tuple[int, int]] = set(_select_in(conn, sql, old_ids))
    pairs = []
    for p in stored:
        for k in p.tags:
            pair = (p.article_id, tag_ids[k])
            if pair not in have:
                have.add(pair)
                pairs.append(pair)
    _insert_rows(conn, "article_tags (article_id, tag_id)", pairs)
    tags_of: dict[int, list[int]] = {}
    for article_id, tag_id in have:
        tags_of.setdefault(article_id, []).append(tag_id)
    return tags_of


def _select_in(conn: sqlite3.Connection, sql: str, values: list) -> Iterator[tuple]:
    """Rows of ``sql`` (its ``{}`` is the ``IN`` list) for ``values``, queried ``_CHUNK`` at a time."""
    for i in range(0, len(values), _CHUNK):
        chunk = values[i : i + _CHUNK]
        yield from conn.execute(sql.format(",".join("?" * len(chunk))), chunk)


def _row_chunks(conn: sqlite3.Connection, rows: list[tuple]) -> Iterator[list[tuple]]:
    """``rows`` in chunks that fit in one statement's host parameters (at most 1,000 rows)."""
    limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    per = max(1, min(1000, limit // len(rows[0])))
    for i in range(0, len(rows), per):
        yield rows[i : i + per]


def _insert_rows(conn: sqlite3.Connection, target: str, rows: list[tuple]) -> None:
    """INSERT ``rows`` with as many rows per statement as fit."""
    if not rows:
        return
    one = "(" + ",".join("?" * len(rows[0])) + ")"
    for chunk in _row_chunks(conn, rows):
        conn.execute(
            f"INSERT INTO {target} VALUES {','.join([one] * len(chunk))}",
            [value for row in chunk for value in row],
        )


# ---------------------------------------------------------------------------- unchanged sources

# Part of every fingerprint: change it when the same bytes would be stored differently.
_STORE_VERSION = "1"


def source_fingerprint(
    data: bytes,
    *,
    content_type: str | None = None,
    tags: Iterable[str] = (),
    since: datetime | None = None,
    max_text_bytes: int = 200_000,
) -> str:
    """A hash of a source's bytes and of every option that changes what ingesting it stores."""
    h = hashlib.sha256(data)
    options = [_STORE_VERSION, content_type or "", to_iso(since) if since else "", max_text_bytes]
    h.update(json.dumps([options, sorted(tags)]).encode())
    return h.hexdigest()


def _stored_state(conn: sqlite3.Connection, ids: list[int]) -> str:
    """A hash of the stored content hash and tags of the articles ``ids``."""
    rows = conn.execute(
        "SELECT a.id, a.content_hash, (SELECT group_concat(tag_id) FROM (SELECT tag_id FROM"
        " article_tags WHERE article_id = a.id ORDER BY tag_id)) FROM articles a"
        " WHERE a.id IN (SELECT value FROM json_each(?)) ORDER BY a.id",
        [json.dumps(ids)],
    )
    return _state_hash((row[0], row[1], row[2]) for row in rows)


def _state_hash(rows: Iterable[tuple[int, str, str | None]]) -> str:
    # (id, content hash, tag ids joined by "," or None), in id order.
    return hashlib.sha256("".join([f"{i} {h} {t}\n" for i, h, t in rows]).encode()).hexdigest()


def unchanged_source(db: Database, source: str, fingerprint: str) -> SourceReport | None:
    """The report of re-ingesting ``source`` (everything unchanged) if its last ingest had the
    same ``fingerprint`` and was clean, and its articles are still exactly as that ingest left
    them; else None (the source must be parsed and stored)."""
    row = db.execute(
        "SELECT kind, article_ids, state, unchanged, skipped FROM source_states"
        " WHERE source = ? AND fingerprint = ?",
        [source, fingerprint],
    ).fetchone()
    if row is None:
        return None
    kind, ids, state, unchanged, skipped = row
    if _stored_state(db.conn, json.loads(ids)) != state:
        return None
    return SourceReport(source=source, kind=kind, unchanged=unchanged, skipped=skipped)


def remember_source(
    db: Database, source: str, fingerprint: str, report: SourceReport, *, now: datetime
) -> None:
    """Record a source's fingerprint after a complete ingest, so an unchanged re-ingest is
    recognised. Only a clean ingest (nothing rejected, no warnings) is recorded: replaying a
    report must not hide what the user was told the first time."""
    if report.error or report.rejected or report.warnings:
        db.execute("DELETE FROM source_states WHERE source = ?", [source])
        return
    ids = sorted(set(report.article_ids))
    # The state is what the ingest itself wrote (reading it back costs ~3 µs an article). If
    # anything else changed those articles meanwhile, the next re-ingest finds a different
    # stored state and stores the source again, which is the safe way round.
    states = report.states
    if all(i in states for i in ids):
        state = _state_hash((i, *states[i]) for i in ids)
    else:
        state = _stored_state(db.conn, ids)
    with write_transaction(db):
        db.execute(
            "INSERT OR REPLACE INTO source_states (source, fingerprint, kind, article_ids, state,"
            " unchanged, skipped, ingested_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                source, fingerprint, report.kind, json.dumps(ids), state,
                report.new + report.updated + report.unchanged, report.skipped, to_iso(now),
            ],
        )  # fmt: skip


# ---------------------------------------------------------------------------- reading

_SELECT = """
SELECT a.id, a.title, a.url, a.author, a.published_at, a.summary, a.content_html, a.text,
       (SELECT json_group_array(name) FROM (
            SELECT t.name FROM article_tags x JOIN tags t ON t.id = x.tag_id
            WHERE x.article_id = a.id ORDER BY t.key)) AS tag_names,
       a.source, a.note, a.ingested_at, a.updated_at
FROM articles a
"""


def _article(row: tuple) -> Article:
    return Article(
        id=row[0],
        title=row[1],
        url=row[2],
        author=row[3],
        published_at=from_iso(row[4]),
        summary=row[5],
        content_html=row[6],
        text=row[7],
        tags=tuple(json.loads(row[8])),
        source=row[9],
        note=row[10],
        ingested_at=from_iso(row[11]),
        updated_at=from_iso(row[12]),
    )


def _tag_filter(db: Database, tags: Iterable[str]) -> tuple[str, list]:
    keys = sorted({tag_key(t) for t in tags if tag_key(t)})
    if not keys:
        return "", []
    marks = ",".join("?" * len(keys))
    known = {r[0] for r in db.execute(f"SELECT key FROM tags WHERE key IN ({marks})", keys)}
    unknown = [k for k in keys if k not in known]
    if unknown and not known:
        raise NotFound(f"no articles are tagged {', '.join(repr(k) for k in unknown)}")
    return (
        " AND a.id IN (SELECT x.article_id FROM article_tags x JOIN tags t ON t.id = x.tag_id"
        f" WHERE t.key IN ({marks}))",
        keys,
    )


def list_articles(
    db: Database,
    *,
    tags: Iterable[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
) -> list[Article]:
    """Articles newest first, optionally only those with any of ``tags`` and published in
    [since, until)."""
    where, params = "WHERE 1=1", []
    tag_sql, tag_params = _tag_filter(db, tags)
    where += tag_sql
    params += tag_params
    if since is not None:
        where += " AND a.published_at >= ?"
        params.append(to_iso(since))
    if until is not None:
        where += " AND a.published_at < ?"
        params.append(to_iso(until))
    sql = f"{_SELECT} {where} ORDER BY a.published_at DESC, a.id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return [_article(r) for r in db.execute(sql, params).fetchall()]


def fts_query(query: str) -> str:
    """The words of a user's query as an FTS5 expression (every word must appear), so
    punctuation or stray operators in the query cannot cause an FTS syntax error."""
    words = re.findall(r"\w+", query)
    if not words:
        raise InvalidInput(f"search query {query!r} has no words to search for")
    return " ".join('"' + w.replace('"', '""') + '"' for w in words)


def search_articles(db: Database, query: str, *, limit: int = 50) -> list[Article]:
    """Full-text search over title, summary and text, best match first."""
    sql = (
        f"{_SELECT} JOIN articles_fts ON articles_fts.rowid = a.id"
        " WHERE articles_fts MATCH ? ORDER BY articles_fts.rank, a.published_at DESC LIMIT ?"
    )
    return [_article(r) for r in db.execute(sql, [fts_query(query), limit]).fetchall()]


def get_article(db: Database, article_id: int) -> Article:
    row = db.execute(f"{_SELECT} WHERE a.id = ?", [article_id]).fetchone()
    if row is None:
        raise NotFound(f"no article with id {article_id}")
    return _article(row)
