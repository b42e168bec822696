"""``headrace logs --attempt``, the sizing reasons in ``runs show`` and ``resume`` of a finished run,
as a user runs them: the real CLI over real task processes and the embedded control room."""

from __future__ import annotations

import re
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

@step
def table():
    import pandas as pd

    return pd.DataFrame({"recipe": ["pasta", "ramen", "tacos"], "score": [0.5, 0.25, 0.125]})

with Pipeline("flaky-sized") as pipeline:
    sized(rows=flaky())
    table()
"""


@pytest.fixture
def spec(flow: Callable[[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    return flow(FLAKY)


@pytest.fixture
def finished_run(spec: str) -> str:
    result = CliRunner().invoke(app, ["run", spec, "-p", "run_date=2026-11-01"])
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


def test_runs_show_output_prints_a_table_s_schema_rows_and_head_or_a_value(finished_run: str) -> None:
    cli = CliRunner()
    table = cli.invoke(app, ["runs", "show", finished_run, "--output", "table"])
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].startswith("table.result: parquet, ") and lines[0].endswith(", 3 rows")
    assert lines[1].startswith("file://") and lines[1].endswith("/table/result.parquet")
    assert "  recipe: large_string" in lines and "  score: double" in lines
    head = [line.split() for line in lines[lines.index("first 3 rows") + 2 :]]
    assert head == [["pasta", "0.5"], ["ramen", "0.25"], ["tacos", "0.125"]]
    value = cli.invoke(app, ["runs", "show", finished_run, "--output", "flaky.result"])
    assert value.exit_code == 0 and value.output.startswith("flaky.result: json, ")
    assert [int(x) for x in re.findall(r"^\s+(\d+),?$", value.output, re.M)] == [1, 2, 3]
    missing = cli.invoke(app, ["runs", "show", finished_run, "--output", "nope"])
    assert missing.exit_code == 2 and "has no output of task 'nope'" in missing.output


def test_runs_diff_lines_up_parameters_sizes_and_times_that_differ(finished_run: str, spec: str) -> None:
    cli = CliRunner()
    other = cli.invoke(app, ["run", spec, "-p", "run_date=2026-11-02"])
    second = next(line.split()[1] for line in other.output.splitlines() if line.startswith("run flaky-sized-"))
    diff = cli.invoke(app, ["runs", "diff", finished_run, second])
    assert diff.exit_code == 0, diff.output
    rows = [line.split() for line in diff.output.splitlines()]
    assert ["param", "run_date", "2026-11-01", "2026-11-02"] in rows
    task_rows = [line for line in diff.output.splitlines()[2:] if not line.startswith("param")]
    assert all(len(line.split()) >= 3 for line in task_rows)  # only what differs, both sides shown
    same = cli.invoke(app, ["runs", "diff", finished_run, finished_run])
    assert "same parameters, sizes, durations and outputs" in same.output


def test_runs_rm_removes_records_and_outputs_by_id_or_age(finished_run: str, store: RunStore, tmp_path: Path) -> None:
    outputs = {Path(o.uri.removeprefix("file://")) for o in store.outputs(finished_run)}
    assert outputs and all(path.exists() for path in outputs)
    cli = CliRunner()
    kept = cli.invoke(app, ["runs", "rm", "--older-than", "1d"])
    assert kept.exit_code == 0 and "removed 0 runs" in kept.output
    assert store.get_run(finished_run) is not None
    removed = cli.invoke(app, ["runs", "rm", finished_run])
    assert removed.exit_code == 0 and "removed 1 run" in removed.output
    assert store.get_run(finished_run) is None and store.attempts(finished_run) == []
    assert not any(path.exists() for path in outputs)
    bad = cli.invoke(app, ["runs", "rm", "--older-than", "soon"])
    assert bad.exit_code == 2 and "give a number and d, h or m" in bad.output


LOGGING = """
@step
def chatty(ctx):
    ctx.log.info("validation:accuracy=0.93")
    print("a plain print", flush=True)
    return 1

with Pipeline("chatty") as pipeline:
    chatty()
"""


def test_logs_hold_what_a_step_logs_through_ctx_log_as_well_as_its_prints(
    flow: Callable[[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cli = CliRunner()
    ran = cli.invoke(app, ["run", flow(LOGGING)])
    assert ran.exit_code == 0, ran.output
    run_id = next(line.split()[1] for line in ran.output.splitlines() if line.startswith("run chatty-"))
    logs = cli.invoke(app, ["logs", run_id, "chatty"])
    assert "validation:accuracy=0.93" in logs.output and "a plain print" in logs.output


def test_in_process_prints_go_to_the_task_log_not_the_terminal(
    flow: Callable[[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cli = CliRunner()
    ran = cli.invoke(app, ["run", flow(LOGGING), "--in-process"])
    assert ran.exit_code == 0, ran.output
    assert "a plain print" not in ran.output
    run_id = next(line.split()[1] for line in ran.output.splitlines() if line.startswith("run chatty-"))
    logs = cli.invoke(app, ["logs", run_id, "chatty"])
    assert "a plain print" in logs.output


def test_runs_list_and_show_piped_are_plain_lines_with_nothing_cut(finished_run: str) -> None:
    cli = CliRunner()
    for args in (["runs", "list"], ["runs", "show", finished_run]):
        shown = cli.invoke(app, args, env={"COLUMNS": "80"})
        assert shown.exit_code == 0, shown.output
        assert "│" not in shown.output and "…" not in shown.output, shown.output
        assert finished_run in shown.output
    listed = cli.invoke(app, ["runs", "list"]).output.splitlines()
    assert listed[1].split() == ["run", "pipeline", "run", "date", "status", "started", "time", "tasks", "ok"]
    shown = cli.invoke(app, ["runs", "show", finished_run]).output
    uris = [line.split()[-1] for line in shown.splitlines() if line.startswith("table ") and " parquet " in line]
    assert uris and uris[0].startswith("file:///") and uris[0].endswith("/table/result.parquet")


ONE = """
@step
def only():
    import pandas as pd

    return pd.DataFrame({"a": [1]})

with Pipeline("one") as pipeline:
    only()
"""


def test_one_of_a_thing_is_said_in_the_singular(
    flow: Callable[[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = flow(ONE)
    cli = CliRunner()
    validated = cli.invoke(app, ["validate", spec])
    assert validated.exit_code == 0 and "is valid: 1 task (0 sized)" in validated.output, validated.output
    ran = cli.invoke(app, ["run", spec])
    assert ran.exit_code == 0, ran.output
    assert re.search(r"^only\s+succeeded\s.*\s1 row, ", ran.output, re.MULTILINE), ran.output
    run_id = next(line.split()[1] for line in ran.output.splitlines() if line.startswith("run one-"))
    shown = cli.invoke(app, ["runs", "show", run_id, "--output", "only"])
    assert shown.output.startswith("only.result: parquet, ") and ", 1 row\n" in shown.output, shown.output
    assert "rows" not in shown.output.split("\n", 1)[0]
