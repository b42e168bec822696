"""Container templates: one per task, each running ``python -m steps run`` in the project image.

A task's inputs arrive as input parameters (``<upstream>-<output>``: the upstream's ArtifactRef
JSON), its outputs leave as output parameters read from the files the entrypoint writes
(``<name>``, ``<name>-bytes``, ``<name>-rows``), so the Argo UI shows where each result went and
how big it is, and the sizing node can read the sizes without touching the artifact store.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hera.workflows.models import (
    Backoff,
    Capabilities,
    ConfigMapEnvSource,
    Container,
    EnvFromSource,
    EnvVar,
    Inputs,
    IntOrString,
    Metadata,
    Outputs,
    Parameter,
    ResourceRequirements,
    RetryStrategy,
    SeccompProfile,
    SecretEnvSource,
    SecurityContext,
    Template,
    ValueFrom,
)

from pipelines.argo import commands
from pipelines.argo.resources import requirements
from pipelines.graph import Pipeline, Retry, Task
from pipelines.validation import RETRY_ON
from steps.core.errors import EXIT_USAGE
from steps.core.naming import TASK_LABEL
from steps.core.quantities import parse_duration

CONFIG_MAP = "headrace-config"
SECRET = "headrace-secrets"
#: Argo's retry expression: a bad-input exit is never retried, whatever the policy says.
NO_RETRY_ON_BAD_INPUT = f"asInt(lastRetry.exitCode) != {EXIT_USAGE}"
SIZE_OUTPUTS = ("decision", "pod-spec-patch", "instance-type", "instance-count")
#: Every container the compiler writes meets the Pod Security Standard "restricted" on its own
#: (the pod's context says the same, but a container's must say allowPrivilegeEscalation and
#: capabilities itself). Argo's init and wait containers take theirs from the controller's
#: ``executor`` setting (docs/deploy.md).
CONTAINER_SECURITY = SecurityContext(
    allow_privilege_escalation=False,
    capabilities=Capabilities(drop=["ALL"]),
    run_as_non_root=True,
    seccomp_profile=SeccompProfile(type="RuntimeDefault"),
)


@dataclass(frozen=True)
class PodEnvironment:
    """What every headrace pod shares: the image, the profile and the config it reads."""

    image: str
    profile: str

    def container(self, args: list[str], resources: ResourceRequirements | None) -> Container:
        return Container(
            name="main",
            image=self.image,
            command=list(commands.ENTRYPOINT),
            args=args,
            env=[EnvVar(name="HEADRACE_PROFILE", value=self.profile)],
            env_from=[
                EnvFromSource(config_map_ref=ConfigMapEnvSource(name=CONFIG_MAP, optional=True)),
                EnvFromSource(secret_ref=SecretEnvSource(name=SECRET, optional=True)),
            ],
            resources=resources,
            security_context=CONTAINER_SECURITY,
        )


def input_names(task: Task) -> list[str]:
    return [commands.input_parameter(ref.task, ref.output) for ref in task.input_refs()]


def retried_inputs(task: Task) -> list[str]:
    """The ``attempt`` input of a sized task's pods, where the task has retries to count."""
    return [commands.ATTEMPT_PARAMETER] if task.retry.limit > 0 else []


def _file_outputs(names: list[str], defaults: dict[str, str] | None = None) -> Outputs:
    defaults = defaults or {}
    return Outputs(
        parameters=[
            Parameter(
                name=name,
                value_from=ValueFrom(path=f"{commands.OUTPUTS_DIR}/{name}", default=defaults.get(name)),
            )
            for name in names
        ]
    )


def output_names(task: Task) -> list[str]:
    names: list[str] = []
    for output in task.outputs:
        names += [output, f"{output}-bytes", f"{output}-rows"]
    return names


def _duration(value: str | int | float | None) -> str | None:
    # Go's time.ParseDuration has no days: Argo gets whole seconds.
    return None if value is None else f"{math.ceil(parse_duration(value))}s"


def _factor(value: float) -> int | str:
    return int(value) if float(value).is_integer() else str(value)


def retry_strategy(retry: Retry) -> RetryStrategy | None:
    """Argo's retryStrategy: the policy is always explicit so that Argo ANDs it with the
    expression (an expression alone would switch the default policy to Always)."""
    if retry.limit <= 0:
        return None
    backoff = retry.backoff
    return RetryStrategy(
        limit=IntOrString(retry.limit),
        retry_policy=RETRY_ON[retry.on],
        expression=NO_RETRY_ON_BAD_INPUT,
        backoff=Backoff(
            duration=_duration(backoff.duration),
            factor=IntOrString(_factor(backoff.factor)),
            cap=_duration(backoff.max_duration),
        ),
    )


def task_template(pipeline: Pipeline, task: Task, spec: str, env: PodEnvironment) -> Template:
    """The container template of ``task``; a sized task reads its podSpecPatch and decision from
    the sizing node through the ``pod-spec-patch`` and ``sizing`` input parameters, and leaves
    its retryStrategy to the nested DAG it runs in."""
    sized = task.sizing == "auto"
    inputs = [*pipeline.params, *input_names(task)]
    if sized:
        inputs += ["sizing", "pod-spec-patch", *retried_inputs(task)]
    timeout = task.timeout_seconds
    return Template(
        name=task.name,
        metadata=Metadata(labels={TASK_LABEL: task.name}),
        inputs=Inputs(parameters=[Parameter(name=name) for name in inputs]) if inputs else None,
        outputs=_file_outputs(output_names(task)),
        container=env.container(commands.run_args(pipeline, task, spec, sized=sized), requirements(task.resources)),
        # A sized task is retried by its nested DAG, so that each attempt is sized again.
        retry_strategy=None if sized else retry_strategy(task.retry),
        active_deadline_seconds=IntOrString(math.ceil(timeout)) if timeout is not None else None,
        pod_spec_patch="{{inputs.parameters.pod-spec-patch}}" if sized else None,
    )
