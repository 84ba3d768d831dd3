"""Reading bounce mailboxes: a Maildir, an mbox file, or an IMAP folder over TLS.

Each mailbox gives the messages still to process as ``(key, raw bytes)``, oldest first, and is
told what to do with each once its report is recorded: ``done(key, DoneAction.SEEN)`` (flag it
read and leave it), ``DELETE``, or ``MOVE`` (to the folder given as ``move_to``, created if
missing). Nothing is changed before ``done``: a run that stops half-way (crash, ^C) leaves the
unprocessed messages unread for the next one, as rss2email marks an entry sent only after it is.

Only unseen messages are read unless ``include_seen``: the Maildir ``S`` flag, the mbox
``Status: R`` header, the IMAP ``\\Seen`` flag. The IMAP password is a parameter (the CLI reads it
from the environment), kept out of every repr, message and error.
"""

from __future__ import annotations

import contextlib
import imaplib
import mailbox
import os
import re
import ssl
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self
from urllib.parse import unquote, urlsplit

from ..config import redact_url
from ..errors import DigestError

DEFAULT_PASSWORD_ENV = "DIGEST_IMAP_PASSWORD"
_FETCH_BATCH = 50  # UIDs per FETCH: one round trip per 50 messages, replies of a few MB at most


class MailboxError(DigestError):
    """A bounce mailbox cannot be opened, read or changed."""


class DoneAction(StrEnum):
    SEEN = "seen"  # flag it read, leave it where it is
    DELETE = "delete"
    MOVE = "move"  # to the mailbox's ``move_to`` folder


class BounceMailbox(Protocol):
    """What ``bounces process`` needs from any kind of mailbox."""

    def messages(self) -> Iterator[tuple[str, bytes]]: ...

    def done(self, key: str, action: DoneAction) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class _Closing:
    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# --- Maildir -------------------------------------------------------------------------------------


def _maildir_flags(name: str) -> str:
    # cr.yp.to/proto/maildir.html: "unique:2,FLAGS", flags in ASCII order.
    _, sep, info = name.partition(":2,")
    return info if sep else ""


_UNIQUE_TIME = re.compile(r"(\d+)\.[^.]*?M(\d+)")


def _delivery_order(key: str) -> tuple[int, int, str]:
    # Maildir unique names start with the delivery time in seconds, and Python, Postfix and
    # Dovecot add "M<microseconds>" (not zero-padded: a plain string sort would misorder them).
    m = _UNIQUE_TIME.match(key)
    if m:
        return int(m.group(1)), int(m.group(2)), key
    seconds = re.match(r"\d+", key)
    return (int(seconds.group()) if seconds else 0), 0, key


class MaildirMailbox(_Closing):
    """A Maildir (``cur/``, ``new/``, ``tmp/``). ``move_to`` is a Maildir++ folder name (the
    ``.Name`` directory Dovecot and Courier use), created on first use."""

    def __init__(self, path: str | Path, *, move_to: str | None = None, include_seen: bool = False):
        self.path = Path(path)
        missing = [d for d in ("cur", "new", "tmp") if not (self.path / d).is_dir()]
        if missing:
            raise MailboxError(
                f"{self.path} is not a Maildir (no {', '.join(d + '/' for d in missing)} inside)"
            )
        if move_to is not None and (not move_to or "/" in move_to or move_to.startswith(".")):
            raise MailboxError(f"--move-to {move_to!r}: a folder name, without '/' or leading '.'")
        self.move_to = move_to
        self.include_seen = include_seen
        self._where: dict[str, Path] = {}

    def _listing(self) -> list[tuple[str, Path]]:
        found = []
        for sub in ("new", "cur"):
            with os.scandir(self.path / sub) as entries:
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    flags = _maildir_flags(entry.name) if sub == "cur" else ""
                    if "T" in flags or (not self.include_seen and "S" in flags):
                        continue  # trashed, or already processed
                    found.append((entry.name.partition(":")[0], Path(entry.path)))
        found.sort(key=lambda item: _delivery_order(item[0]))
        return found

    def messages(self) -> Iterator[tuple[str, bytes]]:
        for key, path in self._listing():
            try:
                raw = path.read_bytes()
            except FileNotFoundError:
                continue  # taken by another reader meanwhile
            except OSError as e:
                raise MailboxError(f"cannot read {path}: {e.strerror}") from None
            self._where[key] = path
            yield key, raw

    def _folder(self) -> Path:
        assert self.move_to is not None
        folder = self.path / f".{self.move_to}"
        if not (folder / "cur").is_dir():
            mailbox.Maildir(self.path, create=False).add_folder(self.move_to)
        return folder

    def done(self, key: str, action: DoneAction) -> None:
        path = self._where.pop(key, None)
        if path is None:
            raise KeyError(key)
        flags = "".join(sorted(set(_maildir_flags(path.name)) | {"S"}))
        try:
            if action is DoneAction.DELETE:
                path.unlink()
            elif action is DoneAction.MOVE:
                if self.move_to is None:
                    raise ValueError("DoneAction.MOVE needs a mailbox opened with move_to")
                os.replace(path, self._folder() / "cur" / f"{key}:2,{flags}")
            else:
                os.replace(path, self.path / "cur" / f"{key}:2,{flags}")
        except FileNotFoundError:
            pass  # another reader handled it: the outcome is the same
        except OSError as e:
            raise MailboxError(f"cannot {action} {path}: {e.strerror}") from None

    def close(self) -> None:
        self._where.clear()


