"""Article pages: what is extracted from a page (title without the site name, date with its
zone, author, tags, canonical URL, lead image, text), the one-line summary, the mapping onto
ArticleInput, telling pages from feeds, hostile pages rejected with a reason (never an
exception, never a hang), and a page served over HTTP."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlite_utils import Database

from digest.articles.inputs import ArticleInput, ParsedSource, Rejection
from digest.articles.reads import list_articles
from digest.articles.writes import store_articles
from digest.ingest.http import http_get
from digest.ingest.pages import (
    PageArticle,
    PageOptions,
    PageRejected,
    RejectReason,
    count_words,
    extract_page,
    is_article_page,
    page_item,
)
from digest.ingest.sources import parse_feed

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "pages"
NOW = datetime(2025, 1, 24, 12, 0, tzinfo=UTC)
URL = "https://news.example.org/2025/01/21/kenya-police-haiti?utm_source=feed"

PARAGRAPHS = [
    "On New Year’s Day, Kenyan police officers found themselves in the midst of an intense "
    "battle against powerful gang networks in Haiti, officials said on Tuesday.",
    "As part of the Multinational Security Support Mission, the officers were tasked with "
    "combating violent gangs in the capital, Port-au-Prince, and surrounding areas.",
    "The mission, established in October 2023, is a collaboration with several countries, "
    "including Jamaica, Belize and El Salvador, under the guidance of the United Nations.",
    "“We moved swiftly at dawn,” said one of the officers, recounting the operation. “Our goal "
    "was clear: to dismantle these criminal networks and keep people safe.”",
]


def article_page(
    *,
    title: str = "Kenya Police Recount Their Battle Against Haiti Gangs - World News Daily",
    head: str = "",
    body_extra: str = "",
) -> str:
    ld = {
        "@context": "https://schema.org",
        "@graph": [
            {"@type": "WebSite", "name": "World News Daily"},
            {
                "@type": "NewsArticle",
                "headline": "Kenya Police Recount Their Battle Against Haiti Gangs",
                "datePublished": "2025-01-21T08:30:00+03:00",
                "author": [{"@type": "Person", "name": "Amina Otieno"}],
                "publisher": {"@type": "Organization", "name": "World News Daily"},
                "keywords": "Kenya, Haiti, Tags, security",
            },
        ],
    }
    paragraphs = "".join(f"<p>{p}</p>" for p in PARAGRAPHS)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{title}</title>
<meta property="og:site_name" content="World News Daily">
<meta property="og:image" content="/images/kenya-police.jpg">
<meta property="og:description" content="Officers describe a day-long operation.">
<meta property="article:tag" content="Police, Kenya">
<link rel="canonical" href="/2025/01/21/kenya-police-haiti">
<script type="application/ld+json">{json.dumps(ld)}</script>
{head}
</head><body>
<header><nav><a href="/">Home</a> <a href="/world">World</a> <a href="/sport">Sport</a></nav></header>
<main><article>
<h1>Kenya Police Recount Their Battle Against Haiti Gangs</h1>
<p class="byline">By Amina Otieno</p>
{paragraphs}
<figure><img src="/images/inline.jpg" alt="Officers on patrol"></figure>
</article></main>
<aside><h2>Most read</h2><ul><li><a href="/a">Another story</a></li><li><a href="/b">And another</a></li></ul></aside>
<footer>© 2025 World News Daily. All rights reserved. <a href="/privacy">Privacy</a></footer>
{body_extra}
</body></html>"""


