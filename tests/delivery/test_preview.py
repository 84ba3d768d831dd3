"""`digest preview` and `digest build` through the CLI, against a real SQLite file."""

from __future__ import annotations

import email
import email.policy
import os
import stat
import webbrowser
from datetime import UTC, date, datetime, timedelta

import pytest

from digest.audience.lists import edit_list, get_list
from digest.cli import App
from digest.config import load_config
from digest.delivery.personalise import Assembler, Recipient
from digest.delivery.preview import preview_digest
from digest.delivery.publish import build_digest

DAY = datetime(2025, 1, 20, 6, 0, tzinfo=UTC)
NOW = datetime(2025, 1, 21, 4, 0, tzinfo=UTC)


@pytest.fixture
def frozen(monkeypatch):
    """The CLI reads the clock only through App.now(); pin it to the send time."""
    monkeypatch.setattr(App, "now", lambda self: NOW + timedelta(minutes=5))


@pytest.fixture
def world(newsroom):
    mlist = newsroom.add_list(tags=("Haiti", "Kenya"), timezone="Africa/Nairobi")
    newsroom.add_article("Haiti story", DAY, tags=["Haiti"])
    newsroom.add_article("Kenya story", DAY + timedelta(hours=1), tags=["Kenya"])
    newsroom.subscribe(mlist, "ann@example.com", name="Ann")
    newsroom.subscribe(mlist, "ken@example.com", tags=["Kenya"], name="Ken")
    return mlist


def test_every_command_has_help_with_an_example(run):
    for command in ("build", "preview"):
        result = run(command, "--help")
        assert result.exit_code == 0 and "Example:" in result.output


def test_build_prints_per_digest_summary(run, world, frozen):
    result = run("build")
    assert result.exit_code == 0, result.output
    assert "rendering world daily variants" in result.stderr  # progress goes to stderr
    assert result.stdout.splitlines() == [
        "world daily 2025-01-21, covers Mon 20 Jan 2025 (Africa/Nairobi): built",
        "  articles 2, sections 2 (Haiti, Kenya), variants 2, recipients 2 queued",
    ]
    again = run("build")
    assert "already built 2025-01-21 04:05 UTC" in again.output
    assert "recipients 2 queued (0 newly)" in again.output


def test_build_weekly_date_says_which_issue_it_built(run, world, newsroom):
    newsroom.subscribe(world, "wes@example.com", frequency="weekly")
    result = run(
        "build", "--list", "world", "--frequency", "weekly", "--date", "2025-01-22", "--force"
    )
    assert result.exit_code == 0, result.output
    assert "world weekly 2025-01-20, covers Mon 13 Jan 2025 – Sun 19 Jan 2025" in result.output
    assert "note: weekly issues of 'world' are sent on mondays: built the issue of 2025-01-20" in (
        result.output
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (("--list", "nope"), "Error: no list 'nope' (known lists: world)"),
        (("--date", "2025-13-01"), "Error: --date '2025-13-01': expected a date as YYYY-MM-DD"),
    ],
)
def test_build_bad_input_is_a_one_line_error_and_stores_nothing(run, world, db, args, message):
    result = run("build", *args)
    assert result.exit_code == 1
    assert result.output.strip() == message
    assert db.execute("SELECT count(*) FROM digests").fetchone()[0] == 0


def test_preview_eml_is_byte_for_byte_what_send_assembles(run, world, db, tmp_path, frozen):
    assert run("build").exit_code == 0
    result = run("preview", "--list", "world", "--as", "ken@example.com", "-o", "out")
    assert result.exit_code == 0, result.output
    row = db.execute(
        "SELECT variant_id, subscriber_id FROM deliveries WHERE email = 'ken@example.com'"
    ).fetchone()
    expected = (
        Assembler(db, base_url="http://127.0.0.1:8080", secret=b"test-secret")
        .message(row[0], Recipient(row[1], "ken@example.com", "Ken"))
        .data
    )
    assert (tmp_path / "out" / "message.eml").read_bytes() == expected
    msg = email.message_from_bytes(expected, policy=email.policy.default)
    html = msg.get_body(("html",)).get_content().replace("\r\n", "\n")
    assert (tmp_path / "out" / "message.html").read_bytes().decode("utf-8") == html
    assert "Kenya story" in (tmp_path / "out" / "message.txt").read_text(encoding="utf-8")
    out = result.output
    assert "variant: kenya · 1 recipient gets it · built 2025-01-21 04:05 UTC" in out
    assert f"Subject: {msg['Subject']}" in out
    assert "  Kenya  1 article" in out
    assert "of 90,000 bytes budget" in out and "0 articles cut" in out


