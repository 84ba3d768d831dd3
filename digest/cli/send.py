"""``digest send`` and ``digest deliveries``: send what the ledger owes, and look at the ledger."""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack

import click
from click._termui_impl import ProgressBar

from ..delivery import ledger
from ..delivery.notices import flush_notices
from ..delivery.send import SendReport, send_pending
from ..delivery.transports import transport_from_config
from ..feedback import events
from .app import App, cli, pass_app


class _Progress:
    """A progress bar on stderr, created on the first report (when the total is known). Only
    on a terminal: under cron or the scheduler the summary line is enough."""

    def __init__(self, stack: ExitStack):
        self.stack = stack
        self.bar: ProgressBar[int] | None = None
        self.shown = 0
        self.enabled = sys.stderr.isatty()
        self.started = False

    def __call__(self, report: SendReport) -> None:
        if not self.started:
            self.started = True
            _released(report)
        if not self.enabled:
            return
        if self.bar is None:
            self.bar = self.stack.enter_context(
                click.progressbar(length=report.total, label="sending", file=sys.stderr)
            )
        self.bar.label = (
            f"sent {report.sent} · deferred {report.deferred} · failed {report.failed}"
            + (f" · {report.rate:.0f} msg/s" if report.sent else "")
        )
        self.bar.update(report.done - self.shown)
        self.shown = report.done


def _released(report: SendReport) -> None:
    if report.released:
        click.echo(f"released {report.released} deliveries leased by senders that died", err=True)


def _summary(report: SendReport) -> None:
    if report.planned is not None:
        _released(report)
        if not report.planned:
            click.echo("nothing to send")
        for p in report.planned:
            skip = f", {p.would_skip} would be skipped (unsubscribed/suppressed)"
            click.echo(
                f"digest {p.digest_id} ({p.list_slug} {p.frequency} {p.period_label}): "
                f"{p.due} to send{skip if p.would_skip else ''}; first: {', '.join(p.first_recipients)}"
            )
        if report.planned:
            click.echo(f"dry run: {report.total} deliveries would be sent; nothing was sent")
        return
    if report.total == 0:
        _released(report)
        click.echo("nothing to send")
        return
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    rate = f" ({report.rate:.0f} messages/s)" if report.sent else ""
    click.echo(
        f"sent {report.sent}, deferred {report.deferred}, failed {report.failed}, "
        f"skipped {report.skipped} in {report.elapsed:.1f} s{rate}"
    )
    if not report.sent:
        # Nothing went out: say why, not only how many.
        for line in report.explanation():
            click.echo(f"  {line}")
    for f in report.failures[:20]:
        click.echo(f"  failed: {f.email} (digest {f.digest_id}): {f.reply}")
    if len(report.failures) > 20:
        click.echo(f"  … and {len(report.failures) - 20} more (see `digest deliveries`)")
    if report.stopped:
        click.echo(f"stopped early: {report.stopped}", err=True)


