"""``digest build`` and ``digest preview``: thin wrappers over ``digest.scheduler.manual`` (the
scheduler's rule for what is due) and ``digest.delivery.preview``."""

from __future__ import annotations

import sys
import webbrowser
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..audience.lists import MailingList, get_list
from ..audience.records import FREQUENCIES
from ..delivery.preview import preview_digest
from ..delivery.publish import BuildFailure
from ..issues.build import BuiltDigest
from ..issues.periods import parse_issue_date
from ..scheduler.manual import NotDue, build_dated, build_now
from .app import App, cli, pass_app


def _progress(mlist: MailingList, frequency: str) -> Callable[[int, int], None]:
    """A progress bar on stderr over a digest's variants (shown once there are any to render)."""
    state: dict[str, Any] = {}

    def update(done: int, total: int) -> None:
        if "bar" not in state:
            state["bar"] = click.progressbar(
                length=total, label=f"rendering {mlist.slug} {frequency} variants", file=sys.stderr
            )
            state["bar"].__enter__()
        state["bar"].update(1)
        if done == total:
            state["bar"].__exit__(None, None, None)

    return update


def _describe(result: BuiltDigest) -> str:
    period = result.period
    status = "built" if result.new else f"already built {result.built_at:%Y-%m-%d %H:%M} UTC"
    empty = sum(1 for v in result.variants if v.empty and not v.error)
    cut = sum(v.cut_count for v in result.variants)
    sections = ", ".join(result.sections) or "none"
    lines = [
        f"{result.mailing_list.slug} {result.frequency} {period.label}, {period.describe()}: {status}",
        f"  articles {result.article_count}, sections {len(result.sections)} ({sections}),"
        f" variants {len(result.variants)}"
        + (f" ({empty} without articles, not sent)" if empty else "")
        + (
            f", awaiting approval: nothing queued until an editor approves"
            f" (digest issues approve {result.mailing_list.slug} {period.issue_date:%Y-%m-%d})"
            if result.awaiting_approval
            else f", recipients {result.recipients} queued"
            + ("" if result.new else f" ({result.enqueued} newly)")
        )
        + (f", {cut} articles cut to fit the HTML budget" if cut else ""),
    ]
    lines += [
        f"  failed: variant {v.tags_key or 'all tags'} {v.error}; its {v.recipients}"
        " deliveries failed, the other variants are queued"
        for v in result.variants
        if v.error
    ]
    lines += [f"  note: {note}" for note in result.notes]
    return "\n".join(lines)


@cli.command()
@click.option("--list", "list_slug", metavar="LIST", help="Only this list (slug).")
@click.option(
    "--frequency", type=click.Choice([str(f) for f in FREQUENCIES]), help="Only daily or weekly."
)
@click.option(
    "--date",
    "issue_date",
    metavar="YYYY-MM-DD",
    help="Issue date (the local date it is sent); weekly: the most recent weekly day on or "
    "before it. Default: the issue `digest run` would send now.",
)
@click.option(
    "--force",
    is_flag=True,
    help="With --date: build an issue even if it is older than [schedule] max_lateness_*_hours.",
)
@pass_app
def build(
    app: App, list_slug: str | None, frequency: str | None, issue_date: str | None, force: bool
) -> None:
    """Build digests and queue one delivery per active subscriber.

    Without --date, builds the issue that `digest run` would send now, for every list and
    frequency that has active subscribers, or says that none is due and which issue is next
    (the scheduler's rule: the latest issue whose send time has passed, not before the list
    was created, and not later than [schedule] max_lateness_daily_hours / _weekly_hours).
    A past issue needs --date, and one later than that also --force. Building an issue again
    changes nothing but queues subscribers who became active since. Prints per digest: period,
    articles, sections, variants, recipients.

    \b
    Example:
      digest build
      digest build --list world --frequency daily --date 2025-01-21 --force
    """
    failures: list[BuildFailure] = []
    not_due: list[NotDue] = []
    if force and not issue_date:
        raise click.UsageError("--force goes with --date (an issue older than the max lateness)")
    if issue_date:
        results = build_dated(
            app.db,
            app.config,
            parse_issue_date(issue_date),
            now=app.now(),
            force=force,
            list_slug=list_slug,
            frequency=frequency,
            progress=_progress,
            failures=failures,
        )
    else:
        manual = build_now(
            app.db, app.config, now=app.now(), list_slug=list_slug, frequency=frequency,
            progress=_progress,
        )  # fmt: skip
        results, not_due, failures = manual.built, manual.not_due, manual.failures
    if not results and not failures and not not_due:
        click.echo("nothing to build: no list has active subscribers for that frequency")
    for result in results:
        click.echo(_describe(result))
    for check in not_due:
        click.echo(_describe_not_due(check))
    for failure in failures:
        click.echo(f"{failure.list_slug} {failure.frequency}: not built: {failure.error}", err=True)
    if failures:
        raise click.exceptions.Exit(1)


