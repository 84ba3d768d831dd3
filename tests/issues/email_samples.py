"""Digests to render in the email design tests, built by hand from the render records (no
database, no build): the demo digest (from the packaged demo feed), big and hostile digests, and
the message as a recipient gets it (placeholders filled as ``messages.Assembler`` does)."""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import feedparser

from digest.articles.sanitize import clean_html, html_to_text
from digest.articles.tagging import Tag
from digest.articles.tags import tag_key
from digest.audience.branding import Brand, LeadImage
from digest.config import load_config
from digest.delivery.personalise import Recipient, VariantInfo, recipient_values
from digest.demo import DEMO_LISTS, package_data
from digest.i18n import get_language, period_text
from digest.issues import render
from digest.issues.compose import EmailSettings
from digest.issues.template import CompiledTemplate, build_template

BASE = "https://news.example.com"
ISSUE = date(2025, 1, 21)
SECRET = b"email-design-test-secret"
KEY = "0123456789abcdef"  # the placeholder key of the variants rendered here
LONG_NAME = "Ann " + "Ω" * 60  # a long non-ASCII name: the placeholder room must cover it


@dataclass(frozen=True)
class Story(render.ArticleView):
    """``ArticleView`` with the lead image the templates accept (the lead adds the field)."""

    image: LeadImage | None = None


def env():
    return render.template_environment(load_config(None, env={}))


def view(code: str = "en", *, frequency: str = "daily", slug: str = "world", title: str = "World Desk",
         description: str | None = None) -> render.DigestView:  # fmt: skip
    label = ISSUE.isoformat()
    day = ISSUE - timedelta(days=1)
    first = day if frequency == "daily" else ISSUE - timedelta(days=7)
    return render.DigestView(
        site="Example News Desk",
        language=code,
        list_title=title,
        list_slug=slug,
        list_description=description,
        frequency=frequency,
        issue_date=ISSUE,
        period_text=period_text(first, day, code),
        base_url=BASE,
        web_url=f"{BASE}/archive/{slug}/{frequency}/{label}/",
        archive_url=f"{BASE}/archive/{slug}/",
        placeholder_key=KEY,
    )


def settings(code: str = "en", **kw) -> EmailSettings:
    return EmailSettings(language=get_language(code), **kw)


def story(n: int, title: str | None = None, *, excerpt: str | None = None, image=None,
          author: str | None = "Desk", url: str | None = None) -> Story:  # fmt: skip
    return Story(
        id=n,
        title=title or f"Story {n:03d} with a reasonably long headline — Ελλάδα",
        url=url or f"https://example.org/news/{n}",
        author=author,
        published_at=datetime(2025, 1, 20, 6, 0, tzinfo=UTC) + timedelta(minutes=n),
        excerpt=excerpt if excerpt is not None else render.excerpt("Λέξεις and words " * 40, 50),
        summary_html=f"<p>Summary of story {n}.</p>",
        image=image,
    )


def sections(counts: list[int], *, start: int = 1, image: bool = False) -> list[render.Section]:
    """One section per count, "Region i", with that many stories (newest first)."""
    out = []
    n = start
    for i, count in enumerate(counts):
        stories = []
        for _ in range(count):
            lead = LeadImage.create(f"https://img.example.org/{n}.jpg", 1200, 675, f"Photo {n}")
            stories.append(story(n, image=lead if image else None))
            n += 1
        name = f"Region {i}"
        out.append(render.Section(tag_key(name), name, tuple(reversed(stories)), count))
    return out


def five_hundred() -> list[render.Section]:
    """500 stories over 10 tags, as test_digests' Gmail-budget test."""
    return sections([50] * 10)


def demo_sections(slug: str = "morning") -> tuple[render.DigestView, list[render.Section]]:
    """The demo's digest of one list: every story of the packaged demo feed, grouped under the
    list's tags in order, each story once (under its first tag), newest first."""
    demo = next(d for d in DEMO_LISTS if d.slug == slug)
    feed = feedparser.parse(package_data("demo-feed.xml"))
    buckets: dict[str, list[Story]] = {t: [] for t in demo.tags}
    for n, entry in enumerate(feed.entries, start=1):
        tags = [t.term for t in entry.get("tags", [])]
        first = next((t for t in demo.tags if t in tags), None)
        if first is None:
            continue
        published = datetime(*entry.published_parsed[:6], tzinfo=UTC)
        summary = clean_html(entry.get("summary", ""))
        buckets[first].append(
            Story(
                id=n,
                title=entry.title,
                url=entry.link,
                author="Example News Desk",
                published_at=published,
                excerpt=render.excerpt(html_to_text(summary), 50),
                summary_html=summary,
            )
        )
    out = []
    for tag in demo.tags:
        stories = sorted(buckets[tag], key=lambda s: s.published_at, reverse=True)
        if stories:
            out.append(render.Section(tag_key(tag), tag, tuple(stories), len(stories)))
    return view("en", slug=demo.slug, title=demo.title, description=demo.description), out


def brand(**kw) -> Brand:
    values = {
        "logo_url": "https://img.example.org/logo/360x80.png",
        "logo_width": 180,
        "logo_height": 40,
        "accent": "#0b6e4f",
        "footer_text": "You get this because you subscribed on our site.",
        "postal_address": "Example News Desk, 12 Harbour Road, Mombasa 80100, Kenya",
    }
    values.update(kw)
    return Brand.create(**values)


