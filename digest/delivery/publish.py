"""Publishing an issue: build it (``issues.build`` renders its variants) and enqueue a delivery
for every active subscriber, in one write transaction, so a crash leaves either no digest or a
complete one with its deliveries.

Editors shape an issue (``issues.edits``: note, pin, drop) before or after it is built; a build
that finds the edits changed since the issue was rendered renders its variants again, in place:
deliveries still queued go out with the new version, deliveries already sent are never sent
again, and a tag set left with nothing to show has its queued deliveries skipped. An issue of a
list in approval mode is stored without deliveries until it is approved
(``issues.approval``); ``shape_issue`` and ``approve`` are the editors' library calls.

Variants render on a worker thread (``VariantRenderer``); the transaction opens when the
rendering left is estimated to take about as long as enqueueing the audience, which is one
SQLite statement that releases the GIL, so on two cores the two overlap and the write lock is
held no longer than without the overlap.
"""

from __future__ import annotations

import dataclasses
import functools
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from sqlite_utils import Database

from ..articles.reads import Article
from ..audience.lists import MailingList, all_lists, get_list
from ..audience.records import FREQUENCIES
from ..audience.subscriptions import audience_groups, has_active_subscribers
from ..config import Config
from ..errors import InvalidInput, describe_error
from ..issues import approval, render
from ..issues.approval import IssueApproval
from ..issues.build import (
    BuiltDigest,
    ProgressCallback,
    RenderedVariant,
    VariantRenderer,
    describe_digest,
    issue_articles,
    render_variant,
)
from ..issues.edits import IssueEdits, edits_for, mark_article, set_note
from ..issues.periods import Period, issue_for, latest_due, next_issue
from ..issues.render import RenderReport
from ..issues.sections import has_sections, variant_key
from ..issues.selection import select_articles, untagged_note
from ..issues.store import (
    StoredDigest,
    digest_article_ids,
    digests_of_list,
    fill_variant,
    find_digest,
    insert_digest,
    insert_variants,
    record_edits,
    stored_variants,
    variants_of,
)
from ..store import transaction
from . import ledger

# Planning figure for overlapping the write transaction with rendering: enqueueing costs
# 3-5 µs per recipient on a 2-vCPU machine (a delivery row and its indexes), the higher figure
# while the other core renders.
ENQUEUE_SECONDS_PER_RECIPIENT = 6e-6


class IssueSent(InvalidInput):
    """An editor tried to shape an issue that was sent already."""


class _Raced(Exception):
    """Another process stored the same digest between our read and our write."""


def _wanted(tags_key: str) -> frozenset[str] | None:
    return frozenset(tags_key.split(",")) if tags_key else None


@dataclass
class _Build:
    """What one build attempt works from."""

    period: Period
    existing: StoredDigest | None
    edits: IssueEdits
    stored_ids: list[int]  # the digest's articles as stored (the selection, then pinned ones)
    articles: list[Article]  # as the editors shaped them
    rerender: set[str]  # stored variants to render again (the edits changed)
    held: bool  # approval mode, not approved: store, queue nothing
    web_key: str | None  # a private list's issue key (stored with the digest; links carry it)


def new_web_key(mlist: MailingList) -> str | None:
    """A new issue's web key: random for a private list (its issue pages are not guessable
    from the list and date), none for a public one."""
    return secrets.token_urlsafe(16) if mlist.private else None


