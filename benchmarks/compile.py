"""Time to build and render a pipeline as Argo YAML: headrace against the same DAG in raw Hera.

Each size is a realistic layered DAG: a source task, then layers of parallel tasks where each
task reads the outputs of two tasks of the layer before (fan-out and fan-in), with resources on
every task and retries on some. "headrace" is the whole user path: define the pipeline with the
DSL, validate, compile through Hera, render YAML. "raw Hera" builds the equivalent Workflow by
hand with Hera's context managers (``Workflow``, ``DAG``, ``Container``, ``Task``, parameters,
resources, retry strategies) and renders it with the SAME YAML emitter headrace uses (PyYAML's C
emitter, ``pipelines.argo.render.to_yaml``), so the table compares the compilers, not the emitters.

Every figure is the median of ``--repeat`` runs with the spread (min-max) beside it. Targets
(issue 18): at most 1 ms per task up to 10,000 tasks, flat (linear) from 100 tasks on.

    .venv/bin/python benchmarks/compile.py [--repeat 5] [--sizes 10,100,1000,10000]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from pipelines import Pipeline, Resources, Retry, step
from pipelines.argo import compile_pipeline, to_yaml
from steps.core.settings import Settings

IMAGE = "ghcr.io/headrace/headrace:0.1.0"
SPEC = "bench.flow:pipeline"
OUTPUTS_DIR = "/tmp/headrace/outputs"


def layout(tasks: int) -> list[list[str]]:
    """Task names by layer: one source, then layers about sqrt(tasks) wide."""
    width = max(1, round(math.sqrt(tasks)))
    names = [f"t{i}" for i in range(1, tasks)]
    return [["t0"], *[names[i : i + width] for i in range(0, len(names), width)]]


def parents(layers: list[list[str]], layer: int, index: int) -> list[str]:
    previous = layers[layer - 1]
    chosen = [previous[index % len(previous)], previous[(index + 1) % len(previous)]]
    return list(dict.fromkeys(chosen))


@step(resources=Resources(cpu="500m", memory="1Gi"))
def source(day: str) -> str:
    return day


@step(resources=Resources(cpu="1", memory="2Gi"))
def transform(left: Any, right: Any = None) -> Any:
    return left


def headrace(tasks: int) -> str:
    layers = layout(tasks)
    with Pipeline(f"bench-{tasks}") as pipeline:
        handles = {"t0": source(day=pipeline.run_date, name="t0")}
        for layer in range(1, len(layers)):
            for index, name in enumerate(layers[layer]):
                ups = [handles[p] for p in parents(layers, layer, index)]
                retry = Retry(limit=2) if index % 3 == 0 else None
                handles[name] = transform(*ups, name=name, retry=retry)
    return to_yaml(compile_pipeline(pipeline, spec=SPEC, kind="workflow", settings=Settings()))


def raw_hera(tasks: int) -> str:
    from hera.workflows import DAG, Container, Parameter, Workflow, models

    layers = layout(tasks)

    def outputs() -> list[Parameter]:
        return [
            Parameter(name=n, value_from=models.ValueFrom(path=f"{OUTPUTS_DIR}/{n}"))
            for n in ("result", "result-bytes", "result-rows")
        ]

    def container(name: str, ups: list[str], cpu: str, memory: str, retried: bool) -> Container:
        args = ["run", SPEC, name, "--run-id", "{{workflow.name}}", "-p", "run_date={{workflow.parameters.run_date}}"]
        for up in ups:
            args += ["--input", f"{up}.result={{{{inputs.parameters.{up}-result}}}}"]
        return Container(
            name=name,
            image=IMAGE,
            command=["python", "-m", "steps"],
            args=[*args, "--outputs-dir", OUTPUTS_DIR],
            inputs=[Parameter(name=f"{up}-result") for up in ups],
            outputs=outputs(),
            env=[models.EnvVar(name="HEADRACE_PROFILE", value="aws")],
            resources=models.ResourceRequirements(requests={"cpu": cpu, "memory": memory}, limits={"memory": memory}),
            retry_strategy=models.RetryStrategy(
                limit=2, retry_policy="OnFailure", expression="asInt(lastRetry.exitCode) != 2"
            )
            if retried
            else None,
        )

    with Workflow(
        generate_name=f"bench-{tasks}-", entrypoint="dag", arguments=[Parameter(name="run_date", value="")]
    ) as workflow:
        templates = {"t0": container("t0", [], "500m", "1Gi", False)}
        for layer in range(1, len(layers)):
            for index, name in enumerate(layers[layer]):
                templates[name] = container(name, parents(layers, layer, index), "1", "2Gi", index % 3 == 0)
        with DAG(name="dag"):
            dag_tasks = {"t0": templates["t0"](name="t0")}
            for layer in range(1, len(layers)):
                for index, name in enumerate(layers[layer]):
                    ups = parents(layers, layer, index)
                    task = templates[name](
                        name=name,
                        arguments=[
                            Parameter(name=f"{up}-result", value=f"{{{{tasks.{up}.outputs.parameters.result}}}}")
                            for up in ups
                        ],
                    )
                    for up in ups:
                        dag_tasks[up] >> task
                    dag_tasks[name] = task
    return to_yaml(workflow.to_dict())


def timings(fn: Callable[[int], str], tasks: int, repeat: int) -> list[float]:
    fn(tasks)  # warm imports and caches
    found = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn(tasks)
        found.append(time.perf_counter() - started)
    return found


def per_task(values: list[float], tasks: int) -> str:
    """Median ms per task, with the spread of the runs."""
    scaled = [value * 1000 / tasks for value in values]
    return f"{statistics.median(scaled):.3f} ({min(scaled):.3f}-{max(scaled):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sizes", default="10,100,1000,10000")
    options = parser.parse_args()
    console = Console()
    table = Table(title=f"Build + render Argo YAML, ms per task: median (min-max) of {options.repeat}; same emitter")
    for column in ("tasks", "headrace total", "headrace / task", "raw Hera / task", "ratio", "target"):
        table.add_column(column, justify="right")
    verdict = True
    with console.status("timing...") as status:
        for size in (int(s) for s in options.sizes.split(",")):
            status.update(f"timing {size} tasks...")
            ours = timings(headrace, size, options.repeat)
            theirs = timings(raw_hera, size, options.repeat)
            ratio = statistics.median(ours) / statistics.median(theirs)
            met = statistics.median(ours) * 1000 / size <= 1.0
            verdict = verdict and (met or size < 100)
            table.add_row(
                str(size),
                f"{statistics.median(ours) * 1000:.0f} ms",
                per_task(ours, size),
                per_task(theirs, size),
                f"{ratio:.2f}x",
                "<= 1 ms" if size >= 100 else "",
            )
    console.print(table)
    console.print("[green]target met[/]" if verdict else "[red]target missed[/]")


if __name__ == "__main__":
    main()
