"""Article pages: one web page (HTML, saved or fetched) turned into one article. trafilatura finds
the main text (its HTML and plain text); the page's own metadata gives the rest: title, author,
publication date, description, lead image, tags, site name and canonical URL. The result is a
``PageArticle``; ``to_article_input()`` maps it onto the ``ArticleInput`` every source produces.
The HTML stays raw here: the store sanitises it with nh3, as it does all content.

A page where no article can be found is rejected with the reason (``PageRejected``, or a
``Rejection`` from ``page_item``): too large, too many elements, not HTML, no article text, or
a site's front page (a URL whose path is ``/``, without a query: it has text enough to pass
for an article, and a removed article often redirects there).
Failures belong to the page; nothing here touches the network or the database.

How each field is chosen (measured on ``../shared/corpus/pages`` by ``bench/pages.py``):

- **title**: the first of the JSON-LD article ``headline``, the ``og:title``/``twitter:title``/
  Dublin Core/Parse.ly title, the ``<title>`` element and the page's ``<h1>``; then the site's
  name is cut off (``United States to Lift Sudan Sanctions - The New York Times``): a leading or
  trailing segment after `` | ``, `` - ``, `` – ``, `` — ``, `` · ``, `` » ``, ``::``, ``_`` or in
  ``[...]`` is dropped when it names the site (``og:site_name``, the publisher, the host name) or
  the author. A ``<title>`` whose first segment is the page's ``<h1>`` becomes that ``<h1>``.
- **date**: the publication time the page states in its structured metadata (JSON-LD
  ``datePublished``, ``article:published_time``, ``itemprop=datePublished``, Dublin Core,
  Parse.ly, ``<time pubdate>``), read by ``digest.dates.parse_date`` with its time and zone;
  otherwise the day htmldate (trafilatura's date finder) reads from the page, at 00:00 UTC.
- **tags**: ``article:tag``, keywords and the article's category links, split on commas,
  trimmed, deduplicated case-insensitively, without a literal "Tags".
- **canonical URL**: ``<link rel=canonical>``, else ``og:url``, resolved against the page URL
  (and ``<base href>``); a canonical pointing at the site's front page is ignored.
- **lead image**: ``og:image``/``twitter:image``, else the first image of the article.
- **text**: trafilatura's main text, without a first heading that repeats the title; control
  characters an XML tree cannot hold (a stray ESC or form feed) are dropped before extraction.
- **other URLs**: the page URL, the canonical URL and ``og:url`` all name the story; the store
  remembers them (``to_article_input``'s ``aliases``) to match the story across sources.
"""

from __future__ import annotations

import codecs
import contextlib
import html
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import SplitResult, urljoin, urlsplit

import orjson
import trafilatura
from htmldate import find_date
from lxml import etree
from lxml.html import HtmlElement, HTMLParser, document_fromstring
from trafilatura.htmlprocessing import convert_to_html
from trafilatura.metadata import extract_author, extract_catstags

from ..articles.inputs import ArticleInput, Rejection
from ..articles.leadimage import image_candidate
from ..articles.tagging import value_tags
from ..articles.tags import clean_tag_name, tag_key
from ..errors import SourceError
from .dates import parse_date
from .sources import clean_title

# A page over this is rejected before parsing. The largest page of the test corpus is 1.6 MB;
# feeds may be 20 MB, but a 20 MB web page is a dump, not an article.
MAX_PAGE_BYTES = 5_000_000
# trafilatura's time grows with the element count, at ~0.1-0.2 ms per element here (80,000
# paragraphs: 17 s). The largest corpus page has ~9,900 elements; 30,000 keeps the worst case
# to a few seconds.
MAX_PAGE_ELEMENTS = 30_000
# Text shorter than this is not an article (a login wall, a cookie notice, a script-only shell).
MIN_ARTICLE_CHARS = 80


class RejectReason(StrEnum):
    TOO_LARGE = "too large"
    TOO_COMPLEX = "too many elements"
    NOT_HTML = "not an HTML page"
    NO_ARTICLE = "no article found"


class PageRejected(SourceError):
    """A page that does not give an article; ``reason`` says which check failed and the message
    says what was found."""

    def __init__(self, label: str, reason: RejectReason, detail: str):
        super().__init__(f"{label}: {reason.value} ({detail})")
        self.label = label
        self.reason = reason
        self.detail = detail


class Focus(StrEnum):
    """trafilatura's trade-off between keeping boilerplate and losing article text."""

    PRECISION = "precision"
    BALANCED = "balanced"
    RECALL = "recall"


@dataclass(frozen=True, slots=True)
class PageOptions:
    max_bytes: int = MAX_PAGE_BYTES
    max_elements: int = MAX_PAGE_ELEMENTS
    focus: Focus = Focus.BALANCED
    # trafilatura's fast mode skips its second opinion (readability-lxml and jusText run when the
    # first pass looks too short). bench/pages.py measures both; see DEFAULT_OPTIONS.
    fast: bool = True
    links: bool = True  # keep links in the article HTML
    images: bool = True  # keep images in the article HTML


