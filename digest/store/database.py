"""Opening the store and writing to it: ``open_db()`` is the one way in, ``transaction()`` the
one way to group writes.

``open_db`` opens the SQLite file in WAL mode and applies the migrations. It creates a database
only when asked (``create=True``: ``digest init``, the demo); every other caller gets
``NoDatabase`` for a missing file, so a command run in the wrong directory, or with a typo in
``--db``, says so instead of quietly working on a new, empty store. A new database file is
created readable by its owner only: it holds subscribers' addresses.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlite_utils import Database

from ..errors import DigestError
from .migrations import migrations


class NoDatabase(DigestError):
    """The database file does not exist (and the command does not create one)."""


def open_db(path: str | Path, *, create: bool = False, migrate: bool = True) -> Database:
    """Open the SQLite store at ``path`` and bring its schema up to date. A missing file raises
    ``NoDatabase`` unless ``create`` (then it is made, mode 0600)."""
    path = Path(path)
    if str(path) != ":memory:" and not path.exists():
        if not create:
            raise NoDatabase(f"no database at {path}: run 'digest init' or pass --db")
        if path.parent and not path.parent.exists():
            raise DigestError(f"{path}: directory {path.parent} does not exist")
        with contextlib.suppress(FileExistsError):  # another process created it first
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        conn = sqlite3.connect(str(path), timeout=30, isolation_level=None)
        db = Database(conn)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA synchronous=NORMAL")
        if migrate:
            migrations.apply(db)
    except sqlite3.DatabaseError as e:
        raise DigestError(f"{path}: cannot open as a digest database ({e})") from None
    return db


def schema_version(db: Database) -> list[str]:
    return [m.name for m in migrations.applied(db)]


@contextmanager
def transaction(db: Database) -> Iterator[Database]:
    """``with transaction(db):`` groups writes, all or nothing.

    At the top level it is ``BEGIN IMMEDIATE`` … ``COMMIT``: the write lock is taken up front,
    so a read-then-write (claiming deliveries, upserting a subscriber, numbering new rows) cannot
    interleave with another process. Inside a transaction it is a savepoint, so library
    functions that need atomicity can be called alone or as part of a larger change."""
    conn = db.conn
    if conn.in_transaction:
        with db.atomic():  # a savepoint
            yield db
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if _in_transaction(conn):  # a failed COMMIT or a constraint may have ended it already
            conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


def _in_transaction(conn: sqlite3.Connection) -> bool:
    return conn.in_transaction


@contextmanager
def durable(db: Database) -> Iterator[None]:
    """Within the block, every commit is synced to disk before it returns (``synchronous =
    FULL``): a sender records each outcome before the next message goes out in its place, so a
    power cut cannot forget more than the messages in flight."""
    previous = int(db.execute("PRAGMA synchronous").fetchone()[0])
    db.execute("PRAGMA synchronous=FULL")
    try:
        yield
    finally:
        db.execute(f"PRAGMA synchronous={previous}")
