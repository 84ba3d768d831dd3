"""A real HTTP server on 127.0.0.1 for the page tests: article pages, feeds that link to them,
pages that answer slowly, and a count of the requests in flight at once."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    etag: str | None = None
    delay: float = 0.0  # seconds before answering
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200


class PageServer:
    """``routes[path] = Route(...)``; answers ``If-None-Match`` with 304 when the ETag matches.
    ``requests`` records (path, headers); ``most_at_once`` the largest number of requests it was
    answering at the same time, ``most_per_host`` the same for each Host header."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.in_flight: Counter[str] = Counter()  # by Host header
        self.most_at_once = 0  # requests being answered at once, in all
        self.most_per_host: Counter[str] = Counter()
        self.release = threading.Event()
        lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                host = (self.headers.get("Host") or "").split(":")[0]
                with lock:
                    server.requests.append((self.path, dict(self.headers)))
                    server.in_flight[host] += 1
                    total = sum(server.in_flight.values())
                    server.most_at_once = max(server.most_at_once, total)
                    most = max(server.most_per_host[host], server.in_flight[host])
                    server.most_per_host[host] = most
                try:
                    self._answer()
                finally:
                    with lock:
                        server.in_flight[host] -= 1

            def _answer(self) -> None:
                route = server.routes.get(self.path)
                if route is None:
                    self.send_error(404, "Not Found")
                    return
                if route.delay:
                    server.release.wait(route.delay)
                if route.etag and self.headers.get("If-None-Match") == route.etag:
                    self.send_response(304)
                    self.send_header("ETag", route.etag)
                    self.end_headers()
                    return
                self.send_response(route.status)
                self.send_header("Content-Type", route.content_type)
                if route.etag:
                    self.send_header("ETag", route.etag)
                for name, value in route.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                # The client may give up first (a size cap, a deadline).
                with contextlib.suppress(OSError):
                    self.wfile.write(route.body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


PARAGRAPHS = (
    "On New Year’s Day, Kenyan police officers found themselves in the midst of an intense "
    "battle against powerful gang networks in Haiti, officials said on Tuesday.",
    "As part of the Multinational Security Support Mission, the officers were tasked with "
    "combating violent gangs in the capital, Port-au-Prince, and surrounding areas.",
    "The mission, established in October 2023, is a collaboration with several countries, "
    "including Jamaica, Belize and El Salvador, under the guidance of the United Nations.",
    "“We moved swiftly at dawn,” said one of the officers, recounting the operation. “Our goal "
    "was clear: to dismantle these criminal networks and keep people safe.”",
)


def story_page(
    title: str = "Kenya Police Recount Their Battle Against Haiti Gangs",
    *,
    paragraphs: tuple[str, ...] = PARAGRAPHS,
    canonical: str | None = None,
    og_url: str | None = None,
    published: str = "2025-01-21T08:30:00+03:00",
    author: str = "Amina Otieno",
    keywords: str = "Kenya, Haiti, Tags",
    head: str = "",
) -> str:
    """A news article page as sites write them: site chrome around the article, its metadata
    in <head>."""
    links = ""
    if canonical:
        links += f'<link rel="canonical" href="{canonical}">'
    if og_url:
        links += f'<meta property="og:url" content="{og_url}">'
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{title} - World News Daily</title>
<meta property="og:site_name" content="World News Daily">
<meta property="article:published_time" content="{published}">
<meta name="author" content="{author}">
<meta name="keywords" content="{keywords}">
{links}{head}
</head><body>
<header><nav><a href="/">Home</a> <a href="/world">World</a> <a href="/sport">Sport</a></nav></header>
<main><article><h1>{title}</h1>{body}</article></main>
<aside><h2>Most read</h2><ul><li><a href="/a">Another story</a></li></ul></aside>
<footer>© 2025 World News Daily. <a href="/privacy">Privacy</a></footer>
</body></html>"""


def rss(*items: str, link: str = "https://news.example.org/") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"'
        ' xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>World</title>'
        f"<link>{link}</link><description>d</description>{''.join(items)}</channel></rss>"
    ).encode()


def rss_item(guid: str, title: str, link: str, description: str, *, content: str = "") -> str:
    encoded = f"<content:encoded><![CDATA[{content}]]></content:encoded>" if content else ""
    return (
        f'<item><guid isPermaLink="false">{guid}</guid><title>{title}</title><link>{link}</link>'
        "<pubDate>Tue, 21 Jan 2025 07:00:00 GMT</pubDate>"
        f"<description><![CDATA[{description}]]></description>{encoded}</item>"
    )
