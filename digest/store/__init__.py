"""The SQLite store: one file, opened by ``open_db``, changed inside ``transaction``; the schema
and its migrations (``migrations``); helpers for set-based writes (``bulk``).

Every table has one module that writes it (see the README, "How the code is organised"); other
modules call that module's functions.
"""

from .database import NoDatabase, durable, open_db, schema_version, transaction
from .migrations import migrations

__all__ = ["NoDatabase", "durable", "migrations", "open_db", "schema_version", "transaction"]
