"""Building digests: article selection, tag grouping, variants, enqueueing, idempotent rebuilds,
and the messages subscribers get (parsed with the email package)."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import re
import shutil
import threading
from datetime import UTC, date, datetime, timedelta

import pytest

from digest.audience.lists import edit_list, get_list
from digest.config import load_config
from digest.delivery import publish as digests
from digest.delivery.personalise import Assembler, Recipient
from digest.delivery.publish import build_digest, build_due
from digest.errors import ConfigError
from digest.issues.build import render_web_version
from digest.store import open_db
from digest.store.instance import instance_id
from digest.tokens import read_token

NOW = datetime(2025, 1, 21, 4, 0, tzinfo=UTC)  # 07:00 in Nairobi, the send time
DAY = datetime(2025, 1, 20, 6, 0, tzinfo=UTC)  # 09:00 Nairobi on the covered day
ISSUE = date(2025, 1, 21)
SECRET = b"test-secret"


@pytest.fixture
def config():
    return load_config(None, env={"DIGEST_BASE_URL": "https://news.example.com"})


def deliveries(db, digest_id):
    return list(
        db.query(
            "SELECT d.*, p.name FROM deliveries d JOIN subscribers p ON p.id = d.subscriber_id"
            " WHERE digest_id = ? ORDER BY d.subscriber_id",
            [digest_id],
        )
    )


def received(db, config, digest_id):
    """email -> parsed message, assembled exactly as the sender would."""
    assembler = Assembler(db, base_url=config.base_url, secret=SECRET)
    out = {}
    for row in deliveries(db, digest_id):
        data = assembler.message(
            row["variant_id"], Recipient(row["subscriber_id"], row["email"], row["name"])
        ).data
        assert b"%%DIGEST_" not in data
        out[row["email"]] = email.message_from_bytes(data, policy=email.policy.default)
    return out


def headlines(msg) -> list[tuple[str, list[str]]]:
    """(section, [titles]) in order, read from the decoded plain-text part."""
    text = msg.get_body(("plain",)).get_content()
    sections: list[tuple[str, list[str]]] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if i + 1 < len(lines) and lines[i + 1] and set(lines[i + 1]) == {"="} and line:
            sections.append((line, []))
        elif line.startswith("* ") and sections:
            sections[-1][1].append(line[2:])
    return sections[1:] if sections and sections[0][0] == "" else sections


@pytest.fixture
def world(newsroom):
    return newsroom.add_list(tags=("Haiti", "Kenya"), timezone="Africa/Nairobi")


def test_grouping_follows_list_order_newest_first_each_article_once(db, config, newsroom, world):
    newsroom.add_article("Both tags", DAY, tags=["Kenya", "Haiti"])
    newsroom.add_article("Kenya only", DAY + timedelta(hours=1), tags=["Kenya"])
    newsroom.add_article("Haiti only", DAY + timedelta(hours=2), tags=["Haiti"])
    newsroom.add_article("Sports only", DAY, tags=["Sports"])
    newsroom.add_article("Day before", DAY - timedelta(days=1), tags=["Haiti"])
    newsroom.add_article("Untagged", DAY)
    newsroom.subscribe(world, "all@example.com", name="All")
    newsroom.subscribe(world, "kenya@example.com", tags=["Kenya"])
    newsroom.subscribe(world, "both@example.com", tags=["kenya", "HAITI"])  # = all tags

    built = build_digest(db, config, world, "daily", ISSUE, now=NOW)

    assert built.new and built.article_count == 3
    assert built.sections == ["Haiti", "Kenya"]
    assert sorted(v.tags_key for v in built.variants) == ["", "kenya"]
    assert built.recipients == 3
    msgs = received(db, config, built.id)
    assert headlines(msgs["all@example.com"]) == [
        ("HAITI", ["Haiti only", "Both tags"]),
        ("KENYA", ["Kenya only"]),
    ]
    assert headlines(msgs["both@example.com"]) == headlines(msgs["all@example.com"])
    assert headlines(msgs["kenya@example.com"]) == [("KENYA", ["Kenya only", "Both tags"])]
    html = msgs["kenya@example.com"].get_body(("html",)).get_content()
    assert "Haiti only" not in html and "Sports only" not in html


def test_all_tags_list_has_alphabetical_sections(db, config, newsroom):
    mlist = newsroom.add_list("all", tags=())
    newsroom.add_article("Z story", DAY, tags=["zambia"])
    newsroom.add_article("A story", DAY, tags=["Angola"])
    newsroom.add_article("M story", DAY, tags=["mali", "Angola"])
    newsroom.subscribe(mlist, "a@example.com")
    built = build_digest(db, config, mlist, "daily", ISSUE, now=NOW)
    assert built.sections == ["Angola", "zambia"]
    msg = received(db, config, built.id)["a@example.com"]
    assert [name for name, _ in headlines(msg)] == ["ANGOLA", "ZAMBIA"]


def test_empty_variants_get_no_message_and_inactive_or_suppressed_get_nothing(
    db, config, newsroom, world
):
    newsroom.add_article("Haiti only", DAY, tags=["Haiti"])
    newsroom.subscribe(world, "kenya@example.com", tags=["Kenya"])
    newsroom.subscribe(world, "gone@example.com", status="unsubscribed")
    newsroom.subscribe(world, "pending@example.com", status="pending")
    newsroom.subscribe(world, "weekly@example.com", frequency="weekly")
    newsroom.subscribe(world, "blocked@example.com")
    db["suppressions"].insert(
        {
            "identity": "blocked@example.com",
            "email": "blocked@example.com",
            "source": "cli",
            "created_at": newsroom.STAMP,
        }
    )
    newsroom.subscribe(world, "ok@example.com")

    built = build_digest(db, config, world, "daily", ISSUE, now=NOW)

    assert [row["email"] for row in deliveries(db, built.id)] == ["ok@example.com"]
    kenya = next(v for v in built.variants if v.tags_key == "kenya")
    assert kenya.empty and kenya.recipients == 0
    assert (
        db.execute("SELECT template FROM variants WHERE id = ?", [kenya.id]).fetchone()[0] is None
    )


def test_rebuild_is_idempotent_and_only_adds_newly_active_subscribers(db, config, newsroom, world):
    newsroom.add_article("Kenya story", DAY, tags=["Kenya"])
    newsroom.subscribe(world, "ann@example.com")
    first = build_digest(db, config, world, "daily", ISSUE, now=NOW)
    templates = dict(db.execute("SELECT tags_key, template FROM variants").fetchall())
    ids_before = received(db, config, first.id)["ann@example.com"]["Message-ID"]

    # Later: a new article for that day, and a subscriber with a tag set nobody had.
    newsroom.add_article("Late Kenya story", DAY, tags=["Kenya"], ingested=NOW + timedelta(hours=1))
    newsroom.subscribe(world, "ken@example.com", tags=["Kenya"])
    again = build_digest(db, config, world, "daily", ISSUE, now=NOW + timedelta(hours=2))

    assert not again.new and again.id == first.id
    assert again.article_count == 1 and again.enqueued == 1 and again.recipients == 2
    assert dict(db.execute("SELECT tags_key, template FROM variants WHERE tags_key = ''")) == {
        "": templates[""]
    }
    msgs = received(db, config, first.id)
    assert msgs["ann@example.com"]["Message-ID"] == ids_before
    assert headlines(msgs["ken@example.com"]) == [("KENYA", ["Kenya story"])]

    third = build_digest(db, config, world, "daily", ISSUE, now=NOW + timedelta(hours=3))
    assert third.enqueued == 0 and db.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 2
    assert db.execute("SELECT count(*) FROM digests").fetchone()[0] == 1


def test_late_articles_go_in_the_next_digest_not_lost(db, config, newsroom, world):
    newsroom.subscribe(world, "ann@example.com")
    newsroom.add_article("On time", DAY, tags=["Haiti"])
    late_id = newsroom.add_article(
        "Late for the 21st", DAY, tags=["Haiti"], ingested=NOW + timedelta(hours=3)
    )
    first = build_digest(db, config, world, "daily", ISSUE, now=NOW)
    assert first.article_count == 1

    nxt = build_digest(
        db, config, world, "daily", ISSUE + timedelta(days=1), now=NOW + timedelta(days=1)
    )
    in_next = [
        r[0]
        for r in db.execute("SELECT article_id FROM digest_articles WHERE digest_id = ?", [nxt.id])
    ]
    assert in_next == [late_id]
    # An article already in a digest is never in a later one of the same list and frequency.
    third = build_digest(
        db, config, world, "daily", ISSUE + timedelta(days=2), now=NOW + timedelta(days=2)
    )
    assert third.article_count == 0


def test_every_recipient_gets_their_own_working_links_and_nobody_elses(db, config, newsroom, world):
    newsroom.add_article("Story", DAY, tags=["Haiti"])
    people = {
        newsroom.subscribe(
            world, f"reader{i}@example.com", name=f"Reader {i}"
        ): f"reader{i}@example.com"
        for i in range(5)
    }
    built = build_digest(db, config, world, "daily", ISSUE, now=NOW)
    msgs = received(db, config, built.id)
    seen_tokens = set()
    for sub_id, address in people.items():
        msg = msgs[address]
        assert msg["To"].addresses[0].addr_spec == address
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        header_url = re.fullmatch(
            r"<(https://news\.example\.com/u/[\w-]+)>", msg["List-Unsubscribe"]
        )
        assert header_url
        html = msg.get_body(("html",)).get_content()
        text = msg.get_body(("plain",)).get_content()
        unsub = set(re.findall(r"https://news\.example\.com/u/([\w-]+)", html + text))
        prefs = set(re.findall(r"https://news\.example\.com/p/([\w-]+)", html + text))
        assert len(unsub) == 1 and len(prefs) == 1
        (u,) = unsub
        (p,) = prefs
        assert header_url.group(1).endswith(u)
        assert read_token(SECRET, u, "unsubscribe", now=NOW).subscriber_id == sub_id
        assert read_token(SECRET, p, "preferences", now=NOW).subscriber_id == sub_id
        assert f"Reader {sub_id - min(people)}" in html and address in text
        assert not seen_tokens & {u, p}
        seen_tokens |= {u, p}
        assert msg["Message-ID"] == (
            f"<world.daily.2025-01-21.{sub_id}.{instance_id(db)}@news.example.com>"
        )


def test_message_structure_headers_and_unicode_subject(db, config, newsroom):
    title = "The “Daily” — Ελλάδα & 日本\r\nBcc: evil@example.net"
    newsroom.add_list(
        "intl",
        tags=("Ελλάδα", "日本"),
        title="The Daily",
        reply_to="desk@news.example.com",
        timezone="Asia/Tokyo",
    )
    # A title stored before titles were validated (an old database): rendering must still
    # keep it to one header line. No library path can store it, so it is written directly.
    db.execute("UPDATE lists SET title = ? WHERE slug = 'intl'", [title])
    mlist = get_list(db, "intl")
    newsroom.add_article(
        "Σεισμός στην Κρήτη", datetime(2025, 1, 20, 3, tzinfo=UTC), tags=["Ελλάδα"]
    )
    newsroom.add_article(
        "東京で大雪 “quoted” — dash", datetime(2025, 1, 20, 4, tzinfo=UTC), tags=["日本"]
    )
    newsroom.subscribe(mlist, "ann@example.com")
    cfg = load_config(None, env={"DIGEST_BASE_URL": "https://news.example.com"})
    cfg = dataclasses.replace(
        cfg, digest=dataclasses.replace(cfg.digest, subject="{{ list }} — “{{ tags }}” {{ date }}")
    )
    built = build_digest(db, cfg, mlist, "daily", ISSUE, now=datetime(2025, 1, 20, 23, tzinfo=UTC))
    msg = received(db, cfg, built.id)["ann@example.com"]

    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in msg.iter_parts())
    assert (
        msg["Subject"]
        == "The “Daily” — Ελλάδα & 日本 Bcc: evil@example.net — “Ελλάδα and 1 more” Jan 21"
    )
    assert msg["Bcc"] is None
    assert msg["From"].addresses[0].addr_spec == "news@news.example.com"
    assert msg["Reply-To"] == "desk@news.example.com"
    assert msg["List-Id"].endswith("<intl.news.example.com>")
    # Built an hour after the 07:00 Tokyo send time: the Date is the build time, local.
    assert msg["Date"].datetime == datetime(2025, 1, 20, 23, 0, tzinfo=UTC)
    assert msg["Date"].datetime.utcoffset() == timedelta(hours=9)
    html = msg.get_body(("html",)).get_content()
    text = msg.get_body(("plain",)).get_content()
    for body in (html, text):
        assert "Σεισμός στην Κρήτη" in body
        assert "東京で大雪 “quoted” — dash" in body


def test_html_follows_email_conventions(db, config, newsroom, world):
    newsroom.add_article(
        "Hostile <b>title</b>",
        DAY,
        tags=["Haiti"],
        summary='<p onclick="x()">Hello <script>alert(1)</script><img src="https://i.example/x.png">'
        + " word" * 200
        + "</p>",
    )
    newsroom.add_article("Relative link", DAY, tags=["Haiti"], url="/local/path")
    newsroom.subscribe(world, "ann@example.com")
    built = build_digest(db, config, world, "daily", ISSUE, now=NOW)
    (variant,) = built.variants
    msg = received(db, config, built.id)["ann@example.com"]
    html = msg.get_body(("html",)).get_content()
    assert re.search(r'<html lang="en"', html)
    assert 'role="presentation"' in html and 'width="600"' in html
    assert "<script" not in html.lower() and "onclick" not in html and "alert(1)" not in html
    assert "&lt;b&gt;title&lt;/b&gt;" in html
    assert 'class="preheader"' in html and "display: none !important" in html
    assert "prefers-color-scheme: dark" in html and "max-width: 620px" in html
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert hrefs and all(h.startswith(("https://", "http://")) for h in hrefs)
    assert "/local/path" not in html
    assert 'rel="stylesheet"' not in html
    assert variant.report.style_size < 16_384
    assert "…" in html  # the long excerpt is cut on a word boundary
    assert " wor…" not in html and "word…" in html
    text = msg.get_body(("plain",)).get_content()
    for line in text.splitlines():
        assert len(line) <= 78 or line.strip().startswith("http"), line


def test_500_articles_across_10_tags_fit_the_gmail_budget(db, config, newsroom):
    tags = [f"Region {i}" for i in range(10)]
    mlist = newsroom.add_list("big", tags=tags)
    start = datetime(2025, 1, 20, 0, 0, tzinfo=UTC)
    for i in range(500):
        newsroom.add_article(
            f"Story {i:03d} with a reasonably long headline — Ελλάδα",
            start + timedelta(minutes=2 * i),
            tags=[tags[i % 10]],
            summary="<p>" + "Λέξεις and words " * 40 + "</p>",
        )
    newsroom.subscribe(mlist, "ann@example.com", name="Ann " + "Ω" * 60)
    built = build_digest(db, config, mlist, "daily", ISSUE, now=NOW)
    (variant,) = built.variants
    msg = received(db, config, built.id)["ann@example.com"]
    html_part = msg.get_body(("html",))
    encoded = html_part.as_bytes(policy=email.policy.SMTP).split(b"\r\n\r\n", 1)[1]
    assert len(encoded) <= config.digest.html_budget
    assert variant.cut_count > 0 and variant.cut_count + variant.article_count == 500
    assert variant.report.cut_count == variant.cut_count
    sections = headlines(msg)
    assert len(sections) == 10 and all(titles for _, titles in sections)
    # The newest article of every section survives the cut.
    assert sections[0][1][0] == "Story 490 with a reasonably long headline — Ελλάδα"
    html = html_part.get_content()
    more = re.findall(r'<a href="([^"]+)"[^>]*>(\d+) more (Region \d) stories</a>', html)
    assert len(more) == 10
    url, count, tag = more[0]
    # "N more" lands on the first story not shown, on the web version.
    first_cut = re.fullmatch(
        r"https://news\.example\.com/archive/big/daily/2025-01-21/#story-(\d+)", url
    )
    assert first_cut is not None, url
    shown = sections[0][1]
    assert int(count) == 50 - len(shown)
    (title,) = db.execute(
        "SELECT title FROM articles WHERE id = ?", [int(first_cut.group(1))]
    ).fetchone()
    assert title not in shown and title.startswith(f"Story {490 - 10 * len(shown):03d}")


def test_build_due_builds_latest_due_issue_of_lists_with_subscribers(db, config, newsroom, world):
    newsroom.add_list("quiet")
    newsroom.subscribe(world, "ann@example.com")
    newsroom.subscribe(world, "wes@example.com", frequency="weekly")
    newsroom.add_article("Story", DAY, tags=["Haiti"])
    built = build_due(db, config, now=NOW + timedelta(minutes=1))
    assert [(b.mailing_list.slug, b.frequency, b.period.label) for b in built] == [
        ("world", "daily", "2025-01-21"),
        ("world", "weekly", "2025-01-20"),
    ]
    assert built[0].article_count == 1 and built[1].article_count == 0


def test_web_version_has_every_article_and_section_anchors(db, config, newsroom, world):
    for i in range(3):
        newsroom.add_article(
            f"Haiti {i}", DAY, tags=["Haiti"], summary="<p>Full <em>summary</em></p>"
        )
    newsroom.subscribe(world, "ann@example.com")
    built = build_digest(db, config, world, "daily", ISSUE, now=NOW)
    page = render_web_version(db, config, built.id)
    assert all(f"Haiti {i}" in page for i in range(3))
    assert 'id="tag-haiti"' in page and "<em>summary</em>" in page
    assert "%%DIGEST_" not in page
    assert "https://news.example.com/archive/world/" in page


def test_templates_dir_overrides_one_template(db, newsroom, world, tmp_path):
    override = tmp_path / "mytemplates" / "email"
    override.mkdir(parents=True)
    (override / "subject.txt").write_text("Custom: {{ tags }} ({{ count }})\n", encoding="utf-8")
    cfg_file = tmp_path / "digest.toml"
    cfg_file.write_text('templates_dir = "mytemplates"\n', encoding="utf-8")
    cfg = load_config(cfg_file, env={})
    newsroom.add_article("Story", DAY, tags=["Kenya"])
    newsroom.subscribe(world, "ann@example.com")
    built = build_digest(db, cfg, world, "daily", ISSUE, now=NOW)
    assert built.variants[0].subject == "Custom: Kenya (1)"


def _stored(db, digest_id):
    """A digest's variants and deliveries; each variant's random placeholder key (made anew
    by every render) is blanked out so that two builds compare byte for byte."""
    variants = sorted(
        (
            tags,
            subject,
            re.sub(rb"%%DIGEST_[0-9a-f]{16}_", b"%%DIGEST_KEY_", template or b""),
            count,
            report,
        )  # fmt: skip
        for tags, subject, template, count, report in db.execute(
            "SELECT tags_key, subject, template, article_count, report FROM variants"
            " WHERE digest_id = ?",
            [digest_id],
        ).fetchall()
    )
    queued = sorted(
        db.execute(
            "SELECT d.subscriber_id, d.email, d.status, v.tags_key FROM deliveries d"
            " JOIN variants v ON v.id = d.variant_id WHERE d.digest_id = ?",
            [digest_id],
        ).fetchall()
    )
    return variants, queued


def _newsroom_with_many_variants(newsroom, world):
    world_tags = ["Haiti", "Kenya", "Chile", "Japan", "Peru"]
    db = newsroom.db
    world = edit_list(db, world.slug, tags=world_tags, now=NOW)
    for i, tag in enumerate(world_tags[:4]):  # nothing about Peru: its variant is empty
        newsroom.add_article(f"{tag} story", DAY + timedelta(minutes=i), tags=[tag])
    sets = [[t] for t in world_tags] + [["Haiti", "Chile"], ["Japan", "Peru"], []]
    for i in range(40):
        newsroom.subscribe(world, f"r{i}@example.com", tags=sets[i % len(sets)])
    return get_list(db, world.slug)


@pytest.mark.parametrize("overlap", ["transaction first", "rendering first"])
def test_overlapping_rendering_and_enqueueing_stores_the_same_digest(
    db, db_path, config, newsroom, world, tmp_path, monkeypatch, overlap
):
    """Variants render on a worker thread while the write transaction enqueues deliveries;
    however the two interleave, the stored digest is the same as when they run one after
    the other."""
    mlist = _newsroom_with_many_variants(newsroom, world)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    copy = tmp_path / "copy.db"
    shutil.copy(db_path, copy)

    monkeypatch.setattr(digests, "ENQUEUE_SECONDS_PER_RECIPIENT", 0.0)  # one after the other
    sequential = build_digest(db, config, mlist, "daily", ISSUE, now=NOW)
    # Transaction first: it opens as soon as one variant is rendered.
    seconds = 1e6 if overlap == "transaction first" else 1e-9
    monkeypatch.setattr(digests, "ENQUEUE_SECONDS_PER_RECIPIENT", seconds)
    other_db = open_db(copy, create=True)
    overlapped = build_digest(
        other_db, config, get_list(other_db, "world"), "daily", ISSUE, now=NOW
    )

    assert _stored(db, sequential.id) == _stored(other_db, overlapped.id)
    assert overlapped.recipients == sequential.recipients == 40 - 40 // 8  # not the Peru-only
    assert [v.recipients for v in overlapped.variants] == [
        v.recipients for v in sequential.variants
    ]
    peru = next(v for v in overlapped.variants if v.tags_key == "peru")
    assert peru.empty and peru.recipients == 0
    other_db.close()


def test_a_template_error_while_enqueueing_stores_nothing(
    db, newsroom, world, tmp_path, monkeypatch
):
    """A variant that fails to render after the write transaction has started (and deliveries
    are enqueued) rolls everything back: no digest, no variants, no deliveries."""
    mlist = _newsroom_with_many_variants(newsroom, world)
    override = tmp_path / "mytemplates" / "email"
    override.mkdir(parents=True)
    (override / "subject.txt").write_text(
        "{% if 'Japan' in tags %}{{ nothing.there }}{% endif %}News\n", encoding="utf-8"
    )
    cfg_file = tmp_path / "digest.toml"
    cfg_file.write_text('templates_dir = "mytemplates"\n', encoding="utf-8")
    cfg = load_config(cfg_file, env={})
    monkeypatch.setattr(digests, "ENQUEUE_SECONDS_PER_RECIPIENT", 1e6)
    with pytest.raises(ConfigError, match=r"subject\.txt"):
        build_digest(db, cfg, mlist, "daily", ISSUE, now=NOW)
    for table in ("digests", "digest_articles", "variants", "deliveries"):
        assert db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table
    assert [t.name for t in threading.enumerate() if t.name == "digest-render"] == []
