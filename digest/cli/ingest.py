"""Commands for getting articles in and looking at them: ``ingest``, ``feeds add|list|remove``,
``fetch``, ``articles list|search``."""

from __future__ import annotations

import json
import sys

import click
from click._termui_impl import ProgressBar

from ..articles.reads import Article, list_articles, search_articles
from ..ingest.dates import parse_when
from ..ingest.documents import ArticleOverrides
from ..ingest.feeds import Feed, add_feed, list_feeds, remove_feed
from ..ingest.fulltext import PROGRESS_LABEL as FULL_TEXT_PROGRESS
from ..ingest.pipeline import SourceReport, fetch_feeds, ingest_sources
from .app import App, cli, pass_app

# Show a progress bar only when there is enough work for it to matter: many entries to store,
# or a few linked pages to download (each can take seconds).
PROGRESS_MIN_ENTRIES = 2000
PROGRESS_MIN_PAGES = 5
MAX_LISTED = 20  # rejections / warnings printed per source before "... and N more"


class _ProgressBars:
    """``progress(label, done, total)`` callback drawing one click progress bar per label on
    stderr."""

    def __init__(self, minimum: int):
        self.minimum = minimum
        self.bars: dict[str, ProgressBar[int]] = {}
        self.shown: dict[str, int] = {}

    def __call__(self, label: str, done: int, total: int) -> None:
        pages = label.startswith(FULL_TEXT_PROGRESS)
        if total < (PROGRESS_MIN_PAGES if pages else self.minimum):
            return
        bar = self.bars.get(label)
        if bar is None:
            bar = click.progressbar(length=total, label=label, file=sys.stderr)
            bar.__enter__()
            self.bars[label] = bar
            self.shown[label] = 0
        bar.update(done - self.shown[label])
        self.shown[label] = done
        if done >= total:
            bar.__exit__(None, None, None)

    def close(self) -> None:
        for label, bar in self.bars.items():
            if bar.length is None or self.shown[label] < bar.length:
                bar.__exit__(None, None, None)


def _untagged_line(reports: list[SourceReport]) -> None:
    """How many of the new articles have no tag, when some have none."""
    new = sum(r.new for r in reports)
    untagged = sum(r.untagged for r in reports)
    if untagged:
        click.echo(
            f"{untagged:,} of {new:,} new article{'s' if new != 1 else ''}"
            f" {'has' if untagged == 1 else 'have'} no tag: they only reach lists that cover"
            " every tag; see `digest tags rule --help`"
        )


def _print_details(items: list, prefix: str, *, err: bool = True) -> None:
    for item in items[:MAX_LISTED]:
        click.echo(f"  {prefix}{item}", err=err)
    if len(items) > MAX_LISTED:
        click.echo(f"  … and {len(items) - MAX_LISTED} more", err=err)


