"""Bounce-mailbox messages: each fixture in tests/data/bounces/ (written from RFC 3464, RFC 5965,
RFC 3834 and the formats Postfix, Exim, Exchange, Gmail, Yahoo and qmail send) gets the right
classification, names the right delivery, and leads to exactly the right policy decision."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.feedback.policy import BounceKind, Outcome, decide
from digest.feedback.reports import MAX_BYTES, parse_report
from digest.verp import IdentitySource, identify

DATA = Path(__file__).parents[1] / "data" / "bounces"
SECRET = b"test-secret"  # the fixtures' VERP and List-Unsubscribe tokens are signed with it
NOW = datetime(2025, 1, 21, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Expect:
    kind: BounceKind
    evidence: str
    addresses: tuple[str | None, ...]  # recipients named by the report, in order
    status: str | None  # first recipient's status code
    delivery_id: int | None  # from the VERP return path
    subscriber_id: int | None  # from the returned Message-ID (None: not returned)
    outcome: Outcome  # decide() over this one report


H, S, D, C, A, X = (
    BounceKind.HARD,
    BounceKind.SOFT,
    BounceKind.DELAYED,
    BounceKind.COMPLAINT,
    BounceKind.AUTO_REPLY,
    BounceKind.OTHER,
)
BOUNCED, COMPLAINED, NONE = Outcome.BOUNCED, Outcome.COMPLAINED, Outcome.NONE

EXPECTED = {
    "postfix-hard-user-unknown.eml": Expect(H, "dsn", ("alice@example.com",), "5.1.1", 101, 17, BOUNCED),
    "postfix-delayed-warning.eml": Expect(D, "dsn", ("bruno@example.net",), "4.4.1", 102, 18, NONE),
    "postfix-soft-mailbox-full.eml": Expect(S, "dsn", ("chen@example.com",), "5.2.2", 103, 19, NONE),
    "exim-hard-user-unknown.eml": Expect(H, "flufl", ("bob@example.net",), "5.1.1", 104, 20, BOUNCED),
    "exim-soft-over-quota.eml": Expect(S, "flufl", ("dora@example.de",), "4.2.2", 105, 21, NONE),
    "exchange-online-recipient-not-found.eml": Expect(
        H, "dsn", ("carol@contoso.example",), "5.1.10", 106, 22, BOUNCED
    ),
    "exchange-2003-unknown-recipient.eml": Expect(
        H, "flufl", ("dave@corp.example",), None, 107, 23, BOUNCED
    ),
    "gmail-hard-no-such-user.eml": Expect(H, "dsn", ("erin@gmail.com",), "5.1.1", 108, 24, BOUNCED),
    "gmail-soft-inbox-full.eml": Expect(S, "dsn", ("gus@gmail.com",), "4.2.2", 109, 25, NONE),
    "yahoo-failure-notice.eml": Expect(H, "flufl", ("frank@yahoo.com",), "5.0.0", 110, 26, BOUNCED),
    "yahoo-deferred-tss04.eml": Expect(D, "dsn", ("hana@yahoo.com",), "4.7.0", 111, 27, NONE),
    "qmail-no-mailbox.eml": Expect(H, "flufl", ("ivan@example.ru",), "5.1.1", 112, 28, BOUNCED),
    "verp-hidden-recipient.eml": Expect(H, "bounce-text", (None,), "5.1.1", 113, None, BOUNCED),
    "verp-forwarded-dsn.eml": Expect(
        H, "dsn", ("j.smith@internal.example.com",), "5.2.1", 114, None, BOUNCED
    ),
    "arf-complaint-with-rcpt.eml": Expect(C, "arf", ("kim@aol.com",), None, 115, 31, COMPLAINED),
    "arf-complaint-without-rcpt.eml": Expect(C, "arf", (), None, None, 32, COMPLAINED),
    "arf-auth-failure-dmarc.eml": Expect(X, "arf", ("someone@mail.example.com",), None, None, None, NONE),
    "ooo-exchange-automatic-reply.eml": Expect(A, "auto-submitted", (), None, 117, None, NONE),
    "vacation-sieve-rfc3834.eml": Expect(A, "auto-submitted", (), None, 118, None, NONE),
    "ooo-subject-only.eml": Expect(A, "subject", (), None, 119, None, NONE),
    "reply-from-a-person.eml": Expect(X, "none", (), None, None, None, NONE),
}  # fmt: skip


def test_every_fixture_has_an_expectation() -> None:
    assert sorted(p.name for p in DATA.glob("*.eml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_classification(name: str) -> None:
    expect = EXPECTED[name]
    report = parse_report((DATA / name).read_bytes())
    assert report.kind is expect.kind, report.summary
    assert report.evidence == expect.evidence
    assert tuple(r.address for r in report.recipients) == expect.addresses
    first_status = report.recipients[0].status if report.recipients else None
    assert first_status == expect.status
    assert report.summary and "\n" not in report.summary and len(report.summary) <= 300

    identity = identify(
        return_paths=report.return_paths,
        message_id=None,
        list_unsubscribe=None,
        secret=SECRET,
        now=NOW,
    )
    assert (identity.delivery_id if identity else None) == expect.delivery_id
    if expect.subscriber_id is None:
        assert report.original_message_id is None or "world-news" not in report.original_message_id
    else:
        assert report.original_message_id == (
            f"<world-news.daily.2025-01-21.{expect.subscriber_id}@news.example.org>"
        )

    # "No other effect": this report alone leads to exactly the expected decision.
    decision = decide([report.event(NOW)], NOW)
    assert decision.outcome is expect.outcome
    assert decision.suppress is (expect.outcome is not Outcome.NONE)


def test_hard_bounce_details_postfix() -> None:
    report = parse_report((DATA / "postfix-hard-user-unknown.eml").read_bytes())
    (rcpt,) = report.recipients
    assert rcpt.action == "failed"
    assert rcpt.original_address == "alice@example.com"
    assert rcpt.remote_mta == "mx1.example.com"
    assert rcpt.diagnostic == (
        "smtp; 550 5.1.1 <alice@example.com>: Recipient address rejected: "
        "User unknown in virtual mailbox table"
    )
    assert report.envelope_to == "bounces+mxkaj3rfgomrcfkrje@news.example.org"
    assert report.original_to == "alice@example.com"
    assert report.list_unsubscribe_url is not None
    assert report.list_unsubscribe_url.startswith("https://news.example.org/u/")
    assert report.message_id == "<20250121070214.4YcT2k0bQzz101@mail.news.example.org>"
    assert report.date == datetime(2025, 1, 21, 7, 2, 14, tzinfo=UTC)
    assert report.summary.startswith("hard bounce for alice@example.com: 5.1.1 (smtp; 550 5.1.1")
    event = report.event(NOW, delivery_key="101")
    assert event.kind is BounceKind.HARD and event.source == "bounce-mailbox"
    assert event.diagnostic.startswith("5.1.1 smtp; 550 5.1.1 <alice@example.com>")


def test_gmail_multiline_reply_is_one_line() -> None:
    report = parse_report((DATA / "gmail-hard-no-such-user.eml").read_bytes())
    diag = report.recipients[0].diagnostic or ""
    assert diag.startswith("smtp; 550-5.1.1 The email account that you tried to reach does not")
    assert diag.count("5.1.1") == 1  # the continuation prefixes are folded away
    assert "Please try double-checking" in diag


def test_complaint_identities() -> None:
    with_rcpt = parse_report((DATA / "arf-complaint-with-rcpt.eml").read_bytes())
    assert with_rcpt.feedback_type == "abuse"
    # The ARF Original-Mail-From carries our VERP address: the report went to the FBL address.
    assert with_rcpt.envelope_to == "fbl@news.example.org"
    assert "bounces+op26y3gkygamrz2oum@news.example.org" in with_rcpt.return_paths

    without = parse_report((DATA / "arf-complaint-without-rcpt.eml").read_bytes())
    assert without.recipients == ()
    assert without.original_to == "redacted@hotmail.com"
    identity = identify(
        return_paths=without.return_paths,
        message_id=without.original_message_id,
        list_unsubscribe=without.list_unsubscribe_url,
        secret=SECRET,
        now=NOW,
    )
    assert identity is not None
    assert identity.source is IdentitySource.LIST_UNSUBSCRIBE and identity.signed
    assert (identity.subscriber_id, identity.list_id) == (32, 1)


def test_message_id_fallback_when_return_path_is_not_ours() -> None:
    raw = (DATA / "postfix-hard-user-unknown.eml").read_bytes()
    report = parse_report(raw)
    identity = identify(
        return_paths=["someone-else@example.com"],
        message_id=report.original_message_id,
        list_unsubscribe=None,
        secret=SECRET,
        now=NOW,
    )
    assert identity is not None and identity.source is IdentitySource.MESSAGE_ID
    assert not identity.signed
    assert (identity.list_slug, identity.frequency, identity.period_label) == (
        "world-news",
        "daily",
        "2025-01-21",
    )
    assert identity.subscriber_id == 17
    # With another secret nothing signed matches, and the VERP path is ignored.
    other = identify(
        return_paths=report.return_paths,
        message_id=None,
        list_unsubscribe=report.list_unsubscribe_url,
        secret=b"another-secret",
        now=NOW,
    )
    assert other is None


# --- hostile input -------------------------------------------------------------------------------


def _nested(depth: int, kind: str) -> bytes:
    head = b""
    for i in range(depth):
        if kind == "multipart":
            head += b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (i, i)
        else:
            head += b"Content-Type: message/rfc822\n\n"
    return (
        b"From: MAILER-DAEMON@x.example\nSubject: Undelivered Mail\n"
        + head
        + b"Content-Type: message/delivery-status\n\nReporting-MTA: dns; x\n\n"
        + b"Final-Recipient: rfc822; a@b.example\nAction: failed\nStatus: 5.1.1\n"
    )


def _dsn(body: bytes, extra: bytes = b"") -> bytes:
    return (
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="x"\n'
        + extra
        + b"\n--x\nContent-Type: message/delivery-status\n\n"
        + body
        + b"\n--x--\n"
    )


HOSTILE = {
    "empty": b"",
    "binary": bytes(range(256)) * 400,
    "only newlines": b"\n" * 300_000,
    "no header end": b"Subject: x" * 50_000,
    "deep multipart": _nested(3000, "multipart"),
    "deep rfc822": _nested(3000, "rfc822"),
    "huge header line": b"Subject: " + b"A" * 3_000_000 + b"\n\nbody",
    "many headers": b"".join(b"X-H%d: v\n" % i for i in range(50_000)) + b"\nbody",
    "huge diagnostic": _dsn(
        b"Final-Recipient: rfc822; a@b\nAction: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; "
        + b"550 " * 500_000
    ),
    "many dsn blocks": _dsn(b"Final-Recipient: rfc822; a@b\nAction: failed\nStatus: 5.1.1\n\n" * 20_000),
    "bad charsets": (
        b"From: MAILER-DAEMON@x\nSubject: =?x-klingon?q?=FF?= Undelivered\n"
        b'Content-Type: text/plain; charset="x-klingon"\n\n550 5.1.1 \xff\xfe unknown <a@b>\n'
    ),
    "8-bit headers": b"From: \xff\xfe <MAILER-DAEMON@x>\nSubject: \xe9 Undelivered\nTo: \xff@\xfe\n\n550 5.1.1\n",
    "base64 garbage dsn": _dsn(b"!!!!####", b"Content-Transfer-Encoding: base64\n"),
    "broken encoded words": b"Subject: =?utf-8?b?////?= =?utf-8?q?=ZZ?= =?bogus?x?y?=\n\nhi",
    "boundary mismatch": _dsn(b"Action: failed").replace(b"--x\n", b"--y\n"),
    "many parts": b'Content-Type: multipart/mixed; boundary="x"\n\n'
    + b"--x\nContent-Type: text/plain\n\nhi\n" * 20_000
    + b"--x--\n",
    "regex bomb": b"From: MAILER-DAEMON@x\nSubject: failure notice\n\n" + b"5.5.5.5.5." * 200_000,
    "oversized": b"Subject: big\n\n" + b"x" * (MAX_BYTES * 3),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_input_never_raises_and_stays_bounded(name: str) -> None:
    started = time.perf_counter()
    report = parse_report(HOSTILE[name])
    elapsed = time.perf_counter() - started
    assert isinstance(report.kind, BounceKind)
    assert "\n" not in report.summary and len(report.summary) <= 300
    assert len(report.recipients) <= 100
    assert all(r.diagnostic is None or len(r.diagnostic) <= 1000 for r in report.recipients)
    assert elapsed < 10, f"{name}: {elapsed:.1f}s"  # generous: 2 shared cores


def test_deep_nesting_says_why() -> None:
    report = parse_report(_nested(3000, "multipart"))
    assert report.kind is BounceKind.OTHER
    assert report.summary == "unreadable message (MIME parts nested too deeply)"


def test_bad_charset_bounce_still_classified() -> None:
    report = parse_report(HOSTILE["bad charsets"])
    assert report.kind is BounceKind.HARD
    assert report.recipients[0].status == "5.1.1"


def _mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    inserts = [
        b"\n",
        b"\r\n",
        b"\n\n",
        b"--",
        b"=?utf-8?b?",
        b"=?x-unknown?q?=FF=FE?=",
        b"Content-Type: message/delivery-status\n\n",
        b"\xff\xfe",
        b";",
        b"<",
        b"\x00",
        b"Status: 9.9.9\n",
        b'charset="x-bogus"',
        b'boundary=""',
        b"Content-Transfer-Encoding: base64\n",
    ]
    for _ in range(rng.randint(1, 30)):
        op = rng.random()
        i = rng.randrange(len(b)) if b else 0
        if op < 0.3 and b:
            b[i] = rng.randrange(256)
        elif op < 0.5:
            b[i:i] = rng.choice(inserts)
        elif op < 0.7 and b:
            del b[i : i + rng.randrange(200)]
        elif op < 0.85 and b:
            k = rng.randrange(len(b))
            b[k:k] = b[i : i + rng.randrange(200)]
        else:
            b = b[: rng.randrange(len(b) + 1)]
    return bytes(b)


def test_fuzz_mutated_fixtures_never_raise() -> None:
    rng = random.Random(16)
    fixtures = [p.read_bytes() for p in sorted(DATA.glob("*.eml"))]
    kinds = set()
    for _ in range(1500):
        report = parse_report(_mutate(rng, rng.choice(fixtures)))
        assert report.evidence != "error", report.summary
        kinds.add(report.kind)
    assert BounceKind.HARD in kinds and BounceKind.OTHER in kinds  # the mutations did vary


# --- smaller shapes ------------------------------------------------------------------------------


def _message(headers: str, body: str = "Hello.\n") -> bytes:
    return (headers.strip() + "\n\n" + body).encode()


@pytest.mark.parametrize(
    ("headers", "evidence"),
    [
        ("From: a@example.com\nSubject: Re: digest\nX-Autoreply: yes", "x-autoreply"),
        ("From: a@example.com\nSubject: Re: digest\nX-Autorespond: Away", "x-autorespond"),
        ("From: a@example.com\nSubject: Re: digest\nPrecedence: auto_reply", "precedence"),
        ("From: a@example.com\nSubject: =?utf-8?q?R=C3=A9ponse_automatique?=", "subject"),
        ("From: a@example.com\nSubject: Abwesenheitsnotiz: digest", "subject"),
    ],
)
def test_auto_reply_markers(headers: str, evidence: str) -> None:
    report = parse_report(_message(headers))
    assert (report.kind, report.evidence) == (BounceKind.AUTO_REPLY, evidence)


def test_auto_submitted_no_is_not_an_auto_reply() -> None:
    report = parse_report(_message("From: a@example.com\nSubject: Hi\nAuto-Submitted: no"))
    assert report.kind is BounceKind.OTHER


def _dsn_message(ctype: str, fields: str) -> bytes:
    return (
        "From: MAILER-DAEMON@mx.example.com\nSubject: Delivery report\nMIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\n\n'
        f"--B\nContent-Type: text/plain\n\nReport.\n\n--B\nContent-Type: {ctype}\n\n{fields}\n--B--\n"
    ).encode()


def test_success_dsn_and_envelope_id() -> None:
    raw = _dsn_message(
        "message/delivery-status",
        "Reporting-MTA: dns; mx.example.com\nOriginal-Envelope-Id: digest-101\n\n"
        "Final-Recipient: rfc822; alice@example.com\nAction: delivered\nStatus: 2.0.0\n",
    )
    report = parse_report(raw)
    assert report.kind is BounceKind.DELIVERY
    assert report.envelope_id == "digest-101"
    assert decide([report.event(NOW)], NOW).outcome is Outcome.NONE


def test_global_dsn_rfc6533() -> None:
    raw = _dsn_message(
        "message/global-delivery-status",
        "Reporting-MTA: dns; mx.example.com\n\n"
        "Final-Recipient: utf-8; jörg@bücher.example\nAction: failed\nStatus: 5.1.1\n"
        "Diagnostic-Code: smtp; 550 5.1.1 unknown user\n",
    )
    report = parse_report(raw)
    assert report.kind is BounceKind.HARD
    assert [r.address for r in report.recipients] == ["jörg@bücher.example"]


def test_dsn_with_two_recipients_reports_the_worst() -> None:
    raw = _dsn_message(
        "message/delivery-status",
        "Reporting-MTA: dns; mx.example.com\n\n"
        "Final-Recipient: rfc822; a@example.com\nAction: delayed\nStatus: 4.4.1\n\n"
        "Final-Recipient: rfc822; b@example.com\nAction: failed\nStatus: 5.1.1\n",
    )
    report = parse_report(raw)
    assert report.kind is BounceKind.HARD
    assert [(r.address, r.kind) for r in report.recipients] == [
        ("a@example.com", BounceKind.DELAYED),
        ("b@example.com", BounceKind.HARD),
    ]
    assert report.summary.startswith("hard bounce for b@example.com and 1 more: 5.1.1")
