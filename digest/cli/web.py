"""``digest serve`` (the web app, development server) and ``digest users`` (staff accounts)."""

from __future__ import annotations

import sys

import click

from .. import users as users_lib
from .app import App, cli, pass_app


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@pass_app
def serve(app: App, host: str, port: int) -> None:
    """Run the web pages (subscribe, confirm, preferences, unsubscribe, archive; editor and
    admin pages) with the development server.

    For production run the same app under a WSGI server such as waitress behind a reverse
    proxy that terminates TLS (see the README).

    \b
    Example:
      digest serve
      digest serve --host 0.0.0.0 --port 8000
      waitress-serve --host 127.0.0.1 --port 8080 --call digest.web:app_from_env
    """
    from werkzeug.serving import run_simple

    from ..web import create_app

    web_app = create_app(app.db_path, app.config, secret=app.secret)
    click.echo(
        f"serving {app.config.site_name} on http://{host}:{port}/ (Ctrl-C to stop)", err=True
    )
    run_simple(host, port, web_app, threaded=True, use_reloader=False, use_debugger=False)


@cli.group()
def users() -> None:
    """Editor and admin accounts for the web pages.

    \b
    Example:
      digest users add alice --role editor
      digest users list
      digest users passwd alice
      digest users role alice admin
      digest users remove alice
    """


@users.command("add")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(users_lib.ROLES),
    required=True,
    help="editor: previews and test sends; admin: also lists and subscribers.",
)
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input instead of prompting.",
)
@pass_app
def users_add(app: App, name: str, role: str, password_stdin: bool) -> None:
    """Create an account. The password is prompted for twice (hidden) and stored only as a
    scrypt hash.

    \b
    Example:
      digest users add alice --role editor
      printf '%s\\n' "$PASSWORD" | digest users add bob --role admin --password-stdin
    """
    users_lib.check_name(name)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    user = users_lib.add_user(app.db, name, password, role, now=app.now())
    click.echo(f"added {user.role} {user.name}")


@users.command("password")
@click.argument("name")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the new password from the first line of standard input instead of prompting.",
)
@pass_app
def users_password(app: App, name: str, password_stdin: bool) -> None:
    """Set a new password for an account; every session of the account ends (it is logged
    out everywhere). `digest users passwd` is the same command.

    \b
    Example:
      digest users passwd alice
      digest users password alice
    """
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    users_lib.set_password(app.db, name, password)
    click.echo(f"changed the password of {name}; its sessions have ended")


# The Unix name for the same command; both are kept (scripts written for either keep working).
users.add_command(users_password, name="passwd")


@users.command("role")
@click.argument("name")
@click.argument("role", type=click.Choice(users_lib.ROLES))
@pass_app
def users_role(app: App, name: str, role: str) -> None:
    """Make an account an editor or an admin; its sessions end (pages open under the old role
    stop working).

    \b
    Example:
      digest users role alice admin
    """
    user = users_lib.set_role(app.db, name, role)
    click.echo(f"{user.name} is now {user.role}")


@users.command("list")
@pass_app
def users_list(app: App) -> None:
    """Show the accounts: name, role, created, last login.

    \b
    Example:
      digest users list
    """
    rows = users_lib.list_users(app.db)
    if not rows:
        click.echo("no users yet; add one with: digest users add NAME --role editor")
        return
    width = max(len(u.name) for u in rows)
    for u in rows:
        last = (u.last_login_at or "never")[:16].replace("T", " ")
        click.echo(
            f"{u.name:<{width}}  {u.role:<6}  created {u.created_at[:10]}  last login {last}"
        )


@users.command("remove")
@click.argument("name")
@pass_app
def users_remove(app: App, name: str) -> None:
    """Delete an account; its sessions stop working at once.

    \b
    Example:
      digest users remove alice
    """
    users_lib.remove_user(app.db, name)
    click.echo(f"removed {name}")