def test_extracts_an_article_page() -> None:
    page = extract_page(article_page().encode(), url=URL, now=NOW)
    assert isinstance(page, PageArticle)
    assert page.title == "Kenya Police Recount Their Battle Against Haiti Gangs"
    assert page.author == "Amina Otieno"
    assert page.published == datetime(2025, 1, 21, 5, 30, tzinfo=UTC)
    assert page.description == "Officers describe a day-long operation."
    assert page.site_name == "World News Daily"
    assert page.canonical_url == "https://news.example.org/2025/01/21/kenya-police-haiti"
    assert page.link == page.canonical_url
    assert page.lead_image == "https://news.example.org/images/kenya-police.jpg"
    assert page.language == "en"
    # split on commas, cleaned, deduplicated, the literal "Tags" dropped
    assert page.tags == ("Kenya", "Haiti", "security", "Police")
    for paragraph in PARAGRAPHS:
        assert paragraph in page.text
    assert "Most read" not in page.text and "All rights reserved" not in page.text
    assert page.text.count("\n\n") >= len(PARAGRAPHS) - 1
    assert "<p>" in page.content_html and "Another story" not in page.content_html
    assert page.word_count == count_words(page.text) > 80
    assert page.warnings == ()


def test_summary_line_and_article_input() -> None:
    page = extract_page(article_page(), url=URL, now=NOW)
    assert page.summary_line() == (
        'title "Kenya Police Recount Their Battle Against Haiti Gangs" · date 2025-01-21 '
        f"05:30 UTC · author Amina Otieno · {page.word_count} words"
    )
    item = page.to_article_input("kenya.html")
    assert isinstance(item, ArticleInput)
    assert item.entry == "kenya.html"
    assert item.url == "https://news.example.org/2025/01/21/kenya-police-haiti"
    assert item.guid is None
    assert item.title == page.title
    assert item.published == page.published
    assert [t.name for t in item.tags] == list(page.tags)
    assert item.image is not None and item.image.url == page.lead_image
    assert item.content_html == page.content_html
    assert item.summary_html == "<p>Officers describe a day-long operation.</p>"


def test_summary_line_when_fields_are_missing() -> None:
    body = "".join(f"<p>{p}</p>" for p in PARAGRAPHS)
    page = extract_page(f"<html><body><article>{body}</article></body></html>")
    assert page.title is None and page.published is None and page.author is None
    assert page.summary_line() == (
        f"title none · date unknown · author unknown · {page.word_count} words"
    )


@pytest.mark.parametrize(
    ("title", "head", "expected"),
    [
        # the site's name after a separator, known from og:site_name
        ("United States to Lift Sudan Sanctions - The New York Times", "",
         "United States to Lift Sudan Sanctions"),
        ("The New York Times | United States to Lift Sudan Sanctions", "",
         "United States to Lift Sudan Sanctions"),
        # the host name
        ("United States to Lift Sudan Sanctions | NYTimes.com", "",
         "United States to Lift Sudan Sanctions"),
        # a site name with a slogan, and the author as well
        ("Sanctions Lifted — Jane Roe — The New York Times", '<meta name="author" content="Jane Roe">',
         "Sanctions Lifted"),
        # a separator inside the headline stays
        ("Sudan: Sanctions Lifted - The New York Times", "", "Sudan: Sanctions Lifted"),
    ],
)  # fmt: skip
def test_title_without_the_site_name(title: str, head: str, expected: str) -> None:
    body = "".join(f"<p>{p}</p>" for p in PARAGRAPHS)
    html = (
        f"<html><head><title>{title}</title>"
        '<meta property="og:site_name" content="The New York Times">'
        f"{head}</head><body><article>{body}</article></body></html>"
    )
    page = extract_page(html, url="https://www.nytimes.com/2017/01/13/world/sudan.html")
    assert page.title == expected


def test_title_from_the_h1_when_title_has_the_site() -> None:
    body = "".join(f"<p>{p}</p>" for p in PARAGRAPHS)
    html = (
        "<html><head><title>Mozilla - Wikipedia</title></head><body><h1>Mozilla</h1>"
        f"<article>{body}</article></body></html>"
    )
    assert extract_page(html).title == "Mozilla"


def test_json_ld_headline_that_disagrees_with_the_page_is_not_the_title() -> None:
    ld = '{"@type": "Article", "headline": "Wikimedia list article"}'
    body = "".join(f"<p>{p}</p>" for p in PARAGRAPHS)
    html = (
        "<html><head><title>List of films - Wikipedia</title>"
        f'<script type="application/ld+json">{ld}</script></head>'
        f"<body><h1>List of films</h1><article>{body}</article></body></html>"
    )
    assert extract_page(html).title == "List of films"


