"""A keyword rule's words are found by a ``re2.Set`` without their word boundaries, which are
then checked where the words occur (``tagrules._Boundaries``: compiling the boundary classes was
most of a rule set's build time). This checks, on thousands of generated keywords and texts,
that the two steps match exactly where the keyword's whole RE2 expression does."""

from __future__ import annotations

import random
import time
import unicodedata

import re2

from digest.articles.tagrules import ArticleFields, Rule, RuleSet, _options, keyword_pattern

# Letters (ASCII, accented, NFD pieces, CJK), digits, separators of several categories, the
# apostrophes and hyphens keywords treat alike, '_' (a word character), spaces and newlines.
ALPHABET = list("aAbkK9_ï") + ["i\u0308", "é", "É", "中", "-", "\u2011", "'", "’", ".", ",", "#",
                                "€", "«", " ", "  ", "\n", "\u00a0", "\u200b"]  # fmt: skip


def whole_expression_matches(keyword: str, text: str) -> bool:
    return re2.compile(keyword_pattern(keyword), _options()).search(text) is not None


def test_two_steps_match_exactly_where_the_whole_expression_does() -> None:
    rnd = random.Random(13)
    checked = matched = 0
    for _ in range(400):
        word = "".join(rnd.choice(ALPHABET) for _ in range(rnd.randint(1, 4))).strip()
        if not word or not any(ch.isalnum() for ch in word):
            continue
        keyword = word + ("*" if rnd.random() < 0.2 and word[-1].isalnum() else "")
        rules = RuleSet([Rule("T", keyword)])
        for _ in range(15):
            parts = [rnd.choice(ALPHABET) for _ in range(rnd.randint(0, 6))]
            parts.insert(rnd.randint(0, len(parts)), rnd.choice([word, word.upper(), word * 2]))
            text = "".join(parts)
            if rnd.random() < 0.3:
                text = unicodedata.normalize("NFD", text)
            expected = whole_expression_matches(keyword, text)
            assert bool(rules.apply(ArticleFields(title=text))) == expected, (keyword, text)
            checked += 1
            matched += expected
    assert checked > 4000 and 0.2 < matched / checked < 0.8  # both outcomes well covered


def test_overlapping_places_are_all_tried() -> None:
    rules = RuleSet([Rule("T", "a-a")])
    assert rules.apply(ArticleFields(title="xa-a-a"))  # the second place is a whole word
    assert not rules.apply(ArticleFields(title="xa-a-ax"))


def test_a_rule_set_builds_quickly() -> None:
    keywords = [f"Place{i} name{i}" for i in range(200)]
    started = time.perf_counter()
    rules = RuleSet(Rule(f"T{i % 7}", k, field="text" if i % 3 else "title")
                    for i, k in enumerate(keywords))  # fmt: skip
    assert time.perf_counter() - started < 0.5  # the boundary classes took ~2 ms a rule
    assert rules.apply(ArticleFields(text="in place17 NAME17, today")) == {"t3"}
