"""The command lines compiled into pods: how Argo starts ``python -m steps`` for each template.

These strings are a contract with the in-pod entrypoint (:mod:`steps.__main__`): the ``run``,
``size`` and ``exit-handler`` commands parse exactly what is built here. Keeping every argv in
one module means a change to that contract is one diff, tested by the golden files.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.graph import RUN_DATE, Pipeline, Task
from steps.runtime.loader import split_spec

#: Where the entrypoint writes the files Argo reads back as output parameters.
OUTPUTS_DIR = "/tmp/headrace/outputs"
ENTRYPOINT = ["python", "-m", "steps"]


def image_spec(spec: str, cwd: Path | None = None) -> str:
    """``spec`` as a dotted ``module:attribute`` importable in the image.

    Users name pipelines by path on their laptop (``examples/recipe_stream:pipeline``,
    ``flows/daily.py:pipeline``); the image holds the same project with its root as working
    directory, so a path under the current folder becomes the dotted module of that path. A path
    outside it falls back to the package walk the loader does.
    """
    module, attribute = split_spec(spec)
    looks_like_path = "/" in module or module.endswith(".py")
    if not looks_like_path:
        return f"{module}:{attribute}"
    base = (cwd or Path.cwd()).resolve()
    path = (base / module).resolve()
    if path.suffix == ".py":
        path = path.with_suffix("")
    try:
        parts = path.relative_to(base).parts
    except ValueError:
        parts = (path.name,)
        parent = path.parent
        while (parent / "__init__.py").exists():
            parts = (parent.name, *parts)
            parent = parent.parent
    return f"{'.'.join(parts)}:{attribute}"


def input_parameter(task: str, output: str) -> str:
    """The input parameter a task receives another task's output through."""
    return f"{task}-{output}"


def _input_flags(task: Task) -> list[str]:
    flags: list[str] = []
    for ref in task.input_refs():
        flags += [
            "--input",
            f"{ref.task}.{ref.output}={{{{inputs.parameters.{input_parameter(ref.task, ref.output)}}}}}",
        ]
    return flags


#: Argo's attempt number, 1-based, where a retryStrategy defines ``retries``.
ATTEMPT = "{{=asInt(retries) + 1}}"
#: The input parameter a sized task's pods get their attempt through (from the nested DAG).
ATTEMPT_PARAMETER = "attempt"


def attempt_flags(task: Task, *, sized: bool) -> list[str]:
    """``--attempt``: Argo's retry number plus one, only where Argo defines ``retries`` (a template
    with a retryStrategy); elsewhere the entrypoint's default (1) is right. A sized task is
    retried as a whole nested DAG (see :mod:`pipelines.argo.sizing`), which hands its pods the
    number as the ``attempt`` input parameter."""
    if task.retry.limit <= 0:
        return []
    return ["--attempt", f"{{{{inputs.parameters.{ATTEMPT_PARAMETER}}}}}" if sized else ATTEMPT]


def run_args(pipeline: Pipeline, task: Task, spec: str, *, sized: bool) -> list[str]:
    """Arguments of ``python -m steps`` for one attempt of ``task``. Parameters come as input
    parameters (see :mod:`pipelines.argo.dag` for why not ``workflow.parameters``). ``--report``:
    the attempt tells the control room its events and observation (:mod:`steps.runtime.reporting`)."""
    args = ["run", spec, task.name, "--run-id", "{{workflow.name}}", *attempt_flags(task, sized=sized)]
    for name in pipeline.params:
        args += ["-p", f"{name}={{{{inputs.parameters.{name}}}}}"]
    args += _input_flags(task)
    if sized:
        args += ["--sizing", "{{inputs.parameters.sizing}}"]
    args += ["--outputs-dir", OUTPUTS_DIR, "--report"]
    return args


def size_args(task: Task, spec: str) -> list[str]:
    """Arguments of the sizing node before a ``sizing="auto"`` task (``python -m steps size``);
    ``--run-date`` from the nested DAG's input, like the task's own parameters."""
    return [
        "size",
        spec,
        task.name,
        "--run-id",
        "{{workflow.name}}",
        *attempt_flags(task, sized=True),
        "--run-date",
        f"{{{{inputs.parameters.{RUN_DATE}}}}}",
        *_input_flags(task),
        "--outputs-dir",
        OUTPUTS_DIR,
    ]


def exit_handler_args(spec: str) -> list[str]:
    """Arguments of the workflow's onExit reporter (``python -m steps exit-handler``)."""
    return [
        "exit-handler",
        spec,
        "--run-id",
        "{{workflow.name}}",
        "--status",
        "{{workflow.status}}",
        "--duration",
        "{{workflow.duration}}",
        "--failures",
        "{{workflow.failures}}",
        "--run-date",
        "{{workflow.parameters.run_date}}",
    ]