def test_canonical_pointing_at_the_front_page_is_ignored() -> None:
    html = article_page().replace(
        '<link rel="canonical" href="/2025/01/21/kenya-police-haiti">',
        '<link rel="canonical" href="https://news.example.org/">',
    )
    page = extract_page(html, url=URL)
    assert page.canonical_url is None
    assert page.link == URL


def test_og_url_when_there_is_no_canonical_link() -> None:
    html = article_page().replace(
        '<link rel="canonical" href="/2025/01/21/kenya-police-haiti">',
        '<meta property="og:url" content="https://news.example.org/kenya">',
    )
    assert extract_page(html).canonical_url == "https://news.example.org/kenya"


def test_declared_charset_without_a_header() -> None:
    html = article_page().replace('<meta charset="utf-8">', '<meta charset="windows-1252">')
    data = html.replace("’", "'").replace("“", '"').replace("”", '"').encode("cp1252")
    data = data.replace(b"Kenyan police", "Kenyan polic\u00e9".encode("cp1252"))
    page = extract_page(data)
    assert "Kenyan polic\u00e9" in page.text


# --------------------------------------------------------------------------- feeds or pages


@pytest.mark.parametrize(
    ("data", "content_type", "expected"),
    [
        (b"<!DOCTYPE html><html><body><p>x</p></body></html>", None, True),
        (b"\xef\xbb\xbf  <!doctype html>\n<title>x</title>", None, True),
        (b"<html lang='en'><head><title>x</title></head></html>", None, True),
        (b"<!-- saved page -->\n<html><body>x</body></html>", None, True),
        (b"<p>a fragment, served as a page</p>", "text/html; charset=utf-8", True),
        (b'<?xml version="1.0"?><rss version="2.0"><channel></channel></rss>', None, False),
        (b'<?xml version="1.0"?>\n<feed xmlns="http://www.w3.org/2005/Atom">', None, False),
        # servers send feeds as text/html all the time
        (b'<?xml version="1.0"?><rss version="2.0"><channel/></rss>', "text/html", False),
        (b"<rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>", None, False),
        (b"---\ntitle: Hello\n---\n<p>An article file with front matter.</p>", None, False),
        (b'{"version": "https://jsonfeed.org/version/1.1"}', None, False),
        (b"Just some text.", None, False),
        ("<!DOCTYPE html><html><body>str input</body></html>", None, True),
    ],
)
def test_is_article_page(data: bytes | str, content_type: str | None, expected: bool) -> None:
    assert is_article_page(data, content_type=content_type) is expected


# --------------------------------------------------------------------------- hostile pages


def _rejected(data: bytes | str) -> PageRejected:
    start = time.monotonic()
    with pytest.raises(PageRejected) as info:
        extract_page(data, label="hostile.html")
    assert time.monotonic() - start < 20, "took too long"
    return info.value


def test_huge_page() -> None:
    data = b"<html><body>" + b"<p>lorem ipsum dolor sit amet</p>" * 200_000 + b"</body></html>"
    e = _rejected(data)
    assert e.reason is RejectReason.TOO_LARGE
    assert str(e) == "hostile.html: too large (6.6 MB, over the 5.0 MB limit)"


def test_too_many_elements() -> None:
    data = "<html><body><div>" + "<span>a</span>" * 40_000 + "</div></body></html>"
    e = _rejected(data)
    assert e.reason is RejectReason.TOO_COMPLEX
    assert "over 30,000 elements" in str(e)


def test_deeply_nested() -> None:
    text = " ".join(PARAGRAPHS)
    data = "<html><body>" + "<div>" * 100_000 + text + "</div>" * 100_000 + "</body></html>"
    start = time.monotonic()
    try:
        page = extract_page(data, label="deep.html")
    except PageRejected as e:
        assert e.reason in (RejectReason.NO_ARTICLE, RejectReason.TOO_COMPLEX)
    else:  # libxml2 caps the depth; what it keeps may still read as an article
        assert page.word_count > 0
    assert time.monotonic() - start < 20


