"""``headrace deploy`` creates and updates a pipeline's EventSource and Sensor idempotently, next to
its WorkflowTemplate and CronWorkflow, over the Kubernetes API.

The API here is the project's local Kubernetes API server for Argo's custom objects
(tests/integration/fake_argo.py), with the two Argo Events kinds registered; the strict schema
tests (test_events_compiler.py) check the objects themselves."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.argo_ops.conftest import invoke
from tests.integration import fake_argo

pytestmark = pytest.mark.integration

FLOW = """
from pipelines import Pipeline, Queue, Schedule, step

@step
def extract(day: str) -> dict:
    return {"day": day}

with Pipeline("daily-scores", schedule=Schedule("0 3 * * *"), triggers=[Queue("amqp://mq:5672/ml", queue="QUEUE", params={"run_date": "$.date"})]) as pipeline:
    extract(day=pipeline.run_date)
"""


def write(folder: Path, queue: str) -> str:
    sys.modules.pop("daily_events", None)
    (folder / "daily_events.py").write_text(FLOW.replace("QUEUE", queue), encoding="utf-8")
    return "daily_events.py:pipeline"


@pytest.fixture
def kube(argo: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setitem(fake_argo.KINDS, "eventsources", "EventSource")
    monkeypatch.setitem(fake_argo.KINDS, "sensors", "Sensor")
    monkeypatch.setenv("KUBECONFIG", argo.kubeconfig(str(tmp_path / "kc")))
    monkeypatch.chdir(tmp_path)
    return argo


def test_deploy_creates_then_leaves_unchanged_then_updates_the_trigger_objects_in_place(
    kube: Any, tmp_path: Path, cli: CliRunner
) -> None:
    spec = write(tmp_path, "scores.ready")
    code, out = invoke(cli, "deploy", spec)
    assert code == 0, out
    for kind in ("WorkflowTemplate", "CronWorkflow", "EventSource", "Sensor"):
        assert f"{kind} daily-scores: created" in out
    uid = kube.cluster.object("sensors", "daily-scores")["metadata"]["uid"]

    code, out = invoke(cli, "deploy", spec)
    assert code == 0 and out.count("unchanged") == 4, out
    assert kube.cluster.calls_to("PUT") == []

    write(tmp_path, "scores.landed")
    code, out = invoke(cli, "deploy", spec)
    assert code == 0, out
    assert "EventSource daily-scores: updated" in out and "Sensor daily-scores: updated" in out
    assert "WorkflowTemplate daily-scores: unchanged" in out and "CronWorkflow daily-scores: unchanged" in out
    source = kube.cluster.object("eventsources", "daily-scores")
    assert source["spec"]["amqp"]["amqp-scores-landed"]["queueDeclare"]["name"] == "scores.landed"
    assert kube.cluster.object("sensors", "daily-scores")["metadata"]["uid"] == uid


def test_the_argo_server_transport_refuses_trigger_objects_in_one_line(
    argo_env: Any, tmp_path: Path, cli: CliRunner
) -> None:
    code, out = invoke(cli, "deploy", write(tmp_path, "scores.ready"))
    assert code == 2
    assert "EventSource: the Argo Server does not take Argo Events objects; deploy triggers with --transport k8s" in out
    assert "Traceback" not in out
