"""Every file of the real-world feed corpus (``../shared/corpus/feeds``: feedparser's own test
feeds, well-formed and not, and feeds captured by rss2email, with their side files) goes
through ``ingest_sources`` into a fresh store of its own, with a time limit per file. Asserted:
no traceback, no hang, and a reason for every file or entry that is rejected. Skipped where the
corpus is absent (a user's clone).

Files are handed one at a time to two worker processes; a worker that does not answer within
``PER_FILE_SECONDS`` is killed and its file counted as a hang (a hang in C code, a regular
expression say, could not be interrupted inside the process). ``-s`` prints the counts."""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "feeds"
PER_FILE_SECONDS = 20
WORKERS = 2
NOW = datetime(2025, 1, 24, 12, 0, tzinfo=UTC)


@dataclass
class Outcome:
    path: str
    kind: str  # "stored" | "nothing stored" | "rejected" | "crash" | "hang"
    reason: str | None = None  # why the source was rejected, or the traceback
    articles: int = 0
    rejected_entries: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # anything that breaks the rules


def ingest_one(template: object, path: str) -> Outcome:
    """Ingest ``path`` into a copy of the empty ``template`` store (in memory)."""
    from sqlite_utils import Database

    from digest.config import Config
    from digest.ingest.pipeline import ingest_sources

    conn = sqlite3.connect(":memory:", isolation_level=None)
    template.conn.backup(conn)  # type: ignore[attr-defined]
    conn.execute("PRAGMA foreign_keys=ON")
    db = Database(conn)
    try:
        (report,) = ingest_sources(db, [path], config=Config(), now=NOW)
    except BaseException:  # noqa: BLE001 - exactly what this test looks for
        return Outcome(path, "crash", reason=traceback.format_exc())
    finally:
        conn.close()
    texts = [report.error or "", *report.warnings, *(str(r) for r in report.rejected)]
    problems = [t for t in texts if "Traceback" in t or not t.isprintable()]
    problems += [f"rejected without a reason: {r.entry}" for r in report.rejected if not r.reason]
    if report.error is not None:
        if not report.error.strip():
            problems.append("rejected without a reason")
        return Outcome(path, "rejected", reason=report.error, problems=problems)
    stored = report.new + report.updated + report.unchanged
    return Outcome(
        path,
        "stored" if stored else "nothing stored",
        articles=stored,
        rejected_entries=[str(r) for r in report.rejected],
        problems=problems,
    )


def worker(conn: Connection) -> None:
    from digest.store import open_db

    template = open_db(":memory:", create=True)
    while (path := conn.recv()) is not None:
        conn.send(ingest_one(template, path))


class Workers:
    """``WORKERS`` processes, each given one file at a time; one that overruns is replaced."""

    def __init__(self) -> None:
        self.context = multiprocessing.get_context("spawn")
        self.slots = [self._start() for _ in range(WORKERS)]

    def _start(self) -> tuple[multiprocessing.process.BaseProcess, Connection]:
        parent, child = self.context.Pipe()
        process = self.context.Process(target=worker, args=(child,), daemon=True)
        process.start()
        return process, parent

    def run(self, paths: list[str]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        pending = list(reversed(paths))
        busy: dict[int, tuple[str, float]] = {}  # slot -> (path, deadline)
        while pending or busy:
            for slot in range(WORKERS):
                if slot not in busy and pending:
                    path = pending.pop()
                    self.slots[slot][1].send(path)
                    busy[slot] = (path, time.monotonic() + PER_FILE_SECONDS)
            for slot, (path, deadline) in list(busy.items()):
                process, conn = self.slots[slot]
                if conn.poll(0.005):
                    outcomes.append(conn.recv())
                    del busy[slot]
                elif time.monotonic() > deadline or not process.is_alive():
                    kind = "hang" if process.is_alive() else "crash"
                    process.kill()
                    process.join()
                    outcomes.append(Outcome(path, kind, reason=f"worker {kind} on this file"))
                    self.slots[slot] = self._start()
                    del busy[slot]
        return outcomes

    def close(self) -> None:
        for process, conn in self.slots:
            conn.send(None)
            process.join(5)
            process.kill()


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus/feeds is absent")
def test_every_corpus_file_is_stored_or_rejected_with_a_reason():
    paths = sorted(str(p) for p in CORPUS.rglob("*") if p.is_file())
    assert len(paths) > 1000  # the corpus is there, whole
    started = time.monotonic()
    workers = Workers()
    try:
        outcomes = workers.run(paths)
    finally:
        workers.close()
    took = time.monotonic() - started
    kinds = Counter(o.kind for o in outcomes)
    feeds = [o for o in outcomes if Path(o.path).suffix in {".xml", ".rss", ".atom", ".json"}]
    print(
        f"\ncorpus: {len(outcomes)} files in {took:.0f} s: {kinds['stored']} stored"
        f" ({sum(o.articles for o in outcomes)} articles), {kinds['nothing stored']} read with"
        f" nothing to store, {kinds['rejected']} rejected with a reason, {kinds['crash']}"
        f" crashes, {kinds['hang']} hangs; feed files {len(feeds)}, of them"
        f" {sum(o.kind == 'rejected' for o in feeds)} rejected; rejected entries"
        f" {sum(len(o.rejected_entries) for o in outcomes)}"
    )
    assert len(outcomes) == len(paths)
    failures = [o for o in outcomes if o.kind in ("crash", "hang")]
    assert not failures, "\n\n".join(f"{o.path}: {o.kind}\n{o.reason}" for o in failures[:5])
    broken = [o for o in outcomes if o.problems]
    assert not broken, "\n".join(f"{o.path}: {o.problems[:3]}" for o in broken[:10])
    # Every file is accounted for: stored, read with nothing to store (each entry rejected
    # with its reason, or none at all), or rejected with a one-line reason.
    for o in outcomes:
        if o.kind == "rejected":
            assert o.reason and "\n" not in o.reason, o
