"""The real control plane for the cluster tests: one per test session (see control_plane.py).

They run with every test run. The session fixture first runs ``tests/cluster/build``, which does
nothing when the binaries are cached and otherwise builds them from the Go module proxy (about an
hour per component on 2 cores, once per machine), its progress shown as it goes. Without Go and
without cached binaries the tests skip with one line saying why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.cluster import control_plane
from tests.cluster.control_plane import Cluster
from tests.notify.slack_server import VALID_TOKEN, SlackServer

#: The channel the cluster's control room posts run messages to (one the Slack stand-in knows).
SLACK_CHANNEL = "#ml-alerts"

PIPELINES = Path(__file__).resolve().parent / "pipelines"
#: The repository: pods import the README's example (``examples.recipe_stream``) from it.
ROOT = Path(__file__).resolve().parents[2]


#: A first run builds the binaries inside the first cluster test's setup: its time limit covers that.
BUILD_TIMEOUT = 3 * 3600


def build(config: pytest.Config) -> None:
    """``tests/cluster/build``, its output on the terminal (not captured): a no-op when cached."""
    if not shutil.which("go") or not control_plane.missing():
        return
    capture = config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else nullcontext():
        print(f"\ntests/cluster/build: building the control plane into {control_plane.cache_dir()}", flush=True)
        done = subprocess.run([str(control_plane.HERE / "build")], check=False)
    if done.returncode != 0:
        pytest.fail(f"tests/cluster/build failed (exit {done.returncode}); its output is above", pytrace=False)


@pytest.fixture(scope="session")
def cluster_slack() -> Iterator[SlackServer]:
    """The Slack the cluster's control room talks to: the local stand-in of Slack's Web API, reached
    through slack-sdk exactly as slack.com would be."""
    server = SlackServer(control_plane.free_port()).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config, cluster_slack: SlackServer
) -> Iterator[Cluster]:
    build(pytestconfig)
    absent = control_plane.missing()
    if absent:
        pytest.skip(f"cluster tests: {absent}")
    folder = tmp_path_factory.mktemp("cluster")
    pod_env = {
        "HEADRACE_ARTIFACT_ROOT": str(folder / "artifacts"),
        "HEADRACE_STATE_DIR": str(folder / "state"),
    }
    room_env = {
        "HEADRACE_SLACK_TOKEN": VALID_TOKEN,
        "HEADRACE_SLACK_CHANNEL": SLACK_CHANNEL,
        "HEADRACE_SLACK_API_URL": cluster_slack.api_url,
        "HEADRACE_SLACK_TIMEOUT_SECONDS": "5",
    }
    with control_plane.running(
        folder, pod_env=pod_env, room_env=room_env, pythonpath=os.pathsep.join((str(PIPELINES), str(ROOT)))
    ) as running:
        yield running


def point_cli_at(cluster: Cluster, monkeypatch: pytest.MonkeyPatch, state: Path) -> None:
    """The CLI pointed at the cluster: the Argo Server over REST by default (``--transport k8s``
    for the Kubernetes API), pods compiled with the local profile, pipelines importable."""
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    monkeypatch.setenv("ARGO_SERVER", cluster.argo_url)
    monkeypatch.setenv("ARGO_NAMESPACE", cluster.namespace)
    monkeypatch.delenv("ARGO_TOKEN", raising=False)
    monkeypatch.delenv("HEADRACE_ARGO_TRANSPORT", raising=False)
    monkeypatch.setenv("HEADRACE_ARGO_PROFILE", "local")
    monkeypatch.setenv("HEADRACE_IMAGE", "headrace:test")
    monkeypatch.setenv("HEADRACE_STATE_DIR", str(state))
    monkeypatch.chdir(PIPELINES)
    monkeypatch.syspath_prepend(str(PIPELINES))


@pytest.fixture
def on_cluster(cluster: Cluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Cluster:
    point_cli_at(cluster, monkeypatch, tmp_path / "state")
    return cluster


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    from pipelines.cli import common

    monkeypatch.setattr(common.console, "_width", 200)
    monkeypatch.setattr(common.err_console, "_width", 200)
    return CliRunner()


def invoke(runner: CliRunner, *args: str) -> tuple[int, str]:
    """``headrace ARGS``: the exit code and everything printed."""
    from pipelines.cli import app

    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = str(Path(__file__).parent)
    ours = [item for item in items if str(item.fspath).startswith(here)]
    building = bool(ours) and bool(shutil.which("go")) and bool(control_plane.missing())
    for item in ours:
        item.add_marker(pytest.mark.cluster)
        if building:
            item.add_marker(pytest.mark.timeout(BUILD_TIMEOUT))
