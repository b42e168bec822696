"""The image: multi-stage, non-root, copies what exists, and its layout runs the compiled step command."""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.manifests.kustomize import build, load_yaml_documents

ROOT = Path(__file__).resolve().parents[2]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def ignored(path: str) -> bool:
    patterns = [
        p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip() and not p.startswith("#")
    ]
    return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path.split("/")[0], p) for p in patterns)


def test_the_image_is_built_in_stages_and_runs_as_a_non_root_user() -> None:
    steps = instructions()
    assert sum(word == "FROM" for word, _ in steps) >= 2
    assert any(word == "COPY" and args.startswith("--from=build") for word, args in final_stage())
    users = [args for word, args in final_stage() if word == "USER"]
    assert users, "the final stage sets USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "a numeric non-root uid, so runAsNonRoot can verify it"
    deployment = next(o for o in build(ROOT / "manifests" / "base") if o["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(uid)
    assert not any(word == "ADD" for word, _ in steps), "COPY only: ADD fetches URLs and unpacks archives"
    assert all(":latest" not in args for word, args in steps if word == "FROM")


def test_every_copied_path_exists_and_is_not_docker_ignored() -> None:
    for word, args in instructions():
        if word != "COPY" or args.startswith("--from"):
            continue
        sources = [part for part in args.split() if not part.startswith("--")][:-1]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such path"
            assert not ignored(source), f"COPY {source}: excluded by .dockerignore"
    assert ignored(".venv") and ignored("tests") and ignored(".git")


def test_the_default_command_serves_the_control_room_like_the_deployment() -> None:
    cmd = next(args for word, args in reversed(final_stage()) if word == "CMD")
    deployment = next(o for o in build(ROOT / "manifests" / "base") if o["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    import json

    assert json.loads(cmd) == container["command"]
    assert container["command"][:3] == ["headrace", "control-room", "serve"]


@pytest.mark.integration
def test_the_image_layout_runs_a_rendered_step_command(tmp_path: Path) -> None:
    """Copy what the final stage copies into the working directory, then run the first task's
    container command from the rendered WorkflowTemplate, placeholders filled as Argo would."""
    workdir = tmp_path / "app"
    workdir.mkdir()
    for word, args in final_stage():
        if word == "COPY" and not args.startswith("--from"):
            source = next(p for p in args.split() if not p.startswith("--"))
            shutil.copytree(ROOT / source, workdir / source, ignore=shutil.ignore_patterns("__pycache__"))
    template = next(
        d
        for d in load_yaml_documents(ROOT / "manifests" / "pipelines" / "recipe-stream.yaml")
        if d["kind"] == "WorkflowTemplate"
    )
    dag = next(t for t in template["spec"]["templates"] if "dag" in t)
    first = next(t for t in dag["dag"]["tasks"] if not t.get("dependencies"))
    task_template = next(t for t in template["spec"]["templates"] if t["name"] == first["template"])
    container = task_template["container"]
    outputs = tmp_path / "outputs"
    workflow_values = {p["name"]: str(p.get("value", "")) for p in template["spec"]["arguments"]["parameters"]}
    workflow_values["run_date"] = "2026-11-01"

    def fill(text: str, scope: str, values: dict[str, str]) -> str:
        for name, value in values.items():
            text = text.replace(f"{{{{{scope}.parameters.{name}}}}}", value)
        return text

    def declared_inputs(tmpl: dict[str, Any], outer: dict[str, str]) -> dict[str, str]:
        return {
            p["name"]: fill(str(p.get("value", outer.get(p["name"], ""))), "workflow", workflow_values)
            for p in (tmpl.get("inputs") or {}).get("parameters") or []
        }

    # Argo's substitution: workflow arguments feed the entrypoint DAG's inputs (by name), the DAG
    # task's arguments read those, and the task template's inputs receive them.
    dag_inputs = declared_inputs(dag, workflow_values)
    inputs = declared_inputs(task_template, {})
    for argument in (first.get("arguments") or {}).get("parameters") or []:
        value = fill(str(argument.get("value", "")), "workflow", workflow_values)
        inputs[argument["name"]] = fill(value, "inputs", dag_inputs)
    argv = []
    for arg in container["command"] + container["args"]:
        arg = arg.replace("{{workflow.name}}", "recipe-stream-abcde").replace("/tmp/headrace/outputs", str(outputs))
        argv.append(fill(fill(arg, "workflow", workflow_values), "inputs", inputs))
    assert argv[:3] == ["python", "-m", "steps"] and "{{" not in " ".join(argv)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_")}
    env.update(HEADRACE_STATE_DIR=str(tmp_path / "state"), HEADRACE_PROFILE="local", PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run(
        [sys.executable, *argv[1:]], cwd=workdir, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (outputs / "result").is_file() and int((outputs / "result-bytes").read_text()) > 0
