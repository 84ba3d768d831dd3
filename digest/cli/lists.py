"""``digest lists``: create, show, edit and delete mailing lists."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ..addresses import address_of
from ..audience import lists as lists_lib
from ..audience.listtags import ListEdit, edit_list_checked
from ..audience.subscriptions import delete_list, list_counts
from ..issues.store import count_digests
from .app import App, cli, pass_app


def _tags(value: str | None) -> list[str] | None:
    return None if value is None else [t for t in value.split(",")]


def _look(options: dict[str, Any]) -> lists_lib.LookChanges:
    approval = options.pop("approval")
    return lists_lib.LookChanges(
        approval=None if approval is None else approval == "on",
        **{k: options.pop(k) for k in LOOK_OPTIONS},
    )


LOOK_OPTIONS = (
    "language",
    "images",
    "logo_url",
    "logo_size",
    "accent",
    "footer_text",
    "postal_address",
    "subject_pattern",
    "intro",
    "approval_lead",
    "approval_deadline",
    "editors",
)


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
                "--bounce-address",
                metavar="ADDR",
                help="Envelope sender of its digests, where bounces go ('' removes it; "
                "default: [bounces] address, else the From address).",
            ),
            click.option(
                "--private/--public",
                default=None,
                help="Private: not on the home page, no public archive index or feed.",
            ),
            click.option(
                "--language",
                metavar="CODE",
                help="Language of the emails and subscriber pages (en, fr, es, pt, sw, ...).",
            ),
            click.option(
                "--images",
                type=click.Choice([m.value for m in lists_lib.ImageMode]),
                help="Stories' lead images: none, lead (across the sheet) or thumbnails.",
            ),
            click.option("--logo-url", metavar="URL", help="Logo above the title ('' removes it)."),
            click.option("--logo-size", metavar="WxH", help="Logo size in pixels, e.g. 180x40."),
            click.option(
                "--accent", metavar="#RRGGBB", help="Accent colour (section names, links)."
            ),
            click.option("--footer", "footer_text", help="Footer text of every email."),
            click.option("--postal-address", help="Postal address in the footer (CAN-SPAM)."),
            click.option(
                "--subject",
                "subject_pattern",
                metavar="PATTERN",
                help="Subject pattern: {top} {tags} {date} {list} {site} {frequency} {count}"
                " ('' = the default, '{top} — {date}').",
            ),
            click.option("--intro", help="Intro shown at the top of issues without a note."),
            click.option(
                "--approval",
                type=click.Choice(["on", "off"]),
                help="on: editors approve each issue before it is sent.",
            ),
            click.option(
                "--approval-lead",
                metavar="DURATION",
                help="How long before the send time an issue is built for approval (2h).",
            ),
            click.option(
                "--approval-deadline",
                metavar="DURATION",
                help="How long after the send time an approval is still accepted (1h).",
            ),
            click.option(
                "--editors",
                metavar="A,B,...",
                help="Addresses told by email when an issue awaits approval.",
            ),
            click.option(
                "--untagged-title",
                metavar="TITLE",
                help="Title of the last section, the articles without a tag, in a list that"
                ' covers every tag (default "More stories").',
            ),
        ]
    ):
        f = decorator(f)
    return f


def _frequency_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--default-frequency", metavar="daily|weekly",
        help="What a new subscriber gets unless they choose (default: the first offered).",
    )(f)  # fmt: skip
    return click.option(
        "--frequencies", metavar="daily,weekly|daily|weekly",
        help="What subscribers may choose (default: daily,weekly). Subscribers of a frequency "
        "no longer offered move to the default one.",
    )(f)  # fmt: skip


@lists_group.command(name="create")
@click.argument("slug")
@_list_options
@_frequency_options
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
    untagged_title: str | None,
    bounce_address: str | None,
    private: bool | None,
    frequencies: str | None,
    default_frequency: str | None,
    **look: Any,
) -> None:
    """Create list SLUG (lowercase letters, digits, '-'). --title and --from are required;
    timezone defaults to UTC, send time to 07:00, weekly day to monday, language to en,
    frequencies to daily and weekly (daily by default).

    \b
    Example:
      digest lists create world --title "World News" --from "News Desk <news@example.com>"
      digest lists create kenya --title Kenya --from news@example.com --tags Kenya,Nairobi \\
          --timezone Africa/Nairobi --send-time 06:30 --weekly-day fri --frequencies weekly
      digest lists create monde --title "Le Monde en bref" --from "Desk <monde@example.com>" \\
          --language fr --images lead --accent "#0b6e4f" \\
          --postal-address "12 rue du Port, 13002 Marseille, France"
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
        look=_look(look),
        untagged_title=untagged_title,
        bounce_address=bounce_address or None,
        now=app.now(),
        frequencies=frequencies,
        default_frequency=default_frequency,
    )
    click.echo(f"created list {mlist.slug}")
    _show(app, mlist)


