"""A task attempt in a pod reports itself: `python -m steps run ... --report` (what the compiler
emits for every Argo task) posts its events and observation to the control room service, so the
control room learns from Argo runs too; without a control room it runs exactly as before."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.control_room.conftest import TOKEN, Served

FLOW = """
from pipelines import Pipeline, Resources, step

@step(resources=Resources(cpu="250m", memory="512Mi"))
def make(n: int):
    return [{"i": i} for i in range(n)]

@step
def boom(rows):
    raise RuntimeError("the source table is empty")

with Pipeline("reporting") as pipeline:
    rows = make(n=5)
    boom(rows=rows)
"""

pytestmark = pytest.mark.integration


def _run_task(tmp_path: Path, task: str, *extra: str, url: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_")}
    env["HEADRACE_STATE_DIR"] = str(tmp_path / "pod-state")
    if url:
        env.update(HEADRACE_CONTROL_ROOM_URL=url, HEADRACE_CONTROL_ROOM_TOKEN=TOKEN)
    command = [sys.executable, "-m", "steps", "run", "flow:pipeline", task, "--run-id", "wf-7", "--report"]
    return subprocess.run(
        [*command, "--outputs-dir", str(tmp_path / task), *extra],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _run_record(url: str, run_id: str) -> dict[str, Any]:
    request = urllib.request.Request(f"{url}/v1/runs/{run_id}", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.load(response))


def test_a_reported_attempt_gives_the_control_room_its_observation_and_events(served: Served, tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(FLOW)
    made = _run_task(tmp_path, "make", url=served.url)
    assert made.returncode == 0, made.stderr
    ref = (tmp_path / "make" / "result").read_text()
    failed = _run_task(tmp_path, "boom", "--attempt", "2", "--input", f"make.result={ref}", url=served.url)
    assert failed.returncode == 1

    record = _run_record(served.url, "wf-7")
    observed = {(o["task"], o["attempt"]): o for o in record["observations"]}
    made_obs = observed[("make", 1)]
    assert made_obs["outcome"] == "succeeded" and made_obs["output_rows"] == 5
    assert made_obs["output_bytes"] == json.loads(ref)["bytes"]
    assert made_obs["cpu"] == "250m" and made_obs["memory"] == "512Mi"  # the declared size it ran at
    boom_obs = observed[("boom", 2)]
    assert boom_obs["outcome"] == "failed" and "the source table is empty" in boom_obs["reason"]
    assert boom_obs["input_rows"] == 5
    kinds = [(e["task"], e["kind"]) for e in record["events"]]
    assert kinds == [
        ("make", "task.started"),
        ("make", "task.succeeded"),
        ("boom", "task.started"),
        ("boom", "task.failed"),
    ]


def test_without_a_control_room_a_reported_attempt_just_runs(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(FLOW)
    made = _run_task(tmp_path, "make", url=None)
    assert made.returncode == 0 and made.stderr == ""
    assert json.loads((tmp_path / "make" / "result").read_text())["rows"] == 5


def test_an_unreachable_control_room_never_fails_the_task(tmp_path: Path) -> None:
    from tests.conftest import free_port

    (tmp_path / "flow.py").write_text(FLOW)
    made = _run_task(tmp_path, "make", url=f"http://127.0.0.1:{free_port()}")
    assert made.returncode == 0, made.stderr
    assert json.loads((tmp_path / "make" / "result").read_text())["rows"] == 5
