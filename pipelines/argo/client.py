"""Where Argo lives and how headrace talks to it: connection settings and two transports.

Connection settings resolve like the ``argo`` CLI: flags first, then ``HEADRACE_ARGO_*``, then
``ARGO_SERVER`` / ``ARGO_TOKEN`` / ``ARGO_NAMESPACE``, then ``headrace.toml``, then the current
kubeconfig context (its namespace, and its cluster when no Argo Server is configured).

Two transports speak plain dicts (the objects as Kubernetes stores them), so the rest of headrace
never sees a provider type:

* :class:`ArgoServerTransport`: the Argo Server REST API through Hera's ``WorkflowsService``;
  it is what ``stop``, ``retry`` and ``resubmit`` and the log stream need.
* :class:`KubernetesTransport`: the Kubernetes custom-objects API (``argoproj.io/v1alpha1``)
  through the official ``kubernetes`` client, for clusters where the Argo Server is not exposed.

Every provider error is translated here into one line from :mod:`steps.core.errors` (``raise ... from``):
unreachable server, rejected token, missing namespace, forbidden verb, conflict.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from steps.core.errors import ConfigError, HeadraceError, NotFoundError, TransientError, UserError
from steps.core.settings import Settings

GROUP = "argoproj.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

Kind = Literal["workflows", "workflowtemplates", "cronworkflows", "eventsources", "sensors"]
#: Argo Events kinds (same API group): written through the Kubernetes API only.
EVENT_KINDS = ("eventsources", "sensors")
WorkflowAction = Literal["stop", "retry", "resubmit"]
CronAction = Literal["suspend", "resume"]

KIND_NAMES: dict[str, str] = {
    "workflows": "Workflow",
    "workflowtemplates": "WorkflowTemplate",
    "cronworkflows": "CronWorkflow",
    "eventsources": "EventSource",
    "sensors": "Sensor",
}
TRANSPORTS = ("auto", "argo", "k8s")
DEFAULT_NAMESPACE = Settings().argo_namespace

T = TypeVar("T")


class AlreadyExists(UserError):
    """The object exists already (HTTP 409 on create); callers that deploy idempotently catch it."""


class Conflict(UserError):
    """The object changed since it was read (stale ``resourceVersion``); read it again and retry."""


@dataclass(frozen=True)
class Connection:
    """Resolved connection settings; ``token`` is a secret and never shown by ``repr``."""

    transport: Literal["argo", "k8s"]
    namespace: str
    server: str = ""
    token: str = ""
    verify_ssl: bool = True
    kubeconfig: str = ""
    context: str = ""
    ui_url: str = ""

    def __repr__(self) -> str:
        return (
            f"Connection(transport={self.transport!r}, namespace={self.namespace!r}, server={self.server!r}, "
            f"token={'***' if self.token else ''!r}, kubeconfig={self.kubeconfig!r})"
        )

    @property
    def where(self) -> str:
        """A short description for messages: which server and namespace."""
        target = self.server or f"the cluster of kubeconfig {self.kubeconfig or '~/.kube/config'}"
        return f"{target} (namespace {self.namespace})"

    def ui_link(self, kind: Kind, name: str) -> str:
        """A link to the object in the Argo UI, when the UI's address is known."""
        base = (self.ui_url or (self.server if self.transport == "argo" else "")).rstrip("/")
        if not base:
            return ""
        path = {"workflows": "workflows", "cronworkflows": "cron-workflows", "workflowtemplates": "workflow-templates"}
        return f"{base}/{path[kind]}/{self.namespace}/{name}"


def normalise_server(raw: str, secure: bool) -> str:
    """``ARGO_SERVER`` may be ``host:port`` like the argo CLI takes it: add the scheme it implies."""
    server = raw.strip().rstrip("/")
    if not server or "://" in server:
        return server
    return ("https://" if secure else "http://") + server