DEFAULT_OPTIONS = PageOptions()


@dataclass(frozen=True, slots=True)
class PageArticle:
    """What was extracted from one page. ``content_html`` is raw (the store sanitises it);
    ``text`` is the same content as plain text, paragraphs separated by blank lines."""

    label: str  # the page as the user named it (path or URL), for messages
    url: str | None  # where the page was fetched from, if known
    canonical_url: str | None
    title: str | None
    author: str | None
    published: datetime | None  # tz-aware UTC
    raw_date: str | None  # the date text found, when it could not be read
    description: str | None
    site_name: str | None
    lead_image: str | None
    language: str | None
    tags: tuple[str, ...]
    content_html: str
    text: str
    word_count: int
    base_url: str | None  # for resolving relative links in content_html
    named_urls: tuple[str, ...] = ()  # canonical_url, then og:url if it differs
    warnings: tuple[str, ...] = ()

    @property
    def link(self) -> str | None:
        """The URL readers are sent to: the canonical one when the page names it."""
        return self.canonical_url or self.url

    @property
    def other_urls(self) -> tuple[str, ...]:
        """The page's URLs other than ``link``: where it was fetched from and its ``og:url``.
        The store remembers them, so the story is recognised under any of them."""
        urls = (self.url, *self.named_urls)
        return tuple(dict.fromkeys(u for u in urls if u and u != self.link))

    def summary_line(self) -> str:
        """One line for an editor to check what was extracted:
        ``title "…" · date 2017-01-13 · author Jeffrey Gettleman · 742 words``."""
        return extraction_line(self.title, self.published, self.author, self.word_count)

    def to_article_input(self, entry: str | None = None) -> ArticleInput:
        """The article as every source gives it. A page has no guid: its link (the canonical
        URL, else the page URL) is its key, which the store also matches against the links of
        feed entries, and its other URLs go along as aliases, so the same story arriving later
        in a feed, or stored earlier from one, is the same article."""
        return ArticleInput(
            entry=entry or self.label,
            title=self.title,
            url=self.link,
            guid=None,
            author=self.author,
            published=self.published,
            raw_date=self.raw_date if self.published is None else None,
            summary_html=f"<p>{html.escape(self.description)}</p>" if self.description else None,
            content_html=self.content_html,
            tags=value_tags(self.tags),
            image=image_candidate(self.lead_image, base_url=self.base_url),
            aliases=self.other_urls,
        )


def extraction_line(
    title: str | None, published: datetime | None, author: str | None, word_count: int
) -> str:
    """``title "…" · date 2017-01-13 · author Jeffrey Gettleman · 742 words``: what was read
    from a page or a text scrape, for an editor to check (unknown fields say so)."""
    shown = f'"{_shorten(title, 80)}"' if title else "none"
    when = published.strftime("%Y-%m-%d") if published else "unknown"
    if published and (published.hour, published.minute) != (0, 0):
        when += published.strftime(" %H:%M UTC")
    by = _shorten(author, 60) if author else "unknown"
    words = f"{word_count} word" + ("" if word_count == 1 else "s")
    return f"title {shown} · date {when} · author {by} · {words}"


# ---------------------------------------------------------------------------- dispatch

_FEED_ROOT = re.compile(rb"<(?:rss|feed|rdf:RDF|channel)[\s>]", re.IGNORECASE)
_HTML_START = re.compile(rb"<(?:!doctype\s+html|html|head|body|meta|title|article)[\s>/]", re.I)
_XML_NOISE = re.compile(rb"\s*(?:<\?xml[^>]*>|<!--.*?-->|<!doctype[^>]*>|\s)*", re.DOTALL | re.I)


def is_article_page(data: bytes | str, *, content_type: str | None = None) -> bool:
    """Whether a document is a web page to extract an article from, rather than a feed or an
    article file with front matter. A page has no front matter and its first element is HTML's
    (``<!doctype html>``, ``<html>``, ``<head>``, ...); a URL that answered ``text/html`` is a
    page unless its body is plainly a feed (servers often send feeds as text/html)."""
    head = data[:4096].encode("utf-8", "replace") if isinstance(data, str) else data[:4096]
    head = head.removeprefix(codecs.BOM_UTF8)
    stripped = head.lstrip()
    if stripped.startswith(b"---"):
        return False  # YAML front matter: an article file, read by sources.parse_document_file
    start = _XML_NOISE.match(head)
    rest = head[start.end() if start else 0 :]
    if _FEED_ROOT.match(rest):
        return False
    mime = (content_type or "").split(";")[0].strip().lower()
    if mime in ("text/html", "application/xhtml+xml"):
        return True
    return bool(_HTML_START.match(rest))


# ---------------------------------------------------------------------------- extraction


