"""html_to_text's fast paths give exactly what the plain regex pipeline gives."""

from __future__ import annotations

import html
import random
import re

from digest.articles.sanitize import clean_html, html_to_text

_BLOCK = re.compile(r"</?(p|div|br|li|h[1-6]|tr|blockquote|pre|ul|ol|table|figure)\b[^>]*>", re.I)


def reference_html_to_text(fragment: str) -> str:
    """The straightforward version html_to_text must stay equal to."""
    text = _BLOCK.sub("\n", fragment)
    text = html.unescape(re.sub(r"<[^>]+>", "", text))
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    lines = [line.strip() for line in text.split("\n")]
    return re.sub(r"\n\s*\n+", "\n\n", "\n".join(lines)).strip()


PIECES = [
    "<p>", "</p>", "<P class='x'>", "<br>", "<br/>", "<div>", "</div>", "<li>", "<h2>", "</h2>",
    "<em>", "</em>", "<a href=\"https://example.org/?a=1&amp;b=2\">", "</a>", "<pre>", "</pre>",
    "word", "Wörter", "言葉", " ", "  ", "\t", "\r\n", "\n", "\n\n\n", "\u00a0", "\u2028",
    "&amp;", "&lt;b&gt;", "&nbsp;", "&#9;", "&#x2003;", "\f", "\v", "<>", "a < b", "x>y",
]  # fmt: skip


def test_html_to_text_matches_reference_on_generated_fragments():
    rnd = random.Random(7)
    for _ in range(3000):
        fragment = "".join(rnd.choice(PIECES) for _ in range(rnd.randint(0, 40)))
        assert html_to_text(fragment) == reference_html_to_text(fragment), fragment
        cleaned = clean_html(fragment)
        assert html_to_text(cleaned) == reference_html_to_text(cleaned), cleaned


def test_html_to_text_blocks_spaces_and_blank_lines():
    assert html_to_text("<h1>Title</h1><p>One&nbsp;two\t three</p>\n\n\n<p> Four </p>") == (
        "Title\n\nOne\u00a0two three\n\nFour"
    )
