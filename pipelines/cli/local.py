"""``headrace run``, ``resume``, ``runs list|show`` and ``logs``: pipelines on this machine.

Exit codes: 0 the run succeeded, 1 it failed, 130 it was cancelled (Ctrl-C), 2 bad input.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from pipelines.cli.common import (
    console,
    err_console,
    fail,
    finish,
    guard,
    load_pipeline,
    params_from,
    settings_from,
    writable_folder,
)
from pipelines.cli.output import print_table

if TYPE_CHECKING:
    from pipelines.local import RunSummary
    from pipelines.runs import RunRecord, RunStore
    from steps.core.contract import ControlRoom
    from steps.core.settings import Settings

EXIT_CANCELLED = 130

FORK_OPTION: Any = typer.Option(
    True,
    "--fork-server/--no-fork-server",
    help="Fork task processes from a warm server (default) or start each with a fresh `python -m steps run`.",
)
PARAM_OPTION: Any = typer.Option(
    None, "--param", "-p", help="Parameter NAME=VALUE (repeatable), e.g. -p run_date=2026-11-01."
)


def _notifier(settings: Settings, pipeline: Any) -> Any:
    """Slack and/or Datadog for this run as configured (nothing when neither is: the live view is
    the local console). Built now, so an invalid Slack token fails at start-up in one line rather
    than silently at the first event."""
    from control_room.notifications.notifier import build_notifier

    def warn(line: str) -> None:
        err_console.print(f"warning: {line}", style="yellow", markup=False, highlight=False, soft_wrap=True)

    notifier = build_notifier(settings, quiet=True, warn=warn)
    notifier.register(pipeline)
    return notifier


def _control_room(settings: Settings, notifier: Any = None) -> ControlRoom | None:
    """The control room the run reports to (HTTP or embedded, see ``control_room.embedded.connect``),
    connected in the background on first use so its imports overlap the first tasks. Events
    reach ``notifier`` through the embedded control room (a service has its own notifier)."""
    from pipelines.local.control import LazyRoom

    def connected() -> ControlRoom:
        # imported here, on the control room's thread once the first task started: ~0.3 s of
        # SQLAlchemy and numpy the run's start no longer waits for
        from control_room.embedded import connect

        room: ControlRoom = connect(settings, notifier)
        return room

    return LazyRoom(connected)


def _close(room: ControlRoom | None, notifier: Any = None) -> None:
    if notifier is not None:
        notifier.close()  # sends what is still queued
    error = getattr(room, "error", None)
    if error:
        err_console.print(f"[yellow]control room unavailable ({error}); tasks ran with their declared resources[/]")
    close = getattr(room, "close", None)
    if close is not None:
        try:
            close()
        except Exception:  # closing a control room never changes a run's outcome
            return


def _check_folders(settings: Settings) -> None:
    """The state folder and the artifact root can be written: checked before any task runs
    (each task would otherwise fail after its step did the work)."""
    state = writable_folder(
        settings.state_dir, "state folder", "run from a folder you can write, or set HEADRACE_STATE_DIR"
    )
    root = settings.artifact_root or str(state / "artifacts")
    if "://" not in root:
        writable_folder(root, "artifact root", "set HEADRACE_ARTIFACT_ROOT to a folder you can write")


def _exit_for(summary: RunSummary) -> NoReturn:
    from pipelines.local.view import plain_summary, render_summary

    if console.is_terminal:
        console.print(render_summary(summary))
    else:  # a pipe or a log: plain lines, nothing cut
        console.file.write("\n".join(plain_summary(summary)) + "\n")
        console.file.flush()
    finish({"succeeded": 0, "cancelled": EXIT_CANCELLED}.get(summary.status, 1))


def _store(settings: Settings) -> RunStore:
    from pipelines.runs import RunStore

    return RunStore.for_settings(settings)


def _load_recorded(record: RunRecord) -> Any:
    """The pipeline a recorded run ran, loaded from the folder it was started in."""
    module, sep, attribute = record.spec.partition(":")
    looks_like_path = "/" in module or module.endswith(".py")
    if looks_like_path and not Path(module).is_absolute() and record.cwd:
        module = str(Path(record.cwd) / module)
    elif record.cwd and record.cwd not in sys.path:
        sys.path.insert(0, record.cwd)
    return load_pipeline(f"{module}{sep}{attribute}")


def register(app: typer.Typer) -> None:
    from pipelines.cli import runs_tools

    runs_app = typer.Typer(help="Local run records: list, inspect, compare and remove runs.", no_args_is_help=True)
    app.add_typer(runs_app, name="runs")
    runs_tools.add_to(runs_app)

    @app.command("run")
    @guard
    def run(
        spec: str = typer.Argument(..., help="MODULE:PIPELINE, e.g. examples.recipe_stream:pipeline"),
        param: list[str] | None = PARAM_OPTION,
        parallel: int = typer.Option(0, "--parallel", help="Tasks at once (default: the number of cores)."),
        in_process: bool = typer.Option(False, "--in-process", help="Run tasks in this process (breakpoints work)."),
        fork_server: bool = FORK_OPTION,
    ) -> None:
        """Run a pipeline here, each task through the same entrypoint as in an Argo pod."""
        from pipelines.local import run_pipeline

        if parallel < 0:
            fail("--parallel: must be 1 or more")
        pipeline = load_pipeline(spec)
        params = params_from(param)
        settings = settings_from()
        _check_folders(settings)
        notifier = _notifier(settings, pipeline)
        room = _control_room(settings, notifier)
        try:
            summary = run_pipeline(
                pipeline,
                spec=spec,
                params=params,
                settings=settings,
                parallel=parallel or None,
                in_process=in_process,
                live=True,
                control_room=room,
                fork_server=fork_server,
            )
        finally:
            _close(room, notifier)
        _exit_for(summary)

    @app.command("resume")
    @guard
    def resume(
        run_id: str = typer.Argument(..., help="The run to continue (see `headrace runs list`)."),
        param: list[str] | None = PARAM_OPTION,
        parallel: int = typer.Option(0, "--parallel", help="Tasks at once (default: the number of cores)."),
        in_process: bool = typer.Option(False, "--in-process", help="Run tasks in this process."),
        fork_server: bool = FORK_OPTION,
    ) -> None:
        """Rerun only the failed and not-run tasks of a run, reusing what succeeded."""
        from pipelines.local import run_pipeline

        params = params_from(param)
        settings = settings_from()
        _check_folders(settings)
        store = _store(settings)
        try:
            record = store.get_run(run_id)
        finally:
            store.close()
        if record is None:
            fail(f"run {run_id}: not found; list runs with `headrace runs list`")
        if record.status == "succeeded":
            console.print(
                f"run {run_id}: succeeded already, nothing to resume (a new run: headrace run {record.spec})",
                highlight=False,
                soft_wrap=True,
            )
            return
        pipeline = _load_recorded(record)
        notifier = _notifier(settings, pipeline)
        room = _control_room(settings, notifier)
        try:
            summary = run_pipeline(
                pipeline,
                spec=record.spec,
                params=params,
                settings=settings,
                parallel=parallel or None,
                in_process=in_process,
                live=True,
                resume_run_id=run_id,
                control_room=room,
                cwd=record.cwd or None,
                fork_server=fork_server,
            )
        finally:
            _close(room, notifier)
        _exit_for(summary)

    @runs_app.command("list")
    @guard
    def runs_list(
        pipeline: str | None = typer.Option(None, "--pipeline", help="Only runs of this pipeline."),
        status: str | None = typer.Option(None, "--status", help="running, succeeded, failed or cancelled."),
        limit: int = typer.Option(50, "--limit", help="At most this many runs, newest first."),
    ) -> None:
        """Local runs, newest first."""

        from pipelines.runs import RUN_STATUSES

        if status is not None and status not in RUN_STATUSES:
            fail(f"--status {status!r}: use one of {', '.join(RUN_STATUSES)}")
        store = _store(settings_from())
        try:
            records = store.list_runs(pipeline=pipeline, status=status, limit=limit)
            counts = {r.id: store.tasks(r.id) for r in records}
        finally:
            store.close()
        rows = []
        for r in records:
            tasks = counts[r.id]
            status_text = r.status + (" (runner gone)" if r.status == "running" and not r.runner_alive else "")
            rows.append(
                [
                    r.id,
                    r.pipeline,
                    r.run_date,
                    status_text,
                    _when(r.started),
                    _secs(r.duration),
                    f"{sum(t.status == 'succeeded' for t in tasks)}/{len(tasks)}",
                ]
            )
        if not records:
            console.print("no runs yet; start one with `headrace run MODULE:PIPELINE`", highlight=False)
            return
        # Run ids are what people copy into `runs show` and `resume`: never shortened.
        columns = ["run", "pipeline", "run date", "status", "started", "time", "tasks ok"]
        print_table("local runs", columns, rows)

    @runs_app.command("show")
    @guard
    def runs_show(
        run_id: str = typer.Argument(..., help="A run id from `headrace runs list`."),
        output: str | None = runs_tools.output_option(),
    ) -> None:
        """One run: parameters, tasks, every attempt with its reason, outputs with sizes; or one output."""
        from steps.core.display import format_bytes

        store = _store(settings_from())
        try:
            record = store.get_run(run_id)
            if record is None:
                fail(f"run {run_id}: not found; list runs with `headrace runs list`")
            if output is not None:
                runs_tools.show_output(store, run_id, output)
                return
            tasks = store.tasks(run_id)
            attempts = store.attempts(run_id)
            outputs = store.outputs(run_id)
            started_by = store.started_by(run_id)
        finally:
            store.close()
        console.print(
            f"[bold]{record.id}[/]  pipeline {record.pipeline}  status [bold]{record.status}[/]  "
            f"started {_when(record.started)}  time {_secs(record.duration)}  mode {record.mode}",
            highlight=False,
            soft_wrap=True,
        )
        params = ", ".join(f"{k}={v}" for k, v in record.params.items())
        console.print(f"params: {params}", highlight=False, soft_wrap=True)
        console.print(f"started by {started_by or 'a command (run, resume or backfill)'}", highlight=False)
        rows = []
        seen = set()
        for a in attempts:
            seen.add(a.task)
            size = ""
            if a.sizing:
                size = " ".join(str(a.sizing.get(k) or "") for k in ("instance_type", "memory")).strip()
            rows.append(
                [
                    a.task,
                    str(a.attempt),
                    a.status,
                    _secs(a.duration),
                    "" if a.exit_code is None else str(a.exit_code),
                    format_bytes(a.peak_memory_bytes) if a.peak_memory_bytes else "",
                    size,
                    a.reason,
                    a.log_path,
                ]
            )
        for t in tasks:
            if t.task not in seen:
                rows.append([t.task, "", t.status, "", "", "", "", t.reason, ""])
        columns = ["task", "try", "status", "time", "exit", "peak mem", "size", "reason", "log"]
        print_table("attempts", columns, rows)
        reasons = [a for a in attempts if a.sizing and a.sizing.get("reason")]
        if reasons:
            console.print("sizes chosen by the control room:", highlight=False)
            for a in reasons:
                assert a.sizing is not None
                console.print(f"  {a.task} try {a.attempt}: {a.sizing['reason']}", highlight=False, soft_wrap=True)
        if outputs:
            out_rows = [
                [o.task, o.output, format_bytes(o.bytes), "" if o.rows is None else f"{o.rows:,}", o.ref.format, o.uri]
                for o in outputs
            ]
            print_table("outputs", ["task", "output", "bytes", "rows", "format", "uri"], out_rows)

    @app.command("logs")
    @guard
    def logs(
        run_id: str = typer.Argument(..., help="A local run id, or an Argo workflow name."),
        task: str | None = typer.Argument(None, help="Only this task (default: every task)."),
        follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing while the run goes on."),
        attempt: int | None = typer.Option(None, "--attempt", help="This attempt's log (default: the latest)."),
    ) -> None:
        """Print the logs of a run's tasks (latest attempt of each, or --attempt N), local or on Argo."""
        settings = settings_from()
        store = _store(settings)
        try:
            record = store.get_run(run_id)
            if record is None:
                store.close()
                _argo_logs(run_id, task, follow, settings, attempt)
                return
            _print_logs(store, record, task, follow, attempt)
        finally:
            store.close()


