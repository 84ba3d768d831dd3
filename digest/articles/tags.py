"""Tag names and keys. A tag's key is what makes two spellings one tag ("Kenya", "kenya " and
"KENYA"); its display name keeps the spelling first seen."""

from __future__ import annotations

import re
import unicodedata

_SPACE = re.compile(r"\s+")


def tag_key(name: str) -> str:
    """The normalised key of a tag: NFKC, trimmed, case-folded, inner whitespace collapsed."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", name)).strip().casefold()


def clean_tag_name(name: str) -> str:
    """Display form of a tag: trimmed, whitespace collapsed, control characters removed."""
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C" or ch in " \t")
    return _SPACE.sub(" ", name).strip()


_TAG_NAMES: dict[str, tuple[str, str]] = {}


def tag_of(name: str) -> tuple[str, str]:
    """(key, display name) of a tag as written in a source; the same few tags recur on every
    entry, so they are worked out once per process."""
    found = _TAG_NAMES.get(name)
    if found is None:
        if len(_TAG_NAMES) > 10_000:
            _TAG_NAMES.clear()
        found = _TAG_NAMES[name] = (tag_key(name), clean_tag_name(name))
    return found
