"""``digest demo``: the whole pipeline in a workspace, real SMTP into a Maildir, run twice."""

from __future__ import annotations

import csv
import email.policy
import mailbox
import re
import socket
import threading
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path
from urllib.parse import urlsplit

from digest.demo import package_data, shift_feed
from digest.store import open_db
from digest.tokens import read_token

NOW = "2026-03-09T10:00:00Z"  # a Monday; the day after the US switched to summer time
NOW_DT = datetime(2026, 3, 9, 10, 0, tzinfo=UTC)
SECRET = b"test-secret"  # DIGEST_SECRET set by the ``run`` fixture


def _messages(maildir: Path) -> list:
    box = mailbox.Maildir(maildir, create=False)
    keys = box.iterkeys()  # iterating a Maildir yields messages, not keys
    return [message_from_bytes(box.get_bytes(key), policy=email.policy.default) for key in keys]


def _port(output: str) -> int:
    return int(re.search(r"demo's server on 127\.0\.0\.1:(\d+)", output).group(1))


def _csv_people() -> dict[str, set[str]]:
    """list slug -> addresses in the packaged CSV of that list."""
    out = {}
    for slug in ("morning", "weekender"):
        rows = csv.DictReader(package_data(f"demo-{slug}.csv").splitlines())
        out[slug] = {row["email"] for row in rows}
    return out


def test_demo_runs_the_pipeline_and_sends_over_smtp(run, tmp_path):
    result = run("demo", "--now", NOW)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "workspace digest-demo: created" in out
    assert "34 new, 0 updated, 0 unchanged, 0 rejected" in out
    # Both lists, daily and weekly each.
    for slug in ("morning", "weekender"):
        for frequency in ("daily", "weekly"):
            assert re.search(rf"^  {slug}\s+{frequency}\s+\d{{4}}-\d\d-\d\d\s+[1-9]", out, re.M)

    workspace = tmp_path / "digest-demo"
    assert (workspace / ".digest-demo").is_file()
    db = open_db(workspace / "digest.db", create=True)
    sent = {
        (email, slug)
        for email, slug in db.execute(
            "SELECT d.email, l.slug FROM deliveries d JOIN digests g ON g.id = d.digest_id"
            " JOIN lists l ON l.id = g.list_id WHERE d.status = 'sent'"
        )
    }
    others = db.execute("SELECT count(*) FROM deliveries WHERE status != 'sent'").fetchone()[0]
    assert others == 0
    ids = dict(db.execute("SELECT email, id FROM subscribers").fetchall())
    assert len(ids) == 50
    db.close()
    assert f"sent {len(sent)} messages over SMTP" in out

    messages = _messages(workspace / "maildir")
    assert len(messages) == len(sent) > 20
    people = _csv_people()
    received = set()
    list_ids = set()
    titles_seen = set()
    for msg in messages:
        rcpt = msg["Delivered-To"]
        assert msg["To"].addresses[0].addr_spec == rcpt
        slug = "morning" if "morning" in str(msg["List-Id"]) else "weekender"
        list_ids.add(slug)
        assert rcpt in people[slug]
        received.add((rcpt, slug))
        assert "—" in str(msg["Subject"])  # content first, then the date (no brand)

        # The message's own unsubscribe link: its token names this recipient.
        unsubscribe = str(msg["List-Unsubscribe"]).strip("<>")
        parts = urlsplit(unsubscribe)
        assert parts.netloc == "127.0.0.1:8080" and parts.path.startswith("/u/")
        claims = read_token(SECRET, parts.path.removeprefix("/u/"), "unsubscribe", now=NOW_DT)
        assert claims.subscriber_id == ids[rcpt]
        html = msg.get_body(("html",)).get_content()
        assert unsubscribe in html
        titles_seen.update(re.findall(r"Kreyòl|Léogâne|Cap-Haïtien|Ελληνικοί|東京|Straße", html))
    assert received == sent
    assert list_ids == {"morning", "weekender"}
    assert titles_seen, "no non-ASCII article title decoded from any message"
    names = {str(m["To"]) for m in messages}
    assert any(not n.isascii() for n in names), names

    # Nothing left listening, no server thread left behind.
    with socket.socket() as s:
        s.settimeout(5)
        assert s.connect_ex(("127.0.0.1", _port(out))) != 0
    assert not [t for t in threading.enumerate() if t.name == "demo-smtp"]

    html_path = re.search(r"open in a browser: (\S+)", out).group(1)
    page = (tmp_path / html_path).read_text(encoding="utf-8")
    assert "<html" in page.lower() and "Unsubscribe" in page
    assert "digest --db digest-demo/digest.db --config digest-demo/digest.toml serve" in out
    assert "users add alice --role editor" in out


