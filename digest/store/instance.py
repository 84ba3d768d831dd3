"""This database's identity: a random identifier made by a migration, the only module that
reads the ``instance`` table. It goes into every Message-ID, so two installations (or a
database rebuilt from scratch) never reuse one, while a resend from the same database keeps its
Message-ID."""

from __future__ import annotations

from sqlite_utils import Database


def instance_id(db: Database) -> str:
    row = db.execute("SELECT value FROM instance WHERE key = 'id'").fetchone()
    return str(row[0]) if row else ""
