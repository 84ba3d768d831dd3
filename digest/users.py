"""Staff accounts for ``digest serve``: editors (preview, test sends) and admins (lists and
subscribers), and their sessions. Passwords are stored only as werkzeug scrypt hashes;
subscribers never have accounts (they use signed links, see ``tokens``).

Sessions live on the server (table ``staff_sessions``, written only here): the session cookie
carries a random token, and a request is logged in only while that token's row exists, has not
expired and was made with the account's current password. Logging out deletes the row, so an
earlier copy of the cookie stops working too; changing the password or removing the account
ends every session of the account.
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlite_utils import Database
from werkzeug.security import check_password_hash, generate_password_hash

from .errors import InvalidInput, NotFound
from .store import transaction
from .timeutil import to_iso

ROLES = ("editor", "admin")
MIN_PASSWORD_LENGTH = 10
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str
    created_at: str
    last_login_at: str | None
    password_hash: str = field(repr=False, default="")

    def has_role(self, role: str) -> bool:
        """Admins can do everything editors can."""
        return self.role == "admin" or self.role == role

    @property
    def auth_stamp(self) -> str:
        """Changes whenever the password hash changes, so a session made with an old password
        (kept in a cookie) stops working once the password is changed."""
        return hashlib.sha256(self.password_hash.encode("utf-8")).hexdigest()[:20]

    @classmethod
    def from_row(cls, row: dict) -> User:
        return cls(
            id=row["id"],
            name=row["name"],
            role=row["role"],
            created_at=row["created_at"],
            last_login_at=row["last_login_at"],
            password_hash=row["password_hash"],
        )


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidInput(
            f"user name {name!r}: use 1-64 letters, digits, '.', '_', '-' or '@', "
            "starting with a letter or digit"
        )
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"password too short: use at least {MIN_PASSWORD_LENGTH} characters")
    if not password.strip():
        raise InvalidInput("password must not be only spaces")
    return password


def add_user(db: Database, name: str, password: str, role: str, *, now: datetime) -> User:
    """Create an account. Raises ``InvalidInput`` for a bad name, role or password, or if the
    name is taken."""
    check_name(name)
    if role not in ROLES:
        raise InvalidInput(f"role {role!r}: must be one of {', '.join(ROLES)}")
    check_password(password)
    hashed = generate_password_hash(password)
    with transaction(db):
        if db.execute("SELECT 1 FROM users WHERE name = ?", [name]).fetchone():
            raise InvalidInput(f"user {name!r} already exists")
        cursor = db.execute(
            "INSERT INTO users (name, role, password_hash, created_at) VALUES (?, ?, ?, ?)",
            [name, role, hashed, to_iso(now)],
        )
    assert cursor.lastrowid is not None
    user = get_user(db, cursor.lastrowid)
    assert user is not None
    return user


def list_users(db: Database) -> list[User]:
    return [User.from_row(r) for r in db.query("SELECT * FROM users ORDER BY name")]


def get_user(db: Database, user_id: int) -> User | None:
    rows = list(db.query("SELECT * FROM users WHERE id = ?", [user_id]))
    return User.from_row(rows[0]) if rows else None


def _not_yourself(name: str, acting: str | None, what: str) -> None:
    # The web pages act as a logged-in admin: one who removed or demoted their own account
    # could leave the site with no admin at all.
    if acting is not None and acting == name:
        command = f"remove {name}" if what == "remove" else f"role {name} ROLE"
        raise InvalidInput(
            f"you cannot {what} your own account; another admin can, or on the server:"
            f" digest users {command}"
        )


def remove_user(db: Database, name: str, *, acting: str | None = None) -> None:
    """Delete an account; its sessions go with it (ON DELETE CASCADE). ``acting``: the admin
    doing it on the web, who may not remove themselves."""
    _not_yourself(name, acting, "remove")
    cursor = db.execute("DELETE FROM users WHERE name = ?", [name])
    if cursor.rowcount == 0:
        raise NotFound(f"no user {name!r}")


def set_role(db: Database, name: str, role: str, *, acting: str | None = None) -> User:
    """Make account ``name`` an editor or an admin. A changed role ends the account's sessions
    (pages it had open were shown for the old role). ``acting``: as for ``remove_user``."""
    if role not in ROLES:
        raise InvalidInput(f"role {role!r}: must be one of {', '.join(ROLES)}")
    _not_yourself(name, acting, "change the role of")
    with transaction(db):
        rows = list(db.query("SELECT * FROM users WHERE name = ?", [name]))
        if not rows:
            raise NotFound(f"no user {name!r}")
        if rows[0]["role"] != role:
            db.execute("UPDATE users SET role = ? WHERE name = ?", [role, name])
            db.execute("DELETE FROM staff_sessions WHERE user_id = ?", [rows[0]["id"]])
    rows = list(db.query("SELECT * FROM users WHERE name = ?", [name]))
    return User.from_row(rows[0])


def set_password(db: Database, name: str, password: str) -> User:
    """Give account ``name`` a new password and end all of its sessions (someone who had the
    old password, or a copy of a session cookie, is logged out everywhere)."""
    check_password(password)
    hashed = generate_password_hash(password)
    with transaction(db):
        cursor = db.execute("UPDATE users SET password_hash = ? WHERE name = ?", [hashed, name])
        if cursor.rowcount == 0:
            raise NotFound(f"no user {name!r}")
        db.execute(
            "DELETE FROM staff_sessions WHERE user_id = (SELECT id FROM users WHERE name = ?)",
            [name],
        )
    rows = list(db.query("SELECT * FROM users WHERE name = ?", [name]))
    return User.from_row(rows[0])


def change_own_password(db: Database, user: User, current: str, new: str) -> User:
    """A logged-in user's own password change: ``current`` must be their password now (a
    session left open on another computer must not be enough to take the account over).
    Every session of the account ends, as with ``set_password``."""
    fresh = get_user(db, user.id)
    if fresh is None:
        raise NotFound(f"no user {user.name!r}")
    if not check_password_hash(fresh.password_hash, current):
        raise InvalidInput("the current password is not right; nothing was changed")
    if new == current:
        raise InvalidInput("the new password is the same as the current one")
    return set_password(db, fresh.name, new)


@functools.cache
def _dummy_hash() -> str:
    return generate_password_hash("not a real password, used to keep timing even")


def authenticate(db: Database, name: str, password: str, *, now: datetime) -> User | None:
    """The user if ``password`` is theirs, else None. An unknown name costs the same hash
    check as a wrong password, so response time does not reveal which names exist."""
    rows = list(db.query("SELECT * FROM users WHERE name = ?", [name]))
    if not rows:
        check_password_hash(_dummy_hash(), password)
        return None
    user = User.from_row(rows[0])
    if not check_password_hash(user.password_hash, password):
        return None
    db.execute("UPDATE users SET last_login_at = ? WHERE id = ?", [to_iso(now), user.id])
    return user


# --- sessions -----------------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def start_session(db: Database, user: User, *, now: datetime, lifetime: timedelta) -> str:
    """A new session for ``user`` that ends ``lifetime`` after ``now``; returns its token for
    the session cookie (only a hash of it is stored). Expired sessions are swept here."""
    token = secrets.token_urlsafe(32)
    with transaction(db):
        db.execute("DELETE FROM staff_sessions WHERE expires_at <= ?", [to_iso(now)])
        db.execute(
            "INSERT INTO staff_sessions (token_hash, user_id, auth_stamp, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [_token_hash(token), user.id, user.auth_stamp, to_iso(now), to_iso(now + lifetime)],
        )
    return token


def session_user(db: Database, token: str, *, now: datetime) -> User | None:
    """The user whose live session ``token`` is, or None: no such session (logged out, or
    never existed), expired, or made before the account's password was changed."""
    rows = list(
        db.query(
            "SELECT users.*, s.auth_stamp AS session_stamp FROM staff_sessions s"
            " JOIN users ON users.id = s.user_id WHERE s.token_hash = ? AND s.expires_at > ?",
            [_token_hash(token), to_iso(now)],
        )
    )
    if not rows:
        return None
    user = User.from_row(rows[0])
    return user if rows[0]["session_stamp"] == user.auth_stamp else None


def end_session(db: Database, token: str) -> None:
    """Log out: the session ``token`` stops working for every copy of its cookie."""
    db.execute("DELETE FROM staff_sessions WHERE token_hash = ?", [_token_hash(token)])
