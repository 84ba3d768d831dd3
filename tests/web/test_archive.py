"""The readers' side of issue 19: the archive index (subjects, top headlines), each issue's page
(subscribe call to action, Open Graph and Twitter meta, canonical URL), the Atom feed (parsed
with feedparser), private lists, and the embeddable subscribe form (signed form token, honeypot,
rate limit, double opt-in, no CSRF cookie). Flask's test client on a real SQLite file; mail to
a real aiosmtpd on 127.0.0.1."""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser

import feedparser
import pytest
from conftest import WEB_SECRET

from digest.audience.lists import edit_list, get_list
from digest.config import load_config
from digest.delivery.notices import queued_notices
from digest.delivery.preview import preview_digest
from digest.delivery.publish import build_digest
from digest.tokens import form_token
from digest.web.archive import with_page_parts
from digest.web.security import MESSAGE_CSP

DAY = datetime(2025, 1, 20, 6, 0, tzinfo=UTC)
XSS = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'


@pytest.fixture
def smtp(smtp_server):
    return smtp_server()


@pytest.fixture
def app(make_web_app, smtp):
    return make_web_app(
        f'[site]\nname = "Desk"\nbase_url = "https://news.example.org"\n'
        f'[web]\nsubscribe_limit = 3\n[[smtp]]\nurl = "{smtp.url()}"\n'
    )


@pytest.fixture
def world(newsroom):
    return newsroom.add_list(tags=("Haiti", "Kenya"), title="World Desk", description="Daily.")


def build_and_send(db, newsroom, world, day: date, titles: list[str]) -> int:
    for i, title in enumerate(titles):
        newsroom.add_article(title, datetime.combine(day - timedelta(1), datetime.min.time(),
                                                     tzinfo=UTC) + timedelta(hours=i + 1),
                             tags=["Kenya"])  # fmt: skip
    built = build_digest(db, load_config(None, env={}), world, "daily", day,
                         now=datetime.combine(day, datetime.min.time(), tzinfo=UTC))  # fmt: skip
    db.execute("UPDATE deliveries SET status = 'sent' WHERE digest_id = ?", [built.id])
    return built.id


@pytest.fixture
def issues(db, newsroom, world):
    newsroom.subscribe(world, "ann@example.com")
    first = build_and_send(db, newsroom, world, date(2025, 1, 21), ["One", "Two", "Three", "Four"])
    second = build_and_send(db, newsroom, world, date(2025, 1, 22), [XSS])
    return first, second


def subject_of(db, digest_id):
    return db.execute(
        "SELECT subject FROM variants WHERE digest_id = ? AND tags_key = ''", [digest_id]
    ).fetchone()[0]


