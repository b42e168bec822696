"""The CronWorkflow: the pipeline's schedule, running the WorkflowTemplate of the same name.

The cron holds no templates of its own: ``workflowTemplateRef`` points at the pipeline's
WorkflowTemplate (deploy both), so a by-hand submission and a scheduled run execute the same
definition. ``run_date`` is set to ``{{workflow.scheduledTime}}`` (RFC 3339, which the
entrypoint turns into the day in the pipeline's time zone), so a late or backfilled run still
processes the day it was scheduled for.
"""

from __future__ import annotations

from typing import Any, cast

from hera.workflows import CronWorkflow
from hera.workflows.models import (
    Arguments,
    ObjectMeta,
    Parameter,
    WorkflowMetadata,
    WorkflowTemplateRef,
)
from hera.workflows.models import (
    CronWorkflow as CronWorkflowModel,
)

from pipelines.argo.workflow import labels
from pipelines.graph import RUN_DATE, Pipeline, PipelineInvalid
from steps.core.settings import Settings

SCHEDULED_TIME = "{{workflow.scheduledTime}}"


class _CronWorkflow(CronWorkflow):
    """Hera 7 maps ``workflow_metadata`` into ``workflowSpec``; Argo labels the workflows a cron
    creates from ``spec.workflowMetadata`` (at creation, so selectors see them at once)."""

    def build(self) -> Any:
        model = cast(CronWorkflowModel, super().build())
        carried = model.spec.workflow_spec.workflow_metadata
        if carried is not None:
            model.spec.workflow_metadata = ObjectMeta(labels=carried.labels, annotations=carried.annotations)
            model.spec.workflow_spec.workflow_metadata = None
        return model


def cron_workflow(pipeline: Pipeline, settings: Settings) -> CronWorkflow:
    schedule = pipeline.schedule
    if schedule is None:
        raise PipelineInvalid(
            [
                f"pipeline {pipeline.name}: schedule is not set; give Pipeline(..., schedule=Schedule('0 3 * * *')) to compile a cron"
            ]
        )
    return _CronWorkflow(
        kind="CronWorkflow",
        name=pipeline.name,
        namespace=pipeline.namespace or settings.argo_namespace or None,
        labels=labels(pipeline),
        schedules=[expression.strip() for expression in schedule.crons],
        timezone=schedule.timezone,
        concurrency_policy=schedule.concurrency,
        starting_deadline_seconds=schedule.starting_deadline_seconds,
        successful_jobs_history_limit=schedule.successful_history,
        failed_jobs_history_limit=schedule.failed_history,
        cron_suspend=schedule.suspend,
        workflow_metadata=WorkflowMetadata(labels=labels(pipeline)),
        workflow_template_ref=WorkflowTemplateRef(name=pipeline.name),
        arguments=Arguments(parameters=[Parameter(name=RUN_DATE, value=SCHEDULED_TIME)]),
    )