@cli.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("--tag", "tags", multiple=True, help="Add this tag to every article (repeatable).")
@click.option(
    "--since",
    metavar="DATE",
    help="Skip entries published before DATE (2025-01-20, 2025-01-20T08:00Z, or 7d / 36h ago).",
)
@click.option("--title", help="The article's title, instead of the one found (one SOURCE).")
@click.option(
    "--date",
    metavar="DATE",
    help="The article's publication date, instead of the one found (one SOURCE).",
)
@click.option("--author", help="The article's author, instead of the one found (one SOURCE).")
@click.option(
    "--full-text",
    is_flag=True,
    help="For a feed whose entries are only summaries: fetch each linked page and store its text.",
)
@pass_app
def ingest(
    app: App,
    sources: tuple[str, ...],
    tags: tuple[str, ...],
    since: str | None,
    title: str | None,
    date: str | None,
    author: str | None,
    full_text: bool,
) -> None:
    """Store the articles of each SOURCE: an RSS/Atom feed (URL or file), a JSON Feed, a JSON
    array or JSON Lines file of articles, a Markdown/HTML file with YAML front matter, a web
    page (an .html file, or a URL that answers with a page), a plain-text scrape (.txt), or a
    directory of those. Re-ingesting adds nothing new and updates changed articles.

    Prints new / updated / unchanged / rejected per source, and for a page or a text scrape
    what was extracted (title, date, author, words) so you can check it; --title, --date and
    --author correct it. Exits with status 1 if any entry was rejected or any source could not
    be read (the good entries are stored anyway).

    \b
    Example:
      digest ingest examples/world-news.xml
      digest ingest https://example.org/feed.xml --tag World
      digest ingest notes/ articles.jsonl --since 7d
      digest ingest https://news.example.org/2025/01/21/kenya-police-haiti --tag Kenya
      digest ingest scraped-post.txt --date 2025-01-21 --author "Jane Doe"
      digest ingest https://example.org/summaries.xml --full-text
    """
    now = app.now()
    since_at = parse_when(since, now) if since else None
    overrides = ArticleOverrides(
        title=title, author=author, published=parse_when(date, now) if date else None
    )
    if overrides and len(sources) != 1:
        raise click.UsageError(
            f"{overrides.options} set the fields of one article: give one SOURCE"
        )
    bars = _ProgressBars(PROGRESS_MIN_ENTRIES)
    try:
        reports = ingest_sources(
            app.db,
            sources,
            config=app.config,
            now=now,
            tags=tags,
            since=since_at,
            overrides=overrides,
            full_text=full_text,
            progress=bars,
        )
    finally:
        bars.close()
    failed = False
    for report in reports:
        click.echo(report.summary_line(), err=report.error is not None)
        _print_details(report.notes, "", err=False)
        _print_details(report.rejected, "rejected ")
        _print_details(report.warnings, "warning: ")
        failed = failed or not report.ok
    _untagged_line(reports)
    if failed:
        raise click.exceptions.Exit(1)


@cli.group()
def feeds() -> None:
    """Registered feeds that `digest fetch` polls.

    \b
    Example:
      digest feeds add https://example.org/feed.xml --tag World
      digest feeds add https://example.org/summaries.xml --full-text
      digest feeds list
      digest feeds remove https://example.org/feed.xml
    """


def _feed_line(feed: Feed) -> str:
    tag_text = f" [{', '.join(feed.tags)}]" if feed.tags else ""
    return f"{feed.url}{tag_text}" + (" full text" if feed.full_text else "")


@feeds.command("add")
@click.argument("url")
@click.option("--tag", "tags", multiple=True, help="Tag every article of this feed (repeatable).")
@click.option(
    "--full-text/--no-full-text",
    default=None,
    help="Fetch the linked page of every entry that is only a summary, and store its text.",
)
@pass_app
def feeds_add(app: App, url: str, tags: tuple[str, ...], full_text: bool | None) -> None:
    """Register a feed URL for `digest fetch` (adding tags, or turning --full-text on or off,
    if it is already registered).

    With --full-text, each entry that carries only a summary (no full content and under 200
    words, or text that ends like a teaser: "…", "Read more") gets the text of the page it
    links to; if that page cannot be fetched or has no more text, the summary is kept.

    \b
    Example:
      digest feeds add https://example.org/world.xml --tag World --tag Haiti
      digest feeds add https://example.org/summaries.xml --full-text
    """
    feed, created = add_feed(app.db, url, tags=tags, full_text=full_text, now=app.now())
    click.echo(f"{'added' if created else 'already registered'}: {_feed_line(feed)}")


