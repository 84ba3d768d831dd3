"""`digest fetch` through a real local HTTP server: it says how many new articles have no tag,
and a feed's --tag tags every article of the feed (origin 'feed')."""

from __future__ import annotations

from pathlib import Path

import pytest

from digest.articles.reads import list_articles

FEEDS = Path(__file__).parents[1] / "data" / "feeds"


@pytest.fixture(autouse=True)
def private_ok(tmp_path: Path) -> None:
    """``digest.toml`` (read by ``run``) allowing the local test server."""
    (tmp_path / "digest.toml").write_text("[ingest]\nallow_private_addresses = true\n")


def serve(feed_server, name: str) -> str:
    feed_server.routes[f"/{name}"] = ((FEEDS / name).read_bytes(), {"ETag": f'"{name}"'})
    return feed_server.url(f"/{name}")


def test_fetch_says_how_many_new_articles_have_no_tag(run, db, feed_server):
    run("feeds", "add", serve(feed_server, "plain.rss"))
    run("feeds", "add", serve(feed_server, "wordpress.rss"))
    first = run("fetch")
    assert first.exit_code == 0, first.output
    assert first.output.splitlines()[-1] == (
        "3 of 5 new articles have no tag: they only reach lists that cover every tag;"
        " see `digest tags rule --help`"
    )
    again = run("fetch")  # 304 Not Modified: nothing new, nothing said
    assert "no tag" not in again.output


def test_a_feeds_tag_tags_every_article(run, db, feed_server):
    run("feeds", "add", serve(feed_server, "plain.rss"), "--tag", "Schools")
    result = run("fetch")
    assert "no tag" not in result.output
    assert [a.tag_names for a in list_articles(db)] == [["Schools"], ["Schools"]]
    origins = {r[0] for r in db.execute("SELECT origin FROM article_tags")}
    assert origins == {"feed"}
