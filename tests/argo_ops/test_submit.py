"""``headrace submit / status / list / stop / retry / resubmit`` against a local Argo Server."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.argo_ops.conftest import invoke, write_flow

pytestmark = pytest.mark.integration


def only_run(argo: Any) -> dict[str, Any]:
    runs = argo.cluster.workflows()
    assert len(runs) == 1
    return runs[0]


def test_submit_labels_the_run_with_pipeline_and_run_date_and_sets_params(
    argo_env: Any, tmp_path: Path, cli: CliRunner
) -> None:
    spec = write_flow(tmp_path)
    code, out = invoke(cli, "submit", spec, "-p", "run_date=2026-11-03", "-p", "limit=5")
    assert code == 0, out
    run = only_run(argo_env)
    assert run["metadata"]["labels"]["headrace.dev/pipeline"] == "daily-scores"
    assert run["metadata"]["labels"]["headrace.dev/run-date"] == "2026-11-03"
    params = {p["name"]: p["value"] for p in run["spec"]["arguments"]["parameters"]}
    assert params == {"run_date": "2026-11-03", "limit": "5"}
    assert f"submitted {run['metadata']['name']} (pipeline daily-scores, run date 2026-11-03)" in out


def test_submit_without_run_date_uses_today_in_the_pipeline_time_zone(
    argo_env: Any, tmp_path: Path, cli: CliRunner
) -> None:
    import datetime as dt
    import zoneinfo

    code, out = invoke(cli, "submit", write_flow(tmp_path))
    assert code == 0, out
    today = dt.datetime.now(zoneinfo.ZoneInfo("Asia/Tokyo")).date().isoformat()
    assert only_run(argo_env)["metadata"]["labels"]["headrace.dev/run-date"] == today


def test_submit_over_the_kubernetes_api_creates_the_same_workflow(
    argo: Any, tmp_path: Path, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", argo.kubeconfig(str(tmp_path / "kubeconfig"), namespace="ml"))
    monkeypatch.chdir(tmp_path)
    code, out = invoke(cli, "submit", write_flow(tmp_path), "-p", "run_date=2026-11-04", "--transport", "k8s")
    assert code == 0, out
    assert [c.api for c in argo.cluster.calls_to("POST")] == ["k8s"]
    (run,) = argo.cluster.workflows("ml")
    assert run["metadata"]["labels"]["headrace.dev/run-date"] == "2026-11-04"


def test_submit_with_an_unknown_parameter_is_one_line(argo_env: Any, tmp_path: Path, cli: CliRunner) -> None:
    code, out = invoke(cli, "submit", write_flow(tmp_path), "-p", "limt=5")
    assert code == 2
    assert "unknown parameter 'limt'" in out and "Traceback" not in out
    assert argo_env.cluster.workflows() == []


def test_submit_watch_follows_the_tasks_until_the_run_succeeds(argo_env: Any, tmp_path: Path, cli: CliRunner) -> None:
    spec = write_flow(tmp_path)

    def controller() -> None:
        deadline = time.monotonic() + 10
        while not argo_env.cluster.workflows() and time.monotonic() < deadline:
            time.sleep(0.01)
        name = argo_env.cluster.workflows()[0]["metadata"]["name"]
        argo_env.cluster.set_phase(name, "Running", tasks={"extract": "Running"})
        time.sleep(0.1)
        argo_env.cluster.set_phase(name, "Succeeded", tasks={"extract": "Succeeded", "train": "Succeeded"})

    thread = threading.Thread(target=controller)
    thread.start()
    try:
        code, out = invoke(cli, "submit", spec, "--watch", "--poll-interval", "0.05")
    finally:
        thread.join()
    assert code == 0, out
    assert "Succeeded" in out and "extract" in out and "train" in out


def test_submit_watch_exits_1_when_the_run_fails(argo_env: Any, tmp_path: Path, cli: CliRunner) -> None:
    def controller() -> None:
        deadline = time.monotonic() + 10
        while not argo_env.cluster.workflows() and time.monotonic() < deadline:
            time.sleep(0.01)
        name = argo_env.cluster.workflows()[0]["metadata"]["name"]
        argo_env.cluster.set_phase(name, "Failed", tasks={"extract": "Failed"}, message="child failed")

    thread = threading.Thread(target=controller)
    thread.start()
    try:
        code, out = invoke(cli, "submit", write_flow(tmp_path), "--watch", "--poll-interval", "0.05")
    finally:
        thread.join()
    assert code == 1
    assert "Failed" in out and "child failed" in out


def test_status_shows_each_task_and_its_phase(argo_env: Any, tmp_path: Path, cli: CliRunner) -> None:
    invoke(cli, "submit", write_flow(tmp_path), "-p", "run_date=2026-11-03")
    name = only_run(argo_env)["metadata"]["name"]
    argo_env.cluster.set_phase(name, "Running", tasks={"extract": "Succeeded", "train": "Running"})
    code, out = invoke(cli, "status", name)
    assert code == 0, out
    assert name in out and "Running" in out
    lines = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") >= 4}
    assert "Succeeded" in lines["extract"] and "Running" in lines["train"]


def test_list_filters_by_pipeline_and_status_on_the_server(argo_env: Any, tmp_path: Path, cli: CliRunner) -> None:
    spec_a = write_flow(tmp_path, "daily-scores")
    spec_b = write_flow(tmp_path, "weekly-report")
    invoke(cli, "submit", spec_a, "-p", "run_date=2026-11-01")
    invoke(cli, "submit", spec_a, "-p", "run_date=2026-11-02")
    invoke(cli, "submit", spec_b, "-p", "run_date=2026-11-02")
    first = next(
        w for w in argo_env.cluster.workflows() if w["metadata"]["labels"]["headrace.dev/run-date"] == "2026-11-01"
    )
    argo_env.cluster.set_phase(first["metadata"]["name"], "Succeeded")
    code, out = invoke(cli, "list", "--pipeline", "daily-scores", "--status", "succeeded")
    assert code == 0, out
    assert first["metadata"]["name"] in out and "2026-11-02" not in out and "weekly-report" not in out
    selector_calls = [c for c in argo_env.cluster.calls_to("GET", "/api/v1/workflows/argo") if c.path.endswith("/argo")]
    assert selector_calls, "list goes to the Argo Server"
    code, out = invoke(cli, "list", "--status", "sleeping")
    assert code == 2 and "not an Argo phase" in out


def test_a_bad_token_is_exit_2_and_one_line(argo_env: Any, tmp_path: Path, cli: CliRunner) -> None:
    code, out = invoke(cli, "list", "--token", "wrong")
    assert code == 2
    assert out.strip().count("\n") == 0 and "token was rejected (401 Unauthorized)" in out


def test_an_unreachable_server_is_exit_2_and_one_line(
    argo_env: Any, tmp_path: Path, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import free_port

    monkeypatch.setenv("ARGO_SERVER", f"http://127.0.0.1:{free_port()}")
    code, out = invoke(cli, "submit", write_flow(tmp_path))
    assert code == 2
    assert "cannot reach http://127.0.0.1:" in out and "connection refused" in out and "Traceback" not in out


def test_a_missing_namespace_is_exit_2_and_names_it(argo_env: Any, tmp_path: Path, cli: CliRunner) -> None:
    code, out = invoke(cli, "submit", write_flow(tmp_path), "--namespace", "nowhere")
    assert code == 2
    assert "namespace nowhere does not exist" in out


def test_no_server_and_no_kubeconfig_is_one_line(
    tmp_path: Path, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    code, out = invoke(cli, "list")
    assert code == 2
    assert "kubeconfig" in out and "ARGO_SERVER" in out and "Traceback" not in out


def test_retried_tasks_keep_their_name_with_an_attempt_number() -> None:
    from pipelines.argo.submit import pod_name, run_status

    workflow = {
        "metadata": {
            "name": "scores-abcde",
            "labels": {"headrace.dev/pipeline": "scores", "headrace.dev/run-date": "2026-11-03"},
        },
        "status": {
            "phase": "Running",
            "nodes": {
                "scores-abcde": {
                    "id": "scores-abcde",
                    "name": "scores-abcde",
                    "displayName": "scores-abcde",
                    "type": "DAG",
                    "phase": "Running",
                },
                "scores-abcde-1": {
                    "id": "scores-abcde-1",
                    "name": "scores-abcde.train",
                    "displayName": "train",
                    "type": "Retry",
                    "phase": "Running",
                },
                "scores-abcde-2": {
                    "id": "scores-abcde-2",
                    "name": "scores-abcde.train(0)",
                    "displayName": "train(0)",
                    "type": "Pod",
                    "templateName": "train",
                    "phase": "Failed",
                    "message": "OOMKilled (exit code 137)",
                    "startedAt": "2026-11-03T03:00:05Z",
                },
                "scores-abcde-3": {
                    "id": "scores-abcde-3",
                    "name": "scores-abcde.train(1)",
                    "displayName": "train(1)",
                    "type": "Pod",
                    "templateName": "train",
                    "phase": "Running",
                    "startedAt": "2026-11-03T03:04:00Z",
                },
            },
        },
    }
    run = run_status(workflow)
    assert (run.pipeline, run.run_date, run.phase) == ("scores", "2026-11-03", "Running")
    assert [(t.name, t.attempt, t.phase) for t in run.tasks] == [("train", 1, "Failed"), ("train", 2, "Running")]
    assert run.tasks[0].message == "OOMKilled (exit code 137)"
    assert run.tasks[1].pod_name == pod_name("scores-abcde", "scores-abcde.train(1)", "train")


def test_argo_pod_names_follow_argo_v2_naming() -> None:
    from pipelines.argo.submit import fnv32a, pod_name

    assert fnv32a("") == 0x811C9DC5 and fnv32a("a") == 0xE40C292C  # FNV-1a reference values
    assert pod_name("wf", "wf.extract", "extract") == f"wf-extract-{fnv32a('wf.extract')}"


def test_a_pipeline_namespace_is_where_it_is_submitted(argo_env: Any, tmp_path: Path, cli: CliRunner) -> None:
    spec = write_flow(tmp_path, "team-flow")
    source = tmp_path / "team_flow.py"
    source.write_text(source.read_text().replace('params={"limit": 10}', 'params={"limit": 10}, namespace="ml"'))
    code, out = invoke(cli, "submit", spec)
    assert code == 0, out
    assert len(argo_env.cluster.workflows("ml")) == 1 and argo_env.cluster.workflows("argo") == []
    code, out = invoke(cli, "submit", spec, "--namespace", "argo")
    assert code == 0 and len(argo_env.cluster.workflows("argo")) == 1


def test_status_lists_tasks_that_have_not_started_as_pending(argo_env: Any, tmp_path: Path, cli: CliRunner) -> None:
    invoke(cli, "submit", write_flow(tmp_path))
    name = only_run(argo_env)["metadata"]["name"]
    argo_env.cluster.set_phase(name, "Running", tasks={"extract": "Running"})
    code, out = invoke(cli, "status", name)
    assert code == 0, out
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") >= 4}
    assert "Running" in rows["extract"] and "Pending" in rows["train"]
    assert "0/2 done" in out
