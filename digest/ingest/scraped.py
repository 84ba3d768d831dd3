"""Plain-text scrapes: a ``.txt`` file is one article, as scraped from a web page (a news-blog
post copied to text, a page saved as text). It has no markup, so where the title, byline and
date are is decided by layout. The rule:

1. **Metadata at the end** (the scraped-post layout, e.g. ``../shared/examples/scraped-post.txt``):
   reading up from the last line, the trailing block is made of metadata lines (a ``By ...``
   line, a date line, a ``Tags:``/``Labels:``/``Categories:`` line) and scrape boilerplate. If
   that block holds a ``By`` line or a date line, the line just above it is the title and
   everything before the title is the body.
2. **Metadata at the start**: otherwise the first line is the title, and the lines right after
   it that are metadata (``By ...``, a date, ``Tags: ...``) or boilerplate are read and removed.
3. **No metadata**: the first line is still the title; the date is the caller's (the file time,
   or ``--date``) and a warning says so.

A *date line* is a line of at most 60 characters that ``digest.dates.parse_date`` reads whole,
optionally after ``Published``/``Posted``/``Updated``/``Date`` (and ``on``/``:``), e.g.
``Tuesday, January 21, 2025``. A *By line* is ``By`` followed by nothing, a dash (``By -``: no
author) or names (at most six words, capitalised, not ending like a sentence: ``By noon the
market closed.`` is body), and may end with a date (``By Jane Doe - January 21, 2025``).
*Boilerplate* is what scrapers pick up around a post: ``Post a Comment``, ``0Comments``,
``No comments:``, ``Leave a Reply``, ``Share this:``, a lone number (a comment or share count),
an empty ``Tags:``; it is removed from the edges of the text, never from inside the body.

Paragraphs stay paragraphs: when the body has blank lines, blocks between blank lines are the
paragraphs (the lines inside one are joined, as hard-wrapped text); when it has none, each line
is a paragraph (a scrape of ``<p>`` elements).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ..articles.inputs import ArticleInput
from ..articles.tagging import value_tags
from ..articles.tags import clean_tag_name, tag_key
from ..errors import SourceError
from .dates import parse_date
from .pages import count_words, extraction_line
from .sources import clean_title, decode_text

TEXT_SUFFIXES = {".txt", ".text"}
# A first line longer than this is a paragraph, not a title.
MAX_TITLE_CHARS = 200
MAX_DATE_LINE_CHARS = 60
MAX_AUTHOR_CHARS = 80

_BOILERPLATE = re.compile(
    r"(?:post a comment|leave a (?:comment|reply)|\d*\s*comments?|no comments:?|"
    r"share(?: this)?(?: post| article)?:?|like this:?|\d{1,6}|tags?:|labels?:|categor(?:y|ies):|"
    r"newer post|older post|home|newer post\s+older post\s+home|advertisement|"
    r"subscribe to: post comments \(atom\)|print|email|tweet|read more)",
    re.IGNORECASE,
)
_BY = re.compile(r"(?:by|written by|posted by|author)\b\s*:?\s*(.*)", re.IGNORECASE)
_DATE_PREFIX = re.compile(
    r"(?:published|posted|updated|last updated|date)(?:\s+on)?\s*:?\s*", re.IGNORECASE
)
_TAGS = re.compile(r"(?:tags?|labels?|categor(?:y|ies)|topics?)\s*:\s*(.+)", re.IGNORECASE)
# A name and a date after it, in a By line: "Jane Doe - January 21, 2025", "Jane Doe on Jan 21"
_NAME_THEN_DATE = re.compile(r"(.*?)\s*(?:\s[-–—|·]\s|,\s|\son\s)\s*(.+)")


@dataclass(frozen=True, slots=True)
class ScrapedArticle:
    """One article read from a plain-text scrape. ``published`` is None when the text has no
    date line; ``to_article_input`` then uses the caller's date."""

    label: str
    title: str | None
    author: str | None
    published: datetime | None
    tags: tuple[str, ...]
    paragraphs: tuple[str, ...]
    layout: str  # "metadata at the end" | "metadata at the start" | "no metadata"
    warnings: tuple[str, ...] = ()

    @property
    def content_html(self) -> str:
        return "".join(f"<p>{html.escape(p, quote=False)}</p>" for p in self.paragraphs)

    def summary_line(self) -> str:
        """What was read, for an editor to check: ``title "…" · date 2025-01-21 · author
        unknown · 412 words · 19 paragraphs · metadata at the end``."""
        words = sum(count_words(p) for p in self.paragraphs)
        n = len(self.paragraphs)
        line = extraction_line(self.title, self.published, self.author, words)
        return f"{line} · {n} paragraph{'' if n == 1 else 's'} · {self.layout}"

    def to_article_input(self, entry: str | None = None) -> ArticleInput:
        return ArticleInput(
            entry=entry or self.label,
            title=self.title,
            url=None,
            author=self.author,
            published=self.published,
            content_html=self.content_html or None,
            tags=value_tags(self.tags),
        )


