"""Fetching a feed or page over HTTP(S): ``http_get`` does one GET with a conditional request
(ETag / Last-Modified), a size cap, redirects it follows itself, and a readable reason for every
failure (``SourceError``).

Time limits that hold. One deadline covers the whole response: name lookup, connect, TLS, status
line, headers and body. Socket timeouts alone cannot give that (they bound each read, and a server
that trickles one header line or one byte every few seconds never trips them), so a watchdog
thread shuts the socket down when the deadline passes, or as soon as the caller's ``stop`` event
is set (``digest run`` sets it on SIGTERM): the read in progress returns at once and the fetch
fails with "timed out" or "stopped". The request is made with ``http.client`` on a socket we
connect ourselves, which is what lets the watchdog reach it.

Which addresses a feed may point to (SSRF). Feed URLs come from editors, but what they resolve
to, and where their redirects lead, is decided by whoever runs the remote server or its DNS. So a
feed may only reach *public* addresses: never loopback, private (RFC 1918, unique-local),
link-local (cloud metadata services live there), carrier-grade NAT, multicast, reserved,
documentation or unspecified ranges, for IPv4 and IPv6 alike, including IPv4 addresses wrapped in
IPv6 (``::ffff:127.0.0.1``, 6to4, NAT64). The check is made on the address actually connected
to: the host name is resolved once, the socket connects to that address, and the request still
names the host (``Host`` header, TLS SNI and certificate check), so a DNS answer that changes
between check and use cannot slip through. A site that serves feeds on its own network sets
``[ingest] allow_private_addresses = true``. Redirects (at most ``MAX_REDIRECTS``) are followed
only to http(s) URLs, and each target passes the same check as the original URL.

Outgoing proxies. ``HTTPS_PROXY`` / ``HTTP_PROXY`` (and ``NO_PROXY``) in the environment are
honoured, as curl and most tools do: an https URL goes through a ``CONNECT`` tunnel (TLS, SNI and
the certificate check are still end to end with the feed's host), an http URL is asked of the
proxy by its absolute URL; ``http://user:password@proxy:3128`` sends Basic proxy credentials. The
proxy is the operator's, so its own address is not checked; the feed's host still is: it must
resolve, here, to addresses the policy allows (the proxy resolves it again; a DNS answer that
changes in between is the one gap a proxy opens, and one the proxy's own rules usually close).

Everything a server says that ends up in a message (its reason phrase, a Location header) is
passed through ``visible`` first: control characters are shown escaped, never sent raw to a
terminal or stored raw in ``feeds.last_error``.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import ipaddress
import os
import select
import socket
import ssl
import threading
import time
import urllib.request
from base64 import b64encode
from dataclasses import dataclass
from urllib.parse import SplitResult, quote, unquote, urljoin, urlsplit

from .. import __version__
from ..errors import InvalidInput, SourceError
from ..text import CONTROL, visible

USER_AGENT = f"digest/{__version__} (+feed reader; newsletter digests)"
MAX_REDIRECTS = 5
# How often the watchdog looks at the stop event: a stop interrupts a fetch within this.
STOP_POLL_SECONDS = 0.2
_REDIRECTS = {301, 302, 303, 307, 308}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class HttpResponse:
    status: int  # 200 or 304
    body: bytes | None
    etag: str | None
    last_modified: str | None
    content_type: str | None
    url: str  # after redirects


def _size(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB" if n >= 1_000_000 else f"{n / 1000:.0f} KB"


class _Fetch:
    """One fetch's deadline and cancellation: ``check()`` raises when either has come, and the
    watchdog thread shuts down the socket being read so that a blocked read returns."""

    def __init__(self, timeout: float, stop: threading.Event | None):
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.stop = stop
        self.fired: str | None = None  # "timeout" | "stopped", once the watchdog acted
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="digest-fetch-watchdog")
        self._thread.daemon = True
        self._thread.start()

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def expired(self) -> str | None:
        if self.fired:
            return self.fired
        if self.stop is not None and self.stop.is_set():
            return "stopped"
        if self.remaining() <= 0:
            return "timeout"
        return None

    def check(self) -> None:
        why = self.expired()
        if why:
            raise _Interrupted(why)

    def watch(self, sock: socket.socket | None) -> None:
        with self._lock:
            self._sock = sock
            if sock is not None and self.fired:
                _shutdown(sock)

    def _watch(self) -> None:
        while not self._done.wait(max(0.0, min(self.remaining(), STOP_POLL_SECONDS))):
            why = self.expired()
            if why:
                with self._lock:
                    self.fired = why
                    if self._sock is not None:
                        _shutdown(self._sock)
                return

    def close(self) -> None:
        self._done.set()


class _Interrupted(Exception):
    def __init__(self, why: str):
        super().__init__(why)
        self.why = why


class _Failed(Exception):
    """A failure whose reason is already written for the user (without the URL in front)."""


def _shutdown(sock: socket.socket) -> None:
    # Not connected yet, or already closed: the deadline checks cover those.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def http_get(
    url: str,
    *,
    timeout: float = 20,
    max_bytes: int = 20_000_000,
    etag: str | None = None,
    last_modified: str | None = None,
    allow_private: bool = False,
    stop: threading.Event | None = None,
    limit_name: str = "[ingest] max_feed_bytes",
) -> HttpResponse:
    """GET ``url``; raise ``SourceError`` with a readable reason for anything but 200/304.

    ``timeout`` is the deadline for the whole response, redirects included; ``stop``, once set,
    ends the fetch within ``STOP_POLL_SECONDS``. Only public addresses are reached unless
    ``allow_private`` (``[ingest] allow_private_addresses``). ``limit_name`` names the setting
    behind ``max_bytes`` in the message of a response that is too large."""
    check_feed_url(url)
    fetch = _Fetch(timeout, stop)
    try:
        return _get(url, fetch, max_bytes, etag, last_modified, allow_private, limit_name)
    except _Interrupted as e:
        raise SourceError(f"{url}: {_interrupted(e.why, timeout)}") from None
    except _Failed as e:
        raise SourceError(f"{url}: {e}") from None
    except Exception as e:  # noqa: BLE001 - whatever the network does, the reason is one line
        why = fetch.expired()
        if why:  # the watchdog cut the connection: that, not its symptom, is the reason
            raise SourceError(f"{url}: {_interrupted(why, timeout)}") from None
        raise SourceError(f"{url}: {_reason(e, timeout)}") from None
    finally:
        fetch.close()


def _interrupted(why: str, timeout: float) -> str:
    if why == "stopped":
        return "stopped before the download finished (digest is shutting down)"
    return f"timed out after {timeout:g} s ([ingest] fetch_timeout)"


def _get(
    url: str,
    fetch: _Fetch,
    max_bytes: int,
    etag: str | None,
    last_modified: str | None,
    allow_private: bool,
    limit_name: str,
) -> HttpResponse:
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    for hop in range(MAX_REDIRECTS + 1):
        conn, via_proxy = _connect(url, fetch, allow_private, redirected=hop > 0)
        try:
            parts = urlsplit(url)
            target = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
            if parts.query:
                target += "?" + quote(parts.query, safe="/%:@!$&'()*+,;=-._~?")
            sent = dict(headers)
            if via_proxy is not None:  # plain http through a proxy: ask it for the absolute URL
                target = f"http://{parts.netloc.rpartition('@')[2]}{target}"
                sent.update(_proxy_headers(via_proxy))
            conn.request("GET", target, headers=sent)
            response = conn.getresponse()
            fetch.check()
            status = response.status
            if status in _REDIRECTS:
                location = response.getheader("Location")
                if not location:
                    raise _Failed(f"HTTP {status} redirect without a Location")
                url = _redirect_target(url, location)
                continue
            if status == 304:
                return HttpResponse(
                    304, None, response.getheader("ETag") or etag,
                    response.getheader("Last-Modified") or last_modified, None, url,
                )  # fmt: skip
            if not 200 <= status < 300:
                reason = visible(response.reason or "").strip()
                raise _Failed(f"HTTP {status}" + (f" {reason}" if reason else ""))
            body = _read_body(response, fetch, max_bytes, limit_name)
            return HttpResponse(
                status=200,
                body=body,
                etag=response.getheader("ETag"),
                last_modified=response.getheader("Last-Modified"),
                content_type=response.getheader("Content-Type"),
                url=url,
            )
        finally:
            fetch.watch(None)
            conn.close()
    raise _Failed(f"more than {MAX_REDIRECTS} redirects")


def _redirect_target(url: str, location: str) -> str:
    target = urljoin(url, location.strip())
    shown = visible(target)
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _Failed(f"redirect to {shown} refused: only http and https URLs are followed")
    if CONTROL.search(target):
        raise _Failed(f"redirect to {shown} refused: it has control characters")
    return target


def _read_body(
    response: http.client.HTTPResponse, fetch: _Fetch, max_bytes: int, limit_name: str
) -> bytes:
    length = response.getheader("Content-Length")
    if length and length.isdigit() and int(length) > max_bytes:
        raise _Failed(
            f"response is {_size(int(length))}, over the {_size(max_bytes)} limit ({limit_name})"
        )
    chunks: list[bytes] = []
    size = 0
    while True:
        fetch.check()
        chunk = response.read1(65536)
        if not chunk:
            # A read cut short by the watchdog also ends like this: it is not the end of the body.
            fetch.check()
            break
        size += len(chunk)
        if size > max_bytes:
            raise _Failed(f"response is over the {_size(max_bytes)} limit ({limit_name})")
        chunks.append(chunk)
    return b"".join(chunks)


# ---------------------------------------------------------------------------- connecting


def _connect(
    url: str,
    fetch: _Fetch,
    allow_private: bool,
    *,
    redirected: bool,
) -> tuple[http.client.HTTPConnection, SplitResult | None]:
    """An HTTP(S) connection to ``url``'s host on a socket connected to an address the policy
    allows (or to the proxy for it, which is returned too), or ``_Failed`` saying why not."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise _Failed(f"bad port number in {visible(url)}") from None
    proxy = proxy_for(parts.scheme, host)
    # Through a proxy with every address allowed, the proxy alone resolves the name (it may be
    # the only one that can).
    skip_check = proxy is not None and allow_private
    allowed = (
        [] if skip_check else _allowed_addresses(url, host, port, fetch, allow_private, redirected)
    )
    if proxy is not None:
        proxy_port = proxy.port or (443 if proxy.scheme == "https" else 80)
        proxy_host = proxy.hostname or ""
        try:
            sock = _open_socket(_resolve(proxy_host, proxy_port, fetch), proxy_port, fetch)
        except OSError as e:
            raise _Failed(f"proxy {proxy_host}:{proxy_port}: {_reason(e, fetch.timeout)}") from None
        if parts.scheme != "https":
            conn = http.client.HTTPConnection(proxy_host, proxy_port)
            conn.sock = sock
            fetch.watch(sock)
            return conn, proxy
        fetch.watch(sock)
        try:
            _tunnel(sock, host, port, proxy, fetch)
        except BaseException:
            sock.close()
            raise
    else:
        sock = _open_socket(allowed, port, fetch)
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(host, port)
        fetch.watch(sock)  # the handshake is a read like any other
        context = ssl.create_default_context()
        try:
            sock = context.wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise
    else:
        conn = http.client.HTTPConnection(host, port)
    conn.sock = sock
    fetch.watch(sock)
    return conn, None


