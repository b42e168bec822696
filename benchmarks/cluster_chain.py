"""Submit-to-Succeeded time of a ten-task chain on the real Argo controller, with and without
``sizing="auto"`` on every task.

Starts the control plane of the cluster tests (tests/cluster/build first: kube-apiserver and Argo
built from their Go modules, etcd, the node agent that runs each pod's ``python -m steps`` as a
local process, a control room), submits ``tests/cluster/pipelines/cluster_ten.py`` (``plain``
and ``sized``) through ``headrace submit`` and reads the Workflow from the API server until it
has succeeded. "per sized task" is (sized - plain) / 10: what one sizing node (a pod that asks
the control room) and the nested DAG around it add to a task on this controller.

The figures include the controller's own pacing (it requeues a workflow a few seconds after each
change) and the agent's process start (a fresh interpreter per pod, as in a container).

``--requeue`` is how soon the controller looks at a workflow again after a pod changes (Argo's
``DEFAULT_REQUEUE_TIME``): 1s as in the cluster tests and Argo's own end-to-end tests, 10s by
default on a real installation.

    .venv/bin/python benchmarks/cluster_chain.py [--repeat 5] [--requeue 10s]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.cluster import control_plane  # noqa: E402 - the repository root goes on the path first

PIPELINES = ROOT / "tests" / "cluster" / "pipelines"


def run_once(cluster: control_plane.Cluster, spec: str) -> float:
    from typer.testing import CliRunner

    from pipelines.cli import app

    started = time.monotonic()
    result = CliRunner().invoke(app, ["submit", spec], catch_exceptions=False)
    match = re.search(r"submitted (\S+)", result.output)
    if result.exit_code != 0 or not match:
        raise SystemExit(f"submit {spec} failed: {result.output}")
    name = match.group(1)
    with cluster.api() as api:
        while True:
            found = api.get(f"/apis/argoproj.io/v1alpha1/namespaces/{cluster.namespace}/workflows/{name}").json()
            phase = found.get("status", {}).get("phase")
            if phase == "Succeeded":
                return time.monotonic() - started
            if phase in ("Failed", "Error"):
                raise SystemExit(f"{name}: {phase} {found['status'].get('message', '')}")
            time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--requeue", default="1s", help="the controller's DEFAULT_REQUEUE_TIME")
    args = parser.parse_args()
    absent = control_plane.missing()
    if absent:
        raise SystemExit(f"cluster benchmark: {absent}")
    folder = Path(tempfile.mkdtemp(prefix="headrace-cluster-bench-"))
    pod_env = {"HEADRACE_ARTIFACT_ROOT": str(folder / "artifacts"), "HEADRACE_STATE_DIR": str(folder / "state")}
    load_before = os.getloadavg()[0]
    with control_plane.running(
        folder / "cluster", pod_env=pod_env, pythonpath=str(PIPELINES), requeue_time=args.requeue
    ) as cluster:
        os.environ.update(
            {
                "KUBECONFIG": str(cluster.kubeconfig),
                "ARGO_SERVER": cluster.argo_url,
                "ARGO_NAMESPACE": cluster.namespace,
                "HEADRACE_ARGO_PROFILE": "local",
                "HEADRACE_IMAGE": "headrace:bench",
                "HEADRACE_STATE_DIR": str(folder / "cli-state"),
            }
        )
        os.chdir(PIPELINES)
        sys.path.insert(0, str(PIPELINES))
        times: dict[str, list[float]] = {"plain": [], "sized": []}
        for _ in range(args.repeat):
            for variant in times:
                times[variant].append(run_once(cluster, f"cluster_ten:{variant}"))
    report(times, args.requeue, load_before, os.getloadavg()[0])


def report(times: dict[str, list[float]], requeue: str, load_before: float, load_after: float) -> None:
    """Median and spread (min-max) of each variant, per run and per task, and what a sized task adds."""
    plain, sized = statistics.median(times["plain"]), statistics.median(times["sized"])
    runs = len(times["plain"])
    print(
        f"ten-task chain, submit to Succeeded: {runs} runs each, controller requeue {requeue}, "
        f"{os.cpu_count()} cores, load average {load_before:.1f} before / {load_after:.1f} after"
    )
    print(f"{'variant':<28}{'median s':>10}{'min s':>8}{'max s':>8}{'s/task':>8}")
    for label, variant in (("declared resources", "plain"), ("sizing=auto on every task", "sized")):
        values = times[variant]
        middle = statistics.median(values)
        print(f"{label:<28}{middle:>10.1f}{min(values):>8.1f}{max(values):>8.1f}{middle / 10:>8.2f}")
    print(f"{'added per sized task':<28}{(sized - plain) / 10:>10.2f}")


if __name__ == "__main__":
    main()
