"""Content can never become structure: what feeds, tags, lists and subscribers supply cannot
become a placeholder, a header line or a MIME part, however it is crafted."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, date, datetime

import pytest

from digest.config import load_config
from digest.delivery.personalise import Assembler, Recipient
from digest.delivery.publish import build_digest
from digest.headers import fold_header
from digest.issues.template import CompiledTemplate, build_template, new_placeholder_key

STRICT = email.policy.default.clone(raise_on_defect=True)
NOW = datetime(2025, 1, 21, 4, 0, tzinfo=UTC)
ISSUE = date(2025, 1, 21)

HOSTILE = [
    "=?utf-8?q?Kenya=0D=0AReply-To:_attacker@evil.example=0D=0AContent-Type:_text/html?=",
    "Kenya\r\nReply-To: attacker@evil.example\r\n\r\n<b>body</b>",
    "=?utf-8?b?S2VueWENClJlcGx5LVRvOiBhdHRhY2tlckBldmlsLmV4YW1wbGU=?=",
    'Arts & <Letters> "quoted" \\ back\\slash, comma; semi: colon',
    "Ελλάδα 日本 \u202eright-to-left\u202c \u200bzero width \x00nul \x1b[31mred",
    "x" * 3000,
    "word " * 400,
    "%%DIGEST_HTML_EMAIL%% %%DIGEST_0123456789abcdef_HDR_TO%%",
]


def _parse(data: bytes) -> email.message.EmailMessage:
    msg = email.message_from_bytes(data, policy=STRICT)
    assert isinstance(msg, email.message.EmailMessage)
    return msg


@pytest.mark.parametrize("value", HOSTILE)
def test_every_header_from_hostile_values_parses_to_exactly_the_expected_headers(value):
    head = b"".join(
        [
            fold_header("From", f'"{value.replace(chr(34), "")[:200]}" <news@example.com>'),
            fold_header("Subject", value),
            fold_header("List-Id", f"{value[:300]} <world.example.com>"),
            fold_header("Reply-To", "desk@example.com"),
        ]
    )
    template = build_template(
        [],
        "text\n",
        "<p>html</p>",
        boundary_seed="s",
        key=new_placeholder_key(),
    )
    data = head + template
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    msg = _parse(data)
    assert [k.lower() for k in msg] == [
        "from", "subject", "list-id", "reply-to", "to", "message-id", "list-unsubscribe",
        "list-unsubscribe-post", "mime-version", "content-type",
    ]  # fmt: skip
    assert msg["Reply-To"] == "desk@example.com"
    # Read back literally: an encoded-word in the input is text, not an instruction.
    shown = " ".join(str(msg["Subject"]).split())
    expected = " ".join("".join(" " if not c.isprintable() else c for c in value).split())
    assert shown == expected
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]


def test_a_long_name_folds_the_to_header(db, newsroom):
    mlist = newsroom.add_list()
    newsroom.add_article("Story", datetime(2025, 1, 20, 12, tzinfo=UTC), tags=["Haiti"])
    newsroom.subscribe(mlist, "ann@example.com", name="Ann")
    config = load_config(None, env={})
    built = build_digest(db, config, mlist, "daily", ISSUE, now=NOW)
    assembler = Assembler(db, base_url=config.base_url, secret=b"s")
    (variant,) = built.variants
    sub_id = db.execute("SELECT id FROM subscribers").fetchone()[0]
    data = assembler.message(variant.id, Recipient(sub_id, "ann@example.com", "x" * 1100)).data
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    assert str(_parse(data)["To"]).endswith("<ann@example.com>")


def test_article_content_cannot_forge_a_placeholder(db, newsroom):
    """A feed author puts what looks like placeholders in a title and a link: they stay text,
    nobody's address or unsubscribe token is filled into them, and sending does not crash."""
    mlist = newsroom.add_list()
    bait = "%%DIGEST_HTML_EMAIL%% %%DIGEST_HTML_UNSUBSCRIBE_URL%% %%DIGEST_HTML_BOGUS%%"
    newsroom.add_article(
        f"Title {bait}",
        datetime(2025, 1, 20, 12, tzinfo=UTC),
        tags=["Haiti"],
        url="https://evil.example/?who=%%DIGEST_HTML_EMAIL%%&t=%%DIGEST_TEXT_UNSUBSCRIBE_URL%%",
        summary=f"<p>{bait} %%DIGEST_0123456789abcdef_HTML_EMAIL%%</p>",
    )
    newsroom.subscribe(mlist, "ann@example.com", name="Ann")
    config = load_config(None, env={})
    built = build_digest(db, config, mlist, "daily", ISSUE, now=NOW)
    (variant,) = built.variants
    template = db.execute("SELECT template FROM variants WHERE id = ?", [variant.id]).fetchone()[0]
    compiled = CompiledTemplate(template)
    # Only the template's own slots: To, Message-ID, List-Unsubscribe and the footer links.
    assert {kind for kind, _ in compiled.slots} <= {"HDR", "HTML", "TEXT"}
    assert ("HTML", "BOGUS") not in compiled.slots
    sub_id = db.execute("SELECT id FROM subscribers").fetchone()[0]
    message = Assembler(db, base_url=config.base_url, secret=b"s").message(
        variant.id, Recipient(sub_id, "ann@example.com", "Ann")
    )
    msg = _parse(message.data)
    html = msg.get_body(("html",)).get_content()
    text = msg.get_body(("plain",)).get_content()
    assert "%%DIGEST_HTML_EMAIL%%" in html and "%%DIGEST_HTML_BOGUS%%" in html
    assert "who=%%DIGEST_HTML_EMAIL%%" in html  # the link is left exactly as the feed wrote it
    # The address appears only where the template put it (the footer), not in the feed's link.
    assert "evil.example/?who=ann" not in html and "evil.example/?who=ann" not in text
    assert html.count("ann@example.com") == text.count("ann@example.com") == 1
