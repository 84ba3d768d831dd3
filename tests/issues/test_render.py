"""Rendering pieces: template lookup, placeholders through premailer and QP, excerpts, wrapping,
and clear errors for broken templates."""

from __future__ import annotations

import email
import email.policy
from datetime import date

import pytest

from digest.config import load_config
from digest.errors import ConfigError
from digest.issues.render import (
    DigestView,
    excerpt,
    inline_css,
    render_email,
    style_size,
    template_environment,
    wrap,
)
from digest.issues.template import build_template, html_placeholder, text_placeholder

KEY = "0123456789abcdef"  # a variant's placeholder key


def _view() -> DigestView:
    return DigestView(
        site="Desk",
        language="el",
        list_title="World",
        list_slug="world",
        list_description=None,
        frequency="daily",
        issue_date=date(2025, 1, 21),
        period_text="Monday 20 January 2025",
        base_url="https://n.example.com",
        web_url="https://n.example.com/archive/world/daily/2025-01-21/",
        archive_url="https://n.example.com/archive/world/",
        placeholder_key=KEY,
    )


def test_placeholders_survive_premailer_and_quoted_printable():
    fields = ("NAME", "EMAIL", "UNSUBSCRIBE_URL", "PREFERENCES_URL")
    html = (
        "<html><head><style>a { color: red } .x { padding: 2px }</style></head><body>"
        + "".join(
            f'<a class="x" href="{html_placeholder(f, KEY)}">{html_placeholder(f, KEY)}</a>'
            for f in fields
        )
        + "</body></html>"
    )
    inlined = inline_css(html)
    for field in fields:
        assert inlined.count(html_placeholder(field, KEY)) == 2
    assert 'style="color:red; padding:2px"' in inlined
    template = build_template(
        [("Subject", "x")], text_placeholder("NAME", KEY), inlined, boundary_seed="s", key=KEY
    )
    for field in fields:
        assert template.count(f"%%DIGEST_{KEY}_HTML_{field}%%".encode()) == 2


def test_media_queries_and_important_stay_in_the_style_block():
    html = (
        "<html><head><style>p { color: #111 } @media (prefers-color-scheme: dark) "
        "{ p { color: #eee !important } }</style></head><body><p>x</p></body></html>"
    )
    out = inline_css(html)
    assert '<p style="color:#111">' in out
    assert "!important" in out and "prefers-color-scheme" in out
    assert 0 < style_size(out) < 200


def test_excerpt_cuts_on_word_boundaries():
    assert excerpt("one two three", 5) == "one two three"
    assert excerpt("one two, three four", 2) == "one two…"
    assert excerpt("  spaced   out  words ", 3) == "spaced out words"


def test_wrap_keeps_urls_whole_at_78_columns():
    url = "https://example.org/" + "x" * 100
    text = wrap("word " * 40 + url, indent="  ")
    lines = text.splitlines()
    assert all(len(line) <= 78 for line in lines if "https://" not in line)
    assert any(line.strip() == url for line in lines)


def test_render_email_reports_sizes_and_links():
    config = load_config(None, env={})
    env = template_environment(config)
    rendered = render_email(env, config, _view(), [])
    assert rendered.report.html_size > 0 and rendered.report.links == 3
    msg = email.message_from_bytes(
        build_template(
            [("Subject", rendered.subject)],
            rendered.text,
            rendered.html,
            boundary_seed="a",
            key=KEY,
        ),
        policy=email.policy.default,
    )
    assert '<html lang="el" ' in msg.get_body(("html",)).get_content()


def test_broken_override_template_is_a_clear_error(tmp_path):
    (tmp_path / "t" / "email").mkdir(parents=True)
    (tmp_path / "t" / "email" / "digest.html").write_text(
        "{% extends 'email/base.html' %}\n{% block content %}{% for x in %}{% endblock %}",
        encoding="utf-8",
    )
    (tmp_path / "digest.toml").write_text('templates_dir = "t"\n', encoding="utf-8")
    config = load_config(tmp_path / "digest.toml", env={})
    env = template_environment(config)
    with pytest.raises(ConfigError, match=r"template email/digest.html line 2"):
        render_email(env, config, _view(), [])


def test_missing_templates_dir_is_a_clear_error(tmp_path):
    (tmp_path / "digest.toml").write_text('templates_dir = "nope"\n', encoding="utf-8")
    config = load_config(tmp_path / "digest.toml", env={})
    with pytest.raises(ConfigError, match="nope is not a directory"):
        template_environment(config)
