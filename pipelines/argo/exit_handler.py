"""The exit handler: every compiled workflow reports its end through ``onExit``.

``python -m steps exit-handler`` receives the workflow's status, duration and failures (Argo
fills them in only for exit handlers) and sends the run's final event to the control room,
Slack and Datadog. It runs whatever the outcome, so a failed run is never silent.
"""

from __future__ import annotations

from hera.workflows.models import IntOrString, Metadata, RetryStrategy, Template

from pipelines.argo import commands
from pipelines.argo.resources import SMALL, requirements
from pipelines.argo.templates import PodEnvironment
from steps.core.naming import EXIT_HANDLER_NODE, TASK_LABEL

NAME = EXIT_HANDLER_NODE


def exit_template(spec: str, env: PodEnvironment) -> Template:
    return Template(
        name=NAME,
        metadata=Metadata(labels={TASK_LABEL: NAME}),
        container=env.container(commands.exit_handler_args(spec), requirements(SMALL)),
        retry_strategy=RetryStrategy(limit=IntOrString(2), retry_policy="OnError"),
    )
