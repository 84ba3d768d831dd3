"""Pages for editors (and admins): the landing page (lists and recently built digests) and the
preview (the message that will be sent, from ``preview.preview_digest``, in frames 600, 375
and 320 px wide and in dark mode, with its plain text, headers and size report, and a "[TEST]"
send through ``delivery.send.send_message``). The admin pages are in ``dashboard``, ``lists``,
``feeds``, ``admin``, ``imports`` and ``accounts``.

Previews here are inert (``preview_digest(inert=True)``): even "as subscriber X" they show and
send X's variant with the sample reader's name and address, and unsubscribe and preferences
links that open ``/preview-link/...``. An editor never sees, and a test send never carries, a
subscriber's working token or address (``digest preview --as`` on the server stays exact)."""

from __future__ import annotations

import email
import email.policy
import email.utils
import logging
import secrets
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, g, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from ..addresses import normalise_email
from ..audience.lists import MailingList, all_lists, get_list
from ..audience.records import FREQUENCIES
from ..delivery.personalise import Outgoing
from ..delivery.preview import Preview, preview_digest
from ..delivery.send import send_message
from ..errors import DigestError, InvalidInput, NotFound
from ..headers import fold_header
from ..issues.periods import next_issue
from ..issues.store import recent_digests
from .auth import editor_required
from .context import get_db, now, web
from .security import MESSAGE_CSP

log = logging.getLogger(__name__)

bp = Blueprint("staff", __name__)


@bp.route("/editor/")
@editor_required
def home() -> ResponseReturnValue:
    db = get_db()
    digests = recent_digests(db, 50)
    return render_template("editor/index.html", lists=all_lists(db), digests=digests)


# --- editor preview ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PreviewChoice:
    """What the editor asked to preview, from the query string or the send-test form."""

    mlist: MailingList
    frequency: str
    issue_date: date | None  # None: the latest issue due
    tags: tuple[str, ...]  # tag keys; () with no address: the all-tags variant
    address: str | None

    def params(self) -> list[tuple[str, str]]:
        out = [("list", self.mlist.slug), ("frequency", self.frequency)]
        if self.issue_date:
            out.append(("date", self.issue_date.isoformat()))
        out += [("tag", key) for key in self.tags]
        if self.address:
            out.append(("address", self.address))
        return out

    def query(self) -> str:
        return urlencode(self.params())


def preview_choice(values: MultiDict[str, str]) -> PreviewChoice:
    """Read list, frequency, date, tags and address; ``InvalidInput`` names what is wrong."""
    db = get_db()
    mlist = get_list(db, values.get("list", ""))
    frequency = values.get("frequency") or "daily"
    if frequency not in FREQUENCIES:
        raise InvalidInput(f"frequency {frequency!r}: choose daily or weekly")
    raw_date = (values.get("date") or "").strip()
    try:
        issue_date = date.fromisoformat(raw_date) if raw_date else None
    except ValueError:
        raise InvalidInput(f"date {raw_date!r}: expected a date as YYYY-MM-DD") from None
    tags = tuple(values.getlist("tag"))
    unknown = [t for t in tags if mlist.tags and t not in mlist.tag_keys]
    if unknown:
        raise InvalidInput(f"list {mlist.slug!r} has no topic {unknown[0]!r}")
    address = (values.get("address") or "").strip() or None
    if address and tags:
        raise InvalidInput("preview either a subscriber's address or a set of topics, not both")
    return PreviewChoice(mlist, frequency, issue_date, tags, address)


def run_preview(choice: PreviewChoice) -> Preview:
    return preview_digest(
        get_db(),
        web().config,
        choice.mlist,
        None if choice.address else choice.frequency,
        choice.issue_date,
        now=now(),
        secret=web().secret,
        address=choice.address,
        tags=choice.tags,
        inert=True,
    )


def size_report(preview: Preview, budget: int) -> list[tuple[str, str, bool]]:
    """(label, value, problem) rows: the HTML against the Gmail budget, and the rest."""
    r = preview.report
    rows: list[tuple[str, str, bool]] = []
    if r.render is not None:
        html_size = r.render.html_size
        rows.append(
            (
                "HTML",
                f"{_kb(html_size)} of {_kb(budget)} budget ({100 * html_size // max(budget, 1)}%)"
                " — Gmail clips messages past ~102 KB",
                html_size > budget,
            )
        )
        rows.append(("<style> block", _kb(r.render.style_size), False))
        rows.append(("Links", str(r.render.links), False))
        rows.append(("Articles cut to fit", str(r.render.cut_count), False))
    if preview.message is not None:
        rows.append(("Whole message", _kb(len(preview.message)), False))
    for s in r.sections:
        rows.append(
            (f"Section {s.name}", f"{s.shown} shown" + (f", {s.cut} cut" if s.cut else ""), False)
        )
    rows.append(("Recipients of this variant", str(r.recipients), False))
    return rows


def _kb(n: int) -> str:
    return f"{n / 1000:.1f} KB"


def header_block(message: bytes) -> str:
    """The raw header lines of a message, as sent (folded, RFC 2047-encoded)."""
    return message.partition(b"\r\n\r\n")[0].decode("ascii", "replace").replace("\r\n", "\n")


