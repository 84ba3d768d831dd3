"""Subject lines: a pattern with placeholders filled from an issue's content, kept within 60
characters where possible, never empty.

Why content first: the From name already shows the brand, and a phone shows about 35-40
characters of the subject, so the default pattern (``templates/email/subject.txt``, translated
per language) is ``{top} — {date}``: the top story's title, then the date. A list may set its
own pattern; placeholders are written ``{name}`` (or ``{{ name }}``, as the old Jinja2 setting):

- ``{top}``   the title of the issue's first story (first section, newest)
- ``{tags}``  the section names: "Haiti, Kenya and 3 more"
- ``{date}``  the issue date, short, in the list's language ("21 Jan", "21 janv.")
- ``{list}`` the list's title; ``{site}`` the site name
- ``{frequency}`` "Daily digest" / "Weekly digest" in the list's language
- ``{count}`` how many stories the issue has

Over the limit, ``{tags}`` names fewer sections, then ``{top}`` is cut on a word boundary with
an ellipsis; a pattern whose fixed text alone is too long is used as it is. A subject that comes
out blank falls back to "{list} — {date}", then to the list title.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import jinja2

from .errors import InvalidInput
from .i18n import Language, context_language

LIMIT = 60
PLACEHOLDERS = ("top", "tags", "date", "list", "site", "frequency", "count")
MIN_TOP = 16  # a title cut shorter than this says nothing; beyond it the subject runs long
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}|\{(\w+)\}")
_DANGLING = " \t—–-:·|,;/"


class SubjectPatternError(InvalidInput):
    """A subject pattern names a placeholder that does not exist."""


@dataclass(frozen=True)
class SubjectFacts:
    """What a subject can say about one issue (one variant)."""

    top: str
    tags: tuple[str, ...]
    date: str
    list_title: str
    site: str
    frequency: str
    count: int
    shown_tags: int | None = None  # None: all; else how many names {tags} lists


def check_pattern(pattern: str) -> str:
    """The pattern, if every placeholder in it is known (for list create/edit)."""
    for m in _PLACEHOLDER.finditer(pattern):
        name = m.group(1) or m.group(2)
        if name not in PLACEHOLDERS:
            known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            raise SubjectPatternError(
                f"unknown placeholder {{{name}}} in the subject pattern {pattern!r}; use {known}"
            )
    return pattern


def tags_text(facts: SubjectFacts, lang: Language) -> str:
    names = list(facts.tags)
    shown = len(names) if facts.shown_tags is None else max(1, facts.shown_tags)
    if shown >= len(names):
        return lang.join(names)
    rest = len(names) - shown
    more = lang.ngettext("%(num)d more", "%(num)d more", rest) % {"num": rest}
    return lang.join([*names[:shown], more])


def _fill(pattern: str, facts: SubjectFacts, lang: Language) -> str:
    values = {
        "top": facts.top,
        "tags": tags_text(facts, lang),
        "date": facts.date,
        "list": facts.list_title,
        "site": facts.site,
        "frequency": facts.frequency,
        "count": lang.number(facts.count),
    }
    text = _PLACEHOLDER.sub(lambda m: values[m.group(1) or m.group(2)], pattern)
    # A placeholder with nothing to say leaves its separator behind: "— 21 Jan".
    text = " ".join(text.split()).strip(_DANGLING)
    return re.sub(r"\s*([—–·|])\s*(?:[—–·|]\s*)+", r" \1 ", text)


def shorten(text: str, length: int) -> str:
    """``text`` cut to at most ``length`` characters on a word boundary, with an ellipsis."""
    if len(text) <= length:
        return text
    cut = text[: max(length - 1, 0)]
    if " " in cut.strip():
        cut = cut[: cut.rstrip().rfind(" ")]
    return cut.rstrip(" ,;:—–-·") + "…"


def fill_subject(pattern: str, facts: SubjectFacts, lang: Language, *, limit: int = LIMIT) -> str:
    """The subject from ``pattern`` (see the module docstring). Raises
    ``SubjectPatternError`` for an unknown placeholder."""
    check_pattern(pattern)
    if not facts.top:
        # No story title to lead with: lead with the section names instead.
        pattern = _PLACEHOLDER.sub(
            lambda m: "{tags}" if (m.group(1) or m.group(2)) == "top" else m.group(0), pattern
        )
    subject = _fill(pattern, facts, lang)
    names = len(facts.tags)
    uses = {m.group(1) or m.group(2) for m in _PLACEHOLDER.finditer(pattern)}
    if len(subject) > limit and "tags" in uses and names > 1:
        for shown in range(names - 1, 0, -1):
            facts = replace(facts, shown_tags=shown)
            subject = _fill(pattern, facts, lang)
            if len(subject) <= limit:
                break
    if len(subject) > limit and "top" in uses and facts.top:
        over = len(subject) - limit
        room = max(len(facts.top) - over, MIN_TOP)
        subject = _fill(pattern, replace(facts, top=shorten(facts.top, room)), lang)
    if not subject:
        subject = _fill("{list} — {date}", facts, lang) or facts.list_title
    return subject or lang.gettext("Daily digest")


@jinja2.pass_context
def subject_line(context: Mapping[str, Any], pattern: str) -> str:
    """Template global for ``subject.txt``: fill ``pattern`` from the render context, which
    carries either ``facts`` (a ``SubjectFacts``) or the plain values ``top``, ``tags``,
    ``date``, ``list``, ``site``, ``frequency`` and ``count``."""
    lang = context_language(context)
    facts = context.get("facts")
    if not isinstance(facts, SubjectFacts):
        tags = context.get("tags") or ()
        facts = SubjectFacts(
            top=str(context.get("top") or ""),
            tags=(tags,) if isinstance(tags, str) else tuple(tags),
            date=str(context.get("date") or ""),
            list_title=str(context.get("list") or ""),
            site=str(context.get("site") or ""),
            frequency=str(context.get("frequency") or ""),
            count=int(context.get("count") or 0),
        )
    return fill_subject(pattern, facts, lang)


def confirmation_subject(list_title: str, lang: Language) -> str:
    """The confirmation email's subject in the list's language (replaces
    ``confirmations.confirmation_subject``; the same words as the email's heading)."""
    return lang.gettext("Confirm your subscription to %(title)s") % {"title": list_title}


def reminder(subject: str, lang: Language) -> str:
    """A reminder's subject: the confirmation's, marked as a reminder, in the list's language."""
    return lang.gettext("Reminder: %(subject)s") % {"subject": subject}


def welcome_subject(list_title: str, lang: Language) -> str:
    """The welcome email's subject when the list's welcome template sets none."""
    return lang.gettext("Welcome to %(title)s") % {"title": list_title}
