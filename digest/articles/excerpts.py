"""Cleaner excerpts: the boilerplate that CMSs and feed services add to an article's summary and
content is removed before the article's text and excerpt are derived from it.

Removed anywhere in a fragment: tracking pixels and feed furniture (``leadimage.
is_tracking_image``: FeedBurner ``~r`` pixels and ``~ff`` flares, Blogger's footer tracker,
WordPress.com stats and comment buttons, Medium's ``_/stat``), links to feed furniture, and
Substack's button paragraphs ("Subscribe now", "Share", "Leave a comment": a paragraph that is
only such a link to a Substack subscribe/share/comments URL) and its "Thanks for reading X!
Subscribe for free..." box.

Removed only at the end, repeatedly (a tail can have several):
- the Yoast/WordPress line "The post X appeared first on Y." (and its German, French, Spanish,
  Portuguese, Dutch and Italian forms) as the last paragraph; in HTML only when it links, as
  the plugin always does, so a real last sentence shaped like it survives;
- a last paragraph or last link that says only "Continue reading", "Read more", "(more…)",
  "Continue reading on Medium »", "Continue reading “Title” →", "Lire la suite"... and the same
  words right after an ellipsis ("… Read more");
- a WordPress excerpt tail ``[…]`` / ``[...]`` / ``[&#8230;]``, which becomes ``…``.

Conservative by construction: a phrase is removed only when it is a whole paragraph, a whole
link, or follows an ellipsis at the very end; "read more" inside a sentence never is.
"""

from __future__ import annotations

import html
import re

from .leadimage import absolute_image_url, dimension, html_attributes, is_tracking_image

TAIL_CHARS = 1000  # boilerplate sits in the last paragraphs; only this much is examined
MAX_TAIL_STEPS = 6

_READ_MORE_WORDS = (
    r"(?:continue\s+reading|read\s+more|read\s+the\s+rest(?:\s+of\s+(?:this|the)\s+(?:entry|post|article))?"
    r"|read\s+the\s+full\s+(?:story|article|post)|keep\s+reading|read\s+on|more"
    r"|lire\s+la\s+suite|weiterlesen|mehr\s+lesen|leer\s+m[aá]s|seguir\s+leyendo"
    r"|continua\s+a\s+leggere|leggi\s+tutto|leia\s+mais|continuar\s+lendo|verder\s+lezen|lees\s+meer)"
)
# A whole "read more" phrase: optional brackets, the words, optionally "on Medium" and/or the
# quoted title (WordPress's screen-reader text), dots, arrows.
_READ_MORE = re.compile(
    r"[\[(«]?\s*" + _READ_MORE_WORDS + r"(?:\s+(?:on|at|en|sur|auf)\s+[^.\n]{1,60}?)?"
    r"(?:\s*[“\"'‘«„][^\n]{0,200}?[”\"'’»“])?"
    r"\s*(?:\.{2,}|…|&hellip;)?\s*(?:[→»›>]|&rarr;|&raquo;|&gt;)*\s*[\])»]?\s*[.:]?",
    re.I,
)
_APPEARED_FIRST = re.compile(
    r"(?:(?:the|this)\s+(?:post|article|entry)\s.{1,300}?\s(?:appeared\s+first|first\s+appeared)\s+on\s"
    r"|der\s+beitrag\s.{1,300}?\serschien\s+zuerst\s+auf\s"
    r"|l[’']article\s.{1,300}?\sest\s+apparu\s+en\s+premier\s+sur\s"
    r"|la\s+entrada\s.{1,300}?\sse\s+public[oó]\s+primero\s+en\s"
    r"|o\s+post\s.{1,300}?\sapareceu\s+primeiro\s+em\s"
    r"|het\s+bericht\s.{1,300}?\sverscheen\s+eerst\s+op\s"
    r"|l[’']articolo\s.{1,300}?\sproviene\s+da\s)"
    r".{1,150}",
    re.I | re.S,
)
_SUBSTACK_THANKS = re.compile(
    r"thanks\s+for\s+reading\s.{1,150}?[!.]\s*subscribe\s+for\s+free\s+to\s+receive\s+new\s+"
    r"posts\s+and\s+support\s+(?:my|our)\s+work\.?",
    re.I | re.S,
)
_SUBSTACK_BUTTON = re.compile(
    r"subscribe(?:\s+now)?|share(?:\s+this\s+post)?|share\s+.{1,80}|leave\s+a\s+comment"
    r"|give\s+a\s+gift\s+subscription|upgrade\s+to\s+paid|get\s+\d+%\s+off.{0,80}",
    re.I | re.S,
)
_SUBSTACK_HREF = re.compile(
    r"substack|/subscribe(?=[?#/\"']|$)|action=share|/comments(?=[?#/\"']|$)|utm_content=share"
)

