"""The subscribe form other sites embed (``/embed/<list>``; its HTML is on the list's admin
page). It is posted from another origin, where our session cookie and its CSRF token never are,
so it carries the list's signed form token instead (``tokens.form_token``) and is exempt from
the session CSRF check (``context.SIGNED_FORMS``). Against abuse, in this order:

- the per-client rate limit of the subscribe form (``[web] subscribe_limit``);
- the form token: a form made for another list or site, or edited, gets a 400 page;
- a honeypot field (``website``) that people never see: a bot that fills it gets the usual
  "check your inbox" answer and nothing is recorded or sent;
- double opt-in: the address only gets a confirmation email (``delivery.notices``), like from
  the list's own subscribe page, and is subscribed once the person follows its link.

Invalid input (a bad address) shows the list's own subscribe page with the message, so the
person can try again there.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from ..audience.lists import get_list
from ..delivery.notices import request_subscription
from ..errors import InvalidInput, TokenError
from ..tokens import check_form_token
from .context import enforce_limit, get_db, now, render_error, web
from .public import check_address, frequency_problem

log = logging.getLogger(__name__)

bp = Blueprint("embed", __name__)

HONEYPOT = "website"


@bp.route("/embed/<slug>", methods=["GET", "POST"])
def subscribe(slug: str) -> ResponseReturnValue:
    mlist = get_list(get_db(), slug)
    if request.method == "GET":
        return redirect(url_for("public.subscribe", slug=mlist.slug), code=303)
    enforce_limit("subscribe")
    try:
        check_form_token(web().secret, mlist.id, request.form.get("form_token"))
    except TokenError as e:
        return render_error(400, "This form does not work", str(e))
    sent = redirect(url_for("public.subscribe_sent", slug=mlist.slug), code=303)
    if request.form.get(HONEYPOT):
        log.info("embedded form of %s: honeypot filled, nothing done", mlist.slug)
        return sent
    form: dict[str, Any] = {
        "email": request.form.get("email", "").strip(),
        "name": request.form.get("name", ""),
        "tags": (),
        "frequency": request.form.get("frequency") or mlist.default_frequency,
    }
    try:
        check_address(form["email"])
        if form["frequency"] not in mlist.frequencies:
            raise frequency_problem(mlist)
        result = request_subscription(
            get_db(),
            web().config,
            mlist,
            form["email"],
            name=form["name"] or None,
            frequency=form["frequency"],
            now=now(),
        )
    except InvalidInput as e:
        page = render_template(
            "subscribe.html", mlist=mlist, form=form, error=e, frequencies=mlist.frequencies,
            lang=mlist.language, topics=(),
        )  # fmt: skip
        return page, 400
    log.info("embedded form: %s to %s: %s (%s)", result.email, slug, result.status, result.note)
    web().notices.wake()
    return sent