def received(
    rendered: render.RenderedEmail, *, name: str = LONG_NAME
) -> email.message.EmailMessage:
    """The message one recipient gets: template built and filled as the sender does."""
    template = build_template(
        [("From", "Desk <news@news.example.com>"), ("Subject", rendered.subject)],
        rendered.text,
        rendered.html,
        boundary_seed="email-design",
        key=KEY,
    )
    info = VariantInfo(
        variant_id=1,
        digest_id=1,
        list_id=1,
        list_slug="world",
        frequency="daily",
        period_label=ISSUE.isoformat(),
        from_addr="Desk <news@news.example.com>",
        built_at=datetime(2025, 1, 21, 4, 0, tzinfo=UTC),
        compiled=CompiledTemplate(template),
    )
    values = recipient_values(
        info, Recipient(7, "ann@example.org", name), base_url=BASE, secret=SECRET
    )
    data = info.compiled.fill(values)
    assert b"%%DIGEST_" not in data
    return email.message_from_bytes(data, policy=email.policy.default)


def encoded_html_size(msg: email.message.EmailMessage) -> int:
    """Bytes of the HTML part's body as sent (what Gmail's clipping counts)."""
    part = msg.get_body(("html",))
    return len(part.as_bytes(policy=email.policy.SMTP).split(b"\r\n\r\n", 1)[1])


_STYLE = re.compile(r"<style\b[^>]*>.*?</style>", re.S | re.I)


def without_style(html: str) -> str:
    """The HTML as Gmail's apps with non-Google accounts show it: every <style> block gone."""
    return _STYLE.sub("", html)


# ---------------------------------------------------------------- through the real build


def _parsed(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)


def wired_emails(folder) -> dict[str, email.message.EmailMessage]:
    """Messages as subscribers get them, made by the real pipeline (no hand-made sections):

    - ``demo``: the largest message ``digest demo`` sent (ingest, lists, ``build_digest``,
      SMTP into its Maildir);
    - ``demo-fr``: the demo's stories for a French list with a brand and lead images, built
      with ``build_digest`` on the demo's database;
    - ``500-articles``: 500 stories over 10 tags with lead images, built with
      ``build_digest`` (the budget folds and cuts it).
    """
    from pathlib import Path

    from digest.articles.inputs import ArticleInput
    from digest.articles.writes import store_batch
    from digest.audience.lists import LookChanges, create_list
    from digest.audience.subscriptions import add_subscription
    from digest.delivery.personalise import Assembler
    from digest.delivery.publish import build_digest
    from digest.demo import run_demo
    from digest.store import open_db

    folder = Path(folder)
    now = datetime(2026, 1, 12, 12, 0, tzinfo=UTC)
    report = run_demo(folder / "demo", now=now)
    maildir = report.paths.maildir / "new"
    largest = max(maildir.iterdir(), key=lambda p: p.stat().st_size)
    out = {"demo": _parsed(largest.read_bytes())}

    config = load_config(None, env={"DIGEST_BASE_URL": BASE})
    db = open_db(report.paths.db)

    def received(mlist, address: str) -> email.message.EmailMessage:
        built = build_digest(db, config, mlist, "weekly", now.date(), now=now)
        row = next(iter(db.query(
            "SELECT variant_id, subscriber_id FROM deliveries WHERE digest_id = ? AND email = ?",
            [built.id, address],
        )))  # fmt: skip
        assembler = Assembler(db, base_url=BASE, secret=SECRET)
        return _parsed(
            assembler.message(
                row["variant_id"], Recipient(row["subscriber_id"], address, LONG_NAME)
            ).data
        )

    look = LookChanges(
        language="fr", images="lead", logo_url="https://img.example.org/logo/360x80.png",
        logo_size="180x40", accent="#0b6e4f", footer_text="Vous êtes abonné sur notre site.",
        postal_address="12 rue du Port, 13002 Marseille, France",
    )  # fmt: skip
    tags = DEMO_LISTS[0].tags
    monde = create_list(db, "monde", title="Le Monde en bref", from_addr="Desk <monde@news.example.com>",
                        tags=tags, timezone="UTC", weekly_day="monday", now=now - timedelta(days=30),
                        look=look)  # fmt: skip
    add_subscription(db, monde, "anne@example.fr", confirmed=True, frequency="weekly",
                     source="test", now=now - timedelta(days=30))  # fmt: skip
    out["demo-fr"] = received(monde, "anne@example.fr")

    regions = [f"Region {i}" for i in range(10)]
    big = create_list(db, "big", title="Big Desk", from_addr="Desk <big@news.example.com>",
                      tags=regions, timezone="UTC", weekly_day="monday",
                      now=now - timedelta(days=30), look=LookChanges(images="lead"))  # fmt: skip
    start = now - timedelta(days=3)
    store_batch(
        db,
        [
            ArticleInput(
                entry=f"big {i}",
                title=f"Story {i:03d} with a reasonably long headline — Ελλάδα",
                url=f"https://example.org/news/{i}",
                guid=f"big-{i}",
                published=start + timedelta(minutes=5 * i),
                summary_html=f'<p><img src="https://img.example.org/{i}.jpg" width="1200" height="675"'
                f' alt="Photo {i}"></p><p>' + "Λέξεις and words " * 40 + "</p>",
                tags=(Tag(tag_key(regions[i % 10]), regions[i % 10]),),
            )  # fmt: skip
            for i in range(500)
        ],
        source="test",
        now=start,
    )
    add_subscription(db, big, "ann@example.org", confirmed=True, frequency="weekly",
                     source="test", now=now - timedelta(days=30))  # fmt: skip
    out["500-articles"] = received(big, "ann@example.org")
    db.close()
    return out
