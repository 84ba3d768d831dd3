"""Checks before mail goes out through a relay: the links in every digest start with
``[site] base_url``, and one-click unsubscribe (RFC 8058) requires HTTPS. A digest whose links
are plain http on a public host is refused (``--allow-insecure-links`` overrides); links to a
loopback address while the relay is elsewhere work for nobody who receives them, which gets a
warning."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import urlsplit

from ..config import SmtpRelay
from ..errors import InvalidInput


def _loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_links(base_url: str, relays: Sequence[SmtpRelay], *, allow_insecure: bool) -> list[str]:
    """Warnings about ``base_url`` for a send through ``relays``; raises ``InvalidInput`` when
    its links would be plain http on a host that is not loopback (unless ``allow_insecure``)."""
    parts = urlsplit(base_url)
    host = (parts.hostname or "").lower()
    local_links = _loopback(host)
    warnings = []
    if parts.scheme == "http" and not local_links and not allow_insecure:
        raise InvalidInput(
            f"[site] base_url {base_url!r} is plain http: one-click unsubscribe (RFC 8058) needs"
            " https, and mailbox providers distrust such links; set an https base_url (or pass"
            " --allow-insecure-links to send anyway)"
        )
    remote = [r.label for r in relays if not _loopback(r.host.lower())]
    if local_links and remote:
        warnings.append(
            f"[site] base_url {base_url!r} points at this machine, but mail goes through"
            f" {', '.join(remote)}: recipients' unsubscribe and preference links will not work;"
            " set base_url to the public address of `digest serve`"
        )
    return warnings
