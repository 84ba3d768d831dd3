"""Sources that are articles one by one: a web page (a saved ``.html`` file without front matter,
or a URL answering ``text/html``), a plain-text scrape (``.txt``), a Markdown/HTML file with
front matter, and a directory of those. Each reader gives the ``ParsedSource`` to store and, for
pages and scrapes, a line saying what was extracted, so an editor can check it before the
article goes out. The editor's ``--title``, ``--date`` and ``--author`` (``ArticleOverrides``)
win over what was found in a source that is one article.

Which reader: a directory is read file by file (``.md``, ``.markdown``, ``.html``, ``.htm``,
``.txt``, ``.text``; hidden files and folders are skipped). A ``.txt`` file is a scrape
(``scraped``); an ``.html`` file, or a file of another name whose bytes begin like an HTML
document, is a page (``pages``) unless it starts with YAML front matter; the rest are feeds and
JSON (``sources.parse_bytes``, which the pipeline calls).

Failures belong to the file: in a directory, a file that gives no article is a ``Rejection``
naming it and the others are read; a source that is one file fails with one line saying why
(``PageRejected``: "no article found (only 12 words of text)", "not an HTML page (binary
data)", "too large (6.2 MB, over the 5.0 MB limit)").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ..articles.inputs import ArticleInput, ParsedSource, Rejection
from ..errors import InvalidInput, SourceError, describe_error
from ..text import visible
from .pages import PageArticle, extract_page, extraction_line, is_article_page
from .scraped import TEXT_SUFFIXES, read_scraped_file
from .sources import HTML_SUFFIXES, MARKDOWN_SUFFIXES, clean_title, parse_document_file

ARTICLE_SUFFIXES = MARKDOWN_SUFFIXES | HTML_SUFFIXES | TEXT_SUFFIXES


@dataclass(frozen=True, slots=True)
class ArticleOverrides:
    """What the editor says about the one article of a source (``digest ingest --title
    --date --author``): each field that is set wins over what was found."""

    title: str | None = None
    author: str | None = None
    published: datetime | None = None

    def __post_init__(self) -> None:
        # One line of plain text, as any title or author read from a source.
        object.__setattr__(self, "title", clean_title(self.title))
        object.__setattr__(self, "author", clean_title(self.author))

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.title, self.author, self.published))

    @property
    def options(self) -> str:
        """The options given, for messages: ``--title, --date``."""
        names = [("--title", self.title), ("--date", self.published), ("--author", self.author)]
        return ", ".join(name for name, value in names if value is not None)

    def apply(self, item: ArticleInput) -> ArticleInput:
        if not self:
            return item
        return dataclasses.replace(
            item,
            title=self.title if self.title is not None else item.title,
            author=self.author if self.author is not None else item.author,
            published=self.published if self.published is not None else item.published,
            raw_date=None if self.published is not None else item.raw_date,
        )

    def refuse(self, label: str, what: str) -> None:
        """Raise if any override is set: ``what`` (a feed, a directory) is not one article."""
        if self:
            raise InvalidInput(
                f"{label}: {self.options} set the fields of one article (a page, a .txt or an"
                f" article file); this is {what}"
            )


NO_OVERRIDES = ArticleOverrides()


@dataclass
class ReadSource:
    """A source read as articles, with the lines saying what was extracted."""

    parsed: ParsedSource
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------- pages


def read_page(
    data: bytes,
    *,
    label: str,
    url: str | None = None,
    also: tuple[str, ...] = (),
    content_type: str | None = None,
    now: datetime | None = None,
    overrides: ArticleOverrides = NO_OVERRIDES,
) -> ReadSource:
    """One web page as a source of one article. ``url`` is where it was fetched from (after
    redirects); ``also`` are other URLs that led to it (the URL as given), remembered by the
    store. Raises ``PageRejected`` when the page gives no article."""
    page = extract_page(data, url=url, label=label, content_type=content_type, now=now)
    return _page_source(page, label, also, overrides)


def _page_source(
    page: PageArticle, label: str, also: tuple[str, ...], overrides: ArticleOverrides
) -> ReadSource:
    item = overrides.apply(page.to_article_input(label))
    item.aliases = tuple(dict.fromkeys((*item.aliases, *(u for u in also if u != item.url))))
    parsed = ParsedSource(label=label, kind="page", items=[item], base_url=page.base_url)
    parsed.warnings.extend(f"{label}: {w}" for w in page.warnings)
    return ReadSource(parsed, [_extracted(item, page.word_count, overrides)])


def _extracted(item: ArticleInput, word_count: int, overrides: ArticleOverrides) -> str:
    line = extraction_line(item.title, item.published, item.author, word_count)
    return f"extracted: {line}" + (f" · {overrides.options} given" if overrides else "")


# ---------------------------------------------------------------------------- files


def read_file(
    path: Path,
    label: str,
    *,
    now: datetime,
    overrides: ArticleOverrides = NO_OVERRIDES,
) -> ReadSource | bytes:
    """A file that is one article (a scrape, a page, an article file), or the bytes of a file
    that is a feed or JSON, for ``sources.parse_bytes`` (told apart by name and first bytes).
    Raises ``SourceError`` when the file cannot be read or gives no article."""
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        return _text_source(path, label, overrides)
    if suffix in MARKDOWN_SUFFIXES:
        return _document_source(path, label, "markdown", overrides)
    data = _read(path, label)
    if is_article_page(data):
        return read_page(data, label=label, now=now, overrides=overrides)
    if suffix in HTML_SUFFIXES:
        return _document_source(path, label, "html", overrides)
    return data


def _text_source(path: Path, label: str, overrides: ArticleOverrides) -> ReadSource:
    fallback = overrides.published
    article = read_scraped_file(path, label, fallback_date=fallback, fallback_source="--date")
    if overrides:
        article = dataclasses.replace(
            article,
            title=overrides.title if overrides.title is not None else article.title,
            author=overrides.author if overrides.author is not None else article.author,
            published=overrides.published or article.published,
        )
    parsed = ParsedSource(label=label, kind="text", items=[article.to_article_input(label)])
    parsed.warnings.extend(f"{label}: {w}" for w in article.warnings)
    note = f"extracted: {article.summary_line()}"
    return ReadSource(parsed, [note + (f" · {overrides.options} given" if overrides else "")])


def _document_source(path: Path, label: str, kind: str, overrides: ArticleOverrides) -> ReadSource:
    item = parse_document_file(path, label)
    if isinstance(item, ArticleInput):
        item = overrides.apply(item)
    return ReadSource(ParsedSource(label=label, kind=kind, items=[item]))


def _read(path: Path, label: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise SourceError(f"{label}: cannot read ({e.strerror or e})") from None


# ---------------------------------------------------------------------------- directories


def read_directory(path: Path, label: str, *, now: datetime) -> ReadSource:
    """Every article file under ``path`` (see the module docstring), each one entry of the
    source; a file that gives no article is rejected alone, with the reason."""
    files = sorted(
        p
        for p in path.rglob("*")
        if p.is_file()
        and p.suffix.lower() in ARTICLE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(path).parts)
    )
    if not files:
        raise SourceError(f"{label}: no article files (.md, .markdown, .html, .htm, .txt, .text)")
    items: list[ArticleInput | Rejection] = []
    source = ReadSource(ParsedSource(label=label, kind="directory", items=items))
    for p in files:
        name = str(p.relative_to(path))
        try:
            one = read_file(p, name, now=now)
        except SourceError as e:
            items.append(Rejection(name, str(e).removeprefix(f"{name}: ")))
            continue
        except Exception as e:  # noqa: BLE001 - the file fails alone
            items.append(Rejection(name, f"could not be read ({visible(describe_error(e))[:200]})"))
            continue
        if isinstance(one, bytes):  # cannot be: every article suffix has its reader
            items.append(Rejection(name, "not an article file"))
            continue
        items.extend(one.parsed.items)
        source.parsed.warnings.extend(one.parsed.warnings)
        source.notes.extend(note.replace("extracted:", f"extracted {name}:", 1)
                            for note in one.notes)  # fmt: skip
    return source
