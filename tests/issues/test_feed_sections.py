"""Real-shaped feeds (tests/data/feeds: WordPress, Blogger, Ghost, Substack, Atom with labels,
JSON Feed with tags, RSS without categories) through the real commands: `digest ingest`,
`digest lists create`, `digest subscribers add`, `digest build` and `digest preview`. Each
article lands in the section an editor would expect; the untagged ones are in "More stories" of
a list that covers every tag, and in no section of a list scoped to tags."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

FEEDS = Path(__file__).parents[1] / "data" / "feeds"
FROM = "Desk <desk@news.example.com>"

# The weekly issue of Monday 27 January covers Mon 20 - Sun 26 January 2025 (UTC).
ISSUE = "2025-01-27"

UNTAGGED = [
    # newest first, as a section lists them
    "What the drought taught our cooperative",  # Substack: no categories
    "Volunteers rebuild the Jacmel library",  # WordPress: only "Uncategorized"
    "Tide tables for February",  # Ghost: an item without tags
    "Solar pumps for the island school",  # RSS without any category
    "Measles cases fall",  # JSON Feed item without tags
    "Radio workshop for young reporters",  # RSS without any category
    "Bloom, Baby, Bloom!",  # Blogger: only the kind#post category, not a topic
]


def sections_of(text: str) -> dict[str, list[str]]:
    """{SECTION NAME: [article titles]} of a digest's plain-text part."""
    out: dict[str, list[str]] = {}
    lines = text.splitlines()
    current = None
    for line, underline in zip(lines, [*lines[1:], ""], strict=True):
        if underline and set(underline) == {"="} and line:
            current = out.setdefault(line, [])
        elif current is not None and line.startswith("* "):
            current.append(line[2:])
        elif line.startswith("-- "):
            current = None
    return out


@pytest.fixture
def newsdesk(run, tmp_path):
    """Every fixture feed ingested; lists `all` (every tag) and `world` (Haiti, Kenya), each
    with a weekly subscriber who takes every tag."""
    result = run("ingest", *sorted(str(p) for p in FEEDS.iterdir()))
    assert result.exit_code == 0, result.output
    run("lists", "create", "all", "--title", "All", "--from", FROM, "--weekly-day", "monday")
    run("lists", "create", "world", "--title", "World", "--from", FROM, "--tags", "Haiti,Kenya")
    for slug in ("all", "world"):
        run("subscribers", "add", f"{slug}@example.org", "--list", slug, "--confirmed",
            "--frequency", "weekly")  # fmt: skip
    return result


def preview(run, tmp_path, slug: str, address: str) -> tuple[str, str]:
    folder = tmp_path / f"preview-{slug}-{address}"
    result = run("preview", "--list", slug, "--date", ISSUE, "--as", address, "-o", str(folder))
    assert result.exit_code == 0, result.output
    return result.output, (folder / "message.txt").read_text(encoding="utf-8")


def test_ingest_says_how_many_new_articles_have_no_tag(newsdesk):
    assert newsdesk.output.splitlines()[-1] == (
        "7 of 14 new articles have no tag: they only reach lists that cover every tag;"
        " see `digest tags rule --help`"
    )


def test_a_list_covering_every_tag_shows_the_untagged_articles_last(run, tmp_path, newsdesk):
    # A subject naming the sections (the default names the top story instead).
    assert run("lists", "edit", "all", "--subject", "{tags} — {date}").exit_code == 0
    built = run("build", "--force", "--date", ISSUE, "--list", "all", "--frequency", "weekly")
    assert built.exit_code == 0, built.output
    assert "articles 13, sections 5 (Arts & Culture, Caribbean, Climate, Haiti, More stories)" in (
        built.output
    )
    assert "note: 7 articles of the period have no tag: they are in 'More stories'" in built.output
    report, text = preview(run, tmp_path, "all", "all@example.org")
    assert sections_of(text) == {
        "ARTS & CULTURE": [
            # Atom: term arts-culture, label Arts & Culture (also Haïti, which comes after)
            "Festival season opens in Jacmel",
            "Carnival bands rehearse under new rules",  # WordPress: Arts &amp; Culture, Haiti
        ],
        "CARIBBEAN": ["Ferry timetable changes"],  # Atom: the feed-level category
        "CLIMATE": ["Coral nurseries return to the reef"],  # Ghost: Climate, Oceans
        "HAITI": [
            "Cholera vaccines reach rural clinics",  # JSON Feed: "Kenya, Haiti", Health
            "Police and volunteers clear roads after the rains",  # "Kenya, Haiti, Police"
        ],
        "MORE STORIES": UNTAGGED,
    }
    assert "More stories    7 articles" in report
    # The untagged section is not a topic: the subject names the tags.
    assert "Subject: Arts & Culture, Caribbean, Climate, and Haiti — Jan 27" in report


