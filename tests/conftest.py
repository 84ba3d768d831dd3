"""Shared fixtures: real SQLite files in tmp_path, a CLI runner bound to them."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from digest.cli import cli
from digest.store import open_db


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "digest.db"


@pytest.fixture
def db(db_path: Path):
    database = open_db(db_path)
    yield database
    database.close()


@pytest.fixture
def run(db_path: Path, tmp_path: Path, monkeypatch):
    """Run the CLI against this test's database: ``run("ingest", "feed.xml")``.
    Returns click's Result; the working directory is tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIGEST_CONFIG", raising=False)
    monkeypatch.delenv("DIGEST_BASE_URL", raising=False)
    monkeypatch.delenv("DIGEST_SMTP_URL", raising=False)
    monkeypatch.setenv("DIGEST_SECRET", "test-secret")
    runner = CliRunner()

    def _run(*args: str, input: str | None = None):
        return runner.invoke(
            cli, ["--db", str(db_path), *args], input=input, catch_exceptions=False
        )

    return _run
