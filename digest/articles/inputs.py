"""What the article store accepts: ``ArticleInput`` records, one per entry of a source, as a
source reader made them (raw HTML, not yet sanitised: the store does that, and only for the
articles it actually writes), ``Rejection``s naming an entry that cannot be stored and why, and a
``ParsedSource`` holding both. The readers in ``digest.ingest`` produce them; nothing here touches
the database."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from .leadimage import LeadImage
from .tagging import Tag


@dataclass(slots=True)
class ArticleInput:
    """One article as a source gave it. HTML fields are raw (untrusted) until the store
    sanitises them; ``published`` is tz-aware UTC or None (no usable date). ``tags`` are
    mapped by ``tagging`` (the same way for every format); ``image`` is the lead image the
    reader chose (``leadimage``), already checked."""

    entry: str  # where it came from, for messages: "entry 3", "line 7", "notes/a.md"
    title: str | None
    url: str | None
    guid: str | None = None
    author: str | None = None
    published: datetime | None = None
    raw_date: str | None = None  # the date text that could not be parsed, if any
    summary_html: str | None = None
    content_html: str | None = None
    tags: tuple[Tag, ...] = ()
    image: LeadImage | None = None
    # Other URLs of the same story (a page's fetch URL, its redirect target, og:url): the
    # store matches them against stored articles and remembers them for later matches.
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rejection:
    entry: str
    reason: str

    def __str__(self) -> str:
        return f"{self.entry}: {self.reason}"


@dataclass
class ParsedSource:
    label: str  # the source as the user named it (path or URL)
    kind: str  # rss | atom | feed | jsonfeed | json | jsonl | markdown | html | directory
    # A list, or JsonLines (parsed as read) for a JSON Lines file.
    items: Sequence[ArticleInput | Rejection] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    base_url: str | None = None  # for resolving relative links in content
