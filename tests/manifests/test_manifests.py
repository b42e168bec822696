"""Every manifest and rendered object validates strictly and meets the cluster policy."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from hera.workflows.models import CronWorkflow, Workflow, WorkflowTemplate

from tests.argo import argo_rules, kube_rules
from tests.argo.checks import schema_errors
from tests.manifests.kustomize import build, load_yaml_documents
from tests.manifests.policy import findings

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
LAYERS = ("base", "overlays/dev", "overlays/prod")
#: The oldest Kubernetes the manifests are checked for, and 1.34 (the API server the cluster tests run).
K8S_VERSIONS = ("1.32.0", "1.34.0")
ARGO_KINDS: dict[str, Any] = {"Workflow": Workflow, "WorkflowTemplate": WorkflowTemplate, "CronWorkflow": CronWorkflow}


def built(layer: str) -> list[dict[str, Any]]:
    return build(MANIFESTS / layer)


def rendered() -> list[dict[str, Any]]:
    return [doc for path in sorted((MANIFESTS / "pipelines").glob("*.yaml")) for doc in load_yaml_documents(path)]


def every_object() -> list[tuple[str, dict[str, Any]]]:
    objects = [(f"{layer}:{o['kind']}/{o['metadata']['name']}", o) for layer in LAYERS for o in built(layer)]
    objects += [(f"pipelines:{o['kind']}/{o['metadata']['name']}", o) for o in rendered()]
    return objects


OBJECTS = every_object()
KUBE = [(name, obj) for name, obj in OBJECTS if obj["kind"] not in ARGO_KINDS]
ARGO = [(name, obj) for name, obj in OBJECTS if obj["kind"] in ARGO_KINDS]


@pytest.mark.parametrize(("name", "obj"), KUBE, ids=[n for n, _ in KUBE])
def test_kubernetes_objects_validate_strictly(name: str, obj: dict[str, Any]) -> None:
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(obj, version, strict=True)


def kubectl_kustomize(layer: str) -> list[dict[str, Any]]:
    """What ``kubectl kustomize`` (kustomize itself, not our loader) builds from ``layer``."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed, so kustomize's own build cannot be checked")
    out = subprocess.run([kubectl, "kustomize", str(MANIFESTS / layer)], capture_output=True, text=True, check=True)
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@pytest.mark.parametrize("layer", LAYERS)
def test_kustomize_builds_each_layer_into_objects_that_validate_and_match_the_fast_loader(layer: str) -> None:
    real = kubectl_kustomize(layer)
    for obj in real:
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)
    ours = {_identity(o): o for o in built(layer)}
    assert sorted(map(_identity, real)) == sorted(ours)
    for obj in real:
        assert obj == ours[_identity(obj)], _identity(obj)


