"""The scheduler's tick on a simulated clock: real SQLite files, a real aiosmtpd server on
127.0.0.1 for sending and a real HTTP server for feeds. Day and week boundaries in
Africa/Nairobi and America/New_York across the March DST change, a send time reached while a
tick runs, downtime, overlapping ticks, `digest status` and `digest run --once`."""

from __future__ import annotations

import email
import email.policy
import json
import logging
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import SmtpHandler

from digest.config import load_config
from digest.ingest.feeds import add_feed
from digest.issues.store import digest_article_ids
from digest.scheduler.plan import last_tick_at
from digest.scheduler.status import scheduler_status
from digest.scheduler.tick import tick
from digest.store import open_db
from digest.timeutil import to_iso

SECRET = b"test-secret"


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


class Desk:
    """A newsroom with a scheduler: ``desk.tick(now)`` runs one tick against the real SMTP
    server; log records are kept in ``desk.logs``."""

    def __init__(self, db, db_path, newsroom, server, tmp_path, toml: str = ""):
        self.db, self.db_path, self.newsroom, self.server = db, db_path, newsroom, server
        path = tmp_path / "digest.toml"
        # The feeds these tests fetch are on 127.0.0.1, a private address.
        toml += "\n[ingest]\nallow_private_addresses = true\n"
        path.write_text(toml + "\n[send]\nconcurrency = 2\n", encoding="utf-8")
        self.config = load_config(path, env={"DIGEST_SMTP_URL": server.url()})
        self.logs: list[logging.LogRecord] = []
        self.log = logging.getLogger(f"test.scheduler.{id(self)}")
        self.log.setLevel(logging.DEBUG)
        self.log.propagate = False
        desk = self

        class Keep(logging.Handler):
            def emit(self, record):
                desk.logs.append(record)

        self.log.addHandler(Keep())

    def tick(self, now: datetime, db=None, **kwargs):
        return tick(db or self.db, self.config, now=now, secret=SECRET, log=self.log, **kwargs)

    def messages(self, level=logging.DEBUG) -> list[str]:
        return [r.getMessage() for r in self.logs if r.levelno >= level]

    def digests(self) -> dict[str, dict]:
        return {
            f"{r['slug']}/{r['frequency']}/{r['period_label']}": r
            for r in self.db.query(
                "SELECT d.*, l.slug FROM digests d JOIN lists l ON l.id = d.list_id ORDER BY d.id"
            )
        }

    def received(self) -> Counter:
        return Counter(self.server.handler.recipients())


@pytest.fixture
def desk(db, db_path, newsroom, smtp_server, tmp_path):
    def _make(toml: str = "", handler: SmtpHandler | None = None) -> Desk:
        return Desk(db, db_path, newsroom, smtp_server(handler), tmp_path, toml)

    return _make


# ------------------------------------------------------------------- day and week boundaries


