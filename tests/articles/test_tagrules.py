"""Tag rules (digest.tagrules): keyword and regex matching, validation messages, and the
changes ``digest tags apply`` makes to stored articles (idempotent)."""

from __future__ import annotations

import random
import re
import unicodedata

import pytest

from digest.articles.tagrules import (
    ArticleFields,
    InvalidRule,
    Rule,
    RuleField,
    RuleSet,
    StoredTagging,
    TagChange,
    feed_key,
    rule_changes,
)
from digest.errors import DigestError


def tags_of(rules: list[Rule], **fields: str) -> set[str]:
    return set(RuleSet(rules).apply(ArticleFields(**fields)))


# ---------------------------------------------------------------------------- keywords


@pytest.mark.parametrize(
    ("keyword", "title", "matches"),
    [
        ("Haïti", "Haïti: les écoles rouvrent", True),
        ("Haïti", "HAÏTI: LES ÉCOLES ROUVRENT", True),
        ("Haïti", "en haïti", True),
        ("haïti", "Hai\u0308ti in NFD", True),  # decomposed ï
        ("Haïti", "Haiti without the diaeresis", False),  # accents count
        ("Kenya", "Kenya's elections", True),
        ("Kenya", "Kenya’s elections", True),
        ("Kenya", "Kenya-based NGOs", True),
        ("Kenya", "«Kenya»", True),
        ("Kenya", "(Kenya)", True),
        ("Kenya", "#Kenya", True),
        ("Kenya", "Kenyan runners", False),  # whole words
        ("Kenya", "Kenya2024", False),
        ("Kenya", "kenya_news", False),  # "_" is a word character
        ("Kenya", "Kenya\u200b", True),  # a zero-width space is a boundary
        ("Kenya*", "Kenyan runners", True),  # a trailing * makes a prefix
        ("Kenya*", "Kenyans", True),
        ("Kenya*", "Kenya", True),
        ("Kenya*", "Tanzania", False),
        ("climate change", "Climate\n  change talks", True),
        ("climate change", "climatechange", False),
        ("Côte d'Ivoire", "Côte d’Ivoire votes", True),
        ("Port-au-Prince", "Port\u2011au\u2011Prince", True),  # non-breaking hyphens
        ("C++", "Learning C++ in 2025", True),
        ("C++", "C++11", True),  # the keyword ends in a symbol: no boundary wanted after it
        ("C++", "ABC++", False),
        ("Straße", "STRASSE", False),  # RE2 uses simple case folding
        ("東京", "東京で会議", False),  # no spaces between CJK words: whole words fail here
        ("東京", "会議は 東京 で", True),
        ("Ελλάδα", "ΕΛΛΆΔΑ", True),
        ("police", "Policeman", False),
        ("a.b", "axb", False),  # keywords are literal
    ],
)
def test_keyword_matching(keyword: str, title: str, matches: bool) -> None:
    assert tags_of([Rule("T", keyword)], title=title) == ({"t"} if matches else set())


def test_keyword_rules_look_at_their_field_only() -> None:
    rules = [
        Rule("Haiti", "Haïti"),  # title by default
        Rule("Kenya", "Kenya", field=RuleField.TEXT),
        Rule("Sport", "sport", field="url"),
        Rule("Desk", "Jean Pierre", field="author"),
        Rule("Wire", "wire.example.com", field="source"),
    ]
    fields = ArticleFields(
        title="Kenya and Haïti",
        text="A report on Kenya.",
        url="https://news.example.org/sport/123",
        author="Jean  Pierre",
        source="https://wire.example.com/feed",
    )
    assert RuleSet(rules).apply(fields) == {"haiti", "kenya", "sport", "desk", "wire"}
    assert RuleSet(rules).apply(ArticleFields(text="Haïti", title="Kenya")) == set()


