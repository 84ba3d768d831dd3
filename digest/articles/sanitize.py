"""Sanitising untrusted article HTML (nh3, the Rust ammonia sanitiser). Everything that comes
from a feed or file passes through ``clean_html`` before it is stored: scripts, iframes, forms,
styles, event handlers and ``javascript:`` URLs never pass, and the bodies of scripts and styles
never become text.

Before nh3 sees a fragment, ``balance`` makes one linear pass over its tags, because an HTML
parser's work grows with the square of what the markup leaves open: every tag searches the stack
of open elements (50,000 nested ``<div>`` cost seconds), and formatting elements left open are
re-created in every later paragraph (2,000 ``<p><b id=N>`` became 14 MB). The pass keeps every
character of text and changes only markup:

- a start tag that would open more than ``MAX_DEPTH`` elements, or more than
  ``MAX_FORMATTING`` formatting elements (``b``, ``i``, ``a``...), is dropped with its end tag;
- a self-closed element that is not void (``<iframe ... />``, ``<div/>``) becomes empty
  (``<iframe ...></iframe>``), as its author meant: HTML ignores that ``/``, so the element
  would otherwise swallow the rest of the entry;
- ``<noscript>`` tags are dropped and their content read as markup (HTML parsers read it as
  text, which would store ``<img src=...>`` as words), then sanitised like the rest.
"""

from __future__ import annotations

import html
import re

import nh3

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "dd", "del", "dfn", "div",
    "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i",
    "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "small", "span", "strong",
    "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "time", "tr", "u", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "abbr": {"title"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
    "time": {"datetime"},
}
URL_SCHEMES = {"http", "https", "mailto"}
# The attributes whose URL nh3 checks against URL_SCHEMES; the allowed attributes hold no other
# URL. ``cite``, ``longdesc`` and ``srcset`` are not allowed at all: nh3 would pass them
# unchecked (``cite="javascript:..."``), and no mail client shows them.
CHECKED_URL_ATTRIBUTES = {"href", "src"}


# One prebuilt cleaner: nh3.clean() rebuilds its rule set from these Python sets on every call,
# which costs ~10x the sanitising itself on article-sized fragments.
_CLEANER = nh3.Cleaner(
    tags=ALLOWED_TAGS,
    attributes=ALLOWED_ATTRIBUTES,
    url_schemes=URL_SCHEMES,
    link_rel="noopener noreferrer",
    clean_content_tags={"script", "style", "iframe", "object", "embed", "form", "template"},
    strip_comments=True,
)


def clean_html(fragment: str) -> str:
    """Safe subset of ``fragment``: no scripts, styles, frames, forms, event handlers or
    non-http(s)/mailto URLs; links get ``rel="noopener noreferrer"``. Linear in the size of
    ``fragment`` (see ``balance``)."""
    return _CLEANER.clean(balance(fragment))


# ---------------------------------------------------------------------------- balance

# Deeper than any article needs; nh3's cost per tag grows with the depth, so this bounds it.
MAX_DEPTH = 64
# Formatting elements open at once: more are dropped (a browser re-creates every open one in
# each following block, so N unclosed ones cost N elements per paragraph).
MAX_FORMATTING = 8
# Below this many "<", nh3's worst case is small: the pass is skipped unless a self-closed
# element or a <noscript> needs it.
_FEW_TAGS = 128

_VOID = frozenset({
    "area", "base", "basefont", "bgsound", "br", "col", "embed", "frame", "hr", "img", "input",
    "keygen", "link", "meta", "param", "source", "track", "wbr",
})  # fmt: skip
# Elements whose content is text up to their end tag (for HTML parsers, and so for this pass).
_RAW_TEXT = frozenset({
    "script", "style", "xmp", "iframe", "noembed", "noframes", "title", "textarea",
})  # fmt: skip
# Elements that a start tag of their own kind (or of a sibling kind) closes: they cannot nest
# without an element that counts in between, so they do not count towards the depth.
_SELF_CLOSING_KINDS = frozenset({
    "p", "li", "dt", "dd", "tr", "td", "th", "thead", "tbody", "tfoot", "option", "optgroup",
    "rb", "rt", "rp", "rtc", "colgroup", "caption", "html", "head", "body",
})  # fmt: skip
_FORMATTING = frozenset({
    "a", "b", "big", "code", "em", "font", "i", "nobr", "s", "small", "strike", "strong", "tt", "u",
})  # fmt: skip

# One match per tag: "/" if an end tag, its name, its attributes as HTML tokenises them (quoted
# values may hold ">"), and how it ends ("/>", ">", or nothing where the quoting is broken);
# or a comment opening; or "<!", "<?", "</" + not a letter (bogus comments up to ">").
_MARKUP = re.compile(
    r"<(?:(/?)([a-zA-Z][^\t\n\f\r />]*)"
    r"""(?>[\t\n\f\r ]+"""  # spaces
    r"""|/(?!>)"""  # a stray slash
    r"""|[^\t\n\f\r />=][^\t\n\f\r /=>]*"""  # a name, then maybe = and a value:
    r"""(?>[\t\n\f\r ]*=[\t\n\f\r ]*"""
    r"""(?>"[^"]*"|'[^']*'|[^\t\n\f\r >"'][^\t\n\f\r >]*|(?=>)))?)*"""
    r"(/?>)?|(!--)|[/!?])"
)
_COMMENT_END = re.compile(r"--!?>")
_RAW_END: dict[str, re.Pattern[str]] = {
    name: re.compile(rf"</{name}[\t\n\f\r />]", re.I) for name in _RAW_TEXT
}
_NOSCRIPT = re.compile(r"<noscript", re.I)


