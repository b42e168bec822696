"""Datadog metrics through the datadog package's DogStatsD client, received on a real UDP socket."""

from __future__ import annotations

import dataclasses
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from control_room.app import Tokens, create_app
from control_room.catalog import load_catalog, load_rules
from control_room.notifications.datadog import Metrics
from control_room.notifications.notifier import Notifier
from control_room.sizing import Policy
from control_room.store import Store
from control_room.watch.record import recorder
from steps.core.contract import EventKind, Observation, Outcome, RunEvent, SizingTarget, to_dict
from steps.core.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def agent() -> Iterator[socket.socket]:
    """A UDP socket on 127.0.0.1 standing in for the Datadog agent."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2.0)
    try:
        yield sock
    finally:
        sock.close()


def received(sock: socket.socket, count: int) -> list[str]:
    lines: list[str] = []
    while len(lines) < count:
        data = sock.recv(65535).decode()
        lines.extend(line for line in data.split("\n") if line)
    sock.settimeout(0.2)
    try:
        extra = sock.recv(65535).decode()
        lines.extend(line for line in extra.split("\n") if line)
    except TimeoutError:
        pass
    return lines


def metrics_for(agent: socket.socket) -> Metrics:
    port = agent.getsockname()[1]
    return Metrics(environ={"DD_AGENT_HOST": "127.0.0.1", "DD_DOGSTATSD_PORT": str(port)})


def test_failed_task_sends_duration_output_size_failure_count_and_an_error_event(agent: socket.socket) -> None:
    metrics = metrics_for(agent)
    metrics.event(
        RunEvent(
            EventKind.TASK_FAILED,
            "recipes",
            "recipes-abc12",
            task="train",
            attempt=2,
            duration_seconds=61.5,
            output_bytes=0,
            output_rows=0,
            reason="OOMKilled (exit code 137)",
            log_tail=["MemoryError"],
            sizing={"target": "sagemaker", "instance_type": "ml.m5.xlarge", "instance_count": 1},
        )
    )
    metrics.close()

    tags = "pipeline:recipes,run:recipes-abc12,task:train,instance_type:ml.m5.xlarge"
    assert received(agent, 5) == [
        f"headrace.task.duration_seconds:61.5|h|#{tags},outcome:failed",
        f"headrace.task.output_bytes:0|g|#{tags},outcome:failed",
        f"headrace.task.output_rows:0|g|#{tags},outcome:failed",
        f"headrace.task.failures:1|c|#{tags},reason:oomkilled",
        "_e{30,79}:headrace: recipes train failed|run recipes-abc12: OOMKilled (exit code 137)\\n%%% \\n```\\nMemoryError\\n```\\n %%%"
        "|k:recipes/recipes-abc12|s:headrace|t:error|#pipeline:recipes,run:recipes-abc12,task:train,reason:oomkilled",
    ]


def test_run_end_sizing_retry_and_observation_metrics_carry_their_tags(agent: socket.socket) -> None:
    metrics = metrics_for(agent)
    metrics.event(
        RunEvent(
            EventKind.SIZING_DECIDED,
            "recipes",
            "r1",
            task="score",
            sizing={
                "target": "glue",
                "instance_type": "G.2X",
                "instance_count": 10,
                "predicted_cost_usd": 1.25,
                "predicted_duration_seconds": 600.0,
                "source": "policy",
            },
        )
    )
    metrics.event(RunEvent(EventKind.TASK_RETRYING, "recipes", "r1", task="score", attempt=2, reason="exit code 1"))
    metrics.event(RunEvent(EventKind.RUN_SUCCEEDED, "recipes", "r1", duration_seconds=900.0))
    metrics.observation(
        Observation(
            pipeline="recipes",
            task="score",
            run_id="r1",
            attempt=2,
            outcome=Outcome.SUCCEEDED,
            input_bytes=5_000_000,
            target=SizingTarget.GLUE,
            instance_type="G.2X",
            instance_count=10,
            peak_memory_bytes=2_000_000_000,
            cost_usd=1.5,
        ),
        predicted_cost_usd=1.25,
    )
    metrics.close()

    sized = "pipeline:recipes,run:r1,task:score,instance_type:G.2X,target:glue,source:policy"
    observed = "pipeline:recipes,run:r1,task:score,instance_type:G.2X,target:glue,outcome:succeeded"
    assert received(agent, 11) == [
        f"headrace.sizing.instance_count:10.0|g|#{sized}",
        f"headrace.sizing.predicted_cost_usd:1.25|g|#{sized}",
        f"headrace.sizing.predicted_duration_seconds:600.0|g|#{sized}",
        "headrace.task.retries:1|c|#pipeline:recipes,run:r1,task:score,reason:exit_code_1",
        "headrace.run.completed:1|c|#pipeline:recipes,run:r1,status:succeeded",
        "headrace.run.duration_seconds:900.0|h|#pipeline:recipes,run:r1,status:succeeded",
        f"headrace.task.instance_count:10.0|g|#{observed}",
        f"headrace.task.input_bytes:5000000.0|g|#{observed}",
        f"headrace.task.peak_memory_bytes:2000000000.0|g|#{observed}",
        f"headrace.task.cost_usd:1.5|g|#{observed}",
        f"headrace.task.predicted_cost_usd:1.25|g|#{observed}",
    ]


@pytest.mark.parametrize("host", ["127.0.0.1", "agent.invalid"], ids=["closed-port", "unresolvable-host"])
def test_missing_agent_drops_metrics_with_one_warning_and_no_error(host: str, caplog: pytest.LogCaptureFixture) -> None:
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there any more
    metrics = Metrics(environ={"DD_AGENT_HOST": host, "DD_DOGSTATSD_PORT": str(port)})

    with caplog.at_level(logging.DEBUG):
        for attempt in range(1, 6):
            metrics.event(RunEvent(EventKind.TASK_RETRYING, "recipes", "r1", task="train", attempt=attempt))
    metrics.close()

    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [
        f"datadog: no DogStatsD agent at {host}:{port}; metrics are dropped. "
        "Set DD_AGENT_HOST / DD_DOGSTATSD_PORT to the agent (or ignore this locally)."
    ]
    assert metrics.dropping


def test_a_run_end_from_the_exit_handler_and_the_watcher_counts_one_completed_run(
    agent: socket.socket, tmp_path: Path
) -> None:
    """The exit handler posts the end to the control room's API; the watcher records it into the
    same database a moment later: Datadog sees one completed run."""
    store = Store.open(f"sqlite:///{tmp_path / 'control-room.db'}")
    metrics = metrics_for(agent)
    notifier = Notifier(Settings(state_dir=str(tmp_path)), metrics=metrics)
    end = RunEvent(EventKind.RUN_FAILED, "recipes", "r1", duration_seconds=90.0, reason="Error (exit code 1)")
    app = create_app(
        store, Policy(load_catalog(), load_rules(None, load_catalog())), tokens=Tokens([]), notifier=notifier
    )
    with TestClient(app) as client:
        assert client.post("/v1/events", json=to_dict(dataclasses.replace(end, source="exit-handler"))).json()["id"]
    recorder(store, notifier)(dataclasses.replace(end, source="watcher"))
    metrics.close()
    store.close()

    lines = received(agent, 3)
    assert [line for line in lines if line.startswith("headrace.run.completed")] == [
        "headrace.run.completed:1|c|#pipeline:recipes,run:r1,status:failed"
    ]
    assert sum(line.startswith("headrace.run.duration_seconds") for line in lines) == 1
