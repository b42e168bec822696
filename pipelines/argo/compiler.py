"""The compiler's entry points: validate, then build the Hera object of the chosen kind."""

from __future__ import annotations

from typing import Any

from hera.workflows import CronWorkflow, Workflow, WorkflowTemplate

from pipelines.argo.commands import image_spec
from pipelines.argo.kinds import KINDS, Kind
from pipelines.argo.render import collector_paused
from pipelines.argo.schedule import cron_workflow
from pipelines.argo.workflow import workflow, workflow_template
from pipelines.graph import Pipeline
from steps.core.errors import UserError
from steps.core.settings import Settings


def build(
    pipeline: Pipeline, *, spec: str, kind: Kind, settings: Settings
) -> Workflow | WorkflowTemplate | CronWorkflow:
    """The Hera object for ``pipeline``; ``spec`` is the ``MODULE:PIPELINE`` the user gave (a
    path spec is turned into the dotted module the image imports)."""
    if kind not in KINDS:
        raise UserError(f"pipeline {pipeline.name}: kind {kind!r} is not one of {', '.join(KINDS)}")
    pipeline.check()
    if kind == "cron":
        return cron_workflow(pipeline, settings)
    in_image = image_spec(spec)
    if kind == "template":
        return workflow_template(pipeline, in_image, settings)
    return workflow(pipeline, in_image, settings)


def compile_pipeline(pipeline: Pipeline, *, spec: str, kind: Kind = "workflow", settings: Settings) -> dict[str, Any]:
    """The Argo object for ``pipeline`` as a plain dict (camelCase keys, no empty fields)."""
    with collector_paused():
        result: dict[str, Any] = build(pipeline, spec=spec, kind=kind, settings=settings).to_dict()
    return result
