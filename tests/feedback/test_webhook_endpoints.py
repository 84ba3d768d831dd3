"""POST /hooks/<provider> on `digest serve`, through Flask's test client against the fixtures'
store: signed sample payloads from SES (SNS), Mailgun, SendGrid and Postmark bounce, complain
or are counted exactly as they say; forged, stale, malformed and oversized ones are refused with
a 4xx and change nothing; the same event twice changes nothing either. Keys and the SNS
certificate are made here, never committed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bounce_world import COUNT, DELIVERY_OFFSET, SECRET, address, build_world
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from digest.audience.subscriptions import subscriber_history
from digest.config import load_config
from digest.feedback import events
from digest.feedback.receive import MAX_BODY, WebhookReceiver
from digest.web import create_app

DATA = Path(__file__).parents[1] / "data" / "bounces" / "webhooks"
NOW = datetime(2025, 1, 21, 7, 1, tzinfo=UTC)
TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-bounces"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem"
MAILGUN_KEY = "key-0123456789abcdef0123456789abcdef"
POSTMARK_TOKEN = "4f9c2e51d0a8b7c3e6f1"
POSTMARK_USER, POSTMARK_PASSWORD = "postmark", "s3cret-hook-pw"


def fixture(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Fetcher:
    """The receiver's HTTPS fetch, injected: serves the SNS certificate, records every URL."""

    def __init__(self, pem: bytes):
        self.pem = pem
        self.calls: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.calls.append(url)
        return self.pem if url == CERT_URL else b"<ConfirmSubscriptionResponse/>"


@pytest.fixture(scope="module")
def sns_key() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def sendgrid_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def sendgrid_public(private: ec.EllipticCurvePrivateKey) -> str:
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def sns_body(
    key: rsa.RSAPrivateKey,
    notification: dict[str, Any] | None,
    *,
    message_id: str = "d6d9a9a4-0001",
    topic: str = TOPIC,
    kind: str = "Notification",
    when: datetime = NOW,
) -> tuple[dict[str, str], bytes]:
    m = {
        "Type": kind,
        "MessageId": message_id,
        "TopicArn": topic,
        "Message": json.dumps(notification) if notification else "You have chosen to subscribe",
        "Timestamp": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "SignatureVersion": "2",
        "SigningCertURL": CERT_URL,
    }
    if kind == "Notification":
        fields = ["Message", "MessageId", "Timestamp", "TopicArn", "Type"]
    else:
        m["Token"] = "2336412f37fb687f5d51e6e2425c464de"
        m["SubscribeURL"] = (
            f"https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn={topic}"
            "&Token=2336412f37fb687f5d51e6e2425c464de"
        )
        fields = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    text = "".join(f"{f}\n{m[f]}\n" for f in fields)
    m["Signature"] = base64.b64encode(
        key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())
    ).decode()
    return {"x-amz-sns-message-type": kind}, json.dumps(m).encode()


def mailgun_body(
    event: dict[str, Any], *, key: str = MAILGUN_KEY, when: datetime = NOW, token: str = "tok1"
) -> bytes:
    ts = str(int(when.timestamp()))
    sig = hmac.new(key.encode(), (ts + token).encode(), hashlib.sha256).hexdigest()
    signature = {"timestamp": ts, "token": token, "signature": sig}
    return json.dumps({"signature": signature, "event-data": event}).encode()


def sendgrid_headers(
    private: ec.EllipticCurvePrivateKey, body: bytes, when: datetime = NOW
) -> dict[str, str]:
    ts = str(int(when.timestamp()))
    sig = private.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(sig).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": ts,
    }


