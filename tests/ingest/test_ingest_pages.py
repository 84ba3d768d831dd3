"""`digest ingest` of article pages (files and URLs) and plain-text scrapes, end to end through
the CLI and a real store: what is printed for the editor, what is stored, the --title/--date/
--author overrides, directories of them, and hostile pages failing alone in one line."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from page_server import PageServer, Route, rss, rss_item, story_page

from digest.articles.reads import list_articles, load_articles
from digest.store import open_db

EXAMPLE = Path(__file__).resolve().parents[2] / ".." / "shared" / "examples" / "scraped-post.txt"
PRIVATE_OK = "[ingest]\nallow_private_addresses = true\n"
BOILERPLATE = ("Post a Comment", "0Comments", "Tags:", "By -", "Tuesday, January 21, 2025")
KENYA_LINE = (
    '  extracted: title "Kenya Police Recount Their Battle Against Haiti Gangs" · date '
    "2025-01-21 05:30 UTC · author Amina Otieno · 103 words"
)


@pytest.fixture
def pages() -> Iterator[PageServer]:
    server = PageServer()
    yield server
    server.close()


@pytest.fixture
def private_ok(tmp_path: Path) -> None:
    """``digest.toml`` (read by ``run``) letting URLs reach the test server on 127.0.0.1."""
    (tmp_path / "digest.toml").write_text(PRIVATE_OK)


# What ingest adds when a stored article has no tag (the tags issue).
UNTAGGED = (
    "1 of 1 new article has no tag: they only reach lists that cover every tag; see"
    " `digest tags rule --help`"
)


def stored(db_path: Path) -> list:
    db = open_db(db_path)
    try:
        return load_articles(db, [a.id for a in list_articles(db)], content=True)
    finally:
        db.close()


# --------------------------------------------------------------------------- text scrapes


@pytest.mark.skipif(not EXAMPLE.is_file(), reason="../shared/examples is absent")
def test_the_scraped_post_through_the_cli(run, db_path: Path) -> None:
    result = run("ingest", str(EXAMPLE))
    assert result.exit_code == 0, result.output
    assert result.output == (
        f"{EXAMPLE}: 1 new, 0 updated, 0 unchanged, 0 rejected\n"
        '  extracted: title "Kenya Police Recount Their Battle Against Haiti Gangs on New Year’s'
        ' Day" · date 2025-01-21 · author unknown · 389 words · 19 paragraphs · metadata at the'
        " end\n"
        f"{UNTAGGED}\n"
    )
    (article,) = stored(db_path)
    assert (
        article.title == "Kenya Police Recount Their Battle Against Haiti Gangs on New Year’s Day"
    )
    assert article.published_at == datetime(2025, 1, 21, tzinfo=UTC)
    assert article.author is None
    assert article.content_html.count("<p>") == 19
    for line in BOILERPLATE:
        assert line not in article.content_html
        assert line not in article.text
    assert article.text.startswith("On New Year’s Day, January 1, 2025, Kenyan police")
    # Again: the same article, unchanged.
    again = run("ingest", str(EXAMPLE))
    assert f"{EXAMPLE}: 0 new, 0 updated, 1 unchanged, 0 rejected" in again.output


def test_metadata_at_the_start_through_the_cli(run, tmp_path: Path, db_path: Path) -> None:
    (tmp_path / "council.txt").write_text(
        "City Council Approves New Bike Lanes\n"
        "By Maria Lopez\n"
        "Published: March 3, 2025 at 6:30 PM\n"
        "Tags: Transport, City Hall, Tags\n"
        "\n"
        "The council voted 7-2 on Monday night to approve\n"
        "twelve kilometres of protected bike lanes.\n"
        "\n"
        "By the end of the year, the first four kilometres\n"
        "should be open, the transport office said.\n"
        "\n"
        "Share this:\n"
        "12 Comments\n",
        encoding="utf-8",
    )
    result = run("ingest", "council.txt")
    assert result.exit_code == 0, result.output
    assert result.output == (
        "council.txt: 1 new, 0 updated, 0 unchanged, 0 rejected\n"
        '  extracted: title "City Council Approves New Bike Lanes" · date 2025-03-03 18:30 UTC ·'
        " author Maria Lopez · 33 words · 2 paragraphs · metadata at the start\n"
    )
    (article,) = stored(db_path)
    assert article.author == "Maria Lopez"
    assert article.tag_names == ["City Hall", "Transport"]
    assert article.content_html == (
        "<p>The council voted 7-2 on Monday night to approve twelve kilometres of protected bike"
        " lanes.</p><p>By the end of the year, the first four kilometres should be open, the"
        " transport office said.</p>"
    )


def test_no_metadata_uses_the_file_time_or_date_with_a_warning(
    run, tmp_path: Path, db_path: Path
) -> None:
    text = (
        "Notes from the harbour\n\nThe fishing boats came in late, riding low in the water.\n\n"
        "By noon the market had sold out.\n"
    )
    (tmp_path / "harbour.txt").write_text(text, encoding="utf-8")
    stamp = datetime(2025, 1, 20, 9, 30, tzinfo=UTC).timestamp()
    os.utime(tmp_path / "harbour.txt", (stamp, stamp))
    result = run("ingest", "harbour.txt")
    assert result.exit_code == 0  # warnings are not failures
    assert result.output == (
        "harbour.txt: 1 new, 0 updated, 0 unchanged, 0 rejected\n"
        '  extracted: title "Notes from the harbour" · date 2025-01-20 09:30 UTC · author unknown'
        " · 18 words · 2 paragraphs · no metadata\n"
        "  warning: harbour.txt: no byline or date lines found; the first line is the title\n"
        "  warning: harbour.txt: no date line found; the file time (2025-01-20 09:30 UTC) is"
        " used\n"
        f"{UNTAGGED}\n"
    )
    (tmp_path / "market.txt").write_text(text.replace("harbour", "market"), encoding="utf-8")
    dated = run("ingest", "market.txt", "--date", "2025-01-22", "--author", "Desk")
    assert "warning: market.txt: no date line found; --date (2025-01-22 00:00 UTC) is used" in (
        dated.output
    )
    assert "author Desk" in dated.output and "· --date, --author given" in dated.output
    by_title = {a.title: a for a in stored(db_path)}
    assert by_title["Notes from the harbour"].published_at == datetime(
        2025, 1, 20, 9, 30, tzinfo=UTC
    )
    market = by_title["Notes from the market"]
    assert market.published_at == datetime(2025, 1, 22, tzinfo=UTC)
    assert market.author == "Desk"
    assert market.content_html.count("<p>") == 2


# --------------------------------------------------------------------------- pages


def test_a_saved_page_through_the_cli(run, tmp_path: Path, db_path: Path) -> None:
    (tmp_path / "kenya.html").write_text(
        story_page(canonical="https://news.example.org/2025/01/21/kenya-police-haiti"),
        encoding="utf-8",
    )
    result = run("ingest", "kenya.html", "--tag", "World")
    assert result.exit_code == 0, result.output
    assert result.output == f"kenya.html: 1 new, 0 updated, 0 unchanged, 0 rejected\n{KENYA_LINE}\n"
    (article,) = stored(db_path)
    assert article.title == "Kenya Police Recount Their Battle Against Haiti Gangs"
    assert article.url == "https://news.example.org/2025/01/21/kenya-police-haiti"
    assert article.author == "Amina Otieno"
    assert article.published_at == datetime(2025, 1, 21, 5, 30, tzinfo=UTC)
    assert article.tag_names == ["Haiti", "Kenya", "World"]  # "Tags" is not a tag
    assert article.text.count("\n\n") == 3  # four paragraphs, and no site chrome
    for chrome in ("Most read", "Privacy", "Sport"):
        assert chrome not in article.text


def test_a_page_by_url_through_the_cli(run, pages: PageServer, private_ok, db_path: Path) -> None:
    pages.routes["/2025/01/21/kenya?ref=home"] = Route(
        story_page(canonical="/2025/01/21/kenya").encode()
    )
    url = pages.url("/2025/01/21/kenya?ref=home")
    result = run("ingest", url)
    assert result.exit_code == 0, result.output
    assert result.output == f"{url}: 1 new, 0 updated, 0 unchanged, 0 rejected\n{KENYA_LINE}\n"
    (article,) = stored(db_path)
    assert article.url == pages.url("/2025/01/21/kenya")  # the page's canonical URL
    assert article.source == url


def test_overrides_win_and_apply_to_one_article(run, tmp_path: Path, db_path: Path) -> None:
    (tmp_path / "kenya.html").write_text(story_page(), encoding="utf-8")
    result = run(
        "ingest", "kenya.html", "--title", "Kenyan police in Haiti\r\nBcc: x@example.com",
        "--date", "2025-01-22T06:00Z", "--author", "World Desk",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1] == (
        '  extracted: title "Kenyan police in Haiti Bcc: x@example.com" · date 2025-01-22 06:00'
        " UTC · author World Desk · 103 words · --title, --date, --author given"
    )
    (article,) = stored(db_path)
    assert article.title == "Kenyan police in Haiti Bcc: x@example.com"  # one line, always
    assert article.published_at == datetime(2025, 1, 22, 6, 0, tzinfo=UTC)
    assert article.author == "World Desk"

    two = run("ingest", "kenya.html", "kenya.html", "--title", "T")
    assert two.exit_code == 2
    assert "--title set the fields of one article: give one SOURCE" in two.output

    (tmp_path / "feed.xml").write_bytes(rss(rss_item("g1", "A", "https://e.org/a", "Short.")))
    feed = run("ingest", "feed.xml", "--author", "Desk")
    assert feed.exit_code == 1
    assert feed.output == (
        "feed.xml: failed: --author set the fields of one article (a page, a .txt or an article"
        " file); this is a feed or a JSON file of articles\n"
    )
    assert len(stored(db_path)) == 1


def test_a_directory_of_pages_scrapes_and_notes(run, tmp_path: Path, db_path: Path) -> None:
    folder = tmp_path / "desk"
    folder.mkdir()
    (folder / "kenya.html").write_text(story_page(), encoding="utf-8")
    (folder / "notes.md").write_text("---\ntitle: A note\ndate: 2025-01-20\n---\nSome *text*.\n")
    (folder / "council.txt").write_text(
        "Council meets\nBy Maria Lopez\nJanuary 20, 2025\n\nThe council met on Monday.\n"
    )
    (folder / "empty.html").write_text("<!doctype html><html><body><nav>Home</nav></body></html>")
    (folder / "data.csv").write_text("a,b\n")
    result = run("ingest", "desk")
    assert result.exit_code == 1  # one file rejected
    assert result.output.splitlines() == [
        "desk: 3 new, 0 updated, 0 unchanged, 1 rejected",
        '  extracted council.txt: title "Council meets" · date 2025-01-20 · author Maria Lopez ·'
        " 5 words · 1 paragraph · metadata at the start",
        '  extracted kenya.html: title "Kenya Police Recount Their Battle Against Haiti Gangs" ·'
        " date 2025-01-21 05:30 UTC · author Amina Otieno · 103 words",
        "  rejected empty.html: no article found (only 1 word of text)",
        "2 of 3 new articles have no tag: they only reach lists that cover every tag; see"
        " `digest tags rule --help`",
    ]
    assert sorted(a.title for a in stored(db_path)) == [
        "A note", "Council meets", "Kenya Police Recount Their Battle Against Haiti Gangs",
    ]  # fmt: skip
    refused = run("ingest", "desk", "--title", "X")
    assert "desk: failed: --title set the fields of one article" in refused.output


# --------------------------------------------------------------------------- hostile pages


def test_hostile_pages_fail_alone_in_one_line(
    run, pages: PageServer, private_ok, tmp_path: Path, db_path: Path
) -> None:
    """A script in the title, a huge page, an image and JSON answering text/html, a page with
    no article: each fails (or is cleaned) alone, in one line, and the good source next to
    them is stored."""
    hostile_title = "<script>alert(1)</script>Gang \x1b[31mraid</b> <img src=x onerror=alert(2)>"
    pages.routes["/script"] = Route(
        story_page(hostile_title, head="<script>document.cookie</script>").encode()
    )
    pages.routes["/huge"] = Route(b"<!doctype html><html><body>" + b"<p>word </p>" * 600_000)
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 20
    pages.routes["/png"] = Route(png, content_type="text/html")
    pages.routes["/json"] = Route(b'{"title": "not a page", "items": []}')
    pages.routes["/empty"] = Route(b"<!doctype html><html><head><title>x</title></head></html>")
    (tmp_path / "good.html").write_text(story_page("A good story"), encoding="utf-8")
    urls = [pages.url(p) for p in ("/huge", "/png", "/json", "/empty", "/script")]
    result = run("ingest", *urls, "good.html")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[:4] == [
        f"{urls[0]}: failed: too large (7.2 MB, over the 5.0 MB limit)",
        f"{urls[1]}: failed: not an HTML page (binary data)",
        f"{urls[2]}: failed: not an HTML page (no HTML elements could be read)",
        f"{urls[3]}: failed: no article found (the page has no body)",
    ]
    assert lines[4] == f"{urls[4]}: 1 new, 0 updated, 0 unchanged, 0 rejected"
    assert "\x1b" not in result.output and "<script" not in result.output
    assert lines[6] == "good.html: 1 new, 0 updated, 0 unchanged, 0 rejected"
    assert len(lines) == 8  # each source: its line, and the extraction line of the two stored
    by_title = {a.title: a for a in stored(db_path)}
    assert set(by_title) == {"Gang [31mraid", "A good story"}  # the ESC is dropped
    for article in by_title.values():
        assert "<script" not in (article.content_html or "")
        assert "onerror" not in (article.content_html or "")


def test_a_front_page_is_not_an_article(run, pages: PageServer, private_ok, db_path: Path) -> None:
    """A site's front page has text enough to pass for an article, and a removed story often
    redirects to it; neither is stored as an article. With a query, "/" can be one
    (WordPress's /?p=123)."""
    front = story_page("Latest news").encode()
    pages.routes["/"] = Route(front)
    pages.routes["/?p=4471"] = Route(front)
    pages.routes["/2025/removed-story"] = Route(b"", status=301, headers={"Location": "/"})
    home, gone, post = pages.url("/"), pages.url("/2025/removed-story"), pages.url("/?p=4471")
    result = run("ingest", home, gone, post)
    why = (
        "no article found (a site's front page; give the address of one article, or the site's"
        " feed)"
    )
    assert result.output.splitlines()[:3] == [
        f"{home}: failed: {why}",
        f"{gone}: failed: {why}",
        f"{post}: 1 new, 0 updated, 0 unchanged, 0 rejected",
    ]
    assert [a.title for a in stored(db_path)] == ["Latest news"]
