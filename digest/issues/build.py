"""Building digests: choose a period's articles for a (list, frequency), group them by tag into
one variant per distinct tag set among the active subscribers, render each variant once into a
message template (``messages.build_template``), and enqueue one delivery per subscriber.

Decisions (see README "Digests and preview"):
- A digest is (list, frequency, issue date); building it again returns it as it is: same
  articles, same templates, same Message-IDs. A rebuild only enqueues subscribers who became
  active since (rendering their variant if nobody had that tag set yet); it never changes the
  digest's articles.
- Articles: those published in the period, plus late ones — published up to ``LATE_LOOKBACK``
  before the period, ingested after the previous digest of the same (list, frequency) was built,
  and in no digest of it yet. An article is in at most one digest of a (list, frequency); one
  ingested after ``now`` is left for the next digest. Articles without any tag are in no section.
- Sections follow the list's tag order (alphabetical for an all-tags list), newest first; an
  article appears once, under its first tag (in section order) that the variant receives.
- A variant without articles is stored with no template and gets no deliveries.
"""

from __future__ import annotations

import email.utils
import functools
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import jinja2
from markupsafe import Markup
from sqlite_utils import Database

from . import links, render
from .config import Config
from .errors import NotFound
from .lists import MailingList, all_lists, get_list, get_list_by_id
from .messages import build_template, clean_header_value
from .periods import FREQUENCIES, Period, issue_for, latest_due
from .sanitize import clean_html, html_to_text
from .store import tag_key, write_transaction
from .timeutil import from_iso, to_iso

LATE_LOOKBACK = timedelta(days=14)
ProgressCallback = Callable[[int, int], None]  # (variants rendered, variants to render)


@dataclass(frozen=True)
class StoredArticle:
    id: int
    title: str
    url: str | None
    author: str | None
    published_at: datetime
    ingested_at: datetime
    summary: str | None
    text: str | None
    tags: tuple[tuple[str, str], ...]  # (key, display name)


@dataclass(frozen=True)
class BuiltVariant:
    id: int
    tags_key: str
    subject: str
    article_count: int  # shown in the message
    cut_count: int
    recipients: int  # queued deliveries
    empty: bool
    report: dict[str, Any]


@dataclass
class BuiltDigest:
    id: int
    list: MailingList
    frequency: str
    period: Period
    built_at: datetime
    article_count: int
    sections: list[str]  # section names, all-tags grouping
    variants: list[BuiltVariant]
    recipients: int  # deliveries queued for this digest in total
    enqueued: int  # of which queued by this call
    new: bool
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- articles and grouping


def select_articles(
    db: Database, mlist: MailingList, period: Period, *, now: datetime
) -> list[int]:
    """Ids of the articles a new digest of ``period`` gets, newest first."""
    previous = db.execute(
        "SELECT built_at FROM digests WHERE list_id = ? AND frequency = ? AND period_start < ?"
        " ORDER BY period_start DESC LIMIT 1",
        [mlist.id, period.frequency, to_iso(period.start)],
    ).fetchone()
    if mlist.tags:
        tag_filter = (
            "EXISTS (SELECT 1 FROM article_tags at JOIN tags t ON t.id = at.tag_id"
            " WHERE at.article_id = a.id AND t.key IN (SELECT value FROM json_each(:keys)))"
        )
    else:
        tag_filter = "EXISTS (SELECT 1 FROM article_tags at WHERE at.article_id = a.id)"
    in_period = "a.published_at >= :start AND a.published_at < :end"
    if previous is not None:
        # Late arrivals: published before the period but ingested after the previous digest.
        in_period = (
            f"(({in_period}) OR (a.published_at >= :lookback AND a.published_at < :start"
            " AND a.ingested_at > :previous_built))"
        )
    sql = f"""
        SELECT a.id FROM articles a
        WHERE {in_period} AND a.ingested_at <= :now AND {tag_filter}
          AND a.id NOT IN (
            SELECT da.article_id FROM digest_articles da JOIN digests d ON d.id = da.digest_id
            WHERE d.list_id = :list_id AND d.frequency = :frequency)
        ORDER BY a.published_at DESC, a.id DESC
    """
    params = {
        "start": to_iso(period.start),
        "end": to_iso(period.end),
        "lookback": to_iso(period.start - LATE_LOOKBACK),
        "previous_built": previous[0] if previous else "",
        "now": to_iso(now),
        "keys": json.dumps(list(mlist.tag_keys)),
        "list_id": mlist.id,
        "frequency": period.frequency,
    }
    return [row[0] for row in db.execute(sql, params)]