def extract_page(
    data: bytes | str,
    *,
    url: str | None = None,
    label: str | None = None,
    content_type: str | None = None,
    now: datetime | None = None,
    options: PageOptions = DEFAULT_OPTIONS,
) -> PageArticle:
    """The article in one HTML page. ``url`` is where it came from (resolves relative links and
    helps find the date); ``content_type`` is the HTTP header, whose charset wins; ``now``
    bounds the dates htmldate accepts (the CLI passes the ingest time). Raises
    ``PageRejected`` when there is no article; never anything else for bad input."""
    label = label or url or "page"
    url = url if url and _is_http(url) else None  # trafilatura drops a page whose URL is bad
    if url is not None and _is_front_page(url):
        # A front page has text enough to pass for an article (teasers, the latest posts), and
        # a removed article often redirects to it.
        detail = "a site's front page; give the address of one article, or the site's feed"
        raise PageRejected(label, RejectReason.NO_ARTICLE, detail)
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    if size > options.max_bytes:
        raise PageRejected(
            label,
            RejectReason.TOO_LARGE,
            f"{_size(size)}, over the {_size(options.max_bytes)} limit",
        )
    text = _decode(data, content_type) if isinstance(data, bytes) else data
    if _looks_binary(text):
        raise PageRejected(label, RejectReason.NOT_HTML, "binary data")
    # The extractor builds an XML tree, which cannot hold these: one stray ESC or form feed in
    # a page would otherwise lose its whole article. Browsers show nothing for them either.
    text = _NOT_XML.sub("", text)
    tree = _parse_html(text)
    if tree is None:
        raise PageRejected(label, RejectReason.NOT_HTML, "no HTML elements could be read")
    count = _count_elements(tree)
    if count > options.max_elements:
        raise PageRejected(
            label,
            RejectReason.TOO_COMPLEX,
            f"over {options.max_elements:,} elements; the extractor would take too long",
        )
    meta = _read_metadata(tree)
    try:
        # trafilatura's own metadata pass (with_metadata) is not used: _read_metadata reads the
        # same tags once, and the expensive fallbacks run only when the page lacks the field.
        # output_format "xml" skips rendering a text version that is not used here.
        doc = trafilatura.bare_extraction(
            tree,
            url=url,
            fast=options.fast,
            favor_precision=options.focus is Focus.PRECISION,
            favor_recall=options.focus is Focus.RECALL,
            include_comments=False,
            include_tables=True,
            include_images=options.images,
            include_links=options.links,
            include_formatting=True,
            output_format="xml",
        )
    except RecursionError:
        raise PageRejected(label, RejectReason.TOO_COMPLEX, "nested too deeply") from None
    except Exception as e:  # noqa: BLE001 - a bug in the extractor is this page's failure
        detail = f"the extractor failed on this page: {type(e).__name__}"
        raise PageRejected(label, RejectReason.NO_ARTICLE, detail) from None
    body_xml = getattr(doc, "body", None)
    if body_xml is None:
        raise PageRejected(label, RejectReason.NO_ARTICLE, _why_empty(tree))
    # bare_extraction worked on a copy: the tree is still the whole page for the fallbacks.
    _fill_from_page(tree, meta, url, now)
    body = convert_to_html(body_xml)[0]
    article_text = _text_of(body)
    if len(article_text) < MIN_ARTICLE_CHARS:
        raise PageRejected(label, RejectReason.NO_ARTICLE, _why_empty(tree, article_text))
    return _article(label, url, meta, body)


def page_item(
    data: bytes | str,
    *,
    label: str,
    url: str | None = None,
    content_type: str | None = None,
    now: datetime | None = None,
    options: PageOptions = DEFAULT_OPTIONS,
) -> tuple[ArticleInput | Rejection, PageArticle | None]:
    """``extract_page`` for the ingest path: the ``ArticleInput`` (or the ``Rejection``) to put
    in a ``ParsedSource``, and the ``PageArticle`` for printing its ``summary_line``."""
    try:
        page = extract_page(
            data, url=url, label=label, content_type=content_type, now=now, options=options
        )
    except PageRejected as e:
        return Rejection(label, f"{e.reason.value} ({e.detail})"), None
    return page.to_article_input(label), page


def count_words(text: str) -> int:
    """Words as ``words`` splits them: CJK characters count one each."""
    return sum(1 for _ in _WORD.finditer(text))


