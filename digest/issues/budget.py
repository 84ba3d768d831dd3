"""The size budget of a digest's HTML part: which stories to show, in full or shortened, and
which sections to fold, so that the encoded part stays under the budget (Gmail clips an HTML
part past ~102 KB and hides the rest, unsubscribe link included, behind "View entire message").

A pure function over measured sizes: ``plan(sections, fixed=..., fold_block=..., limit=...)``.
Sizes are encoded bytes as sent (see ``compose.py`` for how they are measured). The plan
degrades in this order, each step only as far as needed:

1. shorter excerpts, from the last-ranked stories up (a section's first story keeps its full
   excerpt);
2. fewer stories per section: the last-ranked stories go first, so sections shrink evenly, and a
   section that loses stories gets an "N more" row; every section keeps its first story;
3. whole sections fold, from the end of the section order (the list's tag order is the
   editors' order of importance), into one "More in: Tag A (4), Tag B (2), ..." block; a folded
   section shows nothing, so it never has an "N more" row;
4. if even the block is too long, it names the first folded sections and counts the rest
   ("and 12 more topics").

Whatever room is left after a step is given back: dropped stories return (shortened) and
shortened excerpts grow back, first ranks first, while they fit. A plan that cannot fit (the
fixed parts alone are over the limit) says so with ``fits=False``: the caller must not send it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class StoryCost:
    """Encoded bytes of one story, with its full and with its shortened excerpt."""

    full: int
    short: int


@dataclass(frozen=True)
class SectionCost:
    """Encoded bytes of one section's parts, stories in display order (newest first)."""

    header: int  # the section's heading
    stories: tuple[StoryCost, ...]
    more_row: int  # the "N more ... stories" row, when stories are cut
    fold_entry: int  # its entry in the "More in" block, when folded


@dataclass(frozen=True)
class SectionPlan:
    shown: int  # stories shown; 0 when folded
    full: int  # of which the first ``full`` have their full excerpt, the others a short one
    folded: bool

    def short(self, rank: int) -> bool:
        """Whether the story at ``rank`` (0 = first) shows its shortened excerpt."""
        return rank >= self.full


@dataclass(frozen=True)
class Plan:
    sections: tuple[SectionPlan, ...]
    listed_folds: int  # folded sections named in the "More in" block; the rest are counted
    size: int  # estimated encoded bytes of the whole part
    limit: int
    fits: bool

    @property
    def folded(self) -> int:
        return sum(1 for s in self.sections if s.folded)

    @property
    def shortened(self) -> int:
        return sum(s.shown - min(s.full, s.shown) for s in self.sections)


class _State:
    """The plan being built, with its size kept up to date section by section (a plan of 400
    sections x 10 stories changes thousands of times; recounting everything each time would
    be quadratic)."""

    def __init__(self, sections: Sequence[SectionCost], fixed: int, fold_block: int):
        self.costs = sections
        self.fixed = fixed
        self.fold_block = fold_block
        self.shown = [len(s.stories) for s in sections]
        self.full = [len(s.stories) for s in sections]
        self.folded = [not s.stories for s in sections]  # nothing to show: never a section
        self.listed = len(sections)  # how many folded sections the block names
        self.sizes = [self._section_size(i) for i in range(len(sections))]
        self.sections_total = sum(self.sizes)
        self.fold_total = self._fold_size()

    def _section_size(self, i: int) -> int:
        if self.folded[i]:
            return 0
        cost = self.costs[i]
        stories = cost.stories[: self.shown[i]]
        size = cost.header + sum(
            s.full if rank < self.full[i] else s.short for rank, s in enumerate(stories)
        )
        return size + (cost.more_row if self.shown[i] < len(cost.stories) else 0)

    def _fold_size(self) -> int:
        folded = [i for i, f in enumerate(self.folded) if f and self.costs[i].stories]
        if not folded:
            return 0
        named = folded[: self.listed]
        size = self.fold_block + sum(self.costs[i].fold_entry for i in named)
        if len(named) < len(folded):  # "and N more topics": about one entry's worth
            size += max(self.costs[i].fold_entry for i in folded)
        return size

    def changed(self, i: int, *, folding: bool = False) -> None:
        """Section ``i`` changed: update the total."""
        new = self._section_size(i)
        self.sections_total += new - self.sizes[i]
        self.sizes[i] = new
        if folding:
            self.fold_total = self._fold_size()

    def set_listed(self, listed: int) -> None:
        self.listed = listed
        self.fold_total = self._fold_size()

    def size(self) -> int:
        return self.fixed + self.sections_total + self.fold_total


def _lower_ranks_first(sections: Sequence[SectionCost]) -> list[tuple[int, int]]:
    """(section, rank) of every story but each section's first, last-ranked first and, within a
    rank, later sections first: the order in which stories lose their room."""
    pairs = [(i, r) for i, s in enumerate(sections) for r in range(1, len(s.stories))]
    return sorted(pairs, key=lambda p: (-p[1], -p[0]))


def plan(sections: Sequence[SectionCost], *, fixed: int, fold_block: int, limit: int) -> Plan:
    """Choose what a digest shows within ``limit`` bytes (see the module docstring).
    ``fixed``: everything outside the sections (head, masthead, footer, the room kept for the
    recipient's values); ``fold_block``: the "More in" block without its entries."""
    state = _State(sections, fixed, fold_block)
    order = _lower_ranks_first(sections)

    def done() -> bool:
        return state.size() <= limit

    # 1. Shorter excerpts, last ranks first.
    for i, rank in order:
        if done():
            break
        state.full[i] = min(state.full[i], rank)
        state.changed(i)
    # 2. Fewer stories: drop the last-ranked; each section keeps its first.
    for i, rank in order:
        if done():
            break
        state.shown[i] = min(state.shown[i], rank)
        state.changed(i)
    # 3. Fold whole sections, from the end of the order.
    for i in reversed(range(len(sections))):
        if done():
            break
        state.folded[i] = True
        state.changed(i, folding=True)
    # 4. Name fewer folded sections in the block.
    named = sum(1 for i, s in enumerate(sections) if state.folded[i] and s.stories)
    state.set_listed(named)
    while not done() and state.listed > 0:
        state.set_listed(state.listed - 1)
    _give_back(state, order, limit)
    return Plan(
        sections=tuple(
            SectionPlan(
                shown=0 if state.folded[i] else state.shown[i],
                full=0 if state.folded[i] else min(state.full[i], state.shown[i]),
                folded=state.folded[i],
            )
            for i in range(len(sections))
        ),
        listed_folds=min(state.listed, named),
        size=state.size(),
        limit=limit,
        fits=state.size() <= limit,
    )


def _give_back(state: _State, order: list[tuple[int, int]], limit: int) -> None:
    """Spend what room is left: dropped stories come back shortened, then shortened excerpts
    grow back to full, first ranks and first sections first. Folded sections stay folded (an
    unfolded section would need its first story in full: step 3 showed it does not fit)."""
    for i, rank in reversed(order):
        if state.folded[i] or state.shown[i] != rank:
            continue
        state.shown[i] = rank + 1
        state.changed(i)
        if state.size() > limit:
            state.shown[i] = rank
            state.changed(i)
    for i, rank in reversed(order):
        if state.folded[i] or state.full[i] != rank or rank >= state.shown[i]:
            continue
        state.full[i] = rank + 1
        state.changed(i)
        if state.size() > limit:
            state.full[i] = rank
            state.changed(i)
