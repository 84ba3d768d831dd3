"""Cleaner excerpts (digest.excerpts): CMS and feed boilerplate goes, real content stays. Feeds
are read as ingest reads them (sources.parse_bytes, then sanitize.clean_html), then cleaned."""

from __future__ import annotations

from pathlib import Path

import pytest

from digest.articles.excerpts import strip_boilerplate, strip_boilerplate_text
from digest.articles.inputs import ArticleInput
from digest.articles.sanitize import clean_html, html_to_text
from digest.ingest.sources import parse_bytes

FEEDS = Path(__file__).parents[1] / "data" / "feeds"


def excerpts(name: str) -> dict[str, tuple[str, str]]:
    """title -> (summary text, content text) after cleaning."""
    out = {}
    for item in parse_bytes((FEEDS / name).read_bytes(), name).items:
        assert isinstance(item, ArticleInput)
        summary = strip_boilerplate(clean_html(item.summary_html or ""))
        content = strip_boilerplate(clean_html(item.content_html or ""))
        out[item.title or ""] = (html_to_text(summary), html_to_text(content))
    return out


def clean(fragment: str) -> str:
    return strip_boilerplate(clean_html(fragment))


# ---------------------------------------------------------------------------- feeds


def test_wordpress_rss() -> None:
    got = excerpts("wordpress.rss")
    assert got["Volunteers rebuild the Jacmel library"] == (
        "Forty volunteers spent the weekend sorting donated books and repainting the reading room"
        " of the town library, closed since the storm. “Children need a place to read,” said the"
        " librarian…",
        "Forty volunteers spent the weekend sorting donated books and repainting the reading room"
        " of the town library, closed since the storm.\n\n“Children need a place to read,” said the"
        " librarian. Those who read more at home, she added, do better at school.",
    )
    assert got["Carnival bands rehearse under new rules"] == (
        "Bands in Port-au-Prince rehearse for carnival under the council’s new noise rules …",
        # "Read more about ..." inside the text stays; the "Continue reading" link goes.
        "Bands in Port-au-Prince rehearse for carnival under the council’s new noise rules. Read"
        " more about the rules in our explainer, published last week.",
    )
    assert got["Police and volunteers clear roads after the rains"][0] == (
        "Police in Nairobi and Cap-Haïtien cleared roads blocked by mud after a week of rains."
    )


def test_wordpress_content_keeps_its_pictures_and_loses_the_stats_pixel() -> None:
    item = parse_bytes((FEEDS / "wordpress.rss").read_bytes(), "wp").items[0]
    assert isinstance(item, ArticleInput)
    html = clean(item.content_html or "")
    assert "library-1024x683.jpg" in html
    assert "s.w.org/images/core/emoji" in html  # an emoji is content
    assert "pixel.wp.com" not in html
    assert "appeared first" not in html


def test_blogger_footer_tracker_goes() -> None:
    item = parse_bytes((FEEDS / "blogger.atom").read_bytes(), "b").items[0]
    assert isinstance(item, ArticleInput)
    html = clean(item.content_html or "")
    assert "tracker" not in html
    assert html.endswith("<p>The amaryllis on the sewing table finally opened this morning.</p>")
    assert "w640-h302/bloom.jpg" in html


def test_substack_buttons_and_thanks_box_go() -> None:
    assert excerpts("substack.rss") == {
        "What the drought taught our cooperative": (
            "Three seasons of dry weather, and what changed in how we plant.",
            "Three seasons of dry weather changed how our cooperative plants.\n\n"
            "We moved planting two weeks later and share the seed bank with the next village.\n\n"
            "Next week: water harvesting.",
        )
    }


def test_medium_and_feedburner() -> None:
    assert excerpts("plain.rss") == {
        "Solar pumps for the island school": (
            "The school’s new solar pumps fill the tank by noon.",
            "The school’s new solar pumps fill the tank by noon.",
        ),
        "Radio workshop for young reporters": ("Twelve students learned to record interviews.", ""),
    }
    item = parse_bytes((FEEDS / "plain.rss").read_bytes(), "p").items[1]
    assert isinstance(item, ArticleInput)
    assert clean(item.summary_html or "") == "Twelve students learned to record interviews."


def test_atom_text_summary_read_more_tail() -> None:
    got = excerpts("labels.atom")
    assert got["Festival season opens in Jacmel"][0] == (
        "Masks and music fill the streets of Jacmel as festival season opens."
    )


@pytest.mark.parametrize("name", ["ghost.rss", "tags.json"])
def test_clean_feeds_are_unchanged(name: str) -> None:
    for item in parse_bytes((FEEDS / name).read_bytes(), name).items:
        assert isinstance(item, ArticleInput)
        for fragment in (item.summary_html, item.content_html):
            sanitised = clean_html(fragment or "")
            assert strip_boilerplate(sanitised) == sanitised


