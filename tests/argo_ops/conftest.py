"""Fixtures for the Argo operations tests: a local Argo Server + Kubernetes API, a pipeline module."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.integration.fake_argo import FakeArgo

FLOW = """
from pipelines import Pipeline, Schedule, step


@step
def extract(day: str) -> dict:
    return {"day": day, "rows": 3}


@step
def train(data: dict) -> dict:
    return {"model": "ok", "rows": data["rows"]}


with Pipeline("NAME", schedule=SCHEDULE, params={"limit": 10}) as pipeline:
    train(data=extract(day=pipeline.run_date))
"""


def write_flow(
    folder: Path, name: str = "daily-scores", schedule: str = 'Schedule("0 3 * * *", timezone="Asia/Tokyo")'
) -> str:
    """A pipeline module in ``folder``; returns its ``path:attribute`` spec (relative to cwd)."""
    module = folder / f"{name.replace('-', '_')}.py"
    sys.modules.pop(module.stem, None)  # another test (or an earlier version) may have loaded it
    module.write_text(textwrap.dedent(FLOW.replace("NAME", name).replace("SCHEDULE", schedule)), encoding="utf-8")
    return f"{module.name}:pipeline"


@pytest.fixture
def argo() -> Iterator[FakeArgo]:
    with FakeArgo() as server:
        yield server


@pytest.fixture
def argo_env(argo: FakeArgo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeArgo:
    """ARGO_SERVER / ARGO_TOKEN pointing at the local server; the cwd holds the pipeline module."""
    monkeypatch.setenv("ARGO_SERVER", argo.url)
    monkeypatch.setenv("ARGO_TOKEN", argo.cluster.token)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return argo


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A runner whose rich consoles are as wide as a real terminal (tables are not cut at 80)."""
    from pipelines.cli import common

    # The private field, not the ``width`` property: undoing a property set would pin the width
    # the property reported (80 without a terminal) for every later test.
    monkeypatch.setattr(common.console, "_width", 160)
    monkeypatch.setattr(common.err_console, "_width", 160)
    return CliRunner()


def invoke(runner: CliRunner, *args: str) -> tuple[int, str]:
    """Run ``headrace ARGS``; returns the exit code and everything printed (stdout + stderr)."""
    from pipelines.cli import app

    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.output
