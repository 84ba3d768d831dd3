"""Reading ingestion sources: RSS/Atom feeds, JSON Feed, JSON arrays and JSON Lines of article
objects, and Markdown/HTML files with YAML front matter (``documents`` decides which file is
which, and reads web pages and text scrapes). Each reader turns one source into a
``ParsedSource``: normalised ``ArticleInput`` records (raw, not yet sanitised — the store does
that, and only for articles it actually writes) and ``Rejection``s naming the entry or line and
what is wrong. Nothing here touches the database.

Every reader maps categories to tags with ``articles.tagging`` (one splitter and one set of
rules for RSS, Atom, JSON Feed, JSON Lines and front matter) and picks the lead image with
``articles.leadimage``: the feed's media, the item's ``image``, else the first real picture of
the raw content.

Failures belong to the entry: an entry, line or file that cannot be read, for whatever reason
(including an exception nobody foresaw), becomes a ``Rejection`` and the rest of the source is
read. Every date goes through the shared parser (``dates.parse_date``), which never raises: a
date that is junk or out of range leaves ``published`` empty, and the store uses the ingest time
with a warning. YAML front matter is read without aliases (``*name``), so a few lines cannot
expand into gigabytes, and a timestamp YAML cannot represent stays text for that parser.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, overload
from urllib.parse import urlsplit

import feedparser
import frontmatter
import markdown
import orjson
import yaml
from frontmatter.default_handlers import YAMLHandler

from ..articles.inputs import ArticleInput, ParsedSource, Rejection
from ..articles.leadimage import LeadImage, content_image, feed_entry_image, value_image
from ..articles.tagging import feed_entry_tags, value_tags
from ..errors import SourceError, describe_error
from ..text import CONTROL, visible, without_lone_surrogates
from .dates import from_struct_time, parse_date

MARKDOWN_SUFFIXES = {".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}


# ---------------------------------------------------------------------------- text helpers

_SPACES = re.compile(r"\s+")
# Bidi embedding, override and isolate controls: in a title they can make the text that follows
# read backwards (a spoofed headline or link text); a title is one short run of text and needs none.
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
_TAGLIKE = re.compile(r"<[^>]*>")
_RAW_TEXT_START = re.compile(r"<(script|style)(?=[\s/>])", re.I)
_RAW_TEXT_END = {
    "script": re.compile(r"</script[\s/>]", re.I),
    "style": re.compile(r"</style[\s/>]", re.I),
}


def clean_title(title: str | None) -> str | None:
    """One line of plain text: markup removed (a script or style element with its body), bidi
    overrides dropped, and CR/LF and other control characters made spaces (a title ends up in a
    Subject header and must not be able to start a new header line)."""
    if not title:
        return None
    if "<" in title:
        title = _TAGLIKE.sub("", _without_scripts(title))
    if "&" in title:
        title = html.unescape(title)
    # A printable string has no control characters and no whitespace but the plain space, so
    # without a double space the two substitutions would change nothing.
    if not title.isprintable() or "  " in title:
        title = _SPACES.sub(" ", CONTROL.sub(" ", _BIDI_CONTROLS.sub("", title)))
    title = title.strip()
    return title[:500] or None


def _without_scripts(markup: str) -> str:
    """``markup`` without its script and style elements, bodies included (as an HTML parser
    reads them: the body runs to the first ``</script``, or to the end). Linear: each part of
    the text is looked at once."""
    if "<" not in markup:
        return markup
    out = []
    pos = 0
    while (start := _RAW_TEXT_START.search(markup, pos)) is not None:
        out.append(markup[pos : start.start()])
        end = _RAW_TEXT_END[start.group(1).lower()].search(markup, start.end())
        if end is None:
            return "".join(out)
        close = markup.find(">", end.end() - 1)
        pos = len(markup) if close < 0 else close + 1
    out.append(markup[pos:])
    return "".join(out)


def text_to_html(text: str) -> str:
    """Plain text as HTML paragraphs (blank lines separate paragraphs)."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    return "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)


def looks_like_html(value: str) -> bool:
    return "<" in value and ">" in value


