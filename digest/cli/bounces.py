"""``digest bounces``: read a bounce mailbox (``process``) and show what came back (``list``)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

import click

from ..errors import InvalidInput
from ..feedback import events
from ..feedback.process import (
    CHANGES,
    BouncePolicy,
    Effect,
    Result,
    done_action,
    open_mailbox,
    process_mailbox,
)
from .app import App, cli, pass_app


@cli.group(name="bounces")
def bounces_group() -> None:
    """Bounces and complaints that come back after sending: read them from the bounce mailbox
    and see what they did.

    \b
    Example:
      digest bounces process --maildir /home/bounces/Maildir
      digest bounces list --since 2025-01-01
    """


@bounces_group.command(name="process")
@click.option("--maildir", type=click.Path(file_okay=False), metavar="DIR", help="A Maildir.")
@click.option("--mbox", type=click.Path(dir_okay=False), metavar="FILE", help="An mbox file.")
@click.option(
    "--imap",
    metavar="URL",
    help="imaps://user@host[:port][/folder] (or imap:// for STARTTLS); password in "
    "DIGEST_IMAP_PASSWORD.",
)
@click.option("--folder", metavar="F", help="The IMAP folder [default: the URL's, else INBOX].")
@click.option("--delete", is_flag=True, help="Delete each message once used.")
@click.option("--move-to", metavar="F", help="Move each message once used to this folder.")
@pass_app
def process(
    app: App,
    maildir: str | None,
    mbox: str | None,
    imap: str | None,
    folder: str | None,
    delete: bool,
    move_to: str | None,
) -> None:
    """Read the unread messages of a bounce mailbox and act on each: a hard bounce makes the
    subscriber bounced on every list and suppresses the address; soft bounces are counted
    ([bounces] soft_threshold within soft_window_days count as hard); a complaint makes them
    complained everywhere and suppressed; auto-replies and delay warnings change nothing.

    Each message is flagged read (or deleted, or moved) once its outcome is saved; one that
    cannot be used is left unread with one line saying why. Prints one line per change.

    \b
    Example:
      digest bounces process --maildir /home/bounces/Maildir
      digest bounces process --mbox /var/mail/bounces --delete
      DIGEST_IMAP_PASSWORD=… digest bounces process --imap imaps://bounces@mail.example.com --move-to Done
    """
    action = done_action(delete=delete, move_to=move_to)
    policy = BouncePolicy.from_config(app.config, app.secret)

    def show(result: Result) -> None:
        if result.effect in (*CHANGES, Effect.COUNTED):
            click.echo(result.line)
        elif result.effect is Effect.UNUSABLE:
            click.echo(f"left {result.key}: {result.line}")

    with open_mailbox(
        maildir=maildir, mbox=mbox, imap=imap, folder=folder, move_to=move_to, env=app.config.env
    ) as box:
        report = process_mailbox(
            app.db, box, policy=policy, clock=app.now, action=action, on_result=show
        )
    click.echo(report.summary())
    if report.stopped:
        click.echo(f"Error: stopped: {report.stopped}", err=True)
        sys.exit(1)


def _since(value: str) -> datetime:
    """``--since``: an ISO 8601 date or time; without an offset it is taken as UTC."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"--since {value!r}: expected an ISO 8601 date or time such as 2025-01-21"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@bounces_group.command(name="list")
@click.option(
    "--since", "since_text", metavar="ISO", help="Only events received since (e.g. 2025-01-21)."
)
@click.option(
    "--all", "all_kinds", is_flag=True, help="Also provider delivery notices, not only bounces."
)
@click.option("--limit", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Output JSON.")
@pass_app
def list_(app: App, since_text: str | None, all_kinds: bool, limit: int, as_json: bool) -> None:
    """Show the recorded bounces and complaints, newest first: when, kind, address, where from,
    the digest it was about and the server's or provider's words.

    \b
    Example:
      digest bounces list
      digest bounces list --since 2025-01-21 --json
    """
    since = _since(since_text) if since_text else None
    kinds = [*events.RECORDED_KINDS] if all_kinds else ["hard", "soft", "complaint"]
    rows = events.list_events(app.db, since=since, kinds=kinds, limit=limit)
    if as_json:
        click.echo(json.dumps([r.as_json() for r in rows], indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo("no bounces or complaints recorded" + (f" since {since_text}" if since else ""))
        return
    width = max(len(r.email) for r in rows)
    for r in rows:
        about = f" [{r.list_slug} {r.period}]" if r.list_slug else ""
        click.echo(
            f"{r.received_at[:16].replace('T', ' ')}  {r.kind:<9} {r.email:<{width}}  "
            f"via {r.source}{about}: {r.diagnostic}"
        )