@feeds.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array.")
@pass_app
def feeds_list(app: App, as_json: bool) -> None:
    """Show registered feeds with their tags and last fetch result.

    \b
    Example:
      digest feeds list
      digest feeds list --json
    """
    found = list_feeds(app.db)
    if as_json:
        click.echo(json.dumps([f.to_json() for f in found], indent=2, ensure_ascii=False))
        return
    if not found:
        click.echo("no feeds registered (add one with `digest feeds add URL`)")
        return
    for f in found:
        if f.last_fetched_at is None:
            state = "never fetched"
        elif (
            f.last_error
            and f.last_error_at is not None
            and (f.last_success_at is None or f.last_error_at >= f.last_success_at)
        ):
            state = f"error {f.last_error_at:%Y-%m-%d %H:%M}Z: {f.last_error}"
        else:
            state = f"ok {f.last_success_at:%Y-%m-%d %H:%M}Z"
        if f.full_text and f.full_text_failed:
            n = f.full_text_failed
            state += f"; full text failed for {n} entr{'y' if n == 1 else 'ies'}"
        click.echo(f"{_feed_line(f)}  ({state})")


@feeds.command("remove")
@click.argument("url")
@pass_app
def feeds_remove(app: App, url: str) -> None:
    """Stop polling a feed (its articles stay in the store).

    \b
    Example:
      digest feeds remove https://example.org/world.xml
    """
    feed = remove_feed(app.db, url)
    click.echo(f"removed: {feed.url}")


@cli.command()
@pass_app
def fetch(app: App) -> None:
    """Poll every registered feed once (conditional GET), store new and changed articles, and
    record each feed's last success or error. Exits with status 1 if any feed failed.

    \b
    Example:
      digest fetch
      digest --db /var/lib/digest/news.db fetch
    """
    bars = _ProgressBars(20)
    try:
        reports = fetch_feeds(app.db, app.config, now=app.now(), progress=bars)
    finally:
        bars.close()
    if not reports:
        click.echo("no feeds registered (add one with `digest feeds add URL`)")
        return
    for r in reports:
        click.echo(r.summary_line(), err=r.status == "failed")
        if r.report is not None:
            _print_details(r.report.notes, "", err=False)
            _print_details(r.report.rejected, "rejected ")
            _print_details(r.report.warnings, "warning: ")
    _untagged_line([r.report for r in reports if r.report is not None])
    if not all(r.ok for r in reports):
        raise click.exceptions.Exit(1)


@cli.group()
def articles() -> None:
    """Read stored articles.

    \b
    Example:
      digest articles list --tag Haiti --since 7d
      digest articles search "cholera vaccine" --json
    """


def _echo_articles(found: list[Article], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([a.to_json() for a in found], indent=2, ensure_ascii=False))
        return
    if not found:
        click.echo("no articles")
        return
    width = len(str(max(a.id for a in found)))
    for a in found:
        tag_text = f"  [{', '.join(a.tag_names)}]" if a.tags else ""
        click.echo(f"{a.id:>{width}}  {a.published_at:%Y-%m-%d %H:%M}  {a.title}{tag_text}")


@articles.command("list")
@click.option("--tag", "tags", multiple=True, help="Only articles with this tag (repeatable: any).")
@click.option("--since", metavar="DATE", help="Published at or after DATE (or 7d, 36h ago).")
@click.option("--until", metavar="DATE", help="Published before DATE.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array.")
@pass_app
def articles_list(
    app: App,
    tags: tuple[str, ...],
    since: str | None,
    until: str | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """List stored articles, newest first.

    \b
    Example:
      digest articles list
      digest articles list --tag Kenya --tag Haiti --since 2025-01-20
      digest articles list --json --limit 5
    """
    now = app.now()
    found = list_articles(
        app.db,
        tags=tags,
        since=parse_when(since, now) if since else None,
        until=parse_when(until, now) if until else None,
        limit=limit,
    )
    _echo_articles(found, as_json)


@articles.command("search")
@click.argument("query")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array.")
@pass_app
def articles_search(app: App, query: str, limit: int, as_json: bool) -> None:
    """Full-text search over titles, summaries and text (every word must match), best first.

    \b
    Example:
      digest articles search cholera
      digest articles search "solar grid" --json
    """
    _echo_articles(search_articles(app.db, query, limit=limit), as_json)
