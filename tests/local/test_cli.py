"""``headrace run|resume|runs|logs`` as a user runs them: real processes, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.runs import RunStore

SLOW = """
@step
def first(folder):
    count = Path(folder, "first.count")
    count.write_text(str(int(count.read_text()) + 1 if count.exists() else 1))
    return {"value": 21}

@step
def second(x, folder, ctx):
    print(f"second attempt {ctx.attempt} starts", flush=True)
    if ctx.attempt == 1:
        Path(folder, "second.pid").write_text(str(os.getpid()))
        time.sleep(60)
    return x.read_json()["value"] * 2

@step
def third(y):
    return y.read_json() + 0

with Pipeline("slow-chain") as pipeline:
    folder = pipeline.param("folder", "")
    a = first(folder=folder)
    b = second(x=a, folder=folder)
    third(y=b)
"""


def _wait_for(path: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def _gone(pid: int, seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _alive(pid)


def test_sigkill_of_the_runner_keeps_the_records_and_resume_completes_the_run(
    flow: Callable[[str], str], tmp_path: Path, store: RunStore, headrace: Callable[..., subprocess.Popen[str]]
) -> None:
    spec = flow(SLOW)
    runner = headrace("run", spec, "-p", f"folder={tmp_path}", cwd=tmp_path)
    _wait_for(tmp_path / "second.pid")
    task_pid = int((tmp_path / "second.pid").read_text())
    runner.send_signal(signal.SIGKILL)
    runner.wait(10)
    assert _gone(task_pid), "the task outlived its killed runner"

    (record,) = store.list_runs(pipeline="slow-chain")
    assert record.status == "running" and not record.runner_alive
    tasks = {t.task: t.status for t in store.tasks(record.id)}
    assert tasks == {"first": "succeeded", "second": "running", "third": "pending"}
    assert [o.task for o in store.outputs(record.id)] == ["first"]

    resumed = headrace("resume", record.id, cwd=tmp_path)
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert store.get_run(record.id).status == "succeeded"
    assert (tmp_path / "first.count").read_text() == "1"  # reused, not run again
    second = store.attempts(record.id, "second")
    assert [(a.attempt, a.status) for a in second] == [(1, "lost"), (2, "succeeded")]
    third = store.outputs(record.id, "third")[0]
    assert Path(third.uri.removeprefix("file://")).read_text() == "42"
    assert "reused" in out


def test_ctrl_c_stops_running_tasks_and_marks_the_run_cancelled(
    flow: Callable[[str], str], tmp_path: Path, store: RunStore, headrace: Callable[..., subprocess.Popen[str]]
) -> None:
    spec = flow(SLOW)
    runner = headrace("run", spec, "-p", f"folder={tmp_path}", cwd=tmp_path)
    _wait_for(tmp_path / "second.pid")
    task_pid = int((tmp_path / "second.pid").read_text())
    runner.send_signal(signal.SIGINT)
    out, _err = runner.communicate(timeout=60)
    assert runner.returncode == 130
    assert "cancelled" in out
    assert _gone(task_pid)
    (record,) = store.list_runs(pipeline="slow-chain")
    assert record.status == "cancelled"
    assert {t.task: t.status for t in store.tasks(record.id)} == {
        "first": "succeeded",
        "second": "cancelled",
        "third": "not-run",
    }
    assert store.attempts(record.id, "second")[0].status == "cancelled"


FAILING = """
@step
def shout():
    print("hello from shout", flush=True)
    return 1

@step
def crash(x):
    print("crash is about to fail", flush=True)
    raise RuntimeError("the source table is empty")

with Pipeline("noisy") as pipeline:
    crash(x=shout())
