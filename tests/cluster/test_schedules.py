"""``headrace deploy``, ``schedules suspend/resume`` and ``backfill`` against the real cron
controller of Argo's workflow-controller."""

from __future__ import annotations

import time
from typing import Any

from typer.testing import CliRunner

from tests.cluster.conftest import invoke
from tests.cluster.control_plane import Cluster
from tests.cluster.test_runs import submitted, wait_for


def objects(cluster: Cluster, kind: str, selector: str = "") -> list[dict[str, Any]]:
    with cluster.api() as api:
        response = api.get(
            f"/apis/argoproj.io/v1alpha1/namespaces/{cluster.namespace}/{kind}", params={"labelSelector": selector}
        )
        response.raise_for_status()
        items: list[dict[str, Any]] = response.json()["items"]
        return items


def test_deployed_schedule_makes_the_cron_controller_start_a_run_and_can_be_suspended_and_resumed(
    on_cluster: Cluster, cli: CliRunner
) -> None:
    code, out = invoke(cli, "deploy", "cluster_cron:pipeline")
    assert code == 0, out
    assert "WorkflowTemplate cluster-cron" in out and "CronWorkflow cluster-cron" in out
    deadline = time.monotonic() + 90
    started: list[dict[str, Any]] = []
    while not started and time.monotonic() < deadline:
        started = objects(on_cluster, "workflows", "workflows.argoproj.io/cron-workflow=cluster-cron")
        time.sleep(1)
    assert started, "the cron controller started no run within 90 s of a every-minute schedule"
    run = wait_for(on_cluster, started[0]["metadata"]["name"], ("Succeeded", "Failed", "Error"))
    assert run["status"]["phase"] == "Succeeded", run["status"].get("message")
    assert run["metadata"]["labels"]["headrace.dev/pipeline"] == "cluster-cron"

    code, out = invoke(cli, "schedules", "suspend", "cluster-cron")
    assert code == 0 and "suspended" in out, out
    (cron,) = [c for c in objects(on_cluster, "cronworkflows") if c["metadata"]["name"] == "cluster-cron"]
    assert cron["spec"]["suspend"] is True
    code, out = invoke(cli, "schedules", "resume", "cluster-cron")
    assert code == 0 and "active" in out, out
    (cron,) = [c for c in objects(on_cluster, "cronworkflows") if c["metadata"]["name"] == "cluster-cron"]
    assert not cron["spec"].get("suspend")
    invoke(cli, "schedules", "suspend", "cluster-cron")  # no more runs for the rest of the session

    code, out = invoke(cli, "deploy", "cluster_cron:pipeline")
    assert code == 0, out  # a second deploy updates in place (the real server wants resourceVersion)


def test_backfill_creates_exactly_the_missing_runs(on_cluster: Cluster, cli: CliRunner) -> None:
    code, out = invoke(cli, "submit", "cluster_cron:daily", "-p", "run_date=2026-01-01")
    assert code == 0, out
    wait_for(on_cluster, submitted(out), ("Succeeded",))
    code, out = invoke(cli, "backfill", "cluster_cron:daily", "--from", "2026-01-01", "--to", "2026-01-03")
    assert code == 0, out
    runs = objects(on_cluster, "workflows", "headrace.dev/pipeline=cluster-daily")
    dates = sorted(r["metadata"]["labels"]["headrace.dev/run-date"] for r in runs)
    assert dates == ["2026-01-01", "2026-01-02", "2026-01-03"]
    for run in runs:
        assert (
            wait_for(on_cluster, run["metadata"]["name"], ("Succeeded", "Failed", "Error"))["status"]["phase"]
            == "Succeeded"
        )
