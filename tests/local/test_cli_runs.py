"""``headrace logs --attempt``, the sizing reasons in ``runs show`` and ``resume`` of a finished run,
as a user runs them: the real CLI over real task processes and the embedded control room."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.runs import RunStore

FLAKY = """
@step(retry=Retry(limit=1, backoff=Backoff(duration="1s")))
def flaky(ctx):
    print(f"attempt {ctx.attempt} of flaky speaking", flush=True)
    if ctx.attempt == 1:
        raise RuntimeError("first try fails")
    return [1, 2, 3]

@step(sizing="auto", bytes_per_row=1024)
def sized(rows):
    return len(rows.read_json())

with Pipeline("flaky-sized") as pipeline:
    sized(rows=flaky())
"""


@pytest.fixture
def finished_run(flow: Callable[[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["run", flow(FLAKY)])
    assert result.exit_code == 0, result.output
    return next(line.split()[1] for line in result.output.splitlines() if line.startswith("run flaky-sized-"))


def test_logs_attempt_n_prints_that_attempt_and_the_default_is_the_latest(finished_run: str) -> None:
    cli = CliRunner()
    first = cli.invoke(app, ["logs", finished_run, "flaky", "--attempt", "1"])
    assert first.exit_code == 0, first.output
    assert "attempt 1 of flaky speaking" in first.output and "attempt 2" not in first.output
    latest = cli.invoke(app, ["logs", finished_run, "flaky"])
    assert "attempt 2 of flaky speaking" in latest.output and "attempt 1" not in latest.output
    missing = cli.invoke(app, ["logs", finished_run, "flaky", "--attempt", "7"])
    assert missing.exit_code == 2
    assert "has no attempt 7; its attempts are 1, 2" in missing.output


def test_runs_show_gives_each_sized_attempt_its_size_and_reason(finished_run: str) -> None:
    shown = CliRunner().invoke(app, ["runs", "show", finished_run])
    assert shown.exit_code == 0, shown.output
    reason_lines = [line for line in shown.output.splitlines() if line.startswith("  sized try 1: ")]
    assert len(reason_lines) == 1
    assert "declared 1024 bytes/row x 3 rows" in reason_lines[0] and "process overhead" in reason_lines[0]


def test_resume_of_a_succeeded_run_says_there_is_nothing_to_do(finished_run: str, store: RunStore) -> None:
    before = store.attempts(finished_run)
    resumed = CliRunner().invoke(app, ["resume", finished_run])
    assert resumed.exit_code == 0
    assert f"run {finished_run}: succeeded already, nothing to resume" in resumed.output
    assert store.attempts(finished_run) == before
