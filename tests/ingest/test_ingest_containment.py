"""One bad thing from outside never stops the rest: junk and out-of-range dates in every source
format, a source or feed that fails in a way nobody foresaw, a YAML alias bomb in front matter,
and outside text with terminal escape sequences. Each test checks the one clear line that names
what failed, and that everything else went in."""

from __future__ import annotations

import json
import resource
import time
from datetime import UTC, datetime

import pytest

from digest.config import Config, IngestSettings, load_config
from digest.ingest.feeds import add_feed, list_feeds
from digest.ingest.pipeline import FeedStatus, fetch_feeds, ingest_sources
from digest.ingest.sources import clean_title

NOW = datetime(2025, 1, 24, 12, 0, tzinfo=UTC)
NOW_DAY = "2025-01-24T12:00:00"
BAD_DATES = ["0000-00-00T00:00:00Z", "9999-12-31T23:59:59-99:99", "Fri, 31 Dec 9999 23:59:59 -0100"]
GOOD_DATE = "2025-01-21T07:00:00Z"
GOOD_DAY = "2025-01-21T07:00:00"


def rss(dates: list[str]) -> str:
    items = "".join(
        f"<item><guid>r{n}</guid><title>RSS {n}</title><link>https://e.org/r{n}</link>"
        f"<pubDate>{d}</pubDate><description>Text {n}.</description></item>"
        for n, d in enumerate(dates)
    )
    return f'<rss version="2.0"><channel><title>T</title>{items}</channel></rss>'


def atom(dates: list[str]) -> str:
    entries = "".join(
        f"<entry><id>a{n}</id><title>Atom {n}</title><link href='https://e.org/a{n}'/>"
        f"<published>{d}</published><updated>{d}</updated><summary>Text {n}.</summary></entry>"
        for n, d in enumerate(dates)
    )
    return f'<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title>{entries}</feed>'


def json_feed(dates: list[str]) -> str:
    items = [
        {"id": f"j{n}", "title": f"JSON Feed {n}", "url": f"https://e.org/j{n}",
         "content_text": f"Text {n}.", "date_published": d}
        for n, d in enumerate(dates)
    ]  # fmt: skip
    return json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "T", "items": items})


def json_lines(dates: list[str]) -> str:
    return "\n".join(
        json.dumps({"title": f"JSONL {n}", "url": f"https://e.org/l{n}", "content": f"Text {n}.",
                    "published": d})
        for n, d in enumerate(dates)
    )  # fmt: skip


def test_junk_and_out_of_range_dates_never_stop_an_ingest(db, tmp_path):
    """Every bad date in every format: a warning naming the entry, the ingest time, the entry
    kept; the good entry beside them keeps its date, and the later sources go in."""
    dates = [*BAD_DATES, GOOD_DATE]
    notes = tmp_path / "notes"
    notes.mkdir()
    for n, d in enumerate(dates):
        # Unquoted, YAML reads a timestamp itself (and cannot represent these); quoted, it is text.
        (notes / f"plain-{n}.md").write_text(f"---\ntitle: Plain {n}\ndate: {d}\n---\nBody {n}.\n")
        (notes / f"quoted-{n}.md").write_text(f"---\ntitle: Quoted {n}\ndate: '{d}'\n---\nBody.\n")
    sources = {
        "feed.rss": rss(dates),
        "feed.atom": atom(dates),
        "feed.json": json_feed(dates),
        "feed.jsonl": json_lines(dates),
    }
    for name, text in sources.items():
        (tmp_path / name).write_text(text)
    labels = [str(tmp_path / name) for name in sources] + [str(notes)]
    reports = ingest_sources(db, labels, config=Config(), now=NOW)

    assert [r.error for r in reports] == [None] * 5
    assert [r.new for r in reports] == [4, 4, 4, 4, 8]
    assert all(not r.rejected for r in reports)
    for report in reports:
        unreadable = [w for w in report.warnings if "unreadable date" in w]
        assert len(unreadable) == 3 * (2 if report.kind == "directory" else 1), report.warnings
        for bad in BAD_DATES:
            assert any(f"unreadable date {bad!r}; used the ingest time" in w for w in unreadable)
    published = [r["published_at"] for r in db.query("SELECT published_at FROM articles")]
    assert sum(p.startswith(GOOD_DAY) for p in published) == 6
    assert sum(p.startswith(NOW_DAY) for p in published) == 18


