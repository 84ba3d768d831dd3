"""``digest subscribers`` (add, confirm, unsubscribe, remove, list, show, import, export,
sync, remind) and ``digest suppress`` / ``digest suppressed``."""

from __future__ import annotations

import json
import re
import sys
from datetime import timedelta

import click

from ..addresses import normalise_email
from ..audience import csvfiles, suppressions
from ..audience import subscriptions as subs
from ..audience.lists import get_list
from ..audience.records import FREQUENCIES, Subscription, SubscriptionStatus
from ..delivery import optin
from ..delivery.notices import NoticeReport
from ..errors import DigestError
from .app import App, cli, pass_app


@cli.group(name="subscribers")
def subscribers_group() -> None:
    """Subscribers and their subscriptions to lists.

    \b
    Example:
      digest subscribers add ann@example.com --list world --name Ann --confirmed
      digest subscribers import people.csv --list world --dry-run
      digest subscribers show ann@example.com
    """


def _tags(value: str | None) -> list[str]:
    return [] if not value else value.split(",")


_NO_EMAIL = click.option(
    "--no-email", is_flag=True,
    help="Add pending people without sending them the confirmation email (ask them later with "
    "`digest subscribers remind`).",
)  # fmt: skip


def _sent(report: NoticeReport | None, what: str) -> None:
    """One line saying whether the emails just queued went out."""
    if report is None:
        return
    if report.error:
        click.echo(f"{what} queued, not sent yet: {report.error}; `digest run` or "
                   "`digest send` sends it when the relay can be reached")  # fmt: skip
    elif report.deferred or report.failed:
        click.echo(f"{what}: {report.sent} sent, {report.deferred} deferred (retried later), "
                   f"{report.failed} failed")  # fmt: skip
    else:
        click.echo(f"{what}: {report.sent} sent")


def _line(sub: Subscription) -> str:
    tags = ",".join(sub.tags) or "*"
    return f"{sub.email}\t{sub.list_slug}\t{sub.status}\t{sub.frequency}\t{tags}\t{sub.name or ''}"


@subscribers_group.command(name="add")
@click.argument("email")
@click.option("--list", "list_slug", required=True, metavar="SLUG", help="The list.")
@click.option("--name", help="The subscriber's name.")
@click.option("--tags", metavar="A,B", help="Only these of the list's tags (default: all).")
@click.option("--frequency", type=click.Choice([str(f) for f in FREQUENCIES]),
              help="How often (default: the list's default frequency).")  # fmt: skip
@click.option("--confirmed", is_flag=True,
              help="The person has already agreed: active at once instead of pending.")  # fmt: skip
@click.option("--force", is_flag=True,
              help="Subscribe again an address that unsubscribed, bounced, complained or is "
              "suppressed (needs --reason).")  # fmt: skip
@click.option("--reason", help="Why; recorded in the address's history.")
@_NO_EMAIL
@pass_app
def add(
    app: App,
    email: str,
    list_slug: str,
    name: str | None,
    tags: str | None,
    frequency: str | None,
    confirmed: bool,
    force: bool,
    reason: str | None,
    no_email: bool,
) -> None:
    """Subscribe EMAIL to a list (the address in any letter case is one person). Without
    --confirmed the subscription is pending until the person confirms, and they are sent the
    confirmation email now (queued, and retried by `digest run` or `digest send` if the relay
    cannot be reached), unless --no-email.

    \b
    Example:
      digest subscribers add ann@example.com --list world --name "Ann Example" --confirmed
      digest subscribers add bob@example.org --list world --tags Kenya --frequency weekly
      digest subscribers add dee@example.org --list world --no-email
      digest subscribers add carol@example.org --list world --confirmed --force \\
          --reason "asked by phone on 2025-01-20 to be subscribed again"
    """
    mlist = get_list(app.db, list_slug)
    added = optin.add_subscriber(
        app.db, app.config, mlist, email, name=name, tags=_tags(tags), frequency=frequency,
        confirmed=confirmed, source="cli", now=app.now(), force=force, reason=reason,
        ask=not no_email, send=not no_email, secret=b"" if no_email else app.secret,
    )  # fmt: skip
    sub = added.subscription
    click.echo(f"{sub.email} is {sub.status} on list {mlist.slug} ({sub.frequency})")
    if no_email and sub.status == SubscriptionStatus.PENDING:
        click.echo(f"no confirmation email sent (--no-email): `digest subscribers remind "
                   f"--list {mlist.slug}` asks them")  # fmt: skip
    _sent(added.sent, "confirmation email")


