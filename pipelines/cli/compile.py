"""``headrace compile`` and ``headrace validate``: the pipeline as Argo YAML, or its problems.

``compile`` prints the YAML (or writes ``<pipeline>.<kind>.yaml`` into ``-o DIR``); the output
is byte-identical for the same pipeline, so it can be committed and diffed. ``validate`` prints
every problem on its own line. Both exit 2 on an invalid pipeline, without a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from pipelines.cli.common import console, err_console, guard, load_pipeline, settings_from, writable_folder
from pipelines.graph import Pipeline, PipelineInvalid
from pipelines.plain import plural
from steps.core.errors import EXIT_USAGE

SPEC: Any = typer.Argument(..., help="MODULE:PIPELINE, e.g. examples/recipe_stream:pipeline")
KIND: Any = typer.Option(
    "workflow", "--kind", "-k", help="workflow, template (WorkflowTemplate) or cron (CronWorkflow)."
)
OUTPUT: Any = typer.Option(
    None, "--output", "-o", help="Write <pipeline>.<kind>.yaml into this folder instead of stdout."
)


def _print_problems(problems: list[str]) -> None:
    for problem in problems:
        err_console.print(f"[bold red]error:[/] {problem}", highlight=False, soft_wrap=True)


def _load_valid(spec: str) -> Pipeline:
    pipeline = load_pipeline(spec, check=False)
    problems = pipeline.problems()
    if problems:
        _print_problems(problems)
        raise typer.Exit(EXIT_USAGE)
    return pipeline


def register(app: typer.Typer) -> None:
    @app.command("compile")
    @guard
    def compile_cmd(spec: str = SPEC, kind: str = KIND, output: Path | None = OUTPUT) -> None:
        """Compile a pipeline to an Argo Workflow, WorkflowTemplate or CronWorkflow (YAML)."""
        from pipelines.argo import KINDS, compile_pipeline, to_yaml

        if kind not in KINDS:
            err_console.print(f"[bold red]error:[/] --kind {kind!r}: use one of {', '.join(KINDS)}", highlight=False)
            raise typer.Exit(EXIT_USAGE)
        pipeline = _load_valid(spec)
        try:
            text = to_yaml(compile_pipeline(pipeline, spec=spec, kind=kind, settings=settings_from()))
        except PipelineInvalid as error:
            _print_problems(error.problems)
            raise typer.Exit(EXIT_USAGE) from None
        if output is None:
            typer.echo(text, nl=False)
            return
        path = writable_folder(output, "--output", "pass a folder you can write") / f"{pipeline.name}.{kind}.yaml"
        path.write_text(text)
        console.print(f"wrote {path}", highlight=False)

    @app.command("validate")
    @guard
    def validate_cmd(spec: str = SPEC) -> None:
        """Check a pipeline without compiling it: every problem on its own line (exit 2 if any)."""
        pipeline = _load_valid(spec)
        sized = sum(1 for task in pipeline.tasks.values() if task.sizing == "auto")
        schedule = ", ".join(pipeline.schedule.crons) if pipeline.schedule else "no schedule"
        console.print(
            f"pipeline {pipeline.name} is valid: {plural(len(pipeline.tasks), 'task')} ({sized} sized), {schedule}",
            highlight=False,
        )