def _kubeconfig_context(path: str, context: str) -> tuple[str, str]:
    """(namespace, context name) of the kubeconfig's chosen context; empty when there is none
    (or the file is unreadable: with an Argo Server configured a broken kubeconfig must not matter)."""
    import yaml

    candidates = [p for p in path.split(os.pathsep) if p] if path else [os.path.expanduser("~/.kube/config")]
    for candidate in candidates:
        if not os.path.isfile(candidate):
            continue
        try:
            with open(candidate, encoding="utf-8") as handle:
                data = yaml.safe_load(handle) or {}
        except (OSError, yaml.YAMLError):
            return "", ""  # only a namespace default is read here; the Kubernetes transport reports it
        chosen = context or str(data.get("current-context") or "")
        for entry in data.get("contexts") or []:
            if isinstance(entry, dict) and entry.get("name") == chosen:
                return str((entry.get("context") or {}).get("namespace") or ""), chosen
        return "", chosen
    return "", ""


def resolve_connection(
    settings: Settings,
    *,
    server: str | None = None,
    token: str | None = None,
    namespace: str | None = None,
    transport: str | None = None,
    kubeconfig: str | None = None,
    context: str | None = None,
    insecure: bool | None = None,
    environ: Mapping[str, str] | None = None,
) -> Connection:
    """Connection settings from flags, then ``settings`` (``HEADRACE_ARGO_*``, ``ARGO_*``,
    headrace.toml: see :mod:`steps.core.settings`), then the kubeconfig (``environ`` is read only
    for ``KUBECONFIG``).

    ``transport="auto"`` picks the Argo Server when one is configured, else the Kubernetes API
    of the kubeconfig context (as the argo CLI does).
    """
    env = os.environ if environ is None else environ
    chosen = (transport or settings.argo_transport or "auto").strip().lower()
    if chosen not in TRANSPORTS:
        raise ConfigError(f"transport: {chosen!r} is not a transport; use one of {', '.join(TRANSPORTS)}")
    server_value = normalise_server(server or settings.argo_server, settings.argo_secure)
    token_value = (token or settings.argo_token).strip()
    kube_path = kubeconfig or env.get("KUBECONFIG", "")
    kube_namespace, kube_context = _kubeconfig_context(kube_path, context or "")
    explicit_setting = settings.argo_namespace if settings.argo_namespace != DEFAULT_NAMESPACE else ""
    ns = (namespace or explicit_setting or kube_namespace or settings.argo_namespace).strip()
    if not ns:
        raise ConfigError("namespace: none configured; pass --namespace or set ARGO_NAMESPACE")
    if chosen == "argo" and not server_value:
        raise ConfigError("argo server: none configured; pass --server or set ARGO_SERVER=https://argo.example:2746")
    resolved: Literal["argo", "k8s"] = "argo" if chosen == "argo" or (chosen == "auto" and server_value) else "k8s"
    if server_value and resolved == "argo" and not server_value.startswith(("http://", "https://")):
        raise ConfigError(f"argo server: {server_value!r} is not an http(s) URL; use e.g. https://argo.example:2746")
    skip_verify = insecure if insecure is not None else settings.argo_insecure_skip_verify
    return Connection(
        transport=resolved,
        namespace=ns,
        server=server_value if resolved == "argo" else "",
        token=token_value,
        verify_ssl=not skip_verify,
        kubeconfig=kube_path,
        context=kube_context,
        ui_url=settings.argo_ui_url,
    )


# ----------------------------------------------------------------------------- the interface


class Transport(Protocol):
    """What headrace needs from Argo; objects in and out are plain dicts as Kubernetes stores them."""

    connection: Connection

    def create(self, kind: Kind, obj: dict[str, Any]) -> dict[str, Any]: ...

    def get(self, kind: Kind, name: str) -> dict[str, Any]: ...

    def list(self, kind: Kind, label_selector: str = "") -> list[dict[str, Any]]: ...

    def update(self, kind: Kind, name: str, obj: dict[str, Any]) -> dict[str, Any]: ...

    def workflow_action(self, name: str, action: WorkflowAction) -> dict[str, Any]: ...

    def cron_action(self, name: str, action: CronAction) -> dict[str, Any]: ...

    def close(self) -> None: ...


