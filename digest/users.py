"""Staff accounts for ``digest serve``: editors (preview, test sends) and admins (lists and
subscribers). Passwords are stored only as werkzeug scrypt hashes; subscribers never have
accounts (they use signed links, see ``tokens``)."""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime

from sqlite_utils import Database
from werkzeug.security import check_password_hash, generate_password_hash

from .errors import InvalidInput, NotFound
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
    with db.atomic():
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


def remove_user(db: Database, name: str) -> None:
    cursor = db.execute("DELETE FROM users WHERE name = ?", [name])
    if cursor.rowcount == 0:
        raise NotFound(f"no user {name!r}")


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