# ---------------------------------------------------------------------------- tails


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ("<p>Text</p><p><a href='https://x.org/a'>Read more »</a></p>", "<p>Text</p>"),
        ("<p>Text</p><p><a href='https://x.org/a'>Read More...</a></p>", "<p>Text</p>"),
        ("<p>Text</p><p><a href='https://x.org/a'>[Read more]</a></p>", "<p>Text</p>"),
        ("<p>Text</p><p>Read more</p>", "<p>Text</p>"),
        (
            "<div><p>Text</p><p><a href='/a'>Continue reading →</a></p></div>",
            "<div><p>Text</p></div>",
        ),
        ("<p>text (<a href='/x#more-1'>more&hellip;</a>)</p>", "<p>text</p>"),
        ("<p>Lorem ipsum… Read more</p>", "<p>Lorem ipsum…</p>"),
        ("<p>Lorem ipsum. Read more »</p>", "<p>Lorem ipsum.</p>"),
        ("<p>Lorem ipsum [...]</p>", "<p>Lorem ipsum…</p>"),
        ("<p>Lorem ipsum [&#8230;]</p>", "<p>Lorem ipsum…</p>"),
        ("<p>It rained. [&hellip;]</p>", "<p>It rained.</p>"),
        ("<p>Mehr dazu… <a href='/a'>Weiterlesen</a></p>", "<p>Mehr dazu…</p>"),
        ("<p>La suite… <a href='/a'>Lire la suite</a></p>", "<p>La suite…</p>"),
        (
            "<p>Body</p><p>Der Beitrag <a href='/a'>X</a> erschien zuerst auf <a href='/'>Y</a>.</p>",
            "<p>Body</p>",
        ),
        (
            "<p>Body</p><p>L’article <a href='/a'>X</a> est apparu en premier sur <a href='/'>Y</a>.</p>",
            "<p>Body</p>",
        ),
        # A paragraph that is only a subscribe button (Substack custom domains too).
        (
            "<p>A</p><p><a href='https://x.org/subscribe?'>Subscribe now</a></p><p>B</p>",
            "<p>A</p><p>B</p>",
        ),
        (
            "<p>Body [&#8230;]</p><p>The post <a href='/a'>X</a> appeared first on <a href='/'>Y</a>.</p>"
            "<img src='https://pixel.wp.com/b.gif?x=1' width='1' height='1'>",
            "<p>Body…</p>",
        ),
    ],
)
def test_tails_that_go(fragment: str, expected: str) -> None:
    assert clean(fragment) == clean_html(expected)


@pytest.mark.parametrize(
    "fragment",
    [
        # "read more" and friends inside sentences and paragraphs are content.
        "<p>Kids who read more do better at school.</p>",
        "<p>Teachers want pupils to read more</p>",
        "<p>We asked readers to read more. Many did.</p>",
        "<p>She wants to read more</p><p>And write more.</p>",
        "<p>Text</p><p>Read more about the festival in our guide.</p>",
        "<p>Text</p><p><a href='/guide'>Read more about the festival</a></p>",
        "<p>See <a href='/x'>our guide to reading</a></p>",
        "<p>Continue reading the minutes below, then vote.</p>",
        "<p>There is more</p><p>to this story than a headline.</p>",
        # Shaped like the Yoast line but without its links: a real last sentence.
        "<p>History.</p><p>The post office appeared first on the list of closures.</p>",
        "<p>Prices: [1] and [2]</p>",
        "<p>Wait...</p>",
        "<p>Subscribe now to our sister paper, <a href='https://x.org/subscribe'>the Gazette</a>.</p>",
        "<p><a href='https://x.org/news/subscribe-ballots'>Subscribe</a></p>",
        "<p>Thanks for reading! See you next week.</p>",
        "<p>An emoji <img src='https://s.w.org/images/core/emoji/15.0.3/72x72/1f4da.png' alt='📚'></p>",
        "",
    ],
)
def test_content_that_stays(fragment: str) -> None:
    sanitised = clean_html(fragment)
    assert strip_boilerplate(sanitised) == sanitised


def test_stripping_is_idempotent() -> None:
    fragment = clean_html(
        "<p>Body [&#8230;] <a href='/a'>Read more</a></p>"
        "<p>The post <a href='/a'>X</a> appeared first on <a href='/'>Y</a>.</p>"
    )
    once = strip_boilerplate(fragment)
    assert once == "<p>Body…</p>"
    assert strip_boilerplate(once) == once


def test_only_the_tail_is_examined_for_tails() -> None:
    long_body = "<p>" + "word " * 2000 + "</p>"
    fragment = clean_html("<p>Read more</p>" + long_body + "<p>Read more</p>")
    assert strip_boilerplate(fragment) == clean_html("<p>Read more</p>" + long_body)


def test_hostile_inputs_finish() -> None:
    for fragment in (
        "[…]" * 50_000,
        "<p>" * 20_000,
        "<a href='/a'>" * 10_000 + "Read more",
        "… " * 50_000 + "Read more",
        "<img src=x " * 10_000,
        '<a href="http://feeds.feedburner.com/~ff/x">' * 10_000,
        "substack <p>" * 20_000,
        "The post " + "x " * 50_000 + " appeared first on " + "y " * 10_000,
    ):
        assert isinstance(strip_boilerplate(fragment), str)


# ---------------------------------------------------------------------------- plain text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Lorem ipsum […]\n\nThe post X appeared first on Y.", "Lorem ipsum…"),
        ("Intro text\nContinue reading →", "Intro text"),
        ("Intro text… Read more", "Intro text…"),
        ("It rained. [...]", "It rained."),
        ("Kids who read more do better.", "Kids who read more do better."),
        ("Read more", "Read more"),  # nothing else: there is no excerpt to clean up
        ("The post X appeared first on Y.", "The post X appeared first on Y."),
        ("", ""),
    ],
)
def test_plain_text(text: str, expected: str) -> None:
    assert strip_boilerplate_text(text) == expected
