"""The sanitiser against hostile and broken markup: nesting that made it quadratic, formatting
elements left open in every paragraph, self-closed non-void elements, ``<noscript>``, script and
style bodies, and URL attributes nh3 does not check. Also the invariants of ``balance``: it
never changes ordinary markup and never drops text."""

from __future__ import annotations

import random
import re
import time
from datetime import UTC, datetime

import pytest

from digest.articles.sanitize import (
    ALLOWED_ATTRIBUTES,
    CHECKED_URL_ATTRIBUTES,
    MAX_DEPTH,
    MAX_FORMATTING,
    balance,
    clean_html,
    html_to_text,
)
from digest.articles.writes import store_articles
from digest.ingest.sources import parse_bytes

NOW = datetime(2025, 1, 24, tzinfo=UTC)

OPEN_TAG = re.compile(r"<([a-z0-9]+)[\s>]")
CLOSE_TAG = re.compile(r"</([a-z0-9]+)>")


def max_depth(cleaned: str) -> int:
    """Nesting depth of nh3's (well-formed) output."""
    depth = deepest = 0
    for m in re.finditer(r"<(/?)([a-z0-9]+)[^>]*?(/?)>", cleaned):
        if m.group(2) in ("br", "img", "hr"):
            continue
        depth += -1 if m.group(1) else 1
        deepest = max(deepest, depth)
    return deepest


def best_of(n: int, call) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return min(times)


# ------------------------------------------------------------------ linear time


def test_deep_nesting_is_capped_and_keeps_every_word():
    n = 50_000
    nested = "".join(f"<div>w{i} " for i in range(n)) + "</div>" * n
    cleaned = clean_html(nested)
    assert max_depth(cleaned) <= MAX_DEPTH
    words = html_to_text(cleaned).split()
    assert words == [f"w{i}" for i in range(n)]


def test_nested_markup_costs_about_what_flat_markup_costs():
    """50,000 nested <div> took 5 s (the parser's work grew with the square of the depth); now
    the same bytes cost about as much nested as flat. The bound is loose: the machine is shared."""
    n = 50_000
    nested = "<div><p>x</p>" * n + "</div>" * n
    flat = "<div><p>x</p></div>" * n
    assert len(nested) == len(flat)
    t_flat = best_of(3, lambda: clean_html(flat))
    t_nested = best_of(3, lambda: clean_html(nested))
    assert t_nested < 3 * t_flat + 0.05, (t_nested, t_flat)


def test_formatting_left_open_is_not_recreated_without_bound():
    """Each paragraph re-creates the formatting elements still open: 2,000 paragraphs that each
    left a new <b> open became 14 MB. At most MAX_FORMATTING stay open now."""
    fragment = "".join(f"<p><b id=b{i}>word{i}" for i in range(2000))
    cleaned = clean_html(fragment)
    assert len(cleaned) < 40 * len(fragment)
    assert max_depth(cleaned) <= MAX_FORMATTING + 2
    assert html_to_text(cleaned).split() == [f"word{i}" for i in range(2000)]


@pytest.mark.parametrize(
    "piece",
    ["<span>", "<a href='https://e.org/'>", "<table><tr><td>", "<ul><li>", "<blockquote>",
     "<b><i><u>", "<font>", "<object>", "<select><option>"],
)  # fmt: skip
def test_any_repeated_opening_is_bounded(piece):
    fragment = (piece + "x ") * 20_000
    started = time.perf_counter()
    cleaned = clean_html(fragment)
    assert time.perf_counter() - started < 3
    # A table brings a tbody, a tr and a td the parser adds: up to four levels per counted one.
    assert max_depth(cleaned) <= 4 * MAX_DEPTH + 4


# ------------------------------------------------------------------ losses fixed


@pytest.mark.parametrize("element", ["iframe", "object", "div", "span", "script", "style", "a"])
def test_a_self_closed_non_void_element_is_empty(element):
    cleaned = clean_html(f'<p>Before</p><{element} data="x" title="a>b" /><p>After, kept.</p>')
    assert html_to_text(cleaned) == "Before\n\nAfter, kept."


def test_void_and_unquoted_slashes_are_left_alone():
    assert balance("<br/><img src=x.png /><a href=/a/>link</a>" * 100) == (
        "<br/><img src=x.png /><a href=/a/>link</a>" * 100
    )


def test_noscript_content_is_read_as_markup_and_sanitised():
    fragment = (
        '<p>Photo:</p><noscript><img src="https://e.org/a.jpg" alt="A" onerror="x()">'
        "<script>bad()</script></noscript><p>After</p>"
    )
    cleaned = clean_html(fragment)
    assert cleaned == '<p>Photo:</p><img src="https://e.org/a.jpg" alt="A"><p>After</p>'
    assert "&lt;" not in cleaned


