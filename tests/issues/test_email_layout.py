"""The digest email as email developers audit it: hybrid fluid layout that holds with <style>
gone, semantic headings and the role="article" wrapper, images and branding, a preheader hidden
without colour tricks, and SpamAssassin's local rules scoring the demo digests at 0."""

from __future__ import annotations

import dataclasses
import email.utils
import re
import shutil
import subprocess
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest
from email_samples import (
    KEY,
    brand,
    demo_sections,
    env,
    received,
    sections,
    settings,
    story,
    view,
    without_style,
)

from digest.audience.branding import CONTENT_WIDTH, Brand, LeadImage, contrast_on_white
from digest.delivery.personalise import Recipient, VariantInfo, recipient_values
from digest.errors import InvalidInput
from digest.issues import render
from digest.issues.compose import render_digest_email, render_digest_web
from digest.issues.template import CompiledTemplate, build_template


class Elements(HTMLParser):
    """(tag, attributes) of every element, in order."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict[str, str]]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, {k: v or "" for k, v in attrs}))

    def tags(self, name: str) -> list[dict[str, str]]:
        return [attrs for tag, attrs in self.found if tag == name]


def test_semantic_structure_h1_h2_h3_and_the_article_wrapper():
    demo_view, demo = demo_sections()
    rendered = render_digest_email(env(), demo_view, demo, settings("en"))
    page = Elements(rendered.html)
    assert len(page.tags("h1")) == 1
    assert len(page.tags("h2")) == len(demo)
    assert len(page.tags("h3")) == sum(len(s.articles) for s in demo)
    (wrapper,) = [a for a in page.tags("div") if a.get("role") == "article"]
    assert wrapper["aria-roledescription"] == "email" and wrapper["lang"] == "en"
    assert wrapper["dir"] == "ltr" and wrapper["aria-label"] == rendered.subject
    assert not [a for a in page.tags("td") if "section-title" in a.get("class", "")]


def test_fluid_layout_is_inline_so_it_holds_without_the_style_block():
    rendered = render_digest_email(env(), view(), sections([2, 2]), settings("en"))
    html = rendered.html
    bare = Elements(without_style(html))
    (container,) = [a for a in bare.tags("div") if "container" in a.get("class", "")]
    style = container["style"].replace(" ", "")
    assert "max-width:600px" in style and "word-break:break-word" in style
    assert "margin:0auto" in style
    tables = bare.tags("table")
    # No fixed width outside the Outlook-only ghost table (inside a conditional comment).
    assert all(t.get("width") == "100%" for t in tables)
    assert '<!--[if mso]><table role="presentation" align="center" width="600"' in html
    assert "<o:PixelsPerInch>96</o:PixelsPerInch>" in html and "mso-line-height-rule" in html
    assert 'name="format-detection"' in html and "-webkit-text-size-adjust:100%" in html
    # overflow-wrap:anywhere only as an enhancement, inside @media; dark mode kept.
    outside_media = re.sub(r"@media[^{]*\{(?:[^{}]*\{[^{}]*\})*[^{}]*\}", "", html)
    assert "overflow-wrap" not in outside_media and "overflow-wrap: anywhere" in html
    assert "prefers-color-scheme: dark" in html
    body = Elements(html).tags("body")[0]
    assert "background-color:#eef0f3" in body["style"].replace(" ", "")


def test_preheader_is_hidden_without_colouring_text_like_the_background():
    demo_view, demo = demo_sections()
    rendered = render_digest_email(env(), demo_view, demo, settings("en"))
    (preheader,) = [a for a in Elements(rendered.html).tags("div") if a.get("class") == "preheader"]
    style = preheader["style"].replace(" ", "")
    assert "font-size:0" in style and "max-height:0" in style and "mso-hide:all" in style
    assert "color" not in style
    assert ".preheader { display: none !important; }" in rendered.html  # in @media only
    # It previews the second and later sections' lead headlines: the subject shows the first.
    second_lead = demo[1].articles[0].title
    assert second_lead in rendered.html.split('class="preheader"', 1)[1][:400]
    assert demo[0].articles[0].title in rendered.subject


def test_lead_images_are_sized_alt_texted_and_never_wider_than_the_sheet():
    wide = LeadImage.create("https://img.example.org/wide.jpg", 2400, 1200, "  Flooded   street ")
    small = LeadImage.create("https://img.example.org/small.png", 300, 200)
    assert (wide.width, wide.height, wide.alt) == (CONTENT_WIDTH, 276, "Flooded street")
    assert (small.width, small.height, small.alt) == (300, 200, "")
    stories = (story(1, image=wide), story(2, image=small), story(3))
    section = sections([1])[0].__class__("kenya", "Kenya", stories, 3)
    rendered = render_digest_email(env(), view(), [section], settings("en"))
    images = Elements(rendered.html).tags("img")
    assert len(images) == 2
    for img in images:
        assert "alt" in img and int(img["width"]) <= CONTENT_WIDTH and img["height"]
        style = img["style"].replace(" ", "")
        assert "max-width:100%" in style and "height:auto" in style and "display:block" in style
    assert 'alt="Flooded street"' in rendered.html
    assert "img.example.org" not in rendered.text
    for bad in ("/relative.png", "javascript:alert(1)", 'https://x.example/a".png'):
        with pytest.raises(InvalidInput, match="image URL"):
            LeadImage.create(bad, 10, 10)


def test_branding_logo_accent_footer_and_postal_address():
    branded = brand()
    demo_view, demo = demo_sections()
    rendered = render_digest_email(env(), demo_view, demo, settings("en", brand=branded))
    html, text = rendered.html, rendered.text
    (logo,) = Elements(html).tags("img")
    assert logo["src"] == branded.logo_url and logo["alt"] == demo_view.list_title
    assert (logo["width"], logo["height"]) == ("180", "40")
    assert "#0b6e4f" in html  # the accent colours the top rule and the section names
    assert "12 Harbour Road" in html and "12 Harbour Road" in text
    assert "You get this because you subscribed" in html and branded.footer_text in text
    web = render_digest_web(env(), demo_view, demo, settings("en", brand=branded))
    assert "12 Harbour Road" in web and branded.logo_url in web
    confirm = env().get_template("email/confirm.html").render(
        site="Desk", list_title="Morning", list_description=None, email="a@example.org",
        confirm_url="https://news.example.com/c/t", days=7, brand=branded, language="es",
    )  # fmt: skip
    assert branded.logo_url in confirm and "12 Harbour Road" in confirm and 'lang="es"' in confirm


def test_brand_values_are_checked_when_set():
    assert contrast_on_white("#b3261e") > 4.5
    with pytest.raises(InvalidInput, match=r"contrast of 1\.\d:1 on white.*darker"):
        Brand.create(accent="#ffcc00")
    with pytest.raises(InvalidInput, match="hex colour"):
        Brand.create(accent="red; background:url(x)")
    with pytest.raises(InvalidInput, match="logo URL"):
        Brand.create(logo_url="ftp://x.example/logo.png")
    big = Brand.create(logo_url="https://x.example/l.png", logo_width=1000, logo_height=500)
    assert big.logo_height == 120 and big.logo_width == 240  # at most 120 px high, aspect kept
    assert Brand.create(postal_address=" 1 Main St\n Springfield ").postal_address == (
        "1 Main St Springfield"
    )


def test_hostile_content_is_escaped_and_an_unbreakable_word_is_breakable():
    hostile = story(1, title='<script>alert(1)</script> "quoted" & ' + "W" * 120)
    section = sections([1])[0].__class__("x", "<b>Tag</b>", (hostile,), 1)
    rendered = render_digest_email(env(), view(), [section], settings("en"))
    assert "<script>" not in rendered.html and "&lt;script&gt;" in rendered.html
    assert "&lt;b&gt;Tag&lt;/b&gt;" in rendered.html


def _message(rendered, sender: str) -> bytes:
    headers = [
        ("From", sender),
        ("Subject", rendered.subject),
        ("Date", email.utils.format_datetime(datetime(2025, 1, 21, 4, 0, tzinfo=UTC))),
        ("List-Id", f"Digest <{sender.split('@')[1].rstrip('>')}>"),
    ]
    template = build_template(headers, rendered.text, rendered.html, boundary_seed="sa", key=KEY)
    info = VariantInfo(1, 1, 1, "morning", "daily", "2025-01-21", sender,
                       datetime(2025, 1, 21, 4, 0, tzinfo=UTC), CompiledTemplate(template))  # fmt: skip
    values = recipient_values(
        info, Recipient(7, "ann@example.org", "Ann Reader"), base_url="https://news.example.com",
        secret=b"s",
    )  # fmt: skip
    return info.compiled.fill(values)


@pytest.mark.skipif(shutil.which("spamassassin") is None, reason="apt-get install spamassassin")
@pytest.mark.parametrize("code", ["en", "fr"])
def test_spamassassin_local_rules_score_the_demo_digests_zero(code):
    demo_view, demo = demo_sections()
    localised = view(code, slug=demo_view.list_slug, title=demo_view.list_title,
                     description=demo_view.list_description)  # fmt: skip
    rendered = render_digest_email(env(), localised, demo, settings(code, brand=brand()))
    data = _message(rendered, "Morning Briefing <morning@news.example.com>")
    received(rendered)  # the same message parses and has no placeholder left
    result = subprocess.run(
        ["spamassassin", "--local", "--test-mode", "--cf=use_bayes 0", "--cf=bayes_auto_learn 0"],
        input=data,
        capture_output=True,
        timeout=120,
        check=True,
    )
    report = result.stdout.decode("utf-8", "replace")
    status = re.search(
        r"^X-Spam-Status: (\w+), score=(-?[\d.]+)[^\n]*(?:\n\s+[^\n]*)*", report, re.M
    )
    assert status, report[:2000]
    print(status.group(0))  # the score and rules, for the record
    assert status.group(1) == "No" and float(status.group(2)) <= 0.0, status.group(0)
    assert "HTML_FONT_LOW_CONTRAST" not in status.group(0)


@pytest.mark.parametrize(
    "code,tagged,untagged",
    [
        ("en", "3 more Region 0 stories", "2 more stories"),
        ("fr", "3 autres articles dans Region 0", "2 autres articles"),
    ],
)
def test_the_more_line_names_a_tag_but_not_the_untagged_section(code, tagged, untagged):
    # The untagged section is titled "More stories" (per list): "2 more More stories stories"
    # was what readers saw.
    region, other = sections([5, 4])
    region = dataclasses.replace(region, articles=region.articles[:2], more_url="https://e.org/r")
    rest = render.Section("", "More stories", other.articles[:2], 4, more_url="https://e.org/m")
    rendered = render_digest_email(env(), view(code), [region, rest], settings(code))
    for part in (rendered.html, rendered.text):
        assert tagged in part
        assert untagged in part
        assert "More stories stories" not in part and "dans More stories" not in part
