"""A local Argo Server + Kubernetes custom-objects API server, speaking their REST APIs over HTTP.

A fake of our own, kept for the fast unit tests of tests/argo_ops (errors, flags, label
selectors, request shapes). The behaviour it imitates is checked against the real kube-apiserver
and Argo workflow-controller/Argo Server in tests/cluster/: runs to Succeeded, status, list, logs,
stop, retry and resubmit through both transports (test_runs.py), deploy, schedules and backfill
(test_schedules.py), sized pods and OOM (test_sizing.py), the submitter's RBAC (test_manifests.py).
Its status codes follow what those tests see the real servers answer: stop of a finished run 500,
retry of an unfinished one 400, resubmit of a running one allowed, update without
``resourceVersion`` 400.

Real clients (Hera's ``WorkflowsService``, the official ``kubernetes`` client, httpx) talk to it
on 127.0.0.1 exactly as they talk to a cluster: same paths, same request bodies, same error
bodies (grpc-gateway ``{"code", "message"}`` for the Argo Server, ``Status`` objects for
Kubernetes). It keeps one store for both APIs, as a cluster does, and plays the controller's part
only where a test asks it to (``set_phase``, ``add_log``).

Errors it gives like the real servers: 401 for a wrong bearer token, 403 in namespaces listed as
forbidden, 404 for a missing object or namespace, 409 on creating an existing object or updating
with a stale ``resourceVersion``, 400/422 for an invalid CronWorkflow (Argo v4 has only
``spec.schedules``) or an update without ``resourceVersion``.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import random
import string
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

ARGO_PATHS = {"workflows": "workflows", "cron-workflows": "cronworkflows", "workflow-templates": "workflowtemplates"}
KINDS = {"workflows": "Workflow", "cronworkflows": "CronWorkflow", "workflowtemplates": "WorkflowTemplate"}
COMPLETED = ("Succeeded", "Failed", "Error")
DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


class ApiError(Exception):
    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason or {
            400: "BadRequest",
            401: "Unauthorized",
            403: "Forbidden",
            404: "NotFound",
            409: "AlreadyExists",
            422: "Invalid",
        }.get(status, "InternalError")


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _suffix(n: int = 5) -> str:
    return "".join(random.choices(string.ascii_lowercase + string.digits, k=n))


def fnv32a(text: str) -> int:
    value = 0x811C9DC5
    for byte in text.encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def pod_name(workflow: str, task: str) -> str:
    """The pod Argo names for a DAG task whose template has the task's name."""
    return f"{workflow}-{task}-{fnv32a(f'{workflow}.{task}')}"


