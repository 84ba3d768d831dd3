"""Subscriber CSV files: import into a list, export from it, and sync a folder of ``SLUG.csv``
files (each the wanted membership of list SLUG).

A file is read whole and checked before anything is written: a file that is not CSV text with an
``email`` header fails with nothing written; each bad row is reported with its physical line
number (the header is line 1) and the reason, and every valid row is applied. Rows are applied in
batches, each inside one ``BEGIN IMMEDIATE`` transaction, so a crash never leaves half a batch and
two imports into one database at once cannot interleave a read and a write. Applying a file twice
changes nothing the second time. The format is documented in ``subscribers/README.md``.

Exported cells are safe to open in a spreadsheet: a cell that would start with a formula
character gets a ``'`` in front (``neutralise_cell``, OWASP's CSV injection guidance), and the
import takes exactly that ``'`` off again (``restore_cell``), so an export imports back unchanged.

An export also carries each subscription's ``status``, ``created_at`` and ``confirmed_at``, and
importing it restores them: pending stays pending (whatever ``--confirmed`` says), an ended
status is kept (or ends a live subscription), and an ended or suppressed address is never
re-activated. Addresses are one per mailbox: ``Ann@example.com`` and ``ann@example.com`` on two
rows are a duplicate, and a row finds the stored subscriber in any letter case.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from pathlib import Path
from typing import TextIO

from sqlite_utils import Database

from ..addresses import fast_normalise, identity_key, normalise_email
from ..errors import DigestError, InvalidInput
from ..store import transaction
from ..text import CONTROL, CONTROL_BUT_LINE_ENDS
from ..timeutil import from_iso, to_iso
from .lists import MailingList, get_list
from .records import SubscriptionStatus
from .subscriptions import (
    BatchResult,
    Restore,
    Row,
    apply_batch,
    end_missing,
    iter_subscriptions,
    subscription_tags,
)

BASIC_COLUMNS = ("email", "name", "tags", "frequency")
# What an export adds so that importing it restores the same state.
STATE_COLUMNS = ("status", "created_at", "confirmed_at")
COLUMNS = BASIC_COLUMNS + STATE_COLUMNS
BATCH = 10_000

# Called inside each batch's write transaction with the subscriber ids that became pending, so
# that asking them to confirm is queued in the same transaction (``delivery.optin``).
AskPending = Callable[[Database, list[int]], None]

# OWASP "CSV Injection": spreadsheets read a cell starting with = + - @ TAB or CR as a formula,
# so a subscriber named =HYPERLINK(...) would run in the admin's spreadsheet. Such a cell is
# exported with a ' in front. Cells that already start with quotes before such a character get
# one more, so that the import can take exactly one off and every value round-trips.
_FORMULA = re.compile(r"'*[=+\-@\t\r]")


def neutralise_cell(value: str) -> str:
    """``value`` as an exported cell: with a ``'`` in front if it starts (after any ``'``) with
    ``=``, ``+``, ``-``, ``@``, a tab or a carriage return; otherwise unchanged."""
    if value[:1] in ("=", "+", "-", "@", "\t", "\r", "'") and _FORMULA.match(value):
        return "'" + value
    return value


def restore_cell(value: str) -> str:
    """The inverse of ``neutralise_cell``: ``'=x`` -> ``=x``, ``''=x`` -> ``'=x``; a cell that
    ``neutralise_cell`` cannot have written (``'Tis``) is unchanged."""
    if value[:1] == "'" and _FORMULA.match(value, 1):
        return value[1:]
    return value


@dataclass(frozen=True)
class Problem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


@dataclass
class ParsedFile:
    path: str
    rows: list[Row] = field(default_factory=list)
    rejected: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seen: set[str] = field(
        default_factory=set
    )  # identity of every address named, even on a bad row
    restore: dict[int, Restore] = field(default_factory=dict)  # line -> exported state, if any


@dataclass
class Report:
    """What an import or sync did (or, with dry_run, would do) to one list."""

    list_slug: str
    path: str
    dry_run: bool = False
    added: list[str] = field(default_factory=list)
    activated: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)  # a row's ended status ended it
    unchanged: int = 0
    asked: int = 0  # subscribers who became pending (a confirmation email is theirs to get)
    removed: list[str] = field(default_factory=list)  # sync: unsubscribed, left the file
    skipped: list[Problem] = field(default_factory=list)  # ended or suppressed: not re-activated
    rejected: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.rejected

    def summary(self) -> str:
        verb = "would be " if self.dry_run else ""
        parts = [
            f"{len(self.added)} {verb}added",
            f"{len(self.activated)} {verb}activated",
            f"{len(self.updated)} {verb}updated",
            f"{self.unchanged} unchanged",
        ]
        if self.stopped:
            parts.append(f"{len(self.stopped)} {verb}stopped")
        if self.removed:
            parts.append(f"{len(self.removed)} {verb}unsubscribed")
        parts += [f"{len(self.skipped)} skipped", f"{len(self.rejected)} rejected"]
        return f"{self.path} -> {self.list_slug}: " + ", ".join(parts)


