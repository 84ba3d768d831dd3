"""The bounce policy: status classification and ``decide``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from digest.feedback.policy import (
    BounceEvent,
    BounceKind,
    Outcome,
    classify_status,
    decide,
    status_code,
)

NOW = datetime(2025, 1, 21, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("smtp; 550 5.1.1 <a@b>: Recipient address rejected", "5.1.1"),
        ("550-5.1.1 The email account that you tried to reach does not exist", "5.1.1"),
        ("smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound", "5.1.10"),
        ("Status: 4.2.2 (mailbox full)", "4.2.2"),
        ("554: delivery error: dd This user doesn't have a yahoo.com account", "5.0.0"),
        ("452 too many recipients", "4.0.0"),
        ("552 Requested mail action aborted: exceeded storage allocation", "5.2.2"),
        ("Connection timed out", None),
        ("version 1.2.3.4 at 12:30:45 on 2025-01-21", None),
        ("", None),
        (None, None),
    ],
)
def test_status_code(text: str | None, code: str | None) -> None:
    assert status_code(text) == code


@pytest.mark.parametrize(
    ("status", "action", "permanent", "kind"),
    [
        ("5.1.1", "failed", None, BounceKind.HARD),
        ("5.2.1", "failed", None, BounceKind.HARD),  # mailbox disabled
        ("5.5.0", "failed", None, BounceKind.HARD),
        ("5.2.2", "failed", None, BounceKind.SOFT),  # RFC 3463: persistent transient
        ("5.3.4", "failed", None, BounceKind.SOFT),  # message too big
        ("5.7.1", "failed", None, BounceKind.SOFT),  # policy block: our server, not the address
        ("5.7.26", "failed", None, BounceKind.SOFT),
        (
            "4.4.1",
            "failed",
            None,
            BounceKind.SOFT,
        ),  # gave up after retries: the cause was transient
        ("4.4.1", "delayed", None, BounceKind.DELAYED),
        ("2.0.0", "delivered", None, BounceKind.DELIVERY),
        (None, "relayed", None, BounceKind.DELIVERY),
        (None, "failed", None, BounceKind.HARD),  # RFC 3464: failed means given up
        (None, "error", None, BounceKind.HARD),  # opensmtpd
        (None, None, True, BounceKind.HARD),
        (None, None, False, BounceKind.SOFT),
        (None, None, None, BounceKind.OTHER),
        ("9.9.9", "failed", None, BounceKind.HARD),  # no valid code: the action decides
    ],
)
def test_classify_status(
    status: str | None, action: str | None, permanent: bool | None, kind: BounceKind
) -> None:
    assert classify_status(status, action=action, permanent=permanent) is kind


def ev(
    kind: BounceKind, days_ago: float, key: str | None = None, source: str = "bounce-mailbox"
) -> BounceEvent:
    return BounceEvent(kind, NOW - timedelta(days=days_ago), source, f"{kind} diag", key)


def test_hard_bounce() -> None:
    d = decide([ev(BounceKind.HARD, 1, "1")], NOW)
    assert (d.outcome, d.suppress, d.every_list) == (Outcome.BOUNCED, True, True)
    assert d.reason == "hard bounce via bounce-mailbox: hard diag"
    assert d.changes_anything


def test_complaint_wins_over_bounce() -> None:
    d = decide([ev(BounceKind.HARD, 2), ev(BounceKind.COMPLAINT, 1, source="webhook:ses")], NOW)
    assert d.outcome is Outcome.COMPLAINED and d.every_list and d.suppress
    assert "webhook:ses" in d.reason


@pytest.mark.parametrize(
    "kind", [BounceKind.AUTO_REPLY, BounceKind.DELAYED, BounceKind.DELIVERY, BounceKind.OTHER]
)
def test_ignored_kinds(kind: BounceKind) -> None:
    d = decide([ev(kind, 0.1, str(i)) for i in range(10)], NOW)
    assert d.outcome is Outcome.NONE and not d.suppress and not d.changes_anything


def test_soft_threshold_within_window() -> None:
    two = [ev(BounceKind.SOFT, 10, "1"), ev(BounceKind.SOFT, 5, "2")]
    d = decide(two, NOW)
    assert d.outcome is Outcome.NONE
    assert d.reason == "2 soft bounce(s) within 15 days; 1 more make it a hard bounce"
    d = decide([*two, ev(BounceKind.SOFT, 1, "3")], NOW)
    assert d.outcome is Outcome.BOUNCED and d.suppress
    assert d.reason.startswith("3 soft bounces within 15 days, the last via bounce-mailbox")
    assert len(d.events) == 3


def test_soft_outside_window_does_not_count() -> None:
    events = [
        ev(BounceKind.SOFT, 16, "1"),
        ev(BounceKind.SOFT, 5, "2"),
        ev(BounceKind.SOFT, 1, "3"),
    ]
    assert decide(events, NOW).outcome is Outcome.NONE
    assert decide(events, NOW, soft_window_days=20).outcome is Outcome.BOUNCED
    assert decide(events, NOW, soft_threshold=2).outcome is Outcome.BOUNCED


def test_same_message_counts_once() -> None:
    # A DSN and a webhook about the same delivery, three times over: one soft bounce.
    events = [ev(BounceKind.SOFT, d, "delivery-7") for d in (3, 2, 1)]
    assert decide(events, NOW).outcome is Outcome.NONE
    # Events without a key each count.
    assert decide([ev(BounceKind.SOFT, d) for d in (3, 2, 1)], NOW).outcome is Outcome.BOUNCED


def test_delivery_after_soft_bounces_resets_the_count() -> None:
    events = [
        ev(BounceKind.SOFT, 6, "1"),
        ev(BounceKind.SOFT, 5, "2"),
        ev(BounceKind.DELIVERY, 4, "3"),
    ]
    assert decide([*events, ev(BounceKind.SOFT, 1, "4")], NOW).outcome is Outcome.NONE


def test_since_forgets_events_before_resubscription() -> None:
    events = [ev(BounceKind.HARD, 30), ev(BounceKind.COMPLAINT, 29)]
    assert decide(events, NOW).outcome is Outcome.COMPLAINED
    assert decide(events, NOW, since=NOW - timedelta(days=10)).outcome is Outcome.NONE


def test_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError):
        decide([], NOW, soft_threshold=0)