def _argo_configured(settings: Settings) -> bool:
    """Whether an Argo Server or a Kubernetes cluster is configured to ask for a run's logs."""
    import os

    if settings.argo_server:
        return True
    kubeconfig = os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    return any(Path(path).is_file() for path in kubeconfig.split(os.pathsep) if path)


def _argo_logs(run_id: str, task: str | None, follow: bool, settings: Settings, attempt: int | None) -> None:
    from steps.core.errors import HeadraceError

    if not _argo_configured(settings):
        fail(
            f"run {run_id}: no such local run (`headrace runs list` lists them); for a run on Argo, "
            f"set ARGO_SERVER=https://<argo-server>:2746 (or KUBECONFIG) and run `headrace logs {run_id}` again"
        )
    try:
        from pipelines.argo.logs import stream_logs  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        fail(f"run {run_id}: not a local run, and Argo logs are not available yet (pipelines.argo.logs missing)")
    try:
        for line in stream_logs(run_id, task=task, follow=follow, settings=settings, attempt=attempt):
            sys.stdout.write(line if line.endswith("\n") else line + "\n")
            sys.stdout.flush()
    except HeadraceError as error:
        fail(f"run {run_id}: not a local run, and Argo answered: {error}", error.exit_code)


def _latest_logs(store: RunStore, run_id: str, task: str | None, number: int | None = None) -> dict[str, str]:
    """Each task's log: of attempt ``number`` when given, else of its latest attempt."""
    latest: dict[str, str] = {}
    for attempt in store.attempts(run_id, task):
        if number is None or attempt.attempt == number:
            latest[attempt.task] = attempt.log_path
    return latest


