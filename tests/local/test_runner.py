"""The local runner: order, parallel branches, retries, timeouts, OOM, failures, both modes."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipelines.runs import RunStore

LINEAR = """
@step
def extract(day):
    return {"day": day, "rows": [1, 2, 3]}

@step
def transform(data):
    payload = data.read_json()
    return {"day": payload["day"], "total": sum(payload["rows"])}

@step
def load(data, ctx):
    ctx.record(loaded=True)
    return data.read_json()["total"] * 10

with Pipeline("linear") as pipeline:
    raw = extract(day=pipeline.run_date)
    clean = transform(data=raw)
    load(data=clean)
"""


MODES = {
    "subprocess": {},  # forked by the run's fork server
    "exec": {"fork_server": False},  # a fresh `python -m steps run` per attempt
    "in-process": {"in_process": True},
}


@pytest.mark.parametrize("mode", list(MODES))
def test_linear_pipeline_runs_in_order_and_passes_outputs(
    flow: Callable[[str], str], run: Callable[..., object], store: RunStore, mode: str
) -> None:
    summary = run(flow(LINEAR), params={"run_date": "2026-11-01"}, **MODES[mode])
    assert summary.status == "succeeded"
    assert [t.status for t in summary.tasks.values()] == ["succeeded"] * 3
    final = summary.tasks["load"].outputs["result"]
    assert Path(final.uri.removeprefix("file://")).read_text() == "60"
    attempts = store.attempts(summary.run_id)
    assert [a.task for a in attempts] == ["extract", "transform", "load"]
    assert attempts[0].finished <= attempts[1].started and attempts[1].finished <= attempts[2].started
    assert attempts[2].records == {"loaded": True}
    extract_out = summary.tasks["extract"].outputs["result"]
    assert json.loads(Path(extract_out.uri.removeprefix("file://")).read_text())["day"] == "2026-11-01"


FAN = """
@step
def source():
    return 5

@step
def branch(x, k):
    time.sleep(0.3)
    return x.read_json() * k

@step
def join(parts):
    return sum(p.read_json() for p in parts)

with Pipeline("fan") as pipeline:
    s = source()
    parts = [branch(x=s, k=k, name=f"branch-{k}") for k in range(1, 5)]
    join(parts=parts)
"""


def test_fan_out_runs_branches_in_parallel_and_join_sees_every_branch(
    flow: Callable[[str], str], run: Callable[..., object]
) -> None:
    summary = run(flow(FAN), parallel=4)
    assert summary.status == "succeeded"
    result = summary.tasks["join"].outputs["result"]
    assert Path(result.uri.removeprefix("file://")).read_text() == str(5 * (1 + 2 + 3 + 4))
    # four 0.3 s branches side by side, not one after another
    branch_time = [summary.tasks[f"branch-{k}"].duration for k in range(1, 5)]
    assert all(d is not None and d >= 0.3 for d in branch_time)


PARALLEL = """
@step
def wide(k, folder):
    Path(folder, f"{k}.start").write_text(str(time.time()))
    time.sleep(0.4)
    Path(folder, f"{k}.end").write_text(str(time.time()))
    return k

with Pipeline("bounded") as pipeline:
    folder = pipeline.param("folder", "")
    for k in range(5):
        wide(k=k, folder=folder, name=f"wide-{k}")
"""


def _max_overlap(folder: Path) -> int:
    spans = []
    for start in folder.glob("*.start"):
        end = start.with_suffix(".end")
        spans.append((float(start.read_text()), float(end.read_text())))
    return max(sum(1 for s, e in spans if s <= moment < e) for moment, _ in spans)


@pytest.mark.parametrize("parallel", [1, 2])
def test_parallel_bounds_how_many_tasks_run_at_once(
    flow: Callable[[str], str], run: Callable[..., object], tmp_path: Path, parallel: int
) -> None:
    folder = tmp_path / f"marks-{parallel}"
    folder.mkdir()
    summary = run(flow(PARALLEL), params={"folder": str(folder)}, parallel=parallel, in_process=True)
    assert summary.status == "succeeded"
    assert _max_overlap(folder) == parallel


RETRY = """
@step(retry=Retry(limit=3, backoff=Backoff(duration="0.2s", factor=2, max_duration="0.3s")))
def flaky(ctx):
    if ctx.attempt < 3:
        raise RuntimeError(f"flaky source, attempt {ctx.attempt}")
    return ctx.attempt

