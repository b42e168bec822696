"""Starts the real control plane on 127.0.0.1: etcd, kube-apiserver, Argo's CRDs, the
workflow-controller, the Argo Server and the node agent; stops all of it after.

Used by the pytest session fixture (tests/cluster/conftest.py) and by benchmarks/cluster_chain.py.
The binaries come from tests/cluster/build (pinned in tests/cluster/versions.env), cached outside
the repository; :func:`missing` says in one line what is absent and how to get it.

Everything is reached on 127.0.0.1 only. Two listeners of Argo's binaries take no address, only a
port, and so listen on every interface while a session runs: the Argo Server's ``--port`` (which
answers callers without a token too, as ``--auth-mode=server`` allows) and the controller's
profiling endpoint on 6060, which has no switch. Building them with a bind address would mean
patching Argo's source.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import yaml

from tests.cluster.node_agent import die_with_parent

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
NAMESPACE = "argo"
ADMIN_TOKEN = "headrace-cluster-admin"  # a test cluster's static token, on 127.0.0.1 only


def versions() -> dict[str, str]:
    pairs = {}
    for line in (HERE / "versions.env").read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            pairs[key.strip()] = value.strip()
    return pairs


def cache_dir() -> Path:
    return Path(os.environ.get("HEADRACE_CLUSTER_CACHE") or Path.home() / ".cache" / "headrace-cluster")


@dataclass(frozen=True)
class Binaries:
    etcd: Path
    kube_apiserver: Path
    kubectl: Path
    workflow_controller: Path
    argo: Path
    crds: Path


def binaries() -> Binaries:
    pinned, cache = versions(), cache_dir()
    etcd = cache / f"etcd-{pinned['ETCD_VERSION']}"
    kube = cache / f"kube-apiserver-{pinned['KUBERNETES_VERSION']}"
    argo = cache / f"argo-workflows-{pinned['ARGO_WORKFLOWS_VERSION']}"
    kubectl = cache / f"kubectl-{pinned['KUBERNETES_VERSION']}" / "kubectl"
    return Binaries(
        etcd / "etcd", kube / "kube-apiserver", kubectl, argo / "workflow-controller", argo / "argo", argo / "crds"
    )


def missing() -> str:
    """Empty when everything needed is here, else one line saying what is absent and what to run."""
    found = binaries()
    absent = [
        p.name
        for p in (found.etcd, found.kube_apiserver, found.kubectl, found.workflow_controller, found.argo, found.crds)
        if not p.exists()
    ]
    if not absent:
        return ""
    hint = "run tests/cluster/build" if shutil.which("go") else "install Go, then run tests/cluster/build"
    return f"{', '.join(absent)} not built in {cache_dir()}; {hint}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ----------------------------------------------------------------------------- certificates


def _certificates(folder: Path) -> None:
    """A CA; the API server's and the kubelet's serving certificates; the API server's client
    certificate towards the kubelet; the service-account signing key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    def key() -> rsa.RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def write_key(name: str, private: rsa.RSAPrivateKey) -> None:
        (folder / name).write_bytes(
            private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
            )
        )

    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    ca_key = key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "headrace-test-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    (folder / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    write_key("ca.key", ca_key)

    def leaf(name: str, common: str, org: str = "", server: bool = True) -> None:
        private = key()
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common)]
        if org:
            attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attributes))
            .issuer_name(ca_name)
            .public_key(private.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=2))
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.DNSName("kubernetes.default.svc"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
                    ]
                ),
                critical=False,
            )
        cert = builder.sign(ca_key, hashes.SHA256())
        (folder / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        write_key(f"{name}.key", private)

    leaf("apiserver", "kube-apiserver")
    leaf("kubelet", "headrace-node")
    leaf("kubelet-client", "kube-apiserver-kubelet-client", org="system:masters", server=False)
    sa = key()
    write_key("sa.key", sa)
    (folder / "sa.pub").write_bytes(
        sa.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    (folder / "tokens.csv").write_text(f'{ADMIN_TOKEN},admin,admin,"system:masters"\n', encoding="utf-8")


def kubeconfig(path: Path, server: str, ca: Path, token: str, namespace: str = NAMESPACE) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": "test", "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test", "namespace": namespace}}],
        "current-context": "test",
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- the cluster


@dataclass
class Cluster:
    """A running control plane: where it listens and how to reach it."""

    folder: Path
    control_room_url: str
    api_url: str
    argo_url: str
    kubeconfig: Path
    namespace: str = NAMESPACE
    token: str = ADMIN_TOKEN
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, IO[bytes]] = field(default_factory=dict)

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.api_url,
            headers={"Authorization": f"Bearer {self.token}"},
            verify=ssl.create_default_context(cafile=str(self.folder / "ca.crt")),
            timeout=30,
        )

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(binaries().kubectl), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            check=check,
            input=input,
            timeout=120,
        )

    def log_of(self, name: str) -> str:
        path = self.folder / f"{name}.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        handle = (self.folder / f"{name}.log").open("wb")
        self.logs[name] = handle
        self.processes[name] = subprocess.Popen(
            argv,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            preexec_fn=die_with_parent,
        )

    def alive(self, name: str) -> None:
        process = self.processes[name]
        if process.poll() is not None:
            tail = "\n".join(self.log_of(name).splitlines()[-15:])
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail}")

    def stop(self, grace: float = 3) -> None:
        """SIGTERM to everything, SIGKILL to whatever still runs after ``grace`` seconds: the Argo
        binaries and the API server drain their watches for much longer on SIGTERM, and nothing
        here keeps state worth a clean shutdown."""
        for process in reversed(list(self.processes.values())):
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + grace
        for process in self.processes.values():
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        for handle in self.logs.values():
            handle.close()


