"""``headrace control-room watch``: the watcher as the control room Deployment runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from control_room.store import Store

from .k8s_server import KubeServer
from .test_watch import OOM_POD, workflow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def kube() -> Iterator[KubeServer]:
    from tests.conftest import free_port

    server = KubeServer(free_port()).start()
    try:
        yield server
    finally:
        server.stop()


def kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
        f"clusters:\n- name: test\n  cluster:\n    server: {server}\n"
        "contexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n    namespace: ml\n"
        "users:\n- name: test\n  user:\n    token: dummy\n"
    )
    return path


def cli(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", "from pipelines.cli import main; main()", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.integration
def test_watch_command_stores_workflow_and_oomkilled_pod_events(kube: KubeServer, tmp_path: Path) -> None:
    db = tmp_path / "control-room.db"
    env = {
        "KUBECONFIG": str(kubeconfig(tmp_path / "kubeconfig", kube.url)),
        "HEADRACE_CONTROL_ROOM_DB": f"sqlite:///{db}",
        "HEADRACE_DATADOG": "false",
    }
    process = cli("control-room", "watch", "--namespace", "ml", env=env)
    try:
        deadline = time.monotonic() + 20
        while len(kube.watch_requests("pods")) < 1 or len(kube.watch_requests("workflows")) < 1:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the watcher never started watching"
            time.sleep(0.05)
        kube.put("workflows", workflow("Running"))
        kube.put("pods", OOM_POD)

        store = Store.open(f"sqlite:///{db}")
        try:
            run = None
            while time.monotonic() < deadline:
                run = store.run("recipes-abc12")
                if run is not None and len(run["events"]) == 2:
                    break
                time.sleep(0.1)
            assert run is not None
            assert sorted((e["kind"], e["task"], e["reason"]) for e in run["events"]) == [
                ("run.started", None, ""),
                ("task.failed", "train", "OOMKilled (exit code 137)"),
            ]
        finally:
            store.close()
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    assert "watching workflows and pods in namespace ml" in out
    assert "Traceback" not in err


@pytest.mark.integration
def test_watch_without_kubernetes_configuration_is_one_clear_error(tmp_path: Path) -> None:
    env = {"KUBECONFIG": str(tmp_path / "missing-kubeconfig"), "HEADRACE_DATADOG": "false"}
    process = cli("control-room", "watch", env=env)
    _out, err = process.communicate(timeout=60)

    assert process.returncode == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "watch: no Kubernetes configuration" in lines[0] and "KUBECONFIG" in lines[0]