@step(retry=Retry(limit=3, backoff=Backoff(duration="0.1s")))
def bad_input():
    from steps.core.errors import UserError
    raise UserError("column 'x' does not exist; fix the query")

with Pipeline("retries") as pipeline:
    flaky()
    bad_input()
"""


@pytest.mark.parametrize("in_process", [False, True], ids=["subprocess", "in-process"])
def test_failed_attempts_are_retried_after_backoff_but_exit_code_2_never(
    flow: Callable[[str], str], run: Callable[..., object], store: RunStore, in_process: bool
) -> None:
    summary = run(flow(RETRY), in_process=in_process)
    flaky = store.attempts(summary.run_id, "flaky")
    assert [a.status for a in flaky] == ["failed", "failed", "succeeded"]
    assert flaky[0].reason == "exit code 1: RuntimeError: flaky source, attempt 1"
    gap1 = flaky[1].started - flaky[0].finished
    gap2 = flaky[2].started - flaky[1].finished
    assert 0.2 <= gap1 < 1.5
    assert 0.3 <= gap2 < 1.5  # 0.2 * 2 = 0.4, capped at max_duration 0.3
    bad = store.attempts(summary.run_id, "bad-input")
    assert len(bad) == 1 and bad[0].exit_code == 2
    assert "column 'x' does not exist" in bad[0].reason
    assert summary.status == "failed"
    assert summary.tasks["flaky"].status == "succeeded"


TIMEOUT = """
import subprocess

@step(timeout="1s")
def slow(folder):
    child = subprocess.Popen(["sleep", "60"])
    Path(folder, "child.pid").write_text(str(child.pid))
    time.sleep(60)

with Pipeline("slow") as pipeline:
    slow(folder=pipeline.param("folder", ""))
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("mode", ["subprocess", "exec"])
def test_timeout_kills_the_task_and_everything_it_started(
    flow: Callable[[str], str], run: Callable[..., object], store: RunStore, tmp_path: Path, mode: str
) -> None:
    started = time.monotonic()
    summary = run(flow(TIMEOUT), params={"folder": str(tmp_path)}, **MODES[mode])
    assert time.monotonic() - started < 8
    assert summary.status == "failed"
    assert summary.tasks["slow"].reason == "timeout after 1s"
    attempt = store.attempts(summary.run_id, "slow")[0]
    assert attempt.status == "timeout" and attempt.exit_code == 124
    deadline = time.monotonic() + 3
    pid = int((tmp_path / "child.pid").read_text())
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid), "the task's own child process outlived the timeout"


OOM = """
import signal

@step(resources=Resources(memory="64Mi"))
def greedy():
    hoard = bytearray(2 * 1024**3)
    return len(hoard)

@step
def killed():
    print("about to be killed", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

with Pipeline("oom") as pipeline:
    greedy()
    killed()
"""


@pytest.mark.parametrize("mode", ["subprocess", "exec"])
def test_task_past_its_memory_limit_or_sigkilled_is_recorded_oomkilled(
    flow: Callable[[str], str], run: Callable[..., object], store: RunStore, mode: str
) -> None:
    summary = run(flow(OOM), **MODES[mode])
    assert summary.status == "failed"
    greedy = store.attempts(summary.run_id, "greedy")[0]
    assert greedy.status == "oom" and greedy.exit_code == 137
    assert greedy.reason.startswith("OOMKilled")
    killed = store.attempts(summary.run_id, "killed")[0]
    assert killed.status == "oom" and killed.reason == "OOMKilled"
    assert summary.tasks["killed"].log_tail[-1] == "about to be killed"