def decode_text(data: bytes, label: str, warnings: list[str]) -> str:
    """UTF-8 (BOM tolerated); invalid bytes are replaced with U+FFFD and reported, not fatal."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        bad = sum(1 for _ in re.finditer(rb"[\x80-\xff]+", data))  # rough count of runs
        warnings.append(
            f"not valid UTF-8 (first bad byte 0x{data[e.start]:02x} on line {line}); "
            f"undecodable bytes replaced with \N{REPLACEMENT CHARACTER}"
            + (f" ({bad} places)" if bad > 1 else "")
        )
        return data.decode("utf-8-sig", errors="replace")


# ---------------------------------------------------------------------------- images


def _lead_image(value: object, html_text: object, base: str | None) -> LeadImage | None:
    """The image a JSON item or front matter names (``image``), else the first real picture
    of its raw HTML (``data-src`` and friends are still there: the sanitiser drops them)."""
    image = value_image(value, base)
    if image is None and isinstance(html_text, str) and html_text:
        image = content_image(html_text, base)
    return image


def _str(value: object) -> str | None:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _author(value: object) -> str | None:
    if isinstance(value, dict):
        return _str(value.get("name"))
    if isinstance(value, list) and value:
        names = [_author(a) for a in value]
        return ", ".join(n for n in names if n) or None
    name = _str(value)
    return clean_title(name) if name else None


# ---------------------------------------------------------------------------- feeds


def parse_feed(data: bytes, label: str, *, content_type: str | None = None) -> ParsedSource:
    """RSS 0.9x/1.0/2.0 or Atom via feedparser. feedparser's own sanitiser and relative-URI
    pass are turned off: the store sanitises with nh3 and resolves links itself, and those two
    passes are most of feedparser's time."""
    headers = {"content-location": label} if _http(label) else {}
    if content_type:
        headers["content-type"] = content_type
    d = feedparser.parse(
        data, sanitize_html=False, resolve_relative_uris=False, response_headers=headers
    )
    exc = d.get("bozo_exception")
    if not d.entries and not d.get("version"):
        why = f" ({_exc_text(exc)})" if exc else ""
        raise SourceError(f"{label}: not an RSS or Atom feed{why}")
    version = d.get("version") or ""
    kind = "atom" if version.startswith("atom") else "rss" if version.startswith("rss") else "feed"
    items: list[ArticleInput | Rejection] = []
    src = ParsedSource(
        items=items, label=label, kind=kind, base_url=d.feed.get("link") or _http(label)
    )
    if exc is not None:
        if isinstance(exc, feedparser.NonXMLContentType):
            pass  # files have no Content-Type and servers often say text/html; not a problem
        elif isinstance(exc, feedparser.CharacterEncodingOverride):
            src.warnings.append(f"{_exc_text(exc)}; text decoded as {d.get('encoding')}")
        else:
            items.append(
                Rejection(
                    _exc_where(exc),
                    f"feed is malformed or truncated ({_exc_text(exc)}); "
                    "the entries before it are kept",
                )
            )
    entries = list(d.entries)
    feed = dict(d.feed)  # see _feed_entry
    if exc is not None and entries:
        # feedparser keeps the entry that was open where the document broke off; its fields may
        # be cut short, so it is rejected rather than stored half-read.
        closed = data.count(b"</item>") + data.count(b"</entry>") + data.count(b":item>")
        closed += data.count(b":entry>")
        if closed < len(entries):
            last = _feed_entry(len(entries), entries.pop(), feed)
            items.append(Rejection(last.entry, "incomplete: the feed breaks off inside it"))
    for n, e in enumerate(entries, 1):
        try:
            items.append(_feed_entry(n, e, feed))
        except Exception as exc:  # noqa: BLE001 - the entry fails alone
            items.append(Rejection(f"entry {n}", _unexpected(exc)))
    return src


def _unexpected(exc: BaseException) -> str:
    """The reason for an entry that failed in a way nobody foresaw (a bug, or input no rule
    covers), in one line."""
    return f"could not be read ({visible(describe_error(exc))[:200]})"


