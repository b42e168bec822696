"""Sized tasks: a sizing node before each ``sizing="auto"`` task, both inside a nested DAG that
Argo retries as a whole.

The sizing node is a small pod that runs ``python -m steps size`` with the same inputs as the
task (so it sees their sizes) and the run's ``run_date`` (the control room page's date axis, so
a backfill's runs, all decided today, land on their own days) and writes ``decision`` (SizingDecision JSON), ``pod-spec-patch``
(resources of the ``main`` container), ``instance-type`` and ``instance-count``. The sized task
receives the patch as its podSpecPatch and the decision on its command line, so the choice is
visible in the Argo UI. The command never fails (it falls back to the declared resources), hence
the output defaults only cover a pod that died before writing them.

Why a nested DAG (``headrace-sized-<task>``: ``size-<task>`` then ``<task>``): Argo's
retryStrategy on a container template retries the pod alone, with the podSpecPatch of the first
decision, so a task killed for memory would be retried at the size that just failed. With the
retryStrategy on the nested DAG, every attempt runs its own sizing node; the control room finds
the previous attempt's OOM in the run's history (the watcher records it) and sizes one step up.
The outer DAG task keeps the task's name and exposes the task's output parameters, so
downstream tasks read ``{{tasks.<task>.outputs.parameters.<output>}}`` as before.

What a DAG hides: the retry expression (never retry a bad-input exit 2) reads
``lastRetry.exitCode``, which Argo takes from the retried node's own outputs; a DAG node has no
exit code (Argo reads it as 0), so a sized task that exits with bad input is retried too, up to
its limit. The retry policy (failure, error, ...) and backoff apply as declared. ``retries``
is set in a retried template of any type (Argo substitutes it into the DAG before running its
tasks), which is how the attempt number reaches both pods.
"""

from __future__ import annotations

from hera.workflows.models import (
    Arguments,
    DAGTask,
    DAGTemplate,
    Inputs,
    IntOrString,
    Metadata,
    Outputs,
    Parameter,
    RetryStrategy,
    Template,
    ValueFrom,
)

from pipelines.argo import commands
from pipelines.argo.resources import SMALL, requirements
from pipelines.argo.templates import (
    SIZE_OUTPUTS,
    PodEnvironment,
    _file_outputs,
    input_names,
    output_names,
    retried_inputs,
    retry_strategy,
)
from pipelines.graph import RUN_DATE, Pipeline, Task
from steps.core.naming import SIZING_NODE_PREFIX, TASK_LABEL

PREFIX = SIZING_NODE_PREFIX
#: The nested DAG of a sized task; ``headrace-`` is reserved, so no task template collides.
ATTEMPT_PREFIX = "headrace-sized-"
_DEFAULTS = {"decision": "", "pod-spec-patch": "{}", "instance-type": "", "instance-count": ""}


def node_name(task: Task) -> str:
    """The DAG task (and template) name of ``task``'s sizing node."""
    return f"{PREFIX}{task.name}"


def attempt_template_name(task: Task) -> str:
    """The name of the nested DAG template one attempt of sized ``task`` runs."""
    return f"{ATTEMPT_PREFIX}{task.name}"


def sizing_template(task: Task, spec: str, env: PodEnvironment) -> Template:
    inputs = [RUN_DATE, *input_names(task), *retried_inputs(task)]
    return Template(
        name=node_name(task),
        metadata=Metadata(labels={TASK_LABEL: node_name(task)}),
        inputs=Inputs(parameters=[Parameter(name=name) for name in inputs]) if inputs else None,
        outputs=_file_outputs(list(SIZE_OUTPUTS), _DEFAULTS),
        container=env.container(commands.size_args(task, spec), requirements(SMALL)),
        # Only infrastructure errors (eviction, image pull) are worth another try here.
        retry_strategy=RetryStrategy(limit=IntOrString(2), retry_policy="OnError"),
    )


def _passed(names: list[str]) -> list[Parameter]:
    return [Parameter(name=name, value=f"{{{{inputs.parameters.{name}}}}}") for name in names]


def attempt_template(pipeline: Pipeline, task: Task) -> Template:
    """The nested DAG of sized ``task``: its sizing node, then the task, retried together.

    It takes the task's own inputs (pipeline parameters and upstream outputs), hands the task the
    sizing node's decision and podSpecPatch and, where there are retries, the attempt number
    (``retries`` is defined in this template, which carries the retryStrategy), and exposes the
    task's output parameters as its own.
    """
    node = node_name(task)
    upstream = input_names(task)
    attempt = [Parameter(name=commands.ATTEMPT_PARAMETER, value=commands.ATTEMPT)] if retried_inputs(task) else []
    size_arguments = [*_passed([RUN_DATE]), *_passed(upstream), *attempt]
    run_arguments = [
        *_passed(list(pipeline.params)),
        *_passed(upstream),
        Parameter(name="sizing", value=f"{{{{tasks.{node}.outputs.parameters.decision}}}}"),
        Parameter(name="pod-spec-patch", value=f"{{{{tasks.{node}.outputs.parameters.pod-spec-patch}}}}"),
        *attempt,
    ]
    inputs = [*pipeline.params, *upstream]
    outputs = [
        Parameter(name=name, value_from=ValueFrom(parameter=f"{{{{tasks.{task.name}.outputs.parameters.{name}}}}}"))
        for name in output_names(task)
    ]
    return Template(
        name=attempt_template_name(task),
        inputs=Inputs(parameters=[Parameter(name=name) for name in inputs]) if inputs else None,
        outputs=Outputs(parameters=outputs) if outputs else None,
        dag=DAGTemplate(
            tasks=[
                DAGTask(
                    name=node,
                    template=node,
                    arguments=Arguments(parameters=size_arguments) if size_arguments else None,
                ),
                DAGTask(
                    name=task.name,
                    template=task.name,
                    dependencies=[node],
                    arguments=Arguments(parameters=run_arguments),
                ),
            ]
        ),
        retry_strategy=retry_strategy(task.retry),
    )
