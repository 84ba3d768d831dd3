"""A real Dovecot IMAP server on 127.0.0.1 for the bounce-mailbox tests (TLS with a trustme CA,
one user ``bounces``); tests skip when Debian's dovecot-imapd is not installed."""

from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from digest.feedback.mailboxes import ImapSettings

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
PASSWORD = "correct-horse-battery"


@dataclass
class Dovecot:
    port: int
    ca: trustme.CA
    home: Path

    def settings(self, **kw: object) -> ImapSettings:
        base: dict[str, object] = {
            "host": "127.0.0.1",
            "username": "bounces",
            "password": PASSWORD,
            "port": self.port,
        }
        base.update(kw)
        return ImapSettings(**base)  # type: ignore[arg-type]

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        return ctx

    def client(self) -> imaplib.IMAP4_SSL:
        c = imaplib.IMAP4_SSL("127.0.0.1", self.port, ssl_context=self.context(), timeout=10)
        c.login("bounces", PASSWORD)
        return c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_dovecot(extra: str = "") -> Iterator[Dovecot]:
    if not os.path.exists(DOVECOT):
        pytest.skip("dovecot is not installed (Debian: apt-get install dovecot-imapd)")
    # Not under pytest's tmp_path: Dovecot's mail process runs as another user and must be able
    # to reach its home, so the tree is world-traversable (0755) and removed afterwards.
    root = Path(tempfile.mkdtemp(prefix="digest-dovecot-"))
    root.chmod(0o755)
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(root / "key.pem")
    cert.cert_chain_pems[0].write_to_path(root / "cert.pem")
    (root / "users").write_text(f"bounces:{{PLAIN}}{PASSWORD}::::::\n")
    home = root / "home"
    home.mkdir()
    if os.geteuid() == 0:
        mail_user = pwd.getpwnam("dovecot")
        os.chown(home, mail_user.pw_uid, mail_user.pw_gid)
        users = f"uid={mail_user.pw_uid} gid={mail_user.pw_gid}"
        privileges = f"first_valid_uid = {mail_user.pw_uid}\n"
    else:  # Dovecot run by an ordinary user does everything as that user
        me = pwd.getpwuid(os.geteuid()).pw_name
        users = f"uid={os.geteuid()} gid={os.getegid()}"
        privileges = (
            f"default_internal_user = {me}\ndefault_login_user = {me}\n"
            f"first_valid_uid = {os.geteuid()}\nservice imap-login {{\n  chroot =\n}}\n"
        )
    port = free_port()
    (root / "dovecot.conf").write_text(
        f"""
base_dir = {root}/run
state_dir = {root}/run/state
instance_name = digest-test-{port}
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
disable_plaintext_auth = yes
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {root}/users
}}
userdb {{
  driver = static
  args = {users} home={home}/%u
}}
mail_location = maildir:~/Maildir
log_path = {root}/dovecot.log
{privileges}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
{extra}
"""
    )
    proc = subprocess.Popen(
        [DOVECOT, "-F", "-c", str(root / "dovecot.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    log = (
                        (root / "dovecot.log").read_text()
                        if (root / "dovecot.log").exists()
                        else ""
                    )
                    pytest.skip(f"dovecot did not start here: {err or log}"[:500])
                time.sleep(0.1)
        yield Dovecot(port, ca, home)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)
