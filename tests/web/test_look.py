"""The stylesheet and the list brand: WCAG AA contrast for every text colour on the backgrounds
it is used on, a visible focus state, the type scale, the per-list brand stylesheet, and the
dashboard's sparkline."""

from __future__ import annotations

import re

import pytest

from digest.audience.branding import Brand
from digest.web import builtin_templates_dir
from digest.web.look import brand_css, sparkline

STYLE = (builtin_templates_dir().parent / "digest" / "web" / "static" / "style.css").read_text(
    encoding="utf-8"
)


def variables() -> dict[str, str]:
    root = re.search(r":root\s*\{(.*?)\}", STYLE, re.S).group(1)
    return dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{3,6})", root))


def luminance(colour: str) -> float:
    digits = colour[1:]
    if len(digits) == 3:
        digits = "".join(d * 2 for d in digits)
    channels = [int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


TEXT_PAIRS = [
    (text, ground)
    for text in ("fg", "muted", "accent", "danger", "ok", "warn", "focus")
    for ground in ("bg", "surface", "code")
] + [("on-accent", "accent"), ("on-accent", "danger")]


@pytest.mark.parametrize(("text", "ground"), TEXT_PAIRS)
def test_text_colours_meet_wcag_aa(text, ground):
    v = variables()
    assert contrast(v[text], v[ground]) >= 4.5, (text, ground, contrast(v[text], v[ground]))


def test_focus_is_visible_and_inputs_are_distinguishable():
    v = variables()
    assert ":focus-visible { outline: 3px solid var(--focus)" in STYLE
    # WCAG 1.4.11: the outline and input borders against the page, 3:1.
    assert contrast(v["focus"], v["bg"]) >= 3
    border = re.search(r"border: 1px solid (#[0-9a-f]{6}); border-radius: 6px; width", STYLE)
    assert contrast(border.group(1), v["surface"]) >= 3


def test_the_type_scale_is_readable():
    v = dict(re.findall(r"--(s-?\d):\s*([\d.]+)rem", STYLE))
    sizes = [float(v[k]) for k in ("s-1", "s0", "s1", "s2", "s3")]
    assert sizes == sorted(sizes) and sizes[0] >= 0.875 and sizes[1] == 1


def test_no_javascript_and_one_small_stylesheet():
    assert len(STYLE.encode()) < 12_000
    templates = builtin_templates_dir() / "web"
    for path in templates.rglob("*.html"):
        assert "<script" not in path.read_text(encoding="utf-8").lower(), path


def test_a_brand_stylesheet_sets_only_its_checked_accent():
    assert brand_css(None).startswith("/*")
    css = brand_css(Brand.create(accent="#0B5CAD"))
    assert css == ":root { --accent: #0b5cad; --bg: #fff; }\n"
    # A colour that could break out of the rule, or that is unreadable, never gets that far.
    for bad in ("red;} body{display:none", "#fff", "#0b5cad; x"):
        with pytest.raises(Exception, match="accent colour"):
            Brand.create(accent=bad)


def test_the_brand_stylesheet_route(make_web_app, newsroom, db):
    from datetime import UTC, datetime

    from digest.audience.lists import LookChanges, edit_list

    newsroom.add_list()
    client = make_web_app().test_client()
    response = client.get("/brand/world.css")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/css; charset=utf-8"
    assert response.get_data(as_text=True).startswith("/*")  # no brand: the site's colours
    assert client.get("/brand/nope.css").status_code == 404
    edit_list(db, "world", now=datetime(2025, 1, 21, tzinfo=UTC), look=LookChanges(
        accent="#0B5CAD", logo_url="https://cdn.example.org/logo.png", logo_size="180x40"))  # fmt: skip
    assert client.get("/brand/world.css").get_data(as_text=True) == (
        ":root { --accent: #0b5cad; --bg: #fff; }\n"
    )
    # The list's readers' pages link it and show the logo; staff pages keep the site's look.
    for path in ("/archive/world/", "/subscribe/world"):
        page = client.get(path).get_data(as_text=True)
        assert '<link rel="stylesheet" href="/brand/world.css">' in page, path
        assert '<img src="https://cdn.example.org/logo.png" width="180" height="40"' in page, path
    assert "/brand/" not in client.get("/login").get_data(as_text=True)


def test_sparkline_points():
    assert sparkline([]) == ""
    assert sparkline([5, 5], width=10, height=10) == "0.0,5.0 10.0,5.0"
    assert sparkline([0, 10], width=10, height=10) == "0.0,8.0 10.0,2.0"
