"""The watcher records an OOM-killed task pod as an OOM observation, so the retry is sized one step up.

The pure parts: the observation a pod means, attempts of nested retries, the engine giving it once.
The whole path (``headrace control-room watch`` against the real kube-apiserver recording the pod
the node killed, the retry sized one step up) is tests/cluster/test_sizing.py.
"""

from __future__ import annotations

from typing import Any

from control_room.watch.engine import WatchEngine, oom_observation, pod_task, workflow_transitions
from steps.core.contract import Outcome, SizingTarget

RUN = "recipes-abc12"


def task_pod(node: str, task: str, *, memory: str = "2Gi", oom: bool = True, name: str = "p-1") -> dict[str, Any]:
    state: dict[str, Any] = (
        {
            "terminated": {
                "reason": "OOMKilled",
                "exitCode": 137,
                "startedAt": "2026-01-01T00:00:10Z",
                "finishedAt": "2026-01-01T00:01:40Z",
            }
        }
        if oom
        else {"running": {}}
    )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "ml",
            "labels": {
                "workflows.argoproj.io/workflow": RUN,
                "headrace.dev/pipeline": "recipes",
                "headrace.dev/task": task,
            },
            "annotations": {"workflows.argoproj.io/node-name": f"{RUN}.{node}"},
        },
        "spec": {
            "containers": [
                {"name": "wait", "resources": {}},
                {
                    "name": "main",
                    "resources": {"requests": {"cpu": "500m", "memory": memory}, "limits": {"memory": memory}},
                },
            ]
        },
        "status": {"phase": "Failed" if oom else "Running", "containerStatuses": [{"name": "main", "state": state}]},
    }


def test_an_oom_killed_task_pod_is_an_oom_observation_with_its_memory_limit() -> None:
    found = oom_observation(task_pod("train(1).train", "train"))
    assert found is not None
    assert (found.pipeline, found.run_id, found.task, found.attempt) == ("recipes", RUN, "train", 2)
    assert (found.outcome, found.target, found.memory, found.cpu) == (Outcome.OOM, SizingTarget.POD, "2Gi", "500m")
    assert found.duration_seconds == 90.0
    assert found.reason == "OOMKilled (exit code 137) in pod p-1"


def test_sizing_nodes_running_pods_and_other_failures_are_not_oom_observations() -> None:
    assert oom_observation(task_pod("train(0).size-train", "size-train")) is None
    assert oom_observation(task_pod("train(0).train", "train", oom=False)) is None


def test_the_attempt_of_a_nested_retry_comes_from_the_dag_node_in_the_pod_name() -> None:
    assert pod_task(task_pod("train(0).train", "train"))[2] == 1
    assert pod_task(task_pod("train(2).train", "train"))[2] == 3
    assert pod_task(task_pod("train(1)", "train"))[2] == 2  # a plain retried pod, as before


def test_a_failed_pod_inside_a_retried_sized_task_is_reported_as_retrying_with_its_attempt() -> None:
    retry = {"id": "r", "name": f"{RUN}.train", "displayName": "train", "type": "Retry", "phase": "Running"}
    dag0 = {"id": "d0", "name": f"{RUN}.train(0)", "displayName": "train(0)", "type": "DAG", "phase": "Failed"}
    retry["children"] = ["d0"]
    pod = {
        "id": "p0",
        "name": f"{RUN}.train(0).train",
        "displayName": "train",
        "type": "Pod",
        "phase": "Failed",
        "boundaryID": "d0",
        "message": "OOMKilled (exit code 137)",
    }
    old = {"metadata": {"name": RUN, "labels": {"headrace.dev/pipeline": "recipes"}}, "status": {"phase": "Running"}}
    new = {**old, "status": {"phase": "Running", "nodes": {n["id"]: n for n in (retry, dag0, pod)}}}
    events = workflow_transitions(old, new)
    assert [(e.kind.value, e.task, e.attempt, e.reason) for e in events] == [
        ("task.retrying", "train", 2, "OOMKilled (exit code 137)")
    ]


def test_the_engine_gives_the_observation_once_with_the_oom_event() -> None:
    engine = WatchEngine()
    running = task_pod("train(0).train", "train", oom=False)
    assert engine.apply_all("pod", "ADDED", running) == ([], [])
    events, found = engine.apply_all("pod", "MODIFIED", task_pod("train(0).train", "train"))
    assert [e.reason for e in events] == ["OOMKilled (exit code 137)"]
    assert [(o.task, o.attempt, o.memory) for o in found] == [("train", 1, "2Gi")]
    assert engine.apply_all("pod", "MODIFIED", task_pod("train(0).train", "train")) == ([], [])
