"""The article store: dedupe by guid / canonical URL / content hash, union of tags, updates that
keep the FTS index in step, listing and search."""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import UTC, datetime

import pytest

from digest.articles.inputs import ArticleInput, ParsedSource, Rejection
from digest.articles.reads import list_articles, search_articles, stored_state
from digest.articles.sanitize import clean_html
from digest.articles.tagging import make_tag
from digest.articles.urls import canonical_url
from digest.articles.writes import SourceReport, store_articles, store_batch
from digest.errors import InvalidInput, NotFound
from digest.ingest.unchanged import _state_hash
from digest.store import open_db
from digest.store.bulk import background_checkpoints

NOW = datetime(2025, 1, 24, 12, 0, tzinfo=UTC)


def art(n: int, **kw) -> ArticleInput:
    fields = {
        "entry": f"entry {n}",
        "title": f"Story {n}",
        "url": f"https://news.example.org/{n}",
        "published": datetime(2025, 1, 20, n % 24, tzinfo=UTC),
        "content_html": f"<p>Body of story {n}.</p>",
    }
    fields.update(kw)
    fields["tags"] = tuple(t for t in map(make_tag, fields.get("tags", ())) if t is not None)
    return ArticleInput(**fields)


def store(db, *items, source="test", **kw):
    return store_batch(db, list(items), source=source, now=NOW, **kw)


def count(db, table="articles"):
    return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_same_guid_from_two_sources_is_one_article_with_union_of_tags(db):
    store(db, art(1, guid="g-1", tags=("Kenya",)), source="a.xml")
    report = store(db, art(1, guid="g-1", tags=("kenya ", "Health")), source="b.xml")
    assert (report.new, report.unchanged, report.updated) == (0, 1, 0)
    (a,) = list_articles(db)
    assert a.tag_names == ["Health", "Kenya"] and a.source == "a.xml"
    assert count(db, "tags") == 2


def test_same_canonical_url_is_one_article(db):
    store(db, art(1, guid="rss-guid", url="https://News.Example.org:443/1#top", tags=("A",)))
    report = store(
        db,
        art(
            1,
            url="https://news.example.org/1?utm_source=x&utm_medium=y",
            title="Other",
            tags=("B",),
        ),
    )
    assert report.new == 0
    (a,) = list_articles(db)
    # Matched by URL only: the first source's content stays; tags are merged.
    assert a.title == "Story 1" and a.tag_names == ["A", "B"]


def test_canonical_url():
    assert canonical_url("HTTPS://Example.ORG:443/a?utm_source=x&id=3&fbclid=1#frag") == (
        "https://example.org/a?id=3"
    )
    assert canonical_url("http://example.org") == "http://example.org/"
    assert canonical_url("http://example.org:8080/x") == "http://example.org:8080/x"


def test_content_hash_key_when_no_guid_and_no_url(db):
    item = art(1, url=None)
    assert store(db, item).new == 1
    assert store(db, item).unchanged == 1
    assert db.execute("SELECT key FROM articles").fetchone()[0].startswith("hash:")


def test_tag_keys_are_normalised_and_first_display_name_wins(db):
    store(db, art(1, tags=("Kenya",)), art(2, tags=("KENYA",)), art(3, tags=("  kenya ",)))
    assert list(db.query("SELECT key, name FROM tags")) == [{"key": "kenya", "name": "Kenya"}]
    assert count(db, "article_tags") == 3


def test_duplicate_inside_one_batch_is_merged(db):
    report = store(db, art(1, guid="x", tags=("A",)), art(1, guid="x", tags=("B",)))
    assert (report.new, report.unchanged) == (1, 1)
    assert report.warnings == ["entry 1: same article as entry 1; merged"]
    assert list_articles(db)[0].tag_names == ["A", "B"]


def test_update_keeps_id_and_moves_the_search_index(db):
    store(db, art(1, guid="g", title="Harvest festival opens"))
    report = store(db, art(1, guid="g", title="Harvest festival postponed", published=None))
    assert report.updated == 1
    (a,) = list_articles(db)
    assert a.title == "Harvest festival postponed"
    assert a.published_at == datetime(2025, 1, 20, 1, tzinfo=UTC)  # kept: no new date given
    assert [x.id for x in search_articles(db, "postponed")] == [a.id]
    assert search_articles(db, "opens") == []