def basic(user: str = POSTMARK_USER, password: str = POSTMARK_PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


class Hooks:
    """The web app with every provider set up, its test client and its certificate fetch."""

    def __init__(self, db, db_path: Path, tmp_path: Path, sns_pem: bytes, env: dict[str, str]):
        self.db = db
        config_path = tmp_path / "digest.toml"
        config_path.write_text(f'[bounces]\nses_topic_arns = ["{TOPIC}"]\n', encoding="utf-8")
        self.config = load_config(config_path, env=env)
        self.clock = Clock(NOW)
        self.app = create_app(db_path, self.config, secret=SECRET, clock=self.clock)
        self.fetch = Fetcher(sns_pem)
        self.app.extensions["digest.hooks"] = WebhookReceiver(
            self.config, secret=SECRET, fetch=self.fetch
        )
        self.client = self.app.test_client()

    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> Any:
        return self.client.post(
            path, data=body, headers=headers or {}, content_type="application/json"
        )


@pytest.fixture
def hooks(db, db_path, tmp_path, sns_key, sendgrid_key) -> Hooks:
    build_world(db)
    env = {
        "DIGEST_MAILGUN_SIGNING_KEY": MAILGUN_KEY,
        "DIGEST_SENDGRID_PUBLIC_KEY": sendgrid_public(sendgrid_key),
        "DIGEST_POSTMARK_USER": POSTMARK_USER,
        "DIGEST_POSTMARK_PASSWORD": POSTMARK_PASSWORD,
        "DIGEST_POSTMARK_TOKEN": POSTMARK_TOKEN,
    }
    return Hooks(db, db_path, tmp_path, sns_key[1], env)


def snapshot(db) -> dict[str, tuple]:
    out = {}
    for n in range(1, COUNT + 1):
        h = subscriber_history(db, address(n))
        out[address(n)] = (
            tuple(str(s.status) for s in h.subscriptions),
            h.suppression,
            tuple(h.events),
        )
    return out


def changed(before: dict[str, tuple], after: dict[str, tuple]) -> set[str]:
    return {a for a in after if after[a] != before[a]}


def status_of(db, email: str) -> tuple[str, bool]:
    h = subscriber_history(db, email)
    return str(h.subscriptions[0].status), h.suppression is not None


# --- SES through SNS -----------------------------------------------------------------------------


def test_ses_bounce_complaint_soft_and_delivery(hooks: Hooks, sns_key) -> None:
    key = sns_key[0]
    before = snapshot(hooks.db)
    for n, name in enumerate(
        [
            "ses-bounce-permanent.json",
            "ses-complaint.json",
            "ses-bounce-transient.json",
            "ses-delivery.json",
        ]  # fmt: skip
    ):
        headers, body = sns_body(key, fixture(name), message_id=f"m-{n}")
        r = hooks.post("/hooks/ses", body, headers)
        assert r.status_code == 200, r.get_json()
        assert r.get_json()["ok"] is True
    assert changed(before, snapshot(hooks.db)) == {"alice@example.com", "kim@aol.com"}
    assert status_of(hooks.db, "alice@example.com") == ("bounced", True)
    assert status_of(hooks.db, "kim@aol.com") == ("complained", True)
    history = subscriber_history(hooks.db, "alice@example.com").events
    assert history[-2].source == "webhook:ses" and "5.1.1" in (history[-2].reason or "")
    rows = {r.email: r for r in events.list_events(hooks.db, kinds=events.RECORDED_KINDS)}
    # The VERP return path SES reports as the source names alice's delivery.
    assert rows["alice@example.com"].identified_by == "verp"
    assert rows["alice@example.com"].delivery_id == 17 + DELIVERY_OFFSET
    assert rows["chen@example.com"].kind == "soft"
    # The certificate was fetched once, from SNS's domain, and cached.
    assert hooks.fetch.calls == [CERT_URL]


def test_ses_same_message_twice_and_replayed(hooks: Hooks, sns_key) -> None:
    headers, body = sns_body(sns_key[0], fixture("ses-bounce-transient.json"))
    assert hooks.post("/hooks/ses", body, headers).get_json()["effects"] == {"counted": 1}
    before = snapshot(hooks.db)
    again = hooks.post("/hooks/ses", body, headers)
    assert again.status_code == 200 and again.get_json()["duplicate"] is True
    # Sent again by SNS as a new message (a retry gets a new MessageId): the event id is the same.
    headers, body = sns_body(sns_key[0], fixture("ses-bounce-transient.json"), message_id="m-2")
    assert hooks.post("/hooks/ses", body, headers).get_json()["effects"] == {"duplicate": 1}
    assert snapshot(hooks.db) == before
    assert len(events.list_events(hooks.db)) == 1


def test_ses_forged_other_topic_and_stale_change_nothing(hooks: Hooks, sns_key) -> None:
    key = sns_key[0]
    before = snapshot(hooks.db)
    notification = fixture("ses-bounce-permanent.json")
    headers, body = sns_body(key, notification)
    tampered = body.replace(b"alice@example.com", b"bob@example.net")
    assert hooks.post("/hooks/ses", tampered, headers).status_code == 403
    # Signed by SNS for real, but for somebody else's topic.
    other = "arn:aws:sns:eu-west-1:999999999999:theirs"
    headers, body = sns_body(key, notification, topic=other, message_id="x1")
    r = hooks.post("/hooks/ses", body, headers)
    assert (
        r.status_code == 403 and "not one this installation subscribed to" in r.get_json()["error"]
    )
    # A key of the attacker's own, certificate URL on SNS's domain: the signature fails.
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    headers, body = sns_body(attacker, notification, message_id="x2")
    assert hooks.post("/hooks/ses", body, headers).status_code == 403
    headers, body = sns_body(key, notification, message_id="x3", when=NOW - timedelta(hours=2))
    assert hooks.post("/hooks/ses", body, headers).status_code == 400
    assert hooks.post("/hooks/ses", b"{not json", headers).status_code == 400
    assert snapshot(hooks.db) == before and events.list_events(hooks.db) == []


def test_sns_subscription_confirmation_visits_the_link(hooks: Hooks, sns_key) -> None:
    headers, body = sns_body(sns_key[0], None, kind="SubscriptionConfirmation")
    r = hooks.post("/hooks/ses", body, headers)
    assert r.status_code == 200 and r.get_json()["confirmed"] is True
    assert hooks.fetch.calls[-1].startswith(
        "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription"
    )


# --- Mailgun -------------------------------------------------------------------------------------


def test_mailgun_bounce_and_complaint(hooks: Hooks) -> None:
    before = snapshot(hooks.db)
    bounce = mailgun_body(fixture("mailgun-failed-permanent.json"), token="t1")
    assert hooks.post("/hooks/mailgun", bounce).get_json()["effects"] == {"bounced": 1}
    complaint = mailgun_body(fixture("mailgun-complained.json"), token="t2")
    assert hooks.post("/hooks/mailgun", complaint).get_json()["effects"] == {"complained": 1}
    # A temporary failure: Mailgun is still retrying; nothing recorded.
    deferral = mailgun_body(fixture("mailgun-failed-temporary.json"), token="t3")
    assert hooks.post("/hooks/mailgun", deferral).get_json()["effects"] == {"ignored": 1}
    assert changed(before, snapshot(hooks.db)) == {"bob@example.net", "kim@aol.com"}
    rows = events.list_events(hooks.db)
    # The delivery token we set on the message came back in the user variables.
    assert {r.identified_by for r in rows} == {"delivery-token"}
    assert {r.source for r in rows} == {"webhook:mailgun"}


def test_mailgun_forged_and_stale_change_nothing(hooks: Hooks) -> None:
    before = snapshot(hooks.db)
    event = fixture("mailgun-failed-permanent.json")
    forged = mailgun_body(event, key="key-guessed")
    assert hooks.post("/hooks/mailgun", forged).status_code == 403
    stale = mailgun_body(event, when=NOW - timedelta(hours=3), token="t9")
    assert hooks.post("/hooks/mailgun", stale).status_code == 400
    # A genuine signature moved onto other event data is still accepted by Mailgun's scheme
    # (it signs the token, not the body), so the token is single-use: the replay changes
    # nothing and is answered 200.
    good = mailgun_body(event, token="t10")
    assert hooks.post("/hooks/mailgun", good).status_code == 200
    after_first = snapshot(hooks.db)
    replay = json.loads(good)
    replay["event-data"] = {**event, "recipient": "alice@example.com", "id": "other"}
    r = hooks.post("/hooks/mailgun", json.dumps(replay).encode())
    assert r.status_code == 200 and r.get_json()["duplicate"] is True
    assert snapshot(hooks.db) == after_first
    assert changed(before, after_first) == {"bob@example.net"}


# --- SendGrid ------------------------------------------------------------------------------------


def test_sendgrid_batch(hooks: Hooks, sendgrid_key) -> None:
    before = snapshot(hooks.db)
    body = (DATA / "sendgrid-events.json").read_bytes()
    r = hooks.post("/hooks/sendgrid", body, sendgrid_headers(sendgrid_key, body))
    assert r.status_code == 200
    assert r.get_json()["effects"] == {"bounced": 2, "counted": 1, "complained": 1,
                                       "recorded": 1, "ignored": 2}  # fmt: skip
    assert changed(before, snapshot(hooks.db)) == {
        "erin@gmail.com",  # bounce
        "old@example.org",  # dropped: an earlier bounce
        "kim@aol.com",  # spam report
    }
    assert status_of(hooks.db, "hana@yahoo.com") == ("active", False)  # blocked: soft


def test_sendgrid_forged_unsigned_and_oversized(hooks: Hooks, sendgrid_key) -> None:
    before = snapshot(hooks.db)
    body = (DATA / "sendgrid-events.json").read_bytes()
    headers = sendgrid_headers(sendgrid_key, body)
    altered = body.replace(b"erin@gmail.com", b"chen@example.com")
    assert hooks.post("/hooks/sendgrid", altered, headers).status_code == 403
    assert hooks.post("/hooks/sendgrid", body).status_code == 403
    other = ec.generate_private_key(ec.SECP256R1())
    assert hooks.post("/hooks/sendgrid", body, sendgrid_headers(other, body)).status_code == 403
    huge = b"[" + b" " * MAX_BODY + b"]"
    r = hooks.post("/hooks/sendgrid", huge, sendgrid_headers(sendgrid_key, huge))
    assert r.status_code == 413
    assert snapshot(hooks.db) == before and events.list_events(hooks.db) == []


# --- Postmark ------------------------------------------------------------------------------------


def test_postmark_needs_both_the_path_token_and_basic_auth(hooks: Hooks) -> None:
    before = snapshot(hooks.db)
    body = (DATA / "postmark-hard-bounce.json").read_bytes()
    assert hooks.post("/hooks/postmark", body, basic()).status_code == 403
    assert hooks.post(f"/hooks/postmark/{POSTMARK_TOKEN}", body).status_code == 403
    assert hooks.post("/hooks/postmark/wrong-token", body, basic()).status_code == 403
    wrong = basic(password="guess")
    assert hooks.post(f"/hooks/postmark/{POSTMARK_TOKEN}", body, wrong).status_code == 403
    assert snapshot(hooks.db) == before

    r = hooks.post(f"/hooks/postmark/{POSTMARK_TOKEN}", body, basic())
    assert r.status_code == 200 and r.get_json()["effects"] == {"bounced": 1}
    assert changed(before, snapshot(hooks.db)) == {"carol@contoso.example"}
    again = hooks.post(f"/hooks/postmark/{POSTMARK_TOKEN}", body, basic())
    assert again.status_code == 200 and again.get_json()["duplicate"] is True


@pytest.mark.parametrize(
    "name,effect,who",
    [
        ("postmark-soft-bounce.json", "counted", None),
        ("postmark-spam-complaint.json", "complained", "lee@hotmail.com"),
        ("postmark-transient.json", "ignored", None),
        ("postmark-delivery.json", "recorded", None),
    ],
)
def test_postmark_events(hooks: Hooks, name: str, effect: str, who: str | None) -> None:
    before = snapshot(hooks.db)
    body = (DATA / name).read_bytes()
    r = hooks.post(f"/hooks/postmark/{POSTMARK_TOKEN}", body, basic())
    assert r.status_code == 200 and r.get_json()["effects"] == {effect: 1}
    assert changed(before, snapshot(hooks.db)) == ({who} if who else set())


# --- set-up --------------------------------------------------------------------------------------


def test_providers_without_keys_are_not_there(db, db_path, tmp_path, sns_key) -> None:
    build_world(db)
    hooks = Hooks(db, db_path, tmp_path, sns_key[1], env={})
    hooks.app.extensions["digest.hooks"] = WebhookReceiver(
        load_config(None, env={}), secret=SECRET, fetch=hooks.fetch
    )
    for provider, needs in [
        ("ses", "ses_topic_arns"),
        ("mailgun", "DIGEST_MAILGUN_SIGNING_KEY"),
        ("sendgrid", "DIGEST_SENDGRID_PUBLIC_KEY"),
        ("postmark", "DIGEST_POSTMARK_TOKEN"),
    ]:
        r = hooks.post(f"/hooks/{provider}", b"{}")
        assert r.status_code == 404 and needs in r.get_json()["error"]
    assert hooks.client.get("/hooks/mailgun").status_code == 405


def test_a_bad_key_in_the_environment_stops_the_app_at_startup(db_path, tmp_path) -> None:
    from digest.errors import ConfigError

    config = load_config(None, env={"DIGEST_SENDGRID_PUBLIC_KEY": "not a key"})
    with pytest.raises(ConfigError, match="DIGEST_SENDGRID_PUBLIC_KEY"):
        create_app(db_path, config, secret=SECRET)
    config = load_config(None, env={"DIGEST_POSTMARK_USER": "only-the-user"})
    with pytest.raises(ConfigError, match="DIGEST_POSTMARK_PASSWORD"):
        create_app(db_path, config, secret=SECRET)


def test_a_remote_servers_words_cannot_become_terminal_escapes(hooks: Hooks, run) -> None:
    record = fixture("postmark-hard-bounce.json")
    record["Details"] = "smtp;550 5.1.1 \x1b]0;owned\x07\x1b[2J gone\r\nInjected: header"
    body = json.dumps(record).encode()
    assert hooks.post(f"/hooks/postmark/{POSTMARK_TOKEN}", body, basic()).status_code == 200
    (row,) = events.list_events(hooks.db)
    assert not any(c in row.diagnostic for c in "\x1b\x07\r\n")
    listed = run("bounces", "list")
    assert "\x1b" not in listed.output and "Injected: header" in listed.output
    history = subscriber_history(hooks.db, "carol@contoso.example")
    assert all("\x1b" not in (e.reason or "") for e in history.events)
