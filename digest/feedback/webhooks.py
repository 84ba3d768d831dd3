"""Provider webhooks for bounces and complaints: verify the request, then parse it into typed
events. Amazon SES (through SNS), Mailgun, SendGrid and Postmark.

Pure functions over ``(headers, body bytes)``: no web framework here; ``digest serve`` mounts them
at ``POST /hooks/<provider>``. Each ``parse_*`` returns a ``WebhookResult`` or raises a
``WebhookError`` naming why the request was refused, with the HTTP status to answer
(``http_status``). The checks run in this order, so that nothing unauthenticated is remembered
or fetched more than needed: shape, where the key comes from, signature, age, replay.

What each provider's word means (``kind``; ``permanent`` is the provider's own verdict):

- SES: Bounce/Permanent -> hard; Bounce/Transient or Undetermined -> soft; Complaint -> complaint
  (feedback type ``not-spam`` -> other); Delivery -> delivery.
- Mailgun: failed/permanent -> hard (soft when the final code is 4.x.x: Mailgun gave up retrying a
  transient failure); failed/temporary -> other (Mailgun is still retrying: a deferral);
  complained -> complaint; delivered -> delivery.
- SendGrid: bounce -> hard (type ``blocked``, or a 4.x.x code -> soft); dropped because of an
  earlier bounce -> hard, because of an earlier spam report -> complaint; spamreport ->
  complaint; delivered -> delivery; deferred, opens, clicks... -> other.
- Postmark: HardBounce, BadEmailAddress, ManuallyDeactivated -> hard; SoftBounce, DnsError,
  Blocked, DMARCPolicy -> soft; SpamComplaint -> complaint; Delivery -> delivery; Transient
  (a delay), AutoResponder and the rest -> other.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import ssl
import threading
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from ..errors import DigestError
from ..verp import DELIVERY_VARIABLE
from .policy import BounceEvent, BounceKind, status_code

_MAX_BODY = 10 * 1024 * 1024  # SendGrid batches events; a few MB at most
_SKEW = timedelta(minutes=5)  # a provider's clock may run a little ahead of ours


class Provider(StrEnum):
    SES = "ses"
    MAILGUN = "mailgun"
    SENDGRID = "sendgrid"
    POSTMARK = "postmark"


class WebhookError(DigestError):
    """A webhook request was refused. ``http_status`` is the answer to give."""

    http_status = 400


class MalformedPayload(WebhookError):
    """Not the shape this provider sends (bad JSON, a required field missing)."""


class ForgedPayload(WebhookError):
    """The signature, certificate or credentials do not check out."""

    http_status = 403


class StalePayload(WebhookError):
    """Signed too long ago (or in the future): a replay of an old request, or a wrong clock."""


class ReplayedPayload(WebhookError):
    """The very same signed request was already accepted. Its events were processed then, so
    refusing it changes nothing."""

    http_status = 409


@dataclass(frozen=True)
class ProviderEvent:
    """One recipient's event, as a provider reported it."""

    provider: Provider
    kind: BounceKind  # HARD, SOFT, COMPLAINT, DELIVERY or OTHER
    email: str
    message_id: str | None  # the original Message-ID header, when the provider passes it on
    diagnostic: str
    permanent: bool  # the provider says it will never deliver to this address
    event_id: str  # provider-scoped and stable across retries: the idempotency key
    occurred_at: datetime | None = None
    status: str | None = None  # RFC 3463 code when given
    return_path: str | None = None  # the envelope sender the message had (our VERP address)
    delivery_token: str | None = None  # the DELIVERY_VARIABLE value, if the sender set one
    provider_message_id: str | None = None  # the provider's own id for the message

    def event(self, *, received_at: datetime, delivery_key: str | None = None) -> BounceEvent:
        """This event as the policy's input; ``source`` is ``webhook:<provider>``; dated when
        the provider says it happened, else ``received_at``."""
        at = self.occurred_at or received_at
        key = delivery_key or self.message_id or self.provider_message_id
        return BounceEvent(self.kind, at, f"webhook:{self.provider}", self.diagnostic, key)


