"""Time limits, redirects and the address policy of ``http_get``, against real servers on
127.0.0.1 that misbehave on purpose: a server that trickles one header line or one body byte at
a time, SIGTERM to a real ``digest run --once`` stuck on such a server, redirect chains and
redirects to other schemes, and (inside a private network namespace) a public address that
redirects to loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from digest.config import load_config
from digest.errors import SourceError
from digest.ingest.feeds import add_feed, list_feeds
from digest.ingest.http import MAX_REDIRECTS, address_policy_reason, http_get
from digest.ingest.pipeline import FeedStatus, fetch_feeds
from digest.store import open_db

NOW = datetime(2025, 1, 24, 12, 0, tzinfo=UTC)
FEED = (
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
    b"<item><title>Kept</title><link>https://news.example.org/kept</link>"
    b"<description>Text.</description></item></channel></rss>"
)


class RawServer:
    """A TCP server on 127.0.0.1 that hands each connection to ``behave(conn, request)``. Every
    behaviour is bounded in time; ``closing`` ends them early when the test is over.
    ``requests`` holds the request heads received; ``got_request`` is set at the first."""

    def __init__(self, behave: Callable[[socket.socket, bytes, RawServer], None]):
        self.behave = behave
        self.requests: list[bytes] = []
        self.got_request = threading.Event()
        self.closing = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path: str = "/feed.xml") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _accept(self) -> None:
        while not self.closing.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            head = b""
            try:
                while b"\r\n\r\n" not in head and len(head) < 65536:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    head += chunk
                self.requests.append(head)
                self.got_request.set()
                self.behave(conn, head, self)
            except OSError:
                pass  # the client hung up: what the tests want

    def trickle(self, conn: socket.socket, pieces: Iterator[bytes], every: float) -> None:
        for piece in pieces:
            if self.closing.wait(every):
                return
            conn.sendall(piece)

    def close(self) -> None:
        self.closing.set()
        self.sock.close()


@pytest.fixture
def raw_server() -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def start(behave: Callable[[socket.socket, bytes, RawServer], None]) -> RawServer:
        servers.append(RawServer(behave))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def header_trickler(conn: socket.socket, head: bytes, server: RawServer) -> None:
    """A status line, then one header line every 0.2 s (for at most 60 s)."""
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    server.trickle(conn, (f"X-Slow-{n}: 1\r\n".encode() for n in range(300)), 0.2)


def body_trickler(conn: socket.socket, head: bytes, server: RawServer) -> None:
    """Headers at once, then the body one byte every 0.2 s (for at most 60 s)."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n")
    conn.sendall(b"Content-Length: 100000\r\n\r\n")
    server.trickle(conn, (b"x" for _ in range(300)), 0.2)


def timed(call: Callable[[], object]) -> tuple[BaseException | None, float]:
    started = time.monotonic()
    try:
        call()
    except Exception as e:  # noqa: BLE001 - returned for the assertions
        return e, time.monotonic() - started
    return None, time.monotonic() - started


# ------------------------------------------------------------------ one deadline for everything


@pytest.mark.parametrize("behave", [header_trickler, body_trickler])
def test_a_trickling_server_cannot_outlast_the_deadline(raw_server, behave):
    server = raw_server(behave)
    error, took = timed(lambda: http_get(server.url(), timeout=1, allow_private=True))
    assert isinstance(error, SourceError)
    assert str(error) == f"{server.url()}: timed out after 1 s ([ingest] fetch_timeout)"
    # Each read gets a byte well within any per-read timeout; only the whole-response
    # deadline stops it.
    assert 0.9 < took < 2.5


@pytest.mark.parametrize("behave", [header_trickler, body_trickler])
def test_the_stop_event_interrupts_a_fetch_in_progress(raw_server, behave):
    server = raw_server(behave)
    stop = threading.Event()

    def stop_once_requested() -> None:
        server.got_request.wait(10)
        time.sleep(0.3)
        stop.set()

    threading.Thread(target=stop_once_requested, daemon=True).start()
    error, took = timed(lambda: http_get(server.url(), timeout=60, allow_private=True, stop=stop))
    assert isinstance(error, SourceError)
    assert "stopped before the download finished" in str(error)
    assert took < 2.5  # against a 60 s deadline