def _feed_entry(n: int, e: Any, feed: Any = None) -> ArticleInput:
    title = clean_title(e.get("title"))
    entry = f"entry {n}" + (f" ({_short(title)!r})" if title else "")
    # The date text is read by our own parser, which never raises and rejects junk that
    # feedparser misreads ("2013-xx-27" becomes 2013-12-01 in *_parsed); feedparser's parsed
    # value is used only when there is no text. Plain dict lookups skip feedparser's deprecated
    # key aliases.
    raw_date = dict.get(e, "published") or dict.get(e, "updated") or dict.get(e, "created")
    published = parse_date(raw_date) if raw_date else None
    if not raw_date:
        for key in ("published_parsed", "updated_parsed", "created_parsed"):
            published = from_struct_time(dict.get(e, key))
            if published is not None:
                break
    content = None
    for c in e.get("content") or ():
        if c.get("value"):
            content = c["value"] if "html" in (c.get("type") or "html") else text_to_html(c.value)
            break
    summary = e.get("summary") or None
    if summary and "html" not in (e.get("summary_detail", {}).get("type") or "html"):
        summary = text_to_html(summary)
    return ArticleInput(
        entry=entry,
        title=title,
        url=_str(e.get("link")),
        guid=_str(e.get("id")),
        # RSS <author> is "email (Name)"; feedparser splits it into author_detail.
        author=_author(e.get("author_detail")) or _author(e.get("author")),
        published=published,
        raw_date=raw_date if published is None else None,
        summary_html=summary,
        content_html=content,
        # Plain dict lookups: FeedParserDict.get maps aliases and raises inside for every key
        # an entry lacks, which was half the cost of finding its image.
        tags=feed_entry_tags(dict(e), feed),
        image=feed_entry_image(dict(e), _str(e.get("link")) or (feed or {}).get("link")),
    )


def _exc_text(exc: BaseException) -> str:
    # feedparser's messages can quote the document (a declared encoding name, say).
    msg = exc.getMessage() if hasattr(exc, "getMessage") else str(exc)
    return visible(str(msg)) or type(exc).__name__


def _exc_where(exc: BaseException) -> str:
    line = getattr(exc, "getLineNumber", None)
    if callable(line) and line():
        return f"line {line()}"
    return "feed"


