"""Set-based writes and reads for the hot paths: ``IN`` lists and multi-row ``INSERT``s sized
to SQLite's host-parameter limit, row ids numbered inside a write transaction, and WAL
checkpoints moved off the writer's path during long ingests.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager, suppress

from sqlite_utils import Database

# SQLite's default limit on host parameters is 32766 (>= 3.32); stay well under it.
_CHUNK = 900


def next_id(conn: sqlite3.Connection, table: str) -> int:
    """The first free rowid of ``table``. Only meaningful inside a write transaction (``BEGIN
    IMMEDIATE`` holds the write lock, so no other writer can take ids meanwhile): bulk writers
    number their new rows themselves to insert many rows in one statement and know their ids."""
    row = conn.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {table}").fetchone()
    return int(row[0])


def select_in(conn: sqlite3.Connection, sql: str, values: list) -> Iterator[tuple]:
    """Rows of ``sql`` (its ``{}`` is the ``IN`` list) for ``values``, queried ``_CHUNK`` at a time."""
    for i in range(0, len(values), _CHUNK):
        chunk = values[i : i + _CHUNK]
        yield from conn.execute(sql.format(",".join("?" * len(chunk))), chunk)


def row_chunks(conn: sqlite3.Connection, rows: list[tuple]) -> Iterator[list[tuple]]:
    """``rows`` in chunks that fit in one statement's host parameters (at most 1,000 rows)."""
    limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    per = max(1, min(1000, limit // len(rows[0])))
    for i in range(0, len(rows), per):
        yield rows[i : i + per]


def insert_rows(conn: sqlite3.Connection, target: str, rows: list[tuple]) -> None:
    """INSERT ``rows`` with as many rows per statement as fit."""
    if not rows:
        return
    one = "(" + ",".join("?" * len(rows[0])) + ")"
    for chunk in row_chunks(conn, rows):
        conn.execute(
            f"INSERT INTO {target} VALUES {','.join([one] * len(chunk))}",
            [value for row in chunk for value in row],
        )


@contextmanager
def background_checkpoints(db: Database, *, enabled: bool = True) -> Iterator[Callable[[], None]]:
    """``with background_checkpoints(db) as checkpoint:`` — while a long ingest writes, the WAL
    is checkpointed on a connection and thread of its own; call ``checkpoint()`` after each
    commit.

    SQLite's automatic checkpoint runs inside the commit that crosses ``wal_autocheckpoint``
    pages: it copies the WAL into the database and syncs while the writer waits (~13 ms in
    every other batch of 1,000 articles). Inside this block the connection's automatic
    checkpoints are off and each ``checkpoint()`` asks the thread for a PASSIVE checkpoint,
    which runs beside the next batch's writes. On exit the checkpoints asked for are finished
    (their work is part of the ingest) and the setting is restored. A no-op for a database that
    is not a WAL file, or with ``enabled=False``."""
    conn = db.conn
    limit = conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
    path = next((row[2] for row in conn.execute("PRAGMA database_list") if row[1] == "main"), "")
    if not enabled or not path or limit <= 0:
        yield lambda: None
        return
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        yield lambda: None
        return
    requests: queue.SimpleQueue[bool] = queue.SimpleQueue()  # True: checkpoint, False: stop

    def run() -> None:
        # A checkpoint that fails is harmless (the next automatic one does its work), so an
        # error ends the thread quietly rather than printing a traceback.
        with suppress(sqlite3.Error), closing(sqlite3.connect(path, timeout=30)) as other:
            going = True
            while going:
                asked = [requests.get()]
                while not requests.empty():  # requests made during a checkpoint: one more
                    asked.append(requests.get())
                going = all(asked)
                if any(asked):
                    other.execute("PRAGMA wal_checkpoint(PASSIVE)")

    thread = threading.Thread(target=run, name="digest-checkpoint", daemon=True)
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    thread.start()
    try:
        yield lambda: requests.put(True)
    finally:
        requests.put(False)
        thread.join()
        conn.execute(f"PRAGMA wal_autocheckpoint = {int(limit)}")