def test_fetch_feeds_stops_at_once_and_leaves_the_other_feeds_alone(tmp_path, db, raw_server):
    def behave(conn: socket.socket, head: bytes, server: RawServer) -> None:
        if head.startswith(b"GET /a-slow.xml "):
            body_trickler(conn, head, server)
        else:
            conn.sendall(_ok(FEED))

    server = raw_server(behave)
    config_path = tmp_path / "digest.toml"
    config_path.write_text("[ingest]\nallow_private_addresses = true\nfetch_timeout = 60\n")
    config = load_config(config_path, env={})
    slow, fine = server.url("/a-slow.xml"), server.url("/b-fine.xml")
    add_feed(db, fine, now=NOW)
    add_feed(db, slow, now=NOW)  # polled first: feeds go in the order of their URLs
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    reports = fetch_feeds(db, config, now=NOW, stop=stop)
    assert time.monotonic() - started < 2.5
    assert [(r.url, r.status) for r in reports] == [(slow, FeedStatus.STOPPED)]
    assert len(server.requests) == 1  # the other feed was not polled after the stop
    feeds = {f.url: f for f in list_feeds(db)}
    # A stop is not the feed's fault: nothing is recorded, the next poll tries again.
    assert feeds[slow].last_fetched_at is None and feeds[slow].last_error is None
    # Without a stop, the next poll asks both: the slow one fails alone, on its deadline.
    config_path.write_text("[ingest]\nallow_private_addresses = true\nfetch_timeout = 1\n")
    reports = fetch_feeds(db, load_config(config_path, env={}), now=NOW)
    assert [r.status for r in reports] == [FeedStatus.FAILED, FeedStatus.FETCHED]


