"""The demo: a self-contained workspace in which the real pipeline runs end to end on sample
data shipped with the package — sample feed -> ingest -> two lists and their subscribers (CSV
sync) -> due daily and weekly digests -> real SMTP to a local aiosmtpd server that stores what
it receives in a Maildir -> one rendered preview to open in a browser. Every step calls the same
library functions as the commands do; nothing is shelled out and nothing is left running.

A workspace is recognised by its marker file: running the demo again resets it (or, with
``keep``, reuses it), and a non-empty folder without the marker is never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import mailbox
import re
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiosmtpd.smtp import SMTP
from sqlite_utils import Database

from .articles.writes import SourceReport
from .audience.csvfiles import Report as SyncReport
from .audience.csvfiles import sync_directory
from .audience.lists import WEEKDAYS, MailingList, create_list, get_list
from .config import Config, load_config
from .delivery.preview import preview_digest
from .delivery.publish import build_due
from .delivery.send import SendReport, send_pending
from .delivery.transports import transport_from_config
from .errors import DigestError, InvalidInput, NotFound
from .ingest.pipeline import ingest_sources
from .issues.build import BuiltDigest
from .store import open_db
from .tokens import load_secret

MARKER = ".digest-demo"
DB_NAME = "digest.db"
CONFIG_NAME = "digest.toml"
FEED_NAME = "demo-feed.xml"
# The sample stories' dates are written relative to this instant; the demo moves them so that
# they end a few hours before ``now``.
FEED_ANCHOR = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
# What a reset removes: only what the demo itself makes (a file the user added stays).
DEMO_ENTRIES = (
    DB_NAME,
    DB_NAME + "-wal",
    DB_NAME + "-shm",
    DB_NAME + "-journal",
    DB_NAME + ".secret",
    CONFIG_NAME,
    FEED_NAME,
    "subscribers",
    "maildir",
    "preview",
)

CONFIG_TOML = """\
# digest configuration of the demo workspace (made by `digest demo`). Every key is optional;
# `digest init` writes the full commented example. Secrets never go here: the link-signing
# secret is read from DIGEST_SECRET, else from digest.db.secret beside the database.
# Templates: the packaged ones (set templates_dir = "my-templates" to use your own copy).

[site]
name = "Example News Desk (demo)"
base_url = "http://127.0.0.1:8080"

