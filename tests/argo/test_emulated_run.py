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
from pathlib import Path
from typing import Any

import pytest

from steps.contract import SizingDecision
from tests.argo.helpers import ROOT, compiled

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OUTPUTS_DIR = "/tmp/headrace/outputs"
_SIMPLE = re.compile(r"\{\{([^=}][^}]*)\}\}")


class Emulator:
    """Just enough of Argo's DAG execution to run headrace's compiled templates locally."""

    def __init__(self, obj: dict[str, Any], work: Path, run_date: str) -> None:
        self.spec = obj["spec"]
        self.templates = {t["name"]: t for t in self.spec["templates"]}
        self.work = work
        self.globals = {"workflow.name": "emulated-1"}
        arguments = {param["name"]: param["value"] for param in self.spec["arguments"]["parameters"]}
        self.dag_inputs = {f"inputs.parameters.{k}": v for k, v in {**arguments, "run_date": run_date}.items()}
        self.outputs: dict[str, dict[str, str]] = {}
        self.commands: dict[str, list[str]] = {}
        self.env = {
            **os.environ,
            "HEADRACE_STATE_DIR": str(work / "state"),
            "HEADRACE_ARTIFACT_ROOT": str(work / "artifacts"),
            "PYTHONPATH": str(ROOT),
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
        self.commands[node] = argv
        if "podSpecPatch" in template:
            json.loads(self.substitute(template["podSpecPatch"], local))  # Argo parses it as JSON/YAML
        result = subprocess.run(
            argv, cwd=ROOT, env={**self.env, "HEADRACE_PROFILE": "local"}, capture_output=True, text=True
        )
        assert result.returncode == 0, f"{node}: {result.stderr[-3000:]}"
        declared = template.get("outputs", {}).get("parameters", [])
        self.outputs[node] = {
            p["name"]: (pod_dir / Path(p["valueFrom"]["path"]).name).read_text()
            if (pod_dir / Path(p["valueFrom"]["path"]).name).exists()
            else p["valueFrom"]["default"]
            for p in declared
        }
        return result.returncode

    def run(self) -> None:
        tasks = self.templates[self.spec["entrypoint"]]["dag"]["tasks"]
        done: set[str] = set()
        while len(done) < len(tasks):
            ready = [t for t in tasks if t["name"] not in done and set(t.get("dependencies", [])) <= done]
            assert ready, "the DAG is stuck"
            for task in ready:
                local = dict(self.dag_inputs) | {
                    f"tasks.{n}.outputs.parameters.{o}": v
                    for n, values in self.outputs.items()
                    for o, v in values.items()
                }
                inputs = {
                    p["name"]: self.substitute(p["value"], local)
                    for p in task.get("arguments", {}).get("parameters", [])
                }
                self.run_pod(task["name"], self.templates[task["template"]], inputs, {})
                done.add(task["name"])
        failures = "[]"
        status = {"workflow.status": "Succeeded", "workflow.duration": "12.5", "workflow.failures": failures}
        self.run_pod("exit", self.templates[self.spec["onExit"]], {}, status)


@pytest.fixture(autouse=True)
def _in_project_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def test_compiled_commands_run_in_dag_order_with_sizing_node_outputs_and_exit_handler(tmp_path: Path) -> None:
    emulator = Emulator(compiled("cron_sized", "template"), tmp_path, "2026-11-01T18:00:00Z")
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
