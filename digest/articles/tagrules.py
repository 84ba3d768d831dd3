"""Tag rules: editors tag what feeds don't ("articles whose title says Haïti get the tag Haiti").
A ``Rule`` adds one tag to an article when its pattern matches one field of it (title, text,
url, author or source), optionally only for articles from one feed. A ``RuleSet`` compiles
rules once and applies them to an article's fields; ``rule_changes`` works out what
``digest tags apply`` changes on stored articles. Pure: nothing here touches the database.

Matching:

- A keyword rule matches whole words, case-insensitively (Unicode case folding:
  ``Haïti`` matches ``HAÏTI`` and ``haïti``), in NFC or NFD text alike. Accents count:
  ``Haiti`` does not match ``Haïti`` (add a rule for each spelling). A word boundary is the start
  or end of the field or a space, punctuation or symbol character; letters, digits, combining
  marks and ``_`` are word characters. So ``Kenya`` matches ``Kenya's`` and ``Kenya-based``
  but not ``Kenyan``; a trailing ``*`` makes a prefix (``Kenya*`` matches ``Kenyan`` and
  ``Kenyans``). Inner whitespace matches any run of whitespace; ``'`` matches ``’`` and ``-``
  matches the Unicode hyphens.
- A regex rule is an RE2 expression, case-insensitive unless it says ``(?-i)``. RE2 runs in time
  linear in the text whatever the pattern, so no rule can make ingest hang on catastrophic
  backtracking (Python's ``re`` takes exponential time on ``(a+)+$``); the price is no
  backreferences and no lookaround, which an invalid-rule error names. RE2's ``\\b`` knows only
  ASCII letters; a ``\\b`` next to a non-ASCII letter is refused with a pointer to keyword rules.

Speed: every rule of a field goes into one ``re2.Set``, which scans the field once however many
rules there are (``bench/tagrules.py`` measures the cost per article against sanitising it). A
keyword goes into the Set without its word boundaries: the boundary classes are large Unicode
classes, and compiling them made up nearly all of a rule set's build time (~2 ms a rule; 50 rules
took longer to compile than a 1,000-article ingest takes to match them). When a keyword's words
are found, the boundaries are checked around each place they occur (``_Boundaries``), which is
rare: most articles match few keywords.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import re2  # type: ignore[import-untyped]

from ..errors import InvalidInput
from .tagging import Tag, make_tag

MAX_PATTERN_CHARS = 500
# RE2's memory budget per compiled Set. A Set that does not fit fails to compile (an error
# here, not a silent miss at match time); 64 MB holds several hundred keyword rules.
MAX_MEM = 64 << 20

# Word boundary characters: punctuation except connector punctuation (``_`` is Pc, a word
# character as in Python's \w), symbols, separators, control and format characters. Listing
# the separators rather than negating letters/digits/marks makes the Set ~2x cheaper to compile
# (\pL alone is ~650 ranges) with the same matches on real text.
_SEPARATOR = r"[\p{Pd}\p{Ps}\p{Pe}\p{Pi}\p{Pf}\p{Po}\pS\pZ\p{Cc}\p{Cf}]"
_BEFORE = rf"(?:^|{_SEPARATOR})"
_AFTER = rf"(?:$|{_SEPARATOR})"
_APOSTROPHES = "'\u2019\u2018\u02bc"
_HYPHENS = "-\u2010\u2011"
_NON_ASCII_WORD_BOUNDARY = re.compile(r"\\b(?=[^\x00-\x7f])|(?<=[^\x00-\x7f])\\b")


class RuleField(StrEnum):
    """The article field a rule looks at."""

    TITLE = "title"
    TEXT = "text"  # the stored plain text of the article
    URL = "url"
    AUTHOR = "author"
    SOURCE = "source"  # the feed URL or file the article was ingested from


class InvalidRule(InvalidInput):
    """A rule that cannot be used: empty, too long, or a regex RE2 cannot compile."""


@dataclass(frozen=True, slots=True)
class Rule:
    """Add the tag ``tag`` (display name) to articles whose ``field`` matches ``pattern``;
    only articles ingested from ``feed`` if given. ``key`` is the stored key of the tag when it
    is not ``store.tag_key(tag)`` (a tag keyed by an Atom term, or renamed): rules loaded from
    the database should pass ``tags.key``. Validated when created: an invalid rule raises
    ``InvalidRule`` with the position of the problem."""

    tag: str
    pattern: str
    field: RuleField = RuleField.TITLE
    feed: str | None = None
    regex: bool = False
    key: str | None = None

    def __post_init__(self) -> None:
        tag = make_tag(self.tag, self.key)
        if tag is None:
            raise InvalidRule(f"rule tag {self.tag!r} is empty or too long")
        try:
            fld = RuleField(self.field)
        except ValueError:
            names = ", ".join(f.value for f in RuleField)
            raise InvalidRule(f"unknown rule field {self.field!r} (use one of: {names})") from None
        pattern = self.pattern.strip()
        if not pattern:
            raise InvalidRule("rule pattern is empty")
        if len(pattern) > MAX_PATTERN_CHARS:
            raise InvalidRule(
                f"rule pattern is {len(pattern)} characters; at most {MAX_PATTERN_CHARS}"
            )
        feed = feed_key(self.feed) if self.feed and self.feed.strip() else None
        object.__setattr__(self, "tag", tag.name)
        object.__setattr__(self, "key", tag.key)
        object.__setattr__(self, "pattern", pattern)
        object.__setattr__(self, "field", fld)
        object.__setattr__(self, "feed", feed)
        expression = self.expression  # a bad keyword or \\b raises here
        if self.regex:
            _check_regex(expression, pattern)

    @property
    def tag_key(self) -> str:
        assert self.key is not None  # set in __post_init__
        return self.key

    @property
    def expression(self) -> str:
        """The RE2 expression this rule compiles to."""
        return regex_pattern(self.pattern) if self.regex else keyword_pattern(self.pattern)

    def describe(self) -> str:
        """One line for ``digest tags rule list``."""
        kind = "regex" if self.regex else "keyword"
        scope = f" in {self.feed}" if self.feed else ""
        return f"{self.tag} <- {self.field.value} {kind} {self.pattern!r}{scope}"


def keyword_pattern(keyword: str) -> str:
    """The RE2 expression of a keyword rule (see the module docstring)."""
    body, before, after = keyword_parts(keyword)
    return f"(?i){_BEFORE if before else ''}{body.removeprefix('(?i)')}{_AFTER if after else ''}"


def keyword_parts(keyword: str) -> tuple[str, bool, bool]:
    """A keyword rule as (the RE2 expression of its words, whether a word boundary must come
    before them, whether one must come after them)."""
    keyword = " ".join(unicodedata.normalize("NFC", keyword).split())
    prefix = keyword.endswith("*")
    if prefix:
        keyword = keyword[:-1].rstrip()
    if not keyword:
        raise InvalidRule("a keyword rule needs a word before '*'")
    parts: list[str] = []
    for ch in keyword:
        if ch == " ":
            parts.append(r"\s+")
        elif ch in _APOSTROPHES:
            parts.append(f"[{_APOSTROPHES}]")
        elif ch in _HYPHENS:
            parts.append(f"[{_HYPHENS}]")
        else:
            decomposed = unicodedata.normalize("NFD", ch)
            # Text in NFD (macOS, some CMSs) spells "ï" as "i" + U+0308: match both forms
            # here rather than normalising every article at ingest.
            parts.append(f"(?:{ch}|{re.escape(decomposed)})" if decomposed != ch else re.escape(ch))
    before = _is_word_char(keyword[0])
    after = _is_word_char(keyword[-1]) and not prefix
    return f"(?i){''.join(parts)}", before, after


def regex_pattern(pattern: str) -> str:
    """The RE2 expression of a regex rule: the pattern, case-insensitive by default."""
    m = _NON_ASCII_WORD_BOUNDARY.search(pattern)
    if m:
        raise InvalidRule(
            f"regex {pattern!r}, column {m.start() + 1}: \\b only knows ASCII letters in rules"
            " (RE2), so it never matches next to a non-ASCII letter; use a keyword rule, which"
            " matches whole words in any script"
        )
    return f"(?i){pattern}"


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_" or unicodedata.category(ch).startswith("M")


# The general categories of _SEPARATOR: the characters a word boundary may be.
_SEPARATOR_CATEGORIES = frozenset(
    {"Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf"}
)


def _is_separator(ch: str) -> bool:
    return unicodedata.category(ch) in _SEPARATOR_CATEGORIES


class _Boundaries:
    """The word-boundary check of one keyword whose words a ``re2.Set`` found: is there a place
    where they occur with a separator (or the start or end of the field) before and after, as
    ``keyword_pattern`` requires? Works on the field's UTF-8 bytes, searching from every place
    the words start (overlapping places too: ``a-a`` in ``xa-a-a``). The words' own expression
    is compiled on first use (~0.05 ms)."""

    __slots__ = ("body", "before", "after", "_regex")

    def __init__(self, body: str, before: bool, after: bool):
        self.body = body
        self.before = before
        self.after = after
        self._regex: Any = None

    def found(self, data: bytes) -> bool:
        if self._regex is None:
            self._regex = re2.compile(self.body.encode("utf-8"), _options())
        pos = 0
        while (m := self._regex.search(data, pos)) is not None:
            start, end = m.span()  # byte offsets: data is bytes
            if (not self.before or _separator_before(data, start)) and (
                not self.after or _separator_after(data, end)
            ):
                return True
            pos = start + 1
        return False


def _separator_before(data: bytes, i: int) -> bool:
    if i == 0:
        return True
    j = i - 1
    while j > 0 and i - j < 4 and 0x80 <= data[j] < 0xC0:  # UTF-8 continuation bytes
        j -= 1
    return _is_separator(data[j:i].decode("utf-8", "replace")[-1])


def _separator_after(data: bytes, i: int) -> bool:
    if i >= len(data):
        return True
    lead = data[i]
    size = 1 if lead < 0xC0 else 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
    return _is_separator(data[i : i + size].decode("utf-8", "replace")[0])


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # errors become InvalidRule, not lines on stderr
    options.max_mem = MAX_MEM
    return options


def _check_regex(expression: str, pattern: str) -> None:
    try:
        re2.compile(expression, _options())
    except re2.error as e:
        raise InvalidRule(_re2_message(pattern, e)) from None


def _re2_message(pattern: str, error: BaseException) -> str:
    raw = error.args[0] if error.args else str(error)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    # RE2 says what is wrong and quotes the offending part: "missing ): (abc".
    what, _, fragment = text.partition(": ")
    fragment = fragment.removeprefix("(?i)")  # RE2 quotes the expression, flags included
    if what in ("missing )", "unexpected )"):
        where = _unbalanced_paren(pattern)  # RE2 quotes the whole pattern for these
    else:
        where = pattern.find(fragment) if fragment else -1
    column = f", column {where + 1}" if where >= 0 else ""
    hint = ""
    if "perl operator" in what or ("escape sequence" in what and re.search(r"\\\d", fragment)):
        hint = " (rules use RE2: no lookaround, no backreferences)"
    return f"regex {pattern!r}{column}: {what}{hint}"


def _unbalanced_paren(pattern: str) -> int:
    """Index of the first ')' without an opening one, else of the last '(' left open."""
    opened: list[int] = []
    i, in_class = 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            if pattern.startswith("]", i + 1) or pattern.startswith("^]", i + 1):
                i += 2 if pattern[i + 1] == "]" else 3  # a leading ']' is a literal
                continue
        elif ch == "(":
            opened.append(i)
        elif ch == ")":
            if not opened:
                return i
            opened.pop()
        i += 1
    return opened[-1] if opened else -1


@lru_cache(maxsize=256)
def feed_key(url: str) -> str:
    """The form in which a rule's feed and an article's source are compared: trimmed,
    lower-case scheme and host, no trailing slash."""
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.scheme or not parts.netloc:
        return url
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, parts.query, ""))


# ---------------------------------------------------------------------------- applying


@dataclass(frozen=True, slots=True)
class ArticleFields:
    """What rules look at in one article: the stored title and plain text, the link, the
    author and the source it was ingested from (feed URL or file path)."""

    title: str = ""
    text: str = ""
    url: str | None = None
    author: str | None = None
    source: str | None = None


@dataclass(slots=True)
class _FieldMatcher:
    name: str  # the ArticleFields attribute
    patterns: re2.Set
    # Per Set index: (tag key, feed key or None) of each rule with that expression.
    targets: list[list[tuple[str, str | None]]]
    # Per Set index: the boundaries still to check when the Set matched (keywords), or None.
    checks: list[_Boundaries | None]


class RuleSet:
    """Rules compiled for matching: one ``re2.Set`` per field, scanning the field once for all
    of its rules. Build it once per ingest (50 keyword rules compile in ~1 ms); ``apply`` is
    thread-safe."""

    def __init__(self, rules: Iterable[Rule] = ()):
        self.rules: tuple[Rule, ...] = tuple(rules)
        self.tags: dict[str, Tag] = {}  # tag key -> tag, the first rule's spelling
        # Per field: the Set's expressions, each with its check and the rules it stands for.
        matchers: dict[RuleField, dict[tuple[str, bool, bool], list[tuple[str, str | None]]]] = {}
        for rule in self.rules:
            tag = Tag(rule.tag_key, rule.tag)
            self.tags.setdefault(tag.key, tag)
            entry = (rule.expression, False, False)
            if not rule.regex:
                entry = keyword_parts(rule.pattern)
            matchers.setdefault(rule.field, {}).setdefault(entry, []).append((tag.key, rule.feed))
        self._matchers: list[_FieldMatcher] = []
        for fld, by_expression in matchers.items():
            patterns = re2.Set.SearchSet(_options())
            expressions = [expression for expression, _, _ in by_expression]
            targets = list(by_expression.values())
            checks = [
                _Boundaries(expression, before, after) if before or after else None
                for expression, before, after in by_expression
            ]
            for expression in expressions:
                patterns.Add(expression)
            try:
                patterns.Compile()
            except re2.error:
                raise InvalidRule(
                    f"the {len(expressions)} {fld.value} rules together are too large to"
                    " compile; merge keywords into fewer regex rules or remove some"
                ) from None
            self._matchers.append(_FieldMatcher(fld.value, patterns, targets, checks))
        self._scoped = any(rule.feed for rule in self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def apply(self, article: ArticleFields) -> frozenset[str]:
        """The keys of the tags the rules give this article."""
        found: set[str] = set()
        source = feed_key(article.source) if self._scoped and article.source else None
        for matcher in self._matchers:
            value = getattr(article, matcher.name)
            if not value:
                continue
            # Encoded once for the Set and the boundary checks (the wrapper would encode a str
            # on every call).
            data = value.encode("utf-8")
            hits = matcher.patterns.Match(data)  # None when nothing matched
            if not hits:
                continue
            for index in hits:
                check = matcher.checks[index]
                if check is not None and not check.found(data):
                    continue
                for key, feed in matcher.targets[index]:
                    if feed is None or feed == source:
                        found.add(key)
        return frozenset(found)


# ---------------------------------------------------------------------------- stored articles


@dataclass(frozen=True, slots=True)
class StoredTagging:
    """A stored article as ``digest tags apply`` sees it: its fields, every tag key it has,
    and which of those rules added (``article_tags.origin = 'rule'``)."""

    article_id: int
    fields: ArticleFields
    tags: frozenset[str]
    rule_tags: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class TagChange:
    article_id: int
    added: frozenset[str]  # tag keys to insert with origin 'rule'
    removed: frozenset[str]  # rule-given tag keys no rule gives any more: delete


@dataclass(slots=True)
class RuleReport:
    """What applying the rules to stored articles changes, with counts for the CLI."""

    examined: int = 0
    changes: list[TagChange] = field(default_factory=list)
    added: Counter[str] = field(default_factory=Counter)  # tag key -> articles that gain it
    removed: Counter[str] = field(default_factory=Counter)  # tag key -> articles that lose it

    @property
    def changed(self) -> int:
        return len(self.changes)

    def summary_line(self, names: Mapping[str, str] | None = None) -> str:
        """``1,000 articles checked: 212 gain a tag (Haiti 120, Kenya 92), 3 lose one; 785
        unchanged``; ``names`` maps tag keys to display names."""
        names = names or {}

        def counts(c: Counter[str]) -> str:
            return ", ".join(f"{names.get(k, k)} {n:,}" for k, n in sorted(c.items()))

        gained = sum(1 for c in self.changes if c.added)
        lost = sum(1 for c in self.changes if c.removed)
        parts = [f"{self.examined:,} articles checked"]
        detail = []
        if gained:
            detail.append(f"{gained:,} gain a tag ({counts(self.added)})")
        if lost:
            detail.append(f"{lost:,} lose one ({counts(self.removed)})")
        line = parts[0] + (": " + ", ".join(detail) if detail else ": nothing to change")
        if detail:
            line += f"; {self.examined - self.changed:,} unchanged"
        return line


def rule_changes(articles: Iterable[StoredTagging], rules: RuleSet) -> RuleReport:
    """The tag changes that make stored articles carry exactly the rule tags ``rules`` give
    them: a tag a rule gives and the article lacks is added (as a rule tag); a rule tag no rule
    gives any more (the rule was removed or changed) is removed; tags from the source are never
    touched, and a tag the source already gave is not added again. Applying the result and
    running this again yields no changes (idempotent)."""
    report = RuleReport()
    for article in articles:
        report.examined += 1
        wanted = rules.apply(article.fields) if rules else frozenset()
        from_source = article.tags - article.rule_tags
        added = wanted - from_source - article.rule_tags
        removed = article.rule_tags - wanted
        if added or removed:
            report.changes.append(TagChange(article.article_id, added, removed))
            report.added.update(added)
            report.removed.update(removed)
    return report
