"""The Pod Security Standards' "baseline" and "restricted" profiles as checks over pods.

Written from the Kubernetes documentation, control by control:
https://kubernetes.io/docs/concepts/security/pod-security-standards/ (the "Baseline" and
"Restricted" tables; field paths as listed there). The API server's PodSecurity admission applies
exactly these when a namespace is labelled ``pod-security.kubernetes.io/enforce: restricted``.

Argo turns a template into a pod: the workflow's ``securityContext`` becomes the pod's, the
template's ``container`` becomes ``main``, and Argo adds its executor containers (``init``, ``wait``)
from the controller's ``executor`` setting; :func:`argo_pods` builds those pods.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

#: Baseline "Capabilities": what a container may add.
BASELINE_CAPABILITIES = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}  # fmt: skip
#: Baseline "Sysctls": the safe set.
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}  # fmt: skip
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
#: Restricted "Volume Types".
RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
}  # fmt: skip


def _containers(pod: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from pod.get(key) or []


def baseline(pod: dict[str, Any]) -> list[str]:
    found: list[str] = []
    context = pod.get("securityContext") or {}
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(flag):
            found.append(f"Host Namespaces: {flag} is set")
    if (context.get("windowsOptions") or {}).get("hostProcess"):
        found.append("HostProcess: pod windowsOptions.hostProcess")
    for volume in pod.get("volumes") or []:
        if "hostPath" in volume:
            found.append(f"HostPath Volumes: {volume.get('name')}")
    for sysctl in context.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            found.append(f"Sysctls: {sysctl.get('name')}")
    found += _seccomp_and_selinux("pod", context)
    for container in _containers(pod):
        name = f"container {container.get('name')}"
        own = container.get("securityContext") or {}
        if own.get("privileged"):
            found.append(f"Privileged Containers: {name}")
        if (own.get("windowsOptions") or {}).get("hostProcess"):
            found.append(f"HostProcess: {name}")
        added = set((own.get("capabilities") or {}).get("add") or []) - BASELINE_CAPABILITIES
        if added:
            found.append(f"Capabilities: {name} adds {sorted(added)}")
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                found.append(f"Host Ports: {name} uses {port['hostPort']}")
        if own.get("procMount", "Default") != "Default":
            found.append(f"/proc Mount Type: {name}")
        found += _seccomp_and_selinux(name, own)
    return found


def _seccomp_and_selinux(where: str, context: dict[str, Any]) -> list[str]:
    found: list[str] = []
    if (context.get("seccompProfile") or {}).get("type") == "Unconfined":
        found.append(f"Seccomp: {where} is Unconfined")
    if (context.get("appArmorProfile") or {}).get("type") not in (None, "RuntimeDefault", "Localhost"):
        found.append(f"AppArmor: {where}")
    selinux = context.get("seLinuxOptions") or {}
    if selinux.get("type", "") not in SELINUX_TYPES or selinux.get("user") or selinux.get("role"):
        found.append(f"SELinux: {where}")
    return found


def restricted(pod: dict[str, Any]) -> list[str]:
    """Every "restricted" control ``pod`` breaks (baseline's included), one line each."""
    found = baseline(pod)
    context = pod.get("securityContext") or {}
    for volume in pod.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            found.append(f"Volume Types: {volume.get('name')} is {sorted(kinds)}")
    if context.get("runAsUser") == 0:
        found.append("Running as Non-root user: pod runAsUser 0")
    for container in _containers(pod):
        name = f"container {container.get('name')}"
        own = container.get("securityContext") or {}
        if own.get("allowPrivilegeEscalation") is not False:
            found.append(f"Privilege Escalation: {name} does not set allowPrivilegeEscalation: false")
        if own.get("runAsNonRoot", context.get("runAsNonRoot")) is not True:
            found.append(f"Running as Non-root: {name} (runAsNonRoot is not true on it or the pod)")
        if own.get("runAsUser") == 0:
            found.append(f"Running as Non-root user: {name} runAsUser 0")
        seccomp = (own.get("seccompProfile") or context.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"Seccomp: {name} has no RuntimeDefault or Localhost profile (on it or the pod)")
        capabilities = own.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            found.append(f"Capabilities: {name} does not drop ALL")
        if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            found.append(f"Capabilities: {name} adds more than NET_BIND_SERVICE")
    return found


def argo_pods(obj: dict[str, Any], executor: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The pod Argo creates for each container template of ``obj``, with ``executor`` (the
    controller's ``executor`` container setting) as its ``init`` and ``wait`` containers."""
    spec = obj["spec"].get("workflowSpec", obj["spec"])
    for template in spec.get("templates", []):
        if "container" not in template:
            continue
        pod = {
            "securityContext": template.get("securityContext") or spec.get("securityContext") or {},
            "hostNetwork": spec.get("hostNetwork"),
            "volumes": [*(spec.get("volumes") or []), *(template.get("volumes") or [])],
            "initContainers": [{**executor, "name": "init"}],
            "containers": [{**executor, "name": "wait"}, {**template["container"], "name": "main"}],
        }
        yield template["name"], pod