@subscribers_group.command(name="confirm")
@click.argument("email")
@click.option("--list", "list_slug", required=True, metavar="SLUG", help="The list.")
@click.option("--force", is_flag=True, help="Re-activate an ended subscription (needs --reason).")
@click.option("--reason", help="Why; recorded in the address's history.")
@pass_app
def confirm(app: App, email: str, list_slug: str, force: bool, reason: str | None) -> None:
    """Confirm EMAIL's pending subscription to a list (it becomes active).

    \b
    Example:
      digest subscribers confirm ann@example.com --list world
    """
    mlist = get_list(app.db, list_slug)
    person = subs.get_subscriber(app.db, email)
    sub = subs.confirm_subscription(app.db, person.id, mlist.id, source="cli", now=app.now(),
                                    force=force, reason=reason)  # fmt: skip
    click.echo(f"{sub.email} is {sub.status} on list {mlist.slug}")


@subscribers_group.command(name="unsubscribe")
@click.argument("email")
@click.option("--list", "list_slug", metavar="SLUG", help="Unsubscribe from this list.")
@click.option("--all", "all_lists", is_flag=True, help="Unsubscribe from every list.")
@click.option("--reason", default="unsubscribed by an administrator", show_default=True,
              help="Recorded in the address's history.")  # fmt: skip
@pass_app
def unsubscribe(
    app: App, email: str, list_slug: str | None, all_lists: bool, reason: str | None
) -> None:
    """Unsubscribe EMAIL from one list (--list) or from every list (--all).

    \b
    Example:
      digest subscribers unsubscribe ann@example.com --list world
      digest subscribers unsubscribe ann@example.com --all --reason "asked by email"
    """
    if bool(list_slug) == all_lists:
        raise click.UsageError("give exactly one of --list SLUG or --all")
    changed = subs.unsubscribe(app.db, email, list_slug=list_slug, source="cli", reason=reason,
                               now=app.now())  # fmt: skip
    if not changed:
        click.echo(f"{email}: no pending or active subscription to end")
    for sub in changed:
        click.echo(f"{sub.email} unsubscribed from list {sub.list_slug}")


@subscribers_group.command(name="remove")
@click.argument("email")
@pass_app
def remove(app: App, email: str) -> None:
    """Delete EMAIL's personal data (name, subscriptions, history). An address that had
    unsubscribed stays on the suppression list so it is never mailed again.

    \b
    Example:
      digest subscribers remove ann@example.com
    """
    kept = subs.remove_subscriber(app.db, email, now=app.now())
    address = normalise_email(email)
    if kept:
        click.echo(f"removed {address}; the address stays on the suppression list")
    else:
        click.echo(f"removed {address}")


