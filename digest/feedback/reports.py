"""Classify one message from a bounce mailbox: hard or soft bounce, delay warning, complaint,
auto-reply, or unrecognised; with each recipient's status, the addresses that may carry our VERP
token, and the returned message's Message-ID and List-Unsubscribe link.

The standard formats are read here: delivery status notifications (RFC 3464, and RFC 6533's
global form) and abuse reports (ARF, RFC 5965). The non-standard bounces real MTAs still send
(classic Exim, Yahoo, old Exchange, qmail...) go to flufl.bounce, Mailman's maintained detector
set. Auto-replies (RFC 3834 ``Auto-Submitted``, the common X- headers, out-of-office subjects) are
never bounces.

``parse_report`` never raises: a message that cannot be read at all is a report of kind
``OTHER`` whose summary says why. Failures belong to the one message.
"""

from __future__ import annotations

import email
import email.header
import email.parser
import email.utils
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message

from flufl.bounce import all_failures

from .policy import BounceEvent, BounceKind, classify_status, status_code

# flufl.bounce logs a detector's exception (with its traceback) before re-raising it. With no
# logging configured, Python's last-resort handler would print that traceback for a junk message;
# a library's logger gets a NullHandler (the logging HOWTO's advice) so only an application that
# configures logging sees it. We catch the exception ourselves.
logging.getLogger("flufl.bounce").addHandler(logging.NullHandler())

# Bounces carry a copy of the message, but the report parts come first; past this the bytes are
# neither read nor parsed (a hostile 100 MB "bounce" costs what 1 MB does). A digest is under
# ~100 KB (Gmail clips HTML past ~102 KB), so a real report of one fits with room to spare.
MAX_BYTES = 1024 * 1024
# flufl.bounce's heuristics read every line of every part once per pattern (~40 of them): they
# get only the start of a message, where a bounce's own words are.
_HEURISTIC_BYTES = 64 * 1024
# How much of a notification's text the heuristics read, and how long a diagnostic may be.
_MAX_TEXT = 64 * 1024
_MAX_DIAGNOSTIC = 1000
_MAX_SUMMARY = 300
# Deeper or wider MIME trees than this are not walked (a real bounce has ~4 levels, ~8 parts).
_MAX_DEPTH = 20
_MAX_PARTS = 200
_MAX_RECIPIENTS = 100

_SEVERITY = [
    BounceKind.HARD,
    BounceKind.SOFT,
    BounceKind.DELAYED,
    BounceKind.DELIVERY,
    BounceKind.OTHER,
]