# --- mbox ----------------------------------------------------------------------------------------


_STATUS = re.compile(rb"^Status:[ \t]*([A-Za-z]*)", re.MULTILINE | re.IGNORECASE)


class MboxMailbox(_Closing):
    """An mbox file, locked while open (``fcntl`` and a dot-lock, as ``mailbox.mbox`` does).
    ``move_to`` is another mbox file (relative paths are beside this one), created if missing.
    Changes are written when the mailbox is closed."""

    def __init__(self, path: str | Path, *, move_to: str | None = None, include_seen: bool = False):
        self.path = Path(path)
        if not self.path.is_file():
            raise MailboxError(f"{self.path} is not an mbox file")
        try:
            self._box = mailbox.mbox(self.path, create=False)
            self._box.lock()
        except mailbox.ExternalClashError:
            raise MailboxError(f"{self.path} is locked by another program; try again") from None
        except OSError as e:
            raise MailboxError(f"cannot open {self.path}: {e.strerror}") from None
        self._target: mailbox.mbox | None = None
        self.move_to = None if move_to is None else self.path.parent / move_to
        self.include_seen = include_seen
        self._keys: dict[str, str] = {}  # our key -> mailbox.mbox's (an int, typed str)

    def messages(self) -> Iterator[tuple[str, bytes]]:
        for key in list(self._box.keys()):
            raw = self._box.get_bytes(key)
            head = raw.split(b"\n\n", 1)[0]
            m = _STATUS.search(head)
            if not self.include_seen and m and b"R" in m.group(1).upper():
                continue
            self._keys[str(key)] = key
            yield str(key), raw

    def done(self, key: str, action: DoneAction) -> None:
        k = self._keys.pop(key)
        if action is DoneAction.DELETE:
            self._box.discard(k)
        elif action is DoneAction.MOVE:
            if self.move_to is None:
                raise ValueError("DoneAction.MOVE needs a mailbox opened with move_to")
            if self._target is None:
                self._target = mailbox.mbox(self.move_to, create=True)
                self._target.lock()
            msg = self._box.get_message(k)
            msg.add_flag("RO")
            self._target.add(msg)
            self._box.discard(k)
        else:
            msg = self._box.get_message(k)
            msg.add_flag("RO")
            self._box[k] = msg

    def close(self) -> None:
        try:
            if self._target is not None:
                self._target.flush()  # the copy first: a crash between never loses a message
                self._target.unlock()
                self._target.close()
                self._target = None
            self._box.flush()
        finally:
            self._box.unlock()
            self._box.close()


# --- IMAP ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImapSettings:
    """Where the bounce mailbox is. ``starttls``: plain IMAP (143) upgraded with STARTTLS, else
    implicit TLS (993); never unencrypted."""

    host: str
    username: str
    password: str = field(repr=False)
    port: int = 993
    folder: str = "INBOX"
    starttls: bool = False


