"""Provider webhooks: signed sample payloads are accepted and parsed into the right events; forged,
stale and replayed ones are refused with a 4xx and a reason, and change nothing (the replay guard
remembers only what was authentic). Keys and the SNS certificate are generated here, never
committed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from digest.feedback.policy import BounceKind, Outcome, decide
from digest.feedback.webhooks import (
    ForgedPayload,
    MalformedPayload,
    MemoryReplayGuard,
    PostmarkAuth,
    Provider,
    ReplayedPayload,
    SnsVerifier,
    StalePayload,
    WebhookError,
    fetch_https,
    parse_mailgun,
    parse_postmark,
    parse_sendgrid,
    parse_ses,
    sendgrid_public_key,
)
from digest.verp import read_bounce_address, read_verp_token

DATA = Path(__file__).parents[1] / "data" / "bounces" / "webhooks"
SECRET = b"test-secret"  # the fixtures' VERP tokens
NOW = datetime(2025, 1, 21, 7, 1, tzinfo=UTC)


def fixture(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


# --- SNS / SES -----------------------------------------------------------------------------------

CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-bounces"


def _certificate(common_name: str, *, days: int = 365) -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def sns_key() -> tuple[rsa.RSAPrivateKey, bytes]:
    return _certificate("sns.amazonaws.com")


class Fetcher:
    """The injected certificate fetch: serves PEMs by URL and counts the calls."""

    def __init__(self, pems: dict[str, bytes]):
        self.pems = pems
        self.calls: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.calls.append(url)
        return self.pems[url]


def sns_message(
    key: rsa.RSAPrivateKey,
    message: str,
    *,
    kind: str = "Notification",
    version: str = "2",
    timestamp: datetime = NOW,
    message_id: str = "d6d9a9a4-9c0e-5a8b-bd9e-0c4f1b6f0001",
    cert_url: str = CERT_URL,
    subject: str | None = "Amazon SES Email Event Notification",
) -> dict[str, str]:
    m = {
        "Type": kind,
        "MessageId": message_id,
        "TopicArn": TOPIC,
        "Message": message,
        "Timestamp": timestamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "SignatureVersion": version,
        "SigningCertURL": cert_url,
    }
    if kind == "Notification":
        if subject is not None:
            m["Subject"] = subject
        fields = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
        m["UnsubscribeURL"] = "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe&x=1"
    else:
        m["Token"] = "2336412f37fb687f5d51e6e2425c464de"
        m["SubscribeURL"] = (
            "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription"
            f"&TopicArn={TOPIC}&Token=2336412f37fb687f5d51e6e2425c464de"
        )
        fields = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    text = "".join(f"{f}\n{m[f]}\n" for f in fields if f in m)
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    m["Signature"] = base64.b64encode(
        key.sign(text.encode(), padding.PKCS1v15(), algorithm)
    ).decode()
    return m


def post_ses(m: dict[str, str], verifier: SnsVerifier, **kw: Any) -> Any:
    body = json.dumps(m).encode()
    return parse_ses({"x-amz-sns-message-type": m["Type"]}, body, verifier=verifier, now=NOW, **kw)


@pytest.mark.parametrize("version", ["1", "2"])
def test_ses_bounce_signed(sns_key: tuple[rsa.RSAPrivateKey, bytes], version: str) -> None:
    key, pem = sns_key
    fetch = Fetcher({CERT_URL: pem})
    verifier = SnsVerifier(fetch, topic_arns=[TOPIC])
    inner = (DATA / "ses-bounce-permanent.json").read_text()
    result = post_ses(sns_message(key, inner, version=version), verifier)
    (event,) = result.events
    assert event.provider is Provider.SES and event.kind is BounceKind.HARD and event.permanent
    assert event.email == "alice@example.com"
    assert event.status == "5.1.1"
    assert event.message_id == "<world-news.daily.2025-01-21.17@news.example.org>"
    assert event.diagnostic.startswith("smtp; 550 5.1.1 <alice@example.com>")
    assert event.event_id.startswith("ses:0100019484a1b2c3-5f6e7d8c")
    assert event.occurred_at == datetime(2025, 1, 21, 7, 0, 4, 512000, tzinfo=UTC)
    # The envelope sender SES reports is our VERP return path: it names the delivery.
    assert event.return_path is not None
    assert read_bounce_address(event.return_path, SECRET) == 101
    assert decide([event.event(received_at=NOW)], NOW).outcome is Outcome.BOUNCED


@pytest.mark.parametrize(
    ("name", "kind", "email"),
    [
        ("ses-bounce-transient.json", BounceKind.SOFT, "chen@example.com"),
        ("ses-complaint.json", BounceKind.COMPLAINT, "kim@aol.com"),
        ("ses-delivery.json", BounceKind.DELIVERY, "pat@example.com"),
    ],
)
def test_ses_other_notifications(
    sns_key: tuple[rsa.RSAPrivateKey, bytes], name: str, kind: BounceKind, email: str
) -> None:
    key, pem = sns_key
    verifier = SnsVerifier(Fetcher({CERT_URL: pem}))
    (event,) = post_ses(sns_message(key, (DATA / name).read_text()), verifier).events
    assert (event.kind, event.email, event.permanent) == (kind, email, False)
    if kind is BounceKind.COMPLAINT:
        assert event.message_id == "<world-news.daily.2025-01-21.31@news.example.org>"
        decision = decide([event.event(received_at=NOW)], NOW)
        assert decision.outcome is Outcome.COMPLAINED and "webhook:ses" in decision.reason


def test_sns_certificate_fetched_once(sns_key: tuple[rsa.RSAPrivateKey, bytes]) -> None:
    key, pem = sns_key
    fetch = Fetcher({CERT_URL: pem})
    verifier = SnsVerifier(fetch)
    inner = (DATA / "ses-delivery.json").read_text()
    for i in range(3):
        post_ses(sns_message(key, inner, message_id=f"id-{i}"), verifier)
    assert fetch.calls == [CERT_URL]


def test_sns_subscription_confirmation(sns_key: tuple[rsa.RSAPrivateKey, bytes]) -> None:
    key, pem = sns_key
    verifier = SnsVerifier(Fetcher({CERT_URL: pem}))
    m = sns_message(
        key, "You have chosen to subscribe to the topic ...", kind="SubscriptionConfirmation"
    )
    result = post_ses(m, verifier)
    assert result.events == ()
    assert result.subscribe_url == m["SubscribeURL"]
    assert "to confirm" in result.note


@pytest.mark.parametrize(
    "url",
    [
        "https://sns.eu-west-1.amazonaws.com.evil.example/cert.pem",
        "https://evil.example/sns.eu-west-1.amazonaws.com/cert.pem",
        "https://sns.eu-west-1.amazonaws.com@evil.example/cert.pem",
        "https://user:pw@sns.eu-west-1.amazonaws.com/cert.pem",
        "http://sns.eu-west-1.amazonaws.com/cert.pem",
        "https://sns.eu-west-1.amazonaws.com:8443/cert.pem",
        "https://sns.eu-west-1.amazonaws.com/cert.pem?x=https://evil.example/a.pem",
        "https://sns.eu-west-1.amazonaws.com/cert.txt",
        "https://evil.example\\@sns.eu-west-1.amazonaws.com/cert.pem",
        "https://s3.amazonaws.com/cert.pem",
        "file:///etc/ssl/cert.pem",
    ],
)
def test_sns_certificate_url_outside_aws_refused_without_fetching(
    sns_key: tuple[rsa.RSAPrivateKey, bytes], url: str
) -> None:
    key, _ = sns_key
    fetch = Fetcher({})
    m = sns_message(key, (DATA / "ses-bounce-permanent.json").read_text(), cert_url=url)
    with pytest.raises(ForgedPayload, match="SigningCertURL") as info:
        post_ses(m, SnsVerifier(fetch))
    assert info.value.http_status == 403
    assert fetch.calls == []


def test_sns_forged_and_tampered(sns_key: tuple[rsa.RSAPrivateKey, bytes]) -> None:
    key, pem = sns_key
    inner = (DATA / "ses-bounce-permanent.json").read_text()
    replay = MemoryReplayGuard()
    verifier = SnsVerifier(Fetcher({CERT_URL: pem}), topic_arns=[TOPIC])
    # Signed by someone else's key, with the real certificate URL.
    other_key, _ = _certificate("sns.amazonaws.com")
    with pytest.raises(ForgedPayload, match="signature does not match"):
        post_ses(sns_message(other_key, inner), verifier, replay=replay)
    # Signed, then the message changed.
    m = sns_message(key, inner)
    m["Message"] = m["Message"].replace("alice@example.com", "victim@example.com")
    with pytest.raises(ForgedPayload, match="signature does not match"):
        post_ses(m, verifier, replay=replay)
    # An unknown topic is refused before anything is fetched.
    m = sns_message(key, inner)
    m["TopicArn"] = "arn:aws:sns:eu-west-1:999999999999:other"
    with pytest.raises(ForgedPayload, match="not one this installation subscribed to"):
        post_ses(m, verifier, replay=replay)
    with pytest.raises(ForgedPayload, match="SignatureVersion '3'"):
        post_ses({**sns_message(key, inner), "SignatureVersion": "3"}, verifier, replay=replay)
    # Nothing forged was remembered: the authentic message is still accepted once.
    assert len(post_ses(sns_message(key, inner), verifier, replay=replay).events) == 1
    with pytest.raises(ReplayedPayload, match="already received") as info:
        post_ses(sns_message(key, inner), verifier, replay=replay)
    assert info.value.http_status == 409


def test_sns_certificate_checks(sns_key: tuple[rsa.RSAPrivateKey, bytes]) -> None:
    key, _ = sns_key
    inner = (DATA / "ses-delivery.json").read_text()
    wrong_key, wrong_pem = _certificate("evil.example")
    with pytest.raises(ForgedPayload, match="not issued to sns.amazonaws.com"):
        post_ses(sns_message(wrong_key, inner), SnsVerifier(Fetcher({CERT_URL: wrong_pem})))
    with pytest.raises(ForgedPayload, match="did not return a PEM certificate"):
        post_ses(sns_message(key, inner), SnsVerifier(Fetcher({CERT_URL: b"<html>"})))
    expired_key, expired_pem = _certificate("sns.amazonaws.com", days=-0)
    verifier = SnsVerifier(Fetcher({CERT_URL: expired_pem}))
    m = sns_message(expired_key, inner)
    with pytest.raises(ForgedPayload, match="is not valid now"):
        parse_ses({}, json.dumps(m).encode(), verifier=verifier, now=NOW + timedelta(days=2))

    def failing(url: str) -> bytes:
        raise OSError("network unreachable")

    with pytest.raises(WebhookError, match="could not fetch the SNS signing certificate"):
        post_ses(sns_message(key, inner), SnsVerifier(failing))


def test_sns_stale_and_malformed(sns_key: tuple[rsa.RSAPrivateKey, bytes]) -> None:
    key, pem = sns_key
    verifier = SnsVerifier(Fetcher({CERT_URL: pem}))
    inner = (DATA / "ses-delivery.json").read_text()
    with pytest.raises(StalePayload, match="signed 7200 s ago"):
        post_ses(sns_message(key, inner, timestamp=NOW - timedelta(hours=2)), verifier)
    with pytest.raises(StalePayload, match="in the future"):
        post_ses(sns_message(key, inner, timestamp=NOW + timedelta(hours=1)), verifier)
    with pytest.raises(MalformedPayload, match="not JSON: line 1 column 2"):
        parse_ses({}, b"{nope", verifier=verifier, now=NOW)
    with pytest.raises(MalformedPayload, match="'Type' is missing"):
        parse_ses({}, b"{}", verifier=verifier, now=NOW)
    with pytest.raises(MalformedPayload, match="does not match the body"):
        parse_ses(
            {"x-amz-sns-message-type": "SubscriptionConfirmation"},
            json.dumps(sns_message(key, inner)).encode(),
            verifier=verifier,
            now=NOW,
        )
    # Authentic, but its Message is not an SES notification.
    with pytest.raises(MalformedPayload, match="SES notification"):
        post_ses(sns_message(key, "hello"), verifier)


# --- fetch_https against a real local HTTPS server ----------------------------------------------


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[tuple[str, trustme.CA]]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    (tmp_path / "cert.pem").write_bytes(b"PEM-CONTENT\n" * 3)
    (tmp_path / "big.pem").write_bytes(b"x" * 100_000)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, directory=str(tmp_path), **kw)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", ca
    finally:
        server.shutdown()
        server.server_close()


def test_fetch_https(https_server: tuple[str, trustme.CA]) -> None:
    base, ca = https_server
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    assert fetch_https(f"{base}/cert.pem", context=ctx) == b"PEM-CONTENT\n" * 3
    with pytest.raises(WebhookError, match="more than 65536 bytes"):
        fetch_https(f"{base}/big.pem", context=ctx)
    with pytest.raises(WebhookError, match="could not fetch .*certificate verify failed"):
        fetch_https(f"{base}/cert.pem")  # the system trust store does not know this CA
    with pytest.raises(WebhookError, match="not https"):
        fetch_https(base.replace("https", "http") + "/cert.pem")


# --- Mailgun -------------------------------------------------------------------------------------

MAILGUN_KEY = "key-0123456789abcdef0123456789abcdef"


def mailgun_body(
    event: dict[str, Any],
    *,
    key: str = MAILGUN_KEY,
    timestamp: datetime = NOW,
    token: str = "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0",
) -> bytes:
    ts = str(int(timestamp.timestamp()))
    sig = hmac.new(key.encode(), (ts + token).encode(), hashlib.sha256).hexdigest()
    return json.dumps(
        {"signature": {"timestamp": ts, "token": token, "signature": sig}, "event-data": event}
    ).encode()


def test_mailgun_permanent_failure() -> None:
    body = mailgun_body(fixture("mailgun-failed-permanent.json"))
    (event,) = parse_mailgun({}, body, signing_key=MAILGUN_KEY, now=NOW).events
    assert (event.kind, event.permanent, event.status) == (BounceKind.HARD, True, "5.1.1")
    assert event.email == "bob@example.net"
    assert event.message_id == "<world-news.daily.2025-01-21.20@news.example.org>"
    assert event.diagnostic == "550 5.1.1 <bob@example.net>... User unknown"
    assert event.event_id == "mailgun:G9Bn5sl1TC6nu79C8C0bwg:bob@example.net"
    assert event.return_path is not None and read_bounce_address(event.return_path, SECRET) == 104
    assert event.delivery_token is not None and read_verp_token(event.delivery_token, SECRET) == 104


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("mailgun-failed-temporary.json", BounceKind.OTHER),
        ("mailgun-complained.json", BounceKind.COMPLAINT),
    ],
)
def test_mailgun_other_events(name: str, kind: BounceKind) -> None:
    (event,) = parse_mailgun(
        {}, mailgun_body(fixture(name)), signing_key=MAILGUN_KEY, now=NOW
    ).events
    assert event.kind is kind and not event.permanent


def test_mailgun_gave_up_on_transient_is_soft() -> None:
    event = fixture("mailgun-failed-temporary.json") | {"severity": "permanent", "reason": "old"}
    (parsed,) = parse_mailgun({}, mailgun_body(event), signing_key=MAILGUN_KEY, now=NOW).events
    assert parsed.kind is BounceKind.SOFT and parsed.permanent


def test_mailgun_refusals() -> None:
    event = fixture("mailgun-failed-permanent.json")
    replay = MemoryReplayGuard()
    with pytest.raises(ForgedPayload, match="signing key") as info:
        parse_mailgun(
            {},
            mailgun_body(event, key="key-other"),
            signing_key=MAILGUN_KEY,
            now=NOW,
            replay=replay,
        )
    assert info.value.http_status == 403
    tampered = json.loads(mailgun_body(event))
    tampered["signature"]["timestamp"] = str(int(NOW.timestamp()) + 1)
    with pytest.raises(ForgedPayload):
        parse_mailgun(
            {}, json.dumps(tampered).encode(), signing_key=MAILGUN_KEY, now=NOW, replay=replay
        )
    with pytest.raises(StalePayload, match="signed 7200 s ago"):
        parse_mailgun(
            {},
            mailgun_body(event, timestamp=NOW - timedelta(hours=2)),
            signing_key=MAILGUN_KEY,
            now=NOW,
        )
    with pytest.raises(MalformedPayload, match="'token' is missing"):
        parse_mailgun({}, b'{"signature": {"timestamp": "1"}}', signing_key=MAILGUN_KEY, now=NOW)
    # The forged requests used the same token: it was not remembered, the real one passes once.
    assert parse_mailgun(
        {}, mailgun_body(event), signing_key=MAILGUN_KEY, now=NOW, replay=replay
    ).events
    with pytest.raises(ReplayedPayload):
        parse_mailgun({}, mailgun_body(event), signing_key=MAILGUN_KEY, now=NOW, replay=replay)


def test_mailgun_parent_signature() -> None:
    body = json.loads(mailgun_body(fixture("mailgun-complained.json"), key="key-subaccount"))
    sig = body["signature"]
    sig["parent-signature"] = hmac.new(
        MAILGUN_KEY.encode(), (sig["timestamp"] + sig["token"]).encode(), hashlib.sha256
    ).hexdigest()
    result = parse_mailgun({}, json.dumps(body).encode(), signing_key=MAILGUN_KEY, now=NOW)
    assert result.events[0].kind is BounceKind.COMPLAINT


# --- SendGrid ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sendgrid_keys() -> tuple[ec.EllipticCurvePrivateKey, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, base64.b64encode(der).decode()  # as SendGrid's settings page shows it


def sendgrid_headers(
    private: ec.EllipticCurvePrivateKey, body: bytes, when: datetime = NOW
) -> dict[str, str]:
    ts = str(int(when.timestamp()))
    sig = private.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(sig).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": ts,
    }


def test_sendgrid_events(sendgrid_keys: tuple[ec.EllipticCurvePrivateKey, str]) -> None:
    private, public_text = sendgrid_keys
    body = (DATA / "sendgrid-events.json").read_bytes()
    key = sendgrid_public_key(public_text)
    events = parse_sendgrid(sendgrid_headers(private, body), body, public_key=key, now=NOW).events
    got = [(e.email, e.kind, e.permanent) for e in events]
    assert got == [
        ("erin@gmail.com", BounceKind.HARD, True),
        ("hana@yahoo.com", BounceKind.SOFT, False),  # type "blocked"
        ("old@example.org", BounceKind.HARD, True),  # dropped: "Bounced Address"
        ("kim@aol.com", BounceKind.COMPLAINT, False),
        ("pat@example.com", BounceKind.DELIVERY, False),
        ("pat@example.com", BounceKind.OTHER, False),  # open
        ("bruno@example.net", BounceKind.OTHER, False),  # deferred: still trying
    ]
    first = events[0]
    assert first.message_id == "<world-news.daily.2025-01-21.24@news.example.org>"
    assert first.status == "5.1.1" and first.event_id == "sendgrid:Ym91bmNlLTAtMTIz"
    assert first.delivery_token is not None and read_verp_token(first.delivery_token, SECRET) == 108
    # Lower-case header names (as some servers hand them over) work too.
    lower = {k.lower(): v for k, v in sendgrid_headers(private, body).items()}
    assert len(parse_sendgrid(lower, body, public_key=key, now=NOW).events) == 7


def test_sendgrid_refusals(sendgrid_keys: tuple[ec.EllipticCurvePrivateKey, str]) -> None:
    private, public_text = sendgrid_keys
    key = sendgrid_public_key(public_text)
    body = (DATA / "sendgrid-events.json").read_bytes()
    headers = sendgrid_headers(private, body)
    replay = MemoryReplayGuard()
    with pytest.raises(ForgedPayload, match="not signed"):
        parse_sendgrid({}, body, public_key=key, now=NOW)
    with pytest.raises(ForgedPayload, match="does not match"):
        parse_sendgrid(
            headers, body.replace(b"erin@", b"evil@"), public_key=key, now=NOW, replay=replay
        )
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(ForgedPayload, match="does not match"):
        parse_sendgrid(sendgrid_headers(other, body), body, public_key=key, now=NOW, replay=replay)
    bad = dict(headers, **{"X-Twilio-Email-Event-Webhook-Signature": "***"})
    with pytest.raises(ForgedPayload, match="not base64"):
        parse_sendgrid(bad, body, public_key=key, now=NOW)
    with pytest.raises(StalePayload):
        old = sendgrid_headers(private, body, NOW - timedelta(days=1))
        parse_sendgrid(old, body, public_key=key, now=NOW)
    assert parse_sendgrid(headers, body, public_key=key, now=NOW, replay=replay).events
    with pytest.raises(ReplayedPayload):
        parse_sendgrid(headers, body, public_key=key, now=NOW, replay=replay)
    signed_junk = b'{"not": "a list"}'
    with pytest.raises(MalformedPayload, match="JSON array"):
        parse_sendgrid(sendgrid_headers(private, signed_junk), signed_junk, public_key=key, now=NOW)


def test_sendgrid_key_must_be_p256() -> None:
    rsa_der = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(ForgedPayload, match="P-256"):
        sendgrid_public_key(base64.b64encode(rsa_der).decode())
    with pytest.raises(ForgedPayload, match="not a public key"):
        sendgrid_public_key("not a key")
    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert sendgrid_public_key(pem.decode()).curve.name == "secp256r1"


# --- Postmark ------------------------------------------------------------------------------------

AUTH = PostmarkAuth(username="postmark", password="s3cret-hook-pw")


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.parametrize(
    ("name", "kind", "permanent"),
    [
        ("postmark-hard-bounce.json", BounceKind.HARD, True),
        ("postmark-soft-bounce.json", BounceKind.SOFT, False),
        ("postmark-transient.json", BounceKind.OTHER, False),
        ("postmark-spam-complaint.json", BounceKind.COMPLAINT, False),
        ("postmark-delivery.json", BounceKind.DELIVERY, False),
    ],
)
def test_postmark_events(name: str, kind: BounceKind, permanent: bool) -> None:
    body = (DATA / name).read_bytes()
    (event,) = parse_postmark(basic("postmark", "s3cret-hook-pw"), body, auth=AUTH, now=NOW).events
    assert (event.kind, event.permanent) == (kind, permanent)
    assert event.message_id is None and event.provider_message_id


def test_postmark_hard_bounce_details() -> None:
    body = (DATA / "postmark-hard-bounce.json").read_bytes()
    (event,) = parse_postmark(basic("postmark", "s3cret-hook-pw"), body, auth=AUTH, now=NOW).events
    assert event.email == "carol@contoso.example" and event.status == "5.1.10"
    assert event.event_id == "postmark:Bounce:4323372036854775807"
    assert event.delivery_token is not None and read_verp_token(event.delivery_token, SECRET) == 106
    assert event.diagnostic.startswith("HardBounce: smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound")


def test_postmark_refusals() -> None:
    body = (DATA / "postmark-spam-complaint.json").read_bytes()
    replay = MemoryReplayGuard()
    for headers in (
        {},
        basic("postmark", "wrong"),
        basic("other", "s3cret-hook-pw"),
        {"Authorization": "Basic !!"},
    ):
        with pytest.raises(ForgedPayload, match="basic-auth") as info:
            parse_postmark(headers, body, auth=AUTH, now=NOW, replay=replay)
        assert info.value.http_status == 403
    token_auth = PostmarkAuth(path_token="Zq3-very-long-random-path-token")
    with pytest.raises(ForgedPayload, match="path token"):
        parse_postmark({}, body, auth=token_auth, path_token="guess", now=NOW)
    assert parse_postmark(
        {}, body, auth=token_auth, path_token="Zq3-very-long-random-path-token", now=NOW
    ).events
    good = basic("postmark", "s3cret-hook-pw")
    assert parse_postmark(good, body, auth=AUTH, now=NOW, replay=replay).events
    with pytest.raises(ReplayedPayload, match="postmark:SpamComplaint:42"):
        parse_postmark(good, body, auth=AUTH, now=NOW, replay=replay)
    assert parse_postmark(good, b'{"RecordType": "Open"}', auth=AUTH, now=NOW).events == ()
    with pytest.raises(MalformedPayload, match="'Email' is missing"):
        parse_postmark(good, b'{"RecordType": "Bounce"}', auth=AUTH, now=NOW)


def test_postmark_auth_configuration() -> None:
    assert "s3cret" not in repr(AUTH)
    with pytest.raises(ValueError, match="basic-auth credentials or a path token"):
        PostmarkAuth()
    with pytest.raises(ValueError, match="both username and password"):
        PostmarkAuth(username="u")


# --- the replay guard ----------------------------------------------------------------------------


def test_memory_replay_guard_expires_and_is_bounded() -> None:
    guard = MemoryReplayGuard(max_entries=3)
    keep = timedelta(minutes=10)
    assert guard.first_time("a", now=NOW, keep=keep)
    assert not guard.first_time("a", now=NOW + timedelta(minutes=5), keep=keep)
    assert guard.first_time("a", now=NOW + timedelta(minutes=11), keep=keep)  # forgotten
    for k in "bcd":
        guard.first_time(k, now=NOW + timedelta(minutes=12), keep=keep)
    assert guard.first_time("a", now=NOW + timedelta(minutes=12), keep=keep)  # evicted