def test_no_body() -> None:
    e = _rejected("<html><head><title>Only a title</title></head></html>")
    assert e.reason is RejectReason.NO_ARTICLE
    assert e.detail == "the page has no body"


def test_binary_junk() -> None:
    e = _rejected(bytes(range(256)) * 100)
    assert e.reason is RejectReason.NOT_HTML
    assert e.detail == "binary data"


def test_png_bytes() -> None:
    e = _rejected(b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 200)
    assert e.reason is RejectReason.NOT_HTML


def test_script_only() -> None:
    page = (
        "<html><head><script>window.app = {};</script></head><body><div id=app></div>"
        + "<script>render(app)</script>" * 3
        + "</body></html>"
    )
    e = _rejected(page)
    assert e.reason is RejectReason.NO_ARTICLE
    assert e.detail == "no text outside its 4 scripts; the page may need JavaScript"


def test_empty_and_text_only() -> None:
    assert _rejected(b"").reason is RejectReason.NOT_HTML
    assert _rejected("   \n ").reason is RejectReason.NOT_HTML
    assert _rejected("plain words, no markup at all").reason is RejectReason.NOT_HTML


def test_too_little_text() -> None:
    e = _rejected("<html><body><p>Subscribe to read.</p></body></html>")
    assert e.reason is RejectReason.NO_ARTICLE


def test_page_item_gives_a_rejection() -> None:
    item, page = page_item(b"\x00\x01\x02" * 100, label="junk.html")
    assert page is None
    assert item == Rejection("junk.html", "not an HTML page (binary data)")
    item, page = page_item(article_page(), label="ok.html", url=URL)
    assert isinstance(item, ArticleInput) and page is not None
    assert item.title == page.title


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=3000),
        st.text(alphabet=st.sampled_from(list("<>/=\"' abcdhtmlpdivscriptbody&;#\n\x00é")),
                max_size=3000),
    )
)  # fmt: skip
def test_fuzz_never_raises_anything_but_a_rejection(data: bytes | str) -> None:
    try:
        page = extract_page(data, label="fuzz.html")
    except PageRejected:
        return
    assert page.word_count >= 0


# --------------------------------------------------------------------------- over HTTP


@pytest.fixture
def server() -> Iterator[str]:
    latin = (
        article_page()
        .replace('<meta charset="utf-8">', "")
        .replace("’", "'")
        .replace("“", '"')
        .replace("”", '"')
        .replace("©", "(c)")
        .replace("Kenyan police", "Kenyan polic\u00e9")
        .encode("cp1252")
    )

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=windows-1252")
            self.send_header("Content-Length", str(len(latin)))
            self.end_headers()
            self.wfile.write(latin)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/2025/01/21/kenya"
    httpd.shutdown()
    httpd.server_close()


def test_page_fetched_over_http(server: str) -> None:
    response = http_get(server, timeout=5, allow_private=True)  # the server is on 127.0.0.1
    assert response.body is not None
    assert is_article_page(response.body, content_type=response.content_type)
    page = extract_page(
        response.body, url=response.url, content_type=response.content_type, now=NOW
    )
    assert "Kenyan polic\u00e9" in page.text  # decoded with the header's charset
    assert page.title == "Kenya Police Recount Their Battle Against Haiti Gangs"
    assert page.canonical_url == "http://127.0.0.1:{}/2025/01/21/kenya-police-haiti".format(
        server.split(":")[2].split("/")[0]
    )


# --------------------------------------------------------------------------- the corpus