def words(text: str) -> list[str]:
    """The words of a text for counting and comparing: NFKC, case-folded; runs of letters and
    digits, except that each Chinese/Japanese/Korean character is a word of its own (those
    scripts do not separate words with spaces)."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


_WORD = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]|[^\W_]+")


# ---------------------------------------------------------------------------- decoding, parsing

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_HTML_PARSER = HTMLParser(remove_comments=True, remove_pis=True, collect_ids=False)


def _decode(data: bytes, content_type: str | None) -> str:
    """Bytes to text the way browsers do, simplified: a BOM, then the HTTP charset, then UTF-8
    if it decodes, then the page's ``<meta charset>``, then windows-1252 (WHATWG's default for
    unlabelled Western pages); undecodable bytes become U+FFFD."""
    for bom, encoding in ((codecs.BOM_UTF8, "utf-8"), (b"\xff\xfe", "utf-16-le"),
                          (b"\xfe\xff", "utf-16-be")):  # fmt: skip
        if data.startswith(bom):
            return data[len(bom) :].decode(encoding, "replace")
    declared = _charset(content_type)
    if declared:
        return data.decode(declared, "replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    m = _META_CHARSET.search(data[:4096])
    declared = _known_codec(m[1].decode("ascii", "replace")) if m else None
    return data.decode(declared or "cp1252", "replace")


def _charset(content_type: str | None) -> str | None:
    m = re.search(r"charset\s*=\s*\"?([\w.:-]+)", content_type or "", re.I)
    return _known_codec(m[1]) if m else None


def _known_codec(name: str) -> str | None:
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _looks_binary(text: str) -> bool:
    """NUL and other C0 controls do not occur in HTML; a sample with many is an image, an
    archive or random bytes."""
    sample = text[:4096]
    if not sample:
        return False
    controls = sum(1 for ch in sample if ch < " " and ch not in "\t\n\r\f")
    return (
        "\x00" in sample
        or controls > len(sample) // 100
        or sample.count("\ufffd") > len(sample) // 10
    )


def _parse_html(text: str) -> HtmlElement | None:
    # libxml2 stops nesting at depth 256 (lxml's huge_tree is off), so 100,000 nested <div>s
    # parse quickly into a shallow tree. lxml refuses str input that declares an encoding in
    # an XML declaration.
    text = re.sub(r"^\s*<\?xml[^>]*\?>", "", text, count=1)
    if not text.strip() or "<" not in text:
        return None
    try:
        return document_fromstring(text, parser=_HTML_PARSER)
    except (etree.ParserError, ValueError):
        return None


def _count_elements(tree: HtmlElement) -> int:
    count = tree.xpath("count(//*)")  # counted inside libxml2, without building a list
    return int(count) if isinstance(count, float) else 0


_REL_TAG = etree.XPath("//a[contains(concat(' ', normalize-space(@rel), ' '), ' tag ')]")


def _fill_from_page(tree: HtmlElement, meta: _Meta, url: str | None, now: datetime | None) -> None:
    """trafilatura's and htmldate's searches of the page body, for what the metadata lacks:
    the byline, a date written in the page, category and tag links."""
    if not meta.authors:
        try:
            meta.scraped_author = extract_author(tree)
        except Exception:  # noqa: BLE001 - a fallback; a bug in it must not lose the article
            meta.scraped_author = None
    if not any(parse_date(d) for d in meta.dates):
        # htmldate reads the clock for its upper bound unless given one. Its extensive search
        # (any date-looking text on the page) is off: on the corpus it dates 14 more pages, but
        # about half of those are copyright years read as 1 January (mozilla-1: 1998-01-01,
        # mathjax: 2026-01-01), and extraction takes ~40% longer. No date is better than a
        # wrong one: the ingest time is used, with a warning.
        try:
            found = find_date(
                tree,
                extensive_search=False,
                original_date=True,
                url=url,
                max_date=now.astimezone(UTC).strftime("%Y-%m-%d") if now else None,
            )
        except Exception:  # noqa: BLE001 - a fallback; a bug in it must not lose the article
            found = None
        if found:
            meta.dates.append(found)
    if not meta.tags:
        # rel=tag links (the microformat WordPress and most blog engines write), else
        # trafilatura's search for category and tag links by class and URL.
        links = _REL_TAG(tree)
        if isinstance(links, list):
            meta.tags.extend(_inline_text(a) for a in links if isinstance(a, HtmlElement))
        if not meta.tags:
            # a fallback: a bug in it must not lose the article
            with contextlib.suppress(Exception):
                meta.tags.extend(extract_catstags("tag", tree))


def _why_empty(tree: HtmlElement, text: str = "") -> str:
    if tree.find("body") is None or not len(tree.find("body")):
        return "the page has no body"
    scripts = len(tree.xpath("//script"))
    if text:
        n = count_words(text)
        return f"only {n} word{'' if n == 1 else 's'} of text"
    if scripts:
        plural = "s" if scripts > 1 else ""
        return f"no text outside its {scripts} script{plural}; the page may need JavaScript"
    return "no text that reads as an article"


# ---------------------------------------------------------------------------- metadata


@dataclass(slots=True)
class _Meta:
    """What the page says about itself in <head>, JSON-LD and a few body elements."""

    title_tag: str | None = None
    meta_titles: list[str] = field(default_factory=list)
    ld_titles: list[str] = field(default_factory=list)  # headline, then name
    h1s: list[str] = field(default_factory=list)
    site_names: list[str] = field(default_factory=list)
    authors: list[str] = field(default_factory=list)
    dates: list[str] = field(default_factory=list)
    canonical: str | None = None
    og_url: str | None = None
    base_href: str | None = None
    images: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    language: str | None = None
    descriptions: list[str] = field(default_factory=list)
    scraped_author: str | None = None  # trafilatura's byline search, when there is no metadata


# meta names/properties, lower-case, in order of trust
_TITLE_KEYS = ("og:title", "twitter:title", "dc.title", "dcterms.title", "parsely-title",
               "sailthru.title", "headline")  # fmt: skip
_SITE_KEYS = ("og:site_name", "application-name", "apple-mobile-web-app-title", "publisher",
              "dc.publisher", "twitter:site")  # fmt: skip
_AUTHOR_KEYS = ("author", "article:author", "dc.creator", "dcterms.creator", "parsely-author",
                "sailthru.author", "byl")  # fmt: skip
_DATE_KEYS = ("article:published_time", "og:published_time", "datepublished", "parsely-pub-date",
              "sailthru.date", "dc.date.issued", "dcterms.issued", "dc.date", "dcterms.created",
              "dcterms.date", "date", "pubdate", "publishdate", "publish-date", "publish_date",
              "article.published", "citation_publication_date", "published_time",
              "article:published")  # fmt: skip
_IMAGE_KEYS = ("og:image", "og:image:url", "og:image:secure_url", "twitter:image",
               "twitter:image:src", "thumbnail", "image")  # fmt: skip
_DESCRIPTION_KEYS = ("og:description", "description", "twitter:description", "dc.description")
_TAG_KEYS = ("article:tag", "keywords", "news_keywords", "parsely-tags", "sailthru.tags",
             "article:section")  # fmt: skip
_ARTICLE_TYPES = {"article", "newsarticle", "blogposting", "reportagenewsarticle",
                  "analysisnewsarticle", "opinionnewsarticle", "scholarlyarticle", "techarticle",
                  "report", "webpage", "posting", "socialmediaposting", "liveblogposting"}  # fmt: skip


def _read_metadata(tree: HtmlElement) -> _Meta:
    meta = _Meta()
    meta.language = (tree.get("lang") or "").strip() or None
    by_key: dict[str, list[str]] = {}
    for el in tree.iter("meta", "link", "title", "base", "h1", "time"):
        tag = el.tag
        if tag == "meta":
            key = (el.get("property") or el.get("name") or el.get("itemprop") or "").lower()
            content = (el.get("content") or el.get("datetime") or "").strip()
            if key and content:
                by_key.setdefault(key.strip(), []).append(content)
        elif tag == "link":
            rel = (el.get("rel") or "").lower().split()
            href = (el.get("href") or "").strip()
            if "canonical" in rel and href and meta.canonical is None:
                meta.canonical = href
            elif "image_src" in rel and href:
                by_key.setdefault("image", []).append(href)
        elif tag == "title":
            # <title> inside inline SVG icons is not the page's title
            if meta.title_tag is None and next(el.iterancestors("svg"), None) is None:
                meta.title_tag = _inline_text(el) or None
        elif tag == "base":
            meta.base_href = meta.base_href or (el.get("href") or "").strip() or None
        elif tag == "h1":
            text = _inline_text(el)
            if text:
                meta.h1s.append(text)
        elif tag == "time" and (
            el.get("pubdate") is not None or el.get("itemprop") == "datePublished"
        ):
            value = el.get("datetime") or _inline_text(el)
            if value:
                by_key.setdefault("time-pubdate", []).append(value)
    _read_json_ld(tree, meta)
    for key in _TITLE_KEYS:
        meta.meta_titles.extend(by_key.get(key, ()))
    for key in _SITE_KEYS:
        meta.site_names.extend(v.lstrip("@") for v in by_key.get(key, ()))
    for key in _AUTHOR_KEYS:
        meta.authors.extend(v for v in by_key.get(key, ()) if not _is_url(v))
    for key in (*_DATE_KEYS, "time-pubdate"):
        meta.dates.extend(by_key.get(key, ()))
    for key in _IMAGE_KEYS:
        meta.images.extend(by_key.get(key, ()))
    for key in _TAG_KEYS:
        meta.tags.extend(by_key.get(key, ()))
    for key in _DESCRIPTION_KEYS:
        meta.descriptions.extend(by_key.get(key, ()))
    meta.og_url = next(iter(by_key.get("og:url", ())), None)
    return meta


def _read_json_ld(tree: HtmlElement, meta: _Meta) -> None:
    """schema.org Article data, which most news sites embed; the first article-like object
    (searching ``@graph`` and lists) wins."""
    for script in tree.iterfind(".//script[@type='application/ld+json']"):
        # Pages serialised as XHTML wrap scripts in CDATA sections or comments
        source = _SCRIPT_WRAPPER.sub("", script.text or "")
        try:
            data = orjson.loads(source.encode())
        except orjson.JSONDecodeError:
            continue
        for obj in _ld_objects(data):
            types = obj.get("@type")
            names = {str(t).lower() for t in (types if isinstance(types, list) else [types])}
            if not names & _ARTICLE_TYPES:
                continue
            # A WebPage describes the page, not the article: its dates and author are used,
            # but its headline is often the site's slogan.
            is_page = names == {"webpage"}
            if not is_page:
                for key in ("headline", "name"):
                    title = _ld_text(obj.get(key))
                    if title:
                        meta.ld_titles.append(title)
            for key in ("datePublished", "dateCreated"):
                if _ld_text(obj.get(key)):
                    meta.dates.insert(0, _ld_text(obj.get(key)) or "")
                    break
            people = [
                _ld_text(person.get("name") if isinstance(person, dict) else person)
                for person in _ld_list(obj.get("author"))
            ]
            # ahead of the <meta> authors, in the article's order
            meta.authors[:0] = [name for name in people if name and not _is_url(name)]
            for publisher in _ld_list(obj.get("publisher")):
                name = _ld_text(publisher.get("name") if isinstance(publisher, dict) else None)
                if name:
                    meta.site_names.append(name)
            description = _ld_text(obj.get("description"))
            if description:
                meta.descriptions.append(description)
            for image in _ld_list(obj.get("image")):
                src = _ld_text(image.get("url") if isinstance(image, dict) else image)
                if src:
                    meta.images.append(src)
            keywords = obj.get("keywords")
            if isinstance(keywords, str):
                meta.tags.append(keywords)
            elif isinstance(keywords, list):
                meta.tags.extend(k for k in keywords if isinstance(k, str))
            if not is_page:
                return


_SCRIPT_WRAPPER = re.compile(r"^\s*(?://\s*)?(?:<!\[CDATA\[|<!--)|(?://\s*)?(?:\]\]>|-->)\s*$")


def _ld_objects(data: object, depth: int = 0) -> Iterator[dict[str, Any]]:
    if depth > 4:
        return
    if isinstance(data, list):
        for item in data:
            yield from _ld_objects(item, depth + 1)
    elif isinstance(data, dict):
        yield data
        graph = data.get("@graph")
        if graph is not None:
            yield from _ld_objects(graph, depth + 1)


def _ld_list(value: object) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _ld_text(value: object) -> str | None:
    if isinstance(value, str):
        value = html.unescape(value).strip()
        return value or None
    return None


def _inline_text(el: HtmlElement) -> str:
    return " ".join("".join(el.itertext()).split())


def _is_url(value: str) -> bool:
    return value.startswith(("http://", "https://", "//", "/"))


# ---------------------------------------------------------------------------- assembling


def _article(label: str, url: str | None, meta: _Meta, body: etree._Element) -> PageArticle:
    base = _base_url(url, meta.base_href)
    named = _named_urls(meta, base, url)
    canonical = named[0] if named else None
    link = canonical or url
    site_name = _first(meta.site_names) or _host_name(link)
    author = _author(meta)
    published, raw_date, warnings = _published(meta)
    title = _title(meta, site_name, author, [url, canonical, meta.og_url])
    content_html, text = _content(body, title)
    image = next((u for u in (_absolute(i, base) for i in meta.images) if u), None)
    if image is None:
        first = re.search(r"<img[^>]+src=\"([^\"]+)\"", content_html)
        image = _absolute(html.unescape(first[1]), base) if first else None
    return PageArticle(
        label=label,
        url=url,
        canonical_url=canonical,
        title=title,
        author=author,
        published=published,
        raw_date=raw_date,
        description=clean_title(_first(meta.descriptions)),
        site_name=clean_title(site_name),
        lead_image=image,
        language=meta.language,
        tags=_clean_tags(meta.tags),
        content_html=content_html,
        text=text,
        word_count=count_words(text),
        base_url=base or canonical,
        named_urls=tuple(named),
        warnings=tuple(warnings),
    )


def _content(body: etree._Element, title: str | None) -> tuple[str, str]:
    """The article's HTML and text, without a leading heading that repeats the title (the
    digest shows the title above the text already)."""
    first = body[0] if len(body) else None
    if (
        title
        and first is not None
        and first.tag in ("h1", "h2")
        and not (body.text or "").strip()
        and _key(_inline_text(first)) == _key(title)
        and len(_text_of(body)) - len(_inline_text(first)) >= MIN_ARTICLE_CHARS
    ):
        body.text = first.tail
        body.remove(first)
    content_html = "".join(
        etree.tostring(child, encoding="unicode", method="html") for child in body
    ).strip()
    if body.text and body.text.strip():
        content_html = html.escape(body.text) + content_html
    return content_html, _text_of(body)


def _is_front_page(url: str) -> bool:
    parts = _split(url)
    return parts is not None and parts.path in ("", "/") and not parts.query


def _host_name(url: str | None) -> str | None:
    host = _hostname(url)
    return host.removeprefix("www.") if host else None


def _split(url: str | None) -> SplitResult | None:
    """``urlsplit``, or None for what it refuses ("http://[::1", a port of "x")."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - validates the port, which urlsplit itself does not
    except ValueError:
        return None
    return parts


