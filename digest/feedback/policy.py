"""What a bounce, a complaint or an auto-reply means for a subscriber: the kinds of report, how
a status code is classified, and the pure decision (``decide``) the database wiring applies.

Everything here is pure: no I/O, no clock (``now`` is a parameter). The bounce-mailbox parser
(``bounce_parse``) and the provider webhooks (``webhooks``) both speak ``BounceKind`` and use
``classify_status`` so that a 5.1.1 means the same thing whichever way it arrived.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class BounceKind(StrEnum):
    """What one report or provider event says about one recipient."""

    HARD = "hard"  # the address does not work: stop mailing it
    SOFT = "soft"  # this message failed for a reason that may pass (mailbox full, policy block)
    DELAYED = "delayed"  # a warning: the MTA is still trying (RFC 3464 Action: delayed)
    COMPLAINT = "complaint"  # the recipient marked a message as spam (ARF report, FBL webhook)
    AUTO_REPLY = "auto-reply"  # out of office, vacation (RFC 3834): never a bounce
    DELIVERY = "delivery"  # a positive notice (delivered, relayed)
    OTHER = "other"  # unrecognised, or an event we do not act on (open, click, deferral)


class Outcome(StrEnum):
    """What ``decide`` asks the database wiring to do."""

    NONE = "none"
    BOUNCED = "bounced"  # subscriptions -> 'bounced', address suppressed
    COMPLAINED = "complained"  # subscriptions on every list -> 'complained', address suppressed


# RFC 3463 enhanced status codes: class.subject.detail, e.g. 5.1.1.
_ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
# RFC 5321 basic reply codes at the start of a reply line ("550 ", "550-", "smtp; 550 ...").
_BASIC = re.compile(r"(?:^|[\s;:(\[])([245])(\d)(\d)(?=[\s\-:]|$)")


def status_code(text: str | None) -> str | None:
    """The RFC 3463 status code in a reply or diagnostic (``"smtp; 550 5.1.1 <a@b>: unknown"``
    gives ``"5.1.1"``). Without an enhanced code, a basic RFC 5321 reply code stands in for its
    class (``"550 no such user"`` gives ``"5.0.0"``; 552, "exceeded storage allocation", gives
    ``"5.2.2"``). None when the text has neither."""
    if not text:
        return None
    text = text[:2000]  # diagnostics are short; a hostile one must not cost a regex over MBs
    m = _ENHANCED.search(text)
    if m:
        return f"{m.group(1)}.{int(m.group(2))}.{int(m.group(3))}"
    m = _BASIC.search(text)
    if m:
        if m.group(1, 2, 3) == ("5", "5", "2"):
            return "5.2.2"  # RFC 5321 4.2.3: 552 exceeded storage allocation
        return f"{m.group(1)}.0.0"
    return None


def classify_status(
    status: str | None, *, action: str | None = None, permanent: bool | None = None
) -> BounceKind:
    """The kind of one recipient's outcome from its RFC 3464 ``Action`` and RFC 3463 ``Status``.

    5.x.x is a hard bounce, except where the code itself says the cause may pass:
    X.2.2 mailbox full (RFC 3463 calls it "a persistent transient failure"), X.2.3 and X.3.4
    message too big, X.4.7 delivery time expired, X.6.x content and X.7.x security or policy
    (a block of our server or of this message, not a dead address; repeated, it still becomes
    hard through the soft-bounce threshold). 4.x.x is soft. ``permanent`` (what a provider says)
    decides when there is no code at all."""
    act = (action or "").strip().lower()
    if act.startswith(("delivered", "relayed", "expanded")):
        return BounceKind.DELIVERY
    if act.startswith("delayed"):
        return BounceKind.DELAYED
    code = status_code(status) if status else None
    if code is None:
        if permanent is not None:
            return BounceKind.HARD if permanent else BounceKind.SOFT
        # RFC 3464: "failed" means the MTA gave up; opensmtpd writes "error".
        return BounceKind.HARD if act.startswith(("failed", "error")) else BounceKind.OTHER
    klass, subject, detail = (int(x) for x in code.split("."))
    if klass == 2:
        return BounceKind.DELIVERY
    if klass == 4:
        return BounceKind.SOFT
    if (subject, detail) in {(2, 2), (2, 3), (3, 4), (4, 7)} or subject in (6, 7):
        return BounceKind.SOFT
    return BounceKind.HARD


@dataclass(frozen=True)
class BounceEvent:
    """One recorded signal about an address, as the database would keep it."""

    kind: BounceKind
    at: datetime
    source: str  # 'bounce-mailbox', 'webhook:ses', 'smtp' ...
    diagnostic: str = ""
    # Which message it was about (a delivery id, or a Message-ID): several reports about the
    # same message (a DSN and a webhook, or two DSNs) count as one soft bounce.
    delivery_key: str | None = None


@dataclass(frozen=True)
class Decision:
    """What to do with an address after its latest event."""

    outcome: Outcome
    suppress: bool
    every_list: bool
    reason: str  # for the subscriber's history and the suppression: names the source
    events: tuple[BounceEvent, ...] = ()  # the events that decided it

    @property
    def changes_anything(self) -> bool:
        return self.outcome is not Outcome.NONE


def _describe(event: BounceEvent) -> str:
    text = f"via {event.source}"
    return f"{text}: {event.diagnostic}" if event.diagnostic else text


def decide(
    events_for_address: Iterable[BounceEvent],
    now: datetime,
    soft_threshold: int = 3,
    soft_window_days: float = 15,
    *,
    since: datetime | None = None,
) -> Decision:
    """The policy of issue 16, over every event recorded for one address.

    - a complaint: complained on every list, suppressed;
    - a hard bounce: bounced, suppressed (on every list, as ``subscribers.mark_bounced`` does: a
      dead mailbox is dead for every list);
    - ``soft_threshold`` soft bounces about distinct messages within ``soft_window_days`` days
      before ``now``, none followed by a successful delivery: counted as a hard bounce;
    - auto-replies, delay warnings, deliveries and the rest: nothing.

    ``since`` drops older events (pass the time the address last became active, so a bounce from
    before a re-subscription is not held against it again)."""
    if soft_threshold < 1:
        raise ValueError("soft_threshold must be at least 1")
    events = sorted(
        (e for e in events_for_address if since is None or e.at >= since), key=lambda e: e.at
    )
    complaints = [e for e in events if e.kind is BounceKind.COMPLAINT]
    if complaints:
        return Decision(
            Outcome.COMPLAINED,
            True,
            True,
            f"complaint {_describe(complaints[-1])}",
            (complaints[-1],),
        )
    hard = [e for e in events if e.kind is BounceKind.HARD]
    if hard:
        return Decision(
            Outcome.BOUNCED, True, True, f"hard bounce {_describe(hard[-1])}", (hard[-1],)
        )
    start = now - timedelta(days=soft_window_days)
    deliveries = [e.at for e in events if e.kind is BounceKind.DELIVERY and e.at <= now]
    if deliveries:
        # A message delivered after the soft bounces shows the mailbox works again.
        start = max(start, max(deliveries))
    counted: dict[str, BounceEvent] = {}
    for i, e in enumerate(events):
        if e.kind is BounceKind.SOFT and start < e.at <= now:
            counted[e.delivery_key or f"\0unkeyed {i}"] = e
    if len(counted) >= soft_threshold:
        last = max(counted.values(), key=lambda e: e.at)
        return Decision(
            Outcome.BOUNCED,
            True,
            True,
            f"{len(counted)} soft bounces within {soft_window_days:g} days, the last {_describe(last)}",
            tuple(sorted(counted.values(), key=lambda e: e.at)),
        )
    if counted:
        more = soft_threshold - len(counted)
        reason = (
            f"{len(counted)} soft bounce(s) within {soft_window_days:g} days; "
            f"{more} more make it a hard bounce"
        )
    else:
        reason = "nothing to act on"
    return Decision(Outcome.NONE, False, False, reason, tuple(counted.values()))
