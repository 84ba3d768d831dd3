"""Lead images (digest.leadimage): from feed media, page metadata and content, with the
sanity checks, on real-shaped feeds (tests/data/feeds/) and the readability page corpus."""

from __future__ import annotations

import json
import re
from pathlib import Path

import feedparser
import pytest

from digest.articles.leadimage import (
    LeadImage,
    choose_lead_image,
    content_image,
    dimension,
    entry_media_images,
    feed_entry_image,
    html_attributes,
    image_candidate,
    is_tracking_image,
    page_image,
    value_image,
)

FEEDS = Path(__file__).parents[1] / "data" / "feeds"
PAGES = Path(__file__).parents[2] / ".." / "shared" / "corpus" / "pages"


def images(name: str) -> dict[str, LeadImage | None]:
    d = feedparser.parse(
        (FEEDS / name).read_bytes(), sanitize_html=False, resolve_relative_uris=False
    )
    return {e.title: feed_entry_image(e, e.get("link") or d.feed.get("link")) for e in d.entries}


# ---------------------------------------------------------------------------- feeds


def test_wordpress_rss() -> None:
    assert images("wordpress.rss") == {
        # The first content picture, with its size and alt; not the emoji, not the stats pixel.
        "Volunteers rebuild the Jacmel library": LeadImage(
            "https://islandvoices.example.org/wp-content/uploads/2025/01/library-1024x683.jpg",
            1024,
            683,
            "Volunteers carrying boxes of books into the library",
        ),
        # Lazy loading: src is a data: placeholder, data-src a relative path.
        "Carnival bands rehearse under new rules": LeadImage(
            "https://islandvoices.example.org/wp-content/uploads/2025/01/rara-band.jpg",
            800,
            533,
            "A rara band on the Champ de Mars",
        ),
        # Jetpack's first media:content is the author's gravatar: skipped.
        "Police and volunteers clear roads after the rains": LeadImage(
            "https://islandvoices.example.org/wp-content/uploads/2025/01/mud-road.jpg"
        ),
    }


def test_blogger_prefers_the_posts_photo_to_a_72px_thumbnail() -> None:
    assert images("blogger.atom") == {
        "Bloom, Baby, Bloom!": LeadImage(
            "https://blogger.googleusercontent.com/img/b/R29v/w640-h302/bloom.jpg", 640, 302
        ),
        "Log cabin blocks from the scrap bin": None,
    }


def test_ghost_feature_image_takes_its_alt_from_the_content() -> None:
    assert images("ghost.rss") == {
        "Coral nurseries return to the reef": LeadImage(
            "https://coastline.example.net/content/images/2025/01/coral-nursery.jpg",
            alt="Coral fragments hanging from a nursery tree",
        ),
        "Tide tables for February": None,
    }


def test_substack_image_enclosure() -> None:
    (image,) = images("substack.rss").values()
    assert image is not None
    assert image.url.startswith("https://substackcdn.com/image/fetch/w_1456,c_limit,f_jpg")
    assert image.url.endswith("dry-field.jpg")


def test_atom_enclosure_link_is_resolved_against_the_entry() -> None:
    assert images("labels.atom") == {
        "Festival season opens in Jacmel": LeadImage(
            "https://desk.example.com/images/festival.png"
        ),
        "Ferry timetable changes": None,
    }


def test_trackers_are_never_lead_images() -> None:
    # Medium's _/stat pixel, FeedBurner's flares and ~r pixel.
    assert images("plain.rss") == {
        "Solar pumps for the island school": None,
        "Radio workshop for young reporters": None,
    }


def test_jsonfeed_image() -> None:
    items = json.loads((FEEDS / "tags.json").read_text())["items"]
    assert value_image(items[0].get("image")) == LeadImage(
        "https://health.example.org/images/clinic.jpg"
    )
    assert value_image(items[1].get("image")) is None
    assert value_image(
        {"src": "/a.jpg", "width": "640", "height": 480, "alt": " A  photo "}, "https://x.org/p/"
    ) == LeadImage("https://x.org/a.jpg", 640, 480, "A photo")


def test_media_order_and_size() -> None:
    entry = {
        "media_thumbnail": [{"url": "https://x.org/t.jpg", "width": "150", "height": "100"}],
        "media_content": [
            {"url": "https://x.org/v.mp4", "medium": "video"},
            {
                "url": "https://x.org/full.jpg",
                "type": "image/jpeg",
                "width": "1200",
                "height": "800",
            },
            {"url": "https://x.org/guess.png"},  # no medium or type: the file name says image
            {},  # BBC writes empty media:content elements
        ],
        "enclosures": [
            {"href": "https://x.org/ep.mp3", "type": "audio/mpeg"},
            {"href": "https://x.org/huge.jpg", "type": "image/jpeg", "length": "52000000"},
        ],
    }
    assert [i.url for i in entry_media_images(entry)] == [
        "https://x.org/full.jpg",
        "https://x.org/guess.png",
        "https://x.org/t.jpg",
    ]
    assert feed_entry_image(entry) == LeadImage("https://x.org/full.jpg", 1200, 800)


