"""Benchmark: the per-variant cost of the new email design against the old one, same work.

Each row renders the 50 variants of bench/build.py's digest (60 articles, 8 tags, 50 tag sets
of 2-3 tags) into subject, inlined HTML and text, and reports the median seconds per variant
over several rounds, and the ratio to the reference:

- reference: the templates of commit BASE (fixed 600 px layout, English only) through
  ``render.render_email``, as digests were rendered before this work;
- new design, English, through the same ``render.render_email`` (the templates alone);
- new design through ``compose.render_digest_email``: French, a lead image per story and a
  brand (logo, accent, footer, postal address). Target: <= 1.3x the reference;
- the same with a 30 KB budget, so every variant is measured, planned and rendered again.

Usage: python bench/email_render.py [--rounds N]   (run from the source tree: it reads the
reference templates with git)
"""

from __future__ import annotations

import itertools
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from digest.articles.tags import tag_key
from digest.audience.branding import Brand, LeadImage
from digest.config import load_config
from digest.i18n import get_language, period_text
from digest.issues import render
from digest.issues.compose import EmailSettings, render_digest_email

BASE = "152d0d3"  # main before the email design work
ROOT = Path(__file__).parents[1]  # the source tree (git reads the reference from it)
TAGS = ["Haiti", "Kenya", "Chile", "Japan", "Greece", "Peru", "Nepal", "Ghana"]
ISSUE = date(2025, 1, 21)


def old_templates(folder: Path) -> Path:
    (folder / "email").mkdir(parents=True)
    for name in ("base.html", "digest.html", "digest.txt", "subject.txt"):
        source = subprocess.run(
            ["git", "show", f"{BASE}:templates/email/{name}"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
        (folder / "email" / name).write_bytes(source)
    (folder / "digest.toml").write_text(f'templates_dir = "{folder}"\n', encoding="utf-8")
    return folder / "digest.toml"


def view(code: str) -> render.DigestView:
    return render.DigestView(
        site="Example News Desk",
        language=code,
        list_title="World Desk",
        list_slug="world",
        list_description="The world, daily.",
        frequency="daily",
        issue_date=ISSUE,
        period_text=period_text(ISSUE - timedelta(days=1), ISSUE - timedelta(days=1), code),
        base_url="https://news.example.com",
        web_url="https://news.example.com/archive/world/daily/2025-01-21/",
        archive_url="https://news.example.com/archive/world/",
        placeholder_key="0123456789abcdef",  # a variant's key (template.new_placeholder_key)
    )


@dataclass(frozen=True)
class Story(render.ArticleView):
    """An article with the lead image the new templates show."""

    image: LeadImage | None = None


def variants(images: bool) -> list[list[render.Section]]:
    """The sections of each of the 50 variants (articles tagged in turn, one tag each)."""
    start = datetime(2025, 1, 20, 0, 0, tzinfo=UTC)
    by_tag: dict[str, list[render.ArticleView]] = {t: [] for t in TAGS}
    for i in range(60):
        lead = LeadImage.create(f"https://img.example.org/{i}.jpg", 1200, 675, f"Photo {i}")
        article = Story(
            id=i + 1,
            title=f"Story {i}: a headline of ordinary length for a news digest",
            url=f"https://example.org/news/{i}",
            author="Desk",
            published_at=start + timedelta(minutes=20 * i),
            excerpt=render.excerpt("Words of a summary paragraph. " * 12, 50),
            summary_html="<p>summary</p>",
            image=lead if images else None,
        )
        by_tag[TAGS[i % len(TAGS)]].insert(0, article)
    combos = [c for n in (2, 3) for c in itertools.combinations(TAGS, n)][:50]
    return [
        [render.Section(tag_key(t), t, tuple(by_tag[t]), len(by_tag[t])) for t in combo]
        for combo in combos
    ]


def per_variant(
    job: Callable[[list[render.Section]], object], data: list[list[render.Section]], rounds: int
) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        for sections in data:
            job(sections)
        times.append((time.perf_counter() - started) / len(data))
    return statistics.median(times)


def main() -> None:
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 5
    with tempfile.TemporaryDirectory() as tmp:
        old_config = load_config(old_templates(Path(tmp)), env={})
        old_env = render.template_environment(old_config)
        config = load_config(None, env={})
        env = render.template_environment(config)
        plain, pictured = variants(False), variants(True)
        brand = Brand.create(
            logo_url="https://img.example.org/logo.png",
            logo_width=180,
            logo_height=40,
            accent="#0b6e4f",
            footer_text="You subscribed on our site.",
            postal_address="12 Harbour Road, Mombasa, Kenya",
        )
        french = EmailSettings(language=get_language("fr"), brand=brand)
        tight = EmailSettings(language=get_language("fr"), brand=brand, budget=30_000)
        rows = [
            (
                "reference: old templates, render_email (en)",
                lambda s: render.render_email(old_env, old_config, view("en"), s),
                plain,
            ),
            (
                "new templates, render_email (en)",
                lambda s: render.render_email(env, config, view("en"), s),
                plain,
            ),
            (
                "new: compose, fr + images + brand",
                lambda s: render_digest_email(env, view("fr"), s, french),
                pictured,
            ),
            (
                "new: compose, fr + images + brand, 30 KB budget",
                lambda s: render_digest_email(env, view("fr"), s, tight),
                pictured,
            ),
        ]
        for _, job, data in rows:  # warm up: template compilation, catalog compilation
            job(data[0])
        results = [(name, per_variant(job, data, rounds)) for name, job, data in rows]
    reference = results[0][1]
    print(
        f"{'per variant (median of ' + str(rounds) + ' rounds x 50 variants)':<52} {'ms':>8} {'ratio':>7}"
    )
    for name, seconds in results:
        print(f"{name:<52} {seconds * 1000:>8.1f} {seconds / reference:>7.2f}")
    print("target: compose, fr + images + brand <= 1.30 x reference")


if __name__ == "__main__":
    main()