def test_feed_scoped_rules_only_tag_that_feeds_articles() -> None:
    rules = RuleSet([Rule("Police", "police", feed="https://Example.org/feed/")])
    assert rules.apply(ArticleFields(title="Police", source="https://example.org/feed")) == {
        "police"
    }
    assert rules.apply(ArticleFields(title="Police", source="https://other.org/feed")) == set()
    assert rules.apply(ArticleFields(title="Police")) == set()
    assert feed_key(" HTTPS://Example.org/feed/ ") == "https://example.org/feed"


def test_several_rules_one_tag_and_one_pattern_several_tags() -> None:
    rules = RuleSet(
        [
            Rule("Haiti", "Haïti"),
            Rule("Haiti", "Haiti"),
            Rule("Caribbean", "Haiti"),
            Rule("haiti", "Port-au-Prince"),  # the same tag by key
        ]
    )
    assert rules.apply(ArticleFields(title="Haiti")) == {"haiti", "caribbean"}
    assert rules.apply(ArticleFields(title="Port-au-Prince")) == {"haiti"}
    assert rules.tags["haiti"].name == "Haiti"  # the first rule's spelling
    assert len(rules) == 4 and bool(rules) and not RuleSet()


def test_empty_ruleset_and_empty_fields() -> None:
    assert RuleSet().apply(ArticleFields(title="anything")) == frozenset()
    assert RuleSet([Rule("T", "x", field="author")]).apply(ArticleFields(author=None)) == set()


# ---------------------------------------------------------------------------- regex


def test_regex_rules_are_case_insensitive_unless_they_say_otherwise() -> None:
    assert tags_of([Rule("S", r"/sports?/", field="url", regex=True)], url="https://x/SPORT/1")
    assert not tags_of(
        [Rule("S", r"(?-i)/sport/", field="url", regex=True)], url="https://x/SPORT/"
    )
    assert tags_of([Rule("V", r"\bvaccin(e|ation)s?\b", regex=True)], title="Vaccinations rise")
    assert tags_of([Rule("U", r"^\pLlection", regex=True)], title="Élection")


def test_regex_catastrophic_backtracking_is_impossible() -> None:
    # Python's re takes exponential time on this; RE2 is linear.
    text = "a" * 100_000 + "!"
    assert tags_of([Rule("X", r"(a+)+$", regex=True)], text=text, title=text) == set()
    assert tags_of([Rule("X", r"(a|a)*b", regex=True)], title="a" * 50_000 + "b") == {"x"}


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("ab(c", "regex 'ab(c', column 3: missing )"),
        ("ab)c", "regex 'ab)c', column 3: unexpected )"),
        ("(a(b)c", "regex '(a(b)c', column 1: missing )"),
        ("a[bc", "regex 'a[bc', column 2: missing ]"),
        ("a**", "regex 'a**', column 2: bad repetition operator"),
        ("[z-a]", "regex '[z-a]', column 2: invalid character class range"),
        ("x{2,1}", "regex 'x{2,1}', column 2: invalid repetition size"),
        (
            "Kenya(?=n)",
            "regex 'Kenya(?=n)', column 6: invalid perl operator (rules use RE2: no lookaround,"
            " no backreferences)",
        ),
        (r"(a)\1", "column 4: invalid escape sequence (rules use RE2"),
        (r"\bélection\b", r"column 1: \b only knows ASCII letters"),
    ],
)
def test_invalid_regex_says_where_and_why(pattern: str, message: str) -> None:
    with pytest.raises(InvalidRule) as e:
        Rule("T", pattern, regex=True)
    assert message in str(e.value)
    assert isinstance(e.value, DigestError)