def test_a_list_scoped_to_tags_never_shows_untagged_articles(run, tmp_path, newsdesk):
    built = run("build", "--force", "--date", ISSUE, "--list", "world", "--frequency", "weekly")
    assert "note: 7 articles of the period have no tag: not in this list" in built.output
    _, text = preview(run, tmp_path, "world", "world@example.org")
    assert sections_of(text) == {
        "HAITI": [
            "Cholera vaccines reach rural clinics",
            "Carnival bands rehearse under new rules",
            "Police and volunteers clear roads after the rains",
        ]
    }
    assert not any(title in text for title in UNTAGGED)


def test_merging_a_spelling_moves_its_articles_into_the_section(run, tmp_path, newsdesk):
    merged = run("tags", "merge", "Haiti", "Haïti")
    assert merged.output.splitlines()[0] == "merged Haïti (1 article) into Haiti: now 4 articles"
    _, text = preview(run, tmp_path, "world", "world@example.org")
    assert sections_of(text)["HAITI"][0] == "Festival season opens in Jacmel"


def test_a_subscriber_who_chose_topics_gets_no_more_stories(run, tmp_path, newsdesk):
    run("subscribers", "add", "kim@example.org", "--list", "all", "--confirmed",
        "--frequency", "weekly", "--tags", "Climate")  # fmt: skip
    _, text = preview(run, tmp_path, "all", "kim@example.org")
    assert sections_of(text) == {"CLIMATE": ["Coral nurseries return to the reef"]}


def test_the_untagged_title_is_the_lists(run, tmp_path, newsdesk):
    edited = run("lists", "edit", "all", "--untagged-title", "Also today")
    assert "  untagged:    Also today (last section)" in edited.output
    _, text = preview(run, tmp_path, "all", "all@example.org")
    assert sections_of(text)["ALSO TODAY"] == UNTAGGED
    empty = run("lists", "edit", "all", "--untagged-title", " ")
    assert empty.exit_code == 1 and "untagged title must not be empty" in empty.output


def test_hidden_tags_are_never_a_section(run, tmp_path, newsdesk):
    hid = run("tags", "hide", "Arts & Culture")
    assert hid.output == "hid Arts & Culture: never a section, never offered to subscribers\n"
    _, text = preview(run, tmp_path, "all", "all@example.org")
    sections = sections_of(text)
    assert "ARTS & CULTURE" not in sections
    # Carnival is also Haiti; Festival is also Haïti: both keep a section.
    assert "Carnival bands rehearse under new rules" in sections["HAITI"]
    assert sections["HAÏTI"] == ["Festival season opens in Jacmel"]


def test_an_article_whose_only_tag_is_hidden_is_in_more_stories(run, tmp_path, newsdesk):
    run("tags", "hide", "Caribbean")
    _, text = preview(run, tmp_path, "all", "all@example.org")
    assert "Ferry timetable changes" in sections_of(text)["MORE STORIES"]


def test_the_blogger_label_index_is_not_every_posts_topic(run, tmp_path, newsdesk):
    # The issue of 20 January covers the 13th-19th: Blogger's tagged post of the 18th.
    folder = tmp_path / "early"
    run("preview", "--list", "all", "--date", "2025-01-20", "--as", "all@example.org",
        "-o", str(folder))  # fmt: skip
    assert sections_of((folder / "message.txt").read_text()) == {
        "LOG CABIN": ["Log cabin blocks from the scrap bin"]
    }
    tags = run("tags", "list").output
    assert "spaghetti salad" not in tags and "banana bread" not in tags


def test_lead_images_and_excerpts_are_stored(run, newsdesk):
    import json

    articles = {a["title"]: a for a in json.loads(run("articles", "list", "--json").output)}
    library = articles["Volunteers rebuild the Jacmel library"]
    assert library["image"] == {
        "url": "https://islandvoices.example.org/wp-content/uploads/2025/01/library-1024x683.jpg",
        "width": 1024,
        "height": 683,
        "alt": "Volunteers carrying boxes of books into the library",
    }
    assert "appeared first" not in (library["summary"] or "")
    # Blogger: the 72x72 thumbnail is the blog's signature; the post's photo wins.
    bloom = articles["Bloom, Baby, Bloom!"]["image"]
    assert bloom["url"].endswith("/w640-h302/bloom.jpg") and bloom["width"] == 640
    # Substack: the image enclosure; its buttons and "Thanks for reading" box are gone.
    drought = articles["What the drought taught our cooperative"]
    assert drought["image"]["url"].startswith("https://substackcdn.com/image/fetch/")
    assert articles["Tide tables for February"]["image"] is None
    assert re.search(r"Subscribe now|Thanks for reading", drought["summary"] or "") is None
