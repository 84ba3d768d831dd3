"""Staff login: the login and logout pages, the logged-in user for each request, and the
``editor_required`` / ``admin_required`` decorators. Sessions are kept on the server
(``users.start_session``): the signed session cookie holds only a random session token, so
logging out, removing the account or changing its password ends the session for every copy of
the cookie, and a session ends ``[web] session_hours`` after login (by the app's clock)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Blueprint, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import Forbidden

from .. import users
from .context import enforce_limit, get_db, now, web
from .security import safe_next

bp = Blueprint("auth", __name__)


def load_user() -> None:
    """Set ``g.user`` from the session's token, or None (and forget a dead session)."""
    g.user = None
    token = session.get("sid")
    if token is None or request.endpoint == "static":
        return
    user = users.session_user(get_db(), token, now=now()) if isinstance(token, str) else None
    if user is None:
        session.pop("sid", None)
        return
    g.user = user


def role_required(
    role: str,
) -> Callable[[Callable[..., ResponseReturnValue]], Callable[..., ResponseReturnValue]]:
    def decorator(view: Callable[..., ResponseReturnValue]) -> Callable[..., ResponseReturnValue]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> ResponseReturnValue:
            if g.user is None:
                target = request.full_path if request.query_string else request.path
                return redirect(url_for("auth.login", next=target))
            if not g.user.has_role(role):
                raise Forbidden(f"This page is for {role}s; you are logged in as {g.user.role}.")
            return view(*args, **kwargs)

        return wrapper

    return decorator


editor_required = role_required("editor")
admin_required = role_required("admin")


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    target = safe_next(request.values.get("next"), default=url_for("staff.home"))
    error = None
    if request.method == "POST":
        enforce_limit("login")
        name = request.form.get("name", "").strip()
        password = request.form.get("password", "")
        user = users.authenticate(get_db(), name, password, now=now())
        if user is not None:
            # A fresh session on login: nothing from before (including the CSRF token)
            # carries over, which rules out session fixation.
            session.clear()
            session.permanent = True
            lifetime = timedelta(hours=web().config.web.session_hours)
            session["sid"] = users.start_session(get_db(), user, now=now(), lifetime=lifetime)
            return redirect(target)
        error = "Wrong name or password."
    status = 401 if error else 200
    return render_template("login.html", next=target, error=error), status


@bp.route("/logout", methods=["POST"])
def logout() -> ResponseReturnValue:
    token = session.get("sid")
    if isinstance(token, str):
        users.end_session(get_db(), token)  # every copy of this cookie is logged out
    session.clear()
    return redirect(url_for("auth.login"))
