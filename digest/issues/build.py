"""Building an issue's content: render each variant (one per distinct tag set among the
subscribers) into a message template, once, on a worker thread (``VariantRenderer``); describe a
built digest; render the public web version. Storing a build and enqueueing its deliveries, in
one transaction, is ``delivery.publish``.

Decisions (see README "Digests and preview"):
- A digest is (list, frequency, issue date); building it again returns it as it is: same
  articles, same templates, same Message-IDs. A rebuild only enqueues subscribers who became
  active since (rendering their variant if nobody had that tag set yet); it never changes the
  digest's articles.
- Which articles: ``selection``; how they are grouped: ``sections``.
- A variant without articles is stored with no template and gets no deliveries.
"""

from __future__ import annotations

import dataclasses
import email.utils
import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import jinja2
from sqlite_utils import Database

from .. import links
from ..addresses import sender_domain
from ..articles.reads import Article, load_articles
from ..audience.lists import MailingList, get_list_by_id
from ..config import Config
from ..errors import ConfigError
from ..i18n import get_language, period_text
from . import compose, render, transfer
from .edits import IssueEdits, edits_for
from .periods import Period, issue_for
from .render import RenderReport
from .sections import group_sections, section_order
from .store import digest_article_ids, get_digest, variants_of
from .template import build_template, new_placeholder_key

ProgressCallback = Callable[[int, int], None]  # (variants rendered, variants to render)
log = logging.getLogger("digest.build")


@dataclass(frozen=True)
class BuiltVariant:
    id: int
    tags_key: str
    subject: str
    article_count: int  # shown in the message
    cut_count: int
    recipients: int  # queued deliveries
    empty: bool
    report: RenderReport

    @property
    def error(self) -> str | None:
        """Why this variant could not be rendered (its deliveries failed), if it could not."""
        return self.report.error or None


@dataclass
class BuiltDigest:
    id: int
    mailing_list: MailingList
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
    awaiting_approval: bool = False  # stored without deliveries until an editor approves
    rerendered: bool = False  # rendered again: the editors' edits changed


def digest_view(
    config: Config, mlist: MailingList, period: Period, web_key: str | None = None
) -> render.DigestView:
    """What the templates of ``mlist``'s issue of ``period`` are rendered with; ``web_key``
    (a private list's issue key) goes into every link to the web version."""
    first = period.local_start.date()
    last = period.local_end.date() - timedelta(days=1)
    return render.DigestView(
        site=config.site_name,
        language=mlist.language,
        list_title=mlist.title,
        list_slug=mlist.slug,
        list_description=mlist.description,
        frequency=period.frequency,
        issue_date=period.issue_date,
        period_text=period_text(first, last, mlist.language),
        base_url=config.base_url,
        web_url=links.digest_web_url(
            config.base_url, mlist.slug, period.frequency, period.label, key=web_key
        ),
        archive_url=links.archive_url(config.base_url, mlist.slug),
        web_key=web_key,
    )


def email_settings(
    config: Config, mlist: MailingList, *, intro: str | None = None, key: str | None = None
) -> compose.EmailSettings:
    """How ``mlist``'s digests look and fit: its language, brand, subject pattern, the
    issue's intro (the editors' note, else the list's default), the HTML budget measured in
    the encoding each part will be sent in (``transfer.best_size``)."""
    configured = config.digest.subject
    return compose.EmailSettings(
        language=get_language(mlist.language),
        brand=mlist.brand,
        budget=config.digest.html_budget,
        # The list's pattern, else [digest] subject if it was changed, else subject.txt.
        subject_pattern=mlist.look.subject_pattern
        or (configured if configured != render.DEFAULT_SUBJECT else None),
        intro=intro or mlist.look.intro,
        size_of=functools.partial(transfer.best_size, key=key),
    )


def issue_articles(db: Database, article_ids: list[int], edits: IssueEdits) -> list[Article]:
    """An issue's articles as the editors shaped it: the stored ones (and pinned ones not
    among them), without the dropped ones, pinned first, then newest first."""
    ids = [i for i in dict.fromkeys([*article_ids, *edits.pinned])]
    return edits.apply(load_articles(db, ids))


@dataclass
class RenderedVariant:
    tags_key: str
    email: render.RenderedEmail | None  # None: no articles for this tag set, or it failed
    template: bytes | None
    error: str | None = None  # why it could not be rendered (its deliveries fail with this)


