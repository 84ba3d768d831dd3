"""Ingesting each kind of source, and every kind of bad input the issue lists: each gives a clear
message naming the source and entry/line, keeps the good entries, and exits non-zero."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.articles.reads import list_articles
from digest.config import load_config
from digest.ingest.dates import parse_date
from digest.ingest.pipeline import ingest_sources
from digest.store import open_db

NOW = datetime(2025, 1, 24, 12, 0, tzinfo=UTC)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "world-news.xml"


def rss(*items: str, encoding: str = "utf-8") -> str:
    return (
        f'<?xml version="1.0" encoding="{encoding}"?>\n<rss version="2.0"><channel>'
        "<title>Test</title><link>https://news.example.org/</link><description>t</description>\n"
        + "\n".join(items)
        + "\n</channel></rss>\n"
    )


def item(
    n: int, title: str | None = None, body: str = "Body text.", date: str | None = None, **extra
) -> str:
    title = f"Story {n}" if title is None else title
    date = "Tue, 21 Jan 2025 07:00:00 +0000" if date is None else date
    parts = [
        f'<guid isPermaLink="false">story-{n}</guid>',
        f"<link>https://news.example.org/{n}</link>",
    ]
    if title:
        parts.append(f"<title>{title}</title>")
    if date:
        parts.append(f"<pubDate>{date}</pubDate>")
    if body:
        parts.append(f"<description><![CDATA[{body}]]></description>")
    for tag in extra.get("tags", ()):
        parts.append(f"<category>{tag}</category>")
    return "<item>" + "".join(parts) + "</item>"


def ingest(db, *sources, **kw):
    kw.setdefault("config", load_config(None, env={}))
    kw.setdefault("now", NOW)
    return ingest_sources(db, [str(s) for s in sources], **kw)


def rows(db):
    return {r["title"]: r for r in db.query("SELECT * FROM articles")}


# --------------------------------------------------------------------------- the happy paths


def test_example_feed_through_the_cli(run, db_path):
    first = run("ingest", str(EXAMPLE))
    assert first.exit_code == 0, first.output
    assert "20 new, 0 updated, 0 unchanged, 0 rejected" in first.output
    listed = run("articles", "list", "--json")
    articles = json.loads(listed.stdout)
    assert len(articles) == 20
    assert {"id", "title", "url", "published_at", "tags"} <= set(articles[0])
    assert articles[0]["published_at"] == "2025-01-24T08:15:00.000000+00:00"
    assert any("édition « sous les étoiles »" in a["title"] for a in articles)
    tags = {t for a in articles for t in a["tags"]}
    assert {"Haiti", "Kenya", "Climate", "Health", "Technology", "Culture"} <= tags

    again = run("ingest", str(EXAMPLE))
    assert again.exit_code == 0
    assert "0 new, 0 updated, 20 unchanged, 0 rejected" in again.output
    assert (
        open_db(db_path, create=True).execute("SELECT count(*) FROM articles").fetchone()[0] == 20
    )


def test_changed_entry_is_updated_in_place(db, tmp_path):
    feed = tmp_path / "feed.xml"
    feed.write_text(rss(item(1), item(2, tags=["Kenya"])))
    (report,) = ingest(db, feed)
    assert (report.new, report.updated) == (2, 0)
    before = {r["key"]: r for r in db.query("SELECT * FROM articles")}
    feed.write_text(rss(item(1), item(2, title="Story 2, corrected", body="New text.")))
    (report,) = ingest(db, feed)
    assert (report.new, report.updated, report.unchanged) == (0, 1, 1)
    after = {r["key"]: r for r in db.query("SELECT * FROM articles")}
    changed = after["id:story-2"]
    assert changed["id"] == before["id:story-2"]["id"]
    assert changed["title"] == "Story 2, corrected" and changed["text"] == "New text."
    assert changed["ingested_at"] == before["id:story-2"]["ingested_at"]
    # Tags are never lost by an update.
    assert [r["name"] for r in db.query("SELECT name FROM tags")] == ["Kenya"]
    assert db.execute("SELECT count(*) FROM article_tags").fetchone()[0] == 1


def test_atom_feed(db, tmp_path):
    atom = tmp_path / "feed.atom"
    atom.write_text(
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        "<title>A</title><id>urn:a</id><updated>2025-01-21T07:00:00Z</updated>"
        '<entry><id>urn:a:1</id><title>Atom one</title><link href="https://a.example/1"/>'
        "<updated>2025-01-21T09:30:00+02:00</updated><category term='climate' label='Climate'/>"
        '<content type="html">&lt;p&gt;Hello &lt;b&gt;world&lt;/b&gt;&lt;/p&gt;</content></entry>'
        "</feed>"
    )
    (report,) = ingest(db, atom)
    assert report.kind == "atom" and report.new == 1
    (a,) = list_articles(db)
    assert a.title == "Atom one" and a.tag_names == ["Climate"]
    assert a.published_at == datetime(2025, 1, 21, 7, 30, tzinfo=UTC)
    assert a.content_html == "<p>Hello <b>world</b></p>" and a.text == "Hello world"


def test_json_feed_json_array_and_json_lines(db, tmp_path):
    jf = tmp_path / "feed.json"
    jf.write_text(
        json.dumps(
            {
                "version": "https://jsonfeed.org/version/1.1",
                "title": "J",
                "home_page_url": "https://j.example/",
                "items": [
                    {
                        "id": "j1",
                        "url": "https://j.example/1",
                        "title": "JSON Feed item",
                        "content_html": "<p>From a JSON Feed</p>",
                        "date_published": "2025-01-21T07:00:00Z",
                        "tags": ["Health"],
                        "authors": [{"name": "Desk"}],
                    }
                ],
            }
        )
    )
    arr = tmp_path / "articles.json"
    arr.write_text(
        json.dumps(
            [
                {
                    "title": "Array item",
                    "url": "https://j.example/2",
                    "published": "2025-01-20",
                    "tags": "Kenya, Culture",
                    "summary": "Plain summary.",
                }
            ]
        )
    )
    lines = tmp_path / "articles.jsonl"
    lines.write_text(
        json.dumps({"title": "Line item", "url": "https://j.example/3", "content": "Text\n\nTwo"})
        + "\n"
    )
    reports = ingest(db, jf, arr, lines)
    assert [(r.kind, r.new, r.ok) for r in reports] == [
        ("jsonfeed", 1, True),
        ("json", 1, True),
        ("jsonl", 1, True),
    ]
    by_title = {a.title: a for a in list_articles(db)}
    assert by_title["JSON Feed item"].author == "Desk"
    assert by_title["JSON Feed item"].tag_names == ["Health"]
    assert by_title["Array item"].tag_names == ["Culture", "Kenya"]
    assert by_title["Line item"].content_html == "<p>Text</p><p>Two</p>"


def test_markdown_and_html_directory_with_front_matter(run, tmp_path, db_path):
    notes = tmp_path / "notes"
    (notes / "sub").mkdir(parents=True)
    (notes / "a.md").write_text(
        "---\ntitle: Markdown story\ndate: 2025-01-20 08:00\ntags: [Haiti, Health]\n"
        "url: https://notes.example/a\nauthor: Desk\n---\n# Heading\n\nSome *emphasis*.\n"
    )
    (notes / "sub" / "b.html").write_text(
        "---\ntitle: HTML story\ndate: 2025-01-21\n---\n<p>Hello <script>alert(1)</script></p>"
    )
    (notes / "broken.md").write_text("---\ntitle: [unclosed\n---\ntext\n")
    (notes / "skip.csv").write_text("not,an,article")
    result = run("ingest", "notes")
    assert result.exit_code == 1
    assert "notes: 2 new, 0 updated, 0 unchanged, 1 rejected" in result.output
    assert "broken.md: invalid YAML front matter (front matter line 3)" in result.output
    db = open_db(db_path, create=True)
    by_title = {a.title: a for a in list_articles(db)}
    md = by_title["Markdown story"]
    assert md.published_at == datetime(2025, 1, 20, 8, 0, tzinfo=UTC)
    assert "<h1>Heading</h1>" in md.content_html and "<em>emphasis</em>" in md.content_html
    assert md.tag_names == ["Haiti", "Health"] and md.url == "https://notes.example/a"
    assert by_title["HTML story"].content_html == "<p>Hello </p>"


# --------------------------------------------------------------------------- bad input


def test_malformed_truncated_feed_keeps_entries_before_the_break(run, tmp_path, db_path):
    whole = rss(*(item(n) for n in range(1, 6)))
    cut = whole[: whole.index("Story 4")] + "Story 4</title><pubDate>Tue, 21 J"
    (tmp_path / "cut.xml").write_text(cut)
    result = run("ingest", "cut.xml")
    assert result.exit_code == 1
    assert "rejected line 6: feed is malformed or truncated (no element found)" in result.output
    assert (
        "rejected entry 4 ('Story 4'): incomplete: the feed breaks off inside it" in result.output
    )
    assert "cut.xml: 3 new, 0 updated, 0 unchanged, 2 rejected" in result.output
    assert len(rows(open_db(db_path, create=True))) == 3


def test_not_a_feed_fails_that_source_only(run, tmp_path, db_path):
    (tmp_path / "page.xml").write_text("<html><body><p>Just a web page</p></body></html>")
    (tmp_path / "good.xml").write_text(rss(item(1)))
    result = run("ingest", "page.xml", "missing.xml", "good.xml")
    assert result.exit_code == 1
    # A web page where a feed was expected is read as a page, which has too little text here.
    assert "page.xml: failed: no article found (only 4 words of text)" in result.output
    assert "missing.xml: failed: no such file or directory" in result.output
    assert "good.xml: 1 new" in result.output
    assert "Traceback" not in result.output
    assert list(rows(open_db(db_path, create=True))) == ["Story 1"]


def test_invalid_json_on_line_7_of_json_lines(run, tmp_path, db_path):
    lines = [
        json.dumps({"title": f"Line {n}", "url": f"https://j.example/{n}", "content": "x"})
        for n in range(1, 10)
    ]
    lines[6] = '{"title": "Line 7", "url": '
    (tmp_path / "a.jsonl").write_text("\n".join(lines) + "\n")
    result = run("ingest", "a.jsonl")
    assert result.exit_code == 1
    assert "a.jsonl: 8 new, 0 updated, 0 unchanged, 1 rejected" in result.output
    assert "rejected line 7: invalid JSON — Expecting value (column 28)" in result.output
    assert "Line 7" not in rows(open_db(db_path, create=True)) and "Line 8" in rows(
        open_db(db_path, create=True)
    )


def test_missing_title_and_missing_link_and_text(db, tmp_path):
    (tmp_path / "a.jsonl").write_text(
        "\n".join(
            [
                json.dumps(
                    {"url": "https://j.example/1", "content": "<p>" + "word " * 30 + "</p>"}
                ),
                json.dumps({"title": "Nothing to read"}),
                json.dumps({"title": "Only junk", "content": "<script>x()</script>"}),
                json.dumps(["not", "an", "object"]),
                json.dumps({"title": "Just a link", "url": "https://j.example/4"}),
            ]
        )
    )
    (report,) = ingest(db, tmp_path / "a.jsonl")
    assert report.new == 2
    assert sorted(str(r) for r in report.rejected) == [
        "line 2: neither a link nor any text",
        "line 3: neither a link nor any text (nothing left after cleaning)",
        "line 4: expected a JSON object, got list",
    ]
    assert "line 1: no title; used the first words of the text" in report.warnings
    titles = set(rows(db))
    assert "word word word word word word word word word word word word…" in titles
    assert "Just a link" in titles


def test_missing_and_odd_dates(db, tmp_path):
    feed = tmp_path / "dates.xml"
    feed.write_text(
        rss(
            item(1, date=""),
            item(2, date="sometime last week"),
            item(3, date="2025-01-20T08:00:00+01:00"),
            item(4, date="21 January 2025"),
            item(5, date="2025-01-19 10:30"),
        )
    )
    (report,) = ingest(db, feed)
    assert report.new == 5 and report.ok
    assert "entry 1 ('Story 1'): no date; used the ingest time" in report.warnings
    assert (
        "entry 2 ('Story 2'): unreadable date 'sometime last week'; used the ingest time"
        in report.warnings
    )
    got = {r["title"]: r["published_at"] for r in rows(db).values()}
    assert got["Story 1"] == got["Story 2"] == "2025-01-24T12:00:00.000000+00:00"
    assert got["Story 3"] == "2025-01-20T07:00:00.000000+00:00"
    assert got["Story 4"] == "2025-01-21T00:00:00.000000+00:00"
    assert got["Story 5"] == "2025-01-19T10:30:00.000000+00:00"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Tue, 21 Jan 2025 07:00:00 GMT", datetime(2025, 1, 21, 7, tzinfo=UTC)),
        ("2025-01-21T07:00:00Z", datetime(2025, 1, 21, 7, tzinfo=UTC)),
        ("2025-01-21T09:00:00+02:00", datetime(2025, 1, 21, 7, tzinfo=UTC)),
        ("January 21, 2025", datetime(2025, 1, 21, tzinfo=UTC)),
        ("2025/01/21 07:00", datetime(2025, 1, 21, 7, tzinfo=UTC)),
        (1737442800, datetime(2025, 1, 21, 7, tzinfo=UTC)),
        ("not a date", None),
        ("", None),
    ],
)
def test_parse_date_formats(text, expected):
    assert parse_date(text) == expected


def test_non_utf8_bytes_are_replaced_and_reported(db, tmp_path):
    jsonl = tmp_path / "latin.jsonl"
    jsonl.write_bytes(
        b'{"title": "Caf\xe9 opens", "url": "https://j.example/1", "content": "ok"}\n'
        b'{"title": "Fine", "url": "https://j.example/2", "content": "ok"}\n'
    )
    feed = tmp_path / "latin.xml"
    feed.write_bytes(rss(item(1, title="Caf\xe9 r\xe9ouvre")).encode("latin-1"))
    r1, r2 = ingest(db, jsonl, feed)
    assert r1.new == 2 and r1.ok
    assert r1.warnings[0] == (
        "not valid UTF-8 (first bad byte 0xe9 on line 1); undecodable bytes replaced with \ufffd"
    )
    assert r2.new == 1 and r2.ok
    assert any("decoded as" in w for w in r2.warnings)
    titles = set(rows(db))
    assert "Caf\ufffd opens" in titles and "Café réouvre" in titles


def test_dangerous_markup_never_reaches_the_store(db, tmp_path):
    nasty = (
        "<p onclick='steal()'>Read <a href='javascript:alert(1)'>this</a></p>"
        "<script>alert(1)</script><iframe src='https://evil.example/'></iframe>"
        "<form action='https://evil.example/'><input name=x></form>"
        "<style>body{display:none}</style><img src=x onerror='alert(1)'>"
        "<a href='/relative/path'>relative</a>"
    )
    (tmp_path / "a.jsonl").write_text(
        json.dumps(
            {
                "title": "Nasty",
                "url": "https://news.example.org/nasty",
                "content": nasty,
                "summary": nasty,
            }
        )
        + "\n"
        + json.dumps({"title": "Bad link", "url": "javascript:alert(1)", "content": "text"})
    )
    (report,) = ingest(db, tmp_path / "a.jsonl")
    assert report.new == 2
    assert "line 2: link 'javascript:alert(1)' is not an http(s) URL; ignored" in report.warnings
    for r in db.query("SELECT * FROM articles"):
        stored = " ".join(str(r[c]) for c in ("url", "summary", "content_html", "text")).lower()
        for bad in ("<script", "<iframe", "<form", "<style", "onclick", "onerror", "javascript:"):
            assert bad not in stored
    nasty_row = rows(db)["Nasty"]
    assert '<a href="https://news.example.org/relative/path"' in nasty_row["content_html"]
    assert rows(db)["Bad link"]["url"] is None


def test_cr_lf_in_title_is_removed(db, tmp_path):
    (tmp_path / "a.jsonl").write_text(
        json.dumps(
            {"title": "Line one\r\nBcc: victim@example.com\x00", "url": "https://j.example/1"}
        )
    )
    ingest(db, tmp_path / "a.jsonl")
    assert list(rows(db)) == ["Line one Bcc: victim@example.com"]


def test_json_lines_split_only_at_line_feeds(db, tmp_path):
    # JSON allows U+2028, U+0085 and friends unescaped inside strings; str.splitlines() would
    # cut the object in two there. CRLF line ends are fine.
    first = json.dumps(
        {"title": "Para\u2028graph\u0085end", "url": "https://j.example/1", "content": "a\u2029b"},
        ensure_ascii=False,
    )
    second = json.dumps({"title": "Second", "url": "https://j.example/2", "content": "c"})
    (tmp_path / "a.jsonl").write_bytes(f"{first}\r\n\r\n{second}\r\n".encode())
    (report,) = ingest(db, tmp_path / "a.jsonl")
    assert (report.new, report.rejected) == (2, [])
    assert sorted(rows(db)) == ["Para graph end", "Second"]


@pytest.mark.parametrize("name", ["feed.json", "a.jsonl", "array.json"])
def test_lone_surrogate_escapes_become_replacement_characters(db, tmp_path, name):
    # "\\ud800" is valid JSON but decodes to a lone surrogate UTF-8 cannot encode: the entry
    # used to be rejected (or, in a title, to fail later at the store or the SMTP encoder).
    entry = (
        '{"id": "1", "url": "https://j.example/1", "title": "Bad \\ud800 title",'
        ' "content_html": "<p>x \\udc00 y</p>", "content": "<p>x \\udc00 y</p>",'
        ' "tags": ["Ken\\ud800ya"], "date_published": "2026-11-30T10:00:00Z"}'
    )
    good = '{"id": "2", "url": "https://j.example/2", "title": "Good", "content": "ok"}'
    if name == "feed.json":
        doc = '{"version": "https://jsonfeed.org/version/1.1", "title": "T", "items": [%s, %s]}'
        text = doc % (entry, good)
    elif name == "a.jsonl":
        text = entry + "\n" + good + "\n"
    else:
        text = "[" + entry + "," + good + "]"
    (tmp_path / name).write_text(text)
    (report,) = ingest(db, tmp_path / name)
    assert (report.new, report.rejected) == (2, [])
    stored = rows(db)
    assert sorted(stored) == ["Bad \ufffd title", "Good"]
    assert "x \ufffd y" in stored["Bad \ufffd title"]["text"]


def test_two_megabyte_entry_is_truncated_with_a_note(db, tmp_path):
    big = "<p>" + ("lorem ipsum dolor sit amet " * 80_000) + "</p>"  # ~2.2 MB
    (tmp_path / "big.jsonl").write_text(
        json.dumps({"title": "Huge", "url": "https://j.example/huge", "content": big})
        + "\n"
        + json.dumps({"title": "Small", "url": "https://j.example/small", "content": "ok"})
    )
    (report,) = ingest(db, tmp_path / "big.jsonl")
    assert report.new == 2 and report.ok
    huge = rows(db)["Huge"]
    assert len(huge["text"].encode()) <= 200_000
    assert len(huge["text"]) > 190_000
    assert huge["note"] == (
        "text truncated to 200 KB ([ingest] max_text_bytes); the entry was 2.2 MB"
    )
    assert any(w.startswith("line 1: text truncated to 200 KB") for w in report.warnings)
    assert len(huge["content_html"]) <= 2 * 200_000 + 100
    assert rows(db)["Small"]["note"] is None


def test_max_text_bytes_is_configurable(db, tmp_path):
    cfg = tmp_path / "digest.toml"
    cfg.write_text("[ingest]\nmax_text_bytes = 1000\n")
    (tmp_path / "a.jsonl").write_text(
        json.dumps({"title": "T", "url": "https://j.example/", "content": "word " * 1000})
    )
    ingest(db, tmp_path / "a.jsonl", config=load_config(cfg, env={}))
    assert len(rows(db)["T"]["text"].encode()) <= 1000


def test_bad_source_loses_nothing_already_stored(run, tmp_path, db_path):
    (tmp_path / "good.xml").write_text(rss(item(1), item(2)))
    assert run("ingest", "good.xml").exit_code == 0
    before = list(open_db(db_path, create=True).query("SELECT * FROM articles ORDER BY id"))
    (tmp_path / "good.xml").write_text(rss(item(1), item(2))[:-40] + "<<<garbage")
    (tmp_path / "bad.jsonl").write_text("{nope\n")
    result = run("ingest", "good.xml", "bad.jsonl")
    assert result.exit_code == 1
    after = list(open_db(db_path, create=True).query("SELECT * FROM articles ORDER BY id"))
    assert [(r["id"], r["title"], r["text"]) for r in after] == [
        (r["id"], r["title"], r["text"]) for r in before
    ]


def test_since_skips_older_entries(run, tmp_path, db_path):
    (tmp_path / "f.xml").write_text(
        rss(item(1, date="Mon, 20 Jan 2025 07:00:00 +0000"), item(2, date="2025-01-23T07:00:00Z"))
    )
    result = run("ingest", "f.xml", "--since", "2025-01-22", "--tag", "World")
    assert result.exit_code == 0
    assert "f.xml: 1 new, 0 updated, 0 unchanged, 1 before --since, 0 rejected" in result.output
    (a,) = list_articles(open_db(db_path, create=True))
    assert a.title == "Story 2" and a.tag_names == ["World"]
    bad = run("ingest", "f.xml", "--since", "whenever")
    assert bad.exit_code == 1
    assert "Error: cannot read 'whenever' as a date" in bad.output


def test_large_input_shows_a_progress_bar(run, tmp_path):
    with (tmp_path / "many.jsonl").open("w") as f:
        for n in range(2500):
            f.write(json.dumps({"title": f"T{n}", "url": f"https://j.example/{n}"}) + "\n")
    result = run("ingest", "many.jsonl")
    assert result.exit_code == 0
    assert "many.jsonl: 2500 new" in result.stdout
    # click draws the bar only on a terminal; elsewhere it prints the label once.
    assert result.stderr.startswith("many.jsonl")


def test_every_command_has_help_with_an_example(run):
    for args in (
        ["ingest"],
        ["feeds"],
        ["feeds", "add"],
        ["feeds", "list"],
        ["feeds", "remove"],
        ["fetch"],
        ["articles"],
        ["articles", "list"],
        ["articles", "search"],
    ):
        result = run(*args, "--help")
        assert result.exit_code == 0, args
        assert "Example:" in result.output, args


def test_rss_author_email_and_name_gives_the_name(db, tmp_path):
    feed = tmp_path / "authors.xml"
    feed.write_text(
        rss(
            item(1).replace(
                "</item>", "<author>desk@news.example.org (Ama Mensah)</author></item>"
            ),
            item(2).replace("</item>", "<author>desk@news.example.org</author></item>"),
        )
    )
    ingest(db, feed)
    assert rows(db)["Story 1"]["author"] == "Ama Mensah"
    assert rows(db)["Story 2"]["author"] == "desk@news.example.org"


# --------------------------------------------------------------------------- unchanged sources


def state_row(db, source):
    return db.execute(
        "SELECT fingerprint, ingested_at FROM source_states WHERE source = ?", [str(source)]
    ).fetchone()


def test_unchanged_source_is_recognised_and_reported_like_a_full_reingest(db, tmp_path):
    feed = tmp_path / "feed.xml"
    feed.write_text(rss(item(1, tags=["Kenya"]), item(2), item(3, date="")))
    (first,) = ingest(db, feed)
    assert (first.new, first.warnings) == (
        3,
        ["entry 3 ('Story 3'): no date; used the ingest time"],
    )
    # A warning was shown: the first ingest is not recorded, so the next one is a full one.
    assert state_row(db, feed) is None
    (full,) = ingest(db, feed)
    assert (full.new, full.updated, full.unchanged, full.warnings) == (0, 0, 3, [])
    recorded = state_row(db, feed)
    assert recorded is not None
    (again,) = ingest(db, feed, now=datetime(2025, 1, 25, tzinfo=UTC))
    assert again.summary_line() == full.summary_line()
    assert (again.kind, again.ok) == ("rss", True)
    # Replayed, not stored again: the record keeps the time of the ingest that made it.
    assert state_row(db, feed) == recorded


def test_changed_bytes_or_options_mean_a_full_ingest(db, tmp_path):
    feed = tmp_path / "feed.xml"
    feed.write_text(rss(item(1), item(2)))
    ingest(db, feed)
    (tagged,) = ingest(db, feed, tags=["World"])
    assert tagged.unchanged == 2
    assert {tuple(a.tag_names) for a in list_articles(db)} == {("World",)}
    feed.write_text(rss(item(1), item(2, title="Story 2, corrected")))
    (changed,) = ingest(db, feed, tags=["World"])
    assert (changed.updated, changed.unchanged) == (1, 1)
    assert "Story 2, corrected" in {a.title for a in list_articles(db)}


def test_articles_changed_since_the_last_ingest_are_stored_again(db, tmp_path):
    a, b = tmp_path / "a.xml", tmp_path / "b.xml"
    a.write_text(rss(item(1, body="Harvest report."), item(2)))
    b.write_text(rss(item(1, body="A different harvest report.")))  # same guid, other text
    ingest(db, a)
    assert state_row(db, a) is not None
    (by_b,) = ingest(db, b)
    assert by_b.updated == 1
    # a.xml's bytes did not change, but its article did: it is parsed and stored again.
    (again,) = ingest(db, a)
    assert (again.updated, again.unchanged) == (1, 1)
    assert rows(db)["Story 1"]["text"] == "Harvest report."
    db.execute("DELETE FROM articles WHERE title = 'Story 2'")
    (restored,) = ingest(db, a)
    assert (restored.new, restored.unchanged) == (1, 1)


def test_a_source_with_rejected_entries_reports_them_every_time(run, tmp_path):
    (tmp_path / "f.jsonl").write_text(
        json.dumps({"title": "Good", "url": "https://example.org/1"}) + "\n{nope\n"
    )
    for _ in range(2):
        result = run("ingest", "f.jsonl")
        assert result.exit_code == 1
        assert "rejected line 2: invalid JSON" in result.output
