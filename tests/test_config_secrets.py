"""Secrets never appear in an error or a log line: SMTP URLs with a password in them (which the
config refuses) are shown with ``***`` in its place, however the password is written."""

from __future__ import annotations

import pytest

from digest.config import load_config, parse_smtp_url, redact_url
from digest.errors import ConfigError

PASSWORD = "hunter2"


@pytest.mark.parametrize(
    "url",
    [
        "smtps://me:hunter2@host",
        "smtp+starttls://me:hunter2@smtp.example.com:587",
        "smtps://me:hun@ter2@host:465",  # an @ in the password
        "smtps://me:hun/ter2@host",  # a / ends the host part early: "bad port hun"
        "smtps://me:hun?ter2@host",
        "smtps://me:hun#ter2@host",
        "smtps://me:hunter2@",  # no host
        "http://me:hunter2@host",  # wrong scheme
        "me:hunter2@host",  # no scheme at all
        "smtps://me:hunter2@[::1",  # not a valid URL
        "smtps://me:hunter2",  # no @: the password looks like a port
    ],
)
def test_smtp_url_errors_never_echo_the_password(url):
    with pytest.raises(ConfigError) as caught:
        parse_smtp_url(url)
    message = str(caught.value)
    for fragment in ("hunter2", "hun", "ter2"):
        assert fragment not in message, message
    assert "***" in message or "scheme" in message, message
    assert message.startswith("SMTP URL '")


def test_errors_still_say_what_is_wrong():
    with pytest.raises(ConfigError, match=r"'smtps://me:\*\*\*@host': contains a password; put"):
        parse_smtp_url("smtps://me:hunter2@host")
    with pytest.raises(ConfigError, match="'smtp://host:99999': bad port"):
        parse_smtp_url("smtp://host:99999")
    relay = parse_smtp_url("smtp+starttls://AKIAEXAMPLE@email-smtp.eu-west-1.amazonaws.com:587")
    assert (relay.username, relay.port) == ("AKIAEXAMPLE", 587)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("smtp://host:25", "smtp://host:25"),
        ("smtp://user@host:587", "smtp://user@host:587"),
        ("smtp://[::1]:25", "smtp://[::1]:25"),
        ("smtps://me:pw@host/x", "smtps://me:***@host/x"),
        ("smtps://me:p@w@host", "smtps://me:***@host"),
        ("me:pw@host", "me:***@host"),
        ("smtp://host:pw", "smtp://host:***"),
    ],
)
def test_redact_url(url, shown):
    assert redact_url(url) == shown


def test_a_comma_in_a_password_in_digest_smtp_url_does_not_split_it(tmp_path):
    env = {"DIGEST_SMTP_URL": "smtp://127.0.0.1:25, smtps://me:hun,ter2@mail.example:465"}
    with pytest.raises(ConfigError) as caught:
        load_config(None, env=env)
    assert "hun" not in str(caught.value) and "ter2" not in str(caught.value)
    assert "smtps://me:***@mail.example:465" in str(caught.value)
    two = load_config(None, env={"DIGEST_SMTP_URL": "smtp://a:25,smtp://b:26"})
    assert [r.host for r in two.smtp] == ["a", "b"]


def test_config_file_and_cli_errors_hide_the_password(run, tmp_path, monkeypatch):
    cfg = tmp_path / "digest.toml"
    cfg.write_text('[[smtp]]\nurl = "smtps://news:hunter2@smtp.example.com:465"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(cfg, env={})
    assert PASSWORD not in str(caught.value)
    result = run("--config", str(cfg), "status")
    assert result.exit_code == 1
    assert PASSWORD not in result.output and "smtps://news:***@smtp.example.com" in result.output
    monkeypatch.setenv("DIGEST_SMTP_URL", "smtps://news:hunter2@smtp.example.com")
    result = run("send", "--dry-run")
    assert result.exit_code == 1 and PASSWORD not in result.output and "***" in result.output
