"""``http_get`` through an outgoing proxy named by ``HTTPS_PROXY`` / ``HTTP_PROXY`` (and not for
hosts in ``NO_PROXY``; conftest clears those for every test), against a real forwarding proxy on 127.0.0.1: plain http asked by
absolute URL, https through a ``CONNECT`` tunnel (TLS still with the feed's host), Basic proxy
credentials, a proxy that refuses or is down, and the address policy that still applies to the
feed's host."""

from __future__ import annotations

import base64
import contextlib
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from digest.errors import SourceError
from digest.ingest.http import http_get

FEED = b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title></channel></rss>'


class Origin(BaseHTTPRequestHandler):
    """The feed's own server."""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Content-Length", str(len(FEED)))
        self.end_headers()
        self.wfile.write(FEED)


class Proxy:
    """A forwarding proxy: ``CONNECT host:port`` opens a tunnel; ``GET http://...`` is fetched
    from the origin and relayed. ``seen`` keeps each request line and its Proxy-Authorization;
    ``refuse`` answers every request with 403."""

    def __init__(self, *, refuse: bool = False):
        self.seen: list[tuple[str, str | None]] = []
        self.refuse = refuse
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
            self.seen.append((lines[0], headers.get("Proxy-Authorization")))
            if self.refuse:
                conn.sendall(b"HTTP/1.1 403 Forbidden by policy\r\nContent-Length: 0\r\n\r\n")
                return
            method, target, _ = lines[0].split(" ")
            if method == "CONNECT":
                host, port = target.rsplit(":", 1)
                upstream = socket.create_connection((host, int(port)), timeout=5)
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                self._relay(conn, upstream)
            else:
                host_port = target.split("/")[2]
                host, port = host_port.rsplit(":", 1)
                with socket.create_connection((host, int(port)), timeout=5) as upstream:
                    path = "/" + target.split("/", 3)[3]
                    upstream.sendall(f"GET {path} HTTP/1.0\r\nHost: {host_port}\r\n\r\n".encode())
                    while data := upstream.recv(65536):
                        conn.sendall(data)

    @staticmethod
    def _relay(a: socket.socket, b: socket.socket) -> None:
        def pump(src: socket.socket, dst: socket.socket) -> None:
            with contextlib.suppress(OSError):
                while data := src.recv(65536):
                    dst.sendall(data)
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

        other = threading.Thread(target=pump, args=(b, a), daemon=True)
        other.start()
        pump(a, b)
        other.join(5)
        b.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def origin() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    p = Proxy()
    yield p
    p.close()


def test_plain_http_goes_through_the_proxy_by_absolute_url(origin, proxy, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    response = http_get(f"{origin}/feed.xml", allow_private=True, timeout=5)
    assert response.body == FEED
    assert proxy.seen == [(f"GET {origin}/feed.xml HTTP/1.1", None)]


def test_proxy_credentials_are_sent_as_basic_auth(origin, proxy, monkeypatch):
    host = proxy.url.removeprefix("http://")
    monkeypatch.setenv("http_proxy", f"http://desk%40news:s3cr%3At@{host}")
    http_get(f"{origin}/feed.xml", allow_private=True, timeout=5)
    ((_, auth),) = proxy.seen
    assert auth == "Basic " + base64.b64encode(b"desk@news:s3cr:t").decode()


def test_no_proxy_hosts_are_reached_directly(origin, proxy, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    assert http_get(f"{origin}/feed.xml", allow_private=True, timeout=5).body == FEED
    assert proxy.seen == []


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl for a certificate")
def test_https_goes_through_a_connect_tunnel_with_tls_to_the_feeds_host(
    proxy, monkeypatch, tmp_path
):
    # A TLS server with a certificate nobody trusts: the TLS error proves that the handshake
    # went through the tunnel, end to end with the feed's host (the proxy only relays bytes).
    _self_signed_certificate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        port = server.server_address[1]
        with pytest.raises(SourceError, match="TLS error"):
            http_get(f"https://127.0.0.1:{port}/feed.xml", allow_private=True, timeout=5)
        assert proxy.seen[0][0] == f"CONNECT 127.0.0.1:{port} HTTP/1.1"
    finally:
        server.shutdown()
        server.server_close()


def _self_signed_certificate(folder) -> None:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=127.0.0.1", "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip


def test_a_refused_tunnel_and_a_proxy_that_is_down_are_one_line_each(monkeypatch):
    refusing = Proxy(refuse=True)
    try:
        monkeypatch.setenv("HTTPS_PROXY", refusing.url)
        with pytest.raises(SourceError) as refused:
            http_get("https://127.0.0.1:9/feed.xml", allow_private=True, timeout=5)
        assert str(refused.value) == (
            f"https://127.0.0.1:9/feed.xml: proxy 127.0.0.1:{refusing.port} refused the tunnel"
            " to 127.0.0.1:9: HTTP 403 Forbidden by policy"
        )
    finally:
        refusing.close()
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    with pytest.raises(SourceError) as down:
        http_get("https://news.example.org/feed.xml", allow_private=True, timeout=5)
    assert str(down.value) == (
        "https://news.example.org/feed.xml: proxy 127.0.0.1:9: unreachable (connection refused)"
    )
    monkeypatch.setenv("HTTPS_PROXY", "socks5://127.0.0.1:1080")
    with pytest.raises(SourceError, match="is not an http:// proxy URL"):
        http_get("https://news.example.org/feed.xml", timeout=5)


def test_the_address_policy_still_applies_to_the_feeds_host(origin, proxy, monkeypatch):
    # The proxy is the operator's and may be on a private address; the feed may not be.
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    with pytest.raises(SourceError, match="is a loopback address; feeds may only point to public"):
        http_get(f"{origin}/feed.xml", timeout=5)
    assert proxy.seen == []  # refused before anything was asked of the proxy
