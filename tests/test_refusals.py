"""Commands refuse to work on the wrong database or configuration instead of quietly doing
nothing: only `digest init` creates a database, and a missing or invalid configuration file
stops every command with its message (and nothing is written)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from digest.cli import cli

# Commands that need a database, with arguments that are valid otherwise.
COMMANDS = [
    ["ingest", "feed.xml"],
    ["fetch"],
    ["articles", "list"],
    ["lists", "list"],
    ["subscribers", "list"],
    ["subscribers", "add", "ann@example.com", "--list", "world"],
    ["suppress", "x@example.com"],
    ["build"],
    ["send", "--dry-run"],
    ["deliveries"],
    ["status"],
    ["run", "--once"],
    ["users", "list"],
]


@pytest.fixture
def cli_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("DIGEST_DB", "DIGEST_CONFIG", "DIGEST_BASE_URL", "DIGEST_SMTP_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("DIGEST_SECRET", raising=False)
    (tmp_path / "feed.xml").write_text("<rss version='2.0'><channel></channel></rss>")
    runner = CliRunner()

    def _run(*args: str):
        return runner.invoke(cli, list(args), catch_exceptions=False)

    return _run


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_a_missing_database_is_refused_and_nothing_is_created(cli_run, tmp_path, args):
    before = sorted(p.name for p in tmp_path.iterdir())
    result = cli_run("--db", "typo.db", *args)
    assert result.exit_code == 1, result.output
    assert "Error: no database at typo.db: run 'digest init' or pass --db" in result.output
    assert "Traceback" not in result.output
    # No database, no WAL, no secret file, no lock file: nothing at all.
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_the_default_database_is_not_created_either(cli_run, tmp_path):
    result = cli_run("run", "--once")  # a cron job in the wrong folder
    assert result.exit_code == 1
    assert "no database at digest.db" in result.output
    assert not (tmp_path / "digest.db").exists() and not (tmp_path / "digest.db.secret").exists()


def test_init_creates_the_database_private_and_then_commands_work(cli_run, tmp_path):
    assert cli_run("--db", "news.db", "init").exit_code == 0
    assert (tmp_path / "news.db").stat().st_mode & 0o077 == 0  # subscribers' addresses
    result = cli_run("--db", "news.db", "lists", "list")
    assert result.exit_code == 0 and "no lists yet" in result.output


@pytest.mark.parametrize("args", [["lists", "list"], ["subscribers", "list"], ["status"],
                                  ["ingest", "feed.xml"], ["init"]])  # fmt: skip
def test_a_missing_config_file_stops_every_command(cli_run, tmp_path, args):
    assert cli_run("init").exit_code == 0
    result = cli_run("--config", "nope.toml", *args)
    assert result.exit_code == 1, result.output
    assert "Error: nope.toml: configuration file not found" in result.output
    result = cli_run(*args, "--config", "nope.toml")  # given to the command itself
    assert result.exit_code == 1 and "nope.toml: configuration file not found" in result.output


def test_digest_config_naming_a_missing_file_stops_commands(cli_run, monkeypatch):
    assert cli_run("init").exit_code == 0
    monkeypatch.setenv("DIGEST_CONFIG", "gone.toml")
    result = cli_run("lists", "list")
    assert result.exit_code == 1 and "gone.toml: configuration file not found" in result.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[send\n", "invalid TOML"),
        ("[site]\nnmae = 'x'\n", "unknown key 'site.nmae'"),
        ("[send]\nconcurrency = 'four'\n", "key 'send.concurrency': expected int, got str 'four'"),
        (
            "[site]\nbase_url = 'news.example.com'\n",
            "site.base_url must be an absolute http(s) URL",
        ),
    ],
)
@pytest.mark.parametrize("args", [["lists", "list"], ["subscribers", "list"], ["build"],
                                  ["articles", "list"]])  # fmt: skip
def test_a_bad_config_stops_every_command_with_its_message(cli_run, tmp_path, text, message, args):
    assert cli_run("init").exit_code == 0
    (tmp_path / "bad.toml").write_text(text)
    result = cli_run("--config", "bad.toml", *args)
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output