def test_invalid_rules_are_refused_when_created(capfd: pytest.CaptureFixture[str]) -> None:
    for kwargs, message in [
        ({"tag": "T", "pattern": "   "}, "rule pattern is empty"),
        ({"tag": "T", "pattern": "*"}, "a keyword rule needs a word before '*'"),
        ({"tag": "  ", "pattern": "x"}, "rule tag '  ' is empty or too long"),
        ({"tag": "T", "pattern": "x" * 501}, "rule pattern is 501 characters; at most 500"),
        ({"tag": "T", "pattern": "x", "field": "body"}, "unknown rule field 'body' (use one of:"),
    ]:
        with pytest.raises(InvalidRule) as e:
            Rule(**kwargs)  # type: ignore[arg-type]
        assert message in str(e.value)
    with pytest.raises(InvalidRule):
        Rule("T", "(unclosed", regex=True)
    assert capfd.readouterr().err == ""  # RE2 logs nothing to stderr


def test_rule_is_normalised_and_described() -> None:
    rule = Rule(" Arts  &  Culture ", "  carnival ", field="title", feed="HTTPS://X.org/feed/")
    assert (rule.tag, rule.pattern, rule.feed, rule.tag_key) == (
        "Arts & Culture",
        "carnival",
        "https://x.org/feed",
        "arts & culture",
    )
    assert rule.describe() == "Arts & Culture <- title keyword 'carnival' in https://x.org/feed"


def test_many_rules_on_a_large_unicode_text_still_match() -> None:
    # The DFA of a large Set on 200 KB of mixed scripts must not run out of memory (RE2 then
    # reports no match rather than an error).
    rnd = random.Random(7)
    alphabet = "abcdefghijklmnopqrstuvwxyz éàüßø中文字한국어ΑΒΓабв,.;«»"
    words = ["".join(rnd.choice("bcdfghjklmnpqrstvwxz") for _ in range(9)) for _ in range(300)]
    rules = RuleSet([Rule(f"T{i}", w, field="text") for i, w in enumerate(words)])
    text = "".join(rnd.choice(alphabet) for _ in range(200_000))
    assert rules.apply(ArticleFields(text=text + " " + words[-1].upper() + ".")) == {"t299"}


# ---------------------------------------------------------------------------- stored articles

COUNTRIES = ["Kenya", "Haïti", "Uganda", "Ghana", "Senegal", "Malawi", "Zambia", "Rwanda"]
TOPICS = ["cholera", "floods", "elections", "drought relief", "coral reef", "police"]
FILLER = [
    "the",
    "council",
    "met",
    "on",
    "tuesday",
    "to",
    "discuss",
    "the",
    "road",
    "budget",
    "and",
    "the",
    "new",
    "market",
]


def oracle(rules: list[Rule], fields: ArticleFields) -> set[str]:
    """Independent keyword matching with Python's re (Unicode \\w), for checking RuleSet."""
    out = set()
    for rule in rules:
        value = getattr(fields, rule.field.value) or ""
        value = unicodedata.normalize("NFC", value)
        words = r"\s+".join(re.escape(w) for w in rule.pattern.split())
        if re.search(rf"(?<!\w){words}(?!\w)", value, re.I):
            out.add(rule.tag_key)
    return out


def stored_articles(n: int) -> list[StoredTagging]:
    rnd = random.Random(2025)
    out = []
    for i in range(n):
        words = [rnd.choice(FILLER) for _ in range(300)]
        for _ in range(rnd.randrange(0, 3)):  # plant up to two keywords, some as substrings
            words.insert(rnd.randrange(len(words)), rnd.choice(COUNTRIES + TOPICS))
        if rnd.random() < 0.1:
            words.insert(5, "Kenyan")  # must not match "Kenya"
        title = " ".join(words[:8]).capitalize()
        source_tags = frozenset({"health"} if i % 7 == 0 else ())
        out.append(StoredTagging(i, ArticleFields(title=title, text=" ".join(words)), source_tags))
    return out


def applied(articles: list[StoredTagging], changes: list[TagChange]) -> list[StoredTagging]:
    by_id = {c.article_id: c for c in changes}
    out = []
    for a in articles:
        c = by_id.get(a.article_id)
        if c is None:
            out.append(a)
            continue
        rule_tags = (a.rule_tags | c.added) - c.removed
        tags = (a.tags | c.added) - c.removed
        out.append(StoredTagging(a.article_id, a.fields, tags, rule_tags))
    return out