def test_day_and_week_boundaries_in_two_timezones_across_dst(desk, newsroom):
    d = desk()
    ny = newsroom.add_list("ny", tags=("Haiti",), timezone="America/New_York")
    nbo = newsroom.add_list("nbo", tags=("Kenya",), timezone="Africa/Nairobi")
    for mlist in (ny, nbo):
        newsroom.subscribe(mlist, f"daily@{mlist.slug}.example", frequency="daily")
        newsroom.subscribe(mlist, f"weekly@{mlist.slug}.example", frequency="weekly")
    # One article per local day at local noon (every daily issue has something), plus
    # articles on either side of a local midnight.
    for day in range(4, 12):
        newsroom.add_article(f"NY {day}", utc(2025, 3, day, 17), tags=["Haiti"])
        newsroom.add_article(f"NBO {day}", utc(2025, 3, day, 9), tags=["Kenya"])
    # New York, Sunday 9 March is a 23-hour day: 05:00Z (EST midnight) to 04:00Z (EDT).
    ny_late_sunday = newsroom.add_article(
        "NY 23:30 EDT Sun", utc(2025, 3, 10, 3, 30), tags=["Haiti"]
    )
    ny_early_monday = newsroom.add_article(
        "NY 00:30 EDT Mon", utc(2025, 3, 10, 4, 30), tags=["Haiti"]
    )
    ny_late_saturday = newsroom.add_article(
        "NY 23:30 EST Sat", utc(2025, 3, 9, 4, 30), tags=["Haiti"]
    )
    # Nairobi (UTC+3 all year): local midnight is 21:00Z.
    nbo_late_sunday = newsroom.add_article("NBO 23:59 Sun", utc(2025, 3, 9, 20, 59), tags=["Kenya"])
    nbo_early_monday = newsroom.add_article("NBO 00:01 Mon", utc(2025, 3, 9, 21, 1), tags=["Kenya"])

    # A tick every 15 minutes from Friday 7 March to Tuesday 11 March, plus one a second
    # before each send time: record which tick built what.
    ticks = [utc(2025, 3, 7) + timedelta(minutes=15 * i) for i in range(5 * 96)]
    send_times = [utc(2025, 3, day, 12) for day in (7, 8)] + [
        utc(2025, 3, day, 11) for day in (9, 10, 11)
    ]
    send_times += [utc(2025, 3, day, 4) for day in range(7, 12)]
    ticks = sorted(set(ticks) | {t - timedelta(seconds=1) for t in send_times})
    built_at: dict[str, datetime] = {}
    for now in ticks:
        for result in d.tick(now).built:
            name = f"{result.mailing_list.slug}/{result.frequency}/{result.period.label}"
            assert result.new and name not in built_at
            built_at[name] = now

    assert built_at == {
        # The first tick catches up on the day's latest issue (less than 24 h late).
        "nbo/daily/2025-03-06": utc(2025, 3, 7),
        "ny/daily/2025-03-06": utc(2025, 3, 7),
        "nbo/daily/2025-03-07": utc(2025, 3, 7, 4),
        "ny/daily/2025-03-07": utc(2025, 3, 7, 12),  # 07:00 EST
        "nbo/daily/2025-03-08": utc(2025, 3, 8, 4),
        "ny/daily/2025-03-08": utc(2025, 3, 8, 12),
        "nbo/daily/2025-03-09": utc(2025, 3, 9, 4),
        "ny/daily/2025-03-09": utc(2025, 3, 9, 11),  # 07:00 EDT: DST began at 02:00
        "nbo/daily/2025-03-10": utc(2025, 3, 10, 4),
        "nbo/weekly/2025-03-10": utc(2025, 3, 10, 4),
        "ny/daily/2025-03-10": utc(2025, 3, 10, 11),
        "ny/weekly/2025-03-10": utc(2025, 3, 10, 11),
        "nbo/daily/2025-03-11": utc(2025, 3, 11, 4),
        "ny/daily/2025-03-11": utc(2025, 3, 11, 11),
    }
    # The weekly issues of Monday 3 March were more than 72 h late at the first tick.
    skipped = [m for m in d.messages() if m.startswith("skipped stale period")]
    assert sorted(skipped) == [
        "skipped stale period nbo/weekly/2025-03-03: 92.0 h late, over"
        " max_lateness_weekly_hours (72.0 h)",
        "skipped stale period ny/weekly/2025-03-03: 84.0 h late, over"
        " max_lateness_weekly_hours (72.0 h)",
    ]

    digests = d.digests()
    sunday = digests["ny/daily/2025-03-10"]
    assert (sunday["period_start"], sunday["period_end"]) == (
        to_iso(utc(2025, 3, 9, 5)),
        to_iso(utc(2025, 3, 10, 4)),
    )
    week = digests["ny/weekly/2025-03-10"]
    assert (week["period_start"], week["period_end"]) == (
        to_iso(utc(2025, 3, 3, 5)),
        to_iso(utc(2025, 3, 10, 4)),
    )

    def articles(name):
        return set(digest_article_ids(d.db, digests[name]["id"]))

    assert ny_late_saturday in articles("ny/daily/2025-03-09")
    assert ny_late_sunday in articles("ny/daily/2025-03-10")
    assert ny_early_monday in articles("ny/daily/2025-03-11")
    assert {ny_late_saturday, ny_late_sunday} <= articles("ny/weekly/2025-03-10")
    assert ny_early_monday not in articles("ny/weekly/2025-03-10")
    assert nbo_late_sunday in articles("nbo/daily/2025-03-10")
    assert nbo_early_monday in articles("nbo/daily/2025-03-11")
    assert nbo_late_sunday in articles("nbo/weekly/2025-03-10")
    assert nbo_early_monday not in articles("nbo/weekly/2025-03-10")

    # Every issue reached its subscriber once, sent by the tick that built it.
    assert d.received() == {
        "daily@ny.example": 6,
        "daily@nbo.example": 6,
        "weekly@ny.example": 1,
        "weekly@nbo.example": 1,
    }
    assert set(r[0] for r in d.db.execute("SELECT status FROM deliveries")) == {"sent"}
    sent = {
        r["email"]: r["sent_at"]
        for r in d.db.query(
            "SELECT email, sent_at FROM deliveries WHERE digest_id = ?",
            [digests["ny/daily/2025-03-09"]["id"]],
        )
    }
    assert sent == {"daily@ny.example": to_iso(utc(2025, 3, 9, 11))}