def _short(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _http(label: str) -> str | None:
    return label if label.startswith(("http://", "https://")) else None


# ---------------------------------------------------------------------------- JSON


def parse_json_document(data: bytes, label: str) -> ParsedSource:
    """A JSON Feed (1.0/1.1), a JSON array of article objects, or JSON Lines."""
    warnings: list[str] = []
    text = decode_text(data, label, warnings)
    stripped = text.lstrip()
    if not stripped:
        raise SourceError(f"{label}: empty file")
    if stripped[0] == "[":
        try:
            doc = _json_loads(text)
        except json.JSONDecodeError as e:
            raise SourceError(
                f"{label}: line {e.lineno} column {e.colno}: invalid JSON — {e.msg}"
            ) from None
        items: list[ArticleInput | Rejection] = []
        src = ParsedSource(items=items, label=label, kind="json", warnings=warnings)
        if not isinstance(doc, list):
            raise SourceError(f"{label}: expected a JSON array of article objects")
        for n, obj in enumerate(doc, 1):
            items.append(_json_article(f"item {n}", obj))
        return src
    try:
        doc = _json_loads(text)
    except json.JSONDecodeError:
        return parse_json_lines(text, label, warnings)
    if isinstance(doc, dict) and str(doc.get("version", "")).startswith("https://jsonfeed.org/"):
        return _json_feed(doc, label, warnings)
    return parse_json_lines(text, label, warnings)


def parse_json_lines(text: str, label: str, warnings: list[str] | None = None) -> ParsedSource:
    # Split on LF only: str.splitlines() would also split inside a JSON string at U+2028, U+0085
    # and other characters JSON allows unescaped (a trailing CR is JSON whitespace).
    lines = [(n, line) for n, line in enumerate(text.split("\n"), 1) if line.strip()]
    return ParsedSource(label=label, kind="jsonl", items=JsonLines(lines), warnings=warnings or [])


class JsonLines(Sequence[ArticleInput | Rejection]):
    """The entries of a JSON Lines file, each line parsed when it is read (``ArticleInput`` or
    ``Rejection``). The store reads a large file batch by batch, each batch once, on a worker
    thread while the batch before is written; a line read twice is parsed twice."""

    def __init__(self, lines: list[tuple[int, str]]):
        self._lines = lines  # (line number, text), blank lines left out

    def __len__(self) -> int:
        return len(self._lines)

    @overload
    def __getitem__(self, index: int) -> ArticleInput | Rejection: ...

    @overload
    def __getitem__(self, index: slice) -> list[ArticleInput | Rejection]: ...

    def __getitem__(
        self, index: int | slice
    ) -> ArticleInput | Rejection | list[ArticleInput | Rejection]:
        if isinstance(index, slice):
            return [_json_line(n, line) for n, line in self._lines[index]]
        return _json_line(*self._lines[index])


def _json_line(n: int, line: str) -> ArticleInput | Rejection:
    try:
        obj = _loads(line)
    except json.JSONDecodeError as e:
        return Rejection(f"line {n}", f"invalid JSON — {e.msg} (column {e.colno})")
    except RecursionError:
        return Rejection(f"line {n}", "invalid JSON — nested too deeply")
    return _json_article(f"line {n}", obj)


def _loads(line: str) -> object:
    """orjson parses a line ~3x faster than the json module. Whatever it refuses goes to the
    json module, which reads what orjson is stricter about (NaN, integers past 64 bits, lone
    surrogates) and otherwise raises the error message users see."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return _json_loads(line)


# A "\\uD800".."\\uDFFF" escape: the only way JSON text yields a lone surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _json_loads(text: str) -> object:
    """``json.loads``, with every lone surrogate a "\\ud800" escape decoded to replaced by
    U+FFFD, so one odd string cannot fail an entry later (UTF-8 cannot encode it)."""
    doc = json.loads(text)
    return _scrubbed(doc) if _SURROGATE_ESCAPE.search(text) else doc


def _scrubbed(value: object) -> object:
    if isinstance(value, str):
        return without_lone_surrogates(value)
    if isinstance(value, list):
        return [_scrubbed(v) for v in value]
    if isinstance(value, dict):
        return {without_lone_surrogates(k): _scrubbed(v) for k, v in value.items()}
    return value


def _json_article(entry: str, obj: object) -> ArticleInput | Rejection:
    """An article object: title, url (or link), published (or date), tags, content or summary,
    author, and optionally id/guid."""
    try:
        return _json_object(entry, obj)
    except Exception as exc:  # noqa: BLE001 - the entry fails alone
        return Rejection(entry, _unexpected(exc))


def _json_object(entry: str, obj: object) -> ArticleInput | Rejection:
    if not isinstance(obj, dict):
        return Rejection(entry, f"expected a JSON object, got {type(obj).__name__}")
    get = obj.get
    content = get("content")
    summary = get("summary")
    if content is not None and not isinstance(content, str):
        return Rejection(entry, "'content' must be a string")
    if summary is not None and not isinstance(summary, str):
        return Rejection(entry, "'summary' must be a string")
    raw_date = obj["published"] if "published" in obj else get("date")
    published = parse_date(raw_date)
    return ArticleInput(
        entry=entry,
        title=clean_title(_str(get("title"))),
        url=_str(obj["url"] if "url" in obj else get("link")),
        guid=_str(obj["id"] if "id" in obj else get("guid")),
        author=_author(get("author")),
        published=published,
        raw_date=str(raw_date) if published is None and raw_date not in (None, "") else None,
        summary_html=(summary if looks_like_html(summary) else text_to_html(summary))
        if summary
        else None,
        content_html=(content if looks_like_html(content) else text_to_html(content))
        if content
        else None,
        tags=value_tags(get("tags")),
        image=_lead_image(get("image"), content or summary, _str(get("url") or get("link"))),
    )


def _json_feed(doc: dict[str, Any], label: str, warnings: list[str]) -> ParsedSource:
    items: list[ArticleInput | Rejection] = []
    src = ParsedSource(
        items=items,
        label=label,
        kind="jsonfeed",
        warnings=warnings,
        base_url=_str(doc.get("home_page_url")),
    )
    entries = doc.get("items")
    if not isinstance(entries, list):
        raise SourceError(f"{label}: JSON Feed has no 'items' array")
    feed_author = _author(doc.get("authors") or doc.get("author"))
    home = _str(doc.get("home_page_url"))
    for n, item in enumerate(entries, 1):
        try:
            items.append(_json_feed_item(n, item, feed_author, home))
        except Exception as exc:  # noqa: BLE001 - the entry fails alone
            items.append(Rejection(f"item {n}", _unexpected(exc)))
    return src


def _json_feed_item(
    n: int, item: object, feed_author: str | None, home: str | None
) -> ArticleInput | Rejection:
    entry = f"item {n}"
    if not isinstance(item, dict):
        return Rejection(entry, f"expected an object, got {type(item).__name__}")
    content = item.get("content_html")
    if not isinstance(content, str) and isinstance(item.get("content_text"), str):
        content = text_to_html(item["content_text"])
    summary = item.get("summary")
    raw_date = item.get("date_published") or item.get("date_modified")
    published = parse_date(raw_date)
    title = clean_title(_str(item.get("title")))
    return ArticleInput(
        entry=entry + (f" ({_short(title)!r})" if title else ""),
        title=title,
        url=_str(item.get("url") or item.get("external_url")),
        guid=_str(item.get("id")),
        author=_author(item.get("authors") or item.get("author")) or feed_author,
        published=published,
        raw_date=str(raw_date) if published is None and raw_date else None,
        summary_html=text_to_html(summary) if isinstance(summary, str) else None,
        content_html=content if isinstance(content, str) else None,
        tags=value_tags(item.get("tags")),
        image=_lead_image(
            item.get("image") or item.get("banner_image"), content, _str(item.get("url")) or home
        ),
    )


# ---------------------------------------------------------------------------- front matter


class _FrontMatterLoader(yaml.SafeLoader):
    """YAML's safe loader without aliases, and with timestamps that cannot fail.

    An alias (``*name``) repeats a node, and aliases of aliases multiply: ten lines can stand
    for gigabytes (the "billion laughs"). Front matter has no use for them, so a file with one
    is rejected. A timestamp PyYAML cannot represent (``0000-00-00``, an offset of -99:99)
    stays text, for ``parse_date`` to turn into a warning instead of a rejected file."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not accepted in front matter", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_lenient_timestamp(self, node: yaml.ScalarNode) -> object:
        try:
            return self.construct_yaml_timestamp(node)
        except (ValueError, OverflowError):
            return self.construct_scalar(node)


_FrontMatterLoader.add_constructor(
    "tag:yaml.org,2002:timestamp", _FrontMatterLoader.construct_lenient_timestamp
)


class _YamlFrontMatter(YAMLHandler):
    def load(self, fm: str, **kwargs: object) -> Any:
        return yaml.load(fm, Loader=_FrontMatterLoader)  # noqa: S506 - a safe loader


_FRONT_MATTER = [
    _YamlFrontMatter(),
    *(h for h in frontmatter.handlers if not isinstance(h, YAMLHandler)),
]


def parse_document_file(path: Path, label: str) -> ArticleInput | Rejection:
    """A Markdown or HTML article with optional YAML front matter (title, date, tags, url,
    author, id). Markdown is rendered to HTML. Never raises: a file that cannot be read is a
    ``Rejection`` naming it."""
    try:
        return _document_file(path, label)
    except Exception as exc:  # noqa: BLE001 - the file fails alone
        return Rejection(label, _unexpected(exc))


def _document_file(path: Path, label: str) -> ArticleInput | Rejection:
    warnings: list[str] = []
    try:
        data = path.read_bytes()
    except OSError as e:
        return Rejection(label, f"cannot read ({e.strerror or e})")
    text = decode_text(data, label, warnings)
    try:
        post = frontmatter.loads(text, handler=frontmatter.detect_format(text, _FRONT_MATTER))
    except RecursionError:
        return Rejection(label, "invalid front matter: nested too deeply")
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (front matter line {mark.line + 1})" if mark else ""
        return Rejection(label, f"invalid YAML front matter{where}: {getattr(e, 'problem', e)}")
    except ValueError as e:
        return Rejection(label, f"invalid front matter: {e}")
    meta = post.metadata if isinstance(post.metadata, dict) else {}
    body = post.content
    if path.suffix.lower() in MARKDOWN_SUFFIXES:
        body = markdown.markdown(body, extensions=["extra", "sane_lists"])
    raw_date = meta.get("date", meta.get("published"))
    published = parse_date(raw_date)
    summary = meta.get("summary")
    return ArticleInput(
        entry=label,
        title=clean_title(_str(meta.get("title"))),
        url=_str(meta.get("url", meta.get("link"))),
        guid=_str(meta.get("id", meta.get("guid"))),
        author=_author(meta.get("author")),
        published=published,
        raw_date=str(raw_date) if published is None and raw_date not in (None, "") else None,
        summary_html=text_to_html(summary) if isinstance(summary, str) else None,
        content_html=body or None,
        tags=value_tags(meta.get("tags")),
        image=_lead_image(meta.get("image"), body, _str(meta.get("url", meta.get("link")))),
    )


# ---------------------------------------------------------------------------- dispatch


def parse_bytes(data: bytes, label: str, *, content_type: str | None = None) -> ParsedSource:
    """Sniff what ``data`` is (feed XML, JSON Feed, JSON array, JSON Lines) and parse it."""
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    suffix = Path(urlsplit(label).path).suffix.lower()
    if suffix in JSONL_SUFFIXES:
        warnings: list[str] = []
        return parse_json_lines(decode_text(data, label, warnings), label, warnings)
    if head[:1] in (b"{", b"["):
        return parse_json_document(data, label)
    if not head:
        raise SourceError(f"{label}: empty file")
    return parse_feed(data, label, content_type=content_type)


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))
