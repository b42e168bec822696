"""One runner per run: ``headrace run`` and ``resume`` hold the run, a second one refuses."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from pipelines.runs import RunStore

GATED = """
@step
def gate(folder, ctx):
    with open(Path(folder, "starts"), "a") as starts:
        starts.write(f"{ctx.attempt}\\n")
    if ctx.attempt == 1:
        raise RuntimeError("the first try fails")
    Path(folder, f"running.{ctx.attempt}").write_text(str(os.getpid()))
    while not Path(folder, "release").exists():
        time.sleep(0.05)
    return 1

with Pipeline("gated") as pipeline:
    folder = pipeline.param("folder", "")
    gate(folder=folder)
"""

REFUSAL = re.compile(
    r"^error: run (\S+): another runner holds it \(pid (\d+) on \S+, since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\); "
    r"wait for it or stop it first$"
)


def _failed_run(flow: Callable[[str], str], tmp_path: Path, headrace: Callable[..., subprocess.Popen[str]]) -> str:
    """A run of the gated pipeline whose first try failed: something to resume."""
    first = headrace("run", flow(GATED), "-p", f"folder={tmp_path}", cwd=tmp_path)
    first.communicate(timeout=120)
    assert first.returncode == 1
    (record,) = RunStore(tmp_path / ".headrace" / "runs.db").list_runs(pipeline="gated")
    return record.id


def _wait_for(path: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_two_concurrent_resumes_of_one_run_one_refuses_naming_the_holder_and_the_other_completes(
    flow: Callable[[str], str], tmp_path: Path, headrace: Callable[..., subprocess.Popen[str]]
) -> None:
    run_id = _failed_run(flow, tmp_path, headrace)
    one = headrace("resume", run_id, cwd=tmp_path)
    two = headrace("resume", run_id, cwd=tmp_path)
    _wait_for(tmp_path / "running.2")  # one of them runs the task, and holds it there
    deadline = time.monotonic() + 60
    while one.poll() is None and two.poll() is None:
        assert time.monotonic() < deadline, "neither resume refused"
        time.sleep(0.05)
    refused, winner = (one, two) if one.poll() is not None else (two, one)
    _, stderr = refused.communicate()
    assert refused.returncode == 2, stderr
    line = stderr.strip()
    match = REFUSAL.match(line)
    assert match is not None and len(line.splitlines()) == 1, line
    assert match.group(1) == run_id and int(match.group(2)) == winner.pid

    (tmp_path / "release").write_text("")
    _, winner_err = winner.communicate(timeout=120)
    assert winner.returncode == 0, winner_err
    assert (tmp_path / "starts").read_text().split() == ["1", "2"]  # the task ran once per runner


def test_resume_after_a_sigkill_of_the_runner_holding_the_run_goes_ahead(
    flow: Callable[[str], str], tmp_path: Path, headrace: Callable[..., subprocess.Popen[str]]
) -> None:
    run_id = _failed_run(flow, tmp_path, headrace)
    holder = headrace("resume", run_id, cwd=tmp_path)
    _wait_for(tmp_path / "running.2")
    holder.send_signal(signal.SIGKILL)
    holder.communicate(timeout=30)

    (tmp_path / "release").write_text("")
    again = headrace("resume", run_id, cwd=tmp_path)
    _, stderr = again.communicate(timeout=120)
    assert again.returncode == 0, stderr
    assert RunStore(tmp_path / ".headrace" / "runs.db").get_run(run_id).status == "succeeded"  # type: ignore[union-attr]


HELD = """
@step
def hold(folder):
    Path(folder, "running").write_text(str(os.getpid()))
    while not Path(folder, "release").exists():
        time.sleep(0.05)
    return 1

with Pipeline("held") as pipeline:
    hold(folder=pipeline.param("folder", ""))
"""


def test_a_resume_while_the_first_run_still_runs_refuses_naming_that_runner(
    flow: Callable[[str], str], tmp_path: Path, headrace: Callable[..., subprocess.Popen[str]]
) -> None:
    runner = headrace("run", flow(HELD), "-p", f"folder={tmp_path}", cwd=tmp_path)
    _wait_for(tmp_path / "running")
    (record,) = RunStore(tmp_path / ".headrace" / "runs.db").list_runs(pipeline="held")
    resumed = headrace("resume", record.id, cwd=tmp_path)
    _, stderr = resumed.communicate(timeout=60)
    assert resumed.returncode == 2, stderr
    match = REFUSAL.match(stderr.strip())
    assert match is not None, stderr
    assert match.group(1) == record.id and int(match.group(2)) == runner.pid

    (tmp_path / "release").write_text("")
    _, runner_err = runner.communicate(timeout=120)
    assert runner.returncode == 0, runner_err
