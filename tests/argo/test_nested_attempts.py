"""Run status and logs of a sized task, whose attempts are nested DAGs (``train(1).train``)."""

from __future__ import annotations

from pipelines.argo.logs import _task_of
from pipelines.argo.submit import run_status


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
    assert tasks == [("train", 0, "Failed"), ("train", 1, "Succeeded")]


def test_a_pod_of_a_nested_attempt_belongs_to_its_task() -> None:
    assert _task_of("wf-1.train(1).train", "wf-1") == "train"
    assert _task_of("wf-1.train(0).size-train(0)", "wf-1") == "size-train"
    assert _task_of("wf-1.extract(2)", "wf-1") == "extract"
    assert _task_of("wf-1.extract", "wf-1") == "extract"