FITS = """
@step(resources=Resources(memory="1Gi"))
def within_limit():
    import numpy as np
    import pandas as pd

    table = pd.DataFrame({"id": range(10_000), "cuisine": ["thai", "french"] * 5_000, "score": 0.5})
    table.to_parquet("t.parquet")
    rows = len(pd.read_parquet("t.parquet"))
    cards = np.ones((400, 1024, 1024), dtype=np.uint8)  # 400 MiB, resident
    return rows + int(cards[-1, -1, -1])

with Pipeline("fits") as pipeline:
    within_limit()
"""


@pytest.mark.parametrize("mode", ["subprocess", "exec"])
def test_a_task_reading_parquet_under_its_memory_limit_is_not_called_oom(
    flow: Callable[[str], str], run: Callable[..., object], store: RunStore, mode: str
) -> None:
    # About 530 MiB resident at the peak (interpreter, pandas, pyarrow, 400 MiB of data): a pod
    # limited to 1Gi runs it, so the local limit must too.
    summary = run(flow(FITS), **MODES[mode])
    attempt = store.attempts(summary.run_id, "within-limit")[0]
    assert attempt.status == "succeeded", attempt.reason
    assert attempt.peak_memory_bytes is not None and attempt.peak_memory_bytes < 2**30


BRANCHES = """
@step
def root():
    return 1

@step
def broken(x):
    raise ValueError("bad row 17")

@step
def after_broken(x):
    return 2

@step
def healthy(x):
    time.sleep(0.3)
    return 3

@step
def after_healthy(x):
    return 4

with Pipeline("branches") as pipeline:
    r = root()
    b = broken(x=r)
    after_broken(x=b)
    h = healthy(x=r)
    after_healthy(x=h)
"""


@pytest.mark.parametrize("mode", list(MODES))
def test_failing_branch_stops_its_dependents_but_not_its_siblings(
    flow: Callable[[str], str], run: Callable[..., object], store: RunStore, mode: str
) -> None:
    summary = run(flow(BRANCHES), **MODES[mode])
    states = {name: t.status for name, t in summary.tasks.items()}
    assert states == {
        "root": "succeeded",
        "broken": "failed",
        "after-broken": "upstream-failed",
        "healthy": "succeeded",
        "after-healthy": "succeeded",
    }
    assert summary.status == "failed"
    assert summary.tasks["broken"].reason == "exit code 1: ValueError: bad row 17"
    assert any("ValueError: bad row 17" in line for line in summary.tasks["broken"].log_tail)
    assert store.get_run(summary.run_id).status == "failed"
    assert {t.task: t.status for t in store.tasks(summary.run_id)}["after-broken"] == "upstream-failed"
    assert store.attempts(summary.run_id, "after-broken") == []


def test_run_records_hold_the_run_its_attempts_and_sized_outputs(
    flow: Callable[[str], str], run: Callable[..., object], store: RunStore
) -> None:
    summary = run(flow(LINEAR), params={"run_date": "2026-11-02"})
    assert re.fullmatch(r"linear-\d{8}-\d{6}-[0-9a-f]{4}", summary.run_id)
    record = store.get_run(summary.run_id)
    assert record is not None and record.status == "succeeded" and record.finished is not None
    assert record.params["run_date"] == "2026-11-02" and record.pipeline == "linear"
    assert store.list_runs(pipeline="linear", run_date="2026-11-02", status="succeeded")[0].id == summary.run_id
    assert store.list_runs(pipeline="linear", run_date="2026-11-03") == []
    outputs = {o.task: o for o in store.outputs(summary.run_id)}
    assert set(outputs) == {"extract", "transform", "load"}
    out = outputs["extract"]
    on_disk = Path(out.uri.removeprefix("file://"))
    assert out.bytes == on_disk.stat().st_size and out.ref.sha256 and out.ref.format == "json"
    for attempt in store.attempts(summary.run_id):
        assert attempt.exit_code == 0 and attempt.duration is not None and attempt.duration > 0
        assert Path(attempt.log_path).is_file()
        assert attempt.peak_memory_bytes and attempt.peak_memory_bytes > 1024**2


