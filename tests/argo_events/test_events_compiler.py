"""Triggers compile to Argo Events objects that Argo Events' own strict schema accepts."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from pipelines import After, Pipeline, Queue, Schedule, step
from pipelines.argo.deploy import compile_objects
from pipelines.argo.events import event_objects, event_source, sensor
from steps.core.settings import Settings

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "argo-events.strict.schema.json"


@cache
def _validator(kind: str) -> Any:
    schema = json.loads(SCHEMA.read_text())
    # Its "$schema" names no draft ("http://json-schema.org/schema#"); it is written for draft 7.
    root = {"$ref": f"#/definitions/io.argoproj.events.v1alpha1.{kind}", "definitions": schema["definitions"]}
    return jsonschema.Draft7Validator(root)


def schema_errors(obj: dict[str, Any]) -> list[str]:
    errors = _validator(obj["kind"]).iter_errors(obj)
    return sorted(f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in errors)


@step
def load(day: str = "", region: str = "") -> str:
    return day


def recipes() -> Pipeline:
    with Pipeline(
        "recipe-stream",
        schedule=Schedule("0 3 * * *"),
        triggers=[
            Queue(
                "amqps://mq.internal:5671/ml",
                queue="recipes.ready",
                params={"run_date": "$.date", "region": "$.where.region"},
                filter={"$.kind": ["recipes", "menus"]},
            ),
            Queue("sqs://recipes-ready?region=eu-west-1", params={"run_date": "$.date"}),
            After("recipe-features", outcome="succeeded"),
        ],
    ) as p:
        load(day=p.run_date, region=p.param("region", "eu"))
    return p.check()


SETTINGS = Settings(argo_namespace="ml")


def test_every_object_validates_against_the_strict_argo_events_schema() -> None:
    objects = [obj for _, obj in event_objects(recipes(), SETTINGS)]
    assert [o["kind"] for o in objects] == ["EventSource", "Sensor"]
    for obj in objects:
        assert schema_errors(obj) == []


def test_the_strict_schema_catches_a_misspelled_field() -> None:
    source = event_source(recipes(), SETTINGS)
    source["spec"]["amqp"]["amqp-recipes-ready"]["exchangeNme"] = "x"
    assert any("exchangeNme" in error for error in schema_errors(source))


def test_event_source_reads_each_queue_with_credentials_from_the_secret() -> None:
    spec = event_source(recipes(), SETTINGS)["spec"]
    amqp = spec["amqp"]["amqp-recipes-ready"]
    assert amqp["url"] == "amqps://mq.internal:5671/ml"
    assert amqp["auth"]["password"] == {"name": "headrace-secrets", "key": "HEADRACE_BROKER_PASSWORD"}
    assert amqp["queueDeclare"]["name"] == "recipes.ready" and amqp["queueDeclare"]["durable"] is True
    assert (amqp["exchangeName"], amqp["routingKey"], amqp["jsonBody"]) == ("headrace.events", "recipes.ready", True)
    assert spec["sqs"]["sqs-recipes-ready"] == {
        "region": "eu-west-1",
        "queue": "recipes-ready",
        "waitTimeSeconds": 20,
        "jsonBody": True,
    }
    after = spec["amqp"]["after-recipe-features"]
    assert after["urlSecret"] == {"name": "headrace-secrets", "key": "HEADRACE_EVENTS_URL"}
    assert (after["exchangeName"], after["routingKey"]) == ("headrace.runs", "recipe-features.succeeded")
    assert after["queueDeclare"]["name"] == "headrace.after.recipe-stream.recipe-features"
    assert spec["eventBusName"] == "default"


def test_sensor_submits_the_workflow_template_with_the_mapped_fields_per_trigger() -> None:
    spec = sensor(recipes(), SETTINGS)["spec"]
    assert [d["name"] for d in spec["dependencies"]] == [
        "amqp-recipes-ready",
        "sqs-recipes-ready",
        "after-recipe-features",
    ]
    assert spec["dependencies"][0]["filters"] == {
        "data": [{"path": "body.kind", "type": "string", "value": ["recipes", "menus"]}]
    }
    assert spec["dependencies"][2]["filters"]["data"] == [
        {"path": "body.pipeline", "type": "string", "value": ["recipe-features"]},
        {"path": "body.outcome", "type": "string", "value": ["succeeded"]},
    ]
    first = spec["triggers"][0]["template"]
    assert first["conditions"] == "amqp-recipes-ready"  # each dependency fires its trigger alone
    workflow = first["argoWorkflow"]["source"]["resource"]
    assert first["argoWorkflow"]["operation"] == "submit"
    assert workflow["spec"]["workflowTemplateRef"] == {"name": "recipe-stream"}
    assert workflow["metadata"]["labels"]["headrace.dev/trigger"] == "amqp-recipes-ready"
    names = [p["name"] for p in workflow["spec"]["arguments"]["parameters"]]
    assert names == ["run_date", "region"]
    assert first["argoWorkflow"]["parameters"] == [
        {
            "src": {"dependencyName": "amqp-recipes-ready", "dataKey": "body.date"},
            "dest": "spec.arguments.parameters.0.value",
        },
        {
            "src": {"dependencyName": "amqp-recipes-ready", "dataKey": "body.where.region"},
            "dest": "spec.arguments.parameters.1.value",
        },
    ]
    assert spec["template"] == {"serviceAccountName": "headrace-sensor"}


def test_deploy_sends_the_events_objects_after_the_template_and_the_cron() -> None:
    kinds = [kind for kind, _ in compile_objects(recipes(), "examples.recipe_events:pipeline", SETTINGS)]
    assert kinds == ["workflowtemplates", "cronworkflows", "eventsources", "sensors"]


def test_a_pipeline_without_triggers_compiles_no_events_objects() -> None:
    with Pipeline("plain") as p:
        load()
    assert event_objects(p, SETTINGS) == []


def test_render_writes_the_events_objects_next_to_the_cron(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from pipelines.cli import app

    flow = tmp_path / "flow_events.py"
    flow.write_text(
        "from pipelines import After, Pipeline, Queue, step\n"
        "@step\ndef load(day: str = '') -> str:\n    return day\n"
        "with Pipeline('daily', triggers=[Queue('amqp://mq:5672/', queue='daily.ready', params={'run_date': '$.date'})]) as pipeline:\n"
        "    load(day=pipeline.run_date)\n"
    )
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["render", "flow_events.py:pipeline", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    documents = list(yaml.safe_load_all((tmp_path / "out" / "daily.yaml").read_text()))
    assert [d["kind"] for d in documents] == ["WorkflowTemplate", "EventSource", "Sensor"]
    for obj in documents[1:]:
        assert schema_errors(obj) == []