def balance(fragment: str) -> str:
    """``fragment`` with its text unchanged and its markup made cheap and unambiguous to parse
    (see the module docstring). One pass over the tags; each character is looked at a bounded
    number of times."""
    if (
        fragment.count("<") <= _FEW_TAGS
        and "/>" not in fragment
        and _NOSCRIPT.search(fragment) is None
    ):
        return fragment
    out: list[str] = []
    emitted = 0  # fragment[:emitted] is decided
    pos = 0  # matches before this are inside a comment or a script: not tags
    stack: list[tuple[str, bool]] = []  # open counted elements: (name, kept)
    open_count: dict[str, int] = {}
    depth = 0  # kept elements open
    formatting = 0  # kept formatting elements open

    void, not_counted = _VOID, _SELF_CLOSING_KINDS
    for m in _MARKUP.finditer(fragment):
        start = m.start()
        if start < pos:
            continue
        is_end, raw_name, ending, comment = m.groups()
        if raw_name is None:
            if comment:  # a comment; "<!-->" and "<!--->" end at once
                after = m.end()
                if fragment.startswith((">", "->"), after):
                    pos = fragment.find(">", after) + 1
                    continue
                close = _COMMENT_END.search(fragment, after)
                if close is None:
                    break  # a comment to the end
                pos = close.end()
                continue
            # "<!DOCTYPE", "<?xml", "</ x", "</>": a bogus comment up to the next ">"
            close_at = fragment.find(">", start + 2 if m.group(0) == "</" else m.end())
            if close_at < 0:
                break
            pos = close_at + 1
            continue
        name = raw_name.lower()
        end = m.end()
        if ending is None:  # broken quoting: end at the next ">", as near as can be
            close_at = fragment.find(">", end)
            if close_at < 0:
                break  # the rest is an unfinished tag, which parsers drop
            end = close_at + 1
        pos = end

        if is_end:  # an end tag
            if name == "noscript":
                out.append(fragment[emitted:start])
                emitted = end
            elif open_count.get(name):
                # Close the innermost open ``name`` and whatever is open inside it.
                while True:
                    top, kept = stack.pop()
                    open_count[top] -= 1
                    if kept:
                        depth -= 1
                        if top in _FORMATTING:
                            formatting -= 1
                    if top == name:
                        break
                if not kept:  # its start tag was dropped: so is this end tag
                    out.append(fragment[emitted:start])
                    emitted = end
            continue

        if name in void or name in not_counted:
            continue
        if name == "noscript":
            out.append(fragment[emitted:start])
            emitted = end
            continue
        if ending == "/>":
            out.append(fragment[emitted:start])
            out.append(fragment[start : end - 2] + f"></{raw_name}>")
            emitted = end
            continue
        if name in _RAW_TEXT:
            close = _RAW_END[name].search(fragment, end)
            if close is None:
                break  # text to the end
            pos = close.start()
            continue
        if name == "plaintext":
            break
        if name == "a" and open_count.get("a"):
            # A link closes the link open before it.
            while True:
                top, kept = stack.pop()
                open_count[top] -= 1
                if kept:
                    depth -= 1
                    if top in _FORMATTING:
                        formatting -= 1
                if top == "a":
                    break
        is_formatting = name in _FORMATTING
        keep = depth < MAX_DEPTH and (not is_formatting or formatting < MAX_FORMATTING)
        stack.append((name, keep))
        open_count[name] = open_count.get(name, 0) + 1
        if keep:
            depth += 1
            if is_formatting:
                formatting += 1
        else:
            out.append(fragment[emitted:start])
            emitted = end
    if emitted == 0:
        return fragment
    out.append(fragment[emitted:])
    return "".join(out)


_BLOCK = re.compile(r"</?(p|div|br|li|h[1-6]|tr|blockquote|pre|ul|ol|table|figure)\b[^>]*>", re.I)
_TAG = re.compile(r"<[^>]+>")
_SPACES = re.compile(r"[ \t\r\f\v]+")
# Lines are stripped before this runs, so a run of 3+ line breaks is the only blank run left.
_BLANKS = re.compile(r"\n{3,}")


def html_to_text(fragment: str) -> str:
    """Readable plain text of an HTML fragment: block elements become line breaks."""
    text = _BLOCK.sub("\n", fragment)
    if "<" in text:
        text = _TAG.sub("", text)
    text = html.unescape(text)
    # Python's regex engine scans text like this at ~10-20 ns a character; the substring tests
    # guarding these two substitutions are ~20x cheaper, and usually there is nothing to do.
    if "  " in text or "\t" in text or "\r" in text or "\f" in text or "\v" in text:
        text = _SPACES.sub(" ", text)
    text = "\n".join([line.strip() for line in text.split("\n")])
    if "\n\n\n" in text:
        text = _BLANKS.sub("\n\n", text)
    return text.strip()
