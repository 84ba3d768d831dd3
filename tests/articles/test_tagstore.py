"""The tag store and `digest tags`: where tags come from (origins), Atom terms as aliases,
renaming and merging (later articles with the old spelling land in the new tag, lists and
subscriptions follow), hiding, rules and their errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from digest.articles import tagstore
from digest.articles.inputs import ArticleInput
from digest.articles.reads import list_articles
from digest.articles.tagging import Tag, make_tag
from digest.articles.writes import store_batch
from digest.audience.lists import create_list, get_list
from digest.audience.subscriptions import add_subscription, find_subscription

NOW = datetime(2025, 1, 24, 12, 0, tzinfo=UTC)


def item(n: int, *tags: str | Tag, **kw) -> ArticleInput:
    fields = {
        "entry": f"entry {n}",
        "title": f"Story {n}",
        "url": f"https://news.example.org/{n}",
        "guid": f"g-{n}",
        "published": datetime(2025, 1, 20, n % 24, tzinfo=UTC),
        "content_html": f"<p>Body of story {n}.</p>",
        "tags": tuple(t if isinstance(t, Tag) else make_tag(t) for t in tags),
    }
    fields.update(kw)
    return ArticleInput(**fields)


def store(db, *items, **kw):
    return store_batch(db, list(items), source=kw.pop("source", "test.xml"), now=NOW, **kw)


def tags_of(db, n: int) -> dict[str, str]:
    """{tag name: origin} of article n (by guid)."""
    return dict(
        db.execute(
            "SELECT t.name, at.origin FROM articles a JOIN article_tags at ON at.article_id = a.id"
            " JOIN tags t ON t.id = at.tag_id WHERE a.key = ?",
            [f"id:g-{n}"],
        ).fetchall()
    )


def test_origins_source_feed_and_rule(db):
    tagstore.add_rule(db, "Health", "cholera", now=NOW)
    store(db, item(1, "Kenya", title="Cholera in Kisumu"), tags=["World"])
    assert tags_of(db, 1) == {"Kenya": "source", "World": "feed", "Health": "rule"}
    # The source now says Health too: the tag becomes the source's and no rule removes it.
    store(db, item(1, "Kenya", "Health", title="Cholera in Kisumu"))
    assert tags_of(db, 1)["Health"] == "source"
    (rule,) = tagstore.list_rules(db)
    tagstore.remove_rule(db, rule.id)
    report, _ = tagstore.apply_rules(db)
    assert report.changed == 0 and tags_of(db, 1)["Health"] == "source"


def test_an_updated_article_loses_the_rule_tags_its_new_text_does_not_match(db):
    tagstore.add_rule(db, "Health", "cholera", now=NOW)
    store(db, item(1, title="Cholera in Kisumu"))
    assert tags_of(db, 1) == {"Health": "rule"}
    report = store(db, item(1, title="Rains in Kisumu"))
    assert report.updated == 1 and tags_of(db, 1) == {}


def test_an_atom_term_is_an_alias_of_the_tag_named_by_its_label(db):
    store(db, item(1, "Arts & Culture"))
    store(db, item(2, Tag("arts-culture", "Arts & Culture")))  # term, label
    store(db, item(3, Tag("arts-culture", "Arts and Culture")))  # the label changed later
    names = [a.tag_names for a in list_articles(db)]
    assert names == [["Arts & Culture"]] * 3
    (stats,) = tagstore.tag_stats(db)
    assert stats.tag.key == "arts & culture" and stats.aliases == ("arts-culture",)


def test_rename_keeps_the_old_spelling_as_an_alias_for_later_articles(run, db):
    store(db, item(1, "kenya"))
    create_list(db, "world", title="W", from_addr="w@example.com", tags=["kenya", "Haiti"],
                now=NOW)  # fmt: skip
    mlist = get_list(db, "world")
    add_subscription(db, mlist, "ann@example.com", tags=["kenya"], confirmed=True,
                     source="test", now=NOW)  # fmt: skip
    result = run("tags", "rename", "kenya", "East Africa")
    assert result.output == (
        "renamed kenya to East Africa\n"
        "  lists: world\n"
        "  subscriptions that follow it: 1\n"
        "  later articles tagged 'kenya' land in East Africa\n"
    )
    store(db, item(2, "Kenya"))  # the old spelling, any case
    assert [a.tag_names for a in list_articles(db)] == [["East Africa"], ["East Africa"]]
    assert get_list(db, "world").tags == ("East Africa", "Haiti")
    assert find_subscription(db, get_list(db, "world"), "ann@example.com").tags == ("east africa",)
    # A list created later with the old name covers the renamed tag.
    create_list(db, "old", title="O", from_addr="o@example.com", tags=["KENYA"], now=NOW)
    assert get_list(db, "old").tags == ("East Africa",)


def test_renaming_only_the_case_changes_the_name_and_keeps_the_key(run, db):
    store(db, item(1, "kenya"))
    assert run("tags", "rename", "kenya", "Kenya").output == "renamed kenya to Kenya\n"
    assert tagstore.find_tag(db, "KENYA").name == "Kenya"
    assert [s.aliases for s in tagstore.tag_stats(db)] == [()]


def test_rename_to_another_tags_name_is_refused_with_the_merge_command(run, db):
    store(db, item(1, "Kenya", "kenya news"))
    result = run("tags", "rename", "kenya news", "KENYA")
    assert result.exit_code == 1
    assert result.output == (
        "Error: tag 'Kenya' exists already; to make one tag of the two:"
        ' digest tags merge Kenya "kenya news"\n'
    )
    assert run("tags", "rename", "nope", "x").output == (
        "Error: no tag 'nope'; `digest tags list` shows every tag\n"
    )
    assert "did you mean 'kenya news'" in run("tags", "rename", "news", "x").output
    assert run("tags", "rename", "Kenya", " ").output == (
        "Error: tag name ' ' is empty or longer than 100 characters\n"
    )


def test_merge_moves_articles_rules_lists_and_subscriptions(run, db):
    store(db, item(1, "Kenya"), item(2, "kenya-news"), item(3, "Kenya News", "kenya-news"))
    tagstore.add_rule(db, "kenya-news", "Kisumu", now=NOW)
    tagstore.add_rule(db, "Kenya", "Kisumu", now=NOW)  # the same rule once merged: kept once
    store(db, item(4, title="Rains in Kisumu"))
    create_list(db, "world", title="W", from_addr="w@example.com",
                tags=["kenya-news", "Haiti", "Kenya"], now=NOW)  # fmt: skip
    mlist = get_list(db, "world")
    add_subscription(db, mlist, "ann@example.com", tags=["kenya-news", "Haiti"], confirmed=True,
                     source="test", now=NOW)  # fmt: skip
    result = run("tags", "merge", "Kenya", "kenya-news", "Kenya News")
    assert result.output == (
        "merged kenya-news (3 articles), Kenya News (1 article) into Kenya: now 4 articles\n"
        "  lists: world\n"
        "  subscriptions that follow it: 1\n"
        "  later articles tagged 'kenya-news' or 'Kenya News' land in Kenya\n"
    )
    assert [a.tag_names for a in list_articles(db)] == [["Kenya"]] * 4
    assert tags_of(db, 4) == {"Kenya": "rule"}
    assert [r.rule.tag for r in tagstore.list_rules(db)] == ["Kenya"]
    assert get_list(db, "world").tags == ("Kenya", "Haiti")
    assert find_subscription(db, get_list(db, "world"), "ann@example.com").tags == (
        "kenya",
        "haiti",
    )
    store(db, item(5, "KENYA NEWS"))
    assert tags_of(db, 5) == {"Kenya": "source"}
    assert tagstore.apply_rules(db)[0].changed == 0
    # Merging a tag into itself is refused; nothing changed.
    assert run("tags", "merge", "Kenya", "kenya").output == (
        "Error: 'kenya' is the tag 'Kenya' itself\n"
    )


def test_merge_keeps_the_strongest_origin(db):
    tagstore.add_rule(db, "Kenya", "Kisumu", now=NOW)
    store(db, item(1, "kenya-news", title="Kisumu"))
    assert tags_of(db, 1) == {"kenya-news": "source", "Kenya": "rule"}
    tagstore.merge_tags(db, "Kenya", ["kenya-news"], now=NOW)
    assert tags_of(db, 1) == {"Kenya": "source"}


def test_hide_and_unhide(run, db):
    store(db, item(1, "Featured", "Kenya"), item(2, "Featured"))
    assert run("tags", "hide", "featured").output == (
        "hid Featured: never a section, never offered to subscribers\n"
    )
    by_title = {a.title: a.tag_names for a in list_articles(db)}
    assert by_title == {"Story 1": ["Kenya"], "Story 2": []}
    assert tagstore.count_untagged(db) == 1
    listed = run("tags", "list").output
    assert "Featured (hidden)" in listed
    assert listed.splitlines()[-1] == (
        "1 article without a tag: they only reach lists that cover every tag"
        " (see `digest tags rule --help`)"
    )
    assert run("tags", "unhide", "Featured").output == "Featured is shown again\n"
    assert tagstore.count_untagged(db) == 0


def test_tags_list_json(run, db):
    store(db, item(1, "Kenya"), item(30, "Kenya", "Haiti"))
    create_list(db, "world", title="W", from_addr="w@example.com", tags=["Kenya"], now=NOW)
    create_list(db, "all", title="A", from_addr="a@example.com", now=NOW)
    tagstore.add_rule(db, "Haiti", "Jacmel", now=NOW)
    rows = json.loads(run("tags", "list", "--json").output)
    assert rows == [
        {
            "name": "Haiti",
            "key": "haiti",
            "articles": 1,
            "first_seen": "2025-01-20T06:00:00.000000+00:00",
            "last_seen": "2025-01-20T06:00:00.000000+00:00",
            "hidden": False,
            "rules": 1,
            "aliases": [],
            "lists": ["all (every tag)"],
        },
        {
            "name": "Kenya",
            "key": "kenya",
            "articles": 2,
            "first_seen": "2025-01-20T01:00:00.000000+00:00",
            "last_seen": "2025-01-20T06:00:00.000000+00:00",
            "hidden": False,
            "rules": 0,
            "aliases": [],
            "lists": ["world", "all (every tag)"],
        },
    ]


def test_rule_commands_and_their_errors(run, db):
    added = run("tags", "rule", "add", "Haiti", "--match", "Haïti")
    assert added.output == (
        "added rule 1  Haiti <- title keyword 'Haïti'\n"
        "  it tags articles ingested from now on; `digest tags apply` tags stored ones\n"
    )
    run("tags", "rule", "add", "Sport", "--match", "/sports?/", "--field", "url", "--regex",
        "--feed", "HTTPS://News.Example.org/feed/")  # fmt: skip
    assert run("tags", "rule", "list").output == (
        "1  Haiti <- title keyword 'Haïti'\n"
        "2  Sport <- url regex '/sports?/' in https://news.example.org/feed\n"
    )
    again = run("tags", "rule", "add", "haiti", "--match", "  Haïti ")
    assert again.exit_code == 1
    assert again.output == "Error: rule 1 is the same rule: Haiti <- title keyword 'Haïti'\n"
    bad = run("tags", "rule", "add", "X", "--match", "(a+", "--regex")
    assert bad.output == "Error: regex '(a+', column 1: missing )\n"
    look = run("tags", "rule", "add", "X", "--match", "(?=a)b", "--regex")
    assert "rules use RE2: no lookaround, no backreferences" in look.output
    ascii_b = run("tags", "rule", "add", "X", "--match", r"\bÉtat\b", "--regex")
    assert "use a keyword rule" in ascii_b.output
    long = run("tags", "rule", "add", "X", "--match", "a" * 501)
    assert long.output == "Error: rule pattern is 501 characters; at most 500\n"
    field = run("tags", "rule", "add", "X", "--match", "a", "--field", "body")
    assert field.exit_code == 2 and "'body' is not one of" in field.output
    assert run("tags", "rule", "remove", "9").output == (
        "Error: no tag rule 9 (`digest tags rule list` shows them)\n"
    )
    # Nothing was stored by the refused rules, not even their tag.
    assert [r.id for r in tagstore.list_rules(db)] == [1, 2]
    assert [s.tag.name for s in tagstore.tag_stats(db)] == ["Haiti", "Sport"]
    as_json = json.loads(run("tags", "rule", "list", "--json").output)
    assert as_json[1] == {
        "id": 2,
        "tag": "Sport",
        "pattern": "/sports?/",
        "field": "url",
        "feed": "https://news.example.org/feed",
        "regex": True,
        "created_at": as_json[1]["created_at"],
    }
    removed = run("tags", "rule", "remove", "1")
    assert removed.output.startswith("removed rule 1  Haiti <- title keyword 'Haïti'\n")


def test_a_rule_scoped_to_a_feed_tags_only_its_articles(db):
    tagstore.add_rule(db, "Local", "council", feed="https://a.example/feed.xml", now=NOW)
    store(db, item(1, title="Council meets"), source="https://a.example/feed.xml")
    store(db, item(2, title="Council meets"), source="https://b.example/feed.xml")
    assert tags_of(db, 1) == {"Local": "rule"} and tags_of(db, 2) == {}


def test_hostile_tag_names_and_patterns_stay_data(run, db):
    # Markup, SQL and control characters in tag names are names, never structure.
    for name in ("<script>x</script>", "'; DROP TABLE tags; --", "a\u0000b\r\nc"):
        assert run("tags", "rule", "add", name, "--match", "x").exit_code == 0
    names = {s.tag.name for s in tagstore.tag_stats(db)}
    assert names == {"<script>x</script>", "'; DROP TABLE tags; --", "abc"}
    # A pattern RE2 runs in linear time: no catastrophic backtracking at ingest.
    tagstore.add_rule(db, "Slow", "(a+)+$", regex=True, now=NOW)
    started = datetime.now()
    store(db, item(1, title="a" * 5000 + "!"))
    assert (datetime.now() - started).total_seconds() < 5


def test_untagged_count_on_ingest_counts_only_new_articles(run, tmp_path: Path):
    feed = tmp_path / "f.jsonl"
    rows = [{"id": "a", "title": "A", "url": "https://x.example/a", "content": "A"},
            {"id": "b", "title": "B", "url": "https://x.example/b", "content": "B",
             "tags": ["Kenya"]}]  # fmt: skip
    feed.write_text("".join(json.dumps(r) + "\n" for r in rows))
    first = run("ingest", str(feed))
    assert first.output.splitlines()[-1] == (
        "1 of 2 new articles has no tag: they only reach lists that cover every tag;"
        " see `digest tags rule --help`"
    )
    rows[0]["title"] = "A again"  # updated, not new: not counted
    feed.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert "no tag" not in run("ingest", str(feed)).output
