"""The compiled workflow's commands, run here as Argo would run them: the contract between the
compiler and the in-pod entrypoint (``run``, ``size``, ``exit-handler``) checked end to end.

A small emulator walks the DAG in dependency order, fills in Argo's variables (workflow name and
parameters, input parameters from upstream output-parameter files, ``retries``), runs each
template's container command as a real subprocess in a per-pod folder standing in for
``/tmp/headrace/outputs``, and reads the output parameters back from the files it declares.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from control_room.catalog import load_catalog
from steps.core.contract import SizingDecision, SizingTarget
from tests.argo.helpers import ROOT, compiled
from tests.control_room.conftest import TOKEN, serve

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OUTPUTS_DIR = "/tmp/headrace/outputs"
_SIMPLE = re.compile(r"\{\{([^=}][^}]*)\}\}")


class Emulator:
    """Just enough of Argo's DAG execution to run headrace's compiled templates locally.

    Nested DAG templates run with their own scope and their retryStrategy (the whole DAG again,
    with ``retries`` set); ``oom`` names pod nodes (``train(0).train``) the kernel kills instead
    of running them: they exit 137 and the pod Argo would leave behind goes through the control
    room's watcher into the store, as in the cluster. Pods reach the control room as they do in
    the cluster: over HTTP, at ``control_room`` (its environment).
    """

    def __init__(
        self,
        obj: dict[str, Any],
        work: Path,
        run_date: str,
        control_room: dict[str, str],
        oom: frozenset[str] = frozenset(),
    ) -> None:
        self.spec = obj["spec"]
        self.templates = {t["name"]: t for t in self.spec["templates"]}
        self.work = work
        self.oom = oom
        self.globals = {"workflow.name": "emulated-1"}
        arguments = {param["name"]: param["value"] for param in self.spec["arguments"]["parameters"]}
        self.entry_inputs = {**arguments, "run_date": run_date}
        self.globals |= {f"workflow.parameters.{name}": value for name, value in self.entry_inputs.items()}
        self.outputs: dict[str, dict[str, str]] = {}
        self.commands: dict[str, list[str]] = {}
        self.ran: list[tuple[str, int]] = []  # (node, exit code) in order
        self.env = {
            **os.environ,
            "HEADRACE_STATE_DIR": str(work / "state"),
            "HEADRACE_ARTIFACT_ROOT": str(work / "artifacts"),
            "PYTHONPATH": str(ROOT),
            **control_room,
        }

    def substitute(self, text: str, local: dict[str, str]) -> str:
        if "{{=" in text:
            text = text.replace("{{=asInt(retries) + 1}}", str(int(local["retries"]) + 1))
        return _SIMPLE.sub(lambda m: {**self.globals, **local}[m.group(1).strip()], text)

    def run_pod(self, node: str, template: dict[str, Any], inputs: dict[str, str], extra: dict[str, str]) -> int:
        pod_dir = self.work / "pods" / node
        local = {f"inputs.parameters.{k}": v for k, v in inputs.items()} | {"retries": "0"} | extra
        argv = [self.substitute(arg, local) for arg in template["container"]["command"] + template["container"]["args"]]
        argv = [arg.replace(OUTPUTS_DIR, str(pod_dir)) for arg in argv]
        argv[0] = sys.executable
        name = node.rsplit(".", 1)[-1].split("(")[0]
        self.commands[name] = argv
        patch = json.loads(self.substitute(template["podSpecPatch"], local)) if "podSpecPatch" in template else {}
        if node in self.oom:
            self.ran.append((node, 137))
            self.watch_oom_kill(node, template, patch)
            return 137
        result = subprocess.run(
            argv, cwd=ROOT, env={**self.env, "HEADRACE_PROFILE": "local"}, capture_output=True, text=True
        )
        self.ran.append((node, result.returncode))
        assert result.returncode == 0, f"{node}: {result.stderr[-3000:]}"
        declared = template.get("outputs", {}).get("parameters", [])
        self.outputs[name] = {
            p["name"]: (pod_dir / Path(p["valueFrom"]["path"]).name).read_text()
            if (pod_dir / Path(p["valueFrom"]["path"]).name).exists()
            else p["valueFrom"]["default"]
            for p in declared
        }
        return result.returncode

    def watch_oom_kill(self, node: str, template: dict[str, Any], patch: dict[str, Any]) -> None:
        """The OOM-killed pod as Kubernetes shows it, through the watcher into the control room."""
        from control_room.store import Store
        from control_room.watch.engine import WatchEngine
        from control_room.watch.record import recorder

        resources = dict(template["container"].get("resources") or {})
        for container in patch.get("containers", []):
            if container.get("name") == "main":
                resources = container.get("resources", resources)
        run = self.globals["workflow.name"]
        pod = {
            "metadata": {
                "name": f"{run}-{template['name']}-1",
                "labels": {
                    "workflows.argoproj.io/workflow": run,
                    **self.spec["podMetadata"]["labels"],
                    **template["metadata"]["labels"],
                },
                "annotations": {"workflows.argoproj.io/node-name": f"{run}.{node}"},
            },
            "spec": {"containers": [{"name": "main", "resources": resources}]},
            "status": {
                "phase": "Failed",
                "containerStatuses": [
                    {"name": "main", "state": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}
                ],
            },
        }
        store = Store.open(None, self.work / "state")
        try:
            record = recorder(store, None)
            events, observations = WatchEngine().apply_all("pod", "MODIFIED", pod)
            for event in events:
                record(event)
            for observation in observations:
                record.observe(observation)
        finally:
            store.close()

    def run_node(self, path: str, task: str, template_name: str, inputs: dict[str, str]) -> dict[str, str] | None:
        """One DAG task with its retries: its outputs, or None when every attempt failed."""
        template = self.templates[template_name]
        retried = "retryStrategy" in template
        for retry in range(int(template.get("retryStrategy", {}).get("limit", 0)) + 1):
            node = f"{path}{task}({retry})" if retried else f"{path}{task}"
            if "dag" in template:
                outputs = self.run_dag(template_name, inputs, node + ".", str(retry) if retried else None)
                if outputs is not None:
                    return outputs
            elif self.run_pod(node, template, inputs, {"retries": str(retry)}) == 0:
                return self.outputs[task]
        return None

    def run_dag(
        self, name: str, inputs: dict[str, str], path: str = "", retries: str | None = None
    ) -> dict[str, str] | None:
        template = self.templates[name]
        tasks = template["dag"]["tasks"]
        base = {f"inputs.parameters.{k}": v for k, v in inputs.items()}
        if retries is not None:
            base["retries"] = retries
        scope: dict[str, dict[str, str]] = {}
        while len(scope) < len(tasks):
            ready = [t for t in tasks if t["name"] not in scope and set(t.get("dependencies", [])) <= set(scope)]
            assert ready, "the DAG is stuck"
            for task in ready:
                local = base | {
                    f"tasks.{n}.outputs.parameters.{o}": v for n, values in scope.items() for o, v in values.items()
                }
                given = {
                    p["name"]: self.substitute(p["value"], local)
                    for p in task.get("arguments", {}).get("parameters", [])
                }
                outputs = self.run_node(path, task["name"], task["template"], given)
                if outputs is None:
                    return None
                scope[task["name"]] = outputs
        local = base | {
            f"tasks.{n}.outputs.parameters.{o}": v for n, values in scope.items() for o, v in values.items()
        }
        return {
            p["name"]: self.substitute(p["valueFrom"]["parameter"], local)
            for p in template.get("outputs", {}).get("parameters", [])
        }

    def run(self) -> None:
        assert self.run_dag(self.spec["entrypoint"], self.entry_inputs) is not None, f"the run failed: {self.ran}"
        failures = "[]"
        status = {"workflow.status": "Succeeded", "workflow.duration": "12.5", "workflow.failures": failures}
        self.run_pod("exit", self.templates[self.spec["onExit"]], {}, status)


@pytest.fixture(autouse=True)
def _in_project_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


@pytest.fixture
def control_room(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The control room service the pods report to, on the SQLite file the watcher records into."""
    (tmp_path / "state").mkdir()
    running = serve(f"sqlite:///{tmp_path / 'state' / 'control-room.db'}", tmp_path)
    yield {"HEADRACE_CONTROL_ROOM_URL": running.url, "HEADRACE_CONTROL_ROOM_TOKEN": TOKEN}
    running.stop()