def _corpus_page(name: str) -> bytes:
    return (CORPUS / name / "source.html").read_bytes()


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus/pages is absent")
@pytest.mark.parametrize(
    ("name", "title", "day"),
    [
        ("nytimes-1", "United States to Lift Sudan Sanctions", "2017-01-13"),
        ("breitbart", "'Neutral' Snopes Fact-Checker David Emery: 'Are There Any Un-Angry "
         "Trump Supporters?'", "2016-12-22"),
        ("theverge", "Apple’s Vision Pro hands-on: the Retina display moment for headsets",
         "2023-06-07"),
        ("wikipedia", "Mozilla", "1998-02-28"),
        ("aktualne", "West Ham hrozí gigantům, okouzlil i Linekera. Součka je snadné "
         "přehlédnout", "2021-11-01"),
    ],
)  # fmt: skip
def test_corpus_pages(name: str, title: str, day: str) -> None:
    page = extract_page(_corpus_page(name), label=name, now=NOW)
    assert page.title == title
    assert page.published is not None and page.published.strftime("%Y-%m-%d") == day
    assert page.word_count > 200


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus/pages is absent")
def test_every_corpus_page_extracts_or_is_rejected_with_a_reason() -> None:
    rejected = []
    for folder in sorted(CORPUS.iterdir()):
        try:
            page = extract_page((folder / "source.html").read_bytes(), label=folder.name)
        except PageRejected as e:
            rejected.append((folder.name, e.reason))
            continue
        assert page.text and page.content_html
    # four synthetic test cases of a few words each; every real page gives an article
    assert len(rejected) <= 4
    assert {reason for _, reason in rejected} <= {RejectReason.NO_ARTICLE}


def test_limits_are_options() -> None:
    with pytest.raises(PageRejected, match=r"page: too large \(\d KB, over the 1 KB limit\)"):
        extract_page(article_page(), options=PageOptions(max_bytes=1000))
    with pytest.raises(PageRejected, match="over 20 elements"):
        extract_page(article_page(), options=PageOptions(max_elements=20))
    no_links = extract_page(article_page(), url=URL, options=PageOptions(links=False))
    assert "<a " not in no_links.content_html


def test_malformed_urls_in_the_page_and_the_argument() -> None:
    html = (
        article_page()
        .replace("/2025/01/21/kenya-police-haiti", "http://[::1")
        .replace("/images/kenya-police.jpg", "https://example.org:port/x.jpg")
        .replace("<head>", '<head><base href="http://[bad">')
    )
    for url in (None, "http://[::1/page", "https://news.example.org:99999/a", "not a url"):
        page = extract_page(html, url=url)
        assert page.canonical_url is None
        assert page.lead_image is None or page.lead_image.startswith("http")
        assert page.title == "Kenya Police Recount Their Battle Against Haiti Gangs"


def test_page_and_the_same_story_in_a_feed_are_one_article(db: Database) -> None:
    """Through the real store: the page ingested first (by its canonical URL), the feed entry
    linking to it with tracking parameters later, one row with both sources' tags."""
    page = extract_page(article_page(), url=URL, now=NOW)
    parsed = ParsedSource(label=URL, kind="html", base_url=page.base_url)
    parsed.items.append(page.to_article_input(URL))
    first = store_articles(db, parsed, now=NOW)
    assert first.new == 1

    feed = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>World</title>'
        "<link>https://news.example.org/</link><description>d</description><item>"
        "<guid isPermaLink='false'>wnd-4471</guid><title>Kenya police and Haiti gangs</title>"
        "<link>https://news.example.org/2025/01/21/kenya-police-haiti?utm_source=rss</link>"
        "<category>World</category><pubDate>Tue, 21 Jan 2025 05:30:00 GMT</pubDate>"
        "<description>One sentence.</description></item></channel></rss>"
    )
    second = store_articles(db, parse_feed(feed.encode(), "feed.xml"), now=NOW)
    assert second.new == 0
    articles = list_articles(db)
    assert len(articles) == 1
    stored = articles[0]
    assert stored.title == "Kenya Police Recount Their Battle Against Haiti Gangs"
    assert {"Kenya", "Police", "World"} <= set(stored.tag_names)


def test_machine_values_are_not_tags() -> None:
    html = article_page(
        head='<meta name="keywords" content="Lite:true, LayerCake:0, null, stream-23490979, '
        'Tags, COVID-19, kenya">'
    )
    tags = extract_page(html).tags
    assert tags == ("Kenya", "Haiti", "security", "Police", "COVID-19")
