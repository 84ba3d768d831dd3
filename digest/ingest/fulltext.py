"""Full text for summary-only feeds (``digest feeds add --full-text``, ``digest ingest
--full-text``): for each stored entry of a feed that carries only a summary, fetch the page it
links to, extract the article (``pages``) and store its text in place of the summary
(``articles.writes.store_full_text``). The only module that writes ``full_text_pages``.

**Only a summary** means: the entry links to an http(s) page and its text is under
``SUMMARY_MAX_WORDS`` words, and either the feed gave no content beyond the summary (RSS without
``content:encoded``, Atom without ``<content>``, JSON Feed without ``content_html``/
``content_text``), or the text ends like a teaser (``…``, ``[...]``, "Read more", "Continue
reading"), or there is no text at all. The page's text replaces the summary only if it has more
words than the summary; otherwise the summary is kept (a paywall or a cookie wall extracts to
less than the feed said).

**The cache** (``full_text_pages``, one row per link) keeps each page's last outcome, its
extracted article and its ``ETag``/``Last-Modified``. A page is fetched when its entry is new
or changed (a conditional GET when it was extracted before: ``304 Not Modified`` reuses the
cached article), or when its last attempt for this version of the entry failed, at most
``MAX_ATTEMPTS`` times; an entry that keeps its full text is never fetched again. Rows unused
for ``CACHE_DAYS`` are dropped.

**Limits.** Pages are fetched with ``http.http_get``: the same deadline (``[ingest]
fetch_timeout``), size cap (``[ingest] max_feed_bytes``, at most ``pages.MAX_PAGE_BYTES``) and
address policy (``[ingest] allow_private_addresses``) as feeds, at most ``PER_HOST`` requests
at a time to one host and ``MAX_PAGES`` pages per run (the rest wait for the next run). A
``stop`` event ends the run within a second or so; what was stored stays stored.

Failures belong to the page: a page that cannot be fetched or gives no article leaves its
entry's summary in place, and is reported in one line naming it.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import urlsplit

from sqlite_utils import Database

from ..articles.reads import EntryContent, entry_contents
from ..articles.writes import FullText, store_full_text
from ..config import Config
from ..errors import describe_error
from ..store import transaction
from ..text import visible
from ..timeutil import to_iso
from .http import http_get
from .pages import MAX_PAGE_BYTES, PageRejected, count_words, extract_page, is_article_page
from .sources import is_url

# An entry with this many words or more carries its article, whatever the feed calls it.
SUMMARY_MAX_WORDS = 200
MAX_ATTEMPTS = 3  # failures in a row for one version of an entry before it is left alone
PER_HOST = 2  # requests at a time to one host: a feed's pages are usually all on one site
WORKERS = 4  # requests at a time in all (each waits on the network; extraction is quick)
MAX_PAGES = 50  # pages fetched per source and run; the others wait for the next run
CACHE_DAYS = 60
PROGRESS_LABEL = "full text"

_TEASER = re.compile(
    r"(?:…|\.\.\.|\[\s*(?:…|\.\.\.)\s*\]|\b(?:read|see) (?:more|the (?:full|whole|rest)\b.*)|"
    r"\bcontinue reading\b.*|\bmore\s*(?:»|›|→|>>))\W*$",
    re.IGNORECASE,
)


class PageStatus(StrEnum):
    EXTRACTED = "extracted"
    KEPT_SUMMARY = "kept_summary"  # the page had no more text than the summary
    FAILED = "failed"


def is_summary_only(entry: EntryContent) -> bool:
    """Whether a stored entry carries only a summary of its linked page (see the module
    docstring)."""
    if not entry.url or not is_url(entry.url):
        return False
    text = entry.text.strip()
    if not text:
        return True
    if count_words(text) >= SUMMARY_MAX_WORDS:
        return False
    return entry.content_is_summary or bool(_TEASER.search(text))


@dataclass
class FullTextReport:
    """What one run did for a source's summary-only entries. Entries settled by an earlier
    run (the page had no more text; the page failed ``MAX_ATTEMPTS`` times) are not looked at
    again until they change; the given-up ones are counted in ``given_up``."""

    entries: int = 0  # summary-only entries whose page is due (fetched, cached, or left)
    stored: int = 0  # pages whose text now replaces the summary
    not_modified: int = 0  # of those, pages unchanged since their last fetch (cache)
    kept_summary: int = 0  # pages with no more text than the summary
    failed: list[str] = field(default_factory=list)  # "URL: reason", one per page
    retry: int = 0  # of the failed, pages that will be tried again at the next run
    given_up: int = 0  # entries whose page failed MAX_ATTEMPTS times in earlier runs
    left: int = 0  # not fetched in this run (over MAX_PAGES, or stopped)
    stopped: bool = False

    @property
    def complete(self) -> bool:
        """Whether nothing is left for a later run: every page tried, none to retry."""
        return not (self.left or self.retry or self.stopped)

    @property
    def failures(self) -> int:
        """Entries that keep their summary because their page failed."""
        return len(self.failed) + self.given_up

    def summary_line(self) -> str | None:
        """``full text: 5 summary-only entries · 3 stored from the linked page · 2 failed
        (summary kept)``, or None when there was nothing to do."""
        parts = []
        if self.entries:
            parts.append(f"{self.entries} summary-only entr{'y' if self.entries == 1 else 'ies'}")
        if self.stored:
            parts.append(f"{self.stored} stored from the linked page")
            if self.not_modified:
                parts[-1] += f" ({self.not_modified} unchanged since the last fetch)"
        if self.kept_summary:
            parts.append(f"{self.kept_summary} kept the summary (the page had no more text)")
        if self.failed:
            parts.append(f"{len(self.failed)} failed (summary kept)")
        if self.left:
            parts.append(f"{self.left} left for the next run")
        if self.stopped:
            parts.append("stopped (digest is shutting down)")
        if self.given_up:
            parts.append(
                f"{self.given_up} not tried again (the page failed {MAX_ATTEMPTS} times; tried"
                " again when the entry changes)"
            )
        return "full text: " + " · ".join(parts) if parts else None


@dataclass(frozen=True, slots=True)
class _Cached:
    url: str
    final_url: str | None
    etag: str | None
    last_modified: str | None
    status: PageStatus
    content_html: str | None
    author: str | None
    canonical_url: str | None
    words: int | None
    attempts: int
    entry_hash: str
    error: str | None


@dataclass(frozen=True, slots=True)
class _Job:
    entry: EntryContent
    host: str
    cached: _Cached | None  # its validators are sent when it holds an extracted article


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What fetching one page gave: an article (``content_html``), or ``error``."""

    job: _Job
    status: PageStatus
    content_html: str | None = None
    words: int = 0
    author: str | None = None
    final_url: str | None = None
    canonical_url: str | None = None
    base_url: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False
    error: str | None = None
    stopped: bool = False