def _hostname(url: str | None) -> str | None:
    parts = _split(url) if url and _is_http(url) else None
    return parts.hostname if parts else None


def _first(values: Iterable[str]) -> str | None:
    for value in values:
        value = " ".join(value.split())
        if value:
            return value
    return None


def _base_url(url: str | None, base_href: str | None) -> str | None:
    if base_href:
        joined = _join(url or "", base_href)
        if joined and _is_http(joined):
            return joined
    return url if url and _is_http(url) else None


def _absolute(value: str | None, base: str | None) -> str | None:
    if not value:
        return None
    value = value.strip()
    if value.startswith("//"):
        value = "https:" + value
    if base and not _is_http(value):
        value = _join(base, value) or ""
    return value if _is_http(value) else None


def _join(base: str, url: str) -> str | None:
    try:
        return urljoin(base, url)
    except ValueError:
        return None


def _is_http(url: str) -> bool:
    if not url.startswith(("http://", "https://")):
        return False
    parts = _split(url)
    return parts is not None and bool(parts.netloc) and not any(c in url for c in " \n\r\t")


def _named_urls(meta: _Meta, base: str | None, url: str | None) -> list[str]:
    """The URLs the page names for itself (``<link rel=canonical>``, then ``og:url``),
    resolved, without a front page named on an article."""
    out = []
    for candidate in (meta.canonical, meta.og_url):
        resolved = _absolute(candidate, base)
        if resolved is None:
            continue
        path = urlsplit(resolved).path  # _absolute checked that it splits
        page_path = parts.path if (parts := _split(url)) else ""
        # Some sites declare their front page canonical on every article; that would merge all
        # of their articles into one.
        if path in ("", "/") and page_path not in ("", "/"):
            continue
        if path in ("", "/") and url is None:
            continue
        if resolved not in out:
            out.append(resolved)
    return out


