"""The DAG template: tasks wired by the outputs they read; a sized task runs as a nested DAG of
its sizing node and itself (:mod:`pipelines.argo.sizing`) under the task's own name.

Each downstream task receives an upstream output as an input parameter set from
``{{tasks.<upstream>.outputs.parameters.<output>}}``; Argo derives nothing from names, so the
dependencies are listed explicitly (outputs read, then ``after=``).

Pipeline parameters reach tasks as input parameters of the DAG (the entrypoint, which Argo
feeds the workflow's arguments) passed on to each task, not as ``{{workflow.parameters.x}}``
inside the tasks: Argo substitutes global variables in a template's inputs before its body, in
one pass, so a CronWorkflow's ``run_date: '{{workflow.scheduledTime}}'`` resolves on its way
into the DAG, where a ``{{workflow.parameters.run_date}}`` in a container would hand the pod
the unresolved ``{{workflow.scheduledTime}}`` text.
"""

from __future__ import annotations

from hera.workflows.models import Arguments, DAGTask, DAGTemplate, Inputs, Parameter, Template

from pipelines.argo import commands, sizing
from pipelines.graph import Pipeline, Task

NAME = "headrace-dag"


def _task_output(task: str, output: str) -> str:
    return f"{{{{tasks.{task}.outputs.parameters.{output}}}}}"


def _input_arguments(task: Task) -> list[Parameter]:
    return [
        Parameter(name=commands.input_parameter(ref.task, ref.output), value=_task_output(ref.task, ref.output))
        for ref in task.input_refs()
    ]


def _param_arguments(pipeline: Pipeline) -> list[Parameter]:
    return [Parameter(name=name, value=f"{{{{inputs.parameters.{name}}}}}") for name in pipeline.params]


def dag_tasks(pipeline: Pipeline) -> list[DAGTask]:
    tasks: list[DAGTask] = []
    params = _param_arguments(pipeline)
    for task in pipeline.tasks.values():
        upstream = list(task.upstream)
        arguments = [*params, *_input_arguments(task)]
        # A sized task runs as the nested DAG of its sizing node and itself (see pipelines.argo.sizing).
        template = sizing.attempt_template_name(task) if task.sizing == "auto" else task.name
        tasks.append(
            DAGTask(
                name=task.name,
                template=template,
                dependencies=upstream or None,
                arguments=Arguments(parameters=arguments) if arguments else None,
            )
        )
    return tasks


def dag_template(pipeline: Pipeline) -> Template:
    return Template(
        name=NAME,
        inputs=Inputs(parameters=[Parameter(name=name) for name in pipeline.params]),
        dag=DAGTemplate(tasks=dag_tasks(pipeline)),
    )