_ELLIPSIS = r"(?:…|\.{3}|&hellip;|&#8230;|&amp;hellip;|&amp;#8230;)"
# "[…]" and friends at the very end (closing tags split off beforehand).
_BRACKET_ELLIPSIS = re.compile(r"\s*\[\s*" + _ELLIPSIS + r"\s*\]\s*$", re.I)
# "… Read more" / ". Read more" at the very end: the words after an ellipsis or the end of a
# sentence. Inside a sentence ("those who read more") there is neither before them.
_ELLIPSIS_READ_MORE = re.compile(
    r"(" + _ELLIPSIS + r"|\]|[.!?][\"”’»)]?)\s*" + _READ_MORE.pattern + r"$", re.I
)

# How every boilerplate block starts (after any opening tags): checked before the block's
# text is worked out.
_BLOCK_START = re.compile(
    r"(?:<[^<>]*>|\s)*(?:[\[(«]\s*)?(?:continue|read|keep|more|lire|weiter|mehr|leer|seguir"
    r"|continua|leggi|leia|continuar|verder|lees|the\s|this\s|der\s|l[’']|la\s|o\s|het\s|thanks)",
    re.I,
)
# The last word of a "read more" phrase: checked before searching the tail for one.
_READ_MORE_LAST_WORDS = frozenset(
    {
        "more", "reading", "suite", "weiterlesen", "lesen", "más", "mas", "leyendo", "leggere",
        "tutto", "mais", "lendo", "lezen", "meer", "rest", "entry", "post", "article", "story",
        "on",
    }
)  # fmt: skip
_TRAILING_MARKS = " \t\n.…»→›>]):\u00a0"
_BLOCK_TAG = re.compile(r"<(?:p|div|li|blockquote)[ >]")
_IMG = re.compile(r"<img\b([^<>]*)>", re.I)  # [^<>]: see leadimage._IMG
_TAG = re.compile(r"<[^>]+>")
_LINK = re.compile(r"<a\b([^>]*)>(.*?)</a>", re.I | re.S)
_FURNITURE_LINK = re.compile(
    r"<a\b[^<>]*\bhref=\"https?://(?:feeds\.feedburner\.com/~ff/|feeds\.wordpress\.com/1\.0/|"
    r"feedads\.g\.doubleclick\.net/)[^\"]*\"[^<>]*>.{0,500}?</a>",  # a flare is one image: ~150 characters
    re.I | re.S,
)
_EMPTY = re.compile(
    r"<(a|p|div|span|figure|strong|em|b|i)\b[^>]*>(?:\s|&nbsp;|&#160;|<br\s*/?>)*</\1>", re.I
)
_CLOSING_TAG = re.compile(r"</[a-zA-Z0-9]+\s*>")
_AFTER_LINK = re.compile(r"(?:\s|&nbsp;|[→»›.)\]]|&rarr;|&raquo;|</[a-zA-Z0-9]+\s*>)*", re.I)