def _allowed_addresses(
    url: str, host: str, port: int, fetch: _Fetch, allow_private: bool, redirected: bool
) -> list[IPAddress]:
    """The addresses of ``host`` that the policy lets a fetch reach, or ``_Failed``."""
    addresses = _resolve(host, port, fetch)
    if not addresses:
        raise _Failed("unreachable (host name not found)")
    allowed = addresses if allow_private else [a for a in addresses if not _not_public(a)]
    if not allowed:
        why = _not_public(addresses[0])
        where = f"redirect to {visible(url)} refused" if redirected else "refused"
        what = (
            f"{host} is {why}"
            if _ip(host) is not None
            else f"{host} resolves to {addresses[0]}, {why}"
        )
        raise _Failed(
            f"{where}: {what}; feeds may only point to public addresses"
            " ([ingest] allow_private_addresses)"
        )
    return allowed


# ---------------------------------------------------------------------------- outgoing proxies


def proxy_for(scheme: str, host: str) -> SplitResult | None:
    """The proxy the environment names for ``scheme`` URLs (``HTTPS_PROXY``, ``HTTP_PROXY``,
    lower or upper case), unless ``NO_PROXY`` covers ``host``; None for a direct connection."""
    proxies = urllib.request.getproxies_environment()
    url = proxies.get(scheme)
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]  # not in typeshed
    if not url or bypass(host, proxies):
        return None
    if "://" not in url:
        url = "http://" + url  # "proxy.example:3128", as many environments write it
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise _Failed(
            f"the {scheme.upper()}_PROXY setting {visible(url)!r} is not an http:// proxy URL"
            " (e.g. http://proxy.example:3128)"
        )
    return parts