@dataclass(slots=True)
class _Found:
    author: str | None = None
    has_by: bool = False
    published: datetime | None = None
    tags: tuple[str, ...] = ()


def parse_scraped_text(
    text: str,
    label: str,
    *,
    fallback_date: datetime | None = None,
    fallback_source: str = "the ingest time",
) -> ScrapedArticle:
    """The article in a plain-text scrape (see the module docstring for the layout rule).
    ``fallback_date`` is used, with a warning naming ``fallback_source``, when the text has no
    date line. Raises ``SourceError`` for a text with no words."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    lines = [line.replace("\u00a0", " ").strip("\ufeff") for line in lines]
    if not any(line.strip() for line in lines):
        raise SourceError(f"{label}: empty file")
    found = _Found()
    warnings: list[str] = []

    end = _trailing_block(lines, found)
    title: str | None
    if end is not None and (found.has_by or found.published is not None):
        layout = "metadata at the end"
        title_at = end - 1
        title = clean_title(lines[title_at].strip())
        body = lines[:title_at]
    else:
        # Whatever the trailing block held (tags, boilerplate) is still read and removed.
        body_end = end if end is not None else len(lines)
        start = _first_line(lines)
        first = lines[start].strip()
        after = _leading_block(lines, start + 1, body_end, found)
        if len(first) <= MAX_TITLE_CHARS:
            title = clean_title(first)
            body = lines[after:body_end]
        else:
            title = clean_title(" ".join(first.split()[:12]) + "…")
            body = [first, *lines[after:body_end]]
            warnings.append("the first line is a paragraph, not a title; its first words are used")
        has_metadata = found.has_by or found.published is not None
        layout = "metadata at the start" if has_metadata else "no metadata"
        if not has_metadata and len(first) <= MAX_TITLE_CHARS:
            warnings.append("no byline or date lines found; the first line is the title")
    published = found.published
    if published is None:
        published = fallback_date
        when = f" ({fallback_date:%Y-%m-%d %H:%M} UTC)" if fallback_date else ""
        warnings.append(f"no date line found; {fallback_source}{when} is used")
    return ScrapedArticle(
        label=label,
        title=title,
        author=found.author,
        published=published,
        tags=found.tags,
        paragraphs=tuple(_paragraphs(_trim_edges(body))),
        layout=layout,
        warnings=tuple(warnings),
    )


def read_scraped_file(
    path: Path,
    label: str | None = None,
    *,
    fallback_date: datetime | None = None,
    fallback_source: str = "--date",
) -> ScrapedArticle:
    """A ``.txt`` file: UTF-8 (invalid bytes replaced and reported); when the text has no date,
    ``fallback_date`` (named ``fallback_source`` in the warning), else the file's modification
    time."""
    label = label or str(path)
    try:
        data = path.read_bytes()
        # Through the shared parser, which never raises: a file time can be anything.
        mtime = parse_date(path.stat().st_mtime)
    except OSError as e:
        raise SourceError(f"{label}: cannot read ({e.strerror or e})") from None
    if fallback_date is None:
        fallback_date, fallback_source = mtime, "the file time"
    warnings: list[str] = []
    text = decode_text(data, label, warnings)
    article = parse_scraped_text(
        text, label, fallback_date=fallback_date, fallback_source=fallback_source
    )
    if warnings:
        return _with_warnings(article, warnings)
    return article


def _with_warnings(article: ScrapedArticle, extra: list[str]) -> ScrapedArticle:
    return ScrapedArticle(
        label=article.label,
        title=article.title,
        author=article.author,
        published=article.published,
        tags=article.tags,
        paragraphs=article.paragraphs,
        layout=article.layout,
        warnings=(*extra, *article.warnings),
    )


# ---------------------------------------------------------------------------- the layout rule


def _trailing_block(lines: list[str], found: _Found) -> int | None:
    """The index where the trailing block of metadata and boilerplate starts (None when the
    text does not end with one), reading up from the end; what it says goes into ``found``."""
    i = len(lines)
    start = None
    while i > 0:
        line = lines[i - 1].strip()
        if not line or _read_metadata_line(line, found) or _is_boilerplate(line):
            i -= 1
            if line:
                start = i
            continue
        break
    if start is None:
        return None
    # The block must leave at least a title and one line of body above it.
    return start if start >= 1 else None


def _first_line(lines: list[str]) -> int:
    return next(i for i, line in enumerate(lines) if line.strip())


def _leading_block(lines: list[str], start: int, end: int, found: _Found) -> int:
    """The index after the metadata lines that follow the title."""
    i = start
    while i < end:
        line = lines[i].strip()
        if not line and i == start:
            i += 1
            continue
        if line and (_read_metadata_line(line, found) or _is_boilerplate(line)):
            i += 1
            continue
        break
    return i


def _read_metadata_line(line: str, found: _Found) -> bool:
    """Whether ``line`` is a By, date or tags line; records what it says."""
    m = _TAGS.fullmatch(line)
    if m and not found.tags:
        found.tags = _clean_tags(m[1])
        return True
    # A bare number is a count the scraper picked up, not a year.
    if len(line) <= MAX_DATE_LINE_CHARS and found.published is None and not line.isdigit():
        published = parse_date(_DATE_PREFIX.sub("", line, count=1))
        if published is not None:
            found.published = published
            return True
    m = _BY.fullmatch(line)
    if m and not found.has_by:
        rest = m[1].strip(" -–—:|")
        name, date_text = rest, None
        both = _NAME_THEN_DATE.fullmatch(rest)
        if both and parse_date(both[2]) is not None:
            name, date_text = both[1], both[2]
        if name and not _looks_like_name(name):
            return False  # "By the end of the year, ..." is a sentence
        found.has_by = True
        found.author = clean_title(name) if name else None
        if date_text and found.published is None:
            found.published = parse_date(date_text)
        return True
    return False


def _looks_like_name(text: str) -> bool:
    """A byline's names: at most six words, starting with a capital (or a letter of a script
    without case), not ending like a sentence. "Jane Doe", "J. R. Smith", "Maria Lopez and
    Jo Kim"; not "noon the market had sold out."."""
    words = text.split()
    if len(text) > MAX_AUTHOR_CHARS or len(words) > 6:
        return False
    if not text[0].isalpha() or text[0].islower():
        return False
    return not (text[-1] in ".!?" and len(words[-1]) > 3)


def _is_boilerplate(line: str) -> bool:
    return bool(_BOILERPLATE.fullmatch(line.strip()))


def _clean_tags(text: str) -> tuple[str, ...]:
    out: list[str] = []
    seen: set[str] = set()
    for part in re.split(r"[,;]", text):
        name = clean_tag_name(part).strip(" #")
        key = tag_key(name)
        if name and key not in ("tags", "tag", "labels") and key not in seen:
            seen.add(key)
            out.append(name)
    return tuple(out)


def _trim_edges(lines: list[str]) -> list[str]:
    """Without blank lines and boilerplate at either end."""
    start, end = 0, len(lines)
    while start < end and (not lines[start].strip() or _is_boilerplate(lines[start])):
        start += 1
    while end > start and (not lines[end - 1].strip() or _is_boilerplate(lines[end - 1])):
        end -= 1
    return lines[start:end]


def _paragraphs(lines: list[str]) -> list[str]:
    if any(not line.strip() for line in lines):
        blocks: list[list[str]] = [[]]
        for line in lines:
            if line.strip():
                blocks[-1].append(line.strip())
            elif blocks[-1]:
                blocks.append([])
        return [" ".join(b) for b in blocks if b]
    return [" ".join(line.split()) for line in lines if line.strip()]
