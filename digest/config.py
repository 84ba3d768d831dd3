"""Configuration: one TOML file (``digest.toml``) read with tomllib, validated once on load into
typed sections (``config.site.base_url``, ``config.send.concurrency``...), with the environment
taking precedence. Secrets (``DIGEST_SECRET``, ``DIGEST_SMTP_PASSWORD``) are only ever read from
the environment, never from the file or the database.

To add a setting: add a field (type and default) to its section's dataclass below and a line to
``EXAMPLE_TOML``; ``load_config`` validates it from the field's type.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from .errors import ConfigError, DigestError


@dataclass(frozen=True)
class SiteSettings:
    name: str = "Example News Desk"
    # Public URL where `digest serve` is reachable; every link in a digest starts with it.
    base_url: str = "http://127.0.0.1:8080"
    language: str = "en"
    unsubscribe_mailto: str | None = None


@dataclass(frozen=True)
class IngestSettings:
    max_text_bytes: int = 200_000  # longer article text is stored truncated, with a note
    fetch_timeout: float = 20  # seconds, per feed URL
    max_feed_bytes: int = 20_000_000  # a larger feed download is refused
    # Feeds may only reach public addresses (see digest/ingest/http.py); true lets them reach
    # loopback, private and link-local ones too (feeds served on your own network).
    allow_private_addresses: bool = False


@dataclass(frozen=True)
class DigestSettings:
    subject: str = "{top} — {date}"  # the default: templates/email/subject.txt, translated
    html_budget: int = 90_000  # bytes of encoded HTML; Gmail clips past ~102 KB
    excerpt_words: int = 50


@dataclass(frozen=True)
class SendSettings:
    concurrency: int = 20  # SMTP connections at once (see EXAMPLE_TOML)
    per_connection: int = 100  # messages per connection before reconnecting
    rate_per_second: float = 0  # 0 = unlimited
    rate_per_hour: int = 0
    max_age_hours: float = 72  # a delivery deferred longer than this is failed
    lease_seconds: int = 300  # a sender that dies holds its claimed deliveries this long
    claim_batch: int = 200  # deliveries claimed per transaction
    timeout: float = 30  # seconds for connect and for every SMTP command

    @property
    def max_age(self) -> timedelta:
        return timedelta(hours=self.max_age_hours)


@dataclass(frozen=True)
class DkimSettings:
    """DKIM signing by digest itself, for relays that do not sign (most providers do)."""

    selector: str | None = None  # e.g. "news2025": the key is at news2025._domainkey.<domain>
    domain: str | None = None  # the d= domain, normally the From address's domain
    key_file: str | None = None  # PEM private key; relative to the configuration file

    @property
    def enabled(self) -> bool:
        return bool(self.selector or self.domain or self.key_file)


@dataclass(frozen=True)
class ScheduleSettings:
    poll_minutes: float = 15
    max_lateness_daily_hours: float = 24
    max_lateness_weekly_hours: float = 72

    def max_lateness(self, frequency: str) -> timedelta:
        """How late an issue of ``frequency`` may still be sent."""
        hours = (
            self.max_lateness_weekly_hours
            if frequency == "weekly"
            else self.max_lateness_daily_hours
        )
        return timedelta(hours=hours)


@dataclass(frozen=True)
class SubscribersSettings:
    """Asking pending people to confirm (see delivery/optin.py)."""

    # A pending subscription not confirmed for this long expires (the scheduler checks).
    pending_expire_days: float = 30
    # `digest subscribers remind` sends a pending person at most this many reminders.
    max_reminders: int = 2

    @property
    def pending_expiry(self) -> timedelta:
        return timedelta(days=self.pending_expire_days)


@dataclass(frozen=True)
class WebSettings:
    secure_cookies: bool = True
    proxy_hops: int = 0  # reverse proxies in front of `digest serve` that set X-Forwarded-*
    session_hours: float = 12  # staff are logged out after this long
    # Requests per client address within limit_window_seconds; over that: 429.
    limit_window_seconds: float = 60
    subscribe_limit: int = 5
    token_limit: int = 30
    login_limit: int = 10

    def limit(self, group: str) -> int:
        """The request limit of a rate-limit group: subscribe, token or login."""
        return {"subscribe": self.subscribe_limit, "token": self.token_limit,
                "login": self.login_limit}[group]  # fmt: skip


BOUNCE_DONE = ("seen", "delete", "move")
WEBHOOK_PROVIDERS = ("postmark", "mailgun", "sendgrid")


@dataclass(frozen=True)
class BounceSettings:
    """Where bounces come back to and what happens to them (issue 16)."""

    # The envelope sender (return path) of every digest; None: each list's From address, unless
    # the list has its own (``lists edit --bounce-address``).
    address: str | None = None
    verp: bool = True  # bounces+<token>@domain, naming the delivery
    delimiter: str = "+"  # the MTA's recipient delimiter (Postfix recipient_delimiter)
    soft_threshold: int = 3  # this many soft bounces ...
    soft_window_days: float = 15  # ... within this many days count as a hard bounce
    provider: str | None = None  # tag messages for this provider's webhooks
    ses_topic_arns: tuple[str, ...] = ()  # the only SNS topics /hooks/ses accepts
    poll_minutes: float = 0  # digest run reads the mailbox below this often; 0 = never
    maildir: str | None = None
    mbox: str | None = None
    imap: str | None = None  # imaps://user@host/INBOX; password in DIGEST_IMAP_PASSWORD
    done: str = "seen"  # what happens to a message once used: seen | delete | move
    move_to: str | None = None  # the folder for done = "move"

    @property
    def mailbox_configured(self) -> bool:
        return any((self.maildir, self.mbox, self.imap))


SECTIONS: dict[str, type] = {
    "site": SiteSettings,
    "ingest": IngestSettings,
    "digest": DigestSettings,
    "send": SendSettings,
    "dkim": DkimSettings,
    "schedule": ScheduleSettings,
    "subscribers": SubscribersSettings,
    "web": WebSettings,
    "bounces": BounceSettings,
}
TOP_LEVEL: dict[str, tuple[type, ...]] = {"templates_dir": (str,)}


def _accepted(annotation: Any) -> tuple[type, ...]:
    """The TOML value types a field of this annotation accepts: a float setting takes an
    integer too (``timeout = 30``); ``X | None`` takes an X (an absent key is the None)."""
    if isinstance(annotation, types.UnionType):
        out: tuple[type, ...] = ()
        for arg in typing.get_args(annotation):
            if arg is not type(None):
                out += _accepted(arg)
        return out
    if annotation is float:
        return (int, float)
    if typing.get_origin(annotation) is tuple:
        return (list,)  # a TOML array; its items are checked by _check_items
    return (annotation,)


def _schema() -> dict[str | None, dict[str, tuple[tuple[type, ...], Any]]]:
    """section -> key -> (accepted types, default), derived from the dataclasses."""
    schema: dict[str | None, dict[str, tuple[tuple[type, ...], Any]]] = {
        None: {k: (t, None) for k, t in TOP_LEVEL.items()}
    }
    for name, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        schema[name] = {
            f.name: (_accepted(hints[f.name]), f.default) for f in dataclasses.fields(cls)
        }
    return schema


SCHEMA = _schema()

# [[smtp]] relay tables: key -> (accepted types, default)
SMTP_SCHEMA: dict[str, tuple[tuple[type, ...], Any]] = {
    "url": ((str,), None),
    "tls_verify": ((bool,), True),
    "name": ((str,), None),
}


EXAMPLE_TOML = """\
# digest configuration. Every key is optional; the values shown are the defaults.
# Secrets never go here: set DIGEST_SECRET, DIGEST_SMTP_PASSWORD (and, for bounces,
# DIGEST_IMAP_PASSWORD and the webhook keys) in the environment.
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
# Feeds and their redirects may only reach public addresses: never this machine, your private
# network or a cloud metadata service (loopback, private, link-local...). Set true only if the
# feeds you fetch are served on your own network.
allow_private_addresses = false