# -- Reading --------------------------------------------------------------------------------


def _decode(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InvalidInput(f"{path}: file not found") from None
    except IsADirectoryError:
        raise InvalidInput(f"{path}: is a directory, not a CSV file") from None
    nul = data.find(b"\x00")
    if nul != -1:
        raise InvalidInput(
            f"{path}: not a CSV text file (binary data at byte {nul}); nothing imported"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InvalidInput(
            f"{path}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); "
            "save the file as UTF-8 CSV; nothing imported"
        ) from None


def parse_csv(path: str | Path, mlist: MailingList) -> ParsedFile:
    """Read and check a subscriber CSV for ``mlist``. Raises ``InvalidInput`` if the file as a
    whole is unusable; otherwise returns the valid rows and a problem per bad row."""
    path = Path(path)
    text = _decode(path)
    parsed = ParsedFile(str(path))
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as e:
        raise InvalidInput(f"{path}: line 1: not a CSV header ({e}); nothing imported") from None
    if not header or not any(h.strip() for h in header):
        raise InvalidInput(f"{path}: empty file; expected a header line such as 'email,name'")
    names = [h.strip().lower() for h in header]
    if "email" not in names:
        shown = ", ".join(repr(h) for h in header[:5])
        raise InvalidInput(
            f"{path}: line 1 must be a header naming the columns, with at least 'email' "
            f"(found {shown}); nothing imported"
        )
    for column in set(names):
        if column and names.count(column) > 1 and column in COLUMNS:
            raise InvalidInput(f"{path}: line 1: column {column!r} appears twice; nothing imported")
    unknown = [h for h, n in zip(header, names, strict=True) if n not in COLUMNS]
    if unknown:
        parsed.warnings.append(
            f"{path}: ignoring unknown column(s) {', '.join(repr(u) for u in unknown)} "
            f"(known: {', '.join(COLUMNS)})"
        )
    i_email = names.index("email")
    i_name = names.index("name") if "name" in names else None
    i_tags = names.index("tags") if "tags" in names else None
    i_freq = names.index("frequency") if "frequency" in names else None
    state = [names.index(c) if c in names else None for c in STATE_COLUMNS]
    has_state = any(i is not None for i in state)
    width = len(names)
    first_line: dict[str, int] = {}
    tag_cache: dict[str, str] = {}
    control = CONTROL.search
    # One scan of the whole file instead of one per field: without control characters other
    # than line ends, only a row spanning several lines (a quoted CR or LF) can have one.
    check_every_row = CONTROL_BUT_LINE_ENDS.search(text) is not None
    fast = fast_normalise
    ikey = identity_key
    offered = {str(f) for f in mlist.frequencies}
    prev = 1  # reader.line_num after the previous row: a row starts on the line after it
    rows = parsed.rows
    try:
        for cells in reader:
            line, prev = prev + 1, reader.line_num
            if len(cells) != width:
                if not cells or (len(cells) == 1 and not cells[0].strip()):
                    continue  # blank line
                parsed.rejected.append(
                    Problem(line, f"{len(cells)} fields, but the header has {width}")
                )
                _note_address(parsed, cells, i_email)
                continue
            try:
                if check_every_row or prev != line:
                    bad = next((c for c in cells if control(c)), None)
                    if bad is not None:
                        raise InvalidInput(
                            f"field {bad!r} contains a line break or control character"
                        )
                raw = cells[i_email]
                if raw[:1] == "'":
                    raw = restore_cell(raw)
                email = fast(raw.strip(" ")) or normalise_email(raw)
                # One mailbox per identity: the address lower-cased.
                identity = ikey(email)
                if identity in first_line:
                    raise InvalidInput(
                        f"duplicate address {email} (first on line {first_line[identity]})"
                    )
                first_line[identity] = line
                name: str | None = None
                if i_name is not None:
                    name = cells[i_name]
                    if name[:1] == "'":
                        name = restore_cell(name)
                    name = name.strip() or None
                    if name and "  " in name:
                        name = " ".join(name.split())
                tags = None
                if i_tags is not None:
                    raw = cells[i_tags]
                    tags = tag_cache.get(raw)
                    if tags is None:
                        keys = subscription_tags(mlist, restore_cell(raw).split(";"))
                        tags = tag_cache[raw] = json.dumps(keys, ensure_ascii=False)
                freq = None
                if i_freq is not None:
                    freq = cells[i_freq]
                    if freq not in offered:
                        freq = mlist.offered_frequency(freq) if freq.strip() else None
                if has_state:
                    kept = _restore([cells[i] if i is not None else "" for i in state])
                    if kept is not None:
                        parsed.restore[line] = kept
            except InvalidInput as e:
                parsed.rejected.append(Problem(line, str(e)))
                _note_address(parsed, cells, i_email)
                continue
            rows.append((line, email, identity, name, tags, freq))
    except csv.Error as e:
        raise InvalidInput(
            f"{path}: line {reader.line_num}: not valid CSV ({e}); nothing imported"
        ) from None
    parsed.seen.update(first_line)
    return parsed


def _restore(cells: list[str]) -> Restore | None:
    """The exported state of a row (status, created_at, confirmed_at), checked; None when all
    three cells are empty."""
    status, created, confirmed = (restore_cell(c).strip() for c in cells)
    if not (status or created or confirmed):
        return None
    kept_status = None
    if status:
        try:
            kept_status = SubscriptionStatus(status.lower())
        except ValueError:
            known = ", ".join(SubscriptionStatus)
            raise InvalidInput(f"unknown status {status!r} (one of {known})") from None
    return Restore(kept_status, _time(created, "created_at"), _time(confirmed, "confirmed_at"))


def _time(value: str, column: str) -> str | None:
    if not value:
        return None
    try:
        return to_iso(from_iso(value))
    except ValueError:
        raise InvalidInput(
            f"{column} {value!r} is not a date and time (e.g. 2025-01-21T07:00:00+00:00)"
        ) from None


def _note_address(parsed: ParsedFile, cells: list[str], i_email: int) -> None:
    # A bad row still names an address that is meant to stay: sync must not unsubscribe it.
    if i_email < len(cells):
        with contextlib.suppress(InvalidInput):
            parsed.seen.add(identity_key(normalise_email(restore_cell(cells[i_email]))))


# -- Applying -------------------------------------------------------------------------------


def apply_rows(
    db: Database,
    mlist: MailingList,
    parsed: ParsedFile,
    *,
    confirmed: bool,
    dry_run: bool,
    source: str,
    now: datetime,
    progress: Callable[[int], None] | None = None,
    ask: AskPending | None = None,
) -> Report:
    """Apply a parsed file to ``mlist`` in batches, each in one transaction (none with
    ``dry_run``). ``ask`` is called inside each batch's transaction with the subscribers who
    became pending in it."""
    report = Report(mlist.slug, parsed.path, dry_run=dry_run)
    report.rejected = list(parsed.rejected)
    report.warnings = list(parsed.warnings)
    reason = f"{source} from {Path(parsed.path).name}"
    # In address order, new rows land at neighbouring places in the email and identity
    # indexes: far fewer pages touched per batch than in file order.
    rows = sorted(parsed.rows, key=itemgetter(2))
    result = BatchResult()
    restore = parsed.restore or None
    for start in range(0, len(rows), BATCH):
        batch = rows[start : start + BATCH]
        if dry_run:
            apply_batch(db, mlist, batch, result, confirmed=confirmed, source=source,
                        reason=reason, now=now, write=False, restore=restore)  # fmt: skip
        else:
            with transaction(db):
                asked = len(result.asked)
                apply_batch(db, mlist, batch, result, confirmed=confirmed, source=source,
                            reason=reason, now=now, write=True, restore=restore)  # fmt: skip
                if ask is not None and len(result.asked) > asked:
                    ask(db, result.asked[asked:])
        if progress:
            progress(len(batch))
    report.added, report.activated, report.updated = result.added, result.activated, result.updated
    report.stopped, report.asked = result.stopped, len(result.asked)
    report.unchanged = result.unchanged
    report.skipped = [Problem(line, why) for line, why in result.skipped]
    report.skipped.sort(key=lambda p: p.line)
    return report


def import_csv(
    db: Database,
    path: str | Path,
    list_slug: str,
    *,
    now: datetime,
    confirmed: bool = False,
    dry_run: bool = False,
    source: str = "import",
    progress: Callable[[int], None] | None = None,
    ask: AskPending | None = None,
) -> Report:
    """Import subscribers from a CSV file into a list. New addresses are ``pending`` (or
    ``active`` with ``confirmed``); existing pending/active ones get the file's name, tags and
    frequency; ended or suppressed addresses are skipped, never re-activated. (Asking the new
    pending people to confirm is ``delivery.optin.import_subscribers``.)"""
    mlist = get_list(db, list_slug)
    parsed = parse_csv(path, mlist)
    return apply_rows(db, mlist, parsed, confirmed=confirmed, dry_run=dry_run, source=source,
                      now=now, progress=progress, ask=ask)  # fmt: skip


# -- Export ---------------------------------------------------------------------------------


def write_csv(
    db: Database, list_slug: str, out: TextIO, *, statuses: tuple[str, ...] | None = None
) -> int:
    """Write the list's subscribers as CSV (the import format, with each subscription's
    status, created_at and confirmed_at), every cell neutralised against formula injection
    (``neutralise_cell``). ``statuses``: only these (None: every status, so that an import of
    the file restores ended subscriptions too). Returns the number of rows."""
    mlist = get_list(db, list_slug, include_deleted=True)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    n = 0
    for sub in iter_subscriptions(db, list_slug):
        if statuses is not None and sub.status not in statuses:
            continue
        cells = (sub.email, sub.name or "", ";".join(mlist.tag_names(sub.tags)), sub.frequency,
                 sub.status, sub.created_at, sub.confirmed_at or "")  # fmt: skip
        writer.writerow([neutralise_cell(c) for c in cells])
        n += 1
    return n


def export_csv(
    db: Database, list_slug: str, path: str | Path, *, statuses: tuple[str, ...] | None = None
) -> int:
    """Export to ``path`` atomically (a temporary file renamed into place)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            n = write_csv(db, list_slug, f, statuses=statuses)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n


# -- Sync -----------------------------------------------------------------------------------


def sync_files(directory: str | Path) -> list[Path]:
    directory = Path(directory)
    if not directory.is_dir():
        raise InvalidInput(f"{directory}: no such directory (expected a folder of SLUG.csv files)")
    return sorted(p for p in directory.iterdir() if p.suffix.lower() == ".csv" and p.is_file())


def sync_file(
    db: Database,
    path: str | Path,
    *,
    now: datetime,
    confirmed: bool = False,
    dry_run: bool = False,
    ask: Callable[[MailingList], AskPending] | None = None,
) -> Report:
    """Make list ``path.stem`` match the file: add or update its rows like an import, and
    unsubscribe pending or active addresses that are no longer in it. An address on a row
    that was rejected counts as still in the file (a typo never unsubscribes anyone).
    ``ask(list)`` gives the callback that asks that list's new pending people."""
    path = Path(path)
    mlist = get_list(db, path.stem)
    parsed = parse_csv(path, mlist)
    report = apply_rows(db, mlist, parsed, confirmed=confirmed, dry_run=dry_run, source="sync",
                        now=now, ask=ask(mlist) if ask else None)  # fmt: skip
    reason = f"no longer in {path.name}"
    if dry_run:
        report.removed = end_missing(db, mlist, parsed.seen, source="sync", reason=reason,
                                     now=now, write=False)  # fmt: skip
        return report
    with transaction(db):
        report.removed = end_missing(db, mlist, parsed.seen, source="sync", reason=reason,
                                     now=now, write=True)  # fmt: skip
    return report


def sync_directory(
    db: Database,
    directory: str | Path,
    *,
    now: datetime,
    confirmed: bool = False,
    dry_run: bool = False,
    ask: Callable[[MailingList], AskPending] | None = None,
) -> Iterator[Report | DigestError]:
    """Sync every ``SLUG.csv`` in ``directory``; yields a report per file, or the error that
    stopped that file (the other files are still synced)."""
    for path in sync_files(directory):
        try:
            yield sync_file(db, path, now=now, confirmed=confirmed, dry_run=dry_run, ask=ask)
        except DigestError as e:
            msg = str(e)
            yield type(e)(msg if msg.startswith(str(path)) else f"{path}: {msg}")
