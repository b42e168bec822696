"""The kubelet and Argo's executor of one fake Node, for the cluster tests.

No container runtime runs here, so this agent plays the two parts of a node that a real
kube-apiserver and workflow-controller need from one:

* **kubelet**: registers its Node, binds pending pods to it (no scheduler runs), runs each pod's
  ``main`` container command as a local process in a directory of its own, kills it at the pod's
  memory limit and reports ``OOMKilled``/137 as the kubelet does, enforces
  ``activeDeadlineSeconds`` (``DeadlineExceeded``), finishes pods the API server marks for
  deletion, writes the pod status (phase, container states, exit codes, reasons) and serves
  ``/containerLogs`` over TLS on the Node's kubelet port, so ``pods/log`` (and ``headrace logs``)
  read what the process printed. An ``/exec`` that asks for a signal (how Argo's controller stops a
  pod) delivers the signal; nothing else is executed.
* **Argo's wait container**: reads the template from ``ARGO_TEMPLATE`` and reports its output
  parameters (``valueFrom.path``, default when the file is missing) in a ``WorkflowTaskResult``
  named after the node, labelled ``report-outputs-completed`` as ``argoexec wait`` does.

The memory limit is enforced by sampling the resident memory of the process tree (every 50 ms),
not by a cgroup: the test machines have no writable cgroup. A process that allocates past its
limit within one sample is still caught at the next one.

The kubelet's HTTP endpoints are in kubelet_http.py.

Run from the repository root: ``python -m tests.cluster.node_agent --kubeconfig K --workdir D
--port P --cert C --key K``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import datetime as dt
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.cluster.kubelet_http import serve

NODE_NAME = "headrace-node"
OOM_EXIT = 137
UNITS = {
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
    "k": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "T": 1000**4,
}


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def quantity_bytes(value: str | int | None) -> int | None:
    """A Kubernetes memory quantity in bytes (``512Mi``, ``1G``, ``1e9``)."""
    if value in (None, ""):
        return None
    text = str(value)
    for suffix in sorted(UNITS, key=len, reverse=True):
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * UNITS[suffix])
    return int(float(text))


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants (what a container's cgroup would count)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as handle:
                parent = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    total, todo = 0, [pid]
    page = os.sysconf("SC_PAGE_SIZE")
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/statm", encoding="ascii") as handle:
                total += int(handle.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            pass
        todo += children.get(current, [])
    return total


class Api:
    """The few Kubernetes API calls the agent makes, over the kubeconfig's server and token."""

    def __init__(self, kubeconfig: str) -> None:
        config = yaml.safe_load(Path(kubeconfig).read_text(encoding="utf-8"))
        cluster = config["clusters"][0]["cluster"]
        user = config["users"][0]["user"]
        self.server = cluster["server"].rstrip("/")
        ca = Path(kubeconfig).parent / "ca.crt"
        if "certificate-authority-data" in cluster:
            ca.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
        else:
            ca = Path(cluster["certificate-authority"])
        self.client = httpx.Client(
            base_url=self.server,
            headers={"Authorization": f"Bearer {user['token']}"},
            verify=ssl.create_default_context(cafile=str(ca)),
            timeout=30,
        )

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, path, **kwargs)

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:300]}")
        data: dict[str, Any] = response.json()
        return data


@dataclass
class Running:
    """One pod's main process and what the agent knows of it."""

    pod: dict[str, Any]
    root: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None
    reason: str = ""
    done: threading.Event = field(default_factory=threading.Event)