def fetch_full_text(
    db: Database,
    article_ids: list[int],
    *,
    config: Config,
    now: datetime,
    label: str = "",
    stop: threading.Event | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> FullTextReport:
    """Store the linked page's text for the summary-only entries among ``article_ids`` (the
    entries of one source). ``progress(f"full text {label}", done, total)`` is called as pages
    finish. Never raises because of one page."""
    report = FullTextReport()
    entries = [e for e in entry_contents(db.conn, sorted(set(article_ids))) if is_summary_only(e)]
    if not entries:
        return report
    _forget_old(db, now)
    cache = _load(db, [e.url for e in entries if e.url])
    jobs: list[_Job] = []
    for entry in entries:
        assert entry.url is not None
        row = cache.get(entry.url)
        same_entry = row is not None and row.entry_hash == entry.content_hash
        if row is None or not same_entry:
            keep = row if row is not None and row.status == PageStatus.EXTRACTED else None
            jobs.append(_Job(entry, _host(entry.url), keep))
        elif row.status == PageStatus.EXTRACTED:
            # Fetched for this very entry, but not stored (it changed meanwhile): no request.
            report.entries += 1
            _finish(db, report, _from_cache(_Job(entry, _host(entry.url), row)), config, now)
        elif row.status == PageStatus.KEPT_SUMMARY:
            pass  # settled: the page has no more text than this version of the entry
        elif row.attempts < MAX_ATTEMPTS:
            jobs.append(_Job(entry, _host(entry.url), None))
        else:
            report.given_up += 1
    report.entries += len(jobs)
    report.left = max(0, len(jobs) - MAX_PAGES)
    jobs = jobs[:MAX_PAGES]
    _run(db, jobs, report, config=config, now=now, label=label, stop=stop, progress=progress)
    report.failed.sort()  # pages finish in any order; reports list them in one
    return report


def _run(
    db: Database,
    jobs: list[_Job],
    report: FullTextReport,
    *,
    config: Config,
    now: datetime,
    label: str,
    stop: threading.Event | None,
    progress: Callable[[str, int, int], None] | None,
) -> None:
    """Fetch ``jobs`` on worker threads, at most ``PER_HOST`` per host, and store each outcome
    on this thread (the database connection's) as it arrives."""
    queues: dict[str, deque[_Job]] = {}
    for job in jobs:
        queues.setdefault(job.host, deque()).append(job)
    busy: Counter[str] = Counter()
    running: dict[Future[_Outcome], _Job] = {}
    done = 0
    name = f"{PROGRESS_LABEL} {label}".strip()
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="digest-full-text") as pool:

        def submit() -> None:
            if stop is not None and stop.is_set():
                return
            for host, queue in queues.items():
                while queue and busy[host] < PER_HOST and len(running) < WORKERS:
                    job = queue.popleft()
                    busy[host] += 1
                    running[pool.submit(_fetch, job, config, now, stop)] = job

        submit()
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                job = running.pop(future)
                busy[job.host] -= 1
                outcome = future.result()  # _fetch never raises
                if outcome.stopped:
                    report.stopped = True
                    report.left += 1
                else:
                    _finish(db, report, outcome, config, now)
                done += 1
                if progress is not None:
                    progress(name, done, len(jobs))
            submit()
    if stop is not None and stop.is_set():
        report.stopped = True
        report.left += sum(len(q) for q in queues.values())