# ------------------------------------------------------------------- during and after a tick


def test_send_time_reached_while_a_tick_runs(desk, newsroom):
    """A tick uses the ``now`` it started with: a send time that passes while it is sending
    belongs to the next tick, which builds that issue once; nothing is skipped."""

    class Clock:
        now = utc(2025, 1, 21, 3, 59, 30)  # 06:59:30 in Nairobi

        def __call__(self):
            return self.now

    clock = Clock()

    def slow_server(address):  # the SMTP conversation takes a minute of simulated time
        clock.now = utc(2025, 1, 21, 4, 0, 30)

    d = desk(handler=SmtpHandler(on_rcpt=slow_server))
    world = newsroom.add_list("world", tags=("Kenya",), timezone="Africa/Nairobi")
    newsroom.subscribe(world, "ann@example.com")
    newsroom.add_article("Sunday", utc(2025, 1, 19, 9), tags=["Kenya"])
    newsroom.add_article("Monday", utc(2025, 1, 20, 9), tags=["Kenya"])

    first = d.tick(clock(), clock=clock)
    assert [r.period.label for r in first.built] == ["2025-01-20"]  # yesterday's, caught up
    assert clock.now == utc(2025, 1, 21, 4, 0, 30) and first.sent.sent == 1
    assert "world/daily/2025-01-21" not in d.digests()

    second = d.tick(clock(), clock=clock)
    assert [(r.period.label, r.new) for r in second.built] == [("2025-01-21", True)]
    assert d.tick(clock() + timedelta(minutes=1)).built == []
    assert d.digests()["world/daily/2025-01-21"]["built_at"] == to_iso(utc(2025, 1, 21, 4, 0, 30))
    assert not [m for m in d.messages() if "skipped stale" in m]
    assert d.received() == {"ann@example.com": 2}
    assert last_tick_at(d.db) == utc(2025, 1, 21, 4, 1, 30)


def test_three_days_down_one_catch_up_and_the_rest_skipped(desk, newsroom):
    d = desk()
    world = newsroom.add_list("world", tags=("Kenya",), timezone="Africa/Nairobi")
    world_weekly = newsroom.add_list(
        "weekly", tags=("Kenya",), timezone="Africa/Nairobi", weekly_day="wednesday"
    )
    newsroom.subscribe(world, "ann@example.com")
    newsroom.subscribe(world_weekly, "bob@example.com", frequency="weekly")
    for day in range(14, 24):
        newsroom.add_article(f"Story {day}", utc(2025, 1, day, 9), tags=["Kenya"])

    # Running on Monday 20 January at 07:00 EAT, then down until Thursday 23 at 09:00.
    d.tick(utc(2025, 1, 20, 4))
    assert set(d.digests()) == {"world/daily/2025-01-20"}
    d.logs.clear()
    report = d.tick(utc(2025, 1, 23, 6))

    assert sorted(
        f"{r.mailing_list.slug}/{r.frequency}/{r.period.label}" for r in report.built
    ) == [
        "weekly/weekly/2025-01-22",  # Wednesday's weekly issue, 26 h late: caught up
        "world/daily/2025-01-23",  # today's, 2 h late
    ]
    warnings = d.messages(logging.WARNING)
    assert sorted(warnings) == [
        "skipped stale period world/daily/2025-01-21: missed while no scheduler ran (due"
        " 2025-01-21 07:00 Africa/Nairobi); only the latest issue, 2025-01-23, is sent",
        "skipped stale period world/daily/2025-01-22: missed while no scheduler ran (due"
        " 2025-01-22 07:00 Africa/Nairobi); only the latest issue, 2025-01-23, is sent",
    ]
    info = d.messages(logging.INFO)
    # The catch-up issue covers Wednesday, plus the skipped days' articles (ingested after the
    # last digest was built: the builder's late-arrival rule), so nothing is lost.
    assert "built world/daily/2025-01-23: 3 articles, 1 variants, 1 recipients" in info
    assert any(m.startswith("sent 2 in ") for m in info)
    assert d.received() == {"ann@example.com": 2, "bob@example.com": 1}
    rows = d.db.execute(
        "SELECT frequency, period_label FROM schedule_events ORDER BY period_label"
    ).fetchall()
    # (The weekly list's issue of 15 January was already too late at the first tick.)
    assert rows == [("weekly", "2025-01-15"), ("daily", "2025-01-21"), ("daily", "2025-01-22")]

    # The next ticks change nothing and log no skip again.
    d.logs.clear()
    for minutes in (1, 2, 60):
        assert d.tick(utc(2025, 1, 23, 6) + timedelta(minutes=minutes)).built == []
    assert d.messages(logging.INFO) == []
    assert len(d.digests()) == 3


