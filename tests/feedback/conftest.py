"""Fixtures of the feedback tests: a real Dovecot (module-scoped; skipped where it is not
installed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dovecot_server import Dovecot, start_dovecot


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    yield from start_dovecot()


@pytest.fixture(scope="module")
def dovecot_basic() -> Iterator[Dovecot]:
    """A Dovecot that does not advertise MOVE or UIDPLUS: the COPY + EXPUNGE path."""
    yield from start_dovecot("imap_capability = IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE")