def _wait(what: str, check: Any, cluster: Cluster, name: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        cluster.alive(name)
        try:
            if check():
                return
        except (httpx.HTTPError, OSError, subprocess.SubprocessError) as error:
            last = error
        time.sleep(0.3)
    raise RuntimeError(f"{what} not ready after {timeout:.0f}s ({last}):\n{cluster.log_of(name)[-2000:]}")


def _namespace_objects(namespace: str, extra_env: dict[str, str]) -> list[dict[str, Any]]:
    """The namespace, its default ServiceAccount (no controller-manager runs to create it), the
    controller's configmap and the headrace-config the pods read their settings from."""
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": namespace}},
        # The ServiceAccount compiled Workflows run as (manifests/ grant it its role).
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "headrace-workflow", "namespace": namespace},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "workflow-controller-configmap", "namespace": namespace},
            # No metrics server: it would listen on every interface at a fixed port (9090).
            # The controller's profiling endpoint (*:6060) cannot be turned off; when the port is
            # taken it logs an error and runs on.
            "data": {"metricsConfig": "enabled: false\n"},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "headrace-config", "namespace": namespace},
            "data": extra_env,
        },
    ]


@contextmanager
def running(
    folder: Path,
    *,
    pod_env: dict[str, str],
    room_env: dict[str, str] | None = None,
    pythonpath: str = "",
    requeue_time: str = "1s",
) -> Iterator[Cluster]:
    """The whole control plane, up and ready, in ``folder``; everything stopped on exit.

    ``pod_env`` becomes the ``headrace-config`` ConfigMap every headrace pod reads its settings
    from; a control room (``headrace control-room serve``, SQLite in ``folder``) and its watcher
    (``headrace control-room watch``) run beside it, and the pods report to that control room.
    ``room_env`` adds settings of the control room and its watcher only (its Slack, say): the pods
    never see them, as in a deployment where only the control room holds the Slack token.
    """
    found = binaries()
    folder.mkdir(parents=True, exist_ok=True)
    _certificates(folder)
    api_port, argo_port, kubelet_port, room_port = free_port(), free_port(), free_port(), free_port()
    etcd_port, peer_port = free_port(), free_port()
    api_url = f"https://127.0.0.1:{api_port}"
    room_url = f"http://127.0.0.1:{room_port}"
    pod_env = {**pod_env, "HEADRACE_CONTROL_ROOM_URL": room_url}
    cluster = Cluster(
        folder=folder,
        control_room_url=room_url,
        api_url=api_url,
        argo_url=f"http://127.0.0.1:{argo_port}",
        kubeconfig=kubeconfig(folder / "kubeconfig", api_url, folder / "ca.crt", ADMIN_TOKEN),
    )
    try:
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        cluster.start(
            "etcd",
            [
                str(found.etcd),
                f"--data-dir={folder / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync",
            ],
        )
        _wait("etcd", lambda: httpx.get(f"{etcd_url}/health", timeout=2).status_code == 200, cluster, "etcd")
        c = folder
        cluster.start(
            "kube-apiserver",
            [
                str(found.kube_apiserver),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--tls-cert-file={c / 'apiserver.crt'}",
                f"--tls-private-key-file={c / 'apiserver.key'}",
                f"--client-ca-file={c / 'ca.crt'}",
                f"--token-auth-file={c / 'tokens.csv'}",
                "--authorization-mode=Node,RBAC",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={c / 'sa.pub'}",
                f"--service-account-signing-key-file={c / 'sa.key'}",
                "--service-cluster-ip-range=10.0.0.0/24",
                f"--kubelet-client-certificate={c / 'kubelet-client.crt'}",
                f"--kubelet-client-key={c / 'kubelet-client.key'}",
                f"--kubelet-certificate-authority={c / 'ca.crt'}",
                "--kubelet-preferred-address-types=InternalIP",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
                "--watch-cache=true",
                "--v=1",
            ],
        )
        with cluster.api() as api:
            _wait("kube-apiserver", lambda: api.get("/readyz").status_code == 200, cluster, "kube-apiserver", 120)
        cluster.kubectl("create", "-f", str(found.crds))
        cluster.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(_namespace_objects(cluster.namespace, pod_env)))
        # KUBECONFIG: in client auth mode the Argo Server builds each caller's client from the
        # default kubeconfig loading rules, not from --kubeconfig.
        client_env = {"KUBECONFIG": str(cluster.kubeconfig)}
        # DEFAULT_REQUEUE_TIME: the controller looks at a workflow again at most this often after a
        # pod or task result changes (Argo's default 10s; Argo's own end-to-end tests use 1s, as here).
        controller_env = {
            "LEADER_ELECTION_DISABLE": "true",
            "ARGO_NAMESPACE": cluster.namespace,
            "DEFAULT_REQUEUE_TIME": requeue_time,
            **client_env,
        }
        cluster.start(
            "workflow-controller",
            [
                str(found.workflow_controller),
                f"--kubeconfig={cluster.kubeconfig}",
                "--namespaced",
                f"--managed-namespace={cluster.namespace}",
                f"--namespace={cluster.namespace}",
                "--configmap=workflow-controller-configmap",
                "--executor-image=quay.io/argoproj/argoexec:" + versions()["ARGO_WORKFLOWS_VERSION"],
                "--workflow-workers=8",
                "--pod-cleanup-workers=2",
            ],
            env=controller_env,
        )
        cluster.start(
            "argo-server",
            [
                str(found.argo),
                "server",
                f"--kubeconfig={cluster.kubeconfig}",
                "--namespaced",
                f"--namespace={cluster.namespace}",
                "--auth-mode=server",
                "--auth-mode=client",
                "--secure=false",
                f"--port={argo_port}",
                "--x-frame-options=DENY",
            ],
            env={"ARGO_NAMESPACE": cluster.namespace, **client_env},
        )
        cluster.start(
            "node-agent",
            [
                sys.executable,
                "-m",
                "tests.cluster.node_agent",
                f"--kubeconfig={cluster.kubeconfig}",
                f"--workdir={folder / 'node'}",
                f"--port={kubelet_port}",
                f"--cert={c / 'kubelet.crt'}",
                f"--key={c / 'kubelet.key'}",
                f"--pythonpath={pythonpath}",
            ],
            cwd=ROOT,
        )
        room_env = {
            **(room_env or {}),
            "HEADRACE_STATE_DIR": str(folder / "control-room"),
            "KUBECONFIG": str(cluster.kubeconfig),
            "HEADRACE_ARGO_NAMESPACE": cluster.namespace,
        }
        headrace = [str(Path(sys.executable).parent / "headrace")]
        cluster.start(
            "control-room", [*headrace, "control-room", "serve", f"--port={room_port}"], env=room_env, cwd=ROOT
        )
        cluster.start(
            "watcher", [*headrace, "control-room", "watch", f"--namespace={cluster.namespace}"], env=room_env, cwd=ROOT
        )
        _wait(
            "control room",
            lambda: httpx.get(f"{room_url}/healthz", timeout=2).status_code < 500,
            cluster,
            "control-room",
        )
        _wait(
            "argo server",
            lambda: httpx.get(f"{cluster.argo_url}/api/v1/version", timeout=2).status_code == 200,
            cluster,
            "argo-server",
            120,
        )
        _wait("node agent", lambda: "node agent ready" in cluster.log_of("node-agent"), cluster, "node-agent")
        _wait(
            "workflow-controller",
            lambda: "started" in cluster.log_of("workflow-controller").lower(),
            cluster,
            "workflow-controller",
        )
        yield cluster
    finally:
        cluster.stop()