@dataclass(frozen=True)
class WebhookResult:
    """What one verified request says."""

    events: tuple[ProviderEvent, ...] = ()
    # SNS SubscriptionConfirmation: GET this URL (already checked to be an SNS URL) to confirm.
    subscribe_url: str | None = None
    note: str = ""  # for the log: what the request was when it carried no events


# --- replay guard --------------------------------------------------------------------------------


class ReplayGuard(Protocol):
    """Remembers the signed requests already accepted."""

    def first_time(self, key: str, *, now: datetime, keep: timedelta) -> bool:
        """True (and remember ``key`` until ``now + keep``) if ``key`` was not seen before."""
        ...


class MemoryReplayGuard:
    """A ``ReplayGuard`` in this process's memory, bounded, safe across threads (waitress).
    It forgets on restart: the database's idempotency (event ids) is what makes a replay
    harmless; this only refuses one early."""

    def __init__(self, max_entries: int = 100_000):
        self.max_entries = max_entries
        self._until: OrderedDict[str, datetime] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, key: str, *, now: datetime, keep: timedelta) -> bool:
        with self._lock:
            while self._until and next(iter(self._until.values())) < now:
                self._until.popitem(last=False)
            if key in self._until and self._until[key] >= now:
                return False
            self._until[key] = now + keep
            self._until.move_to_end(key)
            while len(self._until) > self.max_entries:
                self._until.popitem(last=False)
            return True


def _guard(replay: ReplayGuard | None, key: str, now: datetime, keep: timedelta, what: str) -> None:
    if replay is not None and not replay.first_time(key, now=now, keep=keep):
        raise ReplayedPayload(f"{what} was already received (replayed request)")


# --- helpers -------------------------------------------------------------------------------------


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _json(body: bytes, what: str) -> Any:
    if len(body) > _MAX_BODY:
        raise MalformedPayload(f"{what} body is {len(body):,} bytes, more than {_MAX_BODY:,}")
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise MalformedPayload(f"{what} body is not UTF-8 JSON") from None
    except json.JSONDecodeError as e:
        raise MalformedPayload(
            f"{what} body is not JSON: line {e.lineno} column {e.colno}: {e.msg}"
        ) from None


