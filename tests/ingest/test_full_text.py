"""Full text for summary-only feeds, against a real HTTP server on 127.0.0.1: which entries are
"only a summary", the linked page's text stored in place of the summary, pages that time out,
are too large, are not HTML or have less text keeping the summary (reported, counted per feed),
the cache and its conditional GET, retries, at most two requests per host, the address policy,
the stop event and progress."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from page_server import PageServer, Route, rss, rss_item, story_page
from sqlite_utils import Database

from digest.articles.reads import EntryContent, list_articles, load_articles
from digest.config import Config, load_config
from digest.ingest.feeds import add_feed, get_feed
from digest.ingest.fulltext import MAX_ATTEMPTS, is_summary_only
from digest.ingest.pipeline import FeedStatus, fetch_feeds, ingest_sources
from digest.scheduler.tick import poll_feeds
from digest.store import open_db

NOW = datetime(2025, 1, 24, 12, 0, tzinfo=UTC)
CONFIG = "[ingest]\nallow_private_addresses = true\nfetch_timeout = 0.5\nmax_feed_bytes = 50000\n"
TEASER = "<p>Kenyan police officers found themselves in an intense battle… <a href='/x'>Read more</a></p>"


@pytest.fixture
def server() -> Iterator[PageServer]:
    s = PageServer()
    yield s
    s.close()


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """``digest.toml`` (also read by ``run``): the test server is on 127.0.0.1; short limits."""
    (tmp_path / "digest.toml").write_text(CONFIG)
    return load_config(tmp_path / "digest.toml", env={})


def by_title(db: Database) -> dict:
    found = load_articles(db, [a.id for a in list_articles(db)], content=True)
    return {a.title: a for a in found}


def newsroom(server: PageServer) -> str:
    """A summary-only feed whose entries link to: a good page (with an ETag), a page that
    stalls, one too large, a PDF, a page with less text than the summary; and one entry that
    carries its full content (its page must not be fetched)."""
    server.routes["/story/1"] = Route(story_page("Kenya story").encode(), etag='"v1"')
    server.routes["/story/slow"] = Route(story_page().encode(), delay=5)
    huge = story_page("Huge", paragraphs=("word " * 20_000,))
    server.routes["/story/huge"] = Route(huge.encode())
    server.routes["/story/pdf"] = Route(b"%PDF-1.4\n...", content_type="application/pdf")
    thin = story_page(
        "Thin", paragraphs=("Only a line of text on this page, shorter than its summary.",)
    )
    server.routes["/story/thin"] = Route(thin.encode())
    long_summary = (
        "This summary is longer than the page it links to: it goes on about the story, with "
        "more words in it than the page has in its whole article text."
    )
    items = [
        rss_item("g1", "One", server.url("/story/1"), TEASER),
        rss_item("g2", "Slow", server.url("/story/slow"), "Slow summary."),
        rss_item("g3", "Huge", server.url("/story/huge"), "Huge summary."),
        rss_item("g4", "Full", server.url("/story/full"), "Full.", content="<p>" + "w " * 300),
        rss_item("g5", "Pdf", server.url("/story/pdf"), "Pdf summary."),
        rss_item("g6", "Thin", server.url("/story/thin"), long_summary),
    ]
    server.routes["/feed.xml"] = Route(
        rss(*items), content_type="application/rss+xml", etag='"feed-v1"'
    )
    return server.url("/feed.xml")


# --------------------------------------------------------------------------- what is a summary


def entry(text: str, *, summary: bool = True, url: str | None = "https://e.org/a") -> EntryContent:
    return EntryContent(1, url, text, summary, "hash")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (entry("Police and gangs clashed on Tuesday."), True),  # no content beyond the summary
        (entry(""), True),  # a title and a link only
        (entry("word " * 199), True),
        (entry("word " * 200), False),  # long enough to be the article
        (entry("A full short post, all of it.", summary=False), False),
        (entry("The first lines of the story […]", summary=False), True),
        (entry("The first lines of the story...", summary=False), True),
        (entry("The first lines. Continue reading “Kenya police”", summary=False), True),
        (entry("The first lines. Read more »", summary=False), True),
        (entry("Gangs, police and more", summary=False), False),
        (entry("Short.", url=None), False),  # nothing to fetch
        (entry("Short.", url="ftp://e.org/a"), False),
    ],
)
def test_what_only_a_summary_means(content: EntryContent, expected: bool) -> None:
    assert is_summary_only(content) is expected


# --------------------------------------------------------------------------- ingest --full-text


def test_ingest_full_text_stores_the_page_and_keeps_summaries_that_fail(
    run, server: PageServer, config: Config, db_path: Path
) -> None:
    feed = newsroom(server)
    result = run("ingest", feed, "--full-text")
    assert result.exit_code == 0, result.output  # the entries are stored; pages only warn
    lines = result.output.splitlines()
    assert f"{feed}: 6 new, 0 updated, 0 unchanged, 0 rejected" in lines
    assert (
        "  full text: 5 summary-only entries · 1 stored from the linked page · 1 kept the summary"
        " (the page had no more text) · 3 failed (summary kept)"
    ) in lines
    base = server.base
    for line in (
        f"  warning: full text for {base}/story/huge: response is 101 KB, over the 50 KB limit"
        " ([ingest] max_feed_bytes); the summary is kept",
        f"  warning: full text for {base}/story/pdf: not an HTML page (application/pdf); the"
        " summary is kept",
        f"  warning: full text for {base}/story/slow: timed out after 0.5 s ([ingest]"
        " fetch_timeout); the summary is kept",
    ):
        assert line in lines
    assert "/story/full" not in server.paths()  # carries its content: never fetched

    db = open_db(db_path)
    stored = by_title(db)
    one = stored["One"]
    assert one.text.startswith("On New Year’s Day, Kenyan police officers")
    assert "Most read" not in one.text and "Read more" not in one.text
    # The feed's teaser stays the summary (its "Read more" link is boilerplate excerpts drop).
    assert (one.summary or "").startswith("<p>Kenyan police officers found themselves")
    assert one.author == "Amina Otieno"  # the feed had none
    assert stored["Slow"].text == "Slow summary."
    assert stored["Huge"].text == "Huge summary."
    assert stored["Pdf"].text == "Pdf summary."
    assert stored["Thin"].text.startswith("This summary is longer")

    # Again: the stored full text stays; only the failed pages are tried again, until they
    # have failed MAX_ATTEMPTS times.
    for _ in range(2, MAX_ATTEMPTS + 1):
        before = len(server.requests)
        again = ingest_sources(db, [feed], config=config, now=NOW, full_text=True)[0]
        fetched = set(server.paths()[before:])
        assert fetched == {"/feed.xml", "/story/slow", "/story/huge", "/story/pdf"}
        assert again.unchanged == 6
        assert again.notes == ["full text: 3 summary-only entries · 3 failed (summary kept)"]
    before = len(server.requests)
    settled = ingest_sources(db, [feed], config=config, now=NOW, full_text=True)[0]
    assert server.paths()[before:] == ["/feed.xml"]
    assert settled.notes == [
        "full text: 3 not tried again (the page failed 3 times; tried again when the entry changes)"
    ]
    assert settled.warnings == []
    assert by_title(db)["One"].text == one.text
    db.close()


def test_the_address_policy_holds_for_linked_pages(tmp_path: Path, server: PageServer, db) -> None:
    """A feed's links are the feed's say: without allow_private_addresses, a link to this
    machine (or the private network, or a metadata service) is not fetched."""
    server.routes["/story/1"] = Route(story_page().encode())
    (tmp_path / "feed.xml").write_bytes(
        rss(
            rss_item("g1", "Local", server.url("/story/1"), "Short."),
            rss_item("g2", "Metadata", "http://169.254.169.254/latest/meta-data/", "Short."),
        )
    )
    (report,) = ingest_sources(
        db, [str(tmp_path / "feed.xml")], config=Config(), now=NOW, full_text=True
    )
    assert report.warnings == [
        f"full text for {server.url('/story/1')}: refused: 127.0.0.1 is a loopback address; feeds"
        " may only point to public addresses ([ingest] allow_private_addresses); the summary is"
        " kept",
        "full text for http://169.254.169.254/latest/meta-data/: refused: 169.254.169.254 is a"
        " link-local address; feeds may only point to public addresses ([ingest]"
        " allow_private_addresses); the summary is kept",
    ]
    assert server.requests == []
    assert {a.text for a in by_title(db).values()} == {"Short."}


# --------------------------------------------------------------------------- registered feeds


def test_feeds_add_full_text_fetch_and_the_failure_count(
    run, server: PageServer, config: Config, db_path: Path
) -> None:
    feed = newsroom(server)
    assert run("feeds", "add", feed, "--tag", "World", "--full-text").output == (
        f"added: {feed} [World] full text\n"
    )
    first = run("fetch")
    assert first.exit_code == 0, first.output
    assert "3 failed (summary kept)" in first.output
    listed = run("feeds", "list").output
    assert listed.startswith(f"{feed} [World] full text  (ok ")
    assert listed.endswith("; full text failed for 3 entries)\n")

    # While pages are to be retried, the feed is downloaded again (its ETag is not sent, so no
    # 304), and they are.
    for _ in range(2, MAX_ATTEMPTS + 1):
        before = len(server.requests)
        run("fetch")
        assert "If-None-Match" not in server.requests[before][1]
        assert {"/story/slow", "/story/huge", "/story/pdf"} <= set(server.paths()[before:])
    # Given up: the feed's ETag is used again, nothing else is fetched, the count stays.
    before = len(server.requests)
    settled = run("fetch")
    assert settled.output == f"{feed}: not modified\n"
    assert server.requests[before][1].get("If-None-Match") == '"feed-v1"'
    assert server.paths()[before:] == ["/feed.xml"]
    assert run("feeds", "list").output.endswith("; full text failed for 3 entries)\n")

    off = run("feeds", "add", feed, "--no-full-text")
    assert off.output == f"already registered: {feed} [World]\n"
    assert "full text" not in run("feeds", "list").output


def test_a_changed_entry_gets_its_page_again_with_a_conditional_get(
    server: PageServer, config: Config, db: Database
) -> None:
    page = story_page("Kenya story").encode()
    server.routes["/story/1"] = Route(page, etag='"v1"')
    server.routes["/feed.xml"] = Route(rss(rss_item("g1", "One", server.url("/story/1"), TEASER)))
    add_feed(db, server.url("/feed.xml"), full_text=True, now=NOW)
    (first,) = fetch_feeds(db, config, now=NOW)
    assert first.report is not None
    assert first.report.notes == ["full text: 1 summary-only entry · 1 stored from the linked page"]
    full = by_title(db)["One"].text

    # The feed changes the entry's summary: the store puts the new summary in; the page is asked
    # for again with its ETag, answers 304, and the cached article goes back in.
    server.routes["/feed.xml"] = Route(
        rss(rss_item("g1", "One", server.url("/story/1"), TEASER.replace("intense", "fierce")))
    )
    before = len(server.requests)
    (second,) = fetch_feeds(db, config, now=NOW + timedelta(minutes=15))
    assert second.report is not None and second.report.updated == 1
    assert second.report.notes == [
        "full text: 1 summary-only entry · 1 stored from the linked page (1 unchanged since the"
        " last fetch)"
    ]
    page_request = [h for p, h in server.requests[before:] if p == "/story/1"]
    assert [h.get("If-None-Match") for h in page_request] == ['"v1"']
    stored = by_title(db)["One"]
    assert stored.text == full
    assert "fierce" in (stored.summary or "")

    # Nothing changed: neither the feed's entries nor the page are fetched again.
    before = len(server.requests)
    (third,) = fetch_feeds(db, config, now=NOW + timedelta(minutes=30))
    assert third.status == FeedStatus.FETCHED
    assert "/story/1" not in server.paths()[before:]


def test_at_most_two_requests_at_a_time_per_host(
    server: PageServer, config: Config, db: Database
) -> None:
    items = []
    for n in range(6):
        for host in ("127.0.0.1", "localhost"):
            path = f"/{host}/{n}"
            server.routes[path] = Route(story_page(f"Story {host} {n}").encode(), delay=0.15)
            url = server.url(path).replace("127.0.0.1", host)
            items.append(rss_item(f"{host}-{n}", f"Story {host} {n}", url, "Short."))
    server.routes["/feed.xml"] = Route(rss(*items))
    add_feed(db, server.url("/feed.xml"), full_text=True, now=NOW)
    (report,) = fetch_feeds(db, config, now=NOW)
    assert report.report is not None
    assert report.report.notes == [
        "full text: 12 summary-only entries · 12 stored from the linked page"
    ]
    assert server.most_per_host["127.0.0.1"] == 2
    assert server.most_per_host["localhost"] == 2
    assert server.most_at_once <= 4


def test_stop_ends_full_text_at_once_and_the_next_poll_goes_on(
    server: PageServer, config: Config, db: Database, tmp_path: Path
) -> None:
    (tmp_path / "slow.toml").write_text(CONFIG.replace("0.5", "30"))
    slow_config = load_config(tmp_path / "slow.toml", env={})
    items = []
    for n in range(4):
        server.routes[f"/s/{n}"] = Route(story_page(f"Story {n}").encode(), delay=20)
        items.append(rss_item(f"g{n}", f"Story {n}", server.url(f"/s/{n}"), "Short."))
    server.routes["/feed.xml"] = Route(rss(*items), etag='"feed-v1"')
    add_feed(db, server.url("/feed.xml"), full_text=True, now=NOW)
    stop = threading.Event()
    calls: list[tuple[str, int, int]] = []
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    (report,) = fetch_feeds(
        db, slow_config, now=NOW, stop=stop, progress=lambda *a: calls.append(a)
    )
    assert time.monotonic() - started < 3
    assert report.status == FeedStatus.FETCHED and report.report is not None
    assert report.report.new == 4  # the entries are stored
    assert report.report.notes == [
        "full text: 4 summary-only entries · 4 left for the next run · stopped (digest is"
        " shutting down)"
    ]
    assert report.report.warnings == []  # a stop is not a page's failure
    assert {a.text for a in by_title(db).values()} == {"Short."}
    feed = get_feed(db, server.url("/feed.xml"))
    assert feed.etag is None  # so the next poll downloads the feed and gets to the pages
    label = f"full text {server.url('/feed.xml')}"
    assert calls == [(label, 1, 4), (label, 2, 4), ("feeds", 1, 1)]  # two at a time

    server.release.set()  # the pages answer at once from now on
    for n in range(4):
        server.routes[f"/s/{n}"].delay = 0
    (after,) = fetch_feeds(db, config, now=NOW + timedelta(minutes=15))
    assert after.report is not None
    assert after.report.notes == [
        "full text: 4 summary-only entries · 4 stored from the linked page"
    ]
    assert get_feed(db, server.url("/feed.xml")).etag == '"feed-v1"'


def test_pages_over_the_per_run_cap_wait_for_the_next_poll(
    server: PageServer, config: Config, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("digest.ingest.fulltext.MAX_PAGES", 2)
    items = []
    for n in range(3):
        server.routes[f"/s/{n}"] = Route(story_page(f"Story {n}").encode())
        items.append(rss_item(f"g{n}", f"Story {n}", server.url(f"/s/{n}"), "Short."))
    server.routes["/feed.xml"] = Route(rss(*items), etag='"feed-v1"')
    add_feed(db, server.url("/feed.xml"), full_text=True, now=NOW)
    (first,) = fetch_feeds(db, config, now=NOW)
    assert first.report is not None
    assert first.report.notes == [
        "full text: 3 summary-only entries · 2 stored from the linked page · 1 left for the next"
        " run"
    ]
    assert get_feed(db, server.url("/feed.xml")).etag is None
    (second,) = fetch_feeds(db, config, now=NOW + timedelta(minutes=15))
    assert second.report is not None
    assert second.report.notes == [
        "full text: 1 summary-only entry · 1 stored from the linked page"
    ]
    assert get_feed(db, server.url("/feed.xml")).etag == '"feed-v1"'
    assert sorted(server.paths()).count("/s/2") == 1
    assert {a.text[:2] for a in by_title(db).values()} == {"On"}  # every page's text


def test_the_scheduler_logs_what_full_text_did_and_each_page_that_failed(
    server: PageServer, config: Config, db, caplog: pytest.LogCaptureFixture
) -> None:
    # `digest run` has no terminal: what `digest fetch` prints under a feed goes to the log.
    feed = newsroom(server)
    add_feed(db, feed, full_text=True, now=NOW)
    with caplog.at_level("INFO", logger="digest"):
        poll_feeds(db, config, now=NOW)
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert (
        "INFO",
        f"feed {feed}: full text: 5 summary-only entries · 1 stored from the linked page · 1 kept"
        " the summary (the page had no more text) · 3 failed (summary kept)",
    ) in lines
    failed = [m for level, m in lines if level == "WARNING" and "full text for" in m]
    assert len(failed) == 3
    assert f"feed {feed}: full text for {server.base}/story/pdf: not an HTML page" in "\n".join(
        failed
    )
