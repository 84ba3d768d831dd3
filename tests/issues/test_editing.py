"""Editors shape an issue (note, pin, drop) before or after it is built, and approve it for a
list in approval mode; the scheduler builds such an issue at send time minus the lead time,
tells the editors by email, sends it only once approved, and skips it (with a record) when
nobody approved it before the deadline. A changed issue is rendered again in place; nothing
already sent is sent again. Real SQLite, a real aiosmtpd server, the real CLI."""

from __future__ import annotations

import email
import email.policy
import logging
from datetime import UTC, date, datetime, timedelta

import pytest
from conftest import SmtpHandler

from digest.audience.lists import LookChanges, edit_list
from digest.config import load_config
from digest.delivery import ledger
from digest.delivery.personalise import Assembler, Recipient
from digest.delivery.publish import approve, build_digest, shape_issue
from digest.errors import InvalidInput, NotFound
from digest.issues.approval import ApprovalStatus, approval_of
from digest.scheduler.plan import recent_skips
from digest.scheduler.tick import tick

NOW = datetime(2025, 1, 21, 4, 0, tzinfo=UTC)  # 07:00 Nairobi: the send time
DAY = datetime(2025, 1, 20, 6, 0, tzinfo=UTC)
ISSUE = date(2025, 1, 21)
SECRET = b"test-secret"


@pytest.fixture
def config():
    return load_config(None, env={"DIGEST_BASE_URL": "https://news.example.com"})


@pytest.fixture
def world(newsroom):
    return newsroom.add_list(tags=("Haiti", "Kenya"), timezone="Africa/Nairobi")


def message(db, config, email_address: str, digest_id: int) -> email.message.EmailMessage:
    row = next(
        iter(
            db.query(
                "SELECT variant_id, subscriber_id FROM deliveries WHERE digest_id = ? AND email = ?",
                [digest_id, email_address],
            )
        )
    )
    assembler = Assembler(db, base_url=config.base_url, secret=SECRET)
    data = assembler.message(
        row["variant_id"], Recipient(row["subscriber_id"], email_address, None)
    ).data
    return email.message_from_bytes(data, policy=email.policy.default)


def plain(msg) -> str:
    return msg.get_body(("plain",)).get_content()


def statuses(db, digest_id) -> dict[str, str]:
    return {
        r["email"]: r["status"]
        for r in db.query("SELECT email, status FROM deliveries WHERE digest_id = ?", [digest_id])
    }


def test_edits_made_before_the_build_shape_it(db, config, newsroom, world):
    old = newsroom.add_article(
        "An older story worth pinning", DAY - timedelta(days=5), tags=["Kenya"]
    )
    newsroom.add_article("Kenya today", DAY, tags=["Kenya"])
    dropped = newsroom.add_article(
        "A story the editors drop", DAY + timedelta(hours=1), tags=["Haiti"]
    )
    newsroom.add_article("Haiti today", DAY + timedelta(hours=2), tags=["Haiti"])
    newsroom.subscribe(world, "ann@example.com")
    result = shape_issue(
        db, config, "world", ISSUE, note="The week ahead: elections.", by="ed", now=NOW
    )
    assert result.rebuilt == []  # not built yet: the build applies it
    shape_issue(db, config, "world", ISSUE, article_id=old, action="pin", by="ed", now=NOW)
    shape_issue(db, config, "world", ISSUE, article_id=dropped, action="drop", by="ed", now=NOW)

    built = build_digest(db, config, world, "daily", ISSUE, now=NOW)
    text = plain(message(db, config, "ann@example.com", built.id))
    assert "The week ahead: elections." in text
    assert "A story the editors drop" not in text
    kenya = text[text.index("KENYA") :]
    assert kenya.index("An older story worth pinning") < kenya.index("Kenya today")
    html = message(db, config, "ann@example.com", built.id).get_body(("html",)).get_content()
    assert '<td class="intro"' in html and "The week ahead: elections." in html


