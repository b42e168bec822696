"""Both transports against a local Argo Server / Kubernetes API: the real Hera and kubernetes clients.

Requests, errors and status codes, fast. Stop, retry and resubmit of runs the real controller ran,
and suspend/resume of a schedule the real cron controller runs: tests/cluster/test_runs.py and
tests/cluster/test_schedules.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipelines.argo.client import AlreadyExists, Connection, Transport, open_transport, resolve_connection
from steps.core.errors import ConfigError, NotFoundError, UserError
from steps.core.settings import Settings, load_settings

pytestmark = pytest.mark.integration


def workflow(name: str = "demo") -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": f"{name}-", "labels": {"headrace.dev/pipeline": name}},
        "spec": {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "busybox"}}]},
    }


def cron(name: str = "demo", schedules: list[str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "CronWorkflow",
        "metadata": {"name": name, "labels": {"headrace.dev/pipeline": name}},
        "spec": {
            "schedules": schedules or ["0 3 * * *"],
            "timezone": "Asia/Tokyo",
            "workflowSpec": {"workflowTemplateRef": {"name": name}},
        },
    }


def connect(argo: Any, tmp_path: Path, transport: str, **overrides: str) -> Transport:
    kubeconfig = argo.kubeconfig(str(tmp_path / "kubeconfig"), token=overrides.pop("kube_token", None))
    connection = resolve_connection(
        Settings(),
        server=argo.url if transport == "argo" else None,
        token=overrides.pop("token", argo.cluster.token),
        transport=transport,
        kubeconfig=kubeconfig,
        environ={},
        **overrides,
    )
    return open_transport(connection)


@pytest.fixture(params=["argo", "k8s"])
def transport(request: pytest.FixtureRequest, argo: Any, tmp_path: Path) -> Transport:
    return connect(argo, tmp_path, request.param)


def test_created_workflow_gets_a_generated_name_and_is_found_by_label(transport: Transport, argo: Any) -> None:
    made = transport.create("workflows", workflow("demo"))
    transport.create("workflows", workflow("other"))
    name = made["metadata"]["name"]
    assert name.startswith("demo-") and len(name) == len("demo-") + 5
    assert transport.get("workflows", name)["spec"]["entrypoint"] == "main"
    listed = transport.list("workflows", "headrace.dev/pipeline=demo")
    assert [w["metadata"]["name"] for w in listed] == [name]
    assert argo.cluster.object("workflows", name)["metadata"]["labels"]["headrace.dev/pipeline"] == "demo"


def test_retry_on_the_kubernetes_transport_says_it_needs_the_argo_server(argo: Any, tmp_path: Path) -> None:
    kube = connect(argo, tmp_path, "k8s")
    name = kube.create("workflows", workflow())["metadata"]["name"]
    with pytest.raises(ConfigError, match="needs the Argo Server"):
        kube.workflow_action(name, "retry")


def test_cron_create_twice_is_a_409_already_exists(transport: Transport) -> None:
    transport.create("cronworkflows", cron())
    with pytest.raises(AlreadyExists, match="CronWorkflow demo already exists"):
        transport.create("cronworkflows", cron())


def test_cron_update_needs_the_current_resource_version(transport: Transport) -> None:
    created = transport.create("cronworkflows", cron())
    changed = cron(schedules=["0 4 * * *"])
    changed["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    updated = transport.update("cronworkflows", "demo", changed)
    assert updated["spec"]["schedules"] == ["0 4 * * *"]
    with pytest.raises(UserError, match="changed while we updated it"):
        transport.update("cronworkflows", "demo", changed)  # the old resourceVersion is stale now


def test_a_cron_with_the_pre_v4_schedule_field_is_refused_in_one_line(transport: Transport) -> None:
    old = cron()
    old["spec"]["schedule"] = old["spec"].pop("schedules")[0]
    with pytest.raises(UserError) as caught:
        transport.create("cronworkflows", old)
    message = str(caught.value)
    assert "CronWorkflow demo" in message and "schedules" in message and "\n" not in message


def test_a_malformed_cron_is_refused_by_the_server(transport: Transport) -> None:
    with pytest.raises(UserError, match="malformed"):
        transport.create("cronworkflows", cron(schedules=["61 3 * * *"]))


def test_workflow_templates_create_get_update(transport: Transport) -> None:
    template = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": {"name": "demo"},
        "spec": workflow()["spec"],
    }
    created = transport.create("workflowtemplates", template)
    template["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    template["spec"]["entrypoint"] = "main"
    template["spec"]["templates"][0]["container"]["image"] = "busybox:2"
    transport.update("workflowtemplates", "demo", template)
    got = transport.get("workflowtemplates", "demo")
    assert got["spec"]["templates"][0]["container"]["image"] == "busybox:2"


@pytest.mark.parametrize("kind", ["argo", "k8s"])
def test_a_bad_token_is_one_line_naming_the_fix(kind: str, argo: Any, tmp_path: Path) -> None:
    bad = connect(argo, tmp_path, kind, token="wrong", kube_token="wrong")
    with pytest.raises(ConfigError) as caught:
        bad.list("workflows")
    assert "token was rejected (401" in str(caught.value)


@pytest.mark.parametrize("kind", ["argo", "k8s"])
def test_a_missing_namespace_is_one_line_naming_it(kind: str, argo: Any, tmp_path: Path) -> None:
    client = connect(argo, tmp_path, kind, namespace="nowhere")
    with pytest.raises(ConfigError, match=r"namespace nowhere does not exist.*ARGO_NAMESPACE"):
        client.create("workflows", workflow())


@pytest.mark.parametrize("kind", ["argo", "k8s"])
def test_a_forbidden_namespace_is_a_403_line(kind: str, argo: Any, tmp_path: Path) -> None:
    argo.cluster.forbidden.add("ml")
    client = connect(argo, tmp_path, kind, namespace="ml")
    with pytest.raises(ConfigError, match="forbidden in namespace ml"):
        client.list("workflows")


@pytest.mark.parametrize("kind", ["argo", "k8s"])
def test_a_missing_run_is_not_found(kind: str, argo: Any, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="Workflow nope: not found in namespace argo"):
        connect(argo, tmp_path, kind).get("workflows", "nope")


def test_an_unreachable_server_is_one_line() -> None:
    from tests.conftest import free_port

    connection = resolve_connection(Settings(), server=f"http://127.0.0.1:{free_port()}", environ={})
    with pytest.raises(ConfigError, match=r"cannot reach http://127\.0\.0\.1:\d+: connection refused; check --server"):
        open_transport(connection).list("workflows")


def test_connection_follows_flags_then_env_then_kubeconfig(argo: Any, tmp_path: Path) -> None:
    kubeconfig = argo.kubeconfig(str(tmp_path / "kc"), namespace="ml")
    from_kube = resolve_connection(Settings(), environ={"KUBECONFIG": kubeconfig})
    assert (from_kube.transport, from_kube.namespace) == ("k8s", "ml")
    env = {"KUBECONFIG": kubeconfig, "ARGO_SERVER": "argo.example:2746", "ARGO_NAMESPACE": "team"}
    absent = tmp_path / "absent.toml"

    def settings(environ: dict[str, str]) -> Settings:
        return load_settings(environ=environ, config_file=absent)

    from_env = resolve_connection(settings(env), environ=env)
    assert (from_env.transport, from_env.server, from_env.namespace) == ("argo", "https://argo.example:2746", "team")
    prefixed_env = {**env, "HEADRACE_ARGO_NAMESPACE": "mine", "ARGO_SECURE": "false"}
    prefixed = resolve_connection(settings(prefixed_env), environ=prefixed_env)
    assert (prefixed.namespace, prefixed.server) == ("mine", "http://argo.example:2746")
    flagged = resolve_connection(settings(env), namespace="flag", transport="k8s", environ=env)
    assert (flagged.namespace, flagged.transport) == ("flag", "k8s")


@pytest.mark.parametrize("kind", ["argo", "k8s"])
def test_a_token_given_with_its_bearer_prefix_works_too(kind: str, argo: Any, tmp_path: Path) -> None:
    client = connect(
        argo, tmp_path, kind, token=f"Bearer {argo.cluster.token}", kube_token="ignored-when-a-token-is-set"
    )
    assert client.list("workflows") == []


def test_the_token_never_shows_in_the_connection_repr() -> None:
    connection = Connection(transport="argo", namespace="argo", server="http://x", token="s3cret")
    assert "s3cret" not in repr(connection)


def test_the_local_kubernetes_api_answers_version_like_a_cluster(argo: Any, tmp_path: Path) -> None:
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(config_file=argo.kubeconfig(str(tmp_path / "kc")), client_configuration=configuration)
    with client.ApiClient(configuration) as api:
        version = client.VersionApi(api).get_code()
    assert (version.major, version.minor) == ("1", "32")


def test_a_broken_kubeconfig_does_not_matter_with_an_argo_server(argo: Any, tmp_path: Path) -> None:
    broken = tmp_path / "kubeconfig"
    broken.write_text("clusters: [unclosed")
    connection = resolve_connection(
        Settings(), server=argo.url, token=argo.cluster.token, environ={"KUBECONFIG": str(broken)}
    )
    assert open_transport(connection).list("workflows") == []
    with pytest.raises(ConfigError, match="kubeconfig"):
        open_transport(resolve_connection(Settings(), environ={"KUBECONFIG": str(broken)}))