def _describe_not_due(check: NotDue) -> str:
    nxt = check.next
    local = nxt.send_at.astimezone(check.mailing_list.zone)
    return (
        f"{check.mailing_list.slug} {check.frequency}: nothing due ({check.reason});"
        f" next {nxt.label} at {local:%a %Y-%m-%d %H:%M} {local.tzname()}"
        f" = {nxt.send_at:%Y-%m-%d %H:%M} UTC"
    )


def _size(n: int) -> str:
    return f"{n:,} bytes"


@cli.command()
@click.option("--list", "list_slug", metavar="LIST", required=True, help="The list (slug).")
@click.option(
    "--frequency",
    type=click.Choice([str(f) for f in FREQUENCIES]),
    help="Default: the subscriber's (with --as), else daily.",
)
@click.option(
    "--date",
    "issue_date",
    metavar="YYYY-MM-DD",
    help="Issue date. Default: the latest issue that is due now.",
)
@click.option(
    "--as",
    "address",
    metavar="EMAIL",
    help="Preview this subscriber's message (default: the all-tags variant, sample reader).",
)
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Path(file_okay=False),
    default="preview",
    show_default=True,
    help="Folder for message.eml, message.html and message.txt.",
)
@click.option("--open", "open_", is_flag=True, help="Open message.html in the default browser.")
@pass_app
def preview(
    app: App,
    list_slug: str,
    frequency: str | None,
    issue_date: str | None,
    address: str | None,
    output: str,
    open_: bool,
) -> None:
    """Write the exact message a subscriber would get and print a report.

    message.eml is byte for byte what `digest send` sends to that subscriber; message.html and
    message.txt are its decoded parts. The report shows the subject, sections with article
    counts, HTML size against the budget, <style> size, links, recipients sharing the variant,
    and articles cut. An issue that is not built yet is rendered without storing anything.

    \b
    Example:
      digest preview --list world
      digest preview --list world --date 2025-01-21 --as ann@example.com -o /tmp/p --open
    """
    mlist = get_list(app.db, list_slug)
    result = preview_digest(
        app.db,
        app.config,
        mlist,
        frequency,
        parse_issue_date(issue_date) if issue_date else None,
        now=app.now(),
        secret=app.secret,
        address=address,
    )
    r = result.report
    click.echo(f"{r.list_slug} {r.frequency} {r.issue_date}, {r.period}")
    click.echo(
        f"variant: {r.tags_key or 'all tags'} · "
        + ("1 recipient gets it" if r.recipients == 1 else f"{r.recipients} recipients share it")
        + (f" · built {r.built_at[:16].replace('T', ' ')} UTC" if r.built and r.built_at else "")
    )
    if r.subject is not None:
        click.echo(f"Subject: {r.subject}")
    if r.sections:
        click.echo("Sections:")
        width = max(len(s.name) for s in r.sections)
        for s in r.sections:
            click.echo(
                f"  {s.name:<{width}}  {s.shown} article{'s' if s.shown != 1 else ''}"
                + (f" ({s.cut} cut)" if s.cut else "")
            )
    if r.render is not None:
        rr = r.render
        click.echo(
            f"HTML: {_size(rr.html_size)} of {_size(rr.html_budget)} budget"
            f" · <style> {_size(rr.style_size)} · {rr.links} links"
            f" · {rr.cut_count} articles cut"
        )
    for warning in r.warnings:
        click.echo(f"warning: {warning}")
    for note in r.notes:
        click.echo(f"note: {note}")
    if result.message is None:
        click.echo("no files written")
        return
    folder = Path(output)
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "message.eml": result.message,
        "message.html": (result.html or "").encode("utf-8"),
        "message.txt": (result.text or "").encode("utf-8"),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    click.echo("wrote " + ", ".join(str(folder / name) for name in files))
    if open_:
        webbrowser.open((folder / "message.html").resolve().as_uri())