def imap_settings(
    url: str,
    env: Mapping[str, str] | None = None,
    *,
    folder: str | None = None,
    password_env: str = DEFAULT_PASSWORD_ENV,
) -> ImapSettings:
    """Settings from ``imaps://user@host[:port][/folder]`` (or ``imap://`` for STARTTLS) and the
    password in the environment variable ``password_env``. A password inside the URL is refused:
    it would end up in shell history and process lists."""
    env = os.environ if env is None else env
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        # urllib's message quotes the text after the colon, which may be part of a password.
        raise MailboxError(
            f"IMAP URL {redact_url(url)!r} is not a valid URL (a password belongs in "
            f"${password_env}, a port must be a number): imaps://user@host/INBOX"
        ) from None
    if parts.scheme not in ("imaps", "imap"):
        raise MailboxError(
            f"IMAP URL must start with imaps:// (TLS) or imap:// (STARTTLS), not {parts.scheme!r}://"
        )
    if parts.password is not None:
        raise MailboxError(
            f"put the IMAP password in ${password_env}, not in the URL ({redact_url(url)})"
        )
    if not parts.hostname or not parts.username:
        raise MailboxError(f"IMAP URL {redact_url(url)!r} needs a user and a host: imaps://user@host/INBOX")
    password = env.get(password_env)
    if not password:
        raise MailboxError(f"set ${password_env} to the password of {unquote(parts.username)}")
    path_folder = unquote(parts.path.lstrip("/"))
    starttls = parts.scheme == "imap"
    return ImapSettings(
        host=parts.hostname,
        username=unquote(parts.username),
        password=password,
        port=port or (143 if starttls else 993),
        folder=folder or path_folder or "INBOX",
        starttls=starttls,
    )


def _quote(name: str) -> str:
    """An IMAP astring for a folder name (RFC 3501 quoted string)."""
    if not name.isascii() or any(c in name for c in "\r\n\0"):
        # Non-ASCII names need modified UTF-7 (RFC 3501 5.1.3), which imaplib does not do.
        raise MailboxError(f"IMAP folder {name!r}: only ASCII folder names are supported")
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


_UID = re.compile(rb"\bUID (\d+)")