def test_compiled_commands_run_in_dag_order_with_sizing_node_outputs_and_exit_handler(
    tmp_path: Path, control_room: dict[str, str]
) -> None:
    emulator = Emulator(compiled("cron_sized", "template"), tmp_path, "2026-11-01T18:00:00Z", control_room)
    emulator.run()
    sizing = emulator.outputs["size-train"]
    decision = SizingDecision.from_dict(json.loads(sizing["decision"]))
    patch = json.loads(sizing["pod-spec-patch"])
    if decision.cpu or decision.memory:
        assert patch["containers"][0]["name"] == "main"
    else:  # no pod sizes known: the task keeps its declared resources
        assert patch == {}
    assert decision.reason
    command = emulator.commands["train"]
    assert command[command.index("--sizing") + 1] == sizing["decision"]
    assert command[command.index("--attempt") + 1] == "1"
    assert decision.to_dict() == json.loads(command[command.index("--sizing") + 1])
    score = emulator.outputs["score"]
    assert set(score) == {"scores", "scores-bytes", "scores-rows", "metrics", "metrics-bytes", "metrics-rows"}
    assert "/cron-sized/emulated-1/score/metrics" in json.loads(score["metrics"])["uri"]
    extract = json.loads(emulator.outputs["extract"]["result"])
    assert emulator.outputs["extract"]["result-bytes"] == str(extract["bytes"])
    assert "exit" in emulator.commands


