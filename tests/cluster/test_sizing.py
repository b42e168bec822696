"""``sizing="auto"`` on the real controller: the pod Argo creates carries the resources the
control room chose, and an attempt the node kills for memory is retried one size up."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from tests.cluster.conftest import invoke, point_cli_at
from tests.cluster.control_plane import Cluster
from tests.cluster.test_runs import submitted, wait_for


def pods_of(cluster: Cluster, run: str, task: str) -> list[dict[str, Any]]:
    """The pods of one task of a run, oldest first, as the API server has them."""
    with cluster.api() as api:
        response = api.get(
            f"/api/v1/namespaces/{cluster.namespace}/pods",
            params={"labelSelector": f"workflows.argoproj.io/workflow={run},headrace.dev/task={task}"},
        )
        response.raise_for_status()
        pods: list[dict[str, Any]] = response.json()["items"]
    return sorted(pods, key=lambda pod: pod["metadata"]["creationTimestamp"])


def main_container(pod: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in pod["spec"]["containers"] if c["name"] == "main")


def main_state(pod: dict[str, Any]) -> dict[str, Any]:
    status = next(c for c in pod["status"]["containerStatuses"] if c["name"] == "main")
    terminated: dict[str, Any] = status["state"]["terminated"]
    return terminated


def decisions(run: dict[str, Any], sizing_node: str) -> list[dict[str, Any]]:
    """The pod-spec-patch each attempt's sizing node output, in the order they ran (the sizing node
    has a retry strategy of its own, so its pods are named ``size-<task>(0)``)."""
    nodes = [
        n
        for n in run["status"]["nodes"].values()
        if n.get("displayName", "").split("(")[0] == sizing_node
        and n.get("type") == "Pod"
        and n.get("phase") == "Succeeded"
    ]
    nodes.sort(key=lambda n: n["startedAt"])
    return [
        json.loads(next(p["value"] for p in n["outputs"]["parameters"] if p["name"] == "pod-spec-patch")) for n in nodes
    ]


def memory_gib(quantity: str) -> float:
    units = {"Mi": 1 / 1024, "Gi": 1.0, "Ki": 1 / 1024**2}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return float(quantity[: -len(suffix)]) * factor
    return float(quantity) / 1024**3


@pytest.fixture(scope="module")
def oom_run(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One run of cluster_oom (a sized task needing 1.5 GiB of a small input), finished; both tests
    read it."""
    with pytest.MonkeyPatch.context() as patch:
        point_cli_at(cluster, patch, tmp_path_factory.mktemp("oom"))
        code, out = invoke(CliRunner(), "submit", "cluster_oom:pipeline", "-p", "megabytes=1536")
        assert code == 0, out
        yield wait_for(cluster, submitted(out), ("Succeeded", "Failed", "Error"), timeout=240)


def test_oom_killed_first_attempt_is_retried_one_size_up_with_the_sizes_the_control_room_chose(
    cluster: Cluster, oom_run: dict[str, Any]
) -> None:
    run, name, on_cluster = oom_run, oom_run["metadata"]["name"], cluster

    first, *later = pods_of(on_cluster, name, "hungry")
    assert later, f"only one attempt ran: {run['status'].get('message')}"
    assert (main_state(first)["reason"], main_state(first)["exitCode"]) == ("OOMKilled", 137)

    chosen = decisions(run, "size-hungry")
    assert len(chosen) == len(later) + 1
    for pod, patch in zip([first, *later], chosen, strict=True):
        wanted = next(c for c in patch["containers"] if c["name"] == "main")["resources"]
        assert main_container(pod)["resources"] == wanted  # what the control room chose is what the pod got

    first_limit = memory_gib(main_container(first)["resources"]["limits"]["memory"])
    second_limit = memory_gib(main_container(later[0])["resources"]["limits"]["memory"])
    assert first_limit < 1.5 < second_limit
    assert main_state(later[-1])["exitCode"] == 0
    assert run["status"]["phase"] == "Succeeded"


def test_control_room_watch_records_the_oom_killed_pod_from_the_real_api_server(
    cluster: Cluster, oom_run: dict[str, Any]
) -> None:
    name = oom_run["metadata"]["name"]
    killed = pods_of(cluster, name, "hungry")[0]
    history = httpx.get(f"{cluster.control_room_url}/v1/tasks/cluster-oom/hungry", params={"limit": 1000}).json()
    ooms = [o for o in history["observations"] if o["run_id"] == name and o["outcome"] == "oom"]
    assert len(ooms) == 1, history
    assert killed["metadata"]["name"] in ooms[0]["reason"]
    assert ooms[0]["memory"] == main_container(killed)["resources"]["limits"]["memory"]


def pod_log(cluster: Cluster, pod: dict[str, Any]) -> str:
    """The ``main`` container's log as the API server serves it (from the node's kubelet)."""
    with cluster.api() as api:
        response = api.get(
            f"/api/v1/namespaces/{cluster.namespace}/pods/{pod['metadata']['name']}/log", params={"container": "main"}
        )
        response.raise_for_status()
        return response.text


@pytest.mark.parametrize("transport", ["argo", "k8s"])
def test_logs_of_each_attempt_of_a_sized_task_are_that_attempts_pod(
    on_cluster: Cluster, oom_run: dict[str, Any], cli: CliRunner, transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADRACE_ARGO_TRANSPORT", transport)
    name = oom_run["metadata"]["name"]
    first, second = pods_of(on_cluster, name, "hungry")
    code, out = invoke(cli, "logs", name, "hungry", "--attempt", "1")
    assert code == 0 and "allocating 1536 MiB" in out, out
    assert out.strip() == pod_log(on_cluster, first).strip()
    code, again = invoke(cli, "logs", name, "hungry", "--attempt", "2")
    assert code == 0 and "holding 1536 MiB" in again, again
    assert again.strip() == pod_log(on_cluster, second).strip() and again != out  # another process, another pid
