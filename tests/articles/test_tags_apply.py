"""Tag rules on a store of 1,000 articles with 20 rules, through the commands: `digest tags
apply` tags exactly the articles each rule's words are in (and not their near misses), reports
counts, changes nothing when run again, takes a removed rule's tags off without touching the
tags from sources; and ingesting with the rules in place tags the same articles."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from digest.articles.tags import tag_key
from digest.store import open_db

N = 1000
# (tag, pattern, field, feed: "a" | "b" | None, regex)
RULES = [
    ("Kenya", "Kenya", "title", None, False),
    ("Haiti", "Haïti", "title", None, False),
    ("Health", "cholera", "title", None, False),
    ("Climate", "climate change", "title", None, False),
    ("Haiti", "Port-au-Prince", "title", None, False),
    ("Haiti", "Jacmel*", "title", None, False),
    ("Climate", "drought relief", "text", None, False),
    ("Uganda", "Uganda", "title", None, False),
    ("Health", "malaria", "text", None, False),
    ("Weather", "hurricane", "text", None, False),
    ("Energy", "solar power", "text", None, False),
    ("Politics", "parliament", "text", None, False),
    ("Health", "vaccine rollout", "text", None, False),
    ("Weather", "floods", "text", None, False),
    ("Sport", "/sports?/", "url", None, True),
    ("Weather", "(cyclone|storm) (season|warning)", "text", None, True),
    ("Politics", r"\b\d{4} elections?\b", "title", None, True),
    ("Kenya", "Amina Otieno", "author", None, False),
    ("Economy", "budget", "title", "a", False),
    ("Markets", "market", "text", "b", False),
]
# (field, words put into it, the rule tag they should give; None: a near miss, no tag)
PLANTS = [
    ("title", "Kenya", "Kenya"),
    ("title", "KENYA's", "Kenya"),
    ("title", "Kenyan", None),
    ("title", "Haïti", "Haiti"),
    ("title", "HAÏTI", "Haiti"),
    ("title", "Haiti", None),  # accents count: a rule per spelling
    ("title", "cholera", "Health"),
    ("title", "Cholera", "Health"),
    ("title", "choleraic", None),
    ("title", "climate change", "Climate"),
    ("title", "climate\nchange", "Climate"),
    ("title", "Port-au-Prince", "Haiti"),
    ("title", "port\u2011au\u2011prince", "Haiti"),  # non-breaking hyphens
    ("title", "Jacmel", "Haiti"),
    ("title", "Jacmelians", "Haiti"),
    ("title", "Uganda", "Uganda"),
    ("title", "Ugandan", None),
    ("title", "2025 elections", "Politics"),
    ("title", "elections", None),
    ("title", "budget", "Economy"),  # only from feed a
    ("text", "malaria", "Health"),
    ("text", "hurricane", "Weather"),
    ("text", "hurricanes", None),
    ("text", "solar power", "Energy"),
    ("text", "solar powered", None),
    ("text", "Parliament", "Politics"),
    ("text", "vaccine rollout", "Health"),
    ("text", "floods", "Weather"),
    ("text", "storm warning", "Weather"),
    ("text", "cyclone season", "Weather"),
    ("text", "drought relief", "Climate"),
    ("text", "market", "Markets"),  # only from feed b
    ("text", "supermarket", None),
    ("url", "sport", "Sport"),
    ("url", "sports", "Sport"),
    ("url", "sporting", None),
    ("author", "Amina Otieno", "Kenya"),
]
FILLER = ["harvest", "rains", "school", "water", "bridge", "festival", "music", "river", "coast"]


def plants_of(i: int) -> list[tuple[str, str, str | None]]:
    chosen = [PLANTS[i % len(PLANTS)]]
    if i % 3 == 0:
        chosen.append(PLANTS[(i * 7 + 3) % len(PLANTS)])
    return chosen


def feed_of(i: int) -> str:
    return "a" if i < N // 2 else "b"


def source_tags(i: int) -> set[str]:
    tags = set()
    if i % 10 == 0:
        tags.add("Kenya")  # the source says Kenya itself: rules never take it off
    if i % 4 == 0:
        tags.add("News")
    return tags


def article(i: int) -> dict:
    words = [FILLER[(i + k) % len(FILLER)] for k in range(6)]
    fields = {"title": [f"Report {i}:", *words[:3]], "text": words[3:], "url": [], "author": []}
    for field, phrase, _ in plants_of(i):
        fields[field].append(phrase)
    path = "/".join(fields["url"]) or "news"
    return {
        "id": f"r-{i}",
        "title": " ".join(fields["title"]),
        "url": f"https://news.example.org/{path}/{i}",
        "author": " ".join(fields["author"]) or "Desk",
        "published": f"2025-01-{1 + i % 28:02d}T08:00:00Z",
        "content": "<p>" + " ".join(fields["text"]) + ".</p>",
        "tags": sorted(source_tags(i)),
    }


def rule_tags(i: int) -> set[str]:
    return {tag for _, _, tag in plants_of(i) if tag and (tag, feed_of(i)) != ("Economy", "b")
            and (tag, feed_of(i)) != ("Markets", "a")}  # fmt: skip


@pytest.fixture
def sources(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name in ("a", "b"):
        path = tmp_path / f"{name}.jsonl"
        rows = [article(i) for i in range(N) if feed_of(i) == name]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        out[name] = path
    return out


def add_rules(run, sources: dict[str, Path], db: str | None = None) -> None:
    where = ["--db", db] if db else []
    for tag, pattern, field, feed, regex in RULES:
        args = ["tags", "rule", "add", *where, tag, "--match", pattern, "--field", field]
        args += ["--feed", str(sources[feed])] if feed else []
        args += ["--regex"] if regex else []
        result = run(*args)
        assert result.exit_code == 0, result.output


def stored_tags(db_path: Path) -> dict[int, dict[str, str]]:
    """article number -> {tag name: origin}."""
    db = open_db(db_path)
    out: dict[int, dict[str, str]] = {i: {} for i in range(N)}
    for key, name, origin in db.execute(
        "SELECT a.key, t.name, at.origin FROM articles a JOIN article_tags at"
        " ON at.article_id = a.id JOIN tags t ON t.id = at.tag_id"
    ):
        out[int(key.removeprefix("id:r-"))][name] = origin
    db.close()
    return out


def test_tags_apply_tags_the_right_articles_and_is_idempotent(run, db_path, sources):
    for path in sources.values():
        assert run("ingest", str(path)).exit_code == 0
    add_rules(run, sources)
    assert len(run("tags", "rule", "list").output.splitlines()) == 20

    wanted = {i: rule_tags(i) - source_tags(i) for i in range(N)}
    added = Counter(tag for tags in wanted.values() for tag in tags)
    changed = sum(1 for tags in wanted.values() if tags)
    assert changed > 500 and all(added[tag] > 10 for tag, *_ in RULES)  # the test means something
    dry = run("tags", "apply", "--dry-run")
    assert stored_tags(db_path) == {i: dict.fromkeys(source_tags(i), "source") for i in range(N)}
    line = (
        f"1,000 articles checked: {changed:,} gain a tag ("
        + ", ".join(f"{t} {n:,}" for t, n in sorted(added.items(), key=lambda kv: tag_key(kv[0])))
        + f"); {N - changed:,} unchanged"
    )
    assert dry.output == f"dry run: {line}\n"
    assert run("tags", "apply").output == f"{line}\n"

    tags = stored_tags(db_path)
    for i in range(N):
        expected = dict.fromkeys(source_tags(i), "source") | dict.fromkeys(wanted[i], "rule")
        assert tags[i] == expected, (i, article(i))

    again = run("tags", "apply")
    assert again.output == "1,000 articles checked: nothing to change\n"
    assert stored_tags(db_path) == tags

    # Removing the title rule for Kenya takes its tags off; the Kenya the source gave (every
    # tenth article) and the one the author rule gives stay.
    kenya = next(line for line in run("tags", "rule", "list").output.splitlines()
                 if "Kenya <- title keyword 'Kenya'" in line)  # fmt: skip
    run("tags", "rule", "remove", kenya.split()[0])
    lose = [
        i
        for i in range(N)
        if "Kenya" in wanted[i] and not any(p[1] == "Amina Otieno" for p in plants_of(i))
    ]
    after = run("tags", "apply")
    assert after.output == (
        f"1,000 articles checked: {len(lose):,} lose one (Kenya {len(lose):,});"
        f" {N - len(lose):,} unchanged\n"
    )
    tags = stored_tags(db_path)
    assert all("Kenya" not in tags[i] for i in lose)
    assert all(tags[i].get("Kenya") == "source" for i in range(0, N, 10))


def test_ingest_with_the_rules_in_place_tags_the_same_articles(run, db_path, sources, tmp_path):
    add_rules(run, sources)
    for path in sources.values():
        result = run("ingest", str(path))
        assert result.exit_code == 0, result.output
    tags = stored_tags(db_path)
    for i in range(N):
        expected = dict.fromkeys(rule_tags(i) - source_tags(i), "rule")
        assert tags[i] == expected | dict.fromkeys(source_tags(i), "source"), (i, article(i))
    assert run("tags", "apply").output == "1,000 articles checked: nothing to change\n"


def test_apply_since_looks_only_at_recent_articles(run, sources):
    for path in sources.values():
        run("ingest", str(path))
    add_rules(run, sources)
    recent = sum(1 for i in range(N) if 1 + i % 28 >= 20)
    result = run("tags", "apply", "--since", "2025-01-20", "--dry-run")
    assert result.output.startswith(f"dry run: {recent:,} articles checked: ")
