"""Config, migrations, tokens and the `init` command."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta

import pytest

from digest.articles.tags import tag_key
from digest.config import ConfigError, load_config, parse_smtp_url
from digest.errors import TokenError
from digest.store import migrations, open_db, schema_version
from digest.tokens import load_secret, make_token, read_token

NOW = datetime(2025, 1, 21, 7, 0, tzinfo=UTC)


def test_migrations_from_empty_and_from_previous_version(tmp_path):
    names = [m.name for m in migrations._migrations]
    fresh = open_db(tmp_path / "fresh.db", create=True)
    assert schema_version(fresh) == names
    # A database stopped at the previous version upgrades to the current one, keeping data.
    old = open_db(tmp_path / "old.db", migrate=False, create=True)
    migrations.apply(old, stop_before=names[-1])
    assert schema_version(old) == names[:-1]
    old["tags"].insert({"key": "kenya", "name": "Kenya"})
    old.close()
    upgraded = open_db(tmp_path / "old.db", create=True)
    assert schema_version(upgraded) == names
    assert [r["name"] for r in upgraded["tags"].rows] == ["Kenya"]
    assert upgraded.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_open_db_rejects_a_non_database_file(tmp_path):
    bad = tmp_path / "notes.db"
    bad.write_text("this is not sqlite\n" * 100)
    with pytest.raises(Exception, match="cannot open as a digest database"):
        open_db(bad, create=True)
    assert bad.read_text().startswith("this is not sqlite")


def test_tag_key_normalises():
    assert (
        tag_key("Kenya")
        == tag_key("kenya ")
        == tag_key("KENYA")
        == tag_key(" ke\tnya ".replace("\t", ""))
        == "kenya"
    )
    assert tag_key("East   Africa") == "east africa"


def test_config_defaults_env_and_errors(tmp_path):
    cfg = load_config(None, env={})
    assert cfg.digest.html_budget == 90_000
    assert cfg.smtp == ()
    path = tmp_path / "digest.toml"
    path.write_text('[site]\nname = "Desk"\n[[smtp]]\nurl = "smtps://me@mail.example.com"\n')
    cfg = load_config(path, env={"DIGEST_BASE_URL": "https://news.example.com/"})
    assert cfg.site_name == "Desk" and cfg.base_url == "https://news.example.com"
    relay = cfg.smtp[0]
    assert (relay.host, relay.port, relay.security, relay.username) == (
        "mail.example.com",
        465,
        "tls",
        "me",
    )
    cfg = load_config(path, env={"DIGEST_SMTP_URL": "smtp://127.0.0.1:2525"})
    assert [(r.host, r.port, r.security) for r in cfg.smtp] == [("127.0.0.1", 2525, "plain")]

    path.write_text("[site]\nnmae = 'x'\n")
    with pytest.raises(ConfigError, match=r"unknown key 'site.nmae'"):
        load_config(path, env={})
    path.write_text("[send]\nconcurrency = 'four'\n")
    with pytest.raises(ConfigError, match=r"send.concurrency.*expected int"):
        load_config(path, env={})
    path.write_text("[send\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(path, env={})
    with pytest.raises(ConfigError, match="password"):
        parse_smtp_url("smtps://me:hunter2@mail.example.com")


def test_init_is_idempotent(run, tmp_path):
    first = run("init")
    assert first.exit_code == 0, first.output
    assert "wrote digest.toml" in first.output
    text = (tmp_path / "digest.toml").read_text()
    load_config(tmp_path / "digest.toml", env={})  # the example is valid
    second = run("init")
    assert second.exit_code == 0
    assert "left as it is" in second.output and "up to date" in second.output
    assert (tmp_path / "digest.toml").read_text() == text


def test_tokens_roundtrip_tamper_and_expiry():
    secret = b"s3cret"
    tok = make_token(secret, "unsubscribe", 42, 7, now=NOW)
    assert tok.replace("-", "").replace("_", "").isalnum()
    t = read_token(secret, tok, "unsubscribe", now=NOW + timedelta(days=3650))
    assert (t.subscriber_id, t.list_id, t.purpose) == (42, 7, "unsubscribe")
    for i in range(len(tok)):
        for ch in "AQg_":
            if tok[i] != ch:
                bad = tok[:i] + ch + tok[i + 1 :]
                with pytest.raises(TokenError):
                    read_token(secret, bad, "unsubscribe", now=NOW)
    with pytest.raises(TokenError, match="signature"):
        read_token(b"other", tok, "unsubscribe", now=NOW)
    with pytest.raises(TokenError, match="not a confirm link"):
        read_token(secret, tok, "confirm", now=NOW)
    conf = make_token(secret, "confirm", 42, 7, now=NOW)
    assert read_token(secret, conf, "confirm", now=NOW + timedelta(days=6)).subscriber_id == 42
    with pytest.raises(TokenError, match="expired"):
        read_token(secret, conf, "confirm", now=NOW + timedelta(days=8))


def test_secret_from_env_or_private_file(tmp_path):
    assert load_secret(tmp_path / "d.db", env={"DIGEST_SECRET": "abc"}) == b"abc"
    first = load_secret(tmp_path / "d.db", env={})
    assert len(first) >= 32
    assert load_secret(tmp_path / "d.db", env={}) == first
    mode = stat.S_IMODE(os.stat(tmp_path / "d.db.secret").st_mode)
    assert mode == 0o600