def _fetch(job: _Job, config: Config, now: datetime, stop: threading.Event | None) -> _Outcome:
    """Fetch and extract one page (on a worker thread: no database). Never raises."""
    url = job.entry.url
    assert url is not None
    cached = job.cached
    max_bytes = min(config.ingest.max_feed_bytes, MAX_PAGE_BYTES)
    limit_name = (
        "[ingest] max_feed_bytes"
        if config.ingest.max_feed_bytes <= MAX_PAGE_BYTES
        else "the limit for a web page"
    )
    try:
        response = http_get(
            url,
            timeout=config.ingest.fetch_timeout,
            max_bytes=max_bytes,
            etag=cached.etag if cached else None,
            last_modified=cached.last_modified if cached else None,
            allow_private=config.ingest.allow_private_addresses,
            stop=stop,
            limit_name=limit_name,
        )
        if response.status == 304 and cached is not None:
            return _from_cache(job, etag=response.etag, last_modified=response.last_modified)
        body = response.body or b""
        if not is_article_page(body, content_type=response.content_type):
            mime = (response.content_type or "no Content-Type").split(";")[0].strip()
            return _failed(job, f"not an HTML page ({visible(mime)[:60]})")
        page = extract_page(
            body, url=response.url, label=url, content_type=response.content_type, now=now
        )
    except PageRejected as e:
        return _failed(job, f"{e.reason.value} ({e.detail})")
    except Exception as e:  # noqa: BLE001 - one page fails alone
        if stop is not None and stop.is_set():
            return _Outcome(job, PageStatus.FAILED, stopped=True)
        return _failed(job, visible(describe_error(e)).removeprefix(f"{visible(url)}: ")[:300])
    words = page.word_count
    status = (
        PageStatus.EXTRACTED if words > count_words(job.entry.text) else PageStatus.KEPT_SUMMARY
    )
    return _Outcome(
        job,
        status,
        content_html=page.content_html,
        words=words,
        author=page.author,
        final_url=response.url,
        canonical_url=page.canonical_url,
        base_url=page.base_url,
        etag=response.etag,
        last_modified=response.last_modified,
    )


def _failed(job: _Job, error: str) -> _Outcome:
    return _Outcome(job, PageStatus.FAILED, error=error)


