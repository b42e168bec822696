"""The README's example pipeline (``examples/recipe_stream``) submitted to the real controller: its
SQL extracts, sized follow-ups, training and scoring run as pods (the node agent runs each pod's
``python -m steps`` with the local profile, so the backends run their local sides), and the run
reaches ``Succeeded`` with every task's outputs passed on by Argo."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from steps.core.naming import node_attempt
from tests.cluster.conftest import ROOT, invoke
from tests.cluster.control_plane import Cluster
from tests.cluster.test_runs import submitted, wait_for


def test_the_readme_example_runs_to_succeeded_on_the_real_controller(
    on_cluster: Cluster, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT))
    code, out = invoke(cli, "submit", "examples/recipe_stream:pipeline")
    assert code == 0, out
    name = submitted(out)
    run = wait_for(on_cluster, name, ("Succeeded", "Failed", "Error"), timeout=600)
    assert run["status"]["phase"] == "Succeeded", run["status"].get("message")
    pods = [n for n in run["status"]["nodes"].values() if n.get("type") == "Pod"]
    succeeded = {node_attempt(n["displayName"])[0] for n in pods if n["phase"] == "Succeeded"}
    assert {"sample-data", "extract-events", "extract-items", "train", "score", "class-mix", "summary"} <= succeeded, (
        sorted(succeeded)
    )
    code, out = invoke(cli, "status", name)
    assert code == 0 and "Succeeded" in out, out
