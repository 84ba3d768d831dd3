"""Plain-text layout by display width: wrapping the text part at 78 columns where a CJK
character takes two columns (Unicode East Asian Width ``W``/``F``, UAX #11) and a combining mark
none, breaking between CJK characters (they have no spaces) but never inside a word or a URL.

A line may break between two words (at a space) or next to a wide character, except before a
closing mark or small kana that may not start a line and after an opening bracket that may not end
one (the basic Japanese *kinsoku* rules, JIS X 4051). Text with no wide or zero-width character
takes the fast path through ``textwrap``, which then counts the same.
"""

from __future__ import annotations

import re
import textwrap
import unicodedata

# Characters that may not start a line (closing punctuation, prolonged sound mark, small kana)
# and that may not end one (opening brackets), in Chinese and Japanese text.
NO_LINE_START = frozenset(
    "、。，．,.・：；:;？！?!ー〜～）)］]｝}〕〉》」』】〙〗〟’”ゝゞ々"
    "ぁぃぅぇぉっゃゅょゎゕゖァィゥェォッャュョヮヵヶㇰㇱㇲㇳㇴㇵㇶㇷㇸㇹㇺㇻㇼㇽㇾㇿ"
)
NO_LINE_END = frozenset("（(［[｛{〔〈《「『【〘〖〝‘“")

# Wide (W/F) blocks and zero-width characters: if none occurs, len() is the display width.
_NOT_ONE_COLUMN = re.compile(
    "[\u0300-\u036f\u0483-\u0489\u0591-\u05bd\u0610-\u061a\u064b-\u065f\u0e31-\u0e3a"
    "\u0e47-\u0e4e\u1100-\u115f\u200b-\u200f\u20d0-\u20ff\u2e80-\u303e\u3041-\u33ff"
    "\u3400-\u4dbf\u4e00-\u9fff\ua000-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe00-\ufe0f"
    "\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6\U0001f300-\U0001f64f\U0001f900-\U0001f9ff"
    "\U00020000-\U0003fffd]"
)


def char_width(ch: str) -> int:
    """Columns a character takes in a terminal or a monospaced mail reader."""
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def display_width(text: str) -> int:
    """Columns ``text`` takes (a CJK character counts two)."""
    if not _NOT_ONE_COLUMN.search(text):
        return len(text)
    return sum(char_width(ch) for ch in text)


def _tokens(text: str) -> list[tuple[str, bool]]:
    """(token, preceded by a space): runs of narrow characters, and each wide one alone."""
    out: list[tuple[str, bool]] = []
    for word in text.split(" "):
        space = True
        run = ""
        for ch in word:
            if char_width(ch) == 2:
                if run:
                    out.append((run, space))
                    space, run = False, ""
                out.append((ch, space))
                space = False
            else:
                run += ch
        if run:
            out.append((run, space))
    return out


def _breakable(before: str, after: str, space: bool) -> bool:
    if after[0] in NO_LINE_START or before[-1] in NO_LINE_END:
        return False
    return space or display_width(before[-1]) == 2 or display_width(after[0]) == 2


def wrap(text: str, width: int = 78, indent: str = "", subsequent: str | None = None) -> str:
    """Wrap at ``width`` display columns without breaking words or URLs (a long URL keeps its
    line); same signature as the template filter it replaces."""
    text = " ".join(str(text).split())
    subsequent = indent if subsequent is None else subsequent
    if not _NOT_ONE_COLUMN.search(text + indent + subsequent):
        return textwrap.fill(
            text,
            width=width,
            initial_indent=indent,
            subsequent_indent=subsequent,
            break_long_words=False,
            break_on_hyphens=False,
        )
    # Glue tokens that may not be separated into units, each remembering whether a space
    # came before it.
    units: list[tuple[str, bool]] = []
    for token, space in _tokens(text):
        if units and not _breakable(units[-1][0], token, space):
            previous, before = units[-1]
            units[-1] = (previous + (" " if space else "") + token, before)
        else:
            units.append((token, space))
    lines: list[str] = []
    line, used, fresh = indent, display_width(indent), True
    for unit, space in units:
        gap = " " if space and not fresh else ""
        size = display_width(unit)
        if not fresh and used + len(gap) + size > width:
            lines.append(line)
            line, used, fresh = subsequent, display_width(subsequent), True
            gap = ""
        line += gap + unit
        used += len(gap) + size
        fresh = False
    if not fresh:
        lines.append(line)
    return "\n".join(lines)
