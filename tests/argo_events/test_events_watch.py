"""On Argo, a workflow an Argo Events Sensor submitted says so when the watcher reports its start."""

from __future__ import annotations

from control_room.notifications.datadog import trigger_tag
from control_room.watch.engine import workflow_transitions
from pipelines import Pipeline, Queue, step
from pipelines.argo.events import sensor
from steps.core.contract import EventKind
from steps.core.settings import Settings
from tests.notify.test_watch import workflow


def test_a_sensor_submitted_workflow_starts_with_its_trigger_named() -> None:
    @step
    def load(day: str = "") -> str:
        return day

    with Pipeline("recipes", triggers=[Queue("amqp://mq/", queue="recipes.ready")]) as p:
        load(day=p.run_date)
    submitted = sensor(p, Settings())["spec"]["triggers"][0]["template"]["argoWorkflow"]["source"]["resource"]
    running = workflow("Running")
    running["metadata"]["labels"] = submitted["metadata"]["labels"]
    [started] = [e for e in workflow_transitions(workflow("Pending"), running) if e.kind is EventKind.RUN_STARTED]
    assert started.reason == "started by trigger amqp-recipes-ready (Argo Events)"
    assert trigger_tag(started.reason) == "amqp"  # the same tag as a local run from that queue


def test_a_workflow_without_the_label_starts_with_no_trigger() -> None:
    [started] = [
        e for e in workflow_transitions(workflow("Pending"), workflow("Running")) if e.kind is EventKind.RUN_STARTED
    ]
    assert started.reason == ""
    assert trigger_tag(started.reason) == "command"
