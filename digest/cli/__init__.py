"""The ``digest`` command: a thin click layer over the library. Each command parses options and
calls one library function. The group and its shared parts are in ``app``; each area's commands
are in a module of their own, imported here so they attach to the group."""

from . import demo, digests, ingest, issues, lists, run, send, subscribers, web
from .app import App, cli

__all__ = [
    "App",
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
    "web",
]


def main() -> None:
    cli(prog_name="digest")