def _prepare(db: Database, mlist: MailingList, period: Period, *, now: datetime) -> _Build:
    existing = find_digest(db, mlist, period)
    edits = edits_for(db, mlist.id, period.issue_date)
    if existing is not None:
        stored_ids = digest_article_ids(db, existing.id)
        stale = existing.edits_hash != edits.fingerprint
        rerender = set(stored_variants(db, existing.id)) if stale else set()
    else:
        stored_ids = select_articles(db, mlist, period, now=now)
        rerender = set()
    stored_ids = list(dict.fromkeys([*stored_ids, *edits.pinned]))
    return _Build(
        period=period,
        existing=existing,
        edits=edits,
        stored_ids=stored_ids,
        articles=issue_articles(db, stored_ids, edits),
        rerender=rerender,
        held=approval.is_held(db, mlist, period, new=existing is None, now=now),
        web_key=existing.web_key if existing is not None else new_web_key(mlist),
    )


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
    enqueue a delivery for every active subscriber not yet queued for it. An issue whose
    editors' edits changed since it was rendered is rendered again (see the module
    docstring); an issue awaiting approval is stored without deliveries."""
    period = issue_for(mlist, frequency, issue_date)
    env = render.template_environment(config)
    for _attempt in range(3):
        job = _prepare(db, mlist, period, now=now)
        existing = job.existing
        built_at = existing.built_at if existing is not None else now
        have = set(stored_variants(db, existing.id)) if existing is not None else set()
        groups = {raw: (*variant_key(raw, mlist), n) for raw, n in audience_groups(
            db, mlist, frequency).items()}  # fmt: skip
        needed = {key: wanted for key, wanted, _ in groups.values() if key not in have}
        needed.update((key, _wanted(key)) for key in job.rerender)
        views: dict[int, render.ArticleView | None] = {}  # each article's view once per build
        renderer = VariantRenderer(
            [
                (
                    key,
                    functools.partial(
                        render_variant,
                        env,
                        config,
                        mlist,
                        period,
                        job.articles,
                        wanted,
                        built_at=built_at,
                        views=views,
                        intro=job.edits.note,
                        web_key=job.web_key,
                    ),
                )  # fmt: skip
                for key, wanted in needed.items()
            ],
            progress,
        )
        try:
            recipients = sum(count for _, _, count in groups.values())
            renderer.wait_until_left(recipients * ENQUEUE_SECONDS_PER_RECIPIENT)
            with transaction(db):
                digest_id, enqueued, counts = _store(
                    db, mlist, job, needed, renderer, groups, now=now
                )
        except _Raced:
            continue
        finally:
            renderer.stop()
        built = describe_digest(
            db, mlist, digest_id, new=existing is None, enqueued=enqueued, counts=counts
        )
        built.awaiting_approval = job.held
        built.rerendered = bool(job.rerender)
        note = untagged_note(db, mlist, period, ingested_by=built.built_at)
        if note:
            built.notes.append(note)
        return built
    raise RuntimeError("digest build kept racing with another process")  # pragma: no cover


def _store(
    db: Database,
    mlist: MailingList,
    job: _Build,
    needed: dict[str, frozenset[str] | None],
    renderer: VariantRenderer,
    groups: dict[str, tuple[str, frozenset[str] | None, int]],
    *,
    now: datetime,
) -> tuple[int, int, dict[int, int]]:
    """Store the digest, its variants and its deliveries (inside the caller's transaction):
    (digest id, deliveries enqueued now, deliveries per variant id)."""
    period, existing, articles = job.period, job.existing, job.articles
    if existing is None:
        if find_digest(db, mlist, period) is not None:
            raise _Raced
        digest_id = insert_digest(
            db,
            mlist,
            period,
            job.stored_ids,
            now=now,
            edits_hash=job.edits.fingerprint,
            web_key=job.web_key,
        )
    else:
        digest_id = existing.id
        added = set(needed) - job.rerender
        if not stored_variants(db, digest_id).keys().isdisjoint(added):
            raise _Raced  # another build added one of these variants since we looked
        if job.rerender:
            record_edits(db, digest_id, job.stored_ids, job.edits.fingerprint)
    if job.held:
        approval.request_approval(db, mlist, period, now=now)

    # While the last variants render on the other thread, this thread takes the GIL back after
    # every statement (up to a 5 ms switch interval each), so the writes below are a few
    # set-based statements rather than one per article or variant.
    #
    # The variants still rendering get their rows now (filled in below, before the commit), so
    # that their recipients can be enqueued meanwhile. Which of them are empty is known already.
    insert_variants(db, digest_id, [key for key in needed if key not in job.rerender])
    ids = stored_variants(db, digest_id)
    new_ids = {key: ids[key][0] for key in needed}
    variant_ids = {
        key: id_ for key, (id_, filled) in ids.items() if filled and key not in job.rerender
    }
    variant_ids.update(
        (key, new_ids[key])
        for key, wanted in needed.items()
        if has_sections(articles, mlist, wanted)
    )
    enqueued = 0
    if not job.held:
        enqueued = ledger.enqueue(
            db,
            digest_id,
            list_id=mlist.id,
            frequency=period.frequency,
            variant_of_tags={
                raw: variant_ids[key] for raw, (key, _, _) in groups.items() if key in variant_ids
            },
            now=now,
        )
        found = approval.approval_of(db, mlist.id, period.frequency, period.label)
        if found is not None:  # approved, or the list left approval mode
            approval.mark_released(db, found.id, now=now)
    counts = ledger.counts_by_variant(db, digest_id)
    for variant in renderer.result():
        variant_id = new_ids[variant.tags_key]
        _fill(db, variant_id, variant)
        if variant.error is not None:
            # Its subscribers' deliveries fail with the reason; the other variants go out.
            ledger.fail_variant(db, variant_id, reason=variant.error, now=now)
        elif variant.template is None and variant.tags_key in job.rerender:
            ledger.skip_variant(
                db,
                variant_id,
                reason="the editors' changes left nothing to show for this tag set",
                now=now,
            )
        elif variant.template is None and counts.get(variant_id):
            # has_sections said it had articles, yet none could be shown.
            ledger.fail_variant(db, variant_id, reason="no article could be shown", now=now)
    return digest_id, enqueued, counts


def _fill(db: Database, variant_id: int, variant: RenderedVariant) -> None:
    email = variant.email
    report = dataclasses.replace(email.report) if email else RenderReport()
    report.tags_key = variant.tags_key
    if variant.error is not None:
        report.error = variant.error
    fill_variant(
        db,
        variant_id,
        subject=email.subject if email else "",
        template=variant.template,
        article_count=email.article_count if email else 0,
        cut_count=email.cut_count if email else 0,
        report=report,
    )


@dataclass(frozen=True)
class BuildFailure:
    """A (list, frequency) whose issue could not be built, and why."""

    list_slug: str
    frequency: str
    error: str


def build_issues(
    db: Database,
    config: Config,
    jobs: list[tuple[MailingList, str, date]],
    *,
    now: datetime,
    progress: Callable[[MailingList, str], ProgressCallback | None] | None = None,
    failures: list[BuildFailure] | None = None,
    refuse: Callable[[MailingList, str, Period], str | None] | None = None,
) -> list[BuiltDigest]:
    """Build each (list, frequency, issue date). With ``failures``, one that fails is recorded
    there and the others are built; without, the first failure is raised. ``refuse`` may
    return why an issue must not be built (it is then a failure, and nothing is stored for it).
    A weekly issue date is moved back to the list's weekly day (noted in ``BuiltDigest.notes``).
    """
    built = []
    for mlist, freq, issue_date in jobs:
        try:
            if refuse is not None:
                why = refuse(mlist, freq, issue_for(mlist, freq, issue_date))
                if why is not None:
                    raise InvalidInput(why)
            result = build_digest(db, config, mlist, freq, issue_date, now=now,
                                  progress=progress(mlist, freq) if progress else None)  # fmt: skip
        except Exception as e:
            if failures is None:
                raise
            # Contained: this issue fails, the others go on.
            failures.append(BuildFailure(mlist.slug, freq, describe_error(e)))
            continue
        if result.period.issue_date != issue_date:
            result.notes.append(
                f"weekly issues of {mlist.slug!r} are sent on {mlist.weekly_day}s: built the"
                f" issue of {result.period.label}, the most recent on or before {issue_date}"
            )
        built.append(result)
    return built


def build_due(
    db: Database,
    config: Config,
    *,
    now: datetime,
    list_slug: str | None = None,
    frequency: str | None = None,
    progress: Callable[[MailingList, str], ProgressCallback | None] | None = None,
    failures: list[BuildFailure] | None = None,
) -> list[BuiltDigest]:
    """Build the latest issue whose send time has passed of every (list, frequency) that has
    active subscribers (or only the ones selected), whatever its lateness: the demo's way of
    showing a first issue at once. ``digest build`` follows the scheduler's rule instead
    (``scheduler.manual``). Already built issues are returned as they are, after enqueueing
    anyone who became active since. With ``failures``, an issue that cannot be built is
    recorded there and the others are built."""
    lists = [get_list(db, list_slug)] if list_slug else all_lists(db)
    frequencies = [frequency] if frequency else list(FREQUENCIES)
    jobs = [
        (mlist, freq, latest_due(mlist, freq, now).issue_date)
        for mlist in lists
        for freq in frequencies
        if has_active_subscribers(db, mlist, freq)
    ]
    return build_issues(db, config, jobs, now=now, progress=progress, failures=failures)


def build_for_date(
    db: Database,
    config: Config,
    issue_date: date,
    *,
    now: datetime,
    list_slug: str | None = None,
    frequency: str | None = None,
    progress: Callable[[MailingList, str], ProgressCallback | None] | None = None,
    failures: list[BuildFailure] | None = None,
    refuse: Callable[[MailingList, str, Period], str | None] | None = None,
) -> list[BuiltDigest]:
    """Build the issues of ``issue_date`` for the selected lists and frequencies. Unless both a
    list and a frequency are named, a (list, frequency) without active subscribers is skipped.
    ``failures`` and ``refuse``: as for ``build_issues``."""
    lists = [get_list(db, list_slug)] if list_slug else all_lists(db)
    frequencies = [frequency] if frequency else list(FREQUENCIES)
    explicit = bool(list_slug and frequency)
    jobs = [
        (mlist, freq, issue_date)
        for mlist in lists
        for freq in frequencies
        if explicit or has_active_subscribers(db, mlist, freq)
    ]
    return build_issues(db, config, jobs, now=now, progress=progress, failures=failures,
                        refuse=refuse)  # fmt: skip


@dataclass(frozen=True)
class ShapeResult:
    """An editor's change to an issue: the issue's edits now, and the built issues that were
    rendered again with them (none when the issue is not built yet: its build applies them)."""

    edits: IssueEdits
    rebuilt: list[BuiltDigest]

    def report_lines(self) -> list[str]:
        """What ``digest issues note|pin|drop|clear`` and the web editor say after the change:
        each issue rendered again, or that the build will apply it."""
        if not self.rebuilt:
            return ["not built yet: its build applies this"]
        lines = []
        for built in self.rebuilt:
            variants = [v for v in built.variants if not v.empty]
            failed = [v for v in variants if v.error]
            line = (
                f"rendered again: {built.mailing_list.slug}/{built.frequency}/"
                f"{built.period.label}, {built.article_count} articles, {len(variants)} variants"
            )
            lines.append(line + (f", {len(failed)} failed" if failed else ""))
        return lines


def _built_issues(db: Database, mlist: MailingList, issue_date: date) -> list[Period]:
    """The issues of ``mlist`` dated ``issue_date`` that are built."""
    out = []
    for frequency in FREQUENCIES:
        period = issue_for(mlist, frequency, issue_date)
        if period.issue_date == issue_date and find_digest(db, mlist, period) is not None:
            out.append(period)
    return out


def shape_issue(
    db: Database,
    config: Config,
    list_slug: str,
    issue_date: date,
    *,
    by: str,
    now: datetime,
    note: str | None = None,
    article_id: int | None = None,
    action: str | None = None,
) -> ShapeResult:
    """Set the intro ``note`` of ``list_slug``'s issue of ``issue_date``, or pin, drop or clear
    (``action``) ``article_id`` in it; an issue already built is rendered again at once (its
    deliveries still queued get the new version; none already sent is sent again)."""
    mlist = get_list(db, list_slug)
    built = _built_issues(db, mlist, issue_date)
    for period in built:
        _refuse_if_sent(db, mlist, period)
    if note is not None:
        edits = set_note(db, mlist, issue_date, note, by=by, now=now)
    elif article_id is not None and action is not None:
        edits = mark_article(db, mlist, issue_date, article_id, action, by=by, now=now)
    else:
        raise ValueError("shape_issue needs a note, or an article and an action")
    rebuilt = [
        build_digest(db, config, mlist, period.frequency, issue_date, now=now) for period in built
    ]
    return ShapeResult(edits, rebuilt)


@dataclass(frozen=True)
class DeliveryState:
    """How far a built issue's deliveries went (``ledger.status_counts``)."""

    counts: dict[str, int]

    @property
    def accepted(self) -> int:
        return self.counts.get(ledger.DeliveryStatus.SENT, 0)

    @property
    def owed(self) -> int:
        return sum(self.counts.get(status, 0) for status in ledger.OWED)

    @property
    def sent(self) -> bool:
        """An issue is sent once a relay accepted one of its deliveries and none is owed any
        more. Rendering it again then would change only its web version, which must stay what
        readers got; an issue still being sent may change (its queued deliveries get the new
        version, none already sent is sent again)."""
        return bool(self.accepted) and not self.owed


def delivery_state(db: Database, digest_id: int) -> DeliveryState:
    return DeliveryState(ledger.status_counts(db, digest_id))


def _refuse_if_sent(db: Database, mlist: MailingList, period: Period) -> None:
    stored = find_digest(db, mlist, period)
    if stored is None:
        return
    state = delivery_state(db, stored.id)
    if state.sent:
        raise IssueSent(
            f"{mlist.slug}/{period.frequency}/{period.label} was sent ({state.accepted:,}"
            " deliveries accepted): a sent issue can no longer be changed; shape a later issue"
            " instead"
        )


@dataclass(frozen=True)
class IssueLine:
    """One issue of a list for the editors' list of issues: upcoming (the next of its
    frequency) or built recently, with its approval and how far its deliveries went."""

    period: Period
    digest: StoredDigest | None  # None: not built yet
    approval: IssueApproval | None
    deliveries: DeliveryState | None  # None: not built yet
    upcoming: bool  # its send time is still to come
    subject: str | None  # of the all-tags variant (or the first), when built


def _subject(db: Database, digest_id: int) -> str | None:
    variants = variants_of(db, digest_id)
    chosen = next((v for v in variants if v.tags_key == ""), variants[0] if variants else None)
    return chosen.subject if chosen else None


def editor_issues(
    db: Database, mlist: MailingList, *, now: datetime, recent: int = 6
) -> list[IssueLine]:
    """The next issue of each frequency and the ``recent`` newest built ones, newest date
    first (daily before weekly on the same date)."""
    periods = {(p.frequency, p.label): p for p in (next_issue(mlist, f, now) for f in FREQUENCIES)}
    stored = {(d.frequency, d.period_label): d for d in digests_of_list(db, mlist.id)[:recent]}
    for frequency, label in stored:
        periods.setdefault(
            (frequency, label), issue_for(mlist, frequency, date.fromisoformat(label))
        )
    lines = []
    for key, period in periods.items():
        found = stored.get(key) or find_digest(db, mlist, period)
        lines.append(
            IssueLine(
                period=period,
                digest=found,
                approval=approval.approval_of(db, mlist.id, period.frequency, period.label),
                deliveries=delivery_state(db, found.id) if found is not None else None,
                upcoming=period.send_at > now,
                subject=_subject(db, found.id) if found is not None else None,
            )
        )
    order = {str(f): i for i, f in enumerate(FREQUENCIES)}
    return sorted(
        lines, key=lambda x: (-x.period.issue_date.toordinal(), order[x.period.frequency])
    )


def approve(
    db: Database,
    config: Config,
    list_slug: str,
    issue_date: date,
    *,
    by: str,
    now: datetime,
    frequency: str | None = None,
) -> list[approval.IssueApproval]:
    """An editor approves the issue(s) of ``list_slug`` dated ``issue_date`` awaiting approval
    (the CLI's ``digest issues approve`` and the web editor's button). Its deliveries are
    queued by the next build at or after its send time (the scheduler's)."""
    mlist = get_list(db, list_slug)
    approved = approval.approve_issues(db, mlist, issue_date, by=by, now=now, frequency=frequency)
    return approved