def test_an_edit_after_the_build_renders_it_again_and_never_resends(db, config, newsroom, world):
    newsroom.add_article("Kenya story", DAY, tags=["Kenya"])
    haiti = newsroom.add_article("Haiti story", DAY, tags=["Haiti"])
    newsroom.subscribe(world, "ann@example.com")
    newsroom.subscribe(world, "bob@example.com")
    newsroom.subscribe(world, "cat@example.com", tags=["Haiti"])
    built = build_digest(db, config, world, "daily", ISSUE, now=NOW)
    # Ann's message went out before the editors changed their mind.
    row = next(iter(db.query("SELECT id FROM deliveries WHERE email = 'ann@example.com'")))
    ledger.record_sent(db, row["id"], reply="250 ok", relay=None, message_id="<x@y>", now=NOW)

    result = shape_issue(
        db, config, "world", ISSUE, article_id=haiti, action="drop", by="ed", now=NOW
    )
    (rebuilt,) = result.rebuilt
    assert rebuilt.id == built.id and rebuilt.rerendered
    assert "Haiti story" not in plain(message(db, config, "bob@example.com", built.id))
    assert statuses(db, built.id) == {
        "ann@example.com": "sent",  # never sent again
        "bob@example.com": "queued",  # goes out with the new version
        "cat@example.com": "skipped",  # her tag set has nothing left to show
    }
    reply = db.execute("SELECT reply FROM deliveries WHERE email = 'cat@example.com'").fetchone()[0]
    assert "left nothing to show" in reply
    # Taking the drop back renders it again: Cat's variant has a message again, but a skipped
    # delivery stays skipped (and Ann's stays sent).
    shape_issue(db, config, "world", ISSUE, article_id=haiti, action="clear", by="ed", now=NOW)
    assert "Haiti story" in plain(message(db, config, "bob@example.com", built.id))
    assert statuses(db, built.id)["ann@example.com"] == "sent"
    # Building again with nothing changed renders nothing.
    again = build_digest(db, config, world, "daily", ISSUE, now=NOW)
    assert not again.rerendered and again.enqueued == 0


def test_bad_edits_are_refused_with_a_reason(db, config, newsroom, world):
    other = newsroom.add_article("Sports", DAY, tags=["Sport"])
    with pytest.raises(NotFound, match="no article with id 999"):
        shape_issue(db, config, "world", ISSUE, article_id=999, action="pin", by="ed", now=NOW)
    with pytest.raises(InvalidInput, match="none of the tags of list 'world'"):
        shape_issue(db, config, "world", ISSUE, article_id=other, action="pin", by="ed", now=NOW)
    with pytest.raises(InvalidInput, match="keep it under 2000"):
        shape_issue(db, config, "world", ISSUE, note="x" * 2001, by="ed", now=NOW)
    with pytest.raises(InvalidInput, match="not in approval mode"):
        approve(db, config, "world", ISSUE, by="ed", now=NOW)
    assert db.execute("SELECT count(*) FROM issue_edits").fetchone()[0] == 0


def test_a_sent_issue_can_no_longer_be_shaped(db, config, newsroom, world):
    kenya = newsroom.add_article("Kenya story", DAY, tags=["Kenya"])
    newsroom.add_article("Haiti story", DAY, tags=["Haiti"])
    newsroom.subscribe(world, "ann@example.com")
    newsroom.subscribe(world, "bob@example.com")
    built = build_digest(db, config, world, "daily", ISSUE, now=NOW)
    rows = [r["id"] for r in db.query("SELECT id FROM deliveries ORDER BY id")]
    ledger.record_sent(db, rows[0], reply="250 ok", relay=None, message_id="<a@x>", now=NOW)
    # Still being sent (Bob's is queued): an edit is allowed, Bob gets the new version.
    shape_issue(db, config, "world", ISSUE, note="First note", by="ed", now=NOW)
    ledger.record_sent(db, rows[1], reply="250 ok", relay=None, message_id="<b@x>", now=NOW)
    template = db.execute("SELECT template FROM variants WHERE digest_id = ?", [built.id])
    before = template.fetchall()
    for change in (
        {"note": "Too late"},
        {"article_id": kenya, "action": "drop"},
        {"article_id": kenya, "action": "pin"},
    ):
        with pytest.raises(InvalidInput, match=r"world/daily/2025-01-21 was sent \(2 deliveries"):
            shape_issue(db, config, "world", ISSUE, by="ed", now=NOW, **change)
    # Nothing changed: the edits, nor the message as sent.
    assert edits_text(db) == [("note", "First note")]
    after = db.execute("SELECT template FROM variants WHERE digest_id = ?", [built.id])
    assert after.fetchall() == before


