"""The Argo compiler: a :class:`pipelines.graph.Pipeline` to Workflow, WorkflowTemplate or
CronWorkflow, built through Hera and rendered as deterministic YAML.

Public surface (everything else in this package is internal)::

    compile_pipeline(pipeline, spec="examples/recipe_stream:pipeline", kind="workflow", settings=s) -> dict
    build(...)   -> the Hera object (Workflow / WorkflowTemplate / CronWorkflow), e.g. to submit
    to_yaml(obj) -> str, byte-identical for the same object

Concerns are split by module: :mod:`.commands` (argv of each pod), :mod:`.templates` (task
containers), :mod:`.resources`, :mod:`.sizing` (sizing nodes), :mod:`.exit_handler`,
:mod:`.dag`, :mod:`.workflow` (the shared spec), :mod:`.schedule` (CronWorkflow),
:mod:`.render` (YAML). The pipeline is validated first; a broken one raises
:class:`pipelines.graph.PipelineInvalid` listing every problem.
"""

from __future__ import annotations

from typing import Any, Literal

from hera.workflows import CronWorkflow, Workflow, WorkflowTemplate

from pipelines.argo.commands import image_spec
from pipelines.argo.render import to_yaml
from pipelines.argo.schedule import cron_workflow
from pipelines.argo.workflow import workflow, workflow_template
from pipelines.graph import Pipeline
from steps.errors import UserError
from steps.settings import Settings

Kind = Literal["workflow", "template", "cron"]
KINDS: tuple[Kind, ...] = ("workflow", "template", "cron")


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
    result: dict[str, Any] = build(pipeline, spec=spec, kind=kind, settings=settings).to_dict()
    return result


__all__ = ["KINDS", "Kind", "build", "compile_pipeline", "image_spec", "to_yaml"]