def _print_logs(store: RunStore, record: RunRecord, task: str | None, follow: bool, number: int | None = None) -> None:
    if task is not None and task not in {t.task for t in store.tasks(record.id)}:
        fail(f"run {record.id}: no task {task!r}; tasks are {', '.join(t.task for t in store.tasks(record.id))}")
    if number is not None:
        tried = sorted({a.attempt for a in store.attempts(record.id, task)})
        if number not in tried:
            where = f"run {record.id}" + (f", task {task}," if task else "")
            fail(
                f"--attempt {number}: {where} has no attempt {number}; its attempts are {', '.join(map(str, tried)) or 'none yet'}"
            )
    positions: dict[str, int] = {}
    while True:
        latest = _latest_logs(store, record.id, task, number)
        for name, path in latest.items():
            key = f"{name}:{path}"
            try:
                with open(path, "rb") as handle:
                    handle.seek(positions.get(key, 0))
                    data = handle.read()
                    positions[key] = handle.tell()
            except OSError:
                continue
            if not data:
                continue
            text = data.decode("utf-8", errors="replace")
            if task is None:
                text = "".join(f"[{name}] {line}" for line in text.splitlines(keepends=True))
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
            sys.stdout.flush()
        if not follow:
            return
        current = store.get_run(record.id)
        if current is None or not current.runner_alive:
            if not follow or positions.get("__final__") == 1:
                return
            positions["__final__"] = 1  # one more pass to print what came last
            continue
        time.sleep(0.3)


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return ""
    return dt.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def _secs(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:.1f}s"