def test_tags_added_to_an_unchanged_article_are_kept(db):
    store(db, art(1, guid="g"))
    store(db, art(1, guid="g"), tags=["World"])
    assert list_articles(db)[0].tag_names == ["World"]


def test_list_filters_and_search(db):
    store(
        db,
        art(1, title="Solar sheds in Kenya", tags=("Kenya",)),
        art(2, title="Carnival masks", tags=("Haiti", "Culture")),
        art(3, title="Solar radio stations", tags=("Haiti",)),
    )
    assert [a.title for a in list_articles(db, tags=["haiti"])] == [
        "Solar radio stations",
        "Carnival masks",
    ]
    assert [a.title for a in list_articles(db, since=datetime(2025, 1, 20, 2, tzinfo=UTC))] == [
        "Solar radio stations",
        "Carnival masks",
    ]
    assert [a.title for a in list_articles(db, until=datetime(2025, 1, 20, 2, tzinfo=UTC))] == [
        "Solar sheds in Kenya"
    ]
    assert len(list_articles(db, limit=1)) == 1
    assert {a.title for a in search_articles(db, "solar")} == {
        "Solar sheds in Kenya",
        "Solar radio stations",
    }
    assert [a.title for a in search_articles(db, 'solar "kenya" (')] == ["Solar sheds in Kenya"]
    with pytest.raises(NotFound, match="no articles are tagged 'narnia'"):
        list_articles(db, tags=["Narnia"])
    with pytest.raises(InvalidInput, match="has no words"):
        search_articles(db, "***")


def test_cli_list_and_search(run, tmp_path):
    (tmp_path / "a.jsonl").write_text(
        "\n".join(
            json.dumps(
                {
                    "title": t,
                    "url": f"https://j.example/{i}",
                    "published": f"2025-01-2{i}T08:00:00Z",
                    "tags": tags,
                    "content": "text",
                }
            )
            for i, (t, tags) in enumerate(
                [("Cholera vaccination", ["Haiti", "Health"]), ("Tea sheds", ["Kenya"])], 1
            )
        )
    )
    assert run("ingest", "a.jsonl").exit_code == 0
    listed = run("articles", "list", "--tag", "HAITI")
    assert listed.exit_code == 0
    assert listed.output == "1  2025-01-21 08:00  Cholera vaccination  [Haiti, Health]\n"
    found = json.loads(run("articles", "search", "cholera", "--json").output)
    assert [(a["id"], a["title"], a["tags"]) for a in found] == [
        (1, "Cholera vaccination", ["Haiti", "Health"])
    ]
    assert json.loads(run("articles", "search", "nothing-like-this", "--json").output) == []
    bad = run("articles", "list", "--tag", "Narnia")
    assert bad.exit_code == 1 and bad.output == "Error: no articles are tagged 'narnia'\n"
    assert run("articles", "list", "--since", "2025-01-22").output.startswith("2  2025-01-22")


@pytest.mark.parametrize("variable_limit", [None, 100])
def test_batched_inserts_and_updates_keep_the_search_index_exact(db, variable_limit):
    # Rows are written many per statement; with a low host-parameter limit (old SQLite builds
    # allow 999) they are split into several statements, which must give the same result.
    if variable_limit:
        db.conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, variable_limit)
    first = [art(n, guid=f"g{n}", content_html=f"<p>Old{n} harvest report.</p>") for n in range(40)]
    assert store(db, *first).new == 40
    again = [
        art(n, guid=f"g{n}", content_html=f"<p>New{n} harvest report.</p>") if n % 2 else first[n]
        for n in range(40)
    ] + [art(n, guid=f"g{n}", content_html=f"<p>Fresh{n} solar report.</p>") for n in range(40, 55)]
    report = store(db, *again)
    assert (report.new, report.updated, report.unchanged) == (15, 20, 20)
    assert count(db) == 55
    ids = {a.title: a.id for a in list_articles(db)}
    for n in range(40):
        word = f"new{n}" if n % 2 else f"old{n}"
        assert [a.id for a in search_articles(db, word)] == [ids[f"Story {n}"]]
        gone = f"old{n}" if n % 2 else f"new{n}"
        assert search_articles(db, gone) == []
    assert len(search_articles(db, "solar", limit=100)) == 15
    assert len(search_articles(db, "harvest", limit=100)) == 40
    # The FTS index holds exactly what the articles table holds.
    db.execute("INSERT INTO articles_fts(articles_fts) VALUES ('integrity-check')")


