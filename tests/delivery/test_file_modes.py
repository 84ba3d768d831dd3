"""Files that hold subscribers' addresses, their personal links or the signing secret are
private to their owner whatever the umask: the database and its WAL (0600), the secret file
(0600), and the Maildir outbox (folders 0700, messages 0600). The upload folder of the web
import is tested with the web pages (tests/web/test_web_containment.py)."""

from __future__ import annotations

import mailbox
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from digest.config import load_config
from digest.delivery.personalise import Outgoing
from digest.delivery.send import send_message
from digest.delivery.transports import OutboxTransport
from digest.store import open_db
from digest.tokens import load_secret


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The attack: a umask that lets everyone read what is created (000)."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_outbox_folders_are_0700_and_messages_0600(tmp_path, open_umask):
    box = tmp_path / "review" / "box"
    transport = OutboxTransport(box)
    outgoing = Outgoing("<m1@example.com>", "news@example.com", "ann@example.com",
                        b"Subject: hi\r\n\r\nyour link: https://x.example/u/secret\r\n")  # fmt: skip
    send_message(load_config(None, env={}), outgoing, transport=transport)
    for folder in (box, box / "tmp", box / "new", box / "cur"):
        assert mode(folder) == 0o700, folder
    [message_file] = list((box / "new").iterdir())
    assert mode(message_file) == 0o600
    [msg] = list(mailbox.Maildir(box, create=False))
    assert msg["Delivered-To"] == "ann@example.com"


def test_database_wal_and_secret_are_0600(tmp_path, open_umask):
    db = open_db(tmp_path / "d.db", create=True)
    db.execute("CREATE TABLE t (x)")
    db.execute("INSERT INTO t VALUES (1)")
    load_secret(tmp_path / "d.db", env={})
    for name in ("d.db", "d.db-wal", "d.db-shm", "d.db.secret"):
        assert mode(tmp_path / name) == 0o600, name
    db.close()