def load_articles(db: Database, ids: list[int]) -> list[StoredArticle]:
    """The articles with their tags, newest first."""
    if not ids:
        return []
    id_json = json.dumps(ids)
    tags: dict[int, list[tuple[str, str]]] = {}
    for article_id, key, name in db.execute(
        "SELECT at.article_id, t.key, t.name FROM article_tags at JOIN tags t ON t.id = at.tag_id"
        " WHERE at.article_id IN (SELECT value FROM json_each(?)) ORDER BY t.key",
        [id_json],
    ):
        tags.setdefault(article_id, []).append((key, name))
    articles = [
        StoredArticle(
            id=row["id"],
            title=row["title"],
            url=row["url"],
            author=row["author"],
            published_at=from_iso(row["published_at"]),
            ingested_at=from_iso(row["ingested_at"]),
            summary=row["summary"],
            text=row["text"],
            tags=tuple(tags.get(row["id"], ())),
        )
        for row in db.query(
            "SELECT id, title, url, author, published_at, ingested_at, summary, text"
            " FROM articles WHERE id IN (SELECT value FROM json_each(?))",
            [id_json],
        )
    ]
    articles.sort(key=lambda a: (a.published_at, a.id), reverse=True)
    return articles


def section_order(mlist: MailingList, articles: list[StoredArticle]) -> list[tuple[str, str]]:
    """(key, name) of each possible section: the list's tags in order, or for an all-tags list
    every tag of these articles, alphabetically."""
    if mlist.tags:
        return [(tag_key(name), name) for name in mlist.tags]
    names: dict[str, str] = {}
    for article in articles:
        for key, name in article.tags:
            names.setdefault(key, name)
    return sorted(names.items(), key=lambda kv: (kv[1].casefold(), kv[0]))


def variant_key(raw_tags: str, mlist: MailingList) -> tuple[str, frozenset[str] | None]:
    """(tags_key, wanted tag keys or None for all) of a subscription's ``tags`` JSON."""
    try:
        values = json.loads(raw_tags or "[]")
    except ValueError:
        values = []
    keys = {tag_key(v) for v in values if isinstance(v, str) and tag_key(v)}
    if not keys:
        return "", None
    if mlist.tags:
        list_keys = set(mlist.tag_keys)
        chosen = keys & list_keys
        if chosen == list_keys:
            return "", None
        if chosen:  # tags the list no longer has are ignored; if only those, nothing matches
            keys = chosen
    return ",".join(sorted(keys)), frozenset(keys)


_IMG_WITHOUT_ALT = re.compile(r"<img(?![^>]*\salt=)", re.I)


def _article_view(article: StoredArticle, mlist: MailingList, words: int) -> render.ArticleView:
    summary_html = clean_html(article.summary or "")
    source = html_to_text(summary_html) if article.summary else (article.text or "")
    url = article.url if article.url and _is_absolute_http(article.url) else None
    return render.ArticleView(
        id=article.id,
        title=clean_header_value(article.title) or "(untitled)",
        url=url,
        author=clean_header_value(article.author) if article.author else None,
        published_at=article.published_at.astimezone(mlist.zone),
        excerpt=render.excerpt(source, words),
        summary_html=Markup(_IMG_WITHOUT_ALT.sub('<img alt=""', summary_html)),
    )


