"""The ``digest`` group and what every command shares: the ``App`` (database, configuration,
clock), the ``--db``/``--config`` options, and the conversion of ``DigestError`` into a one-line
error and exit status 1, never a traceback. Commands live in sibling modules
(``digest/cli/<area>.py``); ``digest/cli/__init__.py`` attaches them."""

from __future__ import annotations

import functools
import importlib
import os
import sqlite3
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from sqlite_utils import Database

from ..config import Config, load_config, write_example
from ..errors import DigestError
from ..store import open_db
from ..timeutil import utc_now
from ..tokens import load_secret


class App:
    """What every command needs: where the database and config are. The configuration is read
    (and checked) before any command runs; the database is opened when first used, and only
    ``digest init`` (or the demo) creates one: any other command on a missing file stops with
    ``no database at PATH``."""

    def __init__(self, db_path: str | None = None, config_path: str | None = None):
        self.db_path = Path(db_path or os.environ.get("DIGEST_DB") or "digest.db")
        explicit = config_path or os.environ.get("DIGEST_CONFIG")
        self.config_path: Path | None = Path(explicit) if explicit else None
        if self.config_path is None and Path("digest.toml").exists():
            self.config_path = Path("digest.toml")
        self._db: Database | None = None
        self._config: Config | None = None

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = open_db(self.db_path)
        return self._db

    def create_db(self) -> Database:
        """Open the database, creating it if it does not exist (``digest init``)."""
        if self._db is None:
            self._db = open_db(self.db_path, create=True)
        return self._db

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    @property
    def secret(self) -> bytes:
        # The secret file lives beside the database: never create one for a missing database.
        self.db  # noqa: B018 - NoDatabase if there is none
        return load_secret(self.db_path)

    def now(self) -> datetime:
        return utc_now()


def _db_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--db",
        "db_path",
        type=click.Path(dir_okay=False),
        default=None,
        help="SQLite database [env DIGEST_DB; default ./digest.db].",
        expose_value=True,
    )(f)


def _config_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        default=None,
        help="Configuration file [env DIGEST_CONFIG; default ./digest.toml if present].",
    )(f)


def pass_app(f: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command the ``App`` as first argument and accept ``--db``/``--config`` on the
    command itself as well as on ``digest`` (``digest ingest --db x.db feed.xml``)."""

    @_db_option
    @_config_option
    @click.pass_context
    @functools.wraps(f)
    def wrapper(
        ctx: click.Context,
        *args: Any,
        db_path: str | None = None,
        config_path: str | None = None,
        **kwargs: Any,
    ) -> Any:
        app = ctx.find_object(App)
        if app is None:
            app = ctx.ensure_object(App)
        if db_path:
            app.db_path = Path(db_path)
            app._db = None
        if config_path:
            app.config_path = Path(config_path)
            app._config = None
        app.config  # noqa: B018 - a missing or invalid configuration stops every command
        return f(app, *args, **kwargs)

    return wrapper


# The module that defines each top-level command. A command's module is imported when the
# command runs (or when help lists every command), not at start-up: `digest subscribers list`
# then does not import trafilatura, premailer or the SMTP loop, which take most of a second.
COMMAND_MODULES = {
    "articles": "ingest",
    "bounces": "bounces",
    "build": "digests",
    "deliveries": "send",
    "demo": "demo",
    "feeds": "ingest",
    "fetch": "ingest",
    "ingest": "ingest",
    "issues": "issues",
    "lists": "lists",
    "preview": "digests",
    "run": "run",
    "send": "send",
    "serve": "web",
    "status": "run",
    "subscribers": "subscribers",
    "suppress": "subscribers",
    "suppressed": "subscribers",
    "tags": "tags",
    "users": "web",
}


class DigestGroup(click.Group):
    """Top-level group: loads each command's module when it is needed (``COMMAND_MODULES``)
    and turns domain errors into clean messages."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMAND_MODULES})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            importlib.import_module(f"{__package__}.{COMMAND_MODULES[cmd_name]}")
        return super().get_command(ctx, cmd_name)

    def load_all(self) -> None:
        """Import every command module (for code that walks ``commands``)."""
        for module in sorted(set(COMMAND_MODULES.values())):
            importlib.import_module(f"{__package__}.{module}")

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DigestError as e:
            raise click.ClickException(str(e)) from None
        except sqlite3.OperationalError as e:
            if "locked" in str(e):
                raise click.ClickException(
                    "the database is busy (another digest process holds a write lock); try again"
                ) from None
            raise
        except OSError as e:
            if isinstance(e, BrokenPipeError):
                raise
            raise click.ClickException(
                f"{e.filename or ''}: {e.strerror or e}".lstrip(": ")
            ) from None


@click.group(cls=DigestGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="SQLite database [env DIGEST_DB; default ./digest.db].",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Configuration file [env DIGEST_CONFIG; default ./digest.toml if present].",
)
@click.version_option(package_name="digest")
@click.pass_context
def cli(ctx: click.Context, db_path: str | None, config_path: str | None) -> None:
    """Newsletter digests: collect articles, group them by tag into daily and weekly digests,
    and send them to subscriber lists.

    \b
    Example:
      digest init
      digest ingest https://example.org/feed.xml --tag World
      digest articles list
    """
    ctx.obj = App(db_path, config_path)


@cli.command()
@pass_app
def init(app: App) -> None:
    """Create the database and a commented example digest.toml (changes nothing if both exist).

    \b
    Example:
      digest init
      digest --db /var/lib/digest/news.db init
    """
    cfg = app.config_path or Path("digest.toml")
    if write_example(cfg):
        click.echo(f"wrote {cfg} (commented example; secrets go in the environment)")
    else:
        click.echo(f"{cfg} exists, left as it is")
    existed = app.db_path.exists()
    app.create_db()  # creating or opening applies the migrations
    click.echo(
        f"{'database ' + str(app.db_path) + ' is up to date' if existed else 'created ' + str(app.db_path)}"
    )
