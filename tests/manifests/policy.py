"""The cluster policy every manifest must meet, as code: one finding per line, empty when clean.

What a platform engineer rejects on sight: privileged or root containers, privilege escalation,
host namespaces or hostPath volumes, wildcard RBAC, anything cluster-wide, workloads without
resource limits, and secret values written into a manifest.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

SECRET_NAME = re.compile(r"(TOKEN|PASSWORD|PASSWD|SECRET|API_?KEY|PRIVATE_?KEY|CREDENTIAL|DSN|DB_URL)", re.I)
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet", "Pod", "CronJob"}
CLUSTER_WIDE = {"ClusterRole", "ClusterRoleBinding"}
ARGO = {"Workflow", "WorkflowTemplate", "CronWorkflow"}


def _pod_specs(obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        yield "spec", spec
    elif kind == "CronJob":
        yield (
            "spec.jobTemplate.spec.template.spec",
            spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec", {}),
        )
    elif kind in WORKLOADS:
        yield "spec.template.spec", spec.get("template", {}).get("spec", {})


def _argo_specs(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = obj.get("spec") or {}
    yield spec.get("workflowSpec", spec) if obj.get("kind") == "CronWorkflow" else spec


def _containers(pod: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from pod.get("initContainers") or []
    yield from pod.get("containers") or []


def _container_findings(
    where: str, container: dict[str, Any], pod_context: dict[str, Any], *, limits: bool
) -> list[str]:
    found: list[str] = []
    name = f"{where} container {container.get('name')}"
    context = container.get("securityContext") or {}
    if context.get("privileged"):
        found.append(f"{name}: privileged")
    if context.get("allowPrivilegeEscalation", True) and limits:
        found.append(f"{name}: allowPrivilegeEscalation is not false")
    if context.get("runAsUser", pod_context.get("runAsUser")) == 0:
        found.append(f"{name}: runs as root (runAsUser 0)")
    if context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is not True:
        found.append(f"{name}: runAsNonRoot is not true")
    added = (context.get("capabilities") or {}).get("add") or []
    if added:
        found.append(f"{name}: adds capabilities {added}")
    if limits:
        if "ALL" not in ((context.get("capabilities") or {}).get("drop") or []):
            found.append(f"{name}: does not drop ALL capabilities")
        if not context.get("readOnlyRootFilesystem"):
            found.append(f"{name}: root filesystem is writable")
        resource_limits = (container.get("resources") or {}).get("limits") or {}
        for resource in ("cpu", "memory"):
            if resource not in resource_limits:
                found.append(f"{name}: no {resource} limit")
        requests = (container.get("resources") or {}).get("requests") or {}
        for resource in ("cpu", "memory"):
            if resource not in requests:
                found.append(f"{name}: no {resource} request")
    for env in container.get("env") or []:
        if "value" in env and SECRET_NAME.search(env.get("name", "")) and env["value"]:
            found.append(f"{name}: env {env['name']} holds a literal secret value; use secretKeyRef")
    return found


def _pod_findings(where: str, pod: dict[str, Any], *, limits: bool) -> list[str]:
    found: list[str] = []
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(flag):
            found.append(f"{where}: {flag} is set")
    for volume in pod.get("volumes") or []:
        if "hostPath" in volume:
            found.append(f"{where}: volume {volume.get('name')} is a hostPath")
    context = pod.get("securityContext") or {}
    if limits and (context.get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
        found.append(f"{where}: no RuntimeDefault seccomp profile")
    for container in _containers(pod):
        found += _container_findings(where, container, context, limits=limits)
    return found


def findings(obj: dict[str, Any]) -> list[str]:
    """Every policy breach in one object."""
    kind = obj.get("kind", "")
    meta = obj.get("metadata") or {}
    where = f"{kind} {meta.get('name')}"
    found: list[str] = []
    if kind in CLUSTER_WIDE:
        found.append(f"{where}: cluster-wide RBAC; use a namespaced Role and RoleBinding")
    if kind in ("Role", "ClusterRole"):
        for rule in obj.get("rules") or []:
            for field in ("verbs", "resources", "apiGroups"):
                if "*" in (rule.get(field) or []):
                    found.append(f"{where}: wildcard in {field}")
            if "secrets" in (rule.get("resources") or []):
                found.append(f"{where}: grants access to secrets")
    if kind == "Secret" and (obj.get("data") or obj.get("stringData")):
        found.append(f"{where}: a Secret with values is committed; create it out of band (docs/deploy.md)")
    if kind == "ConfigMap":
        for key, value in (obj.get("data") or {}).items():
            if SECRET_NAME.search(key) and value:
                found.append(f"{where}: key {key} looks like a secret; put it in headrace-secrets")
    for path, pod in _pod_specs(obj):
        found += _pod_findings(f"{where} {path}", pod, limits=True)
    if kind in ARGO:
        for spec in _argo_specs(obj):
            pod_like = {k: spec.get(k) for k in ("hostNetwork", "volumes", "securityContext")}
            found += [f for f in _pod_findings(where, pod_like, limits=False)]
            context = spec.get("securityContext") or {}
            for template in spec.get("templates") or []:
                for key in ("container", "script"):
                    if key in template:
                        found += _container_findings(
                            f"{where} template {template.get('name')}", template[key], context, limits=False
                        )
                for volume in template.get("volumes") or []:
                    if "hostPath" in volume:
                        found.append(f"{where} template {template.get('name')}: hostPath volume")
    return found