def render_variant(
    env: jinja2.Environment,
    config: Config,
    mlist: MailingList,
    period: Period,
    articles: list[Article],
    wanted: frozenset[str] | None,
    *,
    built_at: datetime,
    views: dict[int, render.ArticleView | None] | None = None,
    intro: str | None = None,
    web_key: str | None = None,
) -> RenderedVariant:
    """Render, inline and encode one variant in the list's language and brand, its HTML part
    within the budget (pure: stores nothing). Raises ``compose.BudgetError`` when it cannot
    fit: the caller fails this variant's deliveries, never queues it over the budget."""
    tags_key = ",".join(sorted(wanted)) if wanted is not None else ""
    order = section_order(mlist, articles)
    problems: list[str] = []
    sections = group_sections(
        articles,
        order,
        wanted,
        mlist=mlist,
        excerpt_words=config.digest.excerpt_words,
        views=views,
        problems=problems,
    )
    if not sections:
        if problems:
            return RenderedVariant(tags_key, None, None, error="; ".join(problems))
        return RenderedVariant(tags_key, None, None)
    key = new_placeholder_key()
    view = dataclasses.replace(digest_view(config, mlist, period, web_key), placeholder_key=key)
    settings = email_settings(config, mlist, intro=intro, key=key)
    rendered = compose.render_digest_email(env, view, sections, settings)
    rendered.report.warnings.extend(problems)
    # The Date header is the scheduled send time (or the build time, if built late), fixed in
    # the template so every resend of a message is byte-identical.
    date_at = max(period.send_at, built_at).astimezone(mlist.zone)
    headers = [
        ("From", mlist.from_addr),
        ("Subject", rendered.subject),
        ("Date", email.utils.format_datetime(date_at)),
        ("List-Id", f"{mlist.title} <{mlist.slug}.{sender_domain(mlist.from_addr)}>"),
    ]
    if mlist.reply_to:
        headers.append(("Reply-To", mlist.reply_to))
    template = build_template(
        headers,
        rendered.text,
        rendered.html,
        boundary_seed=f"{mlist.slug}:{period.frequency}:{period.label}:{tags_key}",
        key=key,
    )
    return RenderedVariant(tags_key, rendered, template)


class VariantRenderer:
    """Renders a build's variants, in order, on a worker thread.

    Rendering is Python (Jinja2, premailer) and holds the GIL; enqueueing one delivery per
    recipient is a single SQLite statement, which releases it. So the build opens its write
    transaction when the rendering left is about as long as the enqueueing will be, and both
    run at once on two cores; the write lock is held no longer than without the overlap. Nothing
    here touches the database.

    A failure belongs to the smallest thing that failed: a variant that cannot be rendered
    (whatever its articles hold) becomes a ``RenderedVariant`` with an ``error``, and the other
    variants render as usual. Only a configuration error (a template that is missing or does
    not compile) stops the build, since it would fail every variant alike."""

    def __init__(
        self,
        jobs: list[tuple[str, Callable[[], RenderedVariant]]],
        progress: ProgressCallback | None,
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
            for tags_key, job in self._jobs:
                if self._cancel.is_set():
                    return
                try:
                    result = job()
                except ConfigError:
                    raise
                except Exception as e:  # noqa: BLE001 - contained: this variant fails alone
                    what = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                    log.error("variant %r could not be rendered: %s", tags_key or "all tags", what)
                    result = RenderedVariant(tags_key, None, None, error=f"not rendered ({what})")
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


def describe_digest(
    db: Database,
    mlist: MailingList,
    digest_id: int,
    *,
    new: bool = False,
    enqueued: int = 0,
    counts: dict[int, int],
) -> BuiltDigest:
    """What is stored of a digest, with ``counts``: its deliveries per variant id."""
    digest = get_digest(db, digest_id)
    period = issue_for(mlist, digest.frequency, date.fromisoformat(digest.period_label))
    edits = edits_for(db, mlist.id, period.issue_date)
    articles = issue_articles(db, digest_article_ids(db, digest_id), edits)
    grouped = group_sections(articles, section_order(mlist, articles), None, mlist=mlist)
    variants = [
        BuiltVariant(
            id=v.id,
            tags_key=v.tags_key,
            subject=v.subject,
            article_count=v.article_count,
            cut_count=v.cut_count,
            recipients=counts.get(v.id, 0),
            empty=v.empty,
            report=v.report,
        )
        for v in variants_of(db, digest_id)
    ]
    return BuiltDigest(
        id=digest_id,
        mailing_list=mlist,
        frequency=digest.frequency,
        period=period,
        built_at=digest.built_at,
        article_count=len(articles),
        sections=[s.name for s in grouped],
        variants=variants,
        recipients=sum(counts.values()),
        enqueued=enqueued,
        new=new,
    )


def render_web_version(db: Database, config: Config, digest_id: int) -> str:
    """The stored digest as one web page with every article (no cut, nothing personal), in
    the list's language and brand, with ``id="tag-<key>"`` section anchors (folded sections
    link there) and ``id="story-<id>"`` story anchors ("N more" links land on the first story
    not shown)."""
    digest = get_digest(db, digest_id)
    mlist = get_list_by_id(db, digest.list_id)
    period = issue_for(mlist, digest.frequency, date.fromisoformat(digest.period_label))
    edits = edits_for(db, mlist.id, period.issue_date)
    articles = issue_articles(db, digest_article_ids(db, digest_id), edits)
    sections = group_sections(
        articles,
        section_order(mlist, articles),
        None,
        mlist=mlist,
        excerpt_words=config.digest.excerpt_words,
    )  # an article that cannot be shown is left out of the page, as from the email
    env = render.template_environment(config)
    settings = email_settings(config, mlist, intro=edits.note)
    view = digest_view(config, mlist, period, digest.web_key)
    return compose.render_digest_web(env, view, sections, settings)