# --------------------------------------------------------------------------- several batches


def rows_of(db):
    return db.execute(
        "SELECT a.id, a.key, a.title, a.url, a.summary, a.content_html, a.text, a.content_hash,"
        " a.note, a.published_at, (SELECT group_concat(t.name) FROM (SELECT t.name FROM"
        " article_tags x JOIN tags t ON t.id = x.tag_id WHERE x.article_id = a.id"
        " ORDER BY t.key) t) FROM articles a ORDER BY a.id"
    ).fetchall()


def report_fields(r):
    return (r.new, r.updated, r.unchanged, r.skipped, r.rejected, r.warnings, r.article_ids)


def mixed_entries() -> list:
    """Entries for several batches of 10: unchanged, changed and new articles, rejections,
    an untitled and an undated entry, a link that is not http(s), and duplicates both
    within a batch and across batches."""
    out: list = []
    for n in range(75):
        if n < 30:  # stored before; every fifth one changed since
            body = f"<p>Changed {n}.</p>" if n % 5 == 0 else f"<p>Body of story {n}.</p>"
            out.append(art(n, guid=f"g{n}", content_html=body, tags=("Kenya",)))
        elif n == 33:
            out.append(Rejection("line 34", "invalid JSON — expecting value (column 1)"))
        elif n == 41:
            out.append(art(n, url=None, content_html=None))  # neither link nor text
        elif n == 44:
            out.append(art(n, guid="g42", tags=("Health",)))  # same guid as 42, same batch
        elif n == 52:
            out.append(art(n, guid="g31", tags=("Health",)))  # same guid as 31, batch before
        elif n == 57:
            out.append(art(n, title=None, guid=f"g{n}"))
        elif n == 63:
            out.append(art(n, guid=f"g{n}", published=None, raw_date="someday"))
        elif n == 66:
            out.append(art(n, guid=f"g{n}", url="javascript:alert(1)"))
        elif n == 70:
            out.append(art(n, guid=f"g{n}", url=None, content_html="<script>x()</script>"))
        else:
            out.append(art(n, guid=f"g{n}", summary_html=f"<p>Summary <b>{n}</b></p>"))
    return out


def test_store_articles_in_batches_reports_and_stores_like_batch_by_batch(tmp_path):
    # store_articles is what ingest runs; its report must be the sum of its batches'.
    entries = mixed_entries()
    old = [art(n, guid=f"g{n}", tags=("Kenya",)) for n in range(30)]
    one_by_one, together = (
        open_db(tmp_path / "a.db", create=True),
        open_db(tmp_path / "b.db", create=True),
    )
    for db in (one_by_one, together):
        store_batch(db, old, source="before", now=NOW)

    expected = SourceReport(source="s.jsonl", kind="jsonl")
    for start in range(0, len(entries), 10):
        expected.add(store(one_by_one, *entries[start : start + 10], source="s.jsonl"))
    seen = []
    parsed = ParsedSource(label="s.jsonl", kind="jsonl", items=entries)
    report = store_articles(
        together, parsed, now=NOW, batch_size=10, progress=lambda *a: seen.append(a)
    )

    assert report_fields(report) == report_fields(expected)
    assert (report.new, report.updated, report.unchanged) == (40, 7, 25)
    assert "entry 44: same article as entry 42; merged" in report.warnings
    assert [str(r) for r in report.rejected] == [
        "line 34: invalid JSON — expecting value (column 1)",
        "entry 41: neither a link nor any text",
        "entry 70: neither a link nor any text (nothing left after cleaning)",
    ]
    assert rows_of(together) == rows_of(one_by_one)
    assert seen == [("s.jsonl", min(n, 75), 75) for n in range(10, 85, 10)]
    together.execute("INSERT INTO articles_fts(articles_fts) VALUES ('integrity-check')")


