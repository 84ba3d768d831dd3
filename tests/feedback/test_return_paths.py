"""Where bounces go: the envelope sender of each digest is the list's own bounce address, else
[bounces] address, with a VERP token naming the delivery (or plain with verp = false), else
the list's From address; with [bounces] provider, each message also carries the delivery
token in the header that provider hands back to its webhooks. And the [bounces] settings are
checked on load, each error naming its key."""

from __future__ import annotations

import email
import email.policy
import json
from pathlib import Path

import pytest

from digest.audience.lists import edit_list, get_list
from digest.config import load_config
from digest.delivery.send import send_pending
from digest.delivery.transports import transport_from_config
from digest.errors import ConfigError, InvalidInput
from digest.verp import read_bounce_address, read_verp_token

SECRET = b"test-secret"


def send(db, tmp_path: Path, server, config_text: str) -> dict[str, tuple[str, bytes]]:
    """Send what is due with this configuration; recipient -> (envelope sender, message)."""
    path = tmp_path / "digest.toml"
    path.write_text(config_text, encoding="utf-8")
    config = load_config(path, env={})
    transport = transport_from_config(config, smtp_url=server.url())
    report = send_pending(db, config, secret=SECRET, transport=transport)
    assert report.sent == len(server.handler.received), report.failures
    return {item.rcpt_to[0]: (item.mail_from, item.data) for item in server.handler.received}


def delivery_ids(db) -> dict[str, int]:
    return dict(db.execute("SELECT email, id FROM deliveries").fetchall())


def test_without_a_bounce_address_bounces_go_to_the_from_address(
    db, newsletter, smtp_server, tmp_path
) -> None:
    newsletter.make(2)
    got = send(db, tmp_path, smtp_server(), "")
    assert {sender for sender, _ in got.values()} == {"world@news.example.com"}


def test_verp_names_each_delivery(db, newsletter, smtp_server, tmp_path) -> None:
    newsletter.make(3)
    got = send(db, tmp_path, smtp_server(), '[bounces]\naddress = "bounces@news.example.com"\n')
    ids = delivery_ids(db)
    for recipient, (sender, data) in got.items():
        local, _, domain = sender.partition("@")
        assert local.startswith("bounces+") and domain == "news.example.com"
        assert read_bounce_address(sender, SECRET) == ids[recipient]
        # The token is in the envelope only: the message is what it was.
        assert b"bounces+" not in data and b"X-PM-Metadata" not in data
    assert len({sender for sender, _ in got.values()}) == 3


def test_plain_bounce_address_and_the_lists_own(db, newsletter, smtp_server, tmp_path) -> None:
    newsletter.make(1)
    newsletter.make(1, slug="science")
    edit_list(db, "science", bounce_address="returns@science.example.org", now=newsletter_now())
    config = '[bounces]\naddress = "bounces@news.example.com"\nverp = false\n'
    server = smtp_server()
    send(db, tmp_path, server, config)  # p1@example.com gets both lists' digests
    senders = sorted(item.mail_from for item in server.handler.received)
    assert senders == ["bounces@news.example.com", "returns@science.example.org"]


def newsletter_now():
    from datetime import UTC, datetime

    return datetime(2025, 1, 21, 4, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "provider,header",
    [
        ("postmark", "X-PM-Metadata-digest_delivery"),
        ("mailgun", "X-Mailgun-Variables"),
        ("sendgrid", "X-SMTPAPI"),
    ],
)
def test_provider_header_carries_the_delivery_token(
    db, newsletter, smtp_server, tmp_path, provider, header
) -> None:
    newsletter.make(2)
    config = f'[bounces]\naddress = "bounces@news.example.com"\nprovider = "{provider}"\n'
    got = send(db, tmp_path, smtp_server(), config)
    ids = delivery_ids(db)
    for recipient, (_, data) in got.items():
        message = email.message_from_bytes(data, policy=email.policy.default)
        value = message[header]
        assert value is not None and len(message.get_all(header)) == 1
        if provider == "postmark":
            token = value
        elif provider == "mailgun":
            token = json.loads(value)["digest_delivery"]
        else:
            token = json.loads(value)["unique_args"]["digest_delivery"]
        assert read_verp_token(token, SECRET) == ids[recipient]
        # The rest of the message is intact: its own headers and both parts.
        assert message["Message-ID"] and message["List-Unsubscribe"]
        assert {p.get_content_type() for p in message.walk()} >= {"text/plain", "text/html"}


