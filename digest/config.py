"""Configuration: one TOML file (``digest.toml``) read with tomllib, validated on load, with the
environment taking precedence. Secrets (``DIGEST_SECRET``, ``DIGEST_SMTP_PASSWORD``) are only
ever read from the environment, never from the file or the database.

To add a setting: add it to ``SCHEMA`` (type and default) and to ``EXAMPLE_TOML``; it is then
reachable as ``config.get("section", "key")`` or, for top-level keys, ``config.get(None, "key")``.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from .errors import ConfigError

# section -> key -> (type or tuple of types, default). Section None holds top-level keys.
SCHEMA: dict[str | None, dict[str, tuple[Any, Any]]] = {
    None: {
        "templates_dir": (str, None),
    },
    "site": {
        "name": (str, "Example News Desk"),
        "base_url": (str, "http://127.0.0.1:8080"),
        "language": (str, "en"),
        "unsubscribe_mailto": (str, None),
    },
    "ingest": {
        "max_text_bytes": (int, 200_000),
        "fetch_timeout": ((int, float), 20),
        "max_feed_bytes": (int, 20_000_000),
    },
    "digest": {
        "subject": (str, "{{ site }} — {{ frequency }} digest, {{ date }}: {{ tags }}"),
        "html_budget": (int, 90_000),
        "excerpt_words": (int, 50),
    },
    "send": {
        "concurrency": (int, 20),
        "per_connection": (int, 100),
        "rate_per_second": ((int, float), 0),
        "rate_per_hour": (int, 0),
        "max_age_hours": ((int, float), 72),
        "lease_seconds": (int, 300),
        "claim_batch": (int, 200),
        "timeout": ((int, float), 30),
    },
    "schedule": {
        "poll_minutes": ((int, float), 15),
        "max_lateness_daily_hours": ((int, float), 24),
        "max_lateness_weekly_hours": ((int, float), 72),
    },
    "web": {
        "secure_cookies": (bool, True),
        "proxy_hops": (int, 0),
        "session_hours": ((int, float), 12),
        "limit_window_seconds": ((int, float), 60),
        "subscribe_limit": (int, 5),
        "token_limit": (int, 30),
        "login_limit": (int, 10),
    },
}

# [[smtp]] relay tables: key -> (type, default)
SMTP_SCHEMA: dict[str, tuple[Any, Any]] = {
    "url": (str, None),
    "tls_verify": (bool, True),
    "name": (str, None),
}

EXAMPLE_TOML = """\
# digest configuration. Every key is optional; the values shown are the defaults.
# Secrets never go here: set DIGEST_SECRET and DIGEST_SMTP_PASSWORD in the environment.
# The environment also overrides: DIGEST_BASE_URL ([site] base_url), DIGEST_SMTP_URL ([[smtp]]).

# templates_dir = "my-templates"   # your own copy of the templates/ folder

[site]
name = "Example News Desk"
# Public URL where `digest serve` is reachable; every link in a digest starts with it.
base_url = "http://127.0.0.1:8080"
language = "en"
# unsubscribe_mailto = "unsubscribe@news.example.com"

[ingest]
max_text_bytes = 200000   # longer article text is stored truncated, with a note
fetch_timeout = 20        # seconds, per feed URL
max_feed_bytes = 20000000 # a larger feed download is refused

[digest]
subject = "{{ site }} — {{ frequency }} digest, {{ date }}: {{ tags }}"
html_budget = 90000       # bytes of encoded HTML; Gmail clips past ~102 KB
excerpt_words = 50

[send]
# SMTP connections at once (up to a few hundred: one event loop, no thread each). 20 is
# what common relays accept from one client (Postfix smtpd_client_connection_count_limit
# defaults to 50, Amazon SES and Microsoft 365 allow dozens); a relay that answers
# "421 too many connections" gets fewer, automatically.
concurrency = 20
per_connection = 100      # messages per connection before reconnecting
rate_per_second = 0       # 0 = unlimited
rate_per_hour = 0
max_age_hours = 72        # a delivery deferred longer than this is failed
lease_seconds = 300       # a sender that dies holds its claimed deliveries this long (or: --recover)
claim_batch = 200         # deliveries claimed per transaction
timeout = 30              # seconds for connect and for every SMTP command

