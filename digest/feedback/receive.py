"""Receiving provider webhooks: what ``POST /hooks/<provider>`` on ``digest serve`` does with a
request, as one call (``WebhookReceiver.receive``) that the web layer wraps.

Each provider is on only when its key is set, from the environment (never the config file):
``DIGEST_MAILGUN_SIGNING_KEY``, ``DIGEST_SENDGRID_PUBLIC_KEY``, ``DIGEST_POSTMARK_TOKEN`` (the
secret path ``/hooks/postmark/<token>``) and/or ``DIGEST_POSTMARK_USER`` +
``DIGEST_POSTMARK_PASSWORD`` (basic auth); SES through SNS needs ``[bounces] ses_topic_arns``,
because any AWS account can make SNS sign a message to us: only our topics are accepted.

A request is verified before anything is read from it (``webhooks``); a forged, stale or
malformed one is refused with a 4xx and changes nothing; a replay of one already accepted is
answered 200 (the provider stops retrying) and changes nothing either, as does the same event
delivered twice (``events.record`` is idempotent on the provider's event id).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from sqlite_utils import Database

from ..config import Config
from ..errors import ConfigError
from .process import BouncePolicy, process_provider_events
from .webhooks import (
    ForgedPayload,
    MemoryReplayGuard,
    PostmarkAuth,
    Provider,
    ReplayedPayload,
    ReplayGuard,
    SnsVerifier,
    WebhookError,
    WebhookResult,
    fetch_https,
    parse_mailgun,
    parse_postmark,
    parse_sendgrid,
    parse_ses,
    sendgrid_public_key,
)

# Larger bodies are refused before they are read (SendGrid batches events: a few MB at most).
MAX_BODY = 5 * 1024 * 1024

ENV_KEYS = {
    Provider.MAILGUN: "DIGEST_MAILGUN_SIGNING_KEY",
    Provider.SENDGRID: "DIGEST_SENDGRID_PUBLIC_KEY",
    Provider.POSTMARK: "DIGEST_POSTMARK_TOKEN or DIGEST_POSTMARK_USER + DIGEST_POSTMARK_PASSWORD",
    Provider.SES: "[bounces] ses_topic_arns",
}


@dataclass(frozen=True)
class HookAnswer:
    """The HTTP answer to one webhook request: a status and a small JSON body."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)
    note: str = ""  # for the server's log


class WebhookReceiver:
    """The configured providers and what handling their requests needs. One per web app; safe
    to share between threads (the SNS certificate cache and the replay guard lock)."""

    def __init__(
        self,
        config: Config,
        *,
        secret: bytes,
        fetch: Callable[[str], bytes] = fetch_https,
        replay: ReplayGuard | None = None,
    ):
        env = config.env
        self.policy = BouncePolicy.from_config(config, secret)
        self.fetch = fetch
        self.replay = replay if replay is not None else MemoryReplayGuard()
        self.mailgun_key = env.get("DIGEST_MAILGUN_SIGNING_KEY") or None
        self.sendgrid_key: ec.EllipticCurvePublicKey | None = None
        if env.get("DIGEST_SENDGRID_PUBLIC_KEY"):
            try:
                self.sendgrid_key = sendgrid_public_key(env["DIGEST_SENDGRID_PUBLIC_KEY"])
            except ForgedPayload as e:
                raise ConfigError(f"DIGEST_SENDGRID_PUBLIC_KEY: {e}") from None
        user, password = env.get("DIGEST_POSTMARK_USER"), env.get("DIGEST_POSTMARK_PASSWORD")
        if bool(user) != bool(password):
            raise ConfigError(
                "set both DIGEST_POSTMARK_USER and DIGEST_POSTMARK_PASSWORD, or neither"
            )
        token = env.get("DIGEST_POSTMARK_TOKEN") or None
        self.postmark = (
            PostmarkAuth(user or None, password or None, token) if (password or token) else None
        )
        arns = config.bounces.ses_topic_arns
        self.sns = SnsVerifier(fetch, topic_arns=arns) if arns else None

    def configured(self, provider: Provider) -> bool:
        return {
            Provider.SES: self.sns is not None,
            Provider.MAILGUN: self.mailgun_key is not None,
            Provider.SENDGRID: self.sendgrid_key is not None,
            Provider.POSTMARK: self.postmark is not None,
        }[provider]

    def _verify(
        self,
        provider: Provider,
        headers: Mapping[str, str],
        body: bytes,
        now: datetime,
        path_token: str | None,
    ) -> WebhookResult:
        if provider is Provider.SES:
            assert self.sns is not None
            return parse_ses(headers, body, verifier=self.sns, now=now, replay=self.replay)
        if provider is Provider.MAILGUN:
            assert self.mailgun_key is not None
            return parse_mailgun(
                headers, body, signing_key=self.mailgun_key, now=now, replay=self.replay
            )
        if provider is Provider.SENDGRID:
            assert self.sendgrid_key is not None
            return parse_sendgrid(
                headers, body, public_key=self.sendgrid_key, now=now, replay=self.replay
            )
        assert self.postmark is not None
        return parse_postmark(
            headers, body, auth=self.postmark, path_token=path_token, now=now, replay=self.replay
        )

    def receive(
        self,
        db: Database,
        provider: Provider,
        headers: Mapping[str, str],
        body: bytes,
        *,
        now: datetime,
        path_token: str | None = None,
    ) -> HookAnswer:
        """Verify one request, then record and apply its events. Never raises for what the
        request contains; a database failure does raise (the provider will retry)."""
        if not self.configured(provider):
            return HookAnswer(
                404, {"error": f"the {provider} webhook is not set up (needs {ENV_KEYS[provider]})"}
            )
        if len(body) > MAX_BODY:
            return HookAnswer(413, {"error": f"body larger than {MAX_BODY:,} bytes"})
        try:
            result = self._verify(provider, headers, body, now, path_token)
        except ReplayedPayload as e:
            return HookAnswer(200, {"ok": True, "duplicate": True}, str(e))
        except WebhookError as e:
            return HookAnswer(e.http_status, {"error": str(e)}, f"{provider} refused: {e}")
        if result.subscribe_url is not None:
            # SNS asks to confirm the subscription of one of our topics (checked above):
            # visiting the link, on SNS's own domain, confirms it.
            try:
                self.fetch(result.subscribe_url)
            except WebhookError as e:
                return HookAnswer(502, {"error": str(e)}, f"SNS confirmation failed: {e}")
            return HookAnswer(200, {"ok": True, "confirmed": True}, result.note)
        results = process_provider_events(db, result.events, policy=self.policy, now=now)
        effects = Counter(r.effect.value for r in results)
        lines = "; ".join(r.line for r in results)
        return HookAnswer(
            200,
            {"ok": True, "events": len(results), "effects": dict(effects)},
            f"{provider}: {lines or result.note or 'no events'}",
        )
