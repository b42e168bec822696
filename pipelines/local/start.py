"""Starting and resuming a local run: ``headrace run``, ``resume`` and triggered runs enter here.

Everything before the scheduler (:class:`pipelines.local.runner.Runner`) takes over: the run's
parameters resolved and typed (a bad one fails before anything is written), the run lock (one
runner per run), the run records created or reopened for a resume, and after the run its
completion published. Kept apart from the scheduler so that file holds only the event loop.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipelines.graph import Pipeline
from pipelines.local.runner import Runner
from pipelines.local.summary import RunSummary, TaskSummary
from pipelines.runs import RunLock, RunRecord, RunStore, new_run_id
from steps.core.contract import ArtifactRef, ControlRoom
from steps.core.errors import NotFoundError, UserError
from steps.core.settings import Settings


def _absolute(settings: Settings) -> Settings:
    """Settings with the state folder and artifact root made absolute, so children in any cwd
    and a later ``resume`` find the same files."""
    state = str(Path(settings.state_dir).resolve())
    root = settings.artifact_root or str(Path(state) / "artifacts")
    if "://" not in root:
        root = str(Path(root).resolve())
    return settings.replace(state_dir=state, artifact_root=root)


def resolve_run_params(pipeline: Pipeline, params: Mapping[str, str] | None) -> dict[str, str]:
    """Every parameter's raw value for a run, ``run_date`` fixed to a day so all tasks agree."""
    from steps.runtime.task import resolve_run_date

    raw = pipeline.resolve_params(params)
    raw["run_date"] = resolve_run_date(raw.get("run_date", ""), pipeline.timezone).isoformat()
    pipeline.convert_params(raw)  # a value not of its parameter's type fails now, not in a task
    return raw


def run_pipeline(
    pipeline: Pipeline,
    *,
    spec: str,
    params: Mapping[str, str] | None = None,
    settings: Settings,
    parallel: int | None = None,
    in_process: bool = False,
    live: bool = True,
    resume_run_id: str | None = None,
    control_room: ControlRoom | None = None,
    cwd: str | None = None,
    fork_server: bool = True,
    run_id: str | None = None,
    started_by: str = "",
) -> RunSummary:
    """Run ``pipeline`` here and return what happened; the run records say the same.

    ``spec`` (``MODULE:PIPELINE``) is how task processes load the pipeline, from ``cwd`` (default:
    the current folder). ``params`` are raw strings (``-p`` values); unknown names raise
    :class:`~steps.core.errors.UserError`. With ``resume_run_id`` the run continues: tasks that
    succeeded keep their outputs, the others run again with attempt numbers continuing.
    Ctrl-C returns a summary with status ``cancelled``. ``fork_server=False`` starts every
    subprocess attempt with a fresh ``python -m steps run`` instead of forking it from the run's
    fork server (same entrypoint, ~60 ms more CPU per task). ``run_id`` names a new run (a
    trigger claims it before the run starts); ``started_by`` (``"started by amqp queue ..."``)
    goes with the run's start event to Slack, Datadog and the control room. With ``events_url`` set, the finished run publishes
    its completion there (:mod:`steps.runtime.events`; never changes the run's outcome).
    """
    pipeline.check()
    settings = _absolute(settings)
    if resume_run_id is None:
        resolve_run_params(pipeline, params)  # bad parameters leave nothing behind, not even a lock
    store = RunStore.for_settings(settings)
    try:
        lock = RunLock(settings.state_path, resume_run_id or run_id or new_run_id(pipeline.name)).acquire()
    except BaseException:
        store.close()
        raise
    try:  # one runner per run: the lock is held until the run's end
        summary, first_attempts, workdir = _open_run(
            pipeline, store, lock.run_id, spec, params, resume=resume_run_id is not None, cwd=cwd, in_process=in_process
        )
        summary.outputs_root = f"{settings.artifact_root.rstrip('/')}/{pipeline.name}/{summary.run_id}/"
        runner = Runner(
            pipeline,
            spec=spec,
            cwd=workdir,
            settings=settings,
            store=store,
            summary=summary,
            parallel=parallel or os.cpu_count() or 1,
            in_process=in_process,
            control_room=control_room,
            first_attempts=first_attempts,
            fork_server=fork_server,
            started_by=started_by,
        )
        if live and sys.stderr.isatty():
            from pipelines.local.view import live_view

            with live_view(summary):
                runner.run()
        else:
            runner.run()
        if settings.events_url:
            from steps.runtime.events import publish_completion

            publish_completion(settings, _completion(summary))
        return summary
    finally:
        lock.release()
        store.close()


def _open_run(
    pipeline: Pipeline,
    store: RunStore,
    run_id: str,
    spec: str,
    params: Mapping[str, str] | None,
    *,
    resume: bool,
    cwd: str | None,
    in_process: bool,
) -> tuple[RunSummary, dict[str, int], str]:
    """The run's records, created (or reopened to resume): its summary so far, each task's first
    attempt number and the folder its tasks run in."""
    workdir = cwd or os.getcwd()
    first_attempts: dict[str, int] = {}
    if resume:
        record = _resumable(store, run_id, pipeline)
        merged = {**record.params, **dict(params or {})}
        run_params = resolve_run_params(pipeline, merged)
        summary = RunSummary(run_id=record.id, pipeline=pipeline.name, params=run_params)
        previous = {t.task: t for t in store.tasks(record.id)}
        outputs: dict[str, dict[str, ArtifactRef]] = {}
        for out in store.outputs(record.id):
            outputs.setdefault(out.task, {})[out.output] = out.ref
        for name, task in pipeline.tasks.items():
            state = TaskSummary(name)
            before = previous.get(name)
            if before is not None:
                first_attempts[name] = before.attempts + 1
                done = set(outputs.get(name, {}))
                if before.status == "succeeded" and done >= set(task.outputs):
                    state.status = "succeeded"
                    state.reused = True
                    state.attempts = before.attempts
                    state.outputs = outputs[name]
            summary.tasks[name] = state
        store.reopen_run(record.id, run_params, list(pipeline.tasks))
        for state in summary.tasks.values():
            if state.status == "pending":
                store.set_task(record.id, state.name, "pending", reason="")
        workdir = cwd or record.cwd or workdir
    else:
        run_params = resolve_run_params(pipeline, params)
        summary = RunSummary(run_id=run_id, pipeline=pipeline.name, params=run_params)
        summary.tasks = {name: TaskSummary(name) for name in pipeline.tasks}
        store.create_run(
            summary.run_id,
            pipeline=pipeline.name,
            spec=spec,
            params=run_params,
            tasks=list(pipeline.tasks),
            cwd=workdir,
            mode="in-process" if in_process else "subprocess",
        )
    return summary, first_attempts, workdir


def _completion(summary: RunSummary) -> dict[str, Any]:
    from steps.runtime.events import completion_message

    outputs = {
        f"{task.name}.{name}": {"bytes": ref.bytes, "rows": ref.rows}
        for task in summary.tasks.values()
        for name, ref in task.outputs.items()
    }
    return completion_message(
        summary.pipeline, summary.run_id, summary.params.get("run_date", ""), summary.status, outputs
    )


def _resumable(store: RunStore, run_id: str, pipeline: Pipeline) -> RunRecord:
    record = store.get_run(run_id)
    if record is None:
        raise NotFoundError(f"run {run_id}: not found in {store.path}; list runs with `headrace runs list`")
    if record.pipeline != pipeline.name:
        raise UserError(f"run {run_id}: belongs to pipeline {record.pipeline}, not {pipeline.name}")
    return record