"""


def test_failed_run_exits_1_shows_the_reason_and_log_tail_and_logs_prints_task_output(
    flow: Callable[[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cli = CliRunner()
    result = cli.invoke(app, ["run", flow(FAILING)])
    assert result.exit_code == 1
    assert "task crash failed: exit code 1: RuntimeError: the source table is empty" in result.output
    assert "crash is about to fail" in result.output
    run_id = next(line.split()[1] for line in result.output.splitlines() if line.startswith("run noisy-"))

    logs = cli.invoke(app, ["logs", run_id, "shout"])
    assert logs.exit_code == 0 and "hello from shout" in logs.output
    everything = cli.invoke(app, ["logs", run_id])
    assert "[shout] hello from shout" in everything.output
    assert "[crash] crash is about to fail" in everything.output

    listed = cli.invoke(app, ["runs", "list", "--status", "failed"], env={"COLUMNS": "200"})
    assert run_id in listed.output and "1/2" in listed.output
    shown = cli.invoke(app, ["runs", "show", run_id], env={"COLUMNS": "250"})
    assert "RuntimeError: the source table is empty" in shown.output
    assert "shout" in shown.output and "result" in shown.output


def test_the_command_ends_with_the_runs_exit_code_and_everything_written(
    flow: Callable[[str], str], tmp_path: Path, store: RunStore, headrace: Callable[..., subprocess.Popen[str]]
) -> None:
    """The console script leaves through ``os._exit`` once the run is closed (no teardown of the
    loaded libraries): the exit code is still the run's, the piped summary is whole, and the run
    records and the control room's events are on disk."""
    import sqlite3

    failing = headrace("run", flow(FAILING), cwd=tmp_path)
    out, err = failing.communicate(timeout=120)
    assert failing.returncode == 1, err
    assert out.rstrip().splitlines()[-1].startswith("resume with: headrace resume noisy-")  # the last line
    assert "task crash failed: exit code 1: RuntimeError: the source table is empty" in out

    passing = headrace("run", flow(PASSING), cwd=tmp_path)
    out, err = passing.communicate(timeout=120)
    assert passing.returncode == 0, err
    (record,) = store.list_runs(pipeline="quiet")
    assert record.status == "succeeded" and f"run {record.id} succeeded" in out
    room = sqlite3.connect(Path(os.environ["HEADRACE_STATE_DIR"]) / "control-room.db")
    try:
        kinds = {kind for (kind,) in room.execute("SELECT kind FROM events WHERE run_id = ?", (record.id,))}
    finally:
        room.close()
    assert {"run.started", "task.succeeded", "run.succeeded"} <= kinds


PASSING = """
@step
def calm():
    return 1

with Pipeline("quiet") as pipeline:
    calm()
"""


def _one_line_exit_2(args: list[str], expected: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, args, env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    text = result.output.strip()
    assert "Traceback" not in text and len(text.splitlines()) == 1, text
    assert expected in text


def test_bad_input_gets_one_clear_line_and_exit_2(
    flow: Callable[[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: RunStore
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = flow(FAILING)
    _one_line_exit_2(["run", "no_such_module:pipeline"], "module no_such_module: not found", tmp_path)
    _one_line_exit_2(["run", spec.replace(":pipeline", ":nothing")], "has no 'nothing'", tmp_path)
    _one_line_exit_2(["run", spec, "-p", "run_date"], "use -p NAME=VALUE", tmp_path)
    _one_line_exit_2(["run", spec, "-p", "colour=red"], "unknown parameter 'colour'", tmp_path)
    _one_line_exit_2(["run", spec, "-p", "run_date=yesterday"], "is not a date", tmp_path)
    _one_line_exit_2(["resume", "noisy-20260101-000000-beef"], "run noisy-20260101-000000-beef: not found", tmp_path)
    _one_line_exit_2(["runs", "show", "nope"], "run nope: not found", tmp_path)


def test_logs_of_a_run_that_is_not_local_goes_to_argo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["logs", "recipe-stream-abc12"], env={"COLUMNS": "300"})
    assert result.exit_code == 2
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert "ARGO_SERVER" in result.output  # Argo's logs were asked for, and said what they need


def test_run_pid_is_recorded_so_resume_knows_a_live_runner(store: RunStore) -> None:
    store.create_run("p-20260101-000000-0001", pipeline="p", spec="x:pipeline", params={}, tasks=[])
    record = store.get_run("p-20260101-000000-0001")
    assert record is not None and record.pid == os.getpid() and record.runner_alive


TICKING = """
@step
def ticker():
    for i in range(1, 4):
        print(f"tick {i}", flush=True)
        time.sleep(0.5)
    return 3

with Pipeline("ticking") as pipeline:
    ticker()
"""


def test_logs_follow_prints_lines_as_they_come_and_stops_when_the_run_ends(
    flow: Callable[[str], str], tmp_path: Path, store: RunStore, headrace: Callable[..., subprocess.Popen[str]]
) -> None:
    runner = headrace("run", flow(TICKING), cwd=tmp_path)
    deadline = time.monotonic() + 60
    while not (store.list_runs() and store.attempts(store.list_runs()[0].id)):
        assert time.monotonic() < deadline, "the run never started its task"
        time.sleep(0.05)
    run_id = store.list_runs()[0].id
    follower = headrace("logs", run_id, "ticker", "-f", cwd=tmp_path)
    out, err = follower.communicate(timeout=60)
    assert follower.returncode == 0, err
    assert [line for line in out.splitlines() if line.startswith("tick")] == ["tick 1", "tick 2", "tick 3"]
    assert runner.wait(30) == 0
    assert store.get_run(run_id).status == "succeeded"


def test_the_local_runner_never_imports_hera() -> None:
    import sys

    code = "import sys, pipelines.local, pipelines.runs, pipelines.local.view; print('hera' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
