"""docs/deploy.md stays true: every ``headrace`` command it shows exists with the options it uses."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.argo_ops.conftest import invoke

ROOT = Path(__file__).resolve().parents[2]


def documented_commands() -> list[list[str]]:
    text = (ROOT / "docs" / "deploy.md").read_text()
    found: list[list[str]] = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("headrace "):
                found.append(shlex.split(line)[1:])
    return found


COMMANDS = documented_commands()


def test_the_guide_shows_the_whole_workflow() -> None:
    shown = {argv[0] for argv in COMMANDS}
    assert {
        "deploy",
        "schedules",
        "render",
        "submit",
        "list",
        "status",
        "logs",
        "retry",
        "resubmit",
        "stop",
        "backfill",
    } <= shown


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(a) for a in COMMANDS])
def test_each_documented_command_parses(argv: list[str], cli: CliRunner) -> None:
    """Parsing happens before ``--help`` answers: an unknown command or option fails here."""
    code, out = invoke(cli, *argv, "--help")
    assert code == 0, out
    assert "Usage:" in out


@pytest.mark.parametrize("argv", [["backfill", "x", "--since", "2026-11-01"], ["schedules", "pause", "x"]])
def test_the_check_catches_a_command_that_does_not_exist(argv: list[str], cli: CliRunner) -> None:
    code, _ = invoke(cli, *argv, "--help")
    assert code != 0
