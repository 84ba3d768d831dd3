"""The ``digest`` command: a thin click layer over the library. Each command parses options and
calls one library function. The group and its shared parts are in ``app``; each area's commands
are in a module of their own, imported here so they attach to the group."""

from . import bounces, demo, digests, ingest, issues, lists, run, send, subscribers, tags, web
from .app import App, cli

__all__ = [
    "App",
    "bounces",
    "cli",
    "demo",
    "digests",
    "ingest",
    "issues",
    "lists",
    "main",
    "run",
    "send",
    "subscribers",
    "tags",
    "web",
]


def main() -> None:
    cli(prog_name="digest")
