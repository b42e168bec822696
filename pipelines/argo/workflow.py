"""The workflow spec shared by the three kinds: templates, parameters, labels, clean-up.

Clean-up choices (callers may rely on them):

- ``ttlStrategy``: a succeeded workflow is kept a day (enough to look at it in the UI), a failed
  one a week (enough to read its logs and resume it). Nothing is kept forever: Argo objects in
  etcd are not an archive; the control room keeps the history.
- ``podGC: OnPodSuccess`` with a 10-minute delay: succeeded pods go soon after (their outputs
  are in the artifact store and the control room), failed pods stay with the workflow so their
  logs remain readable until the TTL removes everything.

Pods run as ``headrace-workflow`` (the least-privilege ServiceAccount of ``manifests/base``)
unless the pipeline names its own, as the image's non-root user (10001) with the RuntimeDefault
seccomp profile, so ``headrace compile`` output applied by hand runs like ``headrace submit``.
"""

from __future__ import annotations

from typing import Any

from hera.workflows import Workflow, WorkflowTemplate
from hera.workflows.models import (
    Arguments,
    Metadata,
    Parameter,
    PodGC,
    PodSecurityContext,
    SeccompProfile,
    Template,
    TTLStrategy,
    WorkflowMetadata,
)

from pipelines.argo import dag, exit_handler, sizing
from pipelines.argo.templates import PodEnvironment, task_template
from pipelines.graph import DEFAULT_IMAGE, Pipeline
from steps.core.naming import PIPELINE_LABEL
from steps.core.settings import Settings

TTL = TTLStrategy(seconds_after_success=86_400, seconds_after_failure=7 * 86_400)
POD_GC = PodGC(strategy="OnPodSuccess", delete_delay_duration="10m")
WORKFLOW_SERVICE_ACCOUNT = "headrace-workflow"
#: The image's user (Dockerfile ``USER 10001:10001``); steps write only under /tmp.
SECURITY_CONTEXT = PodSecurityContext(
    run_as_non_root=True,
    run_as_user=10001,
    run_as_group=10001,
    seccomp_profile=SeccompProfile(type="RuntimeDefault"),
)


def environment(pipeline: Pipeline, settings: Settings) -> PodEnvironment:
    return PodEnvironment(
        image=pipeline.image or settings.image or DEFAULT_IMAGE,
        profile=settings.argo_profile or "aws",
    )


def labels(pipeline: Pipeline) -> dict[str, str]:
    """The pipeline's labels; ``headrace.dev/pipeline`` always names it (the watcher relies on it)."""
    return {**pipeline.labels, PIPELINE_LABEL: pipeline.name}


def templates(pipeline: Pipeline, spec: str, env: PodEnvironment) -> list[Template]:
    """The DAG, then each task's template (a sized task's nested DAG and sizing node first), then
    the exit handler."""
    found: list[Template] = [dag.dag_template(pipeline)]
    for task in pipeline.tasks.values():
        if task.sizing == "auto":
            found.append(sizing.attempt_template(pipeline, task))
            found.append(sizing.sizing_template(task, spec, env))
        found.append(task_template(pipeline, task, spec, env))
    found.append(exit_handler.exit_template(spec, env))
    return found


def parameter_value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def arguments(pipeline: Pipeline) -> Arguments:
    return Arguments(
        parameters=[
            Parameter(name=name, value=parameter_value(param.default), description=param.description or None)
            for name, param in pipeline.params.items()
        ]
    )


def spec_fields(pipeline: Pipeline, spec: str, settings: Settings) -> dict[str, Any]:
    """Keyword arguments of Hera's Workflow/WorkflowTemplate shared by every kind."""
    env = environment(pipeline, settings)
    return dict(
        namespace=pipeline.namespace or settings.argo_namespace or None,
        labels=labels(pipeline),
        annotations={"workflows.argoproj.io/description": pipeline.description} if pipeline.description else None,
        entrypoint=dag.NAME,
        on_exit=exit_handler.NAME,
        service_account_name=pipeline.service_account or WORKFLOW_SERVICE_ACCOUNT,
        security_context=SECURITY_CONTEXT,
        arguments=arguments(pipeline),
        templates=templates(pipeline, spec, env),
        ttl_strategy=TTL,
        pod_gc=POD_GC,
        pod_metadata=Metadata(labels={PIPELINE_LABEL: pipeline.name}),
    )


def workflow(pipeline: Pipeline, spec: str, settings: Settings) -> Workflow:
    """A one-off Workflow: ``generateName`` gives each submission its own name (the run id)."""
    return Workflow(generate_name=f"{pipeline.name}-", **spec_fields(pipeline, spec, settings))


def workflow_template(pipeline: Pipeline, spec: str, settings: Settings) -> WorkflowTemplate:
    """A WorkflowTemplate named after the pipeline; workflows started from it get its labels."""
    return WorkflowTemplate(
        name=pipeline.name,
        workflow_metadata=WorkflowMetadata(labels=labels(pipeline)),
        **spec_fields(pipeline, spec, settings),
    )
