"""``headrace deploy`` (idempotent), ``schedules`` (next run times), ``suspend`` / ``resume``, ``render``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from pipelines.argo.client import open_transport, resolve_connection
from pipelines.argo.deploy import list_schedules, next_run
from steps.core.settings import Settings
from tests.argo_ops.conftest import invoke, write_flow

pytestmark = pytest.mark.integration


def test_first_deploy_creates_the_template_then_the_cron_that_refers_to_it(
    argo_env: Any, tmp_path: Path, cli: CliRunner
) -> None:
    code, out = invoke(cli, "deploy", write_flow(tmp_path))
    assert code == 0, out
    assert "WorkflowTemplate daily-scores: created" in out and "CronWorkflow daily-scores: created" in out
    posts = [c.path for c in argo_env.cluster.calls_to("POST")]
    assert posts == ["/api/v1/workflow-templates/argo", "/api/v1/cron-workflows/argo"]
    cron = argo_env.cluster.object("cronworkflows", "daily-scores")
    assert cron["spec"]["schedules"] == ["0 3 * * *"] and cron["spec"]["timezone"] == "Asia/Tokyo"
    assert cron["spec"]["workflowSpec"]["workflowTemplateRef"] == {"name": "daily-scores"}


def test_a_second_deploy_without_changes_makes_no_update_call(argo_env: Any, tmp_path: Path, cli: CliRunner) -> None:
    spec = write_flow(tmp_path)
    invoke(cli, "deploy", spec)
    versions = {
        k: argo_env.cluster.object(k, "daily-scores")["metadata"]["resourceVersion"]
        for k in ("cronworkflows", "workflowtemplates")
    }
    code, out = invoke(cli, "deploy", spec)
    assert code == 0, out
    assert "WorkflowTemplate daily-scores: unchanged" in out and "CronWorkflow daily-scores: unchanged" in out
    assert argo_env.cluster.calls_to("PUT") == []
    assert len(argo_env.cluster.calls_to("POST")) == 2
    after = {k: argo_env.cluster.object(k, "daily-scores")["metadata"]["resourceVersion"] for k in versions}
    assert after == versions


def test_a_changed_schedule_updates_the_cron_in_place(argo_env: Any, tmp_path: Path, cli: CliRunner) -> None:
    spec = write_flow(tmp_path)
    invoke(cli, "deploy", spec)
    uid = argo_env.cluster.object("cronworkflows", "daily-scores")["metadata"]["uid"]
    write_flow(tmp_path, schedule='Schedule(["0 4 * * *", "30 16 * * 5"], timezone="Europe/Paris")')
    code, out = invoke(cli, "deploy", spec)
    assert code == 0, out
    assert "WorkflowTemplate daily-scores: unchanged" in out and "CronWorkflow daily-scores: updated" in out
    cron = argo_env.cluster.object("cronworkflows", "daily-scores")
    assert cron["metadata"]["uid"] == uid, "updated in place, not recreated"
    assert cron["spec"]["schedules"] == ["0 4 * * *", "30 16 * * 5"]
    assert cron["spec"]["timezone"] == "Europe/Paris"
    assert [c.path for c in argo_env.cluster.calls_to("PUT")] == ["/api/v1/cron-workflows/argo/daily-scores"]


def test_deploy_over_the_kubernetes_api_is_idempotent_too(
    argo: Any, tmp_path: Path, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", argo.kubeconfig(str(tmp_path / "kc")))
    monkeypatch.chdir(tmp_path)
    spec = write_flow(tmp_path)
    assert invoke(cli, "deploy", spec)[0] == 0
    code, out = invoke(cli, "deploy", spec)
    assert code == 0 and out.count("unchanged") == 2
    assert argo.cluster.calls_to("PUT") == [] and {c.api for c in argo.cluster.calls} == {"k8s"}


def test_an_invalid_cron_is_refused_before_anything_is_sent(argo_env: Any, tmp_path: Path, cli: CliRunner) -> None:
    spec = write_flow(tmp_path, "bad-cron", schedule='Schedule("0 3 * * * *")')
    code, out = invoke(cli, "deploy", spec)
    assert code == 2
    assert "pipeline bad-cron: schedule.cron '0 3 * * * *' has 6 fields" in out and "Traceback" not in out
    assert argo_env.cluster.calls == []


def test_next_run_is_computed_in_the_schedule_time_zone() -> None:
    now = dt.datetime(2026, 11, 1, 17, 30, tzinfo=dt.UTC)  # 02:30 on Nov 2 in Tokyo
    when = next_run(("0 3 * * *",), "Asia/Tokyo", now)
    assert when is not None
    assert when.isoformat() == "2026-11-02T03:00:00+09:00"
    assert next_run(("0 4 * * *", "30 2 * * *"), "UTC", now) == dt.datetime(2026, 11, 2, 2, 30, tzinfo=dt.UTC)


def test_schedules_lists_next_runs_and_suspend_resume_toggle_them(
    argo_env: Any, tmp_path: Path, cli: CliRunner
) -> None:
    invoke(cli, "deploy", write_flow(tmp_path))
    code, out = invoke(cli, "schedules")
    assert code == 0, out
    row = next(line for line in out.splitlines() if "daily-scores" in line)
    assert "0 3 * * *" in row and "Asia/Tokyo" in row and "active" in row and "JST" in row
    code, out = invoke(cli, "schedules", "suspend", "daily-scores")
    assert code == 0 and "schedule daily-scores: suspended" in out
    assert argo_env.cluster.object("cronworkflows", "daily-scores")["spec"]["suspend"] is True
    connection = resolve_connection(Settings(), server=argo_env.url, token=argo_env.cluster.token, environ={})
    (info,) = list_schedules(open_transport(connection))
    assert info.suspended and info.next_run is None
    code, out = invoke(cli, "schedules", "resume", "daily-scores")
    assert code == 0 and "schedule daily-scores: active; next run" in out
    code, out = invoke(cli, "schedules", "suspend", "nope")
    assert code == 2 and "CronWorkflow nope: not found" in out


def test_render_writes_the_template_and_cron_as_yaml(
    tmp_path: Path, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out = invoke(cli, "render", write_flow(tmp_path), "-o", "out", "--namespace", "headrace")
    assert code == 0, out
    documents = list(yaml.safe_load_all((tmp_path / "out" / "daily-scores.yaml").read_text()))
    assert [d["kind"] for d in documents] == ["WorkflowTemplate", "CronWorkflow"]
    assert {d["metadata"]["namespace"] for d in documents} == {"headrace"}


def test_removing_the_schedule_warns_that_the_old_cron_still_runs(
    argo_env: Any, tmp_path: Path, cli: CliRunner
) -> None:
    spec = write_flow(tmp_path)
    invoke(cli, "deploy", spec)
    write_flow(tmp_path, schedule="None")
    code, out = invoke(cli, "deploy", spec)
    assert code == 0, out
    assert "WorkflowTemplate daily-scores: unchanged" in out
    assert (
        "CronWorkflow daily-scores from an earlier deploy still runs" in out and "schedules suspend daily-scores" in out
    )
