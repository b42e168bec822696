"""manifests/events: the EventBus and the trigger identities validate strictly and meet the policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from pipelines import Pipeline, Queue, step
from pipelines.argo.events import EVENT_BUS, EVENT_SOURCE_ACCOUNT, SENSOR_ACCOUNT, event_objects
from steps.core.settings import Settings
from tests.argo_events.test_events_compiler import schema_errors
from tests.manifests.kustomize import build
from tests.manifests.policy import findings

EVENTS = Path(__file__).resolve().parents[2] / "manifests" / "events"
OBJECTS = build(EVENTS)
NAMED = {(o["kind"], o["metadata"]["name"]): o for o in OBJECTS}


@pytest.mark.parametrize("obj", OBJECTS, ids=[f"{o['kind']}/{o['metadata']['name']}" for o in OBJECTS])
def test_every_object_validates_strictly_and_meets_the_cluster_policy(obj: dict[str, Any]) -> None:
    if obj["kind"] == "EventBus":
        assert schema_errors(obj) == []
    else:
        kubernetes_validate.validate(obj, "1.32.0", strict=True)
    assert findings(obj) == []
    assert obj["metadata"]["namespace"] == "headrace"


def test_compiled_objects_name_the_event_bus_and_accounts_the_manifests_define() -> None:
    @step
    def load(day: str = "") -> str:
        return day

    with Pipeline("daily", triggers=[Queue("amqp://mq/", queue="daily.ready")]) as p:
        load(day=p.run_date)
    source, sensor = (obj for _, obj in event_objects(p, Settings()))
    assert ("EventBus", source["spec"]["eventBusName"]) in NAMED and EVENT_BUS == "default"
    assert ("ServiceAccount", source["spec"]["template"]["serviceAccountName"]) in NAMED
    assert ("ServiceAccount", sensor["spec"]["template"]["serviceAccountName"]) in NAMED
    assert {EVENT_SOURCE_ACCOUNT, SENSOR_ACCOUNT} <= {name for kind, name in NAMED if kind == "ServiceAccount"}


def test_sensors_may_only_create_workflows_and_read_templates() -> None:
    assert NAMED[("Role", "headrace-sensor")]["rules"] == [
        {"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["create"]},
        {"apiGroups": ["argoproj.io"], "resources": ["workflowtemplates"], "verbs": ["get"]},
    ]
    assert NAMED[("ServiceAccount", "headrace-events")]["automountServiceAccountToken"] is False
