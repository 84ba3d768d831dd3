"""`digest bounces process`: each real-shaped bounce, complaint and auto-reply in
tests/data/bounces/ is read from a Maildir (mbox, IMAP) by the command, against the store the
fixtures were written for, and has exactly its effect: the right subscriber bounced or
complained and suppressed, with the source and the server's words in the history, or a soft
bounce counted, or nothing at all; every other subscriber untouched."""

from __future__ import annotations

import json
import mailbox
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from bounce_world import COUNT, DELIVERY_OFFSET, SECRET, address, build_world, queue_digest
from dovecot_server import PASSWORD, Dovecot, start_dovecot

from digest.audience.lists import get_list
from digest.audience.subscriptions import (
    confirm_subscription,
    get_subscriber,
    subscriber_history,
)
from digest.feedback import events
from digest.feedback.process import BouncePolicy, Effect, process_report
from digest.verp import bounce_address

DATA = Path(__file__).parents[1] / "data" / "bounces"
NOW = datetime(2025, 1, 21, 12, 0, tzinfo=UTC)

BOUNCED, COMPLAINED, COUNTED, IGNORED, LEFT = "bounced", "complained", "counted", "ignored", "left"
# fixture -> (what happens, to which subscriber id)
EXPECTED: dict[str, tuple[str, int | None]] = {
    "postfix-hard-user-unknown.eml": (BOUNCED, 17),
    "postfix-delayed-warning.eml": (IGNORED, None),
    "postfix-soft-mailbox-full.eml": (COUNTED, 19),
    "exim-hard-user-unknown.eml": (BOUNCED, 20),
    "exim-soft-over-quota.eml": (COUNTED, 21),
    "exchange-online-recipient-not-found.eml": (BOUNCED, 22),
    "exchange-2003-unknown-recipient.eml": (BOUNCED, 23),
    "gmail-hard-no-such-user.eml": (BOUNCED, 24),
    "gmail-soft-inbox-full.eml": (COUNTED, 25),
    "yahoo-failure-notice.eml": (BOUNCED, 26),
    "yahoo-deferred-tss04.eml": (IGNORED, None),
    "qmail-no-mailbox.eml": (BOUNCED, 28),
    "verp-hidden-recipient.eml": (BOUNCED, 29),  # only the VERP return path names pia@
    "verp-forwarded-dsn.eml": (BOUNCED, 30),  # the report names the forwarding target
    "arf-complaint-with-rcpt.eml": (COMPLAINED, 31),
    "arf-complaint-without-rcpt.eml": (COMPLAINED, 32),  # recipient redacted: the signed link
    "arf-auth-failure-dmarc.eml": (IGNORED, None),
    "ooo-exchange-automatic-reply.eml": (IGNORED, None),
    "vacation-sieve-rfc3834.eml": (IGNORED, None),
    "ooo-subject-only.eml": (IGNORED, None),
    "reply-from-a-person.eml": (LEFT, None),
}


def raw(name: str) -> bytes:
    return (DATA / name).read_bytes()


@pytest.fixture
def world(db, run) -> int:
    """The fixtures' store, and the CLI (``run``) pointed at it with DIGEST_SECRET=test-secret."""
    return build_world(db)


def maildir(path: Path, messages: list[bytes]) -> Path:
    box = mailbox.Maildir(path, create=True)
    for message in messages:
        box.add(message)
        time.sleep(0.002)  # distinct delivery times: read back in this order
    return path


def snapshot(db) -> dict[str, tuple]:
    """Everything the bounce processing could change, per address: subscriptions, suppression
    and history."""
    state = {}
    for n in range(1, COUNT + 1):
        h = subscriber_history(db, address(n))
        state[address(n)] = (
            tuple((s.list_slug, str(s.status)) for s in h.subscriptions),
            h.suppression,
            tuple(h.events),
        )
    return state