def _author(meta: _Meta) -> str | None:
    """The page's author names, joined with ", ". The structured metadata is trusted; the
    byline trafilatura finds in the text is used only if it reads as names: bylines scraped
    from page text drag in dates and labels ("Last Updated January 7")."""
    names: list[str] = []
    seen: set[str] = set()
    scraped = not meta.authors
    for value in meta.authors or ([meta.scraped_author] if meta.scraped_author else []):
        for name in _AUTHOR_SPLIT.split(value):
            name = _BY.sub("", " ".join(name.split())).strip(" ,")
            if not name or name.casefold() in seen or len(name) > 100:
                continue
            if scraped and (
                " " not in name  # trafilatura's own rule for names: "Username", "admin"
                or any(ch.isdigit() for ch in name)
                or _DATE_WORDS & set(name.casefold().split())
            ):
                continue
            seen.add(name.casefold())
            names.append(name)
    # "Devindra Hardawar" and his handle "devindra": keep the full name
    names = [n for n in names if not any(n != m and n.casefold() in m.casefold() for m in names)]
    return clean_title(", ".join(names)) if names else None


_AUTHOR_SPLIT = re.compile(r"\s*(?:;|\||,\s*and\s+|\band\b|,)\s*")
_BY = re.compile(r"^(?:by|von|par|por|di)\s+", re.IGNORECASE)
_DATE_WORDS = {"january", "february", "march", "april", "may", "june", "july", "august",
               "september", "october", "november", "december", "updated", "published",
               "posted", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
               "sunday", "ago", "min", "read"}  # fmt: skip


