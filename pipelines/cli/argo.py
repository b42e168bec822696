"""Argo commands: ``submit``, ``status``, ``list``, ``stop``, ``retry``, ``resubmit``, ``deploy``,
``schedules`` (``suspend`` / ``resume``), ``backfill`` and ``render``.

Connection settings follow the argo CLI: ``--server`` / ``--token`` / ``--namespace`` flags, then
``HEADRACE_ARGO_*`` and ``ARGO_SERVER`` / ``ARGO_TOKEN`` / ``ARGO_NAMESPACE``, then headrace.toml,
then the kubeconfig context. A pipeline that declares ``Pipeline(namespace=...)`` is submitted and
deployed there unless ``--namespace`` says otherwise. Exit codes: 0 done, 1 the watched run failed, 2 bad input or
configuration (one line, never a traceback), 3 the server failed (retry later).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from pipelines.cli.common import console, err_console, guard, load_pipeline, params_from, settings_from

if TYPE_CHECKING:
    from pipelines.argo.client import Kind, Transport
    from pipelines.argo.submit import RunStatus

SERVER: Any = typer.Option(None, "--server", help="Argo Server URL (else ARGO_SERVER; else the kubeconfig cluster).")
TOKEN: Any = typer.Option(None, "--token", help="Bearer token (else ARGO_TOKEN).", show_default=False)
NAMESPACE: Any = typer.Option(None, "--namespace", "-n", help="Namespace (else ARGO_NAMESPACE, kubeconfig, 'argo').")
TRANSPORT: Any = typer.Option(
    None, "--transport", help="argo (Argo Server REST API), k8s (Kubernetes API) or auto (argo when a server is set)."
)
OUT: Any = typer.Option(Path("manifests/pipelines"), "--out", "-o", help="Folder for the YAML file.")
PARAM: Any = typer.Option(None, "--param", "-p", help="Parameter NAME=VALUE (repeatable).")


@contextmanager
def _transport(
    server: str | None, token: str | None, namespace: str | None, transport: str | None
) -> Iterator[Transport]:
    from pipelines.argo.client import open_transport, resolve_connection

    connection = resolve_connection(
        settings_from(), server=server, token=token, namespace=namespace, transport=transport
    )
    opened = open_transport(connection)
    try:
        yield opened
    finally:
        opened.close()


def _exists(transport: Transport, kind: Kind, name: str) -> bool:
    from steps.core.errors import NotFoundError

    try:
        transport.get(kind, name)
    except NotFoundError:
        return False
    return True


def _phase(phase: str) -> str:
    colour = {"Succeeded": "green", "Failed": "red", "Error": "red", "Running": "cyan"}.get(phase, "dim")
    return f"[{colour}]{phase}[/]"


def _print_run(transport: Transport, run: RunStatus) -> None:
    from pipelines.argo.submit import task_table

    console.print(task_table(run))
    if run.message:
        console.print(f"message: {run.message}", highlight=False)
    link = transport.connection.ui_link("workflows", run.name)
    if link:
        console.print(f"Argo UI: {link}", highlight=False)


def register(app: typer.Typer) -> None:
    schedules_app = typer.Typer(
        help="Deployed schedules (CronWorkflows): list with next run times, suspend, resume.",
        invoke_without_command=True,
    )
    app.add_typer(schedules_app, name="schedules")

    @app.command("submit")
    @guard
    def submit_cmd(
        spec: str = typer.Argument(..., help="MODULE:PIPELINE, e.g. examples/recipe_stream:pipeline"),
        param: list[str] | None = PARAM,
        watch: bool = typer.Option(False, "--watch", "-w", help="Show the live task table until the run ends."),
        poll_interval: float = typer.Option(
            2.0, "--poll-interval", min=0.01, help="Seconds between polls with --watch."
        ),
        server: str | None = SERVER,
        token: str | None = TOKEN,
        namespace: str | None = NAMESPACE,
        transport: str | None = TRANSPORT,
    ) -> None:
        """Submit a run of the pipeline to Argo (run_date defaults to today in its time zone)."""
        from pipelines.argo.submit import compile_workflow, submit
        from pipelines.argo.submit import watch as watch_run

        pipeline = load_pipeline(spec)
        params = params_from(param)
        workflow = compile_workflow(pipeline, spec, settings_from())
        with _transport(server, token, namespace or pipeline.namespace, transport) as argo:
            run = submit(argo, pipeline, workflow, params=params)
            where = argo.connection.namespace
            console.print(
                f"submitted [bold]{run.name}[/] (pipeline {pipeline.name}, run date {run.run_date}) in namespace {where}",
                highlight=False,
            )
            link = argo.connection.ui_link("workflows", run.name)
            if link:
                console.print(f"Argo UI: {link}", highlight=False)
            if watch:
                final = watch_run(argo, run.name, interval=poll_interval, console=console)
                if final.phase != "Succeeded":
                    err_console.print(f"run {final.name}: {final.phase} {final.message}".rstrip(), highlight=False)
                    raise typer.Exit(1)

    @app.command("status")
    @guard
    def status_cmd(
        run: str = typer.Argument(..., help="The run (Argo workflow name)."),
        server: str | None = SERVER,
        token: str | None = TOKEN,
        namespace: str | None = NAMESPACE,
        transport: str | None = TRANSPORT,
    ) -> None:
        """Show a run on Argo: phase, duration and each task."""
        from pipelines.argo.submit import get_run

        with _transport(server, token, namespace, transport) as argo:
            _print_run(argo, get_run(argo, run))

    @app.command("list")
    @guard
    def list_cmd(
        pipeline: str | None = typer.Option(None, "--pipeline", help="Only this pipeline's runs."),
        status: str | None = typer.Option(None, "--status", help="pending, running, succeeded, failed or error."),
        limit: int = typer.Option(50, "--limit", help="Show at most this many runs."),
        server: str | None = SERVER,
        token: str | None = TOKEN,
        namespace: str | None = NAMESPACE,
        transport: str | None = TRANSPORT,
    ) -> None:
        """List runs on Argo, newest first (filtered by labels on the server)."""
        from rich.table import Table

        from pipelines.argo.submit import list_runs

        with _transport(server, token, namespace, transport) as argo:
            runs = list_runs(argo, pipeline=pipeline, status=status)
        if not runs:
            console.print("no runs match", highlight=False)
            return
        table = Table()
        for column in ("run", "pipeline", "run date", "phase", "started", "duration"):
            table.add_column(column)
        for run in runs[:limit]:
            started = run.started_at.replace("T", " ")[:16]
            table.add_row(run.name, run.pipeline, run.run_date, _phase(run.phase), started, run.duration)
        console.print(table)

    def _action(action: str) -> Any:
        def command(
            run: str = typer.Argument(..., help="The run (Argo workflow name)."),
            server: str | None = SERVER,
            token: str | None = TOKEN,
            namespace: str | None = NAMESPACE,
            transport: str | None = TRANSPORT,
        ) -> None:
            from pipelines.argo.submit import act

            with _transport(server, token, namespace, transport) as argo:
                done = act(argo, run, action)
            if action == "resubmit":
                console.print(f"resubmitted {run} as [bold]{done.name}[/]", highlight=False)
            else:
                console.print(f"{action} {done.name}: {done.phase}", highlight=False)

        command.__doc__ = {
            "stop": "Stop a run on Argo (running pods get their exit handler).",
            "retry": "Retry a failed run on Argo from its failed tasks.",
            "resubmit": "Run a finished run again from the start, as a new run.",
        }[action]
        return command

    for name in ("stop", "retry", "resubmit"):
        app.command(name)(guard(_action(name)))

    @app.command("deploy")
    @guard
    def deploy_cmd(
        spec: str = typer.Argument(..., help="MODULE:PIPELINE"),
        server: str | None = SERVER,
        token: str | None = TOKEN,
        namespace: str | None = NAMESPACE,
        transport: str | None = TRANSPORT,
    ) -> None:
        """Create or update the pipeline's WorkflowTemplate, CronWorkflow and trigger objects (idempotent)."""
        from pipelines.argo.client import KIND_NAMES
        from pipelines.argo.deploy import compile_objects, deploy

        pipeline = load_pipeline(spec)
        objects = compile_objects(pipeline, spec, settings_from())
        with _transport(server, token, namespace or pipeline.namespace, transport) as argo:
            for applied in deploy(argo, objects):
                kind = KIND_NAMES[applied.kind]
                console.print(f"{kind} {applied.name}: {applied.outcome}", highlight=False)
            if pipeline.schedule is None:
                console.print(f"pipeline {pipeline.name} has no schedule: no CronWorkflow deployed", highlight=False)
                if _exists(argo, "cronworkflows", pipeline.name):
                    err_console.print(
                        f"[yellow]warning:[/] CronWorkflow {pipeline.name} from an earlier deploy still runs on its old "
                        f"schedule; stop it with `headrace schedules suspend {pipeline.name}`",
                        highlight=False,
                    )

    @schedules_app.callback()
    @guard
    def schedules_cmd(
        ctx: typer.Context,
        server: str | None = SERVER,
        token: str | None = TOKEN,
        namespace: str | None = NAMESPACE,
        transport: str | None = TRANSPORT,
    ) -> None:
        """List deployed schedules with their next run time in their time zone."""
        if ctx.invoked_subcommand is not None:
            return
        from rich.table import Table

        from pipelines.argo.deploy import list_schedules

        with _transport(server, token, namespace, transport) as argo:
            infos = list_schedules(argo)
        if not infos:
            console.print("no schedules deployed; run `headrace deploy MODULE:PIPELINE`", highlight=False)
            return
        table = Table()
        for column in ("name", "pipeline", "schedules", "timezone", "next run", "state", "last scheduled"):
            table.add_column(column)
        for info in infos:
            table.add_row(
                info.name,
                info.pipeline,
                ", ".join(info.schedules),
                info.timezone,
                info.next_run.strftime("%Y-%m-%d %H:%M %Z") if info.next_run else "-",
                "[yellow]suspended[/]" if info.suspended else "active",
                info.last_scheduled or "-",
            )
        console.print(table)

    def _suspend(suspended: bool) -> Any:
        def command(
            name: str = typer.Argument(..., help="The CronWorkflow's name."),
            server: str | None = SERVER,
            token: str | None = TOKEN,
            namespace: str | None = NAMESPACE,
            transport: str | None = TRANSPORT,
        ) -> None:
            from pipelines.argo.deploy import set_suspended

            with _transport(server, token, namespace, transport) as argo:
                info = set_suspended(argo, name, suspended)
            state = "suspended" if info.suspended else "active"
            when = f"; next run {info.next_run:%Y-%m-%d %H:%M %Z}" if info.next_run else ""
            console.print(f"schedule {info.name}: {state}{when}", highlight=False)

        command.__doc__ = "Suspend a schedule (no new runs)." if suspended else "Resume a suspended schedule."
        return command

    schedules_app.command("suspend")(guard(_suspend(True)))
    schedules_app.command("resume")(guard(_suspend(False)))

    @app.command("backfill")
    @guard
    def backfill_cmd(
        spec: str = typer.Argument(..., help="MODULE:PIPELINE"),
        start: str = typer.Option(..., "--from", help="First day, YYYY-MM-DD (inclusive)."),
        end: str = typer.Option(..., "--to", help="Last day, YYYY-MM-DD (inclusive)."),
        parallel: int = typer.Option(1, "--parallel", help="Submit (or run locally) this many at a time."),
        local: bool = typer.Option(False, "--local", help="Run here with the local runner instead of Argo."),
        yes: bool = typer.Option(False, "--yes", "-y", help="Go ahead with more than 31 runs."),
        param: list[str] | None = PARAM,
        server: str | None = SERVER,
        token: str | None = TOKEN,
        namespace: str | None = NAMESPACE,
        transport: str | None = TRANSPORT,
    ) -> None:
        """One run per scheduled time in the range, skipping run dates that already succeeded."""
        from pipelines.backfill import check_size, parse_day, plan

        pipeline = load_pipeline(spec)
        runs = plan(pipeline, parse_day(start, "--from"), parse_day(end, "--to"))
        check_size(pipeline, runs, yes=yes)
        params = params_from(param)
        params.pop("run_date", None)
        pipeline.resolve_params(params)
        settings = settings_from()
        if local:
            from pipelines.cli.local_backfill import run_local_backfill

            run_local_backfill(pipeline, spec, runs, settings, params, parallel)
            return
        from pipelines.argo.submit import compile_workflow
        from pipelines.backfill import ArgoExecutor

        workflow = compile_workflow(pipeline, spec, settings)
        with _transport(server, token, namespace or pipeline.namespace, transport) as argo:
            _run_backfill(pipeline.name, runs, ArgoExecutor(argo, pipeline, workflow, params), parallel)

    @app.command("render")
    @guard
    def render_cmd(
        spec: str = typer.Argument(..., help="MODULE:PIPELINE"),
        out: Path = OUT,
        namespace: str | None = NAMESPACE,
    ) -> None:
        """Write the pipeline's WorkflowTemplate, CronWorkflow and trigger objects as YAML (GitOps, kubectl)."""
        from pipelines.argo.deploy import compile_objects, render

        pipeline = load_pipeline(spec)
        settings = settings_from(argo_namespace=namespace)
        path = render(compile_objects(pipeline, spec, settings), out, pipeline.name)
        console.print(f"wrote {path}", highlight=False)


def _run_backfill(pipeline: str, runs: list[Any], executor: Any, parallel: int) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from pipelines.backfill import BackfillResult, backfill

    if not runs:
        console.print(f"pipeline {pipeline}: no scheduled time in the range", highlight=False)
        return
    counts = {"submitted": 0, "skipped": 0, "failed": 0, "succeeded": 0}
    with Progress(
        TextColumn("[bold]backfill[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        bar = progress.add_task(pipeline, total=len(runs))

        def report(result: BackfillResult) -> None:
            counts[result.status] += 1
            colour = {"failed": "red", "skipped": "dim", "succeeded": "green"}.get(result.status, "cyan")
            detail = f" ({result.detail})" if result.detail else ""
            progress.console.print(
                f"{result.run_date}: [{colour}]{result.status}[/] {result.run_id}{detail}", highlight=False
            )
            progress.advance(bar)

        backfill(runs, executor, parallel=parallel, progress=report)
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    console.print(f"pipeline {pipeline}: {summary}", highlight=False)
    if counts["failed"]:
        raise typer.Exit(1)