@cli.command()
@click.option("--list", "list_slug", metavar="SLUG", help="Only this list's digests.")
@click.option("--digest", "digest_id", type=int, metavar="ID", help="Only this digest.")
@click.option("--limit", type=click.IntRange(min=0), help="Send at most N deliveries.")
@click.option(
    "--smtp",
    "smtp_url",
    metavar="URL",
    help="Use this relay instead of the configured ones (smtp://, smtp+starttls://, smtps://).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1, max=500),
    help="SMTP connections at once [default: [send] concurrency, 20].",
)
@click.option(
    "--rate", type=click.FloatRange(min=0), help="At most R messages per second (0 = no limit)."
)
@click.option(
    "--outbox",
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="Write messages into this Maildir instead of sending them.",
)
@click.option("--dry-run", is_flag=True, help="Send nothing; show what would be sent.")
@click.option(
    "--recover",
    is_flag=True,
    help="First release deliveries leased by senders that are no longer running.",
)
@click.option(
    "--retry-now", is_flag=True, help="Also send deferred deliveries before their retry time."
)
@click.option(
    "--allow-insecure-links",
    is_flag=True,
    help="Send even though [site] base_url is plain http on a public host (links and one-click"
    " unsubscribe then go over http).",
)
@pass_app
def send(
    app: App,
    list_slug: str | None,
    digest_id: int | None,
    limit: int | None,
    smtp_url: str | None,
    concurrency: int | None,
    rate: float | None,
    outbox: str | None,
    dry_run: bool,
    recover: bool,
    retry_now: bool,
    allow_insecure_links: bool,
) -> None:
    """Send the digests' queued and due deferred deliveries, then the confirmation emails
    that the web pages queued (not with --dry-run or --outbox).

    Each outcome is recorded as soon as the server answers. Exit status 1 if any delivery
    failed permanently in this run. The SMTP password is read from DIGEST_SMTP_PASSWORD.

    \b
    Example:
      digest send
      digest send --list world --dry-run
      digest send --smtp smtp+starttls://news@smtp.example.com:587 --rate 20
      digest send --outbox review-maildir --limit 10
      digest send --recover          # after a crash: do not wait for its leases to expire
    """
    config = app.config
    transport = None
    if not dry_run and (smtp_url or outbox):
        transport = transport_from_config(config, smtp_url=smtp_url, outbox=outbox, rate=rate)
    with ExitStack() as stack:
        report = send_pending(
            app.db,
            config,
            secret=app.secret,
            clock=app.now,
            transport=transport,
            list_slug=list_slug,
            digest_id=digest_id,
            limit=limit,
            concurrency=concurrency,
            rate=rate,
            recover=recover,
            retry_now=retry_now,
            dry_run=dry_run,
            progress=_Progress(stack),
            allow_insecure_links=allow_insecure_links,
        )
    _summary(report)
    if not dry_run and outbox is None:
        # Confirmation emails the web pages queued (their own worker normally sends them).
        notices = flush_notices(
            app.db, config, secret=app.secret, now=app.now(), transport=transport
        )
        if notices.total or notices.error:
            click.echo(
                f"notices: sent {notices.sent}, deferred {notices.deferred}, failed "
                f"{notices.failed}, skipped {notices.skipped}"
                + (f"; stopped: {notices.error}" if notices.error else "")
            )
    if report.failed:
        sys.exit(1)


@cli.command()
@click.option("--digest", "digest_id", type=int, metavar="ID", help="Only this digest.")
@click.option(
    "--status",
    type=click.Choice([str(s) for s in ledger.STATUSES]),
    help="Only deliveries with this status (and list them).",
)
@click.option("--json", "as_json", is_flag=True, help="Output JSON.")
@pass_app
def deliveries(app: App, digest_id: int | None, status: str | None, as_json: bool) -> None:
    """Show the delivery ledger: counts per digest and status, how many came back as bounces
    (hard or soft) and complaints after sending, and the failures with the server's replies.

    \b
    Example:
      digest deliveries
      digest deliveries --digest 3 --status deferred
      digest deliveries --json
    """
    db = app.db
    counts = ledger.summary(db, digest_id=digest_id, status=status)
    shown = [status] if status else ["failed"]
    rows = ledger.listing(db, statuses=shown, digest_id=digest_id, limit=None if status else 50)
    # What came back after sending (bounce mailbox, webhooks): deliveries per kind.
    feedback = events.counts_by_digest(db, [e["digest_id"] for e in counts])
    none = events.FeedbackCounts()
    if as_json:
        for entry in counts:
            entry["feedback"] = feedback.get(entry["digest_id"], none).as_json()
        click.echo(json.dumps({"digests": counts, "deliveries": rows}, indent=2))
        return
    if not counts:
        click.echo("no deliveries" + (f" for digest {digest_id}" if digest_id else ""))
        return
    columns = ledger.STATUSES
    click.echo(
        f"{'digest':>6}  {'list':<16} {'period':<18}"
        + "".join(f"{c:>9}" for c in columns)
        + f"{'bounced':>9}{'complaints':>11}"
    )
    for entry in counts:
        period = f"{entry['frequency']} {entry['period']}"
        back = feedback.get(entry["digest_id"], none)
        click.echo(
            f"{entry['digest_id']:>6}  {entry['list']:<16} {period:<18}"
            + "".join(f"{entry['counts'][c]:>9}" for c in columns)
            + f"{back.bounced:>9}{back.complaint:>11}"
        )
    if rows:
        click.echo("")
        click.echo(f"{shown[0]}:")
        for r in rows:
            when = f", next try {r['next_attempt_at'][:16]}" if r["next_attempt_at"] else ""
            click.echo(
                f"  {r['email']} (digest {r['digest_id']}, {r['attempts']} attempts{when}): "
                f"{r['reply'] or ''}"
            )