[schedule]
poll_minutes = 15
max_lateness_daily_hours = 24
max_lateness_weekly_hours = 72

[web]
# Cookies are sent over HTTPS only. They can be plain only when base_url is http on
# localhost/127.0.0.1 (development), or with secure_cookies = false.
secure_cookies = true
proxy_hops = 0            # reverse proxies in front of `digest serve` that set X-Forwarded-*
session_hours = 12        # staff are logged out after this long
# Requests per client address within limit_window_seconds; over that: 429 Too Many Requests.
limit_window_seconds = 60
subscribe_limit = 5       # subscribe form submissions
token_limit = 30          # confirm / unsubscribe / preferences links (/c, /u, /p)
login_limit = 10          # login attempts

# One table per relay; deliveries are spread over them round-robin.
# The password comes from DIGEST_SMTP_PASSWORD.
# [[smtp]]
# url = "smtp+starttls://user@smtp.example.com:587"
# tls_verify = true
"""


@dataclass(frozen=True)
class SmtpRelay:
    """One SMTP relay, parsed from ``smtp://host:port``, ``smtp+starttls://user@host:587`` or
    ``smtps://user@host:465``."""

    url: str
    host: str
    port: int
    security: str  # "plain" | "starttls" | "tls"
    username: str | None
    tls_verify: bool = True
    name: str | None = None

    @property
    def label(self) -> str:
        return self.name or f"{self.host}:{self.port}"


_SCHEMES = {"smtp": ("plain", 25), "smtp+starttls": ("starttls", 587), "smtps": ("tls", 465)}


def parse_smtp_url(url: str, *, tls_verify: bool = True, name: str | None = None) -> SmtpRelay:
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES:
        raise ConfigError(
            f"SMTP URL {url!r}: scheme must be one of smtp://, smtp+starttls://, smtps://"
        )
    if not parts.hostname:
        raise ConfigError(f"SMTP URL {url!r}: no host (expected e.g. smtps://user@host:465)")
    if parts.password:
        raise ConfigError(
            f"SMTP URL {url!r}: contains a password; put it in DIGEST_SMTP_PASSWORD instead"
        )
    security, default_port = _SCHEMES[parts.scheme]
    try:
        port = parts.port or default_port
    except ValueError as e:
        raise ConfigError(f"SMTP URL {url!r}: bad port ({e})") from None
    username = unquote(parts.username) if parts.username else None
    return SmtpRelay(url, parts.hostname, port, security, username, tls_verify, name)


@dataclass
class Config:
    """Validated settings. ``path`` is the file they came from (None: defaults only)."""

    values: dict[str | None, dict[str, Any]]
    smtp: list[SmtpRelay] = field(default_factory=list)
    path: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

    def get(self, section: str | None, key: str) -> Any:
        return self.values[section][key]

    @property
    def site_name(self) -> str:
        return self.get("site", "name")

    @property
    def base_url(self) -> str:
        return self.get("site", "base_url").rstrip("/")

    @property
    def templates_dir(self) -> Path | None:
        value = self.get(None, "templates_dir")
        if value is None:
            return None
        p = Path(value).expanduser()
        if not p.is_absolute() and self.path is not None:
            p = self.path.parent / p
        return p

    @property
    def smtp_password(self) -> str | None:
        return self.env.get("DIGEST_SMTP_PASSWORD") or None


def _type_name(t: Any) -> str:
    if isinstance(t, tuple):
        return " or ".join(x.__name__ for x in t)
    return t.__name__


