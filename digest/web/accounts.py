"""Staff accounts on the web: admins add and remove accounts and change roles (``/admin/users``,
the same library calls as ``digest users add|remove|role``); every logged-in user changes their
own password (``/account``), which needs the current one. An admin cannot remove or demote
their own account here (the site would be left without an admin).

A new password or a new role ends the account's sessions everywhere (``users``); after changing
their own password the user gets a fresh session in this browser only.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import Blueprint, flash, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue

from .. import users
from ..errors import InvalidInput, NotFound
from .auth import admin_required, editor_required
from .context import get_db, now, web

log = logging.getLogger(__name__)

bp = Blueprint("accounts", __name__)


@bp.route("/admin/users")
@admin_required
def users_page() -> ResponseReturnValue:
    return render_template(
        "admin/users.html", users=users.list_users(get_db()), roles=users.ROLES, error=None
    )


@bp.route("/admin/users/add", methods=["POST"])
@admin_required
def add() -> ResponseReturnValue:
    name = request.form.get("name", "").strip()
    password = request.form.get("password", "")
    if password != request.form.get("password2", ""):
        flash("Not added: the two passwords differ.", "error")
        return redirect(url_for("accounts.users_page"), code=303)
    try:
        user = users.add_user(get_db(), name, password, request.form.get("role", ""), now=now())
    except InvalidInput as e:
        flash(f"Not added: {e}", "error")
        return redirect(url_for("accounts.users_page"), code=303)
    log.info("%s added %s %s", g.user.name, user.role, user.name)
    flash(f"added {user.role} {user.name}", "notice")
    return redirect(url_for("accounts.users_page"), code=303)


@bp.route("/admin/users/role", methods=["POST"])
@admin_required
def role() -> ResponseReturnValue:
    name = request.form.get("name", "")
    try:
        user = users.set_role(get_db(), name, request.form.get("role", ""), acting=g.user.name)
    except (InvalidInput, NotFound) as e:
        flash(f"Not changed: {e}", "error")
        return redirect(url_for("accounts.users_page"), code=303)
    log.info("%s made %s %s", g.user.name, user.name, user.role)
    flash(f"{user.name} is now {user.role}; their sessions have ended.", "notice")
    return redirect(url_for("accounts.users_page"), code=303)


@bp.route("/admin/users/remove", methods=["GET", "POST"])
@admin_required
def remove() -> ResponseReturnValue:
    """A confirmation page, then the removal (the account's sessions end at once)."""
    name = request.values.get("name", "")
    if request.method == "GET" or request.form.get("confirm") != "yes":
        return render_template("admin/user_remove.html", name=name)
    try:
        users.remove_user(get_db(), name, acting=g.user.name)
    except (InvalidInput, NotFound) as e:
        flash(f"Not removed: {e}", "error")
        return redirect(url_for("accounts.users_page"), code=303)
    log.info("%s removed %s", g.user.name, name)
    flash(f"removed {name}", "notice")
    return redirect(url_for("accounts.users_page"), code=303)


@bp.route("/account", methods=["GET", "POST"])
@editor_required
def account() -> ResponseReturnValue:
    error = None
    if request.method == "POST":
        new = request.form.get("new_password", "")
        try:
            if new != request.form.get("new_password2", ""):
                raise InvalidInput("the two new passwords differ; nothing was changed")
            user = users.change_own_password(
                get_db(), g.user, request.form.get("current_password", ""), new
            )
        except InvalidInput as e:
            error = str(e)
        else:
            # Every session of the account has ended (other browsers, stolen cookies); this
            # browser gets a fresh one, and a fresh CSRF token with it.
            session.clear()
            session.permanent = True
            lifetime = timedelta(hours=web().config.web.session_hours)
            session["sid"] = users.start_session(get_db(), user, now=now(), lifetime=lifetime)
            log.info("%s changed their password", user.name)
            flash("Password changed; every other session of your account has ended.", "notice")
            return redirect(url_for("accounts.account"), code=303)
    return render_template("account.html", error=error), 400 if error else 200
