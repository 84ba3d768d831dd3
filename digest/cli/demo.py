"""``digest demo``: run the whole pipeline on sample data in a workspace of its own."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime

import click

from ..demo import DemoReport, run_demo
from .app import App, cli


def _parse_now(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO date-time", param_hint="--now") from None
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)


def _progress(message: str) -> None:
    click.echo(f"… {message}", err=True)


@cli.command()
@click.argument("directory", default="digest-demo", type=click.Path(file_okay=False))
@click.option(
    "--keep",
    is_flag=True,
    help="Reuse a previous demo workspace as it is instead of resetting it.",
)
@click.option("--now", "now_text", hidden=True, help="Run as of this UTC date-time (ISO).")
@click.pass_obj
def demo(app: App, directory: str, keep: bool, now_text: str | None) -> None:
    """Run the whole job on sample data in the workspace DIRECTORY (default ./digest-demo):
    ingest a sample feed, create two lists with about 50 subscribers, build the due daily and
    weekly digests, and send them over real SMTP to a local server that the demo starts (and
    stops) and that stores the messages in a Maildir inside the workspace.

    Running it again resets the workspace (--keep reuses it); a non-empty folder that is not a
    demo workspace is refused and left untouched. Nothing is left running afterwards.

    \b
    Example:
      digest demo
      digest demo /tmp/digest-demo --keep
    """
    now = _parse_now(now_text) or app.now()
    report = run_demo(directory, now=now, keep=keep, progress=_progress)
    _print_report(report)


def _print_report(report: DemoReport) -> None:
    paths = report.paths
    state = {
        "created": "created",
        "reset": "reset (the previous demo's files were removed; --keep reuses them)",
        "reused": "reused as it was (--keep)",
    }[report.workspace]
    click.echo(f"workspace {paths.root}: {state}")
    for source in report.ingest:
        click.echo(f"ingested {source.summary_line()}")
    for mlist in report.lists:
        made = "created" if mlist in report.lists_created else "exists"
        click.echo(
            f"list {mlist.slug} ({made}): {mlist.title!r}, tags {', '.join(mlist.tags)};"
            f" sent {mlist.send_time} {mlist.timezone}, weekly issue on {mlist.weekly_day}s"
        )
    for sync in report.subscribers:
        click.echo(sync.summary())

    click.echo("digests:")
    if not report.digests:
        click.echo("  none due")
    header = ("list", "frequency", "issue", "articles", "variants", "recipients", "")
    rows = [header]
    for built in report.digests:
        empty = sum(1 for v in built.variants if v.empty)
        rows.append(
            (
                built.mailing_list.slug,
                built.frequency,
                built.period.label,
                str(built.article_count),
                str(len(built.variants)),
                str(built.recipients),
                ("built" if built.new else "already built")
                + (
                    f"; {empty} variant{'s' if empty != 1 else ''} without articles, not sent"
                    if empty
                    else ""
                ),
            )
        )
    if report.digests:
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        for row in rows:
            click.echo(
                "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            )

    send = report.send
    host, port = report.smtp_address or ("127.0.0.1", 0)
    if send is not None and send.total:
        click.echo(
            f"sent {send.sent} messages over SMTP to the demo's server on {host}:{port}"
            f" (now stopped): deferred {send.deferred}, failed {send.failed},"
            f" skipped {send.skipped}"
        )
    else:
        click.echo(f"nothing to send (the demo's server on {host}:{port} is stopped)")
    click.echo(f"Maildir: {paths.maildir} ({report.maildir_messages} messages in new/)")
    if report.preview_html is not None:
        click.echo(
            f"open in a browser: {report.preview_html} ({report.preview_of}, all-tags variant)"
        )

    where = f"--db {shlex.quote(str(paths.db))} --config {shlex.quote(str(paths.config))}"
    click.echo("next:")
    click.echo(f"  digest {where} serve")
    click.echo("      web pages on http://127.0.0.1:8080/: digest archive, and (logged in) preview")
    click.echo(f"  digest {where} users add alice --role editor")
    click.echo("      an editor login for those pages (asks for a password)")
