"""DKIM signing (digest.dkim) checked with dkimpy's own verifier, the public key served by a
DNS lookup function given to it (no network)."""

from __future__ import annotations

import base64
import email
import email.policy
import re

import dkim as dkimpy
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from digest.delivery.dkim import DkimError, load_key, sign
from digest.delivery.personalise import Assembler, Recipient


@pytest.fixture(scope="module")
def key():
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    return pem, record


def dns(record: bytes, name: str = "news._domainkey.news.example.com."):
    asked = []

    def lookup(qname: bytes, timeout: int = 5) -> bytes | None:
        asked.append(qname)
        return record if qname.decode() == name else None

    return lookup, asked


@pytest.fixture
def message(db, newsletter) -> bytes:
    newsletter.make(1)
    assembler = Assembler(db, base_url="https://news.example.com", secret=b"k")
    return assembler.message(1, Recipient(1, "p1@example.com", "Person 1")).data


def test_signature_verifies_and_covers_list_unsubscribe(key, message):
    pem, record = key
    signed = sign(message, selector="news", domain="news.example.com", key_pem=pem)
    assert signed.endswith(message) and signed.startswith(b"DKIM-Signature: ")
    lookup, asked = dns(record)
    assert dkimpy.verify(signed, dnsfunc=lookup)
    assert asked == [b"news._domainkey.news.example.com."]
    msg = email.message_from_bytes(signed, policy=email.policy.default)
    tags = dict(
        part.strip().split("=", 1)
        for part in re.sub(r"\s+", "", msg["DKIM-Signature"]).split(";")
        if part
    )
    signed_headers = tags["h"].split(":")
    assert "list-unsubscribe" in signed_headers and "list-unsubscribe-post" in signed_headers
    assert {"from", "to", "subject", "message-id"} <= set(signed_headers)
    assert (tags["d"], tags["s"], tags["a"], tags["c"]) == (
        "news.example.com",
        "news",
        "rsa-sha256",
        "relaxed/relaxed",
    )


def test_a_changed_unsubscribe_header_or_body_breaks_it(key, message):
    pem, record = key
    signed = sign(message, selector="news", domain="news.example.com", key_pem=pem)
    lookup, _ = dns(record)
    swapped = re.sub(
        rb"List-Unsubscribe: <[^>]+>", b"List-Unsubscribe: <https://evil.example/u>", signed
    )
    assert swapped != signed and not dkimpy.verify(swapped, dnsfunc=lookup)
    # A List-Unsubscribe-Post added after signing is the one a verifier checks: it fails.
    added = signed.replace(b"\r\n\r\n", b"\r\nList-Unsubscribe-Post: x\r\n\r\n", 1)
    assert not dkimpy.verify(added, dnsfunc=lookup)
    body = signed.replace(b"Hello", b"Hallo", 1)
    assert body != signed and not dkimpy.verify(body, dnsfunc=lookup)
    # The wrong key in DNS: not verified.
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    der = other.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    wrong, _ = dns(b"v=DKIM1; k=rsa; p=" + base64.b64encode(der))
    assert not dkimpy.verify(signed, dnsfunc=wrong)


def test_relay_refolding_keeps_it_valid(key, message):
    # relaxed header canonicalisation: a relay that unfolds/refolds or pads headers is fine.
    pem, record = key
    signed = sign(message, selector="news", domain="news.example.com", key_pem=pem)
    lookup, _ = dns(record)
    padded = signed.replace(b"Subject: ", b"Subject:   ", 1)
    assert padded != signed and dkimpy.verify(padded, dnsfunc=lookup)


def test_key_errors_say_what_to_fix(tmp_path, key):
    pem, _ = key
    path = tmp_path / "dkim.pem"
    path.write_bytes(pem)
    assert load_key(path) == pem
    with pytest.raises(DkimError, match=r"DKIM key .*missing.pem: cannot read it"):
        load_key(tmp_path / "missing.pem")
    (tmp_path / "public.pem").write_bytes(
        b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
    )
    with pytest.raises(DkimError, match="not a PEM private key"):
        load_key(tmp_path / "public.pem")
    (tmp_path / "junk.pem").write_bytes(
        b"-----BEGIN RSA PRIVATE KEY-----\nbm90IGEga2V5\n-----END RSA PRIVATE KEY-----\n"
    )
    with pytest.raises(DkimError, match="not a usable RSA private key"):
        load_key(tmp_path / "junk.pem")
    with pytest.raises(DkimError, match="must be ASCII"):
        sign(b"From: a@b\r\n\r\nx\r\n", selector="news", domain="exämple.com", key_pem=pem)
    with pytest.raises(DkimError, match="needs a selector and a domain"):
        sign(b"From: a@b\r\n\r\nx\r\n", selector="", domain="example.com", key_pem=pem)


def test_a_configured_send_signs_every_message(db, newsletter, smtp_server, tmp_path, key):
    from datetime import UTC, datetime

    from digest.config import load_config, parse_smtp_url
    from digest.delivery.send import send_pending
    from digest.delivery.transports import SmtpTransport

    pem, record = key
    (tmp_path / "dkim.pem").write_bytes(pem)
    config_file = tmp_path / "site.toml"
    config_file.write_text(
        '[dkim]\nselector = "news"\ndomain = "news.example.com"\nkey_file = "dkim.pem"\n',
        encoding="utf-8",
    )
    newsletter.make(2)
    server = smtp_server()
    report = send_pending(
        db,
        load_config(config_file, env={}),
        secret=b"s",
        clock=lambda: datetime(2025, 1, 21, 7, tzinfo=UTC),
        transport=SmtpTransport([parse_smtp_url(server.url())], timeout=5),
    )
    assert report.sent == 2
    lookup, _ = dns(record)
    for item in server.handler.received:
        assert item.data.startswith(b"DKIM-Signature:")
        assert dkimpy.verify(item.data.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n"),
                             dnsfunc=lookup)  # fmt: skip


def test_dkim_settings_come_together(tmp_path):
    from digest.config import load_config
    from digest.errors import ConfigError

    path = tmp_path / "c.toml"
    path.write_text('[dkim]\nselector = "x"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="needs selector, domain and key_file together"):
        load_config(path, env={})