def test_an_oom_killed_sized_task_is_retried_with_a_fresh_sizing_one_size_up(
    tmp_path: Path, control_room: dict[str, str]
) -> None:
    emulator = Emulator(
        compiled("sized_retry"), tmp_path, "2026-11-01T18:00:00Z", control_room, oom=frozenset({"train(0).train"})
    )
    emulator.run()
    assert emulator.ran[1:5] == [
        ("train(0).size-train(0)", 0),
        ("train(0).train", 137),
        ("train(1).size-train(0)", 0),
        ("train(1).train", 0),
    ]
    from control_room.store import Store

    store = Store.open(None, tmp_path / "state")
    try:
        decisions = {
            d["attempt"]: d for d in store.decisions(pipeline="sized-retry", task="train", run_id="emulated-1")
        }
        observed = store.observations_of_run("sized-retry", "emulated-1")
    finally:
        store.close()
    # the watcher reports the OOM kill, the pod that succeeded reports itself (over HTTP)
    (oom,) = [o for o in observed if o["task"] == "train" and o["outcome"] == "oom"]
    assert (oom["attempt"], oom["memory"]) == (1, decisions[1]["memory"])
    assert [o["attempt"] for o in observed if o["task"] == "train" and o["outcome"] == "succeeded"] == [2]
    catalog = load_catalog()
    first = catalog.find(SizingTarget.POD, decisions[1]["instance_type"])
    second = catalog.find(SizingTarget.POD, decisions[2]["instance_type"])
    assert first is not None and second is not None and second.total_memory > first.total_memory
    assert "attempt 1 of run emulated-1 ran out of memory" in decisions[2]["reason"]
    command = emulator.commands["train"]  # the attempt that succeeded ran on the new size
    assert command[command.index("--attempt") + 1] == "2"
    assert (
        SizingDecision.from_dict(json.loads(command[command.index("--sizing") + 1])).instance_type
        == (decisions[2]["instance_type"])
    )
    assert json.loads(emulator.outputs["train"]["result"])["uri"].endswith("/sized-retry/emulated-1/train/result.json")