@lists_group.command(name="edit")
@click.argument("slug")
@_list_options
@_frequency_options
@click.option(
    "--move-orphans-to-all",
    is_flag=True,
    help="Give every tag of the list to the subscribers who follow only tags it no longer covers.",
)
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
    untagged_title: str | None,
    bounce_address: str | None,
    private: bool | None,
    frequencies: str | None,
    default_frequency: str | None,
    move_orphans_to_all: bool,
    **look: Any,
) -> None:
    """Change some settings of list SLUG; options not given stay as they are, and '' removes
    an optional one (--reply-to, --logo-url, --accent, --footer, --subject, ...). When new --tags
    leave subscribers following only tags the list no longer covers, it says how many (they
    would get nothing); --move-orphans-to-all gives them every tag of the list. A frequency
    the list no longer offers: its subscribers move to the default one (and are counted).

    \b
    Example:
      digest lists edit world --send-time 06:00 --tags Africa,Asia,Europe
      digest lists edit world --tags Africa,Asia --move-orphans-to-all
      digest lists edit world --reply-to ""
      digest lists edit world --bounce-address bounces@news.example.com
      digest lists edit staff-notes --private
      digest lists edit world --language fr --subject "{top} — {date}"
      digest lists edit world --approval on --approval-lead 2h --approval-deadline 1h \\
          --editors editors@example.com
      digest lists edit world --frequencies weekly
    """
    result = edit_list_checked(
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
        look=_look(look),
        untagged_title=untagged_title,
        move_orphans_to_all=move_orphans_to_all,
        bounce_address=bounce_address,
        now=app.now(),
        frequencies=frequencies,
        default_frequency=default_frequency,
    )
    click.echo(f"updated list {result.mlist.slug}")
    for frequency, n in result.frequency_moves.items():
        click.echo(f"moved {n} subscriber(s) to {frequency}: the list no longer offers their "
                   "frequency")  # fmt: skip
    _show(app, result.mlist)
    _orphans(result)


def _orphans(result: ListEdit) -> None:
    n = len(result.orphans)
    if not n:
        return
    who = f"{n} subscriber{'s' if n != 1 else ''}"
    tags = ", ".join(result.orphaned_tags)
    if result.moved:
        click.echo(
            f"moved {who} who followed only tags the list no longer covers ({tags}) to every tag"
        )
    else:
        click.echo(
            f"warning: {who} follow{'s' if n == 1 else ''} only tags the list no longer covers"
            f" ({tags}) and will get nothing; --move-orphans-to-all gives them every tag",
            err=True,
        )


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


def _bounces_to(app: App, mlist: lists_lib.MailingList) -> str:
    settings = app.config.bounces
    if mlist.bounce_address:
        where = mlist.bounce_address
    elif settings.address:
        where = f"{settings.address} ([bounces] address)"
    else:
        return f"{address_of(mlist.from_addr)} (the From address)"
    return where + (", with VERP" if settings.verp else "")


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
        ("frequencies", f"{', '.join(mlist.frequencies)} (default {mlist.default_frequency})"),
        ("description", mlist.description or "-"),
        ("bounces to", _bounces_to(app, mlist)),
        ("visibility", "private (not on the home page, no archive)" if mlist.private else "public"),
        *_look_rows(mlist),
        *(
            [("untagged", f"{mlist.untagged_section_title} (last section)")]
            if not mlist.tags
            else []
        ),
        (
            "subscribers",
            f"{c.active} active, {c.pending} pending, {c.unsubscribed} unsubscribed, "
            f"{c.bounced} bounced, {c.complained} complained"
            + (f", {c.expired} expired" if c.expired else ""),
        ),
        ("digests", str(count_digests(app.db, mlist.id))),
    ]
    for k, v in rows:
        click.echo(f"  {k + ':':<13}{v}")


def _duration(delta: Any) -> str:
    minutes = int(delta.total_seconds() // 60)
    hours, rest = divmod(minutes, 60)
    return (f"{hours}h" if hours else "") + (f"{rest}m" if rest or not hours else "")


def _look_rows(mlist: lists_lib.MailingList) -> list[tuple[str, str]]:
    look, brand, approval = mlist.look, mlist.brand, mlist.approval
    logo = "-"
    if brand.logo_url:
        size = (
            f"{brand.logo_width}x{brand.logo_height}"
            if brand.logo_height
            else f"{brand.logo_width}"
        )
        logo = f"{brand.logo_url} ({size} px)"
    if approval.required:
        workflow = (
            f"on: built {_duration(approval.lead)} before the send time, approval accepted until"
            f" {_duration(approval.deadline)} after it"
        )
    else:
        workflow = "off"
    return [
        ("language", look.language),
        ("images", look.images.value),
        ("logo", logo),
        ("accent", brand.accent),
        ("footer", brand.footer_text or "-"),
        ("address", brand.postal_address or "-"),
        ("subject", look.subject_pattern or "(default: {top} — {date}, translated)"),
        ("intro", look.intro or "-"),
        ("approval", workflow),
        ("editors", ", ".join(approval.editors) or "-"),
    ]


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
