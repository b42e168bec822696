"""The sizing node: a small pod before each ``sizing="auto"`` task that asks the control room
how big the task should be.

It runs ``python -m steps size`` with the same inputs as the task (so it sees their sizes) and
writes ``decision`` (SizingDecision JSON), ``pod-spec-patch`` (resources of the ``main``
container), ``instance-type`` and ``instance-count``. The sized task receives the patch as its
podSpecPatch and the decision on its command line, so the choice is visible in the Argo UI.
The command never fails (it falls back to the declared resources), hence the output defaults
only cover a pod that died before writing them.
"""

from __future__ import annotations

from hera.workflows.models import Inputs, IntOrString, Metadata, Parameter, RetryStrategy, Template

from pipelines.argo import commands
from pipelines.argo.resources import SMALL, requirements
from pipelines.argo.templates import SIZE_OUTPUTS, TASK_LABEL, PodEnvironment, _file_outputs, input_names
from pipelines.graph import Task

PREFIX = "size-"
_DEFAULTS = {"decision": "", "pod-spec-patch": "{}", "instance-type": "", "instance-count": ""}


def node_name(task: Task) -> str:
    """The DAG task (and template) name of ``task``'s sizing node."""
    return f"{PREFIX}{task.name}"


def sizing_template(task: Task, spec: str, env: PodEnvironment) -> Template:
    inputs = input_names(task)
    return Template(
        name=node_name(task),
        metadata=Metadata(labels={TASK_LABEL: node_name(task)}),
        inputs=Inputs(parameters=[Parameter(name=name) for name in inputs]) if inputs else None,
        outputs=_file_outputs(list(SIZE_OUTPUTS), _DEFAULTS),
        container=env.container(commands.size_args(task, spec), requirements(SMALL)),
        # Only infrastructure errors (eviction, image pull) are worth another try here.
        retry_strategy=RetryStrategy(limit=IntOrString(2), retry_policy="OnError"),
    )
