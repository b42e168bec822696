"""``stream_logs``: Argo's newline-delimited JSON log stream, read with httpx from a local Argo Server.

Fast checks of what a finished run cannot show (following a stream, error lines, Hera's limit).
The lines of each task and of each attempt, read through both transports from the real Argo
Server and kube-apiserver: tests/cluster/test_runs.py, test_limits.py and test_sizing.py.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pipelines.argo.logs import stream_logs
from steps.core.errors import ConfigError, NotFoundError
from steps.core.settings import load_settings
from tests.argo_ops.conftest import invoke, write_flow

pytestmark = pytest.mark.integration


@pytest.fixture
def run(argo_env: Any, tmp_path: Path, cli: CliRunner) -> str:
    code, out = invoke(cli, "submit", write_flow(tmp_path), "-p", "run_date=2026-11-03")
    assert code == 0, out
    name: str = argo_env.cluster.workflows()[0]["metadata"]["name"]
    argo_env.cluster.set_phase(name, "Running", tasks={"extract": "Succeeded", "train": "Running"})
    argo_env.cluster.add_log(name, "extract", "read 3 rows")
    argo_env.cluster.add_log(name, "train", "epoch 1 loss=0.5")
    argo_env.cluster.add_log(name, "extract", "wrote result")
    return name


def test_follow_keeps_reading_until_the_run_completes(run: str, argo_env: Any) -> None:
    def later() -> None:
        time.sleep(0.2)
        argo_env.cluster.add_log(run, "train", "epoch 2 loss=0.3")
        time.sleep(0.1)
        argo_env.cluster.set_phase(run, "Succeeded", tasks={"train": "Succeeded"})

    thread = threading.Thread(target=later)
    thread.start()
    try:
        lines = list(stream_logs(run, task="train", follow=True, settings=load_settings()))
    finally:
        thread.join()
    assert lines == ["epoch 1 loss=0.5", "epoch 2 loss=0.3"]


def test_an_unknown_task_names_the_tasks_that_exist(run: str) -> None:
    with pytest.raises(NotFoundError, match="no task 'score' has started; tasks so far: extract, train"):
        list(stream_logs(run, task="score", settings=load_settings()))


def test_a_bad_token_on_the_log_stream_is_one_line(run: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARGO_TOKEN", "wrong")
    with pytest.raises(ConfigError, match=r"token was rejected \(401"):
        list(stream_logs(run, settings=load_settings()))


@pytest.fixture
def kube_only(run: str, argo_env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The same run, read without an Argo Server: through the kubeconfig's Kubernetes API."""
    monkeypatch.delenv("ARGO_SERVER")
    monkeypatch.setenv("KUBECONFIG", argo_env.kubeconfig(str(tmp_path / "kc")))
    return run


def test_following_a_pod_through_the_kubernetes_api(kube_only: str, argo_env: Any) -> None:
    def later() -> None:
        time.sleep(0.2)
        argo_env.cluster.add_log(kube_only, "train", "epoch 2 loss=0.3")
        time.sleep(0.1)
        argo_env.cluster.set_phase(kube_only, "Succeeded", tasks={"train": "Succeeded"})

    thread = threading.Thread(target=later)
    thread.start()
    try:
        lines = list(stream_logs(kube_only, task="train", follow=True, settings=load_settings()))
    finally:
        thread.join()
    assert lines == ["epoch 1 loss=0.5", "epoch 2 loss=0.3"]


def test_kubernetes_logs_of_a_missing_run_are_not_found(kube_only: str) -> None:
    with pytest.raises(NotFoundError, match="Workflow nope: not found"):
        list(stream_logs("nope", settings=load_settings()))


def test_hera_71_cannot_read_argos_line_stream_which_is_why_we_read_it_ourselves(run: str, argo_env: Any) -> None:
    """When Hera learns to read the stream, this fails: switch stream_logs to Hera then."""
    import json as json_module

    from hera.workflows.service import WorkflowsService

    service = WorkflowsService(host=argo_env.url + "/", token=argo_env.cluster.token, namespace="argo")
    with pytest.raises((json_module.JSONDecodeError, ValueError, TypeError)):
        service.workflow_logs(run, log_options_container="main")