def open_transport(connection: Connection) -> Transport:
    """The transport the connection names."""
    if connection.transport == "argo":
        return ArgoServerTransport(connection)
    return KubernetesTransport(connection)


def _what(kind: Kind, name: str, connection: Connection) -> str:
    return f"{KIND_NAMES[kind]} {name}" if name else f"{KIND_NAMES[kind]}s in namespace {connection.namespace}"


def translate_status(
    status: int, message: str, *, kind: Kind, name: str, verb: str, connection: Connection
) -> HeadraceError:
    """One line for an HTTP error from either API, naming the object and what to do."""
    what = _what(kind, name, connection)
    detail = message.strip().rstrip(".") or f"HTTP {status}"
    ns = connection.namespace
    if status == 401:
        fix = (
            "set a valid ARGO_TOKEN (argo auth token)"
            if connection.transport == "argo"
            else "refresh the kubeconfig credentials or set a valid ARGO_TOKEN"
        )
        return ConfigError(f"{connection.where}: the token was rejected (401 Unauthorized); {fix}")
    if status == 403:
        return ConfigError(
            f"{verb} {what}: forbidden in namespace {ns} (403: {detail}); grant the role the headrace manifests define or pick another --namespace"
        )
    if status == 404:
        if "namespace" in detail.lower() and ns in detail:
            return ConfigError(
                f"namespace {ns} does not exist on {connection.server or 'the cluster'}; create it (kubectl create namespace {ns}) or set ARGO_NAMESPACE"
            )
        return NotFoundError(f"{what}: not found in namespace {ns}; check the name with `headrace list`")
    if status == 409:
        if "already exists" in detail.lower():
            return AlreadyExists(f"{what} already exists in namespace {ns}")
        return Conflict(f"{verb} {what}: changed while we updated it ({detail}); run the command again")
    # The real Argo Server answers a stop of a finished run with 500 ("cannot shutdown a
    # completed workflow") and a retry of an unfinished one with 400 ("Cannot retry a workflow in
    # phase Running"): both are about the run's state, not the server or the definition.
    if "completed workflow" in detail.lower() or "in phase" in detail.lower():
        return UserError(
            f"{verb} {what}: not possible in the run's current state ({detail}); see `headrace status {name}`"
        )
    if status in (400, 422) and "resourceversion" in detail.lower():
        return Conflict(
            f"{verb} {what}: the server needs the object's current resourceVersion ({detail}); run the command again"
        )
    if status in (400, 422):
        return UserError(f"{verb} {what}: Argo refused it ({detail}); fix the pipeline definition and try again")
    if status >= 500 or status == 429:
        return TransientError(f"{verb} {what}: the server failed ({status}: {detail}); try again in a moment")
    return UserError(f"{verb} {what}: HTTP {status} ({detail})")


def unreachable(connection: Connection, error: Exception) -> ConfigError:
    target = connection.server or "the Kubernetes API of the kubeconfig context"
    hint = "check --server / ARGO_SERVER" if connection.transport == "argo" else "check KUBECONFIG and the cluster"
    text = str(error)
    if "refused" in text.lower() or "NewConnectionError" in text:
        reason = "connection refused"
    elif "resolve" in text.lower() or "not known" in text.lower():
        reason = "unknown host"
    elif "timed out" in text.lower() or "timeout" in text.lower():
        reason = "timed out"
    else:
        reason = text.splitlines()[0][:120] if text else type(error).__name__
    return ConfigError(f"cannot reach {target}: {reason}; {hint}")


# ----------------------------------------------------------------------------- Argo Server (Hera)


_MESSAGE = "with message: `"


def _hera_message(error: Exception) -> str:
    text = str(error)
    if _MESSAGE in text:
        text = text.split(_MESSAGE, 1)[1].rsplit("`", 1)[0]
    return text


