"""``digest lists``: create, show, edit and delete mailing lists."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ..audience import lists as lists_lib
from ..audience.subscriptions import delete_list, list_counts
from ..issues.store import count_digests
from .app import App, cli, pass_app


def _tags(value: str | None) -> list[str] | None:
    return None if value is None else [t for t in value.split(",")]


@cli.group(name="lists")
def lists_group() -> None:
    """Mailing lists: who a digest is from, which tags it covers, and when it is sent.

    \b
    Example:
      digest lists create world --title "World News" --from "News Desk <news@example.com>" \\
          --tags Africa,Europe --timezone Africa/Nairobi --send-time 06:30
      digest lists list
    """


def _list_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for decorator in reversed(
        [
            click.option("--title", help="Title shown in digests and on web pages."),
            click.option(
                "--from", "from_addr", metavar="'NAME <ADDR>'", help="From header of the digest."
            ),
            click.option("--reply-to", metavar="ADDR", help="Reply-To address ('' removes it)."),
            click.option(
                "--tags",
                metavar="A,B,...",
                help="Tags covered, comma-separated, in section order (empty = every tag).",
            ),
            click.option("--timezone", metavar="AREA/CITY", help="IANA timezone of the send time."),
            click.option("--send-time", metavar="HH:MM", help="Local time to send the digest."),
            click.option("--weekly-day", metavar="DAY", help="Weekday of the weekly digest."),
            click.option("--description", help="One paragraph shown on the subscribe page."),
            click.option(
                "--private/--public",
                default=None,
                help="Private: not on the home page, no public archive index or feed.",
            ),
        ]
    ):
        f = decorator(f)
    return f


@lists_group.command(name="create")
@click.argument("slug")
@_list_options
@pass_app
def create(
    app: App,
    slug: str,
    title: str | None,
    from_addr: str | None,
    reply_to: str | None,
    tags: str | None,
    timezone: str | None,
    send_time: str | None,
    weekly_day: str | None,
    description: str | None,
    private: bool | None,
) -> None:
    """Create list SLUG (lowercase letters, digits, '-'). --title and --from are required;
    timezone defaults to UTC, send time to 07:00, weekly day to monday.

    \b
    Example:
      digest lists create world --title "World News" --from "News Desk <news@example.com>"
      digest lists create kenya --title Kenya --from news@example.com --tags Kenya,Nairobi \\
          --timezone Africa/Nairobi --send-time 06:30 --weekly-day fri
    """
    missing = [n for n, v in (("--title", title), ("--from", from_addr)) if not v]
    if missing or title is None or from_addr is None:
        raise click.UsageError(f"missing {' and '.join(missing)}")
    mlist = lists_lib.create_list(
        app.db,
        slug,
        title=title,
        from_addr=from_addr,
        reply_to=reply_to,
        tags=_tags(tags) or (),
        timezone=timezone or "UTC",
        send_time=send_time or "07:00",
        weekly_day=weekly_day or "monday",
        description=description,
        private=bool(private),
        now=app.now(),
    )
    click.echo(f"created list {mlist.slug}")
    _show(app, mlist)


@lists_group.command(name="edit")
@click.argument("slug")
@_list_options
@pass_app
def edit(
    app: App,
    slug: str,
    title: str | None,
    from_addr: str | None,
    reply_to: str | None,
    tags: str | None,
    timezone: str | None,
    send_time: str | None,
    weekly_day: str | None,
    description: str | None,
    private: bool | None,
) -> None:
    """Change some settings of list SLUG; options not given stay as they are.

    \b
    Example:
      digest lists edit world --send-time 06:00 --tags Africa,Asia,Europe
      digest lists edit world --reply-to ""
      digest lists edit staff-notes --private
    """
    mlist = lists_lib.edit_list(
        app.db,
        slug,
        title=title,
        from_addr=from_addr,
        reply_to=reply_to,
        tags=_tags(tags),
        timezone=timezone,
        send_time=send_time,
        weekly_day=weekly_day,
        description=description,
        private=private,
        now=app.now(),
    )
    click.echo(f"updated list {mlist.slug}")
    _show(app, mlist)


@lists_group.command(name="list")
@pass_app
def list_(app: App) -> None:
    """List the mailing lists with their active subscriber counts.

    \b
    Example:
      digest lists list
    """
    lists = lists_lib.all_lists(app.db)
    if not lists:
        click.echo("no lists yet; create one with `digest lists create`")
        return
    for mlist in lists:
        c = list_counts(app.db, mlist)
        tags = ", ".join(mlist.tags) or "all tags"
        click.echo(
            f"{mlist.slug:<16} {mlist.title:<24} {c.active:>6} active {c.pending:>5} pending"
            f"  {mlist.send_time} {mlist.timezone}  {tags}"
        )


@lists_group.command(name="show")
@click.argument("slug")
@pass_app
def show(app: App, slug: str) -> None:
    """Show every setting of list SLUG and its subscriber counts.

    \b
    Example:
      digest lists show world
    """
    _show(app, lists_lib.get_list(app.db, slug))


def _show(app: App, mlist: lists_lib.MailingList) -> None:
    c = list_counts(app.db, mlist)
    rows = [
        ("slug", mlist.slug),
        ("title", mlist.title),
        ("from", mlist.from_addr),
        ("reply-to", mlist.reply_to or "-"),
        ("tags", ", ".join(mlist.tags) or "(every tag)"),
        ("timezone", mlist.timezone),
        ("send time", mlist.send_time),
        ("weekly day", mlist.weekly_day),
        ("description", mlist.description or "-"),
        ("visibility", "private (not on the home page, no archive)" if mlist.private else "public"),
        (
            "subscribers",
            f"{c.active} active, {c.pending} pending, {c.unsubscribed} unsubscribed, "
            f"{c.bounced} bounced, {c.complained} complained",
        ),
        ("digests", str(count_digests(app.db, mlist.id))),
    ]
    for k, v in rows:
        click.echo(f"  {k + ':':<13}{v}")


@lists_group.command(name="delete")
@click.argument("slug")
@click.option("--force", is_flag=True, help="Delete even though it has subscribers.")
@pass_app
def delete(app: App, slug: str, force: bool) -> None:
    """Delete list SLUG. Refuses while it has active or pending subscribers unless --force.
    Digests already sent stay in the archive.

    \b
    Example:
      digest lists delete old-news
      digest lists delete world --force
    """
    outcome = delete_list(app.db, slug, now=app.now(), force=force)
    if outcome == "archived":
        click.echo(f"deleted list {slug} (its sent digests stay in the archive)")
    else:
        click.echo(f"deleted list {slug}")
