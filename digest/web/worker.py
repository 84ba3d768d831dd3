"""The web app's background sender: a thread that sends the outbox of transactional emails
(``delivery.notices.flush_notices``) so that no request waits for a relay. A request that
queued something wakes it; it also looks every ``idle_seconds`` for retries that came due and
for notices a crashed process left behind. It opens its own database connection for each
round and sends through the configured relays.

One per app and per process: a WSGI server that forks workers gets a thread in each (started
on each process's first request), and the notices' leases keep two of them from sending the
same email. The outbox is in the database, so stopping the process loses nothing.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from ..config import Config
from ..delivery.notices import CLAIM_BATCH, flush_notices
from ..store import NoDatabase, open_db

log = logging.getLogger("digest.web.notices")


class NoticeWorker:
    """``wake()`` after queueing a notice; ``ensure_running()`` on every request (cheap);
    ``stop()`` ends the thread (tests, or an embedding application shutting down)."""

    def __init__(
        self,
        db_path: Path,
        config: Config,
        *,
        secret: bytes,
        clock: Callable[[], datetime],
        idle_seconds: float = 60.0,
    ):
        self.db_path = db_path
        self.config = config
        self.secret = secret
        self.clock = clock
        self.idle_seconds = idle_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._last_error: str | None = None  # logged once, until it changes

    def ensure_running(self) -> None:
        thread = self._thread
        if thread is not None and self._pid == os.getpid() and thread.is_alive():
            return
        with self._lock:
            if self._stop.is_set():
                return
            thread = self._thread
            if thread is not None and self._pid == os.getpid() and thread.is_alive():
                return
            self._pid = os.getpid()  # a forked child starts its own thread
            self._thread = threading.Thread(target=self._run, name="digest-notices", daemon=True)
            self._thread.start()

    @property
    def last_error(self) -> str | None:
        """Why this process's last round could not send at all (no relay, refused login), or
        None: shown on the admin dashboard."""
        return self._last_error

    def wake(self) -> None:
        self.ensure_running()
        self._wake.set()

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            # Cleared before the round: a wake during it makes another round right after.
            self._wake.clear()
            if not self._round():
                return
            self._wake.wait(self.idle_seconds)

    def _round(self) -> bool:
        """Send everything due; False when the database is gone (the thread then ends)."""
        try:
            db = open_db(self.db_path, migrate=False)
        except NoDatabase:
            return False
        try:
            while not self._stop.is_set():
                report = flush_notices(
                    db, self.config, secret=self.secret, now=self.clock(), limit=CLAIM_BATCH,
                    log=log,
                )  # fmt: skip
                if report.error != self._last_error and report.error:
                    log.error("confirmation emails not sent: %s", report.error)
                self._last_error = report.error
                if report.error or report.total < CLAIM_BATCH:
                    break
        except Exception:
            # The thread must outlive any one round (a locked database, a bug): log and go on.
            log.exception("sending the notices outbox failed; retrying later")
        finally:
            db.close()
        return True