class FeedSite:
    """A real HTTP server for one feed; ``gate`` (optional) is waited on before answering."""

    def __init__(self):
        self.body = b""
        self.requests = 0
        self.gate: threading.Barrier | None = None
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                site.requests += 1
                if site.gate is not None:
                    site.gate.wait()
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml")
                self.send_header("Content-Length", str(len(site.body)))
                self.end_headers()
                self.wfile.write(site.body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/feed.xml"

    def publish(self, *items: tuple[str, str]) -> None:
        entries = "".join(
            f"<item><title>{title}</title><link>https://example.org/{i}</link>"
            f"<guid>https://example.org/{i}</guid><pubDate>{date}</pubDate></item>"
            for i, (title, date) in enumerate(items)
        )
        self.body = (
            '<?xml version="1.0"?><rss version="2.0"><channel><title>Desk</title>'
            f"{entries}</channel></rss>"
        ).encode()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def feed_site():
    site = FeedSite()
    yield site
    site.close()


def test_stale_latest_issue_skipped_and_feeds_fetched_only_before_a_build(
    desk, newsroom, feed_site
):
    d = desk("[schedule]\nmax_lateness_daily_hours = 12\n")
    world = newsroom.add_list("world", tags=("Kenya",), timezone="Africa/Nairobi")
    newsroom.subscribe(world, "ann@example.com")
    add_feed(d.db, feed_site.url, tags=["Kenya"], now=utc(2025, 1, 1))
    feed_site.publish(("Old news", "Sun, 19 Jan 2025 09:00:00 +0000"))

    d.tick(utc(2025, 1, 20, 4))  # builds Monday's issue: one fetch first
    assert feed_site.requests == 1 and set(d.digests()) == {"world/daily/2025-01-20"}

    # Back on Wednesday at 23:00 EAT: Wednesday's issue is 16 h late (over 12 h).
    d.logs.clear()
    report = d.tick(utc(2025, 1, 22, 20))
    assert report.built == [] and report.fetched is None and feed_site.requests == 1
    assert [s.period.label for s in report.skipped] == ["2025-01-21", "2025-01-22"]
    assert d.messages(logging.WARNING)[1] == (
        "skipped stale period world/daily/2025-01-22: 16.0 h late, over"
        " max_lateness_daily_hours (12.0 h)"
    )
    assert d.tick(utc(2025, 1, 22, 20, 1)).skipped == []  # recorded once, logged once

    # An article published at 06:55 EAT, just before Thursday's send time, is fetched by the
    # tick that builds Thursday's issue and is in it.
    feed_site.publish(
        ("Old news", "Sun, 19 Jan 2025 09:00:00 +0000"),
        ("Just in", "Thu, 23 Jan 2025 03:55:00 +0000"),
        ("Wednesday", "Wed, 22 Jan 2025 10:00:00 +0000"),
    )
    report = d.tick(utc(2025, 1, 23, 4))
    assert feed_site.requests == 2
    assert [f.report.new for f in report.fetched] == [2]
    assert [("fetched feed " + feed_site.url + ": 2 new, 0 updated, 0 rejected")] == [
        m for m in d.messages(logging.INFO) if m.startswith("fetched")
    ]
    [built] = report.built
    titles = [
        r[0]
        for r in d.db.execute(
            "SELECT a.title FROM digest_articles x JOIN articles a ON a.id = x.article_id"
            " WHERE x.digest_id = ? ORDER BY x.position",
            [built.id],
        )
    ]
    assert built.period.label == "2025-01-23" and titles == ["Wednesday"]
    # "Just in" was published on Thursday (local): it waits for Friday's issue.
    friday = d.tick(utc(2025, 1, 24, 4)).built[0]
    assert friday.article_count == 1


def test_two_overlapping_ticks_build_and_send_once(desk, newsroom, feed_site, db_path):
    """Two ticks at once on two connections (as two processes would be): both find the same
    issue due and fetch the feed (the feed server holds both requests until both have
    arrived), both try to build it, and both send."""
    d = desk()
    world = newsroom.add_list("world", tags=("Kenya",), timezone="Africa/Nairobi")
    for i in range(30):
        newsroom.subscribe(world, f"p{i}@example.com", tags=["Kenya"] if i % 2 else [])
    newsroom.add_article("Monday", utc(2025, 1, 20, 9), tags=["Kenya"])
    add_feed(d.db, feed_site.url, tags=["Kenya"], now=utc(2025, 1, 1))
    feed_site.publish(("From the feed", "Mon, 20 Jan 2025 12:00:00 +0000"))
    feed_site.gate = threading.Barrier(2, timeout=30)

    now = utc(2025, 1, 21, 4)
    reports, errors = [], []

    def one_tick():
        db = open_db(db_path, create=True)
        try:
            reports.append(d.tick(now, db=db))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
        finally:
            db.close()

    threads = [threading.Thread(target=one_tick) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(reports) == 2
    assert feed_site.requests == 2  # both ticks really were building at the same time
    built = [r.built[0] for r in reports]
    assert sorted(b.new for b in built) == [False, True] and built[0].id == built[1].id
    assert "world/daily/2025-01-21 was already built by another process; 30 recipients queued" in (
        d.messages()
    )
    assert len(d.digests()) == 1
    assert sum(r.sent.sent for r in reports) == 30
    assert d.received() == {f"p{i}@example.com": 1 for i in range(30)}
    messages = [
        email.message_from_bytes(item.data, policy=email.policy.default)
        for item in d.server.handler.received
    ]
    assert {m["To"].addresses[0].addr_spec for m in messages} == set(d.received())


def test_deferred_deliveries_are_retried_when_their_backoff_expires(desk, newsroom):
    handler = SmtpHandler(faults={"ann@example.com": ["451 4.7.1 greylisted"]})
    d = desk(handler=handler)
    world = newsroom.add_list("world", tags=("Kenya",), timezone="Africa/Nairobi")
    newsroom.subscribe(world, "ann@example.com")
    newsroom.add_article("Monday", utc(2025, 1, 20, 9), tags=["Kenya"])
    first = d.tick(utc(2025, 1, 21, 4))
    assert first.sent.deferred == 1
    retry_at = d.db.execute("SELECT next_attempt_at FROM deliveries").fetchone()[0]
    assert to_iso(utc(2025, 1, 21, 4, 2, 30)) <= retry_at <= to_iso(utc(2025, 1, 21, 4, 5))
    assert d.tick(utc(2025, 1, 21, 4, 1)).sent.total == 0  # backoff not over
    assert d.tick(utc(2025, 1, 21, 4, 5)).sent.sent == 1
    assert d.received() == {"ann@example.com": 1}


def test_a_failing_build_is_reported_and_the_rest_goes_on(desk, newsroom, tmp_path):
    (tmp_path / "t" / "email").mkdir(parents=True)
    (tmp_path / "t" / "email" / "digest.txt").write_text("{{ sections.nope.x }}\n", "utf-8")
    d = desk(f'templates_dir = "{tmp_path / "t"}"\n')
    broken = newsroom.add_list("broken", tags=("Kenya",), timezone="Africa/Nairobi")
    newsroom.subscribe(broken, "ann@example.com")
    newsroom.add_article("Monday", utc(2025, 1, 20, 9), tags=["Kenya"])
    report = d.tick(utc(2025, 1, 21, 4))
    assert not report.ok and report.built == []
    assert report.errors[0].startswith(
        "building broken/daily/2025-01-21 failed: template email/digest.txt"
    )
    assert report.sent is not None  # sending still ran
    assert d.digests() == {}  # nothing half-stored; the next tick tries again
    assert d.tick(utc(2025, 1, 21, 4, 1)).errors == report.errors


# ------------------------------------------------------------------- digest status, digest run


def test_status_shows_last_and_next_issues_owed_deliveries_and_feed_errors(
    desk, newsroom, run, closed_port_url
):
    handler = SmtpHandler(faults={"bob@example.com": ["451 4.7.1 try later"] * 3})
    d = desk(handler=handler)
    world = newsroom.add_list("world", tags=("Kenya",), timezone="America/New_York")
    newsroom.subscribe(world, "ann@example.com")
    newsroom.subscribe(world, "bob@example.com")
    newsroom.add_article("Saturday", utc(2025, 3, 8, 17), tags=["Kenya"])
    newsroom.add_article("Monday", utc(2025, 3, 10, 17), tags=["Kenya"])
    add_feed(d.db, closed_port_url, now=utc(2025, 1, 1))
    d.tick(utc(2025, 3, 9, 11))  # Sunday 07:00 EDT
    d.tick(utc(2025, 3, 11, 11, 30))  # Monday's issue missed, Tuesday's sent late

    result = run("status", "--now", "2025-03-11T12:00:00Z")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "digest run: not running; last tick 2025-03-11 11:30 UTC"
    assert lines[1] == "world (America/New_York, sent 07:00; weekly on mondays)"
    assert lines[2] == "  daily   2 active subscribers"
    assert lines[3].startswith("    last  2025-03-11 (digest 2, built 2025-03-11 11:30 UTC;")
    assert lines[4] == ("    next  2025-03-12 at Wed 2025-03-12 07:00 EDT = 2025-03-12 11:00 UTC")
    assert lines[5] == "  weekly  0 active subscribers"
    assert lines[6] == "    last  none built yet"
    assert lines[7] == (
        "    next  2025-03-17 at Mon 2025-03-17 07:00 EDT = 2025-03-17 11:00 UTC"
        " (not built without active subscribers)"
    )
    assert lines[8].startswith("deliveries owed: 0 queued, 2 deferred (next retry 2025-03-11 11:3")
    assert lines[9] == "recently skipped:"
    assert lines[10].startswith("  world/daily/2025-03-10: missed while no scheduler ran")
    assert lines[11] == "feed errors:"
    assert lines[12] == (
        f"  {closed_port_url}: unreachable (connection refused) (2025-03-11 11:30 UTC)"
    )

    data = json.loads(run("status", "--json", "--now", "2025-03-11T12:00:00Z").output)
    daily = data["lists"][0]["issues"][0]
    assert daily["next"]["send_at"] == "2025-03-11T11:00:00+00:00".replace("11T", "12T")
    assert daily["next"]["send_at_local"] == "2025-03-12T07:00:00-04:00"
    assert daily["last"]["period"] == "2025-03-11"
    assert data["deliveries"]["deferred"] == 2 and data["running_pid"] is None
    assert data["feed_errors"][0]["error"] == "unreachable (connection refused)"

    status = scheduler_status(d.db, d.db_path, now=utc(2025, 3, 11, 12))
    assert status.lists[0].issues[0].last["deliveries"] == {"deferred": 1, "sent": 1}


def test_digest_run_once_builds_and_sends_and_logs(run, newsroom, smtp_server, monkeypatch, db):
    server = smtp_server()
    monkeypatch.setenv("DIGEST_SMTP_URL", server.url())
    world = newsroom.add_list("world", tags=("Kenya",), timezone="Africa/Nairobi")
    newsroom.subscribe(world, "ann@example.com")
    newsroom.subscribe(world, "bob@example.com", tags=["Kenya"])
    newsroom.add_article("Monday", utc(2025, 1, 20, 9), tags=["Kenya"])
    newsroom.add_article("Monday 2", utc(2025, 1, 20, 10), tags=["Kenya"])

    result = run("run", "--once", "--now", "2025-01-21T07:00:00+03:00")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0].endswith(
        "INFO    built world/daily/2025-01-21: 2 articles, 1 variants, 2 recipients"
    )
    assert "INFO    sending 2 deliveries" in lines[1]
    assert "INFO    sent 2 in " in lines[2]
    assert len(lines) == 3
    assert sorted(server.handler.recipients()) == ["ann@example.com", "bob@example.com"]

    # Nothing more to do a minute later: no output at the default level (cron sends no mail).
    quiet = run("run", "--once", "--now", "2025-01-21T04:01:00Z")
    assert quiet.exit_code == 0 and quiet.output == ""

    logged = run("run", "--once", "--now", "2025-01-22T04:00:00Z", "--log-json")
    records = [json.loads(line) for line in logged.stderr.splitlines()]
    assert records[0]["event"] == "built" and records[0]["level"] == "info"
    assert records[0]["list"] == "world" and records[0]["period"] == "2025-01-22"
    assert records[0]["articles"] == 0 and records[0]["recipients"] == 0
    assert db.execute("SELECT count(*) FROM digests").fetchone()[0] == 2

    debug = run("run", "--once", "--now", "2025-01-22T04:01:00Z", "--log-level", "debug")
    assert "DEBUG   tick at 2025-01-22T04:01:00" in debug.stderr


def test_digest_run_bad_input_and_transport_errors(run, newsroom, smtp_server, monkeypatch):
    r = run("run", "--now", "2025-01-21T07:00:00Z")
    assert r.exit_code == 2 and "--now only works with --once" in r.output
    r = run("run", "--once", "--now", "tuesday")
    assert r.exit_code == 1
    assert r.output == (
        "Error: --now 'tuesday': expected an ISO 8601 time such as 2025-01-21T07:00:00Z\n"
    )

    server = smtp_server(password="right")
    monkeypatch.setenv("DIGEST_SMTP_URL", server.url(user="news"))
    monkeypatch.setenv("DIGEST_SMTP_PASSWORD", "wrong")
    world = newsroom.add_list("world", tags=("Kenya",), timezone="UTC")
    newsroom.subscribe(world, "ann@example.com")
    newsroom.add_article("Monday", utc(2025, 1, 20, 9), tags=["Kenya"])
    r = run("run", "--once", "--now", "2025-01-21T07:00:00Z")
    assert r.exit_code == 1
    assert "ERROR   sending failed: " in r.stderr and "Traceback" not in r.output
    # The digest is built and its delivery still owed, for the next tick.
    status = run("status", "--now", "2025-01-21T07:01:00Z").output
    assert "deliveries owed: 1 queued, 0 deferred" in status


def test_every_command_has_help_with_an_example(run):
    for args in (["run", "--help"], ["status", "--help"]):
        result = run(*args)
        assert result.exit_code == 0 and "Example:" in result.output, args


def test_m006_migration_from_the_previous_version(tmp_path):
    from digest.store import migrations, schema_version

    old = open_db(tmp_path / "old.db", migrate=False, create=True)
    migrations.apply(old, stop_before="m006_scheduler")
    assert "schedule_events" not in old.table_names()
    old["lists"].insert(
        {
            "slug": "world",
            "title": "World",
            "from_addr": "a@b.c",
            "created_at": "x",
            "updated_at": "x",
        }
    )
    old.close()
    db = open_db(tmp_path / "old.db", create=True)
    assert "m006_scheduler" in schema_version(db)
    assert {"schedule_events", "schedule_state"} <= set(db.table_names())
    assert [r["slug"] for r in db["lists"].rows] == ["world"]


def test_an_issue_due_before_the_list_existed_is_not_sent(desk, newsroom):
    d = desk()
    world = newsroom.add_list("world", tags=("Kenya",), timezone="Africa/Nairobi")
    d.db.execute("UPDATE lists SET created_at = ?", [to_iso(utc(2025, 1, 21, 5))])
    newsroom.subscribe(world, "ann@example.com")
    newsroom.add_article("Monday", utc(2025, 1, 20, 9), tags=["Kenya"])
    newsroom.add_article("Tuesday", utc(2025, 1, 21, 9), tags=["Kenya"])
    # Created at 08:00 EAT, after that day's 07:00 send time: the first issue is the next day's.
    first = d.tick(utc(2025, 1, 21, 5, 1))
    assert first.built == [] and first.skipped == []
    assert [r.period.label for r in d.tick(utc(2025, 1, 22, 4)).built] == ["2025-01-22"]
    assert not [m for m in d.messages() if "skipped" in m and "stale" in m]