[digest]
# Subject pattern: {top} (the first story's title), {tags}, {date}, {list}, {site}, {frequency},
# {count}. The default is translated into each list's language; `lists edit --subject` wins.
subject = "{top} — {date}"
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

# DKIM signing by digest itself, for a relay that does not sign (most providers do; signing
# here costs ~30 ms a message). Needs the dkimpy package: pip install 'digest[dkim]'.
[dkim]
# selector = "news2025"          # the public key is at news2025._domainkey.<domain>
# domain = "news.example.com"
# key_file = "dkim-private.pem"  # relative to this file; keep it readable by digest only

[schedule]
poll_minutes = 15
max_lateness_daily_hours = 24
max_lateness_weekly_hours = 72

[subscribers]
pending_expire_days = 30  # a pending subscription not confirmed for this long expires
max_reminders = 2         # `digest subscribers remind` re-sends a confirmation at most this often

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

[bounces]
# The envelope sender (return path) of every digest, where bounces go back to; without it,
# each list's From address (or the list's own: `digest lists edit --bounce-address`).
# address = "bounces@news.example.com"
# With verp, it is bounces+<token>@domain, the token naming the delivery: a bounce then finds
# its subscriber even when it hides the recipient.
verp = true
delimiter = "+"           # your MTA's recipient delimiter (Postfix recipient_delimiter)
soft_threshold = 3        # this many soft bounces (mailbox full, 4.x.x) ...
soft_window_days = 15     # ... within this many days count as a hard bounce
# Also name the delivery in the header this provider hands back to its webhooks:
# provider = "postmark"   # postmark, mailgun or sendgrid
# The SNS topics of your SES notifications, the only ones /hooks/ses accepts:
# ses_topic_arns = ["arn:aws:sns:eu-west-1:123456789012:ses-bounces"]
# The bounce mailbox `digest run` reads every poll_minutes (0 = never): one of maildir, mbox,
# imap (TLS; the password comes from DIGEST_IMAP_PASSWORD).
poll_minutes = 0
# maildir = "/home/bounces/Maildir"
# mbox = "/var/mail/bounces"
# imap = "imaps://bounces@mail.example.com/INBOX"
done = "seen"             # a message once used: seen (flag it read), delete, or move (to move_to)
# move_to = "Processed"

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


