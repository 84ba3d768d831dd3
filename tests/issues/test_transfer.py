"""Transfer encodings: the smaller of quoted-printable and base64 per part, placeholders still
substitutable, the decoded part exactly the rendered text (plus alignment spaces)."""

from __future__ import annotations

import base64
import email
import email.policy
import re

from digest.issues import transfer
from digest.issues.template import CompiledTemplate, encode_body

KEY = "0123456789abcdef"
JAPANESE = "東京で大雪、交通機関に乱れ。気象庁によると今夜から積雪のおそれ。" * 30
VALUES = {
    "UNSUBSCRIBE_URL": "https://news.example.com/u/AbC_12-xyz",
    "PREFERENCES_URL": "https://news.example.com/p/p",
    "RECIPIENT": "Zoë <zoe&co@example.org>",
    "NAME": "",
}


def _fill(template: bytes) -> bytes:
    """Substitute placeholders as the sender would once the HTML64/TEXT64 kinds are known."""

    def value(m: re.Match[bytes]) -> bytes:
        key, kind, field = m.group(1).decode(), m.group(2).decode(), m.group(3).decode()
        assert key == KEY and kind.endswith("64"), kind
        return transfer.base64_value(VALUES[field], html_part=kind == "HTML64")

    return transfer.PLACEHOLDER_BYTES.sub(value, template)


def test_cjk_text_goes_base64_and_ascii_stays_quoted_printable():
    assert transfer.encode_part(JAPANESE).encoding == transfer.TransferEncoding.BASE64
    english = "<p style='color:#111'>Plain English news, with inline styles.</p>" * 50
    assert transfer.encode_part(english).encoding == transfer.TransferEncoding.QUOTED_PRINTABLE
    assert transfer.encode_part(english).body == encode_body(english)
    ratio = transfer.quoted_printable_size(JAPANESE) / transfer.base64_size(JAPANESE)
    assert ratio > 2.0  # the issue's 2.3x: quoted-printable spends 9 bytes a kanji
    assert transfer.best_size(JAPANESE) == transfer.base64_size(JAPANESE)


def test_placeholders_survive_base64_and_decode_to_the_recipients_values():
    text = (
        JAPANESE
        + f"\nUnsubscribe:\n  %%DIGEST_{KEY}_TEXT_UNSUBSCRIBE_URL%%\n"
        + f"For %%DIGEST_{KEY}_TEXT_RECIPIENT%%.\n"
    )
    html = (
        f'<p>{JAPANESE}</p><a href="%%DIGEST_{KEY}_HTML_UNSUBSCRIBE_URL%%">解除</a>'
        f"<p>%%DIGEST_{KEY}_HTML_NAME%%さん、%%DIGEST_{KEY}_HTML_RECIPIENT%%</p>"
    )
    template = transfer.multipart_alternative(b"Subject: t\r\n", text, html, boundary="b", key=KEY)
    assert template.count(b"Content-Transfer-Encoding: base64") == 2
    assert f"%%DIGEST_{KEY}_TEXT64_UNSUBSCRIBE_URL%%".encode() in template
    data = _fill(template)
    assert b"%%DIGEST" not in data
    for line in data.split(b"\r\n"):
        assert len(line) <= 76
    msg = email.message_from_bytes(data, policy=email.policy.default)
    plain = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert plain.startswith(JAPANESE)
    assert re.search(r"\n\s+https://news\.example\.com/u/AbC_12-xyz\s*\n", plain)
    assert re.search(r"For Zoë <zoe&co@example\.org>\s*\.", plain)
    body = msg.get_body(("html",)).get_content()
    assert re.search(r'href="\s*https://news\.example\.com/u/AbC_12-xyz\s*"', body)
    assert re.search(r"<p>\s*さん、Zoë &lt;zoe&amp;co@example\.org&gt;\s*</p>", body)


def test_the_alignment_spaces_hide_at_line_ends():
    text = "ab\ncdef\n" + f"%%DIGEST_{KEY}_TEXT_NAME%%"
    body = transfer.encode_base64_body(text, KEY)
    decoded = base64.b64decode(body.split("%%")[0])
    assert decoded == b"ab\r\ncdef  \r\n"  # 8 bytes + 2 spaces before the last line break


def test_an_empty_text_and_a_text_ending_in_a_placeholder_are_valid():
    assert transfer.encode_base64_body("") == ""
    body = transfer.encode_base64_body(f"日本%%DIGEST_{KEY}_TEXT_NAME%%", KEY)
    assert body.endswith(f"%%DIGEST_{KEY}_TEXT64_NAME%%")
    assert transfer.base64_value("", html_part=False) == b""


def test_content_cannot_forge_a_placeholder_in_either_encoding():
    """Text that looks like a placeholder (another key, or none) stays text: it is encoded with
    the content, so no recipient's value is ever substituted into it."""
    forged = (
        "日本語のニュース %%DIGEST_TEXT_UNSUBSCRIBE_URL%% %%DIGEST_ffffffffffffffff_TEXT_EMAIL%%"
        " %%DIGEST_ffffffffffffffff_TEXT64_EMAIL%%\n"
    ) * 20
    for text in (forged, forged.encode("ascii", "ignore").decode()):  # base64, then QP
        template = transfer.multipart_alternative(
            b"Subject: t\r\n", text, text, boundary="b", key=KEY
        )
        compiled = CompiledTemplate(b"To: %%DIGEST_" + KEY.encode() + b"_HDR_TO%%\r\n" + template)
        assert compiled.slots == [("HDR", "TO")]
        msg = email.message_from_bytes(template, policy=email.policy.default)
        assert msg.get_body(("plain",)).get_content().replace("\r\n", "\n").strip() == text.strip()