def matches(selector: str, labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics: ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (..)``, ``k``, ``!k``."""
    if not selector:
        return True
    parts: list[str] = []
    depth, current = 0, ""
    for char in selector:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    for raw in (p.strip() for p in parts if p.strip()):
        if " notin " in raw:
            key, values = raw.split(" notin ", 1)
            if labels.get(key.strip()) in {v.strip() for v in values.strip(" ()").split(",")}:
                return False
        elif " in " in raw:
            key, values = raw.split(" in ", 1)
            if labels.get(key.strip()) not in {v.strip() for v in values.strip(" ()").split(",")}:
                return False
        elif "!=" in raw:
            key, value = raw.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in raw:
            key, value = raw.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif raw.startswith("!"):
            if raw[1:].strip() in labels:
                return False
        elif raw not in labels:
            return False
    return True


@dataclass
class Call:
    api: str  # "argo" or "k8s"
    method: str
    path: str
    body: Any = None


@dataclass
class FakeCluster:
    """State shared by both APIs: namespaces, objects, logs; plus what tests configure."""

    token: str = "good-token"
    namespaces: set[str] = field(default_factory=lambda: {"argo", "ml"})
    forbidden: set[str] = field(default_factory=set)
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    logs: dict[tuple[str, str], list[tuple[str, str]]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    version: int = 1000

    # -- helpers for tests (the controller's part)

    def workflows(self, namespace: str = "argo") -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(o) for (k, ns, _), o in self.objects.items() if k == "workflows" and ns == namespace]

    def object(self, kind: str, name: str, namespace: str = "argo") -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.objects[(kind, namespace, name)])

    def calls_to(self, method: str, fragment: str = "") -> list[Call]:
        return [c for c in self.calls if c.method == method and fragment in c.path]

    def set_phase(
        self, name: str, phase: str, *, tasks: dict[str, str] | None = None, namespace: str = "argo", message: str = ""
    ) -> None:
        """Move a workflow to ``phase`` with its DAG tasks in ``tasks`` phases, as the controller would."""
        with self.lock:
            wf = self.objects[("workflows", namespace, name)]
            self._set_phase(wf, phase, message)
            nodes = wf["status"].setdefault("nodes", {})
            for task, task_phase in (tasks or {}).items():
                node_name = f"{name}.{task}"
                node_id = f"{name}-{fnv32a(node_name)}"
                node = nodes.setdefault(
                    node_id,
                    {
                        "id": node_id,
                        "name": node_name,
                        "displayName": task,
                        "type": "Pod",
                        "templateName": task,
                        "startedAt": _now(),
                    },
                )
                node["phase"] = task_phase
                if task_phase in COMPLETED:
                    node["finishedAt"] = _now()
            self._bump(wf)

    def schedule_run(self, cron: str, scheduled_time: str, *, namespace: str = "argo") -> str:
        """Start a workflow from a CronWorkflow as Argo's cron controller does; returns its name."""
        with self.lock:
            spec = copy.deepcopy(self.objects[("cronworkflows", namespace, cron)]["spec"])
        workflow_spec = spec["workflowSpec"]
        for parameter in (workflow_spec.get("arguments") or {}).get("parameters") or []:
            parameter["value"] = str(parameter.get("value", "")).replace("{{workflow.scheduledTime}}", scheduled_time)
        labels = dict((spec.get("workflowMetadata") or {}).get("labels") or {})  # CronWorkflowSpec.workflowMetadata
        labels["workflows.argoproj.io/cron-workflow"] = cron
        created = self.create(
            "workflows",
            namespace,
            {
                "metadata": {
                    "generateName": f"{cron}-",
                    "labels": labels,
                    "annotations": {"workflows.argoproj.io/scheduled-time": scheduled_time},
                },
                "spec": workflow_spec,
            },
        )
        return str(created["metadata"]["name"])

    def add_log(self, name: str, task: str, line: str, namespace: str = "argo") -> None:
        """A line printed by ``task``'s pod (Argo's v2 pod name: ``<workflow>-<template>-<fnv32a(node)>``)."""
        with self.lock:
            self.logs.setdefault((namespace, name), []).append((pod_name(name, task), line))

    def pods(self, namespace: str) -> dict[str, dict[str, Any]]:
        """The pods of every workflow's Pod nodes, labelled and annotated as Argo's controller does."""
        with self.lock:
            found: dict[str, dict[str, Any]] = {}
            for (kind, ns, name), wf in self.objects.items():
                if kind != "workflows" or ns != namespace:
                    continue
                for node in (wf.get("status", {}).get("nodes") or {}).values():
                    if node.get("type") != "Pod":
                        continue
                    pod = pod_name(name, node["templateName"])
                    found[pod] = {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {
                            "name": pod,
                            "namespace": ns,
                            "labels": {"workflows.argoproj.io/workflow": name},
                            "annotations": {
                                "workflows.argoproj.io/node-name": node["name"],
                                "workflows.argoproj.io/node-id": node["id"],
                            },
                            "creationTimestamp": node.get("startedAt", _now()),
                        },
                        "spec": {
                            "containers": [{"name": "wait", "image": "argoexec"}, {"name": "main", "image": "headrace"}]
                        },
                        "status": {
                            "phase": {"Succeeded": "Succeeded", "Failed": "Failed"}.get(node["phase"], "Running")
                        },
                    }
            return found

    def _set_phase(self, wf: dict[str, Any], phase: str, message: str = "") -> None:
        status = wf.setdefault("status", {})
        status["phase"] = phase
        status.setdefault("startedAt", _now())
        if message:
            status["message"] = message
        if phase in COMPLETED:
            status["finishedAt"] = _now()
        labels = wf["metadata"].setdefault("labels", {})
        labels["workflows.argoproj.io/phase"] = phase
        if phase in COMPLETED:
            labels["workflows.argoproj.io/completed"] = "true"
        else:
            labels["workflows.argoproj.io/completed"] = "false"

    def _bump(self, obj: dict[str, Any]) -> None:
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)

    # -- the API semantics shared by both front ends

    def check_namespace(self, namespace: str, verb: str, kind: str) -> None:
        if namespace in self.forbidden:
            raise ApiError(
                403,
                f'{kind}.argoproj.io is forbidden: User "system:serviceaccount:{namespace}:default" cannot {verb} '
                f'resource "{kind}" in API group "argoproj.io" in the namespace "{namespace}"',
            )

    def create(self, kind: str, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.check_namespace(namespace, "create", kind)
            if namespace not in self.namespaces:
                raise ApiError(404, f'namespaces "{namespace}" not found')
            obj = copy.deepcopy(obj)
            if obj.get("kind") not in (None, KINDS[kind]):
                raise ApiError(400, f"the body is a {obj.get('kind')}, not a {KINDS[kind]}")
            meta = obj.setdefault("metadata", {})
            if not meta.get("name"):
                if not meta.get("generateName"):
                    raise ApiError(422, f"{KINDS[kind]}.argoproj.io is invalid: metadata.name: Required value")
                meta["name"] = meta["generateName"] + _suffix()
            name = meta["name"]
            if (kind, namespace, name) in self.objects:
                raise ApiError(409, f'{kind}.argoproj.io "{name}" already exists')
            if kind == "cronworkflows":
                validate_cron(obj)
            if kind == "workflows":
                ref = (obj.get("spec") or {}).get("workflowTemplateRef")
                if ref and ("workflowtemplates", namespace, ref.get("name")) not in self.objects:
                    raise ApiError(400, f'workflowtemplates.argoproj.io "{ref.get("name")}" not found')
            obj["apiVersion"] = "argoproj.io/v1alpha1"
            obj["kind"] = KINDS[kind]
            meta.update(namespace=namespace, uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
            self._bump(obj)
            if kind == "workflows":
                self._set_phase(obj, "Pending")
            self.objects[(kind, namespace, name)] = obj
            return copy.deepcopy(obj)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        with self.lock:
            self.check_namespace(namespace, "get", kind)
            try:
                return copy.deepcopy(self.objects[(kind, namespace, name)])
            except KeyError:
                raise ApiError(404, f'{kind}.argoproj.io "{name}" not found') from None

    def list(self, kind: str, namespace: str, selector: str) -> list[dict[str, Any]]:
        with self.lock:
            self.check_namespace(namespace, "list", kind)
            return [
                copy.deepcopy(o)
                for (k, ns, _), o in sorted(self.objects.items(), key=lambda kv: kv[1]["metadata"]["resourceVersion"])
                if k == kind and ns == namespace and matches(selector, o["metadata"].get("labels") or {})
            ]

    def update(self, kind: str, namespace: str, name: str, obj: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.check_namespace(namespace, "update", kind)
            current = self.objects.get((kind, namespace, name))
            if current is None:
                raise ApiError(404, f'{kind}.argoproj.io "{name}" not found')
            version = (obj.get("metadata") or {}).get("resourceVersion")
            if not version:
                raise ApiError(
                    422,
                    f'{KINDS[kind]}.argoproj.io "{name}" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update',
                )
            if version != current["metadata"]["resourceVersion"]:
                raise ApiError(
                    409,
                    f'Operation cannot be fulfilled on {kind}.argoproj.io "{name}": the object has been modified; please apply your changes to the latest version and try again',
                    "Conflict",
                )
            if kind == "cronworkflows":
                validate_cron(obj)
            new = copy.deepcopy(obj)
            keep = {k: current["metadata"][k] for k in ("uid", "creationTimestamp", "namespace", "name")}
            new["metadata"].update(keep)
            new["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
            new["apiVersion"] = "argoproj.io/v1alpha1"
            new["kind"] = KINDS[kind]
            if "status" in current and "status" not in new:
                new["status"] = current["status"]
            self._bump(new)
            self.objects[(kind, namespace, name)] = new
            return copy.deepcopy(new)

    def patch(self, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            current = self.get(kind, namespace, name)
            merged = merge_patch(current, patch)
            self._bump(merged)
            if kind == "workflows" and (merged.get("spec") or {}).get("shutdown"):
                self._set_phase(merged, "Failed", f"Stopped with strategy '{merged['spec']['shutdown']}'")
            self.objects[(kind, namespace, name)] = merged
            return copy.deepcopy(merged)

    def action(self, kind: str, namespace: str, name: str, action: str) -> dict[str, Any]:
        with self.lock:
            wf = self.get(kind, namespace, name)
            if kind == "cronworkflows":
                return self.patch(kind, namespace, name, {"spec": {"suspend": action == "suspend"}})
            phase = (wf.get("status") or {}).get("phase", "")
            if action == "stop":
                if phase in COMPLETED:
                    # The real Argo Server answers 500 here (tests/cluster/test_runs.py checks it).
                    raise ApiError(
                        500, f'cannot shutdown a completed workflow: workflow: "{name}", namespace: "{namespace}"'
                    )
                return self.patch(kind, namespace, name, {"spec": {"shutdown": "Stop"}})
            if action == "retry":
                if phase not in ("Failed", "Error"):
                    raise ApiError(400, f"Cannot retry a workflow in phase {phase or 'Pending'}")
                current = self.objects[(kind, namespace, name)]
                current["spec"].pop("shutdown", None)
                for node in (current["status"].get("nodes") or {}).values():
                    if node.get("phase") in ("Failed", "Error"):
                        node["phase"] = "Pending"
                        node.pop("finishedAt", None)
                current["status"].pop("finishedAt", None)
                current["status"].pop("message", None)
                self._set_phase(current, "Running")
                self._bump(current)
                return copy.deepcopy(current)
            # The real Argo Server resubmits a running workflow too.
            labels = {
                k: v
                for k, v in (wf["metadata"].get("labels") or {}).items()
                if not k.startswith("workflows.argoproj.io/")
            }
            labels["workflows.argoproj.io/resubmitted-from-workflow"] = name
            spec = {k: v for k, v in wf["spec"].items() if k != "shutdown"}
            new = {
                "metadata": {"generateName": wf["metadata"].get("generateName") or f"{name}-", "labels": labels},
                "spec": spec,
            }
            return self.create(kind, namespace, new)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def validate_cron(obj: dict[str, Any]) -> None:
    """What Argo v4 checks on a CronWorkflow: ``spec.schedules`` (the singular field is gone), valid crons, a timezone."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from croniter import croniter

    spec = obj.get("spec") or {}
    name = (obj.get("metadata") or {}).get("name", "")
    if "schedule" in spec:
        raise ApiError(400, f'cron workflow {name}: json: unknown field "schedule" (Argo v4 takes spec.schedules)')
    schedules = spec.get("schedules") or []
    if not schedules:
        raise ApiError(400, f"cron workflow {name}: spec.schedules must have at least one cron expression")
    for expression in schedules:
        text = str(expression).strip()
        if text in DESCRIPTORS or text.startswith("@every "):
            continue
        if len(text.split()) != 5 or not croniter.is_valid(text):
            raise ApiError(400, f"cron workflow {name}: cron schedule {text!r} is malformed")
    timezone = spec.get("timezone")
    if timezone:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ApiError(400, f"cron workflow {name}: invalid timezone {timezone!r}") from None
    if "workflowSpec" not in spec:
        raise ApiError(400, f"cron workflow {name}: spec.workflowSpec is required")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    # -- plumbing

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw else None

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, api: str, error: ApiError) -> None:
        if api == "argo":
            grpc = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 422: 3}.get(error.status, 13)
            self._send(error.status, {"code": grpc, "message": error.message})
        else:
            self._send(
                error.status,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Failure",
                    "message": error.message,
                    "reason": error.reason,
                    "code": error.status,
                },
            )

    def _authorised(self, api: str) -> bool:
        cluster = self.server.cluster
        expected = f"Bearer {cluster.token}"
        if self.headers.get("Authorization") == expected:
            return True
        message = (
            "token not valid. see https://argo-workflows.readthedocs.io/en/latest/faq/"
            if api == "argo"
            else "Unauthorized"
        )
        self._error(api, ApiError(401, message))
        return False

    def _dispatch(self, method: str) -> None:
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        parts = [p for p in url.path.split("/") if p]
        api = "argo" if parts[:2] == ["api", "v1"] and len(parts) > 2 and parts[2] in ARGO_PATHS else "k8s"
        if parts in (["version"], ["api", "v1", "version"]):
            self._send(
                200,
                {
                    "major": "1",
                    "minor": "32",
                    "gitVersion": "v1.32.0",
                    "gitCommit": "70d3cc986aa8221cd1dfb1121852688902d3bf53",
                    "gitTreeState": "clean",
                    "buildDate": "2024-12-11T17:59:15Z",
                    "goVersion": "go1.23.3",
                    "compiler": "gc",
                    "platform": "linux/amd64",
                },
            )
            return
        body = self._body() if method in ("POST", "PUT", "PATCH") else None
        cluster = self.server.cluster
        cluster.calls.append(Call(api, method, url.path, body))
        if not self._authorised(api):
            return
        try:
            if api == "argo":
                self._argo(method, parts[2:], query, body)
            elif parts[:3] == ["apis", "argoproj.io", "v1alpha1"] and len(parts) >= 6 and parts[3] == "namespaces":
                self._kube(method, parts[4:], query, body)
            elif (
                parts[:3] == ["api", "v1", "namespaces"] and len(parts) >= 5 and parts[4] == "pods" and method == "GET"
            ):
                self._pods(parts[3], parts[5:], query)
            else:
                raise ApiError(404, f"the server could not find the requested resource ({url.path})")
        except ApiError as error:
            self._error(api, error)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    # -- Argo Server: /api/v1/{workflows|cron-workflows|workflow-templates}/{ns}[/{name}[/{action}]]

    def _argo(self, method: str, parts: list[str], query: dict[str, str], body: Any) -> None:
        cluster = self.server.cluster
        kind = ARGO_PATHS[parts[0]]
        if len(parts) < 2:
            raise ApiError(404, "namespace is required")
        namespace = parts[1]
        if len(parts) == 2 and method == "GET":
            items = cluster.list(kind, namespace, query.get("listOptions.labelSelector", ""))
            self._send(200, {"metadata": {"resourceVersion": str(cluster.version)}, "items": items or None})
        elif len(parts) == 2 and method == "POST":
            key = {"workflows": "workflow", "cronworkflows": "cronWorkflow", "workflowtemplates": "template"}[kind]
            if not isinstance(body, dict) or key not in body:
                raise ApiError(400, f"request body has no {key}")
            self._send(200, cluster.create(kind, namespace, body[key]))
        elif len(parts) == 3 and method == "GET":
            self._send(200, cluster.get(kind, namespace, parts[2]))
        elif len(parts) == 3 and method == "PUT":
            key = {"cronworkflows": "cronWorkflow", "workflowtemplates": "template"}.get(kind)
            if key is None or not isinstance(body, dict) or key not in body:
                raise ApiError(400, f"request body has no {key}")
            self._send(200, cluster.update(kind, namespace, parts[2], body[key]))
        elif len(parts) == 4 and method == "GET" and parts[3] == "log" and kind == "workflows":
            self._stream_logs(namespace, parts[2], query)
        elif len(parts) == 4 and method == "PUT" and parts[3] in ("stop", "retry", "resubmit", "suspend", "resume"):
            self._send(200, cluster.action(kind, namespace, parts[2], parts[3]))
        else:
            raise ApiError(404, f"no route {method} {'/'.join(parts)}")

    def _stream_logs(self, namespace: str, name: str, query: dict[str, str]) -> None:
        cluster = self.server.cluster
        cluster.get("workflows", namespace, name)
        follow = query.get("logOptions.follow") == "true"
        pod = query.get("podName", "")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for pod_name, line in self._lines(namespace, name, pod, follow):
            chunk = json.dumps({"result": {"content": line, "podName": pod_name}}).encode() + b"\n"
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _lines(self, namespace: str, name: str, pod: str, follow: bool) -> Iterator[tuple[str, str]]:
        cluster = self.server.cluster
        sent = 0
        deadline = time.monotonic() + 20
        while True:
            with cluster.lock:
                lines = [entry for entry in cluster.logs.get((namespace, name), []) if not pod or entry[0] == pod]
                phase = cluster.objects[("workflows", namespace, name)].get("status", {}).get("phase")
            yield from lines[sent:]
            sent = len(lines)
            if not follow or phase in COMPLETED or time.monotonic() > deadline:
                with cluster.lock:
                    rest = [e for e in cluster.logs.get((namespace, name), []) if not pod or e[0] == pod][sent:]
                yield from rest
                return
            time.sleep(0.02)

    # -- Kubernetes core: the pods Argo runs for a workflow, and their logs

    def _pods(self, namespace: str, rest: list[str], query: dict[str, str]) -> None:
        cluster = self.server.cluster
        pods = cluster.pods(namespace)
        if not rest:
            selector = query.get("labelSelector", "")
            items = [p for p in pods.values() if matches(selector, p["metadata"]["labels"])]
            self._send(200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items})
            return
        pod = pods.get(rest[0])
        if pod is None:
            raise ApiError(404, f'pods "{rest[0]}" not found')
        if rest[1:] != ["log"]:
            self._send(200, pod)
            return
        if query.get("container") not in (None, "main"):
            raise ApiError(400, f"container {query.get('container')} is not valid for pod {rest[0]}")
        workflow = pod["metadata"]["labels"]["workflows.argoproj.io/workflow"]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        follow = query.get("follow", "").lower() in ("true", "1", "t")  # Go's ParseBool: the client sends "True"
        for _, line in self._lines(namespace, workflow, rest[0], follow):
            chunk = line.encode() + b"\n"
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # -- Kubernetes: /apis/argoproj.io/v1alpha1/namespaces/{ns}/{plural}[/{name}]

    def _kube(self, method: str, parts: list[str], query: dict[str, str], body: Any) -> None:
        cluster = self.server.cluster
        namespace, kind = parts[0], parts[1]
        if kind not in KINDS:
            raise ApiError(404, f"the server could not find the requested resource ({kind})")
        if len(parts) == 2 and method == "GET":
            items = cluster.list(kind, namespace, query.get("labelSelector", ""))
            self._send(
                200,
                {
                    "apiVersion": "argoproj.io/v1alpha1",
                    "kind": f"{KINDS[kind]}List",
                    "metadata": {"resourceVersion": str(cluster.version)},
                    "items": items,
                },
            )
        elif len(parts) == 2 and method == "POST":
            self._send(201, cluster.create(kind, namespace, body))
        elif len(parts) == 3 and method == "GET":
            self._send(200, cluster.get(kind, namespace, parts[2]))
        elif len(parts) == 3 and method == "PUT":
            self._send(200, cluster.update(kind, namespace, parts[2], body))
        elif len(parts) == 3 and method == "PATCH":
            if self.headers.get("Content-Type") != "application/merge-patch+json":
                raise ApiError(415, f"unsupported patch type {self.headers.get('Content-Type')}")
            self._send(200, cluster.patch(kind, namespace, parts[2], body))
        else:
            raise ApiError(405, f"method {method} not allowed")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    cluster: FakeCluster


class FakeArgo:
    """Start with ``with FakeArgo() as argo:``; ``argo.url`` serves both APIs, ``argo.cluster`` is the state."""

    def __init__(self, cluster: FakeCluster | None = None) -> None:
        self.cluster = cluster or FakeCluster()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.cluster = self.cluster
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-argo", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeArgo:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def kubeconfig(self, path: str, *, namespace: str = "argo", token: str | None = None) -> str:
        """Write a kubeconfig whose current context points at this server; returns the path."""
        import yaml

        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": token or self.cluster.token}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": namespace}}],
            "current-context": "fake",
        }
        with open(path, "w", encoding="utf-8") as handle:
            yaml.safe_dump(config, handle)
        return path