def _identity(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def argo_problems(obj: dict[str, Any]) -> list[str]:
    """Strict-schema errors (Argo's newest and oldest supported releases), Argo's and Kubernetes'
    name and label rules, plus any field Hera's v4 model would drop or change."""
    problems = schema_errors(obj) + argo_rules.errors(obj) + kube_rules.errors(obj)
    dumped = ARGO_KINDS[obj["kind"]].model_validate(obj).model_dump(by_alias=True, exclude_none=True)
    if dumped != obj:
        problems.append("Hera's model does not give the object back unchanged (an unknown or misspelled field?)")
    return sorted(problems)


def test_there_is_a_rendered_reference_pipeline() -> None:
    kinds = sorted(o["kind"] for o in rendered() if o["metadata"]["name"] == "recipe-stream")
    assert kinds == ["CronWorkflow", "WorkflowTemplate"]


@pytest.mark.parametrize(("name", "obj"), ARGO, ids=[n for n, _ in ARGO])
def test_argo_objects_validate_strictly_and_round_trip_through_hera(name: str, obj: dict[str, Any]) -> None:
    assert argo_problems(obj) == []


def test_the_argo_check_catches_a_misspelled_field() -> None:
    cron = next(o for _, o in ARGO if o["kind"] == "CronWorkflow")
    broken = json.loads(json.dumps(cron))
    broken["spec"]["schedule"] = broken["spec"]["schedules"][0]  # the pre-v4 field
    problems = argo_problems(broken)
    assert any("schedule" in p for p in problems) and any("Hera" in p for p in problems)


def test_a_fresh_render_of_the_reference_pipeline_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.argo.deploy import compile_objects
    from pipelines.cli.common import load_pipeline
    from steps.core.settings import load_settings

    monkeypatch.chdir(ROOT)
    spec = "examples/recipe_stream:pipeline"
    objects = compile_objects(load_pipeline(spec), spec, load_settings({"argo_namespace": "headrace"}))
    assert [o["kind"] for _, o in objects] == ["WorkflowTemplate", "CronWorkflow"]
    for _, obj in objects:
        assert argo_problems(obj) == []
        assert findings(obj) == []


@pytest.mark.parametrize(("name", "obj"), OBJECTS, ids=[n for n, _ in OBJECTS])
def test_every_object_meets_the_cluster_policy(name: str, obj: dict[str, Any]) -> None:
    assert findings(obj) == []


def test_the_policy_flags_each_thing_it_forbids() -> None:
    bad_pod = {
        "kind": "Deployment",
        "metadata": {"name": "bad"},
        "spec": {
            "template": {
                "spec": {
                    "hostNetwork": True,
                    "volumes": [{"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}}],
                    "containers": [
                        {
                            "name": "main",
                            "image": "x",
                            "securityContext": {"privileged": True, "runAsUser": 0},
                            "env": [{"name": "SLACK_TOKEN", "value": "xoxb-123"}],
                        }
                    ],
                }
            }
        },
    }
    found = "\n".join(findings(bad_pod))
    for expected in (
        "hostNetwork",
        "hostPath",
        "privileged",
        "runs as root",
        "no cpu limit",
        "no memory limit",
        "literal secret",
        "seccomp",
        "allowPrivilegeEscalation",
        "drop ALL",
        "writable",
    ):
        assert expected in found, expected
    role = {
        "kind": "ClusterRole",
        "metadata": {"name": "r"},
        "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
    }
    found = "\n".join(findings(role))
    assert "cluster-wide" in found and "wildcard in verbs" in found and "wildcard in resources" in found
    secret = {"kind": "Secret", "metadata": {"name": "s"}, "stringData": {"slack-token": "xoxb"}}
    assert findings(secret)
    argo_root = {
        "kind": "WorkflowTemplate",
        "metadata": {"name": "w"},
        "spec": {"securityContext": {"runAsUser": 0}, "templates": [{"name": "t", "container": {"image": "x"}}]},
    }
    assert any("root" in f for f in findings(argo_root))


def _role(layer: str, name: str) -> dict[str, Any]:
    return next(o for o in built(layer) if o["kind"] == "Role" and o["metadata"]["name"] == name)


def test_workflow_pods_may_only_report_task_results() -> None:
    assert _role("base", "headrace-workflow")["rules"] == [
        {"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]}
    ]


def _granted(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]
    }


def test_the_watcher_may_only_read_workflows_and_pods_of_its_namespace() -> None:
    assert _granted(_role("base", "headrace-watcher")) == {
        (g, r, v) for g, r in (("argoproj.io", "workflows"), ("", "pods")) for v in ("get", "list", "watch")
    }
    assert not any(o["kind"] in ("ClusterRole", "ClusterRoleBinding") for layer in LAYERS for o in built(layer))


def test_the_control_room_service_gets_no_kubernetes_api_access() -> None:
    objects = built("base")
    account = next(
        o for o in objects if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == "headrace-control-room"
    )
    assert account["automountServiceAccountToken"] is False
    bound = {s["name"] for o in objects if o["kind"] == "RoleBinding" for s in o["subjects"]}
    assert "headrace-control-room" not in bound


def _deployment(layer: str, name: str) -> dict[str, Any]:
    return next(o for o in built(layer) if o["kind"] == "Deployment" and o["metadata"]["name"] == name)


@pytest.mark.parametrize("layer", LAYERS)
def test_every_install_runs_one_watcher_recording_into_the_control_room_database(layer: str) -> None:
    from typer.testing import CliRunner

    from pipelines.cli import app

    watcher = _deployment(layer, "headrace-watcher")
    assert watcher["spec"]["replicas"] == 1 and watcher["spec"]["strategy"] == {"type": "Recreate"}
    pod = watcher["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "headrace-watcher"
    (container,) = pod["containers"]
    assert container["command"][0] == "headrace"
    result = CliRunner().invoke(app, [*container["command"][1:], "--help"])
    assert result.exit_code == 0 and "Watch Argo workflows and their pods" in result.output
    env = {e["name"]: e.get("valueFrom", {}).get("secretKeyRef", {}).get("name") for e in container["env"]}
    assert env["HEADRACE_CONTROL_ROOM_DB"] == "headrace-control-room-db"
    assert container["envFrom"] == [{"configMapRef": {"name": "headrace-config"}}]
    assert (
        container["image"]
        == _deployment(layer, "headrace-control-room")["spec"]["template"]["spec"]["containers"][0]["image"]
    )


@pytest.mark.parametrize(
    ("layer", "namespace", "tag", "replicas"),
    [("overlays/dev", "headrace-dev", "dev", 1), ("overlays/prod", "headrace", "0.1.0", 2)],
)
def test_overlays_set_namespace_image_and_replicas(layer: str, namespace: str, tag: str, replicas: int) -> None:
    objects = built(layer)
    assert {o["metadata"].get("namespace", namespace) for o in objects if o["kind"] != "Namespace"} == {namespace}
    assert next(o for o in objects if o["kind"] == "Namespace")["metadata"]["name"] == namespace
    for binding in (o for o in objects if o["kind"] == "RoleBinding"):
        assert {s["namespace"] for s in binding["subjects"]} == {namespace}
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == replicas
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"ghcr.io/headrace/headrace:{tag}"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    config = next(o for o in objects if o["kind"] == "ConfigMap")
    assert config["data"]["HEADRACE_ARGO_NAMESPACE"] == namespace


def test_the_control_room_reads_its_secrets_from_the_headrace_secrets_secret() -> None:
    deployment = next(o for o in built("base") if o["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    from_secret = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["name"]
        for e in container["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert set(from_secret) >= {
        "HEADRACE_SLACK_TOKEN",
        "HEADRACE_CONTROL_ROOM_TOKEN",
        "HEADRACE_CONTROL_ROOM_DB",
        "DD_API_KEY",
    }
    assert from_secret.pop("HEADRACE_CONTROL_ROOM_DB") == "headrace-control-room-db"
    assert set(from_secret.values()) == {"headrace-secrets"}
    assert container["envFrom"] == [{"configMapRef": {"name": "headrace-config"}}]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz"
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert (
        "emptyDir" in volumes[container["volumeMounts"][0]["name"]]
        and container["volumeMounts"][0]["mountPath"] == "/tmp"
    )


def test_the_pdb_and_network_policy_select_the_control_room_pods() -> None:
    objects = built("base")
    pod_labels = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["metadata"]["labels"]
    for kind in ("PodDisruptionBudget", "NetworkPolicy", "Service"):
        obj = next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == "headrace-control-room")
        selector = obj["spec"].get("podSelector", obj["spec"].get("selector", {}))
        selector = selector.get("matchLabels", selector)
        assert selector and selector.items() <= pod_labels.items(), kind


def test_the_loader_refuses_kustomize_features_it_does_not_implement(tmp_path: Path) -> None:
    from tests.manifests.kustomize import KustomizeError

    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({"resources": [], "configMapGenerator": []}))
    with pytest.raises(KustomizeError, match="configMapGenerator"):
        build(tmp_path)


WF, WFT, CRON = ("argoproj.io", "workflows"), ("argoproj.io", "workflowtemplates"), ("argoproj.io", "cronworkflows")
PODS, LOGS = ("", "pods"), ("", "pods/log")
#: The Kubernetes API calls each command makes with the submitter's token: directly (Kubernetes
#: transport) or through the Argo Server in client auth mode, whose handlers call the API with the
#: caller's credentials (Argo's server/workflow/workflow_server.go and
#: server/cronworkflow/cron_workflow_server.go: RetryWorkflow gets the workflow, deletes the pods
#: of the nodes it resets, updates the workflow; ResubmitWorkflow gets and creates; StopWorkflow
#: gets and updates; WorkflowLogs lists and watches pods and reads pods/log).
COMMAND_CALLS: dict[str, set[tuple[tuple[str, str], str]]] = {
    "submit": {(WF, "create"), (WFT, "get")},
    "status / list / submit --watch": {(WF, "get"), (WF, "list"), (WF, "watch")},
    "logs": {(PODS, "get"), (PODS, "list"), (PODS, "watch"), (LOGS, "get")},
    "stop": {(WF, "get"), (WF, "update"), (WF, "patch")},
    "retry": {(WF, "get"), (PODS, "delete"), (WF, "update")},
    "resubmit": {(WF, "get"), (WF, "create")},
    "deploy / render": {(kind, verb) for kind in (WFT, CRON) for verb in ("create", "get", "list", "update")},
    "schedules suspend / resume": {(CRON, "get"), (CRON, "update"), (CRON, "patch")},
    "backfill": {(WF, "list"), (WF, "create"), (CRON, "get")},
}


@pytest.mark.parametrize("command", COMMAND_CALLS)
def test_the_submitter_may_make_every_call_its_commands_make(command: str) -> None:
    granted = _granted(_role("base", "headrace-submitter"))
    missing = {(g, r, v) for (g, r), v in COMMAND_CALLS[command] if (g, r, v) not in granted}
    assert missing == set()


def test_the_submitter_deletes_only_pods_and_never_reads_secrets() -> None:
    granted = _granted(_role("base", "headrace-submitter"))
    assert {(g, r) for g, r, v in granted if v in ("delete", "deletecollection")} == {PODS}
    assert {r for _, r, _ in granted} == {"workflows", "workflowtemplates", "cronworkflows", "pods", "pods/log"}


def test_the_watcher_network_policy_selects_the_watcher_pods_and_lets_nothing_in() -> None:
    objects = built("base")
    policy = next(o for o in objects if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "headrace-watcher")
    pod_labels = _deployment("base", "headrace-watcher")["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert "Ingress" in policy["spec"]["policyTypes"] and not policy["spec"].get("ingress")


@pytest.mark.parametrize(("name", "obj"), ARGO, ids=[n for n, _ in ARGO])
def test_rendered_pipeline_pods_meet_the_restricted_pod_security_standard(name: str, obj: dict[str, Any]) -> None:
    from tests.argo.pod_security import argo_pods, restricted
    from tests.argo.test_pod_security import documented_executor

    for template, pod in argo_pods(obj, documented_executor()):
        assert restricted(pod) == [], template


@pytest.mark.parametrize("layer", LAYERS)
def test_every_workload_of_the_manifests_meets_the_restricted_pod_security_standard(layer: str) -> None:
    from tests.argo.pod_security import restricted

    workloads = [o for o in built(layer) if o["kind"] == "Deployment"]
    assert {o["metadata"]["name"] for o in workloads} == {"headrace-control-room", "headrace-watcher"}
    for obj in workloads:
        assert restricted(obj["spec"]["template"]["spec"]) == [], obj["metadata"]["name"]
