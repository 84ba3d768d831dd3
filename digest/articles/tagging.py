"""Mapping what sources call categories to tags, the same way for every format: RSS
``<category>``, Atom ``<category term label scheme>``, feed-level categories, JSON Feed and JSON
Lines ``tags``, and front matter ``tags``. Pure functions; nothing here touches the database.

A ``Tag`` is a key and a display name. The key is ``store.tag_key`` of the tag's *identity* (what
says two tags are the same: the Atom ``term``, else the name as written), so an RSS
``<category>Arts</category>`` and a JSON ``"tags": ["arts"]`` are one tag; the display name is the
spelling to show (the Atom ``label``, else the name as written, cleaned).

Rules, in the order they apply to one category value:

- HTML entities are decoded (WordPress writes ``Arts &amp; Culture`` inside CDATA, so it reaches
  feedparser still encoded; double-encoded ``&amp;amp;`` is decoded too) and markup is removed.
- Every category string is split on commas (ASCII ``,``, full-width ``，`` and ideographic ``、``)
  by ``split_categories``, whatever the format: a ``<category>Kenya, Haiti</category>``, a JSON
  ``"tags": "Kenya, Haiti"`` and a list item ``"Kenya, Haiti"`` all give two tags. A comma
  between two digits (``1,000``) is not a separator.
- Atom: ``term`` is the identity and ``label`` the display name. A ``term`` that is a URI is not
  something an editor can read or type: with a ``label`` the label is the identity, without one
  the category is ignored. Categories in schemes that classify the *entry type* rather than its
  topic are ignored (Google's GData ``#kind``: Blogger's ``term="...kind#post"``).
- CMS placeholders that mean "no category" (WordPress ``Uncategorized`` and its translations,
  Joomla ``Uncategorised``) are dropped here rather than stored and hidden: they carry no
  information, the article is truthfully untagged (so it reaches "More stories" and tag rules
  can tag it), and they never clutter ``digest tags list``. Defaults that *could* be a real
  topic on some site (``General``, ``News``, ``Featured``, German WordPress's ``Allgemein``)
  are kept, for the editor to hide with ``digest tags hide``.
- A name longer than ``MAX_TAG_CHARS`` is a sentence, not a topic, and is dropped.
- Feed-level categories (RSS ``<channel><category>``, Atom ``<feed><category>``: what the feed
  as a whole is about) apply to the entries that have none of their own, except in Blogger
  feeds, where the feed-level categories are the blog's index of every label ever used, not the
  topic of each post (a quilting blog lists ``spaghetti salad`` and ``Christmas Lights``).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from .tags import clean_tag_name, tag_key

MAX_TAG_CHARS = 100
_CACHED_CHARS = 500  # category strings up to this long are cached (see _split)

# Separators: ASCII comma, full-width comma (Chinese, Japanese: BBC Chinese writes
# "美国，北约，国防部"), ideographic comma. An ASCII comma between two digits is a thousands
# separator ("1,000 days").
_SEPARATORS = re.compile(r"(?<!\d),|,(?!\d)|[\uff0c\u3001]")
_MARKUP = re.compile(r"<[^>]*>")
_URI = re.compile(r"[a-zA-Z][a-zA-Z0-9+.\-]*://|(?:urn|tag):", re.I)

# Schemes whose categories say what kind of thing an entry is, not what it is about.
NON_TOPIC_SCHEMES = frozenset(
    {
        "http://schemas.google.com/g/2005#kind",  # GData/Blogger: term=".../kind#post"
        "https://schemas.google.com/g/2005#kind",
        "http://www.google.com/reader/",  # Google Reader states (read, starred)
    }
)

# Keys (tag_key) of CMS placeholders meaning "no category". WordPress's default category is
# localised; these are the translations that literally say "uncategorised".
PLACEHOLDER_KEYS = frozenset(
    {
        "uncategorized",
        "uncategorised",  # Joomla, en-GB WordPress
        "non classé",  # fr
        "non classifié",
        "sin categoría",  # es
        "sin categoria",
        "senza categoria",  # it
        "sem categoria",  # pt
        "geen categorie",  # nl
        "ongecategoriseerd",
        "unkategorisiert",  # de (the German default "Allgemein" may be a real section: kept)
        "без рубрики",  # ru
        "без категорії",  # uk
        "bez kategorii",  # pl
        "未分類",  # ja, zh-Hant
        "未分类",  # zh-Hans
        "미분류",  # ko
    }
)


@dataclass(frozen=True, slots=True)
class Tag:
    """One tag of an article: ``key`` is ``store.tag_key`` of its identity (what the ``tags``
    table is keyed by), ``name`` the display name a source gave (the table keeps the first seen,
    or the editor's rename)."""

    key: str
    name: str


def make_tag(name: str, identity: str | None = None) -> Tag | None:
    """The tag named ``name`` (already decoded, one category), keyed by ``identity`` if given;
    None if it is empty or longer than ``MAX_TAG_CHARS``. Placeholders are not dropped here (an
    editor's ``--tag`` is taken as given); the mapping functions below drop them."""
    display = clean_tag_name(name)
    key = tag_key(identity if identity is not None else display)
    if not key or not display or len(display) > MAX_TAG_CHARS or len(key) > MAX_TAG_CHARS:
        return None
    return Tag(key, display)


def is_placeholder(tag: Tag) -> bool:
    """True for a CMS's "no category" placeholder (``Uncategorized``)."""
    return tag.key in PLACEHOLDER_KEYS


def decode_category(text: str) -> str:
    """A category as a person would read it: HTML entities decoded (twice-encoded ones too),
    markup removed, whitespace collapsed."""
    for _ in range(3):  # "&amp;amp;" is the double encoding some plugins produce
        if "&" not in text:
            break
        decoded = html.unescape(text)
        if decoded == text:
            break
        text = decoded
    if "<" in text and ">" in text:
        text = _MARKUP.sub(" ", text)
    # Line breaks are whitespace here; clean_tag_name drops them as control characters,
    # which would glue "line\nbreak" into one word.
    return clean_tag_name(" ".join(text.split()))


def split_categories(text: str) -> tuple[str, ...]:
    """The categories in one category string, decoded and split on commas (see the module
    docstring); empty parts are left out. The one splitter for every source format."""
    return _split(text)


def _split(text: str) -> tuple[str, ...]:
    # The same few category strings recur on every entry of a feed: cached, unless long
    # (a hostile file could otherwise fill the cache with megabytes).
    return _split_cached(text) if len(text) <= _CACHED_CHARS else _split_uncached(text)


def _split_uncached(text: str) -> tuple[str, ...]:
    parts = _SEPARATORS.split(decode_category(text))
    return tuple(p for p in (clean_tag_name(part) for part in parts) if p)


_split_cached = lru_cache(maxsize=4096)(_split_uncached)


def _string_tags(text: str) -> tuple[Tag, ...]:
    if len(text) <= _CACHED_CHARS:
        return _string_tags_cached(text)
    return _string_tags_uncached(text)


def _string_tags_uncached(text: str) -> tuple[Tag, ...]:
    tags = (make_tag(part) for part in _split(text))
    return tuple(t for t in tags if t is not None and not is_placeholder(t))


_string_tags_cached = lru_cache(maxsize=4096)(_string_tags_uncached)


def _unique(tags: Iterable[Tag]) -> tuple[Tag, ...]:
    seen: dict[str, Tag] = {}
    for t in tags:
        seen.setdefault(t.key, t)  # the first spelling of a key wins within one entry
    return tuple(seen.values())


# ---------------------------------------------------------------------------- JSON, front matter


def value_tags(value: object) -> tuple[Tag, ...]:
    """Tags of a JSON Feed / JSON Lines / front matter ``tags`` value: a string (split on
    commas), a number (YAML reads ``tags: [2024]`` as an int), a list of those, or objects
    ``{"name": ...}`` (also ``{"label": ...}``, and Atom-like ``{"term": ..., "label": ...}``
    where the term is the identity). Anything else is ignored."""
    if value is None or isinstance(value, bool):
        return ()
    if isinstance(value, str):
        return _string_tags(value)
    items = value if isinstance(value, list | tuple) else (value,)
    out: list[Tag] = []
    for item in items:
        if isinstance(item, str):
            out.extend(_string_tags(item))
        elif isinstance(item, int | float) and not isinstance(item, bool):
            out.extend(_string_tags(str(item)))
        elif isinstance(item, Mapping):
            out.extend(_object_tags(item))
    return _unique(out)


def _object_tags(obj: Mapping[str, object]) -> tuple[Tag, ...]:
    term = obj.get("term")
    label = obj.get("label")
    if isinstance(term, str) and term.strip():
        return _category_tags(term, label if isinstance(label, str) else None)
    name = obj.get("name", label)
    return _string_tags(name) if isinstance(name, str) else ()


# ---------------------------------------------------------------------------- feeds


def feed_entry_tags(
    entry: Mapping[str, object], feed: Mapping[str, object] | None = None
) -> tuple[Tag, ...]:
    """Tags of one feedparser entry: its own categories, or, when it has none (placeholders
    do not count), the feed-level categories of ``feed`` (feedparser's ``d.feed``)."""
    own = _feed_categories(entry.get("tags"))
    if own or feed is None:
        return own
    return feed_level_tags(feed)


def feed_level_tags(feed: Mapping[str, object]) -> tuple[Tag, ...]:
    """The feed-level categories that apply to entries without their own: none for Blogger,
    whose feed-level categories are the blog's label index."""
    if is_blogger(feed):
        return ()
    return _feed_categories(feed.get("tags"))


def is_blogger(feed: Mapping[str, object]) -> bool:
    """A Blogger feed: ``<generator uri="http://www.blogger.com">Blogger</generator>`` or a
    ``tag:blogger.com,1999:blog-...`` id."""
    generator = feed.get("generator")
    detail = feed.get("generator_detail")
    href = detail.get("href") if isinstance(detail, Mapping) else None
    feed_id = feed.get("id")
    return (
        (isinstance(generator, str) and generator.strip().lower() == "blogger")
        or (isinstance(href, str) and "blogger.com" in href.lower())
        or (isinstance(feed_id, str) and feed_id.startswith("tag:blogger.com,"))
    )


def _feed_categories(raw: object) -> tuple[Tag, ...]:
    if not isinstance(raw, list | tuple):
        return ()
    out: list[Tag] = []
    for category in raw:
        if not isinstance(category, Mapping):
            continue
        scheme = category.get("scheme")
        if isinstance(scheme, str) and scheme.strip() in NON_TOPIC_SCHEMES:
            continue
        term = category.get("term")
        label = category.get("label")
        out.extend(
            _category_tags(
                term if isinstance(term, str) else "", label if isinstance(label, str) else None
            )
        )
    return _unique(out)


def _category_tags(term: str, label: str | None) -> tuple[Tag, ...]:
    """Tags of one Atom-style category: ``term`` the identity, ``label`` the display name."""
    term = term.strip()
    label = label.strip() if label else ""
    if label and _URI.match(label):
        label = ""
    if term and _URI.match(term):
        if not label:
            return ()  # a bare URI is a classification scheme's id, not a topic name
        term = ""
    if not label or label == term:
        return _string_tags(term) if term else ()
    if not term:
        return _string_tags(label)
    identities, names = _split(term), _split(label)
    if len(identities) != len(names):
        # "term=a,b label=Only one": the two do not pair up; the identities are what is sure.
        return _string_tags(term)
    tags = (make_tag(name, identity) for name, identity in zip(names, identities, strict=True))
    return tuple(t for t in tags if t is not None and not is_placeholder(t))