# The demo sends to an SMTP server it starts itself on a free port; for real sending add e.g.
# [[smtp]]
# url = "smtp+starttls://user@smtp.example.com:587"
"""


@dataclass(frozen=True)
class DemoList:
    slug: str
    title: str
    from_addr: str
    tags: tuple[str, ...]
    timezone: str
    send_time: str
    description: str


DEMO_LISTS = (
    DemoList(
        "morning",
        "Morning Briefing",
        "Morning Briefing <morning@news.example.com>",
        ("Kenya", "Economy", "Health", "Technology", "Climate"),
        "Africa/Nairobi",
        "06:30",
        "East Africa and the world before breakfast; most readers take it daily.",
    ),
    DemoList(
        "weekender",
        "The Weekender",
        "The Weekender <weekender@news.example.org>",
        ("Haiti", "Culture", "Science", "Climate", "Technology"),
        "America/New_York",
        "08:00",
        "The week's stories from Haiti, culture and science; most readers take it weekly.",
    ),
)


@dataclass
class DemoPaths:
    root: Path

    @property
    def marker(self) -> Path:
        return self.root / MARKER

    @property
    def db(self) -> Path:
        return self.root / DB_NAME

    @property
    def config(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def feed(self) -> Path:
        return self.root / FEED_NAME

    @property
    def subscribers(self) -> Path:
        return self.root / "subscribers"

    @property
    def maildir(self) -> Path:
        return self.root / "maildir"

    @property
    def preview(self) -> Path:
        return self.root / "preview"


@dataclass
class DemoReport:
    """What one demo run did."""

    paths: DemoPaths
    workspace: str  # "created" | "reset" | "reused"
    ingest: list[SourceReport] = field(default_factory=list)
    lists_created: list[MailingList] = field(default_factory=list)
    lists: list[MailingList] = field(default_factory=list)
    subscribers: list[SyncReport] = field(default_factory=list)
    digests: list[BuiltDigest] = field(default_factory=list)
    send: SendReport | None = None
    smtp_address: tuple[str, int] | None = None  # where the demo's server listened
    maildir_messages: int = 0
    preview_html: Path | None = None
    preview_of: str | None = None  # "morning daily 2026-01-10"


# ---------------------------------------------------------------- the workspace


def prepare_workspace(root: Path, *, keep: bool) -> str:
    """Make ``root`` ready: "created" (new or empty folder), "reset" (a previous demo's files
    removed) or "reused" (``keep``). Refuses, changing nothing, a file or a non-empty folder
    that is not a demo workspace."""
    if root.exists() and not root.is_dir():
        raise InvalidInput(f"{root}: exists and is not a directory; choose another DIR")
    paths = DemoPaths(root)
    if root.is_dir() and any(root.iterdir()):
        if not paths.marker.is_file():
            raise InvalidInput(
                f"{root}: not empty and not a demo workspace (it has no {MARKER} file); "
                "nothing was changed — choose a new or empty DIR"
            )
        if keep:
            return "reused"
        for name in DEMO_ENTRIES:
            entry = root / name
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            elif entry.exists() or entry.is_symlink():
                entry.unlink()
        return "reset"
    root.mkdir(parents=True, exist_ok=True)
    # The marker goes first: a run that fails half-way still leaves a workspace the next run
    # recognises and resets.
    paths.marker.write_text(
        "This folder is a `digest demo` workspace; `digest demo` resets it (--keep reuses it).\n",
        encoding="utf-8",
    )
    return "created"


def shift_feed(text: str, now: datetime) -> str:
    """The sample feed with every ``<pubDate>`` moved by ``now - FEED_ANCHOR`` (whole minutes),
    so the newest story is a few hours old and they span the last eight days."""
    delta = timedelta(minutes=(now - FEED_ANCHOR) // timedelta(minutes=1))

    def move(match: re.Match) -> str:
        when = email.utils.parsedate_to_datetime(match.group(1)) + delta
        return f"<pubDate>{email.utils.format_datetime(when.astimezone(UTC))}</pubDate>"

    text = re.sub(r"<pubDate>([^<]+)</pubDate>", move, text)
    return re.sub(
        r"<!--.*?-->",
        f"<!-- Sample articles written for the digest demo, dates moved to end a few hours"
        f" before {now:%Y-%m-%d %H:%M} UTC by `digest demo`. -->",
        text,
        count=1,
        flags=re.S,
    )


def package_data(name: str) -> str:
    return resources.files("digest").joinpath("data", name).read_text(encoding="utf-8")


def _todays_weekday(mlist: DemoList, now: datetime) -> str:
    """The weekday of the latest daily issue that is due at ``now`` in the list's timezone: as
    the list's weekly day, a full week of the sample stories is due today."""
    local = now.astimezone(ZoneInfo(mlist.timezone))
    day = local.date()
    if local.time() < time.fromisoformat(mlist.send_time):
        day -= timedelta(days=1)
    return WEEKDAYS[day.weekday()]


def _write_missing(path: Path, text: str) -> None:
    if not path.exists():
        path.write_text(text, encoding="utf-8")


# ---------------------------------------------------------------- the local SMTP server


class _MaildirHandler:
    def __init__(self, maildir: mailbox.Maildir):
        self.maildir = maildir
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        for recipient in envelope.rcpt_tos:
            trace = f"Return-Path: <{envelope.mail_from}>\r\nDelivered-To: {recipient}\r\n"
            with self.lock:
                self.maildir.add(trace.encode("utf-8") + envelope.content)
        return "250 2.0.0 stored in the demo Maildir"


