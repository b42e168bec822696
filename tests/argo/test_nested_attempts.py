"""Run status and logs of a sized task, whose attempts are nested DAGs (``train(1).train``)."""

from __future__ import annotations

from pipelines.argo.submit import run_status
from steps.core.naming import task_of_node


def node(node_id: str, name: str, display: str, kind: str, phase: str, started: str, template: str) -> dict[str, str]:
    return {
        "id": node_id,
        "name": name,
        "displayName": display,
        "type": kind,
        "phase": phase,
        "startedAt": started,
        "templateName": template,
    }


def test_each_attempt_of_a_sized_task_keeps_the_task_name_and_its_attempt_number() -> None:
    run = "sized-retry-x1"
    nodes = [
        node("r", f"{run}.train", "train", "Retry", "Succeeded", "2026-01-01T00:00:01Z", "headrace-sized-train"),
        node("d0", f"{run}.train(0)", "train(0)", "DAG", "Failed", "2026-01-01T00:00:01Z", "headrace-sized-train"),
        node("p0", f"{run}.train(0).train", "train", "Pod", "Failed", "2026-01-01T00:00:02Z", "train"),
        node("d1", f"{run}.train(1)", "train(1)", "DAG", "Succeeded", "2026-01-01T00:01:00Z", "headrace-sized-train"),
        node("p1", f"{run}.train(1).train", "train", "Pod", "Succeeded", "2026-01-01T00:01:02Z", "train"),
    ]
    workflow = {"metadata": {"name": run}, "status": {"phase": "Succeeded", "nodes": {n["id"]: n for n in nodes}}}
    tasks = [(t.name, t.attempt, t.phase) for t in run_status(workflow).tasks]
    assert tasks == [("train", 1, "Failed"), ("train", 2, "Succeeded")]


def test_a_pod_of_a_nested_attempt_belongs_to_its_task() -> None:
    assert task_of_node("wf-1.train(1).train") == "train"
    assert task_of_node("wf-1.train(0).size-train(0)") == "size-train"
    assert task_of_node("wf-1.extract(2)") == "extract"
    assert task_of_node("wf-1.extract") == "extract"


def test_the_submitter_the_watcher_and_the_exit_handler_number_attempts_alike() -> None:
    """``headrace status``, the control room's events and the exit handler's report name the same
    attempt for the same Argo node (Argo's ``train(0)`` is headrace's attempt 1)."""
    from control_room.watch.engine import workflow_transitions
    from steps.runtime.exit_handler import failing_task

    run = "retry-x2"
    nodes = [
        node("r", f"{run}.train", "train", "Retry", "Failed", "2026-01-01T00:00:01Z", "train"),
        node("p0", f"{run}.train(0)", "train(0)", "Pod", "Failed", "2026-01-01T00:00:02Z", "train"),
        node("p1", f"{run}.train(1)", "train(1)", "Pod", "Failed", "2026-01-01T00:01:02Z", "train"),
    ]
    workflow = {"metadata": {"name": run}, "status": {"phase": "Failed", "nodes": {n["id"]: n for n in nodes}}}
    submitted = [(t.name, t.attempt) for t in run_status(workflow).tasks]
    watched = [(e.task, e.attempt) for e in workflow_transitions(None, workflow) if e.kind.value.startswith("task.")]
    reported = failing_task([{"displayName": "train(1)", "finishedAt": "2026-01-01T00:02:00Z"}])[:2]
    assert submitted == [("train", 1), ("train", 2)]
    assert watched == submitted
    assert reported == ("train", 2)
