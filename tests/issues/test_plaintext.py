"""Plain text wrapped by display width: CJK lines break between characters at 78 columns,
never before closing punctuation, never inside a URL or a Latin word."""

from __future__ import annotations

import textwrap
from pathlib import Path

import feedparser
import pytest
from email_samples import env, settings, story, view

from digest.issues.compose import render_digest_email
from digest.plaintext import display_width, wrap

CORPUS = Path(__file__).parents[2] / ".." / "shared" / "corpus"
JAPANESE = (
    "東京で大雪、交通機関に乱れ。気象庁によると、今夜から明日朝にかけて関東地方の平野部でも"
    "積雪のおそれがあり、「不要不急の外出を控えて」と呼びかけています。"
)


def test_a_long_japanese_line_wraps_at_78_columns():
    assert len(JAPANESE) == 76 and display_width(JAPANESE) == 152
    lines = wrap(JAPANESE, indent="  ").splitlines()
    assert len(lines) == 2
    assert all(display_width(line) <= 78 for line in lines)
    assert "".join(line.strip() for line in lines) == JAPANESE


def test_closing_punctuation_never_starts_a_line_and_opening_never_ends_one():
    text = "あ" * 38 + "。「" + "い" * 10 + "」"
    for width in range(10, 90):
        lines = wrap(text, width=width).splitlines()
        assert all(line[0] not in "。、」）" for line in lines)
        assert all(line[-1] not in "「（" for line in lines)
        assert "".join(lines) == text


def test_urls_and_latin_words_are_never_broken_and_ascii_wraps_as_before():
    url = "https://example.jp/news/" + "x" * 90
    lines = wrap(JAPANESE + " " + url + " 終わり", indent="  ").splitlines()
    assert any(line.strip() == url for line in lines)
    english = "The quick brown fox jumps over the lazy dog. " * 6
    assert wrap(english, indent="* ", subsequent="  ") == textwrap.fill(
        english.strip(), 78, initial_indent="* ", subsequent_indent="  ",
        break_long_words=False, break_on_hyphens=False,
    )  # fmt: skip
    mixed = wrap("Tokyo 東京 " * 20)
    assert all(display_width(line) <= 78 for line in mixed.splitlines())
    assert "Tok\n" not in mixed and "\nyo" not in mixed


def test_combining_marks_take_no_column():
    assert display_width("e\u0301te\u0301") == 3 and display_width("日本") == 4


def test_the_text_part_of_a_japanese_digest_is_wrapped():
    from digest.issues.render import Section

    japanese = Section("tokyo", "東京", (story(1, title=JAPANESE, excerpt=JAPANESE * 2),), 1)
    rendered = render_digest_email(env(), view("ja"), [japanese], settings("ja"))
    for line in rendered.text.splitlines():
        assert display_width(line) <= 78 or line.strip().startswith(("http", "%%")), line
    assert "東京\n====\n" in rendered.text  # the underline matches the name's width


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus not present")
def test_bbc_chinese_feed_entries_wrap_within_78_columns():
    feed = feedparser.parse(CORPUS / "feeds" / "rss2email" / "bbc-chinese" / "feed.atom")
    assert feed.entries
    for entry in feed.entries:
        text = entry.title + "：" + entry.summary * 3
        lines = wrap(text, indent="  ").splitlines()
        assert len(lines) > 1
        assert all(display_width(line) <= 78 for line in lines)
        assert "".join(line.strip() for line in lines) == text
