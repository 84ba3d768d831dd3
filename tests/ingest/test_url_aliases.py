"""One story, one article, whichever way it arrives first: a page ingested by URL and the same
story in a feed (its link the page's canonical URL, the URL it was fetched from, or its
og:url), in both orders; a feed entry whose link redirects, fetched for its full text; and a
page that claims another site's URL, which must not take over that site's story."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from page_server import PageServer, Route, rss, rss_item, story_page
from sqlite_utils import Database

from digest.articles.reads import list_articles
from digest.config import Config, load_config
from digest.ingest.documents import ArticleOverrides
from digest.ingest.pipeline import ingest_sources

NOW = datetime(2025, 1, 24, 12, 0, tzinfo=UTC)


@pytest.fixture
def server() -> Iterator[PageServer]:
    s = PageServer()
    yield s
    s.close()


@pytest.fixture
def config(tmp_path: Path) -> Config:
    (tmp_path / "digest.toml").write_text("[ingest]\nallow_private_addresses = true\n")
    return load_config(tmp_path / "digest.toml", env={})


def ingest(db: Database, config: Config, source: str, **kw):  # type: ignore[no-untyped-def]
    (report,) = ingest_sources(db, [source], config=config, now=NOW, **kw)
    assert report.error is None, report.error
    return report


def feed_file(tmp_path: Path, link: str, *, guid: str = "wnd-4471", name: str = "feed.xml") -> str:
    path = tmp_path / name
    path.write_bytes(
        rss(
            rss_item(guid, "Kenya police and Haiti gangs", link, "One sentence.").replace(
                "<item>", "<item><category>World</category>"
            )
        )
    )
    return str(path)


@pytest.mark.parametrize("feed_links_to", ["fetched URL", "canonical URL", "og:url"])
def test_page_by_url_then_the_story_in_a_feed(
    server: PageServer, config: Config, db: Database, tmp_path: Path, feed_links_to: str
) -> None:
    server.routes["/world/kenya-police?ref=home"] = Route(
        story_page(canonical="/2025/01/21/kenya-police", og_url="/amp/kenya-police").encode()
    )
    page_url = server.url("/world/kenya-police?ref=home")
    first = ingest(db, config, page_url, tags=["Kenya"])
    assert first.new == 1
    link = {
        "fetched URL": page_url,
        "canonical URL": server.url("/2025/01/21/kenya-police?utm_source=rss"),
        "og:url": server.url("/amp/kenya-police"),
    }[feed_links_to]
    second = ingest(db, config, feed_file(tmp_path, link))
    assert (second.new, second.unchanged) == (0, 1)
    (article,) = list_articles(db)
    assert article.title == "Kenya Police Recount Their Battle Against Haiti Gangs"  # the page's
    assert set(article.tag_names) == {"Haiti", "Kenya", "World"}


@pytest.mark.parametrize("feed_links_to", ["/world/kenya-police?ref=home", "/amp/kenya-police"])
def test_the_story_in_a_feed_then_the_page_by_url(
    server: PageServer, config: Config, db: Database, tmp_path: Path, feed_links_to: str
) -> None:
    server.routes["/world/kenya-police?ref=home"] = Route(
        story_page(canonical="/2025/01/21/kenya-police", og_url="/amp/kenya-police").encode()
    )
    first = ingest(db, config, feed_file(tmp_path, server.url(feed_links_to)))
    assert first.new == 1
    page_url = server.url("/world/kenya-police?ref=home")
    second = ingest(db, config, page_url, tags=["Kenya"], overrides=ArticleOverrides(title="X"))
    assert (second.new, second.unchanged) == (0, 1)
    assert second.notes[1] == (
        f"same story as article 1, stored from {first.source}: its text is kept; tags and URLs"
        " added; --title not applied"
    )
    # The page's URLs are now the article's too: a second feed linking to the canonical URL
    # (with another guid) is the same story.
    third = ingest(
        db,
        config,
        feed_file(tmp_path, server.url("/2025/01/21/kenya-police"), guid="other-4", name="b.xml"),
    )
    assert (third.new, third.unchanged) == (0, 1)
    (article,) = list_articles(db)
    assert article.title == "Kenya police and Haiti gangs"  # the first source's
    assert set(article.tag_names) == {"Haiti", "Kenya", "World"}  # tags are unioned


def test_a_saved_page_and_the_feed_with_its_canonical_url(
    config: Config, db: Database, tmp_path: Path
) -> None:
    (tmp_path / "kenya.html").write_text(
        story_page(canonical="https://news.example.org/2025/01/21/kenya-police"), encoding="utf-8"
    )
    assert ingest(db, config, str(tmp_path / "kenya.html")).new == 1
    link = "HTTPS://News.Example.org:443/2025/01/21/kenya-police?fbclid=abc#comments"
    assert ingest(db, config, feed_file(tmp_path, link)).unchanged == 1
    assert len(list_articles(db)) == 1


def test_a_redirecting_link_fetched_for_full_text_remembers_where_it_led(
    server: PageServer, config: Config, db: Database, tmp_path: Path
) -> None:
    server.routes["/r/4471"] = Route(b"", status=302, headers={"Location": "/2025/kenya-police"})
    server.routes["/2025/kenya-police"] = Route(story_page(canonical="/2025/kenya-police").encode())
    feed = ingest(db, config, feed_file(tmp_path, server.url("/r/4471")), full_text=True)
    assert feed.notes == ["full text: 1 summary-only entry · 1 stored from the linked page"]
    page = ingest(db, config, server.url("/2025/kenya-police"))
    assert (page.new, page.unchanged) == (0, 1)
    (article,) = list_articles(db)
    assert article.url == server.url("/r/4471")  # the feed's own link is kept


def test_a_page_cannot_claim_another_sites_story(
    server: PageServer, config: Config, db: Database, tmp_path: Path
) -> None:
    """A linked page fetched for full text that names another site's URL as its canonical one
    does not make that URL its entry's: the real story, ingested later, is an article of its
    own."""
    victim = "https://news.example.org/2025/01/21/kenya-police"
    server.routes["/copy"] = Route(story_page("A copied story", canonical=victim).encode())
    ingest(db, config, feed_file(tmp_path, server.url("/copy")), full_text=True)
    (tmp_path / "real.html").write_text(story_page(canonical=victim), encoding="utf-8")
    real = ingest(db, config, str(tmp_path / "real.html"))
    assert real.new == 1
    assert len(list_articles(db)) == 2


def test_an_url_known_for_one_article_stays_with_it(
    config: Config, db: Database, tmp_path: Path
) -> None:
    (tmp_path / "a.html").write_text(
        story_page("Story A", canonical="https://e.org/a", og_url="https://e.org/shared"),
        encoding="utf-8",
    )
    (tmp_path / "b.html").write_text(
        story_page("Story B", canonical="https://e.org/b", og_url="https://e.org/shared"),
        encoding="utf-8",
    )
    ingest(db, config, str(tmp_path / "a.html"))
    # b's own canonical URL is new; its og:url is a's already, so b is the same story as a.
    b = ingest(db, config, str(tmp_path / "b.html"))
    assert (b.new, b.unchanged) == (0, 1)
    rows = db.execute("SELECT url, article_id FROM article_urls ORDER BY url").fetchall()
    assert rows == [("https://e.org/b", 1), ("https://e.org/shared", 1)]
