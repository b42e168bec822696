"""The checks every compiled object must pass: Hera round trip and Argo's strict JSON schemas.

Hera's models drop fields they do not know, so a round trip alone misses a misspelled field;
the vendored strict schemas (``additionalProperties: false`` everywhere) catch it. Two releases
are checked: the newest vendored (v4.1.2) and the oldest headrace supports
(:data:`pipelines.argo.version.MIN_ARGO_VERSION`), so a field that only newer controllers know
fails here instead of being ignored by an older cluster.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from hera.workflows.models import CronWorkflow, Workflow, WorkflowTemplate

from pipelines.argo.version import MIN_ARGO_VERSION
from tests.argo import argo_rules, kube_rules

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
SCHEMA = SCHEMAS / "argo-workflows.strict.schema.json"
#: The oldest supported release's schema, as Argo publishes it (made strict by :func:`strict`).
OLDEST_SCHEMA = SCHEMAS / f"argo-workflows-v{MIN_ARGO_VERSION}.schema.json"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
MODELS: dict[str, Any] = {"Workflow": Workflow, "WorkflowTemplate": WorkflowTemplate, "CronWorkflow": CronWorkflow}


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """Argo's published schema made strict: unknown fields rejected wherever a definition lists
    its properties, IntOrString as string or integer (Argo's schema says string only)."""
    definitions = {
        name: {**item, "additionalProperties": False}
        if "properties" in item and "additionalProperties" not in item
        else item
        for name, item in schema["definitions"].items()
    }
    definitions[INT_OR_STRING] = {**definitions[INT_OR_STRING], "type": ["string", "integer"]}
    return {**schema, "definitions": definitions}


@cache
def _schema(path: Path) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema if path == SCHEMA else strict(schema)


def validator(schema: dict[str, Any], kind: str) -> jsonschema.protocols.Validator:
    root = {
        "$schema": schema["$schema"],
        "$ref": f"#/definitions/io.argoproj.workflow.v1alpha1.{kind}",
        "definitions": schema["definitions"],
    }
    validator_class = jsonschema.validators.validator_for(root)
    return validator_class(root)


@cache
def _validator(path: Path, kind: str) -> jsonschema.protocols.Validator:
    return validator(_schema(path), kind)


def errors_against(schema: dict[str, Any] | Path, obj: dict[str, Any]) -> list[str]:
    """Every place ``obj`` breaks ``schema`` (a vendored file or a schema dict)."""
    checker = _validator(schema, obj["kind"]) if isinstance(schema, Path) else validator(schema, obj["kind"])
    return sorted(f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in checker.iter_errors(obj))


def schema_errors(obj: dict[str, Any]) -> list[str]:
    """Every place ``obj`` breaks the strict schema of the newest vendored Argo release or of the
    oldest supported one, as ``path: message`` lines (the oldest marked with its version)."""
    oldest = [f"v{MIN_ARGO_VERSION} {line}" for line in errors_against(OLDEST_SCHEMA, obj)]
    return errors_against(SCHEMA, obj) + oldest


def hera_round_trip(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` parsed into Hera's model of its kind and dumped back."""
    model = MODELS[obj["kind"]].model_validate(obj)
    dumped: dict[str, Any] = model.model_dump(by_alias=True, exclude_none=True)
    return dumped


def assert_valid_argo(obj: dict[str, Any]) -> None:
    assert hera_round_trip(obj) == obj, "Hera's models changed the object (a field it does not know?)"
    assert schema_errors(obj) == []
    assert reference_errors(obj) == []
    assert argo_rules.errors(obj) == []
    assert kube_rules.errors(obj) == []


_TAG = re.compile(r"\{\{\s*(=?)([^}]*?)\s*\}\}")
_EXIT_ONLY = ("workflow.status", "workflow.failures")


def _tags(value: Any) -> list[tuple[bool, str]]:
    """Every ``{{...}}`` tag inside ``value``: (is expression, body)."""
    text = json.dumps(value)
    return [(bool(match.group(1)), match.group(2)) for match in _TAG.finditer(text)]


def reference_errors(obj: dict[str, Any]) -> list[str]:
    """What Argo's own validation would reject that no schema sees: templates, tasks, inputs,
    outputs and variables that do not resolve. (Argo runs this at submit; we have no cluster.)"""
    if obj["kind"] == "CronWorkflow":
        return []
    spec = obj["spec"]
    templates = {t["name"]: t for t in spec["templates"]}
    workflow_params = {p["name"] for p in spec.get("arguments", {}).get("parameters", [])}
    errors: list[str] = []
    for field in ("entrypoint", "onExit"):
        if spec.get(field) not in templates:
            errors.append(f"spec.{field} {spec.get(field)!r} is no template")
    entry_inputs = {
        p["name"] for p in templates.get(spec.get("entrypoint"), {}).get("inputs", {}).get("parameters", [])
    }
    if not entry_inputs <= workflow_params:
        errors.append(f"the entrypoint's inputs {sorted(entry_inputs - workflow_params)} are no workflow arguments")
    for name, template in templates.items():
        inputs = {p["name"] for p in template.get("inputs", {}).get("parameters", [])}
        body = {k: v for k, v in template.items() if k in ("container", "podSpecPatch")}
        for expression, tag in _tags(body):
            if expression:
                if "retries" in tag and "retryStrategy" not in template:
                    errors.append(f"template {name}: uses retries without a retryStrategy")
                continue
            if tag.startswith("inputs.parameters."):
                if tag.removeprefix("inputs.parameters.") not in inputs:
                    errors.append(f"template {name}: {{{{{tag}}}}} is not an input")
            elif tag.startswith("workflow.parameters."):
                if tag.removeprefix("workflow.parameters.") not in workflow_params:
                    errors.append(f"template {name}: {{{{{tag}}}}} is not a workflow parameter")
            elif tag in _EXIT_ONLY:
                if name != spec.get("onExit"):
                    errors.append(f"template {name}: {{{{{tag}}}}} exists only in the exit handler")
            elif tag not in ("workflow.name", "workflow.duration", "retries"):
                errors.append(f"template {name}: unknown variable {{{{{tag}}}}}")
        if "dag" in template:
            errors += _dag_errors(name, template["dag"]["tasks"], templates, inputs, "retryStrategy" in template)
            errors += _dag_output_errors(name, template)
    return errors


def _dag_output_errors(dag: str, template: dict[str, Any]) -> list[str]:
    """A DAG template's output parameters must read an output of one of its own tasks."""
    errors: list[str] = []
    tasks = {t["name"] for t in template["dag"]["tasks"]}
    for param in template.get("outputs", {}).get("parameters", []):
        source = param.get("valueFrom", {}).get("parameter", "")
        tags = _tags(source)
        parts = tags[0][1].split(".") if len(tags) == 1 and not tags[0][0] else []
        if len(parts) != 5 or parts[0] != "tasks" or parts[1] not in tasks or parts[2:4] != ["outputs", "parameters"]:
            errors.append(f"dag {dag}: output {param.get('name')} reads {source!r}, no output of its tasks")
    return errors


def _dag_errors(
    dag: str, tasks: list[dict[str, Any]], templates: dict[str, Any], dag_inputs: set[str], retried: bool = False
) -> list[str]:
    errors: list[str] = []
    by_name = {t["name"]: t for t in tasks}
    if len(by_name) != len(tasks):
        errors.append(f"dag {dag}: task names repeat")

    def ancestors(name: str, seen: frozenset[str] = frozenset()) -> set[str]:
        if name in seen:
            errors.append(f"dag {dag}: cycle through {name}")
            return set()
        found: set[str] = set()
        for dependency in by_name[name].get("dependencies", []):
            if dependency not in by_name:
                errors.append(f"dag {dag}, task {name}: depends on unknown task {dependency}")
                continue
            found |= {dependency, *ancestors(dependency, seen | {name})}
        return found

    for name, task in by_name.items():
        template = templates.get(task["template"])
        if template is None:
            errors.append(f"dag {dag}, task {name}: no template {task['template']}")
            continue
        wanted = {p["name"] for p in template.get("inputs", {}).get("parameters", [])}
        given = {p["name"]: p.get("value", "") for p in task.get("arguments", {}).get("parameters", [])}
        if set(given) != wanted:
            errors.append(f"dag {dag}, task {name}: arguments {sorted(given)} but inputs {sorted(wanted)}")
        before = ancestors(name)
        for expression, tag in _tags(list(given.values())):
            parts = tag.split(".")
            if expression and "retries" in tag:
                if not retried:
                    errors.append(f"dag {dag}, task {name}: uses retries without a retryStrategy")
                continue
            if tag.startswith("inputs.parameters.") and not expression:
                if tag.removeprefix("inputs.parameters.") not in dag_inputs:
                    errors.append(f"dag {dag}, task {name}: {{{{{tag}}}}} is not an input of the DAG")
                continue
            if expression or parts[0] != "tasks" or len(parts) != 5 or parts[2:4] != ["outputs", "parameters"]:
                errors.append(f"dag {dag}, task {name}: unexpected argument {{{{{tag}}}}}")
                continue
            source, output = parts[1], parts[4]
            if source not in before:
                errors.append(f"dag {dag}, task {name}: reads {source}, which it does not wait for")
            elif output not in {p["name"] for p in templates[by_name[source]["template"]]["outputs"]["parameters"]}:
                errors.append(f"dag {dag}, task {name}: {source} has no output {output}")
    return errors