def _str(obj: Mapping[str, Any], key: str, what: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedPayload(f"{what}: field {key!r} is missing or not a string")
    return value


def _opt_str(value: Any, limit: int = 1000) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    text = re.sub(r"\s+", " ", text).strip()
    return text[:limit] or None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _iso(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _epoch(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _angle(message_id: str | None) -> str | None:
    if not message_id:
        return None
    message_id = message_id.strip()
    return message_id if message_id.startswith("<") else f"<{message_id}>"


def _check_age(signed_at: datetime, now: datetime, max_age: timedelta, what: str) -> None:
    if signed_at > now + _SKEW:
        raise StalePayload(
            f"{what} is dated {signed_at:%Y-%m-%d %H:%M:%S} UTC, in the future (check the clock)"
        )
    if now - signed_at > max_age:
        age = int((now - signed_at).total_seconds())
        raise StalePayload(
            f"{what} was signed {age} s ago, longer than the {int(max_age.total_seconds())} s "
            "accepted (a replay of an old request, or a wrong clock)"
        )


# --- Amazon SES through SNS ----------------------------------------------------------------------

# The only certificate URLs trusted: https://sns.<region>.amazonaws.com/<name>.pem
_SNS_HOST = re.compile(r"sns\.[a-z0-9-]+\.amazonaws\.com")
_SNS_CERT_NAME = re.compile(r"sns(\.[a-z0-9-]+)?\.amazonaws\.com")
_SNS_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
_SNS_FIELDS["UnsubscribeConfirmation"] = _SNS_FIELDS["SubscriptionConfirmation"]


def _sns_url(url: str, what: str, *, path_suffix: str | None = None) -> str:
    """``url`` if it is https://sns.<region>.amazonaws.com/..., else ``ForgedPayload``."""
    if not url.isascii() or any(c.isspace() or c == "\\" or ord(c) < 32 for c in url):
        raise ForgedPayload(f"{what} {url!r} is not an SNS URL")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ForgedPayload(f"{what} {url!r} is not an SNS URL") from None
    host = (parts.hostname or "").lower()
    if (
        parts.scheme != "https"
        or not _SNS_HOST.fullmatch(host)
        or parts.username is not None
        or parts.password is not None
        or port not in (None, 443)
        or parts.fragment
        or (path_suffix is not None and (parts.query or not parts.path.endswith(path_suffix)))
    ):
        raise ForgedPayload(
            f"{what} {url!r} is not https://sns.<region>.amazonaws.com/...: refused"
        )
    return url


class SnsVerifier:
    """Checks SNS message signatures (SignatureVersion 1: SHA1withRSA, 2: SHA256withRSA).

    The signing certificate is fetched only from https://sns.<region>.amazonaws.com/...pem,
    through ``fetch(url) -> bytes`` (``fetch_https`` in production: TLS-verified), and cached by
    URL. It must name sns.amazonaws.com and be valid now. ``topic_arns``, when given, are the only
    topics accepted (AWS: "reject any message with an unexpected TopicArn")."""

    def __init__(
        self,
        fetch: Callable[[str], bytes],
        *,
        topic_arns: Collection[str] | None = None,
        max_age: timedelta = timedelta(hours=1),
        cache_size: int = 16,
    ):
        self.fetch = fetch
        self.topic_arns = frozenset(topic_arns) if topic_arns is not None else None
        self.max_age = max_age
        self.cache_size = cache_size
        self._keys: OrderedDict[str, tuple[rsa.RSAPublicKey, datetime, datetime]] = OrderedDict()
        self._lock = threading.Lock()

    def _public_key(self, url: str, now: datetime) -> rsa.RSAPublicKey:
        with self._lock:
            cached = self._keys.get(url)
            if cached is not None:
                self._keys.move_to_end(url)
        if cached is None:
            try:
                pem = self.fetch(url)
            except Exception as e:  # the fetch function's own failure, whatever it is
                raise WebhookError(
                    f"could not fetch the SNS signing certificate {url}: {e}"
                ) from None
            try:
                cert = x509.load_pem_x509_certificate(pem)
            except ValueError:
                raise ForgedPayload(f"{url} did not return a PEM certificate") from None
            names = [a.value for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
            try:
                san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
                names += san.value.get_values_for_type(x509.DNSName)
            except x509.ExtensionNotFound:
                pass
            if not any(isinstance(n, str) and _SNS_CERT_NAME.fullmatch(n.lower()) for n in names):
                raise ForgedPayload(f"the certificate at {url} is not issued to sns.amazonaws.com")
            key = cert.public_key()
            if not isinstance(key, rsa.RSAPublicKey):
                raise ForgedPayload(f"the certificate at {url} does not hold an RSA key")
            cached = (key, cert.not_valid_before_utc, cert.not_valid_after_utc)
            with self._lock:
                self._keys[url] = cached
                while len(self._keys) > self.cache_size:
                    self._keys.popitem(last=False)
        key, not_before, not_after = cached
        if not not_before <= now <= not_after:
            raise ForgedPayload(
                f"the SNS signing certificate {url} is not valid now "
                f"(valid {not_before:%Y-%m-%d} to {not_after:%Y-%m-%d})"
            )
        return key

    def verify(self, message: Mapping[str, Any], *, now: datetime) -> None:
        """Raise ``WebhookError`` unless ``message`` (the SNS JSON) is authentic and recent."""
        kind = _str(message, "Type", "SNS message")
        fields = _SNS_FIELDS.get(kind)
        if fields is None:
            raise MalformedPayload(f"SNS message Type {kind!r} is not one SNS sends")
        version = message.get("SignatureVersion")
        algorithm: hashes.HashAlgorithm
        if version == "1":
            algorithm = hashes.SHA1()  # what SNS signs with under SignatureVersion 1
        elif version == "2":
            algorithm = hashes.SHA256()
        else:
            raise ForgedPayload(f"SNS SignatureVersion {version!r} is not 1 or 2")
        topic = _str(message, "TopicArn", "SNS message")
        if self.topic_arns is not None and topic not in self.topic_arns:
            raise ForgedPayload(f"SNS topic {topic!r} is not one this installation subscribed to")
        url = _sns_url(
            _str(message, "SigningCertURL", "SNS message"),
            "SigningCertURL",
            path_suffix=".pem",
        )
        try:
            signature = base64.b64decode(_str(message, "Signature", "SNS message"), validate=True)
        except binascii.Error:
            raise ForgedPayload("SNS Signature is not base64") from None
        # The string to sign: "Name\nvalue\n" for each field present, in this order (AWS docs,
        # "Verifying the signatures of Amazon SNS messages").
        lines = []
        for name in fields:
            if name not in message:
                if name == "Subject":
                    continue
                raise MalformedPayload(f"SNS {kind}: field {name!r} is missing")
            value = message[name]
            if not isinstance(value, str):
                raise MalformedPayload(f"SNS {kind}: field {name!r} is not a string")
            lines.append(f"{name}\n{value}\n")
        key = self._public_key(url, now)
        try:
            key.verify(signature, "".join(lines).encode("utf-8"), padding.PKCS1v15(), algorithm)
        except InvalidSignature:
            raise ForgedPayload("SNS signature does not match the message") from None
        signed_at = _iso(message.get("Timestamp"))
        if signed_at is None:
            raise MalformedPayload("SNS Timestamp is not an ISO 8601 time")
        _check_age(signed_at, now, self.max_age, "SNS message")


def parse_ses(
    headers: Mapping[str, str],
    body: bytes,
    *,
    verifier: SnsVerifier,
    now: datetime,
    replay: ReplayGuard | None = None,
) -> WebhookResult:
    """An SNS POST carrying SES bounce, complaint or delivery notifications (or SNS's own
    subscription messages)."""
    message = _json(body, "SNS")
    if not isinstance(message, Mapping):
        raise MalformedPayload("SNS body is not a JSON object")
    declared = _lower(headers).get("x-amz-sns-message-type")
    if declared is not None and declared != message.get("Type"):
        raise MalformedPayload(
            f"x-amz-sns-message-type {declared!r} does not match the body's Type"
        )
    verifier.verify(message, now=now)
    message_id = _str(message, "MessageId", "SNS message")
    _guard(replay, f"ses:{message_id}", now, verifier.max_age + _SKEW, f"SNS message {message_id}")
    kind = message["Type"]
    if kind == "SubscriptionConfirmation":
        url = _sns_url(_str(message, "SubscribeURL", "SNS message"), "SubscribeURL")
        query = parse_qs(urlsplit(url).query)
        if query.get("Action") != ["ConfirmSubscription"]:
            raise ForgedPayload(f"SubscribeURL {url!r} is not a ConfirmSubscription link")
        return WebhookResult(
            subscribe_url=url, note=f"SNS subscription to {message['TopicArn']} to confirm"
        )
    if kind == "UnsubscribeConfirmation":
        return WebhookResult(note=f"SNS unsubscribed from {message['TopicArn']}")
    notification = _json(message["Message"].encode("utf-8"), "SES notification in SNS Message")
    if not isinstance(notification, Mapping):
        raise MalformedPayload("SES notification is not a JSON object")
    what = str(notification.get("notificationType") or notification.get("eventType") or "")
    return WebhookResult(events=tuple(_ses_events(notification, message_id)), note=f"SES {what}")


def _ses_events(n: Mapping[str, Any], sns_id: str) -> list[ProviderEvent]:
    # SES notifications say "notificationType"; SES event publishing says "eventType".
    what = n.get("notificationType") or n.get("eventType")
    mail = _mapping(n.get("mail"))
    header_id = _mapping(mail.get("commonHeaders")).get("messageId")
    if not header_id:
        for h in mail.get("headers") or []:
            if isinstance(h, Mapping) and str(h.get("name", "")).lower() == "message-id":
                header_id = h.get("value")
    message_id = _angle(_opt_str(header_id))
    return_path = _opt_str(mail.get("source"), 320)
    ses_id = _opt_str(mail.get("messageId"), 200)

    def event(
        kind: BounceKind,
        email: str,
        diagnostic: str,
        event_id: str,
        occurred_at: datetime | None,
        *,
        permanent: bool = False,
        status: str | None = None,
    ) -> ProviderEvent:
        return ProviderEvent(
            provider=Provider.SES,
            kind=kind,
            email=email,
            message_id=message_id,
            diagnostic=diagnostic,
            permanent=permanent,
            event_id=event_id,
            occurred_at=occurred_at,
            status=status,
            return_path=return_path,
            provider_message_id=ses_id,
        )

    events = []
    if what == "Bounce":
        bounce = _mapping(n.get("bounce"))
        btype = str(bounce.get("bounceType", ""))
        subtype = str(bounce.get("bounceSubType", ""))
        permanent = btype == "Permanent"
        feedback = _opt_str(bounce.get("feedbackId"), 200) or sns_id
        for r in bounce.get("bouncedRecipients") or []:
            r = _mapping(r)
            email = _opt_str(r.get("emailAddress"), 320)
            if not email:
                continue
            diag = _opt_str(r.get("diagnosticCode")) or f"SES {btype}/{subtype}"
            events.append(
                event(
                    BounceKind.HARD if permanent else BounceKind.SOFT,
                    email,
                    diag,
                    f"ses:{feedback}:{email.lower()}",
                    _iso(bounce.get("timestamp")),
                    permanent=permanent,
                    status=status_code(_opt_str(r.get("status"))) or status_code(diag),
                )
            )
    elif what == "Complaint":
        complaint = _mapping(n.get("complaint"))
        feedback_type = str(complaint.get("complaintFeedbackType") or "abuse")
        kind = BounceKind.OTHER if feedback_type == "not-spam" else BounceKind.COMPLAINT
        feedback = _opt_str(complaint.get("feedbackId"), 200) or sns_id
        for r in complaint.get("complainedRecipients") or []:
            email = _opt_str(_mapping(r).get("emailAddress"), 320)
            if email:
                events.append(
                    event(
                        kind,
                        email,
                        f"complaint ({feedback_type}) via SES",
                        f"ses:{feedback}:{email.lower()}",
                        _iso(complaint.get("timestamp")),
                    )
                )
    elif what == "Delivery":
        delivery = _mapping(n.get("delivery"))
        for email in delivery.get("recipients") or []:
            if isinstance(email, str) and email:
                events.append(
                    event(
                        BounceKind.DELIVERY,
                        email,
                        _opt_str(delivery.get("smtpResponse")) or "delivered",
                        f"ses:{ses_id or sns_id}:delivery:{email.lower()}",
                        _iso(delivery.get("timestamp")),
                    )
                )
    return events


# --- Mailgun -------------------------------------------------------------------------------------


def parse_mailgun(
    headers: Mapping[str, str],
    body: bytes,
    *,
    signing_key: str,
    now: datetime,
    max_age: timedelta = timedelta(hours=1),
    replay: ReplayGuard | None = None,
) -> WebhookResult:
    """A Mailgun webhook (JSON: ``signature`` + ``event-data``), signed with HMAC-SHA256 of
    timestamp + token under the account's webhook signing key."""
    payload = _json(body, "Mailgun")
    if not isinstance(payload, Mapping):
        raise MalformedPayload("Mailgun body is not a JSON object")
    sig = _mapping(payload.get("signature"))
    timestamp = _str(sig, "timestamp", "Mailgun signature")
    token = _str(sig, "token", "Mailgun signature")
    expected = hmac.new(
        signing_key.encode("utf-8"), (timestamp + token).encode("utf-8"), hashlib.sha256
    ).hexdigest()
    # A subaccount's events also carry the parent account's signature.
    given = [s for s in (sig.get("signature"), sig.get("parent-signature")) if isinstance(s, str)]
    if not given:
        raise MalformedPayload("Mailgun signature: field 'signature' is missing")
    if not any(hmac.compare_digest(expected.encode(), s.strip().lower().encode()) for s in given):
        raise ForgedPayload("Mailgun signature does not match (check the webhook signing key)")
    signed_at = _epoch(timestamp)
    if signed_at is None:
        raise MalformedPayload("Mailgun signature timestamp is not a number")
    _check_age(signed_at, now, max_age, "Mailgun webhook")
    _guard(replay, f"mailgun:{token}", now, max_age + _SKEW, "Mailgun token")
    data = payload.get("event-data")
    if not isinstance(data, Mapping):
        raise MalformedPayload("Mailgun body: field 'event-data' is missing")
    event = _mailgun_event(data)
    return WebhookResult(events=(event,) if event else (), note=str(data.get("event", "")))


def _mailgun_event(d: Mapping[str, Any]) -> ProviderEvent | None:
    email = _opt_str(d.get("recipient"), 320)
    if not email:
        return None
    what = str(d.get("event", ""))
    status_obj = _mapping(d.get("delivery-status"))
    reply = " ".join(
        x
        for x in (
            str(status_obj.get("code") or ""),
            _opt_str(status_obj.get("message")) or "",
            _opt_str(status_obj.get("description")) or "",
        )
        if x
    )
    status = status_code(_opt_str(status_obj.get("enhanced-code"))) or status_code(reply)
    permanent = False
    if what == "failed":
        permanent = d.get("severity") == "permanent"
        if permanent:
            # Mailgun's "permanent" also covers giving up on a transient 4.x.x ("old").
            kind = BounceKind.SOFT if (status or "").startswith("4") else BounceKind.HARD
        else:
            kind = BounceKind.OTHER  # Mailgun retries a temporary failure: a deferral
    elif what == "complained":
        kind = BounceKind.COMPLAINT
    elif what == "delivered":
        kind = BounceKind.DELIVERY
    else:
        kind = BounceKind.OTHER
    reason = _opt_str(d.get("reason"), 100)
    diagnostic = reply or (f"{what} ({reason})" if reason else what)
    message = _mapping(d.get("message"))
    variables = _mapping(d.get("user-variables"))
    return ProviderEvent(
        provider=Provider.MAILGUN,
        kind=kind,
        email=email,
        message_id=_angle(_opt_str(_mapping(message.get("headers")).get("message-id"))),
        diagnostic=diagnostic[:1000],
        permanent=permanent,
        event_id=f"mailgun:{_opt_str(d.get('id'), 200) or ''}:{email.lower()}",
        occurred_at=_epoch(d.get("timestamp")),
        status=status,
        return_path=_opt_str(_mapping(d.get("envelope")).get("sender"), 320),
        delivery_token=_opt_str(variables.get(DELIVERY_VARIABLE), 100),
    )


# --- SendGrid ------------------------------------------------------------------------------------


def sendgrid_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """The verification key as SendGrid shows it (base64 of the DER key, or PEM)."""
    try:
        if "BEGIN PUBLIC KEY" in text:
            key = serialization.load_pem_public_key(text.encode("ascii"))
        else:
            key = serialization.load_der_public_key(base64.b64decode("".join(text.split())))
    except (ValueError, binascii.Error, UnicodeEncodeError):
        raise ForgedPayload("the SendGrid verification key is not a public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ForgedPayload("the SendGrid verification key is not an ECDSA P-256 key")
    return key


_SENDGRID_SIG = "x-twilio-email-event-webhook-signature"
_SENDGRID_TS = "x-twilio-email-event-webhook-timestamp"


def parse_sendgrid(
    headers: Mapping[str, str],
    body: bytes,
    *,
    public_key: ec.EllipticCurvePublicKey,
    now: datetime,
    max_age: timedelta = timedelta(hours=1),
    replay: ReplayGuard | None = None,
) -> WebhookResult:
    """A SendGrid signed Event Webhook POST: ECDSA P-256 / SHA-256 over timestamp + raw body."""
    h = _lower(headers)
    if _SENDGRID_SIG not in h or _SENDGRID_TS not in h:
        raise ForgedPayload(
            "SendGrid request is not signed (enable the Signed Event Webhook in SendGrid)"
        )
    timestamp = h[_SENDGRID_TS].strip()
    try:
        signature = base64.b64decode(h[_SENDGRID_SIG].strip(), validate=True)
    except binascii.Error:
        raise ForgedPayload("SendGrid signature is not base64") from None
    try:
        public_key.verify(signature, timestamp.encode("utf-8") + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        raise ForgedPayload(
            "SendGrid signature does not match (check the verification key)"
        ) from None
    signed_at = _epoch(timestamp)
    if signed_at is None:
        raise MalformedPayload("SendGrid timestamp header is not a number")
    _check_age(signed_at, now, max_age, "SendGrid webhook")
    _guard(
        replay,
        "sendgrid:" + hashlib.sha256(signature).hexdigest(),
        now,
        max_age + _SKEW,
        "SendGrid request",
    )
    events = _json(body, "SendGrid")
    if not isinstance(events, list):
        raise MalformedPayload("SendGrid body is not a JSON array of events")
    found = (_sendgrid_event(e) for e in events if isinstance(e, Mapping))
    return WebhookResult(events=tuple(e for e in found if e is not None))


def _sendgrid_event(e: Mapping[str, Any]) -> ProviderEvent | None:
    email = _opt_str(e.get("email"), 320)
    if not email:
        return None
    what = str(e.get("event", ""))
    reason = _opt_str(e.get("reason")) or ""
    status = status_code(_opt_str(e.get("status"))) or status_code(reason)
    permanent = False
    if what == "bounce":
        blocked = e.get("type") == "blocked"
        permanent = not blocked
        kind = BounceKind.SOFT if blocked or (status or "").startswith("4") else BounceKind.HARD
    elif what == "dropped" and reason.startswith("Bounced Address"):
        kind, permanent = BounceKind.HARD, True
    elif what == "spamreport" or (
        what == "dropped" and reason.startswith("Spam Reporting Address")
    ):
        kind = BounceKind.COMPLAINT
    elif what == "delivered":
        kind = BounceKind.DELIVERY
    else:
        kind = BounceKind.OTHER
    event_id = _opt_str(e.get("sg_event_id"), 200)
    if not event_id:
        # Older events lack sg_event_id: the message, the event and its time identify it.
        event_id = f"{e.get('sg_message_id')}:{what}:{e.get('timestamp')}"
    return ProviderEvent(
        provider=Provider.SENDGRID,
        kind=kind,
        email=email,
        message_id=_angle(_opt_str(e.get("smtp-id"), 998)),
        diagnostic=(reason or what)[:1000],
        permanent=permanent,
        event_id=f"sendgrid:{event_id}",
        occurred_at=_epoch(e.get("timestamp")),
        status=status,
        delivery_token=_opt_str(e.get(DELIVERY_VARIABLE), 100),
        provider_message_id=_opt_str(e.get("sg_message_id"), 200),
    )


# --- Postmark ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostmarkAuth:
    """How Postmark proves itself: HTTP basic auth credentials set in the webhook URL
    (``https://user:pass@host/hooks/postmark``), a secret token in the path
    (``/hooks/postmark/<token>``), or both (then both are required)."""

    username: str | None = None
    password: str | None = None
    path_token: str | None = None

    def __post_init__(self) -> None:
        if (self.username is None) != (self.password is None):
            raise ValueError("PostmarkAuth: give both username and password, or neither")
        if self.password is None and not self.path_token:
            raise ValueError("PostmarkAuth: set basic-auth credentials or a path token")

    def __repr__(self) -> str:  # never the secrets
        return f"PostmarkAuth(username={self.username!r}, password=***, path_token=***)"


_HARD_POSTMARK = {"HardBounce", "BadEmailAddress", "ManuallyDeactivated"}
_SOFT_POSTMARK = {"SoftBounce", "DnsError", "Blocked", "DMARCPolicy"}


def parse_postmark(
    headers: Mapping[str, str],
    body: bytes,
    *,
    auth: PostmarkAuth,
    path_token: str | None = None,
    now: datetime,
    replay: ReplayGuard | None = None,
    keep: timedelta = timedelta(days=2),
) -> WebhookResult:
    """A Postmark Bounce, SpamComplaint or Delivery webhook. ``path_token`` is the token the
    request came in on (the lead's route ``/hooks/postmark/<token>``)."""
    if auth.password is not None:
        given = _lower(headers).get("authorization", "")
        scheme, _, encoded = given.partition(" ")
        try:
            pair = base64.b64decode(encoded.strip(), validate=True) if encoded else b""
        except binascii.Error:
            pair = b""
        expected = f"{auth.username}:{auth.password}".encode()
        if scheme.lower() != "basic" or not hmac.compare_digest(pair, expected):
            raise ForgedPayload("Postmark request has wrong or no basic-auth credentials")
    if auth.path_token and not hmac.compare_digest(
        (path_token or "").encode("utf-8"), auth.path_token.encode("utf-8")
    ):
        raise ForgedPayload("Postmark request came in on a wrong path token")
    record = _json(body, "Postmark")
    if not isinstance(record, Mapping):
        raise MalformedPayload("Postmark body is not a JSON object")
    record_type = _str(record, "RecordType", "Postmark")
    event = _postmark_event(record, record_type)
    if event is None:
        return WebhookResult(note=f"Postmark {record_type}")
    # No signature to date the request: the event id alone tells a replay.
    _guard(replay, event.event_id, now, keep, f"Postmark event {event.event_id}")
    return WebhookResult(events=(event,))


def _postmark_event(r: Mapping[str, Any], record_type: str) -> ProviderEvent | None:
    metadata = _mapping(r.get("Metadata"))
    token = _opt_str(metadata.get(DELIVERY_VARIABLE), 100)
    pm_id = _opt_str(r.get("MessageID"), 200)
    if record_type in ("Bounce", "SpamComplaint"):
        email = _opt_str(r.get("Email"), 320)
        if not email:
            raise MalformedPayload(f"Postmark {record_type}: field 'Email' is missing")
        btype = str(r.get("Type", ""))
        if record_type == "SpamComplaint" or btype == "SpamComplaint":
            kind, permanent = BounceKind.COMPLAINT, False
        elif btype in _HARD_POSTMARK:
            kind, permanent = BounceKind.HARD, True
        elif btype in _SOFT_POSTMARK:
            kind, permanent = BounceKind.SOFT, False
        else:
            kind, permanent = BounceKind.OTHER, False
        details = _opt_str(r.get("Details")) or _opt_str(r.get("Description")) or btype
        return ProviderEvent(
            provider=Provider.POSTMARK,
            kind=kind,
            email=email,
            message_id=None,  # Postmark's MessageID is its own id, not the Message-ID header
            diagnostic=f"{btype}: {details}" if details != btype else btype,
            permanent=permanent,
            event_id=f"postmark:{record_type}:{_opt_str(r.get('ID'), 100) or pm_id}",
            occurred_at=_iso(r.get("BouncedAt")),
            status=status_code(details),
            delivery_token=token,
            provider_message_id=pm_id,
        )
    if record_type == "Delivery":
        email = _opt_str(r.get("Recipient"), 320)
        if not email:
            raise MalformedPayload("Postmark Delivery: field 'Recipient' is missing")
        return ProviderEvent(
            provider=Provider.POSTMARK,
            kind=BounceKind.DELIVERY,
            email=email,
            message_id=None,
            diagnostic=_opt_str(r.get("Details")) or "delivered",
            permanent=False,
            event_id=f"postmark:Delivery:{pm_id}:{email.lower()}",
            occurred_at=_iso(r.get("DeliveredAt")),
            delivery_token=token,
            provider_message_id=pm_id,
        )
    return None  # Open, Click, SubscriptionChange...: nothing for the bounce policy


# --- fetching the SNS certificate ----------------------------------------------------------------


def fetch_https(
    url: str,
    *,
    timeout: float = 10,
    limit: int = 64 * 1024,
    context: ssl.SSLContext | None = None,
) -> bytes:
    """GET ``url`` over TLS with certificate verification (the ``SnsVerifier`` fetch in
    production; ``context`` defaults to the system's trust store). Raises ``WebhookError`` on any
    failure."""
    if not url.startswith("https://"):
        raise WebhookError(f"refusing to fetch {url!r}: not https")
    request = urllib.request.Request(url, headers={"User-Agent": "digest-webhooks"})
    try:
        with urllib.request.urlopen(
            request, timeout=timeout, context=context or ssl.create_default_context()
        ) as response:
            data: bytes = response.read(limit + 1)
    except (OSError, ValueError) as e:
        raise WebhookError(f"could not fetch {url}: {e}") from None
    if len(data) > limit:
        raise WebhookError(f"{url} returned more than {limit} bytes")
    return data
