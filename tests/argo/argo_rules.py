"""Argo's own name rules, transcribed from ``workflow/validate/validate.go`` of Argo Workflows
(the same at v3.7.0 and v4.1.2), which the Argo Server and the controller apply at submit:

- ``maxCharsInObjectName`` 63 for Workflow and WorkflowTemplate names,
  ``maxCharsInCronWorkflowName`` 52 (workflows a cron creates get ``-<unix time>`` appended);
- ``validateWorkflowFieldNames``: templates, DAG tasks, inputs/outputs and arguments are each
  non-empty and unique within their list; a template or task name matches
  ``workflowFieldNameFmt`` ``[a-zA-Z0-9][-a-zA-Z0-9]*`` with at most ``workflowFieldMaxLength``
  128 characters; a parameter name matches ``paramOrArtifactNameRegex`` ``^[-a-zA-Z0-9_]+$``;
- ``validateDAG``: a task ``name cannot begin with a digit when using either 'depends' or
  'dependencies'``.

Our schemas cannot say any of this (the names are plain strings there), and the JSON the fake
servers accepted never checked it; so the tests apply these rules to every compiled object.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

WORKFLOW_FIELD_NAME = re.compile(r"^[a-zA-Z0-9][-a-zA-Z0-9]*$")
WORKFLOW_FIELD_MAX_LENGTH = 128
PARAM_OR_ARTIFACT_NAME = re.compile(r"^[-a-zA-Z0-9_]+$")
MAX_CHARS_IN_OBJECT_NAME = 63
MAX_CHARS_IN_CRON_WORKFLOW_NAME = 52
#: Characters the API server appends to ``generateName``.
GENERATED_SUFFIX = 5


def _field_names(where: str, names: list[str], *, parameters: bool) -> list[str]:
    found: list[str] = []
    for name in names:
        if not name:
            found.append(f"{where}: a name is empty")
        elif parameters and not PARAM_OR_ARTIFACT_NAME.match(name):
            found.append(f"{where}: parameter {name!r} is not [-a-zA-Z0-9_]+")
        elif not parameters and (len(name) > WORKFLOW_FIELD_MAX_LENGTH or not WORKFLOW_FIELD_NAME.match(name)):
            found.append(f"{where}: {name!r} is not [a-zA-Z0-9][-a-zA-Z0-9]* of at most 128 characters")
    for name, count in Counter(names).items():
        if count > 1:
            found.append(f"{where}: {name!r} is not unique")
    return found


def _parameters(where: str, holder: dict[str, Any] | None) -> list[str]:
    names = [p.get("name", "") for p in (holder or {}).get("parameters", [])]
    return _field_names(where, names, parameters=True)


def _object_name(obj: dict[str, Any]) -> list[str]:
    meta = obj["metadata"]
    name = meta.get("name") or meta.get("generateName", "") + "x" * GENERATED_SUFFIX
    limit = MAX_CHARS_IN_CRON_WORKFLOW_NAME if obj["kind"] == "CronWorkflow" else MAX_CHARS_IN_OBJECT_NAME
    if len(name) > limit:
        return [f"{obj['kind']} name {name!r} has {len(name)} characters; Argo allows {limit}"]
    return []


def errors(obj: dict[str, Any]) -> list[str]:
    """Every name in ``obj`` that Argo's validation refuses, one line each."""
    found = _object_name(obj)
    spec = obj["spec"]
    workflow = spec.get("workflowSpec", spec)
    found += _parameters("spec.arguments", workflow.get("arguments"))
    templates = workflow.get("templates", [])
    found += _field_names("spec.templates", [t.get("name", "") for t in templates], parameters=False)
    for template in templates:
        where = f"templates.{template.get('name')}"
        found += _parameters(f"{where}.inputs", template.get("inputs"))
        found += _parameters(f"{where}.outputs", template.get("outputs"))
        tasks = template.get("dag", {}).get("tasks", [])
        found += _field_names(f"{where}.tasks", [t.get("name", "") for t in tasks], parameters=False)
        for task in tasks:
            name = task.get("name", "")
            if (task.get("dependencies") or task.get("depends")) and name[:1].isdigit():
                found.append(f"{where}.tasks.{name}: name cannot begin with a digit when using dependencies")
            found += _parameters(f"{where}.tasks.{name}.arguments", task.get("arguments"))
    return found