def test_a_feed_with_bad_dates_does_not_stop_the_poll(db, tmp_path, feed_server):
    feed_server.routes["/a-bad-dates.xml"] = (rss([*BAD_DATES, GOOD_DATE]).encode(), {})
    feed_server.routes["/b-good.xml"] = (atom([GOOD_DATE]).encode(), {})
    for path in ("/a-bad-dates.xml", "/b-good.xml"):
        add_feed(db, feed_server.url(path), now=NOW)
    config = Config(ingest=IngestSettings(allow_private_addresses=True))
    reports = fetch_feeds(db, config, now=NOW)
    assert [(r.status, r.report.new if r.report else None) for r in reports] == [
        (FeedStatus.FETCHED, 4),
        (FeedStatus.FETCHED, 1),
    ]
    assert all(f.last_error is None for f in list_feeds(db))


def test_a_source_that_fails_unexpectedly_fails_alone(db, tmp_path):
    """A JSON document nested 100,000 deep makes the JSON parser raise RecursionError, which
    no rule of the readers expects: that source fails with one line, the next goes in."""
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    good = tmp_path / "good.jsonl"
    good.write_text(json_lines([GOOD_DATE]))
    bad_lines = tmp_path / "lines.jsonl"
    bad_lines.write_text("[" * 100_000 + "\n" + json_lines([GOOD_DATE]).replace("0", "1"))
    reports = ingest_sources(db, [str(deep), str(bad_lines), str(good)], config=Config(), now=NOW)
    first, lines, last = reports
    assert first.error is not None and first.error.startswith(
        "failed unexpectedly (RecursionError: "
    )
    assert "\n" not in first.error
    assert (lines.new, [str(r) for r in lines.rejected]) == (
        1,
        ["line 1: invalid JSON — nested too deeply"],
    )
    assert (last.error, last.new) == (None, 1)


def test_a_feed_that_fails_unexpectedly_is_recorded_and_the_others_are_polled(
    run, db_path, tmp_path, feed_server
):
    (tmp_path / "digest.toml").write_text("[ingest]\nallow_private_addresses = true\n")
    feed_server.routes["/a-deep.json"] = (b"[" * 100_000 + b"]" * 100_000, {})
    feed_server.routes["/b-good.xml"] = (rss([GOOD_DATE]).encode(), {})
    for path in ("/a-deep.json", "/b-good.xml"):
        assert run("feeds", "add", feed_server.url(path)).exit_code == 0
    result = run("fetch")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].startswith(
        f"{feed_server.url('/a-deep.json')}: failed: failed unexpectedly (RecursionError: "
    )
    assert (
        lines[1] == f"{feed_server.url('/b-good.xml')}: 1 new, 0 updated, 0 unchanged, 0 rejected"
    )
    assert "Traceback" not in result.output
    listed = run("feeds", "list").output
    assert "error " in listed and "RecursionError" in listed


# ------------------------------------------------------------------ YAML alias bomb

BOMB = """---
title: Bomb
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
tags: *i
date: *i
---
Body.
"""


def test_a_yaml_alias_bomb_is_rejected_and_the_other_files_go_in(run, tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "bomb.md").write_text(BOMB)
    (notes / "fine.md").write_text("---\ntitle: Fine\ndate: 2025-01-21\ntags: Notes\n---\nBody.\n")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    result = run("ingest", str(notes))
    assert time.monotonic() - started < 10
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KB
    assert result.exit_code == 1
    assert result.output == (
        f"{notes}: 1 new, 0 updated, 0 unchanged, 1 rejected\n"
        "  rejected bomb.md: invalid YAML front matter (front matter line 4): aliases (*name)"
        " are not accepted in front matter\n"
    )