def test_choose_lead_image() -> None:
    small = LeadImage("https://x.org/s.jpg", 72, 72)
    big = LeadImage("https://x.org/b.jpg", 640, 400)
    unknown = LeadImage("https://x.org/u.jpg")
    page = LeadImage("https://x.org/og.jpg")
    assert choose_lead_image([small], content=big) == big
    assert choose_lead_image([small], content=LeadImage("https://x.org/c.jpg", 50, 50)) == small
    assert choose_lead_image([small], content=None) == small
    assert choose_lead_image([small, unknown]) == unknown
    assert choose_lead_image([unknown, big]) == big  # 640x400 > the assumed 600x400
    assert choose_lead_image([], page=page, content=big) == page
    assert choose_lead_image([], content=big) == big
    assert choose_lead_image([]) is None


# ---------------------------------------------------------------------------- checks


@pytest.mark.parametrize(
    ("url", "base", "expected"),
    [
        ("https://x.org/a.jpg", None, "https://x.org/a.jpg"),
        ("  http://x.org/a.jpg\n", None, "http://x.org/a.jpg"),
        ("//cdn.x.org/a.jpg", None, "https://cdn.x.org/a.jpg"),
        ("/img/a.jpg", "https://x.org/post/1", "https://x.org/img/a.jpg"),
        ("a.jpg", "https://x.org/post/1", "https://x.org/post/a.jpg"),
        ("/img/a.jpg", None, None),  # relative without a base
        ("/img/a.jpg", "file:///etc/", None),
        ("https://x.org/My Photo é.jpg", None, "https://x.org/My%20Photo%20%C3%A9.jpg"),
        ("https://x.org/a%20b.jpg", None, "https://x.org/a%20b.jpg"),
        ("data:image/png;base64,iVBORw0KGgo=", None, None),
        ("javascript:alert(1)", None, None),
        ("ftp://x.org/a.jpg", None, None),
        ("cid:part1", None, None),
        ("https://localhost/a.jpg", None, None),
        ("http://127.0.0.1/a.jpg", None, None),
        ("http://192.168.1.10/a.jpg", None, None),
        ("http://[::1]/a.jpg", None, None),
        ("http://intranet/a.jpg", None, None),
        ("https://[bad/a.jpg", None, None),
        ("https://x.org/a\x00.jpg", None, None),
        ("https://x.org/" + "a" * 3000, None, None),
    ],
)
def test_image_urls(url: str, base: str | None, expected: str | None) -> None:
    image = image_candidate(url, base_url=base)
    assert (image.url if image else None) == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://feeds.feedburner.com/~r/Blog/~4/AbC123",
        "http://feeds.feedburner.com/~ff/Blog?d=yIl2AUoC8zA",
        "http://feedads.g.doubleclick.net/~a/nYgTsIUs/0/di",  # from the rss2email corpus
        "https://pixel.wp.com/b.gif?host=x",
        "https://stats.wordpress.com/b.gif?v=1",
        "https://blogger.googleusercontent.com/tracker/123-456?l=x",
        "https://medium.com/_/stat?event=post.clientViewed",
        "https://www.google-analytics.com/collect?v=1",
        "https://example.org/pixel/open?id=1",
        "https://example.org/img/spacer.gif",
        "https://example.org/1x1.png",
    ],
)
def test_trackers(url: str) -> None:
    assert is_tracking_image(url)
    assert image_candidate(url) is None


@pytest.mark.parametrize(
    "url",
    [
        "https://example.org/photos/google-pixel-9-review.jpg",  # the phone, not a pixel
        "https://example.org/pixel-art/cat.png",
        "https://i0.wp.com/example.org/wp-content/uploads/2025/01/a.jpg",
        "https://1.bp.blogspot.com/-abc/s1600/photo.jpg",
    ],
)
def test_not_trackers(url: str) -> None:
    assert not is_tracking_image(url)
    assert image_candidate(url) is not None


def test_not_lead_images_are_not_trackers() -> None:
    emoji = "https://s.w.org/images/core/emoji/15.0.3/72x72/1f4da.png"
    avatar = "https://secure.gravatar.com/avatar/abc?s=96"
    for url in (emoji, avatar):
        assert image_candidate(url) is None  # never a lead image...
        assert not is_tracking_image(url)  # ...but real content, kept in the article


@pytest.mark.parametrize(
    ("width", "height", "kept"),
    [
        (1, 1, False),
        ("2", "600", False),
        (600, 2, False),
        (728, 90, False),  # an ad banner: wider than 6:1
        (90, 600, False),
        (600, 100, True),
        (640, 302, True),
        (None, 1, False),
        ("100%", "auto", True),
    ],
)
def test_size_checks(width: object, height: object, kept: bool) -> None:
    assert (image_candidate("https://x.org/a.jpg", width=width, height=height) is not None) is kept