def as_test_copy(message: bytes, to: str) -> tuple[bytes, str]:
    """``message`` re-addressed to ``to`` with "[TEST] " before its subject and a new
    Message-ID; every other header line and the body stay byte for byte. Returns the bytes and
    the Message-ID. The subject is decoded and folded again (RFC 2047), never spliced into the
    encoded bytes; To goes through the same header cleaning as every header we write."""
    head, _, body = message.partition(b"\r\n\r\n")
    fields: list[list[bytes]] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1].append(line)  # a folded continuation of the field above
        else:
            fields.append([line])
    parsed = email.message_from_bytes(head + b"\r\n\r\n", policy=email.policy.default)
    subject = str(parsed.get("Subject", ""))
    domain = to.rpartition("@")[2] or "localhost"
    sender = email.utils.parseaddr(str(parsed.get("From", "")))[1]
    domain = sender.rpartition("@")[2] or domain
    message_id = f"<test.{secrets.token_hex(12)}@{domain}>"
    replaced = {
        b"subject": fold_header("Subject", "[TEST] " + subject),
        b"to": fold_header("To", to),
        b"message-id": fold_header("Message-ID", message_id),
    }
    out = []
    for field in fields:
        name = field[0].partition(b":")[0].strip().lower()
        out.append(replaced.pop(name) if name in replaced else b"\r\n".join(field) + b"\r\n")
    out.extend(replaced.values())  # a header the message lacked (e.g. no Subject)
    return b"".join(out) + b"\r\n" + body, message_id


def _preview_page(
    choice: PreviewChoice | None,
    error: str | None = None,
    sent: tuple[str, str] | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    db = get_db()
    preview = None
    if choice is not None and error is None:
        try:
            preview = run_preview(choice)
        except InvalidInput as e:
            error = str(e)
        except NotFound as e:
            error = str(e)
    context: dict[str, Any] = {
        "lists": all_lists(db),
        "choice": choice,
        "preview": preview,
        "error": error,
        "sent": sent,
        "frequencies": FREQUENCIES,
        "budget": web().config.digest.html_budget,
    }
    if preview is not None and choice is not None:
        context.update(
            frame_url=url_for("staff.preview_frame") + "?" + choice.query(),
            dark_url=url_for("staff.preview_frame") + "?" + choice.query() + "&scheme=dark",
            size=size_report(preview, context["budget"]),
            headers=header_block(preview.message) if preview.message else None,
        )
        if choice.issue_date is None:
            context["next_issue"] = next_issue(choice.mlist, choice.frequency, now()).label
    return render_template("editor/preview.html", **context), 400 if error else status


@bp.route("/editor/preview")
@editor_required
def preview() -> ResponseReturnValue:
    if not request.args.get("list"):
        return _preview_page(None)
    try:
        choice = preview_choice(request.args)
    except (InvalidInput, NotFound) as e:
        return _preview_page(None, error=str(e))
    return _preview_page(choice)


@bp.route("/editor/preview/frame")
@editor_required
def preview_frame() -> ResponseReturnValue:
    """The message's HTML part alone, for the preview iframes: served with the message policy
    (inline styles allowed, no scripts, sandboxed)."""
    choice = preview_choice(request.args)
    result = run_preview(choice)
    if result.html is None:
        raise NotFound("no articles for this tag set: nothing would be sent")
    html = as_dark_mode(result.html) if request.args.get("scheme") == "dark" else result.html
    headers = {"Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": MESSAGE_CSP}
    return html, 200, headers


# The email's own dark-mode rules (templates/email/base.html), as a mail client in dark mode
# applies them. A frame cannot be told to prefer dark without a script, so the preview applies
# them unconditionally instead: the same rules, the same result.
_DARK_MEDIA = "@media (prefers-color-scheme: dark)"


def as_dark_mode(html: str) -> str:
    """``html`` with its ``prefers-color-scheme: dark`` rules applied whatever the viewer
    prefers (for the dark-mode preview frame)."""
    return html.replace(_DARK_MEDIA, "@media all")


@bp.route("/editor/preview/send", methods=["POST"])
@editor_required
def preview_send() -> ResponseReturnValue:
    """Send the previewed message to one address with "[TEST] " in the subject."""
    try:
        choice = preview_choice(request.form)
    except (InvalidInput, NotFound) as e:
        return _preview_page(None, error=str(e))
    try:
        to = normalise_email(request.form.get("to", ""))
    except InvalidInput as e:
        return _preview_page(choice, error=f"test address: {e}")
    result = run_preview(choice)
    if result.message is None:
        return _preview_page(choice, error="no articles for this tag set: nothing to send")
    data, message_id = as_test_copy(result.message, to)
    outgoing = Outgoing(
        message_id=message_id,
        sender=email.utils.parseaddr(choice.mlist.from_addr)[1],
        recipient=to,
        data=data,
    )
    try:
        reply = send_message(web().config, outgoing)
    except DigestError as e:
        log.error("test send to %s failed: %s", to, e)
        return _preview_page(choice, sent=("error", f"not sent: {e}"), status=502)
    log.info("test copy of %s sent to %s by %s", choice.query(), to, g.user.name)
    return _preview_page(choice, sent=("ok", f"Test sent to {to}: {reply}"))
