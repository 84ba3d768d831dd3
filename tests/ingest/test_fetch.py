"""Feeds over HTTP against a real local server: registered feeds, conditional GET (304), a URL
that stalls, an unreachable URL, the size cap, and recording each feed's last success/error."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from digest.config import load_config
from digest.errors import SourceError
from digest.ingest.feeds import add_feed, list_feeds
from digest.ingest.http import http_get
from digest.ingest.pipeline import fetch_feeds
from digest.store import open_db

NOW = datetime(2025, 1, 24, 12, 0, tzinfo=UTC)


def feed_xml(*titles: str) -> bytes:
    items = "".join(
        f'<item><guid isPermaLink="false">{t}</guid><title>{t}</title>'
        f"<link>https://news.example.org/{t}</link><pubDate>Tue, 21 Jan 2025 07:00:00 GMT</pubDate>"
        f"<description>About {t}.</description><category>Kenya</category></item>"
        for t in titles
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
        f"<link>https://news.example.org/</link><description>d</description>{items}</channel></rss>"
    ).encode()


# The test servers listen on 127.0.0.1, which feeds may only reach with this setting.
PRIVATE_OK = "[ingest]\nallow_private_addresses = true\n"


@pytest.fixture
def private_ok(tmp_path):
    """``digest.toml`` (read by ``run``) allowing the local test servers."""
    (tmp_path / "digest.toml").write_text(PRIVATE_OK)
    return load_config(tmp_path / "digest.toml", env={})


@pytest.fixture
def short_timeouts(tmp_path):
    (tmp_path / "digest.toml").write_text(
        PRIVATE_OK + "fetch_timeout = 0.5\nmax_feed_bytes = 50000\n"
    )
    return load_config(tmp_path / "digest.toml", env={})


def test_feeds_add_list_remove(run, db_path):
    added = run("feeds", "add", "https://news.example.org/feed.xml", "--tag", "World")
    assert added.output == "added: https://news.example.org/feed.xml [World]\n"
    again = run(
        "feeds", "add", "https://news.example.org/feed.xml", "--tag", "world", "--tag", "Kenya"
    )
    assert again.output == "already registered: https://news.example.org/feed.xml [World, Kenya]\n"
    listed = run("feeds", "list")
    assert listed.output == "https://news.example.org/feed.xml [World, Kenya]  (never fetched)\n"
    as_json = json.loads(run("feeds", "list", "--json").output)
    assert as_json[0]["url"] == "https://news.example.org/feed.xml"
    assert as_json[0]["tags"] == ["World", "Kenya"]

    bad = run("feeds", "add", "ftp://example.org/feed")
    assert bad.exit_code == 1
    assert "Error: 'ftp://example.org/feed' is not an http(s) URL" in bad.output
    missing = run("feeds", "remove", "https://nope.example/")
    assert missing.exit_code == 1
    assert missing.output == (
        "Error: no registered feed https://nope.example/ (see `digest feeds list`)\n"
    )
    assert run("feeds", "remove", "https://news.example.org/feed.xml").exit_code == 0
    assert run("feeds", "list").output.startswith("no feeds registered")


def test_fetch_uses_conditional_get_and_records_success(run, db_path, feed_server, private_ok):
    feed_server.routes["/feed.xml"] = (
        feed_xml("a", "b"),
        {"Content-Type": "application/rss+xml", "ETag": '"v1"'},
    )
    url = feed_server.url("/feed.xml")
    assert run("feeds", "add", url, "--tag", "World").exit_code == 0
    first = run("fetch")
    assert first.exit_code == 0, first.output
    assert f"{url}: 2 new, 0 updated, 0 unchanged, 0 rejected" in first.output
    second = run("fetch")
    assert second.output == f"{url}: not modified\n"
    assert feed_server.requests[-1][1].get("If-None-Match") == '"v1"'

    # The feed changes: new ETag, one new entry.
    feed_server.routes["/feed.xml"] = (feed_xml("a", "b", "c"), {"ETag": '"v2"'})
    third = run("fetch")
    assert f"{url}: 1 new, 0 updated, 2 unchanged, 0 rejected" in third.output
    db = open_db(db_path, create=True)
    (feed,) = list_feeds(db)
    assert feed.etag == '"v2"' and feed.last_error is None and feed.last_success_at is not None
    tags = {r["name"] for r in db.query("SELECT name FROM tags")}
    assert tags == {"Kenya", "World"}
    assert "(ok " in run("feeds", "list").output


def test_last_modified_conditional_get(db, feed_server, short_timeouts):
    feed_server.routes["/lm.xml"] = (
        feed_xml("a"),
        {"Last-Modified": "Tue, 21 Jan 2025 07:00:00 GMT"},
    )
    add_feed(db, feed_server.url("/lm.xml"), now=NOW)
    (r1,) = fetch_feeds(db, short_timeouts, now=NOW)
    (r2,) = fetch_feeds(db, short_timeouts, now=NOW)
    assert (r1.status, r1.report.new, r2.status) == ("fetched", 1, "not modified")
    assert feed_server.requests[-1][1]["If-Modified-Since"] == "Tue, 21 Jan 2025 07:00:00 GMT"


def test_one_bad_feed_does_not_stop_the_others(
    run, db_path, feed_server, closed_port_url, short_timeouts
):
    feed_server.routes["/good.xml"] = (feed_xml("good"), {})
    feed_server.routes["/huge.xml"] = (feed_xml(*[f"x{n}" for n in range(1000)]), {})
    urls = {
        "stall": feed_server.url("/stall"),
        "down": closed_port_url,
        "missing": feed_server.url("/missing.xml"),
        "huge": feed_server.url("/huge.xml"),
        "good": feed_server.url("/good.xml"),
    }
    for u in urls.values():
        assert run("feeds", "add", u).exit_code == 0
    result = run("fetch")
    assert result.exit_code == 1
    out = result.output
    assert f"{urls['stall']}: failed: timed out after 0.5 s ([ingest] fetch_timeout)" in out
    assert f"{urls['down']}: failed: unreachable (connection refused)" in out
    assert f"{urls['missing']}: failed: HTTP 404 Not Found" in out
    assert f"{urls['huge']}: failed: response is " in out and "over the 50 KB limit" in out
    assert f"{urls['good']}: 1 new" in out
    assert "Traceback" not in out

    db = open_db(db_path, create=True)
    feeds = {f.url: f for f in list_feeds(db)}
    assert feeds[urls["good"]].last_error is None
    assert feeds[urls["down"]].last_error == "unreachable (connection refused)"
    assert feeds[urls["down"]].last_success_at is None
    assert [r["title"] for r in db.query("SELECT title FROM articles")] == ["good"]
    assert "error " in run("feeds", "list").output


def test_ingest_a_url_source_directly(run, feed_server, closed_port_url, private_ok):
    feed_server.routes["/feed.xml"] = (feed_xml("a"), {"Content-Type": "text/xml"})
    ok = run("ingest", feed_server.url("/feed.xml"))
    assert ok.exit_code == 0 and "1 new" in ok.output
    down = run("ingest", closed_port_url)
    assert down.exit_code == 1
    assert down.output == f"{closed_port_url}: failed: unreachable (connection refused)\n"


def test_http_get_timeout_and_errors(feed_server, closed_port_url):
    with pytest.raises(SourceError, match=r"timed out after 0.3 s"):
        http_get(feed_server.url("/stall"), timeout=0.3, allow_private=True)
    with pytest.raises(SourceError, match=r"unreachable \(connection refused\)"):
        http_get(closed_port_url, timeout=2, allow_private=True)
    feed_server.routes["/x"] = (b"x" * 5000, {})
    with pytest.raises(SourceError, match=r"over the 1 KB limit"):
        http_get(feed_server.url("/x"), max_bytes=1000, allow_private=True)
    response = http_get(feed_server.url("/x"), allow_private=True)
    assert response.status == 200 and response.body == b"x" * 5000