def _published(meta: _Meta) -> tuple[datetime | None, str | None, list[str]]:
    for value in meta.dates:
        published = parse_date(value)
        if published is not None:
            return published, None, []
    raw = meta.dates[0] if meta.dates else None
    warnings = [f"cannot read the page's date {raw!r}"] if raw else []
    return None, raw, warnings


def _clean_tags(values: Iterable[str]) -> tuple[str, ...]:
    """Tags split on commas, trimmed, deduplicated case-insensitively, without a literal
    "Tags" and without the machine values some sites put in keywords (Medium's
    ``Lite:true``, ``LayerCake:0``; The Verge's ``stream-23490979``; ``null``)."""
    out: list[str] = []
    seen: set[str] = set()
    for value in values:
        for part in value.split(","):
            name = clean_tag_name(html.unescape(part)).strip(" #;")
            key = tag_key(name)
            if not name or key in _NOT_TAGS or key in seen or len(name) > 100:
                continue
            if _MACHINE_TAG.search(name):
                continue
            seen.add(key)
            out.append(name)
    return tuple(out)


_NOT_TAGS = {"tags", "tag", "null", "none", "undefined", "true", "false", "nan"}
_MACHINE_TAG = re.compile(r"^[\w.-]+[:=]\S*$|\d{5}")


# ---------------------------------------------------------------------------- titles

# A separator between a title and the site's name, with the spaces around it; Chinese sites
# use a bare underscore ("…后果很严重_探索者_光明网"), which next to ASCII is part of a word.
_SEPARATOR = re.compile(
    r"\s+(?:[|\-–—·•»:/]|::)\s+|(?<=[^\x00-\x7f])\s*_\s*|\s*_\s*(?=[^\x00-\x7f])"
)
_BRACKETED = re.compile(r"^(.*\S)\s*\[([^\[\]]+)\]$")


