"""``digest tags``: see every tag, rename, merge, hide and unhide tags, and keep the editors' tag
rules (``tags rule add|list|remove``, ``tags apply``). Thin: each command is one call to
``articles.tagstore`` or ``audience.listtags``."""

from __future__ import annotations

import json

import click

from ..articles import tagstore
from ..articles.tagrules import RuleField
from ..audience import listtags
from ..ingest.dates import parse_when
from .app import App, cli, pass_app


def _echo_report(lines: list[str]) -> None:
    """The first line as it is, the details under it indented."""
    for n, line in enumerate(lines):
        click.echo(line if n == 0 else f"  {line}")


@cli.group(name="tags")
def tags_group() -> None:
    """Tags: where articles' sections come from. Rename, merge and hide them, and tag what
    feeds don't with rules.

    \b
    Example:
      digest tags list
      digest tags rule add Haiti --match "Haïti"
      digest tags apply --since 30d
    """


@tags_group.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array.")
@pass_app
def list_(app: App, as_json: bool) -> None:
    """Every tag with its article count, the dates of its first and last article, its rules,
    and the lists whose digests show it; then how many articles have no tag.

    \b
    Example:
      digest tags list
      digest tags list --json
    """
    found = listtags.tag_overview(app.db)
    untagged = tagstore.count_untagged(app.db)
    if as_json:
        click.echo(json.dumps([t.to_json() for t in found], indent=2, ensure_ascii=False))
        return
    if found:
        header = ("tag", "articles", "first", "last", "rules", "lists")
        rows = [
            (
                t.stats.tag.name + (" (hidden)" if t.stats.tag.hidden else ""),
                f"{t.stats.articles:,}",
                f"{t.stats.first:%Y-%m-%d}" if t.stats.first else "-",
                f"{t.stats.last:%Y-%m-%d}" if t.stats.last else "-",
                str(t.stats.rules or "-"),
                ", ".join(t.lists) or "-",
            )
            for t in found
        ]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for r in [header, *rows]:
            cells = [r[0].ljust(widths[0]), r[1].rjust(widths[1])]
            cells += [c.ljust(w) for c, w in zip(r[2:], widths[2:], strict=True)]
            click.echo("  ".join(cells).rstrip())
    else:
        click.echo("no tags yet")
    if untagged:
        click.echo(
            f"{listtags.articles_text(untagged)} without a tag: they only reach lists that cover every tag"
            " (see `digest tags rule --help`)"
        )


@tags_group.command()
@click.argument("old")
@click.argument("new")
@pass_app
def rename(app: App, old: str, new: str) -> None:
    """Rename tag OLD to NEW, in the lists that cover it too. Later articles that still say
    OLD land in the renamed tag.

    \b
    Example:
      digest tags rename "arts and culture" "Arts & Culture"
    """
    _echo_report(listtags.rename_tag(app.db, old, new, now=app.now()).report_lines())


@tags_group.command()
@click.argument("into")
@click.argument("others", nargs=-1, required=True)
@pass_app
def merge(app: App, into: str, others: tuple[str, ...]) -> None:
    """Merge the tags OTHERS into tag INTO: their articles, rules, lists and subscribers move to
    INTO, and later articles tagged with any of them land in INTO.

    \b
    Example:
      digest tags merge Kenya kenya-news "Kenya News"
    """
    _echo_report(listtags.merge_tags(app.db, into, others, now=app.now()).report_lines())


@tags_group.command()
@click.argument("tag")
@pass_app
def hide(app: App, tag: str) -> None:
    """Hide TAG: it stays on its articles, but is never a section of a digest and never offered
    to subscribers (e.g. Featured, Uncategorized).

    \b
    Example:
      digest tags hide Featured
    """
    found = tagstore.set_hidden(app.db, tag, True)
    click.echo(f"hid {found.name}: never a section, never offered to subscribers")


@tags_group.command()
@click.argument("tag")
@pass_app
def unhide(app: App, tag: str) -> None:
    """Show TAG again as a section and on the subscribe pages.

    \b
    Example:
      digest tags unhide Featured
    """
    found = tagstore.set_hidden(app.db, tag, False)
    click.echo(f"{found.name} is shown again")


