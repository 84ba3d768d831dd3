"""The ``digest`` command: a thin click layer over the library. Each command parses options and
calls one library function. The group and its shared parts are in ``app``; each area's commands
are in a module of their own, which attaches them to the group when it is imported. The group
imports a module only when one of its commands is run (``app.COMMAND_MODULES``), so a command
starts without loading the whole library."""

from .app import App, cli

__all__ = ["App", "cli", "main"]


def main() -> None:
    cli(prog_name="digest")
