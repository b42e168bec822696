"""The runner and the control room: sizing before auto-sized tasks, observations, run events."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.runs import RunStore
from steps.core.contract import EventKind, Observation, Outcome, RunEvent, SizingDecision, SizingRequest, SizingTarget


class RecordingRoom:
    """A control room that answers from a function and keeps everything it was told."""

    def __init__(self, decide: Callable[[SizingRequest], SizingDecision] | None = None) -> None:
        self.decide = decide or (lambda r: SizingDecision(SizingTarget.POD, "m5.large", memory="2Gi", reason="test"))
        self.requests: list[SizingRequest] = []
        self.observations: list[Observation] = []
        self.events: list[RunEvent] = []

    def size(self, request: SizingRequest) -> SizingDecision:
        self.requests.append(request)
        return self.decide(request)

    def observe(self, observation: Observation) -> None:
        self.observations.append(observation)

    def emit(self, event: RunEvent) -> None:
        self.events.append(event)


class BrokenRoom:
    def size(self, request: SizingRequest) -> SizingDecision:
        raise ConnectionError("control room is down")

    def observe(self, observation: Observation) -> None:
        raise ConnectionError("control room is down")

    def emit(self, event: RunEvent) -> None:
        raise ConnectionError("control room is down")


SIZED = """
@step
def extract():
    return {"rows": list(range(1000))}

@step(sizing="auto", resources=Resources(cpu="1", memory="1Gi"), timeout="5m", bytes_per_row=100)
def train(data, ctx):
    return {"instance": ctx.instance_type(None), "memory": ctx.sizing.memory if ctx.sizing else None}

with Pipeline("sized") as pipeline:
    train(data=extract())
"""


@pytest.mark.parametrize("in_process", [False, True], ids=["subprocess", "in-process"])
def test_auto_sized_task_gets_the_decision_and_every_attempt_is_observed(
    flow: Callable[[str], str], run: Callable[..., Any], store: RunStore, in_process: bool
) -> None:
    room = RecordingRoom()
    summary = run(flow(SIZED), control_room=room, in_process=in_process)
    assert summary.status == "succeeded"
    (request,) = room.requests  # extract is static: never sized
    extract_out = summary.tasks["extract"].outputs["result"]
    assert request.task == "train" and request.input_bytes == extract_out.bytes and request.input_bytes > 0
    assert request.declared == {"cpu": "1", "memory": "1Gi", "instance_count": 1}
    assert request.deadline_seconds == 300 and request.bytes_per_row == 100 and request.previous_outcome is None
    train_out = Path(summary.tasks["train"].outputs["result"].uri.removeprefix("file://")).read_text()
    assert '"instance": "m5.large"' in train_out and '"memory": "2Gi"' in train_out
    assert store.attempts(summary.run_id, "train")[0].sizing["instance_type"] == "m5.large"
    assert [(o.task, o.outcome) for o in room.observations] == [
        ("extract", Outcome.SUCCEEDED),
        ("train", Outcome.SUCCEEDED),
    ]
    observed = room.observations[1]
    assert observed.input_bytes == extract_out.bytes and observed.instance_type == "m5.large"
    assert observed.output_bytes > 0 and observed.duration_seconds > 0 and observed.peak_memory_bytes
    kinds = [e.kind for e in room.events]
    assert kinds[0] == EventKind.RUN_STARTED and kinds[-1] == EventKind.RUN_SUCCEEDED
    assert kinds.count(EventKind.TASK_STARTED) == 2 and kinds.count(EventKind.TASK_SUCCEEDED) == 2
    sized = [e for e in room.events if e.kind == EventKind.SIZING_DECIDED]
    assert len(sized) == 1 and sized[0].sizing is not None and sized[0].sizing["instance_type"] == "m5.large"


GREEDY = """
@step(sizing="auto", retry=Retry(limit=1, backoff=Backoff(duration="0.1s")))
def greedy():
    hoard = bytearray(1024**3)
    return len(hoard)

with Pipeline("greedy") as pipeline:
    greedy()
"""


def test_decided_memory_limits_the_process_and_an_oom_asks_for_a_bigger_size(
    flow: Callable[[str], str], run: Callable[..., Any], store: RunStore
) -> None:
    def decide(request: SizingRequest) -> SizingDecision:
        if request.previous_outcome == "oom":
            return SizingDecision(SizingTarget.POD, "pod-large", memory="4Gi", reason="escalated after OOM")
        return SizingDecision(SizingTarget.POD, "pod-small", memory="64Mi", reason="tiny input")

    room = RecordingRoom(decide)
    summary = run(flow(GREEDY), control_room=room)
    assert summary.status == "succeeded"
    attempts = store.attempts(summary.run_id, "greedy")
    assert [(a.status, a.sizing["instance_type"]) for a in attempts] == [
        ("oom", "pod-small"),
        ("succeeded", "pod-large"),
    ]
    assert room.requests[1].previous_outcome == "oom" and room.requests[1].previous_instance_type == "pod-small"
    assert [o.outcome for o in room.observations] == [Outcome.OOM, Outcome.SUCCEEDED]
    retrying = [e for e in room.events if e.kind == EventKind.TASK_RETRYING]
    assert len(retrying) == 1 and retrying[0].reason.startswith("OOMKilled")


FAILS = """
@step
def boom():
    print("last words", flush=True)
    raise RuntimeError("no data for this day")

with Pipeline("fails") as pipeline:
    boom()