# ------------------------------------------------------------------ outside text is data


def test_escape_sequences_in_names_and_messages_are_shown_escaped(run, tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "\x1b[2Jwiped.md").write_text("---\ntitle: [unclosed\n---\nBody.\n")
    (notes / "fine.md").write_text("---\ntitle: Fine\n---\nBody.\n")
    feed = tmp_path / "feed.xml"
    feed.write_bytes(
        b'<?xml version="1.0" encoding="\x1b[31mevil"?><rss version="2.0"><channel>'
        b"<title>T</title><item><title>A\xe2\x80\xae title</title><link>https://e.org/a</link>"
        b"<pubDate>soon</pubDate></item></channel></rss>"
    )
    lines = tmp_path / "lines.jsonl"
    lines.write_text(json.dumps({"title": "B", "url": "https://e.org/b", "date": "\x1b[31m"}))
    result = run("ingest", str(notes), str(feed), str(lines))
    out = result.output
    for raw in ("\x1b", "\x07", "\u202e"):
        assert raw not in out
    assert "rejected \\x1b[2Jwiped.md: invalid YAML front matter" in out
    assert "document declared as \\x1b[31mevil, but parsed as" in out
    assert "entry 1 ('A title')" in out  # the title lost its bidi override
    assert "line 1: unreadable date '\\x1b[31m'; used the ingest time" in out


@pytest.mark.parametrize(
    ("title", "clean"),
    [
        ("<script>alert('x')</script>Budget passes", "Budget passes"),
        ("Budget <SCRIPT type=x>var a = '<b>';</SCRIPT >passes", "Budget passes"),
        ("<style>p { color: red }</style>Budget", "Budget"),
        ("Budget <script>never closed, all of it script", "Budget"),
        ("<b>Bold</b> and <i>italic</i>", "Bold and italic"),
        ("Scripted &lt;script&gt; in words", "Scripted <script> in words"),
        ("<scripts>are not scripts</scripts>", "are not scripts"),
    ],
)
def test_script_and_style_bodies_never_become_title_text(title, clean):
    assert clean_title(title) == clean


def test_clean_title_is_linear_on_unclosed_scripts():
    hostile = "<script>" * 200_000 + "x"
    started = time.monotonic()
    assert clean_title(hostile) is None
    assert clean_title("a<style>" + "<style>b" * 100_000) == "a"
    assert time.monotonic() - started < 2


def test_config_file_turns_on_private_addresses(tmp_path):
    (tmp_path / "d.toml").write_text("[ingest]\nallow_private_addresses = true\n")
    assert load_config(tmp_path / "d.toml", env={}).ingest.allow_private_addresses is True
    (tmp_path / "d.toml").write_text('[ingest]\nallow_private_addresses = "yes"\n')
    with pytest.raises(Exception, match="allow_private_addresses': expected bool"):
        load_config(tmp_path / "d.toml", env={})


def test_bidi_overrides_never_reach_a_title():
    # U+202E would make "gpj.exe" read as "exe.jpg" and the rest of the line run backwards.
    assert clean_title("Invoice \u202egpj.exe\u202c ready") == "Invoice gpj.exe ready"
    assert (
        clean_title("\u2067\u05e9\u05dc\u05d5\u05dd\u2069 world")
        == "\u05e9\u05dc\u05d5\u05dd world"
    )
    # Right-to-left text itself, and the marks that do not override, are kept.
    assert (
        clean_title("\u05e9\u05dc\u05d5\u05dd \u200fworld")
        == "\u05e9\u05dc\u05d5\u05dd \u200fworld"
    )
