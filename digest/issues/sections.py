"""Sections: how a variant's articles are grouped. Sections follow the list's tag order
(alphabetical for an all-tags list), newest first; an article appears once, under its first tag
(in section order) that the variant receives. In a list that covers every tag, the articles
without a tag (hidden tags do not count: they are never a section) come last, in a section
titled by the list (``UNTAGGED_KEY``; "More stories" by default), for the subscribers who take
every tag. A variant is the tag set a group of subscribers chose (``variant_key``)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

from markupsafe import Markup

from ..articles.leadimage import content_image
from ..articles.reads import Article
from ..articles.sanitize import html_to_text
from ..articles.tags import tag_key
from ..audience.branding import LeadImage
from ..audience.lists import ImageMode, MailingList
from ..errors import InvalidInput
from ..headers import clean_header_value
from . import render

# The key of the untagged section: no tag has an empty key.
UNTAGGED_KEY = ""


def section_order(mlist: MailingList, articles: list[Article]) -> list[tuple[str, str]]:
    """(key, name) of each possible section: the list's tags in order, or for an all-tags list
    every tag of these articles, alphabetically, then the untagged section."""
    if mlist.tags:
        return [(tag_key(name), name) for name in mlist.tags]
    names: dict[str, str] = {}
    for article in articles:
        for key, name in article.tags:
            names.setdefault(key, name)
    order = sorted(names.items(), key=lambda kv: (kv[1].casefold(), kv[0]))
    return [*order, (UNTAGGED_KEY, mlist.untagged_section_title)]


def variant_key(raw_tags: str, mlist: MailingList) -> tuple[str, frozenset[str] | None]:
    """(tags_key, wanted tag keys or None for all) of a subscription's ``tags`` JSON."""
    try:
        values = json.loads(raw_tags or "[]")
    except ValueError:
        values = []
    keys = {tag_key(v) for v in values if isinstance(v, str) and tag_key(v)}
    if not keys:
        return "", None
    if mlist.tags:
        list_keys = set(mlist.tag_keys)
        chosen = keys & list_keys
        if chosen == list_keys:
            return "", None
        if chosen:  # tags the list no longer has are ignored; if only those, nothing matches
            keys = chosen
    return ",".join(sorted(keys)), frozenset(keys)


_IMG_WITHOUT_ALT = re.compile(r"<img(?![^>]*\salt=)", re.I)
THUMBNAIL_WIDTH = 160  # px: about a third of a phone's width


def lead_image(article: Article, mode: ImageMode) -> LeadImage | None:
    """The image a list showing ``mode`` gives this story: the article's stored lead image
    (``Article.image``, found at ingest), else the first picture of its summary
    (``articles.leadimage.content_image``). Only an image whose pixel size is known is shown:
    Outlook for Windows sizes images by their width/height attributes alone."""
    if mode is ImageMode.NONE:
        return None
    found = article.image
    if found is None and article.summary and "<img" in article.summary:
        found = content_image(article.summary, article.url)
    if found is None or not found.width or not found.height:
        return None
    try:
        image = LeadImage.create(found.url, found.width, found.height, found.alt)
    except InvalidInput:
        return None  # not an http(s) URL, or a size that is not one: no picture
    if mode is ImageMode.THUMBNAILS and image.width > THUMBNAIL_WIDTH:
        height = max(1, round(image.height * THUMBNAIL_WIDTH / image.width))
        image = LeadImage(image.url, THUMBNAIL_WIDTH, height, image.alt)
    return image


def _article_view(article: Article, mlist: MailingList, words: int) -> render.ArticleView:
    # The summary was sanitised when it was stored (articles/writes.py) and is used as it is:
    # sanitising it again for every variant and every web view cost more than rendering.
    summary_html = article.summary or ""
    source = html_to_text(summary_html) if article.summary else (article.text or "")
    url = article.url if article.url and _is_absolute_http(article.url) else None
    return render.ArticleView(
        id=article.id,
        title=clean_header_value(article.title) or "(untitled)",
        url=url,
        author=clean_header_value(article.author) if article.author else None,
        published_at=article.published_at.astimezone(mlist.zone),
        excerpt=render.excerpt(source, words),
        summary_html=Markup(_IMG_WITHOUT_ALT.sub('<img alt=""', summary_html)),
        image=lead_image(article, mlist.look.images),
    )


def _is_absolute_http(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _sorted_into_sections(
    articles: list[Article], order: list[tuple[str, str]], wanted: frozenset[str] | None
) -> Iterator[tuple[int, Article]]:
    """(section position, article) for each article shown: once, under its first wanted tag;
    an article without a tag in the untagged section, if the order has one and the variant
    takes every tag."""
    index = {key: i for i, (key, _) in enumerate(order)}
    untagged = index.get(UNTAGGED_KEY) if wanted is None else None
    for article in articles:  # newest first
        positions = [
            index[key]
            for key, _ in article.tags
            if key in index and (wanted is None or key in wanted)
        ]
        if positions:
            yield min(positions), article
        elif untagged is not None and not article.tags:
            yield untagged, article


def has_sections(
    articles: list[Article], mlist: MailingList, wanted: frozenset[str] | None
) -> bool:
    """Whether the variant for ``wanted`` shows any article (else it gets no message)."""
    order = section_order(mlist, articles)
    return next(_sorted_into_sections(articles, order, wanted), None) is not None


def group_sections(
    articles: list[Article],
    order: list[tuple[str, str]],
    wanted: frozenset[str] | None,
    *,
    mlist: MailingList,
    excerpt_words: int = 50,
    views: dict[int, render.ArticleView | None] | None = None,
    problems: list[str] | None = None,
) -> list[render.Section]:
    """Sections in ``order`` with each article once, under its first tag that is wanted.
    ``views`` caches each article's view across the variants of one build.

    A failure belongs to the smallest thing that failed: an article whose view cannot be made
    is left out of the digest, with a line naming it in ``problems``; the others are shown."""
    views = {} if views is None else views
    buckets: list[list[render.ArticleView]] = [[] for _ in order]
    for position, article in _sorted_into_sections(articles, order, wanted):
        if article.id not in views:
            try:
                views[article.id] = _article_view(article, mlist, excerpt_words)
            except Exception as e:  # noqa: BLE001 - contained: this article is left out
                views[article.id] = None
                if problems is not None:
                    problems.append(
                        f"article {article.id} ({article.title[:60]!r}) left out: "
                        f"{type(e).__name__}: {e}"
                    )
        view = views[article.id]
        if view is not None:
            buckets[position].append(view)
    return [
        render.Section(key=key, name=name, articles=tuple(views), total=len(views))
        for (key, name), views in zip(order, buckets, strict=True)
        if views
    ]