def test_the_archive_index_shows_each_issues_subject_and_top_headlines(app, db, issues):
    page = app.test_client().get("/archive/world/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    first = html.index("/archive/world/daily/2025-01-22/")
    assert first < html.index("/archive/world/daily/2025-01-21/")  # newest first
    lists = re.findall(r'<ol class="headlines small">(.*?)</ol>', html)
    assert lists[1] == "<li>Four</li><li>Three</li><li>Two</li>"  # three of four, in order
    assert "and 1 more" in html
    assert subject_of(db, issues[0]).split(" — ")[0] in html
    # Headlines and subjects are text: the hostile title is escaped.
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="/subscribe/world"' in html and 'href="/archive/world/feed.atom"' in html
    assert 'type="application/atom+xml"' in html


def test_an_issue_page_has_a_call_to_subscribe_sharing_meta_and_a_canonical_url(app, db, issues):
    response = app.test_client().get("/archive/world/daily/2025-01-21/")
    html = response.get_data(as_text=True)
    assert response.headers["Content-Security-Policy"] == MESSAGE_CSP
    canonical = "https://news.example.org/archive/world/daily/2025-01-21/"

    class Meta(HTMLParser):
        def __init__(self):
            super().__init__()
            self.meta, self.links = {}, {}

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "meta":
                self.meta[a.get("property") or a.get("name")] = a.get("content")
            if tag == "link":
                self.links[a.get("rel")] = a.get("href")

    parser = Meta()
    parser.feed(html)
    assert parser.links["canonical"] == canonical
    assert parser.meta["og:url"] == canonical
    assert parser.meta["og:title"] == subject_of(db, issues[0])
    assert parser.meta["og:type"] == "article" and parser.meta["og:site_name"] == "Desk"
    assert parser.meta["twitter:card"] == "summary"
    assert parser.meta["og:description"].startswith("4 stories, among them: Four · Three")
    assert parser.links["alternate"] == "/archive/world/feed.atom"
    body = html.split("<body>", 1)[1]
    assert body.lstrip().startswith('<div role="complementary"')
    assert 'href="/subscribe/world"' in body and ">Subscribe</a>" in body
    # The hostile headline never becomes markup in the meta tags either.
    other = app.test_client().get("/archive/world/daily/2025-01-22/").get_data(as_text=True)
    head = other.split("</head>")[0]
    assert "<script>alert" not in head and "<img src=x" not in head
    assert "&lt;script&gt;" in head or "&#34;&gt;&lt;img" in head


def test_the_page_parts_go_into_the_first_head_and_body_only():
    html = "<html><head><title>t</title></head><body class=x><p>&lt;/head&gt;</p></body></html>"
    out = with_page_parts(html, "<meta name=a>", "<div>b</div>")
    assert out == (
        "<html><head><title>t</title><meta name=a></head><body class=x><div>b</div>"
        "<p>&lt;/head&gt;</p></body></html>"
    )


def test_the_atom_feed_parses_and_links_every_issue(app, db, issues):
    response = app.test_client().get("/archive/world/feed.atom")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/atom+xml; charset=utf-8"
    feed = feedparser.parse(response.data)
    assert feed.bozo == 0, feed.bozo_exception
    assert feed.version == "atom10"
    assert feed.feed.title == "World Desk — Desk"
    assert feed.feed.link == "https://news.example.org/archive/world/"
    assert [e.link for e in feed.entries] == [
        "https://news.example.org/archive/world/daily/2025-01-22/",
        "https://news.example.org/archive/world/daily/2025-01-21/",
    ]
    assert feed.entries[1].title == subject_of(db, issues[0])
    assert feed.entries[1].summary == "4 stories, among them: Four · Three · Two"
    assert XSS in feed.entries[0].summary  # as text, escaped in the XML
    assert b"<script>" not in response.data
    assert feed.entries[0].id == feed.entries[0].link


def test_the_feed_holds_the_newest_twenty_sent_issues(app, db, newsroom, world):
    newsroom.subscribe(world, "ann@example.com")
    for n in range(22):
        build_and_send(db, newsroom, world, date(2025, 2, 1) + timedelta(n), [f"Story {n}"])
    build_digest(db, load_config(None, env={}), world, "daily", date(2025, 3, 1),
                 now=datetime(2025, 3, 1, tzinfo=UTC))  # built, never sent  # fmt: skip
    feed = feedparser.parse(app.test_client().get("/archive/world/feed.atom").data)
    assert len(feed.entries) == 20
    assert feed.entries[0].link.endswith("/2025-02-22/")


def test_a_private_lists_issues_stay_reachable_but_unlisted(app, db, issues, world):
    edit_list(db, "world", private=True, now=DAY)
    client = app.test_client()
    assert "World Desk" not in client.get("/").get_data(as_text=True)
    assert client.get("/archive/world/").status_code == 404
    assert client.get("/archive/world/feed.atom").status_code == 404
    page = client.get("/archive/world/daily/2025-01-21/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200  # the emails' "view in your browser" links keep working
    assert page.headers["X-Robots-Tag"] == "noindex"
    assert '<meta name="robots" content="noindex">' in html
    assert "og:title" not in html and "/archive/world/feed.atom" not in html
    assert 'href="/archive/world/"' not in html


def test_a_private_lists_issue_is_shown_only_at_the_address_its_emails_link_to(
    app, db, newsroom, world
):
    edit_list(db, "world", private=True, now=DAY)
    private = get_list(db, "world")
    newsroom.subscribe(private, "ann@example.com")
    digest_id = build_and_send(db, newsroom, private, date(2025, 1, 21), ["One", "Two"])
    (key,) = db.execute("SELECT web_key FROM digests WHERE id = ?", [digest_id]).fetchone()
    assert key and len(key) >= 20
    # The message links to its web version with the key: "view in your browser", and "N more".
    config = load_config(None, env={})
    preview = preview_digest(db, config, private, "daily", date(2025, 1, 21),
                             now=DAY, secret=WEB_SECRET, inert=True)  # fmt: skip
    web_links = set(
        re.findall(r'href="([^"]*/archive/world/daily/2025-01-21/[^"]*)"', preview.html)
    )
    assert web_links and all(f"?k={key}" in link for link in web_links)
    assert f"?k={key}" in preview.text
    client = app.test_client()
    plain = client.get("/archive/world/daily/2025-01-21/")
    wrong = client.get("/archive/world/daily/2025-01-21/?k=" + "x" * len(key))
    right = client.get(f"/archive/world/daily/2025-01-21/?k={key}")
    assert plain.status_code == wrong.status_code == 404  # as for an issue that does not exist
    assert "One" not in plain.get_data(as_text=True) + wrong.get_data(as_text=True)
    assert right.status_code == 200 and "One" in right.get_data(as_text=True)
    assert right.headers["X-Robots-Tag"] == "noindex"
    # A public list's issues have no key: their addresses are the archive's.
    public = newsroom.add_list("open", title="Open")
    newsroom.subscribe(public, "bob@example.com")
    opened = build_and_send(db, newsroom, public, date(2025, 1, 21), ["Three"])
    assert db.execute("SELECT web_key FROM digests WHERE id = ?", [opened]).fetchone() == (None,)


# --- the embeddable subscribe form ------------------------------------------------------------


def embed(client, world, **fields):
    data = {"form_token": form_token(WEB_SECRET, world.id), "email": "eve@example.org",
            "frequency": "weekly", "website": "", **fields}  # fmt: skip
    # No session cookie, no CSRF token: posted from another site's page.
    return client.post(
        f"/embed/{world.slug}", data=data, headers={"Origin": "https://blog.example"}
    )


def wait_for(condition, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def status(db, address):
    row = db.execute(
        "SELECT s.status, s.frequency FROM subscriptions s JOIN subscribers p"
        " ON p.id = s.subscriber_id WHERE p.email = ?",
        [address],
    ).fetchone()
    return tuple(row) if row else None


def test_the_embedded_form_subscribes_with_double_opt_in(app, db, world, smtp):
    response = embed(app.test_client(), world)
    assert response.status_code == 303 and response.location == "/subscribe/world/sent"
    assert "Set-Cookie" not in response.headers
    assert status(db, "eve@example.org") == ("pending", "weekly")
    wait_for(lambda: queued_notices(db) == 0 and smtp.handler.received)
    [received] = smtp.handler.received
    assert received.rcpt_to == ["eve@example.org"]
    assert re.search(rb"https://news\.example\.org/c/[A-Za-z0-9_-]+", received.data)


@pytest.mark.parametrize(
    "token",
    [None, "", "forged", form_token(b"another site's secret", 1), form_token(WEB_SECRET, 2)],
)
def test_the_embedded_form_needs_this_lists_signed_token(app, db, world, newsroom, token):
    newsroom.add_list("other", title="Other")  # list id 2
    fields = {"form_token": token} if token is not None else {}
    client = app.test_client()
    data = {"email": "eve@example.org", "frequency": "daily", **fields}
    response = client.post("/embed/world", data=data)
    assert response.status_code == 400
    assert "This form does not work" in response.get_data(as_text=True)
    assert status(db, "eve@example.org") is None


def test_a_bot_that_fills_the_honeypot_gets_the_same_answer_and_nothing_happens(app, db, world):
    response = embed(app.test_client(), world, website="http://spam.example")
    assert response.status_code == 303 and response.location == "/subscribe/world/sent"
    assert status(db, "eve@example.org") is None and queued_notices(db) == 0


def test_the_embedded_form_is_rate_limited_and_shows_bad_input_on_the_list_page(app, db, world):
    client = app.test_client()
    bad = embed(client, world, email=XSS)
    html = bad.get_data(as_text=True)
    assert bad.status_code == 400 and "Subscribe to World Desk" in html
    assert "<script>alert(1)" not in html
    assert "invalid address '" in html and "check it and try again" in html
    assert embed(client, world, email="a@example.org").status_code == 303
    assert embed(client, world, email="b@example.org").status_code == 303
    limited = embed(client, world, email="c@example.org")
    assert limited.status_code == 429 and status(db, "c@example.org") is None


def test_the_embed_address_answers_get_with_the_subscribe_page(app, world):
    response = app.test_client().get("/embed/world")
    assert response.status_code == 303 and response.location == "/subscribe/world"
    assert app.test_client().post("/embed/nope", data={}).status_code == 404