def test_lists_bounce_address_on_the_command_line(run, newsroom, tmp_path) -> None:
    newsroom.add_list()
    shown = run("lists", "show", "world")
    assert "  bounces to:  news@news.example.com (the From address)" in shown.output
    edited = run("lists", "edit", "world", "--bounce-address", "bounces@news.example.com")
    assert edited.exit_code == 0, edited.output
    assert "  bounces to:  bounces@news.example.com, with VERP" in edited.output
    too_long = "a-very-long-local-part-for-bounces-that-leaves-no-room@news.example.com"
    refused = run("lists", "edit", "world", "--bounce-address", too_long)
    assert refused.exit_code == 1 and "too long to carry a VERP token" in refused.output
    for bad in ("not an address", "<a@b>, c@d", "x@y\r\nBcc: z@w"):
        result = run("lists", "edit", "world", "--bounce-address", bad)
        assert result.exit_code == 1 and "Error: " in result.output, bad
    cleared = run("lists", "edit", "world", "--bounce-address", "")
    assert "(the From address)" in cleared.output
    created = run(
        "lists", "create", "science", "--title", "Science", "--from", "sci@example.org",
        "--bounce-address", "b@example.org",
    )  # fmt: skip
    assert "  bounces to:  b@example.org, with VERP" in created.output


def test_edit_list_validates_the_bounce_address(db, newsroom) -> None:
    newsroom.add_list()
    with pytest.raises(InvalidInput, match="plain address"):
        edit_list(db, "world", bounce_address="Bounces <b@x.org>", now=newsletter_now())
    assert get_list(db, "world").bounce_address is None


@pytest.mark.parametrize(
    "text,message",
    [
        ('address = "nobody"', "bounces.address': bounce address 'nobody' is not an address"),
        ('address = "' + "x" * 60 + '@d.org"', "too long to carry a VERP token"),
        ('delimiter = "%"', "bounces.delimiter': one of + - = _"),
        ("soft_threshold = 0", "bounces.soft_threshold': at least 1"),
        ("soft_window_days = 0", "bounces.soft_window_days': more than 0"),
        ('provider = "ses"', "bounces.provider': one of postmark, mailgun, sendgrid"),
        ("poll_minutes = 5", "poll_minutes' is set but no mailbox is"),
        ('maildir = "a"\nmbox = "b"', "[bounces] names maildir and mbox: give one bounce mailbox"),
        ('done = "burn"', "bounces.done': one of seen, delete, move"),
        ('done = "move"', "move_to goes with done"),
        ('move_to = "Done"', "move_to goes with done"),
        ('ses_topic_arns = "arn:aws:sns:x"', "expected list"),
        ("ses_topic_arns = [1]", "expected a list of strings"),
        ('ses_topic_arns = ["topic"]', "'topic' is not an SNS topic ARN"),
        ("verp = 1", "bounces.verp': expected bool"),
        ("colour = 1", "unknown key 'bounces.colour'"),
    ],
)
def test_bounce_settings_are_checked(tmp_path, text, message) -> None:
    path = tmp_path / "digest.toml"
    path.write_text(f"[bounces]\n{text}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert message in str(info.value)


def test_bounce_settings_defaults_and_values(tmp_path) -> None:
    assert load_config(None, env={}).bounces.address is None
    path = tmp_path / "digest.toml"
    path.write_text(
        '[bounces]\naddress = "bounces@news.example.com"\nses_topic_arns = ["arn:aws:sns:a:1:t"]\n'
        'poll_minutes = 5\nimap = "imaps://b@mail.example.com/INBOX"\ndone = "move"\n'
        'move_to = "Done"\nsoft_window_days = 7.5\n',
        encoding="utf-8",
    )
    b = load_config(path, env={}).bounces
    assert (b.address, b.verp, b.ses_topic_arns, b.done, b.move_to, b.soft_window_days) == (
        "bounces@news.example.com", True, ("arn:aws:sns:a:1:t",), "move", "Done", 7.5,
    )  # fmt: skip
    assert b.mailbox_configured
