"""Provider webhooks for bounces and complaints: ``POST /hooks/ses``, ``/hooks/postmark`` (and
``/hooks/postmark/<token>``), ``/hooks/mailgun`` and ``/hooks/sendgrid``. Each request is one
call to ``feedback.receive.WebhookReceiver.receive``, which verifies the provider's signature
before anything else; the answer is a small JSON object, given at once (no work is queued).

These endpoints take no session cookie and no CSRF token (``context.check_csrf`` skips this
blueprint): the provider's signature, credentials or secret path is what authenticates them.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, jsonify, request
from flask.blueprints import BlueprintSetupState

from ..feedback.receive import MAX_BODY, HookAnswer, WebhookReceiver
from ..feedback.webhooks import Provider
from .context import WebContext, get_db, now

bp = Blueprint("hooks", __name__, url_prefix="/hooks")
log = logging.getLogger("digest.web.hooks")


@bp.record_once
def _set_up(state: BlueprintSetupState) -> None:
    """Make the app's receiver when the app is created, so that a bad key in the environment
    stops ``digest serve`` at startup; it keeps the SNS certificate cache and the replay guard
    for the life of the process."""
    context: WebContext = state.app.extensions["digest"]
    state.app.extensions["digest.hooks"] = WebhookReceiver(context.config, secret=context.secret)


def _receiver() -> WebhookReceiver:
    receiver: WebhookReceiver = current_app.extensions["digest.hooks"]
    return receiver


def _answer(provider: Provider, token: str | None = None) -> Response:
    length = request.content_length
    if length is not None and length > MAX_BODY:
        answer = HookAnswer(413, {"error": f"body larger than {MAX_BODY:,} bytes"})
    else:
        # Read at most one byte more than allowed: a body without Content-Length (chunked)
        # is cut off there, not read whole.
        body = request.stream.read(MAX_BODY + 1)
        answer = _receiver().receive(
            get_db(), provider, dict(request.headers), body, now=now(), path_token=token
        )
    if answer.note:
        level = logging.INFO if answer.status < 400 else logging.WARNING
        log.log(level, "webhook %s: %s", provider, answer.note)
    response = jsonify(answer.body)
    response.status_code = answer.status
    return response


@bp.post("/ses")
def ses() -> Response:
    return _answer(Provider.SES)


@bp.post("/mailgun")
def mailgun() -> Response:
    return _answer(Provider.MAILGUN)


@bp.post("/sendgrid")
def sendgrid() -> Response:
    return _answer(Provider.SENDGRID)


@bp.post("/postmark")
def postmark() -> Response:
    return _answer(Provider.POSTMARK)


@bp.post("/postmark/<token>")
def postmark_token(token: str) -> Response:
    return _answer(Provider.POSTMARK, token)
