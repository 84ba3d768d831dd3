"""Tag mapping (digest.tagging): the same categories give the same tags in every source format,
checked on feeds shaped like the ones real sites publish (tests/data/feeds/) and on the
rss2email corpus."""

from __future__ import annotations

from pathlib import Path

import feedparser
import pytest

from digest.articles.inputs import ArticleInput
from digest.articles.tagging import (
    MAX_TAG_CHARS,
    Tag,
    decode_category,
    feed_entry_tags,
    feed_level_tags,
    is_blogger,
    make_tag,
    split_categories,
    value_tags,
)
from digest.articles.tags import tag_key
from digest.ingest.sources import parse_feed

FEEDS = Path(__file__).parents[1] / "data" / "feeds"
CORPUS = Path(__file__).parents[2] / ".." / "shared" / "corpus" / "feeds" / "rss2email"


def parse(name: str) -> feedparser.FeedParserDict:
    # As digest.sources.parse_feed calls it.
    data = (FEEDS / name).read_bytes()
    return feedparser.parse(data, sanitize_html=False, resolve_relative_uris=False)


def names(tags: tuple[Tag, ...]) -> list[str]:
    return [t.name for t in tags]


def entry_tags(name: str) -> dict[str, list[str]]:
    d = parse(name)
    return {e.title: names(feed_entry_tags(e, d.feed)) for e in d.entries}


# ---------------------------------------------------------------------------- splitting


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Kenya, Haiti, Police", ("Kenya", "Haiti", "Police")),
        ("Kenya,Haiti", ("Kenya", "Haiti")),
        (" Kenya ,, Haiti , ", ("Kenya", "Haiti")),
        ("1,000 days", ("1,000 days",)),  # a thousands separator is not a list
        ("2024, Kenya", ("2024", "Kenya")),
        ("美国，北约，国防部", ("美国", "北约", "国防部")),  # full-width commas (BBC Chinese)
        ("東京、大阪", ("東京", "大阪")),
        ("Arts &amp; Culture", ("Arts & Culture",)),
        ("Arts &amp;amp; Culture", ("Arts & Culture",)),  # double-encoded
        ("Caf&eacute;s &#38; bars", ("Cafés & bars",)),
        ("<b>Bold</b> tag", ("Bold tag",)),
        ("line\nbreak\ttab", ("line break tab",)),
        ("", ()),
        (" , ", ()),
    ],
)
def test_split_categories(text: str, expected: tuple[str, ...]) -> None:
    assert split_categories(text) == expected


def test_decode_category_keeps_a_literal_ampersand() -> None:
    assert decode_category("AT&T") == "AT&T"
    assert decode_category("R&D &amp; design") == "R&D & design"


def test_tag_key_is_todays_tag_key() -> None:
    tag = make_tag("  Arts   &  Culture ")
    assert tag == Tag(tag_key("Arts & Culture"), "Arts & Culture")
    assert make_tag("x" * (MAX_TAG_CHARS + 1)) is None
    assert make_tag("   ") is None
    assert make_tag("Arts", identity="arts-culture") == Tag("arts-culture", "Arts")


# ---------------------------------------------------------------------------- JSON, front matter


def test_value_tags_accepts_strings_lists_numbers_and_objects() -> None:
    tags = value_tags(
        ["Kenya, Haiti", {"name": "Police"}, 2024, {"term": "arts", "label": "Arts"}, None, True]
    )
    assert tags == (
        Tag("kenya", "Kenya"),
        Tag("haiti", "Haiti"),
        Tag("police", "Police"),
        Tag("2024", "2024"),
        Tag("arts", "Arts"),
    )
    assert value_tags("Kenya, Haiti") == (Tag("kenya", "Kenya"), Tag("haiti", "Haiti"))
    assert value_tags({"name": "Health"}) == (Tag("health", "Health"),)
    assert value_tags(None) == value_tags(True) == value_tags(3.5j) == ()