ISOLATED = """
@step
def who(ctx):
    return {"pid": os.getpid(), "parent": os.getppid(), "session": os.getsid(0), "cwd": os.getcwd()}

with Pipeline("isolated") as pipeline:
    who()
"""


@pytest.mark.parametrize("mode", ["subprocess", "exec"])
def test_subprocess_attempts_run_in_their_own_process_session_and_folder(
    flow: Callable[[str], str], run: Callable[..., object], tmp_path: Path, mode: str
) -> None:
    import os

    summary = run(flow(ISOLATED), **MODES[mode])
    seen = json.loads(Path(summary.tasks["who"].outputs["result"].uri.removeprefix("file://")).read_text())
    assert seen["pid"] != os.getpid() and seen["session"] == seen["pid"]  # its own process group to kill
    assert seen["cwd"] == str(tmp_path)
    if mode == "exec":
        assert seen["parent"] == os.getpid()
    else:
        assert seen["parent"] != os.getpid()  # forked by the fork server, not by the runner


SERVER_DIES = """
@step(retry=Retry(limit=1, backoff=Backoff(duration="0.1s")))
def patient(folder, ctx):
    if ctx.attempt == 1:
        Path(folder, "server.pid").write_text(str(os.getppid()))
        time.sleep(60)
    return ctx.attempt

with Pipeline("server-dies") as pipeline:
    patient(folder=pipeline.param("folder", ""))
"""


def test_a_fork_server_that_dies_loses_its_attempt_and_the_retry_gets_a_new_server(
    flow: Callable[[str], str], run: Callable[..., object], store: RunStore, tmp_path: Path
) -> None:
    import os
    import signal
    import threading

    spec = flow(SERVER_DIES)
    summaries: list[object] = []
    thread = threading.Thread(target=lambda: summaries.append(run(spec, params={"folder": str(tmp_path)})))
    thread.start()
    marker = tmp_path / "server.pid"
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(int(marker.read_text()), signal.SIGKILL)
    thread.join(60)
    (summary,) = summaries
    assert summary.status == "succeeded"
    attempts = store.attempts(summary.run_id, "patient")
    assert [(a.status, a.reason) for a in attempts] == [
        ("failed", "lost: the fork server running it died"),
        ("succeeded", ""),
    ]


THREADS = """
@step
def threads():
    return {"omp": os.environ.get("OMP_NUM_THREADS"), "wait": os.environ.get("OMP_WAIT_POLICY")}

with Pipeline("threads") as pipeline:
    threads()
"""


@pytest.mark.parametrize("parallel", [1, 2])
def test_a_task_gets_its_share_of_the_cores_for_openmp_unless_told(
    flow: Callable[[str], str], run: Callable[..., Any], parallel: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenMP would start a thread per core in every task running at once (and wake them all at
    each parallel region: a 0.1 s scikit-learn fit took 0.9-1.1 s); each task gets
    cores // parallel, and a value the user set is kept."""
    spec = flow(THREADS)

    def seen() -> dict[str, str]:
        summary = run(spec, parallel=parallel)
        assert summary.status == "succeeded"
        ref = summary.tasks["threads"].outputs["result"]
        return dict(json.loads(Path(ref.uri.removeprefix("file://")).read_text()))

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert seen() == {"omp": str(max(1, (os.cpu_count() or 1) // parallel)), "wait": "PASSIVE"}
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert seen()["omp"] == "3"