@subscribers_group.command(name="list")
@click.option("--list", "list_slug", metavar="SLUG", help="Only this list.")
@click.option(
    "--status", type=click.Choice([str(s) for s in SubscriptionStatus]), help="Only this status."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON array, an object per subscription.")
@pass_app
def list_(app: App, list_slug: str | None, status: str | None, as_json: bool) -> None:
    """List subscriptions, one per line (tab-separated: email, list, status, frequency, tags
    ('*' = all of the list's tags), name). Streams: starts printing at once on any size.

    \b
    Example:
      digest subscribers list --list world --status active
      digest subscribers list --json > subscribers.json
    """
    rows = subs.iter_subscriptions(app.db, list_slug, status)
    out = sys.stdout
    if as_json:
        out.write("[")
        sep = "\n"
        for sub in rows:
            out.write(sep + json.dumps(sub.as_json(), ensure_ascii=False))
            sep = ",\n"
        out.write("\n]\n")
        return
    for sub in rows:
        out.write(_line(sub) + "\n")


@subscribers_group.command(name="show")
@click.argument("email")
@pass_app
def show(app: App, email: str) -> None:
    """Everything about EMAIL: subscriptions, suppression, and every status change with its
    time, source and reason (why did this person stop getting the digest?).

    \b
    Example:
      digest subscribers show ann@example.com
    """
    h = subs.subscriber_history(app.db, email)
    click.echo(h.email + (f" ({h.subscriber.name})" if h.subscriber and h.subscriber.name else ""))
    if h.subscriber:
        click.echo(f"  since {h.subscriber.created_at[:16].replace('T', ' ')} UTC")
    elif h.suppression is not None and h.suppression.erased:
        click.echo("  personal data deleted at the person's request; only a hash of the address"
                   " is kept, so it is never mailed again")  # fmt: skip
    else:
        click.echo("  personal data removed")
    for sub in h.subscriptions:
        tags = ", ".join(sub.tags) or "all tags"
        click.echo(f"  list {sub.list_slug}: {sub.status}, {sub.frequency}, {tags}")
    if h.suppression:
        click.echo(
            f"  suppressed since {h.suppression.created_at[:10]} ({h.suppression.source}): "
            f"{h.suppression.reason or 'no reason given'}"
        )
    click.echo("history:")
    for e in h.events:
        change = f"{e.old_status} -> {e.new_status}" if e.old_status else e.new_status
        where = f" [{e.list_slug}]" if e.list_slug else ""
        why = f": {e.reason}" if e.reason else ""
        click.echo(f"  {e.at[:19].replace('T', ' ')}  {change}{where} via {e.source}{why}")


def _print_report(report: csvfiles.Report, *, verbose_plan: bool = False) -> None:
    for w in report.warnings:
        click.echo(f"warning: {w}", err=True)
    problems = [("rejected", p) for p in report.rejected] + [("skipped", p) for p in report.skipped]
    for kind, p in sorted(problems, key=lambda kp: kp[1].line):
        click.echo(f"{report.path}: line {p.line}: {kind}: {p.message}")
    if verbose_plan:
        for email in report.added:
            click.echo(f"  + {email}")
        for email in report.activated:
            click.echo(f"  ^ {email} (activated)")
        for email in report.updated:
            click.echo(f"  ~ {email}")
        for email in report.removed:
            click.echo(f"  - {email}")
    click.echo(("dry run, nothing written: " if report.dry_run else "") + report.summary())


def _asked(report: csvfiles.Report, *, no_email: bool) -> None:
    if report.asked and no_email:
        click.echo(f"{report.asked} pending, not emailed (--no-email): `digest subscribers "
                   f"remind --list {report.list_slug}` asks them")  # fmt: skip


@subscribers_group.command(name="import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--list", "list_slug", required=True, metavar="SLUG", help="The list.")
@click.option("--dry-run", is_flag=True, help="Report what would happen; write nothing.")
@click.option("--confirmed", is_flag=True, help="New subscribers are active at once.")
@_NO_EMAIL
@pass_app
def import_(
    app: App, file: str, list_slug: str, dry_run: bool, confirmed: bool, no_email: bool
) -> None:
    """Import subscribers from a CSV file (header with 'email' and optionally 'name', 'tags'
    separated by ';', 'frequency', and the 'status', 'created_at', 'confirmed_at' of an
    export; see subscribers/README.md). Every valid row is applied, every bad row reported
    with its line number; exit status 1 if any row was rejected. Addresses that unsubscribed,
    bounced, complained or are suppressed are skipped. People added as pending are sent the
    confirmation email, unless --no-email.

    \b
    Example:
      digest subscribers import people.csv --list world --dry-run
      digest subscribers import people.csv --list world --confirmed
    """
    mlist = get_list(app.db, list_slug)
    parsed = csvfiles.parse_csv(file, mlist)
    with click.progressbar(length=len(parsed.rows), label="importing", file=sys.stderr,
                           hidden=not sys.stderr.isatty()) as bar:  # fmt: skip
        result = optin.apply_import(
            app.db, app.config, mlist, parsed, confirmed=confirmed, dry_run=dry_run,
            source="import", now=app.now(), ask=not no_email, send=not no_email,
            secret=b"" if no_email or dry_run else app.secret, progress=bar.update,
        )  # fmt: skip
    (report,) = result.reports
    assert isinstance(report, csvfiles.Report)
    _print_report(report)
    _asked(report, no_email=no_email)
    _sent(result.sent, "confirmation emails")
    if not report.ok:
        raise click.ClickException(f"{len(report.rejected)} row(s) rejected, see above")


@subscribers_group.command(name="export")
@click.option("--list", "list_slug", required=True, metavar="SLUG", help="The list.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="File (default: stdout).")
@pass_app
def export(app: App, list_slug: str, output: str | None) -> None:
    """Export a list's subscribers as CSV, in the import format, with each subscription's
    status, created_at and confirmed_at (importing the file restores them).

    \b
    Example:
      digest subscribers export --list world -o world.csv
    """
    if output:
        n = csvfiles.export_csv(app.db, list_slug, output)
        click.echo(f"wrote {n} subscriber(s) to {output}", err=True)
    else:
        csvfiles.write_csv(app.db, list_slug, sys.stdout)


@subscribers_group.command(name="sync")
@click.argument("directory", default="subscribers", type=click.Path(file_okay=False))
@click.option("--dry-run", is_flag=True, help="Show the plan; write nothing.")
@click.option("--confirmed", is_flag=True, help="New subscribers are active at once.")
@_NO_EMAIL
@pass_app
def sync(app: App, directory: str, dry_run: bool, confirmed: bool, no_email: bool) -> None:
    """Make each list match DIRECTORY/SLUG.csv (default: subscribers/): add or update the
    addresses in the file and unsubscribe those that left it. Ended or suppressed addresses
    are never re-activated. Exit status 1 if any file or row was rejected.

    \b
    Example:
      digest subscribers sync --dry-run
      digest subscribers sync subscribers/ --confirmed
    """
    failed = 0
    synced = optin.sync_subscribers(
        app.db, app.config, directory, confirmed=confirmed, dry_run=dry_run, now=app.now(),
        ask=not no_email, send=not no_email, secret=b"" if no_email or dry_run else app.secret,
    )  # fmt: skip
    for result in synced.reports:
        if isinstance(result, DigestError):
            click.echo(f"error: {result}", err=True)
            failed += 1
            continue
        _print_report(result, verbose_plan=True)
        _asked(result, no_email=no_email)
        failed += not result.ok
    _sent(synced.sent, "confirmation emails")
    if not synced.reports:
        click.echo(f"{directory}: no SLUG.csv files")
    if failed:
        raise click.ClickException(f"{failed} file(s) had errors, see above")


_AGE = re.compile(r"(\d+(?:\.\d+)?)\s*([dhm])\Z")


def _age(value: str | None) -> timedelta:
    if value is None:
        return timedelta(0)
    m = _AGE.match(value.strip().lower())
    if not m:
        raise click.BadParameter(f"{value!r} is not an age such as 3d, 12h or 90m")
    unit = {"d": "days", "h": "hours", "m": "minutes"}[m.group(2)]
    return timedelta(**{unit: float(m.group(1))})


@subscribers_group.command(name="remind")
@click.option("--list", "list_slug", required=True, metavar="SLUG", help="The list.")
@click.option("--older-than", metavar="AGE",
              help="Only those last asked at least this long ago: 3d, 12h, 90m (default: all).")  # fmt: skip
@pass_app
def remind(app: App, list_slug: str, older_than: str | None) -> None:
    """Ask the list's pending people again to confirm: a confirmation email to those never
    asked (added with --no-email), a reminder with a new link to those asked before, each at
    most [subscribers] max_reminders times (default 2).

    \b
    Example:
      digest subscribers remind --list world
      digest subscribers remind --list world --older-than 3d
    """
    age = _age(older_than)
    mlist = get_list(app.db, list_slug)
    done = optin.remind(app.db, app.config, mlist, now=app.now(), older_than=age, send=True,
                        secret=app.secret)  # fmt: skip
    click.echo(
        f"{mlist.slug}: {done.asked} asked for the first time, {done.reminded} reminded, "
        f"{done.capped} at the limit of {app.config.subscribers.max_reminders} reminders, "
        f"{done.recent} asked too recently"
    )
    _sent(done.sent, "emails")


@cli.command(name="suppress")
@click.argument("email")
@click.option("--reason", help="Why; shown by `digest suppressed`.")
@pass_app
def suppress(app: App, email: str, reason: str | None) -> None:
    """Put EMAIL on the global suppression list: it gets nothing from any list.

    \b
    Example:
      digest suppress spamtrap@example.com --reason "spam trap reported by the relay"
    """
    address = normalise_email(email)
    if suppressions.suppress(app.db, address, reason, source="cli", now=app.now()):
        click.echo(f"suppressed {address}")
    else:
        click.echo(f"{address} was already suppressed")


@cli.command(name="suppressed")
@pass_app
def suppressed(app: App) -> None:
    """List the suppressed addresses with when, how and why.

    \b
    Example:
      digest suppressed
    """
    any_ = False
    for s in suppressions.iter_suppressions(app.db):
        any_ = True
        shown = f"(erased; kept as {s.email[:19]}…)" if s.erased else s.email
        click.echo(f"{shown}\t{s.created_at[:10]}\t{s.source}\t{s.reason or ''}")
    if not any_:
        click.echo("no suppressed addresses")