def test_value_tags_dedupes_by_key_keeping_the_first_spelling() -> None:
    assert value_tags(["Kenya", "KENYA", " kenya "]) == (Tag("kenya", "Kenya"),)


def test_placeholders_are_dropped_in_every_language() -> None:
    for placeholder in ["Uncategorized", "uncategorised", "Non classé", "Sin categoría", "未分类"]:
        assert value_tags([placeholder, "Health"]) == (Tag("health", "Health"),), placeholder
    # A default that can be a real section is kept, for the editor to hide.
    assert names(value_tags(["General", "Allgemein", "Featured"])) == [
        "General",
        "Allgemein",
        "Featured",
    ]


def test_the_same_string_gives_the_same_tags_in_rss_json_and_front_matter() -> None:
    rss = feedparser.parse(
        b'<rss version="2.0"><channel><title>t</title><item><title>a</title>'
        b"<category>Kenya, Haiti, Police</category></item></channel></rss>"
    )
    from_rss = feed_entry_tags(rss.entries[0], rss.feed)
    assert from_rss == value_tags("Kenya, Haiti, Police") == value_tags(["Kenya, Haiti, Police"])
    assert names(from_rss) == ["Kenya", "Haiti", "Police"]


# ---------------------------------------------------------------------------- feeds


def test_wordpress_rss() -> None:
    assert entry_tags("wordpress.rss") == {
        # Only "Uncategorized": the article is untagged ("More stories"), not in a section.
        "Volunteers rebuild the Jacmel library": [],
        "Carnival bands rehearse under new rules": ["Arts & Culture", "Haiti"],
        "Police and volunteers clear roads after the rains": ["Kenya", "Haiti", "Police"],
    }


def test_blogger_atom_ignores_the_kind_scheme_and_the_label_index() -> None:
    d = parse("blogger.atom")
    assert is_blogger(d.feed)
    assert len(d.feed.tags) == 5  # the blog's label index...
    assert feed_level_tags(d.feed) == ()  # ...is not every post's topic
    assert entry_tags("blogger.atom") == {
        "Bloom, Baby, Bloom!": [],  # only the kind#post category, which is not a topic
        "Log cabin blocks from the scrap bin": ["log cabin", "scrap quilt"],
    }


def test_ghost_rss() -> None:
    assert entry_tags("ghost.rss") == {
        "Coral nurseries return to the reef": ["Climate", "Oceans"],
        "Tide tables for February": [],
    }


def test_substack_rss_has_no_tags() -> None:
    assert entry_tags("substack.rss") == {"What the drought taught our cooperative": []}


def test_atom_term_is_the_identity_and_label_the_name() -> None:
    d = parse("labels.atom")
    festival, ferry = d.entries
    assert feed_entry_tags(festival, d.feed) == (
        Tag("arts-culture", "Arts & Culture"),  # term identifies, label shows
        Tag("haïti", "Haïti"),  # a URI term is not a name: the label identifies
        # term="http://purl.org/ontology#Event" without a label: ignored
    )
    # No categories of its own: the feed's <category term="caribbean" label="Caribbean"/>.
    assert feed_entry_tags(ferry, d.feed) == (Tag("caribbean", "Caribbean"),)
    assert feed_entry_tags(ferry) == ()


def test_atom_term_and_label_lists_pair_up() -> None:
    d = feedparser.parse(
        b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><title>a</title>'
        b'<category term="ke,ht" label="Kenya, Haiti"/>'
        b'<category term="x,y" label="Only one"/></entry></feed>'
    )
    assert feed_entry_tags(d.entries[0]) == (
        Tag("ke", "Kenya"),
        Tag("ht", "Haiti"),
        Tag("x", "x"),  # unequal lists: the terms are what is sure
        Tag("y", "y"),
    )


