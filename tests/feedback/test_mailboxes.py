"""Bounce mailboxes: Maildir and mbox on disk, IMAP against a real Dovecot on 127.0.0.1 (skipped
when Debian's dovecot-imapd is not installed)."""

from __future__ import annotations

import mailbox
import os
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dovecot_server import Dovecot, free_port, start_dovecot

from digest.feedback.mailboxes import (
    DoneAction,
    ImapMailbox,
    MailboxError,
    MaildirMailbox,
    MboxMailbox,
    imap_settings,
)

DATA = Path(__file__).parents[1] / "data" / "bounces"
FIXTURES = ["postfix-hard-user-unknown.eml", "exim-hard-user-unknown.eml", "ooo-subject-only.eml"]


def raw(name: str) -> bytes:
    return (DATA / name).read_bytes()


def make_maildir(path: Path, names: list[str]) -> mailbox.Maildir:
    box = mailbox.Maildir(path, create=True)
    for name in names:
        box.add(raw(name))
        time.sleep(0.002)  # distinct delivery times: the keys sort in delivery order
    return box


# --- Maildir -------------------------------------------------------------------------------------


def test_maildir_reads_unseen_oldest_first_and_marks_seen(tmp_path: Path) -> None:
    make_maildir(tmp_path / "md", FIXTURES)
    with MaildirMailbox(tmp_path / "md") as box:
        got = list(box.messages())
        assert [r for _, r in got] == [raw(n) for n in FIXTURES]
        for key, _ in got:
            box.done(key, DoneAction.SEEN)
    assert list(MaildirMailbox(tmp_path / "md").messages()) == []
    assert len(os.listdir(tmp_path / "md" / "new")) == 0
    cur = sorted(os.listdir(tmp_path / "md" / "cur"))
    assert len(cur) == 3 and all(n.endswith(":2,S") for n in cur)
    # include_seen reads them again (a reprocessing run)
    assert len(list(MaildirMailbox(tmp_path / "md", include_seen=True).messages())) == 3


def test_maildir_nothing_changes_before_done(tmp_path: Path) -> None:
    make_maildir(tmp_path / "md", FIXTURES)
    box = MaildirMailbox(tmp_path / "md")
    first = next(box.messages())
    box.done(first[0], DoneAction.SEEN)
    # the run stops here (crash): the two others are still unseen for the next run
    again = [r for _, r in MaildirMailbox(tmp_path / "md").messages()]
    assert again == [raw(n) for n in FIXTURES[1:]]


def test_maildir_delete_and_move(tmp_path: Path) -> None:
    make_maildir(tmp_path / "md", FIXTURES)
    with MaildirMailbox(tmp_path / "md", move_to="Processed") as box:
        keys = [k for k, _ in box.messages()]
        box.done(keys[0], DoneAction.DELETE)
        box.done(keys[1], DoneAction.MOVE)
        box.done(keys[2], DoneAction.SEEN)
    root = mailbox.Maildir(tmp_path / "md", create=False)
    assert root.list_folders() == ["Processed"]
    moved = root.get_folder("Processed")
    assert [moved.get_bytes(k) for k in moved.iterkeys()] == [raw(FIXTURES[1])]
    assert sorted(root.get_bytes(k) for k in root.iterkeys()) == [raw(FIXTURES[2])]
    assert list(MaildirMailbox(tmp_path / "md").messages()) == []


def test_maildir_move_without_folder_and_bad_folder(tmp_path: Path) -> None:
    make_maildir(tmp_path / "md", FIXTURES[:1])
    box = MaildirMailbox(tmp_path / "md")
    key, _ = next(box.messages())
    with pytest.raises(ValueError, match="move_to"):
        box.done(key, DoneAction.MOVE)
    with pytest.raises(MailboxError, match="a folder name"):
        MaildirMailbox(tmp_path / "md", move_to="../elsewhere")


def test_maildir_message_taken_meanwhile(tmp_path: Path) -> None:
    make_maildir(tmp_path / "md", FIXTURES[:2])
    box = MaildirMailbox(tmp_path / "md")
    it = box.messages()
    key, _ = next(it)
    # another process deletes the second one before we read it, and the first before done()
    for sub in ("new", "cur"):
        for name in os.listdir(tmp_path / "md" / sub):
            os.unlink(tmp_path / "md" / sub / name)
    assert list(it) == []
    box.done(key, DoneAction.SEEN)  # no error: the outcome is the same