_TRIGGERS = (
    "<img",
    "feeds.feedburner.com",
    "feeds.wordpress.com",
    "doubleclick",
    "appeared first",
    "first appeared",
    "erschien zuerst",
    "apparu en premier",
    "publicó primero",
    "publico primero",
    "apareceu primeiro",
    "verscheen eerst",
    "proviene da",
    "more",
    "read",
    "reading",
    "lire",
    "weiterlesen",
    "lesen",
    "leer m",
    "leyendo",
    "legg",
    "leia",
    "lendo",
    "lezen",
    "lees",
    "…",
    "...",
    "&hellip;",
    "&#8230;",
    "subscribe",
    "share",
    "comment",
    "thanks for reading",
)


def _text(fragment: str) -> str:
    return " ".join(html.unescape(_TAG.sub(" ", fragment)).split())


def strip_boilerplate(fragment: str) -> str:
    """``fragment`` (sanitised HTML, as ``sanitize.clean_html`` writes it) without CMS and feed
    boilerplate (see the module docstring); unchanged if it has none."""
    if not fragment:
        return fragment
    # Every test here is a plain substring search on the fragment as it is: lower-casing 2 KB
    # of non-ASCII text costs ~20 µs, more than all the rest (bench/tagrules.py).
    out = fragment
    if "<img" in out:
        out = _IMG.sub(_drop_tracking_img, out)
    if "://feed" in out:  # feeds.feedburner.com, feeds.wordpress.com, feedads.g.doubleclick.net
        out = _FURNITURE_LINK.sub("", out)
    if "substack" in out or "ubscribe" in out:
        out = _drop_substack_blocks(out)
    if out != fragment:
        out = _drop_empty(out)
    for _ in range(MAX_TAIL_STEPS):
        trimmed = _trim_tail(out)
        if trimmed == out:
            break
        out = trimmed
    return out


def _drop_tracking_img(m: re.Match[str]) -> str:
    attrs = html_attributes(m.group(1))
    src = attrs.get("src")
    if not src:
        return m.group(0)
    url = absolute_image_url(src) or src
    if is_tracking_image(url, dimension(attrs.get("width")), dimension(attrs.get("height"))):
        return ""
    return m.group(0)


def _drop_empty(fragment: str) -> str:
    for _ in range(4):  # nested empties: <div><p></p></div>
        emptied = _EMPTY.sub("", fragment)
        if emptied == fragment:
            break
        fragment = emptied
    return fragment


def _drop_substack_blocks(fragment: str) -> str:
    def block(m: re.Match[str]) -> str:
        inner = m.group(2)
        text = _text(inner)
        if _SUBSTACK_THANKS.fullmatch(text):
            return ""
        links = _LINK.findall(inner)
        if (
            len(links) == 1
            and _SUBSTACK_BUTTON.fullmatch(text)
            and _SUBSTACK_HREF.search(links[0][0])
            and _text(links[0][1]) == text
        ):
            return ""
        return m.group(0)

    return re.sub(r"<(p|div)>((?:(?!<(?:p|div)[ >]).){0,2000}?)</\1>", block, fragment, flags=re.S)


def _rstrip_html(fragment: str) -> str:
    while True:
        stripped = fragment.rstrip()
        for suffix in ("&nbsp;", "&#160;", "<br>", "<br/>", "<br />", "\u00a0"):
            if stripped.endswith(suffix):
                stripped = stripped[: -len(suffix)]
                break
        else:
            return stripped
        fragment = stripped


def _split_closing(fragment: str) -> tuple[str, str]:
    """(content, the run of closing tags that ends ``fragment``)."""
    end = len(fragment)
    while True:
        body = fragment[:end].rstrip()
        if not body.endswith(">"):
            return fragment[:end], fragment[end:]
        lt = body.rfind("<")
        if lt < 0 or not _CLOSING_TAG.fullmatch(body, lt):
            return fragment[:end], fragment[end:]
        end = lt


