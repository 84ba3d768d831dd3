"""The variant template and per-recipient personalisation (byte substitution)."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime

from digest.delivery.personalise import Recipient, VariantInfo, recipient_values
from digest.issues.template import (
    CompiledTemplate,
    build_template,
    html_placeholder,
    text_placeholder,
)
from digest.tokens import read_token

BUILT = datetime(2025, 1, 21, 4, 0, tzinfo=UTC)

KEY = "0123456789abcdef"  # a variant's placeholder key


def _info(template: bytes) -> VariantInfo:
    return VariantInfo(
        variant_id=1,
        digest_id=1,
        list_id=3,
        list_slug="world",
        frequency="daily",
        period_label="2025-01-21",
        from_addr="Désk <news@example.com>",
        built_at=BUILT,
        compiled=CompiledTemplate(template),
    )


def test_personalised_message_parses_with_each_recipients_own_links():
    subject = "Desk — daily digest, “quoted” Ελλάδα 日本"
    html = (
        "<p>Hello "
        + html_placeholder("NAME", KEY)
        + "</p>"
        + "<p>ελληνικά 日本語 " * 200
        + '<a href="'
        + html_placeholder("UNSUBSCRIBE_URL", KEY)
        + '">Unsubscribe</a> '
        '<a href="' + html_placeholder("PREFERENCES_URL", KEY) + '">Preferences</a>'
    )
    text = (
        "Hello "
        + text_placeholder("NAME", KEY)
        + "\n\nUnsubscribe: "
        + text_placeholder("UNSUBSCRIBE_URL", KEY)
        + "\n"
    )
    template = build_template(
        [
            ("From", "Désk <news@example.com>"),
            ("Subject", subject),
            ("Date", "Tue, 21 Jan 2025 07:00:00 +0300"),
        ],
        text,
        html,
        boundary_seed="v1",
        key=KEY,
    )
    info = _info(template)
    people = [
        Recipient(1, "ann@example.com", "Ann <script> & Co"),
        Recipient(2, "zoe@example.org", "Zoë"),
        Recipient(3, "x@example.net", None),
    ]
    for person in people:
        data = info.compiled.fill(
            recipient_values(info, person, base_url="https://n.example.com", secret=b"k")
        )
        assert b"%%DIGEST_" not in data
        assert max(len(line) for line in data.split(b"\r\n")) <= 998
        msg = email.message_from_bytes(data, policy=email.policy.default)
        assert msg["Subject"] == subject
        assert msg["To"].addresses[0].addr_spec == person.email
        assert msg["Message-ID"] == f"<world.daily.2025-01-21.{person.subscriber_id}@example.com>"
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        plain, rich = list(msg.iter_parts())
        assert plain.get_content_type() == "text/plain" and rich.get_content_type() == "text/html"
        unsub = msg["List-Unsubscribe"].strip("<>")
        token = unsub.rsplit("/", 1)[1]
        assert (
            read_token(b"k", token, "unsubscribe", now=BUILT).subscriber_id == person.subscriber_id
        )
        # A base64 part pads a value to 3 bytes with spaces, which URL parsers strip.
        assert re.search(rf'href=" *{re.escape(unsub)} *"', rich.get_content())
        assert unsub in plain.get_content()
        if person.name:
            assert "Hello " + person.name in plain.get_content()
        assert "<script>" not in rich.get_content()
        assert "ελληνικά 日本語" in rich.get_content()
    # Another recipient's token never appears in someone else's message.
    a = info.compiled.fill(
        recipient_values(info, people[0], base_url="https://n.example.com", secret=b"k")
    )
    b = info.compiled.fill(
        recipient_values(info, people[1], base_url="https://n.example.com", secret=b"k")
    )
    tok_a = (
        email.message_from_bytes(a, policy=email.policy.default)["List-Unsubscribe"]
        .strip("<>")
        .rsplit("/", 1)[1]
    )
    assert tok_a.encode() not in b.replace(b"=\r\n", b"")


def test_header_values_cannot_inject_headers():
    template = build_template(
        [
            ("From", "Evil\r\nBcc: victim@example.com <news@example.com>"),
            ("Subject", "Hi\nBcc: x@example.com"),
        ],
        "t",
        "<p>h</p>",
        boundary_seed="s",
        key=KEY,
    )
    info = _info(template)
    data = info.compiled.fill(
        recipient_values(
            info,
            Recipient(1, "a@example.com", "A\r\nBcc: b@example.com"),
            base_url="https://n.example.com",
            secret=b"k",
        )
    )
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg["Bcc"] is None
    assert "Bcc" in msg["Subject"]  # kept as text on the one line, not as a header


def test_recipient_field_has_no_empty_name():
    template = build_template(
        [("From", "Desk <news@example.com>"), ("Subject", "s")],
        "for " + text_placeholder("RECIPIENT", KEY) + ".",
        "<p>for " + html_placeholder("RECIPIENT", KEY) + ".</p>",
        boundary_seed="r",
        key=KEY,
    )
    info = _info(template)

    def parts(person):
        data = info.compiled.fill(
            recipient_values(info, person, base_url="https://n.example.com", secret=b"k")
        )
        msg = email.message_from_bytes(data, policy=email.policy.default)
        return [p.get_content().strip() for p in msg.iter_parts()]

    assert parts(Recipient(1, "x@example.net", None)) == [
        "for x@example.net.",
        "<p>for x@example.net.</p>",
    ]
    assert parts(Recipient(2, "a@example.net", "Ann")) == [
        "for Ann <a@example.net>.",
        "<p>for Ann &lt;a@example.net&gt;.</p>",
    ]