def edits_text(db) -> list[tuple[str, str]]:
    return [(r["kind"], r["text"]) for r in db.query("SELECT kind, text FROM issue_edits")]


def test_the_cli_shapes_shows_and_approves(run, db, newsroom, world):
    story = newsroom.add_article(
        "Kenya story", datetime(2025, 1, 20, 6, tzinfo=UTC), tags=["Kenya"]
    )
    result = run("issues", "note", "world", "2025-01-21", "Hello readers")
    assert result.exit_code == 0 and "note set" in result.output
    assert "not built yet" in result.output
    assert run("issues", "pin", "world", "2025-01-21", str(story)).output.startswith(
        f"article {story} pinned"
    )
    shown = run("issues", "show", "world", "2025-01-21").output
    assert "note: 'Hello readers'" in shown and f"*{story:>6}  Kenya story" in shown
    bad = run("issues", "note", "world", "21/01/2025", "x")
    assert bad.exit_code == 1 and "expected the issue date as YYYY-MM-DD" in bad.output
    bad = run("issues", "approve", "world", "2025-01-21")
    assert bad.exit_code == 1 and "not in approval mode" in bad.output
    for command in ("note", "pin", "drop", "clear", "approve", "show"):
        assert run("issues", command, "--help").exit_code == 0


def test_preview_of_an_unbuilt_issue_shows_the_editors_shaping(run, db, newsroom, world, tmp_path):
    day = datetime(2025, 1, 20, 6, tzinfo=UTC)
    newsroom.add_article("Kenya story", day, tags=["Kenya"])
    dropped = newsroom.add_article("Haiti story", day + timedelta(hours=1), tags=["Haiti"])
    run("issues", "note", "world", "2025-01-21", "Hello <b>readers</b>")
    run("issues", "drop", "world", "2025-01-21", str(dropped))
    out = tmp_path / "p"
    shown = run("preview", "--list", "world", "--date", "2025-01-21", "-o", str(out))
    assert shown.exit_code == 0, shown.output
    assert "not built yet" in shown.output
    html = (out / "message.html").read_text()
    assert "Hello &lt;b&gt;readers&lt;/b&gt;" in html  # the note, as text
    assert "Kenya story" in html and "Haiti story" not in html
    built = run("build", "--list", "world", "--date", "2025-01-21", "--force")
    assert built.exit_code == 0, built.output
    again = run("preview", "--list", "world", "--date", "2025-01-21", "-o", str(out))
    assert again.exit_code == 0
    # Built with the same shaping: the stored variant shows the same stories and note.
    stored = (out / "message.html").read_text()
    assert "Hello &lt;b&gt;readers&lt;/b&gt;" in stored
    assert "Kenya story" in stored and "Haiti story" not in stored


def test_build_says_an_issue_awaits_approval_and_how_to_approve_it(run, db, newsroom, world):
    newsroom.add_article("Kenya story", datetime(2025, 1, 20, 6, tzinfo=UTC), tags=["Kenya"])
    newsroom.subscribe(world, "ann@example.com")
    look = LookChanges(approval=True, editors="editor@example.com")
    edit_list(db, "world", look=look, now=newsroom.STAMP)
    built = run("build", "--list", "world", "--date", "2025-01-21", "--force")
    assert built.exit_code == 0, built.output
    assert (
        "awaiting approval: nothing queued until an editor approves"
        " (digest issues approve world 2025-01-21)"
    ) in built.output
    assert "recipients 1 queued" not in built.output
    assert run("issues", "approve", "world", "2025-01-21").exit_code == 0