def _title(
    meta: _Meta, site_name: str | None, author: str | None, urls: list[str | None]
) -> str | None:
    names = _site_names(meta, site_name, author, urls)
    title_tag = clean_title(meta.title_tag)
    # JSON-LD's headline (or name) is used when another part of the page agrees with it: on
    # some sites (Wikipedia) it holds a description ("Wikimedia list article"). The agreeing
    # parts: the page's <h1>, or its <title> without the site name.
    page_keys = {_key(h) for h in meta.h1s}
    tag_key_ = _key(_strip_site(title_tag, names)) if title_tag else ""
    for raw in meta.ld_titles:
        title = clean_title(raw)
        if not title:
            continue
        stripped = _strip_site(title, names)
        key = _key(stripped)
        if key and (key in page_keys or key == tag_key_ or (len(key) >= 12 and key in tag_key_)):
            return stripped
    for raw in meta.meta_titles:
        title = clean_title(raw)
        # A title that only names the site ("Breitbart") is the front page's, not the article's.
        if title and _key(title) not in names:
            return _strip_site(title, names)
    if title_tag:
        stripped = _strip_site(title_tag, names)
        if stripped == title_tag:
            stripped = _title_from_h1(title_tag, meta.h1s) or title_tag
        return stripped
    return clean_title(meta.h1s[0]) if meta.h1s else None


def _site_names(
    meta: _Meta, site_name: str | None, author: str | None, urls: list[str | None]
) -> set[str]:
    # Some sites put the page title in application-name or twitter:site; a "site name" of more
    # than six words is one of those.
    site_names = [n for n in (*meta.site_names, site_name or "") if n and len(n.split()) <= 6]
    names = {_key(n) for n in site_names}
    for name in site_names:
        # "Aktuálně.cz - Víte, co se právě děje": the name before its slogan
        first = _SEPARATOR.split(name)[0]
        names.add(_key(first))
    if author:
        names.update(_key(a) for a in author.split(", "))
    for url in urls:
        host = _hostname(url)
        if host:
            labels = [x for x in host.split(".") if x not in ("www", "m", "amp")]
            if labels:
                names.add(_key(".".join(labels)))  # nytimes.com
                names.add(_key(labels[0]))  # nytimes
                if len(labels) > 2:
                    names.add(_key(labels[-2]))  # blog.example.com -> example
    names.discard("")
    return names


def _key(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", text).casefold() if ch.isalnum())


def _strip_site(title: str, names: set[str]) -> str:
    """``title`` without leading/trailing segments that name the site or the author."""
    m = _BRACKETED.match(title)
    if m and _names_site(m[2], names):
        title = m[1]
    parts = _SEPARATOR.split(title)
    seps = _SEPARATOR.findall(title)
    if len(parts) < 2:
        return title
    # trailing segments: "Headline - Author - Site"
    end = len(parts)
    while end > 1 and _names_site(parts[end - 1], names):
        end -= 1
    start = 0
    while start < end - 1 and _names_site(parts[start], names):
        start += 1
    if (start, end) == (0, len(parts)):
        return title
    out = parts[start]
    for i in range(start + 1, end):
        out += seps[i - 1] + parts[i]
    return out.strip() or title


def _names_site(segment: str, names: set[str]) -> bool:
    key = _key(segment)
    if not key:
        return False
    if key in names:
        return True
    # "Spiceworks" for "Spiceworks Inc", "NYTimes.com" for "nytimes"
    return any(
        len(n) >= 4 and (key.startswith(n) or n.startswith(key) and len(key) >= 4) for n in names
    )


def _title_from_h1(title: str, h1s: list[str]) -> str | None:
    """``Mozilla - Wikipedia`` with the page's ``<h1>Mozilla</h1>``: the part of ``<title>``
    that is the h1 is the title, the rest is the site."""
    parts = _SEPARATOR.split(title)
    if len(parts) < 2:
        return None
    seps = _SEPARATOR.findall(title)
    keys = {_key(h) for h in h1s}
    for n in range(len(parts) - 1, 0, -1):
        head = parts[0] + "".join(seps[i - 1] + parts[i] for i in range(1, n))
        if _key(head) in keys:
            return head.strip()
    return None


# ---------------------------------------------------------------------------- text

_BLOCKS = {"p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "tr",
           "table", "ul", "ol", "dl", "dt", "dd", "figure", "figcaption", "section", "br",
           "hr"}  # fmt: skip


def _text_of(body: etree._Element) -> str:
    """Plain text of the article HTML: a paragraph per block element, spaces normalised."""
    chunks: list[str] = []

    def walk(el: etree._Element) -> None:
        tag = el.tag if isinstance(el.tag, str) else ""
        if tag in _BLOCKS:
            chunks.append("\n\n")
        if tag in ("td", "th"):
            chunks.append(" ")
        if el.text and tag not in ("script", "style"):
            chunks.append(el.text)
        for child in el:
            walk(child)
            if child.tail:
                chunks.append(child.tail)
        if tag in _BLOCKS:
            chunks.append("\n\n")

    walk(body)
    paragraphs = (" ".join(p.split()) for p in "".join(chunks).split("\n\n"))
    return "\n\n".join(p for p in paragraphs if p)


def _size(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB" if n >= 1_000_000 else f"{n / 1000:.0f} KB"


def _shorten(text: str | None, n: int) -> str:
    text = text or ""
    return text if len(text) <= n else text[: n - 1] + "…"
