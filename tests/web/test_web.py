"""The web app (digest serve), phase 1: accounts, login, sessions, CSRF, security headers, rate
limits, error pages and the token links' validation paths. Flask's test client on a real
SQLite file; the `serve` command and waitress against real sockets."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import WEB_SECRET, Newsroom

from digest import users
from digest.config import load_config
from digest.errors import InvalidInput
from digest.store import open_db
from digest.timeutil import to_iso
from digest.tokens import make_token
from digest.web import builtin_templates_dir, create_app
from digest.web.security import RateLimiter, safe_next

PASSWORD = "correct horse battery"


# --- helpers ------------------------------------------------------------------------------------


def add_list(db, slug="world", tags=("Kenya", "East Africa"), now=None) -> int:
    at = to_iso(now) if now else "2025-01-01T00:00:00.000000+00:00"
    # One article per tag: the subscribe and preferences pages offer only tags in use.
    Newsroom(db).add_article(f"{slug} story", datetime(2025, 1, 1, tzinfo=UTC), tags=tags)
    return (
        db["lists"]
        .insert(
            {
                "slug": slug,
                "title": f"{slug.title()} News",
                "from_addr": "Desk <desk@news.example.com>",
                "tags": json.dumps(list(tags)),
                "created_at": at,
                "updated_at": at,
            }
        )
        .last_pk
    )


def add_subscriber(db, list_id, email="ann@example.com", status="active", tags=(), freq="daily"):
    at = "2025-01-01T00:00:00.000000+00:00"
    sid = db["subscribers"].insert({"email": email, "name": "Ann", "created_at": at}).last_pk
    db["subscriptions"].insert(
        {
            "subscriber_id": sid,
            "list_id": list_id,
            "frequency": freq,
            "tags": json.dumps(list(tags)),
            "status": status,
            "created_at": at,
            "updated_at": at,
        }
    )
    return sid


def subscription_status(db, sid, list_id):
    return db.execute(
        "SELECT status FROM subscriptions WHERE subscriber_id = ? AND list_id = ?", [sid, list_id]
    ).fetchone()[0]


def csrf_from(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF field in the page"
    return m.group(1)


def login(client, name="ed", password=PASSWORD, next_=None):
    page = client.get("/login").get_data(as_text=True)
    data = {"csrf_token": csrf_from(page), "name": name, "password": password}
    if next_ is not None:
        data["next"] = next_
    return client.post("/login", data=data)


@pytest.fixture
def staff(db, web_clock):
    users.add_user(db, "ed", PASSWORD, "editor", now=web_clock.now)
    users.add_user(db, "ada", PASSWORD, "admin", now=web_clock.now)


def token(purpose, sid, list_id, now, secret=WEB_SECRET):
    return make_token(secret, purpose, sid, list_id, now=now)


# --- accounts (library and CLI) -----------------------------------------------------------------


def test_users_add_prompts_twice_and_stores_only_a_hash(run, db_path):
    result = run("users", "add", "alice", "--role", "editor", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert "added editor alice" in result.output
    assert PASSWORD not in result.output  # hidden input is not echoed
    db = open_db(db_path, create=True)
    row = db.execute("SELECT role, password_hash FROM users WHERE name = 'alice'").fetchone()
    assert row[0] == "editor"
    assert row[1].startswith("scrypt:") and PASSWORD not in row[1]
    assert users.authenticate(db, "alice", PASSWORD, now=users_now()) is not None
    assert users.authenticate(db, "alice", "wrong password!", now=users_now()) is None
    assert users.authenticate(db, "nobody", PASSWORD, now=users_now()) is None


def users_now():
    from datetime import UTC, datetime

    return datetime(2025, 1, 21, tzinfo=UTC)


def test_users_add_rejects_mismatch_short_password_duplicates_and_bad_names(run, db_path):
    # A mismatched confirmation asks again; then a too-short password is refused cleanly.
    result = run(
        "users", "add", "bob", "--role", "admin", input="aaaaaaaaaaaa\nbbbbbbbbbbbb\nshort\nshort\n"
    )
    assert result.exit_code == 1
    assert "do not match" in result.output
    assert "Error: password too short: use at least 10 characters" in result.output
    assert "Traceback" not in result.output
    assert run("users", "list").output.startswith("no users yet")

    assert (
        run("users", "add", "bob", "--role", "admin", input=f"{PASSWORD}\n{PASSWORD}\n").exit_code
        == 0
    )
    again = run("users", "add", "bob", "--role", "editor", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert again.exit_code == 1 and "user 'bob' already exists" in again.output
    bad = run("users", "add", "../x", "--role", "editor", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert bad.exit_code == 1 and "user name '../x'" in bad.output
    role = run("users", "add", "carol", "--role", "owner")
    assert role.exit_code == 2 and "'owner' is not one of 'editor', 'admin'" in role.output
    listed = run("users", "list").output.splitlines()
    assert len(listed) == 1 and listed[0].startswith("bob") and "admin" in listed[0]


def test_users_add_password_stdin_and_remove(run):
    assert (
        run(
            "users", "add", "dan", "--role", "editor", "--password-stdin", input=f"{PASSWORD}\n"
        ).exit_code
        == 0
    )
    result = run("users", "remove", "dan")
    assert result.exit_code == 0 and "removed dan" in result.output
    missing = run("users", "remove", "dan")
    assert missing.exit_code == 1 and "Error: no user 'dan'" in missing.output


def test_add_user_library_errors(db, web_clock):
    with pytest.raises(InvalidInput, match="role 'owner'"):
        users.add_user(db, "x", PASSWORD, "owner", now=web_clock.now)
    with pytest.raises(InvalidInput, match="only spaces"):
        users.add_user(db, "x", " " * 12, "editor", now=web_clock.now)
    assert users.list_users(db) == []


def test_every_web_command_has_help_with_example(run):
    for args in (["serve"], ["users"], ["users", "add"], ["users", "list"], ["users", "remove"]):
        result = run(*args, "--help")
        assert result.exit_code == 0
        assert "Example:" in result.output, args


# --- login, roles, sessions ---------------------------------------------------------------------


def test_login_page_and_editor_landing(web_app, staff):
    client = web_app.test_client()
    response = login(client)
    assert response.status_code == 302 and response.location == "/editor/"
    page = client.get("/editor/")
    assert page.status_code == 200
    assert "Logged in as ed (editor)" in page.get_data(as_text=True)


def test_wrong_password_and_unknown_user_look_the_same(web_app, staff):
    client = web_app.test_client()
    wrong = login(client, password="not the password")
    unknown = login(client, name="mallory")
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert "Wrong name or password." in response.get_data(as_text=True)
    assert client.get("/editor/").status_code == 302


@pytest.mark.parametrize("path", ["/editor/", "/admin/", "/admin/users"])
def test_logged_out_staff_pages_redirect_to_login_with_next(web_app, path):
    response = web_app.test_client().get(path)
    assert response.status_code == 302
    assert response.location == "/login?next=" + path


def test_editor_cannot_open_admin_pages_admin_can(web_app, staff, db):
    add_list(db)
    client = web_app.test_client()
    login(client)
    forbidden = client.get("/admin/")
    assert forbidden.status_code == 403
    assert "This page is for admins; you are logged in as editor." in forbidden.get_data(
        as_text=True
    )
    admin = web_app.test_client()
    login(admin, name="ada")
    page = admin.get("/admin/").get_data(as_text=True)
    assert "World News" in page and "unsubscribed" in page
    assert admin.get("/editor/").status_code == 200  # admins can do what editors do
    assert "ada" in admin.get("/admin/users").get_data(as_text=True)


def test_admin_overview_counts_subscriptions_by_status(web_app, staff, db):
    list_id = add_list(db)
    add_subscriber(db, list_id, "a@example.com", "active")
    add_subscriber(db, list_id, "b@example.com", "active")
    add_subscriber(db, list_id, "c@example.com", "pending")
    client = web_app.test_client()
    login(client, name="ada")
    html = client.get("/admin/").get_data(as_text=True)
    cells = re.findall(r'<td class="num" data-label="(\w+)"><a href="[^"]+">(\d+)</a></td>', html)
    assert cells == [
        ("Pending", "1"), ("Active", "2"), ("Unsubscribed", "0"), ("Bounced", "0"),
        ("Complained", "0"), ("Expired", "0"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    "bad_next",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "javascript:alert(1)",
        "/\r\nSet-Cookie: x=1",
        "/\t/evil.example",
        "",
    ],
)
def test_login_never_redirects_off_site(web_app, staff, bad_next):
    response = login(web_app.test_client(), next_=bad_next)
    assert response.status_code == 302
    assert response.location == "/editor/"


def test_login_follows_a_safe_next(web_app, staff):
    client = web_app.test_client()
    first = client.get("/admin/users")
    next_ = first.location.split("next=")[1]
    response = login(client, name="ada", next_=next_)
    assert response.location == "/admin/users"


def test_safe_next_unit():
    assert safe_next("/admin/?q=a%20b") == "/admin/?q=a%20b"
    for bad in (None, "http://x", "//x", "/\\x", "/a b", "x/y", "/a\x7f", "\\\\x"):
        assert safe_next(bad) == "/", bad


def test_session_cookie_flags_local_development(web_app, staff):
    client = web_app.test_client()
    cookie = login(client).headers["Set-Cookie"]
    assert cookie.startswith("digest_session=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain http on 127.0.0.1 is development


@pytest.mark.parametrize(
    ("toml", "secure"),
    [
        ('[site]\nbase_url = "https://news.example.com"\n', True),
        ('[site]\nbase_url = "http://news.example.com"\n', True),
        ('[site]\nbase_url = "http://localhost:5000"\n', False),
        ('[site]\nbase_url = "https://news.example.com"\n[web]\nsecure_cookies = false\n', False),
    ],
)
def test_session_cookie_secure_unless_local_or_turned_off(make_web_app, staff, toml, secure):
    client = make_web_app(toml).test_client()
    cookie = login(client).headers["Set-Cookie"]
    assert ("; Secure" in cookie) is secure
    assert cookie.startswith("__Host-digest=" if secure else "digest_session=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_session_ends_after_session_hours_by_the_injected_clock(web_app, staff, web_clock):
    client = web_app.test_client()
    login(client)
    web_clock.advance(hours=11, minutes=59)
    assert client.get("/editor/").status_code == 200
    web_clock.advance(minutes=2)
    assert client.get("/editor/").status_code == 302


def test_removed_user_or_changed_password_ends_sessions(web_app, staff, db):
    client = web_app.test_client()
    login(client)
    db.execute("UPDATE users SET password_hash = 'scrypt:changed' WHERE name = 'ed'")
    assert client.get("/editor/").status_code == 302
    admin = web_app.test_client()
    login(admin, name="ada")
    users.remove_user(db, "ada")
    assert admin.get("/admin/").status_code == 302


def test_logout_needs_post_with_csrf(web_app, staff):
    client = web_app.test_client()
    login(client)
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400  # no CSRF token
    page = client.get("/editor/").get_data(as_text=True)
    response = client.post("/logout", data={"csrf_token": csrf_from(page)})
    assert response.status_code == 302 and response.location == "/login"
    assert client.get("/editor/").status_code == 302


def test_login_post_without_csrf_is_a_400_page(web_app, staff):
    client = web_app.test_client()
    response = client.post("/login", data={"name": "ed", "password": PASSWORD})
    assert response.status_code == 400
    assert "This form has expired or was not sent from this site" in response.get_data(as_text=True)
    client.get("/login")
    forged = client.post(
        "/login", data={"name": "ed", "password": PASSWORD, "csrf_token": "x" * 43}
    )
    assert forged.status_code == 400
    assert client.get("/editor/").status_code == 302


def test_csrf_token_does_not_survive_login(web_app, staff):
    """Session fixation: the session (and its CSRF token) is replaced on login."""
    client = web_app.test_client()
    before = csrf_from(client.get("/login").get_data(as_text=True))
    login(client)
    after = csrf_from(client.get("/editor/").get_data(as_text=True))
    assert before != after


# --- headers, error pages, static, templates -----------------------------------------------------


def test_security_headers_on_pages_errors_and_static(web_app):
    client = web_app.test_client()
    for path, status in (("/", 200), ("/login", 200), ("/nope", 404), ("/static/style.css", 200)):
        response = client.get(path)
        assert response.status_code == status, path
        csp = response.headers["Content-Security-Policy"]
        assert "script-src" not in csp and "default-src 'none'" in csp
        assert "frame-src 'self'" in csp and "frame-ancestors 'self'" in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert client.get("/login").headers["Cache-Control"] == "no-store"
    assert client.get("/static/style.css").headers.get("Cache-Control") != "no-store"


def test_error_pages_are_rendered_without_tracebacks(web_app):
    def explode():
        raise RuntimeError("secret internal detail")

    web_app.add_url_rule("/explode", "explode", explode)
    client = web_app.test_client()
    not_found = client.get("/no/such/page")
    assert not_found.status_code == 404
    assert "There is no page at this address." in not_found.get_data(as_text=True)
    method = client.delete("/login")
    assert method.status_code == 405 and "GET" in method.headers["Allow"]
    broken = client.get("/explode")
    body = broken.get_data(as_text=True)
    assert broken.status_code == 500
    assert "error on our side" in body
    assert "secret internal detail" not in body and "Traceback" not in body
    assert broken.headers["Content-Security-Policy"]


def test_templates_have_no_inline_script_or_style():
    root = builtin_templates_dir() / "web"
    files = list(root.rglob("*.html"))
    assert len(files) >= 8
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert "<script" not in text.lower(), path
        assert not re.search(r"\son[a-z]+\s*=", text), path  # onclick= etc.
        if path.name == "issue_banner.html":
            # Goes into an issue's web version, which keeps the email's inline CSS and is served
            # with the message policy (inline styles, never scripts; tests/web/test_archive.py).
            continue
        assert "style=" not in text and "<style" not in text, path


def test_templates_dir_in_config_overrides_web_templates(make_web_app, tmp_path):
    own = tmp_path / "mytemplates" / "web"
    own.mkdir(parents=True)
    (own / "home.html").write_text("our own home for {{ site_name }}", encoding="utf-8")
    app = make_web_app('templates_dir = "mytemplates"\n[site]\nname = "Desk"\n')
    client = app.test_client()
    assert client.get("/").get_data(as_text=True) == "our own home for Desk"
    assert "Page not found" in client.get("/nope").get_data(as_text=True)  # falls back


def test_create_app_fails_cleanly_for_a_bad_database_path(tmp_path):
    from digest.errors import DigestError

    with pytest.raises(DigestError, match="no database at .*x.db: run 'digest init'"):
        create_app(tmp_path / "missing" / "x.db", load_config(None, env={}), secret=b"s")


def test_home_lists_the_lists(web_app, db):
    add_list(db, "world", tags=("Kenya",))
    html = web_app.test_client().get("/").get_data(as_text=True)
    assert "World News" in html and "Topics: Kenya" in html


# --- token links: validation paths and GET pages ------------------------------------------------


@pytest.fixture
def subscription(db):
    list_id = add_list(db)
    sid = add_subscriber(db, list_id, tags=["kenya"])
    return sid, list_id


@pytest.mark.parametrize(
    ("prefix", "purpose"), [("c", "confirm"), ("u", "unsubscribe"), ("p", "preferences")]
)
def test_bad_tokens_give_a_clear_400_never_a_500(web_app, web_clock, subscription, prefix, purpose):
    sid, list_id = subscription
    client = web_app.test_client()
    good = token(purpose, sid, list_id, web_clock.now)
    other = "preferences" if purpose != "preferences" else "confirm"
    cases = [
        (token(purpose, sid, list_id, web_clock.now, secret=b"forger"), "signature does not match"),
        (good[:-1], "this link is damaged"),
        ("%00%ff" + good, "this link is damaged"),
        ("x" * 500, "this link is damaged"),
        (token(other, sid, list_id, web_clock.now), f"this link is not a {purpose} link"),
    ]
    for bad, expected in cases:
        response = client.get(f"/{prefix}/{bad}")
        body = response.get_data(as_text=True)
        assert response.status_code == 400, (expected, bad)
        assert "This link does not work" in body and expected in body
        assert response.headers["Cache-Control"] == "no-store"
    assert (
        subscription_status(
            open_db(web_app.extensions["digest"].db_path, create=True), sid, list_id
        )
        == "active"
    )


def test_expired_confirmation_link(web_app, web_clock, db):
    list_id = add_list(db)
    sid = add_subscriber(db, list_id, status="pending")
    old = token("confirm", sid, list_id, web_clock.now - timedelta(days=8))
    response = web_app.test_client().get(f"/c/{old}")
    assert response.status_code == 400
    assert (
        "this confirm link has expired (issued 2025-01-13); ask for a new one"
        in response.get_data(as_text=True)
    )
    assert subscription_status(db, sid, list_id) == "pending"


def test_confirm_get_shows_a_button_and_changes_nothing(web_app, web_clock, db):
    list_id = add_list(db)
    sid = add_subscriber(db, list_id, status="pending")
    response = web_app.test_client().get(f"/c/{token('confirm', sid, list_id, web_clock.now)}")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Subscribe <strong>ann@example.com</strong> to <strong>World News</strong>?" in html
    assert 'method="post"' in html and csrf_from(html)
    assert subscription_status(db, sid, list_id) == "pending"


def test_unsubscribe_get_shows_a_button_and_changes_nothing(web_app, web_clock, db, subscription):
    sid, list_id = subscription
    url = f"/u/{token('unsubscribe', sid, list_id, web_clock.now)}"
    client = web_app.test_client()
    for _ in range(3):  # link scanners fetch URLs, maybe more than once
        html = client.get(url).get_data(as_text=True)
    assert "Stop sending <strong>World News</strong> to <strong>ann@example.com</strong>?" in html
    assert csrf_from(html)
    assert subscription_status(db, sid, list_id) == "active"


def test_unsubscribe_button_post_without_csrf_is_refused(web_app, web_clock, db, subscription):
    sid, list_id = subscription
    url = f"/u/{token('unsubscribe', sid, list_id, web_clock.now)}"
    client = web_app.test_client()
    client.get(url)
    response = client.post(url, data={"scope": "list"})
    assert response.status_code == 400
    assert "not sent from this site" in response.get_data(as_text=True)
    assert subscription_status(db, sid, list_id) == "active"


def test_one_click_with_a_bad_token_is_400_without_cookies(web_app, web_clock, subscription):
    sid, list_id = subscription
    forged = token("unsubscribe", sid, list_id, web_clock.now, secret=b"forger")
    response = web_app.test_client().post(f"/u/{forged}", data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 400
    assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize("state", ["no subscriber", "no subscription", "already unsubscribed"])
def test_one_click_when_nothing_to_do_answers_200_no_redirect_no_cookie(
    web_app, web_clock, db, state
):
    list_id = add_list(db)
    if state == "no subscriber":
        sid = 999
    elif state == "no subscription":
        sid = db["subscribers"].insert({"email": "x@example.com", "created_at": "2025"}).last_pk
    else:
        sid = add_subscriber(db, list_id, status="unsubscribed")
    url = f"/u/{token('unsubscribe', sid, list_id, web_clock.now)}"
    # RFC 8058 clients send form-encoded or multipart bodies.
    for kwargs in (
        {"data": {"List-Unsubscribe": "One-Click"}},
        {"data": {"List-Unsubscribe": "One-Click"}, "content_type": "multipart/form-data"},
    ):
        response = web_app.test_client().post(url, **kwargs)
        assert response.status_code == 200
        assert "Location" not in response.headers and "Set-Cookie" not in response.headers
    html = web_app.test_client().get(url).get_data(as_text=True)
    assert "You&#39;re not subscribed" in html or "You're not subscribed" in html


def test_preferences_get_shows_current_choices(web_app, web_clock, subscription):
    sid, list_id = subscription
    html = (
        web_app.test_client()
        .get(f"/p/{token('preferences', sid, list_id, web_clock.now)}")
        .get_data(as_text=True)
    )
    assert 'value="kenya" checked' in html
    assert 'value="east africa">' in html  # not chosen
    assert 'value="daily" checked' in html and 'value="weekly">' in html
    assert "Unsubscribe from World News" in html and "Unsubscribe from everything" in html


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"frequency": "hourly", "tag": ["kenya"]}, "choose how often: daily or weekly"),
        ({"frequency": "daily", "tag": ["mars"]}, "unknown topic 'mars'"),
        ({"frequency": "daily"}, "choose at least one topic"),
    ],
)
def test_preferences_bad_form_is_shown_again_and_nothing_changes(
    web_app, web_clock, db, subscription, form, message
):
    sid, list_id = subscription
    url = f"/p/{token('preferences', sid, list_id, web_clock.now)}"
    client = web_app.test_client()
    csrf = csrf_from(client.get(url).get_data(as_text=True))
    response = client.post(url, data={"csrf_token": csrf, "action": "save", **form})
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    row = db.execute(
        "SELECT frequency, tags, status FROM subscriptions WHERE subscriber_id = ?", [sid]
    ).fetchone()
    assert row == ("daily", '["kenya"]', "active")


def test_preferences_post_without_csrf_is_refused(web_app, web_clock, db, subscription):
    sid, list_id = subscription
    url = f"/p/{token('preferences', sid, list_id, web_clock.now)}"
    response = web_app.test_client().post(url, data={"action": "unsubscribe_all"})
    assert response.status_code == 400
    assert subscription_status(db, sid, list_id) == "active"


def test_token_link_for_a_deleted_list_is_404(web_app, web_clock, db):
    response = web_app.test_client().get(f"/p/{token('preferences', 1, 42, web_clock.now)}")
    assert response.status_code == 404
    assert "the list this link belongs to no longer exists" in response.get_data(as_text=True)


# --- rate limits --------------------------------------------------------------------------------


def test_token_endpoints_are_rate_limited_per_address(make_web_app, web_clock, db, subscription):
    sid, list_id = subscription
    app = make_web_app("[web]\ntoken_limit = 3\nlimit_window_seconds = 60\n")
    url = f"/u/{token('unsubscribe', sid, list_id, web_clock.now)}"
    client = app.test_client()
    assert [client.get(url).status_code for _ in range(3)] == [200, 200, 200]
    limited = client.get(f"/p/{token('preferences', sid, list_id, web_clock.now)}")
    assert limited.status_code == 429
    assert "Too many requests" in limited.get_data(as_text=True)
    assert limited.headers["Retry-After"] == "60"
    other = app.test_client().get(url, environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other.status_code == 200  # another address has its own window
    assert client.get("/login").status_code == 200  # other endpoints are not limited
    web_clock.advance(seconds=61)
    assert client.get(url).status_code == 200


def test_bad_one_click_posts_are_rate_limited_valid_ones_never(make_web_app, web_clock, db):
    list_id = add_list(db)
    sid = add_subscriber(db, list_id, status="unsubscribed")
    app = make_web_app("[web]\ntoken_limit = 2\n")
    client = app.test_client()
    forged = token("unsubscribe", sid, list_id, web_clock.now, secret=b"forger")
    codes = [
        client.post(f"/u/{forged}", data={"List-Unsubscribe": "One-Click"}).status_code
        for _ in range(3)
    ]
    assert codes == [400, 400, 429]
    good = f"/u/{token('unsubscribe', sid, list_id, web_clock.now)}"
    assert client.post(good, data={"List-Unsubscribe": "One-Click"}).status_code == 200


def test_login_attempts_are_rate_limited(make_web_app, staff):
    app = make_web_app("[web]\nlogin_limit = 2\n")
    client = app.test_client()
    assert [login(client, password="wrong password").status_code for _ in range(3)] == [
        401,
        401,
        429,
    ]
    assert login(client).status_code == 429  # even the right password waits


def test_rate_limiter_sliding_window_and_bounded_memory():
    limiter = RateLimiter(2, 10, max_keys=3)
    assert limiter.hit("a", 0) and limiter.hit("a", 5)
    assert not limiter.hit("a", 9)
    assert limiter.retry_after("a", 9) == 1
    assert limiter.hit("a", 10.5)  # the hit at 0 left the window
    assert not limiter.hit("a", 14)
    for key in "bcd":
        limiter.hit(key, 20)
    assert "a" not in limiter._hits and len(limiter._hits) == 3
    assert RateLimiter(0, 10).hit("x", 0)  # 0 = no limit


# --- the serve command and a production WSGI server ----------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, proc: subprocess.Popen, timeout: float = 60) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.read()
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(f"server exited: {proc.communicate()[1]}") from None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)  # polling for readiness, bounded by the deadline


@pytest.mark.parametrize("server", ["digest serve", "waitress"])
def test_the_app_runs_under_serve_and_waitress(tmp_path, server):
    port = _free_port()
    env = {**os.environ, "DIGEST_DB": str(tmp_path / "d.db"), "DIGEST_SECRET": "s"}
    env.pop("DIGEST_CONFIG", None)
    (tmp_path / "digest.toml").write_text('[site]\nname = "Served Desk"\n', encoding="utf-8")
    open_db(tmp_path / "d.db", create=True).close()
    bindir = Path(sys.executable).parent
    if server == "digest serve":
        cmd = [str(bindir / "digest"), "serve", "--port", str(port)]
    else:
        cmd = [
            str(bindir / "waitress-serve"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--call",
            "digest.web:app_from_env",
        ]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        body = _wait_for(f"http://127.0.0.1:{port}/", proc)
        assert b"Served Desk" in body
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_every_web_template_compiles(web_app):
    root = builtin_templates_dir() / "web"
    names = [p.relative_to(root).as_posix() for p in root.rglob("*.html")]
    for name in names:
        web_app.jinja_env.get_template(name)  # raises TemplateSyntaxError if broken
    assert {"base.html", "error.html", "login.html", "editor/preview.html"} <= set(names)
