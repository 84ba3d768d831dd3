"""The digest email in Debian's Chromium (headless, via Playwright), as Gmail's apps with
non-Google accounts show it: every <style> block removed. At 320, 375 and 600 px, in light and
in dark mode, nothing is wider than the screen (scrollWidth <= innerWidth) and no headline is
cut. Screenshots are saved in the test's tmp folder (printed with -s).

No request leaves the machine: every http(s) URL the page asks for (the lead images, the logo)
is answered by the test with a generated PNG of the size it claims."""

from __future__ import annotations

import re
import struct
import zlib

import pytest
from email_samples import (
    brand,
    demo_sections,
    env,
    five_hundred,
    sections,
    settings,
    story,
    view,
    wired_emails,
)

from digest.issues.compose import render_digest_email

WIDTHS = (320, 375, 600)
SCHEMES = ("light", "dark")


def png(width: int, height: int) -> bytes:
    """A solid grey PNG (no imaging library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x88" * (width * 3) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _serve_images_locally(page) -> list[str]:
    asked: list[str] = []

    def answer(route):
        asked.append(route.request.url)
        size = re.search(r"/(\d+)x(\d+)", route.request.url)
        width, height = (int(size.group(1)), int(size.group(2))) if size else (1200, 675)
        route.fulfill(status=200, content_type="image/png", body=png(width, height))

    page.route(re.compile(r"^https?://"), answer)
    return asked


def _digests():
    demo_view, demo = demo_sections()
    hostile = story(9_999, title="Unbreakable " + "W" * 150, excerpt="x" * 400)
    demo[0] = demo[0].__class__(
        demo[0].key, demo[0].name, (hostile, *demo[0].articles), demo[0].total + 1
    )
    big = five_hundred()
    pictured = sections([5] * 4, start=2_000, image=True)
    return {
        "demo": render_digest_email(env(), demo_view, demo, settings("en", brand=brand())),
        "500-articles": render_digest_email(env(), view("en"), big + pictured, settings("en")),
        "demo-fr": render_digest_email(env(), view("fr"), demo, settings("fr", brand=brand())),
    }


@pytest.fixture(scope="module")
def digests(tmp_path_factory):
    """The hand-made digests above, and the ones made by the real build (``wired-...``): the
    demo as ``digest demo`` sent it, a French list and 500 articles through ``build_digest``."""
    made = _digests()
    for name, msg in wired_emails(tmp_path_factory.mktemp("wired")).items():
        html_part = msg.get_body(("html",))
        made[f"wired-{name}"] = html_part.get_content()
    return {name: getattr(value, "html", value) for name, value in made.items()}


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize(
    "name",
    ["demo", "500-articles", "demo-fr", "wired-demo", "wired-demo-fr", "wired-500-articles"],
)
def test_no_horizontal_overflow_with_style_removed(browser, digests, name, scheme, tmp_path):
    html = digests[name]
    bare = re.sub(r"<style\b[^>]*>.*?</style>", "", html, flags=re.S | re.I)
    assert "<style" not in bare
    context = browser.new_context(viewport={"width": 600, "height": 900}, color_scheme=scheme)
    page = context.new_page()
    asked = _serve_images_locally(page)
    page.set_content(bare, wait_until="load")
    try:
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            scroll, inner = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
            assert scroll <= inner, f"{name} at {width}px ({scheme}): scrollWidth {scroll}"
            cut = page.evaluate(
                """w => [...document.querySelectorAll('h1, h2, h3, p, img')]
                      .filter(e => e.getBoundingClientRect().right > w + 0.5)
                      .map(e => e.tagName + ': ' + e.textContent.slice(0, 40))""",
                inner,
            )
            assert cut == [], f"{name} at {width}px: cut off {cut[:3]}"
            # The preheader takes no room and shows nothing, without colour tricks.
            box = page.evaluate(
                """() => { const p = document.querySelector('.preheader');
                           const r = document.createRange(); r.selectNodeContents(p);
                           const b = r.getBoundingClientRect();
                           return [p.getBoundingClientRect().height, b.width, b.height]; }"""
            )
            assert box == [0, 0, 0], box
            shot = tmp_path / f"{name}-{scheme}-{width}.png"
            page.screenshot(path=shot, full_page=width == 375 and "500" not in name)
            assert shot.stat().st_size > 2_000
        if name in ("demo", "500-articles", "wired-demo-fr", "wired-500-articles"):
            assert asked, "the images were requested (and answered locally)"
        widths = page.evaluate("[...document.images].map(i => i.getBoundingClientRect().width)")
        assert all(w <= 600 - 2 * 16 for w in widths)
    finally:
        context.close()
    print(f"screenshots: {tmp_path}")


def test_dark_mode_applies_when_the_style_block_is_kept(browser, digests, tmp_path):
    context = browser.new_context(viewport={"width": 375, "height": 900}, color_scheme="dark")
    page = context.new_page()
    _serve_images_locally(page)
    page.set_content(digests["wired-demo"], wait_until="load")
    try:
        sheet = page.evaluate(
            "getComputedStyle(document.querySelector('.container')).backgroundColor"
        )
        headline = page.evaluate("getComputedStyle(document.querySelector('h3')).color")
        assert sheet == "rgb(28, 31, 38)" and headline == "rgb(241, 243, 244)"
        scroll, inner = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
        assert scroll <= inner
        # With <style> kept, narrow screens get the tighter padding of the @media rule.
        padding = page.evaluate("getComputedStyle(document.querySelector('.story')).paddingLeft")
        assert padding == "16px"
        page.screenshot(path=tmp_path / "demo-dark-styled-375.png", full_page=True)
    finally:
        context.close()
    print(f"screenshots: {tmp_path}")