def _ok(body: bytes, extra: str = "") -> bytes:
    return (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n{extra}"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


def test_sigterm_stops_a_digest_run_stuck_on_a_trickling_feed(tmp_path, raw_server):
    """The whole chain: SIGTERM → the CLI's stop event → the tick → poll_feeds → fetch_feeds →
    the fetch's watchdog, in a real ``digest run --once`` process."""
    server = raw_server(body_trickler)
    db_path = tmp_path / "digest.db"
    config = tmp_path / "digest.toml"
    config.write_text("[ingest]\nallow_private_addresses = true\nfetch_timeout = 120\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env.update(DIGEST_SECRET="test-secret", DIGEST_CONFIG=str(config))

    def digest(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "digest", "--db", str(db_path), *args],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip

    digest("init")
    digest("lists", "create", "world", "--title", "World", "--from", "news@example.com",
           "--send-time", "06:30")  # fmt: skip
    digest("subscribers", "add", "ann@example.com", "--list", "world", "--confirmed")
    digest("feeds", "add", server.url())
    # The list's first issue is due at tomorrow's send time; the tick fetches feeds first.
    due = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT06:31:00Z")
    proc = subprocess.Popen(
        [sys.executable, "-m", "digest", "--db", str(db_path), "run", "--once",
         "--now", due],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.got_request.wait(60), "digest run never fetched the feed"
        time.sleep(0.5)  # well inside the download, which would take 20,000 s
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert took < 4, err
    assert "stopped before the download finished" in err
    assert "received SIGTERM: stopped after the work in hand" in err
    assert "Traceback" not in err


# ------------------------------------------------------------------ redirects


def redirector(hops: dict[str, str], final: bytes = FEED):
    """Answers ``path`` with a 302 to ``hops[path]``, and any other path with ``final``."""

    def behave(conn: socket.socket, head: bytes, server: RawServer) -> None:
        path = head.split(b" ")[1].decode()
        if path in hops:
            location = hops[path].replace("PORT", str(server.port))
            conn.sendall(
                f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n".encode()
            )
        else:
            conn.sendall(_ok(final))

    return behave


def test_redirects_are_followed_up_to_five(raw_server):
    hops = {f"/{n}": f"/{n + 1}" for n in range(MAX_REDIRECTS)}  # /0 → /1 → ... → /5
    hops["/5"] = "http://127.0.0.1:PORT/feed.xml"  # absolute, same server
    server = raw_server(redirector(hops))
    response = http_get(server.url("/1"), allow_private=True)  # five redirects
    assert response.status == 200 and response.body == FEED
    assert response.url == server.url("/feed.xml")
    with pytest.raises(SourceError, match=rf"^{server.url('/0')}: more than 5 redirects$"):
        http_get(server.url("/0"), allow_private=True)  # six


@pytest.mark.parametrize(
    ("location", "shown"),
    [
        ("ftp://127.0.0.1/feed.xml", "ftp://127.0.0.1/feed.xml"),
        ("file:///etc/passwd", "file:///etc/passwd"),
        ("javascript:alert(1)", "javascript:alert(1)"),
        ("gopher://127.0.0.1:PORT/_GET", "gopher://127.0.0.1:PORT/_GET"),
    ],
)
def test_a_redirect_to_another_scheme_is_refused(raw_server, location, shown):
    server = raw_server(redirector({"/feed.xml": location}))
    shown = shown.replace("PORT", str(server.port))
    with pytest.raises(SourceError) as caught:
        http_get(server.url(), allow_private=True)
    assert str(caught.value) == (
        f"{server.url()}: redirect to {shown} refused: only http and https URLs are followed"
    )
    assert len(server.requests) == 1


def test_a_private_url_is_refused_before_any_connection(raw_server):
    server = raw_server(lambda conn, head, s: conn.sendall(_ok(FEED)))
    policy = "feeds may only point to public addresses ([ingest] allow_private_addresses)"
    port = server.port
    for url, why in [
        (server.url(), "127.0.0.1 is a loopback address"),
        (f"http://localhost:{port}/", "localhost resolves to 127.0.0.1, a loopback address"),
        (f"http://[::ffff:127.0.0.1]:{port}/", "::ffff:127.0.0.1 is a loopback address"),
        (f"http://0.0.0.0:{port}/", "0.0.0.0 is an unspecified address"),
        (f"http://[::1]:{port}/", "::1 is a loopback address"),
    ]:
        with pytest.raises(SourceError) as caught:
            http_get(url, timeout=5)
        assert str(caught.value) == f"{url}: refused: {why}; {policy}"
    assert server.requests == []


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.255.0.9", "a loopback address"),
        ("::1", "a loopback address"),
        ("::ffff:127.0.0.1", "a loopback address"),  # IPv4-mapped
        ("::ffff:10.1.2.3", "a private address"),
        ("2002:7f00:1::", "a loopback address"),  # 6to4 around 127.0.0.1
        ("64:ff9b::a9fe:a9fe", "a link-local address"),  # NAT64 around 169.254.169.254
        ("10.0.0.1", "a private address"),
        ("172.16.5.4", "a private address"),
        ("192.168.1.1", "a private address"),
        ("fc00::1", "a private address"),
        ("fd12:3456::1", "a private address"),
        ("169.254.169.254", "a link-local address"),  # cloud metadata
        ("fe80::1", "a link-local address"),
        ("224.0.0.1", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("0.0.0.0", "an unspecified address"),
        ("::", "an unspecified address"),
        ("240.0.0.1", "a private address"),
        ("100.64.0.1", "not a public address"),  # carrier-grade NAT
        ("192.0.2.1", "a private address"),  # documentation
        ("93.184.215.14", None),
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", None),
        ("::ffff:93.184.215.14", None),
    ],
)
def test_the_address_policy(address, why):
    assert address_policy_reason(address) == why


NETNS_SCRIPT = textwrap.dedent(
    """
    import json, socket, subprocess, threading
    from digest.errors import SourceError
    from digest.ingest.http import http_get

    PUBLIC = "192.88.99.1"  # a global unicast address, here only inside this namespace
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "addr", "add", PUBLIC + "/32", "dev", "lo"], check=True)
    FEED = {feed!r}
    seen = {{"public": [], "loopback": []}}

    def serve(host, name, answer):
        sock = socket.create_server((host, 0))
        def loop():
            for _ in range(20):
                conn, _ = sock.accept()
                with conn:
                    path = conn.recv(65536).split(b" ")[1].decode()
                    seen[name].append(path)
                    conn.sendall(answer(path))
        threading.Thread(target=loop, daemon=True).start()
        return sock.getsockname()[1]

    def ok(body):
        return b"HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n%s" % (len(body), body)

    loopback = serve("127.0.0.1", "loopback", lambda path: ok(FEED))
    targets = {{
        "/to-loopback": "http://127.0.0.1:%d/feed.xml" % loopback,
        "/to-localhost": "http://localhost:%d/feed.xml" % loopback,
        "/to-mapped": "http://[::ffff:127.0.0.1]:%d/feed.xml" % loopback,
        "/to-public": "/feed.xml",
    }}
    def public_answer(path):
        if path in targets:
            return b"HTTP/1.1 302 Found\\r\\nLocation: %s\\r\\nContent-Length: 0\\r\\n\\r\\n" % (
                targets[path].encode())
        return ok(FEED)
    public = serve(PUBLIC, "public", public_answer)
    out = {{}}
    for path in targets:
        url = "http://%s:%d%s" % (PUBLIC, public, path)
        try:
            r = http_get(url, timeout=5)
            out[path] = ["ok", r.url, r.body.decode()]
        except SourceError as e:
            out[path] = ["error", str(e)]
    out["seen"] = seen
    out["public_port"] = public
    out["loopback_port"] = loopback
    print(json.dumps(out))
    """
)


def _in_network_namespace(script: str) -> dict | None:
    """Runs ``script`` with this Python in a new, empty network namespace (loopback only);
    None where namespaces cannot be made (then the test is skipped)."""
    try:
        probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if probe.returncode != 0:
        return None
    done = subprocess.run(
        ["unshare", "-n", sys.executable, "-c", script],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_public_feed_cannot_redirect_to_loopback():
    """A server on a public address (inside a private network namespace, so that nothing
    leaves this machine) redirects to 127.0.0.1: refused, and the loopback server is never
    asked. A redirect to the same public server is followed."""
    out = _in_network_namespace(NETNS_SCRIPT.format(feed=FEED))
    if out is None:
        pytest.skip("cannot create a network namespace here (unshare -n)")
    public, loopback = out["public_port"], out["loopback_port"]
    base = f"http://192.88.99.1:{public}"
    policy = "feeds may only point to public addresses ([ingest] allow_private_addresses)"
    assert out["/to-loopback"] == [
        "error",
        f"{base}/to-loopback: redirect to http://127.0.0.1:{loopback}/feed.xml refused: "
        f"127.0.0.1 is a loopback address; {policy}",
    ]
    assert out["/to-localhost"][1].startswith(
        f"{base}/to-localhost: redirect to http://localhost:{loopback}/feed.xml refused: "
        f"localhost resolves to 127.0.0.1, a loopback address; {policy}"
    )
    assert out["/to-mapped"] == [
        "error",
        f"{base}/to-mapped: redirect to http://[::ffff:127.0.0.1]:{loopback}/feed.xml refused: "
        f"::ffff:127.0.0.1 is a loopback address; {policy}",
    ]
    assert out["/to-public"] == ["ok", f"{base}/feed.xml", FEED.decode()]
    assert out["seen"]["loopback"] == []


def test_the_example_configuration_keeps_private_addresses_closed(tmp_path):
    from digest.config import EXAMPLE_TOML

    assert "allow_private_addresses = false" in EXAMPLE_TOML
    (tmp_path / "digest.toml").write_text(EXAMPLE_TOML)
    assert load_config(tmp_path / "digest.toml", env={}).ingest.allow_private_addresses is False
    assert load_config(None, env={}).ingest.allow_private_addresses is False


def test_fetch_refuses_a_private_feed_by_default_and_says_how_to_allow_it(run, db_path):
    assert run("feeds", "add", "http://127.0.0.1:9/feed.xml").exit_code == 0
    result = run("fetch")
    assert result.exit_code == 1
    assert result.output == (
        "http://127.0.0.1:9/feed.xml: failed: refused: 127.0.0.1 is a loopback address; feeds "
        "may only point to public addresses ([ingest] allow_private_addresses)\n"
    )
    db = open_db(db_path)
    (feed,) = list_feeds(db)
    assert feed.last_error is not None and "allow_private_addresses" in feed.last_error


def test_server_text_is_escaped_in_messages_and_in_the_store(run, db_path, tmp_path, raw_server):
    def hostile(conn: socket.socket, head: bytes, server: RawServer) -> None:
        conn.sendall(
            b"HTTP/1.1 500 \x1b[2J\x1b[31mOwned\x1b]0;title\x07\r\nContent-Length: 0\r\n\r\n"
        )

    server = raw_server(hostile)
    (tmp_path / "digest.toml").write_text("[ingest]\nallow_private_addresses = true\n")
    assert run("feeds", "add", server.url()).exit_code == 0
    result = run("fetch")
    assert result.exit_code == 1
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert result.output == (
        f"{server.url()}: failed: HTTP 500 \\x1b[2J\\x1b[31mOwned\\x1b]0;title\\x07\n"
    )
    (feed,) = list_feeds(open_db(db_path))
    assert feed.last_error == "HTTP 500 \\x1b[2J\\x1b[31mOwned\\x1b]0;title\\x07"
    listed = run("feeds", "list").output
    assert "\x1b" not in listed and "Owned" in listed


@pytest.fixture
def tls_server(tmp_path):
    """An HTTPS server on 127.0.0.1 with a self-signed certificate for "localhost"; it answers
    with the Host header and the SNI name it received."""
    import http.server
    import shutil
    import ssl

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    names: list[str | None] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body = f"Host: {self.headers['Host']}; SNI: {names[-1]}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: names.append(name)  # type: ignore[assignment]
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], cert
    server.shutdown()
    server.server_close()


def test_https_checks_the_certificate_of_the_host_name_it_connected_by_address(
    tls_server, monkeypatch
):
    """The socket is connected to the address that was checked; TLS still names the host (SNI
    and the certificate check) and so does the Host header."""
    port, cert = tls_server
    url = f"https://localhost:{port}/feed.xml"
    with pytest.raises(SourceError, match=r"TLS error \(self-signed certificate\)"):
        http_get(url, timeout=10, allow_private=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trust it from now on
    response = http_get(url, timeout=10, allow_private=True)
    assert response.body == f"Host: localhost:{port}; SNI: localhost".encode()
    with pytest.raises(SourceError, match=r"TLS error \(.*(mismatch|not valid for)"):
        http_get(f"https://127.0.0.1:{port}/feed.xml", timeout=10, allow_private=True)