def test_not_a_maildir(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "new").mkdir()
    with pytest.raises(MailboxError, match=r"is not a Maildir \(no cur/, tmp/ inside\)"):
        MaildirMailbox(tmp_path / "plain")
    with pytest.raises(MailboxError, match="is not a Maildir"):
        MaildirMailbox(tmp_path / "missing")


# --- mbox ----------------------------------------------------------------------------------------


def make_mbox(path: Path, names: list[str]) -> None:
    box = mailbox.mbox(path, create=True)
    for name in names:
        box.add(raw(name))
    box.close()


def test_mbox_seen_delete_move(tmp_path: Path) -> None:
    path = tmp_path / "bounces.mbox"
    make_mbox(path, FIXTURES)
    with MboxMailbox(path, move_to="processed.mbox") as box:
        got = list(box.messages())
        assert [r for _, r in got] == [raw(n) for n in FIXTURES]
        box.done(got[0][0], DoneAction.SEEN)
        box.done(got[1][0], DoneAction.DELETE)
        box.done(got[2][0], DoneAction.MOVE)
    with MboxMailbox(path) as box:
        assert list(box.messages()) == []  # the one left is read
    left = mailbox.mbox(path)
    assert len(left) == 1 and "R" in left[0].get_flags()
    assert left[0]["Message-Id"] == "<20250121070214.4YcT2k0bQzz101@mail.news.example.org>"
    moved = mailbox.mbox(tmp_path / "processed.mbox")
    assert len(moved) == 1 and moved[0]["Subject"] == "Out of Office: World News - daily digest"
    with MboxMailbox(path, include_seen=True) as box:
        ((_, again),) = list(box.messages())
    assert b"\nStatus: RO\n" in again and b"4YcT2k0bQzz101@mail.news.example.org" in again


def test_mbox_locked_and_missing(tmp_path: Path) -> None:
    path = tmp_path / "bounces.mbox"
    make_mbox(path, FIXTURES[:1])
    holder = MboxMailbox(path)
    try:
        with pytest.raises(MailboxError, match="locked by another program"):
            MboxMailbox(path)
    finally:
        holder.close()
    with MboxMailbox(path) as box:  # the lock is released on close
        assert len(list(box.messages())) == 1
    with pytest.raises(MailboxError, match="is not an mbox file"):
        MboxMailbox(tmp_path / "nope.mbox")


# --- IMAP settings -------------------------------------------------------------------------------


def test_imap_settings_from_url() -> None:
    env = {"DIGEST_IMAP_PASSWORD": "pw-secret"}
    s = imap_settings("imaps://bounces%40news.example.org@imap.example.org/Bounces", env)
    assert (s.host, s.port, s.username, s.folder, s.starttls) == (
        "imap.example.org",
        993,
        "bounces@news.example.org",
        "Bounces",
        False,
    )
    assert "pw-secret" not in repr(s)
    s = imap_settings("imap://u@h.example:1143", env, folder="Junk")
    assert (s.port, s.folder, s.starttls) == (1143, "Junk", True)


