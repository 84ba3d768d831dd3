"""The email design through the real build (``build_digest``): each list's language, brand,
lead images and subject pattern; a budget that holds for every message queued (and a variant
that cannot fit fails alone, nothing queued over it); base64 where it is smaller, with keyed
placeholders; and a French list whose digest, confirmation email and preferences page hold no
English string (the test lists any it finds)."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser

import pytest
from babel.messages.pofile import read_po

from digest.audience.lists import LookChanges, create_list, edit_list
from digest.config import load_config
from digest.delivery.notices import confirmation_message
from digest.delivery.personalise import Assembler, Recipient
from digest.delivery.publish import build_digest
from digest.i18n import LOCALE_DIR
from digest.issues.build import render_web_version

NOW = datetime(2025, 1, 21, 4, 0, tzinfo=UTC)
DAY = datetime(2025, 1, 20, 6, 0, tzinfo=UTC)
ISSUE = date(2025, 1, 21)
SECRET = b"test-secret"


@pytest.fixture
def config():
    return load_config(None, env={"DIGEST_BASE_URL": "https://news.example.com"})


def messages(db, config, digest_id) -> dict[str, email.message.EmailMessage]:
    assembler = Assembler(db, base_url=config.base_url, secret=SECRET)
    out = {}
    for row in db.query(
        "SELECT d.variant_id, d.subscriber_id, d.email, p.name FROM deliveries d"
        " JOIN subscribers p ON p.id = d.subscriber_id WHERE digest_id = ? AND status = 'queued'",
        [digest_id],
    ):
        data = assembler.message(
            row["variant_id"], Recipient(row["subscriber_id"], row["email"], row["name"])
        ).data
        assert b"%%DIGEST_" not in data
        out[row["email"]] = email.message_from_bytes(data, policy=email.policy.default)
    return out


def encoded_html(msg: email.message.EmailMessage) -> bytes:
    part = msg.get_body(("html",))
    return part.as_bytes(policy=email.policy.SMTP).split(b"\r\n\r\n", 1)[1]


def make_list(db, slug="monde", *, tags=("Afrique", "Europe"), **look):
    return create_list(
        db,
        slug,
        title=look.pop("title", "Le Monde en bref"),
        from_addr=f"Rédaction <{slug}@news.example.com>",
        tags=tags,
        timezone="Africa/Nairobi",
        send_time="07:00",
        now=datetime(2025, 1, 1, tzinfo=UTC),
        look=LookChanges(**look),
    )


# ------------------------------------------------------------------ look: brand, images, subject


def test_brand_images_and_subject_pattern_reach_the_message(db, config, newsroom):
    mlist = make_list(
        db,
        "world",
        tags=("Kenya",),
        title="World Desk",
        images="lead",
        logo_url="https://img.example.org/logo.png",
        logo_size="360x80",
        accent="#0b6e4f",
        footer_text="You get this because you subscribed.",
        postal_address="12 Harbour Road,\n Mombasa 80100, Kenya",
        subject_pattern="{list}: {top} ({count})",
    )
    picture = (
        '<p><img src="https://img.example.org/a.jpg" width="1200" height="675" alt="A port"></p>'
    )
    newsroom.add_article(
        "Ports reopen", DAY, tags=["Kenya"], summary=picture + "<p>Ships move.</p>"
    )
    newsroom.add_article("No picture", DAY + timedelta(hours=1), tags=["Kenya"])
    newsroom.subscribe(mlist, "ann@example.com")
    built = build_digest(db, config, mlist, "daily", ISSUE, now=NOW)
    msg = messages(db, config, built.id)["ann@example.com"]
    assert msg["Subject"] == "World Desk: No picture (2)"
    body = msg.get_body(("html",)).get_content()
    assert (
        '<img class="logo" src="https://img.example.org/logo.png" width="360" height="80"' in body
    )
    assert "#0b6e4f" in body
    image = re.search(r'<img class="lead-image"[^>]*>', body)
    assert image is not None
    assert 'width="552" height="310" alt="A port"' in image.group(0)  # never wider than the sheet
    assert body.count("lead-image") == 1  # the story without a picture has none
    assert "You get this because you subscribed." in body
    assert "12 Harbour Road, Mombasa 80100, Kenya" in body
    text = msg.get_body(("plain",)).get_content()
    assert "img.example.org" not in text and "12 Harbour Road, Mombasa 80100, Kenya" in text

    edit_list(db, "world", look=LookChanges(images="thumbnails"), now=NOW)
    edit_list(db, "world", look=LookChanges(images="none"), now=NOW)
    web = render_web_version(db, config, built.id)
    assert 'id="story-' in web and "https://img.example.org/logo.png" in web


def test_thumbnails_are_small_and_none_shows_no_picture(db, config, newsroom):
    picture = '<img src="https://img.example.org/b.jpg" width="800" height="600" alt="">'
    for mode, expected in (("thumbnails", 'width="160" height="120"'), ("none", None)):
        mlist = make_list(db, mode, tags=("Kenya",), images=mode)
        newsroom.add_article(f"Story {mode}", DAY, tags=["Kenya"], summary=picture)
        newsroom.subscribe(mlist, f"{mode}@example.com")
        built = build_digest(db, config, mlist, "daily", ISSUE, now=NOW)
        body = messages(db, config, built.id)[f"{mode}@example.com"].get_body(("html",))
        images = re.findall(r'<img class="lead-image"[^>]*>', body.get_content())
        if expected is None:
            assert images == []
        else:
            assert len(images) == 1 and expected in images[0]


# ------------------------------------------------------------------ the budget, through the build

BUDGET = 30_000


@pytest.mark.parametrize(
    ("sections", "per_section"),
    [(1, 1), (1, 10), (10, 5), (50, 3), (50, 10), (120, 1), (200, 3), (400, 1), (400, 2)],
)
def test_every_message_queued_is_under_the_budget(db, config, newsroom, sections, per_section):
    """Through ``build_digest``: the HTML part as a recipient gets it is under the budget,
    every section shown has a full first story, and sections fold only once stories are down
    to one per section."""
    import dataclasses

    cfg = dataclasses.replace(config, digest=dataclasses.replace(config.digest, html_budget=BUDGET))
    tags = [f"Region {i:03d}" for i in range(sections)]
    mlist = newsroom.add_list("big", tags=tags)
    rows = [
        (
            f"Story {s}-{n}: a headline of ordinary length",
            DAY + timedelta(seconds=s * 10 + n),
            [tags[s]],
        )
        for s in range(sections)
        for n in range(per_section)
    ]
    from digest.articles.inputs import ArticleInput
    from digest.articles.tagging import make_tag
    from digest.articles.writes import store_batch

    store_batch(
        db,
        [
            ArticleInput(
                entry=f"e{i}",
                title=title,
                url=f"https://example.org/{i}",
                guid=f"g{i}",
                published=published,
                summary_html="<p>" + "Words of a summary paragraph. " * 8 + "</p>",
                tags=tuple(t for t in map(make_tag, tag) if t is not None),
            )
            for i, (title, published, tag) in enumerate(rows)
        ],
        source="test",
        now=DAY,
    )
    newsroom.subscribe(mlist, "ann@example.com", name="Ann " + "Ω" * 60)
    built = build_digest(db, cfg, mlist, "daily", ISSUE, now=NOW)
    (variant,) = built.variants
    assert variant.error is None
    msg = messages(db, cfg, built.id)["ann@example.com"]
    assert len(encoded_html(msg)) <= BUDGET
    report = variant.report
    shown = [s for s in report.sections if not s.folded]
    assert all(s.shown >= 1 for s in shown)
    assert len(shown) + report.folded_count == sections
    body = msg.get_body(("html",)).get_content()
    assert not re.search(r">\s*1 more Region \d+ story", body) or report.cut_count
    # "N more" rows only under sections that show a story, linking to the first story not shown.
    for url in re.findall(r'<td class="more"><a href="([^"]+)"', body):
        assert re.search(r"#story-\d+$", url), url


def test_a_variant_that_cannot_fit_fails_alone_and_nothing_is_queued_over_the_budget(
    db, config, newsroom
):
    import dataclasses

    cfg = dataclasses.replace(config, digest=dataclasses.replace(config.digest, html_budget=9_000))
    newsroom.add_list("tight", tags=("Kenya", "Haiti"))
    mlist = edit_list(db, "tight", description="A very long description. " * 400, now=NOW)
    newsroom.add_article("Story", DAY, tags=["Kenya"])
    newsroom.add_article("Histoire", DAY, tags=["Haiti"])
    newsroom.subscribe(mlist, "ann@example.com")
    newsroom.subscribe(mlist, "bob@example.com", tags=["Haiti"])
    built = build_digest(db, cfg, mlist, "daily", ISSUE, now=NOW)
    errors = [v.error or "" for v in built.variants]
    assert all("cannot fit the HTML budget of 9000 bytes" in e for e in errors), errors
    statuses = {r["email"]: (r["status"], r["reply"]) for r in db.query("SELECT * FROM deliveries")}
    assert {s for s, _ in statuses.values()} == {"failed"}
    assert "raise [digest] html_budget" in statuses["ann@example.com"][1]


# ------------------------------------------------------------------ encodings


def test_a_japanese_list_is_sent_in_base64_with_its_placeholders_filled(db, config, newsroom):
    mlist = make_list(db, "nihon", tags=("日本",), language="ja", title="日本のニュース")
    text = "東京で大雪、交通機関に乱れ。気象庁によると今夜から積雪のおそれ。" * 4
    for i in range(6):
        newsroom.add_article(
            f"東京の記事 {i}", DAY + timedelta(minutes=i), tags=["日本"], summary=f"<p>{text}</p>"
        )
    newsroom.subscribe(mlist, "ann@example.com", name="山田 花子")
    built = build_digest(db, config, mlist, "daily", ISSUE, now=NOW)
    msg = messages(db, config, built.id)["ann@example.com"]
    parts = list(msg.iter_parts())
    assert [p["Content-Transfer-Encoding"] for p in parts] == ["base64", "base64"]
    plain, rich = (p.get_content() for p in parts)
    assert "山田 花子 <ann@example.com>" in plain
    unsubscribe = msg["List-Unsubscribe"].strip("<>")
    assert re.search(rf'href=" *{re.escape(unsubscribe)} *"', rich)
    assert 'lang="ja"' in rich and len(encoded_html(msg)) <= config.digest.html_budget


def test_content_that_looks_like_a_placeholder_stays_text_in_both_encodings(db, config, newsroom):
    mlist = make_list(db, "forge", tags=("Kenya",))
    for i, lang_text in enumerate(("plain English", "日本語のテキスト" * 20)):
        newsroom.add_article(
            f"%%DIGEST_TEXT_EMAIL%% %%DIGEST_0123456789abcdef_HTML_UNSUBSCRIBE_URL%% {i}",
            DAY + timedelta(minutes=i),
            tags=["Kenya"],
            summary=f"<p>{lang_text} %%DIGEST_0123456789abcdef_TEXT64_EMAIL%%</p>",
        )
    newsroom.subscribe(mlist, "ann@example.com")
    build_digest(db, config, mlist, "daily", ISSUE, now=NOW)
    assembler = Assembler(db, base_url=config.base_url, secret=SECRET)
    row = next(iter(db.query("SELECT variant_id, subscriber_id FROM deliveries")))
    data = assembler.message(
        row["variant_id"], Recipient(row["subscriber_id"], "ann@example.com", None)
    ).data
    msg = email.message_from_bytes(data, policy=email.policy.default)
    for part in msg.iter_parts():
        content = part.get_content()
        assert "%%DIGEST_0123456789abcdef_HTML_UNSUBSCRIBE_URL%%" in content
        assert content.count("ann@example.com") == 1  # only the footer's own placeholder


# ------------------------------------------------------------------ a French list, entirely French


def english_fragments() -> set[str]:
    """The English source strings of the catalogs, cut at their placeholders and markup, and
    English month and day names: none of them may appear in a French message."""
    with (LOCALE_DIR / "digest.pot").open("rb") as f:
        catalog = read_po(f)
    found: set[str] = set()
    for message in catalog:
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        for text in ids:
            for piece in re.split(r"%\(\w+\)s|<[^>]+>|\{\w+\}|[—·:?!.,()]", text or ""):
                piece = piece.strip()
                if len(piece) >= 4 and re.search(r"[a-z]{3}", piece):
                    found.add(piece)
    found |= {
        "January", "February", "March", "April", "June", "July", "August", "September",
        "October", "November", "December", "Monday", "Tuesday", "Wednesday", "Thursday",
        "Friday", "Saturday", "Sunday", "more", "stories", "story", "digest",
    }  # fmt: skip
    return found


class _Text(HTMLParser):
    """Visible text and the attributes a reader meets (alt, title, aria-label, placeholder)."""

    def __init__(self):
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("style", "script"):
            self._skip += 1
        for name, value in attrs:
            if name in ("alt", "title", "aria-label", "placeholder") and value:
                self.parts.append(value)

    def handle_endtag(self, tag):
        if tag in ("style", "script"):
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def visible(markup: str) -> str:
    parser = _Text()
    parser.feed(markup)
    return " ".join(" ".join(parser.parts).split())


def english_left(text: str, allowed: set[str]) -> list[str]:
    text = re.sub(r"https?://\S+", " ", text)  # the archive's URLs say /daily/
    return sorted(
        f
        for f in english_fragments()
        if re.search(rf"\b{re.escape(f)}\b", text) and f not in allowed
    )


FRENCH = {
    "Afrique": [
        (
            "Les ports de la côte rouvrent après la tempête",
            "Les navires reprennent la mer ce matin.",
        ),
        ("Élections : le dépouillement se poursuit", "Les résultats sont attendus jeudi."),
    ],
    "Europe": [("Fin de la grève des cheminots", "Les trains circulent de nouveau dans le nord.")],
}


def french_list(db, newsroom):
    mlist = make_list(
        db,
        "monde",
        language="fr",
        postal_address="12 rue du Port, 13002 Marseille, France",
        footer_text="Vous recevez ce message car vous êtes abonné.",
    )
    edit_list(db, "monde", description="L’actualité de l’Afrique et de l’Europe.", now=NOW)
    minute = 0
    for tag, stories in FRENCH.items():
        for title, summary in stories:
            minute += 1
            newsroom.add_article(
                title, DAY + timedelta(minutes=minute), tags=[tag], summary=f"<p>{summary}</p>"
            )
    return mlist


def test_a_french_list_digest_is_entirely_french(db, config, newsroom):
    mlist = french_list(db, newsroom)
    newsroom.subscribe(mlist, "anne@example.fr", name="Anne Dupont")
    newsroom.subscribe(mlist, "bob@example.fr", tags=["Europe"])
    built = build_digest(db, config, mlist, "daily", ISSUE, now=NOW)
    for address, msg in messages(db, config, built.id).items():
        subject = str(msg["Subject"])
        html_part = msg.get_body(("html",)).get_content()
        text = msg.get_body(("plain",)).get_content()
        assert 'lang="fr"' in html_part and "janv." in subject, subject
        allowed = {"Europe"}  # the tag, a French word too
        left = english_left(" ".join([subject, visible(html_part), text]), allowed)
        assert left == [], f"English left in {address}'s French digest: {left}"
    assert "lundi 20 janvier 2025" in text
    web = render_web_version(db, config, built.id)
    assert english_left(visible(web), {"Europe"}) == []


def test_a_french_list_confirmation_email_is_entirely_french(db, config, newsroom):
    mlist = french_list(db, newsroom)
    outgoing = confirmation_message(
        config,
        mlist,
        subscriber_id=1,
        address="anne@example.fr",
        name="Anne",
        secret=SECRET,
        now=NOW,
    )
    msg = email.message_from_bytes(outgoing.data, policy=email.policy.default)
    assert str(msg["Subject"]) == "Confirmez votre abonnement à Le Monde en bref"
    html_part = msg.get_body(("html",)).get_content()
    text = msg.get_body(("plain",)).get_content()
    assert 'lang="fr"' in html_part and "13002 Marseille" in html_part
    left = english_left(" ".join([str(msg["Subject"]), visible(html_part), text]), set())
    assert left == [], f"English left in the French confirmation email: {left}"


def test_a_french_list_preferences_page_is_entirely_french(make_web_app, web_clock, newsroom, db):
    from conftest import WEB_SECRET

    from digest.tokens import make_token

    mlist = french_list(db, newsroom)
    subscriber = newsroom.subscribe(mlist, "anne@example.fr")
    client = make_web_app().test_client()
    token = make_token(WEB_SECRET, "preferences", subscriber, mlist.id, now=web_clock.now)
    page = client.get(f"/p/{token}")
    assert page.status_code == 200, page.text
    assert '<html lang="fr"' in page.text
    text = visible(page.text)
    assert "Préférences de anne@example.fr" in text and "Se désabonner de tout" in text
    left = english_left(text, {"Europe", "Example News Desk"})
    assert left == [], f"English left on the French preferences page: {left}"
