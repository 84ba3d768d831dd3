"""``digest issues``: editors shape an issue before it goes (note, pin, drop), look at it
(show) and approve it (lists in approval mode)."""

from __future__ import annotations

from datetime import date

import click

from ..audience.lists import get_list
from ..audience.records import FREQUENCIES
from ..delivery import publish
from ..errors import InvalidInput
from ..issues.approval import describe
from ..issues.overview import issue_overview
from .app import App, cli, pass_app


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(f"date {value!r}: expected the issue date as YYYY-MM-DD") from None


@cli.group(name="issues")
def issues_group() -> None:
    """Shape an issue before it goes: an intro note, pinned and dropped stories; approve it.

    An edit applies to every issue of the list dated DATE (the daily one, and the weekly one on
    the list's weekly day); an issue already built is rendered again at once.

    \b
    Example:
      digest issues show world 2025-01-27
      digest issues note world 2025-01-27 "Our reporters are at the summit all week."
      digest issues pin world 2025-01-27 42
      digest issues drop world 2025-01-27 17
      digest issues approve world 2025-01-27
    """


def _report(result: publish.ShapeResult) -> None:
    for line in result.report_lines():
        click.echo(f"  {line}")


@issues_group.command(name="note")
@click.argument("list_slug", metavar="LIST")
@click.argument("issue_date", metavar="DATE")
@click.argument("text")
@pass_app
def note(app: App, list_slug: str, issue_date: str, text: str) -> None:
    """Set the intro note shown at the top of LIST's issue of DATE ("" removes it).

    \b
    Example:
      digest issues note world 2025-01-27 "Our reporters are at the summit all week."
      digest issues note world 2025-01-27 ""
    """
    result = publish.shape_issue(
        app.db, app.config, list_slug, _date(issue_date), note=text, by="cli", now=app.now()
    )
    click.echo("note set" if result.edits.note else "note removed")
    _report(result)


def _mark(app: App, list_slug: str, issue_date: str, article_id: int, action: str) -> None:
    result = publish.shape_issue(
        app.db,
        app.config,
        list_slug,
        _date(issue_date),
        article_id=article_id,
        action=action,
        by="cli",
        now=app.now(),
    )
    done = {"pin": "pinned", "drop": "dropped", "clear": "cleared"}[action]
    click.echo(f"article {article_id} {done}")
    _report(result)


@issues_group.command(name="pin")
@click.argument("list_slug", metavar="LIST")
@click.argument("issue_date", metavar="DATE")
@click.argument("article_id", type=int)
@pass_app
def pin(app: App, list_slug: str, issue_date: str, article_id: int) -> None:
    """Pin ARTICLE_ID in LIST's issue of DATE: it leads its section (and is added to the
    issue if the selection left it out).

    \b
    Example:
      digest issues pin world 2025-01-27 42
    """
    _mark(app, list_slug, issue_date, article_id, "pin")


@issues_group.command(name="drop")
@click.argument("list_slug", metavar="LIST")
@click.argument("issue_date", metavar="DATE")
@click.argument("article_id", type=int)
@pass_app
def drop(app: App, list_slug: str, issue_date: str, article_id: int) -> None:
    """Leave ARTICLE_ID out of LIST's issue of DATE.

    \b
    Example:
      digest issues drop world 2025-01-27 17
    """
    _mark(app, list_slug, issue_date, article_id, "drop")


@issues_group.command(name="clear")
@click.argument("list_slug", metavar="LIST")
@click.argument("issue_date", metavar="DATE")
@click.argument("article_id", type=int)
@pass_app
def clear(app: App, list_slug: str, issue_date: str, article_id: int) -> None:
    """Take back a pin or a drop of ARTICLE_ID in LIST's issue of DATE.

    \b
    Example:
      digest issues clear world 2025-01-27 17
    """
    _mark(app, list_slug, issue_date, article_id, "clear")


@issues_group.command(name="approve")
@click.argument("list_slug", metavar="LIST")
@click.argument("issue_date", metavar="DATE")
@click.option("--frequency", type=click.Choice(FREQUENCIES), help="Only this issue of DATE.")
@pass_app
def approve(app: App, list_slug: str, issue_date: str, frequency: str | None) -> None:
    """Approve LIST's issue(s) of DATE that await approval: they are sent at their send time
    (at once if it has passed, until the list's approval deadline).

    \b
    Example:
      digest issues approve world 2025-01-27
    """
    for a in publish.approve(
        app.db,
        app.config,
        list_slug,
        _date(issue_date),
        by="cli",
        now=app.now(),
        frequency=frequency,
    ):
        click.echo(f"approved {list_slug}/{a.frequency}/{a.period_label}")


@issues_group.command(name="show")
@click.argument("list_slug", metavar="LIST")
@click.argument("issue_date", metavar="DATE")
@pass_app
def show(app: App, list_slug: str, issue_date: str) -> None:
    """Show LIST's issue(s) of DATE: note, approval, subject, stories with their ids (* pinned)
    and the dropped ones. An issue not built yet shows what it would hold if built now.

    \b
    Example:
      digest issues show world 2025-01-27
    """
    mlist = get_list(app.db, list_slug)
    view = issue_overview(app.db, mlist, _date(issue_date), now=app.now())
    click.echo(f"{mlist.slug} {view.issue_date} ({mlist.title}, {mlist.language})")
    click.echo(f"note: {view.edits.note!r}" if view.edits.note else "note: -")
    for issue in view.issues:
        if issue.digest is not None:
            state = f"built {issue.digest.built_at:%Y-%m-%d %H:%M} UTC"
        else:
            state = (
                f"not built yet (sent {issue.period.send_at:%Y-%m-%d %H:%M} UTC); now it would hold"
            )
        if issue.approval is not None:
            state += f"; {describe(issue.approval)}"
        click.echo(f"{issue.frequency}: {state}")
        if issue.subject:
            click.echo(f"  subject: {issue.subject}")
        for name, stories in issue.sections:
            click.echo(f"  {name}")
            for story in stories:
                mark = "*" if story.pinned else " "
                click.echo(f"    {mark}{story.id:>6}  {story.title}")
        if not issue.sections:
            click.echo("  (no articles)")
        for story in issue.dropped:
            click.echo(f"  dropped {story.id:>6}  {story.title}")
    for line in view.not_issue_dates:
        click.echo(line)