@pytest.mark.parametrize(
    ("url", "env", "message"),
    [
        ("imaps://u:hunter2@h.example/", {"DIGEST_IMAP_PASSWORD": "x"}, "not in the URL"),
        ("https://u@h.example/", {"DIGEST_IMAP_PASSWORD": "x"}, "must start with imaps://"),
        ("imaps://h.example/", {"DIGEST_IMAP_PASSWORD": "x"}, "needs a user and a host"),
        ("imaps://u@h.example/", {}, r"set \$DIGEST_IMAP_PASSWORD"),
        ("imaps://u@h.example:99999/", {"DIGEST_IMAP_PASSWORD": "x"}, "IMAP URL"),
        # Passwords that urllib cuts in odd places: never shown, in part or whole.
        ("imaps://me:hunter2/x@h.example/", {"DIGEST_IMAP_PASSWORD": "x"}, "not a valid URL"),
        ("imaps://me:hunter2@ss@h.example/", {"DIGEST_IMAP_PASSWORD": "x"}, "not in the URL"),
        ("imaps://me:x@hunter2@h.example/", {"DIGEST_IMAP_PASSWORD": "x"}, "not in the URL"),
        ("imaps://:hunter2@/", {"DIGEST_IMAP_PASSWORD": "x"}, "not in the URL"),
    ],
)
def test_imap_settings_errors(url: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(MailboxError, match=message) as info:
        imap_settings(url, env)
    assert "hunter2" not in str(info.value)


# --- IMAP against Dovecot ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    yield from start_dovecot()


@pytest.fixture(scope="module")
def dovecot_basic() -> Iterator[Dovecot]:
    """A Dovecot that does not advertise MOVE or UIDPLUS: the COPY + EXPUNGE path."""
    yield from start_dovecot("imap_capability = IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE")


def _fill(server: Dovecot, folder: str, names: list[str]) -> None:
    c = server.client()
    if folder != "INBOX":
        c.create(folder)
    for name in names:
        typ, _ = c.append(folder, None, None, raw(name).replace(b"\n", b"\r\n"))
        assert typ == "OK"
    c.logout()


def _folder_contents(server: Dovecot, folder: str) -> list[tuple[bytes, bool]]:
    c = server.client()
    c.select(folder, readonly=True)
    _, data = c.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    out = []
    for item in data:
        if isinstance(item, tuple):
            out.append((item[1].strip(), b"\\Seen" in item[0]))
    c.logout()
    return out


def test_imap_seen_delete_move(dovecot: Dovecot) -> None:
    _fill(dovecot, "Run1", FIXTURES)
    box = ImapMailbox(
        dovecot.settings(folder="Run1"), move_to="Run1-Done", ssl_context=dovecot.context()
    )
    with box:
        got = list(box.messages())
        assert [r.replace(b"\r\n", b"\n") for _, r in got] == [raw(n) for n in FIXTURES]
        box.done(got[0][0], DoneAction.SEEN)
        box.done(got[1][0], DoneAction.DELETE)
        box.done(got[2][0], DoneAction.MOVE)
    left = _folder_contents(dovecot, "Run1")
    assert left == [(b"Message-Id: <20250121070214.4YcT2k0bQzz101@mail.news.example.org>", True)]
    moved = _folder_contents(dovecot, "Run1-Done")
    assert moved == [(b"Message-ID: <ooo-olga-1@example.org>", True)]
    with ImapMailbox(dovecot.settings(folder="Run1"), ssl_context=dovecot.context()) as again:
        assert list(again.messages()) == []  # the one left is \Seen


def test_imap_unread_until_done(dovecot: Dovecot) -> None:
    _fill(dovecot, "Run2", FIXTURES[:2])
    with ImapMailbox(dovecot.settings(folder="Run2"), ssl_context=dovecot.context()) as box:
        assert len(list(box.messages())) == 2  # fetched with BODY.PEEK: still unseen
    assert [seen for _, seen in _folder_contents(dovecot, "Run2")] == [False, False]


def test_imap_without_move_and_uidplus(dovecot_basic: Dovecot) -> None:
    _fill(dovecot_basic, "Run3", FIXTURES)
    box = ImapMailbox(
        dovecot_basic.settings(folder="Run3"),
        move_to="Archive",
        ssl_context=dovecot_basic.context(),
    )
    assert "MOVE" not in box._caps and "UIDPLUS" not in box._caps
    with box:
        keys = [k for k, _ in box.messages()]
        box.done(keys[0], DoneAction.MOVE)
        box.done(keys[1], DoneAction.DELETE)
    assert [m for m, _ in _folder_contents(dovecot_basic, "Run3")] == [
        b"Message-ID: <ooo-olga-1@example.org>"
    ]
    assert [m for m, _ in _folder_contents(dovecot_basic, "Archive")] == [
        b"Message-Id: <20250121070214.4YcT2k0bQzz101@mail.news.example.org>"
    ]


def test_imap_wrong_password_names_no_password(dovecot: Dovecot) -> None:
    settings = dovecot.settings(password="wrong-password-xyz")
    with pytest.raises(MailboxError, match="IMAP login to 127.0.0.1:.* as bounces failed") as info:
        ImapMailbox(settings, ssl_context=dovecot.context())
    assert "wrong-password-xyz" not in str(info.value)


def test_imap_untrusted_certificate(dovecot: Dovecot) -> None:
    with pytest.raises(MailboxError, match="TLS with IMAP server .* failed: .*certificate"):
        ImapMailbox(dovecot.settings(), ssl_context=ssl.create_default_context())


def test_imap_missing_folder_and_unreachable(dovecot: Dovecot) -> None:
    with pytest.raises(MailboxError, match="IMAP folder 'Nope'"):
        ImapMailbox(dovecot.settings(folder="Nope"), ssl_context=dovecot.context())
    with pytest.raises(MailboxError, match="cannot reach IMAP server 127.0.0.1"):
        ImapMailbox(dovecot.settings(port=free_port()), ssl_context=dovecot.context(), timeout=5)