@tags_group.group(name="rule")
def rule_group() -> None:
    """Tag rules: give a tag to the articles whose title, text, URL, author or source matches
    a keyword (whole words, any case, any script) or an RE2 regex. Rules tag every new or
    changed article at ingest; `digest tags apply` re-applies them to stored articles.

    \b
    Example:
      digest tags rule add Haiti --match "Haïti"
      digest tags rule add Haiti --match "Port-au-Prince" --field text
      digest tags rule add Sport --match "/sports?/" --field url --regex
      digest tags rule list
      digest tags rule remove 3
    """


@rule_group.command(name="add")
@click.argument("tag")
@click.option("--match", "pattern", required=True, metavar="PATTERN", help="Keyword or regex.")
@click.option(
    "--field",
    type=click.Choice([f.value for f in RuleField]),
    default=RuleField.TITLE.value,
    show_default=True,
    help="The part of the article to look at.",
)
@click.option("--feed", metavar="URL", help="Only articles ingested from this feed or file.")
@click.option("--regex", is_flag=True, help="PATTERN is an RE2 regular expression.")
@pass_app
def rule_add(app: App, tag: str, pattern: str, field: str, feed: str | None, regex: bool) -> None:
    """Add a rule giving TAG to articles whose --field matches --match. A keyword matches
    whole words, ignoring case ("Kenya" matches "Kenya's", not "Kenyan"; "Kenya*" matches
    both); --regex takes an RE2 expression (no lookaround, no backreferences).

    \b
    Example:
      digest tags rule add Haiti --match "Haïti"
      digest tags rule add Climate --match "drought relief" --field text
      digest tags rule add Sport --match "/sports?/" --field url --regex --feed https://example.org/feed.xml
    """
    stored = tagstore.add_rule(
        app.db, tag, pattern, field=RuleField(field), feed=feed, regex=regex, now=app.now()
    )
    click.echo(f"added rule {stored.describe()}")
    click.echo("  it tags articles ingested from now on; `digest tags apply` tags stored ones")


@rule_group.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array.")
@pass_app
def rule_list(app: App, as_json: bool) -> None:
    """The tag rules, by tag.

    \b
    Example:
      digest tags rule list
    """
    rules = tagstore.list_rules(app.db)
    if as_json:
        click.echo(json.dumps([r.to_json() for r in rules], indent=2, ensure_ascii=False))
        return
    if not rules:
        click.echo("no tag rules (add one with `digest tags rule add TAG --match WORD`)")
    for r in rules:
        click.echo(r.describe())


@rule_group.command(name="remove")
@click.argument("rule_id", metavar="ID", type=int)
@pass_app
def rule_remove(app: App, rule_id: int) -> None:
    """Remove rule ID (see `digest tags rule list`). The tags it gave stay until `digest tags
    apply` takes them off.

    \b
    Example:
      digest tags rule remove 3
    """
    stored = tagstore.remove_rule(app.db, rule_id)
    click.echo(f"removed rule {stored.describe()}")
    click.echo("  `digest tags apply` takes the tags it gave off stored articles")


@tags_group.command(name="apply")
@click.option("--since", metavar="DATE", help="Only articles published at or after DATE (or 7d).")
@click.option("--dry-run", is_flag=True, help="Count what would change; change nothing.")
@pass_app
def apply_(app: App, since: str | None, dry_run: bool) -> None:
    """Re-apply the tag rules to stored articles: add the tags rules give, take off the rule
    tags no rule gives any more (tags from feeds are never touched). Running it twice changes
    nothing the second time.

    \b
    Example:
      digest tags apply
      digest tags apply --since 2025-01-01 --dry-run
    """
    report, names = tagstore.apply_rules(
        app.db, since=parse_when(since, app.now()) if since else None, dry_run=dry_run
    )
    click.echo(("dry run: " if dry_run else "") + report.summary_line(names))