_PORT = re.compile(r"\d*\Z")


def redact_url(url: str) -> str:
    """``url`` fit for an error message or a log line, with ``***`` for a password: everything
    between the user name and the last ``@`` (a password may hold ``@``, ``/`` or ``?``), and
    anything after a ``:`` in the host part that is not a port number (where a password cut
    short by a stray character ends up)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url  # "user:password@host" without a scheme
    userinfo, at, rest = rest.rpartition("@")
    if at:
        user = re.split(r"[:/?#]", userinfo, maxsplit=1)[0]
        userinfo = user + (":***" if user != userinfo else "")
    cut = min((i for i in (rest.find(c) for c in "/?#") if i != -1), default=len(rest))
    host, tail = rest[:cut], rest[cut:]
    hostname, colon, port = host.rpartition(":")
    if colon and not _PORT.match(port) and not port.endswith("]"):
        host = hostname + ":***"
    return f"{scheme}{sep}{userinfo}{at}{host}{tail}"


def parse_smtp_url(url: str, *, tls_verify: bool = True, name: str | None = None) -> SmtpRelay:
    # Errors name the URL without its password (``redact_url``): they end up in terminals,
    # logs and CI output.
    shown = repr(redact_url(url))
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ConfigError(f"SMTP URL {shown}: not a valid URL") from None
    if parts.scheme not in _SCHEMES:
        raise ConfigError(
            f"SMTP URL {shown}: scheme must be one of smtp://, smtp+starttls://, smtps://"
        )
    if parts.password:
        raise ConfigError(
            f"SMTP URL {shown}: contains a password; put it in DIGEST_SMTP_PASSWORD instead"
        )
    if not parts.hostname:
        raise ConfigError(f"SMTP URL {shown}: no host (expected e.g. smtps://user@host:465)")
    security, default_port = _SCHEMES[parts.scheme]
    try:
        port = parts.port or default_port
    except ValueError:
        raise ConfigError(f"SMTP URL {shown}: bad port (expected a number, e.g. :587)") from None
    username = unquote(parts.username) if parts.username else None
    return SmtpRelay(url, parts.hostname, port, security, username, tls_verify, name)


@dataclass(frozen=True)
class Config:
    """Validated settings, by section. ``path`` is the file they came from (None: defaults
    only); ``env`` the environment they were read with (the source of secrets)."""

    site: SiteSettings = field(default_factory=SiteSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    digest: DigestSettings = field(default_factory=DigestSettings)
    send: SendSettings = field(default_factory=SendSettings)
    dkim: DkimSettings = field(default_factory=DkimSettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    subscribers: SubscribersSettings = field(default_factory=SubscribersSettings)
    web: WebSettings = field(default_factory=WebSettings)
    bounces: BounceSettings = field(default_factory=BounceSettings)
    smtp: tuple[SmtpRelay, ...] = ()
    templates: str | None = None  # templates_dir as written
    path: Path | None = None
    env: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def site_name(self) -> str:
        return self.site.name

    @property
    def base_url(self) -> str:
        return self.site.base_url.rstrip("/")

    @property
    def templates_dir(self) -> Path | None:
        if self.templates is None:
            return None
        p = Path(self.templates).expanduser()
        if not p.is_absolute() and self.path is not None:
            p = self.path.parent / p
        return p

    @property
    def dkim_key_path(self) -> Path | None:
        if self.dkim.key_file is None:
            return None
        p = Path(self.dkim.key_file).expanduser()
        if not p.is_absolute() and self.path is not None:
            p = self.path.parent / p
        return p

    @property
    def smtp_password(self) -> str | None:
        return self.env.get("DIGEST_SMTP_PASSWORD") or None


def _type_name(types_: tuple[type, ...]) -> str:
    return " or ".join(x.__name__ for x in types_)


def _check(where: str, value: Any, expected: tuple[type, ...]) -> None:
    # bool is an int subclass in Python; a TOML true is not a number.
    if (isinstance(value, bool) and bool not in expected) or not isinstance(value, expected):
        raise ConfigError(
            f"{where}: expected {_type_name(expected)}, got {type(value).__name__} {value!r}"
        )


def load_config(path: str | Path | None = None, env: dict[str, str] | None = None) -> Config:
    """Read and validate the configuration. ``path=None`` means defaults only.

    ``env`` defaults to ``os.environ``; tests pass their own."""
    env = dict(os.environ if env is None else env)
    raw: dict[str, Any] = {}
    cfg_path = Path(path) if path is not None else None
    if cfg_path is not None:
        try:
            text = cfg_path.read_bytes().decode("utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{cfg_path}: configuration file not found") from None
        except IsADirectoryError:
            raise ConfigError(f"{cfg_path}: is a directory, not a configuration file") from None
        except UnicodeDecodeError as e:
            raise ConfigError(f"{cfg_path}: not UTF-8 text ({e})") from None
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{cfg_path}: invalid TOML: {e}") from None
    name = str(cfg_path) if cfg_path else "configuration"

    schema = SCHEMA
    values: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    templates: str | None = None
    relays: list[SmtpRelay] = []
    for key, value in raw.items():
        if key == "smtp":
            if not isinstance(value, list):
                raise ConfigError(f"{name}: 'smtp' must be a list of tables, written [[smtp]]")
            for i, table in enumerate(value, 1):
                relays.append(_relay(name, i, table))
        elif key in TOP_LEVEL:
            _check(f"{name}: key '{key}'", value, TOP_LEVEL[key])
            templates = value
        elif key in SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{name}: '{key}' must be a table, written [{key}]")
            for sub, subvalue in value.items():
                if sub not in schema[key]:
                    known = ", ".join(sorted(schema[key]))
                    raise ConfigError(f"{name}: unknown key '{key}.{sub}' (known: {known})")
                _check(f"{name}: key '{key}.{sub}'", subvalue, schema[key][sub][0])
                if isinstance(subvalue, list):
                    subvalue = _string_items(f"{name}: key '{key}.{sub}'", subvalue)
                values[key][sub] = subvalue
        else:
            known = ", ".join(sorted([*SECTIONS, *TOP_LEVEL, "smtp"]))
            raise ConfigError(f"{name}: unknown key '{key}' (known: {known})")

    if env.get("DIGEST_BASE_URL"):
        values["site"]["base_url"] = env["DIGEST_BASE_URL"]
    if env.get("DIGEST_SMTP_URL"):
        # Split only before a scheme: a comma inside a password must not cut the URL in two
        # (and then show the halves in the error).
        urls = re.split(r",(?=\s*smtp)", env["DIGEST_SMTP_URL"])
        relays = [parse_smtp_url(u.strip()) for u in urls if u.strip()]
    site = SiteSettings(**values["site"])
    base = urlsplit(site.base_url)
    if base.scheme not in ("http", "https") or not base.netloc:
        raise ConfigError(
            f"{name}: site.base_url must be an absolute http(s) URL, got {site.base_url!r}"
        )
    bounces = BounceSettings(**values["bounces"])
    _check_bounces(name, bounces)
    return Config(
        site=site,
        ingest=IngestSettings(**values["ingest"]),
        digest=DigestSettings(**values["digest"]),
        send=SendSettings(**values["send"]),
        dkim=_dkim(name, DkimSettings(**values["dkim"])),
        schedule=ScheduleSettings(**values["schedule"]),
        subscribers=_subscribers(name, SubscribersSettings(**values["subscribers"])),
        web=WebSettings(**values["web"]),
        bounces=bounces,
        smtp=tuple(relays),
        templates=templates,
        path=cfg_path,
        env=env,
    )


def _dkim(name: str, dkim: DkimSettings) -> DkimSettings:
    if dkim.enabled and not (dkim.selector and dkim.domain and dkim.key_file):
        raise ConfigError(
            f"{name}: [dkim] needs selector, domain and key_file together (or none of them)"
        )
    return dkim


def _subscribers(name: str, settings: SubscribersSettings) -> SubscribersSettings:
    if settings.pending_expire_days < 1:
        raise ConfigError(f"{name}: [subscribers] pending_expire_days must be at least 1")
    if settings.max_reminders < 0:
        raise ConfigError(f"{name}: [subscribers] max_reminders must not be negative")
    return settings


def _string_items(where: str, value: list[Any]) -> tuple[str, ...]:
    for item in value:
        if not isinstance(item, str):
            raise ConfigError(f"{where}: expected a list of strings, got {item!r} in it")
    return tuple(value)


def _check_bounces(name: str, b: BounceSettings) -> None:
    """The [bounces] values that a type alone does not check, each named in its error."""
    from .verp import check_bounce_address  # verp imports nothing from config

    where = f"{name}: key 'bounces."
    if b.address is not None:
        try:
            check_bounce_address(b.address, delimiter=b.delimiter)
        except DigestError as e:
            raise ConfigError(f"{where}address': {e}") from None
    if b.delimiter not in ("+", "-", "=", "_"):
        raise ConfigError(f"{where}delimiter': one of + - = _ (your MTA's), got {b.delimiter!r}")
    if b.soft_threshold < 1:
        raise ConfigError(f"{where}soft_threshold': at least 1, got {b.soft_threshold}")
    if b.soft_window_days <= 0:
        raise ConfigError(f"{where}soft_window_days': more than 0, got {b.soft_window_days}")
    if b.provider is not None and b.provider not in WEBHOOK_PROVIDERS:
        known = ", ".join(WEBHOOK_PROVIDERS)
        raise ConfigError(f"{where}provider': one of {known}, got {b.provider!r}")
    if b.poll_minutes < 0:
        raise ConfigError(f"{where}poll_minutes': 0 (never) or more, got {b.poll_minutes}")
    given = [k for k in ("maildir", "mbox", "imap") if getattr(b, k)]
    if len(given) > 1:
        raise ConfigError(f"{name}: [bounces] names {' and '.join(given)}: give one bounce mailbox")
    if b.poll_minutes and not given:
        raise ConfigError(
            f"{where}poll_minutes' is set but no mailbox is: add maildir, mbox or imap"
        )
    if b.done not in BOUNCE_DONE:
        raise ConfigError(f"{where}done': one of {', '.join(BOUNCE_DONE)}, got {b.done!r}")
    if (b.done == "move") != (b.move_to is not None):
        raise ConfigError(f'{name}: [bounces] move_to goes with done = "move" (and it needs one)')
    for arn in b.ses_topic_arns:
        if not arn.startswith("arn:aws:sns:"):
            raise ConfigError(f"{where}ses_topic_arns': {arn!r} is not an SNS topic ARN")


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
