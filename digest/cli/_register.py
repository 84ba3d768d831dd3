"""Import every command module so its commands attach to ``cli``. One line per area."""

from . import demo, digests, ingest, lists, run, send, subscribers, web  # noqa: F401
