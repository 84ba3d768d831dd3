"""README.md stays true: every `digest …` command it shows exists and answers --help, and
`digest --help` lists every command, each with help text and an example."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from digest.cli import cli
from digest.cli.app import COMMAND_MODULES

cli.load_all()  # the group imports a command's module when it runs; these tests walk them all

README = Path(__file__).resolve().parent.parent / "README.md"
PREFIXES = ("$ digest ", "digest ", ".venv/bin/digest ")
GLOBAL_OPTIONS = {"--db", "--config"}  # options of `digest` itself that take a value


def code_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line inside a fenced code block, continuation lines
    (ending in a backslash) joined onto their first line."""
    lines, inside, pending, start, console, output = [], False, "", 0, False, False
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            inside = not inside
            console = inside and line.strip() == "```console"
            output = inside and line.strip() == "```text"
            continue
        if not inside or output:  # ```text blocks are program output, not commands
            continue
        # In a console session only the prompted lines are commands; the rest is output.
        if console and not pending and not line.startswith("$ "):
            continue
        if pending:
            pending += " " + line.strip()
        else:
            pending, start = line.strip(), number
        if pending.endswith("\\"):
            pending = pending[:-1]
            continue
        lines.append((start, pending))
        pending = ""
    return lines


def readme_commands(text: str) -> list[tuple[int, str]]:
    """Each `digest …` invocation in the README's code blocks, also inside `a && b` chains."""
    found = []
    for number, line in code_blocks(text):
        for segment in re.split(r"&&|\|\||;|\|", line):
            segment = segment.strip()
            if segment.startswith(PREFIXES):
                found.append((number, segment.removeprefix("$ ")))
    return found


def command_path(command_line: str) -> tuple[list[str], str | None]:
    """The subcommand names of one command line as click resolves them, and the first name
    that does not resolve (None if all do)."""
    words = shlex.split(command_line, comments=True)[1:]
    path: list[str] = []
    command: click.Command = cli
    i = 0
    while i < len(words) and isinstance(command, click.Group):
        word = words[i]
        if word in GLOBAL_OPTIONS and not path:
            i += 2
            continue
        if word.startswith("-"):
            break
        sub = command.get_command(click.Context(command), word)
        if sub is None:
            return path, word
        path.append(word)
        command = sub
        i += 1
    return path, None


COMMANDS = readme_commands(README.read_text(encoding="utf-8"))


def test_the_readme_shows_commands():
    # Guards the parser itself: a README change that hid every command would pass vacuously.
    assert len(COMMANDS) > 20
    assert any(c.startswith(".venv/bin/digest ") for _, c in COMMANDS)


@pytest.mark.parametrize("number,command", COMMANDS, ids=[f"line{n}:{c[:40]}" for n, c in COMMANDS])
def test_every_readme_command_exists_and_has_help(number, command):
    path, missing = command_path(command)
    assert missing is None, f"README.md line {number}: `{command}`: no command {missing!r}"
    assert path, f"README.md line {number}: `{command}` names no subcommand"
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output, f"`digest {' '.join(path)} --help` shows no example"


def _all_commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from _all_commands(command, (*prefix, name))


def test_digest_help_lists_every_command_with_help_text():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    listed = {}
    in_commands = False
    for line in result.output.splitlines():
        if line.startswith("Commands:"):
            in_commands = True
            continue
        if in_commands and line.startswith("  "):
            name, _, text = line.strip().partition(" ")
            listed[name] = text.strip()
    visible = {name for name, command in cli.commands.items() if not command.hidden}
    assert set(listed) == visible
    assert all(listed.values()), [name for name, text in listed.items() if not text]


@pytest.mark.parametrize(
    "path,command", list(_all_commands(cli)), ids=[" ".join(p) for p, _ in _all_commands(cli)]
)
def test_every_command_has_help_with_an_example(path, command):
    assert (command.help or "").strip(), f"`digest {' '.join(path)}` has no help text"
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            assert sub.get_short_help_str().strip(), f"`digest {' '.join(path)} {name}`"


def test_each_command_is_loaded_from_the_module_that_defines_it():
    defined = {
        name: command.callback.__module__.removeprefix("digest.cli.")
        for name, command in cli.commands.items()
        if name != "init" and command.callback is not None
    }
    assert defined == COMMAND_MODULES


def test_a_command_starts_without_the_rest_of_the_library():
    # `digest subscribers list` must not pay for page extraction, the email renderer or the
    # web app (most of a second of start-up on every cron run).
    code = (
        "import sys\n"
        "from digest.cli import cli\n"
        "try:\n"
        "    cli(['subscribers', 'list', '--help'], prog_name='digest')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('trafilatura', 'premailer', 'flask') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "[]"


def test_the_command_finder_sees_chains_continuations_and_unknown_commands():
    text = (
        "```sh\n"
        "python3 -m venv .venv && .venv/bin/digest init && .venv/bin/digest demo\n"
        "$ digest lists create world --title W \\\n"
        "    --from a@example.com\n"
        "digest nosuch thing   # a comment\n"
        "```\n"
        "digest outside a block\n"
    )
    found = readme_commands(text)
    assert [c for _, c in found] == [
        ".venv/bin/digest init",
        ".venv/bin/digest demo",
        "digest lists create world --title W  --from a@example.com",
        "digest nosuch thing   # a comment",
    ]
    assert [n for n, _ in found] == [2, 2, 3, 5]
    assert command_path(found[2][1]) == (["lists", "create"], None)
    assert command_path("digest --db x.db --config y.toml users add alice") == (
        ["users", "add"],
        None,
    )
    assert command_path(found[3][1]) == ([], "nosuch")


def test_the_configuration_reference_is_the_file_init_writes():
    from digest.config import EXAMPLE_TOML, SCHEMA

    text = README.read_text(encoding="utf-8")
    assert "```toml\n" + EXAMPLE_TOML + "```" in text
    # ... and that file mentions every setting there is.
    for section, keys in SCHEMA.items():
        for key in keys:
            assert key in EXAMPLE_TOML, (section, key)