class ArgoServerTransport:
    """The Argo Server REST API through Hera's ``WorkflowsService`` (``/api/v1/...``)."""

    def __init__(self, connection: Connection) -> None:
        from hera.workflows.service import WorkflowsService

        self.connection = connection
        self.service = WorkflowsService(
            host=connection.server + "/",
            token=connection.token or None,
            namespace=connection.namespace,
            verify_ssl=connection.verify_ssl,
        )

    def close(self) -> None:
        self.service.close()  # type: ignore[no-untyped-call]

    @contextmanager
    def _errors(self, kind: Kind, name: str, verb: str) -> Iterator[None]:
        import requests
        from hera.exceptions import HeraException

        try:
            yield
        except HeraException as error:
            status = int(getattr(error, "status_code", 0) or 0)
            if not status:
                status = _status_from_text(str(error))
            raise translate_status(
                status, _hera_message(error), kind=kind, name=name, verb=verb, connection=self.connection
            ) from error
        except requests.exceptions.ConnectionError as error:
            raise unreachable(self.connection, error) from error
        except requests.exceptions.Timeout as error:
            raise TransientError(f"{self.connection.server}: timed out ({error}); try again") from error
        except requests.exceptions.RequestException as error:
            raise unreachable(self.connection, error) from error

    @staticmethod
    def _workflows_only(kind: Kind) -> None:
        if kind in EVENT_KINDS:
            raise UserError(
                f"{KIND_NAMES[kind]}: the Argo Server does not take Argo Events objects; deploy triggers with --transport k8s (KUBECONFIG)"
            )

    @staticmethod
    def _model(kind: Kind, obj: dict[str, Any]) -> Any:
        """``obj`` as Hera's (Argo v4) model; a field v4 does not know is one line, not a traceback."""
        import pydantic
        from hera.workflows import models as m

        models: dict[str, Any] = {
            "workflows": m.Workflow,
            "cronworkflows": m.CronWorkflow,
            "workflowtemplates": m.WorkflowTemplate,
        }
        model = models[kind]
        try:
            return model.model_validate(obj)
        except pydantic.ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            name = (obj.get("metadata") or {}).get("name") or (obj.get("metadata") or {}).get("generateName") or ""
            raise UserError(
                f"{KIND_NAMES[kind]} {name}: {where}: {first['msg'].lower()} (Argo v4 schema); fix the object or recompile it"
            ) from error

    @staticmethod
    def _plain(model: Any) -> dict[str, Any]:
        data: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_none=True)
        return data

    def create(self, kind: Kind, obj: dict[str, Any]) -> dict[str, Any]:
        self._workflows_only(kind)
        from hera.workflows import models as m

        ns = self.connection.namespace
        name = str(obj.get("metadata", {}).get("name") or obj.get("metadata", {}).get("generateName") or "")
        with self._errors(kind, name, "create"):
            if kind == "workflows":
                created: Any = self.service.create_workflow(
                    m.WorkflowCreateRequest(workflow=self._model(kind, obj), namespace=ns), namespace=ns
                )
            elif kind == "cronworkflows":
                created = self.service.create_cron_workflow(
                    m.CreateCronWorkflowRequest(cron_workflow=self._model(kind, obj), namespace=ns),
                    namespace=ns,
                )
            else:
                created = self.service.create_workflow_template(
                    m.WorkflowTemplateCreateRequest(template=self._model(kind, obj), namespace=ns),
                    namespace=ns,
                )
        return self._plain(created)

    def get(self, kind: Kind, name: str) -> dict[str, Any]:
        self._workflows_only(kind)
        with self._errors(kind, name, "get"):
            if kind == "workflows":
                found: Any = self.service.get_workflow(name)
            elif kind == "cronworkflows":
                found = self.service.get_cron_workflow(name)
            else:
                found = self.service.get_workflow_template(name)
        return self._plain(found)

    def list(self, kind: Kind, label_selector: str = "") -> list[dict[str, Any]]:
        self._workflows_only(kind)
        selector = label_selector or None
        with self._errors(kind, "", "list"):
            if kind == "workflows":
                listed: Any = self.service.list_workflows(label_selector=selector)
            elif kind == "cronworkflows":
                listed = self.service.list_cron_workflows(label_selector=selector)
            else:
                listed = self.service.list_workflow_templates(label_selector=selector)
        return [self._plain(item) for item in (listed.items or [])]

    def update(self, kind: Kind, name: str, obj: dict[str, Any]) -> dict[str, Any]:
        self._workflows_only(kind)
        from hera.workflows import models as m

        with self._errors(kind, name, "update"):
            if kind == "cronworkflows":
                updated: Any = self.service.update_cron_workflow(
                    name,
                    m.UpdateCronWorkflowRequest(
                        cron_workflow=self._model(kind, obj), name=name, namespace=self.connection.namespace
                    ),
                )
            elif kind == "workflowtemplates":
                updated = self.service.update_workflow_template(
                    name,
                    m.WorkflowTemplateUpdateRequest(
                        template=self._model(kind, obj), name=name, namespace=self.connection.namespace
                    ),
                )
            else:
                raise UserError("a submitted Workflow is not updated in place; stop it and submit again")
        return self._plain(updated)

    def workflow_action(self, name: str, action: WorkflowAction) -> dict[str, Any]:
        from hera.workflows import models as m

        ns = self.connection.namespace
        with self._errors("workflows", name, action):
            if action == "stop":
                done: Any = self.service.stop_workflow(name, m.WorkflowStopRequest(name=name, namespace=ns))
            elif action == "retry":
                done = self.service.retry_workflow(name, m.WorkflowRetryRequest(name=name, namespace=ns))
            else:
                done = self.service.resubmit_workflow(name, m.WorkflowResubmitRequest(name=name, namespace=ns))
        return self._plain(done)

    def cron_action(self, name: str, action: CronAction) -> dict[str, Any]:
        from hera.workflows import models as m

        ns = self.connection.namespace
        with self._errors("cronworkflows", name, action):
            if action == "suspend":
                done: Any = self.service.suspend_cron_workflow(
                    name, m.CronWorkflowSuspendRequest(name=name, namespace=ns)
                )
            else:
                done = self.service.resume_cron_workflow(name, m.CronWorkflowResumeRequest(name=name, namespace=ns))
        return self._plain(done)