def test_apply_20_rules_to_1000_stored_articles_is_right_and_idempotent() -> None:
    rules = [Rule(c, c, field="text") for c in COUNTRIES]
    rules += [Rule(t.title(), t, field="text") for t in TOPICS]
    rules += [Rule("Health", "cholera", field="text"), Rule("Africa", "Kenya", field="text")]
    rules += [Rule("Africa", "Uganda", field="text"), Rule("Caribbean", "Haïti", field="text")]
    rules += [Rule("Council", "council", field="title"), Rule("Budget", "budget", field="title")]
    assert len(rules) == 20
    ruleset = RuleSet(rules)
    articles = stored_articles(1000)

    report = rule_changes(articles, ruleset)
    assert report.examined == 1000
    by_id = {c.article_id: c for c in report.changes}
    for a in articles:
        expected = oracle(rules, a.fields) - a.tags
        change = by_id.get(a.article_id)
        assert (change.added if change else frozenset()) == expected, a.article_id
    assert not report.removed
    assert report.added["health"] == sum(
        1 for a in articles if "health" not in a.tags and "cholera" in a.fields.text.lower()
    )
    assert 300 < report.changed < 1000

    after = applied(articles, report.changes)
    again = rule_changes(after, ruleset)
    assert (again.changed, again.examined) == (0, 1000)
    assert again.summary_line() == "1,000 articles checked: nothing to change"

    # Removing rules removes only the tags they gave; tags from sources stay.
    fewer = RuleSet([r for r in rules if r.tag not in ("Health", "Council")])
    undo = rule_changes(after, fewer)
    assert set(undo.removed) == {"health", "council"}
    assert not undo.added
    final = applied(after, undo.changes)
    for before, now in zip(articles, final, strict=True):
        assert before.tags <= now.tags or "council" in before.tags  # source tags are kept
        assert "health" in now.tags if "health" in before.tags else "health" not in now.tags
    assert rule_changes(final, fewer).changed == 0


def test_summary_line_names_the_tags() -> None:
    articles = [
        StoredTagging(1, ArticleFields(title="Kenya"), frozenset()),
        StoredTagging(2, ArticleFields(title="Haïti"), frozenset({"x"}), frozenset({"x"})),
        StoredTagging(3, ArticleFields(title="nothing"), frozenset()),
    ]
    rules = RuleSet([Rule("Kenya", "Kenya"), Rule("Haiti", "Haïti")])
    report = rule_changes(articles, rules)
    assert [(c.article_id, set(c.added), set(c.removed)) for c in report.changes] == [
        (1, {"kenya"}, set()),
        (2, {"haiti"}, {"x"}),
    ]
    names = {k: t.name for k, t in rules.tags.items()} | {"x": "Old rule"}
    assert report.summary_line(names) == (
        "3 articles checked: 2 gain a tag (Haiti 1, Kenya 1), 1 lose one (Old rule 1); 1 unchanged"
    )


def test_a_tag_the_source_gave_is_not_added_again_as_a_rule_tag() -> None:
    article = StoredTagging(1, ArticleFields(title="Kenya"), frozenset({"kenya"}))
    assert rule_changes([article], RuleSet([Rule("Kenya", "Kenya")])).changed == 0


def test_a_rule_can_name_the_stored_key_of_its_tag() -> None:
    # A tag keyed by an Atom term ("arts-culture") or renamed keeps its stored key.
    rule = Rule("Arts & Culture", "carnival", key="arts-culture")
    assert rule.tag_key == "arts-culture"
    rules = RuleSet([rule])
    assert rules.apply(ArticleFields(title="Carnival")) == {"arts-culture"}
    assert rules.tags["arts-culture"].name == "Arts & Culture"
    assert Rule("Arts & Culture", "carnival").tag_key == "arts & culture"