"""


def test_task_failure_event_carries_the_reason_and_the_last_log_lines(
    flow: Callable[[str], str], run: Callable[..., Any]
) -> None:
    room = RecordingRoom()
    summary = run(flow(FAILS), control_room=room)
    assert summary.status == "failed"
    (failed,) = [e for e in room.events if e.kind == EventKind.TASK_FAILED]
    assert failed.task == "boom" and failed.reason == "exit code 1: RuntimeError: no data for this day"
    assert "last words" in failed.log_tail and any("RuntimeError" in line for line in failed.log_tail)
    assert room.events[-1].kind == EventKind.RUN_FAILED and "boom" in room.events[-1].reason
    assert room.observations[0].outcome == Outcome.FAILED


def test_a_control_room_that_is_down_never_fails_the_run(
    flow: Callable[[str], str], run: Callable[..., Any], store: RunStore
) -> None:
    summary = run(flow(SIZED), control_room=BrokenRoom(), in_process=True)
    assert summary.status == "succeeded"
    sizing = store.attempts(summary.run_id, "train")[0].sizing
    assert sizing is not None and sizing["source"] == "declared" and sizing["memory"] == "1Gi"
    assert "control room is down" in sizing["reason"]


ROOMY = """
@step(sizing="auto", resources=Resources(memory="64Mi", memory_limit="2Gi"))
def roomy():
    hoard = bytearray(1024**3)  # address space only: the limit is RLIMIT_AS
    return len(hoard)

with Pipeline("roomy") as pipeline:
    roomy()
"""


def test_with_the_control_room_down_a_task_keeps_its_declared_memory_limit(
    flow: Callable[[str], str], run: Callable[..., Any], store: RunStore
) -> None:
    """The fallback decision carries the memory request; the process is limited at the declared
    limit (2Gi), as a pod's patch keeps it, so 1 GiB fits where 64 MiB would not."""
    summary = run(flow(ROOMY), control_room=BrokenRoom())
    assert summary.status == "succeeded", summary
    (attempt,) = store.attempts(summary.run_id, "roomy")
    assert attempt.sizing is not None and attempt.sizing["source"] == "declared"
    assert attempt.sizing["memory"] == "64Mi" and attempt.sizing["instance_type"] == "pod-default-64Mi"


def test_headrace_run_sizes_with_the_embedded_control_room_by_default(
    flow: Callable[[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: RunStore
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["run", flow(SIZED), "--in-process"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    (record,) = store.list_runs(pipeline="sized")
    sizing = store.attempts(record.id, "train")[0].sizing
    assert sizing is not None and sizing["source"] != "declared", sizing
    from control_room.store import Store

    history = Store.open(None, str(tmp_path / ".headrace")).history("sized", "train")
    assert history, "the embedded control room kept no observation of the run"


class SlowRoom(RecordingRoom):
    def emit(self, event: RunEvent) -> None:
        import time

        time.sleep(0.3)
        super().emit(event)


LINEAR3 = """
@step
def one():
    return 1

@step
def two(x):
    return x.read_json() + 1

@step
def three(x):
    return x.read_json() + 1

with Pipeline("three") as pipeline:
    three(x=two(x=one()))
"""


def test_a_slow_control_room_does_not_slow_the_run_and_still_gets_every_event(
    flow: Callable[[str], str], run: Callable[..., Any]
) -> None:
    room = SlowRoom()
    summary = run(flow(LINEAR3), control_room=room, in_process=True)
    assert summary.status == "succeeded"
    assert summary.duration is not None and summary.duration < 8 * 0.3  # not waiting on each event
    kinds = [e.kind for e in room.events]  # all delivered, in order, by the time run_pipeline returned
    assert kinds[0] == EventKind.RUN_STARTED and kinds[-1] == EventKind.RUN_SUCCEEDED and len(kinds) == 8


def test_headrace_run_with_an_unreachable_control_room_succeeds_on_declared_resources(
    flow: Callable[[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: RunStore
) -> None:
    from tests.conftest import free_port

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HEADRACE_CONTROL_ROOM_URL", f"http://127.0.0.1:{free_port()}")
    result = CliRunner().invoke(app, ["run", flow(SIZED), "--in-process"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    (record,) = store.list_runs(pipeline="sized")
    sizing = store.attempts(record.id, "train")[0].sizing
    assert sizing is not None and sizing["source"] == "declared" and sizing["memory"] == "1Gi"


FIRST_LOOKS = """
@step
def first():
    return {"loaded": sorted(m for m in ("control_room.store", "sqlalchemy") if m in sys.modules)}

with Pipeline("first-looks") as pipeline:
    first()
"""


def test_headrace_run_starts_its_first_task_before_importing_the_embedded_control_room(
    flow: Callable[[str], str], tmp_path: Path, store: RunStore, headrace: Callable[..., Any]
) -> None:
    """The embedded control room (SQLAlchemy, the store, the policy: ~0.3 s) is imported on its
    own thread once the first task has started; the first task, run in the command's own process
    here, finds its store and SQLAlchemy not loaded (that thread reaches them after ~0.1 s of the
    catalog's and the policy's imports; they were imported before the run began)."""
    import json

    process = headrace("run", flow(FIRST_LOOKS), "--in-process", cwd=tmp_path)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, out + err
    (record,) = store.list_runs(pipeline="first-looks")
    ref = next(o for o in store.outputs(record.id) if o.task == "first")
    assert json.loads(Path(ref.uri.removeprefix("file://")).read_text())["loaded"] == []
