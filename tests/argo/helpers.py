"""Small accessors for compiled objects, so tests read like what they check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.argo import Kind, compile_pipeline
from pipelines.graph import Pipeline
from steps.core.settings import Settings
from steps.runtime.loader import load_object

ROOT = Path(__file__).resolve().parents[2]
PIPELINES = Path(__file__).resolve().parent / "pipelines"


def load(name: str) -> Pipeline:
    pipeline = load_object(f"{PIPELINES / name}.py:pipeline")
    assert isinstance(pipeline, Pipeline)
    return pipeline


def compiled(name: str, kind: Kind = "workflow", settings: Settings | None = None) -> dict[str, Any]:
    """The compiled object of ``tests/argo/pipelines/<name>.py``, with the spec a user would type."""
    return compile_pipeline(
        load(name), spec=f"tests/argo/pipelines/{name}.py:pipeline", kind=kind, settings=settings or Settings()
    )


def template(obj: dict[str, Any], name: str) -> dict[str, Any]:
    for item in obj["spec"]["templates"]:
        if item["name"] == name:
            return dict(item)
    raise AssertionError(f"no template {name}; templates: {[t['name'] for t in obj['spec']['templates']]}")


def dag_task(obj: dict[str, Any], name: str) -> dict[str, Any]:
    for item in template(obj, obj["spec"]["entrypoint"])["dag"]["tasks"]:
        if item["name"] == name:
            return dict(item)
    raise AssertionError(f"no DAG task {name}")


def arguments(obj: dict[str, Any], name: str) -> dict[str, str]:
    return {p["name"]: p["value"] for p in dag_task(obj, name).get("arguments", {}).get("parameters", [])}


def args(obj: dict[str, Any], name: str) -> list[str]:
    return list(template(obj, name)["container"]["args"])
