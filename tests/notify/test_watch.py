"""The watcher: the pure transition engine, and the official kubernetes client against a local API server."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from control_room.watch.engine import WatchEngine, pod_transitions, workflow_transitions
from control_room.watch.kube import Watcher
from steps.core.contract import RunEvent

from .k8s_server import KubeServer

UI = "https://argo.example.com"


def workflow(phase: str, nodes: dict[str, Any] | None = None, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            "name": "recipes-abc12",
            "namespace": "ml",
            "labels": {"headrace.dev/pipeline": "recipes"},
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {},
        "status": {"phase": phase, "startedAt": "2026-01-01T00:00:05Z", "nodes": nodes or {}, **status},
    }


def pod_node(name: str, phase: str, **fields: Any) -> dict[str, Any]:
    return {"id": f"n-{name}", "displayName": name, "type": "Pod", "phase": phase, **fields}


def retry_node(name: str, phase: str, children: list[str]) -> dict[str, Any]:
    return {"id": f"n-{name}", "displayName": name, "type": "Retry", "phase": phase, "children": children}


def nodes(*items: dict[str, Any]) -> dict[str, Any]:
    return {item["id"]: item for item in items}


EXTRACT_DONE = pod_node(
    "extract",
    "Succeeded",
    startedAt="2026-01-01T00:00:10Z",
    finishedAt="2026-01-01T00:00:22Z",
    outputs={"parameters": [{"name": "table-bytes", "value": "1200000"}, {"name": "table-rows", "value": "10000"}]},
)
SIZE_DONE = pod_node("size-train", "Succeeded", startedAt="2026-01-01T00:00:23Z", finishedAt="2026-01-01T00:00:24Z")
TRAIN0_OOM = pod_node(
    "train(0)",
    "Failed",
    startedAt="2026-01-01T00:00:25Z",
    finishedAt="2026-01-01T00:01:25Z",
    message="OOMKilled (exit code 137)",
)
TRAIN1_RUNNING = pod_node("train(1)", "Running", startedAt="2026-01-01T00:01:30Z")
TRAIN1_FAILED = {
    **TRAIN1_RUNNING,
    "phase": "Failed",
    "finishedAt": "2026-01-01T00:03:30Z",
    "message": "Error (exit code 1)",
}


def kinds(events: list[RunEvent]) -> list[tuple[str, str | None, int | None, str]]:
    return [(e.kind.value, e.task, e.attempt, e.reason) for e in events]


def test_workflow_phase_changes_become_run_and_task_events_once_per_transition() -> None:
    pending = workflow("Pending")
    running = workflow("Running", nodes(pod_node("extract", "Running", startedAt="2026-01-01T00:00:10Z")))
    retrying = workflow(
        "Running",
        nodes(
            EXTRACT_DONE,
            SIZE_DONE,
            retry_node("train", "Running", ["n-train(0)", "n-train(1)"]),
            TRAIN0_OOM,
            TRAIN1_RUNNING,
        ),
    )
    failed = workflow(
        "Failed",
        nodes(
            EXTRACT_DONE,
            SIZE_DONE,
            retry_node("train", "Failed", ["n-train(0)", "n-train(1)"]),
            TRAIN0_OOM,
            TRAIN1_FAILED,
        ),
        finishedAt="2026-01-01T00:04:17Z",
        message="child 'n-train' failed",
    )

    steps = [
        workflow_transitions(None, pending, ui_url=UI),
        workflow_transitions(pending, running, ui_url=UI),
        workflow_transitions(running, retrying, ui_url=UI),
        workflow_transitions(retrying, failed, ui_url=UI),
        workflow_transitions(failed, failed, ui_url=UI),
    ]

    assert [kinds(s) for s in steps] == [
        [],
        [("run.started", None, None, ""), ("task.started", "extract", 1, "")],
        [
            ("task.succeeded", "extract", 1, ""),
            ("task.retrying", "train", 2, "OOMKilled (exit code 137)"),
            ("task.started", "train", 2, ""),
        ],
        [("task.failed", "train", 2, "Error (exit code 1)"), ("run.failed", "train", None, "Error (exit code 1)")],
        [],
    ]
    succeeded = steps[2][0]
    assert (succeeded.duration_seconds, succeeded.output_bytes, succeeded.output_rows) == (12.0, 1_200_000, 10_000)
    run_failed = steps[3][1]
    assert run_failed.duration_seconds == 252.0
    assert run_failed.url == "https://argo.example.com/workflows/ml/recipes-abc12"
    assert {e.pipeline for s in steps for e in s} == {"recipes"}
    assert {e.source for s in steps for e in s} == {"watcher"}


def test_stopped_workflow_is_reported_as_cancelled_not_failed() -> None:
    running = workflow("Running")
    stopped = {**workflow("Failed", message="Stopped with strategy 'Terminate'"), "spec": {"shutdown": "Terminate"}}

    assert kinds(workflow_transitions(running, stopped)) == [
        ("run.cancelled", None, None, "Stopped with strategy 'Terminate'")
    ]


def pod(name: str, node: str, *, status: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "ml",
            "labels": {
                "workflows.argoproj.io/workflow": "recipes-abc12",
                "headrace.dev/pipeline": "recipes",
                "headrace.dev/task": node.split("(")[0],
            },
            "annotations": {"workflows.argoproj.io/node-name": f"recipes-abc12.{node}"},
        },
        "status": status,
    }


def container(**state: Any) -> dict[str, Any]:
    return {"containerStatuses": [{"name": "main", **state}]}


OOM_POD = pod(
    "recipes-abc12-train-1",
    "train(1)",
    status={
        "phase": "Failed",
        **container(state={"terminated": {"reason": "OOMKilled", "exitCode": 137}}),
    },
)
PULL_POD = pod(
    "recipes-abc12-score-1",
    "score",
    status={
        "phase": "Pending",
        **container(state={"waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "ml:v9"'}}),
    },
)
EVICTED_POD = pod(
    "recipes-abc12-extract-1",
    "extract",
    status={"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory."},
)


def test_oomkilled_image_pull_backoff_and_evicted_pods_become_task_failures() -> None:
    running = pod("recipes-abc12-train-1", "train(1)", status={"phase": "Running", **container(state={"running": {}})})

    assert kinds(pod_transitions(running, OOM_POD)) == [("task.failed", "train", 2, "OOMKilled (exit code 137)")]
    assert kinds(pod_transitions(None, PULL_POD)) == [
        ("task.failed", "score", 1, 'ImagePullBackOff: Back-off pulling image "ml:v9"')
    ]
    assert kinds(pod_transitions(None, EVICTED_POD)) == [
        ("task.failed", "extract", 1, "Evicted: The node was low on resource: memory.")
    ]
    assert pod_transitions(OOM_POD, OOM_POD) == []
    assert pod_transitions(None, running) == []


def test_workflow_pending_beyond_the_threshold_is_reported_once_as_never_started() -> None:
    engine = WatchEngine(pending_seconds=600)
    engine.seed("workflow", workflow("Pending", message="Waiting for a worker"))
    created = 1767225600.0  # 2026-01-01T00:00:00Z

    assert engine.check_pending(created + 599) == []
    first = engine.check_pending(created + 601)
    assert kinds(first) == [
        ("run.failed", None, None, "never started: still Pending after 601s (Waiting for a worker)")
    ]
    assert engine.check_pending(created + 900) == []


def test_engine_reports_a_failure_seen_by_both_the_node_and_the_pod_once() -> None:
    engine = WatchEngine()
    engine.apply("workflow", "ADDED", workflow("Running", nodes(pod_node("train(1)", "Running"))))
    from_pod = engine.apply("pod", "MODIFIED", OOM_POD)
    from_node = engine.apply(
        "workflow",
        "MODIFIED",
        workflow("Running", nodes(pod_node("train(1)", "Failed", message="OOMKilled (exit code 137)"))),
    )

    assert kinds(from_pod) == [("task.failed", "train", 2, "OOMKilled (exit code 137)")]
    assert from_node == []


def test_engine_forgets_a_deleted_workflow_and_what_it_reported() -> None:
    engine = WatchEngine()
    assert kinds(engine.apply("workflow", "ADDED", workflow("Running"))) == [("run.started", None, None, "")]

    assert engine.apply("workflow", "DELETED", workflow("Running")) == []
    assert engine.workflows == {} and engine.reported == set()


# --------------------------------------------------------------------------- real HTTP, official client


@pytest.fixture
def kube() -> Iterator[KubeServer]:
    from tests.conftest import free_port

    server = KubeServer(free_port()).start()
    try:
        yield server
    finally:
        server.stop()


class Collected:
    def __init__(self) -> None:
        self.events: list[RunEvent] = []

    def __call__(self, event: RunEvent) -> None:
        self.events.append(event)

    def wait_for(self, condition: Callable[[list[RunEvent]], bool], timeout: float = 10.0) -> list[RunEvent]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition(self.events):
                return self.events
            time.sleep(0.02)
        raise AssertionError(f"timed out; events so far: {kinds(self.events)}")


@pytest.fixture
def collected() -> Collected:
    return Collected()


@pytest.fixture
def watcher(kube: KubeServer, collected: Collected) -> Iterator[Watcher]:
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = kube.url
    api = client.ApiClient(configuration)
    watcher = Watcher(collected, "ml", api_client=api, ui_url=UI, watch_timeout_seconds=30, retry_delay=0.5)
    try:
        yield watcher
    finally:
        watcher.stop()
        api.close()


def started(watcher: Watcher) -> None:
    watcher.start(pending_interval=3600)
    assert watcher.synced["workflow"].wait(10) and watcher.synced["pod"].wait(10)


@pytest.mark.integration
def test_watcher_reports_workflow_and_pod_changes_but_not_the_history_it_starts_with(
    kube: KubeServer, watcher: Watcher, collected: Collected
) -> None:
    old = workflow("Succeeded", finishedAt="2026-01-01T00:01:00Z")
    old["metadata"]["name"] = "recipes-old"
    kube.put("workflows", old)
    started(watcher)

    kube.put("workflows", workflow("Running"))
    kube.put("pods", PULL_POD)
    kube.put("pods", OOM_POD)
    events = collected.wait_for(lambda e: len(e) >= 3)

    time.sleep(0.3)  # nothing else may follow
    assert sorted(kinds(events)) == [  # workflows and pods are watched by separate threads
        ("run.started", None, None, ""),
        ("task.failed", "score", 1, 'ImagePullBackOff: Back-off pulling image "ml:v9"'),
        ("task.failed", "train", 2, "OOMKilled (exit code 137)"),
    ]
    assert all(e.pipeline == "recipes" and e.run_id == "recipes-abc12" for e in events)


@pytest.mark.integration
def test_dropped_watch_resumes_from_the_last_resource_version_without_duplicates(
    kube: KubeServer, watcher: Watcher, collected: Collected
) -> None:
    started(watcher)
    last = kube.put("workflows", workflow("Running"))
    collected.wait_for(lambda e: len(e) == 1)

    kube.drop_watches()
    kube.put("workflows", workflow("Succeeded", finishedAt="2026-01-01T00:02:05Z"))
    events = collected.wait_for(lambda e: len(e) == 2)
    time.sleep(0.3)

    assert kinds(events) == [("run.started", None, None, ""), ("run.succeeded", None, None, "")]
    assert events[1].duration_seconds == 120.0
    resumed = kube.watch_requests("workflows")
    assert len(resumed) >= 2 and resumed[1].resource_version == str(last)
    assert len(kube.list_requests("workflows")) == 1  # resumed, not relisted


@pytest.mark.integration
def test_watch_410_gone_relists_and_reports_what_changed_while_away_once(
    kube: KubeServer, watcher: Watcher, collected: Collected
) -> None:
    started(watcher)
    kube.put("workflows", workflow("Running"))
    collected.wait_for(lambda e: len(e) == 1)

    kube.drop_watches()  # the watcher waits retry_delay (0.5 s) before it reconnects
    kube.put("workflows", workflow("Failed", finishedAt="2026-01-01T00:01:05Z", message="child failed"))
    kube.compact()  # by then the history it would resume from is gone: 410
    events = collected.wait_for(lambda e: len(e) == 2)
    time.sleep(0.3)

    assert kinds(events) == [("run.started", None, None, ""), ("run.failed", None, None, "child failed")]
    assert len(kube.list_requests("workflows")) == 2