def test_dimensions_and_alt() -> None:
    assert [dimension(v) for v in (640, "640", " 640px ", "640.0", 640.0, "100%", "auto")] == [
        640,
        640,
        640,
        640,
        640,
        None,
        None,
    ]
    assert [dimension(v) for v in (0, -5, 99_999, True, None, [640])] == [None] * 6
    image = image_candidate(
        "https://x.org/a.jpg",
        width="99999",
        height="480",
        alt="  Caf&eacute;\n  tables " + "x" * 400,
    )
    assert image is not None
    assert (image.width, image.height) == (None, 480)  # an implausible width is dropped
    assert image.alt is not None and image.alt.startswith("Café tables x")
    assert len(image.alt) == 300 and image.alt.endswith("…")
    assert image_candidate("https://x.org/a.jpg", alt="   ") == LeadImage("https://x.org/a.jpg")
    assert image_candidate(None) is None and image_candidate(42) is None


# ---------------------------------------------------------------------------- HTML


def test_content_image_skips_what_a_reader_never_sees() -> None:
    html = (
        '<img src="https://x.org/hidden.jpg" style="display:none">'
        "<img src='https://x.org/tiny.jpg' style='width: 1px; height: 1px'>"
        '<img width="1" height="1" src="https://x.org/open.gif">'
        "<img alt=nosrc>"
        '<IMG SRC=https://x.org/a.jpg?w=1&amp;h=2 ALT="Upper case" WIDTH=300>'
    )
    assert content_image(html) == LeadImage("https://x.org/a.jpg?w=1&h=2", 300, None, "Upper case")
    assert content_image("<p>no images</p>") is None
    assert content_image("") is None


def test_content_image_srcset_and_lazy_sources() -> None:
    html = (
        '<img src="/wp-content/plugins/lazy/blank.gif" '
        'data-srcset="/s.jpg 300w, /l.jpg 1024w, /m.jpg 768w">'
    )
    assert content_image(html, "https://x.org/") == LeadImage("https://x.org/l.jpg")
    html = '<img srcset="https://x.org/a.jpg 1x, https://x.org/a@2x.jpg 2x">'
    assert content_image(html) == LeadImage("https://x.org/a@2x.jpg")


def test_content_image_gives_up_after_many_images() -> None:
    pixels = '<img src="https://x.org/p.gif" width="1" height="1">' * 40
    assert content_image(pixels + '<img src="https://x.org/late.jpg">') is None


def test_html_attributes() -> None:
    attrs = html_attributes(""" src="a&amp;b" alt='it&#39;s' width=3 hidden SRC="second" """)
    assert attrs == {"src": "a&b", "alt": "it's", "width": "3", "hidden": ""}


def test_page_image() -> None:
    head = """<html><head>
      <meta property="og:image" content="/share.jpg">
      <meta property="og:image:secure_url" content="https://cdn.x.org/share.jpg">
      <meta property="og:image:width" content="1200"><meta property="og:image:height" content="630">
      <meta property="og:image:alt" content="The harbour at dawn">
      <meta name="twitter:image" content="https://x.org/tw.jpg">
    </head><body><meta property="og:image" content="https://x.org/body.jpg"></body></html>"""
    assert page_image(head, "https://x.org/a") == LeadImage(
        "https://cdn.x.org/share.jpg", 1200, 630, "The harbour at dawn"
    )
    assert page_image(
        '<meta content="/og.jpg" property="og:image">', "https://x.org/a/b"
    ) == LeadImage("https://x.org/og.jpg")
    assert page_image('<meta name="twitter:image:src" content="https://x.org/t.jpg">') == (
        LeadImage("https://x.org/t.jpg")
    )
    assert page_image('<link rel="image_src" href="https://x.org/l.jpg">') == LeadImage(
        "https://x.org/l.jpg"
    )
    assert page_image('<meta property="og:image" content="data:image/png;base64,AA">') is None
    assert page_image("<html><head><title>none</title></head></html>") is None


@pytest.mark.skipif(not PAGES.is_dir(), reason="shared corpus not present")
def test_page_image_on_real_pages() -> None:
    found = declared = 0
    for page in sorted(PAGES.iterdir()):
        source = (page / "source.html").read_text(encoding="utf-8", errors="replace")
        m = re.search(r"""<meta[^>]*property=["']og:image["'][^>]*content=["']([^"']+)""", source)
        m = m or re.search(
            r"""<meta[^>]*content=["']([^"']+)["'][^>]*property=["']og:image["']""", source
        )
        image = page_image(source, "https://example.org/")
        if m:
            declared += 1
            one_pixel = 'og:image:width" content="1"' in source
            if one_pixel:  # spiceworks declares its og:image as 1x1
                assert image is None, page.name
                continue
            assert image is not None, page.name
            assert image.url.split("?")[0] == image_candidate(m.group(1)).url.split("?")[0]  # type: ignore[union-attr]
            found += 1
    assert declared >= 60 and found == declared - 1


def test_hostile_html_finishes() -> None:
    for fragment in (
        "<img src=x " * 10_000,
        "<meta property=og:image content=x " * 10_000,
        "<img " + "a=1 " * 50_000 + ">",
        '<img src="' + "x" * 100_000 + '">',
    ):
        assert content_image(fragment, "https://x.org/") is None
        assert page_image(fragment, "https://x.org/") is None