def _is_absolute_http(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _sorted_into_sections(
    articles: list[StoredArticle], order: list[tuple[str, str]], wanted: frozenset[str] | None
) -> Iterator[tuple[int, StoredArticle]]:
    """(section position, article) for each article shown: once, under its first wanted tag."""
    index = {key: i for i, (key, _) in enumerate(order)}
    for article in articles:  # newest first
        positions = [
            index[key]
            for key, _ in article.tags
            if key in index and (wanted is None or key in wanted)
        ]
        if positions:
            yield min(positions), article


def has_sections(
    articles: list[StoredArticle], mlist: MailingList, wanted: frozenset[str] | None
) -> bool:
    """Whether the variant for ``wanted`` shows any article (else it gets no message)."""
    order = section_order(mlist, articles)
    return next(_sorted_into_sections(articles, order, wanted), None) is not None


def group_sections(
    articles: list[StoredArticle],
    order: list[tuple[str, str]],
    wanted: frozenset[str] | None,
    *,
    mlist: MailingList,
    excerpt_words: int = 50,
    views: dict[int, render.ArticleView] | None = None,
) -> list[render.Section]:
    """Sections in ``order`` with each article once, under its first tag that is wanted.
    ``views`` caches each article's sanitised view across the variants of one build."""
    views = {} if views is None else views
    buckets: list[list[render.ArticleView]] = [[] for _ in order]
    for position, article in _sorted_into_sections(articles, order, wanted):
        view = views.get(article.id)
        if view is None:
            view = views[article.id] = _article_view(article, mlist, excerpt_words)
        buckets[position].append(view)
    return [
        render.Section(key=key, name=name, articles=tuple(views), total=len(views))
        for (key, name), views in zip(order, buckets, strict=True)
        if views
    ]


# ---------------------------------------------------------------- rendering a variant


def digest_view(config: Config, mlist: MailingList, period: Period) -> render.DigestView:
    first = period.local_start.date()
    last = period.local_end.date() - timedelta(days=1)
    if first == last:
        period_text = f"{first:%A} {first.day} {first:%B %Y}"
    else:
        period_text = f"{first.day} {first:%b} – {last.day} {last:%b %Y}"
    return render.DigestView(
        site=config.site_name,
        language=config.get("site", "language"),
        list_title=mlist.title,
        list_slug=mlist.slug,
        list_description=mlist.description,
        frequency=period.frequency,
        issue_date=period.issue_date,
        period_text=period_text,
        base_url=config.base_url,
        web_url=links.digest_web_url(config.base_url, mlist.slug, period.frequency, period.label),
        archive_url=links.archive_url(config.base_url, mlist.slug),
    )


def list_domain(mlist: MailingList) -> str:
    return email.utils.parseaddr(mlist.from_addr)[1].rpartition("@")[2].lower() or "localhost"


@dataclass
class RenderedVariant:
    tags_key: str
    email: render.RenderedEmail | None  # None: no articles for this tag set
    template: bytes | None


def render_variant(
    env: jinja2.Environment,
    config: Config,
    mlist: MailingList,
    period: Period,
    articles: list[StoredArticle],
    wanted: frozenset[str] | None,
    *,
    built_at: datetime,
    views: dict[int, render.ArticleView] | None = None,
) -> RenderedVariant:
    """Render, inline and encode one variant (pure: stores nothing)."""
    tags_key = ",".join(sorted(wanted)) if wanted is not None else ""
    order = section_order(mlist, articles)
    sections = group_sections(
        articles,
        order,
        wanted,
        mlist=mlist,
        excerpt_words=config.get("digest", "excerpt_words"),
        views=views,
    )
    if not sections:
        return RenderedVariant(tags_key, None, None)
    view = digest_view(config, mlist, period)
    rendered = render.render_email(env, config, view, sections)
    # The Date header is the scheduled send time (or the build time, if built late), fixed in
    # the template so every resend of a message is byte-identical.
    date_at = max(period.send_at, built_at).astimezone(mlist.zone)
    headers = [
        ("From", mlist.from_addr),
        ("Subject", rendered.subject),
        ("Date", email.utils.format_datetime(date_at)),
        ("List-Id", f"{mlist.title} <{mlist.slug}.{list_domain(mlist)}>"),
    ]
    if mlist.reply_to:
        headers.append(("Reply-To", mlist.reply_to))
    template = build_template(
        headers,
        rendered.text,
        rendered.html,
        boundary_seed=f"{mlist.slug}:{period.frequency}:{period.label}:{tags_key}",
    )
    return RenderedVariant(tags_key, rendered, template)


# ---------------------------------------------------------------- building


def audience(
    db: Database, mlist: MailingList, frequency: str
) -> dict[str, tuple[str, frozenset[str] | None, int]]:
    """Active, unsuppressed subscriptions grouped by their raw ``tags`` JSON:
    raw -> (tags_key, wanted, subscriber count)."""
    where = "s.list_id = ? AND s.frequency = ? AND s.status = 'active'"
    params = [mlist.id, frequency]
    # Count every active subscription per tag set (index-only, idx_subscriptions_audience),
    # then take away the suppressed ones, found from the (short) suppression list.
    counts = dict(
        db.execute(
            f"SELECT s.tags, count(*) FROM subscriptions s WHERE {where} GROUP BY s.tags", params
        )
    )
    for raw, suppressed in db.execute(
        f"""
        SELECT s.tags, count(*) FROM suppressions x
        CROSS JOIN subscribers p ON p.email = x.email
        CROSS JOIN subscriptions s ON s.subscriber_id = p.id
        WHERE {where} GROUP BY s.tags
        """,
        params,
    ):
        counts[raw] -= suppressed
    groups = {}
    for raw, count in counts.items():
        if count > 0:
            key, wanted = variant_key(raw, mlist)
            groups[raw] = (key, wanted, count)
    return groups


def find_digest(db: Database, mlist: MailingList, period: Period) -> dict | None:
    return next(
        db.query(
            "SELECT * FROM digests WHERE list_id = ? AND frequency = ? AND period_start = ?",
            [mlist.id, period.frequency, to_iso(period.start)],
        ),
        None,
    )


def digest_article_ids(db: Database, digest_id: int) -> list[int]:
    return [
        row[0]
        for row in db.execute(
            "SELECT article_id FROM digest_articles WHERE digest_id = ? ORDER BY position",
            [digest_id],
        )
    ]


class _Raced(Exception):
    """Another process stored the same digest between our read and our write."""


# Planning figure for overlapping the write transaction with rendering (see ``_Renderer``):
# enqueueing costs 3-5 µs per recipient on a 2-vCPU machine (a delivery row and its indexes), the
# higher figure while the other core renders.
ENQUEUE_SECONDS_PER_RECIPIENT = 6e-6


class _Renderer:
    """Renders a build's variants, in order, on a worker thread.

    Rendering is Python (Jinja2, premailer) and holds the GIL; enqueueing one delivery per
    recipient is a single SQLite statement, which releases it. So the build opens its write
    transaction when the rendering left is about as long as the enqueueing will be, and both
    run at once on two cores; the write lock is held no longer than without the overlap. Nothing
    here touches the database."""

    def __init__(
        self, jobs: list[Callable[[], RenderedVariant]], progress: ProgressCallback | None
    ):
        self._jobs = jobs
        self._progress = progress
        self._results: list[RenderedVariant] = []
        self._error: BaseException | None = None
        self._finished = False
        self._cancel = threading.Event()
        self._changed = threading.Condition()
        self._started = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="digest-render", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for job in self._jobs:
                if self._cancel.is_set():
                    return
                result = job()
                with self._changed:
                    self._results.append(result)
                    self._changed.notify_all()
                if self._progress:
                    self._progress(len(self._results), len(self._jobs))
        except BaseException as e:  # handed to the building thread by result()
            self._error = e
        finally:
            with self._changed:
                self._finished = True
                self._changed.notify_all()

    def wait_until_left(self, seconds: float) -> None:
        """Return once rendering is over or what is left of it should take at most ``seconds``
        (estimated from the variants rendered so far)."""
        with self._changed:
            while not self._finished:
                done = len(self._results)
                if done:
                    each = (time.perf_counter() - self._started) / done
                    if each * (len(self._jobs) - done) <= seconds:
                        return
                self._changed.wait()

    def result(self) -> list[RenderedVariant]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._results

    def stop(self) -> None:
        self._cancel.set()
        self._thread.join()


def build_digest(
    db: Database,
    config: Config,
    mlist: MailingList,
    frequency: str,
    issue_date: date,
    *,
    now: datetime,
    progress: ProgressCallback | None = None,
) -> BuiltDigest:
    """Build (or return the already built) digest of ``mlist`` issued on ``issue_date`` and
    enqueue a delivery for every active subscriber not yet queued for it.

    Everything is stored in one write transaction, so a crash leaves either no digest or a
    complete one with its deliveries. Variants render on a worker thread; the transaction
    starts near the end of rendering so that enqueueing overlaps it (``_Renderer``)."""
    period = issue_for(mlist, frequency, issue_date)
    env = render.template_environment(config)
    for _attempt in range(3):
        existing = find_digest(db, mlist, period)
        if existing is not None:
            built_at = from_iso(existing["built_at"])
            articles = load_articles(db, digest_article_ids(db, existing["id"]))
            have = {
                row[0]
                for row in db.execute(
                    "SELECT tags_key FROM variants WHERE digest_id = ?", [existing["id"]]
                )
            }
        else:
            built_at = now
            articles = load_articles(db, select_articles(db, mlist, period, now=now))
            have = set()
        groups = audience(db, mlist, frequency)
        needed = {key: wanted for key, wanted, _ in groups.values() if key not in have}
        views: dict[int, render.ArticleView] = {}  # each article sanitised once per build
        renderer = _Renderer(
            [
                functools.partial(
                    render_variant,
                    env,
                    config,
                    mlist,
                    period,
                    articles,
                    wanted,
                    built_at=built_at,
                    views=views,
                )
                for wanted in needed.values()
            ],
            progress,
        )
        try:
            recipients = sum(count for _, _, count in groups.values())
            renderer.wait_until_left(recipients * ENQUEUE_SECONDS_PER_RECIPIENT)
            with write_transaction(db):
                digest_id, enqueued, counts = _store(
                    db, mlist, period, existing, articles, needed, renderer, groups, now=now
                )
        except _Raced:
            continue
        finally:
            renderer.stop()
        return describe_digest(
            db, mlist, digest_id, new=existing is None, enqueued=enqueued, counts=counts
        )
    raise RuntimeError("digest build kept racing with another process")  # pragma: no cover


def _store(
    db: Database,
    mlist: MailingList,
    period: Period,
    existing: dict | None,
    articles: list[StoredArticle],
    needed: dict[str, frozenset[str] | None],
    renderer: _Renderer,
    groups: dict[str, tuple[str, frozenset[str] | None, int]],
    *,
    now: datetime,
) -> tuple[int, int, dict[int, int]]:
    """Store the digest, its variants and its deliveries (inside the caller's transaction):
    (digest id, deliveries enqueued now, deliveries per variant id)."""
    if existing is None:
        if find_digest(db, mlist, period) is not None:
            raise _Raced
        digest_id = db.execute(
            "INSERT INTO digests (list_id, frequency, period_start, period_end, period_label,"
            " built_at) VALUES (?, ?, ?, ?, ?, ?)",
            [
                mlist.id,
                period.frequency,
                to_iso(period.start),
                to_iso(period.end),
                period.label,
                to_iso(now),
            ],
        ).lastrowid
        db.execute(
            "INSERT INTO digest_articles (digest_id, article_id, position)"
            " SELECT ?, value, key FROM json_each(?)",
            [digest_id, json.dumps([a.id for a in articles])],
        )
    else:
        digest_id = existing["id"]

    # While the last variants render on the other thread, this thread takes the GIL back after
    # every statement (up to a 5 ms switch interval each), so the writes below are a few
    # set-based statements rather than one per article or variant.
    #
    # The variants still rendering get their rows now (filled in below, before the commit), so
    # that their recipients can be enqueued meanwhile. Which of them are empty is known already.
    def stored_variants() -> dict[str, list[int]]:
        """tags_key -> [variant id, 1 if it has a template else 0]."""
        return json.loads(
            db.execute(
                "SELECT json_group_object(tags_key, json_array(id, template IS NOT NULL))"
                " FROM variants WHERE digest_id = ?",
                [digest_id],
            ).fetchone()[0]
        )

    if existing is not None and not stored_variants().keys().isdisjoint(needed):
        raise _Raced  # another build added one of these variants since we looked
    db.execute(
        "INSERT INTO variants (digest_id, tags_key, subject, article_count)"
        " SELECT ?, value, '', 0 FROM json_each(?)",
        [digest_id, json.dumps(list(needed))],
    )
    ids = stored_variants()
    new_ids = {key: ids[key][0] for key in needed}
    variant_ids = {key: id_ for key, (id_, filled) in ids.items() if filled}
    variant_ids.update(
        (key, new_ids[key])
        for key, wanted in needed.items()
        if has_sections(articles, mlist, wanted)
    )
    # One INSERT … SELECT enqueues everyone: the raw tags JSON of each subscription is mapped to
    # its variant through a temporary table, so no Python runs per subscriber.
    db.execute(
        "CREATE TEMP TABLE IF NOT EXISTS digest_variant_map"
        " (tags TEXT PRIMARY KEY, variant_id INTEGER NOT NULL)"
    )
    db.execute("DELETE FROM temp.digest_variant_map")
    db.execute(
        "INSERT INTO temp.digest_variant_map (tags, variant_id) SELECT key, value FROM json_each(?)",
        [
            json.dumps(
                {raw: variant_ids[key] for raw, (key, _, _) in groups.items() if key in variant_ids}
            )
        ],
    )
    stamp = to_iso(now)
    # idx_subscriptions_list yields subscriptions in insertion order, so deliveries are appended
    # to their (digest_id, subscriber_id) index mostly in order; the tag-ordered audience index
    # would scatter those writes and double the cost at 100,000 subscribers.
    enqueued = db.execute(
        """
        INSERT OR IGNORE INTO deliveries
            (digest_id, variant_id, subscriber_id, email, status, created_at, updated_at)
        SELECT ?, m.variant_id, s.subscriber_id, p.email, 'queued', ?, ?
        FROM subscriptions s INDEXED BY idx_subscriptions_list
        JOIN subscribers p ON p.id = s.subscriber_id
        JOIN temp.digest_variant_map m ON m.tags = s.tags
        WHERE s.list_id = ? AND s.frequency = ? AND s.status = 'active'
          AND NOT EXISTS (SELECT 1 FROM suppressions x WHERE x.email = p.email)
        """,
        [digest_id, stamp, stamp, mlist.id, period.frequency],
    ).rowcount
    db.execute("DELETE FROM temp.digest_variant_map")
    counted = db.execute(
        "SELECT json_group_object(variant_id, n) FROM"
        " (SELECT variant_id, count(*) AS n FROM deliveries WHERE digest_id = ? GROUP BY variant_id)",
        [digest_id],
    ).fetchone()[0]
    counts = {int(k): n for k, n in json.loads(counted).items()}
    for variant in renderer.result():
        report = variant.email.report if variant.email else {"sections": [], "cut_count": 0}
        report = {**report, "tags_key": variant.tags_key}
        db.execute(
            "UPDATE variants SET subject = ?, template = ?, article_count = ?, cut_count = ?,"
            " html_size = ?, style_size = ?, report = ? WHERE id = ?",
            [
                variant.email.subject if variant.email else "",
                variant.template,
                variant.email.article_count if variant.email else 0,
                variant.email.cut_count if variant.email else 0,
                report.get("html_size", 0),
                report.get("style_size", 0),
                json.dumps(report, ensure_ascii=False),
                new_ids[variant.tags_key],
            ],
        )
        if variant.template is None and counts.get(new_ids[variant.tags_key]):
            raise AssertionError(f"variant {variant.tags_key!r} rendered empty but was enqueued")
    return digest_id, enqueued, counts


def describe_digest(
    db: Database,
    mlist: MailingList,
    digest_id: int,
    *,
    new: bool = False,
    enqueued: int = 0,
    counts: dict[int, int] | None = None,
) -> BuiltDigest:
    """What is stored of a digest; ``counts`` (deliveries per variant id) if already known."""
    row = db.execute(
        "SELECT frequency, period_label, built_at FROM digests WHERE id = ?", [digest_id]
    ).fetchone()
    if row is None:
        raise NotFound(f"no digest with id {digest_id}")
    frequency, label, built_at = row
    period = issue_for(mlist, frequency, date.fromisoformat(label))
    articles = load_articles(db, digest_article_ids(db, digest_id))
    grouped = group_sections(articles, section_order(mlist, articles), None, mlist=mlist)
    if counts is None:
        counts = dict(
            db.execute(
                "SELECT variant_id, count(*) FROM deliveries WHERE digest_id = ?"
                " GROUP BY variant_id",
                [digest_id],
            ).fetchall()
        )
    variants = [
        BuiltVariant(
            id=v["id"],
            tags_key=v["tags_key"],
            subject=v["subject"],
            article_count=v["article_count"],
            cut_count=v["cut_count"],
            recipients=counts.get(v["id"], 0),
            empty=v["template_missing"] == 1,
            report=json.loads(v["report"]),
        )
        for v in db.query(
            "SELECT id, tags_key, subject, article_count, cut_count, report,"
            " template IS NULL AS template_missing FROM variants WHERE digest_id = ? ORDER BY id",
            [digest_id],
        )
    ]
    return BuiltDigest(
        id=digest_id,
        list=mlist,
        frequency=frequency,
        period=period,
        built_at=from_iso(built_at),
        article_count=len(articles),
        sections=[s.name for s in grouped],
        variants=variants,
        recipients=sum(counts.values()),
        enqueued=enqueued,
        new=new,
    )


def has_active_subscribers(db: Database, mlist: MailingList, frequency: str) -> bool:
    return (
        db.execute(
            "SELECT 1 FROM subscriptions WHERE list_id = ? AND frequency = ? AND status = 'active'"
            " LIMIT 1",
            [mlist.id, frequency],
        ).fetchone()
        is not None
    )


def build_due(
    db: Database,
    config: Config,
    *,
    now: datetime,
    list_slug: str | None = None,
    frequency: str | None = None,
    progress: Callable[[MailingList, str], ProgressCallback | None] | None = None,
) -> list[BuiltDigest]:
    """Build the latest due issue of every (list, frequency) that has active subscribers
    (or only the ones selected). Already built issues are returned as they are, after enqueueing
    anyone who became active since."""
    lists = [get_list(db, list_slug)] if list_slug else all_lists(db)
    frequencies = [frequency] if frequency else list(FREQUENCIES)
    built = []
    for mlist in lists:
        for freq in frequencies:
            if not has_active_subscribers(db, mlist, freq):
                continue
            period = latest_due(mlist, freq, now)
            built.append(
                build_digest(
                    db,
                    config,
                    mlist,
                    freq,
                    period.issue_date,
                    now=now,
                    progress=progress(mlist, freq) if progress else None,
                )
            )
    return built


def build_for_date(
    db: Database,
    config: Config,
    issue_date: date,
    *,
    now: datetime,
    list_slug: str | None = None,
    frequency: str | None = None,
    progress: Callable[[MailingList, str], ProgressCallback | None] | None = None,
) -> list[BuiltDigest]:
    """Build the issues of ``issue_date`` for the selected lists and frequencies. Unless both a
    list and a frequency are named, a (list, frequency) without active subscribers is skipped.
    A weekly issue date is moved back to the list's weekly day (noted in ``BuiltDigest.notes``)."""
    lists = [get_list(db, list_slug)] if list_slug else all_lists(db)
    frequencies = [frequency] if frequency else list(FREQUENCIES)
    explicit = bool(list_slug and frequency)
    built = []
    for mlist in lists:
        for freq in frequencies:
            if not explicit and not has_active_subscribers(db, mlist, freq):
                continue
            result = build_digest(
                db,
                config,
                mlist,
                freq,
                issue_date,
                now=now,
                progress=progress(mlist, freq) if progress else None,
            )
            if result.period.issue_date != issue_date:
                result.notes.append(
                    f"weekly issues of {mlist.slug!r} are sent on {mlist.weekly_day}s: built the"
                    f" issue of {result.period.label}, the most recent on or before {issue_date}"
                )
            built.append(result)
    return built


def render_web_version(db: Database, config: Config, digest_id: int) -> str:
    """The stored digest as one web page with every article (no cut, nothing personal), with
    ``id="tag-<key>"`` section anchors that "N more … stories" links point at."""
    row = db.execute(
        "SELECT list_id, frequency, period_label FROM digests WHERE id = ?", [digest_id]
    )
    found = row.fetchone()
    if found is None:
        raise NotFound(f"no digest with id {digest_id}")
    list_id, frequency, label = found
    mlist = get_list_by_id(db, list_id)
    period = issue_for(mlist, frequency, date.fromisoformat(label))
    articles = load_articles(db, digest_article_ids(db, digest_id))
    sections = group_sections(
        articles,
        section_order(mlist, articles),
        None,
        mlist=mlist,
        excerpt_words=config.get("digest", "excerpt_words"),
    )
    env = render.template_environment(config)
    return render.render_web_page(env, digest_view(config, mlist, period), sections)