_DAEMONS = {"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon", "mdaemon"}
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered mail|delivery status notification|mail delivery (failed|failure|"
    r"subsystem)|returned mail|failure notice|delivery (has )?failed|could not be delivered|"
    r"non[- ]?delivery|nondeliverable|delivery failure",
    re.IGNORECASE,
)
_AUTO_REPLY_SUBJECT = re.compile(
    r"^\s*(auto(matic|matische)?[ -]?(reply|response|antwort|svar)|auto:|autoreply|"
    r"out of (the )?office|away from (the )?office|on vacation|vacation reply|abwesenheit|"
    r"r[ée]ponse automatique|absence|respuesta autom[aá]tica|risposta automatica|"
    r"fuera de la oficina|automatisch antwoord|afwezig|autosvar)",
    re.IGNORECASE,
)
# Where a non-standard bounce's own words end and its copy of the message begins.
_COPY_MARKERS = re.compile(
    r"^[ \t]*(-+ ?this is a copy of the message|-+ ?below this line is a copy|"
    r"-+ ?original message|original message follows|-+ ?the header of the original message|"
    r"-+ ?forwarded message|-+ ?begin (original|returned) message|"
    r"\*\* original message|-- Returned message|--- Below this line)",
    re.IGNORECASE | re.MULTILINE,
)
_INLINE_HEADER = {
    name: re.compile(rf"^{name}:[ \t]*(.*(?:\r?\n[ \t]+.*)*)", re.IGNORECASE | re.MULTILINE)
    for name in ("Message-ID", "List-Unsubscribe", "Return-Path", "To")
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class RecipientStatus:
    """One recipient's part of a report (RFC 3464 per-recipient fields where there were some)."""

    address: str | None  # Final-Recipient, or the address a detector found
    original_address: str | None  # Original-Recipient (RFC 3461 ORCPT)
    action: str | None  # failed | delayed | delivered | relayed | expanded
    status: str | None  # RFC 3463 code, e.g. "5.1.1"
    diagnostic: str | None  # Diagnostic-Code or the MTA's words, one line
    remote_mta: str | None
    kind: BounceKind


@dataclass(frozen=True)
class Report:
    """What one message from a bounce mailbox says."""

    kind: BounceKind
    recipients: tuple[RecipientStatus, ...]
    # The address this report was delivered to (Delivered-To, X-Original-To, Envelope-To, To):
    # with VERP on, ``bounces+<token>@domain``.
    envelope_to: str | None
    # Every address that may carry our VERP token, best first: the envelope headers above, the
    # ARF Original-Mail-From, the returned message's Return-Path.
    return_paths: tuple[str, ...]
    original_message_id: str | None  # Message-ID of the message that bounced
    list_unsubscribe_url: str | None  # its List-Unsubscribe http(s) link
    original_to: str | None  # its To address (the subscriber, unless a forwarder rewrote it)
    envelope_id: str | None  # RFC 3461 ENVID, returned as Original-Envelope-Id
    feedback_type: str | None  # ARF Feedback-Type (abuse, fraud, auth-failure...)
    evidence: str  # how it was recognised: "dsn", "arf", "flufl:Exim", "auto-submitted", ...
    summary: str  # one line for a person
    message_id: str | None = None  # the report's own Message-ID (to skip a report seen twice)
    date: datetime | None = None  # the report's Date, timezone-aware

    def event(
        self, at: datetime, *, source: str = "bounce-mailbox", delivery_key: str | None = None
    ) -> BounceEvent:
        """This report as the policy's input (``bounce_policy.decide``); ``at`` is when it was
        processed (a report's own Date can be forged or skewed)."""
        main = next((r for r in self.recipients if r.kind is self.kind), None)
        if main is not None and (main.status or main.diagnostic):
            diagnostic = " ".join(x for x in (main.status, main.diagnostic) if x)
        else:
            diagnostic = self.summary
        return BounceEvent(self.kind, at, source, _one_line(diagnostic), delivery_key)

    @property
    def addresses(self) -> tuple[str, ...]:
        """The recipient addresses the report names, lowercased, most specific first (then the
        returned To): to match a subscriber when no signed identity was found."""
        seen: dict[str, None] = {}
        for r in self.recipients:
            for a in (r.address, r.original_address):
                if a and "@" in a:
                    seen.setdefault(a.lower(), None)
        if self.original_to and "@" in self.original_to:
            seen.setdefault(self.original_to.lower(), None)
        return tuple(seen)


def parse_report(raw: bytes) -> Report:
    """Classify one raw message (bytes as stored in the mailbox). Never raises."""
    try:
        return _parse(raw[:MAX_BYTES])
    except Exception as e:  # junk input must never stop a mailbox run
        why = "MIME parts nested too deeply" if isinstance(e, RecursionError) else type(e).__name__
        return _empty(BounceKind.OTHER, "error", f"unreadable message ({why})")


# --- text helpers --------------------------------------------------------------------------------


def _one_line(text: str, limit: int = _MAX_DIAGNOSTIC) -> str:
    text = text[: limit * 4]
    text = _SPACE.sub(" ", _CONTROL.sub(" ", text)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


_REPLY_PREFIX = re.compile(r"\b([245]\d\d)[ -]([245]\.\d{1,3}\.\d{1,3})?\s*")


def _tidy_reply(text: str) -> str:
    """A multi-line SMTP reply on one line: the ``550-5.1.1`` prefix that starts each of its
    lines (RFC 5321 4.2.1) is kept once."""
    text = _one_line(text)
    m = _REPLY_PREFIX.search(text)
    if m is None:
        return text
    again = re.compile(
        r"\s" + re.escape(m.group(1)) + r"[ -]" + re.escape(m.group(2) or "") + r"\s*"
    )
    return text[: m.end()] + again.sub(" ", text[m.end() :]).strip()


def _decode_words(value: str) -> str:
    """RFC 2047 encoded words decoded; undecodable bytes replaced, never an exception."""
    if "=?" not in value:
        return value
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except Exception:  # a bad charset name, broken base64: keep the raw text
        return value


def _header(msg: Message, name: str) -> str | None:
    values = _headers(msg, name, first=True)
    return values[0] if values else None


def _headers(msg: Message, name: str, *, first: bool = False) -> list[str]:
    raw = _header_index(msg).get(name.lower())
    if not raw:
        return []
    return [_plain(raw[0])] if first else [_plain(v) for v in raw]


def _header_index(msg: Message) -> dict[str, list[object]]:
    """The raw values of ``msg``'s headers by lowercased name, made once per message (a report
    is asked for a dozen headers; each lookup would otherwise scan them all)."""
    index: dict[str, list[object]] | None = msg.__dict__.get("_digest_header_index")
    if index is None:
        index = {}
        # raw_items(): the values as parsed, before compat32 wraps 8-bit ones in Header objects
        # (whose str() garbles UTF-8 and can fail on an unknown charset).
        for key, value in msg.raw_items():
            index.setdefault(key.lower(), []).append(value)
        msg.__dict__["_digest_header_index"] = index
    return index


def _plain(value: object) -> str:
    """A header value as text: 8-bit bytes read as UTF-8 (RFC 6532), encoded words decoded,
    anything undecodable replaced."""
    text = value if isinstance(value, str) else str(value)
    # The parser kept undecodable bytes as surrogate escapes: give them back as UTF-8.
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return _decode_words(text)


def _address(value: str | None) -> str | None:
    """The addr-spec in a header value or DSN address field (``rfc822; <a@b>`` gives ``a@b``)."""
    if not value:
        return None
    value = value.strip()
    kind, sep, rest = value.partition(";")
    if sep and re.fullmatch(r"[A-Za-z0-9-]+", kind.strip()):
        value = rest.strip()
    value = value.strip().strip("<>").strip()
    if "<" in value:
        value = email.utils.parseaddr(value)[1]
    value = _one_line(value, 320)
    return value or None


_PLAIN_ADDRESS = re.compile(r"[ \t]*<?([^\s<>@,;:\"()\[\]]+@[^\s<>@,;:\"()\[\]]+)>?[ \t]*")


def _addresses(values: list[str]) -> list[str]:
    out = []
    rest = []
    for v in values:
        # Most header values are one bare address: email.utils' full RFC 5322 parser is
        # several times slower and only needed for display names, groups and comments.
        m = _PLAIN_ADDRESS.fullmatch(v)
        if m:
            out.append(m.group(1))
        else:
            rest.append(v[:4000])
    for _, addr in email.utils.getaddresses(rest) if rest else ():
        addr = addr.strip()
        if addr and "@" in addr:
            out.append(addr)
    return out


def _walk(msg: Message) -> Iterator[Message]:
    """The parts, depth-first, at most ``_MAX_PARTS`` of them and ``_MAX_DEPTH`` deep (email's
    own walk() recurses without a limit)."""
    stack: list[tuple[Message, int]] = [(msg, 0)]
    count = 0
    while stack and count < _MAX_PARTS:
        part, depth = stack.pop()
        count += 1
        yield part
        if depth >= _MAX_DEPTH or not part.is_multipart():
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            stack.extend((sub, depth + 1) for sub in reversed(payload) if isinstance(sub, Message))


def _text_of(part: Message) -> str:
    """A leaf part's text, decoded by its charset as far as possible."""
    try:
        data = part.get_payload(decode=True)
    except Exception:
        return ""
    if not isinstance(data, bytes):
        return ""
    data = data[:_MAX_TEXT]
    charset = part.get_content_charset() or "utf-8"
    try:
        return data.decode(charset, "replace")
    except (LookupError, ValueError):  # a charset name Python does not know
        return data.decode("utf-8", "replace")


def _notification_text(msg: Message) -> str:
    """The bounce's own words: its first text/plain part, or the whole body of a one-part
    message, cut where the copy of the original message begins."""
    for part in _walk(msg):
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if ctype == "text/plain" and part.get_content_disposition() != "attachment":
            text = _text_of(part)
            break
        if ctype == "text/html" and not msg.is_multipart():
            text = re.sub(r"<[^>]{0,2000}>", " ", _text_of(part))
            break
    else:
        return ""
    m = _COPY_MARKERS.search(text)
    return text[: m.start()] if m else text


def _date(msg: Message) -> datetime | None:
    value = _header(msg, "Date")
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


# --- the returned message ------------------------------------------------------------------------


@dataclass
class _Returned:
    message_id: str | None = None
    list_unsubscribe_url: str | None = None
    to: str | None = None
    return_path: str | None = None


def _returned_headers(msg: Message) -> Message | None:
    """The headers of the message that bounced: a message/rfc822 part (RFC 3464 3.) or a
    text/rfc822-headers part (RFC 6522), or their RFC 6532 global forms."""
    for part in _walk(msg):
        ctype = part.get_content_type()
        if part is msg:
            continue
        if ctype in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
            if isinstance(payload, str):
                return email.parser.HeaderParser().parsestr(payload[:_MAX_TEXT])
        elif ctype in ("text/rfc822-headers", "message/global-headers"):
            if part.is_multipart():
                sub = part.get_payload(0)
                return sub if isinstance(sub, Message) else None
            return email.parser.HeaderParser().parsestr(_text_of(part))
    return None


def _first_url(value: str | None) -> str | None:
    if not value:
        return None
    for url in re.findall(r"<([^<>]*)>", value[:4000]) or [value]:
        url = url.strip()
        if url.lower().startswith(("https://", "http://")):
            return _one_line(url, 2000)
    return None


def _returned(msg: Message) -> _Returned:
    headers = _returned_headers(msg)
    found = _Returned()
    if headers is not None:
        mid = _header(headers, "Message-ID")
        found.message_id = _one_line(mid, 998) if mid else None
        found.list_unsubscribe_url = _first_url(_header(headers, "List-Unsubscribe"))
        to = _addresses(_headers(headers, "To"))
        found.to = to[0] if to else None
        found.return_path = _address(_header(headers, "Return-Path"))
        if found.message_id or found.list_unsubscribe_url:
            return found
    # A non-standard bounce quotes the message inline, after its own words: look for header
    # lines in the text parts (never in the bounce's own header block).
    for part in _walk(msg):
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        text = _text_of(part)
        if found.message_id is None and (m := _INLINE_HEADER["Message-ID"].search(text)):
            found.message_id = _one_line(m.group(1), 998)
        if found.list_unsubscribe_url is None and (
            m := _INLINE_HEADER["List-Unsubscribe"].search(text)
        ):
            found.list_unsubscribe_url = _first_url(m.group(1))
        if found.return_path is None and (m := _INLINE_HEADER["Return-Path"].search(text)):
            found.return_path = _address(m.group(1))
        if found.to is None and (m := _INLINE_HEADER["To"].search(text)):
            to = _addresses([m.group(1)])
            found.to = to[0] if to else None
    return found


# --- the parts of the report ---------------------------------------------------------------------


def _blocks_from_text(text: str) -> list[Message]:
    parser = email.parser.HeaderParser()
    return [
        parser.parsestr(b.strip() + "\n") for b in re.split(r"\r?\n[ \t]*\r?\n", text) if b.strip()
    ]


def _field_blocks(part: Message) -> list[Message]:
    """The header-like blocks of a message/delivery-status (or feedback-report) part, however
    the email package stored them."""
    payload = part.get_payload()
    if isinstance(payload, list):
        blocks: list[Message] = []
        for sub in payload:
            if not isinstance(sub, Message):
                continue
            blocks.append(sub)
            # message/global-delivery-status is parsed as one message: the first block is its
            # header, the others its body (UTF-8, RFC 6533).
            rest = None if sub.is_multipart() else sub.get_payload(decode=True)
            if isinstance(rest, bytes) and rest.strip():
                blocks.extend(_blocks_from_text(rest[:_MAX_TEXT].decode("utf-8", "replace")))
        return blocks
    return _blocks_from_text(_text_of(part))


def _report_part(msg: Message, types: tuple[str, ...]) -> Message | None:
    for part in _walk(msg):
        if part.get_content_type() in types:
            return part
    return None


def _dsn_recipients(part: Message) -> tuple[list[RecipientStatus], str | None, str | None]:
    """The per-recipient blocks, the returned ENVID, and the envelope sender where the MTA
    names it (Postfix's X-Postfix-Sender: our VERP address)."""
    blocks = _field_blocks(part)
    envelope_id = None
    sender = None
    recipients: list[RecipientStatus] = []
    for block in blocks:
        if len(recipients) >= _MAX_RECIPIENTS:
            break
        if envelope_id is None and (envid := _header(block, "Original-Envelope-Id")):
            envelope_id = _one_line(envid, 200)
        if sender is None and (x_sender := _header(block, "X-Postfix-Sender")):
            sender = _address(x_sender)
        final = _header(block, "Final-Recipient")
        action = _header(block, "Action")
        if final is None and action is None:
            continue  # the per-message block (Reporting-MTA, Arrival-Date...)
        status_field = _header(block, "Status")
        diagnostic = _header(block, "Diagnostic-Code")
        diagnostic = _tidy_reply(diagnostic) if diagnostic else None
        status = status_code(status_field) or status_code(diagnostic)
        action = _one_line(action, 40).lower() if action else None
        remote = _header(block, "Remote-MTA")
        recipients.append(
            RecipientStatus(
                address=_address(final) or _address(_header(block, "X-Actual-Recipient")),
                original_address=_address(_header(block, "Original-Recipient")),
                action=action,
                status=status,
                diagnostic=diagnostic,
                remote_mta=_address(remote) if remote else None,
                kind=classify_status(status, action=action or "failed"),
            )
        )
    return recipients, envelope_id, sender


def _worst(kinds: list[BounceKind]) -> BounceKind:
    return min(kinds, key=_SEVERITY.index) if kinds else BounceKind.OTHER


def _is_daemon(msg: Message) -> bool:
    sender = email.utils.parseaddr(_header(msg, "From") or "")[1].lower()
    return sender.partition("@")[0] in _DAEMONS


def _bounce_signal(msg: Message, subject: str) -> bool:
    return (
        _is_daemon(msg)
        or msg.get("X-Failed-Recipients") is not None
        or bool(_BOUNCE_SUBJECT.search(subject))
    )


def _auto_reply_signal(msg: Message, subject: str) -> str | None:
    """Why this looks like an auto-reply (RFC 3834 and the headers autoresponders write)."""
    auto = (_header(msg, "Auto-Submitted") or "").strip().lower()
    if auto and not auto.startswith("no"):
        return "auto-submitted"
    # Written by autoresponders that predate RFC 3834 (and still by some webmail vacations).
    for name in ("X-Autoreply", "X-Autorespond"):
        if msg.get(name) is not None:
            return name.lower()
    for name in ("Precedence", "X-Precedence"):
        if (_header(msg, name) or "").strip().lower() == "auto_reply":
            return "precedence"
    if _AUTO_REPLY_SUBJECT.search(subject):
        return "subject"
    return None


def _flufl_failures(msg: Message, raw: bytes) -> tuple[set[str], set[str]] | None:
    try:
        if len(raw) > _HEURISTIC_BYTES:
            msg = email.message_from_bytes(raw[:_HEURISTIC_BYTES])
        temporary, permanent = all_failures(msg)
    except Exception:  # a detector choking on a malformed message: no verdict from flufl
        return None

    def text(addrs: frozenset[bytes]) -> set[str]:
        return {a.decode("ascii", "replace").strip().strip("<>") for a in addrs if a.strip()}

    return text(temporary), text(permanent)


def _diagnostic_near(text: str, address: str | None) -> tuple[str | None, str | None]:
    """The status code and reply line a non-standard bounce gives for ``address`` (the first
    line with a code in the few lines from where the address is named), else anywhere."""
    lines = text.splitlines()
    start = 0
    if address:
        low = address.lower()
        for i, line in enumerate(lines):
            if low in line.lower():
                start = i
                break
    order = lines[start : start + 8] + lines[:start] + lines[start + 8 :]
    for line in order:
        code = status_code(line)
        if code and not line.strip().lower().startswith(("date:", "received:", "arrival-date")):
            return code, _one_line(line, _MAX_DIAGNOSTIC)
    return None, None


def _empty(kind: BounceKind, evidence: str, summary: str) -> Report:
    return Report(
        kind=kind,
        recipients=(),
        envelope_to=None,
        return_paths=(),
        original_message_id=None,
        list_unsubscribe_url=None,
        original_to=None,
        envelope_id=None,
        feedback_type=None,
        evidence=evidence,
        summary=_one_line(summary, _MAX_SUMMARY),
    )


def _envelope_candidates(msg: Message) -> list[str]:
    found: list[str] = []
    # Postfix writes X-Original-To (the address as received) and Delivered-To; Exim writes
    # Envelope-To; others X-Envelope-To. To is the bounce's header To, which is the envelope
    # sender it was returned to. Return-Path comes last (a bounce's is normally <>).
    for name in (
        "X-Original-To",
        "Delivered-To",
        "Envelope-To",
        "X-Envelope-To",
        "To",
        "Return-Path",
    ):
        for addr in _addresses(_headers(msg, name)):
            if addr not in found:
                found.append(addr)
    return found


def _describe(kind: BounceKind, recipients: list[RecipientStatus]) -> str:
    label = {
        BounceKind.HARD: "hard bounce",
        BounceKind.SOFT: "soft bounce",
        BounceKind.DELAYED: "delivery delayed",
        BounceKind.DELIVERY: "delivered",
        BounceKind.OTHER: "report",
    }.get(kind, str(kind))
    main = next((r for r in recipients if r.kind is kind), recipients[0] if recipients else None)
    if main is None:
        return f"{label} (recipient not named)"
    who = main.address or main.original_address or "recipient not named"
    detail = " ".join(
        x for x in (main.status, f"({main.diagnostic})" if main.diagnostic else "") if x
    )
    more = f" and {len(recipients) - 1} more" if len(recipients) > 1 else ""
    return f"{label} for {who}{more}" + (f": {detail}" if detail else "")


# --- classification ------------------------------------------------------------------------------


def _parse(raw: bytes) -> Report:
    msg = email.message_from_bytes(raw)
    subject = _one_line(_header(msg, "Subject") or "", 200)
    envelope = _envelope_candidates(msg)
    returned = _returned(msg)

    def report(
        kind: BounceKind,
        recipients: list[RecipientStatus],
        evidence: str,
        summary: str,
        *,
        envelope_id: str | None = None,
        feedback_type: str | None = None,
        extra_paths: tuple[str | None, ...] = (),
    ) -> Report:
        paths = list(envelope)
        for p in (*extra_paths, returned.return_path):
            if p and p not in paths:
                paths.append(p)
        return Report(
            kind=kind,
            recipients=tuple(recipients),
            envelope_to=next((a for a in envelope if a), None),
            return_paths=tuple(paths),
            original_message_id=returned.message_id,
            list_unsubscribe_url=returned.list_unsubscribe_url,
            original_to=returned.to,
            envelope_id=envelope_id,
            feedback_type=feedback_type,
            evidence=evidence,
            summary=_one_line(summary, _MAX_SUMMARY),
            message_id=_one_line(mid, 998) if (mid := _header(msg, "Message-ID")) else None,
            date=_date(msg),
        )

    # 1. ARF (RFC 5965): multipart/report; report-type=feedback-report.
    arf = _report_part(msg, ("message/feedback-report",))
    if arf is not None:
        fields: dict[str, list[str]] = {}
        for block in _field_blocks(arf):
            for key, value in block.raw_items():
                fields.setdefault(key.lower(), []).append(_plain(value))
        feedback = _one_line((fields.get("feedback-type") or ["abuse"])[0], 40).lower()
        rcpts = _addresses(fields.get("original-rcpt-to", []))
        mail_from = _address((fields.get("original-mail-from") or [""])[0])
        agent = _one_line((fields.get("user-agent") or [""])[0], 80)
        # abuse and fraud are a person's complaint. not-spam (RFC 6430), auth-failure (RFC 6591
        # DMARC/DKIM failure reports), virus and other say nothing against the subscription.
        kind = BounceKind.COMPLAINT if feedback in ("abuse", "fraud") else BounceKind.OTHER
        who = rcpts[0] if rcpts else (returned.to or "recipient not named")
        recipients = [RecipientStatus(a, None, None, None, None, None, kind) for a in rcpts]
        label = "complaint" if kind is BounceKind.COMPLAINT else "feedback report"
        summary = f"{label} ({feedback}) about {who}" + (f" from {agent}" if agent else "")
        return report(
            kind, recipients, "arf", summary, feedback_type=feedback, extra_paths=(mail_from,)
        )

    # 2. DSN (RFC 3464, RFC 6533).
    dsn = _report_part(msg, ("message/delivery-status", "message/global-delivery-status"))
    if dsn is not None:
        recipients, envelope_id, sender = _dsn_recipients(dsn)
        if recipients:
            kind = _worst([r.kind for r in recipients])
            return report(
                kind,
                recipients,
                "dsn",
                _describe(kind, recipients),
                envelope_id=envelope_id,
                extra_paths=(sender,),
            )

    bounce_signal = dsn is not None or _bounce_signal(msg, subject)
    auto = _auto_reply_signal(msg, subject)
    # 3. An auto-reply that does not look like a bounce at all is never fed to the heuristics.
    if auto and not bounce_signal:
        return report(BounceKind.AUTO_REPLY, [], auto, f"auto-reply: {subject or '(no subject)'}")

    # 4. Non-standard bounces: flufl.bounce's detectors.
    failures = _flufl_failures(msg, raw)
    text = _notification_text(msg)
    if failures is not None and (failures[0] or failures[1]):
        temporary, permanent = failures
        recipients = []
        for addr in sorted(permanent):
            code, line = _diagnostic_near(text, addr)
            recipients.append(
                RecipientStatus(
                    addr,
                    None,
                    "failed",
                    code,
                    line,
                    None,
                    classify_status(code, action="failed", permanent=True),
                )
            )
        for addr in sorted(temporary - permanent):
            code, line = _diagnostic_near(text, addr)
            recipients.append(
                RecipientStatus(addr, None, "delayed", code, line, None, BounceKind.DELAYED)
            )
        kind = _worst([r.kind for r in recipients])
        return report(kind, recipients, "flufl", _describe(kind, recipients))

    # 5. It says it is a bounce but names nobody (a VERP return path still says who): the
    # status code in its words decides.
    if bounce_signal:
        code, line = _diagnostic_near(text, None)
        if code is not None:
            kind = classify_status(code, action="failed")
            rcpt = RecipientStatus(None, None, "failed", code, line, None, kind)
            if kind in (BounceKind.HARD, BounceKind.SOFT):
                return report(kind, [rcpt], "bounce-text", _describe(kind, [rcpt]))

    # 6. Auto-replies that also look like bounces (a daemon's From, say) but are not.
    if auto:
        return report(BounceKind.AUTO_REPLY, [], auto, f"auto-reply: {subject or '(no subject)'}")
    what = "bounce-like message, nothing to classify" if bounce_signal else "unrecognised message"
    return report(BounceKind.OTHER, [], "none", f"{what}: {subject or '(no subject)'}")