def _from_cache(
    job: _Job, *, etag: str | None = None, last_modified: str | None = None
) -> _Outcome:
    row = job.cached
    assert row is not None and row.content_html is not None
    status = (
        PageStatus.EXTRACTED
        if (row.words or 0) > count_words(job.entry.text)
        else PageStatus.KEPT_SUMMARY
    )
    return _Outcome(
        job,
        status,
        content_html=row.content_html,
        words=row.words or 0,
        author=row.author,
        final_url=row.final_url,
        canonical_url=row.canonical_url,
        base_url=row.final_url or row.canonical_url,
        etag=etag or row.etag,
        last_modified=last_modified or row.last_modified,
        not_modified=True,
    )


def _finish(
    db: Database, report: FullTextReport, outcome: _Outcome, config: Config, now: datetime
) -> None:
    """Record one page's outcome in the cache and, for an extracted article, store its text."""
    entry = outcome.job.entry
    assert entry.url is not None
    if outcome.status == PageStatus.FAILED:
        attempts = _attempts(db, entry) + 1
        _save(db, entry, outcome, now, attempts=attempts)
        report.failed.append(f"{visible(entry.url)}: {outcome.error}")
        if attempts < MAX_ATTEMPTS:
            report.retry += 1
        return
    _save(db, entry, outcome, now, attempts=0)
    if outcome.status == PageStatus.KEPT_SUMMARY:
        report.kept_summary += 1
        return
    assert outcome.content_html is not None
    urls = tuple(u for u in (outcome.final_url, _same_site(outcome)) if u)
    stored = store_full_text(
        db,
        FullText(
            article_id=entry.id,
            entry_hash=entry.content_hash,
            content_html=outcome.content_html,
            base_url=outcome.base_url,
            author=outcome.author,
            urls=urls,
        ),
        now=now,
        max_text_bytes=config.ingest.max_text_bytes,
    )
    if stored:
        report.stored += 1
        report.not_modified += outcome.not_modified


def _same_site(outcome: _Outcome) -> str | None:
    """The page's canonical URL if it is on the host the page was served from: a page may not
    claim another site's story as its own (the store would then merge the two)."""
    canonical, final = outcome.canonical_url, outcome.final_url
    if canonical and final and _host(canonical) == _host(final):
        return canonical
    return None


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").removeprefix("www.")
    except ValueError:
        return ""


# ---------------------------------------------------------------------------- the cache table

_COLUMNS = (
    "url, final_url, etag, last_modified, status, content_html, author, canonical_url, words,"
    " attempts, entry_hash, error"
)


def _load(db: Database, urls: list[str]) -> dict[str, _Cached]:
    cur = db.execute(
        f"SELECT {_COLUMNS} FROM full_text_pages WHERE url IN (SELECT value FROM json_each(?))",
        [json.dumps(urls)],
    )
    names = [c[0] for c in cur.description]
    out = {}
    for values in cur.fetchall():
        row = dict(zip(names, values, strict=True))
        out[row["url"]] = _Cached(**{**row, "status": PageStatus(row["status"])})
    return out


def _attempts(db: Database, entry: EntryContent) -> int:
    """Failures in a row so far for this version of the entry."""
    row = db.execute(
        "SELECT attempts FROM full_text_pages WHERE url = ? AND entry_hash = ? AND status = ?",
        [entry.url, entry.content_hash, PageStatus.FAILED.value],
    ).fetchone()
    return int(row[0]) if row else 0


def _save(
    db: Database, entry: EntryContent, outcome: _Outcome, now: datetime, *, attempts: int
) -> None:
    with transaction(db):
        db.execute(
            f"INSERT OR REPLACE INTO full_text_pages ({_COLUMNS}, fetched_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [entry.url, outcome.final_url, outcome.etag, outcome.last_modified,
             outcome.status.value, outcome.content_html, outcome.author, outcome.canonical_url,
             outcome.words, attempts, entry.content_hash, outcome.error, to_iso(now)],
        )  # fmt: skip


def _forget_old(db: Database, now: datetime) -> None:
    cutoff = to_iso(now - timedelta(days=CACHE_DAYS))
    with transaction(db):
        db.execute("DELETE FROM full_text_pages WHERE fetched_at < ?", [cutoff])