def test_the_expectations_cover_every_fixture() -> None:
    assert sorted(p.name for p in DATA.glob("*.eml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_fixture_has_its_effect_and_no_other(name, world, db, run, tmp_path) -> None:
    effect, subscriber_id = EXPECTED[name]
    before = snapshot(db)
    box = maildir(tmp_path / "Maildir", [raw(name)])

    result = run("bounces", "process", "--maildir", str(box))
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    after = snapshot(db)
    changed = {a for a in after if after[a] != before[a]}
    recorded = events.list_events(db, kinds=events.RECORDED_KINDS)

    if effect in (BOUNCED, COMPLAINED):
        assert subscriber_id is not None
        who = address(subscriber_id)
        assert changed == {who}
        history = subscriber_history(db, who)
        assert [str(s.status) for s in history.subscriptions] == [effect]
        assert history.suppression is not None
        # The history names where it came from and keeps the original diagnostic.
        ended = [e for e in history.events if e.new_status == effect]
        assert len(ended) == 1 and ended[0].source == "bounce-mailbox"
        assert ended[0].old_status == "active" and ended[0].list_slug == "world-news"
        (event,) = recorded
        assert event.email == who and event.diagnostic and event.diagnostic in ended[0].reason
        assert event.delivery_id in (subscriber_id + DELIVERY_OFFSET, None)
        assert lines[0] == f"{who}: {effect} and suppressed: {event.diagnostic}"
        assert lines[-1] == f"1 message: 1 {effect}"
    elif effect == COUNTED:
        assert changed == set()
        (event,) = recorded
        assert (event.email, event.kind) == (address(subscriber_id or 0), "soft")
        assert "1 soft bounce(s) within 15 days; 2 more make it a hard bounce" in lines[0]
        assert lines[-1] == "1 message: 1 counted"
    else:
        assert changed == set() and recorded == []
        assert lines[-1] == f"1 message: 1 {'ignored' if effect == IGNORED else 'unusable'}"
    # Used messages are flagged read (moved to cur/ with S); one that cannot be used is left.
    left = os.listdir(box / "new")
    if effect == LEFT:
        assert len(left) == 1
        assert lines[0].startswith(f"left {left[0]}: not a bounce or a complaint: ")
    else:
        assert left == [] and [f.endswith(":2,S") for f in os.listdir(box / "cur")] == [True]


def test_a_whole_mailbox_in_one_run(world, db, run, tmp_path) -> None:
    names = sorted(EXPECTED)
    box = maildir(tmp_path / "Maildir", [raw(n) for n in names])
    result = run("bounces", "process", "--maildir", str(box), "--move-to", "Done")
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == (
        "21 messages: 9 bounced, 2 complained, 3 counted, 6 ignored, 1 unusable"
    )
    # Everything used went to the Maildir++ folder; the person's reply stays for a person.
    assert len(os.listdir(box / ".Done" / "cur")) == 20
    assert len(os.listdir(box / "new")) == 1
    for name, (effect, n) in EXPECTED.items():
        if n is not None and effect in (BOUNCED, COMPLAINED):
            assert subscriber_history(db, address(n)).suppression is not None, name
    untouched = set(range(1, COUNT + 1)) - {n for _, n in EXPECTED.values() if n}
    for n in untouched:
        h = subscriber_history(db, address(n))
        assert h.suppression is None and [str(s.status) for s in h.subscriptions] == ["active"]

    # A second run finds nothing new (the reply is read again and left again).
    again = run("bounces", "process", "--maildir", str(box))
    assert again.output.strip().splitlines()[-1] == "1 message: 1 unusable"

    listed = run("bounces", "list")
    assert listed.exit_code == 0
    rows = listed.output.strip().splitlines()
    assert len(rows) == 14  # 9 hard, 2 complaints, 3 soft
    assert any(
        "hard      alice@example.com " in r
        and "  via bounce-mailbox [world-news daily 2025-01-21]: 5.1.1 smtp; 550 5.1.1" in r
        for r in rows
    )


def test_the_same_message_twice_changes_nothing_more(world, db, run, tmp_path) -> None:
    message = raw("postfix-soft-mailbox-full.eml")
    box = maildir(tmp_path / "Maildir", [message])
    run("bounces", "process", "--maildir", str(box))
    before = snapshot(db)
    # As after a crash between recording it and marking it read: it is in new/ again.
    maildir(box, [message])
    result = run("bounces", "process", "--maildir", str(box))
    assert result.output.strip().splitlines()[-1] == "1 message: 1 duplicate"
    assert snapshot(db) == before
    assert len(events.list_events(db)) == 1


def soft_report(delivery_id: int, n: int, secret: bytes = SECRET) -> bytes:
    """The Postfix mailbox-full DSN, returned to the VERP address of ``delivery_id``."""
    text = raw("postfix-soft-mailbox-full.eml")
    old = b"bounces+" + text.split(b"bounces+", 1)[1].split(b"@", 1)[0] + b"@news.example.org"
    new = bounce_address("bounces@news.example.org", delivery_id, secret).encode()
    return text.replace(old, new).replace(b"Message-ID: <", b"Message-ID: <%d." % n, 1)


def test_soft_bounces_about_three_messages_within_the_window_count_as_hard(
    world, db, run, tmp_path
) -> None:
    chen = get_subscriber(db, "chen@example.com")
    world_news = get_list(db, "world-news")
    # chen also got the digests of the 22nd and 23rd.
    queue_digest(db, world_news, "2025-01-22", [chen.email])
    queue_digest(db, world_news, "2025-01-23", [chen.email])
    rows = db.execute(
        "SELECT id FROM deliveries WHERE subscriber_id = ? ORDER BY id", [chen.id]
    ).fetchall()
    deliveries = [r[0] for r in rows]
    assert len(deliveries) == 3

    # Two reports about the same message count once; two messages are not enough.
    box = maildir(
        tmp_path / "Maildir",
        [
            soft_report(deliveries[0], 1),
            soft_report(deliveries[0], 2),
            soft_report(deliveries[1], 3),
        ],
    )
    out = run("bounces", "process", "--maildir", str(box)).output
    assert out.strip().splitlines()[-1] == "3 messages: 3 counted"
    assert "2 soft bounce(s) within 15 days; 1 more make it a hard bounce" in out
    assert str(subscriber_history(db, chen.email).subscriptions[0].status) == "active"

    maildir(box, [soft_report(deliveries[2], 4)])
    out = run("bounces", "process", "--maildir", str(box)).output
    assert out.startswith(
        "chen@example.com: bounced and suppressed (3 soft bounces within 15 days, the last "
        "via bounce-mailbox: 5.2.2 smtp; 552 5.2.2 <chen@example.com>: Mailbox full"
    )
    h = subscriber_history(db, chen.email)
    assert str(h.subscriptions[0].status) == "bounced" and h.suppression is not None


def test_old_soft_bounces_and_a_new_confirmation_reset_the_count(world, db) -> None:
    policy = BouncePolicy(SECRET, soft_threshold=2, soft_window_days=15)
    chen = get_subscriber(db, "chen@example.com")
    d = chen.id + DELIVERY_OFFSET
    assert process_report(db, soft_report(d, 1), policy=policy, now=NOW).effect is Effect.COUNTED
    # 16 days later the first one is outside the window.
    later = NOW + timedelta(days=16)
    other = soft_report(d + 1000, 2)  # a delivery that does not exist: matched by address
    assert process_report(db, other, policy=policy, now=later).effect is Effect.COUNTED
    # Within the window now: bounced.
    third = soft_report(d + 2000, 3)
    result = process_report(db, third, policy=policy, now=later + timedelta(days=1))
    assert result.effect is Effect.BOUNCED

    # The person confirms again (the web form's link): old bounces are not held against them.
    world_news = get_list(db, "world-news")
    confirm_subscription(db, chen.id, world_news.id, source="web", now=later + timedelta(days=2))
    fourth = soft_report(d + 3000, 4)
    result = process_report(db, fourth, policy=policy, now=later + timedelta(days=3))
    assert result.effect is Effect.COUNTED
    assert str(subscriber_history(db, chen.email).subscriptions[0].status) == "active"


def test_a_forged_verp_token_names_nobody(world, db, run, tmp_path) -> None:
    # The hidden-recipient bounce, sent back to a VERP address signed with another key: no
    # subscriber can be named, so nobody is touched and the message is left for a person.
    forged = raw("verp-hidden-recipient.eml")
    ours = b"bounces+" + forged.split(b"bounces+", 1)[1].split(b"@", 1)[0]
    theirs = bounce_address("bounces@news.example.org", 29 + DELIVERY_OFFSET, b"guess").encode()
    forged = forged.replace(ours + b"@news.example.org", theirs)
    before = snapshot(db)
    box = maildir(tmp_path / "Maildir", [forged])
    out = run("bounces", "process", "--maildir", str(box)).output
    assert "names no subscriber of ours" in out
    assert snapshot(db) == before and events.list_events(db) == []
    assert len(os.listdir(box / "new")) == 1


def unsigned(text: bytes) -> bytes:
    """``text`` without the tokens we signed: a damaged VERP token, no List-Unsubscribe."""
    lines = [line for line in text.split(b"\n") if not line.startswith(b"List-Unsubscribe:")]
    return b"\n".join(lines).replace(b"bounces+", b"bounces+x")


def test_an_unsigned_message_id_does_not_outvote_the_named_address(world, db) -> None:
    # A DSN for a stranger whose returned Message-ID names alice: alice is not touched.
    text = raw("postfix-hard-user-unknown.eml").replace(b"alice@example.com", b"zed@example.com")
    text = unsigned(text)
    before = snapshot(db)
    result = process_report(db, text, policy=BouncePolicy(SECRET), now=NOW)
    assert result.effect is Effect.UNUSABLE and "names no subscriber" in result.line
    assert snapshot(db) == before


def test_a_message_id_alone_identifies_when_the_report_names_nobody_else(world, db) -> None:
    text = unsigned(raw("postfix-hard-user-unknown.eml"))
    result = process_report(db, text, policy=BouncePolicy(SECRET), now=NOW)
    assert (result.effect, result.email) == (Effect.BOUNCED, "alice@example.com")
    (row,) = events.list_events(db)
    assert (row.identified_by, row.delivery_id) == ("message-id", 17 + DELIVERY_OFFSET)


@pytest.mark.parametrize(
    "junk",
    [
        b"",
        b"\x00\xff" * 5000,
        b"From: MAILER-DAEMON@x\nSubject: Undelivered\n\n550 5.1.1 " + b"A" * 200_000,
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\n\n--x\n"
        b"Content-Type: message/delivery-status\n\nFinal-Recipient: rfc822; "
        + b"<" * 5000
        + b"\nAction: failed\nStatus: 5.1.1\n--x--\n",
    ],
    ids=["empty", "binary", "huge-text", "hostile-dsn"],
)
def test_junk_is_left_with_one_line_and_the_run_goes_on(world, db, run, tmp_path, junk) -> None:
    before = snapshot(db)
    box = maildir(tmp_path / "Maildir", [junk, raw("postfix-hard-user-unknown.eml")])
    result = run("bounces", "process", "--maildir", str(box))
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("left ") and "Traceback" not in result.output
    assert lines[-1] == "2 messages: 1 bounced, 1 unusable"
    after = snapshot(db)
    assert {a for a in after if after[a] != before[a]} == {"alice@example.com"}


def test_mbox_and_delete(world, db, run, tmp_path) -> None:
    path = tmp_path / "bounces.mbox"
    box = mailbox.mbox(path)
    for name in ("exim-hard-user-unknown.eml", "ooo-subject-only.eml", "reply-from-a-person.eml"):
        box.add(raw(name))
    box.flush()
    box.close()
    result = run("bounces", "process", "--mbox", str(path), "--delete")
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == "3 messages: 1 bounced, 1 ignored, 1 unusable"
    left = mailbox.mbox(path)
    assert [m["Subject"] for m in left] == ["Re: World News - daily digest, 21 January 2025"]
    assert subscriber_history(db, "bob@example.net").suppression is not None


@pytest.mark.parametrize(
    "args,message",
    [
        ([], "name one bounce mailbox"),
        (["--maildir", "x", "--mbox", "y"], "name one bounce mailbox"),
        (["--maildir", "{tmp}", "--delete", "--move-to", "Done"], "--delete or --move-to"),
        (["--maildir", "{tmp}/nothing"], "is not a Maildir"),
        (["--mbox", "{tmp}/none.mbox"], "is not an mbox file"),
        (["--maildir", "{tmp}", "--folder", "X"], "--folder is for an IMAP mailbox"),
        (["--imap", "imaps://bounces@127.0.0.1:1/"], "set $DIGEST_IMAP_PASSWORD"),
        (["--imap", "imaps://bounces:hunter2@127.0.0.1/"], "not in the URL"),
    ],
)
def test_usage_errors_are_one_line(world, run, tmp_path, monkeypatch, args, message) -> None:
    monkeypatch.delenv("DIGEST_IMAP_PASSWORD", raising=False)
    (tmp_path / "cur").mkdir()
    result = run("bounces", "process", *[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output
    assert "hunter2" not in result.output


# --- IMAP ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    yield from start_dovecot()


@pytest.fixture
def imap_env(dovecot: Dovecot, monkeypatch, tmp_path) -> Iterator[Dovecot]:
    ca = tmp_path / "ca.pem"
    dovecot.ca.cert_pem.write_to_path(ca)
    # The command verifies the server against the system's trust store, which OpenSSL lets
    # SSL_CERT_FILE replace: here, the test CA.
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    monkeypatch.setenv("DIGEST_IMAP_PASSWORD", PASSWORD)
    yield dovecot


def test_imap_with_move(world, db, run, imap_env: Dovecot) -> None:
    client = imap_env.client()
    client.create("Bounces")
    for name in ("gmail-hard-no-such-user.eml", "vacation-sieve-rfc3834.eml"):
        client.append("Bounces", None, None, raw(name).replace(b"\n", b"\r\n"))
    client.logout()
    url = f"imaps://bounces@127.0.0.1:{imap_env.port}/"
    result = run("bounces", "process", "--imap", url, "--folder", "Bounces", "--move-to", "Seen")
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == "2 messages: 1 bounced, 1 ignored"
    assert PASSWORD not in result.output
    assert subscriber_history(db, "erin@gmail.com").suppression is not None
    client = imap_env.client()
    assert client.select("Bounces")[1] == [b"0"] and client.select("Seen")[1] == [b"2"]
    client.logout()


def test_imap_wrong_password_is_one_line_without_it(world, run, imap_env, monkeypatch) -> None:
    monkeypatch.setenv("DIGEST_IMAP_PASSWORD", "not-the-password-xyz")
    result = run("bounces", "process", "--imap", f"imaps://bounces@127.0.0.1:{imap_env.port}/")
    assert result.exit_code == 1
    assert "IMAP login" in result.output and "not-the-password-xyz" not in result.output


def test_bounces_list_since_and_json(world, db, run, tmp_path) -> None:
    box = maildir(tmp_path / "Maildir", [raw("postfix-hard-user-unknown.eml")])
    run("bounces", "process", "--maildir", str(box))
    assert run("bounces", "list", "--since", "2999-01-01").output.strip() == (
        "no bounces or complaints recorded since 2999-01-01"
    )
    (row,) = json.loads(run("bounces", "list", "--json").output)
    assert (row["email"], row["kind"], row["list"], row["identified_by"]) == (
        "alice@example.com", "hard", "world-news", "verp",
    )  # fmt: skip
    bad = run("bounces", "list", "--since", "last week")
    assert bad.exit_code == 1 and "--since 'last week': expected an ISO 8601 date" in bad.output