def _trim_tail(fragment: str) -> str:
    """One step: the last piece of boilerplate at the end of ``fragment`` removed."""
    fragment = _rstrip_html(fragment)
    cut = max(0, len(fragment) - TAIL_CHARS)
    head = fragment[:cut]
    body, closing = _split_closing(fragment[cut:])
    # 1. A last block that is boilerplate as a whole. Its own closing tag is in the closing
    # run, after those of its inline children (</a></p>) and before those of outer elements
    # (</p></div>), which stay.
    start = -1
    for block_tag in _BLOCK_TAG.finditer(body):  # ~10x cheaper than one rfind per tag name
        start = block_tag.start()
    if start >= 0:
        open_end = body.index(">", start)
        name = body[start + 1 : open_end].split()[0].lower()
        inner = body[open_end + 1 :]
        if _is_boilerplate_block(inner):
            own = closing.lower().find(f"</{name}>")
            rest = closing[own + len(name) + 3 :] if own >= 0 else closing
            return _drop_empty(head + body[:start] + rest)
    # 2. A last link that says only "read more", with nothing but arrows and closing tags
    # after it.
    tail = body + closing
    lt = tail.rfind("<a ")
    if lt >= 0:
        link = _LINK.match(tail, lt)
        if (
            link is not None
            and _AFTER_LINK.fullmatch(tail, link.end())
            and _READ_MORE.fullmatch(_text(link.group(2)))
        ):
            kept = "".join(_CLOSING_TAG.findall(tail, link.end()))
            return _drop_empty(head + tail[:lt].rstrip(" (\u00a0") + kept)
    # 3. "… Read more" as plain words after an ellipsis or a full stop.
    ending = body[-40:].removesuffix("&gt;").removesuffix("&raquo;").removesuffix("&rarr;")
    words = ending.rstrip(_TRAILING_MARKS).rsplit(None, 1)
    if words and words[-1].lower() in _READ_MORE_LAST_WORDS:
        m = _ELLIPSIS_READ_MORE.search(body, max(0, len(body) - 300))
        if m:
            return head + body[: m.start()] + m.group(1) + closing
    # 4. "[…]" becomes "…", or goes after a finished sentence ("rains. […]").
    if "]" in body[-12:]:
        m = _BRACKET_ELLIPSIS.search(body, max(0, len(body) - 40))
        if m:
            before = body[: m.start()]
            return head + before + ("" if before.endswith((".", "!", "?")) else "…") + closing
    return fragment


def _is_boilerplate_block(block: str) -> bool:
    if not _BLOCK_START.match(block):
        return False  # cheap: most last paragraphs start like no boilerplate does
    text = _text(block)
    if not text:
        return False
    if _READ_MORE.fullmatch(text) or _SUBSTACK_THANKS.fullmatch(text):
        return True
    # The Yoast line always links the post and the site: without a link it may be a sentence.
    return "<a " in block and bool(_APPEARED_FIRST.fullmatch(text))


def strip_boilerplate_text(text: str) -> str:
    """The plain-text counterpart, for text that never was HTML: the same tails removed from
    the last line. "The post X appeared first on Y." is removed only as a last line of its
    own after other text (there are no links to confirm it here)."""
    if not text:
        return text
    lowered = text.lower()
    if not any(trigger in lowered for trigger in _TRIGGERS):
        return text
    for _ in range(MAX_TAIL_STEPS):
        stripped = text.rstrip()
        body, newline, last = stripped.rpartition("\n")
        line = " ".join(last.split())
        if (
            newline
            and body.strip()
            and (
                _READ_MORE.fullmatch(line)
                or _SUBSTACK_THANKS.fullmatch(line)
                or _APPEARED_FIRST.fullmatch(line)
            )
        ):
            text = body.rstrip()
            continue
        m = _ELLIPSIS_READ_MORE.search(stripped)
        if m:
            text = stripped[: m.start()] + m.group(1)
            continue
        m = _BRACKET_ELLIPSIS.search(stripped)
        if m:
            before = stripped[: m.start()]
            text = before + ("" if before.endswith((".", "!", "?")) else "…")
            continue
        return stripped
    return text.rstrip()
