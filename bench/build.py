"""Benchmark: digest building and per-recipient message assembly. Prints a table with targets.

A. `build_digest` for 1,000 and for 100,000 active subscribers spread over the same 50 distinct
   tag sets (50 variants, 60 articles): rendering runs once per variant and enqueueing is one
   INSERT … SELECT, so the 100x audience should cost at most 1.5x the time.
B. Per-recipient assembly: `messages.Assembler.message` (placeholder substitution into the stored,
   encoded variant) against building an `email.message.EmailMessage` per recipient from the same
   rendered parts and serialising it; both in microseconds per message. Target: >= 50x faster.
C. The per-variant cost of the email design: `build_digest` of the 1,000-subscriber database
   (50 variants) for a French list with a lead image per story and a brand, against the same
   build rendering each variant as main did before the design was wired (the templates of
   `email_render.BASE`, English, no images, `render.render_email`, quoted-printable only; the
   bench swaps `publish.render_variant` for that reference, everything else is the same work:
   selection, grouping, storing, enqueueing). Interleaved runs; target: <= 1.3x.

The list in A and C is French, shows lead images (each summary starts with a picture of known
size) and has a logo, accent, footer and postal address.

Usage: python bench/build.py [--quick] [--json]   (from the source tree: C reads the reference
templates with git)
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

from email_render import old_templates

from digest import links, tokens
from digest.articles.tags import tag_key
from digest.audience.lists import EmailLook, get_list
from digest.config import load_config
from digest.delivery import publish
from digest.delivery.personalise import Assembler, Recipient
from digest.delivery.publish import build_digest
from digest.issues import render
from digest.issues.build import RenderedVariant, digest_view
from digest.issues.sections import group_sections, section_order
from digest.issues.template import new_placeholder_key
from digest.issues.transfer import encode_body
from digest.store import open_db
from digest.timeutil import to_iso

TAGS = ["Haiti", "Kenya", "Chile", "Japan", "Greece", "Peru", "Nepal", "Ghana"]
ISSUE = date(2025, 1, 21)
NOW = datetime(2025, 1, 21, 7, 0, tzinfo=UTC)
STAMP = to_iso(NOW - timedelta(days=30))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def tag_sets() -> list[list[str]]:
    combos = [list(c) for n in (2, 3) for c in itertools.combinations(TAGS, n)]
    return combos[:50]


def make_db(path: Path, subscribers: int) -> None:
    db = open_db(path, create=True)
    with db.atomic():
        db["lists"].insert(
            {
                "slug": "world",
                "title": "World Desk",
                "from_addr": "World Desk <news@news.example.com>",
                "tags": json.dumps(TAGS),
                "timezone": "UTC",
                "send_time": "07:00",
                "weekly_day": "monday",
                "created_at": STAMP,
                "updated_at": STAMP,
                "language": "fr",
                "images": "lead",
                "logo_url": "https://img.example.org/logo.png",
                "logo_width": 180,
                "logo_height": 40,
                "accent": "#0b6e4f",
                "footer_text": "Vous êtes abonné sur notre site.",
                "postal_address": "12 rue du Port, 13002 Marseille, France",
            }
        )
        tag_ids = {t: db["tags"].insert({"key": tag_key(t), "name": t}).last_pk for t in TAGS}
        start = datetime(2025, 1, 20, 0, 0, tzinfo=UTC)
        for i in range(60):
            published = to_iso(start + timedelta(minutes=20 * i))
            article_id = (
                db["articles"]
                .insert(
                    {
                        "key": f"a{i}",
                        "url": f"https://example.org/news/{i}",
                        "title": f"Story {i}: a headline of ordinary length for a news digest",
                        "published_at": published,
                        "summary": f'<p><img src="https://img.example.org/{i}.jpg" width="1200"'
                        f' height="675" alt="Photo {i}"></p><p>'
                        + "Words of a summary paragraph. " * 12
                        + "</p>",
                        "text": "text",
                        "content_hash": f"h{i}",
                        "source": "bench",
                        "ingested_at": published,
                        "updated_at": published,
                    }
                )
                .last_pk
            )
            for t in {TAGS[i % 8], TAGS[(i * 3 + 1) % 8]}:
                db["article_tags"].insert({"article_id": article_id, "tag_id": tag_ids[t]})
        sets = [json.dumps([tag_key(t) for t in s]) for s in tag_sets()]
        db.conn.executemany(
            "INSERT INTO subscribers (id, email, name, created_at) VALUES (?, ?, ?, ?)",
            (
                (i, f"reader{i}@example.com", f"Reader {i}", STAMP)
                for i in range(1, subscribers + 1)
            ),
        )
        db.conn.executemany(
            "INSERT INTO subscriptions (subscriber_id, list_id, frequency, tags, status,"
            " created_at, updated_at) VALUES (?, 1, 'daily', ?, 'active', ?, ?)",
            ((i, sets[i % len(sets)], STAMP, STAMP) for i in range(1, subscribers + 1)),
        )
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def build_once(template_db: Path, work: Path) -> tuple[float, int, int]:
    """Seconds of one build_digest on a fresh copy of ``template_db``."""
    config = load_config(None, env={})
    copy = work / "run.db"
    shutil.copy(template_db, copy)
    db = open_db(copy, create=True)
    mlist = get_list(db, "world")
    t0 = time.perf_counter()
    built = build_digest(db, config, mlist, "daily", ISSUE, now=NOW)
    seconds = time.perf_counter() - t0
    db.close()
    for leftover in work.glob("run.db*"):
        leftover.unlink()
    return seconds, len(built.variants), built.recipients


class Reference:
    """``publish.render_variant`` as main rendered variants before the email design was wired:
    the old templates, English, no images, ``render.render_email``, quoted-printable parts."""

    def __init__(self, folder: Path):
        self.config = load_config(old_templates(folder), env={})
        self.env = render.template_environment(self.config)

    def __call__(self, env, config, mlist, period, articles, wanted, *, built_at, views=None,
                 intro=None) -> RenderedVariant:  # fmt: skip
        plain = dataclasses.replace(mlist, look=EmailLook())
        tags_key = ",".join(sorted(wanted)) if wanted is not None else ""
        sections = group_sections(
            articles, section_order(plain, articles), wanted, mlist=plain,
            excerpt_words=config.digest.excerpt_words,
        )  # fmt: skip
        if not sections:
            return RenderedVariant(tags_key, None, None)
        key = new_placeholder_key()
        view = dataclasses.replace(
            digest_view(config, plain, period), placeholder_key=key, language="en"
        )
        rendered = render.render_email(self.env, self.config, view, sections)
        headers = f"From: {mlist.from_addr}\r\nSubject: {rendered.subject}\r\nTo: %%DIGEST_{key}_HDR_TO%%\r\n"
        parts = [headers.encode(), b"MIME-Version: 1.0\r\n"]
        for body in (rendered.text, rendered.html):
            parts.append(b"Content-Transfer-Encoding: quoted-printable\r\n\r\n")
            parts.append(encode_body(body, key).encode("ascii"))
        return RenderedVariant(tags_key, rendered, b"".join(parts))


def time_design(template_db: Path, work: Path, runs: int) -> tuple[float, float, list[float]]:
    """Median build seconds (reference, new) of the 1k database, runs interleaved."""
    reference = Reference(work / "reference-templates")
    new_render = publish.render_variant
    ref_times, new_times = [], []
    for i in range(runs + 1):  # the first pair warms up both (templates, catalogs, caches)
        publish.render_variant = reference  # type: ignore[assignment]
        try:
            ref_seconds = build_once(template_db, work)[0]
        finally:
            publish.render_variant = new_render
        new_seconds = build_once(template_db, work)[0]
        if i:
            ref_times.append(ref_seconds)
            new_times.append(new_seconds)
    pairs = [n / r for r, n in zip(ref_times, new_times, strict=True)]
    return statistics.median(ref_times), statistics.median(new_times), pairs


def time_assembly(db_path: Path, n: int) -> tuple[float, float, int]:
    db = open_db(db_path, create=True)
    secret = b"bench-secret"
    base_url = "https://news.example.com"
    variant_id, template = db.execute(
        "SELECT id, template FROM variants WHERE template IS NOT NULL ORDER BY length(template)"
        " DESC LIMIT 1"
    ).fetchone()
    people = [Recipient(i, f"reader{i}@example.com", f"Reader {i}") for i in range(1, n + 1)]
    assembler = Assembler(db, base_url=base_url, secret=secret)
    assembler.message(variant_id, people[0])  # compile the template once, as a sender does
    t0 = time.perf_counter()
    for person in people:
        assembler.message(variant_id, person)
    fill_us = (time.perf_counter() - t0) / n * 1e6

    # Baseline: the same rendered parts, one EmailMessage per recipient, serialised.
    import email

    parsed = email.message_from_bytes(template, policy=SMTP)
    text = parsed.get_body(("plain",)).get_content()
    html = parsed.get_body(("html",)).get_content()
    info = assembler.variant(variant_id)
    count = max(200, n // 20)
    t0 = time.perf_counter()
    for person in people[:count]:
        unsub = links.unsubscribe_url(
            base_url, tokens.make_token(secret, "unsubscribe", person.subscriber_id, 1, now=NOW)
        )
        prefs = links.preferences_url(
            base_url, tokens.make_token(secret, "preferences", person.subscriber_id, 1, now=NOW)
        )
        values = {
            "NAME": person.name,
            "EMAIL": person.email,
            "UNSUBSCRIBE_URL": unsub,
            "PREFERENCES_URL": prefs,
        }
        body_text, body_html = text, html
        for field, value in values.items():
            body_text = body_text.replace(f"%%DIGEST_TEXT_{field}%%", value)
            body_html = body_html.replace(f"%%DIGEST_HTML_{field}%%", value)
        msg = EmailMessage(policy=SMTP)
        for header in ("From", "Subject", "Date", "List-Id"):
            msg[header] = parsed[header]
        msg["To"] = f"{person.name} <{person.email}>"
        msg["Message-ID"] = info.message_id(person.subscriber_id)
        msg["List-Unsubscribe"] = f"<{unsub}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        msg.set_content(body_text, cte="quoted-printable")
        msg.add_alternative(body_html, subtype="html", cte="quoted-printable")
        msg.as_bytes()
    message_us = (time.perf_counter() - t0) / count * 1e6
    size = len(template)
    db.close()
    return fill_us, message_us, size


def main() -> int:
    quick = "--quick" in sys.argv
    small_n, large_n = 1_000, 100_000
    runs = 1 if quick else 5
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        log(f"creating databases with {small_n:,} and {large_n:,} subscribers…")
        make_db(work / "small.db", small_n)
        make_db(work / "large.db", large_n)
        log(f"building ({runs} run(s) each, interleaved, after one warm-up build)…")
        build_once(work / "small.db", work)  # imports, template loading, CSS parser caches
        small_times, large_times = [], []
        # Interleaved so that background load on a shared machine hits both sizes alike.
        for _ in range(runs):
            seconds, variants_small, recipients_small = build_once(work / "small.db", work)
            small_times.append(seconds)
            seconds, variants_large, recipients_large = build_once(work / "large.db", work)
            large_times.append(seconds)
        small_s, large_s = statistics.median(small_times), statistics.median(large_times)
        # Keep one built copy for the assembly benchmark.
        built = work / "built.db"
        shutil.copy(work / "small.db", built)
        db = open_db(built, create=True)
        build_digest(db, load_config(None, env={}), get_list(db, "world"), "daily", ISSUE, now=NOW)
        db.close()
        log("assembling messages…")
        fill_us, message_us, size = time_assembly(built, 5_000 if quick else 20_000)
        log("the email design's per-variant cost: reference and new builds, interleaved…")
        ref_s, design_s, design_pairs = time_design(work / "small.db", work, 2 if quick else 5)

    ratio = large_s / small_s
    pairs = [large / small for small, large in zip(small_times, large_times, strict=True)]
    speedup = message_us / fill_us
    rows = [
        (
            f"build, {small_n:,} subscribers ({variants_small} variants, {recipients_small:,} queued)",
            f"{small_s:.2f} s",
            "",
            "",
        ),
        (
            f"build, {large_n:,} subscribers ({variants_large} variants, {recipients_large:,} queued)",
            f"{large_s:.2f} s",
            "",
            "",
        ),
        ("build time ratio 100k / 1k (medians)", f"{ratio:.2f}x", "<= 1.5x", ratio <= 1.5),
        (
            f"  per-run ratios, {runs} interleaved pairs (machine noise)",
            f"{min(pairs):.2f}–{max(pairs):.2f}x",
            "",
            "",
        ),
        (
            f"assembly per recipient (Assembler, {size / 1000:.0f} KB message)",
            f"{fill_us:.1f} µs",
            "",
            "",
        ),
        ("EmailMessage built per recipient", f"{message_us:.1f} µs", "", ""),
        ("assembly speed-up", f"{speedup:.0f}x", ">= 50x", speedup >= 50),
    ]
    design = design_s / ref_s
    rows += [
        (
            f"build {variants_small} variants, reference: as main rendered (en, no images)",
            f"{ref_s / variants_small * 1000:.1f} ms",
            "",
            "",
        ),
        (
            f"build {variants_small} variants, fr + lead images + brand (per variant)",
            f"{design_s / variants_small * 1000:.1f} ms",
            "",
            "",
        ),
        (
            "per-variant cost ratio, new / reference (medians)",
            f"{design:.2f}x",
            "<= 1.3x",
            design <= 1.3,
        ),  # fmt: skip
        (
            f"  per-run ratios, {len(design_pairs)} interleaved pairs (machine noise)",
            f"{min(design_pairs):.2f}–{max(design_pairs):.2f}x",
            "",
            "",
        ),
    ]
    passed = ratio <= 1.5 and speedup >= 50 and design <= 1.3
    if "--json" in sys.argv:
        results = [
            {
                "measure": name.strip(),
                "value": value,
                "target": target,
                "result": None if ok == "" else ("PASS" if ok else "FAIL"),
                "key": False,
            }
            for name, value, target, ok in rows
        ]
        settings = {"subscribers": [small_n, large_n], "runs": runs}
        print(json.dumps({"benchmark": "build", "settings": settings, "rows": results}))
        return 0 if passed else 1
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>10}  {'target':>8}  result")
    print(f"{'-' * width}  {'-' * 10}  {'-' * 8}  ------")
    for name, value, target, ok in rows:
        result = "" if ok == "" else ("PASS" if ok else "FAIL")
        print(f"{name:<{width}}  {value:>10}  {target:>8}  {result}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
