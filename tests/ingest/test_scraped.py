"""Plain-text scrapes: the scraped-post example (metadata at the end), a layout with metadata at
the start, one with none, and the lines that must not be mistaken for metadata."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlite_utils import Database

from digest.articles.inputs import ParsedSource
from digest.articles.reads import list_articles
from digest.articles.writes import store_articles
from digest.errors import SourceError
from digest.ingest.scraped import parse_scraped_text, read_scraped_file

EXAMPLE = Path(__file__).resolve().parents[2] / ".." / "shared" / "examples" / "scraped-post.txt"
NOW = datetime(2025, 1, 24, 12, 0, tzinfo=UTC)
BOILERPLATE = {"By -", "0", "Tags:", "Post a Comment", "0Comments"}


@pytest.mark.skipif(not EXAMPLE.is_file(), reason="../shared/examples is absent")
def test_scraped_post_example() -> None:
    article = read_scraped_file(EXAMPLE, "scraped-post.txt")
    assert (
        article.title == "Kenya Police Recount Their Battle Against Haiti Gangs on New Year’s Day"
    )
    assert article.published == datetime(2025, 1, 21, tzinfo=UTC)
    assert article.author is None
    assert article.tags == ()
    assert article.layout == "metadata at the end"
    assert article.warnings == ()
    assert len(article.paragraphs) == 19
    assert article.paragraphs[0].startswith("On New Year’s Day, January 1, 2025, Kenyan police")
    assert article.paragraphs[-1] == (
        "“We can finally see a future where we don’t have to live in fear.”"
    )
    text = "\n".join(article.paragraphs)
    assert not BOILERPLATE & set(article.paragraphs)
    assert article.title not in text
    assert "Tuesday, January 21, 2025" not in text
    assert "Post a Comment" not in text

    item = article.to_article_input()
    assert item.entry == "scraped-post.txt"
    assert item.title == article.title
    assert item.published == datetime(2025, 1, 21, tzinfo=UTC)
    assert item.author is None
    assert item.content_html is not None
    assert item.content_html.count("<p>") == 19
    assert "Comment" not in item.content_html


def test_metadata_at_the_start_with_wrapped_paragraphs() -> None:
    text = (
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
        "12 Comments\n"
    )
    article = parse_scraped_text(text, "council.txt", fallback_date=NOW)
    assert article.layout == "metadata at the start"
    assert article.title == "City Council Approves New Bike Lanes"
    assert article.author == "Maria Lopez"
    assert article.published == datetime(2025, 3, 3, 18, 30, tzinfo=UTC)
    assert article.tags == ("Transport", "City Hall")
    assert article.warnings == ()
    assert article.paragraphs == (
        "The council voted 7-2 on Monday night to approve twelve kilometres of protected bike "
        "lanes.",
        # a sentence starting with "By" is body, not a byline
        "By the end of the year, the first four kilometres should be open, the transport "
        "office said.",
    )


def test_no_metadata_takes_the_first_line_and_the_callers_date() -> None:
    text = (
        "Notes from the harbour\n"
        "\n"
        "The fishing boats came in late, riding low in the water.\n"
        "\n"
        "By noon the market had sold out.\n"
    )
    article = parse_scraped_text(
        text, "notes.txt", fallback_date=NOW, fallback_source="the file time"
    )
    assert article.layout == "no metadata"
    assert article.title == "Notes from the harbour"
    assert article.author is None
    assert article.published == NOW
    assert article.warnings == (
        "no byline or date lines found; the first line is the title",
        "no date line found; the file time (2025-01-24 12:00 UTC) is used",
    )
    assert article.paragraphs == (
        "The fishing boats came in late, riding low in the water.",
        "By noon the market had sold out.",
    )


def test_byline_with_a_date_at_the_end() -> None:
    text = (
        "The first paragraph of the post.\n"
        "The second paragraph.\n"
        "Harbour Reopens After Storm\n"
        "By Jane Doe - January 21, 2025\n"
        "Labels: Weather, Ports\n"
        "Newer Post Older Post Home\n"
    )
    article = parse_scraped_text(text, "harbour.txt", fallback_date=NOW)
    assert article.layout == "metadata at the end"
    assert article.title == "Harbour Reopens After Storm"
    assert article.author == "Jane Doe"
    assert article.published == datetime(2025, 1, 21, tzinfo=UTC)
    assert article.tags == ("Weather", "Ports")
    assert article.paragraphs == ("The first paragraph of the post.", "The second paragraph.")


def test_a_long_first_line_is_not_a_title() -> None:
    first = "word " * 60
    article = parse_scraped_text(first + "\nSecond line.\n", "long.txt", fallback_date=NOW)
    assert article.title is not None and article.title.endswith("…")
    assert len(article.title.split()) == 12
    assert article.paragraphs[0] == first.strip()
    assert "the first line is a paragraph, not a title; its first words are used" in (
        article.warnings
    )


def test_a_trailing_number_is_not_a_date() -> None:
    article = parse_scraped_text("Title\n\nBody text here.\n\n2025\n", "n.txt", fallback_date=NOW)
    assert article.published == NOW
    assert article.paragraphs == ("Body text here.",)


def test_empty_text_is_an_error() -> None:
    with pytest.raises(SourceError, match="empty.txt: empty file"):
        parse_scraped_text(" \n\n \n", "empty.txt", fallback_date=NOW)


def test_file_time_and_bad_bytes(tmp_path: Path) -> None:
    path = tmp_path / "latin.txt"
    path.write_bytes(b"Caf\xe9 opens\n\nThe caf\xe9 opened on Monday.\n")
    stamp = datetime(2025, 1, 20, 9, 30, tzinfo=UTC).timestamp()
    os.utime(path, (stamp, stamp))
    article = read_scraped_file(path, "latin.txt")
    assert article.title == "Caf\ufffd opens"
    assert article.published == datetime(2025, 1, 20, 9, 30, tzinfo=UTC)
    assert article.warnings[0].startswith("not valid UTF-8 (first bad byte 0xe9 on line 1)")
    assert article.warnings[1:] == (
        "no byline or date lines found; the first line is the title",
        "no date line found; the file time (2025-01-20 09:30 UTC) is used",
    )


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="missing.txt: cannot read"):
        read_scraped_file(tmp_path / "missing.txt", "missing.txt")


@pytest.mark.skipif(not EXAMPLE.is_file(), reason="../shared/examples is absent")
def test_scraped_post_stored(db: Database) -> None:
    """Through the real store: one article, its title and date, 19 paragraphs, no
    boilerplate."""
    article = read_scraped_file(EXAMPLE, "scraped-post.txt")
    parsed = ParsedSource(label="scraped-post.txt", kind="text")
    parsed.items.append(article.to_article_input())
    report = store_articles(db, parsed, now=NOW)
    assert report.new == 1
    (stored,) = list_articles(db)
    assert stored.title == "Kenya Police Recount Their Battle Against Haiti Gangs on New Year’s Day"
    assert stored.published_at == datetime(2025, 1, 21, tzinfo=UTC)
    assert stored.author is None
    assert stored.content_html is not None
    assert stored.content_html.count("<p>") == 19
    for line in ("Post a Comment", "0Comments", "Tags:", "By -", "Tuesday, January 21, 2025"):
        assert line not in stored.content_html
