"""The DAG template: tasks wired by the outputs they read, sizing nodes in front of sized tasks.

Each downstream task receives an upstream output as an input parameter set from
``{{tasks.<upstream>.outputs.parameters.<output>}}``; Argo derives nothing from names, so the
dependencies are listed explicitly (outputs read, then ``after=``).
"""

from __future__ import annotations

from hera.workflows.models import Arguments, DAGTask, DAGTemplate, Parameter, Template

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


def dag_tasks(pipeline: Pipeline) -> list[DAGTask]:
    tasks: list[DAGTask] = []
    for task in pipeline.tasks.values():
        upstream = list(task.upstream)
        arguments = _input_arguments(task)
        if task.sizing == "auto":
            node = sizing.node_name(task)
            tasks.append(
                DAGTask(
                    name=node,
                    template=node,
                    dependencies=upstream or None,
                    arguments=Arguments(parameters=arguments) if arguments else None,
                )
            )
            upstream = [*upstream, node]
            arguments = [
                *arguments,
                Parameter(name="sizing", value=_task_output(node, "decision")),
                Parameter(name="pod-spec-patch", value=_task_output(node, "pod-spec-patch")),
            ]
        tasks.append(
            DAGTask(
                name=task.name,
                template=task.name,
                dependencies=upstream or None,
                arguments=Arguments(parameters=arguments) if arguments else None,
            )
        )
    return tasks


def dag_template(pipeline: Pipeline) -> Template:
    return Template(name=NAME, dag=DAGTemplate(tasks=dag_tasks(pipeline)))