def test_demo_twice_resets_then_keep_reuses(run, tmp_path):
    first = run("demo", "--now", NOW)
    assert first.exit_code == 0, first.output
    maildir = tmp_path / "digest-demo" / "maildir"
    count = len(_messages(maildir))
    (tmp_path / "digest-demo" / "notes.txt").write_text("mine", encoding="utf-8")

    second = run("demo", "--now", NOW)
    assert second.exit_code == 0, second.output
    assert "workspace digest-demo: reset" in second.output
    assert "34 new" in second.output
    assert len(_messages(maildir)) == count  # a fresh Maildir, the same messages again
    assert (tmp_path / "digest-demo" / "notes.txt").read_text(encoding="utf-8") == "mine"

    third = run("demo", "--keep", "--now", NOW)
    assert third.exit_code == 0, third.output
    out = third.output
    assert "workspace digest-demo: reused" in out
    assert "0 new, 0 updated, 34 unchanged, 0 rejected" in out
    assert "0 added, 0 activated, 0 updated, 28 unchanged" in out
    assert out.count("already built") == 4 and not re.search(r"\s\sbuilt", out)
    assert "nothing to send" in out
    assert len(_messages(maildir)) == count
    with socket.socket() as s:
        s.settimeout(5)
        assert s.connect_ex(("127.0.0.1", _port(out))) != 0


def test_demo_in_a_named_directory_and_a_later_day_with_keep(run, tmp_path):
    assert run("demo", "elsewhere/demo", "--now", NOW).exit_code == 0
    maildir = tmp_path / "elsewhere" / "demo" / "maildir"
    before = _messages(maildir)
    later = (NOW_DT + timedelta(days=1)).isoformat()
    result = run("demo", "elsewhere/demo", "--keep", "--now", later)
    assert result.exit_code == 0, result.output
    # The next daily issue is new; the weekly one is the same; nothing is sent twice.
    assert re.search(r"morning\s+daily\s+2026-03-10\s+\d+\s+\d+\s+\d+\s+built", result.output)
    assert re.search(r"morning\s+weekly\s+2026-03-09\s.*already built", result.output)
    sent = int(re.search(r"sent (\d+) messages over SMTP", result.output).group(1))
    assert sent > 0 and "failed 0" in result.output
    after = _messages(maildir)
    assert len(after) == len(before) + sent
    ids = [m["Message-ID"] for m in after]
    assert len(set(ids)) == len(ids)
    old_ids = {b["Message-ID"] for b in before}
    new_issues = {
        tuple(str(m["Message-ID"]).strip("<").split(".")[:3])
        for m in after
        if m["Message-ID"] not in old_ids
    }
    # Nairobi is past 06:30 on 10 March; New York (06:00) is not yet past 08:00.
    assert new_issues == {("morning", "daily", "2026-03-10"), ("weekender", "daily", "2026-03-09")}


def test_demo_refuses_a_folder_that_is_not_a_demo_workspace(run, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "digest.db").write_bytes(b"precious")
    (mine / "subscribers").mkdir()
    before = sorted((p.relative_to(mine), p.is_file() and p.read_bytes()) for p in mine.rglob("*"))

    result = run("demo", "mine", "--now", NOW)
    assert result.exit_code == 1
    assert result.output.startswith("Error: ")
    assert "mine: not empty and not a demo workspace" in result.output
    assert "nothing was changed" in result.output
    assert "Traceback" not in result.output
    after = sorted((p.relative_to(mine), p.is_file() and p.read_bytes()) for p in mine.rglob("*"))
    assert after == before

    (tmp_path / "a-file").write_text("x", encoding="utf-8")
    result = run("demo", "a-file", "--now", NOW)
    assert result.exit_code != 0
    assert "a-file" in result.output and "Traceback" not in result.output
    assert (tmp_path / "a-file").read_text(encoding="utf-8") == "x"


def test_shifted_feed_ends_a_few_hours_ago_and_spans_eight_days():
    text = shift_feed(package_data("demo-feed.xml"), NOW_DT)
    dates = [
        email.utils.parsedate_to_datetime(d)
        for d in re.findall(r"<pubDate>([^<]+)</pubDate>", text)
    ]
    assert len(dates) == 34
    newest, oldest = max(dates), min(dates)
    assert timedelta(hours=1) <= NOW_DT - newest <= timedelta(hours=12)
    assert timedelta(days=7) <= NOW_DT - oldest <= timedelta(days=8, hours=12)
    assert "2026-03-09 10:00 UTC" in text