@pytest.mark.parametrize(
    "fragment",
    [
        "<script>var secret = 1;</script><p>Text</p>",
        "<SCRIPT type='text/javascript'>var secret = 1;</SCRIPT ><p>Text</p>",
        "<style>p { secret: 1 }</style><p>Text</p>",
        "<p>Text</p><script>var secret = 1; // never closed",
        "<svg><style>secret{}</style></svg><p>Text</p>",
        "<noscript><script>secret()</script></noscript><p>Text</p>",
        "<script><!--<script>secret</script>secret--></script><p>Text</p>",
        "<template><p>secret</p></template><p>Text</p>",
        "<iframe>secret</iframe><p>Text</p>",
    ],
)
def test_script_and_style_bodies_never_become_text(fragment):
    text = html_to_text(clean_html(fragment))
    assert "secret" not in text
    assert "Text" in text or fragment.startswith("<p>Text</p><script>")


@pytest.mark.parametrize(
    "fragment",
    [
        '<blockquote cite="javascript:alert(1)">q</blockquote>',
        '<q cite="javascript:alert(1)">q</q>',
        '<img src="https://e.org/a.jpg" longdesc="javascript:alert(1)">',
        '<img src="https://e.org/a.jpg" srcset="javascript:alert(1) 1x">',
        '<del cite="javascript:alert(1)">d</del>',
        '<a href="javascript:alert(1)">a</a>',
        '<img src="javascript:alert(1)">',
        '<a href="  JaVaScRiPt:alert(1)">a</a>',
        '<a href="data:text/html,<script>alert(1)</script>">a</a>',
    ],
)
def test_no_url_attribute_passes_without_the_scheme_check(fragment):
    cleaned = clean_html(fragment)
    assert "javascript" not in cleaned.lower() and "data:" not in cleaned


def test_every_allowed_url_attribute_is_one_nh3_checks():
    url_like = {"href", "src", "cite", "longdesc", "srcset", "action", "poster", "data"}
    allowed = {a for attrs in ALLOWED_ATTRIBUTES.values() for a in attrs}
    assert allowed & url_like <= CHECKED_URL_ATTRIBUTES


# ------------------------------------------------------------------ invariants of balance

PIECES = [
    "<p>", "</p>", "<div>", "</div>", "<span class='a>b'>", "</span>", "<b>", "</b>",
    "<em>", "</em>", "<a href=\"https://e.org/?a=1&amp;b=2\">", "</a>", "<ul>", "<li>",
    "</li>", "</ul>", "<table>", "<tr>", "<td>", "</td>", "</table>", "<br>", "<br/>",
    "<img src=x.png>", "<!-- c -->", "word", "&amp;", " ", "\n", "a < b", "x>y",
]  # fmt: skip


def well_formed(rnd: random.Random, depth: int = 0) -> str:
    """Random markup as an editor writes it: every element closed, a few levels deep."""
    parts = []
    for _ in range(rnd.randint(1, 4)):
        kind = rnd.random()
        if kind < 0.4 or depth > 6:
            parts.append(
                rnd.choice(
                    [
                        "word ",
                        "x &amp; y ",
                        "a > b ",
                        "<br>",
                        "<br/>",
                        '<img src="x.png" alt="a>b"/>',
                        "<!-- note -->",
                    ]
                )
            )
        else:
            name = rnd.choice(["p", "div", "span", "b", "em", "a", "blockquote", "ul", "li"])
            attrs = rnd.choice(["", ' class="c"', " title='a>b'", ' href="https://e.org/?a=1"'])
            parts.append(f"<{name}{attrs}>{well_formed(rnd, depth + 1)}</{name}>")
    return "".join(parts)  # fmt: skip


def test_balance_leaves_ordinary_markup_unchanged():
    rnd = random.Random(11)
    for _ in range(150):
        fragment = "".join(well_formed(rnd) for _ in range(40))
        assert balance(fragment) == fragment


def test_balance_only_ever_removes_tags():
    rnd = random.Random(12)
    pieces = [p for p in PIECES if "<" not in p.strip("<")] + [
        "<div>", "<div>", "<b id=1>", "<i>", "<noscript>", "</noscript>", "<span title='x>y'>",
    ]  # fmt: skip
    for _ in range(300):
        fragment = "".join(rnd.choice(pieces) for _ in range(rnd.randint(200, 600)))
        balanced = balance(fragment)
        # What is left is the fragment with parts taken out, in order, and every word kept.
        rest = iter(fragment)
        assert all(ch in rest for ch in balanced), fragment
        assert balanced.count("word") == fragment.count("word")


def test_the_store_keeps_the_text_of_a_hostile_entry(db):
    content = (
        '<p>Start</p><iframe src="https://e.org/x"/><p>Middle</p>'
        + "<div>" * 30_000
        + "<noscript><img src='https://e.org/i.png'></noscript><p>End</p>"
    )
    feed = (
        '<rss version="2.0"><channel><title>T</title><item><link>https://e.org/h</link>'
        "<title>&lt;script&gt;var x;&lt;/script&gt;Hostile</title>"
        f"<description><![CDATA[{content}]]></description></item></channel></rss>"
    )
    started = time.perf_counter()
    report = store_articles(db, parse_bytes(feed.encode(), "t.xml"), now=NOW)
    assert time.perf_counter() - started < 5
    assert report.new == 1
    row = next(db.query("SELECT title, content_html, text FROM articles"))
    assert row["title"] == "Hostile"
    assert row["text"] == "Start\n\nMiddle\n\nEnd"
    assert '<img src="https://e.org/i.png">' in row["content_html"]
