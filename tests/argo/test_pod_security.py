"""Every pod a compiled pipeline makes meets the Pod Security Standard "restricted": the
containers the compiler writes (task, sizing node, exit handler) and Argo's own init and wait
containers configured as docs/deploy.md says."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from pipelines.argo import compile_pipeline
from pipelines.graph import Pipeline
from steps.core.settings import Settings
from steps.runtime.loader import load_object
from tests.argo.helpers import ROOT
from tests.argo.pod_security import argo_pods, restricted
from tests.argo.test_golden import _example_specs

DEPLOY_GUIDE = ROOT / "docs" / "deploy.md"


def documented_executor() -> dict[str, Any]:
    """The ``executor`` container setting of the controller ConfigMap patch in docs/deploy.md."""
    patch = re.search(
        r"patch configmap workflow-controller-configmap --type=merge -p '\n(.*?)\n'", DEPLOY_GUIDE.read_text(), re.S
    )
    assert patch, "docs/deploy.md no longer patches workflow-controller-configmap"
    executor: dict[str, Any] = yaml.safe_load(yaml.safe_load(patch.group(1))["data"]["executor"])
    return executor


@pytest.fixture(autouse=True)
def _in_project_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


@pytest.mark.parametrize("spec", _example_specs())
def test_every_pod_of_every_example_meets_the_restricted_pod_security_standard(spec: str) -> None:
    pipeline = load_object(spec)
    assert isinstance(pipeline, Pipeline)
    obj = compile_pipeline(pipeline, spec=spec, kind="template", settings=Settings())
    pods = dict(argo_pods(obj, documented_executor()))
    assert any(name.startswith("size-") for name in pods) or not any(
        t.sizing == "auto" for t in pipeline.tasks.values()
    )
    assert "headrace-exit" in pods
    for name, pod in pods.items():
        assert restricted(pod) == [], name


def test_the_documented_executor_settings_alone_make_init_and_wait_restricted() -> None:
    pod = {"securityContext": {}, "initContainers": [{**documented_executor(), "name": "init"}], "containers": []}
    assert restricted(pod) == []


def test_the_check_names_each_restricted_control_a_bare_container_breaks() -> None:
    pod = {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "volumes": [{"name": "host", "hostPath": {"path": "/"}}],
        "containers": [{"name": "main", "image": "x", "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}],
    }
    found = "\n".join(restricted(pod))
    for control in (
        "HostPath Volumes",
        "Volume Types",
        "Privilege Escalation",
        "does not drop ALL",
        "adds ['SYS_ADMIN']",
    ):
        assert control in found, control
    assert "Running as Non-root:" not in found and "Seccomp" not in found