class ImapMailbox(_Closing):
    """An IMAP folder over TLS. Messages are fetched with ``BODY.PEEK[]`` (reading does not set
    ``\\Seen``); DELETE and MOVE use UID EXPUNGE (RFC 4315) and UID MOVE (RFC 6851) when the
    server has them, else COPY, ``\\Deleted`` and EXPUNGE at close (which also removes any other
    message already flagged ``\\Deleted`` in that folder)."""

    def __init__(
        self,
        settings: ImapSettings,
        *,
        move_to: str | None = None,
        include_seen: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 60,
    ):
        self.settings = settings
        self.move_to = move_to
        self.include_seen = include_seen
        self._expunge: list[str] = []
        self._moved_target_ready = False
        context = ssl_context or ssl.create_default_context()
        where = f"{settings.host}:{settings.port}"
        try:
            if settings.starttls:
                self._imap: imaplib.IMAP4 = imaplib.IMAP4(settings.host, settings.port, timeout)
                self._imap.starttls(ssl_context=context)
            else:
                self._imap = imaplib.IMAP4_SSL(
                    settings.host, settings.port, ssl_context=context, timeout=timeout
                )
        except ssl.SSLCertVerificationError as e:
            raise MailboxError(f"TLS with IMAP server {where} failed: {e.verify_message}") from None
        except ssl.SSLError as e:
            raise MailboxError(f"TLS with IMAP server {where} failed: {e.reason}") from None
        except (imaplib.IMAP4.error, OSError) as e:
            raise MailboxError(f"cannot reach IMAP server {where}: {self._text(e)}") from None
        try:
            self._imap.login(settings.username, settings.password)
        except (imaplib.IMAP4.error, OSError) as e:
            self._abandon()
            raise MailboxError(
                f"IMAP login to {where} as {settings.username} failed: {self._text(e)}"
            ) from None
        self._caps = self._capabilities()
        typ, data = self._call("SELECT", self._imap.select, _quote(settings.folder))
        if typ != "OK":
            self._abandon()
            raise MailboxError(f"IMAP folder {settings.folder!r} on {where}: {self._words(data)}")

    # -- plumbing --

    def _text(self, e: BaseException) -> str:
        text = str(e) or type(e).__name__
        # Belt and braces: a server that echoed the password must not get it printed.
        return text.replace(self.settings.password, "***") if self.settings.password else text

    def _words(self, data: object) -> str:
        if isinstance(data, list):
            return " ".join(
                d.decode("utf-8", "replace") if isinstance(d, bytes) else str(d)
                for d in data
                if d is not None and not isinstance(d, tuple)
            )
        return str(data)

    def _call(
        self, what: str, fn: Callable[..., tuple[str, list[Any]]], *args: str
    ) -> tuple[str, list[object]]:
        try:
            typ, data = fn(*args)
        except (imaplib.IMAP4.error, OSError) as e:
            raise MailboxError(
                f"IMAP {what} on {self.settings.host} failed: {self._text(e)}"
            ) from None
        return str(typ), list(data)

    def _capabilities(self) -> set[str]:
        # The pre-login list (imaplib's .capabilities) may lack UIDPLUS and MOVE: ask again.
        typ, data = self._call("CAPABILITY", self._imap.capability)
        words = self._words(data).upper().split()
        return set(words) | {c.upper() for c in self._imap.capabilities}

    def _abandon(self) -> None:
        with contextlib.suppress(OSError):
            self._imap.shutdown()

    def _uid(self, command: str, *args: str) -> tuple[str, list[object]]:
        typ, data = self._call(f"UID {command}", self._imap.uid, command, *args)
        if typ != "OK":
            raise MailboxError(
                f"IMAP UID {command} on {self.settings.host} refused: {self._words(data)}"
            )
        return typ, data

    # -- the mailbox --

    def messages(self) -> Iterator[tuple[str, bytes]]:
        criteria = "(NOT DELETED)" if self.include_seen else "(UNSEEN NOT DELETED)"
        _, data = self._uid("SEARCH", criteria)
        uids = sorted({int(u) for u in self._words(data).split() if u.isdigit()})
        for start in range(0, len(uids), _FETCH_BATCH):
            batch = ",".join(str(u) for u in uids[start : start + _FETCH_BATCH])
            _, fetched = self._uid("FETCH", batch, "(UID BODY.PEEK[])")
            for item in fetched:
                if isinstance(item, tuple) and len(item) == 2:
                    m = _UID.search(item[0])
                    if m and isinstance(item[1], bytes):
                        yield m.group(1).decode("ascii"), item[1]

    def _ensure_target(self) -> str:
        if self.move_to is None:
            raise ValueError("DoneAction.MOVE needs a mailbox opened with move_to")
        target = _quote(self.move_to)
        if not self._moved_target_ready:
            typ, data = self._call("LIST", self._imap.list, '""', target)
            if not any(isinstance(d, bytes) for d in data):
                typ, data = self._call("CREATE", self._imap.create, target)
                if typ != "OK":
                    raise MailboxError(
                        f"cannot create IMAP folder {self.move_to!r}: {self._words(data)}"
                    )
            self._moved_target_ready = True
        return target

    def done(self, key: str, action: DoneAction) -> None:
        if not key.isdigit():
            raise KeyError(key)
        if action is DoneAction.MOVE:
            target = self._ensure_target()
            self._uid("STORE", key, "+FLAGS.SILENT", "(\\Seen)")
            if "MOVE" in self._caps:
                self._uid("MOVE", key, target)
                return
            self._uid("COPY", key, target)
            action = DoneAction.DELETE
        if action is DoneAction.DELETE:
            self._uid("STORE", key, "+FLAGS.SILENT", "(\\Seen \\Deleted)")
            self._expunge.append(key)
        else:
            self._uid("STORE", key, "+FLAGS.SILENT", "(\\Seen)")

    def close(self) -> None:
        try:
            if self._expunge:
                if "UIDPLUS" in self._caps:
                    self._uid("EXPUNGE", ",".join(self._expunge))
                else:
                    self._call("EXPUNGE", self._imap.expunge)
                self._expunge.clear()
        finally:
            # LOGOUT, not CLOSE: CLOSE would expunge every \Deleted message in the folder.
            try:
                self._imap.logout()
            except (imaplib.IMAP4.error, OSError):
                self._abandon()