def test_preview_of_unbuilt_issue_renders_without_storing(run, world, db, tmp_path, frozen):
    result = run("preview", "--list", "world", "--date", "2025-01-21")
    assert result.exit_code == 0, result.output
    assert "note: not built yet: rendered without storing" in result.output
    assert "variant: all tags · 1 recipient gets it" in result.output
    assert db.execute("SELECT count(*) FROM digests").fetchone()[0] == 0
    msg = email.message_from_bytes(
        (tmp_path / "preview" / "message.eml").read_bytes(), policy=email.policy.default
    )
    assert msg["To"].addresses[0].addr_spec == "reader@example.com"
    assert "Haiti story" in msg.get_body(("plain",)).get_content()


def test_preview_of_unbuilt_issue_matches_the_built_message(db, world):
    config = load_config(None, env={})
    mlist = get_list(db, "world")
    before = preview_digest(
        db,
        config,
        mlist,
        issue_date=date(2025, 1, 21),
        now=NOW,
        secret=b"k",
        address="ann@example.com",
    )
    build_digest(db, config, mlist, "daily", date(2025, 1, 21), now=NOW)
    after = preview_digest(
        db,
        config,
        mlist,
        issue_date=date(2025, 1, 21),
        now=NOW,
        secret=b"k",
        address="ann@example.com",
    )
    assert not before.report.built and after.report.built
    assert before.message == after.message


def test_preview_reports_late_arrivals(db, world, newsroom, run, frozen):
    assert run("build").exit_code == 0
    newsroom.add_article("Late", DAY, tags=["Haiti"], ingested=NOW + timedelta(hours=2))
    newsroom.add_article("Late too", DAY, tags=["Kenya"], ingested=NOW + timedelta(hours=2))
    result = run("preview", "--list", "world")
    assert "note: 2 articles arrived after this digest was built; they go in the next one" in (
        result.output
    )


def test_preview_for_someone_without_articles_writes_nothing(
    run, world, newsroom, tmp_path, frozen
):
    # The list covered Sports when x subscribed; it no longer does.
    edit_list(newsroom.db, "world", tags=["Haiti", "Kenya", "Sports"], now=NOW)
    newsroom.subscribe(get_list(newsroom.db, "world"), "x@example.com", tags=["Sports"])
    edit_list(newsroom.db, "world", tags=["Haiti", "Kenya"], now=NOW)
    result = run("preview", "--list", "world", "--as", "x@example.com")
    assert result.exit_code == 0, result.output
    assert "note: no articles for this tag set: nothing would be sent" in result.output
    assert "no files written" in result.output
    assert not (tmp_path / "preview").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (("--as", "who@example.com"), "Error: who@example.com is not subscribed to list 'world'"),
        (
            ("--as", "ann@example.com", "--frequency", "weekly"),
            "Error: ann@example.com gets the daily digest of 'world', not the weekly one"
            " (leave out --frequency)",
        ),
    ],
)
def test_preview_bad_input_is_a_one_line_error(run, world, args, message, frozen):
    result = run("preview", "--list", "world", *args)
    assert result.exit_code == 1 and result.output.strip() == message


def test_preview_open_uses_the_default_browser(run, world, tmp_path, monkeypatch, frozen):
    # webbrowser honours $BROWSER; point it at a script that records what it was asked to open.
    script = tmp_path / "browser.sh"
    script.write_text(f'#!/bin/sh\necho "$1" > {tmp_path / "opened.txt"}\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("BROWSER", str(script))
    monkeypatch.setattr(webbrowser, "_tryorder", None)
    monkeypatch.setattr(webbrowser, "_browsers", {})
    result = run("preview", "--list", "world", "--open")
    assert result.exit_code == 0, result.output
    opened = (tmp_path / "opened.txt").read_text().strip()
    assert opened == (tmp_path / "preview" / "message.html").as_uri()
    assert os.path.exists(opened.removeprefix("file://"))


def test_build_with_a_broken_template_stores_nothing(run, world, db, tmp_path, frozen):
    (tmp_path / "t" / "email").mkdir(parents=True)
    (tmp_path / "t" / "email" / "digest.txt").write_text("{{ sections.nope.x }}\n", "utf-8")
    (tmp_path / "digest.toml").write_text('templates_dir = "t"\n', encoding="utf-8")
    result = run("build")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1].startswith(
        "world daily: not built: template email/digest.txt"
    )
    for table in ("digests", "digest_articles", "variants", "deliveries"):
        assert db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0