def _proxy_headers(proxy: SplitResult) -> dict[str, str]:
    if proxy.username is None:
        return {}
    user_pass = f"{unquote(proxy.username)}:{unquote(proxy.password or '')}"
    return {"Proxy-Authorization": "Basic " + b64encode(user_pass.encode()).decode("ascii")}


def _tunnel(sock: socket.socket, host: str, port: int, proxy: SplitResult, fetch: _Fetch) -> None:
    """Ask the proxy on ``sock`` for a tunnel to ``host:port`` (``CONNECT``); ``_Failed`` with
    the proxy's answer if it refuses."""
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}", f"User-Agent: {USER_AGENT}"]
    lines += [f"{name}: {value}" for name, value in _proxy_headers(proxy).items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
    answer = http.client.HTTPResponse(sock, method="CONNECT")
    try:
        answer.begin()
        fetch.check()
        if answer.status != 200:
            reason = visible(answer.reason or "").strip()
            raise _Failed(
                f"proxy {proxy.hostname}:{proxy.port or 80} refused the tunnel to {authority}:"
                f" HTTP {answer.status}" + (f" {reason}" if reason else "")
            )
    finally:
        answer.close()  # the socket stays open: the tunnel is ours now


def _resolve(host: str, port: int, fetch: _Fetch) -> list[IPAddress]:
    """The addresses of ``host``, looked up on a helper thread so that a slow resolver is bound
    by the same deadline and stop event as the rest of the fetch."""
    literal = _ip(host.strip("[]"))
    if literal is not None:
        return [literal]
    result: list[list[IPAddress] | BaseException] = []
    done = threading.Event()

    def run() -> None:
        try:
            result.append(_system_resolver(host, port))
        except BaseException as e:  # noqa: BLE001 - handed to the fetching thread
            result.append(e)
        done.set()

    threading.Thread(target=run, name="digest-resolve", daemon=True).start()
    while not done.wait(max(0.0, min(fetch.remaining(), STOP_POLL_SECONDS))):
        fetch.check()
    found = result[0]
    if isinstance(found, BaseException):
        raise found
    return found


def _system_resolver(host: str, port: int) -> list[IPAddress]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    out: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        ip = _ip(str(sockaddr[0]).split("%")[0])
        if ip is not None and ip not in out:
            out.append(ip)
    return out


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _open_socket(addresses: list[IPAddress], port: int, fetch: _Fetch) -> socket.socket:
    """A socket connected to the first of ``addresses`` that answers. The connect is
    non-blocking and waited for in short slices, so the deadline and the stop event end it."""
    error: OSError | None = None
    for address in addresses:
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            code = sock.connect_ex((str(address), port))
            while code in (errno.EINPROGRESS, errno.EALREADY):
                fetch.check()
                _, writable, _ = select.select(
                    [], [sock], [], max(0.0, min(fetch.remaining(), STOP_POLL_SECONDS))
                )
                if writable:
                    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                raise OSError(code, os.strerror(code))
            # Every later read is bounded by the deadline (and cut by the watchdog before it).
            sock.settimeout(max(fetch.remaining(), 0.001))
            return sock
        except _Interrupted:
            sock.close()
            raise
        except OSError as e:
            sock.close()
            error = e
    assert error is not None
    raise error


# ---------------------------------------------------------------------------- the address policy

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _not_public(address: IPAddress) -> str | None:
    """Why a feed may not connect to ``address`` ("a loopback address"...), or None if it is a
    public address. IPv4 addresses carried inside IPv6 ones are judged as IPv4."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour
        if inner is None and address.teredo is not None:
            inner = address.teredo[1]
        if inner is None and address in _NAT64:
            inner = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if inner is not None:
            return _not_public(inner)
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private:
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        return "not a public address"
    return None


def address_policy_reason(address: str) -> str | None:
    """Why ``address`` (an IP address as text) is not public, or None: the policy
    ``http_get`` applies when private addresses are not allowed."""
    ip = _ip(address)
    return "not an IP address" if ip is None else _not_public(ip)


# ---------------------------------------------------------------------------- reasons


def _reason(reason: object, timeout: float) -> str:
    if isinstance(reason, TimeoutError | socket.timeout):
        return f"timed out after {timeout:g} s ([ingest] fetch_timeout)"
    if isinstance(reason, ConnectionRefusedError):
        return "unreachable (connection refused)"
    if isinstance(reason, socket.gaierror):
        return "unreachable (host name not found)"
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"TLS error ({visible(reason.verify_message or str(reason))})"
    if isinstance(reason, ssl.SSLError):
        return f"TLS error ({visible(str(getattr(reason, 'reason', None) or reason))})"
    if isinstance(reason, http.client.HTTPException):
        text = visible(str(reason))[:200]
        return f"bad HTTP response ({type(reason).__name__}" + (f": {text})" if text else ")")
    if isinstance(reason, OSError):
        return f"unreachable ({visible(str(reason.strerror or reason))})"
    return f"failed ({type(reason).__name__}: {visible(str(reason))[:200]})"


def check_feed_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or CONTROL.search(url):
        raise InvalidInput(
            f"{url!r} is not an http(s) URL (expected e.g. https://example.org/feed.xml)"
        )
    return url
