"""``headrace submit / status / list / logs / stop / retry / resubmit`` against the real
kube-apiserver and Argo workflow-controller, through both transports (Argo Server REST and the
Kubernetes API); the node agent runs each pod's ``python -m steps`` as a local process."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from typer.testing import CliRunner

from tests.cluster.conftest import invoke
from tests.cluster.control_plane import Cluster

TRANSPORTS = ["argo", "k8s"]


def workflow(cluster: Cluster, name: str) -> dict[str, Any]:
    with cluster.api() as api:
        response = api.get(f"/apis/argoproj.io/v1alpha1/namespaces/{cluster.namespace}/workflows/{name}")
        response.raise_for_status()
        found: dict[str, Any] = response.json()
        return found


def wait_for(cluster: Cluster, name: str, phases: tuple[str, ...], timeout: float = 480) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = workflow(cluster, name)
        if found.get("status", {}).get("phase") in phases:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{name} is {found.get('status', {}).get('phase')!r}, not {phases} after {timeout:.0f}s: "
                f"{json.dumps(found.get('status', {}))[:1500]}\n{cluster.log_of('node-agent')[-1500:]}"
            )
        time.sleep(0.5)


def submitted(out: str) -> str:
    match = re.search(r"submitted (\S+)", out)
    assert match, out
    return match.group(1)


def output_value(run: dict[str, Any], task: str, output: str) -> Any:
    """The value a task wrote, read back through the artifact reference Argo passed on."""
    for node in run["status"]["nodes"].values():
        if node.get("displayName") == task and node.get("type") == "Pod":
            params = {p["name"]: p.get("value") for p in node.get("outputs", {}).get("parameters", [])}
            ref = json.loads(params[output])
            path = Path(urlparse(ref["uri"]).path)
            files = sorted(path.rglob("*")) if path.is_dir() else [path]
            return json.loads(next(f for f in files if f.is_file() and f.suffix == ".json").read_text())
    raise AssertionError(f"no pod node {task} in {run['metadata']['name']}")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_submitted_chain_runs_to_succeeded_with_outputs_passed_between_tasks(
    on_cluster: Cluster, cli: CliRunner, transport: str
) -> None:
    code, out = invoke(cli, "submit", "cluster_chain:pipeline", "-p", "limit=4", "--transport", transport)
    assert code == 0, out
    run = wait_for(on_cluster, submitted(out), ("Succeeded", "Failed", "Error"))
    assert run["status"]["phase"] == "Succeeded", run["status"].get("message")
    assert output_value(run, "total", "result") == {"count": 4, "sum": 0 + 1 + 4 + 9}

    code, out = invoke(cli, "status", run["metadata"]["name"], "--transport", transport)
    assert code == 0, out
    assert "Succeeded" in out and all(task in out for task in ("numbers", "squares", "total"))

    code, out = invoke(cli, "list", "--pipeline", "cluster-chain", "--transport", transport)
    assert code == 0 and run["metadata"]["name"] in out, out


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_logs_of_a_finished_run_are_what_its_tasks_printed(
    on_cluster: Cluster, cli: CliRunner, transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADRACE_ARGO_TRANSPORT", transport)
    code, out = invoke(cli, "submit", "cluster_chain:pipeline", "-p", "limit=3")
    assert code == 0, out
    name = submitted(out)
    wait_for(on_cluster, name, ("Succeeded",))
    code, out = invoke(cli, "logs", name)
    assert code == 0, out
    assert "numbers | numbers: making 3" in out and "squares | squares: got 3 values" in out
    assert "total | total: {'count': 3, 'sum': 5}" in out
    code, out = invoke(cli, "logs", name, "squares")
    assert code == 0 and out.splitlines() == ["squares: got 3 values"], out


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_stop_ends_a_running_run_and_stopping_it_again_is_one_line(
    on_cluster: Cluster, cli: CliRunner, transport: str
) -> None:
    code, out = invoke(cli, "submit", "cluster_slow:pipeline", "-p", "seconds=300", "--transport", transport)
    assert code == 0, out
    name = submitted(out)
    wait_for(on_cluster, name, ("Running",))
    code, out = invoke(cli, "stop", name, "--transport", transport)
    assert code == 0, out
    run = wait_for(on_cluster, name, ("Failed", "Error"), timeout=90)
    assert "Stopped" in run["status"].get("message", "") or "stop" in run["status"].get("message", "").lower()
    code, out = invoke(cli, "stop", name, "--transport", transport)
    assert code != 0 and "Traceback" not in out and name in out, out
    assert "current state" in out and "try again in a moment" not in out, out


def test_retry_reruns_the_failed_task_of_a_failed_run_to_succeeded(
    on_cluster: Cluster, cli: CliRunner, tmp_path: Path
) -> None:
    marker = tmp_path / "flaky-marker"
    code, out = invoke(cli, "submit", "cluster_flaky:pipeline", "-p", f"marker={marker}")
    assert code == 0, out
    name = submitted(out)
    assert wait_for(on_cluster, name, ("Failed", "Error", "Succeeded"))["status"]["phase"] == "Failed"
    code, out = invoke(cli, "retry", name)
    assert code == 0, out
    assert wait_for(on_cluster, name, ("Succeeded", "Failed", "Error"))["status"]["phase"] == "Succeeded"


def test_retry_of_a_running_run_is_refused_in_one_line(on_cluster: Cluster, cli: CliRunner) -> None:
    code, out = invoke(cli, "submit", "cluster_slow:pipeline", "-p", "seconds=300")
    assert code == 0, out
    name = submitted(out)
    wait_for(on_cluster, name, ("Running",))
    try:
        code, out = invoke(cli, "retry", name)
        assert code != 0 and "Traceback" not in out and name in out, out
        assert "current state" in out and "fix the pipeline definition" not in out, out
    finally:
        invoke(cli, "stop", name)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_resubmit_runs_a_finished_run_again_as_a_new_run(on_cluster: Cluster, cli: CliRunner, transport: str) -> None:
    code, out = invoke(cli, "submit", "cluster_chain:pipeline", "-p", "limit=2", "--transport", transport)
    assert code == 0, out
    name = submitted(out)
    wait_for(on_cluster, name, ("Succeeded",))
    code, out = invoke(cli, "resubmit", name, "--transport", transport)
    assert code == 0, out
    match = re.search(rf"resubmitted {name} as (\S+)", out)
    assert match, out
    again = wait_for(on_cluster, match.group(1), ("Succeeded", "Failed", "Error"))
    assert again["status"]["phase"] == "Succeeded"
    assert output_value(again, "total", "result") == {"count": 2, "sum": 1}