# ------------------------------------------------------------------ approval mode, scheduled

SEND = datetime(2025, 1, 21, 4, 0, tzinfo=UTC)  # 07:00 Nairobi


class Desk:
    def __init__(self, db, newsroom, server, tmp_path):
        self.db, self.server = db, server
        path = tmp_path / "digest.toml"
        path.write_text("[send]\nconcurrency = 2\n", encoding="utf-8")
        self.config = load_config(path, env={"DIGEST_SMTP_URL": server.url()})
        self.log = logging.getLogger(f"test.approval.{id(self)}")
        self.log.propagate = False
        self.log.setLevel(logging.DEBUG)
        self.lines: list[str] = []
        lines = self.lines

        class Keep(logging.Handler):
            def emit(self, record):
                lines.append(record.getMessage())

        self.log.addHandler(Keep())
        self.mlist = newsroom.add_list(tags=("Haiti", "Kenya"), timezone="Africa/Nairobi")
        self.mlist = edit_list(
            db,
            "world",
            look=LookChanges(
                approval=True,
                approval_lead="2h",
                approval_deadline="1h",
                editors="editor@example.com, chief@example.com",
            ),  # fmt: skip
            now=newsroom.STAMP,
        )
        newsroom.add_article("Kenya story", DAY, tags=["Kenya"])
        newsroom.subscribe(self.mlist, "ann@example.com")

    def tick(self, now, **kwargs):
        return tick(self.db, self.config, now=now, secret=SECRET, log=self.log, **kwargs)

    def received(self) -> list[tuple[list[str], str]]:
        return [
            (
                m.rcpt_to,
                str(email.message_from_bytes(m.data, policy=email.policy.default)["Subject"]),
            )
            for m in self.server.handler.received
        ]


@pytest.fixture
def desk(db, newsroom, smtp_server, tmp_path):
    return Desk(db, newsroom, smtp_server(SmtpHandler()), tmp_path)


def test_an_approved_issue_is_built_ahead_announced_and_sent_at_its_send_time(db, desk):
    assert desk.tick(SEND - timedelta(hours=2, minutes=1)).due == []
    report = desk.tick(SEND - timedelta(hours=2))
    (built,) = report.built
    assert built.awaiting_approval and built.recipients == 0
    assert db.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 0
    editors = sorted(r for rcpt, _ in desk.received() for r in rcpt)
    assert editors == ["chief@example.com", "editor@example.com"]
    subject = desk.received()[0][1]
    assert subject == "[Approval] World Desk: the daily issue of 2025-01-21 awaits approval"
    notice = email.message_from_bytes(
        desk.server.handler.received[0].data, policy=email.policy.default
    )
    assert "digest issues approve world 2025-01-21" in notice.get_body(("plain",)).get_content()
    assert any("awaits approval" in line for line in desk.lines)

    # Not approved: the send time passes and nothing goes out; editors are told once.
    desk.tick(SEND)
    assert (
        len(desk.received()) == 2
        and db.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 0
    )
    # An editor approves 20 minutes late: it goes at the next tick, once.
    approve(db, desk.config, "world", ISSUE, by="alice", now=SEND + timedelta(minutes=20))
    report = desk.tick(SEND + timedelta(minutes=21))
    assert [rcpt for rcpt, _ in desk.received()[2:]] == [["ann@example.com"]]
    assert any("sending approved world/daily/2025-01-21" in line for line in desk.lines)
    desk.tick(SEND + timedelta(minutes=22))
    assert len(desk.received()) == 3
    found = approval_of(db, desk.mlist.id, "daily", "2025-01-21")
    assert found.status is ApprovalStatus.APPROVED and found.released_at is not None
    with pytest.raises(NotFound, match="approved by alice"):
        approve(db, desk.config, "world", ISSUE, by="bob", now=SEND + timedelta(minutes=30))