def test_the_state_an_ingest_remembers_is_the_state_it_stored(tmp_path):
    # remember_source records what store_articles says it left; it must be exactly what a
    # re-ingest will read back, or unchanged sources would never be recognised.
    db = open_db(tmp_path / "a.db", create=True)
    store_batch(db, [art(n, guid=f"g{n}", tags=("Kenya",)) for n in range(30)], source="a", now=NOW)
    store_batch(db, [art(90, guid="g90")], source="b", now=NOW)  # no tags
    entries = [
        *mixed_entries(),
        art(80, guid="other", url="https://news.example.org/5", tags=("Climate",)),  # by URL
        art(90, guid="g90", content_html="<p>Changed 90.</p>"),
        art(91, guid="g91", tags=()),
    ]
    parsed = ParsedSource(label="s.jsonl", kind="jsonl", items=entries)
    report = store_articles(db, parsed, now=NOW, batch_size=10)
    ids = sorted(set(report.article_ids))
    assert sorted(report.states) == ids
    assert _state_hash((i, *report.states[i]) for i in ids) == _state_hash(
        stored_state(db.conn, ids)
    )


def test_a_failing_batch_keeps_the_batches_before_it(db):
    db.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON articles WHEN new.key = 'id:g25'"
        " BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END"
    )
    entries = [art(n, guid=f"g{n}") for n in range(50)]
    parsed = ParsedSource(label="s.jsonl", kind="jsonl", items=entries)
    with pytest.raises(sqlite3.IntegrityError, match="refused by test trigger"):
        store_articles(db, parsed, now=NOW, batch_size=10)
    # Batches one and two are stored; batch three (with g25) is not stored at all.
    assert count(db) == 20
    assert not db.conn.in_transaction


def checkpoint_threads():
    return [t for t in threading.enumerate() if t.name == "digest-checkpoint"]


def test_background_checkpoints_copy_every_batch_into_the_database_file(tmp_path):
    path = tmp_path / "a.db"
    db = open_db(path, create=True)
    parsed = ParsedSource(
        label="s.jsonl", kind="jsonl", items=[art(n, guid=f"g{n}") for n in range(35)]
    )
    with background_checkpoints(db) as checkpoint:
        assert db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        report = store_articles(db, parsed, now=NOW, batch_size=10, after_batch=checkpoint)
    assert report.new == 35
    assert db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    assert checkpoint_threads() == []
    # With the connection's own checkpoints off, only the thread can have copied the batches
    # from the WAL into the database file; it has copied all of them.
    pages, page_size = (
        db.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "page_size")
    )
    assert path.stat().st_size == pages * page_size
    other = open_db(path, create=True)
    assert count(other) == 35
    assert other.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    other.execute("INSERT INTO articles_fts(articles_fts) VALUES ('integrity-check')")


def test_background_checkpoints_end_and_restore_the_setting_when_a_batch_fails(db):
    db.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON articles WHEN new.key = 'id:g25'"
        " BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END"
    )
    parsed = ParsedSource(
        label="s.jsonl", kind="jsonl", items=[art(n, guid=f"g{n}") for n in range(50)]
    )
    with pytest.raises(sqlite3.IntegrityError), background_checkpoints(db) as checkpoint:
        store_articles(db, parsed, now=NOW, batch_size=10, after_batch=checkpoint)
    assert count(db) == 20
    assert db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    assert checkpoint_threads() == []


def test_background_checkpoints_do_nothing_for_a_database_in_memory():
    db = open_db(":memory:", create=True)
    with background_checkpoints(db) as checkpoint:
        checkpoint()
        assert checkpoint_threads() == []
    assert db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000


def test_an_entry_with_only_a_summary_stores_it_cleaned_as_summary_and_content(db):
    # RSS items often have only a <description>: it is both the summary and the content, and
    # is sanitised once for both.
    summary = '<p onclick="x()">Rains <a href="/more">and floods</a><script>bad()</script></p>'
    store(db, art(1, content_html=None, summary_html=summary), base_url="https://example.org/")
    (a,) = list_articles(db)
    assert a.summary == clean_html(summary)
    assert a.summary == '<p>Rains <a href="/more" rel="noopener noreferrer">and floods</a></p>'
    assert a.content_html == (
        '<p>Rains <a href="https://news.example.org/more" rel="noopener noreferrer">and floods</a></p>'
    )
    assert a.text == "Rains and floods"