def _check(where: str, value: Any, expected: Any) -> None:
    # bool is an int subclass in Python; a TOML true is not a number.
    types = expected if isinstance(expected, tuple) else (expected,)
    if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
        raise ConfigError(
            f"{where}: expected {_type_name(expected)}, got {type(value).__name__} {value!r}"
        )


def load_config(path: str | Path | None = None, env: dict[str, str] | None = None) -> Config:
    """Read and validate the configuration. ``path=None`` means defaults only.

    ``env`` defaults to ``os.environ``; tests pass their own.
    """
    env = dict(os.environ if env is None else env)
    raw: dict[str, Any] = {}
    cfg_path = Path(path) if path is not None else None
    if cfg_path is not None:
        try:
            text = cfg_path.read_bytes().decode("utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{cfg_path}: configuration file not found") from None
        except UnicodeDecodeError as e:
            raise ConfigError(f"{cfg_path}: not UTF-8 text ({e})") from None
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{cfg_path}: invalid TOML: {e}") from None
    name = str(cfg_path) if cfg_path else "configuration"

    values: dict[str | None, dict[str, Any]] = {
        s: {k: d for k, (_, d) in keys.items()} for s, keys in SCHEMA.items()
    }
    relays: list[SmtpRelay] = []
    for key, value in raw.items():
        if key == "smtp":
            if not isinstance(value, list):
                raise ConfigError(f"{name}: 'smtp' must be a list of tables, written [[smtp]]")
            for i, table in enumerate(value, 1):
                relays.append(_relay(name, i, table))
        elif key in SCHEMA[None]:
            if value is not None:
                _check(f"{name}: key '{key}'", value, SCHEMA[None][key][0])
            values[None][key] = value
        elif key in SCHEMA and key is not None:
            if not isinstance(value, dict):
                raise ConfigError(f"{name}: '{key}' must be a table, written [{key}]")
            for sub, subvalue in value.items():
                if sub not in SCHEMA[key]:
                    known = ", ".join(sorted(SCHEMA[key]))
                    raise ConfigError(f"{name}: unknown key '{key}.{sub}' (known: {known})")
                _check(f"{name}: key '{key}.{sub}'", subvalue, SCHEMA[key][sub][0])
                values[key][sub] = subvalue
        else:
            known = ", ".join(sorted([k for k in SCHEMA if k] + list(SCHEMA[None]) + ["smtp"]))
            raise ConfigError(f"{name}: unknown key '{key}' (known: {known})")

    if env.get("DIGEST_BASE_URL"):
        values["site"]["base_url"] = env["DIGEST_BASE_URL"]
    if env.get("DIGEST_SMTP_URL"):
        relays = [parse_smtp_url(u.strip()) for u in env["DIGEST_SMTP_URL"].split(",") if u.strip()]
    base = urlsplit(values["site"]["base_url"])
    if base.scheme not in ("http", "https") or not base.netloc:
        raise ConfigError(
            f"{name}: site.base_url must be an absolute http(s) URL, got {values['site']['base_url']!r}"
        )
    return Config(values=values, smtp=relays, path=cfg_path, env=env)


def _relay(name: str, index: int, table: Any) -> SmtpRelay:
    where = f"{name}: [[smtp]] #{index}"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    for key, value in table.items():
        if key not in SMTP_SCHEMA:
            raise ConfigError(f"{where}: unknown key '{key}' (known: {', '.join(SMTP_SCHEMA)})")
        _check(f"{where} key '{key}'", value, SMTP_SCHEMA[key][0])
    if "url" not in table:
        raise ConfigError(f"{where}: missing 'url' (e.g. url = \"smtps://user@host:465\")")
    return parse_smtp_url(
        table["url"], tls_verify=table.get("tls_verify", True), name=table.get("name")
    )


def write_example(path: Path) -> bool:
    """Write the commented example config unless the file exists. Returns True if written."""
    if path.exists():
        return False
    path.write_text(EXAMPLE_TOML, encoding="utf-8")
    return True