def test_an_issue_approved_early_waits_for_its_send_time(db, desk):
    desk.tick(SEND - timedelta(hours=1))
    approve(db, desk.config, "world", ISSUE, by="alice", now=SEND - timedelta(minutes=50))
    desk.tick(SEND - timedelta(minutes=1))
    assert db.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 0
    desk.tick(SEND)
    assert [rcpt for rcpt, _ in desk.received()][-1] == ["ann@example.com"]


def test_an_issue_nobody_approved_is_skipped_with_a_record(db, desk):
    desk.tick(SEND - timedelta(hours=2))
    desk.tick(SEND + timedelta(minutes=59))
    assert db.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 0
    report = desk.tick(SEND + timedelta(hours=1, minutes=1))
    (skip,) = report.skipped
    assert skip.reason == "not approved by its deadline (2025-01-21 08:00 Africa/Nairobi)"
    assert recent_skips(db)[0]["reason"] == skip.reason
    found = approval_of(db, desk.mlist.id, "daily", "2025-01-21")
    assert found.status is ApprovalStatus.SKIPPED
    with pytest.raises(NotFound, match="skipped: not approved by its deadline"):
        approve(db, desk.config, "world", ISSUE, by="late", now=SEND + timedelta(hours=2))
    desk.tick(SEND + timedelta(hours=3))
    assert db.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 0
    assert [r for r, _ in desk.received()] == [["editor@example.com"], ["chief@example.com"]]


def test_a_notice_that_cannot_be_sent_is_retried_and_the_issue_still_waits(
    db, newsroom, smtp_server, tmp_path, closed_port_url
):
    desk = Desk(db, newsroom, smtp_server(SmtpHandler()), tmp_path)
    desk.config = load_config(
        tmp_path / "digest.toml",
        env={"DIGEST_SMTP_URL": closed_port_url.replace("http", "smtp").removesuffix("/feed.xml")},
    )
    report = desk.tick(SEND - timedelta(hours=2))
    assert report.built and report.notified and report.notified[0][1]
    assert (
        "telling the editors that world/daily/2025-01-21 awaits approval failed" in report.errors[0]
    )
    found = approval_of(db, desk.mlist.id, "daily", "2025-01-21")
    assert found.notified_at is None and found.notify_error
    desk.config = load_config(tmp_path / "digest.toml", env={"DIGEST_SMTP_URL": desk.server.url()})
    report = desk.tick(SEND - timedelta(hours=1))
    assert report.notified == [("world/daily/2025-01-21", None)]
    assert db.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 0


def test_a_note_is_text_never_markup(db, config, newsroom, world):
    newsroom.add_article("Kenya today", DAY, tags=["Kenya"])
    newsroom.subscribe(world, "ann@example.com")
    note = (
        '<script>alert(1)</script> <a href="https://evil.example">win</a> & %%DIGEST_TEXT_EMAIL%%'
    )
    shape_issue(db, config, "world", ISSUE, note=note, by="ed", now=NOW)
    built = build_digest(db, config, world, "daily", ISSUE, now=NOW)
    msg = message(db, config, "ann@example.com", built.id)
    html = msg.get_body(("html",)).get_content()
    assert "<script>" not in html and '<a href="https://evil.example"' not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "%%DIGEST_TEXT_EMAIL%%" in plain(msg)  # text that looks like a placeholder stays text


def test_an_issue_held_when_the_list_leaves_approval_mode_goes_out(db, desk):
    desk.tick(SEND - timedelta(hours=2))
    edit_list(db, "world", look=LookChanges(approval=False), now=SEND - timedelta(hours=1))
    desk.tick(SEND)
    assert [rcpt for rcpt, _ in desk.received()][-1] == ["ann@example.com"]
    assert desk.tick(SEND + timedelta(minutes=1)).due == []
    assert db.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 1