class Agent:
    def __init__(self, api: Api, workdir: Path, port: int, python: str, extra_path: str) -> None:
        self.api = api
        self.workdir = workdir
        self.port = port
        self.python = python
        self.extra_path = extra_path
        self.pods: dict[str, Running] = {}  # by uid
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    # ------------------------------------------------------------------ node

    def register(self) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": NODE_NAME, "labels": {"kubernetes.io/hostname": NODE_NAME}},
        }
        response = self.api.request("POST", "/api/v1/nodes", json=node)
        if response.status_code not in (201, 409):
            raise RuntimeError(f"register node: {response.status_code} {response.text[:300]}")
        self.heartbeat()

    def heartbeat(self) -> None:
        status = {
            "status": {
                "addresses": [
                    {"type": "InternalIP", "address": "127.0.0.1"},
                    {"type": "Hostname", "address": NODE_NAME},
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
                "capacity": {"cpu": "64", "memory": "256Gi", "pods": "500"},
                "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "500"},
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "headrace node agent",
                        "lastHeartbeatTime": now(),
                        "lastTransitionTime": now(),
                    }
                ],
            }
        }
        self.api.json(
            "PATCH",
            f"/api/v1/nodes/{NODE_NAME}/status",
            content=json.dumps(status),
            headers={"Content-Type": "application/merge-patch+json"},
        )

    # ------------------------------------------------------------------ the loop

    def loop(self) -> None:
        beat = time.monotonic()
        while not self.stopping.is_set():
            try:
                self.sync()
                if time.monotonic() - beat > 20:
                    self.heartbeat()
                    beat = time.monotonic()
            except Exception as error:
                print(f"node agent: {error}", file=sys.stderr, flush=True)
            self.stopping.wait(0.2)

    def sync(self) -> None:
        pods = self.api.json("GET", "/api/v1/pods")["items"]
        for pod in pods:
            meta, spec = pod["metadata"], pod["spec"]
            uid = meta["uid"]
            if meta.get("deletionTimestamp"):
                if spec.get("nodeName") == NODE_NAME:
                    self.finish_deleted(pod)
                continue
            if not spec.get("nodeName"):
                self.bind(pod)
            elif spec["nodeName"] == NODE_NAME and uid not in self.pods and pod["status"].get("phase") == "Pending":
                self.start(pod)

    def bind(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": NODE_NAME},
        }
        self.api.request("POST", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/binding", json=binding)

    def finish_deleted(self, pod: dict[str, Any]) -> None:
        """Graceful deletion: stop the process, then remove the pod for good (the kubelet's part)."""
        meta = pod["metadata"]
        running = self.pods.get(meta["uid"])
        if running is not None and running.process is not None and running.process.poll() is None:
            running.reason = running.reason or "Error"
            self.kill(running, signal.SIGTERM)
            running.done.wait(5)
            self.kill(running, signal.SIGKILL)
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": meta["uid"]},
        }
        self.api.request("DELETE", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}", json=body)

    @staticmethod
    def kill(running: Running, sig: int) -> None:
        if running.process is not None and running.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(running.process.pid, sig)

    # ------------------------------------------------------------------ one pod

    def start(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        root = self.workdir / "pods" / uid
        root.mkdir(parents=True, exist_ok=True)
        running = Running(pod=pod, root=root, log=root / "main.log")
        running.log.touch()
        self.pods[uid] = running
        threading.Thread(target=self.run_pod, args=(running,), name=f"pod-{uid}", daemon=True).start()

    def run_pod(self, running: Running) -> None:
        pod = running.pod
        try:
            self._run_pod(running)
        except Exception as error:
            print(f"node agent: pod {pod['metadata']['name']}: {error}", file=sys.stderr, flush=True)
            self.set_status(pod, "Failed", main=self.terminated(1, "Error", str(error)[:200]))
        finally:
            running.done.set()

    def _run_pod(self, running: Running) -> None:
        pod = running.pod
        main = next(c for c in pod["spec"]["containers"] if c["name"] == "main")
        env = self.environment(pod, main)
        template = json.loads(env.get("ARGO_TEMPLATE") or self.template_of(pod) or "{}")
        outputs = template.get("outputs") or {}
        mapped_dirs = sorted(
            {
                os.path.dirname(p["valueFrom"]["path"])
                for p in outputs.get("parameters") or []
                if "path" in (p.get("valueFrom") or {})
            },
            key=len,
            reverse=True,
        )
        argv = self.command(main, running.root, mapped_dirs)
        started = now()
        self.set_status(pod, "Running", main={"running": {"startedAt": started}}, started=started)
        self.init_task_result(pod)
        limit = quantity_bytes(((main.get("resources") or {}).get("limits") or {}).get("memory"))
        deadline = pod["spec"].get("activeDeadlineSeconds")
        with running.log.open("ab") as log:
            running.process = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=os.getcwd(),
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
            pump = threading.Thread(target=self.pump, args=(running.process, log), daemon=True)
            pump.start()
            begin = time.monotonic()
            while running.process.poll() is None:
                if limit is not None and tree_rss(running.process.pid) > limit:
                    running.reason = "OOMKilled"
                    self.kill(running, signal.SIGKILL)
                elif deadline is not None and time.monotonic() - begin > float(deadline):
                    running.reason = "DeadlineExceeded"
                    self.kill(running, signal.SIGKILL)
                time.sleep(0.05)
            pump.join(5)
        code = running.process.returncode
        code = 128 - code if code < 0 else code  # killed by a signal: 128 + signal number, as a runtime says
        if running.reason == "OOMKilled":
            code = OOM_EXIT
        self.report_outputs(pod, outputs, running.root)
        finished = self.terminated(code, running.reason or ("Completed" if code == 0 else "Error"), started=started)
        if running.reason == "DeadlineExceeded":
            self.set_status(
                pod,
                "Failed",
                main=finished,
                reason="DeadlineExceeded",
                message="Pod was active on the node longer than the specified deadline",
            )
        else:
            self.set_status(pod, "Succeeded" if code == 0 else "Failed", main=finished)

    @staticmethod
    def pump(process: subprocess.Popen[bytes], log: Any) -> None:
        """Copy the process's output into its log file, one timestamped line at a time."""
        assert process.stdout is not None
        for line in process.stdout:
            stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            log.write(stamp.encode() + b" " + line if line.endswith(b"\n") else stamp.encode() + b" " + line + b"\n")
            log.flush()

    def environment(self, pod: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
        """The container's environment: ``envFrom`` ConfigMaps/Secrets, then ``env`` entries."""
        ns = pod["metadata"]["namespace"]
        env: dict[str, str] = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root")}
        for source in container.get("envFrom") or []:
            for kind, path in (("configMapRef", "configmaps"), ("secretRef", "secrets")):
                ref = source.get(kind)
                if not ref:
                    continue
                response = self.api.request("GET", f"/api/v1/namespaces/{ns}/{path}/{ref['name']}")
                if response.status_code == 404 and ref.get("optional"):
                    continue
                data = response.json().get("data") or {}
                if kind == "secretRef":
                    data = {k: base64.b64decode(v).decode() for k, v in data.items()}
                env.update({source.get("prefix", "") + k: v for k, v in data.items()})
        fields = {
            "metadata.name": pod["metadata"]["name"],
            "metadata.namespace": ns,
            "metadata.uid": pod["metadata"]["uid"],
            "spec.nodeName": NODE_NAME,
            "status.podIP": "127.0.0.1",
        }
        for entry in container.get("env") or []:
            if "value" in entry:
                env[entry["name"]] = str(entry["value"])
            elif ((entry.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath") in fields:
                env[entry["name"]] = fields[entry["valueFrom"]["fieldRef"]["fieldPath"]]
        if self.extra_path:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (self.extra_path, env.get("PYTHONPATH", "")) if p)
        return env

    @staticmethod
    def template_of(pod: dict[str, Any]) -> str:
        for container in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]:
            for entry in container.get("env") or []:
                if entry["name"] == "ARGO_TEMPLATE":
                    return str(entry.get("value") or "")
        return ""

    def command(self, main: dict[str, Any], root: Path, mapped_dirs: list[str]) -> list[str]:
        """The user's command: Argo wraps it as ``argoexec emissary -- CMD...``; paths the outputs
        are read from are moved under the pod's own directory (its container filesystem)."""
        argv = [*(main.get("command") or []), *(main.get("args") or [])]
        if argv and argv[0].endswith("argoexec") and "--" in argv:
            argv = argv[argv.index("--") + 1 :]
        if argv and argv[0] in ("python", "python3"):
            argv[0] = self.python

        def moved(arg: str) -> str:
            for directory in mapped_dirs:
                if directory and directory != "/" and directory in arg:
                    arg = arg.replace(directory, f"{root}{directory}")
            return arg

        return [moved(arg) for arg in argv]

    # ------------------------------------------------------------------ reporting

    @staticmethod
    def terminated(code: int, reason: str, message: str = "", started: str = "") -> dict[str, Any]:
        state: dict[str, Any] = {"exitCode": code, "reason": reason, "finishedAt": now(), "startedAt": started or now()}
        if message:
            state["message"] = message
        return {"terminated": state}

    def set_status(
        self,
        pod: dict[str, Any],
        phase: str,
        *,
        main: dict[str, Any],
        started: str = "",
        reason: str = "",
        message: str = "",
    ) -> None:
        meta = pod["metadata"]
        done = phase in ("Succeeded", "Failed")
        wait_state = self.terminated(0, "Completed") if done else {"running": {"startedAt": started or now()}}

        def status_of(name: str, state: dict[str, Any]) -> dict[str, Any]:
            image = next((c["image"] for c in pod["spec"]["containers"] if c["name"] == name), "argoexec")
            return {
                "name": name,
                "state": state,
                "ready": "running" in state,
                "restartCount": 0,
                "image": image,
                "imageID": image,
                "containerID": f"headrace://{meta['uid']}-{name}",
                "started": "running" in state,
            }

        names = [c["name"] for c in pod["spec"]["containers"]]
        status: dict[str, Any] = {
            "phase": phase,
            "hostIP": "127.0.0.1",
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": started or pod["status"].get("startTime") or now(),
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now()},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now()},
                {"type": "Ready", "status": "False" if done else "True", "lastTransitionTime": now()},
                {"type": "ContainersReady", "status": "False" if done else "True", "lastTransitionTime": now()},
            ],
            "initContainerStatuses": [
                status_of(c["name"], self.terminated(0, "Completed")) for c in pod["spec"].get("initContainers") or []
            ],
            "containerStatuses": [status_of(n, main if n == "main" else wait_state) for n in names],
        }
        if reason:
            status["reason"] = reason
            status["message"] = message
        body = {"status": status}
        response = self.api.request(
            "PATCH",
            f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
            content=json.dumps(body),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        if response.status_code >= 400 and response.status_code != 404:
            raise RuntimeError(f"pod status {meta['name']}: {response.status_code} {response.text[:300]}")
        if started:
            pod["status"]["startTime"] = status["startTime"]

    @staticmethod
    def _node_id(pod: dict[str, Any]) -> str:
        meta = pod["metadata"]
        return str((meta.get("annotations") or {}).get("workflows.argoproj.io/node-id") or meta["name"])

    def _task_result_path(self, pod: dict[str, Any], name: str = "") -> str:
        ns = pod["metadata"]["namespace"]
        suffix = f"/{name}" if name else ""
        return f"/apis/argoproj.io/v1alpha1/namespaces/{ns}/workflowtaskresults{suffix}"

    def init_task_result(self, pod: dict[str, Any]) -> None:
        """``argoexec wait`` first creates an empty result, labelled not yet complete."""
        meta = pod["metadata"]
        workflow = (meta.get("labels") or {}).get("workflows.argoproj.io/workflow")
        if not workflow:
            return
        owner = next((o for o in meta.get("ownerReferences") or [] if o.get("kind") == "Workflow"), None)
        result = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "WorkflowTaskResult",
            "metadata": {
                "name": self._node_id(pod),
                "labels": {
                    "workflows.argoproj.io/workflow": workflow,
                    "workflows.argoproj.io/report-outputs-completed": "false",
                },
                "ownerReferences": [
                    {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "name": workflow, "uid": owner["uid"]}
                ]
                if owner
                else [],
            },
        }
        response = self.api.request("POST", self._task_result_path(pod), json=result)
        if response.status_code not in (201, 409):
            raise RuntimeError(f"task result: {response.status_code} {response.text[:300]}")

    def report_outputs(self, pod: dict[str, Any], outputs: dict[str, Any], root: Path) -> None:
        """The output parameters read from their files, and the result marked complete."""
        if not (pod["metadata"].get("labels") or {}).get("workflows.argoproj.io/workflow"):
            return
        reported = json.loads(json.dumps(outputs))
        for parameter in reported.get("parameters") or []:
            source = parameter.get("valueFrom") or {}
            if "path" not in source:
                continue
            path = Path(f"{root}{source['path']}")
            if path.is_file():
                parameter["value"] = path.read_text(encoding="utf-8").removesuffix("\n")
            elif "default" in source:
                parameter["value"] = source["default"]
        patch: dict[str, Any] = {
            "metadata": {"labels": {"workflows.argoproj.io/report-outputs-completed": "true"}},
        }
        if reported:
            patch["outputs"] = reported
        self.api.json(
            "PATCH",
            self._task_result_path(pod, self._node_id(pod)),
            content=json.dumps(patch),
            headers={"Content-Type": "application/merge-patch+json"},
        )

    # ------------------------------------------------------------------ kubelet endpoints

    def find(self, namespace: str, name: str) -> Running | None:
        for running in list(self.pods.values()):
            meta = running.pod["metadata"]
            if meta["namespace"] == namespace and meta["name"] == name:
                return running
        return None


def die_with_parent() -> None:
    """In a child before it runs (``preexec_fn``): the kernel kills it with SIGKILL when the process
    that started it dies, however that one ends, so no server or pod outlives a killed test run."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--pythonpath", default="", help="prepended to the PYTHONPATH of every process")
    args = parser.parse_args()
    agent = Agent(Api(args.kubeconfig), Path(args.workdir), args.port, args.python, args.pythonpath)
    serve(agent, args.cert, args.key)
    agent.register()

    def stop(signum: int, frame: Any) -> None:
        agent.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("node agent ready", flush=True)
    agent.loop()
    for running in list(agent.pods.values()):
        agent.kill(running, signal.SIGKILL)


if __name__ == "__main__":
    main()