def _status_from_text(text: str) -> int:
    marker = "status code "
    if marker in text:
        digits = text.split(marker, 1)[1][:3]
        if digits.isdigit():
            return int(digits)
    return 0


# ----------------------------------------------------------------------------- Kubernetes API


class KubernetesTransport:
    """The ``argoproj.io/v1alpha1`` custom objects through the official ``kubernetes`` client.

    ``stop`` patches ``spec.shutdown`` (what the controller watches); ``resubmit`` creates a new
    Workflow from the old one's spec and labels. ``retry`` rewrites node state inside the Argo
    Server, so it needs the Argo Server transport.
    """

    def __init__(self, connection: Connection, *, api_client: Any | None = None) -> None:
        import yaml
        from kubernetes import client, config

        self.connection = connection
        if api_client is None:
            configuration = client.Configuration()
            try:
                # Always an explicit path: the client's own default is KUBECONFIG as it was when
                # kubernetes.config was first imported, which may no longer be this process's.
                config.load_kube_config(
                    config_file=connection.kubeconfig or os.path.expanduser("~/.kube/config"),
                    context=connection.context or None,
                    client_configuration=configuration,
                )
            except (config.ConfigException, OSError, TypeError, ValueError, yaml.YAMLError) as error:
                raise ConfigError(
                    f"kubeconfig: {' '.join(str(error).split()).rstrip('.')}; fix KUBECONFIG, or set ARGO_SERVER to use the Argo Server instead"
                ) from error
            if connection.token:
                bare = connection.token.removeprefix("Bearer ").strip()
                configuration.api_key = {"BearerToken": f"Bearer {bare}"}
                configuration.refresh_api_key_hook = None  # else the kubeconfig's token comes back
            configuration.retries = 0
            api_client = client.ApiClient(configuration)
        self.api_client = api_client
        self.api = client.CustomObjectsApi(api_client)

    def close(self) -> None:
        self.api_client.close()

    def call(self, kind: Kind, name: str, verb: str, fn: Callable[[], T]) -> T:
        import urllib3
        from kubernetes.client.exceptions import ApiException

        try:
            return fn()
        except ApiException as error:
            message = ""
            try:
                message = str(json.loads(error.body or "{}").get("message", ""))
            except (ValueError, AttributeError):
                message = str(error.reason or "")
            raise translate_status(
                int(error.status or 0), message, kind=kind, name=name, verb=verb, connection=self.connection
            ) from error
        except urllib3.exceptions.HTTPError as error:
            raise unreachable(self.connection, error) from error

    def create(self, kind: Kind, obj: dict[str, Any]) -> dict[str, Any]:
        ns = self.connection.namespace
        name = str(obj.get("metadata", {}).get("name") or obj.get("metadata", {}).get("generateName") or "")
        return dict(
            self.call(
                kind, name, "create", lambda: self.api.create_namespaced_custom_object(GROUP, VERSION, ns, kind, obj)
            )
        )

    def get(self, kind: Kind, name: str) -> dict[str, Any]:
        ns = self.connection.namespace
        return dict(
            self.call(kind, name, "get", lambda: self.api.get_namespaced_custom_object(GROUP, VERSION, ns, kind, name))
        )

    def list(self, kind: Kind, label_selector: str = "") -> list[dict[str, Any]]:
        ns = self.connection.namespace
        listed = self.call(
            kind,
            "",
            "list",
            lambda: self.api.list_namespaced_custom_object(GROUP, VERSION, ns, kind, label_selector=label_selector),
        )
        return [dict(item) for item in listed.get("items") or []]

    def update(self, kind: Kind, name: str, obj: dict[str, Any]) -> dict[str, Any]:
        ns = self.connection.namespace
        return dict(
            self.call(
                kind,
                name,
                "update",
                lambda: self.api.replace_namespaced_custom_object(GROUP, VERSION, ns, kind, name, obj),
            )
        )

    def _patch(self, kind: Kind, name: str, verb: str, body: dict[str, Any]) -> dict[str, Any]:
        ns = self.connection.namespace
        return dict(
            self.call(
                kind, name, verb, lambda: self.api.patch_namespaced_custom_object(GROUP, VERSION, ns, kind, name, body)
            )
        )

    def workflow_action(self, name: str, action: WorkflowAction) -> dict[str, Any]:
        if action == "stop":
            # The API server would take the patch on a finished run and nothing would happen;
            # say so as the Argo Server does.
            phase = str((self.get("workflows", name).get("status") or {}).get("phase") or "")
            if phase in ("Succeeded", "Failed", "Error"):
                raise UserError(
                    f"stop {_what('workflows', name, self.connection)}: not possible in the run's current state "
                    f"(it has already finished: {phase}); see `headrace status {name}`"
                )
            return self._patch("workflows", name, "stop", {"spec": {"shutdown": "Stop"}})
        if action == "retry":
            raise ConfigError(
                f"retry Workflow {name}: needs the Argo Server (it resets node state); set ARGO_SERVER or use `headrace resubmit`"
            )
        return self.create("workflows", resubmission(self.get("workflows", name)))

    def cron_action(self, name: str, action: CronAction) -> dict[str, Any]:
        return self._patch("cronworkflows", name, action, {"spec": {"suspend": action == "suspend"}})


def resubmission(old: dict[str, Any]) -> dict[str, Any]:
    """A new Workflow running ``old`` again from the start: same spec and labels, a fresh name.

    Mirrors Argo's own resubmit: it keeps the user's labels, drops the controller's, and records
    where it came from in ``workflows.argoproj.io/resubmitted-from-workflow``.
    """
    meta = old.get("metadata", {})
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if not k.startswith("workflows.argoproj.io/")}
    labels["workflows.argoproj.io/resubmitted-from-workflow"] = str(meta.get("name", ""))
    spec = {k: v for k, v in (old.get("spec") or {}).items() if k not in ("shutdown", "suspend")}
    base = str(meta.get("generateName") or f"{meta.get('name', 'run')}-")
    return {
        "apiVersion": API_VERSION,
        "kind": "Workflow",
        "metadata": {"generateName": base, "labels": labels, "annotations": dict(meta.get("annotations") or {})},
        "spec": spec,
    }
