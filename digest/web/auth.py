"""Staff login: the login and logout pages, the logged-in user for each request, and the
``editor_required`` / ``admin_required`` decorators. The session cookie holds the user id, a
stamp of the password hash (changing the password ends old sessions) and the login time
(sessions end after ``[web] session_hours``, measured with the app's clock)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Blueprint, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import Forbidden

from .. import users
from ..timeutil import from_iso, to_iso
from .context import enforce_limit, get_db, now, web
from .security import safe_next

bp = Blueprint("auth", __name__)


def load_user() -> None:
    """Set ``g.user`` from the session, or None (and forget a stale session)."""
    g.user = None
    uid = session.get("uid")
    if uid is None or request.endpoint == "static":
        return
    user = users.get_user(get_db(), uid)
    hours = web().config.web.session_hours
    try:
        login_at = from_iso(session.get("login_at", ""))
    except ValueError:
        login_at = None
    if (
        user is None
        or session.get("stamp") != user.auth_stamp
        or login_at is None
        or now() - login_at > timedelta(hours=hours)
    ):
        _end_session()
        return
    g.user = user


def _end_session() -> None:
    for key in ("uid", "stamp", "login_at"):
        session.pop(key, None)


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
            session.update(uid=user.id, stamp=user.auth_stamp, login_at=to_iso(now()))
            return redirect(target)
        error = "Wrong name or password."
    status = 401 if error else 200
    return render_template("login.html", next=target, error=error), status


@bp.route("/logout", methods=["POST"])
def logout() -> ResponseReturnValue:
    session.clear()
    return redirect(url_for("auth.login"))
