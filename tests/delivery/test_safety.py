"""Before mail goes through a relay, the digests' links are checked: plain http on a public
host is refused (RFC 8058 one-click needs https) unless the sender insists; links to this
machine while the relay is elsewhere get a warning."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from digest.config import load_config, parse_smtp_url
from digest.delivery.safety import check_links
from digest.delivery.send import send_pending
from digest.delivery.transports import SmtpTransport
from digest.errors import InvalidInput

NOW = datetime(2025, 1, 21, 7, 0, tzinfo=UTC)
REMOTE = parse_smtp_url("smtp+starttls://news@smtp.example.org:587")
LOCAL = parse_smtp_url("smtp://127.0.0.1:2525")


def test_check_links():
    assert check_links("https://news.example.com", [REMOTE], allow_insecure=False) == []
    assert check_links("http://127.0.0.1:8080", [LOCAL], allow_insecure=False) == []
    with pytest.raises(InvalidInput, match="plain http: one-click unsubscribe"):
        check_links("http://news.example.com", [REMOTE], allow_insecure=False)
    assert check_links("http://news.example.com", [REMOTE], allow_insecure=True) == []
    (warning,) = check_links("http://localhost:8080", [LOCAL, REMOTE], allow_insecure=False)
    assert "points at this machine, but mail goes through smtp.example.org:587" in warning


def _config(tmp_path, base_url):
    path = tmp_path / "site.toml"
    path.write_text(f'[site]\nbase_url = "{base_url}"\n', encoding="utf-8")
    return load_config(path, env={})


def test_an_insecure_send_is_refused_and_nothing_is_claimed(db, newsletter, smtp_server, tmp_path):
    newsletter.make(2)
    server = smtp_server()
    transport = SmtpTransport([parse_smtp_url(server.url())], timeout=5)
    config = _config(tmp_path, "http://news.example.com")
    with pytest.raises(InvalidInput, match="--allow-insecure-links"):
        send_pending(db, config, secret=b"s", clock=lambda: NOW, transport=transport)
    assert server.handler.received == []
    owed = db.execute("SELECT count(*) FROM deliveries WHERE status = 'queued'").fetchone()[0]
    assert owed == 2
    report = send_pending(db, config, secret=b"s", clock=lambda: NOW, transport=transport,
                          allow_insecure_links=True)  # fmt: skip
    assert report.sent == 2


def test_the_cli_says_why(run, db, newsletter, smtp_server, tmp_path):
    newsletter.make(1)
    server = smtp_server()
    (tmp_path / "digest.toml").write_text('[site]\nbase_url = "http://news.example.com"\n')
    result = run("send", "--smtp", server.url())
    assert result.exit_code == 1
    assert "Error: [site] base_url 'http://news.example.com' is plain http" in result.output
    assert run("send", "--smtp", server.url(), "--allow-insecure-links").exit_code == 0