class MaildirSmtpServer:
    """aiosmtpd on 127.0.0.1, on a free port, in a thread of its own, storing every message it
    accepts in the Maildir ``path``. Use as a context manager: it is stopped (the port closed,
    the thread ended) on the way out, whatever happened inside."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.handler = _MaildirHandler(mailbox.Maildir(self.path, create=True))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="demo-smtp", daemon=True)
        self.server: asyncio.base_events.Server | None = None
        self.host = "127.0.0.1"
        self.port = 0

    def _protocol(self) -> SMTP:
        return SMTP(
            self.handler,
            hostname="localhost",
            enable_SMTPUTF8=True,
            timeout=30,
            loop=self.loop,
        )

    def start(self) -> MaildirSmtpServer:
        self.thread.start()
        create = self.loop.create_server(self._protocol, self.host, 0)
        try:
            self.server = asyncio.run_coroutine_threadsafe(create, self.loop).result(30)
        except BaseException:
            self.stop()
            raise
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def stop(self) -> None:
        if self.server is not None:
            server = self.server

            async def close() -> None:
                server.close()
                await asyncio.wait_for(server.wait_closed(), 10)

            # The listening socket is closed either way; a client that never sent QUIT only
            # delays the wait.
            with contextlib.suppress(TimeoutError, OSError):
                asyncio.run_coroutine_threadsafe(close(), self.loop).result(30)
            self.server = None
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(30)
        if not self.loop.is_running() and not self.loop.is_closed():
            self.loop.close()

    def __enter__(self) -> MaildirSmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------- the run


def run_demo(
    directory: str | Path,
    *,
    now: datetime,
    keep: bool = False,
    progress: Callable[[str], None] | None = None,
) -> DemoReport:
    """Create (or reset, or with ``keep`` reuse) the demo workspace ``directory`` and run the
    whole pipeline in it as of ``now``. See the module docstring."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    say = progress or (lambda message: None)
    paths = DemoPaths(Path(directory))
    report = DemoReport(paths, prepare_workspace(paths.root, keep=keep))
    _write_missing(paths.config, CONFIG_TOML)
    _write_missing(paths.feed, shift_feed(package_data("demo-feed.xml"), now))
    paths.subscribers.mkdir(exist_ok=True)
    for demo_list in DEMO_LISTS:
        _write_missing(
            paths.subscribers / f"{demo_list.slug}.csv", package_data(f"demo-{demo_list.slug}.csv")
        )

    config = load_config(paths.config)
    secret = load_secret(paths.db)
    db = open_db(paths.db, create=True)
    try:
        say(f"ingesting {paths.feed}")
        report.ingest = ingest_sources(db, [str(paths.feed)], config=config, now=now)
        for source in report.ingest:
            if source.error:
                raise DigestError(source.summary_line())

        say("creating the lists and syncing subscribers/")
        for demo_list in DEMO_LISTS:
            try:
                mlist = get_list(db, demo_list.slug)
            except NotFound:
                mlist = create_list(
                    db,
                    demo_list.slug,
                    title=demo_list.title,
                    from_addr=demo_list.from_addr,
                    tags=demo_list.tags,
                    timezone=demo_list.timezone,
                    send_time=demo_list.send_time,
                    weekly_day=_todays_weekday(demo_list, now),
                    description=demo_list.description,
                    now=now,
                )
                report.lists_created.append(mlist)
            report.lists.append(mlist)
        for outcome in sync_directory(db, paths.subscribers, now=now, confirmed=True):
            if isinstance(outcome, DigestError):
                raise outcome
            report.subscribers.append(outcome)

        say("building the due daily and weekly digests")
        report.digests = build_due(db, config, now=now)

        with MaildirSmtpServer(paths.maildir) as server:
            report.smtp_address = (server.host, server.port)
            say(f"sending over SMTP to the demo's server on {server.host}:{server.port}")
            report.send = send_pending(
                db,
                config,
                secret=secret,
                clock=lambda: now,
                transport=transport_from_config(config, smtp_url=server.url),
            )
        report.maildir_messages = sum(1 for p in (paths.maildir / "new").iterdir() if p.is_file())

        say("writing a preview to open in a browser")
        _write_preview(db, config, report, now=now, secret=secret)
    finally:
        db.close()
    return report


def _write_preview(
    db: Database, config: Config, report: DemoReport, *, now: datetime, secret: bytes
) -> None:
    """Write the all-tags variant of the first digest that has one with articles."""
    for built in report.digests:
        result = preview_digest(
            db,
            config,
            built.mailing_list,
            built.frequency,
            built.period.issue_date,
            now=now,
            secret=secret,
        )
        if result.message is None:
            continue
        folder = report.paths.preview
        folder.mkdir(exist_ok=True)
        (folder / "message.eml").write_bytes(result.message)
        (folder / "message.txt").write_text(result.text or "", encoding="utf-8")
        html = folder / "message.html"
        html.write_text(result.html or "", encoding="utf-8")
        report.preview_html = html
        report.preview_of = f"{built.mailing_list.slug} {built.frequency} {built.period.label}"
        return
