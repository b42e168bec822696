"""manifests/ on the real API server: every overlay is accepted by ``kubectl apply -k``, and the
``headrace-submitter`` identity it defines can do what docs/deploy.md says it is for."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.cluster.conftest import invoke
from tests.cluster.control_plane import ROOT, Cluster
from tests.cluster.test_runs import submitted, wait_for

OVERLAYS = sorted(p.name for p in (ROOT / "manifests" / "overlays").iterdir() if p.is_dir())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_is_accepted_by_the_api_server(cluster: Cluster, overlay: str) -> None:
    applied = cluster.kubectl("apply", "-k", str(ROOT / "manifests" / "overlays" / overlay), check=False)
    assert applied.returncode == 0, applied.stderr
    assert "created" in applied.stdout or "configured" in applied.stdout or "unchanged" in applied.stdout


def submitter_token(cluster: Cluster) -> str:
    """A token of the headrace-submitter ServiceAccount, as ``kubectl create token`` gives one."""
    rbac = ROOT / "manifests" / "base" / "submitter-rbac.yaml"
    cluster.kubectl("apply", "-n", cluster.namespace, "-f", str(rbac))
    made = cluster.kubectl("create", "token", "headrace-submitter", "-n", cluster.namespace, "--duration=1h")
    return made.stdout.strip()


def test_retry_with_the_submitter_token_in_client_auth_mode(
    on_cluster: Cluster, cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = submitter_token(on_cluster)
    code, out = invoke(cli, "submit", "cluster_flaky:pipeline", "-p", f"marker={tmp_path / 'marker'}", "--token", token)
    if code != 0:
        raise RuntimeError(out)  # not what this test is about: fail it outright, not as the expected failure
    name = submitted(out)
    if wait_for(on_cluster, name, ("Failed", "Error", "Succeeded"))["status"]["phase"] != "Failed":
        raise RuntimeError(f"{name} did not fail its first attempt")
    code, out = invoke(cli, "retry", name, "--token", token)
    assert code == 0, out
    assert wait_for(on_cluster, name, ("Succeeded", "Failed", "Error"))["status"]["phase"] == "Succeeded"
