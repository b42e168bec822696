"""The checks every compiled object must pass: Hera round trip and Argo's strict JSON schema.

Hera's models drop fields they do not know, so a round trip alone misses a misspelled field;
the vendored strict schema (``additionalProperties: false`` everywhere, Argo v4.1.2) catches it.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from hera.workflows.models import CronWorkflow, Workflow, WorkflowTemplate

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "argo-workflows.strict.schema.json"
MODELS: dict[str, Any] = {"Workflow": Workflow, "WorkflowTemplate": WorkflowTemplate, "CronWorkflow": CronWorkflow}


@cache
def _validator(kind: str) -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text())
    root = {
        "$schema": schema["$schema"],
        "$ref": f"#/definitions/io.argoproj.workflow.v1alpha1.{kind}",
        "definitions": schema["definitions"],
    }
    validator_class = jsonschema.validators.validator_for(root)
    return validator_class(root)  # type: ignore[no-any-return]


def schema_errors(obj: dict[str, Any]) -> list[str]:
    """Every place ``obj`` breaks Argo's strict schema, as ``path: message`` lines."""
    errors = _validator(obj["kind"]).iter_errors(obj)
    return sorted(f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in errors)


def hera_round_trip(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` parsed into Hera's model of its kind and dumped back."""
    model = MODELS[obj["kind"]].model_validate(obj)
    dumped: dict[str, Any] = model.model_dump(by_alias=True, exclude_none=True)
    return dumped


def assert_valid_argo(obj: dict[str, Any]) -> None:
    assert hera_round_trip(obj) == obj, "Hera's models changed the object (a field it does not know?)"
    assert schema_errors(obj) == []