def test_entry_with_only_a_placeholder_takes_the_feed_categories() -> None:
    d = feedparser.parse(
        b'<rss version="2.0"><channel><title>t</title><category>Haiti</category>'
        b"<item><title>a</title><category>Uncategorized</category></item>"
        b"<item><title>b</title><category>Police</category></item></channel></rss>"
    )
    assert [names(feed_entry_tags(e, d.feed)) for e in d.entries] == [["Haiti"], ["Police"]]


def test_jsonfeed_tags() -> None:
    import json

    doc = json.loads((FEEDS / "tags.json").read_text())
    assert [names(value_tags(item.get("tags"))) for item in doc["items"]] == [
        ["Kenya", "Haiti", "Health"],
        [],
    ]


def test_feed_without_any_categories() -> None:
    d = parse("plain.rss")
    assert feed_level_tags(d.feed) == ()
    assert [feed_entry_tags(e, d.feed) for e in d.entries] == [(), ()]


def test_hostile_category_values_do_not_break_mapping() -> None:
    entry = {
        "tags": [
            {"term": None, "label": None},
            {"term": 42},
            "not a dict",
            {"term": "x" * 10_000},
            {"term": "\x00\x07"},
            {"term": "ok", "scheme": None},
        ]
    }
    assert feed_entry_tags(entry, {"tags": "junk"}) == (Tag("ok", "ok"),)
    assert feed_entry_tags({"tags": "junk"}, {"tags": [{"term": "Feed"}]}) == (Tag("feed", "Feed"),)


# ---------------------------------------------------------------------------- real feeds

# (entries, tagged by today's sources.parse_feed, tagged by feed_entry_tags)
CORPUS_COUNTS = {
    "allthingsrss/feed.atom": (3, 3, 0),  # only WordPress's "Uncategorized"
    "bbc-chinese/feed.atom": (2, 2, 2),
    "disqus/feed.rss": (2, 0, 0),
    "fastmailstatus/feed.rss": (10, 0, 0),
    "gmane/feed.rss": (5, 0, 0),
    "nodejs/feed1.xml": (1, 0, 0),
    "nodejs/feed2.xml": (1, 0, 0),
    "nodejs/feed3.xml": (1, 0, 0),
    "quiltville/feed.atom": (25, 0, 0),  # Blogger: 17 feed-level labels, the blog's index
    "tails/feed.rss": (10, 10, 10),
    "tumblr/feed.rss": (20, 8, 8),
}


@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not present")
@pytest.mark.parametrize("name", sorted(CORPUS_COUNTS))
def test_rss2email_corpus_tag_counts(name: str) -> None:
    # CORPUS_COUNTS: entries, entries with a tag before tagging.py was wired into the feed
    # reader, entries with a tag now.
    data = (CORPUS / name).read_bytes()
    d = feedparser.parse(data, sanitize_html=False, resolve_relative_uris=False)
    after = [feed_entry_tags(e, d.feed) for e in d.entries]
    wired = [item.tags for item in parse_feed(data, name).items if isinstance(item, ArticleInput)]
    assert wired == after  # the feed reader maps categories with feed_entry_tags
    entries, _, tagged = CORPUS_COUNTS[name]
    assert (len(d.entries), sum(1 for t in after if t)) == (entries, tagged)
    for tags in after:
        assert all(t.key and t.name and "&amp;" not in t.name for t in tags)


@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not present")
def test_bbc_chinese_keywords_are_split_on_full_width_commas() -> None:
    d = feedparser.parse((CORPUS / "bbc-chinese/feed.atom").read_bytes())
    tags = feed_entry_tags(d.entries[1], d.feed)
    assert names(tags) == ["chinese_simplified", "国际新闻", "世界银行", "报告", "经济发展"]
    assert tags[1] == Tag("world", "国际新闻")  # term "world", label 国际新闻


def test_long_category_strings_are_split_too() -> None:
    long_list = ", ".join(f"topic {i}" for i in range(200))  # past the cached length
    tags = value_tags(long_list)
    assert len(tags) == 200 and tags[0] == Tag("topic 0", "topic 0")
    assert split_categories(long_list)[-1] == "topic 199"
